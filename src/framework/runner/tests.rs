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
    panic_on_call: u32,
}

#[async_trait::async_trait]
impl Source for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    async fn collect(&self, _: &SourceContext) -> Result<SourceOutput, SourceError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(self.sleep).await;
        if call == self.panic_on_call {
            panic!("scripted panic");
        }
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
    Arc::new(Scripted {
        calls: AtomicU32::new(0),
        sleep: Duration::from_millis(sleep_ms),
        fail_from_call,
        panic_on_call: 0,
    })
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
async fn slow_source_times_out_at_its_own_timeout_not_the_scrape_deadline() {
    let source = scripted(60_000, u32::MAX);
    let runner = SourceRunner::new(source, settings(30_000, 0, 60_000));
    let start = Instant::now();
    let view = runner.observe(start + Duration::from_secs(2)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(2), "the scrape waits until its own deadline");
    assert!(!view.up && view.output.is_none(), "no attempt finished yet");
    assert_eq!(view.errors[&ErrorKind::Timeout], 0, "the scrape giving up is not the source timing out");
    tokio::time::sleep(Duration::from_secs(29)).await;
    let view = runner.observe(Instant::now()).await;
    assert_eq!(view.errors[&ErrorKind::Timeout], 1, "the run timed out at the source's 30 s");
    assert_eq!(view.last_duration, Some(Duration::from_secs(30)));
}

/// Issue 12, finding 1: a 0.1 s scrape and a 10 s scrape arrive together at a source that takes
/// 1 s; whichever starts the run, the 10 s one gets `up 1`, and nobody sees a timeout.
#[tokio::test(start_paused = true)]
async fn a_short_deadline_cannot_cut_the_run_for_another_scrape() {
    for short_first in [true, false] {
        let source = scripted(1_000, u32::MAX);
        let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
        let now = Instant::now();
        let short = runner.observe(now + Duration::from_millis(100));
        let long = runner.observe(now + Duration::from_secs(10));
        let (short, long) = if short_first {
            futures::future::join(short, long).await
        } else {
            let (l, s) = futures::future::join(long, short).await;
            (s, l)
        };
        assert_eq!(source.calls.load(Ordering::SeqCst), 1, "one shared run");
        assert!(long.up, "short_first={short_first}");
        assert_eq!(served_value(&long), Some(1.0));
        assert_eq!(long.errors[&ErrorKind::Timeout], 0);
        assert!(!short.up && short.output.is_none(), "the short scrape reports the state as of its deadline");
        assert_eq!(short.errors[&ErrorKind::Timeout], 0, "giving up early records no timeout");
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_nobody_waits_for_finishes_and_is_served_afterwards() {
    let source = scripted(1_000, u32::MAX);
    let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
    let gave_up = runner.observe(Instant::now() + Duration::from_millis(100)).await;
    assert!(!gave_up.up);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The run went on alone and succeeded; within the quiet gap after it, it is served as is.
    let later = runner.observe(Instant::now() + Duration::from_secs(10)).await;
    assert!(later.up);
    assert_eq!(served_value(&later), Some(1.0));
    assert_eq!(later.errors[&ErrorKind::Timeout], 0);
    assert_eq!(source.calls.load(Ordering::SeqCst), 1, "no second run within the gap");
    // After the gap, a waiting scrape runs the source again.
    tokio::time::sleep(UNWANTED_RUN_GAP).await;
    let fresh = runner.observe(Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(served_value(&fresh), Some(2.0));
}

/// Issue 12, finding 7: clients that connect and hang up at once, for 20 s, against a source
/// taking 1 s. Run at 0 s, unwanted, quiet until 6 s; the next request (every 0.7 s) at 6.3 s,
/// then 12.6 s and 18.9 s: 4 runs, where back-to-back runs would make 15.
#[tokio::test(start_paused = true)]
async fn hang_up_flood_runs_the_source_once_per_quiet_gap() {
    let source = scripted(1_000, u32::MAX);
    let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
    let start = Instant::now();
    for k in 0..29u64 {
        tokio::time::sleep_until(start + Duration::from_millis(700 * k)).await;
        // Gives up (hangs up) after 1 ms.
        runner.observe(Instant::now() + Duration::from_millis(1)).await;
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn waiting_scrapes_are_not_slowed_by_the_gap() {
    let source = scripted(1_000, u32::MAX);
    let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
    for n in 1..=5 {
        let view = runner.observe(Instant::now() + Duration::from_secs(10)).await;
        assert_eq!(served_value(&view), Some(f64::from(n)), "each waiting scrape gets its own run");
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_is_a_failed_attempt_not_a_stuck_runner() {
    let source = Arc::new(Scripted {
        calls: AtomicU32::new(0),
        sleep: Duration::from_millis(10),
        fail_from_call: u32::MAX,
        panic_on_call: 1,
    });
    let runner = SourceRunner::new(source.clone(), settings(5_000, 0, 60_000));
    let far = || Instant::now() + Duration::from_secs(10);
    let panicked = runner.observe(far()).await;
    assert!(!panicked.up);
    assert_eq!(panicked.errors[&ErrorKind::Decode], 1);
    let next = runner.observe(far()).await;
    assert!(next.up, "the next run goes ahead");
    assert_eq!(served_value(&next), Some(2.0));
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
