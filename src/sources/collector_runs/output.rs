//! Output collapse, pure: per key, the events of its recent normal successes (the baseline) and
//! how many successes in a row since fell far below it. A success that runs green but brings back
//! almost nothing (an IAM policy narrowed, an API's paging changed) is the quiet failure that no
//! freshness alert sees. A fixed, small state per key: five counts and a streak.

use std::collections::BTreeMap;

/// How many normal successes make the baseline.
pub const BASELINE_RUNS: usize = 5;
/// The fewest successes a baseline needs before anything is judged against it.
pub const MIN_BASELINE_RUNS: usize = 3;
/// Default of `output_collapse_ratio`.
pub const DEFAULT_RATIO: f64 = 0.1;
/// Default of `output_collapse_min_events`.
pub const DEFAULT_MIN_EVENTS: u32 = 10;

/// The thresholds that apply to one collector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Collapse {
    /// A success below this share of the baseline is collapsed; 0 turns the check off.
    pub ratio: f64,
    /// A baseline below this many events judges nothing.
    pub min_events: u32,
}

impl Collapse {
    fn judges(&self, baseline: f64) -> bool {
        self.ratio > 0.0 && baseline >= f64::from(self.min_events)
    }
}

/// The thresholds of every collector: the defaults and the per-collector ratios.
#[derive(Debug, Clone, PartialEq)]
pub struct CollapseRules {
    pub ratio: f64,
    pub min_events: u32,
    pub ratios: BTreeMap<String, f64>,
}

impl Default for CollapseRules {
    fn default() -> Self {
        Self { ratio: DEFAULT_RATIO, min_events: DEFAULT_MIN_EVENTS, ratios: BTreeMap::new() }
    }
}

impl CollapseRules {
    pub fn collector(&self, collector: &str) -> Collapse {
        Collapse { ratio: self.ratios.get(collector).copied().unwrap_or(self.ratio), min_events: self.min_events }
    }
}

/// One key's output history, folded success by success in completion order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// events_produced of the latest normal successes, oldest first; `len` of them are set.
    baseline: [u32; BASELINE_RUNS],
    len: u8,
    /// Successes in a row below the baseline since the last normal one (they stay out of it, so a
    /// collapse that lasts is not taken for the new normal).
    pub collapsed_runs: u32,
}

impl Output {
    /// The median of the baseline (the mean of the middle two for an even count), once it holds
    /// at least `MIN_BASELINE_RUNS` successes.
    pub fn baseline(&self) -> Option<f64> {
        let n = usize::from(self.len);
        if n < MIN_BASELINE_RUNS {
            return None;
        }
        let mut sorted = self.baseline;
        let sorted = &mut sorted[..n];
        sorted.sort_unstable();
        Some((f64::from(sorted[(n - 1) / 2]) + f64::from(sorted[n / 2])) / 2.0)
    }

    /// Whether this key has a baseline the rule judges by.
    pub fn judged(&self, rule: Collapse) -> bool {
        self.baseline().is_some_and(|b| rule.judges(b))
    }

    /// Folds in one successful run.
    pub fn observe(&mut self, events: u32, rule: Collapse) {
        if let Some(b) = self.baseline().filter(|b| rule.judges(*b)) {
            if f64::from(events) < rule.ratio * b {
                self.collapsed_runs = self.collapsed_runs.saturating_add(1);
                return;
            }
        }
        if usize::from(self.len) == BASELINE_RUNS {
            self.baseline.rotate_left(1);
            self.baseline[BASELINE_RUNS - 1] = events;
        } else {
            self.baseline[usize::from(self.len)] = events;
            self.len += 1;
        }
        self.collapsed_runs = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Collapse = Collapse { ratio: 0.1, min_events: 10 };

    fn folded(events: &[u32], rule: Collapse) -> Output {
        let mut out = Output::default();
        for e in events {
            out.observe(*e, rule);
        }
        out
    }

    #[test]
    fn the_baseline_is_the_median_of_the_last_five_normal_successes() {
        assert_eq!(folded(&[100, 300], RULE).baseline(), None, "fewer than three successes judge nothing");
        assert_eq!(folded(&[100, 300, 200], RULE).baseline(), Some(200.0));
        assert_eq!(folded(&[100, 300, 200, 400], RULE).baseline(), Some(250.0), "even count: mean of the middle two");
        assert_eq!(folded(&[9_000, 100, 300, 200, 400, 500], RULE).baseline(), Some(300.0), "the oldest leaves");
    }

    #[test]
    fn empty_or_tiny_successes_collapse_and_stay_out_of_the_baseline() {
        let out = folded(&[1_000, 1_200, 900, 1_100, 1_000, 0, 0, 50, 0, 0, 0, 0], RULE);
        assert_eq!(out.collapsed_runs, 7, "a lasting collapse is not taken for the new normal");
        assert_eq!(out.baseline(), Some(1_000.0));
        let back = folded(&[1_000, 1_200, 900, 1_100, 1_000, 0, 0, 800], RULE);
        assert_eq!(back.collapsed_runs, 0, "one normal success ends it");
    }

    #[test]
    fn normal_variation_small_keys_and_ratio_zero_never_collapse() {
        // ±60 % around a level: above 10 % of the median every time.
        let noisy = [1_000, 400, 1_600, 700, 1_300, 450, 1_500, 600, 1_000, 420];
        let mut out = Output::default();
        for e in noisy {
            out.observe(e, RULE);
            assert_eq!(out.collapsed_runs, 0, "{e}");
        }
        assert_eq!(folded(&[8, 9, 7, 0, 0], RULE).collapsed_runs, 0, "a baseline under min_events judges nothing");
        assert!(!folded(&[8, 9, 7], RULE).judged(RULE));
        let off = Collapse { ratio: 0.0, min_events: 10 };
        assert_eq!(folded(&[1_000, 1_000, 1_000, 0, 0], off).collapsed_runs, 0, "ratio 0: off");
    }

    #[test]
    fn rules_per_collector() {
        let rules = CollapseRules { ratios: BTreeMap::from([("cur_ingest".to_string(), 0.5)]), ..Default::default() };
        assert_eq!(rules.collector("cur_ingest"), Collapse { ratio: 0.5, min_events: 10 });
        assert_eq!(rules.collector("config_ec2"), Collapse { ratio: 0.1, min_events: 10 });
        let out = folded(&[1_000, 1_000, 1_000, 400], rules.collector("cur_ingest"));
        assert_eq!(out.collapsed_runs, 1);
    }
}
