//! Bounds on YAML input (the config file and the web config file), so that a hostile or
//! mistaken file is rejected fast and with its line, instead of being accepted and breaking
//! things later:
//!
//! - size: at most [`MAX_BYTES`];
//! - nesting: at most [`MAX_FLOW_DEPTH`] levels of `[`/`{`, checked on the text before the YAML
//!   parser sees it (the parser takes time quadratic in that depth; block nesting is bounded
//!   by the parser's own recursion limit, 128);
//! - values: durations and numbers beyond a per-key bound ([`RULES`]), checked after the
//!   typed parse by a second walk over the document, which knows each value's key and line.

use std::fmt;
use std::time::Duration;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::duration;

/// Largest accepted file: configuration files are a few kilobytes.
pub const MAX_BYTES: usize = 1 << 20;
/// Deepest accepted flow nesting (`[[...]]`, `{a: {b: ...}}`).
pub const MAX_FLOW_DEPTH: usize = 32;

/// The bound of one key, by its name (wherever it appears, except under the maps whose keys
/// are user-chosen names, see [`NAMED_MAPS`]).
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    /// A duration no longer than this.
    Duration(Duration),
    /// A number no greater than this.
    Number(f64),
}

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// Per-key bounds. Every duration is also bounded by [`duration::MAX`] (10y).
pub const RULES: [(&str, Bound); 12] = [
    // A source's deadline (clickhouse.timeout, sources.*.timeout); ClickHouse's own
    // max_execution_time, which follows it, is usually capped far lower.
    ("timeout", Bound::Duration(Duration::from_secs(10 * MINUTE))),
    ("min_interval", Bound::Duration(Duration::from_secs(DAY))),
    ("serve_stale_for", Bound::Duration(Duration::from_secs(30 * DAY))),
    ("query_log_delay", Bound::Duration(Duration::from_secs(HOUR))),
    ("query_log_max_catchup", Bound::Duration(Duration::from_secs(DAY))),
    ("late_arrival_window", Bound::Duration(Duration::from_secs(30 * DAY))),
    ("period", Bound::Duration(Duration::from_secs(DAY))),
    ("delay", Bound::Duration(Duration::from_secs(DAY))),
    ("within", Bound::Duration(Duration::from_secs(365 * DAY))),
    ("staleness_factor", Bound::Number(1000.0)),
    ("max_window_rows", Bound::Number(10_000_000.0)),
    ("max_rows", Bound::Number(1_000_000.0)),
];

/// Maps whose keys are names chosen by the user (a collector called `timeout` is not a timeout).
pub const NAMED_MAPS: [&str; 3] = ["expected_intervals", "headers", "basic_auth_users"];

fn rule(parent: Option<&str>, key: &str) -> Option<Bound> {
    if parent.is_some_and(|p| NAMED_MAPS.contains(&p)) {
        return None;
    }
    RULES.iter().find(|(name, _)| *name == key).map(|(_, bound)| *bound)
}

/// Checks the raw text: size and flow nesting. Returns the 1-based line and the message.
pub fn prescan(text: &str) -> Result<(), (usize, String)> {
    if text.len() > MAX_BYTES {
        return Err((1, format!("the file is {} bytes, more than the {MAX_BYTES} accepted", text.len())));
    }
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1usize;
    // True where a node may begin: line start, after `: `, `- `, `? `, `[`, `{`, `,`.
    let mut node_start = true;
    let mut prev = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                node_start = true;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if matches!(prev, b' ' | b'\t' | b'\n' | b'\r') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' if node_start => {
                // A quoted scalar: skip to its end (`\"` escapes in double quotes, `''` in single).
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\n' => line += 1,
                        b'\\' if c == b'"' => i += 1,
                        b'\'' if c == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        q if q == c => break,
                        _ => {}
                    }
                    i += 1;
                }
                node_start = false;
            }
            b'[' | b'{' if node_start || depth > 0 => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err((line, format!("nested deeper than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}")));
                }
                node_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                node_start = false;
            }
            b',' if depth > 0 => node_start = true,
            b':' | b'-' | b'?' => {
                let next = bytes.get(i + 1).copied().unwrap_or(b'\n');
                node_start = matches!(next, b' ' | b'\t' | b'\n' | b'\r') || (c == b':' && depth > 0);
            }
            // Anchors, aliases and tags before a node leave the node still to come.
            b'&' | b'*' | b'!' if node_start => {
                // Names end at a space or a flow indicator.
                while i < bytes.len()
                    && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}')
                {
                    i += 1;
                }
                continue;
            }
            _ => node_start = false,
        }
        prev = c;
        i += 1;
    }
    Ok(())
}

