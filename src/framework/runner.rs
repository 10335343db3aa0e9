//! Runs one source: single flight, deadline, optional cache, bounded stale serving.
//!
//! Deadlines: a run is bounded by the source's own `timeout` only. A scrape waits for the run
//! until the scrape's own deadline and then answers with the state as of then (the latest
//! finished attempt); the run goes on and records its real outcome. So a client with a short
//! `X-Prometheus-Scrape-Timeout-Seconds` can shorten its own wait, never another client's, and
//! never makes a source look down: `kind="timeout"` only ever means the source's timeout.
//!
//! Backend pressure: a run whose answer nobody waited for to the end (every client hung up or
//! gave up) is followed by a quiet gap ([`UNWANTED_RUN_GAP`]) in which requests are answered
//! from the state as it is, without a new run; a flood of connect-and-hang-up clients thus runs
//! a source at most once per gap. Clients that wait for the answers are not slowed.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use super::{ErrorKind, Source, SourceContext, SourceError, SourceOutput};
use crate::config::SourceSettings;

/// After a run nobody waited for, no new run starts for this long (the state is served as is).
pub const UNWANTED_RUN_GAP: Duration = Duration::from_secs(5);

/// What a scrape sees of one source.
#[derive(Debug, Clone)]
pub struct SourceView {
    pub name: &'static str,
    /// Whether the latest finished attempt succeeded (false before the first one).
    pub up: bool,
    pub last_duration: Option<Duration>,
    pub last_success_unix: Option<f64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// The usage counters the source reports, with their totals so far.
    pub usage: Vec<(super::Usage, u64)>,
    /// The series to serve: the latest good output, unless older than `serve_stale_for`.
    pub output: Option<Arc<SourceOutput>>,
}

struct Good {
    output: Arc<SourceOutput>,
    at: Instant,
    at_unix: f64,
}

/// The run in flight and how many scrapes wait for it.
struct InFlight {
    run: Shared<BoxFuture<'static, ()>>,
    waiting: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    in_flight: Option<InFlight>,
    last_ok: Option<bool>,
    last_duration: Option<Duration>,
    last_good: Option<Good>,
    errors: BTreeMap<ErrorKind, u64>,
    /// When the latest run ended, if nobody was waiting for it any more.
    unwanted_end: Option<Instant>,
}

/// Counts one scrape waiting for a run; uncounts it however the wait ends (answer, own
/// deadline, or the client going away and its request being dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct SourceRunner {
    source: Arc<dyn Source>,
    settings: SourceSettings,
    ctx: SourceContext,
    state: Mutex<State>,
}

impl SourceRunner {
    pub fn new(source: Arc<dyn Source>, settings: SourceSettings) -> Arc<Self> {
        let errors = ErrorKind::ALL.iter().map(|k| (*k, 0)).collect();
        Arc::new(Self {
            source,
            settings,
            ctx: SourceContext::default(),
            state: Mutex::new(State { errors, ..State::default() }),
        })
    }

    pub fn name(&self) -> &'static str {
        self.source.name()
    }

    /// Returns this source's view for a scrape that must answer by `scrape_deadline`: joins the
    /// run in flight or starts one (bounded by the source's timeout alone), waits for it until
    /// `scrape_deadline` at most, and reports the state as of then.
    pub async fn observe(self: &Arc<Self>, scrape_deadline: Instant) -> SourceView {
        let wait = {
            let mut state = self.state.lock().expect("runner state poisoned");
            let cached = self.settings.min_interval > Duration::ZERO
                && state.last_ok == Some(true)
                && state.last_good.as_ref().is_some_and(|g| g.at.elapsed() < self.settings.min_interval);
            let quiet = state.unwanted_end.is_some_and(|end| end.elapsed() < UNWANTED_RUN_GAP);
            if cached || (quiet && state.in_flight.is_none()) {
                None
            } else {
                let in_flight = state.in_flight.get_or_insert_with(|| {
                    let waiting = Arc::new(AtomicUsize::new(0));
                    let deadline = Instant::now() + self.settings.timeout;
                    let me = Arc::clone(self);
                    let counted = Arc::clone(&waiting);
                    let run = async move { me.run_once(deadline, counted).await }.boxed().shared();
                    // Spawned so the attempt finishes and is recorded even if every scrape goes away.
                    tokio::spawn(run.clone());
                    InFlight { run, waiting }
                });
                in_flight.waiting.fetch_add(1, Ordering::SeqCst);
                Some((in_flight.run.clone(), Waiting(Arc::clone(&in_flight.waiting))))
            }
        };
        if let Some((run, _waiting)) = wait {
            let _ = tokio::time::timeout_at(scrape_deadline, run).await;
        }
        self.view()
    }

    async fn run_once(self: Arc<Self>, deadline: Instant, waiting: Arc<AtomicUsize>) {
        let started = Instant::now();
        // A panic in a source is a failed attempt of that source, not a stuck runner.
        let ctx = self.ctx.with_deadline(deadline);
        let collect = AssertUnwindSafe(self.source.collect(&ctx)).catch_unwind();
        let result = match tokio::time::timeout_at(deadline, collect).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(SourceError::new(
                ErrorKind::Decode,
                format!("source panicked: {}", crate::panics::message(panic.as_ref())),
            )),
            Err(_) => Err(SourceError::new(
                ErrorKind::Timeout,
                format!("source did not finish within its timeout of {:.3}s", (deadline - started).as_secs_f64()),
            )),
        };
        let elapsed = started.elapsed();
        let mut state = self.state.lock().expect("runner state poisoned");
        state.in_flight = None;
        state.last_duration = Some(elapsed);
        state.unwanted_end = (waiting.load(Ordering::SeqCst) == 0).then(Instant::now);
        match result {
            Ok(output) => {
                for err in &output.partial_errors {
                    *state.errors.entry(err.kind).or_default() += 1;
                    tracing::warn!(source = self.name(), kind = err.kind.as_str(), error = %err.chain(), "source partly failed");
                }
                state.last_ok = Some(true);
                state.last_good =
                    Some(Good { output: Arc::new(output), at: Instant::now(), at_unix: crate::clock::unix_seconds() });
                tracing::debug!(source = self.name(), duration_seconds = elapsed.as_secs_f64(), "source collected");
            }
            Err(err) => {
                state.last_ok = Some(false);
                *state.errors.entry(err.kind).or_default() += 1;
                tracing::warn!(
                    source = self.name(),
                    kind = err.kind.as_str(),
                    duration_seconds = elapsed.as_secs_f64(),
                    error = %err.chain(),
                    "source failed"
                );
            }
        }
    }

    fn view(&self) -> SourceView {
        let state = self.state.lock().expect("runner state poisoned");
        let up = state.last_ok == Some(true);
        let output = state.last_good.as_ref().and_then(|good| {
            (up || good.at.elapsed() <= self.settings.serve_stale_for).then(|| Arc::clone(&good.output))
        });
        SourceView {
            name: self.source.name(),
            up,
            last_duration: state.last_duration,
            last_success_unix: state.last_good.as_ref().map(|g| g.at_unix),
            errors: state.errors.clone(),
            usage: self.source.usage().iter().map(|u| (*u, self.ctx.get(*u))).collect(),
            output,
        }
    }
}

#[cfg(test)]
mod tests;
