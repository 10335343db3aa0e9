//! `rate_limit: {interval, burst}` of the web configuration: one token bucket for every request
//! of the server, as exporter-toolkit's (`rate.NewLimiter(rate.Every(interval), burst)`): it
//! holds at most `burst` tokens, gains one per `interval`, and a request without a token gets
//! 429 before anything else (authentication included) runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimit {
    interval: Duration,
    burst: u32,
    /// (tokens, when they were counted).
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self { interval, burst, bucket: Mutex::new((f64::from(burst), Instant::now())) }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().expect("rate limit poisoned");
        let gained = now.saturating_duration_since(bucket.1).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (bucket.0 + gained).min(f64::from(self.burst));
        *bucket = (tokens, now.max(bucket.1));
        if tokens >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_interval() {
        let limit = RateLimit::new(Duration::from_secs(1), 3);
        let t0 = Instant::now();
        assert_eq!((0..5).map(|_| limit.allow_at(t0)).collect::<Vec<_>>(), [true, true, true, false, false]);
        assert!(!limit.allow_at(t0 + Duration::from_millis(999)));
        assert!(limit.allow_at(t0 + Duration::from_millis(1000)), "one token per interval");
        assert!(!limit.allow_at(t0 + Duration::from_millis(1000)));
        // Idle for long: never more than the burst.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..4).filter(|_| limit.allow_at(later)).count(), 3);
    }
}
