//! Configuration: parsed strictly from YAML, validated once into [`Config`].
//!
//! The file has the connections the sources share (`clickhouse`, `aws`) and one section per
//! source under `sources:`. A source's section is declared, documented and validated in the
//! source's own module (see `sources::SourceKind`); this module holds what they share: the
//! connections, the framework settings every section has, and the validation helpers.
//!
//! YAML crate: `serde_yaml_ng`, a maintained fork of the archived `serde_yaml` with the same
//! data model; its errors carry line and column, and `serde_path_to_error` adds the key path.

pub mod bounds;
pub mod duration;
pub(crate) mod raw;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::RawConfig;
pub use raw::{RawCommon, RawSection};

use crate::sources::SourcesConfig;

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

/// Default of `clickhouse.database`.
pub const DEFAULT_CLICKHOUSE_DATABASE: &str = "polo";
/// Default of `clickhouse.user`.
pub const DEFAULT_CLICKHOUSE_USER: &str = "default";
/// Default of `clickhouse.timeout`, the default timeout of the ClickHouse sources.
pub const DEFAULT_CLICKHOUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `aws.region`.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";
/// Default of `aws.max_attempts`.
pub const DEFAULT_AWS_MAX_ATTEMPTS: u32 = 2;
/// Default `timeout` of a source that does not say otherwise.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `serve_stale_for` of every source.
pub const DEFAULT_SERVE_STALE_FOR: Duration = Duration::from_secs(3600);
/// Bounds of every source's `timeout`: a run must be able to finish, and must not outlive a scrape by hours.
pub const SOURCE_TIMEOUT_BOUNDS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(600));
/// Upper bound of `min_interval` and `serve_stale_for`.
pub const SOURCE_CACHE_MAX: Duration = Duration::from_secs(7 * 86_400);

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub timeout: Duration,
    pub cluster: Option<String>,
    /// Set for an `https://` URL.
    pub tls: Option<crate::clickhouse::Tls>,
}

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub max_attempts: u32,
}

/// Framework settings of one enabled source, defaults applied.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub timeout: Duration,
    pub min_interval: Duration,
    pub serve_stale_for: Duration,
}

/// An enabled source's validated section: the framework's settings and the source's own config.
#[derive(Debug, Clone)]
pub struct Enabled<C> {
    pub settings: SourceSettings,
    pub config: C,
}

/// A configuration that passed validation. Only [`Config::load`] and [`Config::from_yaml`] make one.
// The private field, unlike #[non_exhaustive], also keeps the rest of this crate from building one.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone)]
pub struct Config {
    /// None when the file has no `clickhouse` section (then no ClickHouse source may be enabled).
    pub clickhouse: Option<ClickHouseConfig>,
    pub aws: AwsConfig,
    /// One entry per source; None where the source is not enabled.
    pub sources: SourcesConfig,
    _validated: (),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::from_yaml(&bounds::read(path)?, path, &|name| std::env::var(name).ok())
    }

    /// Parses and validates `text`; `path` is only used in error messages and to resolve
    /// relative `password_file` paths; `env` looks up environment variables.
    pub fn from_yaml(text: &str, path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // Lines as YAML counts them, for the parser's errors and the validation's alike.
        let text = &bounds::normalize_line_breaks(text);
        let raw: RawConfig = parse(text, path)?;
        let validator = Validator { path, text, env };
        let clickhouse = raw.clickhouse.map(|c| validator.clickhouse(c)).transpose()?;
        let aws = validator.aws(raw.aws.unwrap_or_default())?;
        let shared = Shared { clickhouse: clickhouse.as_ref(), aws: &aws };
        let sources = raw.sources.validate(&validator, &shared)?;
        Ok(Config { clickhouse, aws, sources, _validated: () })
    }
}

/// Parses strict YAML into `T`; errors name the file, the key path and the line. The input is
/// bounded first (size, nesting: [`bounds`]), so a hostile file is rejected fast.
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
    located::<T>(text, path)
}

/// What validation needs to name a key's line and read secrets.
pub struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// The shared connections, as validated, for the sources' validation.
pub struct Shared<'a> {
    pub clickhouse: Option<&'a ClickHouseConfig>,
    pub aws: &'a AwsConfig,
}

