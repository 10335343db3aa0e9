//! The source framework: what a source implements, and what the framework does around it
//! (deadlines, single flight, caching, stale serving, per-source self-metrics).

mod exporter;
mod runner;

use std::sync::atomic::{AtomicU64, Ordering};

pub use exporter::{Exporter, Scrape};
pub use runner::{SourceRunner, SourceView};

use crate::metrics::MetricFamily;

/// What a failure was, for `polo_exporter_source_errors_total{kind}`. A small, fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The source did not finish before its deadline.
    Timeout,
    /// The backend could not be reached.
    Connect,
    /// The backend refused the credentials or the grants.
    Auth,
    /// The backend answered the query with an error (missing table, bad SQL, limits).
    Query,
    /// The answer could not be decoded (schema drift, wrong types).
    Decode,
    /// The answer was larger than the configured bound.
    Limit,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [Self::Timeout, Self::Connect, Self::Auth, Self::Query, Self::Decode, Self::Limit];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::Query => "query",
            Self::Decode => "decode",
            Self::Limit => "limit",
        }
    }
}

/// A source's failure: what failed at the source's layer, with the cause as `source()`.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct SourceError {
    pub kind: ErrorKind,
    context: String,
    #[source]
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SourceError {
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Self { kind, context: context.into(), cause: None }
    }

    pub fn with_cause(
        kind: ErrorKind,
        context: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self { kind, context: context.into(), cause: Some(Box::new(cause)) }
    }

    /// The error and its causes on one line, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }
}

/// One section of `/api/v1/system/status`, keyed by its name in the JSON object.
pub type StatusSection = (&'static str, serde_json::Value);

/// What one successful run of a source produced.
#[derive(Debug, Default)]
pub struct SourceOutput {
    pub families: Vec<MetricFamily>,
    pub status: Vec<StatusSection>,
    /// Items that failed alone (e.g. one denied queue) while the rest was read: counted in
    /// `polo_exporter_source_errors_total` and logged; the source stays up.
    pub partial_errors: Vec<SourceError>,
}

impl AsRef<[MetricFamily]> for SourceOutput {
    fn as_ref(&self) -> &[MetricFamily] {
        &self.families
    }
}

/// Which backend a source reads; decides the backend-specific self-metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    ClickHouse,
    Aws,
}

/// Per-source state the framework hands to every run.
#[derive(Debug, Default)]
pub struct SourceContext {
    read_rows: AtomicU64,
}

impl SourceContext {
    /// Records rows a backend reports having read (ClickHouse's `X-ClickHouse-Summary`).
    pub fn add_read_rows(&self, rows: u64) {
        self.read_rows.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn read_rows(&self) -> u64 {
        self.read_rows.load(Ordering::Relaxed)
    }
}

/// A source of metrics. One file in `src/sources/` implements it; `sources::build` registers it.
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// The `source` label value; also the key under `sources:` in the config.
    fn name(&self) -> &'static str;

    fn backend(&self) -> Backend;

    /// Reads the backend and maps rows into metric families. Called at most once at a time;
    /// the framework bounds it with a deadline and drops it when the deadline passes.
    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError>;
}
