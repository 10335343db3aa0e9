//! The freshness SLI of the collectors, accounted once (docs/slo.md). A moment is **bad** for a
//! key (collector, account, region) of an account Polo scans when the key is stale by the one
//! health definition ([`Thresholds::health`] is `Red`); a collector's attainment over the SLO
//! window is 1 − bad key-seconds / key-seconds, each key counted from its first run.
//!
//! Cost: per key, its last success and how far it has been accounted; per collector, a ring of
//! [`BUCKETS`] buckets of bad/total key-milliseconds covering the window (the oldest counted pro rata), so the window slides
//! without re-reading runs. The initial figures come from history ([`History`], folded from
//! per-key aggregates of the runs, chunk by chunk); each scrape then accounts the time since the
//! previous one ([`Ledger::observe`]). No I/O here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use super::config::CollectorsConfig;
use super::health::{CollectorStatus, Health, Thresholds};
use super::model::{Key, KeyMap, KeySli, KeyState, Text};
use crate::metrics::{Def, MetricFamily};

/// Default of `slo_window`.
pub const DEFAULT_SLO_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// Default objective of a collector (`slo_objectives.default`).
pub const DEFAULT_SLO_OBJECTIVE: f64 = 0.995;
/// The window is divided into this many buckets (1 h each for 30 days); the oldest one, partly
/// outside the window, counts pro rata.
pub const BUCKETS: i64 = 720;

const COLLECTOR: &[&str] = &["collector"];

pub static ATTAINMENT: Def = Def::gauge(
    "polo_collector_slo_attainment_ratio",
    "Freshness attainment over the SLO window (sources.collector_runs.slo_window): 1 - stale key-seconds / key-seconds of the collector's keys in accounts Polo scans, each key counted from its first run (docs/slo.md).",
    COLLECTOR,
);
pub static OBJECTIVE: Def = Def::gauge(
    "polo_collector_slo_objective_ratio",
    "The collector's freshness objective (sources.collector_runs.slo_objectives).",
    COLLECTOR,
);
pub static WINDOW: Def = Def::gauge(
    "polo_collector_slo_window_seconds",
    "Length of the SLO window the attainment covers (sources.collector_runs.slo_window).",
    &[],
);
pub static STALE_KEY_SECONDS: Def = Def::counter(
    "polo_collector_stale_key_seconds",
    "Key-seconds during which a key of the collector (accounts Polo scans) was stale, accounted since the exporter started; divide its rate by that of polo_collector_key_seconds_total for the error ratio.",
    COLLECTOR,
);
pub static KEY_SECONDS: Def = Def::counter(
    "polo_collector_key_seconds",
    "Key-seconds of the collector's keys (accounts Polo scans), accounted since the exporter started.",
    COLLECTOR,
);

/// `slo_window` and `slo_objectives`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SloConfig {
    pub window: Duration,
    pub default_objective: f64,
    pub objectives: BTreeMap<String, f64>,
}

impl Default for SloConfig {
    fn default() -> Self {
        Self { window: DEFAULT_SLO_WINDOW, default_objective: DEFAULT_SLO_OBJECTIVE, objectives: BTreeMap::new() }
    }
}

impl SloConfig {
    pub fn objective(&self, collector: &str) -> f64 {
        self.objectives.get(collector).copied().unwrap_or(self.default_objective)
    }
}

/// The first millisecond at which a key whose last success is at `last_success_ms` is stale by
/// [`Thresholds::health`] (so that the SLI and the health agree to the millisecond).
pub fn stale_since(t: &Thresholds, last_success_ms: i64) -> i64 {
    let mut since = last_success_ms.saturating_add(t.stale_ms as i64);
    while t.health(since - last_success_ms) != Health::Red {
        since += 1;
    }
    since
}

