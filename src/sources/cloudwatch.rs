//! Source `cloudwatch`: figures CloudWatch alone has, within a cost budget: the age of the
//! oldest message of the watched queues and Polo's Lambda invocations, errors, throttles and
//! p95 duration. GetMetricData is billed per metric requested, so queries are batched (500 a
//! call, NextToken followed) and the framework serves the cached result between periods
//! (`min_interval` defaults to the period).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_cloudwatch::Client;
use tokio::sync::OnceCell;

use crate::aws::config::AwsConfig;
use crate::aws::queues::{self, QueueRef, QueueSpec, RawQueue, QUEUE_LABELS};
use crate::config::duration::PromDuration;
use crate::config::{is_region, ConfigError, SourceSettings, Validator};
use crate::framework::{ErrorKind, Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::{Def, MetricFamily};
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;

/// CloudWatch's limit of queries per GetMetricData call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// Default of `period`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);
/// Default of `delay`: CloudWatch's own publication delay.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(120);
/// Most Lambda functions in one section (4 queries each).
pub const MAX_FUNCTIONS: usize = 1000;

crate::source_section! {
    /// `sources.cloudwatch`.
    pub struct RawCloudWatch {
        /// CloudWatch period (whole minutes, 1m–1d); CloudWatch is queried at most once per period
        /// (`min_interval` defaults to it). Default: `5m`.
        pub period: Option<PromDuration>,
        /// Only periods that ended at least this long ago are read: the latest *complete* period, not a
        /// half-filled one. Default: `2m`.
        pub delay: Option<PromDuration>,
        /// Polo's Lambda function names: Invocations, Errors, Throttles (Sum) and Duration (p95). Default:
        /// `[]`.
        pub lambda_functions: Vec<String>,
        /// Region of the functions. Default: `aws.region`.
        pub region: Option<String>,
        /// Regions of those queues. Default: `[aws.region]`.
        pub regions: Option<Vec<String>>,
        /// Queues whose oldest-message age is read, same selectors as `sources.sqs.queues` (resolved by this
        /// source itself, DLQs included; a YAML alias `*polo_queues` of the sqs list keeps them the same).
        /// Default: `[]`.
        pub queues: Vec<RawQueue>,
    }
}

#[derive(Debug, Clone)]
pub struct CloudWatchConfig {
    pub aws: AwsConfig,
    pub period: Duration,
    pub delay: Duration,
    pub lambda_functions: Vec<String>,
    pub region: String,
    pub regions: Vec<String>,
    pub queues: Vec<QueueSpec>,
}

const FUNCTION: &[&str] = &["function", "region"];

pub static OLDEST_MESSAGE_AGE: Def = Def::gauge(
    "polo_sqs_oldest_message_age_seconds",
    "Age of the oldest message in the queue (CloudWatch ApproximateAgeOfOldestMessage, Maximum) in the latest complete period; fetched at most once per period and served from cache in between.",
    QUEUE_LABELS,
);
pub static LAMBDA_INVOCATIONS: Def = Def::gauge(
    "polo_lambda_invocations",
    "Invocations of the Lambda function (CloudWatch Sum) in the latest complete period; fetched at most once per period and served from cache in between.",
    FUNCTION,
);
pub static LAMBDA_ERRORS: Def = Def::gauge(
    "polo_lambda_errors",
    "Failed invocations of the Lambda function (CloudWatch Errors, Sum) in the latest complete period; fetched at most once per period and served from cache in between.",
    FUNCTION,
);
pub static LAMBDA_THROTTLES: Def = Def::gauge(
    "polo_lambda_throttles",
    "Throttled invocations of the Lambda function (CloudWatch Throttles, Sum) in the latest complete period; fetched at most once per period and served from cache in between.",
    FUNCTION,
);
pub static LAMBDA_DURATION_P95: Def = Def::gauge(
    "polo_lambda_duration_p95_seconds",
    "95th percentile of the Lambda function's duration (CloudWatch Duration, p95) in the latest complete period; fetched at most once per period and served from cache in between.",
    FUNCTION,
);
pub static PERIOD: Def = Def::gauge(
    "polo_cloudwatch_period_seconds",
    "CloudWatch period of the polo_sqs_oldest_message_age_seconds and polo_lambda_* figures.",
    &[],
);
/// The families fed by queries, in output order.
const QUERY_FAMILIES: [&Def; 5] =
    [&OLDEST_MESSAGE_AGE, &LAMBDA_INVOCATIONS, &LAMBDA_ERRORS, &LAMBDA_THROTTLES, &LAMBDA_DURATION_P95];

/// What one query is for: the family it feeds, its label values, and a factor to base units.
#[derive(Debug, Clone)]
pub struct Target {
    pub family: &'static Def,
    pub labels: Vec<String>,
    pub scale: f64,
}

pub struct CloudWatch {
    cfg: CloudWatchConfig,
    timeout: Duration,
    sqs: OnceCell<HashMap<String, aws_sdk_sqs::Client>>,
    clients: OnceCell<HashMap<String, Client>>,
}

impl SourceKind for CloudWatch {
    const NAME: &'static str = "cloudwatch";
    // Needs AWS and something to watch, and costs money per metric: runs only when asked to.
    const ENABLED_BY_DEFAULT: bool = false;
    const FAMILIES: &'static [&'static Def] =
        &[&OLDEST_MESSAGE_AGE, &LAMBDA_INVOCATIONS, &LAMBDA_ERRORS, &LAMBDA_THROTTLES, &LAMBDA_DURATION_P95, &PERIOD];
    type Raw = RawCloudWatch;
    type Config = CloudWatchConfig;

    fn validate(raw: RawCloudWatch, v: &Validator, shared: &Shared) -> Result<CloudWatchConfig, ConfigError> {
        let key = |k: &str| format!("sources.cloudwatch.{k}");
        let period = v.duration(
            &key("period"),
            raw.period,
            DEFAULT_PERIOD,
            (Duration::from_secs(60), Duration::from_secs(86_400)),
        )?;
        if !period.as_secs().is_multiple_of(60) || period.subsec_nanos() != 0 {
            return Err(v.invalid(&key("period"), "must be a whole number of minutes"));
        }
        let delay =
            v.duration(&key("delay"), raw.delay, DEFAULT_DELAY, (Duration::ZERO, Duration::from_secs(86_400)))?;
        let region = raw.region.unwrap_or_else(|| shared.aws.region.clone());
        if !is_region(&region) {
            return Err(v.invalid(&key("region"), format!("{region:?} is not an AWS region name")));
        }
        if raw.lambda_functions.len() > MAX_FUNCTIONS
            || raw.lambda_functions.iter().any(|f| f.is_empty() || f.len() > 170)
        {
            return Err(v.invalid(
                &key("lambda_functions"),
                format!("must list at most {MAX_FUNCTIONS} function names of 1 to 170 characters"),
            ));
        }
        let queues = queues::validate(raw.queues, &key("queues"), v, false)?;
        if queues.is_empty() && raw.lambda_functions.is_empty() {
            return Err(v.invalid(&key("enabled"), "nothing to watch: list queues or lambda_functions"));
        }
        Ok(CloudWatchConfig {
            aws: shared.aws.clone(),
            period,
            delay,
            lambda_functions: raw.lambda_functions,
            region,
            regions: crate::aws::config::validate_regions(raw.regions, &key("regions"), v, shared.aws)?,
            queues,
        })
    }

    /// Query CloudWatch at most once per period, whatever the scrape interval.
    fn default_min_interval(config: &CloudWatchConfig) -> Duration {
        config.period
    }

    fn build(config: &CloudWatchConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self {
            cfg: config.clone(),
            timeout: settings.timeout,
            sqs: OnceCell::new(),
            clients: OnceCell::new(),
        })
    }

    fn config_sections() -> Vec<(String, &'static [crate::config::doc::KeyDoc])> {
        use crate::config::doc::Documented;
        vec![
            (format!("sources.{}", Self::NAME), <Self::Raw as Documented>::KEYS),
            ("sources.cloudwatch.queues[]".to_string(), <crate::aws::queues::RawQueue as Documented>::KEYS),
        ]
    }
}

