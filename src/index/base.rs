//! The immutable, compact base of the index: flat arrays of ids built in bulk (at load and on
//! compaction), never changed afterwards. The small persistent delta of [`super::Snapshot`]
//! overrides it entry by entry.
//!
//! Layout (CSR: the entries of item `i` are `first[i]..first[i + 1]`):
//! * objects: a flat, append-only interner ([`FlatInterner`]): one arena of `type:id` strings,
//!   their end offsets, and a hash table of ids (a probe is one flat hash lookup);
//! * forward: per object, its `(relation, users)` entries sorted by relation; the unconditional
//!   concrete users of an entry are a sorted slice of ids; wildcards, usersets and conditional
//!   tuples (rare) sit in a side table flagged on the entry;
//! * reverse, concrete users: per user, its `(object type, relation)` entries sorted, each a
//!   sorted slice of object ids, or (for large entries) a roaring bitmap;
//! * reverse, usersets and wildcards: a hash map from the key to an entry of the same arrays;
//! * reverse, conditional edges: a hash map (rare).
//!
//! Invariants (checked by [`Base::validate`], and through the snapshot's `validate`): every
//! offset array is non-decreasing and ends at its array's length; every user slice is strictly
//! increasing; every entry is non-empty; entries of an object (a user) are sorted by relation
//! (by key) without repeats.

use super::{
    Column, ConditionalEdge, ConditionalObjects, EdgesRef, IdHash, Members, Name, Obj, RevKey,
    UserRef,
};
use crate::tuple::TupleCondition;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Strings ↔ dense `u32` ids, append-only and not persistent: ids never change, and a probe is
/// one lookup in a flat hash table whose slots hold ids into one string arena.
#[derive(Clone, Default)]
pub struct FlatInterner {
    arena: String,
    /// `ends[i]`: where string `i` ends in `arena` (it starts where `i - 1` ends).
    ends: Vec<u32>,
    table: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl FlatInterner {
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        Self {
            arena: String::with_capacity(bytes),
            ends: Vec::with_capacity(strings),
            table: hashbrown::HashTable::with_capacity(strings),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn resolve(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)? as usize;
        let start = match i.checked_sub(1) {
            Some(p) => *self.ends.get(p)? as usize,
            None => 0,
        };
        self.arena.get(start..end)
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |&id| self.resolve(id) == Some(s))
            .copied()
    }

    /// Interns `s` (its id if already there).
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s);
        if let Some(id) = self.table.find(hash, |&id| self.resolve(id) == Some(s)) {
            return *id;
        }
        let id = u32::try_from(self.ends.len()).unwrap_or(u32::MAX);
        self.arena.push_str(s);
        self.ends
            .push(u32::try_from(self.arena.len()).unwrap_or(u32::MAX));
        let (arena, ends, hasher) = (&self.arena, &self.ends, &self.hasher);
        let rehash = |&i: &u32| {
            let i = i as usize;
            let end = ends.get(i).copied().unwrap_or(0) as usize;
            let start = i
                .checked_sub(1)
                .and_then(|p| ends.get(p))
                .copied()
                .unwrap_or(0) as usize;
            hasher.hash_one(arena.get(start..end).unwrap_or(""))
        };
        self.table.insert_unique(hash, id, rehash);
        id
    }

    /// Heap bytes used.
    pub fn heap_bytes(&self) -> u64 {
        (self.arena.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5) as u64
    }

    fn shrink(&mut self) {
        self.arena.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// One stored tuple, by ids, as the builder takes it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub object: Obj,
    pub relation: Name,
    pub user: UserRef,
    pub condition: Option<Arc<TupleCondition>>,
}

/// The rare parts of a forward entry.
#[derive(Debug, Clone, Default)]
struct Rare {
    wildcards: Vec<Name>,
    usersets: Vec<(Obj, Name)>,
    conditional: Vec<ConditionalEdge>,
}

/// Flags in the high bit of a relation name in the entry arrays (names are small).
const FLAG: u32 = 1 << 31;
/// Reverse entries with at least this many objects are roaring bitmaps.
const BIG: usize = 64;

/// The compact base (see the module doc).
#[derive(Default)]
pub struct Base {
    pub objects: FlatInterner,
    fwd_first: Vec<u32>,
    /// Per entry: its relation, with [`FLAG`] when it has rare parts.
    fwd_rel: Vec<Name>,
    fwd_start: Vec<u32>,
    fwd_users: Vec<Obj>,
    fwd_rare: HashMap<u32, Rare, IdHash>,
    rev_first: Vec<u32>,
    /// Per entry: (object type, relation with [`FLAG`] when the entry is a bitmap).
    rev_key: Vec<(Name, Name)>,
    rev_start: Vec<u32>,
    /// Sorted objects of each entry; a bitmap entry holds one value, its index in `rev_big`.
    rev_objs: Vec<Obj>,
    rev_big: Vec<RoaringBitmap>,
    rev_sets: HashMap<RevKey, u32, IdHash>,
    rev_cond: HashMap<RevKey, ConditionalObjects, IdHash>,
    tuples: u64,
}

