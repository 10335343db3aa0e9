//! Configuration: parsed strictly from YAML, validated once into [`Config`].
//!
//! YAML crate: `serde_yaml_ng`, a maintained fork of the archived `serde_yaml` with the same
//! data model; its errors carry line and column, and `serde_path_to_error` adds the key path.

pub mod bounds;
pub mod duration;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::{RawConfig, RawSourceSettings};

/// Why a configuration could not be loaded. Every variant names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{}: key `{key}`: {message}", line.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))]
    Invalid { path: PathBuf, key: String, line: Option<usize>, message: String },
    /// The file as a whole is beyond a bound (size, nesting), before any key is read.
    #[error("{path}:{line}: {message}")]
    Input { path: PathBuf, line: usize, message: String },
}

/// A password or other secret: never printed, not even by `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub timeout: Duration,
    pub cluster: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dependency {
    pub requires: Vec<String>,
    pub within: Duration,
}

#[derive(Debug, Clone)]
pub struct CollectorsConfig {
    pub default_expected_interval: Duration,
    pub staleness_factor: f64,
    pub expected_intervals: BTreeMap<String, Duration>,
    pub dependencies: BTreeMap<String, Dependency>,
    pub late_arrival_window: Duration,
    pub forget_after: Duration,
    pub max_window_rows: u64,
}

impl CollectorsConfig {
    pub fn expected_interval(&self, collector: &str) -> Duration {
        self.expected_intervals.get(collector).copied().unwrap_or(self.default_expected_interval)
    }

    /// Every collector the config names, as interval owner, dependent or dependency.
    pub fn named_collectors(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.expected_intervals.keys().cloned().collect();
        for (name, dep) in &self.dependencies {
            names.insert(name.clone());
            names.extend(dep.requires.iter().cloned());
        }
        names
    }
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub known_statuses: Vec<String>,
}

/// Framework settings of one source, defaults applied.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub enabled: bool,
    pub timeout: Duration,
    pub min_interval: Duration,
    pub serve_stale_for: Duration,
}

#[derive(Debug, Clone)]
pub struct SourcesConfig {
    pub collector_runs: SourceSettings,
    pub accounts: SourceSettings,
    pub clickhouse_system: SourceSettings,
    pub sqs: SourceSettings,
    pub cloudwatch: SourceSettings,
}

#[derive(Debug, Clone)]
pub struct ClickHouseSystemConfig {
    pub databases: Vec<String>,
    pub query_log: bool,
    pub query_log_delay: Duration,
    pub query_log_max_catchup: Duration,
    /// Strictly increasing, finite, positive; +Inf is implied.
    pub query_duration_buckets: Vec<f64>,
    pub max_rows: u64,
}

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub max_attempts: u32,
}

/// How a queue is named in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelector {
    Name(String),
    Url(String),
    Prefix(String),
}

#[derive(Debug, Clone)]
pub struct QueueSpec {
    pub selector: QueueSelector,
    pub dead_letter: bool,
}

#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub regions: Vec<String>,
    pub queues: Vec<QueueSpec>,
}

#[derive(Debug, Clone)]
pub struct CloudWatchConfig {
    pub period: Duration,
    pub delay: Duration,
    pub lambda_functions: Vec<String>,
    pub region: String,
}

pub const DEFAULT_QUERY_DURATION_BUCKETS: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// A configuration that passed validation. Only [`Config::load`] and [`Config::from_yaml`] make one.
// The private field, unlike #[non_exhaustive], also keeps the rest of this crate from building one.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone)]
pub struct Config {
    pub clickhouse: ClickHouseConfig,
    pub collectors: CollectorsConfig,
    pub accounts: AccountsConfig,
    pub clickhouse_system: ClickHouseSystemConfig,
    pub aws: AwsConfig,
    /// None: the `sqs` source does not run.
    pub sqs: Option<SqsConfig>,
    /// None: the `cloudwatch` source does not run.
    pub cloudwatch: Option<CloudWatchConfig>,
    pub sources: SourcesConfig,
    _validated: (),
}

pub const DEFAULT_KNOWN_STATUSES: [&str; 4] = ["active", "pending_setup", "no_access", "disabled"];

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_yaml(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates `text`; `path` is only used in error messages and to resolve
    /// relative `password_file` paths; `env` looks up environment variables.
    pub fn from_yaml(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse(text, path)?;
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            line: line_of_key(text, key),
            message,
        };
        Validator { path, env, invalid: &invalid }.validate(raw)
    }
}

