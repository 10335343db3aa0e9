//! The per-key table: one entry per (collector, account, region), stored densely in a vector
//! and found through a table of indexes. At a million keys a `HashMap<Key, Box<Slot>>` paid a
//! 33-byte bucket twice over (the table is kept at most 7/8 full, in powers of two) plus one
//! allocation per key, and every scrape walked the slots in hash order, one cache miss each.
//! Here a bucket is a 4-byte index, the entries sit side by side and a scrape walks them in
//! order.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::model::Key;

/// Entries by key, in insertion order (until a removal moves the last one into the gap).
#[derive(Debug, Default)]
pub struct KeyTable<V> {
    index: HashTable<u32>,
    entries: Vec<(Key, V)>,
    hasher: foldhash::fast::RandomState,
}

impl<V: Default> KeyTable<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &Key) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index.find(hash, |&i| entries[i as usize].0 == *key).map(|&i| &entries[i as usize].1)
    }

    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        let at = *self.index.find(hash, |&i| entries[i as usize].0 == *key)?;
        Some(&mut self.entries[at as usize].1)
    }

    /// The entry of `key`, a default one added if there is none.
    pub fn get_or_default(&mut self, key: Key) -> &mut V {
        let hash = self.hasher.hash_one(&key);
        let entries = &self.entries;
        let at = match self.index.find(hash, |&i| entries[i as usize].0 == key) {
            Some(&at) => at,
            None => {
                let at = u32::try_from(self.entries.len()).expect("fewer than 2^32 keys");
                let (entries, hasher) = (&self.entries, &self.hasher);
                self.index.insert_unique(hash, at, |&i| hasher.hash_one(&entries[i as usize].0));
                self.entries.push((key, V::default()));
                at
            }
        };
        &mut self.entries[at as usize].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Key, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Keeps the entries `keep` says to keep. Removals are rare (a key forgotten after
    /// `forget_after`), so the indexes are rebuilt only when one happened.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|(k, v)| keep(k, v));
        if self.entries.len() != before {
            self.entries.shrink_to(self.entries.len() + self.entries.len() / 8);
            let (entries, hasher) = (&self.entries, &self.hasher);
            self.index.clear();
            self.index.shrink_to(entries.len(), |&i| hasher.hash_one(&entries[i as usize].0));
            for (at, (key, _)) in entries.iter().enumerate() {
                self.index.insert_unique(hasher.hash_one(key), at as u32, |&i| hasher.hash_one(&entries[i as usize].0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Key {
        (format!("c{}", i % 7).into(), format!("{i:012}").into(), "us-east-1".into())
    }

    #[test]
    fn entries_are_found_added_and_removed_like_a_map() {
        let mut table: KeyTable<u32> = KeyTable::default();
        let mut reference = std::collections::HashMap::new();
        for i in 0..5_000 {
            *table.get_or_default(key(i % 3_000)) += i;
            *reference.entry(key(i % 3_000)).or_insert(0) += i;
        }
        assert_eq!(table.len(), 3_000);
        table.retain(|k, v| {
            *v += 1;
            !k.1.ends_with('7')
        });
        reference.retain(|k: &Key, v: &mut u32| {
            *v += 1;
            !k.1.ends_with('7')
        });
        assert_eq!(table.len(), reference.len());
        for i in 0..3_000 {
            assert_eq!(table.get(&key(i)), reference.get(&key(i)), "key {i} after the removals");
        }
        *table.get_or_default(key(7)) += 5;
        assert_eq!(table.get(&key(7)), Some(&5), "a removed key comes back new");
        assert_eq!(table.iter().count(), reference.len() + 1);
    }
}
