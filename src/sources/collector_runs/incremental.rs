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

use std::collections::HashSet;
use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;

use super::model::{ReadMode, RunsState};
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

/// Runs read by one query at most about this many (the shipped monitoring profile's
/// `max_result_rows` is 200,001): the window is read in `started_at` spans scaled to it.
const CHUNK_TARGET_RUNS: usize = 100_000;
/// The first span of a chunked window read, as a share of the late-arrival window.
const FIRST_CHUNKS_PER_WINDOW: u32 = 16;
const MIN_CHUNK_SPAN_MS: i64 = 1_000;

/// The runs of `parts` (every part if `None`) not settled at `E`, that started in a `started_at`
/// span. Parameters: span start, `E`, [span end].
fn runs_sql(table: &str, window_ms: i64, parts: Option<&[&Part]>, bounded: bool) -> String {
    let from_parts = match parts {
        Some(parts) => {
            let names: Vec<String> = parts.iter().map(|p| format!("'{}'", p.name)).collect();
            format!("_part IN ({}) AND ", names.join(", "))
        }
        None => String::new(),
    };
    let until = if bounded { " AND started_at < fromUnixTimestamp64Milli(?)" } else { "" };
    let unsettled = super::ranges::unsettled_sql(window_ms);
    format!(
        "SELECT collector, aws_account_id, aws_region,
            toUnixTimestamp64Milli(started_at) AS started_ms,
            toUnixTimestamp64Milli(completed_at) AS completed_ms,
            toString(status) AS status, duration_ms, events_produced, rows_inserted,
            leftUTF8(error, 2048) AS error, _part AS part
        FROM {table}
        WHERE {from_parts}{unsettled}{until}"
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
    part: String,
}

impl crate::clickhouse::text::RowKey for RunRow {
    fn key(&self) -> String {
        super::model::key_label(&self.collector, &self.aws_account_id, &self.aws_region)
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

    /// Reads the runs of `parts` (every part if `None`) not settled at `from_ms` straight into the
    /// window's runs, and returns the parts the rows came from. The whole window is read
    /// in `started_at` spans sized to [`CHUNK_TARGET_RUNS`]; new parts in one query, in spans only
    /// if the answer is over the profile's row limit. A read that fails half-way leaves real rows
    /// kept, which the next read of the same parts recognises.
    async fn read_runs(
        &self,
        ctx: &SourceContext,
        state: &mut RunsState,
        parts: Option<&[&Part]>,
        from_ms: i64,
        now_ms: i64,
        what: &str,
    ) -> Result<HashSet<String>, SourceError> {
        let since = self.started_ms;
        let mut seen: HashSet<String> = HashSet::new();
        let window_ms = self.cfg.late_arrival_window.as_millis() as i64;
        let first_span = (window_ms / i64::from(FIRST_CHUNKS_PER_WINDOW)).max(MIN_CHUNK_SPAN_MS);
        let mut span = parts.is_none().then_some(first_span);
        // Runs that started up to a window before `from_ms` may not be settled yet.
        let mut start = from_ms.saturating_sub(window_ms);
        loop {
            // The last span is open-ended: a run may start "in the future" by a skewed clock.
            let until = span.map(|s| start + s).filter(|u| *u <= now_ms);
            let sql = runs_sql(&self.ch.table("collector_runs"), window_ms, parts, until.is_some());
            let mut query = self.ch.query(&sql).bind(start).bind(from_ms);
            if let Some(until) = until {
                query = query.bind(until);
            }
            let mut rows = 0usize;
            let result = self
                .ch
                .fetch_each(ctx, what, query, |r: RunRow| {
                    rows += 1;
                    if !seen.contains(&r.part) {
                        seen.insert(r.part.clone());
                    }
                    let mut names = self.names.lock().expect("names poisoned");
                    let run = OpenRun {
                        started_ms: r.started_ms,
                        completed_ms: r.completed_ms,
                        status: names.text(&r.status),
                        duration_ms: r.duration_ms,
                        events: r.events_produced,
                        rows: r.rows_inserted,
                        error: names.text(&r.error),
                    };
                    let key = super::model::intern_key(&mut names, &r.collector, &r.aws_account_id, &r.aws_region);
                    drop(names);
                    state.add_run(key, run, since);
                })
                .await;
            state.total();
            match (result, until) {
                (Ok(()), None) => return Ok(seen),
                (Ok(()), Some(until)) => {
                    start = until;
                    span = span.map(|s| next_chunk_span(s, rows));
                }
                (Err(err), _) if err.kind == ErrorKind::Limit && span != Some(MIN_CHUNK_SPAN_MS) => {
                    span = Some(span.map_or(first_span, |s| (s / 2).max(MIN_CHUNK_SPAN_MS)));
                    tracing::debug!(
                        source = "collector_runs",
                        span_ms = span,
                        "answer over the row limit: smaller spans"
                    );
                }
                (Err(err), _) => return Err(err),
            }
        }
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
            self.settle(ctx, state, cutoff).await?;
        }
        let mut listing = self.list_parts(ctx).await?;
        state.cursor.forget_restarted(&listing);
        // A part merged away between the listing and the read gives no rows; its successor is
        // listed and read in the same scrape, so a scrape shows every row inserted before it.
        for pass in 1..=MAX_READ_PASSES {
            match self.read_listed(ctx, state, &listing, now_ms).await? {
                Some(after) if pass < MAX_READ_PASSES => {
                    tracing::debug!(
                        source = "collector_runs",
                        pass,
                        "parts merged during the read: reading their successors"
                    );
                    listing = after;
                }
                _ => break,
            }
        }
        Ok(())
    }
}

/// Reads of new parts per scrape at most: the first, then one more per merge that took a listed
/// part away during the read (the next scrape reads what is left).
const MAX_READ_PASSES: u32 = 3;

impl Inner {
    /// Reads the runs of the listed parts not read yet (every part's at the first steady scrape)
    /// and marks them read. Returns the parts listed after the read when some listed part gave no
    /// rows and is gone (merged away meanwhile: its rows are in a successor not read yet).
    async fn read_listed(
        &self,
        ctx: &SourceContext,
        state: &mut RunsState,
        listing: &[Part],
        now_ms: i64,
    ) -> Result<Option<Vec<Part>>, SourceError> {
        let from = state.settled.until_ms;
        let (read, seen): (Vec<&Part>, HashSet<String>) = if !state.open_ready {
            // The window's runs once, from every part (the parts listed before are then read).
            state.cursor = Default::default();
            let seen = self.read_runs(ctx, state, None, from, now_ms, "collector_runs (window runs)").await?;
            (listing.iter().collect(), seen)
        } else {
            let unread = state.cursor.unread(listing);
            if unread.is_empty() {
                return Ok(None);
            } else if unread.iter().all(|p| plain_name(&p.name)) {
                let seen =
                    self.read_runs(ctx, state, Some(&unread), from, now_ms, "collector_runs (new parts)").await?;
                (unread, seen)
            } else {
                // A part name that cannot be written as a literal: read the window from every part.
                let seen = self.read_runs(ctx, state, None, from, now_ms, "collector_runs (window runs)").await?;
                (listing.iter().collect(), seen)
            }
        };
        // A listed part was certainly read if rows came from it, or if it still exists after
        // the read (one merged away before the read began is read again through its
        // successor). Parts that gave rows need no second listing: the usual steady case.
        let was_first = !state.open_ready;
        let mut vanished = None;
        if read.iter().all(|p| seen.contains(&p.name)) {
            state.cursor.mark_read(read);
            state.cursor.retain_partitions(listing);
        } else {
            let after = self.list_parts(ctx).await?;
            let still: HashSet<&str> = after.iter().map(|p| p.name.as_str()).collect();
            let gone = read.iter().any(|p| !seen.contains(&p.name) && !still.contains(p.name.as_str()));
            state
                .cursor
                .mark_read(read.into_iter().filter(|p| seen.contains(&p.name) || still.contains(p.name.as_str())));
            state.cursor.retain_partitions(&after);
            // The first read took every part's rows whatever merged: nothing to read again.
            vanished = (gone && !was_first).then_some(after);
        }
        if was_first {
            tracing::info!(
                source = "collector_runs",
                runs = state.open_runs,
                keys = state.keys(),
                "window runs read; steady scrapes read new parts from now on"
            );
        }
        state.open_ready = true;
        Ok(vanished)
    }
}

impl Inner {
    /// Settles the runs settled at `cutoff_ms` (`model::settle_point_ms`), in one read of at most about
    /// [`CHUNK_TARGET_RUNS`] runs (the window's runs tell how many a span holds); a span over the
    /// profile's row limit is halved and read again. What is left settles at the next scrapes.
    async fn settle(&self, ctx: &SourceContext, state: &mut RunsState, cutoff_ms: i64) -> Result<(), SourceError> {
        let since = state.settled.until_ms;
        let mut end = cutoff_ms.max(since);
        if state.open_ready {
            end = state.settle_end(since, end, CHUNK_TARGET_RUNS);
        }
        loop {
            match self.read_range(ctx, since, Some(end), end, "collector_runs (settling)").await {
                Ok((settling, _)) => {
                    state.settle(settling, end, self.started_ms);
                    return Ok(());
                }
                Err(err) if err.kind == ErrorKind::Limit && end - since > MIN_CHUNK_SPAN_MS => {
                    end = since + (end - since) / 2;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// The next span of a chunked read: scaled to [`CHUNK_TARGET_RUNS`], at most doubling.
fn next_chunk_span(span: i64, rows: usize) -> i64 {
    let factor = if rows == 0 { 2.0 } else { (CHUNK_TARGET_RUNS as f64 / rows as f64).clamp(0.25, 2.0) };
    ((span as f64 * factor) as i64).max(MIN_CHUNK_SPAN_MS)
}