/// The bad part of [from, to) for a key whose last success during it is `last_success_ms`.
pub fn bad_span(t: &Thresholds, last_success_ms: i64, from: i64, to: i64) -> Option<(i64, i64)> {
    let start = stale_since(t, last_success_ms).max(from);
    (start < to).then_some((start, to))
}

/// Key-milliseconds added to a bucket, and the span [from, until) they were added within.
#[derive(Debug, Clone, Copy)]
struct Part {
    ms: i64,
    from: i64,
    until: i64,
}

impl Part {
    const EMPTY: Part = Part { ms: 0, from: i64::MAX, until: i64::MIN };

    fn add(&mut self, from: i64, to: i64) {
        self.ms += to - from;
        self.from = self.from.min(from);
        self.until = self.until.max(to);
    }

    /// The share of it from `start` on, assuming it spread evenly over [from, until).
    fn since(&self, start: i64) -> f64 {
        if self.ms == 0 || start <= self.from {
            return self.ms as f64;
        }
        let overlap = (self.until - start.max(self.from)).max(0) as f64;
        self.ms as f64 * overlap / (self.until - self.from) as f64
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: i64,
    bad: Part,
    total: Part,
}

impl Slot {
    const EMPTY: Slot = Slot { index: i64::MIN, bad: Part::EMPTY, total: Part::EMPTY };
}

/// A collector's bad/total key-milliseconds in buckets covering the window.
#[derive(Debug, Clone)]
pub struct Ring {
    window_ms: i64,
    width_ms: i64,
    current: i64,
    slots: Vec<Slot>,
}

impl Ring {
    pub fn new(window: Duration, now_ms: i64) -> Self {
        let window_ms = (window.as_millis() as i64).max(BUCKETS);
        let width_ms = (window_ms + BUCKETS - 1) / BUCKETS;
        let len = (window_ms / width_ms + 2) as usize;
        let mut ring = Self { window_ms, width_ms, current: i64::MIN, slots: vec![Slot::EMPTY; len] };
        ring.advance(now_ms);
        ring
    }

    /// Moves the ring's present to `now_ms`: nothing at or after it is accounted yet.
    pub fn advance(&mut self, now_ms: i64) {
        self.current = self.current.max(now_ms.div_euclid(self.width_ms));
    }

    /// Adds [from, to) to the buckets, as bad time or as total time. What is older than the ring
    /// (or after its present bucket) is left out.
    pub fn add(&mut self, from: i64, to: i64, bad: bool) {
        let oldest = self.current - self.slots.len() as i64 + 1;
        let mut start = from.max(oldest * self.width_ms);
        let end = to.min((self.current + 1) * self.width_ms);
        while start < end {
            let index = start.div_euclid(self.width_ms);
            let stop = end.min((index + 1) * self.width_ms);
            let len = self.slots.len() as i64;
            let slot = &mut self.slots[index.rem_euclid(len) as usize];
            if slot.index != index {
                *slot = Slot { index, ..Slot::EMPTY };
            }
            if bad {
                slot.bad.add(start, stop);
            } else {
                slot.total.add(start, stop);
            }
            start = stop;
        }
    }

    /// (bad, total) key-milliseconds over [now − window, now). Of the oldest bucket, partly
    /// before the window, the share after the window's start, as if spread evenly over the
    /// part of the bucket its time was added in.
    pub fn sums(&self, now_ms: i64) -> (f64, f64) {
        let start = now_ms - self.window_ms;
        let first = start.div_euclid(self.width_ms);
        let (mut bad, mut total) = (0.0, 0.0);
        for slot in &self.slots {
            if slot.index < first || slot.index > self.current {
                continue;
            }
            bad += slot.bad.since(start);
            total += slot.total.since(start);
        }
        (bad, total)
    }
}

/// One collector: its ring, and the counters since the exporter started.
#[derive(Debug, Clone)]
pub struct CollectorSlo {
    pub ring: Ring,
    pub stale_ms_total: i64,
    pub key_ms_total: i64,
}

/// The SLI accounting of every collector, kept between scrapes.
#[derive(Debug, Clone)]
pub struct Ledger {
    window: Duration,
    /// Accounted up to here (the history's end, then the latest scrape).
    as_of_ms: i64,
    keys: super::model::KeyMap<KeySli>,
    pub collectors: BTreeMap<String, CollectorSlo>,
}

impl Ledger {
    fn collector(&mut self, name: &str, now_ms: i64) -> &mut CollectorSlo {
        let window = self.window;
        self.collectors.entry(name.to_string()).or_insert_with(|| CollectorSlo {
            ring: Ring::new(window, now_ms),
            stale_ms_total: 0,
            key_ms_total: 0,
        })
    }

