//! The I/O of a steady scrape: what it reads of `collector_runs` since the previous one.
//!
//! On a MergeTree table (the Polo schema) a scrape reads only the parts written since the
//! previous read (`system.parts` tells which, see `parts.rs`), and the runs of the late-arrival
//! window are kept one by one (`open.rs`): the rows read per scrape are about the rows inserted
//! since the previous scrape. Every `settle_step` the runs that left the window are read once
//! more as per-key aggregates and folded into the settled state, exactly as the initial load
//! folds its chunks: whatever arrived late within the window is in that read, so the settled
//! state stays equal to the table. On any other engine (a Distributed table, a view) or without
//! `system.parts`, the whole window is re-aggregated at every scrape as before.

use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use super::model::{Key, ReadMode, RunsState};
use super::open::OpenRun;
use super::parts::{plain_name, Part};
use super::Inner;
use crate::framework::{ErrorKind, SourceContext, SourceError};

/// Runs that left the late-arrival window are settled in steps of about this share of the window.
const SETTLE_STEPS_PER_WINDOW: u32 = 4;
const MIN_SETTLE_STEP: Duration = Duration::from_secs(10);
const MAX_SETTLE_STEP: Duration = Duration::from_secs(600);

/// The step in which runs leaving a window of `window` are settled: a large enough slice that
/// its read is not mostly the granules around its edges.
pub fn settle_step(window: Duration) -> Duration {
    (window / SETTLE_STEPS_PER_WINDOW).clamp(MIN_SETTLE_STEP, MAX_SETTLE_STEP)
}

fn runs_sql(table: &str, parts: Option<&[&Part]>) -> String {
    let from_parts = match parts {
        Some(parts) => {
            let names: Vec<String> = parts.iter().map(|p| format!("'{}'", p.name)).collect();
            format!("_part IN ({}) AND ", names.join(", "))
        }
        None => String::new(),
    };
    format!(
        "SELECT collector, aws_account_id, aws_region,
            toUnixTimestamp64Milli(started_at) AS started_ms,
            toUnixTimestamp64Milli(completed_at) AS completed_ms,
            toString(status) AS status, duration_ms, events_produced, rows_inserted,
            leftUTF8(error, 2048) AS error
        FROM {table}
        WHERE {from_parts}started_at >= fromUnixTimestamp64Milli(?)"
    )
}

#[derive(Debug, Row, Deserialize)]
struct RunRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    collector: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_account_id: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_region: String,
    started_ms: i64,
    completed_ms: i64,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    status: String,
    duration_ms: u32,
    events_produced: u32,
    rows_inserted: u32,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    error: String,
}

impl crate::clickhouse::text::RowKey for RunRow {
    fn key(&self) -> String {
        format!("{}/{}/{}", self.collector, self.aws_account_id, self.aws_region)
    }
}

#[derive(Debug, Row, Deserialize)]
struct PartRow {
    name: String,
    partition_id: String,
    min_block_number: i64,
    max_block_number: i64,
}

impl crate::clickhouse::text::RowKey for PartRow {
    fn key(&self) -> String {
        self.name.clone()
    }
}

#[derive(Debug, Row, Deserialize)]
struct EngineRow {
    engine: String,
}

impl crate::clickhouse::text::RowKey for EngineRow {
    fn key(&self) -> String {
        self.engine.clone()
    }
}

impl Inner {
    /// The read mode for this table: parts when it is a MergeTree table whose parts can be
    /// listed, else the whole window (said once in the log). A backend that cannot be reached
    /// decides nothing: the error is returned and the next scrape asks again.
    pub(super) async fn decide_mode(&self, ctx: &SourceContext) -> Result<ReadMode, SourceError> {
        let engine = self
            .ch
            .fetch_all::<EngineRow>(
                ctx,
                "system.tables (engine of collector_runs)",
                self.ch
                    .query("SELECT engine FROM system.tables WHERE database = ? AND name = 'collector_runs'")
                    .bind(self.ch.database()),
            )
            .await;
        let listing = self.list_parts(ctx).await;
        for err in [engine.as_ref().err(), listing.as_ref().err()].into_iter().flatten() {
            if matches!(err.kind, ErrorKind::Connect | ErrorKind::Timeout) {
                return Err(SourceError::new(err.kind, err.chain()));
            }
        }
        let (mode, why) = match (&engine, &listing) {
            (Ok(rows), Ok(_)) if rows.iter().any(|r| r.engine.ends_with("MergeTree")) => (ReadMode::Parts, None),
            (Ok(rows), Ok(_)) => (
                ReadMode::Window,
                Some(format!(
                    "the table's engine is {} (not a MergeTree table)",
                    rows.first().map_or("unknown", |r| r.engine.as_str())
                )),
            ),
            (Err(err), _) | (_, Err(err)) => (ReadMode::Window, Some(err.chain())),
        };
        match why {
            None => tracing::info!(
                source = "collector_runs",
                "steady scrapes read the parts written since the previous read"
            ),
            Some(why) => tracing::warn!(
                source = "collector_runs",
                reason = %crate::clickhouse::text::shorten(&why, 1024),
                "steady scrapes re-read the whole late-arrival window (costs about the window's rows per scrape)"
            ),
        }
        Ok(mode)
    }

