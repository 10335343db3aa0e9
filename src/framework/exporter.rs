//! All sources together: one concurrent pass per scrape, self-metrics, the status document.

use std::sync::Arc;

use futures::future::join_all;
use tokio::time::Instant;

use super::{Backend, SourceRunner, SourceView};
use crate::metrics::{FamilySet, MetricFamily};

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
        let views = join_all(self.runners.iter().map(|runner| runner.observe(deadline))).await;
        Scrape { views, version: self.version, revision: self.revision }
    }
}

impl Scrape {
    /// Self-metrics first, then every served source's families (shared, not copied).
    pub fn families(&self) -> Vec<FamilySet> {
        let mut up = MetricFamily::gauge(
            "polo_exporter_source_up",
            "1 if the latest attempt of the source succeeded, 0 if it failed or none finished yet.",
        );
        let mut duration = MetricFamily::gauge(
            "polo_exporter_source_duration_seconds",
            "How long the latest attempt of the source took.",
        );
        let mut last_success = MetricFamily::gauge(
            "polo_exporter_source_last_success_timestamp_seconds",
            "When the source last succeeded: the as-of time of the source's series (which are served from that result while the source fails, for at most serve_stale_for).",
        );
        let mut errors = MetricFamily::counter(
            "polo_exporter_source_errors",
            "Failed attempts of the source by kind (timeout, connect, auth, query, decode, limit).",
        );
        let mut read_rows = MetricFamily::counter(
            "polo_exporter_clickhouse_read_rows",
            "Rows ClickHouse reported reading for the source's queries (X-ClickHouse-Summary read_rows).",
        );
        for view in &self.views {
            let source = || vec![("source", view.name.to_string())];
            up.push(source(), if view.up { 1.0 } else { 0.0 });
            if let Some(d) = view.last_duration {
                duration.push(source(), d.as_secs_f64());
            }
            if let Some(t) = view.last_success_unix {
                last_success.push(source(), t);
            }
            for (kind, count) in &view.errors {
                errors
                    .push(vec![("source", view.name.to_string()), ("kind", kind.as_str().to_string())], *count as f64);
            }
            if view.backend == Backend::ClickHouse {
                read_rows.push(source(), view.read_rows as f64);
            }
        }
        let build_info = MetricFamily::gauge(
            "polo_exporter_build_info",
            "Always 1; labels give the exporter's version and source revision.",
        )
        .with(vec![("version", self.version.to_string()), ("revision", self.revision.to_string())], 1.0);
        let own: FamilySet = Arc::new(vec![up, duration, last_success, errors, read_rows, build_info]);
        let mut families = vec![own];
        for view in &self.views {
            if let Some(output) = &view.output {
                families.push(Arc::clone(output) as FamilySet);
            }
        }
        families
    }

    /// The `/api/v1/system/status` document: each served source's sections plus source health.
    pub fn status_json(&self) -> serde_json::Value {
        let mut doc = serde_json::Map::new();
        let mut sources = serde_json::Map::new();
        for view in &self.views {
            sources.insert(
                view.name.to_string(),
                serde_json::json!({
                    "up": view.up,
                    "last_success": view.last_success_unix.map(crate::status::rfc3339),
                }),
            );
            if let Some(output) = &view.output {
                for (key, value) in &output.status {
                    doc.insert(key.to_string(), value.clone());
                }
            }
        }
        doc.insert("sources".to_string(), serde_json::Value::Object(sources));
        serde_json::Value::Object(doc)
    }
}
