//! polo-exporter: Prometheus exporter for the self-monitoring of Polo.

pub mod aws;
pub mod clickhouse;
pub mod clock;
pub mod config;
pub mod config_file;
pub mod framework;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod online;
pub mod panics;
pub mod reference;
pub mod reload;
pub mod source_kind;
pub mod sources;
pub mod status;
pub mod web;
