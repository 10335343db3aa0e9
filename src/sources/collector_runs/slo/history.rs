//! The SLI from history: per-key aggregates of the runs, one `completed_at` chunk at a time,
//! folded into the buckets of a [`Ledger`] (see the parent module for the definition).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::{bad_span, KeySli, Ledger};
use crate::sources::collector_runs::config::CollectorsConfig;
use crate::sources::collector_runs::health::Thresholds;
use crate::sources::collector_runs::model::{Key, KeyState};

/// What ClickHouse aggregates per key over one `completed_at` chunk of history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistAgg {
    pub first_run_ms: i64,
    /// completed_at of the chunk's first and last `succeeded` runs; 0 if none.
    pub first_success_ms: i64,
    pub last_success_ms: i64,
    /// Consecutive successes of the chunk further apart than the prefilter (the smallest stale
    /// threshold): the only places inside the chunk where the key can have been stale.
    pub gaps: Vec<(i64, i64)>,
}

#[derive(Debug, Clone, Copy)]
struct HistKey {
    first_run_ms: i64,
    last_success_ms: i64,
    /// Bad time is accounted up to here (the last success seen, or the first run).
    bad_until_ms: i64,
}

/// The SLI from history: chunks of runs folded in `completed_at` order, then [`History::finish`].
#[derive(Debug)]
pub struct History {
    ledger: Ledger,
    keys: super::super::model::KeyMap<HistKey>,
    from_ms: i64,
    now_ms: i64,
}

impl History {
    /// History of the runs completed in [from_ms, now_ms) (the figures are as of `now_ms`) over
    /// a window of `window`; `from_ms` should be the window's start less the largest stale threshold.
    pub fn new(window: Duration, from_ms: i64, now_ms: i64) -> Self {
        let ledger = Ledger { window, as_of_ms: now_ms, keys: Default::default(), collectors: BTreeMap::new() };
        Self { ledger, keys: Default::default(), from_ms, now_ms }
    }

    /// Where the history starts: the first run's time of a key whose runs all predate it.
    pub fn from_ms(&self) -> i64 {
        self.from_ms
    }

    /// Folds in the aggregates of the next `completed_at` chunk.
    pub fn fold(&mut self, aggs: Vec<(Key, HistAgg)>, excluded: &HashSet<String>, cfg: &CollectorsConfig) {
        let now = self.now_ms;
        for (key, agg) in aggs {
            if excluded.contains(key.1.as_str()) {
                continue;
            }
            let t = Thresholds::of(cfg, &key.0);
            let k = self.keys.entry(key.clone()).or_insert(HistKey {
                first_run_ms: agg.first_run_ms,
                last_success_ms: 0,
                bad_until_ms: agg.first_run_ms,
            });
            let ring = &mut self.ledger.collector(&key.0, now).ring;
            if agg.first_success_ms > 0 {
                if let Some((x, y)) = bad_span(&t, k.last_success_ms, k.bad_until_ms, agg.first_success_ms) {
                    ring.add(x, y, true);
                }
                for &(a, b) in &agg.gaps {
                    if let Some((x, y)) = bad_span(&t, a, a, b) {
                        ring.add(x, y, true);
                    }
                }
                if agg.last_success_ms > k.last_success_ms {
                    k.last_success_ms = agg.last_success_ms;
                    k.bad_until_ms = k.bad_until_ms.max(agg.last_success_ms);
                }
            }
        }
    }

    /// The ledger as of `now_ms`: each key's total time from its first run, and the bad time
    /// after its last success. `known` are the keys the exporter tracks (the initial load's):
    /// one without runs in the history's range has existed since before it, with its last success.
    pub fn finish<S: std::borrow::Borrow<KeyState>>(
        mut self,
        known: &[(&Key, S)],
        excluded: &HashSet<String>,
        cfg: &CollectorsConfig,
    ) -> Ledger {
        let now = self.now_ms;
        for (key, state) in known {
            if excluded.contains(key.1.as_str()) || self.keys.contains_key(*key) {
                continue;
            }
            let ls = state.borrow().last_success_ms.min(self.from_ms);
            self.keys.insert(
                (*key).clone(),
                HistKey { first_run_ms: self.from_ms, last_success_ms: ls, bad_until_ms: self.from_ms },
            );
        }
        for (key, k) in self.keys {
            let t = Thresholds::of(cfg, &key.0);
            let ring = &mut self.ledger.collector(&key.0, now).ring;
            if let Some((x, y)) = bad_span(&t, k.last_success_ms, k.bad_until_ms, now) {
                ring.add(x, y, true);
            }
            ring.add(k.first_run_ms, now, false);
            self.ledger.keys.insert(
                key,
                KeySli { last_success_ms: k.last_success_ms, accounted_until_ms: now.max(k.first_run_ms) },
            );
        }
        self.ledger
    }
}
