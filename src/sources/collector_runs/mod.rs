//! Source `collector_runs`: freshness and failures of Polo's collectors from `polo.collector_runs`,
//! and each account's last successful scan.
//!
//! Cost: the first successful scrape aggregates the table once (one GROUP BY, with a join for
//! consecutive failures). Every later scrape reads only rows whose `started_at` is within the
//! late-arrival window, a range the `(collector, started_at)` sort key prunes, so a scrape's
//! cost does not grow with the table.

pub mod config;
pub mod families;
pub mod health;
pub mod model;

use std::collections::HashMap;
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::SourceKind;
use crate::clickhouse::ClickHouse;
use crate::config::{ConfigError, Shared, SourceSettings, Validator};
use crate::framework::{ErrorKind, Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::status::StatusSection;
use config::{CollectorRunsConfig, CollectorsConfig, RawCollectorRuns};
use model::{KeyState, Run, RunsState};

pub struct CollectorRuns {
    ch: ClickHouse,
    cfg: CollectorsConfig,
    state: Mutex<Option<RunsState>>,
    started_ms: i64,
}

impl SourceKind for CollectorRuns {
    const NAME: &'static str = "collector_runs";
    const ENABLED_BY_DEFAULT: bool = true;
    type Raw = RawCollectorRuns;
    type Config = CollectorRunsConfig;

    fn validate(raw: RawCollectorRuns, v: &Validator, shared: &Shared) -> Result<CollectorRunsConfig, ConfigError> {
        config::validate(raw, v, shared)
    }

    fn default_timeout(shared: &Shared) -> std::time::Duration {
        crate::clickhouse::default_timeout(shared)
    }

    fn build(config: &CollectorRunsConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self {
            ch: ClickHouse::new(&config.clickhouse, Self::NAME, settings.timeout),
            cfg: config.collectors.clone(),
            state: Mutex::new(None),
            started_ms: crate::clock::unix_ms(),
        })
    }
}

impl CollectorRuns {
    async fn load_settled(
        &self,
        ctx: &SourceContext,
        cutoff_ms: i64,
    ) -> Result<HashMap<model::Key, KeyState>, SourceError> {
        let table = self.ch.table("collector_runs");
        let sql = format!(
            "SELECT collector, aws_account_id, aws_region,
                toUnixTimestamp64Milli(max(completed_at)) AS last_completed_ms,
                toString(argMax(status, completed_at)) AS last_status,
                argMax(duration_ms, completed_at) AS last_duration_ms,
                argMax(events_produced, completed_at) AS last_events,
                argMax(rows_inserted, completed_at) AS last_rows,
                leftUTF8(argMax(error, completed_at), 2048) AS last_error,
                toUnixTimestamp64Milli(maxIf(completed_at, status = 'succeeded')) AS last_success_ms,
                countIf(status = 'failed' AND completed_at > last_non_failed) AS consecutive_failures
            FROM {table} AS r
            INNER JOIN (
                SELECT collector, aws_account_id, aws_region, maxIf(completed_at, status != 'failed') AS last_non_failed
                FROM {table} WHERE started_at < fromUnixTimestamp64Milli(?)
                GROUP BY collector, aws_account_id, aws_region
            ) AS l USING (collector, aws_account_id, aws_region)
            WHERE r.started_at < fromUnixTimestamp64Milli(?)
            GROUP BY collector, aws_account_id, aws_region"
        );
        let rows: Vec<SettledRow> = self
            .ch
            .fetch_all(ctx, "collector_runs (initial aggregate)", self.ch.query(&sql).bind(cutoff_ms).bind(cutoff_ms))
            .await?;
        Ok(rows.into_iter().map(SettledRow::into_entry).collect())
    }

    async fn load_window(&self, ctx: &SourceContext, since_ms: i64) -> Result<Vec<Run>, SourceError> {
        let sql = format!(
            "SELECT toString(run_id) AS run_id, collector, aws_account_id, aws_region,
                toUnixTimestamp64Milli(started_at) AS started_ms,
                toUnixTimestamp64Milli(completed_at) AS completed_ms,
                toString(status) AS status, duration_ms, events_produced, rows_inserted,
                leftUTF8(error, 2048) AS error
            FROM {} WHERE started_at >= fromUnixTimestamp64Milli(?) LIMIT ?",
            self.ch.table("collector_runs")
        );
        let limit = self.cfg.max_window_rows;
        let rows: Vec<WindowRow> = self
            .ch
            .fetch_all(ctx, "collector_runs (window)", self.ch.query(&sql).bind(since_ms).bind(limit + 1))
            .await?;
        if rows.len() as u64 > limit {
            return Err(SourceError::new(
                ErrorKind::Limit,
                format!(
                    "more than sources.collector_runs.max_window_rows={limit} runs started within the late-arrival window"
                ),
            ));
        }
        Ok(rows.into_iter().map(WindowRow::into_run).collect())
    }
}

#[async_trait::async_trait]
impl Source for CollectorRuns {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::ClickHouseReadRows]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let now = crate::clock::unix_ms();
        let cutoff = now - self.cfg.late_arrival_window.as_millis() as i64;
        let mut guard = self.state.lock().await;
        if guard.is_none() {
            let settled = self.load_settled(ctx, cutoff).await?;
            *guard = Some(RunsState::from_settled(settled, cutoff, self.started_ms));
        }
        let state = guard.as_mut().expect("state loaded above");
        state.forget_before(now - self.cfg.forget_after.as_millis() as i64);
        // Fetch before mutating, so a failed fetch leaves the state as it was.
        let window = self.load_window(ctx, state.settled_until_ms).await?;
        let view = state.ingest(window, cutoff);
        let mapped = families::map(&view, state.runs_total(), &self.cfg, now);
        Ok(SourceOutput {
            families: mapped.families,
            status: Some(StatusSection::Collectors(mapped.collectors)),
            ..SourceOutput::default()
        })
    }
}

#[derive(Debug, Row, Deserialize)]
struct SettledRow {
    collector: String,
    aws_account_id: String,
    aws_region: String,
    last_completed_ms: i64,
    last_status: String,
    last_duration_ms: u32,
    last_events: u32,
    last_rows: u32,
    last_error: String,
    last_success_ms: i64,
    consecutive_failures: u64,
}

impl SettledRow {
    fn into_entry(self) -> (model::Key, KeyState) {
        (
            (self.collector, self.aws_account_id, self.aws_region),
            KeyState {
                last_completed_ms: self.last_completed_ms,
                last_status: self.last_status,
                last_duration_ms: self.last_duration_ms,
                last_events: self.last_events,
                last_rows: self.last_rows,
                last_error: self.last_error,
                last_success_ms: self.last_success_ms,
                consecutive_failures: self.consecutive_failures,
            },
        )
    }
}

#[derive(Debug, Row, Deserialize)]
struct WindowRow {
    run_id: String,
    collector: String,
    aws_account_id: String,
    aws_region: String,
    started_ms: i64,
    completed_ms: i64,
    status: String,
    duration_ms: u32,
    events_produced: u32,
    rows_inserted: u32,
    error: String,
}

impl WindowRow {
    fn into_run(self) -> Run {
        Run {
            run_id: self.run_id,
            collector: self.collector,
            aws_account_id: self.aws_account_id,
            aws_region: self.aws_region,
            started_ms: self.started_ms,
            completed_ms: self.completed_ms,
            status: self.status,
            duration_ms: self.duration_ms,
            events: self.events_produced,
            rows: self.rows_inserted,
            error: self.error,
        }
    }
}
