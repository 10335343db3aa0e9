//! The `/api/v1/system/status` document: typed, in the shape of Polo's planned System Status
//! page, with its JSON Schema at `docs/status.schema.json`. Each source contributes at most one
//! section, a variant of [`StatusSection`]; the document has one field per variant, so two
//! sources cannot overwrite each other's section.

use std::collections::BTreeMap;

use serde::Serialize;

/// One source's section of the document: the document's `field`, claimed under `key` (two
/// variants of one section, such as `collectors` and `collectors_loading`, share a key, so the
/// document never holds both). Each source declares the keys it fills (`STATUS_SECTIONS` in its
/// registration); the document knows no source.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusSection {
    key: &'static str,
    field: &'static str,
    value: serde_json::Value,
}

impl StatusSection {
    /// The section `key`, holding `value`.
    pub fn new<T: Serialize>(key: &'static str, value: &T) -> StatusSection {
        Self::variant(key, key, value)
    }

    /// The section `key`, written as the document's `field`.
    pub fn variant<T: Serialize>(key: &'static str, field: &'static str, value: &T) -> StatusSection {
        let value = serde_json::to_value(value).unwrap_or_else(|err| {
            // Only a map with non-string keys can fail; the section says so instead of a value.
            tracing::error!(section = key, error = %err, "status section cannot be serialized");
            serde_json::json!({"error": "section cannot be serialized"})
        });
        StatusSection { key, field, value }
    }

    /// The section's key in the document.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The field it is written as.
    pub fn field(&self) -> &'static str {
        self.field
    }

    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }
}

/// Whether a source is up and when it last succeeded (the as-of time of its section).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceHealth {
    pub up: bool,
    pub last_success: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusDocument {
    /// The sources' sections, by field.
    #[serde(flatten)]
    pub sections: BTreeMap<&'static str, serde_json::Value>,
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
        self.sections.insert(section.field, section.value);
        Ok(())
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
        doc.add(&mut owners, "accounts", StatusSection::new("accounts", &first)).unwrap();
        let err =
            doc.add(&mut owners, "other", StatusSection::new("accounts", &BTreeMap::<String, u64>::new())).unwrap_err();
        assert_eq!(err, SectionCollision { section: "accounts", first: "accounts", second: "other" });
        assert_eq!(doc.sections["accounts"], serde_json::json!({"active": 2}));
        // A variant of a section claims the same key.
        let err = doc.add(&mut owners, "x", StatusSection::variant("accounts", "accounts_loading", &1)).unwrap_err();
        assert_eq!(err.section, "accounts");
        assert!(!doc.sections.contains_key("accounts_loading"));
    }
}
