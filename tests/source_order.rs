//! No source reads another source's state: each source's output is the same whichever order the
//! sources run in. Every source of the shipped example config runs against the real ClickHouse
//! engine (demo data, frozen) and the AWS emulator, once in registration order and once in
//! reverse, each time from freshly built sources; the outputs are compared source by source.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{DevAws, DevClickHouse, AWS_TEST_ENV};
use polo_exporter::config_file::Config;
use polo_exporter::metrics::{encode_sets, FamilySet, Sample, Value};

/// Families whose values move on their own between two runs a few seconds apart (background
/// merges, other processes writing to the disk, a query running at that instant): compared by
/// their series, not their values.
const MOVING: [&str; 13] = [
    "polo_clickhouse_disk_free_bytes",
    "polo_clickhouse_disk_unreserved_bytes",
    "polo_clickhouse_table_bytes_on_disk",
    "polo_clickhouse_table_active_parts",
    "polo_clickhouse_table_max_parts_in_partition",
    "polo_clickhouse_longest_running_query_seconds",
    // When the cost figures were fetched: the time of each run.
    "polo_own_cost_fetched_timestamp_seconds",
    // Health and readiness are judged at the time of each run: a key may cross its late
    // threshold, a dependency its window, in the seconds between the two passes.
    "polo_collector_keys",
    "polo_collector_dependencies_ready",
    // The freshness SLO accrues key-seconds up to the time of each run.
    "polo_collector_slo_attainment_ratio",
    "polo_collector_stale_key_seconds",
    "polo_collector_key_seconds",
    // The server's uptime at each run.
    "polo_clickhouse_uptime_seconds",
];

/// Families that count other clients' queries in a time window (system.query_log): what they hold
/// depends on when a run happens, not on other sources (the exporter's own queries are excluded).
const WINDOWED: [&str; 2] = ["polo_clickhouse_query_duration_seconds", "polo_clickhouse_failed_queries"];

type Output = BTreeMap<&'static str, Vec<(String, Vec<(String, String)>, String)>>;

async fn run_in_order(cfg: &Config, reverse: bool) -> Output {
    let runners = cfg.sources.build();
    assert_eq!(runners.len(), 6, "every source of the example config runs");
    let order: Vec<usize> = if reverse { (0..runners.len()).rev().collect() } else { (0..runners.len()).collect() };
    let mut out = Output::new();
    for i in order {
        let view = runners[i].observe(tokio::time::Instant::now() + Duration::from_secs(60)).await;
        assert!(view.up, "source {} failed", view.name);
        let output = view.output.expect("a source that is up serves its output");
        // Encoded once to be sure the text is well formed; compared sample by sample below.
        assert!(encode_sets(vec![output.clone() as FamilySet]).ends_with("# EOF\n"));
        let samples = out.entry(view.name).or_default();
        for family in output.families.iter().filter(|f| !WINDOWED.contains(&f.name())) {
            for Sample { labels, value } in family.samples() {
                let value = if MOVING.contains(&family.name()) { "moving".to_string() } else { show(value) };
                let labels = labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                samples.push((family.name().to_string(), labels, value));
            }
        }
    }
    out
}

fn show(value: &Value) -> String {
    format!("{value:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_gives_the_same_output_in_either_order() {
    let ch = DevClickHouse::start_demo();
    let aws = DevAws::start(&["--seed", "demo", "--static"]);
    for (key, value) in AWS_TEST_ENV {
        // The test process is its own (nextest): nothing else reads the environment concurrently.
        std::env::set_var(key, value);
    }
    let example = std::fs::read_to_string(common::root().join("examples/local.yml")).unwrap();
    let yaml = example.replace("http://127.0.0.1:8123", &ch.url()).replace("http://127.0.0.1:4566", &aws.url());
    let cfg = Config::from_yaml(&yaml, Path::new("order.yml"), &|_| None).expect("example config");
    let forward = run_in_order(&cfg, false).await;
    let backward = run_in_order(&cfg, true).await;
    assert_eq!(forward.keys().collect::<Vec<_>>(), backward.keys().collect::<Vec<_>>());
    for (source, samples) in &forward {
        assert!(!samples.is_empty(), "{source} produced series");
        assert_eq!(samples, &backward[source], "source {source} differs between the two orders");
    }
}
