//! The in-memory relationship index: interned ids, per-(object, relation) adjacency with roaring
//! bitmaps of direct users, one immutable [`Snapshot`] per revision.
//!
//! Readers hold an `Arc<Snapshot>` and never lock. The single writer derives the next snapshot
//! with [`Snapshot::apply`], which shares every untouched part with its parent (persistent hash
//! maps from `imbl`), so a write costs O(changed tuples × log n), never a rebuild.
//!
//! Two adjacency directions are kept: forward, (object, relation) → its direct users (what a
//! top-down `check` reads), and reverse, (object type, relation, user) → the objects that user
//! is directly related to (what bottom-up bitmap evaluation reads: `lookup`, `filter`).
//! The snapshot also records, per (object type, relation) and per concrete user, the last
//! revision that changed a tuple there, so that caches of derived results can tell whether a
//! write since they were computed could have changed them (see `engine::reach`).
//!
//! Invariants (checked by [`Snapshot::validate`]): every object symbol has a type; every
//! symbol in an edge list is interned; an edge list is never stored empty; a tuple key appears in
//! at most one place of its edge list (plain bitmap, wildcard, userset or conditional); the
//! reverse index is exactly the transpose of the forward one (plain edges in `reverse`,
//! conditional edges in `reverse_conditional`), and neither holds an empty entry.

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

    /// The shared string of an id (a reference count, no copy).
    pub fn resolve_shared(&self, id: u32) -> Option<Arc<str>> {
        self.strings.get(id as usize).cloned()
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

/// Everything stored for one (object, relation): who is directly related, and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edges {
    /// Unconditional concrete users, one bitmap per user type (sorted by type).
    pub direct: Vec<(Name, RoaringBitmap)>,
    /// Unconditional wildcards `type:*` (sorted).
    pub wildcards: Vec<Name>,
    /// Unconditional usersets `object#relation` (sorted).
    pub usersets: Vec<(Obj, Name)>,
    /// Conditional edges of any user form.
    pub conditional: Vec<ConditionalEdge>,
}

impl Edges {
    pub fn is_empty(&self) -> bool {
        self.direct.is_empty()
            && self.wildcards.is_empty()
            && self.usersets.is_empty()
            && self.conditional.is_empty()
    }

    /// Removes the edge to `user` wherever it is; returns whether it was there.
    fn remove(&mut self, user: UserRef, user_type: Name) -> bool {
        let mut removed = false;
        match user {
            UserRef::Object(o) => {
                if let Ok(i) = self.direct.binary_search_by_key(&user_type, |(t, _)| *t) {
                    if let Some((_, bits)) = self.direct.get_mut(i) {
                        removed |= bits.remove(o);
                        if bits.is_empty() {
                            self.direct.remove(i);
                        }
                    }
                }
            }
            UserRef::Wildcard(t) => {
                if let Ok(i) = self.wildcards.binary_search(&t) {
                    self.wildcards.remove(i);
                    removed = true;
                }
            }
            UserRef::Userset(o, r) => {
                if let Ok(i) = self.usersets.binary_search(&(o, r)) {
                    self.usersets.remove(i);
                    removed = true;
                }
            }
        }
        let before = self.conditional.len();
        self.conditional.retain(|e| e.user != user);
        removed || before != self.conditional.len()
    }

    fn insert(&mut self, user: UserRef, user_type: Name, condition: Option<Arc<TupleCondition>>) {
        self.remove(user, user_type);
        if let Some(condition) = condition {
            self.conditional.push(ConditionalEdge { user, condition });
            return;
        }
        match user {
            UserRef::Object(o) => match self.direct.binary_search_by_key(&user_type, |(t, _)| *t) {
                Ok(i) => {
                    if let Some((_, bits)) = self.direct.get_mut(i) {
                        bits.insert(o);
                    }
                }
                Err(i) => {
                    let mut bits = RoaringBitmap::new();
                    bits.insert(o);
                    self.direct.insert(i, (user_type, bits));
                }
            },
            UserRef::Wildcard(t) => {
                if let Err(i) = self.wildcards.binary_search(&t) {
                    self.wildcards.insert(i, t);
                }
            }
            UserRef::Userset(o, r) => {
                if let Err(i) = self.usersets.binary_search(&(o, r)) {
                    self.usersets.insert(i, (o, r));
                }
            }
        }
    }