    async fn list_parts(&self, ctx: &SourceContext) -> Result<Vec<Part>, SourceError> {
        let rows: Vec<PartRow> = self
            .ch
            .fetch_all(
                ctx,
                "system.parts (of collector_runs)",
                self.ch
                    .query(
                        "SELECT name, partition_id, min_block_number, max_block_number FROM system.parts
                         WHERE database = ? AND table = 'collector_runs' AND active",
                    )
                    .bind(self.ch.database()),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Part {
                name: r.name,
                partition_id: r.partition_id,
                min_block: r.min_block_number,
                max_block: r.max_block_number,
            })
            .collect())
    }

    async fn read_runs(
        &self,
        ctx: &SourceContext,
        parts: Option<&[&Part]>,
        from_ms: i64,
        what: &str,
    ) -> Result<Vec<(Key, OpenRun)>, SourceError> {
        let sql = runs_sql(&self.ch.table("collector_runs"), parts);
        let rows: Vec<RunRow> = self.ch.fetch_all(ctx, what, self.ch.query(&sql).bind(from_ms)).await?;
        let mut names = self.names.lock().expect("names poisoned");
        Ok(rows
            .into_iter()
            .map(|r| {
                let run = OpenRun {
                    started_ms: r.started_ms,
                    completed_ms: r.completed_ms,
                    status: names.text(&r.status),
                    duration_ms: r.duration_ms,
                    events: r.events_produced,
                    rows: r.rows_inserted,
                    error: names.text(&r.error),
                };
                ((names.text(&r.collector), names.text(&r.aws_account_id), names.text(&r.aws_region)), run)
            })
            .collect())
    }

    /// A steady scrape on a MergeTree table: settles the runs that left the window when a step is
    /// due, then reads the parts not read yet. Each read happens before the state changes, so a
    /// failed read leaves it consistent (the parts not marked read are read again).
    pub(super) async fn read_incrementally(
        &self,
        ctx: &SourceContext,
        state: &mut RunsState,
        now_ms: i64,
    ) -> Result<(), SourceError> {
        let cutoff = now_ms - self.cfg.late_arrival_window.as_millis() as i64;
        let step = settle_step(self.cfg.late_arrival_window).as_millis() as i64;
        let since = state.settled.until_ms;
        if !state.open_ready || cutoff - since >= step {
            let (settling, _) = self
                .read_range(ctx, since, Some(cutoff.max(since)), cutoff.max(since), "collector_runs (settling)")
                .await?;
            state.settle(settling, cutoff.max(since), self.started_ms);
        }
        let listing = self.list_parts(ctx).await?;
        let from = state.settled.until_ms;
        let new_runs = if !state.open_ready {
            // The window's runs once, from every part (the parts listed before are then read).
            let runs = self.read_runs(ctx, None, from, "collector_runs (window runs)").await?;
            state.cursor = Default::default();
            let listed: Vec<&Part> = listing.iter().collect();
            Some((runs, listed))
        } else {
            let unread = state.cursor.unread(&listing);
            if unread.is_empty() {
                None
            } else if unread.iter().all(|p| plain_name(&p.name)) {
                let runs = self.read_runs(ctx, Some(&unread), from, "collector_runs (new parts)").await?;
                Some((runs, unread))
            } else {
                // A part name that cannot be written as a literal: read the window from every part.
                let runs = self.read_runs(ctx, None, from, "collector_runs (window runs)").await?;
                Some((runs, listing.iter().collect()))
            }
        };
        if let Some((runs, read)) = new_runs {
            // Only parts that still exist after the read were certainly part of it.
            let after = self.list_parts(ctx).await?;
            let still: std::collections::HashSet<&str> = after.iter().map(|p| p.name.as_str()).collect();
            let was_first = !state.open_ready;
            state.add_runs(runs, self.started_ms);
            state.cursor.mark_read(read.into_iter().filter(|p| still.contains(p.name.as_str())));
            state.cursor.retain_partitions(&after);
            if was_first {
                tracing::info!(
                    source = "collector_runs",
                    runs = state.open_runs.runs(),
                    keys = state.open_runs.keys(),
                    "window runs read; steady scrapes read new parts from now on"
                );
            }
        }
        state.open_ready = true;
        Ok(())
    }
}
