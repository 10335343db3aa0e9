//! The server-health families of `clickhouse_system` (system.events, metrics, errors,
//! detached_parts, distribution_queue, uptime) against the real ClickHouse engine: each equals
//! the engine's own answer to an independent query on the same server, on every engine version.

mod common;

use std::collections::BTreeMap;

use common::{config, DevClickHouse, Exporter, Metrics};

fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap(),
        other => other.as_f64().unwrap(),
    }
}

fn exporter(ch: &DevClickHouse, max_rows: u64) -> Exporter {
    Exporter::start(&config(
        &ch.url(),
        &format!("sources:\n  clickhouse_system:\n    databases: [polo]\n    max_rows: {max_rows}\n"),
    ))
}

/// Per (table, reason), as the family names the reason, straight from system.detached_parts.
fn detached_by_engine(ch: &DevClickHouse) -> BTreeMap<(String, String), f64> {
    ch.rows(
        "SELECT table, if(ifNull(reason, '') = '', 'detached_by_user', reason) AS why, count() AS n \
         FROM system.detached_parts WHERE database = 'polo' GROUP BY table, why",
    )
    .iter()
    .map(|r| ((r["table"].as_str().unwrap().to_string(), r["why"].as_str().unwrap().to_string()), num(&r["n"])))
    .collect()
}

fn detached_by_exporter(m: &Metrics) -> BTreeMap<(String, String), f64> {
    m.find("polo_clickhouse_detached_parts", &[])
        .iter()
        .map(|(_, l, v)| ((l["table"].clone(), l["reason"].clone()), *v))
        .collect()
}

