//! Pure part of the incremental read: the runs of the late-arrival window kept one by one, so a
//! scrape reads only the rows inserted since the previous one instead of re-aggregating the
//! whole window. Each key's open aggregate ([`Agg`]) is computed here from its runs with the
//! same meaning as the window SQL (`range_sql`), so the settled state merges it the same way.

use std::hash::{Hash, Hasher};

use super::model::{Agg, Key, Text};

/// One run of the window, as read from the table (the error text shared between runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRun {
    pub started_ms: i64,
    pub completed_ms: i64,
    pub status: Text,
    pub duration_ms: u32,
    pub events: u32,
    pub rows: u32,
    pub error: Text,
}

impl OpenRun {
    /// Identity of the row's content: a row read twice (a part merged before it was read, or
    /// inserted between the parts listing and a read) is kept once.
    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.started_ms, self.completed_ms, &*self.status, self.duration_ms, self.events, self.rows, &*self.error)
            .hash(&mut h);
        h.finish()
    }
}

#[derive(Debug, Clone)]
struct Kept {
    run: OpenRun,
    fingerprint: u64,
}

/// The window's runs per key, each kept once.
#[derive(Debug, Default)]
pub struct OpenRuns {
    by_key: super::model::KeyMap<Vec<Kept>>,
    runs: usize,
}

impl OpenRuns {
    /// Adds a run unless the same row is already kept; returns whether it was new.
    pub fn add(&mut self, key: Key, run: OpenRun) -> bool {
        let fingerprint = run.fingerprint();
        // Most keys hold one or two runs of the window: room for two, not the default four.
        let runs = self.by_key.entry(key).or_insert_with(|| Vec::with_capacity(2));
        if runs.iter().any(|k| k.fingerprint == fingerprint && k.run == run) {
            return false;
        }
        runs.push(Kept { run, fingerprint });
        self.runs += 1;
        true
    }

    /// Forgets the runs that started before `cutoff_ms` (the settled state has them now) and
    /// returns (collector, status) of those that completed at or after `counting_since_ms`.
    pub fn settle_before(&mut self, cutoff_ms: i64, counting_since_ms: i64) -> Vec<(Text, Text)> {
        let mut uncounted = Vec::new();
        let mut removed = 0;
        self.by_key.retain(|key, runs| {
            let before = runs.len();
            runs.retain(|k| {
                let keep = k.run.started_ms >= cutoff_ms;
                if !keep && k.run.completed_ms >= counting_since_ms {
                    uncounted.push((key.0.clone(), k.run.status.clone()));
                }
                keep
            });
            removed += before - runs.len();
            !runs.is_empty()
        });
        self.runs -= removed;
        uncounted
    }

    /// The end of a settle read from `since_ms` towards `cutoff_ms` that holds at most about
    /// `max_runs` of the kept runs (`cutoff_ms` if they are fewer).
    pub fn settle_end(&self, since_ms: i64, cutoff_ms: i64, max_runs: usize) -> i64 {
        let mut starts: Vec<i64> = self
            .by_key
            .values()
            .flatten()
            .map(|k| k.run.started_ms)
            .filter(|s| (since_ms..cutoff_ms).contains(s))
            .collect();
        if starts.len() <= max_runs {
            return cutoff_ms;
        }
        let (_, nth, _) = starts.select_nth_unstable(max_runs);
        (*nth).max(since_ms + 1)
    }

    /// Whether `key` has runs in the window.
    pub fn has(&self, key: &Key) -> bool {
        self.by_key.contains_key(key)
    }

    /// Every key with runs in the window.
    pub fn key_set(&self) -> impl Iterator<Item = &Key> {
        self.by_key.keys()
    }

    /// The open aggregate of `key`'s runs (None without runs).
    pub fn agg(&self, key: &Key, counting_since_ms: i64) -> Option<Agg> {
        self.by_key.get(key).filter(|r| !r.is_empty()).map(|runs| aggregate(runs, counting_since_ms))
    }

    pub fn runs(&self) -> usize {
        self.runs
    }

    pub fn keys(&self) -> usize {
        self.by_key.len()
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
        self.runs = 0;
    }
}

