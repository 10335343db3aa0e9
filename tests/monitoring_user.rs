//! deploy/clickhouse/monitoring-user.sql: every statement parses with the real ClickHouse
//! parser (the embedded engine has no access storage to run it), and it grants what the
//! exporter reads.

mod common;

use common::{root, DevClickHouse};

fn statements() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/clickhouse/monitoring-user.sql")).unwrap();
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

#[test]
fn every_statement_parses() {
    let ch = DevClickHouse::start_with_args(&["--seed", "empty", "--no-query-log"]);
    let stmts = statements();
    assert!(stmts.len() >= 10);
    for stmt in &stmts {
        let resp = common::http(ch.port, "POST", "/", &[], &format!("EXPLAIN AST {stmt}"));
        assert_eq!(resp.status, 200, "{stmt}\n{}", resp.body);
    }
}

#[test]
fn grants_cover_every_table_the_exporter_reads() {
    let grants: Vec<String> = statements().into_iter().filter(|s| s.starts_with("GRANT SELECT ON ")).collect();
    let granted: Vec<&str> =
        grants.iter().map(|g| g["GRANT SELECT ON ".len()..].split_whitespace().next().unwrap()).collect();
    let sql_sources =
        ["src/sources/collector_runs/mod.rs", "src/sources/accounts.rs", "src/sources/clickhouse_system/sql.rs"];
    let code: String = sql_sources.iter().map(|p| std::fs::read_to_string(root().join(p)).unwrap()).collect();
    for table in ["collector_runs", "aws_accounts"] {
        assert!(granted.contains(&format!("polo.{table}").as_str()), "polo.{table} not granted");
        assert!(code.contains(&format!("table(\"{table}\")")), "{table} is read");
    }
    for table in ["disks", "query_log", "processes", "parts", "replicas", "mutations", "build_options"] {
        assert!(code.contains(&format!("self.table(\"{table}\")")), "system.{table} not read");
        assert!(granted.contains(&format!("system.{table}").as_str()), "system.{table} not granted");
    }
    assert_eq!(granted.len(), 9, "exactly the tables read: {granted:?}");
}
