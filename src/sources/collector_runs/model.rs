//! Pure part of the `collector_runs` source: folding runs into per-key state, and mapping
//! that state into metric families and the status section. No I/O here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::config::CollectorsConfig;
use crate::metrics::{Labels, MetricFamily};
use crate::status::{rfc3339, Health};

pub const KNOWN_STATUSES: [&str; 3] = ["succeeded", "failed", "partial"];
/// Longest error text carried in `polo_collector_last_error_info{error}`.
pub const ERROR_LABEL_MAX_CHARS: usize = 200;

/// (collector, aws_account_id, aws_region)
pub type Key = (String, String, String);

/// One row of `polo.collector_runs`, times in unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run_id: String,
    pub collector: String,
    pub aws_account_id: String,
    pub aws_region: String,
    pub started_ms: i64,
    pub completed_ms: i64,
    pub status: String,
    pub duration_ms: u32,
    pub events: u32,
    pub rows: u32,
    pub error: String,
}

impl Run {
    fn key(&self) -> Key {
        (self.collector.clone(), self.aws_account_id.clone(), self.aws_region.clone())
    }
}

/// What is known of one key: its latest run (by completed_at) and its success streaks.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    pub last_completed_ms: i64,
    pub last_status: String,
    pub last_duration_ms: u32,
    pub last_events: u32,
    pub last_rows: u32,
    pub last_error: String,
    /// completed_at of the latest `succeeded` run; 0 if none.
    pub last_success_ms: i64,
    /// How many of the latest runs in a row are `failed`.
    pub consecutive_failures: u64,
}

impl KeyState {
    fn from_run(run: &Run) -> Self {
        Self {
            last_completed_ms: run.completed_ms,
            last_status: run.status.clone(),
            last_duration_ms: run.duration_ms,
            last_events: run.events,
            last_rows: run.rows,
            last_error: run.error.clone(),
            last_success_ms: if run.status == "succeeded" { run.completed_ms } else { 0 },
            consecutive_failures: u64::from(run.status == "failed"),
        }
    }

    /// Folds a run in. Runs are applied in completed_at order; one that completed before the
    /// current latest (rare: it crossed the settle boundary late) only updates `last_success`.
    fn apply(&mut self, run: &Run) {
        if run.status == "succeeded" {
            self.last_success_ms = self.last_success_ms.max(run.completed_ms);
        }
        if run.completed_ms < self.last_completed_ms {
            return;
        }
        self.consecutive_failures = if run.status == "failed" { self.consecutive_failures + 1 } else { 0 };
        self.last_completed_ms = run.completed_ms;
        self.last_status = run.status.clone();
        self.last_duration_ms = run.duration_ms;
        self.last_events = run.events;
        self.last_rows = run.rows;
        self.last_error = run.error.clone();
    }
}

/// State kept between scrapes, so each scrape reads only runs that started in the
/// late-arrival window instead of the whole table.
#[derive(Debug, Default)]
pub struct RunsState {
    /// Per key, every run that started before `settled_until_ms`.
    pub settled: HashMap<Key, KeyState>,
    pub settled_until_ms: i64,
    /// Runs of the unsettled window already counted in `runs_total` (run_id → started_ms).
    seen: HashMap<String, i64>,
    /// Runs completed since `counting_since_ms`, by (collector, status).
    runs_total: BTreeMap<(String, String), u64>,
    counting_since_ms: i64,
}

impl RunsState {
    /// Starts from the aggregate of every run that started before `settled_until_ms`.
    pub fn from_settled(settled: HashMap<Key, KeyState>, settled_until_ms: i64, counting_since_ms: i64) -> Self {
        Self { settled, settled_until_ms, counting_since_ms, ..Self::default() }
    }

    /// Ingests the runs with started_at >= `settled_until_ms` and returns the current per-key view.
    /// Runs that started before `new_cutoff_ms` are settled for good.
    pub fn ingest(&mut self, mut window: Vec<Run>, new_cutoff_ms: i64) -> HashMap<Key, KeyState> {
        for run in &window {
            if self.seen.insert(run.run_id.clone(), run.started_ms).is_none()
                && run.completed_ms >= self.counting_since_ms
            {
                *self.runs_total.entry((run.collector.clone(), run.status.clone())).or_default() += 1;
            }
        }
        window.sort_by(|a, b| a.completed_ms.cmp(&b.completed_ms).then_with(|| a.run_id.cmp(&b.run_id)));
        let new_cutoff_ms = new_cutoff_ms.max(self.settled_until_ms);
        let (settling, open): (Vec<Run>, Vec<Run>) = window.into_iter().partition(|r| r.started_ms < new_cutoff_ms);
        fold(&mut self.settled, &settling);
        self.settled_until_ms = new_cutoff_ms;
        self.seen.retain(|_, started| *started >= new_cutoff_ms);
        let mut view = self.settled.clone();
        fold(&mut view, &open);
        view
    }

