//! The sources. Each is one module implementing [`crate::framework::Source`]; `build`
//! registers it with one line.

pub mod accounts;
pub mod clickhouse_system;
pub mod cloudwatch;
pub mod collector_runs;
pub mod sqs;

use std::sync::Arc;

use crate::config::{Config, SourceSettings};
use crate::framework::{Source, SourceRunner};

/// Every enabled source, wrapped in the framework's runner with its settings.
pub fn build(cfg: &Config) -> Vec<Arc<SourceRunner>> {
    let s = &cfg.sources;
    let account_scans = collector_runs::AccountScans::default();
    let mut runners = Vec::new();
    let mut register = |source: Arc<dyn Source>, settings: &SourceSettings| {
        if settings.enabled {
            runners.push(SourceRunner::new(source, settings.clone()));
        }
    };
    register(Arc::new(collector_runs::CollectorRuns::new(cfg, account_scans.clone())), &s.collector_runs);
    register(Arc::new(accounts::Accounts::new(cfg, account_scans)), &s.accounts);
    register(Arc::new(clickhouse_system::ClickHouseSystem::new(cfg)), &s.clickhouse_system);
    let mut queues = None;
    if let Some(sqs_cfg) = cfg.sqs.as_ref().filter(|_| s.sqs.enabled) {
        let (sqs, watched) = sqs::Sqs::new(cfg, sqs_cfg);
        queues = Some(watched);
        register(Arc::new(sqs), &s.sqs);
    }
    if let Some(cw) = &cfg.cloudwatch {
        register(Arc::new(cloudwatch::CloudWatch::new(cfg, cw, queues)), &s.cloudwatch);
    }
    runners
}