    /// The number of tuples in this edge list.
    pub fn len(&self) -> u64 {
        self.direct.iter().map(|(_, b)| b.len()).sum::<u64>()
            + self.wildcards.len() as u64
            + self.usersets.len() as u64
            + self.conditional.len() as u64
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

/// The relationship index at one revision.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub revision: u64,
    names: Interner,
    objects: Interner,
    /// Object → its type (a `Name`), parallel to `objects`.
    object_types: Column<Name>,
    edges: IdMap<(Obj, Name), Arc<Edges>>,
    /// Every object ever seen, by type (objects are never forgotten: harmless candidates).
    by_type: IdMap<Name, Arc<RoaringBitmap>>,
    /// The named graph of a tuple whose triple is not in the default tuple graph.
    origins: IdMap<(Obj, Name, UserRef), Name>,
    /// Unconditional edges by user: (object type, relation, user) → objects.
    reverse: IdMap<RevKey, Arc<RoaringBitmap>>,
    /// Conditional edges by user: (object type, relation, user) → (object, condition), sorted
    /// by object.
    reverse_conditional: IdMap<RevKey, Arc<ConditionalObjects>>,
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
            .field("objects", &self.objects.len())
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

    pub fn object(&self, s: &str) -> Option<Obj> {
        self.objects.get(s)
    }

    pub fn object_str(&self, o: Obj) -> &str {
        self.objects.resolve(o).unwrap_or("")
    }

    /// The shared strings of `ids` (ascending ids resolve in amortised constant time: the
    /// interner's persistent vector is read through one focus, which keeps the last leaf).
    pub fn objects_shared(&self, ids: impl Iterator<Item = Obj>) -> Vec<Arc<str>> {
        let mut focus = self.objects.strings.focus();
        let mut out = Vec::with_capacity(ids.size_hint().0);
        for id in ids {
            if let Some(s) = focus.get(id as usize) {
                out.push(s.clone());
            }
        }
        out
    }

    /// An object's `type:id` as the interner's shared string (no allocation).
    pub fn object_shared(&self, o: Obj) -> Option<Arc<str>> {
        self.objects.resolve_shared(o)
    }

    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    pub fn object_type(&self, o: Obj) -> Option<Name> {
        self.object_types.get(o as usize)
    }

    pub fn edges(&self, object: Obj, relation: Name) -> Option<&Edges> {
        self.edges.get(&(object, relation)).map(|e| &**e)
    }

    pub fn objects_of_type(&self, t: Name) -> Option<&RoaringBitmap> {
        self.by_type.get(&t).map(|b| &**b)
    }

    /// The named graph the tuple's triple came from, when it is not the default tuple graph.
    pub fn origin(&self, object: Obj, relation: Name, user: UserRef) -> Option<&str> {
        self.origins
            .get(&(object, relation, user))
            .map(|g| self.name_str(*g))
    }

    pub fn tuple_count(&self) -> u64 {
        self.tuple_count
    }

    /// The objects of type `object_type` that `user` is directly and unconditionally related
    /// to by `relation`.
    pub fn reverse(
        &self,
        object_type: Name,
        relation: Name,
        user: UserRef,
    ) -> Option<&RoaringBitmap> {
        self.reverse
            .get(&(object_type, relation, user))
            .map(|b| &**b)
    }

    /// The conditional edges from `user` by `relation` to objects of `object_type`.
    pub fn reverse_conditional(
        &self,
        object_type: Name,
        relation: Name,
        user: UserRef,
    ) -> &[(Obj, Arc<TupleCondition>)] {
        self.reverse_conditional
            .get(&(object_type, relation, user))
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
        let plain = match user {
            UserRef::Object(u) => edges.direct.iter().any(|(_, b)| b.contains(u)),
            UserRef::Wildcard(w) => edges.wildcards.contains(&w),
            UserRef::Userset(uo, ur) => edges.usersets.contains(&(uo, ur)),
        };
        plain || edges.conditional.iter().any(|e| e.user == user)
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
        let mut bytes = 0u64;
        for (_, e) in self.edges.iter() {
            bytes += ENTRY + 8 + 16 + std::mem::size_of::<Edges>() as u64;
            for (_, b) in &e.direct {
                bytes += 32 + b.serialized_size() as u64;
            }
            bytes += (e.wildcards.len() * 4 + e.usersets.len() * 8) as u64;
            bytes += (e.conditional.len() * std::mem::size_of::<ConditionalEdge>()) as u64;
        }
        for (_, b) in self.reverse.iter() {
            bytes += ENTRY + 16 + 16 + 24 + b.serialized_size() as u64;
        }
        for (_, v) in self.reverse_conditional.iter() {
            bytes += ENTRY + 16 + 16 + 24 + (v.len() * 16) as u64;
        }
        bytes
    }

    /// Every stored tuple, in no particular order (for export and the slow reference paths).
    pub fn tuples(&self) -> Vec<Tuple> {
        let mut out = Vec::new();
        for ((object, relation), edges) in self.edges.iter() {
            let Ok(object_ref) = ObjectRef::parse(self.object_str(*object)) else {
                continue;
            };
            let relation = self.name_str(*relation).to_string();
            let mut push = |user: UserRef, condition: Option<TupleCondition>| {
                if let Some(user) = self.user_of(user) {
                    out.push(Tuple {
                        object: object_ref.clone(),
                        relation: relation.clone(),
                        user,
                        condition,
                    });
                }
            };
            for (_, bits) in &edges.direct {
                for u in bits {
                    push(UserRef::Object(u), None);
                }
            }
            for t in &edges.wildcards {
                push(UserRef::Wildcard(*t), None);
            }
            for (o, r) in &edges.usersets {
                push(UserRef::Userset(*o, *r), None);
            }
            for e in &edges.conditional {
                push(e.user, Some((*e.condition).clone()));
            }
        }
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
    /// Shares all untouched structure with `self`.
    pub fn apply(&self, revision: u64, changes: &[TupleChange], default_graph: &str) -> Snapshot {
        let mut next = self.clone();
        next.revision = revision;
        for c in changes {
            next.apply_one(c, default_graph);
        }
        next
    }

    fn intern_object(&mut self, o: &ObjectRef) -> Obj {
        let key = o.to_string();
        if let Some(id) = self.objects.get(&key) {
            return id;
        }
        let t = self.names.intern(&o.object_type);
        let id = self.objects.intern(&key);
        self.object_types.push(t);
        let bits = self.by_type.entry(t).or_default();
        Arc::make_mut(bits).insert(id);
        id
    }

    fn intern_user(&mut self, user: &User) -> (UserRef, Name) {
        match user {
            User::Object(o) => {
                let id = self.intern_object(o);
                (UserRef::Object(id), self.object_type(id).unwrap_or(0))
            }
            User::Userset(o, r) => {
                let id = self.intern_object(o);
                let r = self.names.intern(r);
                (UserRef::Userset(id, r), self.object_type(id).unwrap_or(0))
            }
            User::Wildcard(t) => {
                let t = self.names.intern(t);
                (UserRef::Wildcard(t), t)
            }
        }
    }

    fn apply_one(&mut self, c: &TupleChange, default_graph: &str) {
        let object = self.intern_object(&c.tuple.object);
        let relation = self.names.intern(&c.tuple.relation);
        let (user, user_type) = self.intern_user(&c.tuple.user);
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
                let edges = self.edges.entry(key).or_default();
                let edges = Arc::make_mut(edges);
                let before = edges.len();
                edges.insert(user, user_type, condition);
                self.tuple_count += edges.len() - before;
                if &*c.graph != default_graph {
                    let g = self.names.intern(&c.graph);
                    self.origins.insert((object, relation, user), g);
                } else {
                    self.origins.remove(&(object, relation, user));
                }
            }
            Change::Remove => {
                let mut now_empty = false;
                if let Some(edges) = self.edges.get_mut(&key) {
                    let edges = Arc::make_mut(edges);
                    if edges.remove(user, user_type) {
                        self.tuple_count = self.tuple_count.saturating_sub(1);
                    }
                    now_empty = edges.is_empty();
                }
                if now_empty {
                    self.edges.remove(&key);
                }
                self.origins.remove(&(object, relation, user));
            }
        }
    }

