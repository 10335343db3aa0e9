//! Source `accounts`: account coverage from `polo.aws_accounts FINAL` (a small table).

use std::collections::BTreeMap;
use std::sync::Arc;

use clickhouse::Row;
use serde::Deserialize;

use crate::clickhouse::config::ClickHouseConfig;
use crate::clickhouse::ClickHouse;
use crate::config::{ConfigError, SourceSettings, Validator};
use crate::framework::{ErrorKind, Source, SourceContext, SourceError, SourceOutput, Usage};
use crate::metrics::Def;
use crate::source_kind::Shared;
use crate::source_kind::SourceKind;
use crate::status::StatusSection;

/// Default of `sources.accounts.known_statuses`.
pub const DEFAULT_KNOWN_STATUSES: [&str; 4] = ["active", "pending_setup", "no_access", "disabled"];
/// Bound on accounts read per scrape; Polo organisations have hundreds, not millions.
pub const MAX_ACCOUNTS: u64 = 100_000;

crate::source_section! {
    /// `sources.accounts`.
    pub struct RawAccounts {
        /// Statuses always present in `polo_accounts{status}`, 0 included; other statuses found in the table
        /// are shown too. Default: `[active, pending_setup, no_access, disabled]`.
        pub known_statuses: Option<Vec<String>>,
    }
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    pub clickhouse: ClickHouseConfig,
    pub known_statuses: Vec<String>,
}

pub static ACCOUNTS: Def = Def::gauge(
    "polo_accounts",
    "Accounts in polo.aws_accounts by polo_status; every known status is present, 0 included.",
    &["status"],
);
pub static ACCOUNT_INFO: Def = Def::gauge(
    "polo_account_info",
    "1 for every account in polo.aws_accounts; labels give its name and polo_status.",
    &["aws_account_id", "account_name", "status"],
);

pub struct Accounts {
    ch: ClickHouse,
    known_statuses: Vec<String>,
}

impl SourceKind for Accounts {
    const NAME: &'static str = "accounts";
    const ENABLED_BY_DEFAULT: bool = true;
    const FAMILIES: &'static [&'static Def] = &[&ACCOUNTS, &ACCOUNT_INFO];
    const STATUS_SECTIONS: &'static [&'static str] = &["accounts"];
    type Raw = RawAccounts;
    type Config = AccountsConfig;

    fn validate(raw: RawAccounts, v: &Validator, shared: &Shared) -> Result<AccountsConfig, ConfigError> {
        let known_statuses = match raw.known_statuses {
            None => DEFAULT_KNOWN_STATUSES.iter().map(|s| s.to_string()).collect(),
            Some(list) if list.is_empty() => {
                return Err(v.invalid("sources.accounts.known_statuses", "must list at least one status"))
            }
            Some(list) => list,
        };
        Ok(AccountsConfig { clickhouse: shared.clickhouse(v, Self::NAME)?, known_statuses })
    }

    fn default_timeout(shared: &Shared) -> std::time::Duration {
        crate::clickhouse::default_timeout(shared.clickhouse)
    }

    fn warnings(_config: &Self::Config, settings: &SourceSettings) -> Vec<String> {
        crate::clickhouse::timeout_warning(Self::NAME, settings.timeout).into_iter().collect()
    }

    fn build(config: &AccountsConfig, settings: &SourceSettings) -> Arc<dyn Source> {
        Arc::new(Self {
            ch: ClickHouse::new(&config.clickhouse, Self::NAME, settings.timeout),
            known_statuses: config.known_statuses.clone(),
        })
    }
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct AccountRow {
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub aws_account_id: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub account_name: String,
    #[serde(deserialize_with = "crate::clickhouse::text::lossy")]
    pub polo_status: String,
}

impl crate::clickhouse::text::RowKey for AccountRow {
    fn key(&self) -> String {
        self.aws_account_id.clone()
    }
}

#[async_trait::async_trait]
impl Source for Accounts {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn usage(&self) -> &'static [Usage] {
        &[Usage::ClickHouseReadRows, Usage::InvalidValues]
    }

    async fn collect(&self, ctx: &SourceContext) -> Result<SourceOutput, SourceError> {
        let sql = format!(
            "SELECT aws_account_id, account_name, toString(polo_status) AS polo_status FROM {} FINAL LIMIT ?",
            self.ch.table("aws_accounts")
        );
        let rows: Vec<AccountRow> =
            self.ch.fetch_all(ctx, "aws_accounts", self.ch.query(&sql).bind(MAX_ACCOUNTS + 1)).await?;
        if rows.len() as u64 > MAX_ACCOUNTS {
            return Err(SourceError::new(
                ErrorKind::Limit,
                format!("aws_accounts has more than {MAX_ACCOUNTS} accounts"),
            ));
        }
        Ok(map(&rows, &self.known_statuses))
    }
}

/// Maps account rows into families and the status section.
pub fn map(rows: &[AccountRow], known_statuses: &[String]) -> SourceOutput {
    let mut counts: BTreeMap<String, u64> = known_statuses.iter().map(|s| (s.clone(), 0)).collect();
    let mut info = ACCOUNT_INFO.family();
    let mut sorted: Vec<&AccountRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.aws_account_id.cmp(&b.aws_account_id));
    for row in &sorted {
        *counts.entry(row.polo_status.clone()).or_default() += 1;
        info.push([row.aws_account_id.clone(), row.account_name.clone(), row.polo_status.clone()], 1.0);
    }
    let mut by_status = ACCOUNTS.family();
    for (status, n) in &counts {
        by_status.push([status.clone()], *n as f64);
    }
    SourceOutput {
        families: vec![by_status, info],
        status: Some(StatusSection::new("accounts", &counts)),
        ..SourceOutput::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Value;

    fn row(id: &str, name: &str, status: &str) -> AccountRow {
        AccountRow { aws_account_id: id.into(), account_name: name.into(), polo_status: status.into() }
    }

    #[test]
    fn counts_every_known_status_and_unknown_ones() {
        let known = vec!["active".to_string(), "no_access".to_string(), "pending_setup".to_string()];
        let rows = [row("1", "a", "active"), row("2", "b", "active"), row("3", "c", "weird")];
        let out = map(&rows, &known);
        let by_status = out.families.iter().find(|f| f.def() == &ACCOUNTS).unwrap();
        let counts: Vec<(String, Value)> =
            by_status.samples().iter().map(|s| (s.labels[0].1.clone(), s.value.clone())).collect();
        assert_eq!(
            counts,
            vec![
                ("active".into(), Value::Gauge(2.0)),
                ("no_access".into(), Value::Gauge(0.0)),
                ("pending_setup".into(), Value::Gauge(0.0)),
                ("weird".into(), Value::Gauge(1.0))
            ]
        );
        let status = out.status.expect("accounts section");
        assert_eq!(status.key(), "accounts");
        let status = status.value();
        assert_eq!(status["no_access"], 0);
        assert_eq!(status["active"], 2);
    }
}
