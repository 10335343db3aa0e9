use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::metrics::MetricFamily;
use crate::metrics::Value;
use crate::sources::collector_runs::config::{CollectorsConfig, Dependency, PerKeySeries};
use crate::sources::collector_runs::families::map;
use crate::sources::collector_runs::health::Health;
use crate::sources::collector_runs::output::CollapseRules;

/// One run, as a row of the table (times in seconds).
#[derive(Clone)]
struct Run {
    collector: &'static str,
    account: &'static str,
    started_s: i64,
    completed_s: i64,
    status: &'static str,
    events: u32,
}

fn run(collector: &'static str, started_s: i64, completed_s: i64, status: &'static str) -> Run {
    Run { collector, account: "111", started_s, completed_s, status, events: 1000 }
}

/// What the source's SQL computes per key over a set of runs (a reference written independently
/// of `merge`: sort by completed_at, take the last, count failures after the last non-failure).
fn aggregate(runs: &[Run], counting_since_s: i64) -> Vec<(Key, Agg)> {
    let mut by_key: BTreeMap<Key, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by_key.entry((r.collector.into(), r.account.into(), "us-east-1".into())).or_default().push(r);
    }
    by_key
        .into_iter()
        .map(|(key, mut rs)| {
            rs.sort_by_key(|r| r.completed_s);
            let last = rs.last().unwrap();
            let ms = |s: i64| s * 1000;
            let last_non =
                |status: &str| rs.iter().filter(|r| r.status != status).map(|r| ms(r.completed_s)).max().unwrap_or(0);
            let after = |status: &str| {
                let breaker = last_non(status);
                rs.iter().filter(|r| r.status == status && ms(r.completed_s) > breaker).count() as u64
            };
            let last_non_failed = last_non("failed");
            let mut counted: BTreeMap<String, u64> = BTreeMap::new();
            for r in rs.iter().filter(|r| r.completed_s >= counting_since_s) {
                *counted.entry(r.status.into()).or_default() += 1;
            }
            let agg = Agg {
                last_completed_ms: ms(last.completed_s),
                last_status: last.status.into(),
                last_duration_ms: ((last.completed_s - last.started_s) * 1000) as u32,
                last_events: 5,
                last_rows: 7,
                last_error: if last.status == "succeeded" {
                    Text::default()
                } else {
                    format!("err {}", last.started_s).into()
                },
                last_success_ms: rs
                    .iter()
                    .filter(|r| r.status == "succeeded")
                    .map(|r| ms(r.completed_s))
                    .max()
                    .unwrap_or(0),
                last_non_failed_ms: last_non_failed,
                failed_after: after("failed"),
                last_non_partial_ms: last_non("partial"),
                partial_after: after("partial"),
                success_events: rs.iter().filter(|r| r.status == "succeeded").map(|r| r.events).collect(),
                counted: counted.into_iter().map(|(s, n)| (s.into(), n)).collect(),
            };
            (key, agg)
        })
        .collect()
}

/// A run as the window keeps it (read from a part).
fn window_run(r: &Run) -> crate::sources::collector_runs::open::OpenRun {
    crate::sources::collector_runs::open::OpenRun {
        started_ms: r.started_s * 1000,
        completed_ms: r.completed_s * 1000,
        status: r.status.into(),
        duration_ms: 1,
        events: r.events,
        rows: 1,
        error: Text::default(),
    }
}

/// Splits runs at `at_s` by started_at, as a settling/open read does.
fn split(runs: &[Run], from_s: i64, at_s: i64) -> (Vec<Run>, Vec<Run>) {
    let in_range: Vec<Run> = runs.iter().filter(|r| r.started_s >= from_s).cloned().collect();
    in_range.into_iter().partition(|r| r.started_s < at_s)
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
        per_key_series: PerKeySeries::All,
        per_key_series_max_keys: 1000,
        collapse: CollapseRules::default(),
        default_run_timeout: Duration::from_secs(900),
        run_timeouts: BTreeMap::from([("y".to_string(), Duration::from_secs(60))]),
    }
}

