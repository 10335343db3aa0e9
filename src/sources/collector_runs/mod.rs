//! Source `collector_runs`: freshness and failures of Polo's collectors from `polo.collector_runs`,
//! and each account's last successful scan.
//!
//! Cost: ClickHouse aggregates per key and `started_at` range, so an answer has one row per key,
//! never one per run. The **initial load** (every run older than the late-arrival window, back to
//! `forget_after`) runs in the background in `started_at` chunks sized to about
//! [`LOAD_CHUNK_TARGET_ROWS`] rows read, each under the source's own timeout and retried on
//! failure, independent of scrape deadlines; until it is done the source serves its progress, not
//! partial data. Every later scrape reads only what was inserted since the previous one: the
//! parts not read yet (`incremental.rs`), whose runs are kept one by one until they leave the
//! late-arrival window and settle through the exact per-key aggregate read. On a table whose
//! parts cannot be listed, every scrape re-aggregates the whole window instead.

pub mod config;
pub mod families;
pub mod health;
mod incremental;
pub mod key_table;
pub mod model;
pub mod open;
pub mod output;
pub mod parts;
mod ranges;
pub mod slo;
mod slo_read;
pub mod text;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{watch, Mutex};

use crate::clickhouse::ClickHouse;
use crate::config::{ConfigError, SourceSettings, Validator};
use crate::framework::{ErrorKind, Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::Def;
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;
use crate::status::StatusSection;
use config::{CollectorRunsConfig, CollectorsConfig, RawCollectorRuns};
use model::{RunsState, Settled};

/// Rows one chunk of the initial load should read; the next chunk's time span is scaled to it.
pub const LOAD_CHUNK_TARGET_ROWS: u64 = 2_000_000;
/// Time span of the first chunk of the initial load.
const LOAD_FIRST_SPAN_MS: i64 = 86_400_000;
/// Shortest chunk span after chunks time out.
const LOAD_MIN_SPAN_MS: i64 = 60_000;
/// Longest pause between failed chunk attempts.
const LOAD_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A scrape during the initial load waits for it until this long before its deadline, then
/// answers with the progress.
const LOADING_ANSWER_MARGIN: Duration = Duration::from_millis(100);

pub struct CollectorRuns {
    inner: Arc<Inner>,
}

struct Inner {
    ch: ClickHouse,
    cfg: CollectorsConfig,
    timeout: Duration,
    started_ms: i64,
    state: Mutex<Option<RunsState>>,
    load: std::sync::Mutex<Load>,
    /// (initial load done, chunk attempts failed so far): wakes scrapes waiting on the load.
    loaded: watch::Sender<(bool, u64)>,
    slo: slo_read::SloState,
    /// The texts of every key and state, each held once.
    names: std::sync::Mutex<text::Interner>,
}

/// Progress of the initial load.
#[derive(Debug, Default, Clone)]
struct Load {
    started: bool,
    from_ms: i64,
    until_ms: i64,
    done_until_ms: i64,
    chunks: u64,
    rows_read: u64,
    started_at_unix_ms: i64,
    /// The latest chunk attempt failed with this; cleared by the next success.
    error: Option<(ErrorKind, String)>,
}

impl Load {
    fn progress(&self) -> f64 {
        if !self.started || self.until_ms <= self.from_ms {
            return 0.0;
        }
        ((self.done_until_ms - self.from_ms) as f64 / (self.until_ms - self.from_ms) as f64).clamp(0.0, 1.0)
    }
}

/// The status document's `collectors_loading` while the initial load runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadingStatus {
    /// Always "loading": the `collectors` list is absent until the load is done.
    pub state: &'static str,
    pub progress_ratio: f64,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub started: String,
    /// Start of the `started_at` range read so far (RFC 3339).
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub read_from: String,
    /// Up to where it has been read.
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub read_until: String,
    /// Where the load ends (the late-arrival window begins there).
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub load_until: String,
    pub rows_read: u64,
}