/// Walks a YAML document and fails at the first value beyond its key's bound. Run through
/// `serde_path_to_error` on a `serde_yaml_ng` deserializer, the error carries key and line.
pub struct CheckBounds;

impl<'de> de::Deserialize<'de> for CheckBounds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Node { parent: None, key: None }.deserialize(deserializer)?;
        Ok(CheckBounds)
    }
}

/// One node of the document and where it hangs.
struct Node {
    parent: Option<String>,
    key: Option<String>,
}

impl Node {
    fn bound(&self) -> Option<Bound> {
        self.key.as_deref().and_then(|key| rule(self.parent.as_deref(), key))
    }
}

impl<'de> DeserializeSeed<'de> for Node {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn check_number<E: de::Error>(node: &Node, value: f64) -> Result<(), E> {
    match node.bound() {
        Some(Bound::Number(max)) if value > max => {
            Err(E::custom(format!("{value} is more than {max}, the most accepted")))
        }
        _ => Ok(()),
    }
}

impl<'de> Visitor<'de> for Node {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if let Some(Bound::Duration(max)) = self.bound() {
            // Malformed durations were reported by the typed parse; only bounds are checked here.
            if let Ok(d) = duration::parse(v) {
                if d > max {
                    return Err(E::custom(format!(
                        "duration {v:?} is longer than {}, the longest accepted for `{}`",
                        duration::format(max),
                        self.key.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        check_number(&self, v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        check_number(&self, v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        check_number(&self, v)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // Items of a list keep the list's key: `queues[3].name` has parent `queues`' parent.
        while seq.next_element_seed(Node { parent: self.parent.clone(), key: None })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<KeyName>()? {
            map.next_value_seed(Node { parent: self.key.clone(), key: key.0 })?;
        }
        Ok(())
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // Tagged values (`!tag x`): check the value under the same key.
        let (_, variant): (KeyName, _) = data.variant()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// A mapping key: its text when it is a string (other keys have no bound).
struct KeyName(Option<String>);

impl<'de> de::Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyName, E> {
                Ok(KeyName(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyName, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyName, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prescan_counts_flow_nesting_only() {
        assert!(prescan("a: [1, [2, {b: [3]}]]\n").is_ok());
        let deep = format!("a: {}{}\n", "[".repeat(MAX_FLOW_DEPTH), "]".repeat(MAX_FLOW_DEPTH));
        assert!(prescan(&deep).is_ok());
        let deeper = format!("a: {}{}\n", "[".repeat(MAX_FLOW_DEPTH + 1), "]".repeat(MAX_FLOW_DEPTH + 1));
        assert_eq!(prescan(&deeper).unwrap_err().0, 1);
        let maps = format!("x: 1\ny:\n  z: {}1{}\n", "{a: ".repeat(40), "}".repeat(40));
        let (line, message) = prescan(&maps).unwrap_err();
        assert_eq!(line, 3);
        assert!(message.contains("nested deeper than 32"), "{message}");
    }

    #[test]
    fn prescan_ignores_brackets_in_scalars_and_comments() {
        let text = format!(
            "a: '{}'\nb: \"{}\\\"[\"\nc: x{} # {}\nd: it's [fine]\n",
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(prescan(&text), Ok(()));
    }

    #[test]
    fn prescan_bounds_size() {
        let big = "#".repeat(MAX_BYTES + 1);
        assert!(prescan(&big).unwrap_err().1.contains("more than the 1048576 accepted"));
    }
}

/// `parse`, `line_of_key` and the bounds through `Config::from_yaml`, the way users meet them.
#[cfg(test)]
mod config_tests {
    use std::path::Path;

    use crate::config::{line_of_key, Config, ConfigError};

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("t.yml"), &|name| (name == "PW").then(|| "x".to_string()))
    }

    fn err(text: &str) -> String {
        load(text).expect_err("config should be rejected").to_string()
    }

    const CH: &str = "clickhouse:\n  url: http://x:8123\n";

    #[test]
    fn absurd_durations_are_rejected_naming_key_line_and_bound() {
        let e = err(&format!("{CH}sources:\n  collector_runs:\n    timeout: 99999999999d\n"));
        assert_eq!(e, "t.yml:5: key `sources.collector_runs.timeout`: invalid duration \"99999999999d\": longer than 10y, the longest accepted");
        let e = err(&format!("{CH}sources:\n  accounts:\n    timeout: 11m\n"));
        assert_eq!(e, "t.yml:5: key `sources.accounts.timeout`: duration \"11m\" is longer than 10m, the longest accepted for `timeout`");
        let e = err("clickhouse: {url: 'http://x', timeout: 1h}\n");
        assert_eq!(
            e,
            "t.yml:1: key `clickhouse.timeout`: duration \"1h\" is longer than 10m, the longest accepted for `timeout`"
        );
        let e = err(&format!("{CH}collectors:\n  forget_after: 3651d\n"));
        assert!(e.starts_with("t.yml:4: key `collectors.forget_after`: invalid duration"), "{e}");
        let e = err(&format!("{CH}collectors:\n  staleness_factor: 1e300\n"));
        assert!(e.starts_with("t.yml:4: key `collectors.staleness_factor`: "), "{e}");
        assert!(e.contains("more than 1000"), "{e}");
        // At the bound is fine, and a collector named like a bounded key is not that key.
        let ok =
            load(&format!("{CH}  timeout: 10m\ncollectors:\n  expected_intervals:\n    timeout: 1d\n    delay: 1y\n"))
                .unwrap();
        assert_eq!(ok.clickhouse.timeout.as_secs(), 600);
        assert_eq!(ok.collectors.expected_interval("timeout").as_secs(), 86_400);
    }

    #[test]
    fn nested_yaml_is_rejected_by_the_nesting_bound_with_its_line() {
        // ~200 KB, as in the issue; without the bound the YAML parser spends half a minute on it.
        let text = format!("{CH}x: {}1{}\n", "{a: ".repeat(40_000), "}".repeat(40_000));
        assert!(text.len() > 200_000);
        let e = err(&text);
        assert_eq!(e, "t.yml:3: nested deeper than 32 levels of [ ] or { }");
        let lists = format!("{CH}x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&lists), "t.yml:3: nested deeper than 32 levels of [ ] or { }");
    }

    #[test]
    fn block_nesting_and_alias_expansion_are_bounded_by_the_parser() {
        let mut text = String::from(CH);
        for i in 0..600 {
            text.push_str(&format!("{}k{i}:\n", " ".repeat(i + 2)));
        }
        let text = text.replacen("k0:", "collectors:\n  k0:", 1);
        assert!(err(&text).contains("t.yml:"), "rejected with a line");
        // A billion-laughs document: each level doubles the previous one's expansion.
        let mut bomb = String::from(CH) + "accounts:\n  known_statuses: [&a0 [x, x]";
        for i in 1..40 {
            bomb.push_str(&format!(", &a{i} [*a{}, *a{}]", i - 1, i - 1));
        }
        bomb.push_str("]\n");
        assert!(
            err(&bomb).starts_with("t.yml:4: key `accounts.known_statuses[0]`: invalid type: sequence"),
            "{}",
            err(&bomb)
        );
        // Aliases inside flow collections do not count as nesting.
        let aliases = format!("{CH}accounts:\n  known_statuses: [&s active, {}]\n", vec!["*s"; 100].join(", "));
        assert_eq!(load(&aliases).unwrap().accounts.known_statuses.len(), 101);
    }

    #[test]
    fn every_validation_error_names_a_real_line() {
        // Two password keys: the rule is about both; the error points at their section.
        let e = err("clickhouse:\n  url: http://x:8123\n  password: a\n  password_env: PW\n");
        assert!(e.starts_with("t.yml:1: key `clickhouse.password_file`: set at most one"), "{e}");
        let text = "# comment\nclickhouse: {url: 'http://x', password: a, password_env: PW}\n";
        assert!(err(text).starts_with("t.yml:2: key `clickhouse.password_file`"), "{}", err(text));
        // Flow style: the key is found on its line.
        let text = "clickhouse: {url: 'http://x'}\ncollectors: {late_arrival_window: 10s}\n";
        assert!(err(text).starts_with("t.yml:2: key `collectors.late_arrival_window`"), "{}", err(text));
    }

    #[test]
    fn line_of_key_walks_blocks_flows_and_lists() {
        let text = "a:\n  b: 1\n  c:\n    d: 2\ne: {f: 1, g: {h: 2}}\nq:\n  list:\n    - name: x\n    - name: y\n      url: z\nb: 3\n";
        assert_eq!(line_of_key(text, "a.b"), Some(2));
        assert_eq!(line_of_key(text, "a.c.d"), Some(4));
        assert_eq!(line_of_key(text, "e.g.h"), Some(5));
        assert_eq!(line_of_key(text, "b"), Some(11), "top-level b, not a.b");
        assert_eq!(line_of_key(text, "q.list[1]"), Some(9));
        assert_eq!(line_of_key(text, "q.list[1].url"), Some(10));
        assert_eq!(line_of_key(text, "a.missing"), Some(1), "deepest segment found");
        assert_eq!(line_of_key(text, "a.c.missing"), Some(3));
        assert_eq!(line_of_key(text, "nothing.at.all"), Some(1));
        assert_eq!(line_of_key("x:\n  a-b: 1\n  b: 2\n", "x.b"), Some(3), "a key is not a suffix of another");
    }
}
