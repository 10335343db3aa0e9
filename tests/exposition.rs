//! The three expositions of `/metrics` (OpenMetrics, classic text, delimited protobuf), chosen
//! from `Accept`, carry the same families: each is decoded here on its own (the text formats by
//! a small parser, protobuf by prost with prometheus-client's generated types) and compared.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{config, http, DevClickHouse, Exporter};
use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as pb;
use prost::Message;

const PROTOBUF: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// One family as every format can say it: type, help, and its series (sorted labels → the
/// sample values by suffix: "" for gauges and counters, `_sum`, `_count`, `_bucket` le=… for
/// histograms), values printed with `{:?}` so that NaN equals NaN.
#[derive(Debug, PartialEq)]
struct Family {
    kind: String,
    help: String,
    series: BTreeMap<Vec<(String, String)>, BTreeMap<String, String>>,
}

type Families = BTreeMap<String, Family>;

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_value(v: &str) -> f64 {
    match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value {v}")),
    }
}

/// `le` values as the protobuf bucket bounds print them.
fn le(v: &str) -> String {
    format!("{:?}", parse_value(v))
}

/// OpenMetrics or the classic text. Counter families are keyed by their `_total` name (as
/// protobuf and the classic text name them).
fn from_text(text: &str) -> Families {
    let mut families = Families::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            helps.insert(name.to_string(), unescape(help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let key =
                if kind == "counter" && !name.ends_with("_total") { format!("{name}_total") } else { name.into() };
            let help = helps.get(name).cloned().unwrap_or_default();
            let family = Family { kind: kind.to_string(), help, series: BTreeMap::new() };
            assert!(families.insert(key.clone(), family).is_none(), "{key} twice");
            current = key;
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let metrics = common::Metrics::parse(line);
            let (name, labels, value) = &metrics.0[0];
            let family = families.get_mut(&current).unwrap_or_else(|| panic!("{line} outside a family"));
            // A counter's one sample is its `_total`, keyed "" as protobuf's single value.
            let suffix = name.strip_prefix(current.as_str()).unwrap_or_else(|| panic!("{name} in family {current}"));
            let mut labels = labels.clone();
            let key = match labels.remove("le") {
                Some(bound) if suffix == "_bucket" => format!("_bucket le={}", le(&bound)),
                Some(_) => panic!("le on {name}"),
                None => suffix.to_string(),
            };
            let series = family.series.entry(labels.into_iter().collect()).or_default();
            assert!(series.insert(key, format!("{value:?}")).is_none(), "{line} twice");
        }
    }
    families
}

/// The delimited protobuf, with each native histogram's (zero count, positive bucket counts by
/// index) keyed by family name and labels.
type NativeSeries = BTreeMap<(String, Vec<(String, String)>), (i32, u64, BTreeMap<i32, u64>)>;

fn from_protobuf(mut bytes: &[u8]) -> (Families, NativeSeries) {
    let mut families = Families::new();
    let mut native = NativeSeries::new();
    while !bytes.is_empty() {
        let family = pb::MetricFamily::decode_length_delimited(&mut bytes).expect("a delimited MetricFamily");
        let kind = match pb::MetricType::try_from(family.r#type).unwrap() {
            pb::MetricType::Counter => "counter",
            pb::MetricType::Gauge => "gauge",
            pb::MetricType::Histogram => "histogram",
            other => panic!("{other:?}"),
        };
        let mut series = BTreeMap::new();
        for metric in &family.metric {
            let mut labels: Vec<(String, String)> =
                metric.label.iter().map(|l| (l.name.clone(), l.value.clone())).collect();
            labels.sort();
            let mut values = BTreeMap::new();
            if let Some(g) = &metric.gauge {
                values.insert(String::new(), format!("{:?}", g.value));
            }
            if let Some(c) = &metric.counter {
                values.insert(String::new(), format!("{:?}", c.value));
            }
            if let Some(h) = &metric.histogram {
                values.insert("_sum".into(), format!("{:?}", h.sample_sum));
                values.insert("_count".into(), format!("{:?}", h.sample_count as f64));
                for b in &h.bucket {
                    values
                        .insert(format!("_bucket le={:?}", b.upper_bound), format!("{:?}", b.cumulative_count as f64));
                }
                if !h.positive_span.is_empty() || h.zero_count > 0 {
                    let (mut index, mut count, mut buckets) = (0i32, 0i64, BTreeMap::new());
                    let mut deltas = h.positive_delta.iter();
                    for span in &h.positive_span {
                        index += span.offset;
                        for _ in 0..span.length {
                            count += deltas.next().expect("a delta per bucket");
                            buckets.insert(index, u64::try_from(count).expect("counts stay positive"));
                            index += 1;
                        }
                    }
                    native.insert((family.name.clone(), labels.clone()), (h.schema, h.zero_count, buckets));
                }
            }
            assert!(series.insert(labels, values).is_none(), "{} series twice", family.name);
        }
        let entry = Family { kind: kind.into(), help: family.help.clone(), series };
        assert!(families.insert(family.name.clone(), entry).is_none(), "{} twice", family.name);
    }
    (families, native)
}

