use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::*;
use crate::sources::collector_runs::config::PerKeySeries;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

fn cfg() -> CollectorsConfig {
    CollectorsConfig {
        default_expected_interval: Duration::from_secs(3600),
        staleness_factor: 2.0,
        expected_intervals: BTreeMap::from([("fast".to_string(), Duration::from_secs(900))]),
        dependencies: BTreeMap::new(),
        late_arrival_window: Duration::from_secs(1200),
        forget_after: Duration::from_secs(90 * 86_400),
        per_key_series: PerKeySeries::All,
        per_key_series_max_keys: 1000,
        collapse: crate::sources::collector_runs::output::CollapseRules::default(),
        default_run_timeout: Duration::from_secs(900),
        run_timeouts: BTreeMap::new(),
    }
}

fn key(collector: &str, account: &str) -> Key {
    (collector.into(), account.into(), "us-east-1".into())
}

/// One run: completed_at (ms) and whether it succeeded.
type Run = (i64, bool);

/// What the history SQL computes per key over runs completed in [from, to).
fn hist_agg(runs: &[Run], from: i64, to: i64, min_gap: i64) -> Option<HistAgg> {
    let inside: Vec<&Run> = runs.iter().filter(|(c, _)| (from..to).contains(c)).collect();
    let first_run_ms = inside.iter().map(|(c, _)| *c).min()?;
    let mut s: Vec<i64> = inside.iter().filter(|(_, ok)| *ok).map(|(c, _)| *c).collect();
    s.sort_unstable();
    let gaps = s.windows(2).filter(|w| w[1] - w[0] > min_gap).map(|w| (w[0], w[1])).collect();
    Some(HistAgg {
        first_run_ms,
        first_success_ms: s.first().copied().unwrap_or(0),
        last_success_ms: s.last().copied().unwrap_or(0),
        gaps,
    })
}

/// The definition, second by second: from the key's first run, a second is bad when the health
/// of the key, with the latest success completed by then, is red. Returns (bad, total) seconds.
/// `runs` sorted by completed_at.
fn reference(runs: &[Run], t: &Thresholds, from: i64, to: i64) -> (f64, f64) {
    let first = runs[0].0;
    let (mut bad, mut total) = (0.0, 0.0);
    let (mut next, mut ls) = (0, 0);
    let mut moment = from;
    while moment < to {
        while next < runs.len() && runs[next].0 <= moment + 500 {
            if runs[next].1 {
                ls = runs[next].0;
            }
            next += 1;
        }
        // Each second [moment, moment + 1 s) is judged at its middle.
        if moment + 500 >= first {
            total += 1.0;
            if t.health(moment + 500 - ls) == Health::Red {
                bad += 1.0;
            }
        }
        moment += 1000;
    }
    (bad, total)
}

fn value(families: &[MetricFamily], name: &str, collector: &str) -> Option<f64> {
    let s = families.iter().find(|f| f.name() == name)?.samples().iter().find(|s| s.labels[0].1 == collector)?;
    match s.value {
        crate::metrics::Value::Gauge(v) | crate::metrics::Value::Counter(v) => Some(v),
        _ => None,
    }
}

fn history(runs: &BTreeMap<Key, Vec<Run>>, start: i64, now: i64, chunk: i64, window: Duration) -> Ledger {
    let mut h = History::new(window, start, now);
    let mut from = start;
    while from < now {
        let to = (from + chunk).min(now);
        let aggs = runs.iter().filter_map(|(k, r)| Some((k.clone(), hist_agg(r, from, to, 1)?))).collect();
        h.fold(aggs, &HashSet::new(), &cfg());
        from = to;
    }
    h.finish::<KeyState>(&[], &HashSet::new(), &cfg())
}

/// Hourly successes over [start, end), except those in `skip`.
fn hourly(start: i64, end: i64, skip: std::ops::Range<i64>) -> Vec<Run> {
    (0..).map(|i| start + i * H).take_while(|c| *c < end).filter(|c| !skip.contains(c)).map(|c| (c, true)).collect()
}

#[test]
fn stale_since_agrees_with_the_health_definition() {
    for (interval, factor) in [(600_000.0, 2.0), (1000.0, 1.5), (333.0, 3.3)] {
        let t = Thresholds { late_ms: interval, stale_ms: interval * factor };
        let ls = 1_000_000;
        let since = stale_since(&t, ls);
        assert_ne!(t.health(since - 1 - ls), Health::Red);
        assert_eq!(t.health(since - ls), Health::Red);
    }
}

