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
