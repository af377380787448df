//! The immutable, compact base of the index: flat arrays of ids built in bulk (at load and on
//! compaction), never changed afterwards. The small persistent delta of [`super::Snapshot`]
//! overrides it entry by entry.
//!
//! Layout (per object, one offset pair into one stream of `u32`s, see [`Base`]):
//! * objects: a flat, append-only interner ([`FlatInterner`]): one arena of `type:id` strings,
//!   and an open-addressing table pointing into it (a probe is two cache misses, see
//!   [`super::flat`]); and each object's type, a flat array;
//! * forward: per object, its `(relation, users)` entries sorted by relation; the unconditional
//!   concrete users, usersets and wildcards of an entry are sorted runs in the stream itself (a
//!   check reads a group's usersets from the line it found the entry on); conditional tuples
//!   (rare) sit in a side table, indexed from the entry;
//! * reverse, concrete users: per user, its `(object type, relation)` entries sorted, each a
//!   sorted run of object ids, or (for large entries) a roaring bitmap;
//! * reverse, usersets and wildcards: a hash map from the key to an entry of the same arrays;
//! * reverse, conditional edges: a hash map (rare).
//!
//! Invariants (checked by [`Base::validate`], and through the snapshot's `validate`): one offset
//! per object (plus one), non-decreasing; each object's run of a stream parses into whole
//! entries ending exactly at the next offset; every run of ids is strictly increasing; every
//! entry is non-empty; entries of an object (a user) are sorted by relation (by key) without
//! repeats.

use super::flat::FlatInterner;
use super::{
    ConditionalEdge, ConditionalObjects, EdgesRef, IdHash, Members, Name, Obj, RevKey, UserRef,
};
use crate::tuple::TupleCondition;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::Arc;

/// One stored tuple, by ids, as the builder takes it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub object: Obj,
    pub relation: Name,
    pub user: UserRef,
    pub condition: Option<Arc<TupleCondition>>,
}

/// A flag in the high bit of a relation name in the streams (names are small): a forward entry
/// with conditional tuples, or a reverse entry that is a bitmap.
const FLAG: u32 = 1 << 31;
/// A forward entry with usersets.
const SETS: u32 = 1 << 30;
/// A forward entry with wildcards.
const WILD: u32 = 1 << 29;
/// The flags of a forward entry's head; the rest is the relation.
const FLAGS: u32 = FLAG | SETS | WILD;
/// Reverse entries with at least this many objects are roaring bitmaps.
const BIG: usize = 64;

/// Each base object's type. Objects have few types, so most bases keep one byte per object (an
/// index into the table of type names): a check reads an object's type at every hop, and this
/// column is a quarter of the size of the names themselves, so more of it stays in cache. A base
/// with more than 256 types keeps the names.
#[derive(Debug, Clone)]
enum TypeColumn {
    Small { table: Vec<Name>, of: Vec<u8> },
    Wide(Vec<Name>),
}

impl Default for TypeColumn {
    fn default() -> Self {
        TypeColumn::Wide(Vec::new())
    }
}

impl TypeColumn {
    fn new(mut types: Vec<Name>) -> Self {
        let mut table: Vec<Name> = Vec::new();
        let mut of = Vec::with_capacity(types.len());
        for t in &types {
            let i = match table.iter().position(|n| n == t) {
                Some(i) => i,
                None => {
                    table.push(*t);
                    table.len() - 1
                }
            };
            let Ok(i) = u8::try_from(i) else {
                break;
            };
            of.push(i);
        }
        if of.len() == types.len() {
            return TypeColumn::Small { table, of };
        }
        types.shrink_to_fit();
        TypeColumn::Wide(types)
    }

    fn get(&self, o: usize) -> Option<Name> {
        match self {
            TypeColumn::Small { table, of } => table.get(usize::from(*of.get(o)?)).copied(),
            TypeColumn::Wide(v) => v.get(o).copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            TypeColumn::Small { of, .. } => of.len(),
            TypeColumn::Wide(v) => v.len(),
        }
    }

