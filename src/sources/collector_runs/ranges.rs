//! The per-key aggregate read: the runs whose settle point (`model::settle_point_ms`) lies in a
//! range, one row per key, never one per run. The initial load reads its chunks with it, the
//! parts mode its settle steps, the window mode the whole window at every scrape.

use clickhouse::Row;
use serde::Deserialize;

use super::model::{self, Agg, Key};
use super::{text, Inner};
use crate::framework::{SourceContext, SourceError};

/// [`model::settle_point_ms`] in SQL, in ms since the epoch: the two must agree, or a run would be
/// both settled and kept open, or neither.
pub fn settle_point_sql(window_ms: i64) -> String {
    format!(
        "greatest(toUnixTimestamp64Milli(started_at), \
         least(toUnixTimestamp64Milli(completed_at), toUnixTimestamp64Milli(started_at) + {window_ms}))"
    )
}

/// The runs not settled at `E` (one `?`, ms), with a bound on `started_at` (one more `?`: `E`
/// minus the window) that the sort key and the `started_at` index can prune by: every run that
/// started a window before `E` is settled at `E`.
pub fn unsettled_sql(window_ms: i64) -> String {
    format!("started_at >= fromUnixTimestamp64Milli(?) AND {} >= ?", settle_point_sql(window_ms))
}

/// The per-key aggregate SQL over the runs not settled at `from` and, if `bounded`, settled at
/// `until`; those settled at `split` come back with `settling = 1`.
/// Parameters: split, counting since, from - window, from, [until, until].
fn range_sql(table: &str, window_ms: i64, bounded: bool) -> String {
    let point = settle_point_sql(window_ms);
    let until =
        if bounded { format!(" AND started_at < fromUnixTimestamp64Milli(?) AND {point} < ?") } else { String::new() };
    let unsettled = unsettled_sql(window_ms);
    format!(
        "SELECT collector, aws_account_id, aws_region,
            toUInt8({point} < ?) AS settling,
            toUnixTimestamp64Milli(max(completed_at)) AS last_completed_ms,
            toString(argMax(status, completed_at)) AS last_status,
            argMax(duration_ms, completed_at) AS last_duration_ms,
            argMax(events_produced, completed_at) AS last_events,
            argMax(rows_inserted, completed_at) AS last_rows,
            leftUTF8(argMax(error, completed_at), 2048) AS last_error,
            toUnixTimestamp64Milli(maxIf(completed_at, status = 'succeeded')) AS last_success_ms,
            toUnixTimestamp64Milli(maxIf(completed_at, status != 'failed')) AS last_non_failed_ms,
            toUInt64(arrayCount(t -> t > last_non_failed_ms,
                groupArrayIf(toUnixTimestamp64Milli(completed_at), status = 'failed'))) AS failed_after,
            toUnixTimestamp64Milli(maxIf(completed_at, status != 'partial')) AS last_non_partial_ms,
            toUInt64(arrayCount(t -> t > last_non_partial_ms,
                groupArrayIf(toUnixTimestamp64Milli(completed_at), status = 'partial'))) AS partial_after,
            arrayMap(x -> x.2, arraySort(groupArrayIf((completed_at, events_produced), status = 'succeeded'))) AS success_events,
            sumMapIf([toString(status)], [toUInt64(1)], completed_at >= fromUnixTimestamp64Milli(?)) AS counted
        FROM {table}
        WHERE {unsettled}{until}
        GROUP BY collector, aws_account_id, aws_region, settling"
    )
}

pub type Aggs = Vec<(Key, Agg)>;

impl Inner {
    /// Aggregates of the runs not settled at `from_ms` and settled at `until_ms` (no bound if
    /// `None`), split at `split_ms` into those that settle and those still open.
    pub(super) async fn read_range(
        &self,
        ctx: &SourceContext,
        from_ms: i64,
        until_ms: Option<i64>,
        split_ms: i64,
        what: &str,
    ) -> Result<(Aggs, Aggs), SourceError> {
        let window_ms = self.cfg.late_arrival_window.as_millis() as i64;
        let sql = range_sql(&self.ch.table("collector_runs"), window_ms, until_ms.is_some());
        let mut query = self
            .ch
            .query(&sql)
            .bind(split_ms)
            .bind(self.started_ms)
            .bind(from_ms.saturating_sub(window_ms))
            .bind(from_ms);
        if let Some(until) = until_ms {
            query = query.bind(until).bind(until);
        }
        // Each row is converted as it arrives (shared texts), so the answer is never held twice.
        let (mut settling, mut open) = (Vec::new(), Vec::new());
        self.ch
            .fetch_each(ctx, what, query, |row: AggRow| {
                let target = if row.settling == 1 { &mut settling } else { &mut open };
                target.push(row.into_entry(&mut self.names.lock().expect("names poisoned")));
            })
            .await?;
        Ok((settling, open))
    }
}

#[derive(Debug, Row, Deserialize)]
pub struct AggRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    collector: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_account_id: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    aws_region: String,
    settling: u8,
    last_completed_ms: i64,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    last_status: String,
    last_duration_ms: u32,
    last_events: u32,
    last_rows: u32,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    last_error: String,
    last_success_ms: i64,
    last_non_failed_ms: i64,
    failed_after: u64,
    last_non_partial_ms: i64,
    partial_after: u64,
    success_events: Vec<u32>,
    counted: (Vec<crate::clickhouse::text::Lossy>, Vec<u64>),
}

impl crate::clickhouse::text::RowKey for AggRow {
    fn key(&self) -> String {
        model::key_label(&self.collector, &self.aws_account_id, &self.aws_region)
    }
}

impl AggRow {
    fn into_entry(self, names: &mut text::Interner) -> (Key, Agg) {
        let (statuses, counts) = self.counted;
        (
            model::intern_key(names, &self.collector, &self.aws_account_id, &self.aws_region),
            Agg {
                last_completed_ms: self.last_completed_ms,
                last_status: names.text(&self.last_status),
                last_duration_ms: self.last_duration_ms,
                last_events: self.last_events,
                last_rows: self.last_rows,
                last_error: names.text(&self.last_error),
                last_success_ms: self.last_success_ms,
                last_non_failed_ms: self.last_non_failed_ms,
                failed_after: self.failed_after,
                last_non_partial_ms: self.last_non_partial_ms,
                partial_after: self.partial_after,
                success_events: self.success_events.into(),
                counted: statuses.iter().map(|s| names.text(&s.0)).zip(counts).collect(),
            },
        )
    }
}
