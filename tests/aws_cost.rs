//! The `aws_cost` source through the real Cost Explorer SDK against the local emulator's Cost
//! Explorer (dev/aws/server.py), never a real AWS endpoint. Expected figures are summed here from
//! the seeded line items, not taken from the exporter.

mod common;

use std::collections::BTreeMap;

use common::{DevAws, DevClickHouse, Exporter, Metrics, AWS_TEST_ENV};
use polo_exporter::clock::{civil_from_days, days_from_civil, unix_seconds};
use serde_json::json;

const TAG: &str = "polo:purpose";
const CE_PAGE_SIZE: i64 = 2;

fn config(aws: &DevAws, extra: &str) -> String {
    format!(
        "aws:\n  region: eu-west-1\n  endpoint_url: {}\nsources:\n  collector_runs:\n    enabled: false\n  accounts:\n    enabled: false\n  clickhouse_system:\n    enabled: false\n  aws_cost:\n    enabled: true\n{extra}",
        aws.url()
    )
}

fn today() -> i64 {
    (unix_seconds() as i64).div_euclid(86_400)
}

fn date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn first_of_month(day: i64) -> i64 {
    let (y, m, _) = civil_from_days(day);
    days_from_civil(y, m, 1)
}

fn item(day: i64, service: &str, tag: Option<&str>, usd: f64) -> serde_json::Value {
    let tags = match tag {
        Some(v) => json!({TAG: v}),
        None => json!({}),
    };
    json!({"day": date(day), "service": service, "tags": tags, "cost": usd})
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

fn status(exporter: &Exporter) -> serde_json::Value {
    serde_json::from_str(&exporter.get("/api/v1/system/status").body).unwrap()
}

/// Line items over the last 40 days for three tagged services (amounts differ by day and
/// service), plus untagged and other-tag cost the filter must leave out.
fn seed(aws: &DevAws) -> Vec<(i64, String, f64)> {
    let services = ["AWS Lambda", "Amazon Simple Queue Service", "AWS Secrets Manager"];
    let mut tagged = Vec::new();
    let mut items = Vec::new();
    for day in today() - 40..=today() {
        for (k, service) in services.iter().enumerate() {
            let usd = ((day % 17) as f64 + 1.0) * 0.25 + k as f64 * 1.5;
            tagged.push((day, service.to_string(), usd));
            items.push(item(day, service, Some("polo-infrastructure"), usd));
        }
        items.push(item(day, "Amazon Elastic Compute Cloud - Compute", None, 500.0));
        items.push(item(day, "AWS Lambda", Some("customer-workload"), 70.0));
    }
    aws.control("/_polo/costs", json!({"items": items, "active_tags": [TAG]}));
    tagged
}

#[test]
fn figures_equal_the_seeded_costs_and_every_page_is_followed() {
    // 2 groups a page: the round takes many pages, and a day's 3 groups are split across two.
    let aws = DevAws::start(&["--seed", "empty", "--ce-page-size", &CE_PAGE_SIZE.to_string()]);
    let tagged = seed(&aws);
    aws.reset_calls();
    let before = unix_seconds();
    let exporter = Exporter::start_env(&config(&aws, "    monthly_budget_usd: 123.5\n"), &AWS_TEST_ENV);
    let m = exporter.scrape();
    let after = unix_seconds();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "aws_cost")]), Some(1.0), "{}", exporter.log());
    // The day of the round, which the figures depend on: its as-of time, checked against this
    // test's clock read around it (so a run across 00:00 UTC computes the exporter's day). Every
    // figure below holds on any day of any month (the calendar edges are the unit tests').
    let fetched = m.value("polo_own_cost_fetched_timestamp_seconds", &[]).unwrap();
    assert!(before.floor() <= fetched && fetched <= after.ceil(), "fetched at {fetched}, not in [{before}, {after}]");
    let today = (fetched.floor() as i64).div_euclid(86_400);
    let month = first_of_month(today);
    let last = today - 1;
    let mut mtd: BTreeMap<&str, f64> = BTreeMap::new();
    let mut last_day: BTreeMap<&str, f64> = BTreeMap::new();
    for (day, service, usd) in &tagged {
        if *day >= month {
            *mtd.entry(service).or_default() += usd;
        }
        if *day == last {
            *last_day.entry(service).or_default() += usd;
        }
    }
    for (service, usd) in &mtd {
        assert!(
            close(m.value("polo_own_cost_month_to_date_by_service_usd", &[("service", service)]), *usd),
            "{service}"
        );
    }
    for (service, usd) in &last_day {
        assert!(close(m.value("polo_own_cost_last_day_by_service_usd", &[("service", service)]), *usd), "{service}");
    }
    assert_eq!(m.find("polo_own_cost_month_to_date_by_service_usd", &[]).len(), 3, "untagged cost left out");
    assert!(close(m.value("polo_own_cost_month_to_date_usd", &[]), mtd.values().sum()));
    assert!(close(m.value("polo_own_cost_last_day_usd", &[]), last_day.values().sum()));
    // Forecast: complete days of the month (before today) at their run rate, over the month's length.
    let complete: f64 = tagged.iter().filter(|(d, _, _)| *d >= month && *d < today).map(|t| t.2).sum();
    let done = (today - month) as f64;
    let (y, mo, _) = civil_from_days(today);
    let length = (if mo == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, mo + 1, 1) } - month) as f64;
    let rate = if done >= 1.0 { complete / done } else { last_day.values().sum() };
    assert!(close(m.value("polo_own_cost_month_end_forecast_usd", &[]), complete + rate * (length - done)));
    let trailing: f64 = tagged.iter().filter(|(d, _, _)| *d >= last - 7 && *d < last).map(|t| t.2).sum::<f64>() / 7.0;
    assert!(close(m.value("polo_own_cost_trailing_daily_average_usd", &[]), trailing));
    assert_eq!(m.value("polo_own_cost_budget_usd", &[]), Some(123.5));
    assert_eq!(m.value("polo_own_cost_data_available", &[]), Some(1.0));
    assert_eq!(m.value("polo_own_cost_last_complete_day_timestamp_seconds", &[]), Some((last * 86_400) as f64));
    // Every page is one request, counted and priced by the exporter as the emulator saw them.
    // The round asks for the month to date and the 7 days before the last complete day, through
    // today: 3 tagged groups a day, CE_PAGE_SIZE a page. At least 9 days on any day of the month.
    let days = today - month.min(last - 7) + 1;
    let expected_pages = (3 * days + CE_PAGE_SIZE - 1) / CE_PAGE_SIZE;
    let pages = aws.calls("ce:GetCostAndUsage");
    assert_eq!(pages as i64, expected_pages, "{days} days");
    assert!(pages >= 14, "{pages} pages: paging must be followed on every day of the month");
    assert_eq!(m.value("polo_exporter_aws_requests_total", &[("source", "aws_cost")]), Some(pages as f64));
    assert!(close(m.value("polo_exporter_aws_request_cost_usd_total", &[("source", "aws_cost")]), pages as f64 * 0.01));
    let st = status(&exporter);
    assert_eq!(st["cost"]["data"], "ok");
    assert_eq!(st["cost"]["budget_usd"], 123.5);
    assert_eq!(st["cost"]["last_complete_day"], date(last));
    assert_eq!(st["cost"]["tag"], "polo:purpose=polo-infrastructure");
    let cents = (mtd.values().sum::<f64>() * 100.0).round() / 100.0;
    assert_eq!(st["cost"]["month_to_date_usd"].as_f64(), Some(cents));
}