    /// Forgets keys whose latest run completed before `oldest_ms`, as the table's TTL does.
    pub fn forget_before(&mut self, oldest_ms: i64) {
        self.settled.retain(|_, state| state.last_completed_ms >= oldest_ms);
    }

    pub fn runs_total(&self) -> &BTreeMap<(String, String), u64> {
        &self.runs_total
    }
}

fn fold(states: &mut HashMap<Key, KeyState>, runs: &[Run]) {
    for run in runs {
        match states.get_mut(&run.key()) {
            Some(state) => state.apply(run),
            None => {
                states.insert(run.key(), KeyState::from_run(run));
            }
        }
    }
}

/// Makes an error text fit a label: one line, control characters as spaces, bounded length.
pub fn single_line(text: &str, max_chars: usize) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let collapsed = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max_chars {
        return collapsed;
    }
    let mut cut: String = collapsed.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

/// Everything one scrape of the source produces, computed from the per-key view.
pub struct Mapped {
    pub families: Vec<MetricFamily>,
    pub collectors_status: serde_json::Value,
    /// Per account: latest success of any collector (ms; 0 if none).
    pub account_last_scan_ms: HashMap<String, i64>,
}

pub fn map(
    view: &HashMap<Key, KeyState>,
    runs_total: &BTreeMap<(String, String), u64>,
    cfg: &CollectorsConfig,
    now_ms: i64,
) -> Mapped {
    let mut keys: Vec<(&Key, &KeyState)> = view.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    let key_labels = |k: &Key| -> Labels {
        vec![("collector", k.0.clone()), ("aws_account_id", k.1.clone()), ("aws_region", k.2.clone())]
    };
    let mut last_run = MetricFamily::gauge(
        "polo_collector_last_run_timestamp_seconds",
        "completed_at of the latest run of the collector for this account and region.",
    );
    let mut last_success = MetricFamily::gauge(
        "polo_collector_last_success_timestamp_seconds",
        "completed_at of the latest succeeded run; 0 if the key has runs but none succeeded.",
    );
    let mut status = MetricFamily::gauge("polo_collector_last_run_status", "1 for the status of the latest run, 0 for the other known statuses (succeeded, failed, partial); an unknown status is shown with value 1.");
    let mut consecutive = MetricFamily::gauge(
        "polo_collector_consecutive_failures",
        "How many of the latest runs in a row have status failed.",
    );
    let mut duration =
        MetricFamily::gauge("polo_collector_last_run_duration_seconds", "duration_ms of the latest run, in seconds.");
    let mut events = MetricFamily::gauge("polo_collector_last_run_events", "events_produced by the latest run.");
    let mut rows = MetricFamily::gauge("polo_collector_last_run_rows_inserted", "rows_inserted by the latest run.");
    let mut error = MetricFamily::gauge(
        "polo_collector_last_error_info",
        "1 while the latest run did not succeed; the error label holds its error text, single-line and shortened.",
    );
    let mut account_last_scan_ms: HashMap<String, i64> = HashMap::new();
    let mut per_collector: BTreeMap<String, CollectorSummary> = BTreeMap::new();

    for (key, state) in &keys {
        let labels = key_labels(key);
        last_run.push(labels.clone(), ms_to_s(state.last_completed_ms));
        last_success.push(labels.clone(), ms_to_s(state.last_success_ms));
        for known in KNOWN_STATUSES {
            let mut l = labels.clone();
            l.push(("status", known.to_string()));
            status.push(l, f64::from(u8::from(state.last_status == known)));
        }
        if !KNOWN_STATUSES.contains(&state.last_status.as_str()) {
            let mut l = labels.clone();
            l.push(("status", state.last_status.clone()));
            status.push(l, 1.0);
        }
        consecutive.push(labels.clone(), state.consecutive_failures as f64);
        duration.push(labels.clone(), f64::from(state.last_duration_ms) / 1000.0);
        events.push(labels.clone(), f64::from(state.last_events));
        rows.push(labels.clone(), f64::from(state.last_rows));
        if state.last_status != "succeeded" {
            let mut l = labels;
            l.push(("error", single_line(&state.last_error, ERROR_LABEL_MAX_CHARS)));
            error.push(l, 1.0);
        }
        let scan = account_last_scan_ms.entry(key.1.clone()).or_insert(0);
        *scan = (*scan).max(state.last_success_ms);
        per_collector.entry(key.0.clone()).or_default().add(
            state,
            cfg.expected_interval(&key.0).as_millis() as i64,
            cfg.staleness_factor,
            now_ms,
        );
    }

    let mut collectors: BTreeSet<String> = per_collector.keys().cloned().collect();
    collectors.extend(cfg.named_collectors());
    collectors.extend(runs_total.keys().map(|(c, _)| c.clone()));

    let mut expected = MetricFamily::gauge(
        "polo_collector_expected_interval_seconds",
        "Configured expected interval between runs of the collector.",
    );
    let mut factor = MetricFamily::gauge("polo_collector_staleness_factor", "A collector is stale after this many expected intervals without a success (config collectors.staleness_factor).");
    let mut total =
        MetricFamily::counter("polo_collector_runs", "Runs completed since the exporter started, by status.");
    for collector in &collectors {
        let c = || vec![("collector", collector.clone())];
        expected.push(c(), cfg.expected_interval(collector).as_secs_f64());
        factor.push(c(), cfg.staleness_factor);
        let mut statuses: BTreeSet<&str> = KNOWN_STATUSES.into_iter().collect();
        statuses.extend(runs_total.keys().filter(|(c, _)| c == collector).map(|(_, s)| s.as_str()));
        for s in statuses {
            let n = runs_total.get(&(collector.clone(), s.to_string())).copied().unwrap_or(0);
            total.push(vec![("collector", collector.clone()), ("status", s.to_string())], n as f64);
        }
    }

    let mut ready = MetricFamily::gauge(
        "polo_collector_dependencies_ready",
        "1 if every collector this one depends on has a succeeded run within the configured window, else 0.",
    );
    for (collector, dep) in &cfg.dependencies {
        let since = now_ms - dep.within.as_millis() as i64;
        let ok = dep.requires.iter().all(|required| {
            per_collector.get(required).is_some_and(|s| s.last_success_ms >= since && s.last_success_ms > 0)
        });
        ready.push(vec![("collector", collector.clone())], f64::from(u8::from(ok)));
    }

    let collectors_status = serde_json::Value::Array(
        per_collector
            .iter()
            .map(|(name, s)| {
                serde_json::json!({
                    "name": name,
                    "last_run": rfc3339(ms_to_s(s.last_run_ms)),
                    "status": s.last_status,
                    "minutes_ago": (now_ms - s.last_run_ms).div_euclid(60_000),
                    "health": s.health,
                    "last_success": (s.last_success_ms > 0).then(|| rfc3339(ms_to_s(s.last_success_ms))),
                    "expected_interval_seconds": cfg.expected_interval(name).as_secs(),
                    "keys": s.keys,
                    "keys_not_succeeded": s.keys_not_succeeded,
                    "keys_stale": s.keys_stale,
                })
            })
            .collect(),
    );

    Mapped {
        families: vec![
            last_run,
            last_success,
            status,
            consecutive,
            duration,
            events,
            rows,
            error,
            expected,
            factor,
            total,
            ready,
        ],
        collectors_status,
        account_last_scan_ms,
    }
}

