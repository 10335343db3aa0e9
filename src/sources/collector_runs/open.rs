//! Pure part of the incremental read: the runs of the late-arrival window kept one by one, so a
//! scrape reads only the rows inserted since the previous one instead of re-aggregating the
//! whole window. Each key's open aggregate ([`Agg`]) is computed here from its runs with the
//! same meaning as the window SQL (`range_sql`), so the settled state merges it the same way.

use super::model::{Agg, Text};

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

/// A run of the window as kept in its key's slot.
#[derive(Debug, Clone)]
pub struct Kept {
    pub run: OpenRun,
}

/// A key's runs of the window: inline when it holds one (most keys: a 15-minute collector has one
/// or two runs in a 20-minute window), so a million keys do not pay a million small allocations.
pub type Runs = smallvec::SmallVec<[Kept; 1]>;

/// Adds `run` to a key's runs unless the same row is already there (a part merged before it was
/// read, or inserted between the parts listing and a read); returns whether it was new. A key
/// holds a few runs, so they are compared whole. The runs stay in completion order (ties by the
/// events, as the SQL sorts `(completed_at, events_produced)`), so a scrape need not sort them.
pub fn add(runs: &mut Runs, run: OpenRun) -> bool {
    if runs.iter().any(|k| k.run == run) {
        return false;
    }
    if runs.len() == 1 {
        // A second run: room for two, not the default four.
        runs.reserve_exact(1);
    }
    let at = runs.partition_point(|k| (k.run.completed_ms, k.run.events) <= (run.completed_ms, run.events));
    runs.insert(at, Kept { run });
    true
}

/// What the window SQL computes for one key's runs (in completion order, as [`add`] keeps them):
/// the latest run by completed_at, the latest success, the failure and partial streaks after the
/// latest run that breaks them, the successes' events in completion order and the runs completed
/// since `counting_since_ms`. `counting_since_ms` = `i64::MAX` counts nothing (a scrape's view
/// does not need the counts).
pub fn aggregate(runs: &[Kept], counting_since_ms: i64) -> Agg {
    debug_assert!(runs
        .windows(2)
        .all(|w| (w[0].run.completed_ms, w[0].run.events) <= (w[1].run.completed_ms, w[1].run.events)));
    let order = || runs.iter().map(|k| &k.run);
    let last = &runs[runs.len() - 1].run;
    let latest = |keep: &dyn Fn(&OpenRun) -> bool| order().filter(|r| keep(r)).map(|r| r.completed_ms).max();
    let last_non_failed_ms = latest(&|r| &*r.status != "failed").unwrap_or(0);
    let last_non_partial_ms = latest(&|r| &*r.status != "partial").unwrap_or(0);
    let after = |status: &str, breaker: i64| {
        order().filter(|r| &*r.status == status && r.completed_ms > breaker).count() as u64
    };
    let mut counted: Vec<(Text, u64)> = Vec::new();
    for r in order().filter(|r| r.completed_ms >= counting_since_ms) {
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
        success_events: order().filter(|r| &*r.status == "succeeded").map(|r| r.events).collect(),
        counted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_row_read_twice_is_kept_once() {
        let mut runs = Runs::new();
        assert!(add(&mut runs, run(100, 110, "succeeded", 5)));
        assert!(!add(&mut runs, run(100, 110, "succeeded", 5)), "same row again");
        assert!(add(&mut runs, run(100, 110, "succeeded", 6)), "another row of the same times");
        assert_eq!(runs.len(), 2);
    }

    #[test]
    fn the_aggregate_follows_completion_order_not_arrival_order() {
        let mut runs = Runs::new();
        // Arrival order differs from completion order: the late success completed last.
        add(&mut runs, run(300, 330, "failed", 0));
        add(&mut runs, run(100, 110, "succeeded", 7));
        add(&mut runs, run(200, 220, "failed", 0));
        add(&mut runs, run(400, 500, "succeeded", 9));
        add(&mut runs, run(380, 390, "partial", 1));
        let agg = aggregate(&runs, 200_000);
        assert_eq!(agg.last_completed_ms, 500_000);
        assert_eq!(agg.last_status, "succeeded");
        assert_eq!(agg.last_success_ms, 500_000);
        assert_eq!((agg.last_non_failed_ms, agg.failed_after), (500_000, 0));
        assert_eq!((agg.last_non_partial_ms, agg.partial_after), (500_000, 0));
        assert_eq!(agg.success_events.as_slice(), [7, 9]);
        let mut counted = agg.counted.clone();
        counted.sort();
        assert_eq!(counted, vec![("failed".into(), 2), ("partial".into(), 1), ("succeeded".into(), 1)]);

        let mut runs = Runs::new();
        add(&mut runs, run(100, 110, "succeeded", 7));
        add(&mut runs, run(200, 210, "failed", 0));
        add(&mut runs, run(300, 310, "failed", 0));
        let agg = aggregate(&runs, 0);
        assert_eq!((agg.last_status.as_str(), agg.last_error.as_str()), ("failed", "err 300"));
        assert_eq!((agg.last_non_failed_ms, agg.failed_after), (110_000, 2));
        assert_eq!((agg.last_non_partial_ms, agg.partial_after), (310_000, 0));
    }
}