#[test]
fn fifty_scrapes_make_one_round_and_a_restart_with_a_state_file_makes_none() {
    let aws = DevAws::start(&["--seed", "empty"]);
    seed(&aws);
    aws.reset_calls();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("aws_cost.json");
    let extra = format!("    state_file: {}\n", state.display());
    let first = Exporter::start_env(&config(&aws, &extra), &AWS_TEST_ENV);
    let mut m = Metrics::default();
    for _ in 0..50 {
        m = first.scrape();
    }
    assert_eq!(aws.calls("ce:GetCostAndUsage"), 1, "{}", first.log());
    assert_eq!(m.value("polo_exporter_aws_requests_total", &[("source", "aws_cost")]), Some(1.0));
    let fetched = m.value("polo_own_cost_fetched_timestamp_seconds", &[]);
    let mtd = m.value("polo_own_cost_month_to_date_usd", &[]);
    drop(first);
    // A restart within min_interval serves the state file's figures and asks nothing.
    let second = Exporter::start_env(&config(&aws, &extra), &AWS_TEST_ENV);
    for _ in 0..50 {
        m = second.scrape();
    }
    assert_eq!(aws.calls("ce:GetCostAndUsage"), 1, "{}", second.log());
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "aws_cost")]), Some(1.0));
    // The as-of time of the first round, to the millisecond: a unix time near 1.7e9 s carries
    // about 2e-7 s of f64 precision, which a save and a reload may move by one unit.
    let again = m.value("polo_own_cost_fetched_timestamp_seconds", &[]).expect("fetched time");
    assert!(
        (again - fetched.expect("fetched time")).abs() < 1e-3,
        "as-of time of the first round: {again} vs {fetched:?}"
    );
    assert_eq!(m.value("polo_own_cost_month_to_date_usd", &[]), mtd);
    assert_eq!(m.value("polo_exporter_aws_requests_total", &[("source", "aws_cost")]), Some(0.0));
    drop(second);
    // Without the state file, a restart makes one round.
    let third = Exporter::start_env(&config(&aws, ""), &AWS_TEST_ENV);
    for _ in 0..5 {
        third.scrape();
    }
    assert_eq!(aws.calls("ce:GetCostAndUsage"), 2);
}

