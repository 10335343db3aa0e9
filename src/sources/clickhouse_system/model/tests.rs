use super::*;
use crate::metrics::Value;
use std::collections::BTreeMap;

fn log_row(replica: &str, kind: &str, code: i32, queries: u64, sum_ms: u64, cumulative: &[u64]) -> QueryLogRow {
    QueryLogRow {
        replica: replica.into(),
        query_kind: kind.into(),
        exception_code: code,
        queries,
        duration_ms_sum: sum_ms,
        cumulative: cumulative.to_vec(),
        zero_ms: 0,
        native_index: vec![],
        native_count: vec![],
    }
}

#[test]
fn histogram_accumulates_windows_as_per_bucket_counts() {
    let mut stats = QueryStats::new(vec![0.1, 1.0]);
    // Window 1: 3 queries, 2 <= 0.1 s, 3 <= 1 s. Window 2: 2 queries above 1 s.
    stats.apply(&[log_row("n1", "Select", 0, 3, 700, &[2, 3])], 1);
    stats.apply(&[log_row("n1", "Select", 0, 2, 5000, &[0, 0])], 2);
    let h = &stats.histograms[&("n1".to_string(), "Select".to_string())];
    assert_eq!(h.buckets, vec![2, 1, 2]);
    assert_eq!(h.count, 5);
    assert!((h.sum_seconds - 5.7).abs() < 1e-9);
}

#[test]
fn native_buckets_accumulate_and_reach_the_family() {
    let mut stats = QueryStats::new(vec![1.0]);
    // Window 1: 0 ms, 100 ms, 2 × 1 s. Window 2: 100 ms and 3 s. Schema 3: 0.1 s is in bucket
    // ceil(8 log2 0.1) = -26, 1 s in 0, 3 s in ceil(8 log2 3) = 13.
    let row = |queries, sum_ms, cumulative: &[u64], zero_ms, native: &[(i32, u64)]| QueryLogRow {
        zero_ms,
        native_index: native.iter().map(|(i, _)| *i).collect(),
        native_count: native.iter().map(|(_, n)| *n).collect(),
        ..log_row("n1", "Select", 0, queries, sum_ms, cumulative)
    };
    stats.apply(&[row(4, 2100, &[4], 1, &[(-26, 1), (0, 2), (5, 0)])], 1);
    stats.apply(&[row(2, 3100, &[1], 0, &[(-26, 1), (13, 1)])], 2);
    let h = &stats.histograms[&("n1".to_string(), "Select".to_string())];
    assert_eq!(h.native, BTreeMap::from([(-26, 2), (0, 2), (13, 1)]), "a zero count adds no bucket");
    assert_eq!(h.zero, 1);
    let fams = families(&Snapshot::default(), &stats);
    let hist = fams.iter().find(|f| f.def() == &QUERY_DURATION).unwrap();
    let Value::Histogram { count, native: Some(native), .. } = &hist.samples()[0].value else { panic!("native") };
    assert_eq!(*count, 6);
    assert_eq!((native.schema, native.zero_count), (NATIVE_SCHEMA, 1));
    assert_eq!(native.positive, vec![(-26, 2), (0, 2), (13, 1)]);
    assert_eq!(native.positive.iter().map(|(_, n)| n).sum::<u64>() + native.zero_count, *count);
}

#[test]
fn failures_are_counted_by_class_not_in_the_histogram() {
    let mut stats = QueryStats::new(vec![1.0]);
    stats.apply(
        &[
            log_row("n1", "Select", 60, 2, 0, &[2]),
            log_row("n1", "Select", 241, 1, 0, &[1]),
            log_row("n1", "Insert", 9999, 4, 0, &[4]),
        ],
        1,
    );
    assert!(stats.histograms.is_empty());
    let fams = families(&Snapshot::default(), &stats);
    let failed = fams.iter().find(|f| f.def() == &FAILED_QUERIES).unwrap();
    let get = |class: &str| {
        failed
            .samples()
            .iter()
            .find(|s| s.labels.iter().any(|(k, v)| *k == "class" && v == class))
            .map(|s| s.value.clone())
    };
    assert_eq!(get("query"), Some(Value::Counter(2.0)));
    assert_eq!(get("memory"), Some(Value::Counter(1.0)));
    assert_eq!(get("other"), Some(Value::Counter(4.0)));
    assert_eq!(get("timeout"), Some(Value::Counter(0.0)), "every class present");
}

