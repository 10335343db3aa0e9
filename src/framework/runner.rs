//! Runs one source: single flight, deadline, optional cache, bounded stale serving.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::time::Instant;

use super::{ErrorKind, Source, SourceContext, SourceError, SourceOutput};
use crate::config::SourceSettings;

const RUN_DEADLINE_MARGIN: Duration = Duration::from_millis(25);

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

#[derive(Default)]
struct State {
    in_flight: Option<Shared<BoxFuture<'static, ()>>>,
    last_ok: Option<bool>,
    last_duration: Option<Duration>,
    last_good: Option<Good>,
    errors: BTreeMap<ErrorKind, u64>,
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

    /// Returns this source's view for a scrape that must answer by `scrape_deadline`.
    /// Joins the run in flight, or starts one bounded by min(own timeout, scrape deadline).
    pub async fn observe(self: &Arc<Self>, scrape_deadline: Instant) -> SourceView {
        let run = {
            let mut state = self.state.lock().expect("runner state poisoned");
            let cached = self.settings.min_interval > Duration::ZERO
                && state.last_ok == Some(true)
                && state.last_good.as_ref().is_some_and(|g| g.at.elapsed() < self.settings.min_interval);
            if cached {
                None
            } else {
                Some(match &state.in_flight {
                    Some(run) => run.clone(),
                    None => {
                        // Ends a little before the scrape gives up, so the scrape reports the outcome.
                        let deadline =
                            (scrape_deadline - RUN_DEADLINE_MARGIN).min(Instant::now() + self.settings.timeout);
                        let me = Arc::clone(self);
                        let run = async move { me.run_once(deadline).await }.boxed().shared();
                        state.in_flight = Some(run.clone());
                        // Spawned so the attempt is recorded even if every waiting scrape goes away.
                        tokio::spawn(run.clone());
                        run
                    }
                })
            }
        };
        if let Some(run) = run {
            let _ = tokio::time::timeout_at(scrape_deadline, run).await;
        }
        self.view()
    }

    async fn run_once(self: Arc<Self>, deadline: Instant) {
        let started = Instant::now();
        let result =
            match tokio::time::timeout_at(deadline, self.source.collect(&self.ctx.with_deadline(deadline))).await {
                Ok(result) => result,
                Err(_) => Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("source did not finish within {:.3}s", (deadline - started).as_secs_f64()),
                )),
            };
        let elapsed = started.elapsed();
        let mut state = self.state.lock().expect("runner state poisoned");
        state.in_flight = None;
        state.last_duration = Some(elapsed);
        match result {
            Ok(output) => {
                for err in &output.partial_errors {
                    *state.errors.entry(err.kind).or_default() += 1;
                    tracing::warn!(source = self.name(), kind = err.kind.as_str(), error = %err.chain(), "source partly failed");
                }
                state.last_ok = Some(true);
                state.last_good = Some(Good { output: Arc::new(output), at: Instant::now(), at_unix: unix_now() });
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

pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
