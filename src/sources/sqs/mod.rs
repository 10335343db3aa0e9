//! Source `sqs`: depth of Polo's queues and their dead-letter queues (SQS API, read-only:
//! ListQueues, GetQueueUrl, GetQueueAttributes, ListDeadLetterSourceQueues; never ReceiveMessage).

pub mod model;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use tokio::sync::OnceCell;

use super::SourceKind;
use crate::aws::queues::{self, QueueSpec, RawQueue};
use crate::config::{is_region, AwsConfig, ConfigError, Shared, SourceSettings, Validator};
use crate::framework::{Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::status::StatusSection;

crate::source_section! {
    /// `sources.sqs`.
    pub struct RawSqs {
        /// Regions whose queues are watched; default `[aws.region]`.
        pub regions: Option<Vec<String>>,
        /// Queues by `name`, `url` or name `prefix`; `dead_letter: true` marks a DLQ named directly.
        pub queues: Vec<RawQueue>,
    }
}

#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub aws: AwsConfig,
    pub regions: Vec<String>,
    pub queues: Vec<QueueSpec>,
}

/// Validates a `regions` key of an AWS source: default `[aws.region]`.
pub fn validate_regions(
    raw: Option<Vec<String>>,
    key: &str,
    v: &Validator,
    aws: &AwsConfig,
) -> Result<Vec<String>, ConfigError> {
    let regions = raw.unwrap_or_else(|| vec![aws.region.clone()]);
    if regions.is_empty() || regions.len() > 40 || regions.iter().any(|r| !is_region(r)) {
        return Err(v.invalid(key, "must list 1 to 40 AWS region names"));
    }
    Ok(regions)
}

pub struct Sqs {
    cfg: SqsConfig,
    timeout: Duration,
    clients: OnceCell<HashMap<String, Client>>,
}

impl SourceKind for Sqs {
    const NAME: &'static str = "sqs";
    // Needs AWS and a list of queues: runs only when asked to.
    const ENABLED_BY_DEFAULT: bool = false;
    type Raw = RawSqs;
    type Config = SqsConfig;

    fn validate(raw: RawSqs, v: &Validator, shared: &Shared) -> Result<SqsConfig, ConfigError> {
        Ok(SqsConfig {
            aws: shared.aws.clone(),
            regions: validate_regions(raw.regions, "sources.sqs.regions", v, shared.aws)?,
            queues: queues::validate(raw.queues, "sources.sqs.queues", v, true)?,
        })
    }

    fn build(config: &SqsConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self { cfg: config.clone(), timeout: settings.timeout, clients: OnceCell::new() })
    }
}

#[async_trait::async_trait]
impl Source for Sqs {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::AwsRequests]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let clients = self
            .clients
            .get_or_init(|| {
                crate::aws::clients(&self.cfg.aws, &self.cfg.regions, self.timeout, ctx, crate::aws::sqs_client)
            })
            .await;
        let mut resolved = queues::resolve(clients, &self.cfg.regions, &self.cfg.queues).await;
        if resolved.queues.iter().all(|(_, d)| d.is_none()) && !resolved.errors.is_empty() {
            // Nothing could be read: the source is down, not partly up.
            return Err(resolved.errors.swap_remove(0));
        }
        Ok(SourceOutput {
            families: model::families(&resolved.queues),
            status: Some(StatusSection::Sqs(model::status(&resolved.queues))),
            partial_errors: resolved.errors,
        })
    }
}