#[test]
fn quantile_interpolates_like_histogram_quantile() {
    let bounds = [0.1, 0.5, 1.0];
    // 10 queries: 5 in (0, 0.1], 4 in (0.1, 0.5], 1 in (0.5, 1].
    let buckets = [5, 4, 1, 0];
    assert!((quantile(&bounds, &buckets, 0.5).unwrap() - 0.1).abs() < 1e-9);
    assert!((quantile(&bounds, &buckets, 0.7).unwrap() - 0.3).abs() < 1e-9);
    assert!((quantile(&bounds, &buckets, 0.95).unwrap() - 0.75).abs() < 1e-9);
    assert_eq!(quantile(&bounds, &[0, 0, 0, 3], 0.5), Some(1.0), "+Inf bucket gives the last bound");
    assert_eq!(quantile(&bounds, &[0, 0, 0, 0], 0.5), None);
}

#[test]
fn recent_quantile_forgets_old_windows() {
    let mut stats = QueryStats::new(vec![0.1, 10.0]);
    stats.apply(&[log_row("n", "Select", 0, 10, 0, &[0, 10])], 0);
    stats.apply(&[log_row("n", "Select", 0, 10, 0, &[10, 10])], 400_000_000);
    // The first window is more than five minutes older than the second.
    assert!(stats.recent_quantile(0.95).unwrap() <= 0.1);
}

#[test]
fn status_section_reports_disk_and_latency() {
    let snapshot = Snapshot {
        disks: vec![DiskRow {
            replica: "n".into(),
            disk: "default".into(),
            disk_type: "Local".into(),
            free: 20_000_000_000,
            total: 100_000_000_000,
            unreserved: 0,
            keep_free: 0,
        }],
        processes: vec![ProcessesRow { replica: "n".into(), active: 3, longest_seconds: 1.5 }],
        ..Snapshot::default()
    };
    let mut stats = QueryStats::new(vec![0.1, 0.2]);
    stats.apply(&[log_row("n", "Select", 0, 100, 0, &[100, 100])], 1);
    let s = status(&snapshot, &stats);
    assert_eq!(s.disk_used_gb, Some(80.0));
    assert!(s.disks_space_unknown.is_empty());
    assert_eq!(s.disk_used_ratio_max, Some(0.8));
    assert_eq!(s.query_p95_ms, Some(95.0));
    assert_eq!(s.active_queries, 3);
}

fn disk(replica: &str, name: &str, kind: &str, free: u64, total: u64) -> DiskRow {
    DiskRow {
        replica: replica.into(),
        disk: name.into(),
        disk_type: kind.into(),
        free,
        total,
        unreserved: free,
        keep_free: 0,
    }
}

fn family<'a>(fams: &'a [MetricFamily], def: &Def) -> &'a MetricFamily {
    fams.iter().find(|f| f.def() == def).unwrap()
}

fn label_values(f: &MetricFamily, label: &str) -> Vec<(String, f64)> {
    f.samples()
        .iter()
        .map(|s| {
            let v = s.labels.iter().find(|(k, _)| *k == label).map(|(_, v)| v.clone()).unwrap_or_default();
            let x = match s.value {
                Value::Gauge(x) | Value::Counter(x) => x,
                _ => f64::NAN,
            };
            (v, x)
        })
        .collect()
}