#[test]
fn a_ten_hour_gap_in_thirty_days_of_hourly_runs() {
    let now = 1_000 * DAY + 17 * 60_000;
    let start = now - 30 * DAY;
    // Successes every hour from the window's start to half an hour ago, none in the ten hours
    // after day 12: from one success to the next, 10 h, of which 8 h are past the 2 h threshold.
    let gap_from = start + 12 * DAY;
    let runs = hourly(start, now - H / 2, gap_from + 1..gap_from + 10 * H);
    let t = Thresholds::of(&cfg(), "c");
    let (bad, total) = reference(&runs, &t, start, now);
    assert_eq!(total, 720.0 * 3600.0);
    assert!((bad - 8.0 * 3600.0).abs() <= 1.0, "{bad}");
    let all = BTreeMap::from([(key("c", "1"), runs)]);
    for chunk in [DAY, 7 * H, 30 * DAY] {
        let ledger = history(&all, start - 5 * H, now, chunk, Duration::from_secs(30 * 86_400));
        let got = attainment(&ledger, "c", now).unwrap();
        assert!((got - (1.0 - bad / total)).abs() < 1e-6, "chunk {chunk}: {got}");
    }
}

#[test]
fn scrapes_continue_the_history_exactly() {
    let window = Duration::from_secs(30 * 86_400);
    let now = 2_000 * DAY;
    let start = now - 40 * DAY;
    let mut runs = BTreeMap::new();
    // A healthy key, one with gaps, one that never succeeds, one that starts late; a fast collector.
    runs.insert(key("c", "1"), hourly(start, now, 0..0));
    runs.insert(key("c", "2"), hourly(start, now, start + 30 * DAY..start + 36 * DAY + 3 * H));
    runs.insert(key("c", "3"), (0..50).map(|i| (now - 10 * DAY + i * H, false)).collect());
    runs.insert(key("c", "4"), hourly(now - 3 * DAY, now, now - 2 * DAY..now - DAY));
    runs.insert(
        key("fast", "1"),
        (0..)
            .map(|i| start + i * 900_000)
            .take_while(|c| *c < now)
            .filter(|c| c % (5 * H) > H)
            .map(|c| (c, true))
            .collect(),
    );
    let split = now - 5 * DAY;
    let before: BTreeMap<Key, Vec<Run>> = runs
        .iter()
        .map(|(k, r)| (k.clone(), r.iter().copied().filter(|(c, _)| *c < split).collect::<Vec<_>>()))
        .filter(|(_, r): &(Key, Vec<Run>)| !r.is_empty())
        .collect();
    let mut ledger = history(&before, start, split, DAY, window);
    // Then a scrape every minute, each seeing the runs completed by then.
    let mut moment = split;
    while moment < now {
        moment += 60_000;
        let states: Vec<(Key, KeyState)> = runs
            .iter()
            .filter_map(|(k, r)| {
                let done = &r[..r.partition_point(|(c, _)| *c <= moment)];
                let last = done.last()?.0;
                let ls = done.iter().rev().find(|(_, ok)| *ok).map_or(0, |(c, _)| *c);
                Some((k.clone(), state(last, ls)))
            })
            .collect();
        let view: Vec<(&Key, &KeyState)> = states.iter().map(|(k, s)| (k, s)).collect();
        ledger.observe(&view, &HashSet::new(), &cfg(), moment);
    }
    let direct = history(&runs, start, now, DAY, window);
    for collector in ["c", "fast"] {
        let t = Thresholds::of(&cfg(), collector);
        let (mut bad, mut total) = (0.0, 0.0);
        for (_, r) in runs.iter().filter(|(k, _)| k.0 == collector) {
            let (b, a) = reference(r, &t, now - 30 * DAY, now);
            bad += b;
            total += a;
        }
        let want = 1.0 - bad / total;
        let got = attainment(&ledger, collector, now).unwrap();
        let again = attainment(&direct, collector, now).unwrap();
        assert!((got - want).abs() < 1e-5, "{collector}: incremental {got}, definition {want}");
        assert!((again - want).abs() < 1e-5, "{collector}: history {again}, definition {want}");
        assert!(want < 1.0, "{collector}: the fixture has stale time");
    }
    // The counters cover the scrapes only (since the exporter started, here at `split`).
    let c = &ledger.collectors["c"];
    // Keys 1, 2 and 3 for the 5 days, key 4 from its first run 3 days ago.
    assert_eq!(c.key_ms_total, 3 * 5 * DAY + 3 * DAY);
    assert!(c.stale_ms_total > 0);
}

fn state(last_completed_ms: i64, last_success_ms: i64) -> KeyState {
    KeyState {
        last_completed_ms,
        last_status: if last_success_ms == last_completed_ms { "succeeded" } else { "failed" }.into(),
        last_duration_ms: 0,
        last_events: 0,
        last_rows: 0,
        last_error: Default::default(),
        last_success_ms,
        consecutive_failures: 0,
        consecutive_partials: 0,
        output: Default::default(),
    }
}