impl Validator<'_> {
    /// An error at `key` (a dotted path, `queues[2]` for list items), with its line.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            line: line_of_key(self.text, key),
            message: message.into(),
        }
    }

    /// A duration key with its default and bounds.
    pub fn duration(
        &self,
        key: &str,
        value: Option<duration::PromDuration>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Result<Duration, ConfigError> {
        let value = value.map(|d| d.0).unwrap_or(default);
        if value < min || value > max {
            let show = |d: Duration| format!("{}ms", d.as_millis());
            return Err(self.invalid(key, format!("must be between {} and {}", show(min), show(max))));
        }
        Ok(value)
    }

    /// The framework settings of the source section `sources.NAME`.
    pub fn settings(
        &self,
        name: &str,
        raw: &RawCommon,
        default_timeout: Duration,
        default_min_interval: Duration,
    ) -> Result<SourceSettings, ConfigError> {
        let key = |k: &str| format!("sources.{name}.{k}");
        Ok(SourceSettings {
            timeout: self.duration(&key("timeout"), raw.timeout, default_timeout, SOURCE_TIMEOUT_BOUNDS)?,
            min_interval: self.duration(
                &key("min_interval"),
                raw.min_interval,
                default_min_interval,
                (Duration::ZERO, SOURCE_CACHE_MAX),
            )?,
            serve_stale_for: self.duration(
                &key("serve_stale_for"),
                raw.serve_stale_for,
                DEFAULT_SERVE_STALE_FOR,
                (Duration::ZERO, SOURCE_CACHE_MAX),
            )?,
        })
    }

    fn clickhouse(&self, raw: raw::RawClickHouse) -> Result<ClickHouseConfig, ConfigError> {
        let url = raw.url.trim_end_matches('/').to_string();
        let after_scheme = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| self.invalid("clickhouse.url", "must start with http:// or https://"))?;
        let authority = after_scheme.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            // Credentials in a URL end up in logs and error texts; force the dedicated keys.
            return Err(self.invalid(
                "clickhouse.url",
                "must not contain credentials; use clickhouse.user and clickhouse.password_file",
            ));
        }
        if authority.is_empty() {
            return Err(self.invalid("clickhouse.url", "has no host"));
        }
        let tls = if url.starts_with("https://") {
            let base = self.path.parent().unwrap_or(Path::new("."));
            let invalid = |key: &str, message: String| self.invalid(key, message);
            Some(crate::clickhouse::Tls::from_raw(raw.tls.unwrap_or_default(), base, &invalid)?)
        } else {
            if raw.tls.is_some() {
                return Err(self.invalid("clickhouse.tls", "needs an https:// clickhouse.url"));
            }
            None
        };
        let set = [
            ("password", raw.password.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("password_env", raw.password_env.is_some()),
        ];
        if set.iter().filter(|(_, s)| *s).count() > 1 {
            let second = set.iter().filter(|(_, s)| *s).nth(1).map(|(k, _)| *k).unwrap_or("password");
            return Err(self
                .invalid(&format!("clickhouse.{second}"), "set at most one of password, password_file, password_env"));
        }
        let password = if let Some(file) = raw.password_file {
            let file = if file.is_relative() { self.path.parent().unwrap_or(Path::new(".")).join(file) } else { file };
            let text = std::fs::read_to_string(&file).map_err(|err| {
                self.invalid("clickhouse.password_file", format!("cannot read {}: {err}", file.display()))
            })?;
            Secret(text.trim_end_matches(['\n', '\r']).to_string())
        } else if let Some(var) = raw.password_env {
            Secret((self.env)(&var).ok_or_else(|| {
                self.invalid("clickhouse.password_env", format!("environment variable {var} is not set"))
            })?)
        } else {
            Secret(raw.password.unwrap_or_default())
        };
        let database = raw.database.unwrap_or_else(|| DEFAULT_CLICKHOUSE_DATABASE.to_string());
        if !is_identifier(&database) {
            return Err(self.invalid(
                "clickhouse.database",
                format!("{database:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        let timeout =
            self.duration("clickhouse.timeout", raw.timeout, DEFAULT_CLICKHOUSE_TIMEOUT, SOURCE_TIMEOUT_BOUNDS)?;
        if let Some(cluster) = &raw.cluster {
            let ok = !cluster.is_empty()
                && cluster.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(
                    self.invalid("clickhouse.cluster", format!("{cluster:?} is not a cluster name ([A-Za-z0-9_.-]+)"))
                );
            }
        }
        Ok(ClickHouseConfig {
            tls,
            cluster: raw.cluster,
            url,
            user: raw.user.unwrap_or_else(|| DEFAULT_CLICKHOUSE_USER.to_string()),
            password,
            database,
            timeout,
        })
    }

    fn aws(&self, raw: raw::RawAws) -> Result<AwsConfig, ConfigError> {
        let region = raw.region.unwrap_or_else(|| DEFAULT_AWS_REGION.to_string());
        if !is_region(&region) {
            return Err(self.invalid("aws.region", format!("{region:?} is not an AWS region name")));
        }
        if let Some(url) = &raw.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('@') {
                return Err(self.invalid("aws.endpoint_url", "must be an http(s) URL without credentials"));
            }
        }
        if let Some(arn) = &raw.role_arn {
            if !arn.starts_with("arn:") || !arn.contains(":role/") {
                return Err(self.invalid("aws.role_arn", format!("{arn:?} is not a role ARN")));
            }
        }
        if raw.external_id.is_some() && raw.role_arn.is_none() {
            return Err(self.invalid("aws.external_id", "needs aws.role_arn"));
        }
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_AWS_MAX_ATTEMPTS);
        if !(1..=5).contains(&max_attempts) {
            return Err(self.invalid("aws.max_attempts", "must be between 1 and 5"));
        }
        Ok(AwsConfig {
            region,
            endpoint_url: raw.endpoint_url,
            role_arn: raw.role_arn,
            external_id: raw.external_id,
            max_attempts,
        })
    }
}

impl Shared<'_> {
    /// The ClickHouse connection, for a ClickHouse source `name` that is enabled.
    pub fn clickhouse(&self, validator: &Validator, name: &str) -> Result<ClickHouseConfig, ConfigError> {
        self.clickhouse.cloned().ok_or_else(|| {
            validator.invalid(
                &format!("sources.{name}"),
                "is enabled and needs the `clickhouse` section; add it, or set enabled: false",
            )
        })
    }
}

pub fn is_region(name: &str) -> bool {
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
