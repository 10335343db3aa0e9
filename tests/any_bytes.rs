//! Issue 19, item 1: any bytes in any String column the exporter reads (collector_runs,
//! aws_accounts, system tables) on the real engine: bytes that are not UTF-8, NUL, control and
//! format characters, 1 MiB values. No source fails, every other key equals the seed SQL, the
//! invalid values are counted, the log stays bounded and a restart loads.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{config, DevClickHouse, Exporter, Metrics};

/// SQL expressions of the hostile values, each put in every String column in turn.
const HOSTILE: [&str; 8] = [
    "'bad\\xFF'",
    // Differs from the previous one only in its invalid byte: must stay a key of its own.
    "'bad\\xFE'",
    "'nul\\0z'",
    "'ctl\\x01\\x1B[31m\\t\\n'",
    "'fmt\u{200B}\u{202E}\u{FEFF}'",
    "'half\\xE2\\x82'",
    "repeat('xxxx', 262144)",
    "concat(repeat('yyyy', 262144), '\\xFF')",
];

const RUN_COLUMNS: [&str; 5] = ["collector", "aws_account_id", "aws_region", "status", "error"];

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

fn seed(ch: &DevClickHouse) {
    const INSERT_RUNS: &str = "INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms) VALUES";
    // One INSERT per hostile value (many small batches, as collectors write; each statement
    // stays a few MiB, so a loaded machine answers it well within the harness's read timeout).
    for (vi, value) in HOSTILE.iter().enumerate() {
        let mut rows = Vec::new();
        for (ci, column) in RUN_COLUMNS.iter().enumerate() {
            let mut cols = [
                format!("'c_{column}_{vi}'"),
                "'999999999999'".to_string(),
                "'us-east-1'".to_string(),
                "'failed'".to_string(),
                "'boom'".to_string(),
            ];
            // A hostile key column: the collector names the case, so keys stay apart.
            if ci > 0 && ci < 3 {
                cols[0] = format!("'c_key_{column}'");
            }
            cols[ci] = value.to_string();
            // One run before the late-arrival window (the initial load reads it), one inside.
            for ago in ["3 HOUR", "10 MINUTE"] {
                rows.push(format!(
                    "({}, {}, {}, now64(3) - INTERVAL {ago}, now64(3) - INTERVAL {ago} + 5, {}, 1, 2, {}, 5000)",
                    cols[0], cols[1], cols[2], cols[3], cols[4]
                ));
            }
        }
        ch.exec(&format!("{INSERT_RUNS} {}", rows.join(", ")));
    }
    // Ordinary keys beside them.
    let mut rows = Vec::new();
    for (c, status) in [("c_ok", "succeeded"), ("c_fail", "failed"), ("c_partial", "partial")] {
        for ago in ["5 HOUR", "2 HOUR", "20 MINUTE"] {
            rows.push(format!(
                "('{c}', '111111111111', 'eu-west-1', now64(3) - INTERVAL {ago}, now64(3) - INTERVAL {ago} + 7, '{status}', 3, 4, 'e', 7000)"
            ));
        }
    }
    ch.exec(&format!("{INSERT_RUNS} {}", rows.join(", ")));
    const INSERT_ACCOUNTS: &str = "INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status) VALUES";
    ch.exec(&format!("{INSERT_ACCOUNTS} ('111111111111', 'Prod', 'active')"));
    for (vi, value) in HOSTILE.iter().enumerate() {
        ch.exec(&format!(
            "{INSERT_ACCOUNTS} ({value}, 'name_{vi}', 'active'), ('acct_name_{vi}', {value}, 'active'), ('acct_status_{vi}', 'n', {value})"
        ));
    }
    // System tables: table names that are not UTF-8 or hold NUL and control characters.
    for name in ["t\\xFFx", "t\\tz\\0"] {
        ch.exec(&format!("CREATE TABLE polo.`{name}` (a String) ENGINE = MergeTree ORDER BY a"));
        ch.exec(&format!("INSERT INTO polo.`{name}` VALUES ('a')"));
    }
}

