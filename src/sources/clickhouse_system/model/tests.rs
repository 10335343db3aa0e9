use super::*;
use crate::metrics::Value;

fn log_row(replica: &str, kind: &str, code: i32, queries: u64, sum_ms: u64, cumulative: &[u64]) -> QueryLogRow {
    QueryLogRow {
        replica: replica.into(),
        query_kind: kind.into(),
        exception_code: code,
        queries,
        duration_ms_sum: sum_ms,
        cumulative: cumulative.to_vec(),
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
    assert_eq!(s.disk_used_gb, 80.0);
    assert_eq!(s.disk_used_ratio_max, Some(0.8));
    assert_eq!(s.query_p95_ms, Some(95.0));
    assert_eq!(s.active_queries, 3);
}
