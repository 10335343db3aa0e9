//! A per-scrape snapshot of metric families, encoded as OpenMetrics text by prometheus-client.
//!
//! Sources build plain [`MetricFamily`] values instead of registering long-lived metrics, so a
//! label set that disappears from the data disappears from the output too.
//!
//! Label values are made safe here, in one place, for every source: see [`label_value`].

use std::borrow::Cow;
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

/// Longest label value exported, in characters. Longer values are cut: the first 191
/// characters, `…`, and 8 hex digits of a hash of the whole value (so that two long values
/// that differ only after the cut stay two series).
pub const MAX_LABEL_VALUE_CHARS: usize = 200;
const CUT_HASH_CHARS: usize = 8;

/// Unicode's format characters (general category Cf, Unicode 16): invisible, and some of them
/// reorder the text around them (U+202E RIGHT-TO-LEFT OVERRIDE) or hide in it (U+200B ZERO
/// WIDTH SPACE, U+FEFF BYTE ORDER MARK). Ranges, inclusive, sorted.
const FORMAT_CHARS: [(u32, u32); 21] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// What a label value character becomes: kept, dropped (format characters) or a space
/// (control characters and the line and paragraph separators).
fn clean_char(c: char) -> Option<char> {
    if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
        Some(' ')
    } else if is_format_char(c) {
        None
    } else {
        Some(c)
    }
}

fn is_clean(value: &str) -> bool {
    value.len() <= MAX_LABEL_VALUE_CHARS && value.chars().all(|c| clean_char(c) == Some(c))
}

/// FNV-1a over a value's bytes: stable across runs and versions, so a changed value names the
/// same series tomorrow.
fn value_hash(value: &str) -> u32 {
    value.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A label value as exported. A clean value (no control or format character, at most
/// [`MAX_LABEL_VALUE_CHARS`] characters) is kept as is. Otherwise control characters become
/// spaces, format characters (bidi overrides, zero-width characters, BOM) are removed, and, so
/// that cleaning never merges two values (a tab and a space, a zero-width space and nothing),
/// `~` and 8 hex digits of a hash of the *original* value are appended. A value still too long
/// keeps its first 191 characters, then `…` and the hash. Applied to every label value of every
/// family at encoding; borrows (no copy) when the value is already clean; cleaning a cleaned
/// value changes nothing.
pub fn label_value(value: &str) -> Cow<'_, str> {
    if is_clean(value) {
        return Cow::Borrowed(value);
    }
    // Cleaned up to one character past the bound: beyond it the result is the cut form whatever
    // follows (the hash still covers every byte), so a 1 MiB value costs its hash, not a clean.
    let cleaned: String = value.chars().filter_map(clean_char).take(MAX_LABEL_VALUE_CHARS + 1).collect();
    let chars = cleaned.chars().count();
    if cleaned == value && chars <= MAX_LABEL_VALUE_CHARS {
        // Clean, only longer in bytes than the fast check allows.
        return Cow::Owned(cleaned);
    }
    let hash = value_hash(value);
    if cleaned != value && chars < MAX_LABEL_VALUE_CHARS - CUT_HASH_CHARS {
        let mut out = cleaned;
        let _ = write!(out, "~{hash:08x}");
        return Cow::Owned(out);
    }
    let mut cut: String = cleaned.chars().take(MAX_LABEL_VALUE_CHARS - 1 - CUT_HASH_CHARS).collect();
    let _ = write!(cut, "…{hash:08x}");
    Cow::Owned(cut)
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
        assert!(text.contains("# TYPE polo_x_seconds gauge\npolo_x_seconds{a=\"q\\\"uo te~"), "{text}");
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

    /// The cleaned value and the hash suffix of a changed one.
    fn split_suffix(v: &str) -> (&str, &str) {
        let (clean, hash) = v.rsplit_once('~').expect("a changed value has a hash suffix");
        assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
        (clean, hash)
    }

    #[test]
    fn label_values_lose_control_and_format_characters() {
        assert_eq!(label_value("config_ec2"), Cow::Borrowed("config_ec2"));
        assert!(matches!(label_value("日本語 ok"), Cow::Borrowed(_)), "other Unicode is kept as is");
        assert_eq!(split_suffix(&label_value("evil\u{202E}gnp.exe")).0, "evilgnp.exe");
        assert_eq!(split_suffix(&label_value("\u{FEFF}bom")).0, "bom");
        assert_eq!(split_suffix(&label_value("zero\u{200B}width\u{2060}joiner\u{00AD}")).0, "zerowidthjoiner");
        assert_eq!(split_suffix(&label_value("tag\u{E0041}\u{E007F}s")).0, "tags");
        assert_eq!(
            split_suffix(&label_value("line\nbreak\ttab\u{0}nul\u{85}nel\u{2028}ls")).0,
            "line break tab nul nel ls"
        );
    }

    #[test]
    fn cleaning_never_merges_distinct_values() {
        let values = ["a b", "a\tb", "a\nb", "ab", "a\u{200B}b", "a\u{FEFF}b", "a\u{200B}\u{200B}b", "a\u{0}b"];
        let cleaned: std::collections::BTreeSet<String> = values.iter().map(|v| label_value(v).into_owned()).collect();
        assert_eq!(cleaned.len(), values.len(), "{cleaned:?}");
        for v in &cleaned {
            assert_eq!(label_value(v), v.as_str(), "cleaning twice changes nothing");
        }
        assert_eq!(label_value("a\tb"), label_value("a\tb"), "stable");
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
    fn long_label_values_are_cut_with_an_ellipsis_and_a_hash() {
        let exact = "x".repeat(MAX_LABEL_VALUE_CHARS);
        assert_eq!(label_value(&exact), exact.as_str());
        let long = "é".repeat(5000);
        let cut = label_value(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_VALUE_CHARS);
        assert!(cut.starts_with(&"é".repeat(191)));
        assert_eq!(cut.chars().nth(191), Some('…'));
        let other_long = "é".repeat(4999) + "e";
        let other = label_value(&other_long);
        assert_ne!(cut, other, "values differing after the cut stay distinct");
        assert_eq!(cut[cut.len() - 8..].len(), 8);
        assert!(cut[cut.len() - 8..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(label_value(&long), cut, "stable");
        // Format characters do not count towards the length, but removing them is a change.
        let padded = format!("{}{}", "a".repeat(150), "\u{200B}".repeat(50));
        assert_eq!(split_suffix(&label_value(&padded)).0, "a".repeat(150));
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