/// What the window SQL computes for one key's runs: the latest run by completed_at, the latest
/// success, the failure and partial streaks after the latest run that breaks them, the
/// successes' events in completion order and the runs completed since `counting_since_ms`.
fn aggregate(runs: &[Kept], counting_since_ms: i64) -> Agg {
    let mut order: Vec<&OpenRun> = runs.iter().map(|k| &k.run).collect();
    order.sort_by_key(|r| r.completed_ms);
    let last = order[order.len() - 1];
    let latest = |keep: &dyn Fn(&OpenRun) -> bool| order.iter().filter(|r| keep(r)).map(|r| r.completed_ms).max();
    let last_non_failed_ms = latest(&|r| &*r.status != "failed").unwrap_or(0);
    let last_non_partial_ms = latest(&|r| &*r.status != "partial").unwrap_or(0);
    let after = |status: &str, breaker: i64| {
        order.iter().filter(|r| &*r.status == status && r.completed_ms > breaker).count() as u64
    };
    let mut counted: Vec<(Text, u64)> = Vec::new();
    for r in order.iter().filter(|r| r.completed_ms >= counting_since_ms) {
        match counted.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => counted.push((r.status.clone(), 1)),
        }
    }
    Agg {
        last_completed_ms: last.completed_ms,
        last_status: last.status.clone(),
        last_duration_ms: last.duration_ms,
        last_events: last.events,
        last_rows: last.rows,
        last_error: last.error.clone(),
        last_success_ms: latest(&|r| &*r.status == "succeeded").unwrap_or(0),
        last_non_failed_ms,
        failed_after: after("failed", last_non_failed_ms),
        last_non_partial_ms,
        partial_after: after("partial", last_non_partial_ms),
        success_events: order.iter().filter(|r| &*r.status == "succeeded").map(|r| r.events).collect(),
        counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> Key {
        (c.into(), "111".into(), "us-east-1".into())
    }

    fn run(started_s: i64, completed_s: i64, status: &str, events: u32) -> OpenRun {
        OpenRun {
            started_ms: started_s * 1000,
            completed_ms: completed_s * 1000,
            status: status.into(),
            duration_ms: ((completed_s - started_s) * 1000) as u32,
            events,
            rows: 3,
            error: if status == "succeeded" { "".into() } else { format!("err {started_s}").into() },
        }
    }

    #[test]
    fn a_row_read_twice_is_kept_once_and_settling_forgets_it() {
        let mut open = OpenRuns::default();
        assert!(open.add(key("a"), run(100, 110, "succeeded", 5)));
        assert!(!open.add(key("a"), run(100, 110, "succeeded", 5)), "same row again");
        assert!(open.add(key("a"), run(100, 110, "succeeded", 6)), "another row of the same times");
        assert!(open.add(key("b"), run(200, 210, "failed", 0)));
        assert_eq!((open.runs(), open.keys()), (3, 2));
        assert_eq!(open.settle_before(150_000, 105_000), vec![("a".into(), "succeeded".into()); 2]);
        assert_eq!((open.runs(), open.keys()), (1, 1));
        assert!(open.agg(&key("a"), 0).is_none());
    }

    #[test]
    fn a_settle_read_holds_at_most_the_runs_asked() {
        let mut open = OpenRuns::default();
        for i in 0..10 {
            open.add(key(&format!("k{i}")), run(100 + i, 200 + i, "succeeded", 1));
        }
        assert_eq!(open.settle_end(0, 1_000_000, 10), 1_000_000, "all ten fit");
        let end = open.settle_end(0, 1_000_000, 4);
        assert_eq!(end, 104_000, "runs started at 100..103 s are before it");
        assert_eq!(open.settle_end(104_000, 1_000_000, 4), 108_000);
    }

    #[test]
    fn the_aggregate_follows_completion_order_not_arrival_order() {
        let mut open = OpenRuns::default();
        // Arrival order differs from completion order: the late success completed last.
        open.add(key("a"), run(300, 330, "failed", 0));
        open.add(key("a"), run(100, 110, "succeeded", 7));
        open.add(key("a"), run(200, 220, "failed", 0));
        open.add(key("a"), run(400, 500, "succeeded", 9));
        open.add(key("a"), run(380, 390, "partial", 1));
        let agg = open.agg(&key("a"), 200_000).unwrap();
        assert_eq!(agg.last_completed_ms, 500_000);
        assert_eq!(agg.last_status, "succeeded");
        assert_eq!(agg.last_success_ms, 500_000);
        assert_eq!((agg.last_non_failed_ms, agg.failed_after), (500_000, 0));
        assert_eq!((agg.last_non_partial_ms, agg.partial_after), (500_000, 0));
        assert_eq!(agg.success_events, vec![7, 9]);
        let mut counted = agg.counted.clone();
        counted.sort();
        assert_eq!(counted, vec![("failed".into(), 2), ("partial".into(), 1), ("succeeded".into(), 1)]);

        let mut open = OpenRuns::default();
        open.add(key("b"), run(100, 110, "succeeded", 7));
        open.add(key("b"), run(200, 210, "failed", 0));
        open.add(key("b"), run(300, 310, "failed", 0));
        let agg = open.agg(&key("b"), 0).unwrap();
        assert_eq!((agg.last_status.as_str(), agg.last_error.as_str()), ("failed", "err 300"));
        assert_eq!((agg.last_non_failed_ms, agg.failed_after), (110_000, 2));
        assert_eq!((agg.last_non_partial_ms, agg.partial_after), (310_000, 0));
    }
}
