//! The sources. Each is one module: its config section (declared with `source_section!`), its
//! validation, its metric families, its pure mapping and its status section, tied together by a
//! [`SourceKind`] (declared below them, in `crate::source_kind`). The table at the end of this
//! file registers each with one line; everything per source is generated from it.

pub mod accounts;
pub mod aws_cost;
pub mod clickhouse_system;
pub mod cloudwatch;
pub mod collector_runs;
pub mod sqs;

use std::sync::Arc;

use crate::config::{fingerprint, ConfigError, Enabled, RawSection, Validator};
use crate::framework::SourceRunner;
pub use crate::source_kind::{Shared, SourceInfo, SourceKind};

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

        /// Every source as the registry knows it, in registration order.
        pub const INFO: &[SourceInfo] = &[$(SourceInfo {
            name: <$kind as SourceKind>::NAME,
            enabled_by_default: <$kind as SourceKind>::ENABLED_BY_DEFAULT,
            families: <$kind as SourceKind>::FAMILIES,
            status_sections: <$kind as SourceKind>::STATUS_SECTIONS,
            config_sections: <$kind as SourceKind>::config_sections,
        },)*];

        impl SourcesConfig {
            /// Every enabled source, wrapped in the framework's runner with its settings.
            pub fn build(&self) -> Vec<Arc<SourceRunner>> {
                [$(runner::<$kind>(&self.$name),)*].into_iter().flatten().collect()
            }

            /// Per enabled source, a fingerprint of its validated section (settings, own keys,
            /// connection, secrets included): equal fingerprints keep the running source on reload.
            pub fn fingerprints(&self) -> std::collections::BTreeMap<&'static str, u64> {
                let mut prints = std::collections::BTreeMap::new();
                $(if let Some(section) = &self.$name {
                    prints.insert(<$kind as SourceKind>::NAME, fingerprint(section));
                })*
                prints
            }

            /// What `--config.check` warns of, every enabled source's warnings in registration order.
            pub fn warnings(&self) -> Vec<String> {
                let mut out = Vec::new();
                $(if let Some(s) = &self.$name {
                    out.extend(<$kind as SourceKind>::warnings(&s.config, &s.settings));
                })*
                out
            }
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
