//! The in-memory relationship index: interned ids, per-(object, relation) adjacency, reverse
//! adjacency by user, one immutable [`Snapshot`] per revision.
//!
//! A snapshot is an immutable compact base ([`base::Base`]: flat sorted arrays of ids and a
//! flat append-only interner, built in bulk at load and by compaction) plus a small persistent
//! delta (imbl maps) that overrides the base entry by entry: the first write to an entry copies
//! it from the base into the delta, and an emptied entry stays there as a tombstone. Readers
//! hold an `Arc<Snapshot>` and never lock. The single writer derives the next snapshot with
//! [`Snapshot::apply`], which shares every untouched part with its parent, so a write costs
//! O(changed tuples × log n), never a rebuild. When the delta grows past a threshold, a
//! background [`compact::Compactor`] folds it into a new base, and the writer rebases its latest
//! snapshot onto it ([`Snapshot::rebase`]): ids never change, so nothing else is affected.
//!
//! Two adjacency directions are kept: forward, (object, relation) → its direct users (what a
//! top-down `check` reads), and reverse, (object type, relation, user) → the objects that user
//! is directly related to (what bottom-up bitmap evaluation reads: `lookup`, `filter`).
//! The snapshot also records, per (object type, relation) and per concrete user, the last
//! revision that changed a tuple there, so that caches of derived results can tell whether a
//! write since they were computed could have changed them (see `engine::reach`).
//!
//! Invariants (checked by [`Snapshot::validate`]): every object has a type; every id in an edge
//! list is interned; a visible edge list is never empty (the delta's empty entries only hide
//! base entries); edge lists are sorted; a tuple key appears in at most one place of its edge
//! list (plain, wildcard, userset or conditional); the reverse index is exactly the transpose
//! of the forward one (plain edges in `reverse`, conditional edges in `reverse_conditional`);
//! and the base's own layout invariants ([`base::Base::validate`]).

pub mod base;
pub mod compact;
pub mod flat;
pub mod groups;

use crate::tuple::{ObjectRef, Tuple, TupleCondition, User};
use roaring::RoaringBitmap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// The persistent hash map of the index: imbl's HAMT with foldhash's per-process seeded hasher
/// (SipHash dominated lookups; keys come from callers, so a fixed-seed hash would invite
/// collision attacks).
pub type Map<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;
/// A fast hasher for keys made of interned ids (small integers the index assigns densely, so
/// SipHash's cost buys nothing): each word is folded in with a multiply, and `finish` applies
/// MurmurHash3's 64-bit finalizer so that every output bit depends on every input bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            if let Some(dst) = word.get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.mix(n as u64);
    }
}

/// [`IdHasher`] with a random key per map, so that which keys collide is not predictable.
#[derive(Debug, Clone, Copy)]
pub struct IdHash(u64);

impl Default for IdHash {
    fn default() -> Self {
        Self(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// A persistent hash map keyed by interned ids.
type IdMap<K, V> = imbl::GenericHashMap<K, V, IdHash, imbl::shared_ptr::DefaultSharedPtr>;

/// An append-only persistent array of small values, for per-object columns read on every hop:
/// fixed-size chunks shared between snapshots, so that a read is two indexed loads (an RRB
/// vector's is a tree walk) and an append copies at most one chunk and the chunk table.
#[derive(Debug, Clone)]
struct Column<T> {
    chunks: Arc<Vec<Arc<Vec<T>>>>,
    len: usize,
}

impl<T> Default for Column<T> {
    fn default() -> Self {
        Self {
            chunks: Arc::default(),
            len: 0,
        }
    }
}

impl<T: Copy> Column<T> {
    const CHUNK: usize = 4096;

    fn get(&self, i: usize) -> Option<T> {
        self.chunks
            .get(i / Self::CHUNK)?
            .get(i % Self::CHUNK)
            .copied()
    }

    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, value: T) {
        let chunks = Arc::make_mut(&mut self.chunks);
        match chunks.last_mut() {
            Some(last) if last.len() < Self::CHUNK => Arc::make_mut(last).push(value),
            _ => {
                let mut chunk = Vec::with_capacity(Self::CHUNK);
                chunk.push(value);
                chunks.push(Arc::new(chunk));
            }
        }
        self.len += 1;
    }
}

/// An interned object (`type:id`).
pub type Obj = u32;
/// An interned name: a type, a relation or a named graph.
pub type Name = u32;

/// Strings ↔ dense `u32` ids. Persistent: cloning is O(1) and shares structure.
#[derive(Clone, Default)]
pub struct Interner {
    ids: Map<Arc<str>, u32>,
    strings: imbl::Vector<Arc<str>>,
}

impl Interner {
    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn resolve(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        let s: Arc<str> = Arc::from(s);
        self.strings.push_back(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// The user side of an edge, interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserRef {
    Object(Obj),
    Userset(Obj, Name),
    Wildcard(Name),
}

/// An edge that only holds when its condition does.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalEdge {
    pub user: UserRef,
    pub condition: Arc<TupleCondition>,
}

/// Everything stored for one (object, relation): who is directly related, and how. A borrowed
/// view, of the base's flat arrays or of a delta entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgesRef<'a> {
    /// Unconditional concrete users, sorted by id (their types: [`Snapshot::object_type`]).
    pub direct: &'a [Obj],
    /// Unconditional wildcards `type:*` (sorted).
    pub wildcards: &'a [Name],
    /// Unconditional usersets `object#relation`, as `[object, relation]` (sorted).
    pub usersets: &'a [[u32; 2]],
    /// Conditional edges of any user form, sorted by user.
    pub conditional: &'a [ConditionalEdge],
}

impl<'a> EdgesRef<'a> {
    pub const EMPTY: EdgesRef<'static> = EdgesRef {
        direct: &[],
        wildcards: &[],
        usersets: &[],
        conditional: &[],
    };

    pub fn is_empty(&self) -> bool {
        self.direct.is_empty()
            && self.wildcards.is_empty()
            && self.usersets.is_empty()
            && self.conditional.is_empty()
    }

    /// The number of tuples in this edge list.
    pub fn len(&self) -> u64 {
        (self.direct.len() + self.wildcards.len() + self.usersets.len() + self.conditional.len())
            as u64
    }

    /// Every edge in this list: its user and, for a conditional edge, its condition
    /// (unconditional edges first, in storage order).
    pub fn users(&self) -> impl Iterator<Item = (UserRef, Option<&'a Arc<TupleCondition>>)> + 'a {
        let direct = self.direct.iter().map(|u| (UserRef::Object(*u), None));
        let wildcards = self.wildcards.iter().map(|w| (UserRef::Wildcard(*w), None));
        let usersets = self
            .usersets
            .iter()
            .map(|&[o, r]| (UserRef::Userset(o, r), None));
        let conditional = self
            .conditional
            .iter()
            .map(|e| (e.user, Some(&e.condition)));
        direct.chain(wildcards).chain(usersets).chain(conditional)
    }

    /// Whether an unconditional tuple with this user is stored.
    pub fn has_plain(&self, user: UserRef) -> bool {
        match user {
            UserRef::Object(u) => self.direct.binary_search(&u).is_ok(),
            UserRef::Wildcard(w) => self.wildcards.binary_search(&w).is_ok(),
            UserRef::Userset(uo, ur) => self.usersets.binary_search(&[uo, ur]).is_ok(),
        }
    }

    /// Whether a tuple with this user is stored, plain or conditional.
    pub fn has(&self, user: UserRef) -> bool {
        self.has_plain(user) || self.conditional.iter().any(|e| e.user == user)
    }
}

/// An owned edge list: a delta entry (copied from the base on first write, then changed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edges {
    direct: Vec<Obj>,
    wildcards: Vec<Name>,
    usersets: Vec<[u32; 2]>,
    conditional: Vec<ConditionalEdge>,
}

impl Edges {
    fn from_view(e: EdgesRef<'_>) -> Self {
        Self {
            direct: e.direct.to_vec(),
            wildcards: e.wildcards.to_vec(),
            usersets: e.usersets.to_vec(),
            conditional: e.conditional.to_vec(),
        }
    }

