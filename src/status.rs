//! The `/api/v1/system/status` document: typed, in the shape of Polo's planned System Status
//! page, with its JSON Schema at `docs/status.schema.json`. Each source contributes at most one
//! section, a variant of [`StatusSection`]; the document has one field per variant, so two
//! sources cannot overwrite each other's section.

use std::collections::BTreeMap;

use serde::Serialize;

pub use crate::sources::aws_cost::model::CostStatus;
pub use crate::sources::clickhouse_system::model::ClickHouseStatus;
pub use crate::sources::collector_runs::health::{CollectorStatus, Health};
pub use crate::sources::collector_runs::LoadingStatus;
pub use crate::sources::sqs::model::SqsStatus;

/// One source's section of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusSection {
    Collectors(Vec<CollectorStatus>),
    /// The collectors' section while `collector_runs` runs its initial load: progress only,
    /// and no `collectors` list (never a partial one).
    CollectorsLoading(LoadingStatus),
    /// Accounts by `polo_status`, every known status present.
    Accounts(BTreeMap<String, u64>),
    ClickHouse(ClickHouseStatus),
    Sqs(SqsStatus),
    /// Polo's own cost (Cost Explorer by the cost-allocation tag).
    Cost(CostStatus),
}

/// Whether a source is up and when it last succeeded (the as-of time of its section).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub up: bool,
    pub last_success: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusDocument {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collectors: Option<Vec<CollectorStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collectors_loading: Option<LoadingStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<ClickHouseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostStatus>,
    pub sources: BTreeMap<&'static str, SourceHealth>,
}

/// A second source gave a section the document already has.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("status section `{section}` given by both {first} and {second}")]
pub struct SectionCollision {
    pub section: &'static str,
    pub first: &'static str,
    pub second: &'static str,
}

impl StatusDocument {
    /// Adds `section` from `source`; refuses a section another source already gave.
    pub fn add(
        &mut self,
        owners: &mut BTreeMap<&'static str, &'static str>,
        source: &'static str,
        section: StatusSection,
    ) -> Result<(), SectionCollision> {
        let key = section.key();
        if let Some(first) = owners.get(key) {
            return Err(SectionCollision { section: key, first, second: source });
        }
        owners.insert(key, source);
        match section {
            StatusSection::Collectors(v) => self.collectors = Some(v),
            StatusSection::CollectorsLoading(v) => self.collectors_loading = Some(v),
            StatusSection::Accounts(v) => self.accounts = Some(v),
            StatusSection::ClickHouse(v) => self.clickhouse = Some(v),
            StatusSection::Sqs(v) => self.sqs = Some(v),
            StatusSection::Cost(v) => self.cost = Some(v),
        }
        Ok(())
    }
}

impl StatusSection {
    /// The section's key in the document.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Collectors(_) | Self::CollectorsLoading(_) => "collectors",
            Self::Accounts(_) => "accounts",
            Self::ClickHouse(_) => "clickhouse",
            Self::Sqs(_) => "sqs",
            Self::Cost(_) => "cost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_given_twice_is_refused_not_overwritten() {
        let mut doc = StatusDocument::default();
        let mut owners = BTreeMap::new();
        let first = BTreeMap::from([("active".to_string(), 2)]);
        doc.add(&mut owners, "accounts", StatusSection::Accounts(first.clone())).unwrap();
        let err = doc.add(&mut owners, "other", StatusSection::Accounts(BTreeMap::new())).unwrap_err();
        assert_eq!(err, SectionCollision { section: "accounts", first: "accounts", second: "other" });
        assert_eq!(doc.accounts, Some(first));
    }
}