impl SourceKind for CollectorRuns {
    const NAME: &'static str = "collector_runs";
    const ENABLED_BY_DEFAULT: bool = true;
    const FAMILIES: &'static [&'static Def] = &[
        &families::LAST_RUN,
        &families::LAST_SUCCESS,
        &families::LAST_RUN_STATUS,
        &families::CONSECUTIVE_FAILURES,
        &families::CONSECUTIVE_PARTIALS,
        &families::OUTPUT_COLLAPSED_RUNS,
        &families::LAST_RUN_DURATION,
        &families::LAST_RUN_EVENTS,
        &families::LAST_RUN_ROWS,
        &families::LAST_ERROR,
        &families::EXPECTED_INTERVAL,
        &families::STALENESS_FACTOR,
        &families::LATE_THRESHOLD,
        &families::STALE_THRESHOLD,
        &families::RUN_TIMEOUT,
        &families::RUNS,
        &families::DEPENDENCIES_READY,
        &families::KEYS_BY_HEALTH,
        &families::KEYS_BY_LAST_STATUS,
        &families::MAX_CONSECUTIVE_FAILURES,
        &families::OUTPUT_COLLAPSED_KEYS,
        &families::OUTPUT_BASELINE_KEYS,
        &families::MAX_LAST_DURATION,
        &families::OLDEST_SUCCESS,
        &families::LATEST_RUN,
        &families::LATEST_SUCCESS,
        &families::DROPPED_KEYS,
        &families::LOADING,
        &families::LOAD_PROGRESS,
        &families::ACCOUNT_LAST_SCAN,
        &slo::ATTAINMENT,
        &slo::OBJECTIVE,
        &slo::WINDOW,
        &slo::STALE_KEY_SECONDS,
        &slo::KEY_SECONDS,
    ];
    const STATUS_SECTIONS: &'static [&'static str] = &["collectors", "collectors_loading"];
    type Raw = RawCollectorRuns;
    type Config = CollectorRunsConfig;

    fn validate(raw: RawCollectorRuns, v: &Validator, shared: &Shared) -> Result<CollectorRunsConfig, ConfigError> {
        config::validate(raw, v, shared)
    }

    fn default_timeout(shared: &Shared) -> std::time::Duration {
        crate::clickhouse::default_timeout(shared.clickhouse)
    }

    fn warnings(_config: &Self::Config, settings: &SourceSettings) -> Vec<String> {
        crate::clickhouse::timeout_warning(Self::NAME, settings.timeout).into_iter().collect()
    }

    fn build(config: &CollectorRunsConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self {
            inner: Arc::new(Inner {
                ch: ClickHouse::new(&config.clickhouse, Self::NAME, settings.timeout),
                cfg: config.collectors.clone(),
                timeout: settings.timeout,
                started_ms: crate::clock::unix_ms(),
                state: Mutex::new(None),
                load: std::sync::Mutex::new(Load::default()),
                loaded: watch::channel((false, 0)).0,
                slo: slo_read::SloState::new(config.slo.clone()),
                names: Default::default(),
            }),
        })
    }

    fn config_sections() -> Vec<(String, &'static [crate::config::doc::KeyDoc])> {
        use crate::config::doc::Documented;
        vec![
            (format!("sources.{}", Self::NAME), <Self::Raw as Documented>::KEYS),
            (
                "sources.collector_runs.dependencies.<collector>".to_string(),
                <config::RawDependency as Documented>::KEYS,
            ),
        ]
    }
}

impl Inner {
    fn load_snapshot(&self) -> Load {
        self.load.lock().expect("load state poisoned").clone()
    }

    /// Starts the initial load once, in the background.
    fn start_load(self: &Arc<Self>, ctx: &SourceContext) {
        let mut load = self.load.lock().expect("load state poisoned");
        if load.started {
            return;
        }
        let now = crate::clock::unix_ms();
        let until = now - self.cfg.late_arrival_window.as_millis() as i64;
        let from = until - self.cfg.forget_after.as_millis() as i64;
        *load = Load {
            started: true,
            from_ms: from,
            until_ms: until,
            done_until_ms: from,
            started_at_unix_ms: now,
            ..Load::default()
        };
        let me = Arc::clone(self);
        let ctx = ctx.clone();
        tokio::spawn(async move { me.run_load(ctx, from, until).await });
    }