    pub fn view(&self) -> EdgesRef<'_> {
        EdgesRef {
            direct: &self.direct,
            wildcards: &self.wildcards,
            usersets: &self.usersets,
            conditional: &self.conditional,
        }
    }

    /// Removes the edge to `user` wherever it is; returns whether it was there.
    fn remove(&mut self, user: UserRef) -> bool {
        let removed = match user {
            UserRef::Object(o) => remove_sorted(&mut self.direct, &o),
            UserRef::Wildcard(t) => remove_sorted(&mut self.wildcards, &t),
            UserRef::Userset(o, r) => remove_sorted(&mut self.usersets, &[o, r]),
        };
        let before = self.conditional.len();
        self.conditional.retain(|e| e.user != user);
        removed || before != self.conditional.len()
    }

    fn insert(&mut self, user: UserRef, condition: Option<Arc<TupleCondition>>) {
        self.remove(user);
        if let Some(condition) = condition {
            let i = self.conditional.partition_point(|e| e.user < user);
            self.conditional
                .insert(i, ConditionalEdge { user, condition });
            return;
        }
        match user {
            UserRef::Object(o) => insert_sorted(&mut self.direct, o),
            UserRef::Wildcard(t) => insert_sorted(&mut self.wildcards, t),
            UserRef::Userset(o, r) => insert_sorted(&mut self.usersets, [o, r]),
        }
    }
}

fn remove_sorted<T: Ord>(v: &mut Vec<T>, x: &T) -> bool {
    match v.binary_search(x) {
        Ok(i) => {
            v.remove(i);
            true
        }
        Err(_) => false,
    }
}

fn insert_sorted<T: Ord>(v: &mut Vec<T>, x: T) {
    if let Err(i) = v.binary_search(&x) {
        v.insert(i, x);
    }
}