    fn to_vec(&self) -> Vec<Name> {
        match self {
            TypeColumn::Small { table, of } => of
                .iter()
                .map(|i| table.get(usize::from(*i)).copied().unwrap_or(0))
                .collect(),
            TypeColumn::Wide(v) => v.clone(),
        }
    }

    fn heap_bytes(&self) -> u64 {
        match self {
            TypeColumn::Small { table, of } => (table.capacity() * 4 + of.capacity()) as u64,
            TypeColumn::Wide(v) => (v.capacity() * 4) as u64,
        }
    }
}

/// The compact base (see the module doc).
///
/// Forward stream, per object `o` in `fwd[fwd_off[o]..fwd_off[o + 1]]`, entries sorted by
/// relation: `relation | FLAG? | SETS? | WILD?, n, user × n`, then with SETS `m, (object,
/// relation) × m`, with WILD `w, type × w`, with FLAG the index of its conditional tuples in
/// `fwd_cond`. Reverse stream, per
/// concrete user `u` in `rev[rev_off[u]..rev_off[u + 1]]`, entries sorted by key:
/// `object type, relation | FLAG?, n, object × n` (with FLAG: `n` is 1 and the one value is an
/// index in `rev_big`). The entries of usersets and wildcards follow the users' in `rev`, found
/// through `rev_sets`. One lookup reads one offset pair and one run of the stream (a couple of
/// cache lines), not one line per array.
#[derive(Default)]
pub struct Base {
    pub objects: FlatInterner,
    /// The type of each object.
    types: TypeColumn,
    fwd_off: Vec<u32>,
    fwd: Vec<u32>,
    fwd_cond: Vec<Vec<ConditionalEdge>>,
    rev_off: Vec<u32>,
    rev: Vec<u32>,
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

/// One forward entry read from the stream: its relation (no flags), users, usersets,
/// wildcards, conditional tuples' index, and where the next entry starts.
struct FwdEntry<'a> {
    relation: Name,
    users: &'a [Obj],
    usersets: &'a [[u32; 2]],
    wildcards: &'a [Name],
    conditional: Option<u32>,
    next: usize,
}

/// One reverse entry read from the stream.
struct RevEntry<'a> {
    object_type: Name,
    relation: Name,
    objects: &'a [Obj],
    big: bool,
    next: usize,
}

impl Base {
    pub fn tuple_count(&self) -> u64 {
        self.tuples
    }

    /// The type of a base object.
    pub fn object_type(&self, o: Obj) -> Option<Name> {
        self.types.get(o as usize)
    }

    /// The type of every base object, by id.
    pub fn types(&self) -> Vec<Name> {
        self.types.to_vec()
    }

