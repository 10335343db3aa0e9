//! Label values made safe for every exposition: see [`label_value`].

use std::borrow::Cow;
use std::fmt::Write;

/// Longest label value exported, in characters. Longer values are cut: the first 191
/// characters, `…`, and 8 hex digits of a hash of the whole value (so that two long values
/// that differ only after the cut stay two series).
pub const MAX_LABEL_VALUE_CHARS: usize = 200;
const CUT_HASH_CHARS: usize = 8;

/// Unicode's format characters (general category Cf, Unicode 16): invisible, and some of them
/// reorder the text around them (U+202E RIGHT-TO-LEFT OVERRIDE) or hide in it (U+200B ZERO
/// WIDTH SPACE, U+FEFF BYTE ORDER MARK). Ranges, inclusive, sorted.
const FORMAT_CHARS: [(u32, u32); 21] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (category Cf).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// What a label value character becomes: kept, dropped (format characters) or a space
/// (control characters and the line and paragraph separators).
fn clean_char(c: char) -> Option<char> {
    if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
        Some(' ')
    } else if is_format_char(c) {
        None
    } else {
        Some(c)
    }
}

pub(super) fn is_clean(value: &str) -> bool {
    value.len() <= MAX_LABEL_VALUE_CHARS && value.chars().all(|c| clean_char(c) == Some(c))
}

/// FNV-1a over a value's bytes: stable across runs and versions, so a changed value names the
/// same series tomorrow.
fn value_hash(value: &str) -> u32 {
    value.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// A label value as exported. A clean value (no control or format character, at most
/// [`MAX_LABEL_VALUE_CHARS`] characters) is kept as is. Otherwise control characters become
/// spaces, format characters (bidi overrides, zero-width characters, BOM) are removed, and, so
/// that cleaning never merges two values (a tab and a space, a zero-width space and nothing),
/// `~` and 8 hex digits of a hash of the *original* value are appended. A value still too long
/// keeps its first 191 characters, then `…` and the hash. Applied to every label value of every
/// family at encoding; borrows (no copy) when the value is already clean; cleaning a cleaned
/// value changes nothing.
pub fn label_value(value: &str) -> Cow<'_, str> {
    if is_clean(value) {
        return Cow::Borrowed(value);
    }
    // Only the characters a label can keep are cleaned, so the work is bounded whatever the
    // value's length: a 1 MiB error text costs its hash (a byte loop), not a cleaning pass per
    // character (which made a scrape of such rows take minutes on a loaded machine).
    let mut cleaned = String::with_capacity(MAX_LABEL_VALUE_CHARS);
    let (mut kept, mut changed, mut more) = (0, false, false);
    for c in value.chars() {
        if kept == MAX_LABEL_VALUE_CHARS {
            more = true;
            break;
        }
        match clean_char(c) {
            Some(k) => {
                changed |= k != c;
                cleaned.push(k);
                kept += 1;
            }
            None => changed = true,
        }
    }
    if !changed && !more {
        // Clean, only longer in bytes than the fast check allows.
        return Cow::Owned(cleaned);
    }
    let hash = value_hash(value);
    if changed && !more && kept < MAX_LABEL_VALUE_CHARS - CUT_HASH_CHARS {
        let _ = write!(cleaned, "~{hash:08x}");
        return Cow::Owned(cleaned);
    }
    let mut cut: String = cleaned.chars().take(MAX_LABEL_VALUE_CHARS - 1 - CUT_HASH_CHARS).collect();
    let _ = write!(cut, "…{hash:08x}");
    Cow::Owned(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cleaned value and the hash suffix of a changed one.
    fn split_suffix(v: &str) -> (&str, &str) {
        let (clean, hash) = v.rsplit_once('~').expect("a changed value has a hash suffix");
        assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
        (clean, hash)
    }

    #[test]
    fn label_values_lose_control_and_format_characters() {
        assert_eq!(label_value("config_ec2"), Cow::Borrowed("config_ec2"));
        assert!(matches!(label_value("日本語 ok"), Cow::Borrowed(_)), "other Unicode is kept as is");
        assert_eq!(split_suffix(&label_value("evil\u{202E}gnp.exe")).0, "evilgnp.exe");
        assert_eq!(split_suffix(&label_value("\u{FEFF}bom")).0, "bom");
        assert_eq!(split_suffix(&label_value("zero\u{200B}width\u{2060}joiner\u{00AD}")).0, "zerowidthjoiner");
        assert_eq!(split_suffix(&label_value("tag\u{E0041}\u{E007F}s")).0, "tags");
        assert_eq!(
            split_suffix(&label_value("line\nbreak\ttab\u{0}nul\u{85}nel\u{2028}ls")).0,
            "line break tab nul nel ls"
        );
    }

    #[test]
    fn cleaning_never_merges_distinct_values() {
        let values = ["a b", "a\tb", "a\nb", "ab", "a\u{200B}b", "a\u{FEFF}b", "a\u{200B}\u{200B}b", "a\u{0}b"];
        let cleaned: std::collections::BTreeSet<String> = values.iter().map(|v| label_value(v).into_owned()).collect();
        assert_eq!(cleaned.len(), values.len(), "{cleaned:?}");
        for v in &cleaned {
            assert_eq!(label_value(v), v.as_str(), "cleaning twice changes nothing");
        }
        assert_eq!(label_value("a\tb"), label_value("a\tb"), "stable");
    }

    #[test]
    fn long_label_values_are_cut_with_an_ellipsis_and_a_hash() {
        let exact = "x".repeat(MAX_LABEL_VALUE_CHARS);
        assert_eq!(label_value(&exact), exact.as_str());
        let long = "é".repeat(5000);
        let cut = label_value(&long);
        assert_eq!(cut.chars().count(), MAX_LABEL_VALUE_CHARS);
        assert!(cut.starts_with(&"é".repeat(191)));
        assert_eq!(cut.chars().nth(191), Some('…'));
        let other_long = "é".repeat(4999) + "e";
        let other = label_value(&other_long);
        assert_ne!(cut, other, "values differing after the cut stay distinct");
        assert_eq!(cut[cut.len() - 8..].len(), 8);
        assert!(cut[cut.len() - 8..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(label_value(&long), cut, "stable");
        // Format characters do not count towards the length, but removing them is a change.
        let padded = format!("{}{}", "a".repeat(150), "\u{200B}".repeat(50));
        assert_eq!(split_suffix(&label_value(&padded)).0, "a".repeat(150));
    }
}
