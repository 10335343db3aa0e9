//! Pure part of the `collector_runs` source: folding runs into per-key state kept between
//! scrapes. No I/O here; `families` maps the state.

use std::collections::{BTreeMap, HashMap};

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

#[cfg(test)]
mod tests;
