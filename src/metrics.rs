//! A per-scrape snapshot of metric families, encoded as OpenMetrics text by prometheus-client.
//!
//! Sources build plain [`MetricFamily`] values instead of registering long-lived metrics, so a
//! label set that disappears from the data disappears from the output too.

use std::fmt::Write;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Gauge(f64),
    /// Counter family names are given without `_total`; the encoder appends it.
    Counter(f64),
    /// `buckets` holds (upper bound, count of observations in that bucket alone), the last
    /// bound being +Inf; the encoder makes them cumulative.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

/// A family declared once: name, help, type and label names. Sources declare theirs as
/// constants and make every per-scrape [`MetricFamily`] from them, so a name is written once.
#[derive(Debug, PartialEq)]
pub struct Def {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

impl Def {
    pub const fn gauge(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: Kind::Gauge, labels }
    }

    /// `name` without `_total`: the encoder appends it.
    pub const fn counter(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: Kind::Counter, labels }
    }

    pub const fn histogram(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self { name, help, kind: Kind::Histogram, labels }
    }

    /// An empty family of this definition, to fill for one scrape.
    pub fn family(&'static self) -> MetricFamily {
        MetricFamily { def: self, samples: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    def: &'static Def,
    samples: Vec<Sample>,
}

impl MetricFamily {
    pub fn def(&self) -> &'static Def {
        self.def
    }

    pub fn name(&self) -> &'static str {
        self.def.name
    }

    pub fn kind(&self) -> Kind {
        self.def.kind
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Adds a gauge or counter sample; `values` are the label values in the order of the
    /// definition's label names.
    pub fn push<const N: usize>(&mut self, values: [String; N], value: f64) {
        let value = match self.def.kind {
            Kind::Counter => Value::Counter(value),
            Kind::Gauge => Value::Gauge(value),
            // A histogram takes only `push_histogram`: a gauge value there would be a lie.
            Kind::Histogram => {
                debug_assert!(false, "{}: a histogram family takes push_histogram", self.def.name);
                return;
            }
        };
        let labels = self.labels(values);
        self.samples.push(Sample { labels, value });
    }

    /// Adds one histogram series; `buckets` as in [`Value::Histogram`].
    pub fn push_histogram<const N: usize>(
        &mut self,
        values: [String; N],
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    ) {
        if self.def.kind != Kind::Histogram {
            debug_assert!(false, "{}: only a histogram family takes push_histogram", self.def.name);
            return;
        }
        let labels = self.labels(values);
        self.samples.push(Sample { labels, value: Value::Histogram { sum, count, buckets } });
    }

    pub fn with<const N: usize>(mut self, values: [String; N], value: f64) -> Self {
        self.push(values, value);
        self
    }

    fn labels<const N: usize>(&self, values: [String; N]) -> Labels {
        debug_assert_eq!(N, self.def.labels.len(), "{}: label values do not match the definition", self.def.name);
        self.def.labels.iter().copied().zip(values).collect()
    }
}

/// Families shared rather than copied: a source's cached output, the self-metrics of a scrape.
pub type FamilySet = std::sync::Arc<dyn AsRef<[MetricFamily]> + Send + Sync>;

/// One scrape's families, encoded in place: nothing is copied out of the sources' outputs.
struct Snapshot(Vec<FamilySet>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Snapshot({} family sets)", self.0.len())
    }
}

fn encode_value(encoder: &mut MetricEncoder, value: &Value) -> Result<(), std::fmt::Error> {
    use prometheus_client::encoding::NoLabelSet;
    match value {
        Value::Gauge(v) => encoder.encode_gauge(v),
        Value::Counter(v) => encoder.encode_counter::<NoLabelSet, _, f64>(v, None),
        Value::Histogram { sum, count, buckets } => encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None),
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in self.0.iter().flat_map(|set| (**set).as_ref()) {
            let metric_type = match family.def.kind {
                Kind::Gauge => MetricType::Gauge,
                Kind::Counter => MetricType::Counter,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric = encoder.encode_descriptor(family.def.name, family.def.help, None, metric_type)?;
            for sample in &family.samples {
                // An empty label set is written without braces (`name 1.0`, not `name{} 1.0`).
                if sample.labels.is_empty() {
                    encode_value(&mut metric, &sample.value)?;
                } else {
                    encode_value(&mut metric.encode_family(&sample.labels)?, &sample.value)?;
                }
            }
        }
        Ok(())
    }
}

/// Content type of [`encode`]'s output.
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

/// Rewrites [`encode`]'s OpenMetrics output as the classic Prometheus text format (0.0.4), for
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

#[cfg(test)]
mod tests {
    use super::*;

    static X: Def = Def::gauge("polo_x_seconds", "X.", &["a"]);
    static RUNS: Def = Def::counter("polo_runs", "Runs.", &["status"]);
    static H: Def = Def::histogram("polo_h_seconds", "H.", &[]);
    static UP: Def = Def::gauge("polo_up", "Up.", &[]);

    fn encode(families: Vec<MetricFamily>) -> String {
        encode_sets(vec![std::sync::Arc::new(families)])
    }

    #[test]
    fn encodes_gauges_counters_and_histograms() {
        let mut h = H.family();
        h.push_histogram([], 2.5, 3, vec![(1.0, 1), (f64::INFINITY, 2)]);
        let families = vec![X.family().with(["q\"uo\nte".into()], 1.5), RUNS.family().with(["failed".into()], 3.0), h];
        let text = encode(families);
        assert!(text.contains("# TYPE polo_x_seconds gauge\npolo_x_seconds{a=\"q\\\"uo\\nte\"} 1.5\n"), "{text}");
        assert!(text.contains("# TYPE polo_runs counter\npolo_runs_total{status=\"failed\"} 3.0\n"), "{text}");
        assert!(text.contains("polo_h_seconds_bucket{le=\"1.0\"} 1\n"), "{text}");
        assert!(text.contains("polo_h_seconds_count 3\n"), "{text}");
        assert!(text.contains("polo_h_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    #[should_panic(expected = "histogram family takes push_histogram")]
    fn a_histogram_family_refuses_a_gauge_value() {
        H.family().push([], 1.0);
    }

    #[test]
    #[should_panic(expected = "only a histogram family")]
    fn a_gauge_family_refuses_a_histogram() {
        UP.family().push_histogram([], 1.0, 1, vec![(f64::INFINITY, 1)]);
    }

    #[test]
    fn converts_to_prometheus_text() {
        let families = vec![RUNS.family().with(["failed".into()], 3.0), UP.family().with([], 1.0)];
        let sets: Vec<FamilySet> = vec![std::sync::Arc::new(families)];
        let text = to_prometheus_text(&encode_sets(sets.clone()), &counter_names(&sets));
        assert!(text.contains("# HELP polo_runs_total Runs.\n# TYPE polo_runs_total counter\npolo_runs_total{status=\"failed\"} 3.0\n"), "{text}");
        assert!(text.contains("# TYPE polo_up gauge\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
