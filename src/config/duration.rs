//! Durations written the Prometheus way: `500ms`, `15s`, `15m`, `1h30m`, `2d`, `1w`.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration read from the config file in Prometheus notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

/// The longest duration accepted anywhere (10y): nothing in this exporter needs more, and
/// bounded durations cannot overflow the time arithmetic downstream. Keys have tighter bounds
/// (`config::bounds`).
pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses `1h30m`-style durations. Units: ms, s, m, h, d, w, y (365d), largest first, each once.
/// At most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = || {
        format!(
            "invalid duration {text:?}: expected a number and a unit (ms, s, m, h, d, w, y), e.g. \"15m\" or \"1h30m\""
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut last_unit_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        // "ms" must be tried before "m".
        let (rank, (unit, factor)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(bad)?;
        if last_unit_rank != usize::MAX && rank <= last_unit_rank {
            return Err(bad());
        }
        last_unit_rank = rank;
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*factor)
            .and_then(|ms| total_ms.checked_add(ms))
            .filter(|ms| u128::from(*ms) <= MAX.as_millis())
            .ok_or_else(|| format!("invalid duration {text:?}: longer than {}, the longest accepted", format(MAX)))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration back into the shortest Prometheus notation.
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, factor) in
        [("y", 365 * 86_400_000u64), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)]
    {
        if ms >= factor {
            out.push_str(&format!("{}{unit}", ms / factor));
            ms %= factor;
        }
    }
    out
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = PromDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"15m\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PromDuration, E> {
                parse(v).map(PromDuration).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_notation() {
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in ["", "15", "m", "15 m", "1.5h", "30m1h", "1h1h", "-5s", "15min", "99999999999999999999y"] {
            assert!(parse(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn bounds_durations_at_ten_years() {
        assert_eq!(parse("10y"), Ok(Duration::from_secs(3650 * 86_400)));
        assert_eq!(parse("3650d"), Ok(Duration::from_secs(3650 * 86_400)));
        for text in ["10y1ms", "3651d", "99999999999d", "18446744073709551615ms", "522w"] {
            let err = parse(text).expect_err(text);
            assert!(err.contains("longer than 10y"), "{text}: {err}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["15m", "1h30m", "500ms", "2d", "20m", "1y2d"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
