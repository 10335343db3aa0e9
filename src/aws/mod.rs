//! AWS access shared by the AWS sources: SDK configuration (default credential chain, optional
//! role to assume, endpoint override, bounded retries), request counting, error classification,
//! and the SQS queue selectors both AWS sources use.

pub mod config;

pub mod queues;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::framework::{ErrorKind, SourceContext, SourceError, Usage};
use config::AwsConfig;

/// One client per region, each counting its requests into the source's context: `make` builds
/// a client from the region's SDK config and the interceptor to install.
pub async fn clients<'a, C>(
    aws: &AwsConfig,
    regions: impl IntoIterator<Item = &'a String>,
    attempt_timeout: Duration,
    ctx: &SourceContext,
    make: impl Fn(&SdkConfig, CountRequests) -> C,
) -> std::collections::HashMap<String, C> {
    let mut clients = std::collections::HashMap::new();
    for region in regions {
        let conf = sdk_config(aws, region, attempt_timeout).await;
        clients.insert(region.clone(), make(&conf, CountRequests::new(ctx.clone())));
    }
    clients
}

/// An SQS client that counts its requests.
pub fn sqs_client(conf: &SdkConfig, count: CountRequests) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(conf).interceptor(count).build())
}

/// Counts every request attempt a client sends (retries included: each is billed) into the
/// source's [`Usage::AwsRequests`] and, for an API with a list price per request (see
/// [`CountRequests::priced`]), adds that price to [`Usage::AwsRequestCostMicroUsd`].
#[derive(Debug)]
pub struct CountRequests {
    ctx: SourceContext,
    /// Price of one request in millionths of a USD (Cost Explorer: 10,000 = $0.01); 0: not priced.
    micro_usd: u64,
}

impl CountRequests {
    pub fn new(ctx: SourceContext) -> Self {
        Self { ctx, micro_usd: 0 }
    }

    /// Also charges each request `micro_usd` millionths of a USD.
    pub fn priced(self, micro_usd: u64) -> Self {
        Self { micro_usd, ..self }
    }
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "polo-exporter-count-requests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_sqs::error::BoxError> {
        self.ctx.add(Usage::AwsRequests, 1);
        if self.micro_usd > 0 {
            self.ctx.add(Usage::AwsRequestCostMicroUsd, self.micro_usd);
        }
        Ok(())
    }
}

/// SDK configuration for one region. Builds no connection; credentials load on first use.
pub async fn sdk_config(aws: &AwsConfig, region: &str, attempt_timeout: Duration) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        // Bounded: a throttled API cannot stretch a scrape (the scrape deadline cuts it anyway).
        .retry_config(RetryConfig::standard().with_max_attempts(aws.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        );
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let base = loader.load().await;
    let Some(role) = &aws.role_arn else { return base };
    let mut provider =
        AssumeRoleProvider::builder(role).session_name("polo-exporter").region(Region::new(region.to_string()));
    if let Some(id) = &aws.external_id {
        provider = provider.external_id(id);
    }
    let provider = provider.configure(&base).build().await;
    base.into_builder().credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(provider)).build()
}

/// Service error codes that mean "who you are / what you may do".
const AUTH_CODES: [&str; 7] = [
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "InvalidAccessKeyId",
];

/// Maps an SDK error to the fixed set of error kinds, with `what` as the error's context.
pub fn error<E, R>(what: String, err: SdkError<E, R>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let text = DisplayErrorContext(&err).to_string();
    let kind = match &err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::ResponseError(_) => ErrorKind::Decode,
        SdkError::ServiceError(service) => match service.err().code() {
            Some(code) if AUTH_CODES.contains(&code) => ErrorKind::Auth,
            Some(code) if code.contains("Throttl") || code == "RequestThrottled" => ErrorKind::Limit,
            _ => ErrorKind::Query,
        },
        // Missing or unusable credentials fail before anything is sent.
        _ if text.to_ascii_lowercase().contains("credential") => ErrorKind::Auth,
        SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::Timeout,
        _ => ErrorKind::Connect,
    };
    SourceError::with_cause(kind, what, err)
}
