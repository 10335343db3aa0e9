//! deploy/clickhouse/monitoring-user*.sql: every statement parses with the real ClickHouse
//! parser (the embedded engine has no access storage to run them), they grant what the exporter
//! reads, and their limits agree with what the exporter checks. The readonly modes of the dev
//! ClickHouse apply the profile's `readonly` for real, so the engine itself refuses or accepts
//! the settings the exporter sends; `--config.check --online` reports the outcome.

mod common;

use std::process::Command;

use common::{config, root, DevClickHouse, Exporter};

const FILES: [&str; 3] = ["monitoring-user.sql", "monitoring-user-readonly2.sql", "monitoring-user-on-cluster.sql"];

fn statements(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/clickhouse").join(file)).unwrap();
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

#[test]
fn every_statement_parses() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--no-query-log"]);
    for file in FILES {
        let stmts = statements(file);
        assert!(stmts.len() >= 10, "{file}");
        for stmt in &stmts {
            let resp = common::http(ch.port, "POST", "/", &[], &format!("EXPLAIN AST {stmt}"));
            assert_eq!(resp.status, 200, "{file}: {stmt}\n{}", resp.body);
        }
    }
}

/// The tables a file grants SELECT on (`GRANT [ON CLUSTER c] SELECT ON t TO ...`).
fn granted(file: &str) -> Vec<String> {
    statements(file)
        .into_iter()
        .filter_map(|s| {
            let s = s.strip_prefix("GRANT ")?;
            let s = s.strip_prefix("ON CLUSTER polo_cluster ").unwrap_or(s);
            Some(s.strip_prefix("SELECT ON ")?.split_whitespace().next()?.to_string())
        })
        .collect()
}

#[test]
fn grants_cover_every_table_the_exporter_reads() {
    // Every file of collector_runs (its reads are spread over the load, the ranges and the
    // incremental read), the accounts source and clickhouse_system's statements.
    let mut sql_sources: Vec<std::path::PathBuf> = std::fs::read_dir(root().join("src/sources/collector_runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    sql_sources.extend(["src/sources/accounts.rs", "src/sources/clickhouse_system/sql.rs"].map(|p| root().join(p)));
    let code: String = sql_sources.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    for file in FILES {
        let granted = granted(file);
        for table in ["collector_runs", "aws_accounts"] {
            assert!(granted.contains(&format!("polo.{table}")), "{file}: polo.{table} not granted");
            assert!(code.contains(&format!("table(\"{table}\")")), "{table} is read");
        }
        for table in [
            "disks",
            "query_log",
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
            assert!(code.contains(&format!("self.table(\"{table}\")")), "system.{table} not read");
            assert!(granted.contains(&format!("system.{table}")), "{file}: system.{table} not granted");
        }
        assert_eq!(granted.len(), 14, "{file}: exactly the tables read: {granted:?}");
    }
    // system.clusters (cluster mode) is readable by every user; clusterAllReplicas needs REMOTE.
    let on_cluster = statements("monitoring-user-on-cluster.sql");
    assert!(on_cluster.iter().any(|s| s == "GRANT ON CLUSTER polo_cluster REMOTE ON *.* TO polo_exporter"));
    assert!(
        on_cluster.iter().filter(|s| !s.contains("ON CLUSTER polo_cluster")).count() == 0,
        "every statement ON CLUSTER"
    );
}

/// The profile's limits are the ones `--config.check` compares the configuration with, and the
/// settings the exporter sends are allowed by each profile.
#[test]
fn profile_limits_agree_with_the_exporter() {
    for file in FILES {
        let profile = statements(file).into_iter().find(|s| s.starts_with("CREATE SETTINGS PROFILE")).unwrap();
        let setting = |name: &str| {
            profile.lines().map(str::trim).find(|l| l.starts_with(&format!("{name} ="))).map(str::to_string)
        };
        let met = setting("max_execution_time").unwrap();
        assert!(
            met.contains(&format!("MAX {}", polo_exporter::clickhouse::PROFILE_MAX_EXECUTION_TIME.as_secs())),
            "{file}: {met}"
        );
        let rows = setting("max_result_rows").unwrap();
        assert!(rows.contains(&format!("= {}", polo_exporter::clickhouse::PROFILE_MAX_RESULT_ROWS)), "{file}: {rows}");
        if profile.contains("readonly = 1") {
            // Under readonly = 1 each setting the exporter sends must be CHANGEABLE_IN_READONLY.
            for sent in [
                "max_execution_time",
                "cancel_http_readonly_queries_on_client_close",
                "log_comment",
                "skip_unavailable_shards",
            ] {
                let line = setting(sent).unwrap_or_else(|| panic!("{file}: {sent} missing"));
                assert!(line.contains("CHANGEABLE_IN_READONLY"), "{file}: {line}");
            }
        } else {
            assert!(profile.contains("readonly = 2"), "{file}");
            for fixed in ["max_memory_usage", "max_result_rows", "max_threads"] {
                assert!(setting(fixed).unwrap().contains("CONST"), "{file}: {fixed} must not be raisable");
            }
        }
    }
}

fn up(m: &common::Metrics, source: &str) -> Option<f64> {
    m.value("polo_exporter_source_up", &[("source", source)])
}

#[test]
fn readonly_1_refuses_the_settings_the_exporter_sends_as_auth_naming_the_setting() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--readonly", "1"]);
    let exporter = Exporter::start(&config(&ch.url(), "sources:\n  clickhouse_system:\n    query_log: false\n"));
    let m = exporter.scrape();
    for source in ["collector_runs", "accounts", "clickhouse_system"] {
        assert_eq!(up(&m, source), Some(0.0), "{source}: {}", exporter.log());
        assert_eq!(
            m.value("polo_exporter_source_errors_total", &[("source", source), ("kind", "auth")]),
            Some(1.0),
            "{source}: {}",
            exporter.log()
        );
    }
    let log = exporter.log();
    assert!(log.contains("Code: 164"), "{log}");
    assert!(
        log.contains("refuses the setting max_execution_time") || log.contains("refuses the setting log_comment"),
        "the setting is named: {log}"
    );
}

#[test]
fn readonly_2_lets_every_source_work() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--readonly", "2"]);
    // The engine really is read-only now.
    let write = common::http(ch.port, "POST", "/", &[], "CREATE TABLE polo.x (a UInt8) ENGINE = Memory");
    assert_ne!(write.status, 200, "{}", write.body);
    assert!(write.body.contains("Code: 164"), "{}", write.body);
    let exporter = Exporter::start(&config(&ch.url(), "sources:\n  clickhouse_system:\n    query_log: false\n"));
    let m = exporter.scrape();
    for source in ["collector_runs", "accounts", "clickhouse_system"] {
        assert_eq!(up(&m, source), Some(1.0), "{source}: {}", exporter.log());
    }
}

