//! Source `cloudwatch`: figures CloudWatch alone has, within a cost budget: the age of the
//! oldest message of every watched queue and Polo's Lambda invocations, errors, throttles and
//! p95 duration. GetMetricData is billed per metric requested, so queries are batched (500 a
//! call, NextToken followed) and the framework serves the cached result between periods
//! (`min_interval` defaults to the period).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_cloudwatch::Client;
use tokio::sync::OnceCell;

use crate::config::{AwsConfig, CloudWatchConfig, Config};
use crate::framework::{Backend, ErrorKind, Source, SourceContext, SourceError, SourceOutput};
use crate::metrics::{Labels, MetricFamily};
use crate::sources::sqs::model::QueueRef;
use crate::sources::sqs::SharedQueues;

/// CloudWatch's limit of queries per GetMetricData call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// What one query is for: the family it feeds, its labels, and a factor to base units.
#[derive(Debug, Clone)]
pub struct Target {
    pub family: &'static str,
    pub labels: Labels,
    pub scale: f64,
}

pub struct CloudWatch {
    cfg: CloudWatchConfig,
    aws: AwsConfig,
    timeout: Duration,
    queues: Option<SharedQueues>,
    clients: OnceCell<HashMap<String, Client>>,
    requests: AtomicU64,
    metrics_requested: AtomicU64,
}

impl CloudWatch {
    pub fn new(cfg: &Config, cw: &CloudWatchConfig, queues: Option<SharedQueues>) -> Self {
        Self {
            cfg: cw.clone(),
            aws: cfg.aws.clone(),
            timeout: cfg.sources.cloudwatch.timeout,
            queues,
            clients: OnceCell::new(),
            requests: AtomicU64::new(0),
            metrics_requested: AtomicU64::new(0),
        }
    }

    async fn client(&self, region: &str) -> Client {
        let clients = self
            .clients
            .get_or_init(|| async {
                let mut regions = std::collections::BTreeSet::from([self.cfg.region.clone()]);
                if let Some(rx) = &self.queues {
                    if let Some(list) = rx.borrow().as_ref() {
                        regions.extend(list.iter().map(|q| q.region.clone()));
                    }
                }
                let mut clients = HashMap::new();
                for r in regions {
                    let conf = crate::aws::sdk_config(&self.aws, &r, self.timeout).await;
                    clients.insert(r, Client::new(&conf));
                }
                clients
            })
            .await;
        match clients.get(region) {
            Some(c) => c.clone(),
            None => Client::new(&crate::aws::sdk_config(&self.aws, region, self.timeout).await),
        }
    }

