//! Pure part of the `collector_runs` source: per-key aggregates of runs read from ClickHouse
//! (one row per key and settle range, never one per run), folded into per-key state kept
//! between scrapes. No I/O here; `families` maps the state.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::key_table::KeyTable;
use super::open::{self, Kept, OpenRun};
use super::output::{Collapse, CollapseRules, Output};
use super::parts::PartsCursor;

/// How the steady scrapes read the late-arrival window (see `incremental.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Not decided yet (the table's engine is asked at the first steady scrape).
    #[default]
    Unknown,
    /// New parts only; the window's runs kept in memory.
    Parts,
    /// The whole window re-aggregated at every scrape.
    Window,
}

pub const KNOWN_STATUSES: [&str; 3] = ["succeeded", "failed", "partial"];
/// Longest error text carried in `polo_collector_last_error_info{error}`.
pub const ERROR_LABEL_MAX_CHARS: usize = 200;

pub use super::text::Text;

/// (collector, aws_account_id, aws_region), each text shared (see `text.rs`).
pub type Key = (Text, Text, Text);

/// A key of a row, its texts shared through `names`.
pub fn intern_key(names: &mut super::text::Interner, collector: &str, account: &str, region: &str) -> Key {
    (names.text(collector), names.text(account), names.text(region))
}

/// How a key is named in a log line (`collector/account/region`).
pub fn key_label(collector: &str, account: &str, region: &str) -> String {
    format!("{collector}/{account}/{region}")
}

/// The boundary from which a run belongs to the settled state: a run is settled at `E` when
/// this is before `E`, that is when it started and completed before `E`, its completion taken as
/// at most `window_ms` (the late-arrival window) after its start, when its row is written at the
/// latest. So every run settled at a boundary completed before every run still open: folding the
/// settled ranges, then the open runs, follows completion order as the seed SQL does (a boundary
/// on `started_at` alone would put a long run that started first before a short one that completed
/// first). The SQL twin is `settle_point_sql` in `mod.rs`; the property test holds them equal.
pub fn settle_point_ms(started_ms: i64, completed_ms: i64, window_ms: i64) -> i64 {
    started_ms.max(completed_ms.min(started_ms.saturating_add(window_ms)))
}

/// A map with one entry per key: hashed with foldhash (a million keys are hashed several times
/// per scrape; SipHash's protection is not needed for keys read from Polo's own table).
pub type KeyMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// The runs of one key whose settle point (`settle_point_ms`) lies within one range, aggregated
/// by ClickHouse:
/// the latest run (by completed_at), the latest success and the failure and partial streaks inside
/// the range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Agg {
    pub last_completed_ms: i64,
    pub last_status: Text,
    pub last_duration_ms: u32,
    pub last_events: u32,
    pub last_rows: u32,
    pub last_error: Text,
    /// completed_at of the latest `succeeded` run of the range; 0 if none.
    pub last_success_ms: i64,
    /// completed_at of the latest run of the range whose status is not `failed`; 0 if none.
    pub last_non_failed_ms: i64,
    /// `failed` runs of the range that completed after `last_non_failed_ms` (all of the range's
    /// runs when `last_non_failed_ms` is 0).
    pub failed_after: u64,
    /// completed_at of the latest run of the range whose status is not `partial`; 0 if none.
    pub last_non_partial_ms: i64,
    /// `partial` runs of the range that completed after `last_non_partial_ms`.
    pub partial_after: u64,
    /// events_produced of the range's `succeeded` runs, in completed_at order.
    /// Inline up to two (a scrape builds one per key with window runs: no allocation for most).
    pub success_events: smallvec::SmallVec<[u32; 2]>,
    /// Runs of the range that completed since the exporter started, by status (for `runs_total`).
    pub counted: Vec<(Text, u64)>,
}

/// What is known of one key: its latest run (by completed_at) and its failure and partial streaks.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyState {
    pub last_completed_ms: i64,
    pub last_status: Text,
    pub last_duration_ms: u32,
    pub last_events: u32,
    pub last_rows: u32,
    pub last_error: Text,
    /// completed_at of the latest `succeeded` run; 0 if none.
    pub last_success_ms: i64,
    /// How many of the latest runs in a row are `failed`.
    pub consecutive_failures: u64,
    /// How many of the latest runs in a row are `partial`.
    pub consecutive_partials: u64,
    /// The output baseline and how many successes in a row collapsed below it.
    pub output: Output,
}

