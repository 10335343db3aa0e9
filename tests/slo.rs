//! The freshness SLO on the real engine: a known history of runs, inserted in many small
//! batches, gives the attainment computed here from the definition (docs/slo.md), at the first
//! scrape after the initial load and again after a restart.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{config, DevClickHouse, Exporter, Metrics};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// The collectors' expected interval (the default, 1h) × `staleness_factor` 2.
const STALE_AFTER: i64 = 2 * HOUR;
const WINDOW: i64 = 30 * DAY;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A key's runs: (completed_at ms, succeeded).
struct Key {
    collector: &'static str,
    account: &'static str,
    runs: Vec<(i64, bool)>,
}

/// Hourly runs from `first` to `last`, failed inside `failing` (a gap between successes).
fn hourly(first: i64, last: i64, failing: std::ops::Range<i64>) -> Vec<(i64, bool)> {
    (0..).map(|i| first + i * HOUR).take_while(|c| *c <= last).map(|c| (c, !failing.contains(&c))).collect()
}

/// The definition at `now`: over [now − window, now), from the key's first run, the moments at
/// which the latest success is older than the stale threshold. Returns (bad, total) ms.
fn expected(key: &Key, now: i64) -> (i64, i64) {
    let start = now - WINDOW;
    let first = key.runs.iter().map(|r| r.0).min().unwrap();
    let from = first.max(start);
    let mut successes: Vec<i64> = key.runs.iter().filter(|r| r.1).map(|r| r.0).collect();
    successes.sort_unstable();
    // Stale from (success + threshold) to the next success (or now); never before the first run.
    let mut bad = 0;
    let mut previous = None::<i64>;
    for next in successes.iter().copied().chain([now]) {
        let stale_from = previous.map_or(from, |p| p + STALE_AFTER).max(from);
        bad += (next.min(now) - stale_from).max(0);
        previous = Some(next);
    }
    (bad, now - from)
}

