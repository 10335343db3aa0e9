//! Source `accounts`: account coverage from `polo.aws_accounts FINAL` (a small table), plus
//! each account's latest successful scan as tracked by the `collector_runs` source.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use clickhouse::Row;
use serde::Deserialize;

use crate::clickhouse::ClickHouse;
use crate::config::Config;
use crate::framework::{Backend, ErrorKind, Source, SourceContext, SourceError, SourceOutput};
use crate::metrics::MetricFamily;
use crate::sources::collector_runs::AccountScans;

/// Bound on accounts read per scrape; Polo organisations have hundreds, not millions.
const MAX_ACCOUNTS: u64 = 100_000;

pub struct Accounts {
    ch: ClickHouse,
    known_statuses: Vec<String>,
    scans: AccountScans,
}

impl Accounts {
    pub fn new(cfg: &Config, scans: AccountScans) -> Self {
        Self {
            ch: ClickHouse::new(&cfg.clickhouse, "accounts", cfg.sources.accounts.timeout),
            known_statuses: cfg.accounts.known_statuses.clone(),
            scans,
        }
    }
}

#[derive(Debug, Clone, Row, Deserialize, PartialEq)]
pub struct AccountRow {
    pub aws_account_id: String,
    pub account_name: String,
    pub polo_status: String,
}

#[async_trait::async_trait]
impl Source for Accounts {
    fn name(&self) -> &'static str {
        "accounts"
    }

    fn backend(&self) -> Backend {
        Backend::ClickHouse
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
        let scans = self.scans.read().expect("account scans poisoned").clone();
        Ok(map(&rows, &self.known_statuses, scans.as_ref()))
    }
}

/// Maps account rows (and, once known, the per-account last scans) into families and the
/// status section. Without scans (collector_runs not loaded yet) the last-scan family is left
/// out rather than reported as 0, which would read as "never scanned".
pub fn map(rows: &[AccountRow], known_statuses: &[String], scans: Option<&HashMap<String, i64>>) -> SourceOutput {
    let mut counts: BTreeMap<String, u64> = known_statuses.iter().map(|s| (s.clone(), 0)).collect();
    let mut info = MetricFamily::gauge(
        "polo_account_info",
        "1 for every account in polo.aws_accounts; labels give its name and polo_status.",
    );
    let mut sorted: Vec<&AccountRow> = rows.iter().collect();
    sorted.sort_by(|a, b| a.aws_account_id.cmp(&b.aws_account_id));
    for row in &sorted {
        *counts.entry(row.polo_status.clone()).or_default() += 1;
        info.push(
            vec![
                ("aws_account_id", row.aws_account_id.clone()),
                ("account_name", row.account_name.clone()),
                ("status", row.polo_status.clone()),
            ],
            1.0,
        );
    }
    let mut by_status = MetricFamily::gauge(
        "polo_accounts",
        "Accounts in polo.aws_accounts by polo_status; every known status is present, 0 included.",
    );
    for (status, n) in &counts {
        by_status.push(vec![("status", status.clone())], *n as f64);
    }
    let mut families = vec![by_status, info];
    if let Some(scans) = scans {
        let mut ids: BTreeSet<&String> = rows.iter().map(|r| &r.aws_account_id).collect();
        ids.extend(scans.keys());
        let mut last_scan = MetricFamily::gauge(
            "polo_account_last_scan_timestamp_seconds",
            "completed_at of the latest succeeded run of any collector for the account; 0 if none.",
        );
        for id in ids {
            let ms = scans.get(id).copied().unwrap_or(0);
            last_scan.push(vec![("aws_account_id", id.clone())], ms as f64 / 1000.0);
        }
        families.push(last_scan);
    }
    let status = serde_json::to_value(&counts).expect("a map of counts serializes");
    SourceOutput { families, status: vec![("accounts", status)], ..SourceOutput::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, status: &str) -> AccountRow {
        AccountRow { aws_account_id: id.into(), account_name: name.into(), polo_status: status.into() }
    }

    #[test]
    fn counts_every_known_status_and_unknown_ones() {
        let known = vec!["active".to_string(), "no_access".to_string(), "pending_setup".to_string()];
        let rows = [row("1", "a", "active"), row("2", "b", "active"), row("3", "c", "weird")];
        let out = map(&rows, &known, None);
        let counts: Vec<(String, f64)> = out.families[0]
            .samples
            .iter()
            .map(|s| {
                (
                    s.labels[0].1.clone(),
                    match s.value {
                        crate::metrics::Value::Gauge(v) => v,
                        _ => unreachable!(),
                    },
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![
                ("active".into(), 2.0),
                ("no_access".into(), 0.0),
                ("pending_setup".into(), 0.0),
                ("weird".into(), 1.0)
            ]
        );
        assert_eq!(out.families.len(), 2, "no last-scan family before collector_runs has loaded");
        assert_eq!(out.status[0].1["no_access"], 0);
    }

    #[test]
    fn last_scan_is_zero_for_accounts_without_success() {
        let scans = HashMap::from([("1".to_string(), 5_000i64)]);
        let out = map(&[row("1", "a", "active"), row("2", "b", "active")], &["active".into()], Some(&scans));
        let values: Vec<_> = out.families[2].samples.iter().map(|s| (s.labels[0].1.clone(), s.value.clone())).collect();
        assert_eq!(
            values,
            vec![("1".into(), crate::metrics::Value::Gauge(5.0)), ("2".into(), crate::metrics::Value::Gauge(0.0))]
        );
    }
}
