//! Pure part of the incremental read: which active parts of a MergeTree table hold rows this
//! exporter has not read yet.
//!
//! Every INSERT writes a new part with a new block number; a merge writes a part whose block
//! range is the union of its sources'. So a part whose block range lies within the ranges
//! already read holds only rows already read (a merge or a mutation of them) and is skipped; a
//! part with a block number never read holds new rows. A merge of read and unread parts is read
//! again as a whole (its rows already kept are recognised and kept once, see `open.rs`).

use std::collections::{BTreeMap, HashMap};

/// One active part, as `system.parts` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub partition_id: String,
    pub min_block: i64,
    pub max_block: i64,
}

/// Block ranges already read, per partition (block numbers are allocated per partition in
/// replicated tables and per table otherwise; per partition is right for both).
#[derive(Debug, Default, Clone)]
pub struct PartsCursor {
    read: HashMap<String, Vec<(i64, i64)>>,
}

impl PartsCursor {
    /// Whether every block of `part` was read already.
    fn covered(&self, part: &Part) -> bool {
        self.read
            .get(&part.partition_id)
            .is_some_and(|ranges| ranges.iter().any(|(lo, hi)| *lo <= part.min_block && part.max_block <= *hi))
    }

    /// The parts of `listing` that hold rows not read yet.
    pub fn unread<'a>(&self, listing: &'a [Part]) -> Vec<&'a Part> {
        listing.iter().filter(|p| !self.covered(p)).collect()
    }

    /// Records `parts` as read (a read that saw them all, as the listing after it shows).
    pub fn mark_read<'a>(&mut self, parts: impl IntoIterator<Item = &'a Part>) {
        let mut by_partition: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
        for p in parts {
            by_partition.entry(&p.partition_id).or_default().push((p.min_block, p.max_block));
        }
        for (partition, new) in by_partition {
            let ranges = self.read.entry(partition.to_string()).or_default();
            ranges.extend(new);
            *ranges = merge_ranges(std::mem::take(ranges));
        }
    }

    /// Forgets what was read of a partition whose newest block is older than what was read of
    /// it: its block numbers started again (the table was truncated or recreated and the server
    /// restarted), so its new parts would look read. Its window is then read again (each run
    /// kept once). Call with every listing before [`PartsCursor::unread`].
    pub fn forget_restarted(&mut self, listing: &[Part]) {
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for p in listing {
            let n = newest.entry(p.partition_id.as_str()).or_insert(i64::MIN);
            *n = (*n).max(p.max_block);
        }
        self.read.retain(|partition, ranges| {
            let read_max = ranges.last().map_or(i64::MIN, |r| r.1);
            newest.get(partition.as_str()).is_none_or(|n| *n >= read_max)
        });
    }

    /// Forgets partitions that are gone (dropped, or emptied by the TTL).
    pub fn retain_partitions(&mut self, listing: &[Part]) {
        let live: std::collections::HashSet<&str> = listing.iter().map(|p| p.partition_id.as_str()).collect();
        self.read.retain(|partition, _| live.contains(partition.as_str()));
    }

    pub fn ranges(&self) -> usize {
        self.read.values().map(Vec::len).sum()
    }
}

/// Sorted, disjoint ranges; adjacent ones (`hi + 1 == lo`) joined.
fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Whether a part name can be written into SQL as a plain string literal (ClickHouse names parts
/// `<partition id>_<min block>_<max block>_<level>[_<mutation>]`, the partition id in
/// `[0-9a-zA-Z_-]`).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(partition: &str, lo: i64, hi: i64, level: u32) -> Part {
        Part {
            name: format!("{partition}_{lo}_{hi}_{level}"),
            partition_id: partition.into(),
            min_block: lo,
            max_block: hi,
        }
    }

    fn names(parts: Vec<&Part>) -> Vec<String> {
        parts.into_iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn inserts_are_new_and_merges_of_read_parts_are_not() {
        let mut cursor = PartsCursor::default();
        let first = vec![part("all", 1, 1, 0), part("all", 2, 2, 0)];
        assert_eq!(names(cursor.unread(&first)), ["all_1_1_0", "all_2_2_0"]);
        cursor.mark_read(&first);
        // The two merged, and a new insert arrived.
        let second = vec![part("all", 1, 2, 1), part("all", 3, 3, 0)];
        assert_eq!(names(cursor.unread(&second)), ["all_3_3_0"], "the merge holds only rows read");
        cursor.mark_read(&second);
        assert_eq!(cursor.ranges(), 1, "1..3 joined");
        // An insert merged before it was read: the merge straddles and is read again.
        let third = vec![part("all", 1, 4, 2)];
        assert_eq!(names(cursor.unread(&third)), ["all_1_4_2"]);
        // A mutation rewrites a part under the same block range: nothing new.
        cursor.mark_read(&third);
        assert!(cursor.unread(&[Part { name: "all_1_4_2_9".into(), ..part("all", 1, 4, 2) }]).is_empty());
    }

    #[test]
    fn partitions_are_apart_and_gaps_stay_unread() {
        let mut cursor = PartsCursor::default();
        cursor.mark_read(&[part("202412", 1, 1, 0), part("202412", 3, 3, 0)]);
        assert_eq!(cursor.ranges(), 2);
        assert_eq!(names(cursor.unread(&[part("202412", 1, 3, 1)])), ["202412_1_3_1"], "block 2 never read");
        assert_eq!(names(cursor.unread(&[part("202501", 1, 1, 0)])), ["202501_1_1_0"]);
        cursor.retain_partitions(&[part("202501", 1, 1, 0)]);
        assert_eq!(cursor.ranges(), 0);
    }

    #[test]
    fn block_numbers_that_start_again_are_not_taken_for_read() {
        let mut cursor = PartsCursor::default();
        cursor.mark_read(&[part("all", 1, 40, 3)]);
        // Truncated and restarted between two scrapes: new inserts numbered from 1 again.
        let listing = vec![part("all", 1, 1, 0), part("all", 2, 2, 0)];
        assert!(cursor.unread(&listing).is_empty(), "without the check they would look read");
        cursor.forget_restarted(&listing);
        assert_eq!(names(cursor.unread(&listing)), ["all_1_1_0", "all_2_2_0"]);
        // A partition whose newest block is the newest read is left alone.
        cursor.mark_read(&listing);
        cursor.forget_restarted(&[part("all", 1, 2, 1)]);
        assert!(cursor.unread(&[part("all", 1, 2, 1)]).is_empty());
    }

    #[test]
    fn only_plain_names_are_inlined() {
        assert!(plain_name("all_1_1_0"));
        assert!(plain_name("2dd2b5c8c5a5c7c1b2a4c6b53a6b7cb1_3_3_0"));
        assert!(!plain_name("all_1_1_0' OR 1"));
        assert!(!plain_name(""));
    }
}
