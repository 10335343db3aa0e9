//! The three expositions of one snapshot, and which one a scraper gets (`Accept`).
//!
//! OpenMetrics text and delimited protobuf (`io.prometheus.client.MetricFamily`) come from
//! prometheus-client; the classic text format (0.0.4) is rewritten from the OpenMetrics text.
//! Native histograms are written only by the protobuf encoder (the text formats have none).

use std::fmt::Write;

use prometheus_client::encoding::prometheus_protobuf;
use prometheus_client::registry::Registry;

use super::{FamilySet, Kind, Snapshot};

/// Content type of the delimited protobuf exposition (what Prometheus asks for with native histograms on).
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
    Protobuf,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
            Format::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// The format an `Accept` value (all of a request's `Accept` headers joined by commas) asks
/// for: the acceptable media range of highest `q` (default 1; `q=0` is refused), the first
/// listed on a tie, a specific type before a wildcard. `application/vnd.google.protobuf`
/// counts only with `proto=io.prometheus.client.MetricFamily` and `encoding=delimited` when it
/// names them; `*/*` and `application/*` mean OpenMetrics, `text/*` the classic text. Nothing
/// usable (no header, only unknown types): OpenMetrics.
pub fn negotiate(accept: &str) -> Format {
    let mut best: Option<(f64, bool, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut q, mut proto_ok, mut delimited) = (1.0f64, true, true);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.parse().ok().filter(|q: &f64| q.is_finite()).unwrap_or(0.0),
                "proto" => proto_ok = value == "io.prometheus.client.MetricFamily",
                "encoding" => delimited = value == "delimited",
                _ => {}
            }
        }
        let (format, specific) = match media.as_str() {
            "application/openmetrics-text" => (Format::OpenMetrics, true),
            "text/plain" => (Format::PrometheusText, true),
            "application/vnd.google.protobuf" if proto_ok && delimited => (Format::Protobuf, true),
            "*/*" | "application/*" => (Format::OpenMetrics, false),
            "text/*" => (Format::PrometheusText, false),
            _ => continue,
        };
        if q <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((best_q, best_specific, _)) => q > best_q || (q == best_q && specific && !best_specific),
        };
        if better {
            best = Some((q, specific, format));
        }
    }
    best.map_or(Format::OpenMetrics, |(_, _, format)| format)
}

/// Encodes several family sets, in order, in `format`.
pub fn encode_sets_as(format: Format, sets: Vec<FamilySet>) -> Vec<u8> {
    match format {
        Format::OpenMetrics => encode_sets(sets).into_bytes(),
        Format::PrometheusText => {
            let counters = counter_names(&sets);
            to_prometheus_text(&encode_sets(sets), &counters).into_bytes()
        }
        Format::Protobuf => {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(Snapshot(sets)));
            prometheus_protobuf::encode_to_vec(&registry).expect("encoding into a Vec cannot fail")
        }
    }
}

/// Content type of [`encode_sets`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes several family sets, in order, as one OpenMetrics text.
pub fn encode_sets(sets: Vec<FamilySet>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(sets)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// Names of the counter families of a snapshot (what [`to_prometheus_text`] needs to know).
pub type CounterNames = std::collections::HashSet<&'static str>;

pub fn counter_names(sets: &[FamilySet]) -> CounterNames {
    sets.iter().flat_map(|set| (**set).as_ref()).filter(|f| f.def.kind == Kind::Counter).map(|f| f.def.name).collect()
}

/// Content type of [`to_prometheus_text`]'s output.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rewrites [`encode_sets`]'s OpenMetrics output as the classic Prometheus text format (0.0.4), for
/// clients that ask for it (`promtool check metrics`, older scrapers): counter families are
/// named with their `_total` samples, and `# EOF` / `# UNIT` go.
pub fn to_prometheus_text(openmetrics: &str, counters: &CounterNames) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                let _ = writeln!(out, "{prefix}{name}{suffix} {tail}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
