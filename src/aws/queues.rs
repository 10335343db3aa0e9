//! SQS queues as both AWS sources name them: the selectors of a config section, and their
//! resolution into queues with dead-letter pairing (ListQueues, GetQueueUrl, GetQueueAttributes,
//! ListDeadLetterSourceQueues; read-only, never ReceiveMessage). Each source resolves its own
//! selectors with its own clients: nothing is shared between sources at run time.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;
use futures::stream::{self, StreamExt};
use serde::Deserialize;

use crate::config::{ConfigError, Validator};
use crate::framework::SourceError;

/// Labels of every per-queue series.
pub const QUEUE_LABELS: &[&str] = &["queue", "region", "dead_letter", "source_queue"];

/// Queue attribute reads in flight at once.
const CONCURRENCY: usize = 8;
/// Most queue selectors in one section.
pub const MAX_SELECTORS: usize = 1000;

crate::documented! {
    /// A queue selector as written: exactly one of `name`, `url`, `prefix`.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawQueue {
        /// The queue's name (exactly one of `name`, `url`, `prefix`).
        #[serde(default)]
        pub name: Option<String>,
        /// The queue's URL.
        #[serde(default)]
        pub url: Option<String>,
        /// Every queue whose name starts with this (ListQueues, paged).
        #[serde(default)]
        pub prefix: Option<String>,
        /// Marks a queue named directly as a dead-letter queue (DLQs are also found from RedrivePolicy).
        #[serde(default)]
        pub dead_letter: Option<bool>,
    }
}

/// How a queue is named in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueSelector {
    Name(String),
    Url(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub selector: QueueSelector,
    pub dead_letter: bool,
}

/// Validates the selectors at `key` (e.g. `sources.sqs.queues`).
pub fn validate(raw: Vec<RawQueue>, key: &str, v: &Validator, required: bool) -> Result<Vec<QueueSpec>, ConfigError> {
    if required && raw.is_empty() {
        return Err(v.invalid(key, "must name at least one queue"));
    }
    if raw.len() > MAX_SELECTORS {
        return Err(v.invalid(key, format!("must name at most {MAX_SELECTORS} queues")));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, q)| {
            let selector = match (q.name, q.url, q.prefix) {
                (Some(n), None, None) if !n.is_empty() => QueueSelector::Name(n),
                (None, Some(u), None) if u.starts_with("http") => QueueSelector::Url(u),
                (None, None, Some(p)) => QueueSelector::Prefix(p),
                _ => return Err(v.invalid(&format!("{key}[{i}]"), "set exactly one of name, url (http...) or prefix")),
            };
            Ok(QueueSpec { selector, dead_letter: q.dead_letter.unwrap_or(false) })
        })
        .collect()
}

/// A watched queue, as resolved in one run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueRef {
    pub name: String,
    pub region: String,
    pub url: String,
    pub dead_letter: bool,
    /// For a dead-letter queue: the queues whose RedrivePolicy targets it.
    pub source_queues: Vec<String>,
}

