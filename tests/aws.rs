//! The `sqs` and `cloudwatch` sources through the real AWS SDKs against the local emulator
//! (moto for SQS, the CBOR CloudWatch front), never a real AWS endpoint.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, DevAws, DevClickHouse, Exporter, Metrics, AWS_TEST_ENV};

fn config(aws: &DevAws, extra: &str) -> String {
    format!(
        "clickhouse:\n  url: http://127.0.0.1:{}\naws:\n  region: eu-west-1\n  endpoint_url: {}\n{extra}",
        free_port(),
        aws.url()
    )
}

/// The AWS requests the sources say they sent equal what the emulator received, call by call.
fn assert_requests_match(aws: &DevAws, m: &Metrics) {
    let received: f64 = [
        "sqs:ListQueues",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:ListDeadLetterSourceQueues",
        "cloudwatch:GetMetricData",
    ]
    .iter()
    .map(|action| aws.calls(action) as f64)
    .sum();
    let sent: f64 = m.find("polo_exporter_aws_requests_total", &[]).iter().map(|s| s.2).sum();
    assert!(received > 0.0);
    assert_eq!(sent, received, "requests counted by the exporter vs received by the emulator");
}

fn visible(m: &Metrics, queue: &str) -> Option<f64> {
    m.value("polo_sqs_messages_visible", &[("queue", queue)])
}

#[test]
fn depths_and_dead_letter_pairing_are_exact() {
    let aws = DevAws::start(&["--seed", "empty"]);
    aws.create_queue("orders-dlq", None);
    let orders = aws.create_queue("orders", Some("orders-dlq"));
    let dlq = aws.sqs("GetQueueUrl", serde_json::json!({"QueueName": "orders-dlq"}))["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let billing = aws.create_queue("billing-1", None);
    aws.send(&orders, 5, 0);
    aws.send(&dlq, 2, 0);
    aws.send(&billing, 1, 0);
    aws.send(&billing, 3, 900);
    // The DLQ is not named: it is found from orders' RedrivePolicy.
    let exporter = Exporter::start_env(
        &config(
            &aws,
            "sources:\n  sqs:\n    enabled: true\n    queues:\n      - name: orders\n      - prefix: billing-\n",
        ),
        &AWS_TEST_ENV,
    );
    let resp = exporter.get("/metrics");
    let m = Metrics::parse(&resp.body);
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "sqs")]), Some(1.0), "{}", exporter.log());
    assert_eq!(visible(&m, "orders"), Some(5.0));
    assert_eq!(
        m.value(
            "polo_sqs_messages_visible",
            &[("queue", "orders-dlq"), ("dead_letter", "true"), ("source_queue", "orders")]
        ),
        Some(2.0)
    );
    assert_eq!(m.value("polo_sqs_messages_visible", &[("queue", "billing-1"), ("dead_letter", "false")]), Some(1.0));
    assert_eq!(m.value("polo_sqs_messages_delayed", &[("queue", "billing-1")]), Some(3.0));
    assert_eq!(m.value("polo_sqs_messages_in_flight", &[("queue", "orders")]), Some(0.0));
    assert!(m.find("polo_sqs_messages_visible", &[("queue", "orders"), ("source_queue", "orders")]).is_empty());
    // "DLQ non-empty" is one expression.
    let dlq_nonempty: Vec<_> =
        m.find("polo_sqs_messages_visible", &[("dead_letter", "true")]).into_iter().filter(|s| s.2 > 0.0).collect();
    assert_eq!(dlq_nonempty.len(), 1);
    let status: serde_json::Value = serde_json::from_str(&exporter.get("/api/v1/system/status").body).unwrap();
    assert_eq!(status["sqs"]["queue_depth"], 6);
    assert_eq!(status["sqs"]["dlq_depth"], 2);
    // Read-only: nothing but listing and attribute calls reached SQS from the exporter.
    assert_eq!(aws.calls("sqs:ReceiveMessage"), 0);
    assert_eq!(aws.calls("sqs:DeleteMessage"), 0);
    let secret = AWS_TEST_ENV[1].1;
    assert!(!exporter.log().contains(secret) && !resp.body.contains(secret));
}

#[test]
fn dead_letter_queue_named_directly_finds_its_source() {
    let aws = DevAws::start(&["--seed", "empty"]);
    aws.create_queue("jobs-dlq", None);
    aws.create_queue("jobs", Some("jobs-dlq"));
    let exporter = Exporter::start_env(
        &config(
            &aws,
            "sources:\n  sqs:\n    enabled: true\n    queues:\n      - name: jobs-dlq\n        dead_letter: true\n",
        ),
        &AWS_TEST_ENV,
    );
    let m = exporter.scrape();
    assert_eq!(
        m.value(
            "polo_sqs_messages_visible",
            &[("queue", "jobs-dlq"), ("dead_letter", "true"), ("source_queue", "jobs")]
        ),
        Some(0.0),
        "{}",
        exporter.log()
    );
}

