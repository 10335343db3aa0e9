//! Shared text of the per-key state: a million keys name a few dozen collectors and regions, tens
//! of thousands of accounts and a handful of statuses and error texts. Each distinct text is held
//! once ([`Interner`]) and every key points at it ([`Text`]), so a key costs a few pointers
//! instead of a few heap strings, and copying a key or a state allocates nothing.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// An immutable, shared string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text(Arc<str>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
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
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(s.into())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(s.into())
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0.to_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == &*other.0
    }
}

/// Every distinct text once. Texts no state refers to any more are dropped by [`Interner::sweep`].
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<str>>,
}

impl Interner {
    pub fn text(&mut self, s: &str) -> Text {
        if let Some(t) = self.set.get(s) {
            return Text(Arc::clone(t));
        }
        let t: Arc<str> = s.into();
        self.set.insert(Arc::clone(&t));
        Text(t)
    }

    /// Drops the texts held only here.
    pub fn sweep(&mut self) {
        self.set.retain(|t| Arc::strong_count(t) > 1);
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

    #[test]
    fn equal_texts_share_one_allocation_until_unused() {
        let mut names = Interner::default();
        let a = names.text("111111111111");
        let b = names.text(&String::from("111111111111"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "111111111111");
        assert_eq!(names.len(), 1);
        drop((a, b));
        names.text("other");
        names.sweep();
        assert!(names.is_empty(), "nothing refers to either text");
    }
}
