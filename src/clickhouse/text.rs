//! Any bytes in a String column: ClickHouse strings are bytes, and a collector may write bytes
//! that are not UTF-8 (a truncated multi-byte message, binary from an SDK). Such a value is
//! decoded lossily (U+FFFD for each invalid sequence) and gets a suffix `~` + 8 hex digits of
//! a hash of its bytes, so that two values differing only in their invalid bytes stay two
//! values (two keys, two series). Each one is counted for the source
//! (`polo_exporter_invalid_values_total{source}`) through [`counting`].

use std::cell::Cell;
use std::fmt::Write;
use std::future::Future;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

thread_local! {
    /// Invalid values decoded on this thread since the poll of [`counting`] began.
    static INVALID: Cell<u64> = const { Cell::new(0) };
}

/// FNV-1a, 32 bits: stable across runs and versions.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// Bytes as a String: as is when they are UTF-8, otherwise lossily with the hash suffix
/// (and counted).
pub fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            INVALID.with(|c| c.set(c.get() + 1));
            let bytes = err.into_bytes();
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = write!(text, "~{:08x}", fnv1a(&bytes));
            text
        }
    }
}

/// A String column's value decoded with [`decode`]; for strings inside arrays and tuples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lossy(pub String);

impl<'de> Deserialize<'de> for Lossy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Lossy;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Lossy, E> {
                Ok(Lossy(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Lossy, E> {
                Ok(Lossy(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Lossy, E> {
                Ok(Lossy(decode(v.to_vec())))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Lossy, E> {
                Ok(Lossy(decode(v)))
            }
        }
        // RowBinary hands a String column to `deserialize_byte_buf` as raw bytes, unchecked.
        d.deserialize_byte_buf(V)
    }
}

/// For `#[serde(deserialize_with = "lossy")]` on a `String` field of a row.
pub fn lossy<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Lossy::deserialize(d).map(|l| l.0)
}

/// Lossy strings to plain ones.
pub fn strings(values: Vec<Lossy>) -> Vec<String> {
    values.into_iter().map(|l| l.0).collect()
}

/// Runs `fut` and returns how many invalid values were decoded while it ran. Row decoding is
/// synchronous inside a poll, so what the thread counted during one poll of `fut` is `fut`'s,
/// even while other fetches run in the same task (`join!`).
pub async fn counting<F: Future>(fut: F) -> (F::Output, u64) {
    let mut fut = std::pin::pin!(fut);
    let mut count = 0;
    let out = std::future::poll_fn(|cx| {
        let before = INVALID.with(|c| c.replace(0));
        let poll = fut.as_mut().poll(cx);
        count += INVALID.with(|c| c.replace(before));
        poll
    })
    .await;
    (out, count)
}

/// What names a row in a log line (its key), for the one warning per key about invalid bytes.
pub trait RowKey {
    fn key(&self) -> String;
}

/// `text` for a log line: at most `max` characters, then `…(N bytes)`.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…({} bytes)", &text[..cut], text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_are_decoded_lossily_with_a_hash_of_the_bytes() {
        assert_eq!(decode(b"ok".to_vec()), "ok");
        let a = decode(b"a\xff".to_vec());
        let b = decode(b"a\xfe".to_vec());
        assert!(a.starts_with("a\u{FFFD}~") && a.len() == "a\u{FFFD}~".len() + 8, "{a}");
        assert_ne!(a, b, "values that differ only in invalid bytes stay distinct");
        assert_eq!(decode(b"a\xff".to_vec()), a, "stable");
        assert_eq!(shorten("abcdef", 3), "abc…(6 bytes)");
        assert_eq!(shorten("abc", 3), "abc");
    }

    #[tokio::test]
    async fn counting_counts_only_the_future_it_wraps() {
        let (_, n) = counting(async {
            decode(b"\xff".to_vec());
            tokio::task::yield_now().await;
            decode(b"\xfe".to_vec());
            decode(b"fine".to_vec());
        })
        .await;
        assert_eq!(n, 2);
        let (_, m) = counting(async {
            let (_, inner) = counting(async { decode(b"\xff".to_vec()) }).await;
            assert_eq!(inner, 1);
            decode(b"\xff".to_vec());
        })
        .await;
        assert_eq!(m, 1, "an inner count is not counted twice");
    }
}
