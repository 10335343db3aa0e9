//! The families of `collector_runs`, declared once, and the pure mapping from the per-key view.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::config::CollectorsConfig;
use super::health::{CollectorStatus, CollectorSummary, Thresholds};
use super::model::{single_line, Key, KeyState, ERROR_LABEL_MAX_CHARS, KNOWN_STATUSES};
use crate::metrics::{Def, MetricFamily};

const KEY: &[&str] = &["collector", "aws_account_id", "aws_region"];
const COLLECTOR: &[&str] = &["collector"];

pub static LAST_RUN: Def = Def::gauge(
    "polo_collector_last_run_timestamp_seconds",
    "completed_at of the latest run of the collector for this account and region.",
    KEY,
);
pub static LAST_SUCCESS: Def = Def::gauge(
    "polo_collector_last_success_timestamp_seconds",
    "completed_at of the latest succeeded run; 0 if the key has runs but none succeeded.",
    KEY,
);
pub static LAST_RUN_STATUS: Def = Def::gauge(
    "polo_collector_last_run_status",
    "1 for the status of the latest run, 0 for the other known statuses (succeeded, failed, partial); an unknown status is shown with value 1.",
    &["collector", "aws_account_id", "aws_region", "status"],
);
pub static CONSECUTIVE_FAILURES: Def =
    Def::gauge("polo_collector_consecutive_failures", "How many of the latest runs in a row have status failed.", KEY);
pub static LAST_RUN_DURATION: Def =
    Def::gauge("polo_collector_last_run_duration_seconds", "duration_ms of the latest run, in seconds.", KEY);
pub static LAST_RUN_EVENTS: Def =
    Def::gauge("polo_collector_last_run_events", "events_produced by the latest run.", KEY);
pub static LAST_RUN_ROWS: Def =
    Def::gauge("polo_collector_last_run_rows_inserted", "rows_inserted by the latest run.", KEY);
pub static LAST_ERROR: Def = Def::gauge(
    "polo_collector_last_error_info",
    "1 while the latest run did not succeed; the error label holds its error text, single-line and shortened.",
    &["collector", "aws_account_id", "aws_region", "error"],
);
pub static EXPECTED_INTERVAL: Def = Def::gauge(
    "polo_collector_expected_interval_seconds",
    "Configured expected interval between runs of the collector.",
    COLLECTOR,
);
pub static STALENESS_FACTOR: Def = Def::gauge(
    "polo_collector_staleness_factor",
    "A key is stale after this many expected intervals without a success (config sources.collector_runs.staleness_factor).",
    COLLECTOR,
);
pub static LATE_THRESHOLD: Def = Def::gauge(
    "polo_collector_late_threshold_seconds",
    "A key of the collector is late (amber) once its last success is older than this: the expected interval.",
    COLLECTOR,
);
pub static STALE_THRESHOLD: Def = Def::gauge(
    "polo_collector_stale_threshold_seconds",
    "A key of the collector is stale (red, PoloCollectorStale) once its last success is older than this: staleness_factor times the expected interval.",
    COLLECTOR,
);
pub static RUNS: Def = Def::counter(
    "polo_collector_runs",
    "Runs completed since the exporter started, by status.",
    &["collector", "status"],
);
pub static DEPENDENCIES_READY: Def = Def::gauge(
    "polo_collector_dependencies_ready",
    "1 if every collector this one depends on has a succeeded run within the configured window, else 0.",
    COLLECTOR,
);
pub static ACCOUNT_LAST_SCAN: Def = Def::gauge(
    "polo_account_last_scan_timestamp_seconds",
    "completed_at of the latest succeeded run of any collector for the account; 0 if its runs never succeeded.",
    &["aws_account_id"],
);

/// What one scrape of the source produces, computed from the per-key view.
pub struct Mapped {
    pub families: Vec<MetricFamily>,
    pub collectors: Vec<CollectorStatus>,
}

pub fn map(
    view: &HashMap<Key, KeyState>,
    runs_total: &BTreeMap<(String, String), u64>,
    cfg: &CollectorsConfig,
    now_ms: i64,
) -> Mapped {
    let mut keys: Vec<(&Key, &KeyState)> = view.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    let mut families = key_families(&keys);
    families.push(account_last_scan(&keys));

    let mut per_collector: BTreeMap<&str, CollectorSummary> = BTreeMap::new();
    for (key, state) in &keys {
        per_collector.entry(&key.0).or_insert_with(|| CollectorSummary::new(cfg, &key.0)).add(state, now_ms);
    }
    let mut collectors: BTreeSet<String> = per_collector.keys().map(|c| c.to_string()).collect();
    collectors.extend(cfg.named_collectors());
    collectors.extend(runs_total.keys().map(|(c, _)| c.clone()));
    families.extend(collector_families(&collectors, runs_total, cfg));
    families.push(dependencies_ready(&per_collector, cfg, now_ms));

    let collectors = per_collector.iter().map(|(name, s)| s.status(name, now_ms)).collect();
    Mapped { families, collectors }
}