    fn reverse_remove(&mut self, key: RevKey, object: Obj) {
        let mut empty = false;
        if let Some(bits) = self.reverse.get_mut(&key) {
            if bits.contains(object) {
                let bits = Arc::make_mut(bits);
                bits.remove(object);
                empty = bits.is_empty();
            }
        }
        if empty {
            self.reverse.remove(&key);
        }
        let mut empty = false;
        if let Some(list) = self.reverse_conditional.get_mut(&key) {
            if let Ok(i) = list.binary_search_by_key(&object, |(o, _)| *o) {
                let list = Arc::make_mut(list);
                list.remove(i);
                empty = list.is_empty();
            }
        }
        if empty {
            self.reverse_conditional.remove(&key);
        }
    }

    fn reverse_add(&mut self, key: RevKey, object: Obj, condition: Option<Arc<TupleCondition>>) {
        match condition {
            None => {
                Arc::make_mut(self.reverse.entry(key).or_default()).insert(object);
            }
            Some(c) => {
                let list = Arc::make_mut(self.reverse_conditional.entry(key).or_default());
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
        if self.object_types.len() != self.objects.len() {
            return Err("object_types is not parallel to objects".into());
        }
        let mut count = 0;
        for ((o, r), edges) in self.edges.iter() {
            if edges.is_empty() {
                return Err(format!("empty edge list at ({o}, {r})"));
            }
            if self.objects.resolve(*o).is_none() || self.names.resolve(*r).is_none() {
                return Err(format!("dangling key ({o}, {r})"));
            }
            let mut seen = std::collections::HashSet::new();
            for (t, bits) in &edges.direct {
                for u in bits {
                    if self.object_type(u) != Some(*t) {
                        return Err(format!("user {u} filed under the wrong type {t}"));
                    }
                    seen.insert(UserRef::Object(u));
                }
            }
            for t in &edges.wildcards {
                seen.insert(UserRef::Wildcard(*t));
            }
            for (uo, ur) in &edges.usersets {
                seen.insert(UserRef::Userset(*uo, *ur));
            }
            for e in &edges.conditional {
                if !seen.insert(e.user) {
                    return Err(format!("tuple ({o}, {r}, {:?}) stored twice", e.user));
                }
            }
            count += edges.len();
        }
        // The reverse index is the transpose of the forward one.
        let mut reverse_count = 0u64;
        for ((t, r, user), bits) in self.reverse.iter() {
            if bits.is_empty() {
                return Err(format!("empty reverse entry ({t}, {r}, {user:?})"));
            }
            for o in bits.iter() {
                if self.object_type(o) != Some(*t) {
                    return Err(format!(
                        "reverse entry ({t}, {r}, {user:?}) holds {o} of another type"
                    ));
                }
                let Some(edges) = self.edges(o, *r) else {
                    return Err(format!("reverse edge {o}#{r}@{user:?} has no forward edge"));
                };
                let present = match user {
                    UserRef::Object(u) => edges.direct.iter().any(|(_, b)| b.contains(*u)),
                    UserRef::Wildcard(w) => edges.wildcards.contains(w),
                    UserRef::Userset(uo, ur) => edges.usersets.contains(&(*uo, *ur)),
                };
                if !present {
                    return Err(format!(
                        "reverse edge {o}#{r}@{user:?} has no plain forward edge"
                    ));
                }
                reverse_count += 1;
            }
        }
        for ((t, r, user), list) in self.reverse_conditional.iter() {
            if list.is_empty() {
                return Err(format!(
                    "empty conditional reverse entry ({t}, {r}, {user:?})"
                ));
            }
            for (o, c) in list.iter() {
                let ok = self.object_type(*o) == Some(*t)
                    && self.edges(*o, *r).is_some_and(|e| {
                        e.conditional
                            .iter()
                            .any(|e| e.user == *user && e.condition == *c)
                    });
                if !ok {
                    return Err(format!(
                        "conditional reverse edge {o}#{r}@{user:?} has no forward edge"
                    ));
                }
                reverse_count += 1;
            }
        }
        if reverse_count != count {
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
