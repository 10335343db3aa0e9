//! `collect[]` on `/metrics` (node_exporter's filter): only the named sources run and answer;
//! an unknown name is a 400 naming it. Against the real engine: the engine's own query log says
//! which sources sent queries.

mod common;

use common::{config, DevClickHouse, Exporter, Metrics};

/// Queries the engine logged from the exporter's `source` (its `log_comment`).
fn queries_from(ch: &DevClickHouse, source: &str) -> u64 {
    ch.exec("SYSTEM FLUSH LOGS");
    let n = ch.exec(&format!(
        "SELECT count() FROM system.query_log WHERE type = 'QueryFinish' AND log_comment = 'polo-exporter:{source}'"
    ));
    n.trim().parse().unwrap()
}

#[test]
fn collect_runs_and_returns_only_the_named_sources() {
    let ch = DevClickHouse::start();
    let exporter = Exporter::start(&config(&ch.url(), ""));
    let all = exporter.scrape();
    let up = |m: &Metrics| -> Vec<String> {
        m.find("polo_exporter_source_up", &[]).iter().map(|s| s.1["source"].clone()).collect()
    };
    assert_eq!(up(&all), ["collector_runs", "accounts", "clickhouse_system"], "{}", exporter.log());

    let before = queries_from(&ch, "clickhouse_system");
    assert!(before > 0, "the full scrape ran clickhouse_system");
    let resp = exporter.get("/metrics?collect[]=collector_runs");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let only = Metrics::parse(&resp.body);
    assert_eq!(up(&only), ["collector_runs"]);
    let names = |m: &Metrics, prefix: &str| -> std::collections::BTreeSet<String> {
        m.0.iter().map(|s| s.0.clone()).filter(|n| n.starts_with(prefix)).collect()
    };
    assert!(!names(&all, "polo_collector").is_empty(), "{:?}", names(&all, "polo_"));
    assert_eq!(names(&only, "polo_collector"), names(&all, "polo_collector"), "collector_runs answers in full");
    assert!(!only.0.iter().any(|(name, _, _)| name.starts_with("polo_clickhouse_")), "{}", resp.body);
    assert!(only.has("polo_exporter_build_info") && only.has("polo_exporter_config_last_reload_successful"));
    assert_eq!(queries_from(&ch, "clickhouse_system"), before, "clickhouse_system did not run");

    // Two names, URL-encoded brackets, in the order of the configuration.
    let resp = exporter.get("/metrics?collect%5B%5D=clickhouse_system&collect%5B%5D=accounts");
    assert_eq!(up(&Metrics::parse(&resp.body)), ["accounts", "clickhouse_system"]);

    let bad = exporter.get("/metrics?collect[]=collector_runs&collect[]=no_such_source");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown source \"no_such_source\""), "{}", bad.body);
    assert!(bad.body.contains("enabled sources: collector_runs, accounts, clickhouse_system"), "{}", bad.body);
    // The status API is not filtered.
    let status = exporter.get("/api/v1/system/status?collect[]=no_such_source");
    assert_eq!(status.status, 200);
}
