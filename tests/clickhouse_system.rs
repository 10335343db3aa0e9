//! The `clickhouse_system` source against the real ClickHouse engine (query_log enabled).

mod common;

use std::time::Duration;

use common::{config, DevClickHouse, Exporter, Metrics};

const DELAY: &str = "1s";

fn exporter_for(ch: &DevClickHouse) -> Exporter {
    Exporter::start(&config(
        &ch.url(),
        &format!("sources:\n  clickhouse_system:\n    query_log_delay: {DELAY}\n    databases: [polo]\n"),
    ))
}

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

fn sum(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.find(name, labels).iter().map(|s| s.2).sum()
}

#[test]
fn disks_equal_system_disks() {
    let ch = DevClickHouse::start();
    let exporter = exporter_for(&ch);
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "clickhouse_system")]), Some(1.0), "{}", exporter.log());
    let disks =
        ch.rows("SELECT hostName() AS replica, name, total_space, free_space, keep_free_space FROM system.disks");
    assert!(!disks.is_empty());
    assert_eq!(m.find("polo_clickhouse_disk_total_bytes", &[]).len(), disks.len());
    for d in &disks {
        let l = [("replica", d["replica"].as_str().unwrap()), ("disk", d["name"].as_str().unwrap())];
        assert_eq!(m.value("polo_clickhouse_disk_total_bytes", &l), Some(num(&d["total_space"])));
        assert_eq!(m.value("polo_clickhouse_disk_keep_free_bytes", &l), Some(num(&d["keep_free_space"])));
        // Free space moves with whatever else writes to this machine's disk between the two reads.
        let free = m.value("polo_clickhouse_disk_free_bytes", &l).unwrap();
        assert!((free - num(&d["free_space"])).abs() < 256e6, "free {free} vs {}", d["free_space"]);
    }
    let status: serde_json::Value = serde_json::from_str(&exporter.get("/api/v1/system/status").body).unwrap();
    let used_gb: f64 = disks.iter().map(|d| num(&d["total_space"]) - num(&d["free_space"])).sum::<f64>() / 1e9;
    assert!((status["clickhouse"]["disk_used_gb"].as_f64().unwrap() - used_gb).abs() < 0.5);
    let version = ch.exec("SELECT version()");
    let build = m.find("polo_clickhouse_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert!(build[0].1["version"].contains(version.trim()), "{:?} vs {version}", build[0].1);
}