impl CloudWatch {
    /// One CloudWatch client per region it reads (the queues' and the functions'), made at first use.
    async fn clients(&self, ctx: &SourceContext) -> &HashMap<String, Client> {
        let regions: BTreeSet<&String> = self.cfg.regions.iter().chain([&self.cfg.region]).collect();
        self.clients
            .get_or_init(|| {
                crate::aws::clients(&self.cfg.aws, regions, self.timeout, ctx, |conf, count| {
                    Client::from_conf(aws_sdk_cloudwatch::config::Builder::from(conf).interceptor(count).build())
                })
            })
            .await
    }

    /// The queues this source watches, resolved with its own SQS clients.
    async fn queues(&self, ctx: &SourceContext) -> Result<Vec<QueueRef>, SourceError> {
        if self.cfg.queues.is_empty() {
            return Ok(Vec::new());
        }
        let clients = self
            .sqs
            .get_or_init(|| {
                crate::aws::clients(&self.cfg.aws, &self.cfg.regions, self.timeout, ctx, crate::aws::sqs_client)
            })
            .await;
        let mut resolved = queues::resolve(clients, &self.cfg.regions, &self.cfg.queues).await;
        if resolved.queues.is_empty() && !resolved.errors.is_empty() {
            return Err(resolved.errors.swap_remove(0));
        }
        Ok(resolved.queues.into_iter().map(|(q, _)| q).collect())
    }