fn scrape(exporter: &Exporter, accept: &str) -> common::Response {
    let resp = http(exporter.port, "GET", "/metrics", &[("Accept", accept)], "");
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp
}

/// How long each source keeps its result in the test below, seconds.
const HOLD: u64 = 20;

#[test]
fn the_three_expositions_carry_the_same_families() {
    let ch = DevClickHouse::start();
    // Quiet period: the harness's queries age past the delay before the exporter's count starts.
    std::thread::sleep(Duration::from_millis(1500));
    // Every source keeps a result for 20 s: the first scrape starts the query-log count, the
    // second (20 s later) is a fresh run that reads the queries in between, and the three
    // scrapes that follow at once read that one result.
    let exporter = Exporter::start(&config(
        &ch.url(),
        &format!(
            "sources:\n  collector_runs:\n    min_interval: {HOLD}s\n  accounts:\n    min_interval: {HOLD}s\n  \
             clickhouse_system:\n    min_interval: {HOLD}s\n    query_log_delay: 1s\n    databases: [polo]\n"
        ),
    ));
    scrape(&exporter, "*/*");
    // The count starts at the first scrape (minus the delay): from here, every query is in it.
    let started = ch.exec("SELECT toUnixTimestamp64Micro(now64(6))").trim().to_string();
    for _ in 0..3 {
        ch.exec("SELECT sleep(0.1)");
    }
    ch.exec("SYSTEM FLUSH LOGS");
    std::thread::sleep(Duration::from_secs(HOLD + 1));
    scrape(&exporter, "*/*");

    let open = scrape(&exporter, "application/openmetrics-text;version=1.0.0");
    let text = scrape(&exporter, "text/plain;version=0.0.4");
    let proto = scrape(&exporter, PROTOBUF);
    assert_eq!(open.header("Content-Type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert_eq!(text.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert_eq!(
        proto.header("Content-Type"),
        Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
    );
    assert!(open.body.ends_with("# EOF\n") && !text.body.contains("# EOF"));

    let (from_proto, native) = from_protobuf(&proto.raw_body);
    native_buckets_match_the_query_log(&ch, &started, &from_proto, &native);
    let from_open = from_text(&open.body);
    let from_classic = from_text(&text.body);
    assert!(from_proto.len() > 20, "{} families", from_proto.len());
    assert!(from_proto.contains_key("polo_clickhouse_query_duration_seconds"), "{}", exporter.log());
    assert_eq!(from_open.keys().collect::<Vec<_>>(), from_proto.keys().collect::<Vec<_>>());
    assert_eq!(from_classic.keys().collect::<Vec<_>>(), from_proto.keys().collect::<Vec<_>>());
    for (name, family) in &from_proto {
        assert_eq!(&from_open[name], family, "{name}: OpenMetrics vs protobuf");
        assert_eq!(&from_classic[name], family, "{name}: classic text vs protobuf");
    }
}

/// The native buckets of the `Select` series against the engine's own rows: every finished
/// initial query since the exporter started (none of its own), bucketed from the definition of
/// schema 3 (bucket i holds (2^((i-1)/8), 2^(i/8)]).
fn native_buckets_match_the_query_log(ch: &DevClickHouse, started: &str, families: &Families, native: &NativeSeries) {
    let rows = ch.rows(&format!(
        "SELECT query_duration_ms, query, log_comment, toString(event_time_microseconds) AS t FROM system.query_log WHERE type = 'QueryFinish' AND is_initial_query \
         AND toString(query_kind) = 'Select' AND NOT startsWith(log_comment, 'polo-exporter:') \
         AND event_time_microseconds >= fromUnixTimestamp64Micro({started})"
    ));
    let mut expected: BTreeMap<i32, u64> = BTreeMap::new();
    let mut zero = 0;
    for row in &rows {
        let ms: u64 = row["query_duration_ms"]
            .as_str()
            .map_or_else(|| row["query_duration_ms"].as_u64().unwrap(), |s| s.parse().unwrap());
        if ms == 0 {
            zero += 1;
            continue;
        }
        let seconds = ms as f64 / 1000.0;
        let index = (1..).map(|i: i32| -200 + i).find(|i| 2f64.powf(f64::from(*i) / 8.0) >= seconds).unwrap();
        assert!(2f64.powf(f64::from(index - 1) / 8.0) < seconds);
        *expected.entry(index).or_insert(0) += 1;
    }
    assert!(expected.values().sum::<u64>() >= 3, "the three sleeps: {rows:?}");
    let histogram = &families["polo_clickhouse_query_duration_seconds"];
    let (labels, values) = histogram
        .series
        .iter()
        .find(|(labels, _)| labels.iter().any(|(k, v)| k == "query_kind" && v == "Select"))
        .expect("a Select series");
    let (schema, zero_count, buckets) =
        &native[&("polo_clickhouse_query_duration_seconds".to_string(), labels.clone())];
    assert_eq!(*schema, 3);
    assert_eq!((buckets, *zero_count), (&expected, zero), "{rows:?} since {started}");
    assert_eq!(values["_count"], format!("{:?}", (rows.len()) as f64), "native and classic count the same queries");
}