/// One collector across its accounts and regions, for the status page.
struct CollectorSummary {
    last_run_ms: i64,
    last_status: String,
    last_success_ms: i64,
    health: Health,
    keys: u64,
    keys_not_succeeded: u64,
    keys_stale: u64,
}

impl Default for CollectorSummary {
    fn default() -> Self {
        Self {
            last_run_ms: i64::MIN,
            last_status: String::new(),
            last_success_ms: 0,
            health: Health::Green,
            keys: 0,
            keys_not_succeeded: 0,
            keys_stale: 0,
        }
    }
}

impl CollectorSummary {
    fn add(&mut self, state: &KeyState, interval_ms: i64, factor: f64, now_ms: i64) {
        self.keys += 1;
        if state.last_completed_ms > self.last_run_ms {
            self.last_run_ms = state.last_completed_ms;
            self.last_status = state.last_status.clone();
        }
        self.last_success_ms = self.last_success_ms.max(state.last_success_ms);
        let since_success = now_ms - state.last_success_ms;
        let key_health = if since_success as f64 > factor * interval_ms as f64 {
            self.keys_stale += 1;
            Health::Red
        } else if state.last_status != "succeeded" || since_success > interval_ms {
            Health::Amber
        } else {
            Health::Green
        };
        if state.last_status != "succeeded" {
            self.keys_not_succeeded += 1;
        }
        self.health = self.health.max(key_health);
    }
}

fn ms_to_s(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests;
