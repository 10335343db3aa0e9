//! `sources.collector_runs`: what is expected of Polo's collectors.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use super::slo::{SloConfig, DEFAULT_SLO_OBJECTIVE, DEFAULT_SLO_WINDOW};
use crate::clickhouse::config::ClickHouseConfig;
use crate::config::duration::PromDuration;
use crate::config::{ConfigError, Validator};
use crate::source_kind::Shared;

use super::output::{CollapseRules, DEFAULT_MIN_EVENTS, DEFAULT_RATIO};

/// Default of `default_expected_interval`.
pub const DEFAULT_EXPECTED_INTERVAL: Duration = Duration::from_secs(3600);
/// Default of `staleness_factor`: Polo's alert table pages on "no success in 2× expected interval".
pub const DEFAULT_STALENESS_FACTOR: f64 = 2.0;
/// Default `within` of a dependency.
pub const DEFAULT_DEPENDENCY_WITHIN: Duration = Duration::from_secs(20 * 60);
/// Default of `late_arrival_window`: a Lambda runs at most 15 minutes, plus 5 minutes for its row
/// to be written.
pub const DEFAULT_LATE_ARRIVAL_WINDOW: Duration = Duration::from_secs(20 * 60);
/// Default of `forget_after`: the table's TTL.
pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(90 * 86_400);
/// Default of `max_window_rows` (accepted for old configs; no longer bounds anything).
pub const DEFAULT_MAX_WINDOW_ROWS: u64 = 200_000;
/// Default of `default_run_timeout`: Lambda's limit.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default of `per_key_series`.
pub const DEFAULT_PER_KEY_SERIES: PerKeySeries = PerKeySeries::All;
/// Default of `per_key_series_max_keys`: about 11 series per key, so at most ~11,000 per-key series.
pub const DEFAULT_PER_KEY_SERIES_MAX_KEYS: u64 = 1_000;

const DAY: Duration = Duration::from_secs(86_400);

crate::source_section! {
    /// `sources.collector_runs`.
    pub struct RawCollectorRuns {
        /// Expected interval of a collector not listed below (1s–366d). Default: `1h`.
        pub default_expected_interval: Option<PromDuration>,
        /// A key is **stale** after `staleness_factor` × its collector's expected interval without a success
        /// (the spec's "2×"); 1–100. Default: `2`.
        pub staleness_factor: Option<f64>,
        /// Map collector name → expected interval, e.g. `config_ec2: 15m`. Default: `{}`.
        pub expected_intervals: BTreeMap<String, PromDuration>,
        /// Map collector → `{requires: [collectors...], within: 20m}`; `polo_collector_dependencies_ready` is
        /// 1 when **each** required collector has a `succeeded` run completed within `within`. Default: `{}`.
        pub dependencies: BTreeMap<String, RawDependency>,
        /// How long after its `started_at` a run's row may still be inserted (a collector writes its row when
        /// the run ends): a Lambda runs at most 15 minutes, plus 5 for the write. Must exceed the longest run
        /// (1m–7d). Each scrape reads the runs that started in this window; see
        /// [cost](../clickhouse.md#cost-on-clickhouse). Default: `20m`.
        pub late_arrival_window: Option<PromDuration>,
        /// Stop exporting a key whose latest run completed longer ago (the table's TTL). The initial load
        /// reads the runs that started within `forget_after` before the window. Default: `90d`.
        pub forget_after: Option<PromDuration>,
        /// Deprecated: the window is aggregated on the server, so no run count bounds it.
        pub max_window_rows: Option<u64>,
        /// Which keys (collector, account, region) get the [per-key
        /// families](../metrics.md#source-collector_runs-polocollector_runs): `all`, `unhealthy` (late,
        /// stale, or latest run not `succeeded`) or `none`. The per-collector rollups always cover every key.
        /// Default: `all`.
        pub per_key_series: Option<PerKeySeries>,
        /// At most this many keys get per-key series (about 11 series each), the least healthy first: stale,
        /// then late, then the longest failure streak, then latest run not succeeded. What the bound leaves
        /// out is counted in `polo_collector_per_key_series_dropped_keys{collector}`. Raise it (up to
        /// 10,000,000) with `per_key_series: all` for every series of a small deployment. Default: `1000`.
        pub per_key_series_max_keys: Option<u64>,
        /// A `succeeded` run is **collapsed** when its `events_produced` is below this share of its key's
        /// baseline: the median of the key's last 5 normal successes (collapsed ones stay out of it, so a
        /// lasting collapse is not taken for the new normal; one normal success ends it). 0–1; 0 turns the
        /// check off. See [PoloCollectorOutputCollapsed](../runbooks.md#polocollectoroutputcollapsed).
        /// Default: `0.1`.
        pub output_collapse_ratio: Option<f64>,
        /// Map collector → its own `output_collapse_ratio`, e.g. `cur_ingest: 0.3`. Default: `{}`.
        pub output_collapse_ratios: BTreeMap<String, f64>,
        /// Keys whose baseline (at least 3 successes) is below this many events are never collapsed: too few
        /// events to tell a collapse from noise. 0–1,000,000,000. Default: `10`.
        pub output_collapse_min_events: Option<u64>,
        /// Run timeout of a collector not listed in `run_timeouts` (1s–7d): `PoloCollectorRunsNearTimeout`
        /// warns when latest runs take 80 % of it. Default: `15m` (Lambda's limit).
        pub default_run_timeout: Option<PromDuration>,
        /// Map collector → its run timeout, e.g. `cur_ingest: 10m`. Default: `{}`.
        pub run_timeouts: BTreeMap<String, PromDuration>,
        /// The freshness SLO's window ([SLO](../slo.md)): `polo_collector_slo_attainment_ratio` covers the last
        /// `slo_window`, from the runs in the table at once (1h up to `forget_after`). Default: `30d`.
        pub slo_window: Option<PromDuration>,
        /// Map collector → freshness objective, strictly between 0 and 1, e.g. `config_ec2: 0.999`; the key
        /// `default` sets it for collectors not listed. Default: `{default: 0.995}`.
        pub slo_objectives: BTreeMap<String, f64>,
    }
}