impl QueueRef {
    /// Values of [`QUEUE_LABELS`], SQS's and CloudWatch's series alike (so they join).
    /// `source_queue` is empty (no label, to Prometheus) but for a dead-letter queue with sources.
    pub fn label_values(&self) -> [String; 4] {
        let sources = if self.dead_letter { self.source_queues.join(",") } else { String::new() };
        [self.name.clone(), self.region.clone(), self.dead_letter.to_string(), sources]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// The queues of one run, each with its depth or None when reading it failed, and the errors
/// of the items that failed alone.
#[derive(Debug, Default)]
pub struct Resolved {
    pub queues: Vec<(QueueRef, Option<Depth>)>,
    pub errors: Vec<SourceError>,
}

struct Attributes {
    depth: Depth,
    redrive_policy: Option<String>,
}

/// Extracts the dead-letter queue ARN's (region, account, name) from a RedrivePolicy document.
pub fn dead_letter_target(redrive_policy: &str) -> Option<(String, String, String)> {
    let doc: serde_json::Value = serde_json::from_str(redrive_policy).ok()?;
    let arn = doc.get("deadLetterTargetArn")?.as_str()?;
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", region, account, name] => Some((region.to_string(), account.to_string(), name.to_string())),
        _ => None,
    }
}

/// Resolves `specs` in `regions` (first region for URLs), pairs dead-letter queues with their
/// sources, and reads every queue's depth.
pub async fn resolve(clients: &HashMap<String, Client>, regions: &[String], specs: &[QueueSpec]) -> Resolved {
    let mut errors = Vec::new();
    let mut queues = select(clients, regions, specs, &mut errors).await;
    let mut read: HashMap<String, Result<Attributes, SourceError>> =
        stream::iter(queues.values().cloned().collect::<Vec<_>>())
            .map(|q| async move {
                let result = attributes(&clients[&q.region], &q).await;
                (q.url.clone(), result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    pair_dead_letters(clients, &mut queues, &mut read, &mut errors).await;
    let mut rows: Vec<(QueueRef, Option<Depth>)> = Vec::new();
    for q in queues.into_values() {
        match read.remove(&q.url) {
            Some(Ok(a)) => rows.push((q, Some(a.depth))),
            Some(Err(err)) => {
                errors.push(err);
                rows.push((q, None));
            }
            None => rows.push((q, None)),
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Resolved { queues: rows, errors }
}

/// The queues the selectors name, by URL.
async fn select(
    clients: &HashMap<String, Client>,
    regions: &[String],
    specs: &[QueueSpec],
    errors: &mut Vec<SourceError>,
) -> BTreeMap<String, QueueRef> {
    let mut found = BTreeMap::new();
    for spec in specs {
        for region in regions {
            let client = &clients[region];
            let urls: Vec<String> = match &spec.selector {
                QueueSelector::Url(url) => {
                    // A URL names one queue in one region: take it once, with the first region.
                    if region != &regions[0] {
                        continue;
                    }
                    vec![url.clone()]
                }
                QueueSelector::Name(name) => match client.get_queue_url().queue_name(name).send().await {
                    Ok(out) => out.queue_url().map(str::to_string).into_iter().collect(),
                    Err(err) => {
                        errors.push(super::error(format!("GetQueueUrl {name} in {region}"), err));
                        continue;
                    }
                },
                QueueSelector::Prefix(prefix) => match list_queues(client, prefix).await {
                    Ok(urls) => urls,
                    Err(err) => {
                        errors.push(super::error(format!("ListQueues {prefix:?} in {region}"), err));
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

/// Dead-letter queues from each queue's RedrivePolicy (read if not watched already), and the
/// source queues of dead-letter queues named directly (ListDeadLetterSourceQueues).
async fn pair_dead_letters(
    clients: &HashMap<String, Client>,
    queues: &mut BTreeMap<String, QueueRef>,
    read: &mut HashMap<String, Result<Attributes, SourceError>>,
    errors: &mut Vec<SourceError>,
) {
    let mut targets: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut owners: HashMap<(String, String), String> = HashMap::new();
    for q in queues.values() {
        if let Some(Ok(Attributes { redrive_policy: Some(policy), .. })) = read.get(&q.url) {
            if let Some((region, account, name)) = dead_letter_target(policy) {
                owners.insert((region.clone(), name.clone()), account);
                targets.entry((region, name)).or_default().push(q.name.clone());
            }
        }
    }
    for ((region, name), sources) in targets {
        let existing = queues.values().find(|q| q.region == region && q.name == name).map(|q| q.url.clone());
        let url = match existing {
            Some(url) => url,
            None => {
                let Some(client) = clients.get(&region) else { continue };
                let owner = owners.get(&(region.clone(), name.clone())).cloned();
                let url =
                    match client.get_queue_url().queue_name(&name).set_queue_owner_aws_account_id(owner).send().await {
                        Ok(out) => out.queue_url().unwrap_or_default().to_string(),
                        Err(err) => {
                            errors.push(super::error(format!("GetQueueUrl {name} in {region}"), err));
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
                read.insert(url.clone(), attributes(client, &q).await);
                queues.insert(url.clone(), q);
                url
            }
        };
        if let Some(queue) = queues.get_mut(&url) {
            queue.dead_letter = true;
            queue.source_queues = sources;
            queue.source_queues.sort();
        }
    }
    for q in queues.values_mut().filter(|q| q.dead_letter && q.source_queues.is_empty()) {
        match clients[&q.region].list_dead_letter_source_queues().queue_url(&q.url).send().await {
            Ok(out) => {
                q.source_queues =
                    out.queue_urls().iter().filter_map(|u| u.rsplit('/').next()).map(str::to_string).collect();
                q.source_queues.sort();
            }
            Err(err) => {
                errors.push(super::error(format!("ListDeadLetterSourceQueues {} in {}", q.name, q.region), err))
            }
        }
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
        .map_err(|err| super::error(format!("GetQueueAttributes {} in {}", queue.name, queue.region), err))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redrive_policy() {
        let policy =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:123456789012:polo-events-dlq","maxReceiveCount":"3"}"#;
        assert_eq!(
            dead_letter_target(policy),
            Some(("eu-west-1".into(), "123456789012".into(), "polo-events-dlq".into()))
        );
        assert_eq!(dead_letter_target("not json"), None);
        assert_eq!(dead_letter_target(r#"{"deadLetterTargetArn":"arn:aws:sns:x"}"#), None);
    }
}
