//! The command line (`--config.check`, `--version`) and the HTTP surface.

mod common;

use std::process::Command;

use common::{config, free_port, http, root, Exporter};

fn check(yaml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter"))
        .arg("--config.file")
        .arg(&path)
        .arg("--config.check")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn config_check_accepts_the_shipped_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter"))
        .arg("--config.file")
        .arg(root().join("examples/local.yml"))
        .arg("--config.check")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

#[test]
fn config_check_names_key_and_line() {
    let cases = [
        (
            "clickhouse:\n  url: http://x:8123\n  databse: polo\n",
            "bad.yml:3: key `clickhouse.databse`",
            "unknown field",
        ),
        (
            "clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    staleness_factor: high\n",
            "bad.yml:5: key `sources.collector_runs.staleness_factor`",
            "invalid type",
        ),
        (
            "clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    expected_intervals:\n      config_ec2: 15mins\n",
            "bad.yml:6: key `sources.collector_runs.expected_intervals.config_ec2`",
            "invalid duration",
        ),
        (
            "clickhouse:\n  url: http://x:8123\n  timeout: 10\n",
            "bad.yml:3: key `clickhouse.timeout`: invalid duration \"10\"",
            "expected a number and a unit",
        ),
    ];
    for (yaml, location, message) in cases {
        let (ok, _, stderr) = check(yaml);
        assert!(!ok, "{yaml}");
        assert!(
            stderr.contains(location) && stderr.contains(message),
            "expected {location} / {message}, got: {stderr}"
        );
    }
}

#[test]
fn config_check_does_not_contact_clickhouse() {
    // A port nobody listens on: check must still pass, since it only validates.
    let (ok, stdout, _) = check(&config(&format!("http://127.0.0.1:{}", free_port()), ""));
    assert!(ok && stdout.contains("config OK"));
}

#[test]
fn version_flag_prints_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_polo-exporter")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn http_surface() {
    let exporter = Exporter::start(&config(&format!("http://127.0.0.1:{}", free_port()), ""));
    let metrics = exporter.get("/metrics");
    assert_eq!(metrics.status, 200, "a failed source still gives 200");
    assert_eq!(metrics.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    assert!(metrics.body.ends_with("# EOF\n"));
    let landing = exporter.get("/");
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("href=\"/metrics\""));
    assert_eq!(exporter.get("/healthz").status, 200);
    assert_eq!(exporter.get("/readyz").status, 200);
    assert_eq!(exporter.get("/nope").status, 404);
    let post = http(exporter.port, "POST", "/metrics", &[], "");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(http(exporter.port, "DELETE", "/healthz", &[], "").status, 405);
}

#[test]
fn config_check_rejects_absurd_durations_and_hostile_yaml() {
    let (ok, stdout, stderr) =
        check("clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    timeout: 99999999999d\n");
    assert!(!ok && !stdout.contains("config OK"), "{stdout}");
    assert!(
        stderr.contains(
            "bad.yml:5: key `sources.collector_runs.timeout`: invalid duration \"99999999999d\": longer than 10y"
        ),
        "{stderr}"
    );
    let (ok, _, stderr) = check("clickhouse:\n  url: http://x:8123\n  timeout: 20m\n");
    assert!(!ok);
    assert!(stderr.contains("bad.yml:3: key `clickhouse.timeout`: must be between 100ms and 600000ms"), "{stderr}");
    // ~200 KB of nested flow mappings: refused by the nesting bound before the YAML parser.
    let nested = format!("clickhouse:\n  url: http://x:8123\nx: {}1{}\n", "{a: ".repeat(40_000), "}".repeat(40_000));
    let (ok, _, stderr) = check(&nested);
    assert!(!ok);
    assert!(stderr.ends_with("bad.yml:3: nested deeper than 32 levels of [ ] or { }\n"), "{stderr}");
    // Two password keys: a real line (the second key's), not `?`.
    for (yaml, line, key) in [
        ("clickhouse:\n  url: http://x:8123\n  password: a\n  password_env: PW\n", 4, "password_env"),
        ("clickhouse:\n  url: http://x:8123\n  password: a\n  password_file: /nonexistent\n", 4, "password_file"),
    ] {
        let (ok, _, stderr) = check(yaml);
        assert!(!ok);
        assert!(stderr.contains(&format!("bad.yml:{line}: key `clickhouse.{key}`: set at most one")), "{stderr}");
    }
}
