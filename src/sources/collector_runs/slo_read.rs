//! The I/O of the freshness SLO ([`super::slo`]): the history read at the initial load, and on
//! every scrape the accounts Polo does not scan (their keys do not count).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use super::health::{CollectorStatus, Thresholds};
use super::model::{Key, KeyState};
use super::slo::{self, HistAgg, History, Ledger, SloConfig};
use super::text::Interner;
use super::Inner;
use crate::framework::{ErrorKind, SourceContext, SourceError};
use crate::metrics::MetricFamily;
use crate::status::StatusSection;

/// Span of one chunk of the history read (`completed_at`), halved after a timeout.
const HISTORY_CHUNK_MS: i64 = 86_400_000;
const HISTORY_MIN_CHUNK_MS: i64 = 60_000;
/// Account statuses whose keys are not part of the SLI (as in the rules: accounts Polo is not
/// meant to scan).
pub const NOT_SCANNED: [&str; 3] = ["no_access", "pending_setup", "disabled"];

/// The SLO's share of the source's state.
#[derive(Debug, Default)]
pub struct SloState {
    pub config: SloConfig,
    pub(super) ledger: std::sync::Mutex<Option<Ledger>>,
    /// The accounts of the latest successful read of `aws_accounts` that Polo does not scan.
    excluded: std::sync::Mutex<HashSet<String>>,
    accounts_unreadable: AtomicBool,
}

impl SloState {
    pub fn new(config: SloConfig) -> Self {
        Self { config, ..Self::default() }
    }
}

/// Per key, its runs completed in one chunk of history (see [`HistAgg`]).
fn history_sql(table: &str) -> String {
    format!(
        "SELECT collector, aws_account_id, aws_region, first_run_ms,
            if(empty(s), toInt64(0), s[1]) AS first_success_ms,
            if(empty(s), toInt64(0), s[-1]) AS last_success_ms,
            arrayFilter(p -> tupleElement(p, 2) - tupleElement(p, 1) >= ?,
                arrayZip(arrayPopBack(s), arrayPopFront(s))) AS gaps
        FROM (
            SELECT collector, aws_account_id, aws_region,
                toUnixTimestamp64Milli(min(completed_at)) AS first_run_ms,
                arraySort(groupArrayIf(toUnixTimestamp64Milli(completed_at), status = 'succeeded')) AS s
            FROM {table}
            WHERE completed_at >= fromUnixTimestamp64Milli(?) AND completed_at < fromUnixTimestamp64Milli(?)
            GROUP BY collector, aws_account_id, aws_region
        )"
    )
}

#[derive(Debug, Row, Deserialize)]
struct HistRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    collector: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_account_id: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_region: String,
    first_run_ms: i64,
    first_success_ms: i64,
    last_success_ms: i64,
    gaps: Vec<(i64, i64)>,
}

impl crate::clickhouse::text::RowKey for HistRow {
    fn key(&self) -> String {
        super::model::key_label(&self.collector, &self.aws_account_id, &self.aws_region)
    }
}

#[derive(Debug, Row, Deserialize)]
struct AccountRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_account_id: String,
}

impl crate::clickhouse::text::RowKey for AccountRow {
    fn key(&self) -> String {
        self.aws_account_id.clone()
    }
}

