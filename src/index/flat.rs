//! [`FlatInterner`]: the base's strings ↔ dense ids, laid out so that a probe costs two cache
//! misses (a slot, then the string's record) instead of four, and so that many probes can have
//! their slot misses in flight at once ([`FlatInterner::get_many`]).
//!
//! Layout:
//! * `arena`: per string, a record: its id (4 bytes, little-endian), then its bytes;
//! * `ends[i]`: where string `i`'s record ends (the next one starts there), for
//!   [`FlatInterner::resolve`];
//! * `slots`: an open-addressing table with linear probing, of any length (a hash picks its
//!   home slot by multiply-shift), at most 3/4 full. A slot is [`EMPTY`], or
//!   `start | len << 32 | tag << 48`: where the record starts, the string's length (saturated at
//!   `u16::MAX`) and 16 more bits of the string's hash. A probe compares length and tag in the
//!   slot, and reads the arena only for a slot that matches both (a false match is 1 in 65,536
//!   per slot passed).
//!
//! Invariants (checked by [`FlatInterner::validate`]): `ends` is strictly increasing (every
//! record holds at least its id), record `i` holds id `i`, every string has exactly one slot,
//! on its probe path, which describes it; a table holding strings has an empty slot.
//!
//! Limit: the arena is addressed by `u32`. A string that would take it past 4 GiB is not stored
//! ([`FlatInterner::intern`] returns `None`).

use std::hash::BuildHasher;

/// A slot that holds no string.
const EMPTY: u64 = u64::MAX;
/// A record's id prefix.
const ID: usize = 4;
/// Keys per group of [`FlatInterner::get_each`]: enough probes in flight to overlap their
/// misses, few enough that their slots stay in cache until they are read.
const GROUP: usize = 16;

/// Strings ↔ dense `u32` ids, append-only and not persistent: ids never change. See the module
/// doc for the layout.
#[derive(Clone, Default)]
pub struct FlatInterner {
    arena: Vec<u8>,
    ends: Vec<u32>,
    slots: Vec<u64>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for FlatInterner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatInterner")
            .field("strings", &self.ends.len())
            .field("arena_bytes", &self.arena.len())
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// The length and tag half of a slot, for a string of `len` bytes with hash `hash`.
fn key_half(len: usize, hash: u64) -> u64 {
    let len = u64::try_from(len)
        .unwrap_or(u64::MAX)
        .min(u64::from(u16::MAX));
    len | ((hash & 0xFFFF) << 16)
}

fn slot_value(start: u32, len: usize, hash: u64) -> u64 {
    u64::from(start) | (key_half(len, hash) << 32)
}

/// The table length for `n` strings: at most 3/4 full, and never full.
fn table_len(n: usize) -> usize {
    (n.saturating_mul(4) / 3).saturating_add(2)
}

impl FlatInterner {
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        Self {
            arena: Vec::with_capacity(bytes.saturating_add(strings.saturating_mul(ID))),
            ends: Vec::with_capacity(strings),
            slots: vec![EMPTY; table_len(strings)],
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Where record `id` starts and ends in the arena.
    fn record(&self, id: u32) -> Option<(usize, usize)> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(p) => *self.ends.get(p)? as usize,
            None => 0,
        };
        Some((start, end))
    }

    pub fn resolve(&self, id: u32) -> Option<&str> {
        let (start, end) = self.record(id)?;
        std::str::from_utf8(self.arena.get(start + ID..end)?).ok()
    }

    /// The home slot of a hash: multiply-shift onto the table's length.
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    /// The id of the record starting at `start`, if it holds exactly `s`.
    fn matches(&self, start: u32, s: &[u8]) -> Option<u32> {
        let start = start as usize;
        let head = self.arena.get(start..start + ID)?;
        let id = u32::from_le_bytes(head.try_into().ok()?);
        let bytes = self.arena.get(start + ID..start + ID + s.len())?;
        if bytes != s {
            return None;
        }
        if s.len() >= usize::from(u16::MAX) {
            // The slot's length is saturated: the record's own end decides.
            let (_, end) = self.record(id)?;
            if end != start + ID + s.len() {
                return None;
            }
        }
        Some(id)
    }

