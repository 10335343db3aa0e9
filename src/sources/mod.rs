//! The sources. Each is one module implementing [`crate::framework::Source`]; `build`
//! registers it, one line each.

pub mod accounts;
pub mod collector_runs;

use std::sync::Arc;

use crate::config::Config;
use crate::framework::SourceRunner;

/// Every enabled source, wrapped in the framework's runner with its settings.
pub fn build(cfg: &Config) -> Vec<Arc<SourceRunner>> {
    let account_scans = collector_runs::AccountScans::default();
    let s = &cfg.sources;
    let candidates: Vec<(
        Arc<dyn crate::framework::Source>,
        &crate::config::SourceSettings,
    )> = vec![
        (
            Arc::new(collector_runs::CollectorRuns::new(
                cfg,
                account_scans.clone(),
            )),
            &s.collector_runs,
        ),
        (
            Arc::new(accounts::Accounts::new(cfg, account_scans)),
            &s.accounts,
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, settings)| settings.enabled)
        .map(|(source, settings)| SourceRunner::new(source, settings.clone()))
        .collect()
}
