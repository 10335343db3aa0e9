//! The configuration file as a whole, composed of the sections its modules own: the
//! connections (`clickhouse` in [`crate::clickhouse::config`], `aws` in [`crate::aws::config`])
//! and one section per source under `sources:` (the registry, [`crate::sources`]). The
//! toolkit they are written with ([`crate::config`]) knows nothing of them.

use std::path::Path;

use serde::Deserialize;

use crate::aws::config::{AwsConfig, RawAws};
use crate::clickhouse::config::{ClickHouseConfig, RawClickHouse};
use crate::config::{bounds, parse, ConfigError, Validator};
use crate::sources::{RawSources, Shared, SourcesConfig};

crate::documented! {
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
        let validator = Validator::new(path, text, env);
        let clickhouse = raw.clickhouse.map(|c| crate::clickhouse::config::validate(c, &validator)).transpose()?;
        let aws = crate::aws::config::validate(raw.aws.unwrap_or_default(), &validator)?;
        let shared = Shared { clickhouse: clickhouse.as_ref(), aws: &aws };
        let sources = raw.sources.validate(&validator, &shared)?;
        Ok(Config { clickhouse, aws, sources, _validated: () })
    }
}

#[cfg(test)]
mod tests;
