//! The families of `collector_runs`, declared once, and the pure mapping from the per-key view.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{CollectorsConfig, PerKeySeries};
use super::health::{CollectorStatus, CollectorSummary, Health, Thresholds};
use super::model::{single_line, Key, KeyState, ERROR_LABEL_MAX_CHARS, KNOWN_STATUSES};
use super::output::Collapse;
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
pub static CONSECUTIVE_PARTIALS: Def = Def::gauge(
    "polo_collector_consecutive_partials",
    "How many of the latest runs in a row have status partial (incomplete data; PoloCollectorPartial from 3).",
    KEY,
);
pub static OUTPUT_COLLAPSED_RUNS: Def = Def::gauge(
    "polo_collector_output_collapsed_runs",
    "Succeeded runs in a row whose events_produced fell below output_collapse_ratio times the key's baseline (the median of its last 5 normal successes); 0 while the latest success is normal or the key has no baseline.",
    KEY,
);
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
    "A key of the collector is stale (red) once its last success is older than this: staleness_factor times the expected interval (PoloCollectorStale when every key is, PoloCollectorKeysStale when some are).",
    COLLECTOR,
);
pub static RUN_TIMEOUT: Def = Def::gauge(
    "polo_collector_run_timeout_seconds",
    "Configured run timeout of the collector (sources.collector_runs.run_timeouts, default 15m as Lambda's); PoloCollectorRunsNearTimeout from 80 %.",
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
pub static KEYS_BY_HEALTH: Def = Def::gauge(
    "polo_collector_keys",
    "Keys (account, region) of the collector by health: healthy (last success within the late threshold), late, stale (past the stale threshold, PoloCollectorStale). Every key, whatever per_key_series says.",
    &["collector", "health"],
);
pub static KEYS_BY_LAST_STATUS: Def = Def::gauge(
    "polo_collector_keys_last_run_status",
    "Keys of the collector whose latest run has this status; the known statuses are always present.",
    &["collector", "status"],
);
pub static MAX_CONSECUTIVE_FAILURES: Def = Def::gauge(
    "polo_collector_max_consecutive_failures",
    "The longest current streak of failed runs among the collector's keys.",
    COLLECTOR,
);
pub static OUTPUT_COLLAPSED_KEYS: Def = Def::gauge(
    "polo_collector_output_collapsed_keys",
    "Keys of the collector whose latest success collapsed (polo_collector_output_collapsed_runs above 0), every key counted (PoloCollectorOutputCollapsed).",
    COLLECTOR,
);
pub static OUTPUT_BASELINE_KEYS: Def = Def::gauge(
    "polo_collector_output_baseline_keys",
    "Keys of the collector with a baseline a collapse is judged by: 3 successes or more, median at least output_collapse_min_events. Every key counted.",
    COLLECTOR,
);
pub static MAX_LAST_DURATION: Def = Def::gauge(
    "polo_collector_max_last_run_duration_seconds",
    "The longest duration_ms among the latest runs of the collector's keys, in seconds (every key).",
    COLLECTOR,
);
pub static OLDEST_SUCCESS: Def = Def::gauge(
    "polo_collector_oldest_success_timestamp_seconds",
    "The oldest last success among the collector's keys (its worst key); 0 if a key has runs but never succeeded.",
    COLLECTOR,
);
pub static LATEST_RUN: Def = Def::gauge(
    "polo_collector_latest_run_timestamp_seconds",
    "completed_at of the collector's latest run, any account and region.",
    COLLECTOR,
);
pub static LATEST_SUCCESS: Def = Def::gauge(
    "polo_collector_latest_success_timestamp_seconds",
    "completed_at of the collector's latest succeeded run, any account and region; 0 if none.",
    COLLECTOR,
);
pub static DROPPED_KEYS: Def = Def::gauge(
    "polo_collector_per_key_series_dropped_keys",
    "Keys of the collector left without per-key series by sources.collector_runs.per_key_series_max_keys at the latest read (the least healthy keys are kept).",
    COLLECTOR,
);
pub static LOADING: Def = Def::gauge(
    "polo_collector_runs_loading",
    "1 while the initial load of collector_runs runs (no per-key or per-collector health series yet), 0 once it is done.",
    &[],
);
pub static LOAD_PROGRESS: Def = Def::gauge(
    "polo_collector_runs_load_progress_ratio",
    "Share of the initial load's started_at range read so far (0 to 1).",
    &[],
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

pub type View<'a> = [(&'a Key, &'a KeyState)];

pub fn map(
    view: &View<'_>,
    runs_total: &BTreeMap<(String, String), u64>,
    cfg: &CollectorsConfig,
    now_ms: i64,
) -> Mapped {
    // Per collector: a few dozen, found by the shared text's address first (a million keys name
    // them), by name when a text was not shared.
    let mut groups: Vec<(&str, CollectorSummary, Rollup, Collapse)> = Vec::new();
    let mut healths = Vec::with_capacity(view.len());
    for (key, state) in view {
        let name = key.0.as_str();
        let at = match groups.iter().position(|g| std::ptr::eq(g.0, name)) {
            Some(at) => at,
            None => match groups.iter().position(|g| g.0 == name) {
                Some(at) => at,
                None => {
                    groups.push((
                        name,
                        CollectorSummary::new(cfg, name),
                        Rollup::default(),
                        cfg.collapse.collector(name),
                    ));
                    groups.len() - 1
                }
            },
        };
        let (_, summary, rollup, collapse) = &mut groups[at];
        let health = summary.add(state, now_ms);
        rollup.add(state, health, *collapse);
        healths.push(health);
    }
    let mut per_collector: BTreeMap<&str, CollectorSummary> = BTreeMap::new();
    let mut rollups: BTreeMap<&str, Rollup> = BTreeMap::new();
    for (name, summary, rollup, _) in groups {
        per_collector.insert(name, summary);
        rollups.insert(name, rollup);
    }
    let (selected, dropped) = select_keys(view, &healths, cfg);
    let mut families = key_families(&selected);
    families.push(account_last_scan(view));
    families.extend(rollup_families(&rollups, &dropped));

    let mut collectors: BTreeSet<String> = per_collector.keys().map(|c| c.to_string()).collect();
    collectors.extend(cfg.named_collectors());
    collectors.extend(runs_total.keys().map(|(c, _)| c.clone()));
    families.extend(collector_families(&collectors, Some(runs_total), cfg));
    families.push(dependencies_ready(&per_collector, cfg, now_ms));
    families.extend(load_families(None));

    let collectors = per_collector.iter().map(|(name, s)| s.status(name, now_ms)).collect();
    Mapped { families, collectors }
}

/// While the initial load runs: its progress and the configuration, nothing about keys.
pub fn map_loading(progress: f64, cfg: &CollectorsConfig) -> Vec<MetricFamily> {
    let mut families = collector_families(&cfg.named_collectors(), None, cfg);
    families.extend(load_families(Some(progress)));
    families
}

fn load_families(progress: Option<f64>) -> Vec<MetricFamily> {
    let mut loading = LOADING.family();
    loading.push([], f64::from(u8::from(progress.is_some())));
    let mut ratio = LOAD_PROGRESS.family();
    ratio.push([], progress.unwrap_or(1.0));
    vec![loading, ratio]
}

/// Whether a key needs its own series under `per_key_series: unhealthy`.
fn unhealthy(state: &KeyState, health: Health) -> bool {
    health != Health::Green || state.last_status != "succeeded" || state.output.collapsed_runs > 0
}

/// The keys that get per-key series, and per collector how many the bound left out. Under the
/// bound the least healthy keys come first: stale, then late, then the longest failure streak.
fn select_keys<'v, 'a>(
    view: &'v View<'a>,
    healths: &[Health],
    cfg: &CollectorsConfig,
) -> (Vec<(&'a Key, &'v KeyState)>, BTreeMap<&'a str, u64>) {
    let mut candidates: Vec<(usize, Health)> = match cfg.per_key_series {
        PerKeySeries::None => Vec::new(),
        PerKeySeries::All => healths.iter().copied().enumerate().collect(),
        PerKeySeries::Unhealthy => {
            healths.iter().copied().enumerate().filter(|(i, h)| unhealthy(view[*i].1, *h)).collect()
        }
    };
    let max = usize::try_from(cfg.per_key_series_max_keys).unwrap_or(usize::MAX);
    let mut dropped: BTreeMap<&'a str, u64> = BTreeMap::new();
    if candidates.len() > max {
        // One number per key (lower = less healthy), then the key: a linear-time selection of the
        // `max` least healthy, the same keys at every scrape for the same state.
        let score = |i: usize, h: Health| -> u64 {
            let s = &view[i].1;
            let health = 2 - h as u64;
            let streak = s.consecutive_failures.min((1 << 48) - 1);
            (health << 62)
                | (((1 << 48) - 1 - streak) << 2)
                | (u64::from(s.output.collapsed_runs == 0) << 1)
                | u64::from(s.last_status == "succeeded")
        };
        let mut ranked: Vec<(u64, usize, Health)> = candidates.iter().map(|&(i, h)| (score(i, h), i, h)).collect();
        let order = |a: &(u64, usize, Health), b: &(u64, usize, Health)| {
            a.0.cmp(&b.0).then_with(|| view[a.1].0.cmp(view[b.1].0))
        };
        let nth = max.saturating_sub(1).min(ranked.len() - 1);
        ranked.select_nth_unstable_by(nth, order);
        candidates = ranked.iter().map(|&(_, i, h)| (i, h)).collect();
        for (i, _) in &candidates[max..] {
            *dropped.entry(view[*i].0 .0.as_str()).or_default() += 1;
        }
        candidates.truncate(max);
    }
    // The view is in no particular order: the series come out sorted by key.
    candidates.sort_unstable_by(|(a, _), (b, _)| view[*a].0.cmp(view[*b].0));
    let selected = candidates.iter().map(|(i, _)| (view[*i].0, view[*i].1)).collect();
    (selected, dropped)
}

/// Per collector, across every key.
#[derive(Default)]
struct Rollup<'a> {
    by_health: [u64; 3],
    /// Borrowed from the view: no reference count touched per key.
    by_status: BTreeMap<&'a str, u64>,
    max_consecutive_failures: u64,
    oldest_success_ms: Option<i64>,
    latest_run_ms: i64,
    latest_success_ms: i64,
    collapsed_keys: u64,
    baseline_keys: u64,
    max_duration_ms: u32,
}

impl<'a> Rollup<'a> {
    fn add(&mut self, state: &'a KeyState, health: Health, collapse: Collapse) {
        self.collapsed_keys += u64::from(state.output.collapsed_runs > 0);
        self.baseline_keys += u64::from(state.output.judged(collapse));
        self.max_duration_ms = self.max_duration_ms.max(state.last_duration_ms);
        self.by_health[health as usize] += 1;
        *self.by_status.entry(state.last_status.as_str()).or_default() += 1;
        self.max_consecutive_failures = self.max_consecutive_failures.max(state.consecutive_failures);
        self.oldest_success_ms =
            Some(self.oldest_success_ms.map_or(state.last_success_ms, |o| o.min(state.last_success_ms)));
        self.latest_run_ms = self.latest_run_ms.max(state.last_completed_ms);
        self.latest_success_ms = self.latest_success_ms.max(state.last_success_ms);
    }
}

fn rollup_families(rollups: &BTreeMap<&str, Rollup<'_>>, dropped: &BTreeMap<&str, u64>) -> Vec<MetricFamily> {
    let mut keys = KEYS_BY_HEALTH.family();
    let mut by_status = KEYS_BY_LAST_STATUS.family();
    let mut streak = MAX_CONSECUTIVE_FAILURES.family();
    let mut oldest = OLDEST_SUCCESS.family();
    let mut latest_run = LATEST_RUN.family();
    let mut latest_success = LATEST_SUCCESS.family();
    let mut dropped_keys = DROPPED_KEYS.family();
    let mut collapsed = OUTPUT_COLLAPSED_KEYS.family();
    let mut baseline = OUTPUT_BASELINE_KEYS.family();
    let mut duration = MAX_LAST_DURATION.family();
    for (collector, r) in rollups {
        let c = || [collector.to_string()];
        for (health, name) in [(Health::Green, "healthy"), (Health::Amber, "late"), (Health::Red, "stale")] {
            keys.push([collector.to_string(), name.to_string()], r.by_health[health as usize] as f64);
        }
        let mut statuses: BTreeSet<&str> = KNOWN_STATUSES.into_iter().collect();
        statuses.extend(r.by_status.keys().copied());
        for s in statuses {
            by_status.push([collector.to_string(), s.to_string()], r.by_status.get(s).copied().unwrap_or(0) as f64);
        }
        streak.push(c(), r.max_consecutive_failures as f64);
        oldest.push(c(), ms_to_s(r.oldest_success_ms.unwrap_or(0)));
        latest_run.push(c(), ms_to_s(r.latest_run_ms));
        latest_success.push(c(), ms_to_s(r.latest_success_ms));
        dropped_keys.push(c(), dropped.get(collector).copied().unwrap_or(0) as f64);
        collapsed.push(c(), r.collapsed_keys as f64);
        baseline.push(c(), r.baseline_keys as f64);
        duration.push(c(), f64::from(r.max_duration_ms) / 1000.0);
    }
    vec![keys, by_status, streak, oldest, latest_run, latest_success, dropped_keys, collapsed, baseline, duration]
}

/// The per-key families: one series per (collector, account, region) and family.
fn key_families(keys: &[(&Key, &KeyState)]) -> Vec<MetricFamily> {
    let mut last_run = LAST_RUN.family();
    let mut last_success = LAST_SUCCESS.family();
    let mut status = LAST_RUN_STATUS.family();
    let mut consecutive = CONSECUTIVE_FAILURES.family();
    let mut partials = CONSECUTIVE_PARTIALS.family();
    let mut collapsed = OUTPUT_COLLAPSED_RUNS.family();
    let mut duration = LAST_RUN_DURATION.family();
    let mut events = LAST_RUN_EVENTS.family();
    let mut rows = LAST_RUN_ROWS.family();
    let mut error = LAST_ERROR.family();
    for ((collector, account, region), state) in keys {
        let key = || [collector.to_string(), account.to_string(), region.to_string()];
        let with = |extra: String| [collector.to_string(), account.to_string(), region.to_string(), extra];
        last_run.push(key(), ms_to_s(state.last_completed_ms));
        last_success.push(key(), ms_to_s(state.last_success_ms));
        for known in KNOWN_STATUSES {
            status.push(with(known.to_string()), f64::from(u8::from(state.last_status == known)));
        }
        if !KNOWN_STATUSES.contains(&state.last_status.as_str()) {
            status.push(with(state.last_status.to_string()), 1.0);
        }
        consecutive.push(key(), state.consecutive_failures as f64);
        partials.push(key(), state.consecutive_partials as f64);
        collapsed.push(key(), f64::from(state.output.collapsed_runs));
        duration.push(key(), f64::from(state.last_duration_ms) / 1000.0);
        events.push(key(), f64::from(state.last_events));
        rows.push(key(), f64::from(state.last_rows));
        if state.last_status != "succeeded" {
            error.push(with(single_line(&state.last_error, ERROR_LABEL_MAX_CHARS)), 1.0);
        }
    }
    vec![last_run, last_success, status, consecutive, partials, collapsed, duration, events, rows, error]
}

/// Per account: the latest success of any collector, from the same rows as everything else here.
fn account_last_scan(keys: &View<'_>) -> MetricFamily {
    let mut last: std::collections::HashMap<&str, i64, foldhash::fast::RandomState> = Default::default();
    for ((_, account, _), state) in keys {
        let scan = last.entry(account.as_str()).or_insert(0);
        *scan = (*scan).max(state.last_success_ms);
    }
    let mut last: Vec<(&str, i64)> = last.into_iter().collect();
    last.sort_unstable();
    let mut family = ACCOUNT_LAST_SCAN.family();
    for (account, ms) in last {
        family.push([account.to_string()], ms_to_s(ms));
    }
    family
}

/// The per-collector families: configuration (thresholds) and run counters.
fn collector_families(
    collectors: &BTreeSet<String>,
    runs_total: Option<&BTreeMap<(String, String), u64>>,
    cfg: &CollectorsConfig,
) -> Vec<MetricFamily> {
    let mut expected = EXPECTED_INTERVAL.family();
    let mut factor = STALENESS_FACTOR.family();
    let mut late = LATE_THRESHOLD.family();
    let mut stale = STALE_THRESHOLD.family();
    let mut timeout = RUN_TIMEOUT.family();
    let mut total = RUNS.family();
    for collector in collectors {
        let c = || [collector.clone()];
        let thresholds = Thresholds::of(cfg, collector);
        expected.push(c(), cfg.expected_interval(collector).as_secs_f64());
        factor.push(c(), cfg.staleness_factor);
        late.push(c(), thresholds.late_ms / 1000.0);
        stale.push(c(), thresholds.stale_ms / 1000.0);
        timeout.push(c(), cfg.run_timeout(collector).as_secs_f64());
        let Some(runs_total) = runs_total else { continue };
        let mut statuses: BTreeSet<&str> = KNOWN_STATUSES.into_iter().collect();
        statuses.extend(runs_total.keys().filter(|(c, _)| c == collector).map(|(_, s)| s.as_str()));
        for s in statuses {
            let n = runs_total.get(&(collector.clone(), s.to_string())).copied().unwrap_or(0);
            total.push([collector.clone(), s.to_string()], n as f64);
        }
    }
    let mut families = vec![expected, factor, late, stale, timeout];
    if runs_total.is_some() {
        families.push(total);
    }
    families
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