    /// The watched queues, waiting (within this run's deadline) for the `sqs` source's first run.
    async fn watched_queues(&self) -> Vec<QueueRef> {
        let Some(rx) = &self.queues else { return Vec::new() };
        let mut rx = rx.clone();
        let queues = match rx.wait_for(Option::is_some).await {
            Ok(list) => list.as_ref().map(|l| l.as_ref().clone()).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        queues
    }

    /// Runs the queries of one region in batches of 500, following NextToken; returns the
    /// newest datapoint of each query id.
    async fn fetch(
        &self,
        region: &str,
        queries: Vec<MetricDataQuery>,
        start: i64,
        end: i64,
    ) -> Result<HashMap<String, f64>, SourceError> {
        let client = self.client(region).await;
        let mut latest: HashMap<String, (i64, f64)> = HashMap::new();
        for batch in queries.chunks(MAX_QUERIES_PER_CALL) {
            self.metrics_requested.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let mut token: Option<String> = None;
            loop {
                self.requests.fetch_add(1, Ordering::Relaxed);
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
        let target = Target { family: "polo_sqs_oldest_message_age_seconds", labels: q.labels(), scale: 1.0 };
        let mdq =
            query(next_id(), "AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", &q.name), cfg.period, "Maximum");
        plan.entry(q.region.clone()).or_default().push((mdq, target));
    }
    for function in &cfg.lambda_functions {
        let labels = vec![("function", function.clone()), ("region", cfg.region.clone())];
        for (family, metric, stat, scale) in [
            ("polo_lambda_invocations", "Invocations", "Sum", 1.0),
            ("polo_lambda_errors", "Errors", "Sum", 1.0),
            ("polo_lambda_throttles", "Throttles", "Sum", 1.0),
            ("polo_lambda_duration_p95_seconds", "Duration", "p95", 0.001),
        ] {
            let mdq = query(next_id(), "AWS/Lambda", metric, ("FunctionName", function), cfg.period, stat);
            plan.entry(cfg.region.clone()).or_default().push((mdq, Target { family, labels: labels.clone(), scale }));
        }
    }
    plan
}

const HELP: [(&str, &str); 5] = [
    ("polo_sqs_oldest_message_age_seconds", "Age of the oldest message in the queue (CloudWatch ApproximateAgeOfOldestMessage, Maximum) in the latest complete period; fetched at most once per period and served from cache in between."),
    ("polo_lambda_invocations", "Invocations of the Lambda function (CloudWatch Sum) in the latest complete period; fetched at most once per period and served from cache in between."),
    ("polo_lambda_errors", "Failed invocations of the Lambda function (CloudWatch Errors, Sum) in the latest complete period; fetched at most once per period and served from cache in between."),
    ("polo_lambda_throttles", "Throttled invocations of the Lambda function (CloudWatch Throttles, Sum) in the latest complete period; fetched at most once per period and served from cache in between."),
    ("polo_lambda_duration_p95_seconds", "95th percentile of the Lambda function's duration (CloudWatch Duration, p95) in the latest complete period; fetched at most once per period and served from cache in between."),
];

/// Maps the newest values by query id to families (a query without datapoints gives no series).
pub fn families(targets: &[(String, Target)], values: &HashMap<String, f64>) -> Vec<MetricFamily> {
    let mut out: Vec<MetricFamily> = HELP.iter().map(|(name, help)| MetricFamily::gauge(name, help)).collect();
    for (id, target) in targets {
        if let (Some(v), Some(f)) = (values.get(id), out.iter_mut().find(|f| f.name == target.family)) {
            f.push(target.labels.clone(), v * target.scale);
        }
    }
    out
}

#[async_trait::async_trait]
impl Source for CloudWatch {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn backend(&self) -> Backend {
        Backend::Aws
    }

    async fn collect(&self, _ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let queues = self.watched_queues().await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let (start, end) = window(now, self.cfg.period, self.cfg.delay);
        let mut targets = Vec::new();
        let mut values = HashMap::new();
        for (region, queries) in plan(&self.cfg, &queues) {
            let (mdqs, ts): (Vec<_>, Vec<_>) = queries.into_iter().unzip();
            targets.extend(mdqs.iter().map(|q| q.id().unwrap_or_default().to_string()).zip(ts));
            values.extend(self.fetch(&region, mdqs, start, end).await?);
        }
        if targets.is_empty() {
            return Err(SourceError::new(
                ErrorKind::Query,
                "nothing to query: no queues watched and no cloudwatch.lambda_functions",
            ));
        }
        let mut families = families(&targets, &values);
        families.push(
            MetricFamily::gauge(
                "polo_cloudwatch_period_seconds",
                "CloudWatch period of the polo_sqs_oldest_message_age_seconds and polo_lambda_* figures.",
            )
            .with(vec![], self.cfg.period.as_secs_f64()),
        );
        families.push(
            MetricFamily::counter("polo_exporter_cloudwatch_requests", "GetMetricData calls made by the exporter.")
                .with(vec![], self.requests.load(Ordering::Relaxed) as f64),
        );
        families.push(
            MetricFamily::counter(
                "polo_exporter_cloudwatch_metrics_requested",
                "Metrics requested from CloudWatch GetMetricData (what CloudWatch bills, about $0.01 per 1,000).",
            )
            .with(vec![], self.metrics_requested.load(Ordering::Relaxed) as f64),
        );
        Ok(SourceOutput { families, ..SourceOutput::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CloudWatchConfig {
        CloudWatchConfig {
            period: Duration::from_secs(300),
            delay: Duration::from_secs(120),
            lambda_functions: vec!["f1".into()],
            region: "eu-west-1".into(),
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
                Target {
                    family: "polo_lambda_duration_p95_seconds",
                    labels: vec![("function", "f".into())],
                    scale: 0.001,
                },
            ),
            (
                "q2".to_string(),
                Target { family: "polo_lambda_errors", labels: vec![("function", "f".into())], scale: 1.0 },
            ),
        ];
        let values = HashMap::from([("q1".to_string(), 850.0)]);
        let f = families(&targets, &values);
        let duration = f.iter().find(|f| f.name == "polo_lambda_duration_p95_seconds").unwrap();
        assert_eq!(duration.samples[0].value, crate::metrics::Value::Gauge(0.85));
        assert!(
            f.iter().find(|f| f.name == "polo_lambda_errors").unwrap().samples.is_empty(),
            "no datapoint, no series"
        );
    }
}