#[test]
fn a_queue_deleted_after_listing_fails_alone() {
    let aws = DevAws::start(&["--seed", "empty"]);
    aws.create_queue("p-a", None);
    aws.create_queue("p-b", None);
    aws.control("/_polo/faults", serde_json::json!({"delete_after_list": ["p-b"]}));
    let exporter = Exporter::start_env(
        &config(&aws, "sources:\n  sqs:\n    enabled: true\n    queues:\n      - prefix: p-\n"),
        &AWS_TEST_ENV,
    );
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "sqs")]), Some(1.0), "{}", exporter.log());
    assert_eq!(visible(&m, "p-a"), Some(0.0));
    assert_eq!(m.value("polo_sqs_queue_up", &[("queue", "p-b")]), Some(0.0));
    assert_eq!(m.value("polo_sqs_queue_up", &[("queue", "p-a")]), Some(1.0));
    assert_eq!(m.value("polo_exporter_source_errors_total", &[("source", "sqs"), ("kind", "query")]), Some(1.0));
    assert!(exporter.log().contains("p-b"), "the failing queue is named in the log");
}

#[test]
fn access_denied_on_one_queue_fails_alone() {
    let aws = DevAws::start(&["--seed", "empty"]);
    let a = aws.create_queue("d-a", None);
    aws.create_queue("d-b", None);
    aws.send(&a, 4, 0);
    aws.control("/_polo/faults", serde_json::json!({"deny_queues": ["d-b"]}));
    let exporter = Exporter::start_env(
        &config(&aws, "sources:\n  sqs:\n    enabled: true\n    queues:\n      - prefix: d-\n"),
        &AWS_TEST_ENV,
    );
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "sqs")]), Some(1.0));
    assert_eq!(visible(&m, "d-a"), Some(4.0));
    assert_eq!(m.value("polo_sqs_queue_up", &[("queue", "d-b")]), Some(0.0));
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "sqs"), ("kind", "auth")]),
        Some(1.0),
        "{}",
        exporter.log()
    );
}

/// 130 functions × 4 figures + 1 queue = 521 queries: two GetMetricData batches (500 + 21),
/// and with 100 results a page, 5 + 1 pages.
#[test]
fn more_than_500_cloudwatch_queries_are_batched_and_paginated() {
    let aws = DevAws::start(&["--seed", "empty", "--cw-page-size", "100"]);
    aws.create_queue("cw-q", None);
    let functions: Vec<String> = (0..130).map(|i| format!("fn-{i:03}")).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut points = Vec::new();
    for (i, f) in functions.iter().enumerate().filter(|(i, _)| i % 40 == 0) {
        for minutes_ago in [3.5, 4.5] {
            points.push(serde_json::json!({"namespace": "AWS/Lambda", "name": "Errors", "dimensions": [{"Name": "FunctionName", "Value": f}], "timestamp": now - minutes_ago * 60.0, "value": i as f64 + 1.0}));
        }
    }
    points.push(serde_json::json!({"namespace": "AWS/SQS", "name": "ApproximateAgeOfOldestMessage", "dimensions": [{"Name": "QueueName", "Value": "cw-q"}], "timestamp": now - 200.0, "value": 321.0}));
    aws.control("/_polo/datapoints", serde_json::Value::Array(points));
    let extra = format!(
        "sources:\n  sqs:\n    enabled: true\n    queues:\n      - name: cw-q\n  cloudwatch:\n    enabled: true\n    queues:\n      - name: cw-q\n    period: 1m\n    delay: 1m\n    lambda_functions: [{}]\n",
        functions.join(", ")
    );
    let exporter = Exporter::start_env(&config(&aws, &extra), &AWS_TEST_ENV);
    exporter.scrape();
    let m = exporter.scrape();
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "cloudwatch")]), Some(1.0), "{}", exporter.log());
    assert_eq!(aws.calls("cloudwatch:GetMetricData"), 6, "two batches, 5 + 1 pages");
    assert_eq!(aws.calls("cloudwatch:metrics_requested"), 521);
    assert_eq!(m.value("polo_exporter_cloudwatch_metrics_requested_total", &[("source", "cloudwatch")]), Some(521.0));
    assert_requests_match(&aws, &m);
    // Each period's Sum: the datapoints sit in two different 1-minute periods; the newest complete one wins.
    for i in [0usize, 40, 80, 120] {
        assert_eq!(m.value("polo_lambda_errors", &[("function", &functions[i])]), Some(i as f64 + 1.0), "fn {i}");
    }
    assert_eq!(m.value("polo_sqs_oldest_message_age_seconds", &[("queue", "cw-q")]), Some(321.0));
}