/// Scrapes until the initial load of collector_runs is done (no time is asserted).
fn loaded_scrape(exporter: &Exporter) -> Metrics {
    let start = Instant::now();
    loop {
        let m = exporter.scrape();
        if m.value("polo_collector_runs_loading", &[]) == Some(0.0) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "initial load never finished: {}", exporter.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_sources_up(m: &Metrics, exporter: &Exporter) {
    for source in ["collector_runs", "accounts", "clickhouse_system"] {
        assert_eq!(
            m.value("polo_exporter_source_up", &[("source", source)]),
            Some(1.0),
            "{source}: {}",
            exporter.log()
        );
        assert_eq!(
            m.find("polo_exporter_source_errors_total", &[("source", source)]).iter().map(|s| s.2).sum::<f64>(),
            0.0,
            "{source} had errors: {}",
            exporter.log()
        );
    }
}

fn assert_matches_seed(ch: &DevClickHouse, m: &Metrics) {
    // Every key is a series of its own: none lost, none merged.
    let keys = ch.rows(
        "SELECT count() AS n FROM (SELECT DISTINCT collector, aws_account_id, aws_region FROM polo.collector_runs)",
    );
    assert_eq!(m.find("polo_collector_last_run_timestamp_seconds", &[]).len() as f64, num(&keys[0]["n"]));
    // Every ordinary key (all its strings short, valid and printable) equals the seed SQL.
    let ordinary = ch.rows(
        "SELECT collector, aws_account_id, aws_region, toUnixTimestamp64Milli(max(completed_at)) AS last_run,
                argMax(status, completed_at) AS last_status, argMax(duration_ms, completed_at) AS duration_ms, count() AS runs
         FROM polo.collector_runs
         WHERE match(collector, '^[a-z0-9_]{1,40}$') AND match(aws_account_id, '^[0-9]{12}$') AND match(aws_region, '^[a-z0-9-]{1,20}$')
         GROUP BY collector, aws_account_id, aws_region",
    );
    assert!(ordinary.len() >= 3 + 2 * HOSTILE.len(), "{} ordinary keys", ordinary.len());
    for row in &ordinary {
        let key = [
            ("collector", row["collector"].as_str().unwrap()),
            ("aws_account_id", row["aws_account_id"].as_str().unwrap()),
            ("aws_region", row["aws_region"].as_str().unwrap()),
        ];
        let last_run = m.value("polo_collector_last_run_timestamp_seconds", &key).unwrap_or_else(|| panic!("{key:?}"));
        assert!((last_run - num(&row["last_run"]) / 1000.0).abs() < 1e-6, "{key:?}");
        let duration = m.value("polo_collector_last_run_duration_seconds", &key).unwrap();
        assert_eq!(duration, num(&row["duration_ms"]) / 1000.0, "{key:?}");
        let status = row["last_status"].as_str().unwrap();
        if status.len() <= 40 && status.chars().all(|c| c.is_ascii_lowercase()) {
            let mut l = key.to_vec();
            l.push(("status", status));
            assert_eq!(m.value("polo_collector_last_run_status", &l), Some(1.0), "{key:?}");
        }
    }
    // Accounts: one info series per account, one polo_accounts series per status.
    let accounts = ch.rows("SELECT count() AS n, uniqExact(polo_status) AS statuses FROM polo.aws_accounts FINAL");
    assert_eq!(m.find("polo_account_info", &[]).len() as f64, num(&accounts[0]["n"]));
    // The four known statuses are always there; the hostile ones come on top.
    let known_missing = ch.rows(
        "SELECT count() AS n FROM (SELECT arrayJoin(['active','pending_setup','no_access','disabled']) AS s) WHERE s NOT IN (SELECT polo_status FROM polo.aws_accounts FINAL)",
    );
    assert_eq!(m.find("polo_accounts", &[]).len() as f64, num(&accounts[0]["statuses"]) + num(&known_missing[0]["n"]));
    let active = ch.rows("SELECT count() AS n FROM polo.aws_accounts FINAL WHERE polo_status = 'active'");
    assert_eq!(m.value("polo_accounts", &[("status", "active")]), Some(num(&active[0]["n"])));
    // No label value is longer than the bound.
    for (name, labels, _) in &m.0 {
        for (k, v) in labels {
            assert!(v.chars().count() <= 200, "{name}{{{k}}} has {} characters", v.chars().count());
        }
    }
    // The system tables with hostile names are there, each once.
    let tables: BTreeSet<&str> =
        m.find("polo_clickhouse_table_rows", &[("database", "polo")]).iter().map(|s| s.1["table"].as_str()).collect();
    assert!(tables.iter().any(|t| t.starts_with("t\u{FFFD}x~")), "{tables:?}");
    assert_eq!(tables.len(), 4, "{tables:?}");
}

#[test]
fn any_bytes_in_any_string_column_keep_every_source_up() {
    let ch = DevClickHouse::start();
    seed(&ch);
    let cfg = config(&ch.url(), "sources:\n  clickhouse_system:\n    databases: [polo]\n");
    let exporter = Exporter::start(&cfg);
    let m = loaded_scrape(&exporter);
    assert_sources_up(&m, &exporter);
    assert_matches_seed(&ch, &m);

    // Counted per source: accounts reads every account each run, so its count is a multiple of
    // the invalid values in the table.
    let per_run = ch.rows(
        "SELECT sum(3 - isValidUTF8(aws_account_id) - isValidUTF8(account_name) - isValidUTF8(polo_status)) AS n
         FROM polo.aws_accounts FINAL",
    );
    let per_run = num(&per_run[0]["n"]);
    assert_eq!(per_run, 12.0, "four invalid values in each of the three columns");
    let counted = m.value("polo_exporter_invalid_values_total", &[("source", "accounts")]).unwrap();
    assert!(counted > 0.0 && counted % per_run == 0.0, "accounts counted {counted}");
    assert!(m.value("polo_exporter_invalid_values_total", &[("source", "collector_runs")]).unwrap() > 0.0);
    assert!(m.value("polo_exporter_invalid_values_total", &[("source", "clickhouse_system")]).unwrap() > 0.0);

    // Logged once per key, with the key, never a value at length.
    let log = exporter.log();
    assert!(log.lines().any(|l| l.contains("not UTF-8") && l.contains("source=accounts")), "{log}");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "a log line of {longest} bytes");
    let again = exporter.scrape();
    let log_again = exporter.log();
    let warnings = |log: &str| log.lines().filter(|l| l.contains("not UTF-8")).count();
    assert_eq!(warnings(&log_again), warnings(&log), "each key is logged once");
    assert_sources_up(&again, &exporter);

    // The status document is served.
    let status = exporter.get("/api/v1/system/status");
    assert_eq!(status.status, 200);
    serde_json::from_str::<serde_json::Value>(&status.body).expect("status JSON");

    // A restart loads the same rows again.
    drop(exporter);
    let exporter = Exporter::start(&cfg);
    let m = loaded_scrape(&exporter);
    assert_sources_up(&m, &exporter);
    assert_matches_seed(&ch, &m);
}

/// Issue 19, item 2: values that differ only in what cleaning removes or replaces (a tab and a
/// space, a zero-width space, NUL) stay distinct series, in both formats.
#[test]
fn values_that_clean_alike_stay_distinct_series() {
    let ch = DevClickHouse::start();
    ch.exec(
        "INSERT INTO polo.aws_accounts (aws_account_id, account_name, polo_status) VALUES \
         ('1 2', 'a', 'active'), ('1\\t2', 'a', 'active'), ('12', 'a', 'active'), ('1\u{200B}2', 'a', 'active'), \
         ('1\\n2', 'a', 'active'), ('1\\02', 'a', 'active'), ('1\u{FEFF}2', 'a', 'active')",
    );
    ch.exec(
        "INSERT INTO polo.collector_runs (collector, aws_account_id, aws_region, started_at, completed_at, status, events_produced, rows_inserted, error, duration_ms) VALUES \
         ('c', '1', 'eu west', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'x', 1), \
         ('c', '1', 'eu\\twest', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'x', 1), \
         ('c', '1', 'euwest', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'x', 1), \
         ('c', '1', 'eu\u{200B}west', now64(3) - 60, now64(3) - 50, 'failed', 0, 0, 'x', 1)",
    );
    let exporter = Exporter::start(&config(&ch.url(), ""));
    let accounts = ch.rows("SELECT count() AS n FROM polo.aws_accounts FINAL");
    let keys = ch.rows(
        "SELECT count() AS n FROM (SELECT DISTINCT collector, aws_account_id, aws_region FROM polo.collector_runs)",
    );
    for accept in ["application/openmetrics-text; version=1.0.0", "text/plain; version=0.0.4"] {
        let resp = common::http(exporter.port, "GET", "/metrics", &[("Accept", accept)], "");
        assert_eq!(resp.status, 200);
        // The parser refuses a series given twice.
        let m = Metrics::parse(&resp.body);
        assert_eq!(m.find("polo_account_info", &[]).len() as f64, num(&accounts[0]["n"]), "{accept}");
        assert_eq!(
            m.find("polo_collector_last_run_timestamp_seconds", &[]).len() as f64,
            num(&keys[0]["n"]),
            "{accept}"
        );
    }
}
