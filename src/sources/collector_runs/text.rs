//! Shared text of the per-key state: a million keys name a few dozen collectors and regions, tens
//! of thousands of accounts and a handful of statuses and error texts. Each distinct text is held
//! once ([`Interner`]) and every key points at it ([`Text`]), so a key costs a few pointers
//! instead of a few heap strings, and copying a key or a state allocates nothing.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// An immutable, shared string: one thin pointer (8 bytes, not a 16-byte `Arc<str>`). A key
/// holds three and a state and each window run two, so at a million keys the thin pointer saves
/// about 100 MB; the extra indirection is paid once per distinct text, a few tens of thousands.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Arc<Box<str>>);

/// By content, as `str`; a text compared with itself (the same collector of two keys, the usual
/// case when a million keys are ranked) is equal without reading the bytes.
impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.as_str().cmp(other.as_str())
        }
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Text {
    /// The empty text, shared (a million keys without an error allocate nothing).
    fn default() -> Self {
        static EMPTY: OnceLock<Text> = OnceLock::new();
        EMPTY.get_or_init(|| Text(Arc::new("".into()))).clone()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(Arc::new(s.into()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(Arc::new(s.into_boxed_str()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.as_str().to_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

/// Every distinct text once. Texts no state refers to any more are dropped by [`Interner::sweep`].
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Text>,
}

impl Interner {
    pub fn text(&mut self, s: &str) -> Text {
        if let Some(t) = self.set.get(s) {
            return t.clone();
        }
        let t = Text::from(s);
        self.set.insert(t.clone());
        t
    }

    /// Drops the texts held only here.
    pub fn sweep(&mut self) {
        self.set.retain(|t| Arc::strong_count(&t.0) > 1);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn equal_texts_share_one_allocation_until_unused() {
        let mut names = Interner::default();
        let a = names.text("111111111111");
        let b = names.text(&String::from("111111111111"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "111111111111");
        assert_eq!(names.len(), 1);
        assert_eq!(std::mem::size_of::<Text>(), 8, "a thin pointer");
        assert!(Arc::ptr_eq(&Text::default().0, &Text::default().0), "one empty text");
        let (x, y) = (Text::from("b"), Text::from("a"));
        assert_eq!((x.cmp(&y), y.cmp(&x), x.cmp(&x.clone()), x.cmp(&Text::from("b"))), (Greater, Less, Equal, Equal));
        drop((a, b));
        names.text("other");
        names.sweep();
        assert!(names.is_empty(), "nothing refers to either text");
    }
}