impl Inner {
    /// The accounts Polo does not scan; on failure the previous answer (one warning when the
    /// table becomes unreadable, one line when it is readable again).
    pub(super) async fn excluded_accounts(&self, ctx: &SourceContext) -> HashSet<String> {
        let sql = format!(
            "SELECT aws_account_id FROM {} FINAL WHERE toString(polo_status) IN ('{}') LIMIT 1000000",
            self.ch.table("aws_accounts"),
            NOT_SCANNED.join("', '")
        );
        let read: Result<Vec<AccountRow>, SourceError> =
            self.ch.fetch_all(ctx, "aws_accounts (accounts not scanned, for the SLO)", self.ch.query(&sql)).await;
        let slo = &self.slo;
        match read {
            Ok(rows) => {
                if slo.accounts_unreadable.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        source = "collector_runs",
                        "aws_accounts readable again: the SLO leaves out accounts not scanned"
                    );
                }
                let set: HashSet<String> = rows.into_iter().map(|r| r.aws_account_id).collect();
                *slo.excluded.lock().expect("slo state poisoned") = set.clone();
                set
            }
            Err(err) => {
                if !slo.accounts_unreadable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(source = "collector_runs", error = %err.chain(), "aws_accounts unreadable: the SLO keeps the accounts it last knew as not scanned");
                }
                slo.excluded.lock().expect("slo state poisoned").clone()
            }
        }
    }

    /// The SLO's history: the runs completed from the window's start (less the largest stale
    /// threshold) to now, day by day, each chunk retried until it succeeds; while one fails, the
    /// source reports the load as failing with its error. `known` are the keys of the initial load.
    pub(super) async fn load_slo(&self, ctx: &SourceContext, known: &[(&Key, &KeyState)]) {
        let cfg = &self.cfg;
        let thresholds: Vec<Thresholds> =
            std::iter::once(String::new()).chain(cfg.named_collectors()).map(|c| Thresholds::of(cfg, &c)).collect();
        let max_stale = thresholds.iter().map(|t| t.stale_ms as i64).max().unwrap_or(0);
        let min_stale = thresholds.iter().map(|t| t.stale_ms as i64).min().unwrap_or(0);
        let now = crate::clock::unix_ms();
        let window_ms = self.slo.config.window.as_millis() as i64;
        let from = now - window_ms - max_stale.min(window_ms);
        let excluded = self.excluded_accounts(ctx).await;
        let mut history = History::new(self.slo.config.window, from, now);
        let sql = history_sql(&self.ch.table("collector_runs"));
        let (mut start, mut span, mut failures) = (from, HISTORY_CHUNK_MS, 0u32);
        while start < now {
            let end = (start + span).min(now);
            let query = self.ch.query(&sql).bind(min_stale).bind(start).bind(end);
            let attempt = tokio::time::timeout(
                self.timeout,
                self.ch.fetch_all::<HistRow>(ctx, "collector_runs (SLO history chunk)", query),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("SLO history chunk did not finish within {:?}", self.timeout),
                ))
            });
            match attempt {
                Ok(rows) => {
                    let aggs = {
                        let mut names = self.names.lock().expect("names poisoned");
                        rows.into_iter().map(|r| r.into_entry(&mut names)).collect()
                    };
                    history.fold(aggs, &excluded, cfg);
                    start = end;
                    failures = 0;
                    self.load.lock().expect("load state poisoned").error = None;
                }
                Err(err) => {
                    failures += 1;
                    if matches!(err.kind, ErrorKind::Timeout | ErrorKind::Limit | ErrorKind::Query) {
                        span = (span / 2).max(HISTORY_MIN_CHUNK_MS);
                    }
                    tracing::warn!(source = "collector_runs", kind = err.kind.as_str(), error = %err.chain(), failures, "SLO history chunk failed; retrying");
                    // Part of the initial load: the source reports it as the load's failure.
                    self.load.lock().expect("load state poisoned").error =
                        Some((err.kind, format!("SLO history: {}", err.chain())));
                    self.loaded.send_modify(|(_, failed)| *failed += 1);
                    let backoff =
                        Duration::from_millis(250 * 2u64.saturating_pow(failures.min(10))).min(Duration::from_secs(30));
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        let ledger = history.finish(known, &excluded, cfg);
        tracing::info!(source = "collector_runs", keys = ledger.tracked_keys(), "SLO history read");
        *self.slo.ledger.lock().expect("slo state poisoned") = Some(ledger);
    }

    /// A scrape's SLO, once its keys are accounted (`RunsState::view_accounting`): its families,
    /// and the status document's collectors with their attainment.
    pub(super) fn slo_report(&self, collectors: &[CollectorStatus], now_ms: i64) -> (Vec<MetricFamily>, StatusSection) {
        let guard = self.slo.ledger.lock().expect("slo state poisoned");
        let families = guard.as_ref().map(|ledger| slo::families(ledger, &self.slo.config, now_ms)).unwrap_or_default();
        let status = slo::with_slo(collectors, guard.as_ref(), &self.slo.config, now_ms);
        (families, StatusSection::new("collectors", &status))
    }
}

impl HistRow {
    fn into_entry(self, names: &mut Interner) -> (Key, HistAgg) {
        (
            super::model::intern_key(names, &self.collector, &self.aws_account_id, &self.aws_region),
            HistAgg {
                first_run_ms: self.first_run_ms,
                first_success_ms: self.first_success_ms,
                last_success_ms: self.last_success_ms,
                gaps: self.gaps,
            },
        )
    }
}
