//! The configuration file as written: strict serde types, every field documented. The shared
//! connections live here; each source's section is declared in the source's module with
//! [`source_section!`](crate::source_section). `Config::from_yaml` turns them into validated types.

use std::path::PathBuf;

use serde::Deserialize;

use super::duration::PromDuration;
use crate::sources::RawSources;

/// Top level of `polo-exporter.yml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How to reach the ClickHouse that holds the `polo` database; needed by the ClickHouse sources.
    #[serde(default)]
    pub clickhouse: Option<RawClickHouse>,
    /// How to reach AWS (credentials come from the default chain, never from this file).
    #[serde(default)]
    pub aws: Option<RawAws>,
    /// One section per source, keyed by the source's name.
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
pub struct RawClickHouse {
    /// HTTP(S) endpoint, e.g. `http://127.0.0.1:8123` or `https://abc.eu-west-1.aws.clickhouse.cloud:8443`.
    /// No credentials in the URL.
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
    /// Default `timeout` of the ClickHouse sources (also sent as `max_execution_time`); default 10s.
    #[serde(default)]
    pub timeout: Option<PromDuration>,
    /// Cluster name: system tables are read from every replica through `clusterAllReplicas`.
    #[serde(default)]
    pub cluster: Option<String>,
    /// TLS of an `https://` URL; default: the system's CA certificates, full verification.
    #[serde(default)]
    pub tls: Option<RawClickHouseTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClickHouseTls {
    /// PEM file of the CA certificate(s) to trust instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for servers that require one; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (no authentication of the server: tests only). Logged at start.
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
}

/// The framework settings every source section has, as written.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCommon {
    pub enabled: Option<bool>,
    pub timeout: Option<PromDuration>,
    pub min_interval: Option<PromDuration>,
    pub serve_stale_for: Option<PromDuration>,
}

/// A source's section as written: the framework settings plus the source's own keys.
pub trait RawSection: for<'de> Deserialize<'de> + Default {
    fn common(&self) -> RawCommon;
}

/// Declares a source's raw config section: the fields given, plus the framework settings every
/// section has (`enabled`, `timeout`, `min_interval`, `serve_stale_for`); strict, every field
/// optional (`#[serde(default)]`).
#[macro_export]
macro_rules! source_section {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Run this source. The one switch; its default is the source's `ENABLED_BY_DEFAULT`.
            #[serde(default)]
            pub enabled: Option<bool>,
            /// Deadline of one run; default the source's own.
            #[serde(default)]
            pub timeout: Option<$crate::config::duration::PromDuration>,
            /// Reuse a successful result younger than this instead of querying again.
            #[serde(default)]
            pub min_interval: Option<$crate::config::duration::PromDuration>,
            /// After a failure, keep serving the last good series this long; default 1h.
            #[serde(default)]
            pub serve_stale_for: Option<$crate::config::duration::PromDuration>,
            $($(#[$fmeta])* #[serde(default)] pub $field: $ty,)*
        }

        impl $crate::config::RawSection for $name {
            fn common(&self) -> $crate::config::RawCommon {
                $crate::config::RawCommon {
                    enabled: self.enabled,
                    timeout: self.timeout,
                    min_interval: self.min_interval,
                    serve_stale_for: self.serve_stale_for,
                }
            }
        }
    };
}
