//! The `aws` section of the configuration file: what the AWS sources share, as written
//! ([`RawAws`]) and validated ([`AwsConfig`]), and the validation of a source's `regions`.

use serde::Deserialize;

use crate::config::{is_region, ConfigError, Validator};

/// Default of `aws.region`.
pub const DEFAULT_AWS_REGION: &str = "us-east-1";
/// Default of `aws.max_attempts`.
pub const DEFAULT_AWS_MAX_ATTEMPTS: u32 = 2;

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub max_attempts: u32,
}

crate::documented! {
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawAws {
        /// Default region. Default: `us-east-1`.
        #[serde(default)]
        pub region: Option<String>,
        /// Endpoint override (a local emulator such as scripts/dev-aws); also used for STS.
        #[serde(default)]
        pub endpoint_url: Option<String>,
        /// Role to assume with the default-chain credentials.
        #[serde(default)]
        pub role_arn: Option<String>,
        /// External id for `role_arn`.
        #[serde(default)]
        pub external_id: Option<String>,
        /// Attempts per AWS call (1–5), so a throttled API cannot stretch a scrape; the scrape deadline
        /// bounds it anyway. Default: `2`.
        #[serde(default)]
        pub max_attempts: Option<u32>,
    }
}

/// Validates the `aws` section (absent: every default).
pub fn validate(raw: RawAws, v: &Validator) -> Result<AwsConfig, ConfigError> {
    let region = raw.region.unwrap_or_else(|| DEFAULT_AWS_REGION.to_string());
    if !is_region(&region) {
        return Err(v.invalid("aws.region", format!("{region:?} is not an AWS region name")));
    }
    if let Some(url) = &raw.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('@') {
            return Err(v.invalid("aws.endpoint_url", "must be an http(s) URL without credentials"));
        }
    }
    if let Some(arn) = &raw.role_arn {
        if !arn.starts_with("arn:") || !arn.contains(":role/") {
            return Err(v.invalid("aws.role_arn", format!("{arn:?} is not a role ARN")));
        }
    }
    if raw.external_id.is_some() && raw.role_arn.is_none() {
        return Err(v.invalid("aws.external_id", "needs aws.role_arn"));
    }
    let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_AWS_MAX_ATTEMPTS);
    if !(1..=5).contains(&max_attempts) {
        return Err(v.invalid("aws.max_attempts", "must be between 1 and 5"));
    }
    Ok(AwsConfig {
        region,
        endpoint_url: raw.endpoint_url,
        role_arn: raw.role_arn,
        external_id: raw.external_id,
        max_attempts,
    })
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