    /// Runs the queries of one region in batches of 500, following NextToken; returns the
    /// newest datapoint of each query id.
    async fn fetch(
        &self,
        ctx: &SourceContext,
        region: &str,
        queries: Vec<MetricDataQuery>,
        (start, end): (i64, i64),
    ) -> Result<HashMap<String, f64>, SourceError> {
        let Some(client) = self.clients(ctx).await.get(region) else {
            return Err(SourceError::new(ErrorKind::Query, format!("no CloudWatch client for region {region}")));
        };
        let mut latest: HashMap<String, (i64, f64)> = HashMap::new();
        for batch in queries.chunks(MAX_QUERIES_PER_CALL) {
            ctx.add(Usage::CloudWatchMetricsRequested, batch.len() as u64);
            let mut token: Option<String> = None;
            loop {
                let out = client
                    .get_metric_data()
                    .set_metric_data_queries(Some(batch.to_vec()))
                    .start_time(DateTime::from_secs(start))
                    .end_time(DateTime::from_secs(end))
                    .scan_by(ScanBy::TimestampDescending)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|err| crate::aws::error(format!("GetMetricData in {region}"), err))?;
                for result in out.metric_data_results() {
                    let Some(id) = result.id() else { continue };
                    for (ts, value) in result.timestamps().iter().zip(result.values()) {
                        let secs = ts.secs();
                        let entry = latest.entry(id.to_string()).or_insert((i64::MIN, 0.0));
                        if secs > entry.0 {
                            *entry = (secs, *value);
                        }
                    }
                }
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_string()),
                    _ => break,
                }
            }
        }
        Ok(latest.into_iter().map(|(id, (_, v))| (id, v)).collect())
    }
}

/// The newest complete period: it ended at least `delay` ago; a few periods are asked for so a
/// late datapoint is still found. Returns (start, end) in unix seconds.
pub fn window(now_s: i64, period: Duration, delay: Duration) -> (i64, i64) {
    let p = period.as_secs() as i64;
    let end = (now_s - delay.as_secs() as i64).div_euclid(p) * p;
    (end - 3 * p, end)
}

fn query(
    id: String,
    namespace: &str,
    metric: &str,
    dimension: (&str, &str),
    period: Duration,
    stat: &str,
) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(metric)
        .dimensions(Dimension::builder().name(dimension.0).value(dimension.1).build())
        .build();
    let stat = MetricStat::builder().metric(metric).period(period.as_secs() as i32).stat(stat).build();
    MetricDataQuery::builder().id(id).metric_stat(stat).return_data(true).build()
}

/// Every query of a run, grouped by region, with what each one feeds.
pub fn plan(cfg: &CloudWatchConfig, queues: &[QueueRef]) -> BTreeMap<String, Vec<(MetricDataQuery, Target)>> {
    let mut plan: BTreeMap<String, Vec<(MetricDataQuery, Target)>> = BTreeMap::new();
    let mut n = 0usize;
    let mut next_id = || {
        n += 1;
        format!("q{n}")
    };
    for q in queues {
        let target = Target { family: &OLDEST_MESSAGE_AGE, labels: q.label_values().to_vec(), scale: 1.0 };
        let mdq =
            query(next_id(), "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", &q.name), cfg.period, "Maximum");
        plan.entry(q.region.clone()).or_default().push((mdq, target));
    }
    for function in &cfg.lambda_functions {
        let labels = vec![function.clone(), cfg.region.clone()];
        for (family, metric, stat, scale) in [
            (&LAMBDA_INVOCATIONS, "Invocations", "Sum", 1.0),
            (&LAMBDA_ERRORS, "Errors", "Sum", 1.0),
            (&LAMBDA_THROTTLES, "Throttles", "Sum", 1.0),
            (&LAMBDA_DURATION_P95, "Duration", "p95", 0.001),
        ] {
            let mdq = query(next_id(), "AWS/Lambda", metric, ("FunctionName", function), cfg.period, stat);
            plan.entry(cfg.region.clone()).or_default().push((mdq, Target { family, labels: labels.clone(), scale }));
        }
    }
    plan
}

