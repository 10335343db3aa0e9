//! Source `aws_cost`: what Polo's own infrastructure costs to run, from Cost Explorer
//! `GetCostAndUsage` filtered by the cost-allocation tag Polo's resources carry
//! (`polo:purpose=polo-infrastructure`), daily, grouped by service.
//!
//! Cost Explorer bills $0.01 per request (each page is one) and refreshes its figures a few times
//! a day, so a round is made at most once per `min_interval` (default 6 h, at least 1 h; the
//! framework serves the cached result in between), after a failed round not before
//! `retry_after`, and, with `state_file`, not again after a restart while the last round is
//! younger than `min_interval` (its figures are served from the file). Requests and their list
//! price are counted by SDK interceptors into the framework's usage counters.

pub mod model;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, MatchOption, TagValues,
};
use aws_sdk_costexplorer::Client;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::aws::config::AwsConfig;
use crate::config::duration::PromDuration;
use crate::config::{ConfigError, SourceSettings, Validator};
use crate::framework::{ErrorKind, Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::Def;
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;
use crate::status::StatusSection;
use model::{DailyCost, Fetch};

/// Default of `tag_key`.
pub const DEFAULT_TAG_KEY: &str = "polo:purpose";
/// Default of `tag_value`.
pub const DEFAULT_TAG_VALUE: &str = "polo-infrastructure";
/// Default of `cost_metric`.
pub const DEFAULT_COST_METRIC: &str = "UnblendedCost";
/// The metrics `cost_metric` may name.
pub const COST_METRICS: [&str; 3] = ["UnblendedCost", "AmortizedCost", "NetUnblendedCost"];
/// Default `min_interval`: one Cost Explorer round per 6 hours.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Smallest `min_interval` accepted: below it the source would pay for figures that have not changed.
pub const MIN_INTERVAL_FLOOR: Duration = Duration::from_secs(3600);
/// Default of `retry_after`.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Bounds of `retry_after`.
pub const RETRY_AFTER_BOUNDS: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
/// Cost Explorer's one endpoint region (whatever `aws.region` says).
pub const REGION: &str = "us-east-1";
/// List price of one Cost Explorer request, in millionths of a USD ($0.01).
pub const REQUEST_MICRO_USD: u64 = 10_000;
/// Safety bound on pages per round ($1 at most); above it the round fails with `kind="limit"`.
pub const MAX_PAGES: usize = 100;

crate::source_section! {
    /// `sources.aws_cost`.
    pub struct RawAwsCost {
        /// Cost-allocation tag key of Polo's resources (1–128 characters). Default: `polo:purpose`.
        pub tag_key: Option<String>,
        /// Its value. Default: `polo-infrastructure`.
        pub tag_value: Option<String>,
        /// `UnblendedCost`, `AmortizedCost` or `NetUnblendedCost`. Default: `UnblendedCost`.
        pub cost_metric: Option<String>,
        /// Monthly budget in USD, exported as `polo_own_cost_budget_usd` (rules compare with it; no copy in
        /// the rules). Default: none.
        pub monthly_budget_usd: Option<f64>,
        /// A file (written atomically) holding the last round's figures: after a restart within
        /// `min_interval` they are served from it and Cost Explorer is not asked, so a restarting or
        /// crash-looping exporter costs nothing extra. Without it each start makes one round (the exporter
        /// logs so). Give a path on a volume that survives restarts, e.g.
        /// `/var/lib/polo-exporter/aws_cost.json`; relative paths are relative to the working directory.
        /// Default: none.
        pub state_file: Option<PathBuf>,
        /// After a failed round (or one cut by the deadline), the next attempt waits this long (1m–1d);
        /// scrapes meanwhile get the same error without a request. Default: `15m`.
        pub retry_after: Option<PromDuration>,
    }
}

#[derive(Debug, Clone)]
pub struct AwsCostConfig {
    pub aws: AwsConfig,
    pub tag_key: String,
    pub tag_value: String,
    pub cost_metric: String,
    pub monthly_budget_usd: Option<f64>,
    pub state_file: Option<PathBuf>,
    pub retry_after: Duration,
}

/// What the state file holds: the last round, and what it was a round of.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct State {
    tag_key: String,
    tag_value: String,
    cost_metric: String,
    fetch: Fetch,
}

