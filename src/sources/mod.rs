//! The sources. Each is one module: its config section (declared with `source_section!`), its
//! validation, its metric families, its pure mapping and its status section, tied together by a
//! [`SourceKind`]. The table at the end of this file registers each with one line.

pub mod accounts;
pub mod aws_cost;
pub mod clickhouse_system;
pub mod cloudwatch;
pub mod collector_runs;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError, Enabled, RawSection, Shared, SourceSettings, Validator};
use crate::framework::{Source, SourceRunner};

/// Everything the framework needs to know of a source to configure and build it.
pub trait SourceKind {
    /// The `source` label value and the key under `sources:`.
    const NAME: &'static str;
    /// Whether the source runs when its section does not say `enabled`.
    const ENABLED_BY_DEFAULT: bool;
    /// The section as written.
    type Raw: RawSection;
    /// The section validated: everything `build` needs.
    type Config: Clone + std::fmt::Debug + Send + Sync + 'static;

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

    fn build(config: &Self::Config, settings: &SourceSettings) -> Arc<dyn Source>;
}

/// Validates one section: None if the source is not enabled (its section is still parsed
/// strictly, but not validated: a switched-off source needs nothing it names).
fn validate_section<K: SourceKind>(
    raw: K::Raw,
    v: &Validator,
    shared: &Shared,
) -> Result<Option<Enabled<K::Config>>, ConfigError> {
    let common = raw.common();
    if !common.enabled.unwrap_or(K::ENABLED_BY_DEFAULT) {
        return Ok(None);
    }
    let config = K::validate(raw, v, shared)?;
    let settings = v.settings(K::NAME, &common, K::default_timeout(shared), K::default_min_interval(&config))?;
    Ok(Some(Enabled { settings, config }))
}

fn runner<K: SourceKind>(section: &Option<Enabled<K::Config>>) -> Option<Arc<SourceRunner>> {
    section.as_ref().map(|s| SourceRunner::new(K::build(&s.config, &s.settings), s.settings.clone()))
}

/// The registry: one line per source, `name: Kind`. Generates the raw and validated
/// `sources:` sections and [`build`].
macro_rules! sources {
    ($($name:ident: $kind:ty,)*) => {
        /// The `sources:` section as written.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RawSources {
            $(#[serde(default)] pub $name: <$kind as SourceKind>::Raw,)*
        }

        /// Per source, its validated section, or None if it is not enabled.
        #[derive(Debug, Clone)]
        pub struct SourcesConfig {
            $(pub $name: Option<Enabled<<$kind as SourceKind>::Config>>,)*
        }

        impl RawSources {
            pub(crate) fn validate(self, v: &Validator, shared: &Shared) -> Result<SourcesConfig, ConfigError> {
                Ok(SourcesConfig { $($name: validate_section::<$kind>(self.$name, v, shared)?,)* })
            }
        }

        /// Every source's name, in registration order.
        pub const NAMES: &[&str] = &[$(<$kind as SourceKind>::NAME,)*];

        /// Every enabled source, wrapped in the framework's runner with its settings.
        pub fn build(cfg: &Config) -> Vec<Arc<SourceRunner>> {
            [$(runner::<$kind>(&cfg.sources.$name),)*].into_iter().flatten().collect()
        }

        #[cfg(test)]
        #[test]
        fn registry_keys_are_the_source_names() {
            assert_eq!(NAMES, &[$(stringify!($name),)*]);
        }
    };
}

sources! {
    collector_runs: collector_runs::CollectorRuns,
    accounts: accounts::Accounts,
    clickhouse_system: clickhouse_system::ClickHouseSystem,
    sqs: sqs::Sqs,
    cloudwatch: cloudwatch::CloudWatch,
    aws_cost: aws_cost::AwsCost,
}