fn attainment_between(keys: &[&Key], before: i64, after: i64) -> (f64, f64) {
    let at = |now| {
        let (bad, total) = keys.iter().map(|k| expected(k, now)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        1.0 - bad as f64 / total as f64
    };
    let (a, b) = (at(before), at(after));
    (a.min(b), a.max(b))
}

/// The history, relative to `t` (the test's start).
fn keys(t: i64) -> [Key; 4] {
    let gap = t - 12 * DAY;
    [
        // One key hourly for 30 days (and an hour before), except 10 hours between two
        // successes 12 days ago: stale for 8 of them.
        Key {
            collector: "c_hourly",
            account: "111111111111",
            runs: hourly(t - WINDOW - HOUR, t - 30 * MIN, gap + 1..gap + 10 * HOUR),
        },
        // A key that began 5 days ago (counted from its first run), with 5 hours of failures.
        Key {
            collector: "c_hourly",
            account: "222222222222",
            runs: hourly(t - 5 * DAY, t - 20 * MIN, t - 3 * DAY..t - 3 * DAY + 5 * HOUR),
        },
        // A disabled account's key, stale for 20 days: not part of the SLI.
        Key { collector: "c_hourly", account: "333333333333", runs: hourly(t - 25 * DAY, t - 20 * DAY, 0..0) },
        // Healthy all along.
        Key { collector: "c_fine", account: "111111111111", runs: hourly(t - 10 * DAY, t - 10 * MIN, 0..0) },
    ]
}

fn insert(ch: &DevClickHouse, keys: &[&Key]) {
    let mut rows = Vec::new();
    for k in keys {
        for (completed, ok) in &k.runs {
            let status = if *ok { "succeeded" } else { "failed" };
            rows.push(format!(
                "('{}','{}','us-east-1',fromUnixTimestamp64Milli({}),fromUnixTimestamp64Milli({completed}),'{status}',0,0,'',60000)",
                k.collector,
                k.account,
                completed - MIN,
            ));
        }
    }
    // Many small batches (many parts), as collectors write them.
    for batch in rows.chunks(40) {
        ch.exec(&format!(
            "INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms) VALUES {}",
            batch.join(",")
        ));
    }
}

/// Scrapes until the initial load is done; returns the scrape and the times around it.
fn loaded_scrape(exporter: &Exporter) -> (Metrics, i64, i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let before = now_ms();
        let m = exporter.scrape();
        let after = now_ms();
        if m.value("polo_collector_runs_loading", &[]) == Some(0.0) {
            return (m, before, after);
        }
        assert!(std::time::Instant::now() < deadline, "initial load not done: {}", exporter.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn attainment_from_history_equals_the_definition_and_survives_a_restart() {
    let ch = DevClickHouse::start();
    let t = now_ms();
    // One key hourly for 30 days (and an hour before), except 10 hours between two successes
    // 12 days ago: stale for 8 of them.
    let [a, b, c, d] = keys(t);
    insert(&ch, &[&a, &b, &c, &d]);
    ch.exec(
        "INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status, updated_at) VALUES \
         ('111111111111', 'one', 'active', now64(3) - 100), ('222222222222', 'two', 'active', now64(3) - 100), \
         ('333333333333', 'three', 'disabled', now64(3) - 100)",
    );

    // The figure for the first key alone: 1 − 8/720.
    let (lo, hi) = attainment_between(&[&a], t, t + 10 * MIN);
    assert!((lo - (1.0 - 8.0 / 720.0)).abs() < 1e-9 && (hi - (1.0 - 8.0 / 720.0)).abs() < 1e-9);

    let cfg = config(
        &ch.url(),
        "sources:\n  collector_runs:\n    slo_objectives:\n      default: 0.995\n      c_fine: 0.999\n",
    );
    let mut values = Vec::new();
    for round in ["first start", "restart"] {
        let started = now_ms();
        let exporter = Exporter::start(&cfg);
        let (m, before, after) = loaded_scrape(&exporter);
        let got = m.value("polo_collector_slo_attainment_ratio", &[("collector", "c_hourly")]).unwrap();
        let (lo, hi) = attainment_between(&[&a, &b], before, after);
        assert!(got >= lo - 1e-9 && got <= hi + 1e-9, "{round}: exporter {got}, definition in [{lo}, {hi}]");
        assert!(got < 0.995, "{round}: below its objective");
        assert_eq!(m.value("polo_collector_slo_attainment_ratio", &[("collector", "c_fine")]), Some(1.0), "{round}");
        assert_eq!(m.value("polo_collector_slo_objective_ratio", &[("collector", "c_fine")]), Some(0.999));
        assert_eq!(m.value("polo_collector_slo_objective_ratio", &[("collector", "c_hourly")]), Some(0.995));
        // The status document carries the same, as of its own read.
        let doc: serde_json::Value = serde_json::from_str(&exporter.get("/api/v1/system/status").body).unwrap();
        let entry = doc["collectors"].as_array().unwrap().iter().find(|c| c["name"] == "c_hourly").unwrap().clone();
        let (lo2, hi2) = attainment_between(&[&a, &b], before, now_ms());
        let in_doc = entry["slo_attainment_ratio"].as_f64().unwrap();
        assert!(in_doc >= lo2 - 1e-9 && in_doc <= hi2 + 1e-9, "{round}: status {in_doc}, definition in [{lo2}, {hi2}]");
        assert_eq!(entry["slo_objective_ratio"].as_f64(), Some(0.995));
        // The counters start at the exporter's start: the next scrape adds the time between.
        // The counters count from the exporter's start: two keys, each for at least the pause
        // between the scrapes and at most the exporter's lifetime.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let m2 = exporter.scrape();
        let lifetime = (now_ms() - started) as f64 / 1000.0;
        let key_seconds = m2.value("polo_collector_key_seconds_total", &[("collector", "c_hourly")]).unwrap();
        assert!((2.2..=2.0 * lifetime).contains(&key_seconds), "{round}: {key_seconds} key-seconds in {lifetime} s");
        let stale = m2.value("polo_collector_stale_key_seconds_total", &[("collector", "c_hourly")]);
        assert_eq!(stale, Some(0.0), "{round}: no key stale since the start");
        values.push(got);
    }
    assert!((values[0] - values[1]).abs() < 1e-6, "a restart gives the same value: {values:?}");
}

/// The demo (dev/clickhouse/demo_data.py, 7 days of runs) with the shipped example config: the
/// collectors its scenarios make stale are below their objective, the others above.
#[test]
fn demo_shows_its_stale_collectors_below_their_objective() {
    let ch = DevClickHouse::start_demo();
    let example = std::fs::read_to_string(common::root().join("examples/local.yml")).unwrap();
    let exporter = Exporter::start(&example.replace("http://127.0.0.1:8123", &ch.url()));
    let (m, _, _) = loaded_scrape(&exporter);
    let slo = |c: &str| {
        let attainment = m.value("polo_collector_slo_attainment_ratio", &[("collector", c)]).unwrap();
        let objective = m.value("polo_collector_slo_objective_ratio", &[("collector", c)]).unwrap();
        (attainment, objective)
    };
    // cost_explorer_sync stopped 5 h ago (stale for the last 3 of 168 hours); config_rds fails
    // every run of the last 2 h (stale for the last 1–1.5 h).
    for stale in ["cost_explorer_sync", "config_rds"] {
        let (attainment, objective) = slo(stale);
        assert!(attainment < objective, "{stale}: {attainment} not below {objective}");
    }
    for healthy in
        ["config_ec2", "config_ebs", "config_network", "hierarchy_builder", "cloudwatch_metrics", "cur_ingest"]
    {
        let (attainment, objective) = slo(healthy);
        assert!(attainment > objective, "{healthy}: {attainment} not above {objective}");
    }
}
