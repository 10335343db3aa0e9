use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::metrics::MetricFamily;
use crate::metrics::Value;
use crate::sources::collector_runs::config::{CollectorsConfig, Dependency};
use crate::sources::collector_runs::families::map;
use crate::sources::collector_runs::health::Health;

fn run(id: &str, collector: &str, started_s: i64, completed_s: i64, status: &str) -> Run {
    Run {
        run_id: id.into(),
        collector: collector.into(),
        aws_account_id: "111".into(),
        aws_region: "us-east-1".into(),
        started_ms: started_s * 1000,
        completed_ms: completed_s * 1000,
        status: status.into(),
        duration_ms: ((completed_s - started_s) * 1000) as u32,
        events: 5,
        rows: 7,
        error: if status == "succeeded" { String::new() } else { format!("err {id}") },
    }
}

fn key(collector: &str) -> Key {
    (collector.into(), "111".into(), "us-east-1".into())
}

fn cfg() -> CollectorsConfig {
    CollectorsConfig {
        default_expected_interval: Duration::from_secs(600),
        staleness_factor: 2.0,
        expected_intervals: BTreeMap::new(),
        dependencies: BTreeMap::from([(
            "hb".to_string(),
            Dependency { requires: vec!["a".into(), "b".into()], within: Duration::from_secs(1200) },
        )]),
        late_arrival_window: Duration::from_secs(3600),
        forget_after: Duration::from_secs(90 * 86_400),
        max_window_rows: 1000,
    }
}

#[test]
fn folds_runs_in_completion_order() {
    let mut state = RunsState::from_settled(HashMap::new(), 0, 0);
    let view = state.ingest(
        vec![
            run("3", "a", 300, 310, "failed"),
            run("1", "a", 100, 110, "succeeded"),
            run("2", "a", 200, 210, "failed"),
            run("4", "a", 400, 410, "failed"),
        ],
        0,
    );
    let s = &view[&key("a")];
    assert_eq!(s.last_completed_ms, 410_000);
    assert_eq!(s.last_status, "failed");
    assert_eq!(s.consecutive_failures, 3);
    assert_eq!(s.last_success_ms, 110_000);
}

#[test]
fn partial_breaks_a_failure_streak_and_unknown_status_is_kept() {
    let mut state = RunsState::from_settled(HashMap::new(), 0, 0);
    let view = state
        .ingest(vec![run("1", "a", 1, 2, "failed"), run("2", "a", 3, 4, "partial"), run("3", "a", 5, 6, "failed")], 0);
    assert_eq!(view[&key("a")].consecutive_failures, 1);
    let view = state.ingest(vec![run("4", "a", 7, 8, "weird")], 0);
    assert_eq!(view[&key("a")].last_status, "weird");
    assert_eq!(view[&key("a")].consecutive_failures, 0);
    assert_eq!(view[&key("a")].last_success_ms, 0, "never succeeded");
}

#[test]
fn settling_keeps_results_identical_and_counts_each_run_once() {
    let runs = vec![
        run("1", "a", 100, 110, "succeeded"),
        run("2", "a", 200, 210, "failed"),
        run("3", "a", 300, 310, "failed"),
    ];
    let mut all_open = RunsState::from_settled(HashMap::new(), 0, 0);
    let expected = all_open.ingest(runs.clone(), 0);
    let mut settling = RunsState::from_settled(HashMap::new(), 0, 0);
    settling.ingest(runs.clone(), 250_000);
    assert_eq!(settling.settled_until_ms, 250_000);
    // The next window query returns only runs that started at/after the settle point.
    let later: Vec<Run> = runs.iter().filter(|r| r.started_ms >= 250_000).cloned().collect();
    let view = settling.ingest(later, 250_000);
    assert_eq!(view, expected);
    assert_eq!(settling.runs_total()[&("a".to_string(), "failed".to_string())], 2);
    assert_eq!(settling.runs_total()[&("a".to_string(), "succeeded".to_string())], 1);
}

