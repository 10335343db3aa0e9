//! What a source is to the registry ([`crate::sources`]): the [`SourceKind`] trait each source
//! module implements, and the validated connections ([`Shared`]) its validation may read. Below
//! the sources and the registry alike, so neither imports the other through it.

use std::sync::Arc;
use std::time::Duration;

use crate::aws::config::AwsConfig;
use crate::clickhouse::config::ClickHouseConfig;
use crate::config::doc::{Documented, KeyDoc};
use crate::config::{ConfigError, RawSection, SourceSettings, Validator};
use crate::framework::Source;
use crate::metrics::Def;

/// The shared connections, as validated, for the sources' validation.
pub struct Shared<'a> {
    pub clickhouse: Option<&'a ClickHouseConfig>,
    pub aws: &'a AwsConfig,
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

/// Everything the framework needs to know of a source to configure and build it.
pub trait SourceKind {
    /// The `source` label value and the key under `sources:`.
    const NAME: &'static str;
    /// Whether the source runs when its section does not say `enabled`.
    const ENABLED_BY_DEFAULT: bool;
    /// The section as written.
    type Raw: RawSection;
    /// The section validated: everything `build` needs, the connection it uses included (its
    /// `Debug` is the reload fingerprint: a section whose `Debug` did not change keeps its runner).
    type Config: Clone + std::fmt::Debug + Send + Sync + 'static;
    /// Every metric family the source can emit: the metric catalog is generated from these.
    const FAMILIES: &'static [&'static Def];
    /// The keys of the status document the source fills, if any.
    const STATUS_SECTIONS: &'static [&'static str] = &[];

    /// Validates the section of an enabled source; errors name `sources.NAME.key` and its line.
    fn validate(raw: Self::Raw, v: &Validator, shared: &Shared) -> Result<Self::Config, ConfigError>;

    /// `timeout` when the section gives none.
    fn default_timeout(shared: &Shared) -> Duration {
        let _ = shared;
        crate::config::DEFAULT_SOURCE_TIMEOUT
    }

    /// `min_interval` when the section gives none.
    fn default_min_interval(config: &Self::Config) -> Duration {
        let _ = config;
        Duration::ZERO
    }

    /// What `--config.check` warns of in this section (e.g. beyond the shipped ClickHouse profile).
    fn warnings(config: &Self::Config, settings: &SourceSettings) -> Vec<String> {
        let _ = (config, settings);
        Vec::new()
    }

    fn build(config: &Self::Config, settings: &SourceSettings) -> Arc<dyn Source>;

    /// The documented sections of the source's config, by YAML path: its section, and the
    /// nested ones it declares (a list item, a map value), for the configuration reference.
    fn config_sections() -> Vec<(String, &'static [KeyDoc])> {
        vec![(format!("sources.{}", Self::NAME), <Self::Raw as Documented>::KEYS)]
    }
}

/// What the registry knows of a source, for the generated references and checks.
#[derive(Debug)]
pub struct SourceInfo {
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub families: &'static [&'static Def],
    pub status_sections: &'static [&'static str],
    pub config_sections: fn() -> Vec<(String, &'static [KeyDoc])>,
}