fn states(state: &mut RunsState) -> BTreeMap<Key, KeyState> {
    state.view().into_iter().map(|(k, s)| (k.clone(), s.clone())).collect()
}

/// Every run read in one range, nothing settled.
fn read_all(runs: &[Run]) -> RunsState {
    let mut state = RunsState::from_settled(Settled::new(0, 0, CollapseRules::default()));
    state.ingest(vec![], aggregate(runs, 0), 0);
    state
}

#[test]
fn one_range_gives_the_latest_run_and_the_failure_streak() {
    let mut state = read_all(&[
        run("a", 300, 310, "failed"),
        run("a", 100, 110, "succeeded"),
        run("a", 200, 210, "failed"),
        run("a", 400, 410, "failed"),
    ]);
    let s = &states(&mut state)[&key("a")];
    assert_eq!(s.last_completed_ms, 410_000);
    assert_eq!(s.last_status, "failed");
    assert_eq!(s.consecutive_failures, 3);
    assert_eq!(s.last_success_ms, 110_000);
}

#[test]
fn partial_breaks_a_failure_streak_and_unknown_status_is_kept() {
    let runs = vec![run("a", 1, 2, "failed"), run("a", 3, 4, "partial"), run("a", 5, 6, "failed")];
    assert_eq!(states(&mut read_all(&runs))[&key("a")].consecutive_failures, 1);
    let mut more = runs.clone();
    more.push(run("a", 7, 8, "weird"));
    let s = &states(&mut read_all(&more))[&key("a")];
    assert_eq!((s.last_status.as_str(), s.consecutive_failures, s.last_success_ms), ("weird", 0, 0));
}

#[test]
fn partial_streaks_count_like_failure_streaks() {
    let runs = vec![
        run("a", 1, 2, "partial"),
        run("a", 3, 4, "succeeded"),
        run("a", 5, 6, "partial"),
        run("a", 7, 8, "partial"),
        run("a", 9, 10, "partial"),
    ];
    let s = &states(&mut read_all(&runs))[&key("a")];
    assert_eq!((s.consecutive_partials, s.consecutive_failures), (3, 0));
    let mut more = runs.clone();
    more.push(run("a", 11, 12, "failed"));
    let s = &states(&mut read_all(&more))[&key("a")];
    assert_eq!((s.consecutive_partials, s.consecutive_failures), (0, 1), "a failure breaks the partial streak");
}

/// A history folded chunk by chunk (the initial load) and then read as settling + open parts
/// (scrapes) gives the same state as one aggregate over everything, at every split point.
#[test]
fn chunked_folding_equals_one_aggregate() {
    let statuses = [
        "succeeded",
        "failed",
        "failed",
        "partial",
        "failed",
        "failed",
        "failed",
        "succeeded",
        "failed",
        "partial",
        "partial",
        "partial",
    ];
    let mut runs = Vec::new();
    for (i, status) in statuses.iter().enumerate() {
        let s = 100 * i as i64;
        runs.push(run("a", s, s + 10, status));
        let mut b = run("b", s + 5, s + 50, if i % 3 == 0 { "failed" } else { "succeeded" });
        b.events = if i >= 8 { 3 } else { 900 + 50 * i as u32 };
        runs.push(b);
    }
    runs.push(run("only_early", 20, 30, "failed"));
    runs.push(run("only_late", 850, 860, "succeeded"));
    let expected = states(&mut read_all(&runs));
    assert_eq!(expected[&key("b")].output.collapsed_runs, 3, "b's last three successes collapsed");
    for chunk in [1, 50, 120, 333, 1000] {
        for window_at in [0, 250, 420, 700, 900] {
            let mut settled = Settled::new(0, 0, CollapseRules::default());
            let mut from = 0;
            while from < window_at {
                let end = (from + chunk).min(window_at);
                let (part, _) = split(&runs, from, end);
                settled.fold(aggregate(&part, 0), end * 1000);
                from = end;
            }
            let mut state = RunsState::from_settled(settled);
            let (settling, open) = split(&runs, window_at, window_at + 100);
            state.ingest(aggregate(&settling, 0), aggregate(&open, 0), (window_at + 100) * 1000);
            assert_eq!(states(&mut state), expected, "chunk {chunk}, window from {window_at}");
        }
    }
}