/// Which keys (collector, account, region) get the per-key families. The per-collector rollups
/// always cover every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerKeySeries {
    /// Every key, up to `per_key_series_max_keys` (the least healthy first).
    All,
    /// Keys that are late, stale, or whose latest run did not succeed, up to the bound.
    Unhealthy,
    /// No per-key series; the rollups only.
    None,
}

crate::documented! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawDependency {
        /// Collectors that must each have a `succeeded` run within `within`.
        pub requires: Vec<String>,
        /// How recent those successes must be; default 20m.
        #[serde(default)]
        pub within: Option<PromDuration>,
    }
}

#[derive(Debug, Clone)]
pub struct Dependency {
    pub requires: Vec<String>,
    pub within: Duration,
}

/// What is expected of the collectors: the thresholds of their health, and how to read them.
#[derive(Debug, Clone)]
pub struct CollectorsConfig {
    pub default_expected_interval: Duration,
    pub staleness_factor: f64,
    pub expected_intervals: BTreeMap<String, Duration>,
    pub dependencies: BTreeMap<String, Dependency>,
    pub late_arrival_window: Duration,
    pub forget_after: Duration,
    pub per_key_series: PerKeySeries,
    pub per_key_series_max_keys: u64,
    pub collapse: CollapseRules,
    pub default_run_timeout: Duration,
    pub run_timeouts: BTreeMap<String, Duration>,
}

#[derive(Debug, Clone)]
pub struct CollectorRunsConfig {
    pub clickhouse: ClickHouseConfig,
    pub collectors: CollectorsConfig,
    pub slo: SloConfig,
}

impl CollectorsConfig {
    pub fn expected_interval(&self, collector: &str) -> Duration {
        self.expected_intervals.get(collector).copied().unwrap_or(self.default_expected_interval)
    }

    pub fn run_timeout(&self, collector: &str) -> Duration {
        self.run_timeouts.get(collector).copied().unwrap_or(self.default_run_timeout)
    }

    /// Every collector the config names, as interval owner, dependent or dependency.
    pub fn named_collectors(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.expected_intervals.keys().cloned().collect();
        for (name, dep) in &self.dependencies {
            names.insert(name.clone());
            names.extend(dep.requires.iter().cloned());
        }
        names
    }
}