/// system.disks on ClickHouse Cloud / S3 disks: 18446744073709551615 for what the disk cannot tell.
#[test]
fn object_storage_sentinel_never_reaches_a_value_or_ratio() {
    let snapshot = Snapshot {
        disks: vec![
            disk("n", "default", "Local", 20_000_000_000, 100_000_000_000),
            disk("n", "s3", "ObjectStorage", u64::MAX, u64::MAX),
            // Only one of the two unknown: still no ratio can be computed.
            disk("n", "half", "ObjectStorage", 5, u64::MAX),
        ],
        ..Snapshot::default()
    };
    let stats = QueryStats::new(vec![1.0]);
    let fams = families(&snapshot, &stats);
    for def in [&DISK_FREE, &DISK_TOTAL, &DISK_UNRESERVED, &DISK_KEEP_FREE] {
        for (_, v) in label_values(family(&fams, def), "disk") {
            assert!(v < 1e19, "{} carries the sentinel: {v}", def.name);
        }
    }
    assert_eq!(label_values(family(&fams, &DISK_TOTAL), "disk"), vec![("default".into(), 1e11)]);
    assert_eq!(label_values(family(&fams, &DISK_FREE), "disk"), vec![("default".into(), 2e10)]);
    let info = label_values(family(&fams, &DISK_INFO), "space_known");
    assert_eq!(info, vec![("true".into(), 1.0), ("false".into(), 1.0), ("false".into(), 1.0)]);
    let types: Vec<String> = label_values(family(&fams, &DISK_INFO), "type").into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["Local", "ObjectStorage", "ObjectStorage"]);
    let s = status(&snapshot, &stats);
    assert_eq!(s.disk_used_gb, Some(80.0));
    assert_eq!(s.disk_used_ratio_max, Some(0.8));
    assert_eq!(s.disks_space_unknown, ["n/s3", "n/half"]);

    // Only object storage (ClickHouse Cloud): no figure at all rather than 0.
    let cloud =
        Snapshot { disks: vec![disk("c", "s3disk", "ObjectStorage", u64::MAX, u64::MAX)], ..Snapshot::default() };
    let s = status(&cloud, &stats);
    assert_eq!(s.disk_used_gb, None);
    assert_eq!(s.disk_used_ratio_max, None);
    assert!(family(&families(&cloud, &stats), &DISK_TOTAL).samples().is_empty());
}

fn version(replica: &str, index: u32) -> VersionRow {
    VersionRow { replica: replica.into(), replica_index: index, version: "v24.8.4.1-lts".into(), uptime_seconds: 7 }
}

fn expected(shard: u32, replica: u32, host: &str) -> ClusterReplicaRow {
    ClusterReplicaRow { shard_num: shard, replica_num: replica, host_name: host.into(), port: 9000 }
}

#[test]
fn cluster_replica_counts_with_one_replica_missing() {
    // 2 shards × 2 replicas; clusterAllReplicas numbers them 1..4 by shard then replica, and
    // replica 3 (shard 2, replica 1) was skipped as unavailable.
    let snapshot = Snapshot {
        versions: vec![version("ch-1", 1), version("ch-2", 2), version("ch-4", 4)],
        cluster: Some(vec![
            expected(1, 1, "ch-1.db"),
            expected(1, 2, "ch-2.db"),
            expected(2, 1, "ch-3.db"),
            expected(2, 2, "ch-4.db"),
        ]),
        tables_up: vec![("disks", true), ("query_log", false)],
        ..Snapshot::default()
    };
    let fams = families(&snapshot, &QueryStats::new(vec![1.0]));
    assert_eq!(
        label_values(family(&fams, &CLUSTER_REPLICAS), "state"),
        vec![("expected".into(), 4.0), ("answering".into(), 3.0)]
    );
    assert_eq!(
        label_values(family(&fams, &CLUSTER_REPLICA_UP), "address"),
        vec![
            ("ch-1.db:9000".into(), 1.0),
            ("ch-2.db:9000".into(), 1.0),
            ("ch-3.db:9000".into(), 0.0),
            ("ch-4.db:9000".into(), 1.0)
        ]
    );
    assert_eq!(
        label_values(family(&fams, &SYSTEM_TABLE_UP), "table"),
        vec![("disks".into(), 1.0), ("query_log".into(), 0.0)]
    );
    // Single node: no cluster families.
    let single =
        families(&Snapshot { versions: vec![version("n", 1)], ..Snapshot::default() }, &QueryStats::new(vec![1.0]));
    assert!(single.iter().all(|f| f.def() != &CLUSTER_REPLICAS && f.def() != &CLUSTER_REPLICA_UP));
}
