//! The query-latency histogram accumulated across scrapes from `system.query_log` windows:
//! classic buckets at the configured bounds, native (exponential) buckets of schema
//! [`NATIVE_SCHEMA`], and the recent quantiles of the status section.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{QueryLogRow, FAILED_QUERIES, QUERY_DURATION};
use crate::clickhouse::CodeClass;
use crate::metrics::{MetricFamily, Native};

/// Schema of the native buckets: 2^3 = 8 buckets per doubling, each bound 2^(1/8) ≈ 1.09 times
/// the previous (client_golang's default `NativeHistogramBucketFactor` of 1.1 gives the same).
pub const NATIVE_SCHEMA: i32 = 3;
/// Width of the native zero bucket: client_golang's default (2^-128). `query_log` counts whole
/// milliseconds, so it holds exactly the queries logged with 0 ms.
pub const NATIVE_ZERO_THRESHOLD: f64 = 2.938_735_877_055_719e-39;

/// One histogram series: per-bucket (not cumulative) counts, the last being +Inf.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    /// Native buckets: index → queries (see [`NATIVE_SCHEMA`]), and the zero bucket.
    pub native: BTreeMap<i32, u64>,
    pub zero: u64,
    pub sum_seconds: f64,
    pub count: u64,
}

/// How long the status section's quantiles look back.
const RECENT_WINDOW_US: i64 = 300_000_000;

/// Query statistics accumulated since the exporter started, window after window.
#[derive(Debug)]
pub struct QueryStats {
    pub(super) bounds: Vec<f64>,
    pub(super) histograms: BTreeMap<(String, String), Histogram>,
    pub(super) failed: BTreeMap<(String, CodeClass), u64>,
    /// Per window: (window end, per-bucket counts over every node and kind).
    pub(super) recent: VecDeque<(i64, Vec<u64>)>,
}

impl QueryStats {
    pub fn new(bounds: Vec<f64>) -> Self {
        Self { bounds, histograms: BTreeMap::new(), failed: BTreeMap::new(), recent: VecDeque::new() }
    }

    /// Adds one query-log window's rows (the window ends at `window_end_us`).
    pub fn apply(&mut self, rows: &[QueryLogRow], window_end_us: i64) {
        let n = self.bounds.len();
        let mut window = vec![0u64; n + 1];
        for row in rows {
            self.failed.entry((row.replica.clone(), CodeClass::Other)).or_insert(0);
            if row.exception_code != 0 {
                *self.failed.entry((row.replica.clone(), CodeClass::of(i64::from(row.exception_code)))).or_insert(0) +=
                    row.queries;
                continue;
            }
            let hist = self
                .histograms
                .entry((row.replica.clone(), row.query_kind.clone()))
                .or_insert_with(|| Histogram { buckets: vec![0; n + 1], ..Histogram::default() });
            // Cumulative counts at each bound, then +Inf (= all queries); their differences are the buckets.
            let cumulative = (0..n).map(|i| row.cumulative.get(i).copied().unwrap_or(row.queries)).chain([row.queries]);
            let mut previous = 0;
            for ((bucket, window_bucket), at_bound) in hist.buckets.iter_mut().zip(window.iter_mut()).zip(cumulative) {
                let in_bucket = at_bound.saturating_sub(previous);
                *bucket += in_bucket;
                *window_bucket += in_bucket;
                previous = at_bound;
            }
            for (index, n) in row.native_index.iter().zip(&row.native_count).filter(|(_, n)| **n > 0) {
                *hist.native.entry(*index).or_insert(0) += n;
            }
            hist.zero += row.zero_ms;
            hist.count += row.queries;
            hist.sum_seconds += row.duration_ms_sum as f64 / 1000.0;
        }
        self.recent.push_back((window_end_us, window));
        while self.recent.front().is_some_and(|(end, _)| *end < window_end_us - RECENT_WINDOW_US) {
            self.recent.pop_front();
        }
    }

    /// The q-quantile (0..1) in seconds of the queries of the last five minutes, estimated from
    /// the buckets as `histogram_quantile` does; None without queries.
    pub fn recent_quantile(&self, q: f64) -> Option<f64> {
        let mut buckets = vec![0u64; self.bounds.len() + 1];
        for (_, window) in &self.recent {
            for (total, n) in buckets.iter_mut().zip(window) {
                *total += n;
            }
        }
        quantile(&self.bounds, &buckets, q)
    }
}

/// Linear interpolation inside the bucket holding rank q × total; the +Inf bucket yields the
/// highest finite bound (Prometheus does the same).
pub fn quantile(bounds: &[f64], buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut cumulative = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        let before = cumulative;
        cumulative += n;
        if (cumulative as f64) >= rank && *n > 0 {
            if i >= bounds.len() {
                return bounds.last().copied();
            }
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let upper = bounds[i];
            return Some(lower + (upper - lower) * (rank - before as f64) / *n as f64);
        }
    }
    bounds.last().copied()
}

pub(super) fn query_families(stats: &QueryStats) -> Vec<MetricFamily> {
    let mut hist = QUERY_DURATION.family();
    for ((replica, kind), h) in &stats.histograms {
        let buckets = stats.bounds.iter().copied().chain([f64::INFINITY]).zip(h.buckets.iter().copied()).collect();
        let native = Native {
            schema: NATIVE_SCHEMA,
            zero_threshold: NATIVE_ZERO_THRESHOLD,
            zero_count: h.zero,
            positive: h.native.iter().map(|(i, n)| (*i, *n)).collect(),
        };
        hist.push_native_histogram([replica.clone(), kind.clone()], h.sum_seconds, h.count, buckets, native);
    }
    let mut failed = FAILED_QUERIES.family();
    let replicas: BTreeSet<&String> = stats.failed.keys().map(|(r, _)| r).collect();
    for replica in replicas {
        for class in CodeClass::ALL {
            let n = stats.failed.get(&(replica.clone(), class)).copied().unwrap_or(0);
            failed.push([replica.clone(), class.as_str().to_string()], n as f64);
        }
    }
    vec![hist, failed]
}
