//! The `clickhouse` section of the configuration file: the connection the ClickHouse sources
//! share, as written ([`RawClickHouse`]) and validated ([`ClickHouseConfig`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::PromDuration;
use crate::config::{is_identifier, ConfigError, Secret, Validator, SOURCE_TIMEOUT_BOUNDS};

/// Default of `clickhouse.database`.
pub const DEFAULT_CLICKHOUSE_DATABASE: &str = "polo";
/// Default of `clickhouse.user`.
pub const DEFAULT_CLICKHOUSE_USER: &str = "default";
/// Default of `clickhouse.timeout`, the default timeout of the ClickHouse sources.
pub const DEFAULT_CLICKHOUSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    pub url: String,
    pub user: String,
    pub password: Secret,
    pub database: String,
    pub timeout: Duration,
    pub cluster: Option<String>,
    /// Set for an `https://` URL.
    pub tls: Option<super::Tls>,
}

crate::documented! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawClickHouse {
        /// `http://host:8123` or `https://host:8443` (ClickHouse Cloud: HTTPS only). No credentials in the
        /// URL (rejected: they would end up in logs). Default: required.
        pub url: String,
        /// ClickHouse user; see [`deploy/clickhouse`](../clickhouse.md#least-privilege-user) for a read-only
        /// one. Default: `default`.
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
        /// Database holding `collector_runs` and `aws_accounts` (a plain identifier). Default: `polo`.
        #[serde(default)]
        pub database: Option<String>,
        /// Default `timeout` of the ClickHouse sources (100ms–10m); each source's own `timeout` is also sent
        /// as `max_execution_time` so the server stops too. Default: `10s`.
        #[serde(default)]
        pub timeout: Option<PromDuration>,
        /// Cluster name: system tables are read from every replica through `clusterAllReplicas`.
        #[serde(default)]
        pub cluster: Option<String>,
        /// TLS of an `https://` URL; default: the system's CA certificates, full verification.
        #[serde(default)]
        pub tls: Option<RawClickHouseTls>,
    }
}

crate::documented! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawClickHouseTls {
        /// PEM CA certificate(s) to trust instead of the system's (`ca-certificates`), for a private CA.
        /// Default: system CAs.
        #[serde(default)]
        pub ca_file: Option<PathBuf>,
        /// PEM client certificate (chain), for servers that require one; needs `key_file`.
        #[serde(default)]
        pub cert_file: Option<PathBuf>,
        /// PEM private key of `cert_file`.
        #[serde(default)]
        pub key_file: Option<PathBuf>,
        /// Accept any server certificate (tests only): logged as a warning at start, contradicts `ca_file`.
        /// Default: `false`.
        #[serde(default)]
        pub insecure_skip_verify: Option<bool>,
    }
}

/// Validates the `clickhouse` section.
pub fn validate(raw: RawClickHouse, v: &Validator) -> Result<ClickHouseConfig, ConfigError> {
    let url = raw.url.trim_end_matches('/').to_string();
    let after_scheme = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| v.invalid("clickhouse.url", "must start with http:// or https://"))?;
    let authority = after_scheme.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        // Credentials in a URL end up in logs and error texts; force the dedicated keys.
        return Err(v.invalid(
            "clickhouse.url",
            "must not contain credentials; use clickhouse.user and clickhouse.password_file",
        ));
    }
    if let Some(at) = after_scheme.find(['?', '#']) {
        // `?password=...`, `?user=...`: ClickHouse takes credentials from the query string too.
        let part = if after_scheme[at..].starts_with('?') { "a query string" } else { "a fragment" };
        return Err(v.invalid(
            "clickhouse.url",
            format!("must not have {part} (credentials such as ?password= end up in logs); use clickhouse.user and clickhouse.password_file"),
        ));
    }
    if authority.is_empty() {
        return Err(v.invalid("clickhouse.url", "has no host"));
    }
    let tls = if url.starts_with("https://") {
        let base = v.base_dir();
        let invalid = |key: &str, message: String| v.invalid(key, message);
        Some(super::Tls::from_raw(raw.tls.unwrap_or_default(), base, &invalid)?)
    } else {
        if raw.tls.is_some() {
            return Err(v.invalid("clickhouse.tls", "needs an https:// clickhouse.url"));
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
        return Err(
            v.invalid(&format!("clickhouse.{second}"), "set at most one of password, password_file, password_env")
        );
    }
    let password = if let Some(file) = raw.password_file {
        let file = if file.is_relative() { v.base_dir().join(file) } else { file };
        let text = std::fs::read_to_string(&file)
            .map_err(|err| v.invalid("clickhouse.password_file", format!("cannot read {}: {err}", file.display())))?;
        Secret::new(text.trim_end_matches(['\n', '\r']).to_string())
    } else if let Some(var) = raw.password_env {
        Secret::new(
            v.env(&var).ok_or_else(|| {
                v.invalid("clickhouse.password_env", format!("environment variable {var} is not set"))
            })?,
        )
    } else {
        Secret::new(raw.password.unwrap_or_default())
    };
    let database = raw.database.unwrap_or_else(|| DEFAULT_CLICKHOUSE_DATABASE.to_string());
    if !is_identifier(&database) {
        return Err(v.invalid(
            "clickhouse.database",
            format!("{database:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"),
        ));
    }
    let timeout = v.duration("clickhouse.timeout", raw.timeout, DEFAULT_CLICKHOUSE_TIMEOUT, SOURCE_TIMEOUT_BOUNDS)?;
    if let Some(cluster) = &raw.cluster {
        let ok =
            !cluster.is_empty() && cluster.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(v.invalid("clickhouse.cluster", format!("{cluster:?} is not a cluster name ([A-Za-z0-9_.-]+)")));
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