/// The objects of one reverse entry: a sorted slice of ids (small entries of the base) or a
/// roaring bitmap (large base entries, and delta entries).
#[derive(Debug, Clone, Copy)]
pub enum Members<'a> {
    Slice(&'a [Obj]),
    Bitmap(&'a RoaringBitmap),
}

impl<'a> Members<'a> {
    pub fn contains(&self, o: Obj) -> bool {
        match self {
            Members::Slice(s) => s.binary_search(&o).is_ok(),
            Members::Bitmap(b) => b.contains(o),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Members::Slice(s) => s.len() as u64,
            Members::Bitmap(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects, ascending.
    pub fn iter(&self) -> MembersIter<'a> {
        match *self {
            Members::Slice(s) => MembersIter::Slice(s.iter()),
            Members::Bitmap(b) => MembersIter::Bitmap(b.iter()),
        }
    }

    pub fn to_bitmap(&self) -> RoaringBitmap {
        match self {
            Members::Slice(s) => {
                RoaringBitmap::from_sorted_iter(s.iter().copied()).unwrap_or_default()
            }
            Members::Bitmap(b) => (*b).clone(),
        }
    }
}

/// The iterator of [`Members::iter`].
pub enum MembersIter<'a> {
    Slice(std::slice::Iter<'a, Obj>),
    Bitmap(roaring::bitmap::Iter<'a>),
}

impl Iterator for MembersIter<'_> {
    type Item = Obj;

    fn next(&mut self) -> Option<Obj> {
        match self {
            MembersIter::Slice(s) => s.next().copied(),
            MembersIter::Bitmap(b) => b.next(),
        }
    }
}

/// Conditional edges from one user: (object, condition), sorted by object.
pub type ConditionalObjects = Vec<(Obj, Arc<TupleCondition>)>;

/// The reverse-index key: (object type, relation, user).
pub type RevKey = (Name, Name, UserRef);

/// Whether a change adds or removes a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add,
    Remove,
}

/// One tuple change as the index applies it; `graph` is the named graph its triple lives in.
#[derive(Debug, Clone)]
pub struct TupleChange {
    pub change: Change,
    pub tuple: Tuple,
    pub graph: Arc<str>,
}

/// A key the delta changed (its journal, for [`Snapshot::rebase`]).
#[derive(Debug, Clone, Copy)]
enum Touched {
    Forward(Obj, Name),
    Reverse(RevKey),
}

/// Bits in a [`DeltaFilter`] (a power of two): 2^17 bits, 16 KiB, copied once per revision
/// that changes the delta.
const FILTER_BITS: usize = 1 << 17;

/// A one-hash Bloom filter over the keys the delta holds (every key its journal names), so a
/// read of an untouched key goes straight to the base instead of probing the delta's hash maps
/// first. A clear bit proves the key is not in the delta; a set bit only means "look". Bits are
/// only ever added, and the filter is emptied with the delta (compaction, rebase).
#[derive(Clone, Default)]
struct DeltaFilter(Option<Arc<[u64]>>);

impl DeltaFilter {
    fn bit(t: &Touched) -> usize {
        let h = match t {
            Touched::Forward(o, r) => foldhash::fast::FixedState::with_seed(1).hash_one((o, r)),
            Touched::Reverse(k) => foldhash::fast::FixedState::with_seed(2).hash_one(k),
        };
        h as usize & (FILTER_BITS - 1)
    }

    fn insert(&mut self, t: &Touched) {
        let b = Self::bit(t);
        let words = self
            .0
            .get_or_insert_with(|| vec![0u64; FILTER_BITS / 64].into());
        if let Some(w) = Arc::make_mut(words).get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }

    fn may_hold(&self, t: &Touched) -> bool {
        let Some(words) = &self.0 else {
            return false;
        };
        let b = Self::bit(t);
        words.get(b / 64).is_none_or(|w| w & (1 << (b % 64)) != 0)
    }
}

/// A changes list at least this long, applied to an empty snapshot, builds the base directly.
const BULK: usize = 256;
/// A delta whose journal is longer than this (and than [`DELTA_PER_BASE`] of the base) asks to
/// be compacted.
pub const MIN_DELTA: usize = 4096;
/// A delta up to `base tuples / DELTA_PER_BASE` does not ask for compaction.
const DELTA_PER_BASE: u64 = 32;

/// The relationship index at one revision: an immutable compact [`base::Base`] shared by every
/// snapshot since it was built, plus a small persistent delta that overrides it entry by entry
/// (copy-on-write of the touched entries; an emptied entry stays as a tombstone).
#[derive(Clone, Default)]
pub struct Snapshot {
    pub revision: u64,
    names: Interner,
    base: Arc<base::Base>,
    /// Objects interned since the base was built: id `base.objects.len() + i`.
    new_objects: Interner,
    /// The type of each object interned since the base was built (parallel to `new_objects`).
    new_types: Column<Name>,
    /// Delta: (object, relation) → its whole edge list (empty: deleted).
    edges: IdMap<(Obj, Name), Arc<Edges>>,
    /// Delta: unconditional edges by user, (object type, relation, user) → objects (empty:
    /// deleted).
    reverse: IdMap<RevKey, Arc<RoaringBitmap>>,
    /// Delta: conditional edges by user, sorted by object (empty: deleted).
    reverse_conditional: IdMap<RevKey, Arc<ConditionalObjects>>,
    /// Every delta change since the base, in order (keys repeat).
    journal: imbl::Vector<Touched>,
    /// The keys the journal names, for a quick "not in the delta".
    filter: DeltaFilter,
    /// Every object ever seen, by type (objects are never forgotten: harmless candidates).
    by_type: IdMap<Name, Arc<RoaringBitmap>>,
    /// The named graph of a tuple whose triple is not in the default tuple graph.
    origins: IdMap<(Obj, Name, UserRef), Name>,
    /// (object type, relation) → the last revision that changed any tuple there.
    relation_writes: IdMap<(Name, Name), u64>,
    /// (object type, relation) → the last revision that changed a tuple there whose user is a
    /// wildcard or a userset (a change that can affect every subject).
    set_writes: IdMap<(Name, Name), u64>,
    /// Concrete user → the last revision that changed a tuple naming it as the user.
    subject_writes: IdMap<Obj, u64>,
    tuple_count: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("revision", &self.revision)
            .field("tuples", &self.tuple_count)
            .field("objects", &self.object_count())
            .field("delta", &self.journal.len())
            .finish()
    }
}

impl Snapshot {
    pub fn empty(revision: u64) -> Self {
        Self {
            revision,
            ..Self::default()
        }
    }

    pub fn name(&self, s: &str) -> Option<Name> {
        self.names.get(s)
    }

    pub fn name_str(&self, n: Name) -> &str {
        self.names.resolve(n).unwrap_or("")
    }

    fn base_objects(&self) -> u32 {
        u32::try_from(self.base.objects.len()).unwrap_or(u32::MAX)
    }

    pub fn object(&self, s: &str) -> Option<Obj> {
        self.base.objects.get(s).or_else(|| self.new_object(s))
    }

    /// [`Snapshot::object`] of every key, into `out` (cleared first): the base's probes
    /// batched so that their cache misses overlap ([`flat::FlatInterner::get_each`]).
    pub fn objects_many<S: AsRef<str>>(&self, keys: &[S], out: &mut Vec<Option<Obj>>) {
        self.base.objects.get_many(keys, out);
        if !self.new_objects.is_empty() {
            for (id, k) in out.iter_mut().zip(keys) {
                *id = id.or_else(|| self.new_object(k.as_ref()));
            }
        }
    }

    /// [`Snapshot::object`] of a few keys, probed together.
    pub fn objects_array<const N: usize>(&self, keys: [&str; N]) -> [Option<Obj>; N] {
        let mut out = [None; N];
        self.base.objects.get_each(&keys, |i, id| {
            if let Some(slot) = out.get_mut(i) {
                *slot = id;
            }
        });
        if !self.new_objects.is_empty() {
            for (id, k) in out.iter_mut().zip(keys) {
                *id = id.or_else(|| self.new_object(k));
            }
        }
        out
    }

    /// An object interned since the base was built.
    fn new_object(&self, s: &str) -> Option<Obj> {
        if self.new_objects.is_empty() {
            return None;
        }
        self.new_objects
            .get(s)
            .map(|i| i.saturating_add(self.base_objects()))
    }

    pub fn object_str(&self, o: Obj) -> &str {
        let resolved = match o.checked_sub(self.base_objects()) {
            None => self.base.objects.resolve(o),
            Some(i) => self.new_objects.resolve(i),
        };
        resolved.unwrap_or("")
    }

    /// The strings of `ids`, as shared strings (one allocation each).
    pub fn objects_shared(&self, ids: impl Iterator<Item = Obj>) -> Vec<Arc<str>> {
        let mut out = Vec::with_capacity(ids.size_hint().0);
        for id in ids {
            out.push(Arc::from(self.object_str(id)));
        }
        out
    }

    /// An object's `type:id` as a shared string.
    pub fn object_shared(&self, o: Obj) -> Option<Arc<str>> {
        (o < self.object_count_u32()).then(|| Arc::from(self.object_str(o)))
    }

    pub fn object_count(&self) -> usize {
        self.base.objects.len() + self.new_objects.len()
    }

    fn object_count_u32(&self) -> u32 {
        u32::try_from(self.object_count()).unwrap_or(u32::MAX)
    }

    pub fn object_type(&self, o: Obj) -> Option<Name> {
        match o.checked_sub(self.base_objects()) {
            None => self.base.object_type(o),
            Some(i) => self.new_types.get(i as usize),
        }
    }

    /// See [`base::Base::preload`] (a no-op for objects newer than the base).
    pub fn preload(&self, object: Obj, user: Obj) {
        let base = self.base_objects();
        if object < base && user < base {
            self.base.preload(object, user);
        }
    }

    pub fn edges(&self, object: Obj, relation: Name) -> Option<EdgesRef<'_>> {
        if !self.edges.is_empty()
            && self.filter.may_hold(&Touched::Forward(object, relation))
            && let Some(e) = self.edges.get(&(object, relation))
        {
            return (!e.view().is_empty()).then(|| e.view());
        }
        self.base.edges(object, relation)
    }

    pub fn objects_of_type(&self, t: Name) -> Option<&RoaringBitmap> {
        self.by_type.get(&t).map(|b| &**b)
    }

    /// The named graph the tuple's triple came from, when it is not the default tuple graph.
    pub fn origin(&self, object: Obj, relation: Name, user: UserRef) -> Option<&str> {
        if self.origins.is_empty() {
            return None;
        }
        self.origins
            .get(&(object, relation, user))
            .map(|g| self.name_str(*g))
    }

    pub fn tuple_count(&self) -> u64 {
        self.tuple_count
    }

    /// The objects of type `object_type` that `user` is directly and unconditionally related
    /// to by `relation`.
    pub fn reverse(&self, object_type: Name, relation: Name, user: UserRef) -> Option<Members<'_>> {
        if !self.reverse.is_empty()
            && self
                .filter
                .may_hold(&Touched::Reverse((object_type, relation, user)))
            && let Some(b) = self.reverse.get(&(object_type, relation, user))
        {
            return (!b.is_empty()).then_some(Members::Bitmap(b));
        }
        self.base.reverse(object_type, relation, user)
    }

    /// The conditional edges from `user` by `relation` to objects of `object_type`.
    pub fn reverse_conditional(
        &self,
        object_type: Name,
        relation: Name,
        user: UserRef,
    ) -> &[(Obj, Arc<TupleCondition>)] {
        let key = (object_type, relation, user);
        if !self.reverse_conditional.is_empty()
            && self.filter.may_hold(&Touched::Reverse(key))
            && let Some(v) = self.reverse_conditional.get(&key)
        {
            return v.as_slice();
        }
        self.base
            .reverse_conditional(object_type, relation, user)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// The last revision that changed a tuple on `object_type#relation` (0: never).
    pub fn relation_written(&self, object_type: Name, relation: Name) -> u64 {
        self.relation_writes
            .get(&(object_type, relation))
            .copied()
            .unwrap_or(0)
    }

    /// The last revision that changed a wildcard or userset tuple on `object_type#relation`.
    pub fn set_written(&self, object_type: Name, relation: Name) -> u64 {
        self.set_writes
            .get(&(object_type, relation))
            .copied()
            .unwrap_or(0)
    }

    /// The last revision that changed a tuple whose user is the concrete object `user`.
    pub fn subject_written(&self, user: Obj) -> u64 {
        self.subject_writes.get(&user).copied().unwrap_or(0)
    }

    /// Whether a tuple with this key is stored (in any form: plain or conditional).
    pub fn contains_key(&self, key: &crate::tuple::TupleKey) -> bool {
        let (Some(o), Some(r)) = (
            self.object(&key.object.to_string()),
            self.name(&key.relation),
        ) else {
            return false;
        };
        let Some(edges) = self.edges(o, r) else {
            return false;
        };
        let user = match &key.user {
            User::Object(u) => match self.object(&u.to_string()) {
                Some(u) => UserRef::Object(u),
                None => return false,
            },
            User::Userset(u, ur) => match (self.object(&u.to_string()), self.name(ur)) {
                (Some(u), Some(ur)) => UserRef::Userset(u, ur),
                _ => return false,
            },
            User::Wildcard(t) => match self.name(t) {
                Some(t) => UserRef::Wildcard(t),
                None => return false,
            },
        };
        edges.has(user)
    }

    /// This snapshot with `objects` interned (for evaluating a request that names objects the
    /// store has never seen). Shares everything else.
    pub fn with_objects(&self, objects: &[&ObjectRef]) -> Snapshot {
        let mut next = self.clone();
        for o in objects {
            next.intern_object(o);
        }
        next
    }

    /// An estimate of the heap bytes the relationship structures use (edges, reverse edges,
    /// bitmaps; not the interned strings), for reporting.
    pub fn edge_bytes_estimate(&self) -> u64 {
        // Persistent hash maps cost roughly their entry plus a pointer-sized node share.
        const ENTRY: u64 = 16;
        let mut bytes = self.base.edge_bytes();
        for (_, e) in self.edges.iter() {
            bytes += ENTRY + 8 + 16 + std::mem::size_of::<Edges>() as u64;
            bytes += e.view().len() * 8;
        }
        for (_, b) in self.reverse.iter() {
            bytes += ENTRY + 16 + 16 + 24 + b.serialized_size() as u64;
        }
        for (_, v) in self.reverse_conditional.iter() {
            bytes += ENTRY + 16 + 16 + 24 + (v.len() * 16) as u64;
        }
        bytes
    }

    /// An estimate of the heap bytes of the interned strings (objects and names).
    pub fn interner_bytes_estimate(&self) -> u64 {
        // A persistent interner entry: the shared string, its map entry and vector slot.
        let persistent = |i: &Interner| {
            (0..i.len())
                .map(|n| 64 + i.resolve(idx32(n)).map_or(0, str::len) as u64)
                .sum::<u64>()
        };
        self.base.objects.heap_bytes()
            + persistent(&self.new_objects)
            + persistent(&self.names)
            + self.new_types.len() as u64 * 4
    }

    /// The number of changes the delta holds over the base (its journal's length).
    pub fn delta_len(&self) -> usize {
        self.journal.len()
    }

    /// Whether the delta has grown enough that folding it into a new base pays off.
    pub fn wants_compaction(&self, min_delta: usize) -> bool {
        let per_base = usize::try_from(self.base.tuple_count() / DELTA_PER_BASE).unwrap_or(0);
        self.journal.len() > min_delta.max(per_base)
    }

    /// Calls `f` on every stored edge list (the base's not overridden, then the delta's).
    pub fn for_each_edges(&self, mut f: impl FnMut(Obj, Name, EdgesRef<'_>)) {
        self.base.for_each_edges(|o, r, e| {
            if self.edges.is_empty() || !self.edges.contains_key(&(o, r)) {
                f(o, r, e);
            }
        });
        for ((o, r), e) in self.edges.iter() {
            if !e.view().is_empty() {
                f(*o, *r, e.view());
            }
        }
    }

    fn for_each_reverse(&self, mut f: impl FnMut(RevKey, Members<'_>)) {
        self.base.for_each_reverse(|k, m| {
            if !self.reverse.contains_key(&k) {
                f(k, m);
            }
        });
        for (k, b) in self.reverse.iter() {
            if !b.is_empty() {
                f(*k, Members::Bitmap(b));
            }
        }
    }

    fn for_each_reverse_conditional(&self, mut f: impl FnMut(RevKey, &ConditionalObjects)) {
        self.base.for_each_reverse_conditional(|k, v| {
            if !self.reverse_conditional.contains_key(&k) {
                f(k, v);
            }
        });
        for (k, v) in self.reverse_conditional.iter() {
            if !v.is_empty() {
                f(*k, v);
            }
        }
    }

    /// Every stored tuple, in no particular order (for export and the slow reference paths).
    pub fn tuples(&self) -> Vec<Tuple> {
        let mut out = Vec::new();
        self.for_each_edges(|object, relation, edges| {
            let Ok(object_ref) = ObjectRef::parse(self.object_str(object)) else {
                return;
            };
            let relation = self.name_str(relation).to_string();
            for (user, condition) in edges.users() {
                if let Some(user) = self.user_of(user) {
                    out.push(Tuple {
                        object: object_ref.clone(),
                        relation: relation.clone(),
                        user,
                        condition: condition.map(|c| (**c).clone()),
                    });
                }
            }
        });
        out
    }

    /// The tuple-level user for an interned one.
    pub fn user_of(&self, user: UserRef) -> Option<User> {
        Some(match user {
            UserRef::Object(o) => User::Object(ObjectRef::parse(self.object_str(o)).ok()?),
            UserRef::Userset(o, r) => User::Userset(
                ObjectRef::parse(self.object_str(o)).ok()?,
                self.name_str(r).to_string(),
            ),
            UserRef::Wildcard(t) => User::Wildcard(self.name_str(t).to_string()),
        })
    }

    /// The next snapshot: this one with `changes` applied in order, at `revision`.
    /// Shares all untouched structure with `self`: a write costs O(changed tuples), never a
    /// rebuild. (Many changes applied to an empty snapshot — a load — build the base
    /// directly.)
    pub fn apply(&self, revision: u64, changes: &[TupleChange], default_graph: &str) -> Snapshot {
        if changes.len() >= BULK
            && self.object_count() == 0
            && let Some(built) = self.build(revision, changes, default_graph)
        {
            return built;
        }
        let mut next = self.clone();
        next.revision = revision;
        for c in changes {
            next.apply_one(c, default_graph);
        }
        next
    }

    /// The same snapshot with its delta folded into a new base (same revision, same ids, same
    /// answers). O(tuples): run it off the writer's path (see [`compact::Compactor`]).
    pub fn compact(&self) -> Snapshot {
        let mut objects = self.base.objects.clone();
        let mut types = self.base.types();
        for i in 0..self.new_objects.len() {
            if objects
                .intern(self.new_objects.resolve(idx32(i)).unwrap_or(""))
                .is_none()
            {
                // The base's arena is full: the delta keeps serving these objects.
                return self.clone();
            }
            types.push(self.new_types.get(i).unwrap_or(0));
        }
        let mut records = Vec::with_capacity(usize::try_from(self.tuple_count).unwrap_or(0));
        self.for_each_edges(|object, relation, e| {
            records.extend(e.users().map(|(user, condition)| base::Rec {
                object,
                relation,
                user,
                condition: condition.cloned(),
            }));
        });
        let mut next = self.clone();
        next.base = Arc::new(base::Base::build(objects, types, records));
        next.reset_delta();
        next
    }

    /// Empties the delta: new objects, edge lists, reverse entries, journal and key filter (for
    /// a snapshot whose base now holds, or is about to be given, all of them).
    fn reset_delta(&mut self) {
        self.new_objects = Interner::default();
        self.new_types = Column::default();
        self.edges = IdMap::default();
        self.reverse = IdMap::default();
        self.reverse_conditional = IdMap::default();
        self.journal = imbl::Vector::new();
        self.filter = DeltaFilter::default();
    }

    /// `self`, a descendant of `from` by [`Snapshot::apply`] alone, on the base `compacted`
    /// (which is `from.compact()`): the delta keeps only what changed since `from`. `None` when
    /// `self` does not descend from `from` on the same base (then nothing is gained).
    pub fn rebase(&self, from: &Snapshot, compacted: &Snapshot) -> Option<Snapshot> {
        let same_line = Arc::ptr_eq(&self.base, &from.base)
            && self.journal.len() >= from.journal.len()
            && self.object_count() >= from.object_count()
            && compacted.revision == from.revision
            && compacted.object_count() == from.object_count()
            && compacted.new_objects.is_empty();
        if !same_line {
            return None;
        }
        let mut next = self.clone();
        next.base = compacted.base.clone();
        next.reset_delta();
        for o in from.object_count()..self.object_count() {
            next.new_objects.intern(self.object_str(idx32(o)));
            next.new_types.push(self.object_type(idx32(o)).unwrap_or(0));
        }
        for t in self.journal.iter().skip(from.journal.len()) {
            match *t {
                Touched::Forward(o, r) => {
                    if let Some(e) = self.edges.get(&(o, r)) {
                        next.edges.insert((o, r), e.clone());
                    }
                }
                Touched::Reverse(k) => {
                    if let Some(b) = self.reverse.get(&k) {
                        next.reverse.insert(k, b.clone());
                    }
                    if let Some(v) = self.reverse_conditional.get(&k) {
                        next.reverse_conditional.insert(k, v.clone());
                    }
                }
            }
            next.touch(*t);
        }
        Some(next)
    }

    /// [`Snapshot::apply`] of many changes to an empty snapshot: interns everything, keeps the
    /// last change of each tuple key, and builds the base in bulk. `None` when the base's
    /// arena cannot hold every object's name (then the changes go in the delta).
    fn build(
        &self,
        revision: u64,
        changes: &[TupleChange],
        default_graph: &str,
    ) -> Option<Snapshot> {
        let mut next = self.clone();
        next.revision = revision;
        let mut objects = flat::FlatInterner::with_capacity(changes.len(), changes.len() * 16);
        let mut types: Vec<Name> = Vec::new();
        let mut by_type: std::collections::HashMap<Name, RoaringBitmap> = Default::default();
        let mut intern = |names: &mut Interner, o: &ObjectRef, types: &mut Vec<Name>| {
            let key = o.to_string();
            let before = objects.len();
            let id = objects.intern(&key)?;
            if objects.len() != before {
                let t = names.intern(&o.object_type);
                types.push(t);
                by_type.entry(t).or_default().insert(id);
            }
            Some(id)
        };
        let mut relation_writes = std::collections::HashSet::new();
        let mut set_writes = std::collections::HashSet::new();
        let mut subjects = std::collections::HashSet::new();
        // (object, relation, user) → (index of its last change, graph).
        let mut records: Vec<(Obj, Name, UserRef, usize)> = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let object = intern(&mut next.names, &c.tuple.object, &mut types)?;
            let relation = next.names.intern(&c.tuple.relation);
            let user = match &c.tuple.user {
                User::Object(o) => UserRef::Object(intern(&mut next.names, o, &mut types)?),
                User::Userset(o, r) => {
                    let id = intern(&mut next.names, o, &mut types)?;
                    UserRef::Userset(id, next.names.intern(r))
                }
                User::Wildcard(t) => UserRef::Wildcard(next.names.intern(t)),
            };
            let object_type = types.get(object as usize).copied().unwrap_or(0);
            relation_writes.insert((object_type, relation));
            match user {
                UserRef::Object(u) => {
                    subjects.insert(u);
                }
                _ => {
                    set_writes.insert((object_type, relation));
                }
            }
            records.push((object, relation, user, i));
        }
        records.sort_by_key(|r| (r.0, r.1, r.2));
        let mut kept = Vec::with_capacity(records.len());
        for (j, r) in records.iter().enumerate() {
            let last = records
                .get(j + 1)
                .is_none_or(|n| (n.0, n.1, n.2) != (r.0, r.1, r.2));
            let Some(c) = changes.get(r.3).filter(|_| last) else {
                continue;
            };
            if c.change == Change::Remove {
                continue;
            }
            if &*c.graph != default_graph {
                let g = next.names.intern(&c.graph);
                next.origins.insert((r.0, r.1, r.2), g);
            }
            kept.push(base::Rec {
                object: r.0,
                relation: r.1,
                user: r.2,
                condition: c.tuple.condition.clone().map(Arc::new),
            });
        }
        drop(records);
        for k in relation_writes {
            next.relation_writes.insert(k, revision);
        }
        for k in set_writes {
            next.set_writes.insert(k, revision);
        }
        for u in subjects {
            next.subject_writes.insert(u, revision);
        }
        for (t, b) in by_type {
            next.by_type.insert(t, Arc::new(b));
        }
        next.tuple_count = kept.len() as u64;
        next.base = Arc::new(base::Base::build(objects, types, kept));
        Some(next)
    }

    fn intern_object(&mut self, o: &ObjectRef) -> Obj {
        let key = o.to_string();
        if let Some(id) = self.object(&key) {
            return id;
        }
        let t = self.names.intern(&o.object_type);
        let id = self
            .new_objects
            .intern(&key)
            .saturating_add(self.base_objects());
        self.new_types.push(t);
        let bits = self.by_type.entry(t).or_default();
        Arc::make_mut(bits).insert(id);
        id
    }

    fn intern_user(&mut self, user: &User) -> UserRef {
        match user {
            User::Object(o) => UserRef::Object(self.intern_object(o)),
            User::Userset(o, r) => {
                let id = self.intern_object(o);
                UserRef::Userset(id, self.names.intern(r))
            }
            User::Wildcard(t) => UserRef::Wildcard(self.names.intern(t)),
        }
    }

    /// Records a key the delta is about to change (journal and filter).
    fn touch(&mut self, t: Touched) {
        self.filter.insert(&t);
        self.journal.push_back(t);
    }

    /// The delta entry of (object, relation), copied from the base on first write.
    fn edges_mut(&mut self, key: (Obj, Name)) -> &mut Edges {
        self.touch(Touched::Forward(key.0, key.1));
        let base = &self.base;
        let entry = self.edges.entry(key).or_insert_with(|| {
            Arc::new(
                base.edges(key.0, key.1)
                    .map(Edges::from_view)
                    .unwrap_or_default(),
            )
        });
        Arc::make_mut(entry)
    }

    fn apply_one(&mut self, c: &TupleChange, default_graph: &str) {
        let object = self.intern_object(&c.tuple.object);
        let relation = self.names.intern(&c.tuple.relation);
        let user = self.intern_user(&c.tuple.user);
        let key = (object, relation);
        let object_type = self.object_type(object).unwrap_or(0);
        let rev_key = (object_type, relation, user);
        let revision = self.revision;
        self.relation_writes
            .insert((object_type, relation), revision);
        match user {
            UserRef::Object(u) => {
                self.subject_writes.insert(u, revision);
            }
            UserRef::Userset(..) | UserRef::Wildcard(_) => {
                self.set_writes.insert((object_type, relation), revision);
            }
        }
        self.reverse_remove(rev_key, object);
        match c.change {
            Change::Add => {
                let condition = c.tuple.condition.clone().map(Arc::new);
                self.reverse_add(rev_key, object, condition.clone());
                let edges = self.edges_mut(key);
                let before = edges.view().len();
                edges.insert(user, condition);
                let after = edges.view().len();
                self.tuple_count += after - before;
                if &*c.graph != default_graph {
                    let g = self.names.intern(&c.graph);
                    self.origins.insert((object, relation, user), g);
                } else if !self.origins.is_empty() {
                    self.origins.remove(&(object, relation, user));
                }
            }
            Change::Remove => {
                if self.edges(object, relation).is_some_and(|e| e.has(user))
                    && self.edges_mut(key).remove(user)
                {
                    self.tuple_count = self.tuple_count.saturating_sub(1);
                }
                if !self.origins.is_empty() {
                    self.origins.remove(&(object, relation, user));
                }
            }
        }
    }

    fn reverse_remove(&mut self, key: RevKey, object: Obj) {
        if self
            .reverse(key.0, key.1, key.2)
            .is_some_and(|m| m.contains(object))
        {
            self.touch(Touched::Reverse(key));
            let base = &self.base;
            let bits = self.reverse.entry(key).or_insert_with(|| {
                Arc::new(
                    base.reverse(key.0, key.1, key.2)
                        .map(|m| m.to_bitmap())
                        .unwrap_or_default(),
                )
            });
            Arc::make_mut(bits).remove(object);
        }
        let conditional = self.reverse_conditional(key.0, key.1, key.2);
        if let Ok(i) = conditional.binary_search_by_key(&object, |(o, _)| *o) {
            self.touch(Touched::Reverse(key));
            let list = self.reverse_conditional_mut(key);
            list.remove(i);
        }
    }

    fn reverse_conditional_mut(&mut self, key: RevKey) -> &mut ConditionalObjects {
        let base = &self.base;
        let list = self.reverse_conditional.entry(key).or_insert_with(|| {
            Arc::new(
                base.reverse_conditional(key.0, key.1, key.2)
                    .cloned()
                    .unwrap_or_default(),
            )
        });
        Arc::make_mut(list)
    }

    fn reverse_add(&mut self, key: RevKey, object: Obj, condition: Option<Arc<TupleCondition>>) {
        self.touch(Touched::Reverse(key));
        match condition {
            None => {
                let base = &self.base;
                let bits = self.reverse.entry(key).or_insert_with(|| {
                    Arc::new(
                        base.reverse(key.0, key.1, key.2)
                            .map(|m| m.to_bitmap())
                            .unwrap_or_default(),
                    )
                });
                Arc::make_mut(bits).insert(object);
            }
            Some(c) => {
                let list = self.reverse_conditional_mut(key);
                match list.binary_search_by_key(&object, |(o, _)| *o) {
                    Ok(i) => {
                        if let Some(slot) = list.get_mut(i) {
                            *slot = (object, c);
                        }
                    }
                    Err(i) => list.insert(i, (object, c)),
                }
            }
        }
    }

    /// Checks the invariants in the module doc; returns the first violation.
    pub fn validate(&self) -> Result<(), String> {
        self.base.validate()?;
        if self.new_types.len() != self.new_objects.len() {
            return Err("new_types is not parallel to new_objects".into());
        }
        let n = self.object_count_u32();
        let mut fail: Option<String> = None;
        let mut count = 0;
        let mut forward = std::collections::HashSet::new();
        self.for_each_edges(|o, r, edges| {
            let mut err = |e: String| {
                fail.get_or_insert(e);
            };
            if edges.is_empty() {
                err(format!("empty edge list at ({o}, {r})"));
            }
            if o >= n || self.names.resolve(r).is_none() {
                err(format!("dangling key ({o}, {r})"));
            }
            if edges.direct.windows(2).any(|w| w[0] >= w[1])
                || edges.wildcards.windows(2).any(|w| w[0] >= w[1])
                || edges.usersets.windows(2).any(|w| w[0] >= w[1])
            {
                err(format!("edge list ({o}, {r}) not sorted"));
            }
            let mut seen = std::collections::HashSet::new();
            for u in edges.direct {
                if *u >= n {
                    err(format!("dangling user {u}"));
                }
                seen.insert(UserRef::Object(*u));
            }
            for t in edges.wildcards {
                seen.insert(UserRef::Wildcard(*t));
            }
            for &[uo, ur] in edges.usersets {
                seen.insert(UserRef::Userset(uo, ur));
            }
            for e in edges.conditional {
                if !seen.insert(e.user) {
                    err(format!("tuple ({o}, {r}, {:?}) stored twice", e.user));
                }
            }
            for u in seen {
                forward.insert((o, r, u));
            }
            count += edges.len();
        });
        if let Some(f) = fail {
            return Err(f);
        }
        // The reverse index is the transpose of the forward one.
        let mut reverse_count = 0u64;
        let mut fail: Option<String> = None;
        self.for_each_reverse(|(t, r, user), bits| {
            if bits.is_empty() {
                fail.get_or_insert_with(|| format!("empty reverse entry ({t}, {r}, {user:?})"));
            }
            for o in bits.iter() {
                let ok = self.object_type(o) == Some(t)
                    && self.edges(o, r).is_some_and(|e| e.has_plain(user));
                if !ok {
                    fail.get_or_insert_with(|| {
                        format!(
                            "reverse edge {o}#{r}@{user:?} has no plain forward edge of type {t}"
                        )
                    });
                }
                reverse_count += 1;
            }
        });
        self.for_each_reverse_conditional(|(t, r, user), list| {
            if list.is_empty() {
                fail.get_or_insert_with(|| {
                    format!("empty conditional reverse entry ({t}, {r}, {user:?})")
                });
            }
            for (o, c) in list.iter() {
                let ok = self.object_type(*o) == Some(t)
                    && self.edges(*o, r).is_some_and(|e| {
                        e.conditional
                            .iter()
                            .any(|e| e.user == user && e.condition == *c)
                    });
                if !ok {
                    fail.get_or_insert_with(|| {
                        format!("conditional reverse edge {o}#{r}@{user:?} has no forward edge")
                    });
                }
                reverse_count += 1;
            }
        });
        if let Some(f) = fail {
            return Err(f);
        }
        if reverse_count != count || forward.len() as u64 != count {
            return Err(format!(
                "{count} forward edges but {reverse_count} reverse edges"
            ));
        }
        if count != self.tuple_count {
            return Err(format!(
                "tuple_count {} but {} stored",
                self.tuple_count, count
            ));
        }
        Ok(())
    }
}

fn idx32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(change: Change, user: &str, relation: &str, object: &str) -> TupleChange {
        TupleChange {
            change,
            tuple: Tuple::parse(user, relation, object).unwrap(),
            graph: Arc::from("g"),
        }
    }

    #[test]
    fn a_column_appends_across_chunks_without_changing_its_clones() {
        let mut a: Column<u32> = Column::default();
        let n = Column::<u32>::CHUNK as u32 * 2 + 3;
        for i in 0..n {
            a.push(i * 7);
        }
        let b = a.clone();
        a.push(1);
        assert_eq!((a.len(), b.len()), (n as usize + 1, n as usize));
        assert_eq!(a.get(n as usize), Some(1));
        assert_eq!(b.get(n as usize), None);
        for i in 0..n as usize {
            assert_eq!(
                (a.get(i), b.get(i)),
                (Some(i as u32 * 7), Some(i as u32 * 7))
            );
        }
    }

    #[test]
    fn apply_adds_and_removes_and_shares_the_parent() {
        let s0 = Snapshot::empty(0);
        let s1 = s0.apply(
            1,
            &[
                change(Change::Add, "user:anne", "viewer", "doc:1"),
                change(Change::Add, "user:*", "viewer", "doc:1"),
                change(Change::Add, "group:eng#member", "viewer", "doc:1"),
                change(Change::Add, "user:anne", "viewer", "doc:1"),
            ],
            "g",
        );
        s1.validate().unwrap();
        assert_eq!(s1.tuple_count(), 3);
        let s2 = s1.apply(
            2,
            &[change(Change::Remove, "user:anne", "viewer", "doc:1")],
            "g",
        );
        s2.validate().unwrap();
        assert_eq!(s2.tuple_count(), 2);
        // The parent is untouched.
        assert_eq!(s1.tuple_count(), 3);
        let doc = s1.object("doc:1").unwrap();
        let viewer = s1.name("viewer").unwrap();
        assert_eq!(s1.edges(doc, viewer).unwrap().len(), 3);
        assert_eq!(s2.edges(doc, viewer).unwrap().len(), 2);
        let s3 = s2.apply(
            3,
            &[
                change(Change::Remove, "user:*", "viewer", "doc:1"),
                change(Change::Remove, "group:eng#member", "viewer", "doc:1"),
            ],
            "g",
        );
        s3.validate().unwrap();
        assert!(s3.edges(doc, viewer).is_none());
    }

    #[test]
    fn a_conditional_write_replaces_the_plain_one() {
        let mut t = Tuple::parse("user:anne", "viewer", "doc:1").unwrap();
        let s1 = Snapshot::empty(0).apply(
            1,
            &[TupleChange {
                change: Change::Add,
                tuple: t.clone(),
                graph: Arc::from("g"),
            }],
            "g",
        );
        t.condition = Some(TupleCondition {
            name: "c".into(),
            context: Default::default(),
        });
        let s2 = s1.apply(
            2,
            &[TupleChange {
                change: Change::Add,
                tuple: t,
                graph: Arc::from("other"),
            }],
            "g",
        );
        s2.validate().unwrap();
        assert_eq!(s2.tuple_count(), 1);
        let tuples = s2.tuples();
        assert_eq!(tuples.len(), 1);
        assert_eq!(tuples[0].condition.as_ref().unwrap().name, "c");
        let doc = s2.object("doc:1").unwrap();
        let anne = s2.object("user:anne").unwrap();
        let viewer = s2.name("viewer").unwrap();
        assert_eq!(s2.origin(doc, viewer, UserRef::Object(anne)), Some("other"));
    }
}