fn config_check(yaml: &str, online: bool) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("polo-exporter.yml");
    std::fs::write(&file, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polo-exporter"));
    cmd.args(["--config.file", file.to_str().unwrap(), "--config.check"]);
    if online {
        cmd.arg("--online");
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Needs system.query_log: only the newest engine of the matrix has it.
#[test]
fn online_check_all_ok() {
    let ok = DevClickHouse::start_with_args(&["--seed", "empty"]);
    let (pass, text) = config_check(&config(&ok.url(), ""), true);
    assert!(pass, "{text}");
    for source in ["collector_runs", "accounts", "clickhouse_system"] {
        assert!(text.contains(&format!("{source}: OK")), "{text}");
    }
    assert!(text.contains("online check: OK"), "{text}");
}

#[test]
fn online_check_missing_table() {
    // A missing table: system.query_log absent. The rest works; the check fails and says which.
    let no_log = DevClickHouse::start_with_args(&["--seed", "empty", "--no-query-log"]);
    let (pass, text) = config_check(&config(&no_log.url(), ""), true);
    assert!(!pass, "{text}");
    assert!(text.contains("clickhouse_system: PARTIAL"), "{text}");
    assert!(text.contains("system.query_log") && text.contains("Code: 60"), "{text}");
    assert!(text.contains("collector_runs: OK"), "{text}");
}

#[test]
fn online_check_refused_setting() {
    // A profile that refuses a setting the exporter sends.
    let readonly = DevClickHouse::start_with_args(&["--seed", "empty", "--readonly", "1"]);
    let (pass, text) = config_check(&config(&readonly.url(), ""), true);
    assert!(!pass, "{text}");
    assert!(text.contains("collector_runs: FAILED (auth"), "{text}");
    assert!(text.contains("CHANGEABLE_IN_READONLY"), "the fix is named: {text}");
}

#[test]
fn config_check_warns_where_the_config_exceeds_the_shipped_profile() {
    let yaml =
        config("http://127.0.0.1:9", "sources:\n  clickhouse_system:\n    timeout: 120s\n    max_rows: 500000\n");
    let (pass, text) = config_check(&yaml, false);
    assert!(pass, "only a warning: {text}");
    assert!(text.contains("warning: sources.clickhouse_system.timeout 120s") && text.contains("MAX 60s"), "{text}");
    assert!(text.contains("warning: sources.clickhouse_system.max_rows") && text.contains("200001"), "{text}");
    let (_, text) = config_check(&config("http://127.0.0.1:9", ""), false);
    assert!(!text.contains("warning:"), "defaults agree with the profile: {text}");
}