#[test]
fn each_run_is_counted_once_however_often_it_is_read() {
    let runs = vec![run("a", 100, 110, "succeeded"), run("a", 200, 210, "failed"), run("a", 300, 310, "failed")];
    let mut state = RunsState::from_settled(Settled::new(0, 0, CollapseRules::default()));
    // Two reads of the same open window, then one that settles the first run.
    for _ in 0..2 {
        state.ingest(vec![], aggregate(&runs, 150), 0);
    }
    let (settling, open) = split(&runs, 0, 150);
    state.ingest(aggregate(&settling, 150), aggregate(&open, 150), 150_000);
    let (_, open) = split(&runs, 150, 150);
    state.ingest(vec![], aggregate(&open, 150), 150_000);
    let total = state.runs_total();
    assert_eq!(total.get(&("a".to_string(), "succeeded".to_string())), None, "completed before the exporter started");
    assert_eq!(total[&("a".to_string(), "failed".to_string())], 2);
}

#[test]
fn a_key_without_open_runs_is_its_settled_state_and_window_runs_are_folded_in() {
    let mut settled = Settled::new(0, 0, CollapseRules::default());
    settled.fold(aggregate(&[run("a", 1, 2, "succeeded"), run("b", 1, 2, "succeeded")], 0), 100_000);
    let mut state = RunsState::from_settled(settled);
    state.ingest(vec![], aggregate(&[run("b", 200, 210, "failed")], 0), 100_000);
    let settled_a = state.settled.keys.iter().find(|(k, _)| k.0 == "a").unwrap().1.state.clone().unwrap();
    let first = states(&mut state);
    assert_eq!(first[&key("a")], settled_a, "no window run: the settled state itself");
    assert_eq!(first[&key("b")].consecutive_failures, 1);
    assert_eq!(first[&key("b")].last_status, "failed");
    assert_eq!(states(&mut state), first, "a second view (from the kept states) is the same");
    // A window aggregate that goes away leaves the settled state again.
    state.ingest(vec![], vec![], 100_000);
    assert_eq!(states(&mut state)[&key("b")].last_status, "succeeded");
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

fn count(families: &[MetricFamily], name: &str) -> usize {
    families.iter().find(|f| f.name() == name).map_or(0, |f| f.samples().len())
}

#[test]
fn maps_state_to_families_and_status() {
    let now_s = 10_000;
    let mut state = read_all(&[
        run("a", now_s - 300, now_s - 290, "succeeded"),
        run("b", now_s - 5000, now_s - 4990, "succeeded"),
        run("b", now_s - 100, now_s - 90, "failed"),
        run("c", now_s - 100, now_s - 90, "mystery"),
    ]);
    let runs_total = state.runs_total().clone();
    let m = map(&state.view(), &runs_total, &cfg(), now_s * 1000);
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
        sample(f, "polo_collector_last_error_info", &[("collector", "b"), ("error", &format!("err {}", now_s - 100))]),
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
    // Rollups: one key each.
    assert_eq!(sample(f, "polo_collector_keys", &[("collector", "b"), ("health", "stale")]), Some(&Value::Gauge(1.0)));
    assert_eq!(
        sample(f, "polo_collector_keys", &[("collector", "b"), ("health", "healthy")]),
        Some(&Value::Gauge(0.0))
    );
    assert_eq!(
        sample(f, "polo_collector_oldest_success_timestamp_seconds", &[("collector", "b")]),
        Some(&Value::Gauge((now_s - 4990) as f64))
    );
    assert_eq!(sample(f, "polo_collector_max_consecutive_failures", &[("collector", "b")]), Some(&Value::Gauge(1.0)));
    assert_eq!(sample(f, "polo_collector_runs_loading", &[]), Some(&Value::Gauge(0.0)));
}

/// Many keys: rollups cover every key whatever `per_key_series` says; the per-key families
/// follow the mode and the bound, least healthy keys first, and the bound's drops are counted.
#[test]
fn per_key_series_modes_and_bound() {
    let now_s = 100_000;
    let accounts: Vec<&'static str> = (0..50).map(|i| &*Box::leak(format!("{:012}", i).into_boxed_str())).collect();
    let mut runs = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        // 40 healthy, 5 stale (succeeded long ago), 5 failing 3 times in a row just now.
        let (started, status) = match i {
            0..=39 => (now_s - 100, "succeeded"),
            40..=44 => (now_s - 5_000, "succeeded"),
            _ => (now_s - 100, "failed"),
        };
        runs.push(Run { collector: "x", account, started_s: started, completed_s: started + 10, status, events: 1000 });
        if i >= 45 {
            runs.push(Run {
                collector: "x",
                account,
                started_s: started - 100,
                completed_s: started - 95,
                status: "succeeded",
                events: 1000,
            });
            for k in 1..3 {
                runs.push(Run {
                    collector: "x",
                    account,
                    started_s: started - k * 10,
                    completed_s: started - k * 10 + 5,
                    status: "failed",
                    events: 0,
                });
            }
        }
    }
    let mut state = read_all(&runs);
    let runs_total = state.runs_total().clone();
    let view = state.view();
    let with = |mode, max| {
        let mut c = cfg();
        c.per_key_series = mode;
        c.per_key_series_max_keys = max;
        map(&view, &runs_total, &c, now_s * 1000).families
    };
    let rollup =
        |f: &[MetricFamily], h: &str| sample(f, "polo_collector_keys", &[("collector", "x"), ("health", h)]).cloned();
    for (mode, max, keys, dropped) in [
        (PerKeySeries::All, 1000, 50, 0.0),
        (PerKeySeries::All, 7, 7, 43.0),
        (PerKeySeries::Unhealthy, 1000, 10, 0.0),
        (PerKeySeries::None, 1000, 0, 0.0),
    ] {
        let f = with(mode, max);
        assert_eq!(count(&f, "polo_collector_last_success_timestamp_seconds"), keys, "{mode:?} {max}");
        assert_eq!(count(&f, "polo_collector_last_run_status"), keys * 3, "{mode:?} {max}");
        assert_eq!(rollup(&f, "healthy"), Some(Value::Gauge(45.0)), "failing keys are healthy by age");
        assert_eq!(rollup(&f, "stale"), Some(Value::Gauge(5.0)));
        assert_eq!(
            sample(&f, "polo_collector_per_key_series_dropped_keys", &[("collector", "x")]),
            Some(&Value::Gauge(dropped))
        );
        assert_eq!(count(&f, "polo_account_last_scan_timestamp_seconds"), 50, "per account, always");
    }
    // Bound of 7: the 5 stale keys, then the 2 with the longest failure streaks.
    let f = with(PerKeySeries::All, 7);
    for account in &accounts[40..45] {
        assert!(sample(&f, "polo_collector_last_success_timestamp_seconds", &[("aws_account_id", account)]).is_some());
    }
    let failing_kept = (45..50)
        .filter(|i| {
            sample(&f, "polo_collector_consecutive_failures", &[("aws_account_id", accounts[*i])])
                == Some(&Value::Gauge(3.0))
        })
        .count();
    assert_eq!(failing_kept, 2);
}