    /// The initial load: every run that started in [from, until), chunk by chunk in `started_at`
    /// order, each chunk under the source's timeout, retried until it succeeds.
    async fn run_load(self: Arc<Self>, ctx: SourceContext, from: i64, until: i64) {
        let t0 = std::time::Instant::now();
        tracing::info!(
            source = "collector_runs",
            from = %crate::clock::rfc3339(from as f64 / 1000.0),
            until = %crate::clock::rfc3339(until as f64 / 1000.0),
            "initial load started"
        );
        let window_ms = self.cfg.late_arrival_window.as_millis() as i64;
        let mut settled = Settled::new(from, window_ms, self.cfg.collapse.clone());
        let mut span = LOAD_FIRST_SPAN_MS.min(until - from).max(LOAD_MIN_SPAN_MS);
        let mut failures: u32 = 0;
        while settled.until_ms < until {
            let start = settled.until_ms;
            let end = (start + span).min(until);
            let before = ctx.get(Usage::ClickHouseReadRows);
            let attempt = tokio::time::timeout(
                self.timeout,
                self.read_range(&ctx, start, Some(end), end, "collector_runs (initial load chunk)"),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("initial load chunk did not finish within {:?}", self.timeout),
                ))
            });
            match attempt {
                Ok((settling, _)) => {
                    let read = ctx.get(Usage::ClickHouseReadRows).saturating_sub(before);
                    settled.fold(settling, end);
                    failures = 0;
                    let mut load = self.load.lock().expect("load state poisoned");
                    load.done_until_ms = end;
                    load.chunks += 1;
                    load.rows_read += read;
                    load.error = None;
                    tracing::debug!(
                        source = "collector_runs",
                        chunk = load.chunks,
                        rows_read = read,
                        progress = load.progress(),
                        "initial load chunk read"
                    );
                    span = next_span(span, read, self.cfg.forget_after.as_millis() as i64);
                }
                Err(err) => {
                    failures += 1;
                    if err.kind == ErrorKind::Timeout || err.kind == ErrorKind::Limit || err.kind == ErrorKind::Query {
                        span = (span / 2).max(LOAD_MIN_SPAN_MS);
                    }
                    tracing::warn!(source = "collector_runs", kind = err.kind.as_str(), error = %err.chain(), failures, "initial load chunk failed; retrying");
                    self.load.lock().expect("load state poisoned").error = Some((err.kind, err.chain()));
                    self.loaded.send_modify(|(_, failed)| *failed += 1);
                    let backoff =
                        Duration::from_millis(250 * 2u64.saturating_pow(failures.min(10))).min(LOAD_MAX_BACKOFF);
                    tokio::time::sleep(backoff).await;
                }
            }
        }
        let keys = settled.keys.len();
        self.load_slo(&ctx, &settled.states().collect::<Vec<_>>()).await;
        let mut state = RunsState::from_settled(settled);
        // From now on each key's SLO part lives in its slot (one pass per scrape, no second map).
        let parts = self.slo.ledger.lock().expect("slo state poisoned").as_mut().map(slo::Ledger::take_keys);
        if let Some(parts) = parts {
            state.adopt_sli(parts);
        }
        *self.state.lock().await = Some(state);
        let load = self.load_snapshot();
        tracing::info!(
            source = "collector_runs",
            keys,
            chunks = load.chunks,
            rows_read = load.rows_read,
            duration_seconds = t0.elapsed().as_secs_f64(),
            "initial load finished"
        );
        self.loaded.send_modify(|(done, _)| *done = true);
    }

    /// While loading: the progress, or the failure that holds the load up.
    fn loading_output(&self) -> Result<SourceOutput, SourceError> {
        let load = self.load_snapshot();
        if let Some((kind, error)) = load.error {
            return Err(SourceError::new(kind, format!("initial load: {error}")));
        }
        if load.chunks == 0 {
            // Nothing has answered yet: not known to be up (a hanging server looks like this).
            return Err(SourceError::new(
                ErrorKind::Timeout,
                "initial load: ClickHouse has not answered its first chunk yet (the load goes on in the background)",
            ));
        }
        let ts = |ms: i64| crate::clock::rfc3339(ms as f64 / 1000.0);
        Ok(SourceOutput {
            families: families::map_loading(load.progress(), &self.cfg),
            status: Some(StatusSection::variant(
                "collectors",
                "collectors_loading",
                &LoadingStatus {
                    state: "loading",
                    progress_ratio: load.progress(),
                    started: ts(load.started_at_unix_ms),
                    read_from: ts(load.from_ms),
                    read_until: ts(load.done_until_ms),
                    load_until: ts(load.until_ms),
                    rows_read: load.rows_read,
                },
            )),
            ..SourceOutput::default()
        })
    }
}