fn at(v: &[u32], i: usize) -> usize {
    v.get(i).copied().unwrap_or(0) as usize
}

fn idx(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Base {
    pub fn tuple_count(&self) -> u64 {
        self.tuples
    }

    fn entry(&self, object: Obj, relation: Name) -> Option<usize> {
        let o = object as usize;
        let (lo, hi) = (at(&self.fwd_first, o), at(&self.fwd_first, o + 1));
        let rels = self.fwd_rel.get(lo..hi)?;
        rels.iter()
            .position(|r| r & !FLAG == relation)
            .map(|i| lo + i)
    }

    fn entry_view(&self, e: usize) -> EdgesRef<'_> {
        let direct = self
            .fwd_users
            .get(at(&self.fwd_start, e)..at(&self.fwd_start, e + 1))
            .unwrap_or(&[]);
        let flagged = self.fwd_rel.get(e).is_some_and(|r| r & FLAG != 0);
        match flagged.then(|| self.fwd_rare.get(&idx(e))).flatten() {
            Some(rare) => EdgesRef {
                direct,
                wildcards: &rare.wildcards,
                usersets: &rare.usersets,
                conditional: &rare.conditional,
            },
            None => EdgesRef {
                direct,
                ..EdgesRef::EMPTY
            },
        }
    }

    pub fn edges(&self, object: Obj, relation: Name) -> Option<EdgesRef<'_>> {
        self.entry(object, relation).map(|e| self.entry_view(e))
    }

    fn rev_view(&self, e: usize) -> Members<'_> {
        let objs = self
            .rev_objs
            .get(at(&self.rev_start, e)..at(&self.rev_start, e + 1))
            .unwrap_or(&[]);
        let big = self.rev_key.get(e).is_some_and(|(_, r)| r & FLAG != 0);
        if big {
            if let Some(b) = objs.first().and_then(|i| self.rev_big.get(*i as usize)) {
                return Members::Bitmap(b);
            }
        }
        Members::Slice(objs)
    }

    pub fn reverse(&self, object_type: Name, relation: Name, user: UserRef) -> Option<Members<'_>> {
        let e = match user {
            UserRef::Object(u) => {
                let u = u as usize;
                let (lo, hi) = (at(&self.rev_first, u), at(&self.rev_first, u + 1));
                let keys = self.rev_key.get(lo..hi)?;
                lo + keys
                    .iter()
                    .position(|(t, r)| *t == object_type && r & !FLAG == relation)?
            }
            _ => *self.rev_sets.get(&(object_type, relation, user))? as usize,
        };
        Some(self.rev_view(e))
    }

    pub fn reverse_conditional(
        &self,
        object_type: Name,
        relation: Name,
        user: UserRef,
    ) -> Option<&ConditionalObjects> {
        self.rev_cond.get(&(object_type, relation, user))
    }

    /// Every forward entry: (object, relation, edges).
    pub fn for_each_edges(&self, mut f: impl FnMut(Obj, Name, EdgesRef<'_>)) {
        for o in 0..self.fwd_first.len().saturating_sub(1) {
            for e in at(&self.fwd_first, o)..at(&self.fwd_first, o + 1) {
                let r = self.fwd_rel.get(e).copied().unwrap_or(0) & !FLAG;
                f(idx(o), r, self.entry_view(e));
            }
        }
    }

    /// Every plain reverse entry.
    pub fn for_each_reverse(&self, mut f: impl FnMut(RevKey, Members<'_>)) {
        for u in 0..self.rev_first.len().saturating_sub(1) {
            for e in at(&self.rev_first, u)..at(&self.rev_first, u + 1) {
                let (t, r) = self.rev_key.get(e).copied().unwrap_or((0, 0));
                f((t, r & !FLAG, UserRef::Object(idx(u))), self.rev_view(e));
            }
        }
        for (k, e) in &self.rev_sets {
            f(*k, self.rev_view(*e as usize));
        }
    }

    /// Every conditional reverse entry.
    pub fn for_each_reverse_conditional(&self, mut f: impl FnMut(RevKey, &ConditionalObjects)) {
        for (k, v) in &self.rev_cond {
            f(*k, v);
        }
    }

    /// Builds the base over `objects` (whose types are `types`) from `records`: one per
    /// (object, relation, user), in any order.
    pub(super) fn build(
        objects: FlatInterner,
        types: &Column<Name>,
        mut records: Vec<Rec>,
    ) -> Base {
        let n = objects.len();
        let mut b = Base {
            objects,
            tuples: records.len() as u64,
            ..Base::default()
        };
        b.objects.shrink();
        // Forward.
        records.sort_unstable_by_key(|r| (r.object, r.relation, r.user));
        b.fwd_first = Vec::with_capacity(n + 1);
        b.fwd_start.reserve(records.len() + 1);
        b.fwd_users.reserve(records.len());
        let mut i = 0;
        for o in 0..n {
            b.fwd_first.push(idx(b.fwd_rel.len()));
            while let Some(first) = records.get(i).filter(|r| r.object as usize == o) {
                let relation = first.relation;
                let e = b.fwd_rel.len();
                b.fwd_start.push(idx(b.fwd_users.len()));
                let mut rare = Rare::default();
                while let Some(r) = records
                    .get(i)
                    .filter(|r| r.object as usize == o && r.relation == relation)
                {
                    match (&r.condition, r.user) {
                        (Some(c), user) => rare.conditional.push(ConditionalEdge {
                            user,
                            condition: c.clone(),
                        }),
                        (None, UserRef::Object(u)) => b.fwd_users.push(u),
                        (None, UserRef::Wildcard(t)) => rare.wildcards.push(t),
                        (None, UserRef::Userset(uo, ur)) => rare.usersets.push((uo, ur)),
                    }
                    i += 1;
                }
                let has_rare = !(rare.wildcards.is_empty()
                    && rare.usersets.is_empty()
                    && rare.conditional.is_empty());
                if has_rare {
                    b.fwd_rare.insert(idx(e), rare);
                    b.fwd_rel.push(relation | FLAG);
                } else {
                    b.fwd_rel.push(relation);
                }
            }
        }
        b.fwd_first.push(idx(b.fwd_rel.len()));
        b.fwd_start.push(idx(b.fwd_users.len()));
        // Reverse: concrete plain users by user; sets plain; conditional.
        let mut plain: Vec<(Obj, Name, Name, Obj)> = Vec::new();
        let mut sets: Vec<(RevKey, Obj)> = Vec::new();
        for r in &records {
            let t = types.get(r.object as usize).unwrap_or(0);
            match (&r.condition, r.user) {
                (Some(c), user) => b
                    .rev_cond
                    .entry((t, r.relation, user))
                    .or_default()
                    .push((r.object, c.clone())),
                (None, UserRef::Object(u)) => plain.push((u, t, r.relation, r.object)),
                (None, user) => sets.push(((t, r.relation, user), r.object)),
            }
        }
        drop(records);
        for v in b.rev_cond.values_mut() {
            v.sort_by_key(|(o, _)| *o);
        }
        plain.sort_unstable();
        sets.sort_unstable();
        b.rev_first = Vec::with_capacity(n + 1);
        let mut i = 0;
        let mut run: Vec<Obj> = Vec::new();
        for u in 0..n {
            b.rev_first.push(idx(b.rev_key.len()));
            while let Some(&(_, t, r, _)) = plain.get(i).filter(|p| p.0 as usize == u) {
                run.clear();
                while let Some(p) = plain
                    .get(i)
                    .filter(|p| p.0 as usize == u && p.1 == t && p.2 == r)
                {
                    run.push(p.3);
                    i += 1;
                }
                b.push_rev(t, r, &run);
            }
        }
        b.rev_first.push(idx(b.rev_key.len()));
        let mut i = 0;
        while let Some(&(key, _)) = sets.get(i) {
            run.clear();
            while let Some(p) = sets.get(i).filter(|p| p.0 == key) {
                run.push(p.1);
                i += 1;
            }
            let e = b.rev_key.len();
            b.push_rev(key.0, key.1, &run);
            b.rev_sets.insert(key, idx(e));
        }
        b.rev_start.push(idx(b.rev_objs.len()));
        b.fwd_users.shrink_to_fit();
        b.rev_objs.shrink_to_fit();
        b.rev_key.shrink_to_fit();
        b.rev_start.shrink_to_fit();
        b.fwd_rel.shrink_to_fit();
        b.fwd_start.shrink_to_fit();
        b
    }

    fn push_rev(&mut self, t: Name, r: Name, objects: &[Obj]) {
        self.rev_start.push(idx(self.rev_objs.len()));
        if objects.len() >= BIG {
            self.rev_key.push((t, r | FLAG));
            self.rev_objs.push(idx(self.rev_big.len()));
            self.rev_big
                .push(RoaringBitmap::from_sorted_iter(objects.iter().copied()).unwrap_or_default());
        } else {
            self.rev_key.push((t, r));
            self.rev_objs.extend_from_slice(objects);
        }
    }

    /// Heap bytes of the relationship arrays (not the interned strings).
    pub fn edge_bytes(&self) -> u64 {
        let v = |n: usize, size: usize| (n * size) as u64;
        let mut bytes = v(self.fwd_first.capacity(), 4)
            + v(self.fwd_rel.capacity(), 4)
            + v(self.fwd_start.capacity(), 4)
            + v(self.fwd_users.capacity(), 4)
            + v(self.rev_first.capacity(), 4)
            + v(self.rev_key.capacity(), 8)
            + v(self.rev_start.capacity(), 4)
            + v(self.rev_objs.capacity(), 4);
        for r in self.fwd_rare.values() {
            bytes += 24 + 72 + v(r.wildcards.len(), 4) + v(r.usersets.len(), 8);
            bytes += v(r.conditional.len(), std::mem::size_of::<ConditionalEdge>());
        }
        for b in &self.rev_big {
            bytes += 24 + b.serialized_size() as u64;
        }
        bytes += v(self.rev_sets.capacity(), 24);
        for v2 in self.rev_cond.values() {
            bytes += 48 + v(v2.len(), 16);
        }
        bytes
    }

    /// The structural invariants of the module doc.
    pub fn validate(&self) -> Result<(), String> {
        // `rev_first` covers the concrete users' entries only; the sets' entries follow them.
        fn csr(name: &str, first: &[u32], len: usize, exact: bool) -> Result<(), String> {
            if first.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("{name}: offsets decrease"));
            }
            let end = first.last().copied().unwrap_or(0) as usize;
            if !first.is_empty() && (end > len || (exact && end != len)) {
                return Err(format!("{name}: offsets do not end at the array's length"));
            }
            Ok(())
        }
        csr("fwd_first", &self.fwd_first, self.fwd_rel.len(), true)?;
        csr("fwd_start", &self.fwd_start, self.fwd_users.len(), true)?;
        csr("rev_first", &self.rev_first, self.rev_key.len(), false)?;
        csr("rev_start", &self.rev_start, self.rev_objs.len(), true)?;
        if self.rev_sets.len() + at(&self.rev_first, self.rev_first.len().saturating_sub(1))
            != self.rev_key.len()
        {
            return Err("rev_sets and the users' entries do not partition rev_key".into());
        }
        for o in 0..self.fwd_first.len().saturating_sub(1) {
            let rels = self
                .fwd_rel
                .get(at(&self.fwd_first, o)..at(&self.fwd_first, o + 1))
                .unwrap_or(&[]);
            if rels.windows(2).any(|w| w[0] & !FLAG >= w[1] & !FLAG) {
                return Err(format!("object {o}: relations not strictly sorted"));
            }
        }
        let mut fail = None;
        self.for_each_edges(|o, r, e| {
            if e.is_empty() {
                fail.get_or_insert_with(|| format!("empty base entry ({o}, {r})"));
            }
            if e.direct.windows(2).any(|w| w[0] >= w[1]) {
                fail.get_or_insert_with(|| format!("base entry ({o}, {r}) not sorted"));
            }
        });
        self.for_each_reverse(|k, m| {
            if m.is_empty() {
                fail.get_or_insert_with(|| format!("empty base reverse entry {k:?}"));
            }
            if let Members::Slice(s) = m {
                if s.windows(2).any(|w| w[0] >= w[1]) {
                    fail.get_or_insert_with(|| format!("base reverse entry {k:?} not sorted"));
                }
            }
        });
        match fail {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flat_interner_keeps_ids_and_finds_every_string() {
        let mut i = FlatInterner::default();
        let ids: Vec<u32> = (0..10_000).map(|n| i.intern(&format!("doc:{n}"))).collect();
        assert_eq!(ids, (0..10_000).collect::<Vec<u32>>());
        assert_eq!(i.intern("doc:5"), 5);
        for n in 0..10_000u32 {
            let s = format!("doc:{n}");
            assert_eq!(i.get(&s), Some(n));
            assert_eq!(i.resolve(n), Some(s.as_str()));
        }
        assert_eq!(i.get("doc:10000"), None);
        assert_eq!(i.resolve(10_000), None);
        assert_eq!(i.len(), 10_000);
    }
}