    /// Accounts every key of `view` (keys of `excluded` accounts left out) from where it was
    /// accounted to `now_ms`, with the success each moment had; keys gone from the view are
    /// dropped. A key new to the ledger counts from its earliest run the view shows, but not from
    /// before the time already accounted (its older time would all land in one scrape).
    pub fn observe<S: std::borrow::Borrow<KeyState>>(
        &mut self,
        view: &[(&Key, S)],
        excluded: &HashSet<String>,
        cfg: &CollectorsConfig,
        now_ms: i64,
    ) {
        let mut pass = self.begin(excluded, cfg, now_ms);
        let mut keys = std::mem::take(&mut pass.ledger.keys);
        let mut seen = KeyMap::default();
        for (key, state) in view {
            let mut sli = keys.remove(*key);
            pass.account(key, state.borrow(), &mut sli);
            if let Some(sli) = sli {
                seen.insert((*key).clone(), sli);
            }
        }
        pass.ledger.keys = seen;
        pass.end();
    }

    /// Starts one scrape's accounting, for callers that keep each key's part ([`KeySli`])
    /// beside its state (one pass over the keys, no lookup here): [`Pass::account`] every key of
    /// the view, then [`Pass::end`]. A key not accounted is dropped by its keeper.
    pub fn begin<'a>(&'a mut self, excluded: &'a HashSet<String>, cfg: &'a CollectorsConfig, now_ms: i64) -> Pass<'a> {
        for c in self.collectors.values_mut() {
            c.ring.advance(now_ms);
        }
        Pass { ledger: self, excluded, cfg, now_ms, thresholds: HashMap::new() }
    }

    /// The keys' parts the history left here, for a keeper that holds them from now on.
    pub fn take_keys(&mut self) -> KeyMap<KeySli> {
        std::mem::take(&mut self.keys)
    }

    /// Per collector: (bad, total) key-milliseconds over the window ending at `now_ms`.
    pub fn sums(&self, now_ms: i64) -> BTreeMap<&str, (f64, f64)> {
        self.collectors.iter().map(|(name, c)| (name.as_str(), c.ring.sums(now_ms))).collect()
    }

    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }
}

/// One scrape's accounting (see [`Ledger::begin`]).
pub struct Pass<'a> {
    ledger: &'a mut Ledger,
    excluded: &'a HashSet<String>,
    cfg: &'a CollectorsConfig,
    now_ms: i64,
    /// Per collector once, not per key.
    thresholds: HashMap<Text, Thresholds>,
}