/// Maps the newest values by query id to families (a query without datapoints gives no series).
pub fn families(targets: &[(String, Target)], values: &HashMap<String, f64>) -> Vec<MetricFamily> {
    let mut out: Vec<MetricFamily> = QUERY_FAMILIES.iter().map(|def| def.family()).collect();
    for (id, target) in targets {
        let Some(v) = values.get(id) else { continue };
        // Every target's family is one of QUERY_FAMILIES: it is a reference to one of them, not a name.
        if let Some(f) = out.iter_mut().find(|f| std::ptr::eq(f.def(), target.family)) {
            match target.labels.as_slice() {
                [a, b] => f.push([a.clone(), b.clone()], v * target.scale),
                [a, b, c, d] => f.push([a.clone(), b.clone(), c.clone(), d.clone()], v * target.scale),
                _ => debug_assert!(false, "{}: unexpected label count", target.family.name),
            }
        }
    }
    out
}

#[async_trait::async_trait]
impl Source for CloudWatch {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::AwsRequests, Usage::CloudWatchMetricsRequested]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let queues = self.queues(ctx).await?;
        let now = crate::clock::unix_ms() / 1000;
        let window = window(now, self.cfg.period, self.cfg.delay);
        let mut targets = Vec::new();
        let mut values = HashMap::new();
        for (region, queries) in plan(&self.cfg, &queues) {
            let (mdqs, ts): (Vec<_>, Vec<_>) = queries.into_iter().unzip();
            targets.extend(mdqs.iter().map(|q| q.id().unwrap_or_default().to_string()).zip(ts));
            values.extend(self.fetch(ctx, &region, mdqs, window).await?);
        }
        let mut families = families(&targets, &values);
        families.push(PERIOD.family().with([], self.cfg.period.as_secs_f64()));
        Ok(SourceOutput { families, ..SourceOutput::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CloudWatchConfig {
        CloudWatchConfig {
            aws: AwsConfig {
                region: "eu-west-1".into(),
                endpoint_url: None,
                role_arn: None,
                external_id: None,
                max_attempts: 1,
            },
            period: Duration::from_secs(300),
            delay: Duration::from_secs(120),
            lambda_functions: vec!["f1".into()],
            region: "eu-west-1".into(),
            regions: vec!["us-east-1".into()],
            queues: vec![],
        }
    }

    #[test]
    fn window_ends_at_the_last_complete_period_before_the_delay() {
        // 10:07:30 with a 2 min delay: 10:05:30 → the period ending 10:05 is the newest complete one.
        let now = 36_450;
        assert_eq!(window(now, Duration::from_secs(300), Duration::from_secs(120)), (36_300 - 900, 36_300));
    }

    #[test]
    fn plans_one_query_per_queue_and_four_per_function() {
        let queues = vec![QueueRef {
            name: "q".into(),
            region: "us-east-1".into(),
            url: "u".into(),
            dead_letter: false,
            source_queues: vec![],
        }];
        let plan = plan(&cfg(), &queues);
        assert_eq!(plan["us-east-1"].len(), 1);
        assert_eq!(plan["eu-west-1"].len(), 4);
        let ids: Vec<&str> = plan.values().flatten().map(|(q, _)| q.id().unwrap()).collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "query ids are unique");
    }

    #[test]
    fn maps_values_in_base_units() {
        let targets = vec![
            (
                "q1".to_string(),
                Target { family: &LAMBDA_DURATION_P95, labels: vec!["f".into(), "r".into()], scale: 0.001 },
            ),
            ("q2".to_string(), Target { family: &LAMBDA_ERRORS, labels: vec!["f".into(), "r".into()], scale: 1.0 }),
        ];
        let values = HashMap::from([("q1".to_string(), 850.0)]);
        let f = families(&targets, &values);
        let duration = f.iter().find(|f| f.def() == &LAMBDA_DURATION_P95).unwrap();
        assert_eq!(duration.samples()[0].value, crate::metrics::Value::Gauge(0.85));
        assert!(f.iter().find(|f| f.def() == &LAMBDA_ERRORS).unwrap().samples().is_empty(), "no datapoint, no series");
    }
}