#[test]
fn runs_completed_before_start_are_not_counted() {
    let mut state = RunsState::from_settled(HashMap::new(), 0, 200_000);
    state.ingest(vec![run("1", "a", 100, 110, "succeeded"), run("2", "a", 200, 210, "failed")], 0);
    assert_eq!(state.runs_total().get(&("a".to_string(), "succeeded".to_string())), None);
    assert_eq!(state.runs_total()[&("a".to_string(), "failed".to_string())], 1);
}

#[test]
fn single_line_flattens_and_bounds_text() {
    assert_eq!(single_line("a\n  b\r\n\t\"c\"", 100), "a b \"c\"");
    let long = "é".repeat(500);
    let cut = single_line(&long, 10);
    assert_eq!(cut.chars().count(), 10);
    assert!(cut.ends_with('…'));
}

fn sample<'a>(families: &'a [MetricFamily], name: &str, labels: &[(&str, &str)]) -> Option<&'a Value> {
    families
        .iter()
        .find(|f| f.name() == name)?
        .samples()
        .iter()
        .find(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| &s.value)
}

#[test]
fn maps_state_to_families_and_status() {
    let mut state = RunsState::from_settled(HashMap::new(), 0, 0);
    let now_s = 10_000;
    let view = state.ingest(
        vec![
            run("1", "a", now_s - 300, now_s - 290, "succeeded"),
            run("2", "b", now_s - 5000, now_s - 4990, "succeeded"),
            run("3", "b", now_s - 100, now_s - 90, "failed"),
            run("4", "c", now_s - 100, now_s - 90, "mystery"),
        ],
        0,
    );
    let m = map(&view, state.runs_total(), &cfg(), now_s * 1000);
    let f = &m.families;
    assert_eq!(
        sample(f, "polo_collector_last_run_status", &[("collector", "b"), ("status", "failed")]),
        Some(&Value::Gauge(1.0))
    );
    assert_eq!(
        sample(f, "polo_collector_last_run_status", &[("collector", "b"), ("status", "succeeded")]),
        Some(&Value::Gauge(0.0))
    );
    assert_eq!(
        sample(f, "polo_collector_last_run_status", &[("collector", "c"), ("status", "mystery")]),
        Some(&Value::Gauge(1.0))
    );
    assert_eq!(
        sample(f, "polo_collector_last_error_info", &[("collector", "b"), ("error", "err 3")]),
        Some(&Value::Gauge(1.0))
    );
    assert!(sample(f, "polo_collector_last_error_info", &[("collector", "a")]).is_none());
    assert_eq!(
        sample(f, "polo_collector_runs", &[("collector", "b"), ("status", "partial")]),
        Some(&Value::Counter(0.0))
    );
    assert_eq!(
        sample(f, "polo_collector_expected_interval_seconds", &[("collector", "hb")]),
        Some(&Value::Gauge(600.0))
    );
    // b's last success is 4990 s old: older than 2 × 600 s, so dependencies of hb are not ready.
    assert_eq!(sample(f, "polo_collector_dependencies_ready", &[("collector", "hb")]), Some(&Value::Gauge(0.0)));
    let health: Vec<(&str, Health)> = m.collectors.iter().map(|c| (c.name.as_str(), c.health)).collect();
    assert_eq!(health, vec![("a", Health::Green), ("b", Health::Red), ("c", Health::Red)]);
    assert_eq!(
        sample(f, "polo_account_last_scan_timestamp_seconds", &[("aws_account_id", "111")]),
        Some(&Value::Gauge((now_s - 290) as f64))
    );
    // 600 s interval, factor 2: the exported thresholds are the ones the status used.
    assert_eq!(sample(f, "polo_collector_late_threshold_seconds", &[("collector", "a")]), Some(&Value::Gauge(600.0)));
    assert_eq!(sample(f, "polo_collector_stale_threshold_seconds", &[("collector", "a")]), Some(&Value::Gauge(1200.0)));
}

#[test]
fn keys_older_than_forget_after_are_dropped() {
    let mut state = RunsState::from_settled(HashMap::new(), 0, 0);
    state.ingest(vec![run("1", "old", 10, 20, "succeeded"), run("2", "new", 500, 510, "succeeded")], 1_000_000);
    state.forget_before(100_000);
    let view = state.ingest(vec![], 1_000_000);
    assert!(view.contains_key(&key("new")) && !view.contains_key(&key("old")));
}