#[test]
fn keys_older_than_forget_after_are_dropped() {
    let mut settled = Settled::new(0, 0, CollapseRules::default());
    settled.fold(aggregate(&[run("old", 10, 20, "succeeded"), run("new", 500, 510, "succeeded")], 0), 1_000_000);
    let mut state = RunsState::from_settled(settled);
    state.forget_before(100_000);
    let view = states(&mut state);
    assert!(view.contains_key(&key("new")) && !view.contains_key(&key("old")));
}

/// Output collapse from fixture runs to families: per key within the per-key bound, and the
/// per-collector rollups over every key, with a per-collector ratio from the config.
#[test]
fn maps_output_collapse_per_key_and_per_collector() {
    let mut runs = Vec::new();
    let mut push = |collector: &'static str, account: &'static str, i: i64, events: u32| {
        let mut r = run(collector, 100 * i, 100 * i + 10, "succeeded");
        r.account = account;
        r.events = events;
        runs.push(r);
    };
    for i in 0..8 {
        push("x", "111", i, if i < 6 { 1_000 } else { 0 }); // collapsed twice
        push("x", "222", i, 800 + 100 * (i as u32 % 3)); // normal variation
        push("x", "333", i, if i < 6 { 4 } else { 0 }); // baseline below min_events
        push("y", "111", i, if i < 6 { 1_000 } else { 400 }); // 40 %: collapsed only under y's ratio 0.5
    }
    let mut cfg = cfg();
    cfg.collapse.ratios.insert("y".into(), 0.5);
    let mut settled = Settled::new(0, 0, cfg.collapse.clone());
    settled.fold(aggregate(&runs, 0), 10_000_000);
    let mut state = RunsState::from_settled(settled);
    let runs_total = state.runs_total().clone();
    let m = map(&state.view(), &runs_total, &cfg, 1_000_000);
    let f = &m.families;
    let key_of =
        |c: &'static str, a: &'static str| [("collector", c), ("aws_account_id", a), ("aws_region", "us-east-1")];
    let runs_of = |c, a| sample(f, "polo_collector_output_collapsed_runs", &key_of(c, a));
    assert_eq!(runs_of("x", "111"), Some(&Value::Gauge(2.0)));
    assert_eq!(runs_of("x", "222"), Some(&Value::Gauge(0.0)));
    assert_eq!(runs_of("x", "333"), Some(&Value::Gauge(0.0)));
    assert_eq!(runs_of("y", "111"), Some(&Value::Gauge(2.0)));
    let rollup = |name, c| sample(f, name, &[("collector", c)]);
    assert_eq!(rollup("polo_collector_output_collapsed_keys", "x"), Some(&Value::Gauge(1.0)));
    assert_eq!(
        rollup("polo_collector_output_baseline_keys", "x"),
        Some(&Value::Gauge(2.0)),
        "333 is too small to judge"
    );
    assert_eq!(rollup("polo_collector_output_collapsed_keys", "y"), Some(&Value::Gauge(1.0)));
    // Durations: every fixture run takes 10 s; timeouts from the config (y's own, x's default).
    assert_eq!(rollup("polo_collector_max_last_run_duration_seconds", "x"), Some(&Value::Gauge(10.0)));
    assert_eq!(rollup("polo_collector_run_timeout_seconds", "x"), Some(&Value::Gauge(900.0)));
    assert_eq!(rollup("polo_collector_run_timeout_seconds", "y"), Some(&Value::Gauge(60.0)));
}

