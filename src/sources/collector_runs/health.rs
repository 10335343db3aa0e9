//! The one definition of a collector's health. A key (collector, account, region) is
//! **healthy** while its last success is at most one expected interval old, **late** past that,
//! and **stale** past `staleness_factor` × the interval (the `PoloCollectorStale` threshold).
//! Both thresholds are exported per collector (`polo_collector_late_threshold_seconds`,
//! `polo_collector_stale_threshold_seconds`), so the rules and the dashboard compare against
//! the same numbers the status document uses here, instead of restating the config.

use serde::Serialize;

use super::config::CollectorsConfig;
use super::model::KeyState;
use crate::clock::rfc3339;

/// A collector's thresholds, in milliseconds of success age.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub late_ms: f64,
    pub stale_ms: f64,
}

impl Thresholds {
    pub fn of(cfg: &CollectorsConfig, collector: &str) -> Self {
        let interval_ms = cfg.expected_interval(collector).as_millis() as f64;
        Self { late_ms: interval_ms, stale_ms: interval_ms * cfg.staleness_factor }
    }

    /// The health of a key whose last success is `age_ms` old (a key that never succeeded has
    /// the age of the epoch, so it is stale).
    pub fn health(&self, age_ms: i64) -> Health {
        let age = age_ms as f64;
        if age > self.stale_ms {
            Health::Red
        } else if age > self.late_ms {
            Health::Amber
        } else {
            Health::Green
        }
    }
}

/// Health as the status page colours it: green = healthy, amber = late, red = stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Green,
    Amber,
    Red,
}

/// One collector across its accounts and regions: an entry of the status document's `collectors`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectorStatus {
    pub name: String,
    /// completed_at of the collector's latest run, any key.
    pub last_run: String,
    /// Status of that run.
    pub status: String,
    pub minutes_ago: i64,
    /// The worst health of the collector's keys.
    pub health: Health,
    pub last_success: Option<String>,
    pub expected_interval_seconds: u64,
    pub late_threshold_seconds: f64,
    pub stale_threshold_seconds: f64,
    pub keys: u64,
    pub keys_late: u64,
    pub keys_stale: u64,
    pub keys_not_succeeded: u64,
}

/// Accumulates a collector's keys into its [`CollectorStatus`].
#[derive(Debug)]
pub struct CollectorSummary {
    thresholds: Thresholds,
    expected_interval_seconds: u64,
    pub last_run_ms: i64,
    pub last_status: super::model::Text,
    pub last_success_ms: i64,
    health: Health,
    keys: u64,
    keys_late: u64,
    keys_stale: u64,
    keys_not_succeeded: u64,
}

impl CollectorSummary {
    pub fn new(cfg: &CollectorsConfig, collector: &str) -> Self {
        Self {
            thresholds: Thresholds::of(cfg, collector),
            expected_interval_seconds: cfg.expected_interval(collector).as_secs(),
            last_run_ms: i64::MIN,
            last_status: Default::default(),
            last_success_ms: 0,
            health: Health::Green,
            keys: 0,
            keys_late: 0,
            keys_stale: 0,
            keys_not_succeeded: 0,
        }
    }

    /// Counts a key in and returns its health.
    pub fn add(&mut self, state: &KeyState, now_ms: i64) -> Health {
        self.keys += 1;
        if state.last_completed_ms > self.last_run_ms {
            self.last_run_ms = state.last_completed_ms;
            self.last_status = state.last_status.clone();
        }
        self.last_success_ms = self.last_success_ms.max(state.last_success_ms);
        let health = self.thresholds.health(now_ms - state.last_success_ms);
        match health {
            Health::Red => self.keys_stale += 1,
            Health::Amber => self.keys_late += 1,
            Health::Green => {}
        }
        if state.last_status != "succeeded" {
            self.keys_not_succeeded += 1;
        }
        self.health = self.health.max(health);
        health
    }

    pub fn status(&self, name: &str, now_ms: i64) -> CollectorStatus {
        CollectorStatus {
            name: name.to_string(),
            last_run: rfc3339(self.last_run_ms as f64 / 1000.0),
            status: self.last_status.to_string(),
            minutes_ago: (now_ms - self.last_run_ms).div_euclid(60_000),
            health: self.health,
            last_success: (self.last_success_ms > 0).then(|| rfc3339(self.last_success_ms as f64 / 1000.0)),
            expected_interval_seconds: self.expected_interval_seconds,
            late_threshold_seconds: self.thresholds.late_ms / 1000.0,
            stale_threshold_seconds: self.thresholds.stale_ms / 1000.0,
            keys: self.keys,
            keys_late: self.keys_late,
            keys_stale: self.keys_stale,
            keys_not_succeeded: self.keys_not_succeeded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_two_thresholds() {
        let t = Thresholds { late_ms: 600_000.0, stale_ms: 1_800_000.0 };
        assert_eq!(t.health(0), Health::Green);
        assert_eq!(t.health(600_000), Health::Green, "at the threshold is still within it");
        assert_eq!(t.health(600_001), Health::Amber);
        assert_eq!(t.health(1_800_000), Health::Amber);
        assert_eq!(t.health(1_800_001), Health::Red);
    }
}