impl KeyState {
    pub fn from_agg(agg: &Agg, collapse: Collapse) -> Self {
        let mut output = Output::default();
        for events in &agg.success_events {
            output.observe(*events, collapse);
        }
        Self {
            last_completed_ms: agg.last_completed_ms,
            last_status: agg.last_status.clone(),
            last_duration_ms: agg.last_duration_ms,
            last_events: agg.last_events,
            last_rows: agg.last_rows,
            last_error: agg.last_error.clone(),
            last_success_ms: agg.last_success_ms,
            consecutive_failures: agg.failed_after,
            consecutive_partials: agg.partial_after,
            output,
        }
    }

    /// Folds in the aggregate of a later settle range (its runs completed after every run folded
    /// so far). A streak that the later range does not break continues; one the range breaks
    /// restarts at the range's own streak. A range whose latest run completed before the current
    /// latest (only rows that claim to complete before they started) only updates `last_success`
    /// and the output baseline.
    pub fn merge(&mut self, newer: &Agg, collapse: Collapse) {
        self.last_success_ms = self.last_success_ms.max(newer.last_success_ms);
        for events in &newer.success_events {
            self.output.observe(*events, collapse);
        }
        if newer.last_completed_ms < self.last_completed_ms {
            return;
        }
        self.consecutive_failures = streak(self.consecutive_failures, newer.last_non_failed_ms, newer.failed_after);
        self.consecutive_partials = streak(self.consecutive_partials, newer.last_non_partial_ms, newer.partial_after);
        self.last_completed_ms = newer.last_completed_ms;
        self.last_status = newer.last_status.clone();
        self.last_duration_ms = newer.last_duration_ms;
        self.last_events = newer.last_events;
        self.last_rows = newer.last_rows;
        self.last_error = newer.last_error.clone();
    }
}

/// A streak continued by a later range: restarted at the range's own streak if the range holds
/// a run that breaks it (`breaker_ms` > 0), else extended.
fn streak(current: u64, breaker_ms: i64, after: u64) -> u64 {
    if breaker_ms > 0 {
        after
    } else {
        current + after
    }
}

/// The freshness SLO's part of one key (`slo.rs`): the last success already accounted and up
/// to where the key is accounted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeySli {
    pub last_success_ms: i64,
    pub accounted_until_ms: i64,
}

/// Everything kept of one key, in one map entry (a million keys: one hash lookup and one
/// table's slack, not three).
#[derive(Debug, Default)]
pub struct Slot {
    /// The settled runs' state (None for a key whose runs are all in the window).
    pub state: Option<KeyState>,
    /// Parts mode: the key's runs of the window, one by one.
    pub runs: open::Runs,
    /// Window mode: the aggregate of the key's runs of the window.
    pub open: Option<Box<Agg>>,
    /// The freshness SLO's accounting of the key.
    pub sli: Option<KeySli>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.state.is_none() && self.runs.is_empty() && self.open.is_none() && self.sli.is_none()
    }
}

/// Per-key state of every run settled at `until_ms` (see [`settle_point_ms`]), built range by
/// range in settle-point order (the initial load's chunks, then each scrape's settling part), and the
/// window's runs beside it.
#[derive(Debug, Default)]
pub struct Settled {
    /// One slot per key, side by side (see `key_table.rs`).
    pub keys: KeyTable<Slot>,
    pub until_ms: i64,
    /// The late-arrival window, in ms (see [`settle_point_ms`]).
    pub window_ms: i64,
    /// The output-collapse thresholds the baselines are folded with.
    pub collapse: CollapseRules,
    /// Settled runs completed since the exporter started, by (collector, status).
    pub counted: BTreeMap<(String, String), u64>,
}

impl Settled {
    pub fn new(from_ms: i64, window_ms: i64, collapse: CollapseRules) -> Self {
        Self { until_ms: from_ms, window_ms, collapse, ..Self::default() }
    }

    /// Whether `run` is part of the settled state (see [`settle_point_ms`]).
    pub fn holds(&self, run: &OpenRun) -> bool {
        settle_point_ms(run.started_ms, run.completed_ms, self.window_ms) < self.until_ms
    }

    /// Folds in the aggregates of the range [`until_ms`, `range_end_ms`), which must be the next one.
    pub fn fold(&mut self, aggs: Vec<(Key, Agg)>, range_end_ms: i64) {
        for (key, agg) in aggs {
            count(&mut self.counted, &key.0, &agg.counted);
            let collapse = self.collapse.collector(&key.0);
            let slot = self.keys.get_or_default(key);
            match &mut slot.state {
                Some(state) => state.merge(&agg, collapse),
                None => slot.state = Some(KeyState::from_agg(&agg, collapse)),
            }
        }
        self.until_ms = self.until_ms.max(range_end_ms);
    }