#[test]
fn an_inactive_tag_is_reported_as_no_data_not_as_zero() {
    let aws = DevAws::start(&["--seed", "empty"]);
    let items: Vec<_> =
        (today() - 3..=today()).map(|d| item(d, "AWS Lambda", Some("polo-infrastructure"), 2.0)).collect();
    // Tagged, but the tag is not activated as a cost-allocation tag.
    aws.control("/_polo/costs", json!({"items": items, "active_tags": []}));
    let exporter = Exporter::start_env(&config(&aws, "    monthly_budget_usd: 10\n"), &AWS_TEST_ENV);
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "aws_cost")]), Some(1.0), "{}", exporter.log());
    assert_eq!(m.value("polo_own_cost_data_available", &[]), Some(0.0));
    assert!(!m.has("polo_own_cost_month_to_date_usd"), "no data is not 0 USD");
    assert!(!m.has("polo_own_cost_month_end_forecast_usd"));
    assert_eq!(m.value("polo_own_cost_budget_usd", &[]), Some(10.0));
    let st = status(&exporter);
    assert_eq!(st["cost"]["data"], "no_data");
    assert!(st["cost"]["month_to_date_usd"].is_null());
    assert!(exporter.log().contains("activate `polo:purpose` as a cost allocation tag"), "{}", exporter.log());
}

#[test]
fn zero_cost_is_data() {
    let aws = DevAws::start(&["--seed", "empty"]);
    let items: Vec<_> =
        (today() - 3..=today()).map(|d| item(d, "AWS Lambda", Some("polo-infrastructure"), 0.0)).collect();
    aws.control("/_polo/costs", json!({"items": items, "active_tags": [TAG]}));
    let exporter = Exporter::start_env(&config(&aws, ""), &AWS_TEST_ENV);
    let m = exporter.scrape();
    assert_eq!(m.value("polo_own_cost_data_available", &[]), Some(1.0), "{}", exporter.log());
    assert_eq!(m.value("polo_own_cost_last_day_usd", &[]), Some(0.0));
    assert_eq!(status(&exporter)["cost"]["data"], "ok");
}

#[test]
fn no_credentials_fail_this_source_alone() {
    let ch = DevClickHouse::start();
    let aws = DevAws::start(&["--seed", "empty"]);
    let cfg = format!(
        "clickhouse:\n  url: {}\naws:\n  endpoint_url: {}\nsources:\n  aws_cost:\n    enabled: true\n",
        ch.url(),
        aws.url()
    );
    // No credentials at all: the harness removes AWS_* variables and disables IMDS.
    let exporter = Exporter::start(&cfg);
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "aws_cost")]), Some(0.0));
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "aws_cost"), ("kind", "auth")]),
        Some(1.0),
        "{}",
        exporter.log()
    );
    for other in ["collector_runs", "accounts", "clickhouse_system"] {
        assert_eq!(m.value("polo_exporter_source_up", &[("source", other)]), Some(1.0), "{other}");
    }
    assert_eq!(aws.calls("ce:GetCostAndUsage"), 0, "nothing unsigned was sent");
    assert_eq!(m.value("polo_exporter_aws_request_cost_usd_total", &[("source", "aws_cost")]), Some(0.0));
}

#[test]
fn a_denied_round_is_not_retried_before_retry_after() {
    let aws = DevAws::start(&["--seed", "empty"]);
    aws.control("/_polo/faults", json!({"deny_cost_explorer": true}));
    let exporter = Exporter::start_env(&config(&aws, ""), &AWS_TEST_ENV);
    let mut m = Metrics::default();
    for _ in 0..10 {
        m = exporter.scrape();
    }
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "aws_cost")]), Some(0.0));
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "aws_cost"), ("kind", "auth")]),
        Some(10.0),
        "{}",
        exporter.log()
    );
    assert_eq!(aws.calls("ce:GetCostAndUsage"), 1, "one request, then waiting for retry_after");
    assert!(exporter.log().contains("next attempt in"));
}

#[test]
fn cost_explorer_is_asked_in_us_east_1_whatever_the_region() {
    // The emulator records the SigV4 scope; the SDK signs for the region it sends to.
    let aws = DevAws::start(&["--seed", "empty"]);
    seed(&aws);
    let exporter = Exporter::start_env(&config(&aws, ""), &AWS_TEST_ENV);
    exporter.scrape();
    assert_eq!(aws.calls("ce:region:us-east-1"), 1, "{}", exporter.log());
}