#[test]
fn twenty_scrapes_cause_one_cloudwatch_round_per_period() {
    let aws = DevAws::start(&["--seed", "demo", "--static"]);
    aws.reset_calls();
    let extra = "sources:\n  sqs:\n    enabled: true\n    queues: &q\n      - prefix: polo-\n  cloudwatch:\n    enabled: true\n    queues: *q\n    period: 5m\n    lambda_functions: [polo-collector-config-ec2, polo-cur-ingest]\n";
    let exporter = Exporter::start_env(&config(&aws, extra), &AWS_TEST_ENV);
    let mut last = Metrics::default();
    for _ in 0..20 {
        last = exporter.scrape();
    }
    assert_eq!(aws.calls("cloudwatch:GetMetricData"), 1, "{}", exporter.log());
    assert_eq!(last.value("polo_exporter_cloudwatch_metrics_requested_total", &[("source", "cloudwatch")]), Some(12.0));
    assert_requests_match(&aws, &last);
    // The demo's figures came through.
    assert_eq!(
        last.value("polo_lambda_invocations", &[("function", "polo-collector-config-ec2")]).map(|v| v > 0.0),
        Some(true)
    );
    assert_eq!(last.value("polo_sqs_oldest_message_age_seconds", &[("queue", "polo-events-dlq")]), Some(5400.0));
    assert_eq!(
        last.value(
            "polo_sqs_messages_visible",
            &[("queue", "polo-events-dlq"), ("dead_letter", "true"), ("source_queue", "polo-events")]
        ),
        Some(3.0)
    );
}

#[test]
fn no_credentials_marks_aws_sources_down_quickly_while_clickhouse_serves() {
    let ch = DevClickHouse::start();
    let aws = DevAws::start(&["--seed", "empty"]);
    let cfg = format!(
        "clickhouse:\n  url: {}\naws:\n  region: eu-west-1\n  endpoint_url: {}\nsources:\n  sqs:\n    enabled: true\n    queues:\n      - prefix: polo-\n  cloudwatch:\n    enabled: true\n    lambda_functions: [f]\n",
        ch.url(),
        aws.url()
    );
    // No credentials at all: the harness removes AWS_* variables and disables IMDS.
    let exporter = Exporter::start(&cfg);
    let start = Instant::now();
    let m = exporter.scrape();
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "sqs")]), Some(0.0));
    assert_eq!(
        m.value("polo_exporter_source_errors_total", &[("source", "sqs"), ("kind", "auth")]),
        Some(1.0),
        "{}",
        exporter.log()
    );
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "cloudwatch")]), Some(0.0));
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "collector_runs")]), Some(1.0));
    assert_eq!(m.value("polo_exporter_source_up", &[("source", "accounts")]), Some(1.0));
    assert_eq!(aws.calls("sqs:ListQueues"), 0, "nothing unsigned was sent");
}

/// deploy/aws/iam-policy.json allows exactly the operations the code calls, and nothing that
/// reads or changes messages.
#[test]
fn iam_policy_matches_the_calls_made() {
    let root = common::root();
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("deploy/aws/iam-policy.json")).unwrap()).unwrap();
    let mut allowed: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()))
        .collect();
    allowed.sort();
    let code: String =
        ["src/aws/queues.rs", "src/sources/sqs/mod.rs", "src/sources/cloudwatch.rs", "src/sources/aws_cost/mod.rs"]
            .iter()
            .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
            .collect();
    let mut called: Vec<String> = Vec::new();
    for (call, action) in [
        (".list_queues()", "sqs:ListQueues"),
        (".get_queue_url()", "sqs:GetQueueUrl"),
        (".get_queue_attributes()", "sqs:GetQueueAttributes"),
        (".list_dead_letter_source_queues()", "sqs:ListDeadLetterSourceQueues"),
        (".get_metric_data()", "cloudwatch:GetMetricData"),
        (".get_cost_and_usage()", "ce:GetCostAndUsage"),
    ] {
        if code.contains(call) {
            called.push(action.to_string());
        }
    }
    called.sort();
    assert_eq!(allowed, called);
    for forbidden in [
        ".receive_message()",
        ".delete_message()",
        ".purge_queue()",
        ".send_message()",
        ".set_queue_attributes()",
        // Cost Explorer's other calls are billed too, and this one has no use for them.
        ".get_cost_forecast()",
        ".get_cost_and_usage_with_resources()",
    ] {
        assert!(!code.contains(forbidden), "{forbidden} must never be called");
    }
}

/// With `aws.role_arn`, the exporter assumes the role through STS (at the same endpoint) and
/// reads SQS with the role's credentials.
#[test]
fn assumes_the_configured_role() {
    let aws = DevAws::start(&["--seed", "empty"]);
    let url = aws.create_queue("role-q", None);
    aws.send(&url, 2, 0);
    let extra = "  role_arn: arn:aws:iam::123456789012:role/polo-exporter\n  external_id: polo-test\nsources:\n  sqs:\n    enabled: true\n    queues:\n      - name: role-q\n";
    // config() ends inside the `aws:` section, so the role keys continue it.
    let cfg = config(&aws, extra);
    let exporter = Exporter::start_env(&cfg, &AWS_TEST_ENV);
    let m = exporter.scrape();
    assert_eq!(visible(&m, "role-q"), Some(2.0), "{}", exporter.log());
    assert_eq!(aws.calls("sts:AssumeRole"), 1, "one AssumeRole, credentials cached");
}