pub struct AwsCost {
    cfg: AwsCostConfig,
    timeout: Duration,
    min_interval: Duration,
    client: OnceCell<Client>,
    /// Since when the latest round has been failing (or did not finish), with why.
    failing: Mutex<Option<(Instant, ErrorKind, String)>>,
}

impl SourceKind for AwsCost {
    const NAME: &'static str = "aws_cost";
    // Needs AWS and costs $0.01 per request: runs only when asked to.
    const ENABLED_BY_DEFAULT: bool = false;
    const FAMILIES: &'static [&'static Def] = &[
        &model::MONTH_TO_DATE,
        &model::MONTH_TO_DATE_BY_SERVICE,
        &model::LAST_DAY,
        &model::LAST_DAY_BY_SERVICE,
        &model::TRAILING_AVERAGE,
        &model::FORECAST,
        &model::BUDGET,
        &model::FETCHED,
        &model::LAST_COMPLETE_DAY,
        &model::DATA,
    ];
    const STATUS_SECTIONS: &'static [&'static str] = &["cost"];
    type Raw = RawAwsCost;
    type Config = AwsCostConfig;

    fn validate(raw: RawAwsCost, v: &Validator, shared: &Shared) -> Result<AwsCostConfig, ConfigError> {
        let key = |k: &str| format!("sources.aws_cost.{k}");
        if let Some(min) = raw.min_interval {
            if min.0 < MIN_INTERVAL_FLOOR {
                return Err(v.invalid(
                    &key("min_interval"),
                    "must be at least 1h: Cost Explorer bills $0.01 per request and refreshes a few times a day",
                ));
            }
        }
        let tag_key = raw.tag_key.unwrap_or_else(|| DEFAULT_TAG_KEY.to_string());
        if tag_key.is_empty() || tag_key.len() > 128 {
            return Err(v.invalid(&key("tag_key"), "must be 1 to 128 characters"));
        }
        let tag_value = raw.tag_value.unwrap_or_else(|| DEFAULT_TAG_VALUE.to_string());
        if tag_value.len() > 256 {
            return Err(v.invalid(&key("tag_value"), "must be at most 256 characters"));
        }
        let cost_metric = raw.cost_metric.unwrap_or_else(|| DEFAULT_COST_METRIC.to_string());
        if !COST_METRICS.contains(&cost_metric.as_str()) {
            return Err(v.invalid(&key("cost_metric"), format!("{cost_metric:?} is not one of {COST_METRICS:?}")));
        }
        if let Some(b) = raw.monthly_budget_usd {
            if !(b.is_finite() && b > 0.0) {
                return Err(v.invalid(&key("monthly_budget_usd"), "must be a positive number of USD"));
            }
        }
        let retry_after = v.duration(&key("retry_after"), raw.retry_after, DEFAULT_RETRY_AFTER, RETRY_AFTER_BOUNDS)?;
        Ok(AwsCostConfig {
            aws: shared.aws.clone(),
            tag_key,
            tag_value,
            cost_metric,
            monthly_budget_usd: raw.monthly_budget_usd,
            state_file: raw.state_file,
            retry_after,
        })
    }

    fn default_min_interval(_config: &AwsCostConfig) -> Duration {
        DEFAULT_MIN_INTERVAL
    }

    fn build(config: &AwsCostConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        if config.state_file.is_none() {
            tracing::info!(
                source = Self::NAME,
                "sources.aws_cost.state_file is not set: every restart of the exporter makes one Cost Explorer round ($0.01 a page)"
            );
        }
        Arc::new(Self {
            cfg: config.clone(),
            timeout: settings.timeout,
            min_interval: settings.min_interval,
            client: OnceCell::new(),
            failing: Mutex::new(None),
        })
    }
}

impl AwsCost {
    async fn client(&self, ctx: &SourceContext) -> &Client {
        self.client
            .get_or_init(|| async {
                let region = [REGION.to_string()];
                let mut clients = crate::aws::clients(&self.cfg.aws, &region, self.timeout, ctx, |conf, count| {
                    let count = count.priced(REQUEST_MICRO_USD);
                    Client::from_conf(aws_sdk_costexplorer::config::Builder::from(conf).interceptor(count).build())
                })
                .await;
                clients.remove(REGION).expect("a client for the one region asked")
            })
            .await
    }

