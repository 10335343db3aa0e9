use std::time::Duration;

use super::*;
use crate::config::line_of_key;
use crate::sources::accounts::DEFAULT_KNOWN_STATUSES;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, Path::new("test.yml"), &|name| (name == "CH_PW").then(|| "s3cret".to_string()))
}

fn err(text: &str) -> String {
    load(text).expect_err("config should be rejected").to_string()
}

fn clickhouse(cfg: &Config) -> &ClickHouseConfig {
    cfg.clickhouse.as_ref().expect("clickhouse section")
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = load("clickhouse:\n  url: http://127.0.0.1:8123\n").unwrap();
    assert_eq!(clickhouse(&cfg).database, "polo");
    assert_eq!(clickhouse(&cfg).user, "default");
    assert_eq!(clickhouse(&cfg).timeout, Duration::from_secs(10));
    let runs = cfg.sources.collector_runs.as_ref().expect("collector_runs is on by default");
    assert_eq!(runs.config.collectors.staleness_factor, 2.0);
    assert_eq!(runs.config.collectors.expected_interval("anything"), Duration::from_secs(3600));
    let accounts = cfg.sources.accounts.as_ref().expect("accounts is on by default");
    assert_eq!(accounts.settings.serve_stale_for, Duration::from_secs(3600));
    assert_eq!(accounts.config.known_statuses, DEFAULT_KNOWN_STATUSES.map(String::from).to_vec());
    assert!(cfg.sources.sqs.is_none() && cfg.sources.cloudwatch.is_none(), "AWS sources are off by default");
}

#[test]
fn enabled_is_the_one_switch() {
    let cfg = load("clickhouse:\n  url: http://x\nsources:\n  accounts:\n    enabled: false\n    known_statuses: []\n")
        .unwrap();
    assert!(cfg.sources.accounts.is_none(), "a switched-off section is parsed, not validated");
    let cfg = load("sources:\n  collector_runs: {enabled: false}\n  accounts: {enabled: false}\n  clickhouse_system: {enabled: false}\n")
        .unwrap();
    assert!(cfg.clickhouse.is_none());
    assert!(cfg.sources.build().is_empty());
    let e = err("sources:\n  collector_runs:\n    timeout: 5s\n");
    assert!(e.starts_with("test.yml:2: key `sources.collector_runs`"), "{e}");
    assert!(e.contains("needs the `clickhouse` section"), "{e}");
    let e = err("clickhouse: {url: 'http://x'}\nsources:\n  sqs:\n    enabled: true\n");
    assert!(e.starts_with("test.yml:3: key `sources.sqs.queues`"), "{e}");
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\n  pasword: oops\n");
    assert!(e.starts_with("test.yml:3: key `clickhouse.pasword`"), "{e}");
    assert!(e.contains("unknown field `pasword`"), "{e}");
    let e = err("clickhouse:\n  url: http://x:8123\nsources:\n  sqs:\n    queus: []\n");
    assert!(e.starts_with("test.yml:5: key `sources.sqs.queus`"), "{e}");
    let e = err("clickhouse:\n  url: http://x:8123\ncollectors:\n  staleness_factor: 2\n");
    assert!(e.starts_with("test.yml:3: key `collectors`"), "the old top-level sections are gone: {e}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    staleness_factor: [1]\n");
    assert!(e.starts_with("test.yml:5: key `sources.collector_runs.staleness_factor`"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn bad_duration_names_key_and_line() {
    let e = err("clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    expected_intervals:\n      config_ec2: 15 minutes\n");
    assert!(e.starts_with("test.yml:6: key `sources.collector_runs.expected_intervals.config_ec2`"), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn semantic_errors_name_key_and_line() {
    let e = err("clickhouse:\n  url: http://user:pw@x:8123\n");
    assert!(e.starts_with("test.yml:2: key `clickhouse.url`"), "{e}");
    assert!(!e.contains("pw@"), "the URL's credentials must not be echoed: {e}");
    let e = err("clickhouse:\n  url: http://x:8123\nsources:\n  collector_runs:\n    staleness_factor: 0.5\n");
    assert!(e.starts_with("test.yml:5: key `sources.collector_runs.staleness_factor`"), "{e}");
    let e = err("clickhouse:\n  url: http://x\n  database: \"polo; DROP\"\n");
    assert!(e.contains("clickhouse.database"), "{e}");
    let e = err("clickhouse:\n  url: http://x\n  password: a\n  password_env: CH_PW\n");
    assert!(e.starts_with("test.yml:4: key `clickhouse.password_env`"), "{e}");
}

#[test]
fn durations_are_bounded_per_key() {
    let e = err("clickhouse:\n  url: http://x\nsources:\n  collector_runs:\n    timeout: 99999999d\n");
    assert!(e.starts_with("test.yml:5: key `sources.collector_runs.timeout`"), "{e}");
    assert!(e.contains("longer than 10y"), "beyond any duration accepted: {e}");
    let e = err("clickhouse:\n  url: http://x\nsources:\n  collector_runs:\n    timeout: 1d\n");
    assert!(e.starts_with("test.yml:5: key `sources.collector_runs.timeout`"), "{e}");
    assert!(e.contains("must be between"), "{e}");
    let e = err("clickhouse:\n  url: http://x\n  timeout: 50ms\n");
    assert!(e.starts_with("test.yml:3: key `clickhouse.timeout`"), "{e}");
}

#[test]
fn list_items_have_their_line() {
    let text = "clickhouse: {url: 'http://x'}\naws: {region: eu-west-1}\nsources:\n  sqs:\n    enabled: true\n    queues:\n      - name: a\n      - prefix: b\n      - name: c\n        url: http://d\n";
    let e = err(text);
    assert!(e.starts_with("test.yml:9: key `sources.sqs.queues[2]`"), "{e}");
    assert_eq!(line_of_key(text, "clickhouse.url"), Some(1), "flow mapping on one line");
}

#[test]
fn password_from_env_and_never_debug_printed() {
    let cfg = load("clickhouse:\n  url: http://x:8123\n  password_env: CH_PW\n").unwrap();
    assert_eq!(clickhouse(&cfg).password.expose(), "s3cret");
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
    assert_eq!(clickhouse(&cfg).password.expose(), "filepw");
}

#[test]
fn dependencies_are_validated() {
    let cfg = load(
        "clickhouse: {url: 'http://x'}\nsources:\n  collector_runs:\n    dependencies:\n      hierarchy_builder:\n        requires: [config_ec2, config_ebs]\n",
    )
    .unwrap();
    let collectors = &cfg.sources.collector_runs.as_ref().unwrap().config.collectors;
    assert_eq!(collectors.dependencies["hierarchy_builder"].within, Duration::from_secs(1200));
    assert!(collectors.named_collectors().contains("config_ebs"));
    let e = err("clickhouse: {url: 'http://x'}\nsources:\n  collector_runs:\n    dependencies:\n      a:\n        requires: [a]\n");
    assert!(e.contains("sources.collector_runs.dependencies.a.requires"), "{e}");
}

#[test]
fn cloudwatch_defaults_to_one_round_per_period() {
    let cfg = load("aws: {region: eu-west-1}\nsources:\n  collector_runs: {enabled: false}\n  accounts: {enabled: false}\n  clickhouse_system: {enabled: false}\n  cloudwatch:\n    enabled: true\n    period: 10m\n    lambda_functions: [f]\n").unwrap();
    let cw = cfg.sources.cloudwatch.as_ref().unwrap();
    assert_eq!(cw.settings.min_interval, Duration::from_secs(600));
    assert_eq!(cw.config.region, "eu-west-1");
}