impl Pass<'_> {
    /// Accounts one key from where `sli` says it was accounted to now (`None`: a key new to the
    /// accounting; left `None` for a key of an account not scanned).
    pub fn account(&mut self, key: &Key, state: &KeyState, sli: &mut Option<KeySli>) {
        let now_ms = self.now_ms;
        if self.excluded.contains(key.1.as_str()) {
            *sli = None;
            return;
        }
        let first_seen = match state.last_success_ms {
            0 => state.last_completed_ms,
            s => s.min(state.last_completed_ms),
        };
        let as_of = self.ledger.as_of_ms;
        let entry =
            sli.get_or_insert(KeySli { last_success_ms: 0, accounted_until_ms: first_seen.max(as_of).min(now_ms) });
        let (from, ls0) = (entry.accounted_until_ms, entry.last_success_ms);
        let ls1 = state.last_success_ms.max(ls0);
        *entry = KeySli { last_success_ms: ls1, accounted_until_ms: now_ms.max(from) };
        let split = ls1.clamp(from, now_ms.max(from));
        let cfg = self.cfg;
        let t = match self.thresholds.get(&key.0) {
            Some(t) => *t,
            None => *self.thresholds.entry(key.0.clone()).or_insert_with(|| Thresholds::of(cfg, &key.0)),
        };
        let c = match self.ledger.collectors.get_mut(key.0.as_str()) {
            Some(c) => c,
            None => self.ledger.collector(&key.0, now_ms),
        };
        for (ls, a, b) in [(ls0, from, split), (ls1, split, now_ms)] {
            if let Some((x, y)) = bad_span(&t, ls, a, b) {
                c.ring.add(x, y, true);
                c.stale_ms_total += y - x;
            }
        }
        if now_ms > from {
            c.ring.add(from, now_ms, false);
            c.key_ms_total += now_ms - from;
        }
    }

    pub fn end(self) {
        self.ledger.as_of_ms = self.ledger.as_of_ms.max(self.now_ms);
    }
}

/// The SLO families of a scrape: attainment and objective per collector with key-seconds in the
/// window (and every collector named in `slo_objectives`'s objective), the counters.
pub fn families(ledger: &Ledger, slo: &SloConfig, now_ms: i64) -> Vec<MetricFamily> {
    let mut attainment = ATTAINMENT.family();
    let mut objective = OBJECTIVE.family();
    let mut stale = STALE_KEY_SECONDS.family();
    let mut total = KEY_SECONDS.family();
    let mut window = WINDOW.family();
    window.push([], slo.window.as_secs_f64());
    let mut named: BTreeSet<&str> = slo.objectives.keys().map(String::as_str).collect();
    for (name, (bad, all)) in ledger.sums(now_ms) {
        named.insert(name);
        if all > 0.0 {
            attainment.push([name.to_string()], 1.0 - bad / all);
        }
        let c = &ledger.collectors[name];
        stale.push([name.to_string()], c.stale_ms_total as f64 / 1000.0);
        total.push([name.to_string()], c.key_ms_total as f64 / 1000.0);
    }
    for name in named {
        objective.push([name.to_string()], slo.objective(name));
    }
    vec![attainment, objective, window, stale, total]
}

/// The attainment of one collector over the window ending at `now_ms`; `None` without key-seconds.
pub fn attainment(ledger: &Ledger, collector: &str, now_ms: i64) -> Option<f64> {
    let (bad, all) = ledger.collectors.get(collector)?.ring.sums(now_ms);
    (all > 0.0).then(|| 1.0 - bad / all)
}

/// An entry of the status document's `collectors`: the health summary and the freshness SLO.
#[derive(Debug, serde::Serialize)]
pub struct StatusWithSlo<'a> {
    #[serde(flatten)]
    pub status: &'a CollectorStatus,
    /// Attainment over the SLO window; null while the collector has no key-seconds in it.
    pub slo_attainment_ratio: Option<f64>,
    pub slo_objective_ratio: f64,
}

/// The status document's collectors with their attainment (from `ledger`, if there is one yet).
pub fn with_slo<'a>(
    collectors: &'a [CollectorStatus],
    ledger: Option<&Ledger>,
    slo: &SloConfig,
    now_ms: i64,
) -> Vec<StatusWithSlo<'a>> {
    collectors
        .iter()
        .map(|status| StatusWithSlo {
            status,
            slo_attainment_ratio: ledger.and_then(|l| attainment(l, &status.name, now_ms)),
            slo_objective_ratio: slo.objective(&status.name),
        })
        .collect()
}

mod history;
pub use history::{HistAgg, History};

#[cfg(test)]
mod tests;