    fn tag(&self) -> String {
        format!("{}={}", self.cfg.tag_key, self.cfg.tag_value)
    }

    /// One round: GetCostAndUsage for the query period, every NextPageToken followed.
    async fn fetch(&self, ctx: &SourceContext, now: f64) -> Result<Fetch, SourceError> {
        let (start, end) = model::query_period(model::day_of(now));
        let period = DateInterval::builder()
            .start(start)
            .end(end)
            .build()
            .map_err(|e| SourceError::with_cause(ErrorKind::Query, "Cost Explorer time period", e))?;
        let filter = Expression::builder()
            .tags(
                TagValues::builder()
                    .key(&self.cfg.tag_key)
                    .values(&self.cfg.tag_value)
                    .match_options(MatchOption::Equals)
                    .build(),
            )
            .build();
        let group = GroupDefinition::builder().r#type(GroupDefinitionType::Dimension).key("SERVICE").build();
        let client = self.client(ctx).await;
        let mut costs: std::collections::BTreeMap<(String, String), f64> = Default::default();
        let mut token: Option<String> = None;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(SourceError::new(
                    ErrorKind::Limit,
                    format!("Cost Explorer answered more than {MAX_PAGES} pages; round abandoned"),
                ));
            }
            let out = client
                .get_cost_and_usage()
                .time_period(period.clone())
                .granularity(Granularity::Daily)
                .filter(filter.clone())
                .metrics(&self.cfg.cost_metric)
                .group_by(group.clone())
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(|err| crate::aws::error("Cost Explorer GetCostAndUsage".to_string(), err))?;
            for result in out.results_by_time() {
                let Some(day) = result.time_period().map(|p| p.start().to_string()) else { continue };
                for group in result.groups() {
                    let service = group.keys().first().cloned().unwrap_or_default();
                    let Some(value) = group.metrics().and_then(|m| m.get(&self.cfg.cost_metric)) else { continue };
                    if let Some(unit) = value.unit().filter(|u| *u != "USD") {
                        return Err(SourceError::new(
                            ErrorKind::Decode,
                            format!("Cost Explorer reported {unit} for {service} on {day}, expected USD"),
                        ));
                    }
                    let amount = value.amount().unwrap_or("0");
                    let usd: f64 = amount.parse().map_err(|_| {
                        SourceError::new(ErrorKind::Decode, format!("Cost Explorer amount {amount:?} is not a number"))
                    })?;
                    *costs.entry((day.clone(), service)).or_default() += usd;
                }
            }
            match out.next_page_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        let rows = costs.into_iter().map(|((day, service), usd)| DailyCost { day, service, usd }).collect();
        Ok(Fetch { fetched_at: now, rows })
    }

    /// The last round from the state file, if it is of this query and younger than `min_interval`.
    fn restore(&self, now: f64) -> Option<Fetch> {
        let path = self.cfg.state_file.as_ref()?;
        let text = std::fs::read_to_string(path).ok()?;
        let state: State = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(source = AwsCost::NAME, path = %path.display(), error = %err, "state file unreadable; ignored");
                return None;
            }
        };
        let same = state.tag_key == self.cfg.tag_key
            && state.tag_value == self.cfg.tag_value
            && state.cost_metric == self.cfg.cost_metric;
        let age = now - state.fetch.fetched_at;
        (same && age >= -60.0 && age < self.min_interval.as_secs_f64()).then_some(state.fetch)
    }

    fn persist(&self, fetch: &Fetch) {
        let Some(path) = &self.cfg.state_file else { return };
        let state = State {
            tag_key: self.cfg.tag_key.clone(),
            tag_value: self.cfg.tag_value.clone(),
            cost_metric: self.cfg.cost_metric.clone(),
            fetch: fetch.clone(),
        };
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(err) = written {
            tracing::warn!(source = AwsCost::NAME, path = %path.display(), error = %err, "cannot write the state file; a restart will ask Cost Explorer again");
        }
    }

    /// The error to give instead of a new round while the latest one failed less than `retry_after` ago.
    fn backing_off(&self) -> Option<SourceError> {
        let failing = self.failing.lock().expect("aws_cost state poisoned");
        let (since, kind, why) = failing.as_ref()?;
        let wait = self.cfg.retry_after.checked_sub(since.elapsed())?;
        Some(SourceError::new(
            *kind,
            format!("latest Cost Explorer round failed; next attempt in {}s ({why})", wait.as_secs()),
        ))
    }

    async fn round(&self, ctx: &SourceContext, now: f64) -> Result<Fetch, SourceError> {
        if let Some(err) = self.backing_off() {
            return Err(err);
        }
        // Set before the request: a round cut by the deadline counts as failed too.
        *self.failing.lock().expect("aws_cost state poisoned") =
            Some((Instant::now(), ErrorKind::Timeout, "round did not finish before the deadline".into()));
        match self.fetch(ctx, now).await {
            Ok(fetch) => {
                *self.failing.lock().expect("aws_cost state poisoned") = None;
                self.persist(&fetch);
                if fetch.rows.is_empty() {
                    tracing::warn!(
                        source = AwsCost::NAME,
                        tag = %self.tag(),
                        "Cost Explorer returned no cost for the tag: activate `{}` as a cost allocation tag (Billing and Cost Management → Cost allocation tags; figures appear within 24 h, from activation on) and check that Polo's resources carry it",
                        self.cfg.tag_key
                    );
                }
                Ok(fetch)
            }
            Err(err) => {
                *self.failing.lock().expect("aws_cost state poisoned") = Some((Instant::now(), err.kind, err.chain()));
                Err(err)
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for AwsCost {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::AwsRequests, Usage::AwsRequestCostMicroUsd]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let now = crate::clock::unix_seconds();
        let fetch = match self.restore(now) {
            Some(fetch) => {
                tracing::info!(
                    source = Self::NAME,
                    fetched_at = %crate::clock::rfc3339(fetch.fetched_at),
                    "serving the cost figures of the state file: the last round is younger than min_interval"
                );
                fetch
            }
            None => self.round(ctx, now).await?,
        };
        let summary = model::summarize(&fetch);
        let budget = self.cfg.monthly_budget_usd;
        Ok(SourceOutput {
            families: model::families(&summary, budget),
            status: Some(StatusSection::new(
                "cost",
                &model::status(&summary, self.tag(), self.cfg.cost_metric.clone(), budget),
            )),
            partial_errors: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config_file::Config;

    fn load(section: &str) -> Result<Config, ConfigError> {
        let text = format!("sources:\n  collector_runs: {{enabled: false}}\n  accounts: {{enabled: false}}\n  clickhouse_system: {{enabled: false}}\n  aws_cost:\n{section}");
        Config::from_yaml(&text, Path::new("t.yml"), &|_| None)
    }

    #[test]
    fn off_by_default_and_defaults_when_enabled() {
        assert!(load("    tag_key: x\n").unwrap().sources.aws_cost.is_none());
        let cfg = load("    enabled: true\n").unwrap();
        let s = cfg.sources.aws_cost.unwrap();
        assert_eq!(s.settings.min_interval, DEFAULT_MIN_INTERVAL);
        assert_eq!(s.config.tag_key, "polo:purpose");
        assert_eq!(s.config.tag_value, "polo-infrastructure");
        assert_eq!(s.config.cost_metric, "UnblendedCost");
        assert_eq!(s.config.retry_after, DEFAULT_RETRY_AFTER);
        assert_eq!(s.config.monthly_budget_usd, None);
    }

    #[test]
    fn rejects_what_would_cost_money_or_mean_nothing() {
        let err = |s: &str| load(&format!("    enabled: true\n{s}")).unwrap_err().to_string();
        assert!(
            err("    min_interval: 5m\n").contains("t.yml:7: key `sources.aws_cost.min_interval`: must be at least 1h")
        );
        assert!(err("    cost_metric: BlendedCost\n").contains("sources.aws_cost.cost_metric"));
        assert!(err("    monthly_budget_usd: -3\n").contains("sources.aws_cost.monthly_budget_usd"));
        assert!(err("    tag_key: ''\n").contains("sources.aws_cost.tag_key"));
        assert!(err("    retry_after: 1s\n").contains("sources.aws_cost.retry_after"));
        assert!(err("    tag: x\n").contains("unknown field `tag`"));
        assert!(load("    enabled: true\n    min_interval: 1h\n    cost_metric: AmortizedCost\n").is_ok());
    }
}
