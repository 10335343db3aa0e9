use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::framework::SourceOutput;
use crate::metrics::Def;

static TEST: Def = Def::gauge("polo_test", "t", &[]);

/// A source whose behaviour the test scripts: sleeps, then succeeds or fails.
struct Scripted {
    calls: AtomicU32,
    sleep: Duration,
    fail_from_call: u32,
}

#[async_trait::async_trait]
impl Source for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn collect(&self, _: &SourceContext) -> Result<SourceOutput, SourceError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.sleep).await;
        if call >= self.fail_from_call {
            return Err(SourceError::new(ErrorKind::Query, "scripted failure"));
        }
        Ok(SourceOutput { families: vec![TEST.family().with([], f64::from(call))], ..SourceOutput::default() })
    }
}

fn settings(timeout_ms: u64, min_interval_ms: u64, stale_ms: u64) -> SourceSettings {
    SourceSettings {
        timeout: Duration::from_millis(timeout_ms),
        min_interval: Duration::from_millis(min_interval_ms),
        serve_stale_for: Duration::from_millis(stale_ms),
    }
}

fn scripted(sleep_ms: u64, fail_from_call: u32) -> Arc<Scripted> {
    Arc::new(Scripted { calls: AtomicU32::new(0), sleep: Duration::from_millis(sleep_ms), fail_from_call })
}

fn served_value(view: &SourceView) -> Option<f64> {
    view.output.as_ref().map(|o| match o.families[0].samples()[0].value {
        crate::metrics::Value::Gauge(v) => v,
        _ => unreachable!(),
    })
}

#[tokio::test(start_paused = true)]
async fn concurrent_scrapes_share_one_run() {
    let source = scripted(100, u32::MAX);
    let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
    let deadline = Instant::now() + Duration::from_secs(10);
    let views = futures::future::join_all((0..10).map(|_| runner.observe(deadline))).await;
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    assert!(views.iter().all(|v| v.up && served_value(v) == Some(1.0)));
}

#[tokio::test(start_paused = true)]
async fn slow_source_times_out_at_the_scrape_deadline() {
    let source = scripted(60_000, u32::MAX);
    let runner = SourceRunner::new(source, settings(30_000, 0, 60_000));
    let start = Instant::now();
    let view = runner.observe(start + Duration::from_secs(2)).await;
    assert!(start.elapsed() <= Duration::from_millis(2_001), "scrape waited {:?}", start.elapsed());
    assert!(!view.up && view.output.is_none());
    assert_eq!(view.errors[&ErrorKind::Timeout], 1, "the scrape that timed out reports it");
}

#[tokio::test(start_paused = true)]
async fn failed_source_serves_last_good_result_for_a_bounded_time() {
    let source = scripted(10, 2);
    let runner = SourceRunner::new(source, settings(1_000, 0, 5_000));
    let far = || Instant::now() + Duration::from_secs(10);
    let ok = runner.observe(far()).await;
    assert!(ok.up);
    let failed = runner.observe(far()).await;
    assert!(!failed.up, "second call fails");
    assert_eq!(served_value(&failed), Some(1.0), "last good result still served");
    assert_eq!(failed.errors[&ErrorKind::Query], 1);
    assert_eq!(failed.last_success_unix, ok.last_success_unix, "as-of time stays at the last success");
    tokio::time::advance(Duration::from_secs(6)).await;
    let expired = runner.observe(far()).await;
    assert!(!expired.up && expired.output.is_none(), "dropped after serve_stale_for");
}

#[tokio::test(start_paused = true)]
async fn min_interval_reuses_a_fresh_result() {
    let source = scripted(10, u32::MAX);
    let runner = SourceRunner::new(source.clone(), settings(1_000, 30_000, 60_000));
    let far = || Instant::now() + Duration::from_secs(10);
    runner.observe(far()).await;
    runner.observe(far()).await;
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(31)).await;
    runner.observe(far()).await;
    assert_eq!(source.calls.load(Ordering::SeqCst), 2);
}
