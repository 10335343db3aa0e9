//! Source `sqs`: depth of Polo's queues and their dead-letter queues (SQS API, read-only:
//! ListQueues, GetQueueUrl, GetQueueAttributes, ListDeadLetterSourceQueues; never ReceiveMessage).

pub mod model;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use tokio::sync::OnceCell;

use crate::aws::config::AwsConfig;
use crate::aws::queues::{self, QueueSpec, RawQueue};
use crate::config::{ConfigError, SourceSettings, Validator};
use crate::framework::{Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::Def;
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;
use crate::status::StatusSection;

crate::source_section! {
    /// `sources.sqs`.
    pub struct RawSqs {
        /// Regions whose queues are watched. Default: `[aws.region]`.
        pub regions: Option<Vec<String>>,
        /// List of `{name: NAME}`, `{url: URL}` or `{prefix: PREFIX}` (ListQueues, paginated), each
        /// optionally `dead_letter: true` to mark a DLQ named directly (its source queues are then found with
        /// ListDeadLetterSourceQueues). Default: required.
        pub queues: Vec<RawQueue>,
    }
}

#[derive(Debug, Clone)]
pub struct SqsConfig {
    pub aws: AwsConfig,
    pub regions: Vec<String>,
    pub queues: Vec<QueueSpec>,
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
    const FAMILIES: &'static [&'static Def] = &[&model::VISIBLE, &model::IN_FLIGHT, &model::DELAYED, &model::QUEUE_UP];
    const STATUS_SECTIONS: &'static [&'static str] = &["sqs"];
    type Raw = RawSqs;
    type Config = SqsConfig;

    fn validate(raw: RawSqs, v: &Validator, shared: &Shared) -> Result<SqsConfig, ConfigError> {
        Ok(SqsConfig {
            aws: shared.aws.clone(),
            regions: crate::aws::config::validate_regions(raw.regions, "sources.sqs.regions", v, shared.aws)?,
            queues: queues::validate(raw.queues, "sources.sqs.queues", v, true)?,
        })
    }

    fn build(config: &SqsConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self { cfg: config.clone(), timeout: settings.timeout, clients: OnceCell::new() })
    }

    fn config_sections() -> Vec<(String, &'static [crate::config::doc::KeyDoc])> {
        use crate::config::doc::Documented;
        vec![
            (format!("sources.{}", Self::NAME), <Self::Raw as Documented>::KEYS),
            ("sources.sqs.queues[]".to_string(), <crate::aws::queues::RawQueue as Documented>::KEYS),
        ]
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
            status: Some(StatusSection::new("sqs", &model::status(&resolved.queues))),
            partial_errors: resolved.errors,
        })
    }
}
