//! The configuration file as written: strict serde types, every field documented.
//! Nothing outside `config` uses these; `Config::load` turns them into validated types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::duration::PromDuration;

/// Top level of `polo-exporter.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How to reach the ClickHouse that holds the `polo` database.
    pub clickhouse: RawClickHouse,
    /// Expectations about Polo's collectors (Lambdas).
    #[serde(default)]
    pub collectors: RawCollectors,
    /// Expectations about `polo.aws_accounts`.
    #[serde(default)]
    pub accounts: RawAccounts,
    /// What the `clickhouse_system` source reads from ClickHouse's system tables.
    #[serde(default)]
    pub clickhouse_system: RawClickHouseSystem,
    /// How to reach AWS (credentials come from the default chain, never from this file).
    #[serde(default)]
    pub aws: Option<RawAws>,
    /// SQS queues to watch; the `sqs` source runs when this section is present.
    #[serde(default)]
    pub sqs: Option<RawSqs>,
    /// CloudWatch figures; the `cloudwatch` source runs when this section is present.
    #[serde(default)]
    pub cloudwatch: Option<RawCloudWatch>,
    /// Per-source framework settings (enable, timeout, cache, stale serving).
    #[serde(default)]
    pub sources: RawSources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAws {
    /// Default region of the AWS sources; default us-east-1.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (a local emulator such as scripts/dev-aws); also used for STS.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Role to assume with the default-chain credentials.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// External id for `role_arn`.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Attempts per AWS call, first included; default 2.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSqs {
    /// Regions whose queues are watched; default `[aws.region]`.
    #[serde(default)]
    pub regions: Option<Vec<String>>,
    /// Queues by `name`, `url` or name `prefix`; `dead_letter: true` marks a DLQ named directly.
    pub queues: Vec<RawQueue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub dead_letter: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloudWatch {
    /// CloudWatch period; queried at most once per period; default 5m.
    #[serde(default)]
    pub period: Option<PromDuration>,
    /// Only periods that ended at least this long ago are read (CloudWatch's delay); default 2m.
    #[serde(default)]
    pub delay: Option<PromDuration>,
    /// Polo's Lambda functions (names).
    #[serde(default)]
    pub lambda_functions: Vec<String>,
    /// Region of the Lambda functions; default `aws.region`.
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouseSystem {
    /// Databases whose tables are reported (parts, replicas, mutations); default `[polo]`.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Read query latency and failures from `system.query_log`; default true.
    #[serde(default)]
    pub query_log: Option<bool>,
    /// Count a query once it finished at least this long ago (above the log's flush interval); default 15s.
    #[serde(default)]
    pub query_log_delay: Option<PromDuration>,
    /// After an outage, read at most this much missed query log; default 10m.
    #[serde(default)]
    pub query_log_max_catchup: Option<PromDuration>,
    /// Upper bounds (seconds) of the latency histogram buckets; default 5ms .. 300s.
    #[serde(default)]
    pub query_duration_buckets: Option<Vec<f64>>,
    /// LIMIT on every system-table query; default 10000.
    #[serde(default)]
    pub max_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouse {
    /// HTTP(S) endpoint, e.g. `http://127.0.0.1:8123`. No credentials in the URL.
    pub url: String,
    /// User name; default `default`.
    #[serde(default)]
    pub user: Option<String>,
    /// Inline password. Discouraged: prefer `password_file` or `password_env`.
    #[serde(default)]
    pub password: Option<String>,
    /// File whose content (trailing newline removed) is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Database holding `collector_runs` and `aws_accounts`; default `polo`.
    #[serde(default)]
    pub database: Option<String>,
    /// Upper bound for one source's queries (also sent as `max_execution_time`); default 10s.
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    /// Cluster name: system tables are read from every replica through `clusterAllReplicas`.
    #[serde(default)]
    pub cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollectors {
    /// Expected interval of a collector not listed in `expected_intervals`; default 1h.
    #[serde(default)]
    pub default_expected_interval: Option<PromDuration>,
    /// A collector is stale after `staleness_factor` × its expected interval; default 2.
    #[serde(default)]
    pub staleness_factor: Option<f64>,
    /// Expected interval per collector name.
    #[serde(default)]
    pub expected_intervals: BTreeMap<String, PromDuration>,
    /// Collectors that need others to have succeeded recently.
    #[serde(default)]
    pub dependencies: BTreeMap<String, RawDependency>,
    /// How late a run's row may be inserted after its `started_at`; default 1h.
    #[serde(default)]
    pub late_arrival_window: Option<PromDuration>,
    /// Stop exporting a key whose latest run completed longer ago than this; default 90d (the table TTL).
    #[serde(default)]
    pub forget_after: Option<PromDuration>,
    /// Upper bound on rows read per scrape from the late-arrival window; default 200000.
    #[serde(default)]
    pub max_window_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDependency {
    /// Collectors that must each have a `succeeded` run within `within`.
    pub requires: Vec<String>,
    /// How recent those successes must be; default 20m.
    #[serde(default)]
    pub within: Option<PromDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccounts {
    /// Statuses always exported by `polo_accounts{status}`, 0 included.
    #[serde(default)]
    pub known_statuses: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSources {
    #[serde(default)]
    pub collector_runs: RawSourceSettings,
    #[serde(default)]
    pub accounts: RawSourceSettings,
    #[serde(default)]
    pub clickhouse_system: RawSourceSettings,
    #[serde(default)]
    pub sqs: RawSourceSettings,
    #[serde(default)]
    pub cloudwatch: RawSourceSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceSettings {
    /// Run this source; default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Deadline of one run; default the backend's timeout.
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    /// Reuse a successful result younger than this instead of querying again; default 0s.
    #[serde(default)]
    pub min_interval: Option<PromDuration>,
    /// After a failure, keep serving the last good series this long; default 1h.
    #[serde(default)]
    pub serve_stale_for: Option<PromDuration>,
}
