//! Value -> id lookup tables for the hot loop, and vocabulary counting.
//!
//! Categorical values in the public formats are mostly small decimal integers, so those go
//! through a dense array; everything else through a hash map with FxHash (rustc's: fast
//! for short keys, not DoS-resistant, which is fine for a training-data loader).
//! Lookups take `&str` slices of the input line and allocate nothing; only a value seen for
//! the first time while fitting is copied.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

/// Canonical decimal integers below this use the dense table.
const SMALL_LIMIT: usize = 1 << 16;

/// `Some(n)` when `v` is the canonical decimal spelling of a small integer (no sign, no
/// leading zeros), so that the dense table never conflates two distinct strings.
#[inline]
fn small_int(v: &str) -> Option<usize> {
    let b = v.as_bytes();
    if b.is_empty() || b.len() > 5 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut n = 0usize;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (c - b'0') as usize;
    }
    (n < SMALL_LIMIT).then_some(n)
}

/// Maps raw values to non-zero ids; 0 means absent. The one value -> id structure: fitting
/// counts with it, and a fitted [`crate::schema::CategoricalField`] encodes with it.
#[derive(Default, Clone, Debug)]
pub(crate) struct ValueIndex {
    small: Vec<u32>,
    map: HashMap<Box<str>, u32, FxBuildHasher>,
}

impl ValueIndex {
    #[inline]
    pub fn get(&self, v: &str) -> u32 {
        match small_int(v) {
            Some(n) => self.small.get(n).copied().unwrap_or(0),
            None => self.map.get(v).copied().unwrap_or(0),
        }
    }

    /// Sets the id of `v` (`id` > 0); returns the id it had (0 if none).
    pub fn insert(&mut self, v: &str, id: u32) -> u32 {
        match small_int(v) {
            Some(n) => {
                if self.small.len() <= n {
                    self.small.resize(n + 1, 0);
                }
                std::mem::replace(&mut self.small[n], id)
            }
            None => self.map.insert(v.into(), id).unwrap_or(0),
        }
    }

    /// The index of a fitted vocabulary (`vocab[i]` has id `i + 1`).
    pub fn from_vocab(vocab: &[String]) -> Self {
        let mut index = Self::default();
        for (i, v) in vocab.iter().enumerate() {
            index.insert(v, i as u32 + 1);
        }
        index
    }
}

/// Counts the values of one categorical field while fitting. Each distinct value gets a
/// provisional id in order of first appearance, so rows can be stored before the final
/// (frequency-ordered) vocabulary is known and remapped afterwards.
#[derive(Default, Debug)]
pub(crate) struct ValueCounter {
    index: ValueIndex,
    values: Vec<Box<str>>,
    counts: Vec<u64>,
}

impl ValueCounter {
    /// Counts `v` and returns its provisional id; the empty value is missing (id 0) and is
    /// not counted.
    #[inline]
    pub fn observe(&mut self, v: &str) -> u32 {
        if v.is_empty() {
            return 0;
        }
        self.absorb(v, 1)
    }

    /// Adds `count` sightings of `v` (non-empty, `count` > 0) and returns its provisional
    /// id: merging another counter's [`Self::entries`] in their order keeps ids in order of
    /// first appearance.
    #[inline]
    pub fn absorb(&mut self, v: &str, count: u64) -> u32 {
        let id = self.index.get(v);
        if id != 0 {
            self.counts[id as usize - 1] += count;
            return id;
        }
        self.values.push(v.into());
        self.counts.push(count);
        let id = self.values.len() as u32;
        self.index.insert(v, id);
        id
    }

