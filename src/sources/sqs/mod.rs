//! Source `sqs`: depth of Polo's queues and their dead-letter queues (SQS API, read-only:
//! ListQueues, GetQueueUrl, GetQueueAttributes, ListDeadLetterSourceQueues; never ReceiveMessage).

pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use futures::stream::{self, StreamExt};
use tokio::sync::{watch, OnceCell};

use crate::config::{AwsConfig, Config, QueueSelector, SqsConfig};
use crate::framework::{Backend, Source, SourceContext, SourceError, SourceOutput};
use model::{Depth, QueueRef, QueueRow};

/// The queues resolved by the latest successful run, for the `cloudwatch` source.
pub type SharedQueues = watch::Receiver<Option<Arc<Vec<QueueRef>>>>;

/// Queue attribute reads in flight at once.
const CONCURRENCY: usize = 8;

pub struct Sqs {
    cfg: SqsConfig,
    aws: AwsConfig,
    timeout: std::time::Duration,
    clients: OnceCell<HashMap<String, Client>>,
    queues: watch::Sender<Option<Arc<Vec<QueueRef>>>>,
}

impl Sqs {
    pub fn new(cfg: &Config, sqs: &SqsConfig) -> (Self, SharedQueues) {
        let (tx, rx) = watch::channel(None);
        let source = Self {
            cfg: sqs.clone(),
            aws: cfg.aws.clone(),
            timeout: cfg.sources.sqs.timeout,
            clients: OnceCell::new(),
            queues: tx,
        };
        (source, rx)
    }

    async fn clients(&self) -> &HashMap<String, Client> {
        self.clients
            .get_or_init(|| async {
                let mut clients = HashMap::new();
                for region in &self.cfg.regions {
                    let conf = crate::aws::sdk_config(&self.aws, region, self.timeout).await;
                    clients.insert(region.clone(), Client::new(&conf));
                }
                clients
            })
            .await
    }

    /// Resolves the configured selectors into queues (by URL), collecting per-item errors.
    async fn resolve(
        &self,
        clients: &HashMap<String, Client>,
        errors: &mut Vec<SourceError>,
    ) -> BTreeMap<String, QueueRef> {
        let mut found = BTreeMap::new();
        for spec in &self.cfg.queues {
            for region in &self.cfg.regions {
                let client = &clients[region];
                let urls: Vec<String> = match &spec.selector {
                    QueueSelector::Url(url) => {
                        // A URL names one queue in one region: take it once, with the first region.
                        if region != &self.cfg.regions[0] {
                            continue;
                        }
                        vec![url.clone()]
                    }
                    QueueSelector::Name(name) => match client.get_queue_url().queue_name(name).send().await {
                        Ok(out) => out.queue_url().map(str::to_string).into_iter().collect(),
                        Err(err) => {
                            errors.push(crate::aws::error(format!("GetQueueUrl {name} in {region}"), err));
                            continue;
                        }
                    },
                    QueueSelector::Prefix(prefix) => match list_queues(client, prefix).await {
                        Ok(urls) => urls,
                        Err(err) => {
                            errors.push(crate::aws::error(format!("ListQueues {prefix:?} in {region}"), err));
                            continue;
                        }
                    },
                };
                for url in urls {
                    let name = url.rsplit('/').next().unwrap_or_default().to_string();
                    let entry = found.entry(url.clone()).or_insert_with(|| QueueRef {
                        name,
                        region: region.clone(),
                        url,
                        dead_letter: false,
                        source_queues: Vec::new(),
                    });
                    entry.dead_letter |= spec.dead_letter;
                }
            }
        }
        found
    }
}

async fn list_queues(
    client: &Client,
    prefix: &str,
) -> Result<
    Vec<String>,
    aws_sdk_sqs::error::SdkError<
        aws_sdk_sqs::operation::list_queues::ListQueuesError,
        aws_sdk_sqs::config::http::HttpResponse,
    >,
> {
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let out = client.list_queues().queue_name_prefix(prefix).max_results(1000).set_next_token(token).send().await?;
        urls.extend(out.queue_urls().iter().cloned());
        match out.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(urls),
        }
    }
}

struct Attributes {
    depth: Depth,
    redrive_policy: Option<String>,
}