#[test]
fn known_queries_land_in_the_histogram_exactly_and_own_queries_do_not() {
    let ch = DevClickHouse::start();
    let exporter = exporter_for(&ch);
    // Quiet period: nothing but the exporter runs queries, and every earlier query ages past the delay.
    std::thread::sleep(Duration::from_millis(1500));
    exporter.scrape();
    let before = exporter.scrape();
    let kind = [("query_kind", "Select")];
    let count_before = sum(&before, "polo_clickhouse_query_duration_seconds_count", &kind);
    let bucket = |m: &Metrics, le: &str| {
        sum(m, "polo_clickhouse_query_duration_seconds_bucket", &[("query_kind", "Select"), ("le", le)])
    };

    // The known set: 3 × 100 ms, 2 × 300 ms, 1 × 1.5 s (each well inside its bucket, so a loaded
    // machine's extra milliseconds do not move it); 2 failures of class "other", 1 of class "query".
    for _ in 0..3 {
        ch.exec("SELECT sleep(0.1)");
    }
    for _ in 0..2 {
        ch.exec("SELECT sleep(0.3)");
    }
    ch.exec("SELECT sleep(1.5)");
    for sql in ["SELECT throwIf(1)", "SELECT throwIf(2)", "SELECT * FROM polo.no_such_table"] {
        assert_ne!(common::http(ch.port, "POST", "/", &[], sql).status, 200);
    }
    ch.exec("SYSTEM FLUSH LOGS");
    std::thread::sleep(Duration::from_millis(1500));
    // Several scrapes: each window is read once, whatever the number of scrapes.
    exporter.scrape();
    exporter.scrape();
    let after = exporter.scrape();

    assert_eq!(
        sum(&after, "polo_clickhouse_query_duration_seconds_count", &kind) - count_before,
        6.0,
        "{}",
        exporter.log()
    );
    let deltas: Vec<(&str, f64)> =
        [("0.025", 0.0), ("0.05", 0.0), ("0.25", 3.0), ("0.5", 5.0), ("1.0", 5.0), ("2.5", 6.0), ("+Inf", 6.0)]
            .into_iter()
            .map(|(le, _)| (le, bucket(&after, le) - bucket(&before, le)))
            .collect();
    assert_eq!(
        deltas,
        vec![("0.025", 0.0), ("0.05", 0.0), ("0.25", 3.0), ("0.5", 5.0), ("1.0", 5.0), ("2.5", 6.0), ("+Inf", 6.0)]
    );
    let sum_delta = sum(&after, "polo_clickhouse_query_duration_seconds_sum", &kind)
        - sum(&before, "polo_clickhouse_query_duration_seconds_sum", &kind);
    // 3 × 0.1 + 2 × 0.3 + 1.5 = 2.4 s of sleeps, plus each query's own overhead.
    assert!((2.39..2.7).contains(&sum_delta), "sum grew by {sum_delta}");
    let failed = |m: &Metrics, class: &str| sum(m, "polo_clickhouse_failed_queries_total", &[("class", class)]);
    assert_eq!(failed(&after, "other") - failed(&before, "other"), 2.0);
    assert_eq!(failed(&after, "query") - failed(&before, "query"), 1.0);
    assert_eq!(failed(&after, "timeout"), 0.0);
    // The same figures straight from system.query_log, with the exporter's own queries in it.
    let own = ch.exec(
        "SELECT count() FROM system.query_log WHERE type = 'QueryFinish' AND startsWith(log_comment, 'polo-exporter:')",
    );
    assert!(own.trim().parse::<u64>().unwrap() >= 7, "the exporter's queries are logged, yet not counted");
}

#[test]
fn a_table_with_many_parts_shows_it() {
    let ch = DevClickHouse::start();
    ch.exec("CREATE TABLE polo.many (x UInt32, y UInt32 DEFAULT 0) ENGINE = MergeTree PARTITION BY x % 3 ORDER BY x");
    ch.exec("SYSTEM STOP MERGES polo.many");
    for i in 0..20 {
        ch.exec(&format!("INSERT INTO polo.many (x) VALUES ({i})"));
    }
    // With merges stopped, this mutation cannot finish: a stuck mutation (chdb defaults to mutations_sync = 1).
    ch.exec("ALTER TABLE polo.many UPDATE y = x + 100 WHERE 1 SETTINGS mutations_sync = 0");
    let exporter = exporter_for(&ch);
    let m = exporter.scrape();
    let direct = ch.rows("SELECT count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts WHERE active AND database = 'polo' AND table = 'many'");
    let per_partition = ch.rows("SELECT max(c) AS m FROM (SELECT count() AS c FROM system.parts WHERE active AND database = 'polo' AND table = 'many' GROUP BY partition_id)");
    let t = [("database", "polo"), ("table", "many")];
    assert_eq!(m.value("polo_clickhouse_table_active_parts", &t), Some(num(&direct[0]["parts"])));
    assert_eq!(m.value("polo_clickhouse_table_active_parts", &t), Some(20.0));
    assert_eq!(m.value("polo_clickhouse_table_rows", &t), Some(num(&direct[0]["rows"])));
    assert_eq!(m.value("polo_clickhouse_table_bytes_on_disk", &t), Some(num(&direct[0]["bytes"])));
    assert_eq!(m.value("polo_clickhouse_table_max_parts_in_partition", &t), Some(num(&per_partition[0]["m"])));
    assert_eq!(m.value("polo_clickhouse_table_max_parts_in_partition", &t), Some(7.0));
    let mutations = ch.rows("SELECT count() AS n, toUnixTimestamp(min(create_time)) AS oldest FROM system.mutations WHERE NOT is_done AND database = 'polo' AND table = 'many'");
    assert_eq!(num(&mutations[0]["n"]), 1.0);
    assert_eq!(m.value("polo_clickhouse_mutations_pending", &t), Some(1.0));
    assert_eq!(
        m.value("polo_clickhouse_oldest_pending_mutation_timestamp_seconds", &t),
        Some(num(&mutations[0]["oldest"]))
    );
    // Only the watched database is reported.
    assert!(m.find("polo_clickhouse_table_active_parts", &[("database", "system")]).is_empty());
}