#[test]
fn a_settle_read_holds_at_most_the_runs_asked() {
    let mut state = RunsState::from_settled(Settled::new(0, 0, CollapseRules::default()));
    for i in 0..10 {
        let run = crate::sources::collector_runs::open::OpenRun {
            started_ms: (100 + i) * 1000,
            completed_ms: (200 + i) * 1000,
            status: "succeeded".into(),
            duration_ms: 1,
            events: 1,
            rows: 1,
            error: Text::default(),
        };
        state.add_run(key(&format!("k{i}")), run, 0);
    }
    assert_eq!((state.open_runs, state.keys()), (10, 10));
    assert_eq!(state.settle_end(0, 1_000_000, 10), 1_000_000, "all ten fit");
    assert_eq!(state.settle_end(0, 1_000_000, 4), 104_000, "runs started at 100..103 s are before it");
    assert_eq!(state.settle_end(104_000, 1_000_000, 4), 108_000);
    state.settle(vec![], 104_000, 0);
    assert_eq!((state.open_runs, state.keys()), (6, 6), "settled runs leave the window");
    assert_eq!(state.runs_total().values().sum::<u64>(), 6);
}

/// Runs whose completions interleave across settle steps (a long run that started first, shorter
/// ones that started after it and completed before it): settled by their settle point, the state
/// follows completion order at every step, as the SQL over all of them does. With the boundary
/// on `started_at` alone (a window of 0 here) the failure streak comes out 1 after the first step.
#[test]
fn runs_completing_across_a_settle_step_keep_completion_order() {
    let window_ms = 60_000;
    let runs = [run("k", 100, 150, "failed"), run("k", 110, 115, "succeeded"), run("k", 112, 140, "failed")];
    let mut state = RunsState::from_settled(Settled::new(0, window_ms, CollapseRules::default()));
    for r in &runs {
        state.add_run(key("k"), window_run(r), 0);
    }
    let point = |r: &Run| settle_point_ms(r.started_s * 1000, r.completed_s * 1000, window_ms);
    let mut since = 0;
    for end in [105_000, 120_000, 145_000, 151_000, 500_000] {
        let settling: Vec<Run> = runs.iter().filter(|r| (since..end).contains(&point(r))).cloned().collect();
        state.settle(aggregate(&settling, 0), end, 0);
        since = end;
        let s = &states(&mut state)[&key("k")];
        assert_eq!(
            (s.last_completed_ms, &*s.last_status, s.consecutive_failures, s.last_success_ms),
            (150_000, "failed", 2, 115_000),
            "after settling up to {end}"
        );
    }
    assert_eq!(state.open_runs, 0);
}