/// The per-key families: one series per (collector, account, region) and family.
fn key_families(keys: &[(&Key, &KeyState)]) -> Vec<MetricFamily> {
    let mut last_run = LAST_RUN.family();
    let mut last_success = LAST_SUCCESS.family();
    let mut status = LAST_RUN_STATUS.family();
    let mut consecutive = CONSECUTIVE_FAILURES.family();
    let mut duration = LAST_RUN_DURATION.family();
    let mut events = LAST_RUN_EVENTS.family();
    let mut rows = LAST_RUN_ROWS.family();
    let mut error = LAST_ERROR.family();
    for ((collector, account, region), state) in keys {
        let key = || [collector.clone(), account.clone(), region.clone()];
        let with = |extra: String| [collector.clone(), account.clone(), region.clone(), extra];
        last_run.push(key(), ms_to_s(state.last_completed_ms));
        last_success.push(key(), ms_to_s(state.last_success_ms));
        for known in KNOWN_STATUSES {
            status.push(with(known.to_string()), f64::from(u8::from(state.last_status == known)));
        }
        if !KNOWN_STATUSES.contains(&state.last_status.as_str()) {
            status.push(with(state.last_status.clone()), 1.0);
        }
        consecutive.push(key(), state.consecutive_failures as f64);
        duration.push(key(), f64::from(state.last_duration_ms) / 1000.0);
        events.push(key(), f64::from(state.last_events));
        rows.push(key(), f64::from(state.last_rows));
        if state.last_status != "succeeded" {
            error.push(with(single_line(&state.last_error, ERROR_LABEL_MAX_CHARS)), 1.0);
        }
    }
    vec![last_run, last_success, status, consecutive, duration, events, rows, error]
}

/// Per account: the latest success of any collector, from the same rows as everything else here.
fn account_last_scan(keys: &[(&Key, &KeyState)]) -> MetricFamily {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for ((_, account, _), state) in keys {
        let scan = last.entry(account).or_insert(0);
        *scan = (*scan).max(state.last_success_ms);
    }
    let mut family = ACCOUNT_LAST_SCAN.family();
    for (account, ms) in last {
        family.push([account.to_string()], ms_to_s(ms));
    }
    family
}

/// The per-collector families: configuration (thresholds) and run counters.
fn collector_families(
    collectors: &BTreeSet<String>,
    runs_total: &BTreeMap<(String, String), u64>,
    cfg: &CollectorsConfig,
) -> Vec<MetricFamily> {
    let mut expected = EXPECTED_INTERVAL.family();
    let mut factor = STALENESS_FACTOR.family();
    let mut late = LATE_THRESHOLD.family();
    let mut stale = STALE_THRESHOLD.family();
    let mut total = RUNS.family();
    for collector in collectors {
        let c = || [collector.clone()];
        let thresholds = Thresholds::of(cfg, collector);
        expected.push(c(), cfg.expected_interval(collector).as_secs_f64());
        factor.push(c(), cfg.staleness_factor);
        late.push(c(), thresholds.late_ms / 1000.0);
        stale.push(c(), thresholds.stale_ms / 1000.0);
        let mut statuses: BTreeSet<&str> = KNOWN_STATUSES.into_iter().collect();
        statuses.extend(runs_total.keys().filter(|(c, _)| c == collector).map(|(_, s)| s.as_str()));
        for s in statuses {
            let n = runs_total.get(&(collector.clone(), s.to_string())).copied().unwrap_or(0);
            total.push([collector.clone(), s.to_string()], n as f64);
        }
    }
    vec![expected, factor, late, stale, total]
}

fn dependencies_ready(
    per_collector: &BTreeMap<&str, CollectorSummary>,
    cfg: &CollectorsConfig,
    now_ms: i64,
) -> MetricFamily {
    let mut ready = DEPENDENCIES_READY.family();
    for (collector, dep) in &cfg.dependencies {
        let since = now_ms - dep.within.as_millis() as i64;
        let ok = dep.requires.iter().all(|required| {
            per_collector.get(required.as_str()).is_some_and(|s| s.last_success_ms >= since && s.last_success_ms > 0)
        });
        ready.push([collector.clone()], f64::from(u8::from(ok)));
    }
    ready
}

fn ms_to_s(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