/// Throttled and rejected inserts, detached parts, failed queries: then every new family
/// against the engine's own tables.
#[test]
fn health_families_equal_the_engine_system_tables() {
    let ch = DevClickHouse::start();
    // A partition at parts_to_delay_insert delays the next INSERT; at parts_to_throw_insert it
    // refuses it (code 252, TOO_MANY_PARTS).
    ch.exec(
        "CREATE TABLE polo.throttled (x UInt32) ENGINE = MergeTree ORDER BY x \
         SETTINGS parts_to_delay_insert = 1, parts_to_throw_insert = 3, max_delay_to_insert = 1",
    );
    let mut refused = 0;
    for i in 0..5 {
        let resp = common::http(ch.port, "POST", "/", &[], &format!("INSERT INTO polo.throttled VALUES ({i})"));
        refused += usize::from(resp.status != 200);
    }
    assert!(refused >= 1, "parts_to_throw_insert = 3 refuses an INSERT");
    // Detached parts in two tables, and one in a database that is not watched.
    ch.exec("CREATE DATABASE other");
    for table in ["polo.detach_a", "polo.detach_b", "other.detach_c"] {
        ch.exec(&format!("CREATE TABLE {table} (x UInt32) ENGINE = MergeTree ORDER BY x"));
        ch.exec(&format!("INSERT INTO {table} VALUES (1)"));
        ch.exec(&format!("INSERT INTO {table} VALUES (2)"));
        ch.exec(&format!("ALTER TABLE {table} DETACH PART 'all_1_1_0'"));
    }
    ch.exec("ALTER TABLE polo.detach_a DETACH PART 'all_2_2_0'");
    for sql in ["SELECT throwIf(1)", "SELECT * FROM polo.no_such_table"] {
        assert_ne!(common::http(ch.port, "POST", "/", &[], sql).status, 200);
    }

    let exporter = exporter(&ch, 10_000);
    // The exporter's other sources query the same server meanwhile (collector_runs' initial load
    // in the background): one of theirs cut off by a deadline on a loaded machine is an error
    // too, so the total is read before and after the scrape.
    let errors_total = || num(&ch.rows("SELECT sum(value) AS n FROM system.errors WHERE NOT remote")[0]["n"]);
    // The query class too: another source's failing statement (a missing table while its load
    // retries) may land before or after the exporter's own read of system.errors.
    let query_class = || {
        num(&ch.rows(
            "SELECT sumIf(value, code IN (16, 36, 42, 43, 46, 47, 53, 60, 62, 81)) AS n FROM system.errors WHERE NOT remote",
        )[0]["n"])
    };
    let (uptime_before, errors_before, query_before) =
        (num(&ch.rows("SELECT uptime() AS u")[0]["u"]), errors_total(), query_class());
    let m = exporter.scrape();
    let (uptime_after, errors_after, query_after) =
        (num(&ch.rows("SELECT uptime() AS u")[0]["u"]), errors_total(), query_class());
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "clickhouse_system")]), Some(1.0), "{}", exporter.log());
    for table in ["events", "metrics", "errors", "detached_parts", "distribution_queue"] {
        let up = m.value("polo_clickhouse_system_table_up", &[("table", table)]);
        assert_eq!(up, Some(1.0), "{table}: {}", exporter.log());
    }

    // system.events: only INSERTs move these, and the test runs none from here on.
    let events: BTreeMap<String, f64> = ch
        .rows("SELECT event, value FROM system.events")
        .iter()
        .map(|r| (r["event"].as_str().unwrap().to_string(), num(&r["value"])))
        .collect();
    let event = |name: &str| events.get(name).copied().unwrap_or(0.0);
    assert!(event("DelayedInserts") >= 1.0 && event("RejectedInserts") >= 1.0, "{events:?}");
    for (family, name, factor) in [
        ("polo_clickhouse_inserts_delayed_total", "DelayedInserts", 1.0),
        ("polo_clickhouse_inserts_delayed_seconds_total", "DelayedInsertsMilliseconds", 0.001),
        ("polo_clickhouse_inserts_rejected_total", "RejectedInserts", 1.0),
        ("polo_clickhouse_keeper_hardware_exceptions_total", "ZooKeeperHardwareExceptions", 1.0),
        ("polo_clickhouse_replicated_part_failed_fetches_total", "ReplicatedPartFailedFetches", 1.0),
        ("polo_clickhouse_replicated_part_checks_failed_total", "ReplicatedPartChecksFailed", 1.0),
        ("polo_clickhouse_replicated_data_loss_total", "ReplicatedDataLoss", 1.0),
        ("polo_clickhouse_distributed_connection_failures_total", "DistributedConnectionFailAtAll", 1.0),
    ] {
        assert_eq!(m.value(family, &[]), Some(event(name) * factor), "{family}");
    }

    // system.metrics: every metric is listed, zero or not.
    let metrics: BTreeMap<String, f64> = ch
        .rows("SELECT metric, value FROM system.metrics")
        .iter()
        .map(|r| (r["metric"].as_str().unwrap().to_string(), num(&r["value"])))
        .collect();
    for (family, name) in [
        ("polo_clickhouse_inserts_delayed_now", "DelayedInserts"),
        ("polo_clickhouse_keeper_sessions", "ZooKeeperSession"),
        ("polo_clickhouse_readonly_replicas", "ReadonlyReplica"),
        ("polo_clickhouse_distributed_files_to_insert", "DistributedFilesToInsert"),
    ] {
        assert_eq!(m.value(family, &[]), Some(metrics[name]), "{family}");
    }

    // system.errors by class, the classes as docs/metrics.md defines them.
    // The two classes only this test's statements move, exactly; the total between the reads.
    let errors = ch.rows(
        "SELECT sumIf(value, code = 252) AS too_many_parts, \
         sumIf(value, code IN (16, 36, 42, 43, 46, 47, 53, 60, 62, 81)) AS query \
         FROM system.errors WHERE NOT remote",
    );
    let class = |c: &str| m.value("polo_clickhouse_server_errors_total", &[("class", c)]);
    let total: f64 = m.find("polo_clickhouse_server_errors_total", &[]).iter().map(|s| s.2).sum();
    assert!((errors_before..=errors_after).contains(&total), "{errors_before} <= {total} <= {errors_after}");
    assert_eq!(class("too_many_parts"), Some(num(&errors[0]["too_many_parts"])));
    assert!(class("too_many_parts").unwrap() >= refused as f64);
    let query = class("query").unwrap();
    assert!((query_before..=query_after).contains(&query), "{query_before} <= {query} <= {query_after}");
    assert!(query >= 1.0, "the unknown table");

    // system.detached_parts: the watched database only, by reason.
    let engine = detached_by_engine(&ch);
    assert_eq!(engine.len(), 2, "{engine:?}");
    assert_eq!(detached_by_exporter(&m), engine);
    assert_eq!(engine[&("detach_a".to_string(), "detached_by_user".to_string())], 2.0);
    assert_eq!(m.value("polo_clickhouse_system_rows_over_limit", &[("table", "detached_parts")]), Some(0.0));

    // system.distribution_queue: one series per Distributed table with a queue.
    let queued = ch.rows("SELECT count() AS n FROM system.distribution_queue WHERE database = 'polo'");
    assert_eq!(m.find("polo_clickhouse_distribution_queue_files", &[]).len() as f64, num(&queued[0]["n"]));
    assert_eq!(m.value("polo_clickhouse_system_rows_over_limit", &[("table", "distribution_queue")]), Some(0.0));

    // uptime() moves while we look: it lies between the two reads around the scrape.
    let uptime = m.value("polo_clickhouse_uptime_seconds", &[]).unwrap();
    assert!((uptime_before..=uptime_after).contains(&uptime), "{uptime_before} <= {uptime} <= {uptime_after}");
}