    /// Every key with a settled state.
    pub fn states(&self) -> impl Iterator<Item = (&Key, &KeyState)> {
        self.keys.iter().filter_map(|(k, slot)| slot.state.as_ref().map(|s| (k, s)))
    }
}

fn count(into: &mut BTreeMap<(String, String), u64>, collector: &str, counted: &[(Text, u64)]) {
    for (status, n) in counted {
        *into.entry((collector.to_string(), status.to_string())).or_default() += n;
    }
}

/// State kept between scrapes, so each scrape reads only what is new instead of the whole table.
#[derive(Debug, Default)]
pub struct RunsState {
    pub settled: Settled,
    /// The open aggregates' run counts, by (collector, status).
    open_counted: BTreeMap<(String, String), u64>,
    /// `settled.counted` plus `open_counted`: runs completed since the exporter started.
    runs_total: BTreeMap<(String, String), u64>,
    pub mode: ReadMode,
    /// Parts mode: the window's runs kept (in the slots), and the parts already read.
    pub open_runs: usize,
    pub cursor: PartsCursor,
    /// Parts mode: the slots hold every run of the window.
    pub open_ready: bool,
    /// The current states of the keys with window runs, during a view (see `view_accounting`).
    fresh: Vec<KeyState>,
}

impl RunsState {
    pub fn from_settled(settled: Settled) -> Self {
        let runs_total = settled.counted.clone();
        Self { settled, runs_total, ..Self::default() }
    }

    /// Window mode: applies one read of the runs not settled at `settled.until_ms`: `settling`
    /// aggregates those settled at `new_cutoff_ms` (settled for good), `open`
    /// the rest.
    pub fn ingest(&mut self, settling: Vec<(Key, Agg)>, open: Vec<(Key, Agg)>, new_cutoff_ms: i64) {
        self.settled.fold(settling, new_cutoff_ms);
        self.open_counted.clear();
        for slot in self.settled.keys.values_mut() {
            slot.open = None;
        }
        for (key, agg) in open {
            count(&mut self.open_counted, &key.0, &agg.counted);
            let slot = self.settled.keys.get_or_default(key);
            slot.open = Some(Box::new(agg));
        }
        self.settled.keys.retain(|_, slot| !slot.is_empty());
        self.total();
    }

    /// Parts mode: folds the aggregates of the runs whose settle point is in [`settled.until_ms`,
    /// `cutoff_ms`) into the settled state and forgets those runs from the window's.
    pub fn settle(&mut self, settling: Vec<(Key, Agg)>, cutoff_ms: i64, counting_since_ms: i64) {
        self.settled.fold(settling, cutoff_ms);
        let (mut removed, mut uncounted) = (0, Vec::new());
        let window_ms = self.settled.window_ms;
        self.settled.keys.retain(|key, slot| {
            let before = slot.runs.len();
            slot.runs.retain(|k| {
                let keep = settle_point_ms(k.run.started_ms, k.run.completed_ms, window_ms) >= cutoff_ms;
                if !keep && k.run.completed_ms >= counting_since_ms {
                    uncounted.push((key.0.clone(), k.run.status.clone()));
                }
                keep
            });
            removed += before - slot.runs.len();
            !slot.is_empty()
        });
        self.open_runs -= removed;
        for (collector, status) in uncounted {
            uncount(&mut self.open_counted, &collector, &[(status, 1)]);
        }
        self.total();
    }

    /// The end of a settle read from `since_ms` towards `cutoff_ms` that holds at most about
    /// `max_runs` of the window's runs (`cutoff_ms` if they are fewer).
    pub fn settle_end(&self, since_ms: i64, cutoff_ms: i64, max_runs: usize) -> i64 {
        let mut starts: Vec<i64> = self
            .settled
            .keys
            .values()
            .flat_map(|slot| slot.runs.iter())
            .map(|k| settle_point_ms(k.run.started_ms, k.run.completed_ms, self.settled.window_ms))
            .filter(|s| (since_ms..cutoff_ms).contains(s))
            .collect();
        if starts.len() <= max_runs {
            return cutoff_ms;
        }
        let (_, nth, _) = starts.select_nth_unstable(max_runs);
        (*nth).max(since_ms + 1)
    }