pub fn validate(raw: RawCollectorRuns, v: &Validator, shared: &Shared) -> Result<CollectorRunsConfig, ConfigError> {
    let key = |k: &str| format!("sources.collector_runs.{k}");
    let staleness_factor = raw.staleness_factor.unwrap_or(DEFAULT_STALENESS_FACTOR);
    if !(staleness_factor.is_finite() && (1.0..=100.0).contains(&staleness_factor)) {
        return Err(v.invalid(&key("staleness_factor"), "must be a number from 1 to 100"));
    }
    let interval_bounds = (Duration::from_secs(1), 366 * DAY);
    let default_expected_interval = v.duration(
        &key("default_expected_interval"),
        raw.default_expected_interval,
        DEFAULT_EXPECTED_INTERVAL,
        interval_bounds,
    )?;
    let mut expected_intervals = BTreeMap::new();
    for (name, interval) in raw.expected_intervals {
        let interval =
            v.duration(&key(&format!("expected_intervals.{name}")), Some(interval), Duration::ZERO, interval_bounds)?;
        expected_intervals.insert(name, interval);
    }
    let mut dependencies = BTreeMap::new();
    for (name, dep) in raw.dependencies {
        let dep_key = key(&format!("dependencies.{name}"));
        if dep.requires.is_empty() {
            return Err(v.invalid(&format!("{dep_key}.requires"), "must name at least one collector"));
        }
        if dep.requires.contains(&name) {
            return Err(v.invalid(&format!("{dep_key}.requires"), "a collector cannot depend on itself"));
        }
        let within =
            v.duration(&format!("{dep_key}.within"), dep.within, DEFAULT_DEPENDENCY_WITHIN, interval_bounds)?;
        dependencies.insert(name, Dependency { requires: dep.requires, within });
    }
    let late_arrival_window = v.duration(
        &key("late_arrival_window"),
        raw.late_arrival_window,
        DEFAULT_LATE_ARRIVAL_WINDOW,
        (Duration::from_secs(60), 7 * DAY),
    )?;
    let forget_after = v.duration(
        &key("forget_after"),
        raw.forget_after,
        DEFAULT_FORGET_AFTER,
        (Duration::from_secs(60), 3660 * DAY),
    )?;
    if forget_after <= late_arrival_window {
        return Err(v.invalid(&key("forget_after"), "must be longer than late_arrival_window"));
    }
    let max_window_rows = raw.max_window_rows.unwrap_or(DEFAULT_MAX_WINDOW_ROWS);
    if !(1..=10_000_000).contains(&max_window_rows) {
        return Err(v.invalid(&key("max_window_rows"), "must be between 1 and 10000000"));
    }
    if raw.max_window_rows.is_some() {
        tracing::warn!(
            key = "sources.collector_runs.max_window_rows",
            "deprecated and ignored: the late-arrival window is aggregated per key on the server"
        );
    }
    let per_key_series_max_keys = raw.per_key_series_max_keys.unwrap_or(DEFAULT_PER_KEY_SERIES_MAX_KEYS);
    if per_key_series_max_keys > 10_000_000 {
        return Err(v.invalid(&key("per_key_series_max_keys"), "must be at most 10000000"));
    }
    let ratio_ok = |r: f64| r.is_finite() && (0.0..=1.0).contains(&r);
    let ratio = raw.output_collapse_ratio.unwrap_or(DEFAULT_RATIO);
    if !ratio_ok(ratio) {
        return Err(v.invalid(&key("output_collapse_ratio"), "must be a number from 0 to 1"));
    }
    for (name, r) in &raw.output_collapse_ratios {
        if !ratio_ok(*r) {
            return Err(v.invalid(&key(&format!("output_collapse_ratios.{name}")), "must be a number from 0 to 1"));
        }
    }
    let min_events = raw.output_collapse_min_events.unwrap_or(u64::from(DEFAULT_MIN_EVENTS));
    if min_events > 1_000_000_000 {
        return Err(v.invalid(&key("output_collapse_min_events"), "must be at most 1000000000"));
    }
    let timeout_bounds = (Duration::from_secs(1), 7 * DAY);
    let default_run_timeout =
        v.duration(&key("default_run_timeout"), raw.default_run_timeout, DEFAULT_RUN_TIMEOUT, timeout_bounds)?;
    let mut run_timeouts = BTreeMap::new();
    for (name, timeout) in raw.run_timeouts {
        let timeout =
            v.duration(&key(&format!("run_timeouts.{name}")), Some(timeout), Duration::ZERO, timeout_bounds)?;
        run_timeouts.insert(name, timeout);
    }
    let collapse = CollapseRules {
        ratio,
        min_events: min_events as u32,
        ratios: raw.output_collapse_ratios.into_iter().collect(),
    };
    let slo = validate_slo(raw.slo_window, raw.slo_objectives, forget_after, v)?;
    Ok(CollectorRunsConfig {
        slo,
        clickhouse: shared.clickhouse(v, "collector_runs")?,
        collectors: CollectorsConfig {
            default_expected_interval,
            staleness_factor,
            expected_intervals,
            dependencies,
            late_arrival_window,
            forget_after,
            per_key_series: raw.per_key_series.unwrap_or(DEFAULT_PER_KEY_SERIES),
            per_key_series_max_keys,
            collapse,
            default_run_timeout,
            run_timeouts,
        },
    })
}

fn validate_slo(
    window: Option<PromDuration>,
    objectives: BTreeMap<String, f64>,
    forget_after: Duration,
    v: &Validator,
) -> Result<SloConfig, ConfigError> {
    let key = |k: &str| format!("sources.collector_runs.{k}");
    let window = v.duration(
        &key("slo_window"),
        window,
        DEFAULT_SLO_WINDOW.min(forget_after),
        (Duration::from_secs(3600), forget_after),
    )?;
    let mut slo = SloConfig { window, default_objective: DEFAULT_SLO_OBJECTIVE, objectives: BTreeMap::new() };
    for (name, objective) in objectives {
        if !(objective.is_finite() && objective > 0.0 && objective < 1.0) {
            return Err(v.invalid(&key(&format!("slo_objectives.{name}")), "must be a number strictly between 0 and 1"));
        }
        if name == "default" {
            slo.default_objective = objective;
        } else {
            slo.objectives.insert(name, objective);
        }
    }
    Ok(slo)
}
