//! The configuration file as written: strict serde types, every field documented. The shared
//! connections live here; each source's section is declared in the source's module with
//! [`source_section!`](crate::source_section). `Config::from_yaml` turns them into validated types.

use serde::Deserialize;

use super::duration::PromDuration;

/// The framework settings every source section has, as written.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCommon {
    pub enabled: Option<bool>,
    pub timeout: Option<PromDuration>,
    pub min_interval: Option<PromDuration>,
    pub serve_stale_for: Option<PromDuration>,
}

/// A source's section as written: the framework settings plus the source's own keys.
pub trait RawSection: for<'de> Deserialize<'de> + Default + super::doc::Documented {
    fn common(&self) -> RawCommon;
}

/// Declares a source's raw config section: the fields given, plus the framework settings every
/// section has (`enabled`, `timeout`, `min_interval`, `serve_stale_for`); strict, every field
/// optional (`#[serde(default)]`), every key documented for the reference.
#[macro_export]
macro_rules! source_section {
    ($(#[$($meta:tt)*])* pub struct $name:ident { $($(#[$($fmeta:tt)*])* pub $field:ident: $ty:ty,)* }) => {
        $crate::documented! {
            $(#[$($meta)*])*
            #[derive(Debug, Default, serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $name {
                /// Run this source: the one switch. Default `true` for `collector_runs`, `accounts` and
                /// `clickhouse_system`; `false` for the AWS sources.
                #[serde(default)]
                pub enabled: Option<bool>,
                /// Deadline of one run (100ms–10m); default `clickhouse.timeout` for the ClickHouse
                /// sources, `10s` for the AWS sources. Also sent as `max_execution_time`.
                #[serde(default)]
                pub timeout: Option<$crate::config::duration::PromDuration>,
                /// Reuse a successful result younger than this instead of querying again (at most 7d);
                /// default `0s` (`cloudwatch`: its `period`; `aws_cost`: `6h`, at least `1h`).
                #[serde(default)]
                pub min_interval: Option<$crate::config::duration::PromDuration>,
                /// After a failure, keep serving the last good series this long, then drop them
                /// (at most 7d); default `1h`.
                #[serde(default)]
                pub serve_stale_for: Option<$crate::config::duration::PromDuration>,
                $($(#[$($fmeta)*])* #[serde(default)] pub $field: $ty,)*
            }
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