    /// Parts mode: adds a run read from a new part (kept once, however often it is read);
    /// `runs_total` follows at the next [`RunsState::total`].
    pub fn add_run(&mut self, key: Key, run: OpenRun, counting_since_ms: i64) {
        if self.settled.holds(&run) {
            return;
        }
        let counted = (run.completed_ms >= counting_since_ms).then(|| (key.0.clone(), run.status.clone()));
        let slot = self.settled.keys.get_or_default(key);
        if open::add(&mut slot.runs, run) {
            self.open_runs += 1;
            if let Some((collector, status)) = counted {
                count(&mut self.open_counted, &collector, &[(status, 1)]);
            }
        }
    }

    /// Keys with a slot (settled, in the window, or both).
    pub fn keys(&self) -> usize {
        self.settled.keys.len()
    }

    /// Recomputes `runs_total` (a few entries per collector).
    pub fn total(&mut self) {
        self.runs_total = self.settled.counted.clone();
        for (k, n) in &self.open_counted {
            *self.runs_total.entry(k.clone()).or_default() += n;
        }
    }

    /// The current state of every key, in no particular order: settled, with the window's runs
    /// folded in.
    pub fn view(&mut self) -> Vec<(&Key, &KeyState)> {
        self.view_accounting(|_, _, _| {})
    }

    /// [`RunsState::view`], handing each key's state and its SLO part to `account` in the same
    /// pass (a million keys: no second map to look each one up in). Keys without a state lose
    /// their SLO part.
    pub fn view_accounting(
        &mut self,
        mut account: impl FnMut(&Key, &KeyState, &mut Option<KeySli>),
    ) -> Vec<(&Key, &KeyState)> {
        // The current state of each key with window runs, computed per scrape in table order and
        // released after it (`release_view`): not kept per key, which at a million keys (every
        // key runs within the window) held a second 80-byte state per key between scrapes.
        let collapse = &self.settled.collapse;
        let mut fresh = std::mem::take(&mut self.fresh);
        fresh.clear();
        for (key, slot) in self.settled.keys.iter() {
            fresh.extend(current(collapse, key, &slot.state, &slot.runs, slot.open.as_deref()));
        }
        self.fresh = fresh;
        let mut fresh = self.fresh.iter();
        let mut out: Vec<(&Key, &KeyState)> = Vec::with_capacity(self.settled.keys.len());
        for (key, slot) in self.settled.keys.iter_mut() {
            let in_window = !slot.runs.is_empty() || slot.open.is_some();
            let Slot { state, sli, .. } = slot;
            let now = if in_window { fresh.next() } else { state.as_ref() };
            match now {
                Some(now) => {
                    account(key, now, sli);
                    out.push((key, now));
                }
                None => *sli = None,
            }
        }
        out
    }

    /// Frees the current states of the last view (call once it is mapped).
    pub fn release_view(&mut self) {
        self.fresh = Vec::new();
    }

    /// Hands the SLO parts the history computed to the keys' slots.
    pub fn adopt_sli(&mut self, parts: KeyMap<KeySli>) {
        for (key, sli) in parts {
            self.settled.keys.get_or_default(key).sli = Some(sli);
        }
    }

    /// Forgets the settled state of keys whose latest run completed before `oldest_ms`, as the
    /// table's TTL does.
    pub fn forget_before(&mut self, oldest_ms: i64) {
        self.settled.keys.retain(|_, slot| {
            if slot.state.as_ref().is_some_and(|s| s.last_completed_ms < oldest_ms) {
                slot.state = None;
            }
            !slot.is_empty()
        });
    }

    pub fn runs_total(&self) -> &BTreeMap<(String, String), u64> {
        &self.runs_total
    }
}

/// A key's current state when it has window runs (or a window aggregate): its settled state
/// with them folded in; None when the settled state is all there is.
fn current(
    collapse: &CollapseRules,
    key: &Key,
    state: &Option<KeyState>,
    runs: &[Kept],
    open: Option<&Agg>,
) -> Option<KeyState> {
    let open: Option<Cow<'_, Agg>> = if !runs.is_empty() {
        // The view needs no run counts (`runs_total` is kept apart).
        Some(Cow::Owned(open::aggregate(runs, i64::MAX)))
    } else {
        open.map(Cow::Borrowed)
    };
    let agg = open?;
    Some(match state {
        Some(state) => {
            let mut merged = state.clone();
            merged.merge(&agg, collapse.collector(&key.0));
            merged
        }
        None => KeyState::from_agg(&agg, collapse.collector(&key.0)),
    })
}

fn uncount(from: &mut BTreeMap<(String, String), u64>, collector: &str, counted: &[(Text, u64)]) {
    for (status, n) in counted {
        let k = (collector.to_string(), status.to_string());
        if let Some(v) = from.get_mut(&k) {
            *v = v.saturating_sub(*n);
            if *v == 0 {
                from.remove(&k);
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