    /// The values seen, in order of first appearance (provisional id = position + 1), with
    /// their counts.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.values.iter().map(|v| &**v).zip(self.counts.iter().copied())
    }

    /// Distinct non-empty values seen.
    #[cfg(test)]
    pub fn distinct(&self) -> usize {
        self.values.len()
    }

    /// Positions of the values by descending count, ties by value.
    fn ranked(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.values.len()).collect();
        order.sort_by(|&a, &b| self.counts[b].cmp(&self.counts[a]).then_with(|| self.values[a].cmp(&self.values[b])));
        order
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Keeps the `keep` most frequent values (ties by value) and forgets the others, which
    /// start again from nothing if seen later. Provisional ids change: only for a pass that
    /// keeps no rows.
    pub fn prune(&mut self, keep: usize) {
        let mut order = self.ranked();
        order.truncate(keep);
        order.sort_unstable();
        let mut pruned = ValueCounter::default();
        for i in order {
            pruned.absorb(&self.values[i], self.counts[i]);
        }
        *self = pruned;
    }

    /// The vocabulary (values with count >= `min_count`, by descending count, ties by value,
    /// at most `max` of them) and the map provisional id -> final id (0 for dropped values
    /// and for missing).
    pub fn finish(self, min_count: u32, max: Option<usize>) -> (Vec<String>, Vec<u32>) {
        let mut order = self.ranked();
        order.retain(|&i| self.counts[i] >= min_count as u64);
        order.truncate(max.unwrap_or(usize::MAX));
        let mut remap = vec![0u32; self.values.len() + 1];
        for (rank, &i) in order.iter().enumerate() {
            remap[i + 1] = rank as u32 + 1;
        }
        let vocab = order.iter().map(|&i| self.values[i].to_string()).collect();
        (vocab, remap)
    }
}

/// Dense ids for the distinct values of a group key, in order of first appearance.
#[derive(Default, Debug)]
pub(crate) struct GroupIds {
    index: ValueIndex,
    next: u32,
    /// The values by id, kept only by [`Self::recording`] (a chunk's ids, to be merged).
    values: Option<Vec<Box<str>>>,
}

impl GroupIds {
    /// Ids that remember their values, for [`Self::values`].
    pub fn recording() -> Self {
        Self { values: Some(Vec::new()), ..Self::default() }
    }

    #[inline]
    pub fn id(&mut self, v: &str) -> u32 {
        let stored = self.index.get(v);
        if stored != 0 {
            return stored - 1;
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        self.index.insert(v, id.saturating_add(1));
        if let Some(values) = &mut self.values {
            values.push(v.into());
        }
        id
    }

    /// The values by id (empty unless [`Self::recording`]).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().flatten().map(|v| &**v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ints_are_canonical_only() {
        assert_eq!(small_int("0"), Some(0));
        assert_eq!(small_int("65535"), Some(65535));
        assert_eq!(small_int("65536"), None);
        assert_eq!(small_int("07"), None);
        assert_eq!(small_int("-1"), None);
        assert_eq!(small_int(""), None);
        let mut idx = ValueIndex::default();
        idx.insert("7", 1);
        idx.insert("07", 2);
        idx.insert("abc", 3);
        idx.insert("100000", 4);
        assert_eq!(
            [idx.get("7"), idx.get("07"), idx.get("abc"), idx.get("100000"), idx.get("8"), idx.get("x")],
            [1, 2, 3, 4, 0, 0]
        );
    }

    #[test]
    fn vocabulary_order_and_min_count() {
        let mut c = ValueCounter::default();
        let ids: Vec<u32> = ["b", "a", "", "c", "a", "b", "a", "d"].iter().map(|v| c.observe(v)).collect();
        assert_eq!(ids, [1, 2, 0, 3, 2, 1, 2, 4]);
        assert_eq!(c.distinct(), 4);
        let (vocab, remap) = c.finish(2, None);
        // a: 3, b: 2, c and d: 1 (dropped).
        assert_eq!(vocab, ["a", "b"]);
        assert_eq!(remap, [0, 2, 1, 0, 0]);
        let mut c = ValueCounter::default();
        for v in ["z", "y", "10", "9"] {
            c.observe(v);
        }
        // All count 1: ties broken by value (byte order).
        assert_eq!(c.finish(1, Some(3)).0, ["10", "9", "y"]);
    }

    #[test]
    fn pruning_keeps_the_most_frequent() {
        let mut c = ValueCounter::default();
        for v in ["a", "b", "b", "c", "c", "c", "d"] {
            c.observe(v);
        }
        c.prune(2);
        assert_eq!(c.len(), 2);
        // "a" comes back from nothing; "c" and "b" kept their counts.
        c.observe("a");
        assert_eq!(c.finish(1, None).0, ["c", "b", "a"]);
    }

    #[test]
    fn group_ids_are_dense() {
        let mut g = GroupIds::default();
        let ids: Vec<u32> = ["5", "x", "5", "0", "x"].iter().map(|v| g.id(v)).collect();
        assert_eq!(ids, [0, 1, 0, 2, 1]);
    }
}