/// With max_rows below the number of (table, reason) groups, the first ones are reported and
/// the rest counted, as the engine counts them.
#[test]
fn detached_parts_beyond_max_rows_are_counted_not_reported() {
    let ch = DevClickHouse::start();
    for table in ["polo.d1", "polo.d2", "polo.d3"] {
        ch.exec(&format!("CREATE TABLE {table} (x UInt32) ENGINE = MergeTree ORDER BY x"));
        ch.exec(&format!("INSERT INTO {table} VALUES (1)"));
        ch.exec(&format!("ALTER TABLE {table} DETACH PART 'all_1_1_0'"));
    }
    let exporter = exporter(&ch, 2);
    let m = exporter.scrape();
    let engine = detached_by_engine(&ch);
    assert_eq!(engine.len(), 3);
    let reported = detached_by_exporter(&m);
    assert_eq!(reported.len(), 2, "{}", exporter.log());
    // The first two in the query's order (database, table, reason), with the engine's counts.
    let first_two: BTreeMap<_, _> = engine.iter().take(2).map(|(k, v)| (k.clone(), *v)).collect();
    assert_eq!(reported, first_two);
    assert_eq!(
        m.value("polo_clickhouse_system_rows_over_limit", &[("table", "detached_parts")]),
        Some((engine.len() - reported.len()) as f64)
    );
}

/// Cluster mode (a config file: not on the 24.8 engine): an asynchronous INSERT into a
/// Distributed table whose shard cannot be reached leaves its file in the queue.
#[test]
fn cluster_mode_distribution_queue_equals_the_engine() {
    let dead = common::free_port();
    let spec = format!("polo_cluster=localhost:9000,127.0.0.1:{dead}");
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--cluster", &spec]);
    ch.exec("CREATE TABLE polo.local_t (x UInt32) ENGINE = MergeTree ORDER BY x");
    ch.exec("CREATE TABLE polo.dist_t AS polo.local_t ENGINE = Distributed(polo_cluster, polo, local_t)");
    ch.exec(
        "INSERT INTO polo.dist_t SETTINGS prefer_localhost_replica = 0, distributed_foreground_insert = 0 VALUES (1)",
    );
    let exporter = Exporter::start(&config(&ch.url(), "  cluster: polo_cluster\nsources:\n  clickhouse_system: {}\n"));
    let m = exporter.scrape();
    assert_eq!(m.value("polo_clickhouse_system_table_up", &[("table", "distribution_queue")]), Some(1.0));
    let engine = ch.rows(
        "SELECT sum(data_files) AS files, sum(broken_data_files) AS broken FROM system.distribution_queue \
         WHERE database = 'polo' AND table = 'dist_t'",
    );
    let files = num(&engine[0]["files"]);
    assert!(files >= 1.0, "the INSERT's file waits in the queue: {engine:?}");
    let t = [("database", "polo"), ("table", "dist_t")];
    assert_eq!(m.value("polo_clickhouse_distribution_queue_files", &t), Some(files), "{}", exporter.log());
    assert_eq!(m.value("polo_clickhouse_distribution_queue_broken_files", &t), Some(num(&engine[0]["broken"])));
    let metric = ch.rows("SELECT value FROM system.metrics WHERE metric = 'DistributedFilesToInsert'");
    assert_eq!(m.value("polo_clickhouse_distributed_files_to_insert", &[]), Some(num(&metric[0]["value"])));
}
