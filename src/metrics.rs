//! A per-scrape snapshot of metric families, encoded by prometheus-client as OpenMetrics text,
//! the classic text format or delimited protobuf (see [`exposition`]).
//!
//! Sources build plain [`MetricFamily`] values instead of registering long-lived metrics, so a
//! label set that disappears from the data disappears from the output too.
//!
//! Label values are made safe here, in one place, for every source: see [`label_value`].

mod exposition;
mod labels;

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NativeHistogram, NativeHistogramBuckets};
use prometheus_client::metrics::MetricType;

pub use exposition::{
    counter_names, encode_sets, encode_sets_as, negotiate, to_prometheus_text, CounterNames, Format,
    OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE,
};
use labels::is_clean;
pub use labels::{is_format_char, label_value, MAX_LABEL_VALUE_CHARS};

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Gauge(f64),
    /// Counter family names are given without `_total`; the encoder appends it.
    Counter(f64),
    /// `buckets` holds (upper bound, count of observations in that bucket alone), the last
    /// bound being +Inf; the encoder makes them cumulative.
    /// With `native`, the same observations also as a native (exponential) histogram, written
    /// only by the protobuf exposition; the text formats carry the classic buckets.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
        native: Option<Native>,
    },
}

/// A native histogram's buckets: bucket `i` of schema `s` holds the observations in
/// `(2^((i-1)/2^s), 2^(i/2^s)]`; observations at most `zero_threshold` are in the zero bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Native {
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: u64,
    /// (bucket index, observations in that bucket), indexes increasing, counts above zero.
    pub positive: Vec<(i32, u64)>,
}

impl Native {
    /// The index of the bucket of schema `schema` holding `v` (> 0): `ceil(log2(v) × 2^schema)`.
    pub fn bucket_index(schema: i32, v: f64) -> i32 {
        (v.log2() * 2f64.powi(schema)).ceil() as i32
    }