/// The next chunk's span: scaled so that it reads about [`LOAD_CHUNK_TARGET_ROWS`], growing at
/// most 8× at a time.
fn next_span(span: i64, read: u64, max_ms: i64) -> i64 {
    let factor = if read == 0 { 8.0 } else { (LOAD_CHUNK_TARGET_ROWS as f64 / read as f64).clamp(0.25, 8.0) };
    ((span as f64 * factor) as i64).clamp(LOAD_MIN_SPAN_MS, max_ms.max(LOAD_MIN_SPAN_MS))
}

#[async_trait::async_trait]
impl Source for CollectorRuns {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::ClickHouseReadRows, Usage::InvalidValues]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let inner = &self.inner;
        let (done, failed) = *inner.loaded.borrow();
        if !done {
            inner.start_load(ctx);
            if inner.load_snapshot().error.is_some() {
                // The load is held up (ClickHouse down?): say so now, it retries on its own.
                return inner.loading_output();
            }
            // Wait for the load to finish or fail, until just before the scrape's deadline.
            let mut loaded = inner.loaded.subscribe();
            let wait_until = ctx
                .deadline()
                .map(|d| d.checked_sub(LOADING_ANSWER_MARGIN).unwrap_or(d))
                .unwrap_or_else(|| tokio::time::Instant::now() + inner.timeout);
            let _ = tokio::time::timeout_at(wait_until, loaded.wait_for(|(done, f)| *done || *f > failed)).await;
            if !inner.loaded.borrow().0 {
                return inner.loading_output();
            }
        }
        let now = crate::clock::unix_ms();
        let cutoff = now - inner.cfg.late_arrival_window.as_millis() as i64;
        let mut guard = inner.state.lock().await;
        let state = guard.as_mut().expect("loaded above");
        state.forget_before(now - inner.cfg.forget_after.as_millis() as i64);
        if state.mode == model::ReadMode::Unknown {
            state.mode = inner.decide_mode(ctx).await?;
        }
        if state.mode == model::ReadMode::Parts {
            inner.read_incrementally(ctx, state, now).await?;
        } else {
            let since = state.settled.until_ms;
            // Read before changing anything, so a failed read leaves the state as it was.
            let (settling, open) =
                inner.read_range(ctx, since, None, cutoff.max(since), "collector_runs (window)").await?;
            state.ingest(settling, open, cutoff);
        }
        // Texts no key refers to any more (forgotten keys, replaced errors).
        inner.names.lock().expect("names poisoned").sweep();
        let excluded = inner.excluded_accounts(ctx).await;
        let runs_total = state.runs_total().clone();
        let view = {
            let mut ledger = inner.slo.ledger.lock().expect("slo state poisoned");
            match ledger.as_mut() {
                Some(ledger) => {
                    let mut pass = ledger.begin(&excluded, &inner.cfg, now);
                    let view = state.view_accounting(|key, current, sli| pass.account(key, current, sli));
                    pass.end();
                    view
                }
                None => state.view(),
            }
        };
        let mut mapped = families::map(&view, &runs_total, &inner.cfg, now);
        drop(view);
        state.release_view();
        let (slo_families, collectors) = inner.slo_report(&mapped.collectors, now);
        mapped.families.extend(slo_families);
        Ok(SourceOutput { families: mapped.families, status: Some(collectors), ..SourceOutput::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_spans_follow_the_rows_read() {
        let day = 86_400_000;
        assert_eq!(next_span(day, 0, 90 * day), 8 * day, "empty chunks grow fast");
        assert_eq!(next_span(day, LOAD_CHUNK_TARGET_ROWS * 2, 90 * day), day / 2);
        assert_eq!(next_span(day, 1, 90 * day), 8 * day, "at most 8x at a time");
        assert_eq!(next_span(60 * day, 0, 90 * day), 90 * day, "never past the whole range");
        assert_eq!(next_span(LOAD_MIN_SPAN_MS, u64::MAX, 90 * day), LOAD_MIN_SPAN_MS);
    }
}
