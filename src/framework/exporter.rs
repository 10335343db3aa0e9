//! All sources together: one concurrent pass per scrape, self-metrics, the status document.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use tokio::time::Instant;

use super::{ErrorKind, SourceRunner, SourceView, Usage};
use crate::metrics::{Def, FamilySet, MetricFamily};
use crate::status::{SourceHealth, StatusDocument};

static SOURCE_UP: Def = Def::gauge(
    "polo_exporter_source_up",
    "1 if the latest attempt of the source succeeded, 0 if it failed or none finished yet.",
    &["source"],
);
static SOURCE_DURATION: Def =
    Def::gauge("polo_exporter_source_duration_seconds", "How long the latest attempt of the source took.", &["source"]);
static SOURCE_LAST_SUCCESS: Def = Def::gauge(
    "polo_exporter_source_last_success_timestamp_seconds",
    "When the source last succeeded: the as-of time of the source's series (which are served from that result while the source fails, for at most serve_stale_for).",
    &["source"],
);
static SOURCE_ERRORS: Def = Def::counter(
    "polo_exporter_source_errors",
    "Failed attempts of the source by kind (timeout, connect, auth, query, decode, limit).",
    &["source", "kind"],
);
static BUILD_INFO: Def = Def::gauge(
    "polo_exporter_build_info",
    "Always 1; labels give the exporter's version and source revision.",
    &["version", "revision"],
);

/// The exporter's own families (besides each source's usage counters, in [`super::USAGE_FAMILIES`]).
pub const EXPORTER_FAMILIES: &[&Def] =
    &[&SOURCE_UP, &SOURCE_DURATION, &SOURCE_LAST_SUCCESS, &SOURCE_ERRORS, &BUILD_INFO];

pub struct Exporter {
    runners: Vec<Arc<SourceRunner>>,
    version: &'static str,
    revision: &'static str,
}

/// The result of one pass over every source: what `/metrics` and the status API serve.
pub struct Scrape {
    pub views: Vec<SourceView>,
    version: &'static str,
    revision: &'static str,
}

impl Exporter {
    pub fn new(runners: Vec<Arc<SourceRunner>>) -> Self {
        Self { runners, version: env!("CARGO_PKG_VERSION"), revision: env!("POLO_EXPORTER_REVISION") }
    }

    pub fn source_names(&self) -> Vec<&'static str> {
        self.runners.iter().map(|r| r.name()).collect()
    }

    /// Runs (or joins) every source concurrently; returns by `deadline` whatever happens.
    pub async fn scrape(&self, deadline: Instant) -> Scrape {
        self.scrape_only(None, deadline).await
    }

    /// A scrape of the named sources only (all with None): the others neither run nor appear,
    /// their self-metrics included. Names must be among [`Exporter::source_names`].
    pub async fn scrape_only(&self, only: Option<&[String]>, deadline: Instant) -> Scrape {
        let wanted = |runner: &&Arc<SourceRunner>| only.is_none_or(|names| names.iter().any(|n| n == runner.name()));
        let views = join_all(self.runners.iter().filter(wanted).map(|runner| runner.observe(deadline))).await;
        Scrape { views, version: self.version, revision: self.revision }
    }
}

impl Scrape {
    /// Self-metrics first, then every served source's families (shared, not copied).
    pub fn families(&self) -> Vec<FamilySet> {
        let mut up = SOURCE_UP.family();
        let mut duration = SOURCE_DURATION.family();
        let mut last_success = SOURCE_LAST_SUCCESS.family();
        let mut errors = SOURCE_ERRORS.family();
        let mut usage: BTreeMap<Usage, MetricFamily> = BTreeMap::new();
        for view in &self.views {
            let source = || [view.name.to_string()];
            up.push(source(), if view.up { 1.0 } else { 0.0 });
            if let Some(d) = view.last_duration {
                duration.push(source(), d.as_secs_f64());
            }
            if let Some(t) = view.last_success_unix {
                last_success.push(source(), t);
            }
            for kind in ErrorKind::ALL {
                let count = view.errors.get(&kind).copied().unwrap_or(0);
                errors.push([view.name.to_string(), kind.as_str().to_string()], count as f64);
            }
            for (kind, total) in &view.usage {
                usage.entry(*kind).or_insert_with(|| kind.def().family()).push(source(), *total as f64 * kind.scale());
            }
        }
        let build_info = BUILD_INFO.family().with([self.version.to_string(), self.revision.to_string()], 1.0);
        let mut own = vec![up, duration, last_success, errors];
        own.extend(usage.into_values());
        own.push(build_info);
        let mut families: Vec<FamilySet> = vec![Arc::new(own)];
        for view in &self.views {
            if let Some(output) = &view.output {
                families.push(Arc::clone(output) as FamilySet);
            }
        }
        families
    }

    /// The `/api/v1/system/status` document: each served source's section plus source health.
    pub fn status(&self) -> StatusDocument {
        let mut doc = StatusDocument::default();
        let mut owners = BTreeMap::new();
        for view in &self.views {
            doc.sources.insert(
                view.name,
                SourceHealth { up: view.up, last_success: view.last_success_unix.map(crate::clock::rfc3339) },
            );
            let Some(section) = view.output.as_ref().and_then(|o| o.status.clone()) else { continue };
            if let Err(collision) = doc.add(&mut owners, view.name, section) {
                // A wiring mistake, not a runtime condition: keep the first section, say so once per request.
                tracing::error!(error = %collision, "status section collision");
            }
        }
        doc
    }
}