/// Parses strict YAML into `T`; errors name the file, the key path and the line. The input is
/// bounded first (size, nesting) and every value is checked against its key's bound after
/// ([`bounds`]), so a hostile file is rejected fast and an absurd value never gets through.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    fn located<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let key = err.path().to_string();
            let inner = err.into_inner();
            // Errors without a location (e.g. from the end of the document) fall back on the key.
            let line = inner.location().map(|l| l.line()).or_else(|| line_of_key(text, &key));
            // serde_yaml_ng appends " at line L column C" to its text; the line is reported separately.
            let mut message = inner.to_string();
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            // It also prefixes custom errors with the key path, which is reported separately.
            if let Some(rest) = message.strip_prefix(&format!("{key}: ")) {
                message = rest.to_string();
            }
            ConfigError::Invalid { path: path.to_path_buf(), key, line, message }
        })
    }
    bounds::prescan(text).map_err(|(line, message)| ConfigError::Input { path: path.to_path_buf(), line, message })?;
    let value = located::<T>(text, path)?;
    located::<bounds::CheckBounds>(text, path)?;
    Ok(value)
}

struct Validator<'a> {
    path: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    invalid: &'a dyn Fn(&str, String) -> ConfigError,
}

impl Validator<'_> {
    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let clickhouse = self.clickhouse(raw.clickhouse)?;
        let collectors = self.collectors(raw.collectors)?;
        let known_statuses = match raw.accounts.known_statuses {
            None => DEFAULT_KNOWN_STATUSES.iter().map(|s| s.to_string()).collect(),
            Some(list) if list.is_empty() => {
                return Err((self.invalid)("accounts.known_statuses", "must list at least one status".into()))
            }
            Some(list) => list,
        };
        let sources = SourcesConfig {
            collector_runs: self.source("collector_runs", &raw.sources.collector_runs, clickhouse.timeout)?,
            accounts: self.source("accounts", &raw.sources.accounts, clickhouse.timeout)?,
            clickhouse_system: self.source("clickhouse_system", &raw.sources.clickhouse_system, clickhouse.timeout)?,
            sqs: self.source("sqs", &raw.sources.sqs, Duration::from_secs(10))?,
            cloudwatch: self.source("cloudwatch", &raw.sources.cloudwatch, Duration::from_secs(10))?,
        };
        let clickhouse_system = self.clickhouse_system(raw.clickhouse_system)?;
        let aws = self.aws(raw.aws.unwrap_or_default())?;
        let sqs = raw.sqs.map(|s| self.sqs(s, &aws)).transpose()?;
        let cloudwatch = raw.cloudwatch.map(|c| self.cloudwatch(c, &aws)).transpose()?;
        let mut sources = sources;
        // Query CloudWatch at most once per period, whatever the scrape interval.
        if let Some(cw) = &cloudwatch {
            if raw.sources.cloudwatch.min_interval.is_none() {
                sources.cloudwatch.min_interval = cw.period;
            }
        }
        Ok(Config {
            clickhouse,
            collectors,
            accounts: AccountsConfig { known_statuses },
            clickhouse_system,
            aws,
            sqs,
            cloudwatch,
            sources,
            _validated: (),
        })
    }

    fn clickhouse(&self, raw: raw::RawClickHouse) -> Result<ClickHouseConfig, ConfigError> {
        let url = raw.url.trim_end_matches('/').to_string();
        let after_scheme = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| (self.invalid)("clickhouse.url", "must start with http:// or https://".into()))?;
        let authority = after_scheme.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            // Credentials in a URL end up in logs and error texts; force the dedicated keys.
            return Err((self.invalid)(
                "clickhouse.url",
                "must not contain credentials; use clickhouse.user and clickhouse.password_file".into(),
            ));
        }
        if authority.is_empty() {
            return Err((self.invalid)("clickhouse.url", "has no host".into()));
        }
        if url.starts_with("https://") {
            return Err((self.invalid)(
                "clickhouse.url",
                "https is not supported by this build; put a TLS-terminating proxy in front or use http on a private network".into(),
            ));
        }
        let set = [raw.password.is_some(), raw.password_file.is_some(), raw.password_env.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err((self.invalid)(
                "clickhouse.password_file",
                "set at most one of password, password_file, password_env".into(),
            ));
        }
        let password = if let Some(file) = raw.password_file {
            let file = if file.is_relative() { self.path.parent().unwrap_or(Path::new(".")).join(file) } else { file };
            let text = std::fs::read_to_string(&file).map_err(|err| {
                (self.invalid)("clickhouse.password_file", format!("cannot read {}: {err}", file.display()))
            })?;
            Secret(text.trim_end_matches(['\n', '\r']).to_string())
        } else if let Some(var) = raw.password_env {
            Secret((self.env)(&var).ok_or_else(|| {
                (self.invalid)("clickhouse.password_env", format!("environment variable {var} is not set"))
            })?)
        } else {
            Secret(raw.password.unwrap_or_default())
        };
        let database = raw.database.unwrap_or_else(|| "polo".to_string());
        if !is_identifier(&database) {
            return Err((self.invalid)(
                "clickhouse.database",
                format!("{database:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        let timeout = raw.timeout.map(|d| d.0).unwrap_or(Duration::from_secs(10));
        if timeout < Duration::from_millis(100) {
            return Err((self.invalid)("clickhouse.timeout", "must be at least 100ms".into()));
        }
        if let Some(cluster) = &raw.cluster {
            let ok = !cluster.is_empty()
                && cluster.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err((self.invalid)(
                    "clickhouse.cluster",
                    format!("{cluster:?} is not a cluster name ([A-Za-z0-9_.-]+)"),
                ));
            }
        }
        Ok(ClickHouseConfig {
            cluster: raw.cluster,
            url,
            user: raw.user.unwrap_or_else(|| "default".to_string()),
            password,
            database,
            timeout,
        })
    }

    fn collectors(&self, raw: raw::RawCollectors) -> Result<CollectorsConfig, ConfigError> {
        let staleness_factor = raw.staleness_factor.unwrap_or(2.0);
        if !(staleness_factor.is_finite() && staleness_factor >= 1.0) {
            return Err((self.invalid)("collectors.staleness_factor", "must be a number >= 1".into()));
        }
        let default_expected_interval = raw.default_expected_interval.map(|d| d.0).unwrap_or(Duration::from_secs(3600));
        if default_expected_interval.is_zero() {
            return Err((self.invalid)("collectors.default_expected_interval", "must be positive".into()));
        }
        let mut expected_intervals = BTreeMap::new();
        for (name, interval) in raw.expected_intervals {
            if interval.0.is_zero() {
                return Err((self.invalid)(
                    &format!("collectors.expected_intervals.{name}"),
                    "must be positive".into(),
                ));
            }
            expected_intervals.insert(name, interval.0);
        }
        let mut dependencies = BTreeMap::new();
        for (name, dep) in raw.dependencies {
            let key = format!("collectors.dependencies.{name}");
            if dep.requires.is_empty() {
                return Err((self.invalid)(&format!("{key}.requires"), "must name at least one collector".into()));
            }
            if dep.requires.contains(&name) {
                return Err((self.invalid)(&format!("{key}.requires"), "a collector cannot depend on itself".into()));
            }
            let within = dep.within.map(|d| d.0).unwrap_or(Duration::from_secs(20 * 60));
            if within.is_zero() {
                return Err((self.invalid)(&format!("{key}.within"), "must be positive".into()));
            }
            dependencies.insert(name, Dependency { requires: dep.requires, within });
        }
        let late_arrival_window = raw.late_arrival_window.map(|d| d.0).unwrap_or(Duration::from_secs(3600));
        if late_arrival_window < Duration::from_secs(60) {
            return Err((self.invalid)("collectors.late_arrival_window", "must be at least 1m".into()));
        }
        let forget_after = raw.forget_after.map(|d| d.0).unwrap_or(Duration::from_secs(90 * 86_400));
        if forget_after <= late_arrival_window {
            return Err((self.invalid)(
                "collectors.forget_after",
                "must be longer than collectors.late_arrival_window".into(),
            ));
        }
        let max_window_rows = raw.max_window_rows.unwrap_or(200_000);
        if max_window_rows == 0 {
            return Err((self.invalid)("collectors.max_window_rows", "must be positive".into()));
        }
        Ok(CollectorsConfig {
            default_expected_interval,
            staleness_factor,
            expected_intervals,
            dependencies,
            late_arrival_window,
            forget_after,
            max_window_rows,
        })
    }

    fn clickhouse_system(&self, raw: raw::RawClickHouseSystem) -> Result<ClickHouseSystemConfig, ConfigError> {
        let databases = raw.databases.unwrap_or_else(|| vec!["polo".to_string()]);
        if let Some(bad) = databases.iter().find(|d| !is_identifier(d)) {
            return Err((self.invalid)("clickhouse_system.databases", format!("{bad:?} is not a plain identifier")));
        }
        let buckets = raw.query_duration_buckets.unwrap_or_else(|| DEFAULT_QUERY_DURATION_BUCKETS.to_vec());
        let increasing = buckets.windows(2).all(|w| w[0] < w[1]);
        if buckets.is_empty() || !increasing || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            return Err((self.invalid)(
                "clickhouse_system.query_duration_buckets",
                "must be a non-empty, strictly increasing list of positive seconds (+Inf is implied)".into(),
            ));
        }
        let max_rows = raw.max_rows.unwrap_or(10_000);
        if max_rows == 0 {
            return Err((self.invalid)("clickhouse_system.max_rows", "must be positive".into()));
        }
        Ok(ClickHouseSystemConfig {
            databases,
            query_log: raw.query_log.unwrap_or(true),
            query_log_delay: raw.query_log_delay.map(|d| d.0).unwrap_or(Duration::from_secs(15)),
            query_log_max_catchup: raw.query_log_max_catchup.map(|d| d.0).unwrap_or(Duration::from_secs(600)),
            query_duration_buckets: buckets,
            max_rows,
        })
    }

    fn aws(&self, raw: raw::RawAws) -> Result<AwsConfig, ConfigError> {
        let region = raw.region.unwrap_or_else(|| "us-east-1".to_string());
        if !is_region(&region) {
            return Err((self.invalid)("aws.region", format!("{region:?} is not an AWS region name")));
        }
        if let Some(url) = &raw.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('@') {
                return Err((self.invalid)("aws.endpoint_url", "must be an http(s) URL without credentials".into()));
            }
        }
        if let Some(arn) = &raw.role_arn {
            if !arn.starts_with("arn:") || !arn.contains(":role/") {
                return Err((self.invalid)("aws.role_arn", format!("{arn:?} is not a role ARN")));
            }
        }
        if raw.external_id.is_some() && raw.role_arn.is_none() {
            return Err((self.invalid)("aws.external_id", "needs aws.role_arn".into()));
        }
        let max_attempts = raw.max_attempts.unwrap_or(2);
        if !(1..=5).contains(&max_attempts) {
            return Err((self.invalid)("aws.max_attempts", "must be between 1 and 5".into()));
        }
        Ok(AwsConfig {
            region,
            endpoint_url: raw.endpoint_url,
            role_arn: raw.role_arn,
            external_id: raw.external_id,
            max_attempts,
        })
    }

    fn sqs(&self, raw: raw::RawSqs, aws: &AwsConfig) -> Result<SqsConfig, ConfigError> {
        let regions = raw.regions.unwrap_or_else(|| vec![aws.region.clone()]);
        if regions.is_empty() || regions.iter().any(|r| !is_region(r)) {
            return Err((self.invalid)("sqs.regions", "must list AWS region names".into()));
        }
        if raw.queues.is_empty() {
            return Err((self.invalid)("sqs.queues", "must name at least one queue".into()));
        }
        let mut queues = Vec::new();
        for (i, q) in raw.queues.into_iter().enumerate() {
            let selector = match (q.name, q.url, q.prefix) {
                (Some(n), None, None) if !n.is_empty() => QueueSelector::Name(n),
                (None, Some(u), None) if u.starts_with("http") => QueueSelector::Url(u),
                (None, None, Some(p)) => QueueSelector::Prefix(p),
                _ => {
                    return Err((self.invalid)(
                        &format!("sqs.queues[{i}]"),
                        "set exactly one of name, url (http...) or prefix".into(),
                    ))
                }
            };
            queues.push(QueueSpec { selector, dead_letter: q.dead_letter.unwrap_or(false) });
        }
        Ok(SqsConfig { regions, queues })
    }

    fn cloudwatch(&self, raw: raw::RawCloudWatch, aws: &AwsConfig) -> Result<CloudWatchConfig, ConfigError> {
        let period = raw.period.map(|d| d.0).unwrap_or(Duration::from_secs(300));
        if period.as_secs() < 60 || !period.as_secs().is_multiple_of(60) {
            return Err((self.invalid)("cloudwatch.period", "must be a whole number of minutes".into()));
        }
        let region = raw.region.unwrap_or_else(|| aws.region.clone());
        if !is_region(&region) {
            return Err((self.invalid)("cloudwatch.region", format!("{region:?} is not an AWS region name")));
        }
        Ok(CloudWatchConfig {
            period,
            delay: raw.delay.map(|d| d.0).unwrap_or(Duration::from_secs(120)),
            lambda_functions: raw.lambda_functions,
            region,
        })
    }

    fn source(
        &self,
        name: &str,
        raw: &RawSourceSettings,
        backend_timeout: Duration,
    ) -> Result<SourceSettings, ConfigError> {
        let timeout = raw.timeout.map(|d| d.0).unwrap_or(backend_timeout);
        if timeout < Duration::from_millis(100) {
            return Err((self.invalid)(&format!("sources.{name}.timeout"), "must be at least 100ms".into()));
        }
        Ok(SourceSettings {
            enabled: raw.enabled.unwrap_or(true),
            timeout,
            min_interval: raw.min_interval.map(|d| d.0).unwrap_or(Duration::ZERO),
            serve_stale_for: raw.serve_stale_for.map(|d| d.0).unwrap_or(Duration::from_secs(3600)),
        })
    }
}