    fn fwd_entry(&self, p: usize) -> Option<FwdEntry<'_>> {
        let head = *self.fwd.get(p)?;
        let n = *self.fwd.get(p + 1)? as usize;
        let users = self.fwd.get(p + 2..p + 2 + n)?;
        let mut q = p + 2 + n;
        let mut usersets: &[[u32; 2]] = &[];
        if head & SETS != 0 {
            let m = *self.fwd.get(q)? as usize;
            let (pairs, _) = self.fwd.get(q + 1..q + 1 + 2 * m)?.as_chunks::<2>();
            usersets = pairs;
            q += 1 + 2 * m;
        }
        let mut wildcards: &[Name] = &[];
        if head & WILD != 0 {
            let w = *self.fwd.get(q)? as usize;
            wildcards = self.fwd.get(q + 1..q + 1 + w)?;
            q += 1 + w;
        }
        let mut conditional = None;
        if head & FLAG != 0 {
            conditional = Some(*self.fwd.get(q)?);
            q += 1;
        }
        Some(FwdEntry {
            relation: head & !FLAGS,
            users,
            usersets,
            wildcards,
            conditional,
            next: q,
        })
    }

    fn rev_entry(&self, p: usize) -> Option<RevEntry<'_>> {
        let object_type = *self.rev.get(p)?;
        let head = *self.rev.get(p + 1)?;
        let n = *self.rev.get(p + 2)? as usize;
        Some(RevEntry {
            object_type,
            relation: head & !FLAG,
            objects: self.rev.get(p + 3..p + 3 + n)?,
            big: head & FLAG != 0,
            next: p + 3 + n,
        })
    }

    fn view<'a>(&'a self, e: &FwdEntry<'a>) -> EdgesRef<'a> {
        let conditional = e
            .conditional
            .and_then(|i| self.fwd_cond.get(i as usize))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        EdgesRef {
            direct: e.users,
            wildcards: e.wildcards,
            usersets: e.usersets,
            conditional,
        }
    }

    fn members<'a>(&'a self, e: &RevEntry<'a>) -> Members<'a> {
        if e.big
            && let Some(b) = e
                .objects
                .first()
                .and_then(|i| self.rev_big.get(*i as usize))
        {
            return Members::Bitmap(b);
        }
        Members::Slice(e.objects)
    }

    pub fn edges(&self, object: Obj, relation: Name) -> Option<EdgesRef<'_>> {
        let o = object as usize;
        let (mut p, end) = (at(&self.fwd_off, o), at(&self.fwd_off, o + 1));
        while p < end {
            let e = self.fwd_entry(p)?;
            if e.relation == relation {
                return Some(self.view(&e));
            }
            p = e.next;
        }
        None
    }

    /// Reads where `object`'s forward entries and `user`'s reverse entries start, and the
    /// first word of each: a check that is about to read both gets their cache misses in flight
    /// together, two rounds of two, instead of four misses one after the other.
    pub fn preload(&self, object: Obj, user: Obj) {
        let f = at(&self.fwd_off, object as usize);
        let r = at(&self.rev_off, user as usize);
        let first = self.fwd.get(f).copied().unwrap_or(0) ^ self.rev.get(r).copied().unwrap_or(0);
        std::hint::black_box(first);
    }

    pub fn reverse(&self, object_type: Name, relation: Name, user: UserRef) -> Option<Members<'_>> {
        match user {
            UserRef::Object(u) => {
                let u = u as usize;
                let (mut p, end) = (at(&self.rev_off, u), at(&self.rev_off, u + 1));
                while p < end {
                    let e = self.rev_entry(p)?;
                    if e.object_type == object_type && e.relation == relation {
                        return Some(self.members(&e));
                    }
                    p = e.next;
                }
                None
            }
            _ => {
                let p = *self.rev_sets.get(&(object_type, relation, user))? as usize;
                let e = self.rev_entry(p)?;
                Some(self.members(&e))
            }
        }
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
        for o in 0..self.fwd_off.len().saturating_sub(1) {
            let (mut p, end) = (at(&self.fwd_off, o), at(&self.fwd_off, o + 1));
            while let Some(e) = self.fwd_entry(p).filter(|_| p < end) {
                f(idx(o), e.relation, self.view(&e));
                p = e.next;
            }
        }
    }

    /// Every plain reverse entry.
    pub fn for_each_reverse(&self, mut f: impl FnMut(RevKey, Members<'_>)) {
        for u in 0..self.rev_off.len().saturating_sub(1) {
            let (mut p, end) = (at(&self.rev_off, u), at(&self.rev_off, u + 1));
            while let Some(e) = self.rev_entry(p).filter(|_| p < end) {
                f(
                    (e.object_type, e.relation, UserRef::Object(idx(u))),
                    self.members(&e),
                );
                p = e.next;
            }
        }
        for (k, p) in &self.rev_sets {
            if let Some(e) = self.rev_entry(*p as usize) {
                f(*k, self.members(&e));
            }
        }
    }

    /// Every conditional reverse entry.
    pub fn for_each_reverse_conditional(&self, mut f: impl FnMut(RevKey, &ConditionalObjects)) {
        for (k, v) in &self.rev_cond {
            f(*k, v);
        }
    }

    /// Builds the base over `objects` (whose types are `types`, by id) from `records`: one per
    /// (object, relation, user), in any order.
    pub fn build(objects: FlatInterner, types: Vec<Name>, mut records: Vec<Rec>) -> Base {
        let n = objects.len();
        let mut b = Base {
            objects,
            types: TypeColumn::new(types),
            tuples: records.len() as u64,
            ..Base::default()
        };
        b.objects.shrink();
        // Forward.
        records.sort_unstable_by_key(|r| (r.object, r.relation, r.user));
        b.fwd_off = Vec::with_capacity(n + 1);
        b.fwd.reserve(records.len() * 3);
        let mut i = 0;
        for o in 0..n {
            b.fwd_off.push(idx(b.fwd.len()));
            while let Some(first) = records.get(i).filter(|r| r.object as usize == o) {
                let relation = first.relation;
                let head = b.fwd.len();
                b.fwd.push(relation);
                b.fwd.push(0);
                // Records sort users before usersets before wildcards: each run comes sorted.
                let (mut sets, mut wild, mut conditional) = (Vec::new(), Vec::new(), Vec::new());
                while let Some(r) = records
                    .get(i)
                    .filter(|r| r.object as usize == o && r.relation == relation)
                {
                    match (&r.condition, r.user) {
                        (Some(c), user) => conditional.push(ConditionalEdge {
                            user,
                            condition: c.clone(),
                        }),
                        (None, UserRef::Object(u)) => b.fwd.push(u),
                        (None, UserRef::Wildcard(t)) => wild.push(t),
                        (None, UserRef::Userset(uo, ur)) => sets.push([uo, ur]),
                    }
                    i += 1;
                }
                let users = b.fwd.len() - head - 2;
                let mut flags = 0;
                if !sets.is_empty() {
                    flags |= SETS;
                    b.fwd.push(idx(sets.len()));
                    b.fwd.extend(sets.iter().flatten());
                }
                if !wild.is_empty() {
                    flags |= WILD;
                    b.fwd.push(idx(wild.len()));
                    b.fwd.extend_from_slice(&wild);
                }
                if !conditional.is_empty() {
                    flags |= FLAG;
                    b.fwd.push(idx(b.fwd_cond.len()));
                    b.fwd_cond.push(conditional);
                }
                if let Some(slot) = b.fwd.get_mut(head) {
                    *slot |= flags;
                }
                if let Some(slot) = b.fwd.get_mut(head + 1) {
                    *slot = idx(users);
                }
            }
        }
        b.fwd_off.push(idx(b.fwd.len()));
        // Reverse: concrete plain users by user; sets plain; conditional.
        let mut plain: Vec<(Obj, Name, Name, Obj)> = Vec::new();
        let mut sets: Vec<(RevKey, Obj)> = Vec::new();
        for r in &records {
            let t = b.types.get(r.object as usize).unwrap_or(0);
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
        b.rev_off = Vec::with_capacity(n + 1);
        b.rev.reserve(plain.len() + sets.len() + plain.len() / 2);
        let mut i = 0;
        let mut run: Vec<Obj> = Vec::new();
        for u in 0..n {
            b.rev_off.push(idx(b.rev.len()));
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
        b.rev_off.push(idx(b.rev.len()));
        drop(plain);
        let mut i = 0;
        while let Some(&(key, _)) = sets.get(i) {
            run.clear();
            while let Some(p) = sets.get(i).filter(|p| p.0 == key) {
                run.push(p.1);
                i += 1;
            }
            let p = b.rev.len();
            b.push_rev(key.0, key.1, &run);
            b.rev_sets.insert(key, idx(p));
        }
        b.fwd.shrink_to_fit();
        b.rev.shrink_to_fit();
        b
    }

    fn push_rev(&mut self, t: Name, r: Name, objects: &[Obj]) {
        self.rev.push(t);
        if objects.len() >= BIG {
            self.rev.push(r | FLAG);
            self.rev.push(1);
            self.rev.push(idx(self.rev_big.len()));
            self.rev_big
                .push(RoaringBitmap::from_sorted_iter(objects.iter().copied()).unwrap_or_default());
        } else {
            self.rev.push(r);
            self.rev.push(idx(objects.len()));
            self.rev.extend_from_slice(objects);
        }
    }

    /// Heap bytes of the relationship arrays and the types (not the interned strings).
    pub fn edge_bytes(&self) -> u64 {
        let v = |n: usize, size: usize| (n * size) as u64;
        let mut bytes = self.types.heap_bytes()
            + v(self.fwd_off.capacity(), 4)
            + v(self.fwd.capacity(), 4)
            + v(self.rev_off.capacity(), 4)
            + v(self.rev.capacity(), 4);
        for c in &self.fwd_cond {
            bytes += 24 + v(c.capacity(), std::mem::size_of::<ConditionalEdge>());
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
        self.objects.validate()?;
        let n = self.objects.len();
        if self.types.len() != n {
            return Err("base: types not parallel to objects".into());
        }
        for (name, off, len) in [
            ("fwd_off", &self.fwd_off, self.fwd.len()),
            ("rev_off", &self.rev_off, self.rev.len()),
        ] {
            if off.len() != n + 1 && !(n == 0 && off.is_empty()) {
                return Err(format!("{name}: not one offset per object"));
            }
            if off.windows(2).any(|w| w[0] > w[1]) {
                return Err(format!("{name}: offsets decrease"));
            }
            if off.last().copied().unwrap_or(0) as usize > len {
                return Err(format!("{name}: offsets past the stream"));
            }
        }
        if at(&self.fwd_off, n) != self.fwd.len() {
            return Err("fwd_off: does not end at the stream's end".into());
        }
        // Every object's entries parse exactly to its end, sorted, non-empty.
        for o in 0..n {
            let (mut p, end) = (at(&self.fwd_off, o), at(&self.fwd_off, o + 1));
            let mut last: Option<Name> = None;
            while p < end {
                let Some(e) = self.fwd_entry(p) else {
                    return Err(format!("object {o}: truncated entry"));
                };
                if e.relation & FLAGS != 0 {
                    return Err(format!("object {o}: relation {} too large", e.relation));
                }
                if last.is_some_and(|l| l >= e.relation) {
                    return Err(format!("object {o}: relations not strictly sorted"));
                }
                last = Some(e.relation);
                if e.users.windows(2).any(|w| w[0] >= w[1])
                    || e.usersets.windows(2).any(|w| w[0] >= w[1])
                    || e.wildcards.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(format!("base entry ({o}, {}) not sorted", e.relation));
                }
                if self.view(&e).is_empty() {
                    return Err(format!("empty base entry ({o}, {})", e.relation));
                }
                p = e.next;
            }
            if p != end {
                return Err(format!("object {o}: entries overrun"));
            }
            let (mut p, end) = (at(&self.rev_off, o), at(&self.rev_off, o + 1));
            let mut last: Option<(Name, Name)> = None;
            while p < end {
                let Some(e) = self.rev_entry(p) else {
                    return Err(format!("user {o}: truncated reverse entry"));
                };
                let key = (e.object_type, e.relation);
                if last.is_some_and(|l| l >= key) {
                    return Err(format!("user {o}: reverse keys not strictly sorted"));
                }
                last = Some(key);
                p = e.next;
            }
            if p != end {
                return Err(format!("user {o}: reverse entries overrun"));
            }
        }
        let mut fail = None;
        self.for_each_reverse(|k, m| {
            if m.is_empty() {
                fail.get_or_insert_with(|| format!("empty base reverse entry {k:?}"));
            }
            if let Members::Slice(s) = m
                && s.windows(2).any(|w| w[0] >= w[1])
            {
                fail.get_or_insert_with(|| format!("base reverse entry {k:?} not sorted"));
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

    /// Few types take a byte per object; more than 256 keep the names; both answer the same.
    #[test]
    fn type_columns_answer_every_object_small_or_wide() {
        for kinds in [1u32, 3, 256, 257, 1000] {
            let types: Vec<Name> = (0..5000u32).map(|i| 7 + (i * 31) % kinds).collect();
            let col = TypeColumn::new(types.clone());
            assert_eq!(
                matches!(col, TypeColumn::Small { .. }),
                kinds <= 256,
                "{kinds}"
            );
            assert_eq!(col.len(), types.len());
            assert_eq!(col.to_vec(), types);
            for (o, t) in types.iter().enumerate() {
                assert_eq!(col.get(o), Some(*t));
            }
            assert_eq!(col.get(types.len()), None);
        }
        assert_eq!(TypeColumn::new(Vec::new()).get(0), None);
    }
}