    /// Protobuf's sparse form of [`Native::positive`]: spans (offset from the previous span's
    /// end, the first from 0; length) and count deltas (the first absolute).
    pub fn spans_and_deltas(&self) -> (Vec<(i32, u32)>, Vec<i64>) {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(self.positive.len());
        let (mut next, mut previous) = (0i32, 0i64);
        for (i, &(index, count)) in self.positive.iter().enumerate() {
            match spans.last_mut() {
                Some(span) if i > 0 && index == next => span.1 += 1,
                _ => spans.push((if i == 0 { index } else { index - next }, 1)),
            }
            next = index + 1;
            let count = count as i64;
            deltas.push(count - previous);
            previous = count;
        }
        (spans, deltas)
    }
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
        self.samples.push(Sample { labels, value: Value::Histogram { sum, count, buckets, native: None } });
    }

    /// Adds one histogram series with its native buckets too (see [`Value::Histogram`]).
    pub fn push_native_histogram<const N: usize>(
        &mut self,
        values: [String; N],
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
        native: Native,
    ) {
        self.push_histogram(values, sum, count, buckets);
        if let Some(Sample { value: Value::Histogram { native: slot, .. }, .. }) = self.samples.last_mut() {
            *slot = Some(native);
        }
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
        Value::Histogram { sum, count, buckets, native: None } => {
            encoder.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)
        }
        Value::Histogram { sum, count, buckets, native: Some(native) } => {
            let (spans, deltas) = native.spans_and_deltas();
            let native = NativeHistogram {
                schema: native.schema,
                zero_threshold: native.zero_threshold,
                zero_count: native.zero_count,
                negative: NativeHistogramBuckets { spans: &[], deltas: &[] },
                positive: NativeHistogramBuckets { spans: &spans, deltas: &deltas },
                created: None,
            };
            encoder.encode_histogram_with_native::<NoLabelSet>(*sum, *count, buckets, None, native)
        }
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
            // Two samples with one label set would be one series twice: the first (in the
            // source's order) is kept, the others dropped. Cleaning never merges distinct
            // values, so only a source that pushes a label set twice gets here.
            let mut seen: std::collections::HashSet<Vec<Cow<str>>> = std::collections::HashSet::new();
            for sample in &family.samples {
                if !sample.labels.is_empty()
                    && !seen.insert(sample.labels.iter().map(|(_, v)| label_value(v)).collect())
                {
                    tracing::debug!(family = family.def.name, "a second sample with the same labels is dropped");
                    continue;
                }
                // An empty label set is written without braces (`name 1.0`, not `name{} 1.0`).
                if sample.labels.is_empty() {
                    encode_value(&mut metric, &sample.value)?;
                } else if sample.labels.iter().all(|(_, v)| is_clean(v)) {
                    encode_value(&mut metric.encode_family(&sample.labels)?, &sample.value)?;
                } else {
                    let labels: Vec<(&str, Cow<str>)> =
                        sample.labels.iter().map(|(k, v)| (*k, label_value(v))).collect();
                    encode_value(&mut metric.encode_family(&labels)?, &sample.value)?;
                }
            }
        }
        Ok(())
    }
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
        assert!(text.contains("# TYPE polo_x_seconds gauge\npolo_x_seconds{a=\"q\\\"uo te~"), "{text}");
        assert!(text.contains("# TYPE polo_runs counter\npolo_runs_total{status=\"failed\"} 3.0\n"), "{text}");
        assert!(text.contains("polo_h_seconds_bucket{le=\"1.0\"} 1\n"), "{text}");
        assert!(text.contains("polo_h_seconds_count 3\n"), "{text}");
        assert!(text.contains("polo_h_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn native_buckets_become_spans_and_deltas() {
        // Bucket index of schema 0: 1 s is in (0.5, 1], index 0; 3 s in (2, 4], index 2.
        assert_eq!(Native::bucket_index(0, 1.0), 0);
        assert_eq!(Native::bucket_index(0, 3.0), 2);
        assert_eq!(Native::bucket_index(3, 0.1), -26, "2^(-26/8) = 0.1051 >= 0.1 > 2^(-27/8) = 0.0964");
        let native =
            Native { schema: 3, zero_threshold: 0.0, zero_count: 0, positive: vec![(-3, 2), (-2, 5), (1, 1), (2, 4)] };
        assert_eq!(
            native.spans_and_deltas(),
            (vec![(-3, 2), (2, 2)], vec![2, 3, -4, 3]),
            "indexes -1 and 0 are a gap of 2"
        );
        let single = Native { positive: vec![(7, 3)], ..native.clone() };
        assert_eq!(single.spans_and_deltas(), (vec![(7, 1)], vec![3]));
        let none = Native { positive: vec![], ..native };
        assert_eq!(none.spans_and_deltas(), (vec![], vec![]));
    }

    #[test]
    fn protobuf_carries_native_buckets_and_text_the_classic_ones() {
        use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
        use prost::Message;
        let mut h = H.family();
        let native = Native { schema: 3, zero_threshold: 0.0005, zero_count: 1, positive: vec![(-3, 2), (1, 1)] };
        h.push_native_histogram([], 2.5, 4, vec![(1.0, 3), (f64::INFINITY, 1)], native);
        let sets: Vec<FamilySet> = vec![std::sync::Arc::new(vec![h])];
        let text = String::from_utf8(encode_sets_as(Format::OpenMetrics, sets.clone())).unwrap();
        assert!(text.contains("polo_h_seconds_bucket{le=\"1.0\"} 3\n"), "{text}");
        let bytes = encode_sets_as(Format::Protobuf, sets);
        let family = pb::MetricFamily::decode_length_delimited(bytes.as_slice()).unwrap();
        let hist = family.metric[0].histogram.as_ref().unwrap();
        assert_eq!((hist.sample_count, hist.sample_sum, hist.schema, hist.zero_count), (4, 2.5, 3, 1));
        assert_eq!(hist.zero_threshold, 0.0005);
        let spans: Vec<(i32, u32)> = hist.positive_span.iter().map(|s| (s.offset, s.length)).collect();
        assert_eq!((spans, hist.positive_delta.clone()), (vec![(-3, 1), (3, 1)], vec![2, -1]));
        let classic: Vec<(f64, u64)> = hist.bucket.iter().map(|b| (b.upper_bound, b.cumulative_count)).collect();
        assert_eq!(classic, vec![(1.0, 3), (f64::INFINITY, 4)]);
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

    #[test]
    fn a_label_set_given_twice_is_one_series_the_first() {
        let families =
            vec![X.family().with(["a\u{200B}".into()], 1.0).with(["a\u{200B}".into()], 2.0).with(["a".into()], 3.0)];
        let text = encode(families);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("polo_x_seconds{")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" 1.0") && lines[1] == "polo_x_seconds{a=\"a\"} 3.0", "{text}");
    }

    #[test]
    fn every_label_of_every_family_is_cleaned_at_encoding() {
        static A: Def = Def::gauge("polo_a", "A.", &["collector", "ok"]);
        static B: Def = Def::counter("polo_b", "B.", &["queue"]);
        let name = format!("\u{202E}{}", "c".repeat(5000));
        let families = vec![A.family().with([name, "fine".into()], 1.0), B.family().with(["q\u{FEFF}".into()], 2.0)];
        let text = encode(families);
        let line = text.lines().find(|l| l.starts_with("polo_a{")).unwrap();
        let value = line.split('"').nth(1).unwrap();
        assert_eq!(value.chars().count(), MAX_LABEL_VALUE_CHARS);
        assert!(value.starts_with(&"c".repeat(191)) && value.contains('…'), "{value}");
        assert!(line.contains("ok=\"fine\""), "{line}");
        assert!(text.contains("polo_b_total{queue=\"q~"), "{text}");
        assert!(!text.contains('\u{202E}') && !text.contains('\u{FEFF}'));
    }
}