async fn attributes(client: &Client, queue: &QueueRef) -> Result<Attributes, SourceError> {
    let out = client
        .get_queue_attributes()
        .queue_url(&queue.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|err| crate::aws::error(format!("GetQueueAttributes {} in {}", queue.name, queue.region), err))?;
    let attrs = out.attributes().cloned().unwrap_or_default();
    let count = |name: QueueAttributeName| attrs.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Attributes {
        depth: Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        },
        redrive_policy: attrs.get(&QueueAttributeName::RedrivePolicy).cloned(),
    })
}

#[async_trait::async_trait]
impl Source for Sqs {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn backend(&self) -> Backend {
        Backend::Aws
    }

    async fn collect(&self, _ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let clients = self.clients().await;
        let mut errors = Vec::new();
        let mut queues = self.resolve(clients, &mut errors).await;
        let mut read: HashMap<String, Result<Attributes, SourceError>> =
            stream::iter(queues.values().cloned().collect::<Vec<_>>())
                .map(|q| async move {
                    let result = attributes(&clients[&q.region], &q).await;
                    (q.url.clone(), result)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;

        // Dead-letter queues from each queue's RedrivePolicy, fetched if not watched already.
        let mut targets: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut owners: HashMap<(String, String), String> = HashMap::new();
        for q in queues.values() {
            if let Some(Ok(Attributes { redrive_policy: Some(policy), .. })) = read.get(&q.url) {
                if let Some((region, account, name)) = model::dead_letter_target(policy) {
                    owners.insert((region.clone(), name.clone()), account);
                    targets.entry((region, name)).or_default().push(q.name.clone());
                }
            }
        }
        for ((region, name), sources) in targets {
            let existing = queues.values_mut().find(|q| q.region == region && q.name == name);
            let queue = match existing {
                Some(q) => q,
                None => {
                    let Some(client) = clients.get(&region) else { continue };
                    let owner = owners.get(&(region.clone(), name.clone())).cloned();
                    let url = match client
                        .get_queue_url()
                        .queue_name(&name)
                        .set_queue_owner_aws_account_id(owner)
                        .send()
                        .await
                    {
                        Ok(out) => out.queue_url().unwrap_or_default().to_string(),
                        Err(err) => {
                            errors.push(crate::aws::error(format!("GetQueueUrl {name} in {region}"), err));
                            continue;
                        }
                    };
                    let q = QueueRef {
                        name: name.clone(),
                        region: region.clone(),
                        url: url.clone(),
                        dead_letter: true,
                        source_queues: vec![],
                    };
                    let result = attributes(client, &q).await;
                    read.insert(url.clone(), result);
                    queues.entry(url).or_insert(q)
                }
            };
            queue.dead_letter = true;
            queue.source_queues = sources;
            queue.source_queues.sort();
        }
        // Dead-letter queues named directly: find their sources from SQS.
        for q in queues.values_mut().filter(|q| q.dead_letter && q.source_queues.is_empty()) {
            if let Ok(out) = clients[&q.region].list_dead_letter_source_queues().queue_url(&q.url).send().await {
                q.source_queues =
                    out.queue_urls().iter().filter_map(|u| u.rsplit('/').next()).map(str::to_string).collect();
                q.source_queues.sort();
            }
        }

        let mut rows: Vec<QueueRow> = Vec::new();
        for q in queues.values() {
            match read.remove(&q.url) {
                Some(Ok(a)) => rows.push((q.clone(), Some(a.depth))),
                Some(Err(err)) => {
                    errors.push(err);
                    rows.push((q.clone(), None));
                }
                None => rows.push((q.clone(), None)),
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if rows.iter().all(|(_, d)| d.is_none()) && !errors.is_empty() {
            // Nothing could be read: the source is down, not partly up. `cloudwatch` waits for a
            // first queue list; give it an empty one rather than have it wait out its deadline.
            self.queues.send_if_modified(|known| {
                let first = known.is_none();
                if first {
                    *known = Some(Arc::new(Vec::new()));
                }
                first
            });
            return Err(errors.swap_remove(0));
        }
        let _ = self.queues.send(Some(Arc::new(rows.iter().map(|(q, _)| q.clone()).collect())));
        Ok(SourceOutput {
            families: model::families(&rows),
            status: vec![("sqs", model::status(&rows))],
            partial_errors: errors,
        })
    }
}
