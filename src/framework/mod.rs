//! The source framework: what a source implements, and what the framework does around it
//! (deadlines, single flight, caching, stale serving, per-source self-metrics).

mod exporter;
mod runner;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use exporter::{Exporter, Scrape, EXPORTER_FAMILIES};
pub use runner::{SourceRunner, SourceView};

use crate::metrics::{Def, MetricFamily};
use crate::status::StatusSection;

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

    /// The error and its causes on one line, for logs and the status page: control
    /// characters escaped, at most [`MAX_ERROR_TEXT`] bytes.
    pub fn chain(&self) -> String {
        bounded_text(&error_chain(self), MAX_ERROR_TEXT)
    }
}

/// The longest error text in a log line or the status page, in bytes (a backend's message can
/// be anything a server, a proxy or an attacker sends).
pub const MAX_ERROR_TEXT: usize = 1024;

/// `text` for one log line: control and invisible format characters escaped (`\n`,
/// `\u{202e}`), cut on a character boundary to at most `max` bytes, the cut marked with the
/// full length (`…(N bytes)`).
pub fn bounded_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for c in text.chars() {
        let before = out.len();
        let invisible =
            matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if c.is_control() {
            out.extend(c.escape_default());
        } else if invisible {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            out.push_str(&format!("…({} bytes)", text.len()));
            break;
        }
    }
    out
}

/// An error and its causes on one line (`a: b: c`), for logs and `--config.check`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// What one successful run of a source produced.
#[derive(Debug, Default)]
pub struct SourceOutput {
    pub families: Vec<MetricFamily>,
    /// The source's section of `/api/v1/system/status`, if it has one.
    pub status: Option<StatusSection>,
    /// Items that failed alone (e.g. one denied queue) while the rest was read: counted in
    /// `polo_exporter_source_errors_total` and logged; the source stays up.
    pub partial_errors: Vec<SourceError>,
}

impl AsRef<[MetricFamily]> for SourceOutput {
    fn as_ref(&self) -> &[MetricFamily] {
        &self.families
    }
}

/// What a source spends on its backend, counted through [`SourceContext::add`] and exported by
/// the framework as `polo_exporter_<usage>_total{source}`: one mechanism for every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Usage {
    /// Rows ClickHouse reported reading (`X-ClickHouse-Summary` read_rows).
    ClickHouseReadRows,
    /// AWS API requests sent, retries included (what AWS bills per request).
    AwsRequests,
    /// Metrics requested from CloudWatch GetMetricData (what CloudWatch bills per 1,000).
    CloudWatchMetricsRequested,
    /// What the source's AWS requests cost at list price, counted in millionths of a USD and
    /// exported in USD (Cost Explorer: $0.01 per request).
    AwsRequestCostMicroUsd,
    /// Values read from ClickHouse that were not valid UTF-8 (decoded lossily).
    InvalidValues,
}

static CLICKHOUSE_READ_ROWS: Def = Def::counter(
    "polo_exporter_clickhouse_read_rows",
    "Rows ClickHouse reported reading for the source's queries (X-ClickHouse-Summary read_rows).",
    &["source"],
);
static AWS_REQUESTS: Def =
    Def::counter("polo_exporter_aws_requests", "AWS API requests the source sent, retries included.", &["source"]);
static CLOUDWATCH_METRICS_REQUESTED: Def = Def::counter(
    "polo_exporter_cloudwatch_metrics_requested",
    "Metrics the source requested from CloudWatch GetMetricData (what CloudWatch bills, about $0.01 per 1,000).",
    &["source"],
);

static AWS_REQUEST_COST: Def = Def::counter(
    "polo_exporter_aws_request_cost_usd",
    "What the source's AWS requests cost at list price, in USD (Cost Explorer: $0.01 per request, retries included).",
    &["source"],
);

static INVALID_VALUES: Def = Def::counter(
    "polo_exporter_invalid_values",
    "Values the source read from ClickHouse that were not valid UTF-8, decoded with U+FFFD and a hash suffix.",
    &["source"],
);

/// The usage counters the framework keeps per source.
pub const USAGE_FAMILIES: &[&Def] =
    &[&CLICKHOUSE_READ_ROWS, &AWS_REQUESTS, &CLOUDWATCH_METRICS_REQUESTED, &AWS_REQUEST_COST, &INVALID_VALUES];

impl Usage {
    pub const ALL: [Usage; 5] = [
        Self::ClickHouseReadRows,
        Self::AwsRequests,
        Self::CloudWatchMetricsRequested,
        Self::AwsRequestCostMicroUsd,
        Self::InvalidValues,
    ];

    /// Factor from the counted integer to the exported value's unit.
    pub fn scale(self) -> f64 {
        match self {
            Self::AwsRequestCostMicroUsd => 1e-6,
            _ => 1.0,
        }
    }

    /// The counter family this usage is exported as.
    pub fn def(self) -> &'static Def {
        match self {
            Self::ClickHouseReadRows => &CLICKHOUSE_READ_ROWS,
            Self::AwsRequests => &AWS_REQUESTS,
            Self::CloudWatchMetricsRequested => &CLOUDWATCH_METRICS_REQUESTED,
            Self::AwsRequestCostMicroUsd => &AWS_REQUEST_COST,
            Self::InvalidValues => &INVALID_VALUES,
        }
    }
}

/// Per-source state the framework hands to every run: the usage counters. Cheap to clone
/// (clones share the counters), so a source may hand it to a client it builds, such as an AWS
/// SDK interceptor that counts each request.
#[derive(Debug, Clone, Default)]
pub struct SourceContext {
    usage: Arc<[AtomicU64; Usage::ALL.len()]>,
    deadline: Option<tokio::time::Instant>,
}

impl SourceContext {
    /// The same counters, for a run that must end by `deadline`.
    pub fn with_deadline(&self, deadline: tokio::time::Instant) -> Self {
        Self { usage: Arc::clone(&self.usage), deadline: Some(deadline) }
    }

    /// When the framework drops the current run, if it said (a source that can answer early,
    /// e.g. "still loading", returns before it).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    pub fn add(&self, usage: Usage, n: u64) {
        self.usage[usage as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, usage: Usage) -> u64 {
        self.usage[usage as usize].load(Ordering::Relaxed)
    }
}

/// A source of metrics. One module in `src/sources/` implements it; the `sources!` registry builds it.
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// The `source` label value; also the key under `sources:` in the config.
    fn name(&self) -> &'static str;

    /// The usage counters this source reports (exported from 0 at start).
    fn usage(&self) -> &'static [Usage] {
        &[]
    }

    /// Reads the backend and maps rows into metric families. Called at most once at a time;
    /// the framework bounds it with a deadline and drops it when the deadline passes.
    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError>;
}

#[cfg(test)]
mod text_tests {
    use super::bounded_text;

    #[test]
    fn error_text_is_one_bounded_line() {
        assert_eq!(bounded_text("a\nb\tc\u{1b}[31m", 100), "a\\nb\\tc\\u{1b}[31m");
        assert_eq!(bounded_text("x\u{202e}y", 100), "x\\u{202e}y");
        let long = "é".repeat(1000); // 2000 bytes
        let cut = bounded_text(&long, 1024);
        assert!(cut.starts_with(&"é".repeat(512)) && cut.ends_with("…(2000 bytes)"), "{cut}");
        assert_eq!(cut.len(), 1024 + "…(2000 bytes)".len());
        // An escape is never cut in half.
        let cut = bounded_text(&"\n".repeat(10), 5);
        assert_eq!(cut, "\\n\\n…(10 bytes)");
    }
}