    /// The id of `s` (with hash `hash`), if interned. An empty table (no slots, or all empty)
    /// finds nothing.
    fn find(&self, s: &[u8], hash: u64) -> Option<u32> {
        let n = self.slots.len();
        let want = key_half(s.len(), hash);
        let mut i = self.home(hash);
        for _ in 0..n {
            let v = *self.slots.get(i)?;
            if v == EMPTY {
                return None;
            }
            if v >> 32 == want
                && let Some(id) = self.matches(v as u32, s)
            {
                return Some(id);
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        None
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.find(s.as_bytes(), self.hasher.hash_one(s))
    }

    /// [`FlatInterner::get`] of every key, into `out` (cleared first). See
    /// [`FlatInterner::get_each`].
    pub fn get_many<S: AsRef<str>>(&self, keys: &[S], out: &mut Vec<Option<u32>>) {
        out.clear();
        out.reserve(keys.len());
        self.get_each(keys, |_, id| out.push(id));
    }

    /// Calls `emit(i, get(keys[i]))` for every key, in order. Keys are probed in groups: all of
    /// a group's home slots are read first (independent reads, so the CPU overlaps their cache
    /// misses), then each key is looked up. (Also reading the records first, before the
    /// lookups, measured slower: `cargo bench --bench interner`.)
    pub fn get_each<S: AsRef<str>>(&self, keys: &[S], mut emit: impl FnMut(usize, Option<u32>)) {
        let mut hashes = [0u64; GROUP];
        for (g, group) in keys.chunks(GROUP).enumerate() {
            // 1. Hash every key and read its home slot.
            let mut touched = 0u64;
            for (h, k) in hashes.iter_mut().zip(group) {
                *h = self.hasher.hash_one(k.as_ref());
                touched ^= self.slots.get(self.home(*h)).copied().unwrap_or(0);
            }
            std::hint::black_box(touched);
            // 2. The lookups, their slots now mostly in cache.
            for (j, (h, k)) in hashes.iter().zip(group).enumerate() {
                emit(g * GROUP + j, self.find(k.as_ref().as_bytes(), *h));
            }
        }
    }

    /// Interns `s` (its id if already there). `None` only when the arena is full (4 GiB).
    pub fn intern(&mut self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        if let Some(id) = self.find(s.as_bytes(), hash) {
            return Some(id);
        }
        let start = u32::try_from(self.arena.len()).ok()?;
        let end = u32::try_from(self.arena.len() + ID + s.len()).ok()?;
        let id = u32::try_from(self.ends.len()).ok()?;
        if table_len(self.ends.len() + 1) > self.slots.len() {
            self.rehash(table_len((self.ends.len() + 1).max(8) * 2));
        }
        self.arena.extend_from_slice(&id.to_le_bytes());
        self.arena.extend_from_slice(s.as_bytes());
        self.ends.push(end);
        self.place(slot_value(start, s.len(), hash), hash);
        Some(id)
    }

    /// Puts a slot value in the first empty slot on its probe path.
    fn place(&mut self, value: u64, hash: u64) {
        let n = self.slots.len();
        let mut i = self.home(hash);
        for _ in 0..n {
            match self.slots.get_mut(i) {
                Some(v) if *v == EMPTY => {
                    *v = value;
                    return;
                }
                _ => {}
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// Rebuilds the table with `len` slots (at least enough for every string).
    fn rehash(&mut self, len: usize) {
        self.slots = vec![EMPTY; len.max(table_len(self.ends.len()))];
        for id in 0..self.ends.len() {
            let Some((start, end)) = self.record(u32::try_from(id).unwrap_or(u32::MAX)) else {
                continue;
            };
            let bytes = self.arena.get(start + ID..end).unwrap_or_default();
            let hash = self
                .hasher
                .hash_one(std::str::from_utf8(bytes).unwrap_or_default());
            let start = u32::try_from(start).unwrap_or(u32::MAX);
            self.place(slot_value(start, bytes.len(), hash), hash);
        }
    }

    /// Heap bytes used.
    pub fn heap_bytes(&self) -> u64 {
        (self.arena.capacity() + self.ends.capacity() * 4 + self.slots.capacity() * 8) as u64
    }

    /// Frees spare capacity: the arena and ends to their length, the table to 3/4 full.
    pub fn shrink(&mut self) {
        self.arena.shrink_to_fit();
        self.ends.shrink_to_fit();
        if self.slots.len() > table_len(self.ends.len()) {
            self.rehash(table_len(self.ends.len()));
        }
    }

    /// Checks the invariants of the module doc.
    pub fn validate(&self) -> Result<(), String> {
        let mut prev = 0usize;
        for (i, &end) in self.ends.iter().enumerate() {
            let end = end as usize;
            if end < prev + ID || end > self.arena.len() {
                return Err(format!("interner: record {i} ends at {end}, after {prev}"));
            }
            let head = self.arena.get(prev..prev + ID).unwrap_or_default();
            if head.try_into().ok().map(u32::from_le_bytes) != u32::try_from(i).ok() {
                return Err(format!("interner: record {i} holds another id"));
            }
            prev = end;
        }
        if !self.ends.is_empty() && !self.slots.contains(&EMPTY) {
            return Err("interner: no empty slot".into());
        }
        let used = self.slots.iter().filter(|v| **v != EMPTY).count();
        if used != self.ends.len() {
            return Err(format!(
                "interner: {used} slots for {} strings",
                self.ends.len()
            ));
        }
        for id in 0..self.ends.len() {
            let id = u32::try_from(id).map_err(|e| e.to_string())?;
            let s = self
                .resolve(id)
                .ok_or_else(|| format!("interner: string {id} is not UTF-8"))?;
            if self.get(s) != Some(id) {
                return Err(format!("interner: '{s}' does not probe to its id {id}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_probes_and_resolves_across_growth_and_shrink() {
        let mut t = FlatInterner::default();
        let words: Vec<String> = (0..5000).map(|i| format!("document:d{i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.intern(w), Some(i as u32));
        }
        // Re-interning returns the first id; nothing is added.
        assert_eq!(t.intern("document:d42"), Some(42));
        assert_eq!(t.len(), 5000);
        t.validate().unwrap();
        t.shrink();
        t.validate().unwrap();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(t.get(w), Some(i as u32));
            assert_eq!(t.resolve(i as u32), Some(w.as_str()));
        }
        // Prefixes, extensions and strangers are not found.
        for miss in [
            "document:d",
            "document:d49999",
            "document:d1 ",
            "",
            "user:u1",
        ] {
            assert_eq!(t.get(miss), None, "{miss}");
        }
        assert_eq!(t.resolve(5000), None);
        let mut keys: Vec<&str> = words.iter().rev().map(String::as_str).collect();
        keys.push("nope");
        keys.insert(7, "document:d3");
        let mut out = Vec::new();
        t.get_many(&keys, &mut out);
        let one_by_one: Vec<Option<u32>> = keys.iter().map(|k| t.get(k)).collect();
        assert_eq!(out, one_by_one);
        assert_eq!(out.last(), Some(&None));
        assert_eq!(out.get(7), Some(&Some(3)));
    }

    #[test]
    fn empty_strings_long_strings_and_clones() {
        let mut t = FlatInterner::with_capacity(4, 16);
        assert_eq!(t.get(""), None);
        let mut out = Vec::new();
        t.get_many(&["a", ""], &mut out);
        assert_eq!(out, vec![None, None]);
        assert_eq!(t.intern(""), Some(0));
        let long = "x".repeat(70_000);
        let longer = "x".repeat(70_001);
        assert_eq!(t.intern(&long), Some(1));
        assert_eq!(t.get(&longer), None);
        assert_eq!(t.intern(&longer), Some(2));
        assert_eq!(t.get(&long), Some(1));
        assert_eq!(t.get(""), Some(0));
        let mut c = t.clone();
        assert_eq!(c.intern("new"), Some(3));
        assert_eq!(t.get("new"), None);
        c.validate().unwrap();
        t.validate().unwrap();
    }
}