fn is_region(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Line (1-based) of a dotted key path (`a.b.c`, `a.list[2].b`) in YAML, block or flow style,
/// for validation errors that arise after parsing. Walks the path segment by segment, each
/// inside the block of the one before; when a segment is absent (a key left at its default, or
/// a rule about several keys), the line of the deepest segment found, else line 1: every error
/// names a real line.
pub(crate) fn line_of_key(text: &str, key_path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let is_content = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    let top_indent = lines.iter().find(|l| is_content(l)).map(|l| indent(l)).unwrap_or(0);
    // Position after the last segment found: (line index, byte column), and that line's indent.
    let mut at: Option<(usize, usize, usize)> = None;
    for segment in key_path.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (start_line, start_col, parent_indent) = match at {
            Some((l, c, i)) => (l, c, Some(i)),
            None => (0, 0, None),
        };
        let mut hit = None;
        for (l, line) in lines.iter().enumerate().skip(start_line) {
            let from = if l == start_line { start_col } else { 0 };
            if l > start_line && is_content(line) && parent_indent.is_some_and(|p| indent(line) <= p) {
                break; // the parent's block ended
            }
            if parent_indent.is_none() && indent(line) != top_indent {
                continue; // the first segment is a top-level key
            }
            if let Some(col) = find_key(line, from, name) {
                hit = Some((l, col, indent(line)));
                break;
            }
        }
        let Some(found) = hit else { break };
        at = Some(found);
        if let Some(index) = index {
            // The index-th item of a block list under the key.
            let (l, _, key_indent) = found;
            let items: Vec<usize> = lines
                .iter()
                .enumerate()
                .skip(l + 1)
                .take_while(|(_, line)| {
                    !is_content(line) || indent(line) > key_indent || line.trim_start().starts_with("- ")
                })
                .filter(|(_, line)| line.trim_start().starts_with("- "))
                .map(|(i, _)| i)
                .collect();
            match items.get(index) {
                Some(&item) => at = Some((item, indent(lines[item]) + 2, indent(lines[item]))),
                None => break,
            }
        }
    }
    Some(at.map(|(l, _, _)| l + 1).unwrap_or(1))
}

/// Byte column just after `name:` (plain or quoted) at or after `from` where a key can start:
/// the line's first token, after `- `, `{` or `,`.
fn find_key(line: &str, from: usize, name: &str) -> Option<usize> {
    for needle in [format!("{name}:"), format!("\"{name}\":"), format!("'{name}':")] {
        let mut search = from;
        while let Some(pos) = line.get(search..).and_then(|rest| rest.find(&needle)) {
            let start = search + pos;
            let before = line[..start].trim_end();
            let after = line[start + needle.len()..].chars().next();
            let key_start = before.is_empty()
                || before.ends_with('{')
                || before.ends_with(',')
                || before.trim_start() == "-"
                || before.ends_with(" -");
            if key_start && after.is_none_or(|c| c == ' ' || c == '\t') {
                return Some(start + needle.len());
            }
            search = start + needle.len();
        }
    }
    None
}

#[cfg(test)]
mod tests;