#[test]
fn a_missing_system_table_fails_only_its_own_families() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--no-query-log"]);
    let exporter = exporter_for(&ch);
    // Already on the first scrape (an empty window), the missing table shows.
    let m = exporter.scrape();
    let up = |s: &str| m.value("polo_exporter_source_up", &[("source", s)]);
    // The other system tables are still read and reported; the failing one says so.
    assert_eq!(up("clickhouse_system"), Some(1.0), "{}", exporter.log());
    assert_eq!(m.value("polo_clickhouse_system_table_up", &[("table", "query_log")]), Some(0.0));
    assert_eq!(m.value("polo_clickhouse_system_table_up", &[("table", "disks")]), Some(1.0));
    assert!(m.has("polo_clickhouse_disk_total_bytes"));
    assert!(m.has("polo_clickhouse_build_info"));
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "clickhouse_system"), ("kind", "query")]),
        Some(1.0)
    );
    assert_eq!(up("collector_runs"), Some(1.0));
    assert_eq!(up("accounts"), Some(1.0));
    assert!(exporter.log().contains("system.query_log"), "the failing query is named in the log");
}

/// A cluster whose second replica is a closed port (a node down): with skip_unavailable_shards
/// the replica that answers is reported, the dead one counted and flagged.
#[test]
fn cluster_mode_survives_a_dead_replica() {
    let dead = common::free_port();
    let spec = format!("polo_cluster=localhost:9000,127.0.0.1:{dead}");
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--cluster", &spec]);
    // Without the setting, one dead replica fails the whole statement: what the exporter must avoid.
    let resp = common::http(
        ch.port,
        "POST",
        "/",
        &[],
        "SELECT hostName() FROM clusterAllReplicas('polo_cluster', system.one)",
    );
    assert_ne!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("Code: 279") || resp.body.contains("Code: 210"), "{}", resp.body);
    let exporter = Exporter::start(&config(
        &ch.url(),
        &format!(
            "  cluster: polo_cluster
sources:
  clickhouse_system:
    query_log_delay: {DELAY}
"
        ),
    ));
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "clickhouse_system")]), Some(1.0), "{}", exporter.log());
    assert_eq!(m.value("polo_clickhouse_cluster_replicas", &[("state", "expected")]), Some(2.0));
    assert_eq!(m.value("polo_clickhouse_cluster_replicas", &[("state", "answering")]), Some(1.0));
    assert_eq!(m.value("polo_clickhouse_cluster_replica_up", &[("address", "localhost:9000")]), Some(1.0));
    assert_eq!(m.value("polo_clickhouse_cluster_replica_up", &[("address", &format!("127.0.0.1:{dead}"))]), Some(0.0));
    assert!(m.has("polo_clickhouse_disk_total_bytes"), "the live replica's disks are reported");
    for table in [
        "disks",
        "processes",
        "parts",
        "replicas",
        "mutations",
        "build_options",
        "events",
        "metrics",
        "errors",
        "detached_parts",
        "distribution_queue",
    ] {
        assert_eq!(
            m.value("polo_clickhouse_system_table_up", &[("table", table)]),
            Some(1.0),
            "{table}: {}",
            exporter.log()
        );
    }
}

#[test]
fn query_log_can_be_turned_off() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--no-query-log"]);
    let exporter = Exporter::start(&config(&ch.url(), "sources:\n  clickhouse_system:\n    query_log: false\n"));
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "clickhouse_system")]), Some(1.0), "{}", exporter.log());
    assert!(m.has("polo_clickhouse_disk_free_bytes"));
}