#[test]
fn the_settle_point_is_the_completion_at_most_a_window_after_the_start() {
    assert_eq!(settle_point_ms(100, 150, 60), 150, "completed within the window");
    assert_eq!(settle_point_ms(100, 500, 60), 160, "completion past the window: its start plus the window");
    assert_eq!(settle_point_ms(100, 50, 60), 100, "a completion before the start: the start");
    assert_eq!(settle_point_ms(i64::MAX - 1, i64::MAX, 60), i64::MAX, "no overflow");
}

/// Random runs of one key (durations within the window, distinct completions), kept as window
/// runs and settled in random steps: after every step the key's state equals the aggregate of
/// all its runs (the SQL's meaning, `aggregate` above).
#[test]
fn random_runs_settled_in_random_steps_equal_the_aggregate_of_all() {
    let window_ms = 60_000;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for case in 0..500 {
        let mut runs: Vec<Run> = Vec::new();
        let mut completions = std::collections::HashSet::new();
        for _ in 0..(1 + next(12)) {
            let started_s = next(200) as i64;
            let completed_s = started_s + next(59) as i64;
            if completions.insert(completed_s) {
                let status = ["succeeded", "succeeded", "failed", "partial"][next(4) as usize];
                runs.push(Run {
                    collector: "k",
                    account: "111",
                    started_s,
                    completed_s,
                    status,
                    events: next(50) as u32,
                });
            }
        }
        let mut state = RunsState::from_settled(Settled::new(0, window_ms, CollapseRules::default()));
        for r in &runs {
            state.add_run(key("k"), window_run(r), 0);
        }
        let all = KeyState::from_agg(&aggregate(&runs, 0)[0].1, CollapseRules::default().collector("k"));
        let point = |r: &Run| settle_point_ms(r.started_s * 1000, r.completed_s * 1000, window_ms);
        let mut since = 0;
        while since < 300_000 {
            let end = since + 1 + next(40_000) as i64;
            let settling: Vec<Run> = runs.iter().filter(|r| (since..end).contains(&point(r))).cloned().collect();
            state.settle(aggregate(&settling, 0), end, 0);
            since = end;
            let s = &states(&mut state)[&key("k")];
            let view = |s: &KeyState| {
                (
                    s.last_completed_ms,
                    s.last_status.clone(),
                    s.consecutive_failures,
                    s.consecutive_partials,
                    s.last_success_ms,
                    s.output.clone(),
                )
            };
            assert_eq!(view(s), view(&all), "case {case}, settled up to {end}");
        }
    }
}
