//! `polo-exporter --config.check --online`: before a first deployment, connect with the
//! configured credentials and run every enabled source once, as a scrape would; print per
//! source what works and what does not (the log lines above each say why: a grant, a table, a
//! setting the user's profile refuses, a TLS problem). False when anything failed.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::SOURCE_TIMEOUT_BOUNDS;
use crate::config_file::Config;
use crate::framework::ErrorKind;

/// One source's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub source: &'static str,
    /// The source ran to the end (possibly with items that failed alone).
    pub up: bool,
    /// Failures by kind: the source's own, or its items'.
    pub errors: Vec<(ErrorKind, u64)>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.up && self.errors.is_empty()
    }

    pub fn line(&self) -> String {
        let kinds = self.errors.iter().map(|(k, n)| format!("{}×{n}", k.as_str())).collect::<Vec<_>>().join(", ");
        match (self.up, self.errors.is_empty()) {
            (true, true) => format!("{}: OK", self.source),
            (true, false) => format!("{}: PARTIAL (some queries failed: {kinds}; see the log above)", self.source),
            (false, _) => format!("{}: FAILED ({kinds}; see the log above)", self.source),
        }
    }
}

/// Runs every enabled source once; each is bounded by its own `timeout`.
pub async fn check(config: &Config) -> Vec<Outcome> {
    let runners = config.sources.build();
    let deadline = Instant::now() + SOURCE_TIMEOUT_BOUNDS.1 + Duration::from_secs(1);
    let views = futures::future::join_all(runners.iter().map(|r| r.observe(deadline))).await;
    views
        .into_iter()
        .map(|v| Outcome { source: v.name, up: v.up, errors: v.errors.into_iter().filter(|(_, n)| *n > 0).collect() })
        .collect()
}

/// `check`, printed; true when every source worked.
pub fn run(config: &Config) -> bool {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let outcomes = runtime.block_on(check(config));
    for o in &outcomes {
        println!("{}", o.line());
    }
    let ok = outcomes.iter().all(Outcome::ok);
    println!("online check: {}", if ok { "OK" } else { "FAILED" });
    ok
}
