use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("test.yml"), &|name| (name == "CH_PW").then(|| "s3cret".to_string()))
}

fn err(text: &str) -> String {
    load(text).expect_err("config should be rejected").to_string()
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = load("clickhouse:\n  url: http://127.0.0.1:8123\n").unwrap();
    assert_eq!(cfg.clickhouse.database, "polo");
    assert_eq!(cfg.clickhouse.user, "default");
    assert_eq!(cfg.clickhouse.timeout, Duration::from_secs(10));
    assert_eq!(cfg.collectors.staleness_factor, 2.0);
    assert_eq!(cfg.collectors.expected_interval("anything"), Duration::from_secs(3600));
    assert_eq!(cfg.sources.accounts.serve_stale_for, Duration::from_secs(3600));
    assert_eq!(cfg.accounts.known_statuses, DEFAULT_KNOWN_STATUSES.map(String::from).to_vec());
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\n  pasword: oops\n");
    assert!(e.starts_with("test.yml:3: key `clickhouse.pasword`"), "{e}");
    assert!(e.contains("unknown field `pasword`"), "{e}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\ncollectors:\n  staleness_factor: [1]\n");
    assert!(e.starts_with("test.yml:4: key `collectors.staleness_factor`"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\ncollectors:\n  expected_intervals:\n    config_ec2: 15 minutes\n");
    assert!(e.starts_with("test.yml:5: key `collectors.expected_intervals.config_ec2`"), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn semantic_errors_name_key_and_line() {
    let e = err("clickhouse:\n  url: http://user:pw@x:8123\n");
    assert!(e.starts_with("test.yml:2: key `clickhouse.url`"), "{e}");
    assert!(!e.contains("pw@"), "the URL's credentials must not be echoed: {e}");
    let e = err("clickhouse:\n  url: http://x:8123\ncollectors:\n  staleness_factor: 0.5\n");
    assert!(e.starts_with("test.yml:4: key `collectors.staleness_factor`"), "{e}");
    let e = err("clickhouse:\n  url: http://x\n  database: \"polo; DROP\"\n");
    assert!(e.contains("clickhouse.database"), "{e}");
}

#[test]
fn password_from_env_and_never_debug_printed() {
    let cfg = load("clickhouse:\n  url: http://x:8123\n  password_env: CH_PW\n").unwrap();
    assert_eq!(cfg.clickhouse.password.expose(), "s3cret");
    assert!(!format!("{cfg:?}").contains("s3cret"));
    let e = err("clickhouse:\n  url: http://x:8123\n  password_env: MISSING\n");
    assert!(e.contains("MISSING is not set"), "{e}");
}

#[test]
fn password_file_is_read_relative_to_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "filepw\n").unwrap();
    let cfg = Config::from_yaml(
        "clickhouse:\n  url: http://x:8123\n  password_file: pw\n",
        &dir.path().join("c.yml"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(cfg.clickhouse.password.expose(), "filepw");
}

#[test]
fn dependencies_are_validated() {
    let cfg = load(
        "clickhouse: {url: 'http://x'}\ncollectors:\n  dependencies:\n    hierarchy_builder:\n      requires: [config_ec2, config_ebs]\n",
    )
    .unwrap();
    let dep = &cfg.collectors.dependencies["hierarchy_builder"];
    assert_eq!(dep.within, Duration::from_secs(1200));
    assert!(cfg.collectors.named_collectors().contains("config_ebs"));
    let e = err("clickhouse: {url: 'http://x'}\ncollectors:\n  dependencies:\n    a:\n      requires: [a]\n");
    assert!(e.contains("collectors.dependencies.a.requires"), "{e}");
}