#[test]
fn the_window_slides_and_forgets() {
    let window = Duration::from_secs(30 * 86_400);
    let t0 = 500 * DAY;
    let k = key("c", "1");
    let none = HashSet::new();
    // Never succeeded for its first 10 hours (stale), then a success every hour.
    let mut ledger = History::new(window, t0, t0).finish::<KeyState>(&[], &none, &cfg());
    ledger.observe(&[(&k, &state(t0, 0))], &none, &cfg(), t0 + 10 * H - 1);
    let mut moment = t0 + 10 * H;
    while moment <= t0 + 45 * DAY {
        ledger.observe(&[(&k, &state(moment, moment))], &none, &cfg(), moment);
        if moment == t0 + 20 * DAY {
            let want = 1.0 - 10.0 / (20.0 * 24.0);
            assert!((attainment(&ledger, "c", moment).unwrap() - want).abs() < 1e-9);
        }
        // The window's start in the middle of the bad hours: the oldest bucket pro rata.
        if moment == t0 + 30 * DAY + 5 * H {
            let start = moment + H / 2 - 30 * DAY;
            ledger.observe(&[(&k, &state(moment, moment))], &none, &cfg(), moment + H / 2);
            let got = attainment(&ledger, "c", moment + H / 2).unwrap();
            let want = 1.0 - (t0 + 10 * H - start) as f64 / (30.0 * DAY as f64);
            assert!((got - want).abs() < 1e-9, "{got} {want}");
        }
        moment += H;
    }
    assert_eq!(attainment(&ledger, "c", t0 + 45 * DAY), Some(1.0), "the bad hours left the window");
    assert_eq!(ledger.collectors["c"].stale_ms_total, 10 * H, "the counter keeps them");
}

#[test]
fn keys_of_excluded_accounts_and_gone_keys_do_not_count() {
    let now = 700 * DAY;
    let mut ledger = History::new(Duration::from_secs(30 * 86_400), now - DAY, now - DAY).finish::<KeyState>(
        &[],
        &HashSet::new(),
        &cfg(),
    );
    let (a, b) = (key("c", "scanned"), key("c", "disabled"));
    let excluded = HashSet::from(["disabled".to_string()]);
    let fresh = state(now - DAY, now - DAY);
    let old = state(now - 20 * DAY, now - 20 * DAY);
    ledger.observe(&[(&a, &fresh), (&b, &old)], &excluded, &cfg(), now - DAY);
    ledger.observe(&[(&a, &state(now - DAY + H, now - DAY + H)), (&b, &old)], &excluded, &cfg(), now - DAY + H);
    assert_eq!(attainment(&ledger, "c", now - DAY + H), Some(1.0));
    assert_eq!(ledger.tracked_keys(), 1);
    ledger.observe(&[(&b, &old)], &HashSet::new(), &cfg(), now + H);
    assert_eq!(ledger.tracked_keys(), 1, "a is gone, b is counted now");
}

#[test]
fn families_have_objectives_and_counters() {
    let now = 800 * DAY;
    let slo = SloConfig { objectives: BTreeMap::from([("named".to_string(), 0.99)]), ..SloConfig::default() };
    let mut ledger =
        History::new(slo.window, now - 5 * H, now - 5 * H).finish::<KeyState>(&[], &HashSet::new(), &cfg());
    let k = key("c", "1");
    ledger.observe(&[(&k, &state(now - 4 * H, now - 4 * H))], &HashSet::new(), &cfg(), now - H);
    ledger.observe(&[(&k, &state(now - 4 * H, now - 4 * H))], &HashSet::new(), &cfg(), now);
    let fams = families(&ledger, &slo, now);
    assert_eq!(value(&fams, "polo_collector_slo_objective_ratio", "named"), Some(0.99));
    assert_eq!(value(&fams, "polo_collector_slo_objective_ratio", "c"), Some(DEFAULT_SLO_OBJECTIVE));
    assert_eq!(value(&fams, "polo_collector_slo_attainment_ratio", "named"), None, "no keys, no attainment");
    // From 4 h ago (the key's first run) to now, stale after 2 h: half of it, less a millisecond.
    let got = value(&fams, "polo_collector_slo_attainment_ratio", "c").unwrap();
    assert!((got - 0.5).abs() < 1e-6, "{got}");
    assert_eq!(value(&fams, "polo_collector_key_seconds", "c"), Some(4.0 * 3600.0));
    assert_eq!(value(&fams, "polo_collector_stale_key_seconds", "c"), Some(2.0 * 3600.0 - 0.001));
}
