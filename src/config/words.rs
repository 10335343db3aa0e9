//! serde's messages said by key: no internal type name (`struct RawConfig`, `enum PerKeySeries`)
//! reaches a user; what was expected is said in the file's terms.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// `message` (serde's, for the key at the root when `root`) without type names. `fields` are
/// the top-level keys of the file, named when the file is not a mapping.
pub fn by_key(message: &str, root: bool, fields: &[&str]) -> String {
    let Some((found, expected)) = message.strip_prefix("invalid type: ").and_then(|m| m.split_once(", expected "))
    else {
        return message.to_string();
    };
    let found = with_article(found);
    if expected.starts_with("struct ") {
        if root {
            let sections = if fields.is_empty() { String::new() } else { format!(" ({})", fields.join(", ")) };
            return format!("the file must be a mapping of sections{sections}, not {found}");
        }
        return format!("must be a mapping of keys, not {found}");
    }
    // serde_yaml_ng's words for a sequence or mapping where one word of a list is expected.
    if expected.starts_with("enum ") || expected.starts_with("a YAML tag") {
        return format!("must be one of the documented words, not {found}");
    }
    if expected == "a map" {
        return format!("must be a mapping, not {found}");
    }
    message.to_string()
}

/// `sequence` → `a sequence`, "integer `42`" → "an integer `42`".
fn with_article(found: &str) -> String {
    let vowel = found.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {found}", if vowel { "an" } else { "a" })
}

/// The field names of a struct `T` (empty if `T` is not a struct), asked of its `Deserialize`.
pub fn struct_fields<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields taken"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Top {
        clickhouse: Option<u8>,
        sources: Option<u8>,
    }

    #[test]
    fn type_names_are_said_by_key() {
        assert_eq!(struct_fields::<Top>(), ["clickhouse", "sources"]);
        assert!(struct_fields::<u8>().is_empty());
        assert_eq!(
            by_key("invalid type: sequence, expected struct RawConfig", true, &["clickhouse", "aws", "sources"]),
            "the file must be a mapping of sections (clickhouse, aws, sources), not a sequence"
        );
        assert_eq!(
            by_key("invalid type: integer `5`, expected struct RawClickHouse", false, &[]),
            "must be a mapping of keys, not an integer `5`"
        );
        assert_eq!(
            by_key("invalid type: sequence, expected a YAML tag starting with '!'", false, &[]),
            "must be one of the documented words, not a sequence"
        );
        let kept = "unknown variant `some`, expected one of `all`, `unhealthy`, `none`";
        assert_eq!(by_key(kept, false, &[]), kept);
    }
}
