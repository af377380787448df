//! `check(user, relation, object)`: top-down evaluation of the rewrite tree with per-request
//! memoization, cycle detection and a depth budget (see the parent module for the semantics).
//!
//! The evaluation works on ids only. A node is `(object, relation)` as an interned object
//! ([`Obj`]) and a compiled relation ([`RelId`], see [`crate::model::compiled`]); the memo and the
//! resolution stack are one table keyed by it; users and objects are compared by id; model
//! symbols are resolved to snapshot names once per request, on first use. Objects the snapshot
//! has never interned (named only by the request or its contextual tuples) get request-local ids
//! after the snapshot's. Strings (`ObjectRef`s, tuple keys, rule texts, graph names) are built
//! only for an explanation or a deny trace. An ordinary check (no explanation, no contextual
//! tuples, objects the snapshot knows) allocates nothing: its memo table comes from a per-thread
//! pool, and the per-request caches (symbol → snapshot name, the user's reverse bitmaps) live on
//! the stack.
//!
//! Invariant: a request-local id is never a snapshot id (it is `>= snapshot.object_count()`),
//! and one object has one id, so id equality is object equality.

use super::explain::{DenyTrace, Explanation, Source, Witness};
use super::{EngineError, Resolved, View, validate_request};
use crate::condition::ConditionOutcome;
use crate::index::groups::GroupClosure;
use crate::index::{EdgesRef, IdHasher, Members, Name, Obj, Snapshot, UserRef};
use crate::iri::{IriMapper, TUPLES_GRAPH};
use crate::model::TypeSystem;
use crate::model::compiled::{
    Compiled, Kind, Node, Op, Rel, RelId, Restriction, Sym, TupleToUserset,
};
use crate::tuple::{ObjectRef, Tuple, TupleCondition, TupleKey, User};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

/// A check request. `contextual` tuples count as if stored, for this request only.
#[derive(Clone, Copy)]
pub struct CheckRequest<'a> {
    pub user: &'a User,
    pub relation: &'a str,
    pub object: &'a ObjectRef,
    pub context: &'a Map<String, Value>,
    pub contextual: &'a [Tuple],
    pub explain: bool,
    pub max_depth: u32,
}

/// The decision of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allowed,
    Denied,
    /// The answer depends on condition parameters that were not supplied (named here).
    Conditional {
        missing: Vec<String>,
    },
}

impl Decision {
    /// The decision as a yes/no answer, for operations that cannot return "conditional" per
    /// item (lists, OpenFGA's API): missing parameters are an error naming them, never a deny
    /// or an allow.
    pub fn allowed(&self) -> Result<bool, EngineError> {
        match self {
            Decision::Allowed => Ok(true),
            Decision::Denied => Ok(false),
            Decision::Conditional { missing } => Err(EngineError::Condition(format!(
                "missing context parameters: {}",
                missing.join(", ")
            ))),
        }
    }
}

/// A decision with its explanation and evaluation metadata.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub decision: Decision,
    /// For an allow with `explain`: the witness path.
    pub explanation: Option<Explanation>,
    /// For a deny with `explain`: the branches tried.
    pub deny_trace: Option<DenyTrace>,
    /// `object#relation` nodes evaluated.
    pub visited: u32,
    /// Whether a cycle was cut somewhere in the evaluation.
    pub cycle: bool,
    /// Whether a cached result bitmap answered it (no evaluation).
    pub cache_hit: bool,
}

/// Why a branch could not be decided. Small (two flags and a pointer), so that memo entries
/// are: only conditions need the boxed details.
#[derive(Debug, Clone, Default, PartialEq)]
struct Indeterminate {
    depth: bool,
    /// A cycle was cut below. The branch stays undecided (fail closed): at the top it is a
    /// deny, and under `but not` an undecided subtraction blocks the base — OpenFGA's behaviour
    /// (its conformance test `true_butnot_cycle_return_false`, and the differential runs).
    cycle: bool,
    conditions: Option<Box<ConditionGaps>>,
}

/// What conditions lacked: parameters missing from the context, and evaluation errors.
#[derive(Debug, Clone, Default, PartialEq)]
struct ConditionGaps {
    missing: BTreeSet<String>,
    errors: Vec<String>,
}

impl Indeterminate {
    fn merge(&mut self, other: &Indeterminate) {
        self.depth |= other.depth;
        self.cycle |= other.cycle;
        if let Some(o) = &other.conditions {
            let gaps = self.conditions.get_or_insert_with(Default::default);
            gaps.missing.extend(o.missing.iter().cloned());
            gaps.errors.extend(o.errors.iter().cloned());
        }
    }

    fn condition(missing: BTreeSet<String>, errors: Vec<String>) -> Self {
        Self {
            conditions: Some(Box::new(ConditionGaps { missing, errors })),
            ..Default::default()
        }
    }
}

/// The witness of a `Yes`: built only when the request asks for an explanation.
type Why = Option<Arc<Witness>>;

/// A branch's value. `Yes` and `No` are determinate (Kleene logic keeps them stable whatever
/// an indeterminate input turns out to be), so they may be memoized; `Unknown` from a cycle or
/// the depth limit may not.
#[derive(Debug, Clone)]
enum Outcome {
    Yes(Why),
    No,
    Unknown { why: Indeterminate },
}

/// Accumulates a union: the first `Yes` wins; otherwise any `Unknown` makes it unknown.
#[derive(Default)]
struct Any {
    unknown: Option<Indeterminate>,
}

impl Any {
    /// Returns the witness if `o` decides the union.
    fn add(&mut self, o: Outcome) -> Option<Why> {
        match o {
            Outcome::Yes(w) => return Some(w),
            Outcome::No => {}
            Outcome::Unknown { why } => {
                self.unknown
                    .get_or_insert_with(Default::default)
                    .merge(&why);
            }
        }
        None
    }

    fn finish(self) -> Outcome {
        match self.unknown {
            Some(why) => Outcome::Unknown { why },
            None => Outcome::No,
        }
    }
}

/// A tuple's condition, evaluated (a tuple without one is `Met`).
enum Cond {
    Met,
    NotMet,
    Unknown(Indeterminate),
}

/// Kleene conjunction of a tuple's condition and what follows it.
fn both(condition: Cond, then: impl FnOnce() -> Outcome) -> Outcome {
    match condition {
        Cond::NotMet => Outcome::No,
        Cond::Met => then(),
        Cond::Unknown(mut why) => match then() {
            Outcome::No => Outcome::No,
            Outcome::Yes(_) => Outcome::Unknown { why },
            Outcome::Unknown { why: w2 } => {
                why.merge(&w2);
                Outcome::Unknown { why }
            }
        },
    }
}

/// A node of the memo: being evaluated (on the resolution stack), decided, or neither (an
/// undecidable result that may not be memoized: the next visit evaluates it again).
enum Slot {
    Active,
    Done(Outcome),
    Free,
}

/// A node `(object, relation)` as one word, for a dense scan.
fn node_key(object: Obj, relation: RelId) -> u64 {
    (u64::from(object) << 32) | u64::from(relation)
}

/// How many nodes the memo scans linearly before it indexes them in a hash map. Most checks
/// visit a dozen nodes or so (the bench workload: 13 on average), where a scan of a short
/// array beats hashing every key twice.
const SCANNED: usize = 32;

/// The per-request memo and resolution stack: nodes in visit order (their keys in one dense
/// array, their slots in another), found by a linear scan of the keys while there are few,
/// through a hash map from key to position once there are more. Positions never change (a node
/// is never removed, only set [`Slot::Free`]), so the evaluation keeps a node's position across
/// its children's evaluation.
#[derive(Default)]
struct Memo {
    keys: Vec<u64>,
    slots: Vec<Slot>,
    index: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
}

impl Memo {
    fn with_capacity(n: usize) -> Self {
        Self {
            keys: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            index: HashMap::default(),
        }
    }

    /// The position of `key`, if it was ever visited.
    fn find(&self, key: u64) -> Option<usize> {
        if self.keys.len() <= SCANNED {
            self.keys.iter().position(|k| *k == key)
        } else {
            self.index.get(&key).map(|&i| i as usize)
        }
    }

    /// Adds a node not visited before, as being evaluated; its position.
    fn push_active(&mut self, key: u64) -> usize {
        let i = self.keys.len();
        self.keys.push(key);
        self.slots.push(Slot::Active);
        if self.keys.len() == SCANNED + 1 {
            // Crossing into hashed lookups: index every node so far.
            self.index.extend(
                self.keys
                    .iter()
                    .enumerate()
                    .map(|(j, k)| (*k, u32::try_from(j).unwrap_or(u32::MAX))),
            );
        } else if self.keys.len() > SCANNED + 1 {
            self.index.insert(key, u32::try_from(i).unwrap_or(u32::MAX));
        }
        i
    }

    fn slot(&self, i: usize) -> Option<&Slot> {
        self.slots.get(i)
    }

    fn set(&mut self, i: usize, slot: Slot) {
        if let Some(s) = self.slots.get_mut(i) {
            *s = slot;
        }
    }

    fn capacity(&self) -> usize {
        self.keys.capacity().max(self.index.capacity())
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.slots.clear();
        self.index.clear();
    }
}

/// The largest memo table (in entries) kept for the next check on the same thread.
const POOLED_MEMO: usize = 1 << 12;

thread_local! {
    /// One emptied memo table per thread, so that a check reuses the last one's allocation
    /// instead of asking the allocator for a fresh table (a memory pool, invisible to results:
    /// the table is always empty when taken).
    static MEMO_POOL: Cell<Option<Memo>> = const { Cell::new(None) };
}

/// A memo table taken from the thread's pool, returned to it (emptied) on drop.
struct PooledMemo(Memo);

impl PooledMemo {
    fn take() -> Self {
        let pooled = MEMO_POOL.try_with(Cell::take).ok().flatten();
        Self(pooled.unwrap_or_else(|| Memo::with_capacity(64)))
    }
}

impl Drop for PooledMemo {
    fn drop(&mut self) {
        let mut memo = std::mem::take(&mut self.0);
        if memo.capacity() <= POOLED_MEMO {
            memo.clear();
            // During thread teardown the pool may be gone; the table is then simply freed.
            let _ = MEMO_POOL.try_with(|pool| pool.set(Some(memo)));
        }
    }
}

impl std::ops::Deref for PooledMemo {
    type Target = Memo;

    fn deref(&self) -> &Memo {
        &self.0
    }
}

impl std::ops::DerefMut for PooledMemo {
    fn deref_mut(&mut self) -> &mut Memo {
        &mut self.0
    }
}

/// The request's user, by id.
#[derive(Clone, Copy)]
enum Subject {
    Object {
        id: Obj,
        object_type: Option<Sym>,
    },
    Userset {
        id: Obj,
        relation: Option<RelId>,
        /// The relation's name, to compare with stored userset tuples.
        name: Option<Sym>,
    },
    Wildcard {
        object_type: Option<Sym>,
    },
}

/// A contextual tuple, by id, with what the evaluation asks of it decided up front.
struct Contextual<'a> {
    object: Obj,
    relation: Option<RelId>,
    tuple: &'a Tuple,
    /// The model admits it (the read-time filter stored tuples go through).
    admitted: bool,
    /// Its user is the request's user, or the wildcard of the user's type.
    matches: bool,
    /// A userset user: its object, and its relation on that object's type.
    userset: Option<(Obj, Option<RelId>)>,
    /// A concrete user: its id and type.
    object_user: Option<(Obj, Option<Sym>)>,
}

/// Where a tuple the evaluation reads comes from.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Stored(UserRef),
    Contextual(&'a Tuple),
}

/// A direct tuple of `object#relation` the model admits (conditional, wildcard, userset or
/// contextual; unconditional concrete users are probed in their bitmap instead).
struct Edge<'a> {
    origin: Origin<'a>,
    condition: Option<&'a TupleCondition>,
    /// The tuple's user is the request's user (or its wildcard).
    matches: bool,
    /// A userset user and the relation it stands for.
    userset: Option<(Obj, Option<RelId>)>,
}

/// A tupleset tuple `object#tupleset@parent` the model admits, and where `computed` continues.
struct ParentEdge<'a> {
    parent: Obj,
    target: Option<RelId>,
    condition: Option<&'a TupleCondition>,
    origin: Origin<'a>,
}

/// How many relations' reverse bitmaps of the user a request keeps at hand.
const SUBJECT_BITS: usize = 16;

/// For each relation probed so far (up to [`SUBJECT_BITS`]): the objects the request's user is
/// directly and unconditionally related to by it (`None`: none).
type SubjectBits<'a> = [Cell<(RelId, Option<Members<'a>>)>; SUBJECT_BITS];

const UNRESOLVED: u32 = u32::MAX;
const ABSENT: u32 = u32::MAX - 1;
const INLINE_NAMES: usize = 64;

/// Model symbol → snapshot name, resolved on first use.
struct NameCache {
    inline: [Cell<u32>; INLINE_NAMES],
    more: Vec<Cell<u32>>,
}

impl NameCache {
    fn new(symbols: usize) -> Self {
        Self {
            inline: std::array::from_fn(|_| Cell::new(UNRESOLVED)),
            more: vec![Cell::new(UNRESOLVED); symbols.saturating_sub(INLINE_NAMES)],
        }
    }

    fn slot(&self, s: Sym) -> Option<&Cell<u32>> {
        let s = s as usize;
        match s.checked_sub(INLINE_NAMES) {
            None => self.inline.get(s),
            Some(i) => self.more.get(i),
        }
    }
}

/// What one request evaluates against: the snapshot, the compiled model, the user and the
/// contextual tuples, by id.
struct Env<'a> {
    snap: &'a Snapshot,
    model: &'a TypeSystem,
    program: &'a Compiled,
    user: &'a User,
    subject: Subject,
    context: &'a Map<String, Value>,
    /// Snapshot ids are below this; request-local ids index `extra` from it.
    stored: Obj,
    extra: &'a [&'a ObjectRef],
    /// Sorted by (object, relation), in request order within one.
    contextual: &'a [Contextual<'a>],
    /// Symbols resolved on first use, when the caller keeps no [`Resolved`].
    names: Option<NameCache>,
    /// The model resolved for the snapshot (when the caller keeps it).
    resolved: Option<&'a Resolved>,
    /// Leopard closures of nested groups usable for this request, by relation; each with the
    /// subject's groups in it, fetched on the first probe (one map lookup per closure and check,
    /// and none for a check that never reaches the closure).
    closures: [Option<ClosureAt<'a>>; CLOSURES],
    closure_subject: (Option<Obj>, Option<Name>),
    subject_bits: SubjectBits<'a>,
}

/// How many nested-group closures a request keeps at hand, on the stack. A model with more
/// uses the first ones; the others' relations are walked, which gives the same answers.
const CLOSURES: usize = 4;

/// A closure usable for a request: the relation it covers, and the subject's groups in it
/// (fetched on first use).
type ClosureAt<'a> = (RelId, &'a GroupClosure, OnceCell<Option<&'a [Obj]>>);

/// An object's `type:id` in `buf`, without building it on the heap (`None` if it does not
/// fit).
fn object_text<'b>(o: &ObjectRef, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let (t, i) = (o.object_type.as_bytes(), o.id.as_bytes());
    let text = buf.get_mut(..t.len() + 1 + i.len())?;
    let (head, rest) = text.split_at_mut(t.len());
    head.copy_from_slice(t);
    let (colon, tail) = rest.split_first_mut()?;
    *colon = b':';
    tail.copy_from_slice(i);
    std::str::from_utf8(text).ok()
}

/// The snapshot id of an object.
fn interned(snap: &Snapshot, o: &ObjectRef) -> Option<Obj> {
    let mut buf = [0u8; 256];
    match object_text(o, &mut buf) {
        Some(text) => snap.object(text),
        None => snap.object(&o.to_string()),
    }
}

/// The snapshot ids of two objects (a request's object and its user's), probed together so
/// that their cache misses overlap.
fn interned_pair(snap: &Snapshot, a: &ObjectRef, b: Option<&ObjectRef>) -> [Option<Obj>; 2] {
    let (mut buf_a, mut buf_b) = ([0u8; 256], [0u8; 256]);
    let Some(b) = b else {
        return [interned(snap, a), None];
    };
    match (object_text(a, &mut buf_a), object_text(b, &mut buf_b)) {
        (Some(ta), Some(tb)) => snap.objects_array([ta, tb]),
        _ => [interned(snap, a), interned(snap, b)],
    }
}

impl<'a> Env<'a> {
    /// The snapshot name of a model symbol, if the snapshot has it.
    fn name(&self, s: Sym) -> Option<Name> {
        if let Some(n) = self.resolved.and_then(|r| r.get(s)) {
            return n;
        }
        let lookup = || self.snap.name(self.program.symbol(s));
        let Some(slot) = self.names.as_ref().and_then(|c| c.slot(s)) else {
            return lookup();
        };
        match slot.get() {
            UNRESOLVED => {
                let n = lookup();
                slot.set(n.unwrap_or(ABSENT));
                n
            }
            ABSENT => None,
            n => Some(n),
        }
    }

    /// The objects the request's (concrete, interned) user `id` is directly and unconditionally
    /// related to by `def`: one reverse-index lookup per relation and request, so that probing
    /// many objects (nested groups, folder chains) touches one small bitmap.
    fn subject_bits(&self, def: &Rel, id: Obj) -> Option<Members<'a>> {
        let lookup = || {
            let (t, r) = (self.name(def.object_type)?, self.name(def.name)?);
            self.snap.reverse(t, r, UserRef::Object(id))
        };
        for slot in &self.subject_bits {
            let (rel, bits) = slot.get();
            if rel == def.id {
                return bits;
            }
            if rel == RelId::MAX {
                let bits = lookup();
                slot.set((def.id, bits));
                return bits;
            }
        }
        lookup()
    }

    /// Whether the model symbol `s` is the snapshot name `n`.
    fn is(&self, s: Sym, n: Name) -> bool {
        self.name(s) == Some(n)
    }

    fn edges(&self, object: Obj, relation: Option<Name>) -> Option<EdgesRef<'a>> {
        if object >= self.stored {
            return None;
        }
        self.snap.edges(object, relation?)
    }

    fn contextual(&self, object: Obj, relation: RelId) -> &'a [Contextual<'a>] {
        let all = self.contextual;
        if all.is_empty() {
            return all;
        }
        let key = (object, Some(relation));
        let from = all.partition_point(|c| (c.object, c.relation) < key);
        let to = all.partition_point(|c| (c.object, c.relation) <= key);
        all.get(from..to).unwrap_or(&[])
    }

    /// Whether the request's user is a concrete object or wildcard of (snapshot) type `t`.
    fn subject_type_is(&self, t: Name) -> bool {
        match self.subject {
            Subject::Object {
                object_type: Some(s),
                ..
            }
            | Subject::Wildcard {
                object_type: Some(s),
            } => self.is(s, t),
            _ => false,
        }
    }

    /// Whether a stored tuple's user is the request's user, or the wildcard of its type.
    fn matches_subject(&self, user: UserRef) -> bool {
        match (user, self.subject) {
            (UserRef::Wildcard(w), _) => self.subject_type_is(w),
            (UserRef::Object(u), Subject::Object { id, .. }) => id == u,
            (
                UserRef::Userset(o, r),
                Subject::Userset {
                    id, name: Some(n), ..
                },
            ) => id == o && self.is(n, r),
            _ => false,
        }
    }

    /// A stored tuple of `def` with `user`, if the model still admits it.
    fn admit_stored(
        &self,
        def: &Rel,
        user: UserRef,
        condition: Option<&'a Arc<TupleCondition>>,
    ) -> Option<Edge<'a>> {
        let cond = condition.map(|c| c.name.as_str());
        let allowed = |r: &Restriction| r.usable && r.condition.as_deref() == cond;
        let userset = match user {
            UserRef::Wildcard(w) => {
                let admitted = def
                    .direct
                    .iter()
                    .any(|r| allowed(r) && r.kind == Kind::Wildcard && self.is(r.object_type, w));
                if !admitted {
                    return None;
                }
                None
            }
            UserRef::Userset(o, rn) => {
                // No type lookup for a relation no restriction names.
                let named = |r: &Restriction| match r.kind {
                    Kind::Userset { relation, .. } => self.is(relation, rn),
                    _ => false,
                };
                if !def.direct.iter().any(|r| allowed(r) && named(r)) {
                    return None;
                }
                let t = self.snap.object_type(o)?;
                let target = def.direct.iter().find_map(|r| match r.kind {
                    Kind::Userset { relation, target }
                        if allowed(r) && self.is(r.object_type, t) && self.is(relation, rn) =>
                    {
                        Some(target)
                    }
                    _ => None,
                })?;
                Some((o, target))
            }
            UserRef::Object(u) => {
                let t = self.snap.object_type(u)?;
                let admitted = def
                    .direct
                    .iter()
                    .any(|r| allowed(r) && r.kind == Kind::Direct && self.is(r.object_type, t));
                if !admitted {
                    return None;
                }
                None
            }
        };
        Some(Edge {
            origin: Origin::Stored(user),
            condition: condition.map(|c| &**c),
            matches: self.matches_subject(user),
            userset,
        })
    }

    /// A contextual tuple as an edge (the caller checks `admitted`).
    fn contextual_edge(c: &Contextual<'a>) -> Edge<'a> {
        Edge {
            origin: Origin::Contextual(c.tuple),
            condition: c.tuple.condition.as_ref(),
            matches: c.matches,
            userset: c.userset,
        }
    }

    /// The concrete objects related to `object` by the tupleset of `ttu` that the model admits
    /// (OpenFGA follows no userset or wildcard through a tupleset).
    fn parents(
        &'a self,
        object: Obj,
        tupleset: RelId,
        ttu: &'a TupleToUserset,
        stored: Option<EdgesRef<'a>>,
    ) -> impl Iterator<Item = ParentEdge<'a>> + 'a {
        let (direct, conditional) = match stored {
            Some(e) => (e.direct, e.conditional),
            None => (&[][..], &[][..]),
        };
        // Consecutive parents mostly share a type: its restriction is looked up once per run.
        let last: Cell<Option<(Name, Option<Option<RelId>>)>> = Cell::new(None);
        let plain = direct.iter().filter_map(move |&parent| {
            let t = self.snap.object_type(parent)?;
            let target = match last.get() {
                Some((lt, target)) if lt == t => target,
                _ => {
                    let target = ttu
                        .parents
                        .iter()
                        .find(|p| p.condition.is_none() && self.is(p.object_type, t))
                        .map(|p| p.target);
                    last.set(Some((t, target)));
                    target
                }
            }?;
            Some(ParentEdge {
                parent,
                target,
                condition: None,
                origin: Origin::Stored(UserRef::Object(parent)),
            })
        });
        let conditional = conditional.iter().filter_map(move |e| {
            let UserRef::Object(parent) = e.user else {
                return None;
            };
            let t = self.snap.object_type(parent)?;
            let p = ttu.parents.iter().find(|p| {
                p.usable
                    && p.condition.as_deref() == Some(e.condition.name.as_str())
                    && self.is(p.object_type, t)
            })?;
            Some(ParentEdge {
                parent,
                target: p.target,
                condition: Some(&*e.condition),
                origin: Origin::Stored(e.user),
            })
        });
        let contextual = self
            .contextual(object, tupleset)
            .iter()
            .filter_map(move |c| {
                let (parent, t) = c.object_user?;
                if !c.admitted {
                    return None;
                }
                let target = ttu
                    .parents
                    .iter()
                    .find(|p| Some(p.object_type) == t)
                    .and_then(|p| p.target);
                Some(ParentEdge {
                    parent,
                    target,
                    condition: c.tuple.condition.as_ref(),
                    origin: Origin::Contextual(c.tuple),
                })
            });
        plain.chain(conditional).chain(contextual)
    }

    /// Evaluates a tuple's condition (if any) against the request context.
    fn condition(&self, condition: Option<&TupleCondition>) -> Cond {
        let Some(condition) = condition else {
            return Cond::Met;
        };
        let Some(compiled) = self.model.condition(&condition.name) else {
            return Cond::NotMet;
        };
        match compiled.evaluate(Some(&condition.context), self.context) {
            Ok(ConditionOutcome::Met) => Cond::Met,
            Ok(ConditionOutcome::NotMet) => Cond::NotMet,
            Ok(ConditionOutcome::Missing(names)) => Cond::Unknown(Indeterminate::condition(
                names.into_iter().collect(),
                Vec::new(),
            )),
            Err(e) => Cond::Unknown(Indeterminate::condition(
                BTreeSet::new(),
                vec![e.to_string()],
            )),
        }
    }

    // Strings, for explanations and traces only.

    fn object_text(&self, o: Obj) -> Cow<'a, str> {
        match o.checked_sub(self.stored) {
            None => Cow::Borrowed(self.snap.object_str(o)),
            Some(i) => Cow::Owned(
                self.extra
                    .get(i as usize)
                    .map(|o| o.to_string())
                    .unwrap_or_default(),
            ),
        }
    }

    fn object_ref(&self, o: Obj) -> ObjectRef {
        match o.checked_sub(self.stored) {
            // Interned strings are `ObjectRef`s printed, so they split back exactly.
            None => {
                let text = self.snap.object_str(o);
                let (t, id) = text.split_once(':').unwrap_or((text, ""));
                ObjectRef::new(t, id)
            }
            Some(i) => self
                .extra
                .get(i as usize)
                .map(|o| (*o).clone())
                .unwrap_or_else(|| ObjectRef::new("", "")),
        }
    }

    /// `object#relation`
    fn at(&self, object: Obj, def: &Rel) -> String {
        format!(
            "{}#{}",
            self.object_text(object),
            self.program.symbol(def.name)
        )
    }

    fn user_of(&self, origin: Origin<'_>) -> User {
        match origin {
            Origin::Contextual(t) => t.user.clone(),
            Origin::Stored(UserRef::Object(o)) => User::Object(self.object_ref(o)),
            Origin::Stored(UserRef::Userset(o, r)) => {
                User::Userset(self.object_ref(o), self.snap.name_str(r).to_string())
            }
            Origin::Stored(UserRef::Wildcard(t)) => {
                User::Wildcard(self.snap.name_str(t).to_string())
            }
        }
    }

    fn key(&self, object: Obj, relation: Sym, user: User) -> TupleKey {
        TupleKey {
            object: self.object_ref(object),
            relation: self.program.symbol(relation).to_string(),
            user,
        }
    }

    fn source(&self, object: Obj, relation: Sym, origin: Origin<'_>) -> Source {
        match origin {
            Origin::Contextual(_) => Source::Contextual,
            Origin::Stored(user) => {
                let origin = self
                    .name(relation)
                    .and_then(|r| self.snap.origin(object, r, user));
                Source::Graph(origin.unwrap_or(TUPLES_GRAPH).to_string())
            }
        }
    }
}

/// The id of an object the request names: its snapshot id, or a request-local one.
fn local_id<'r>(
    snap: &Snapshot,
    stored: Obj,
    extra: &mut Vec<&'r ObjectRef>,
    o: &'r ObjectRef,
) -> Obj {
    placed(interned(snap, o), stored, extra, o)
}

/// The id of an object the request names, given its snapshot id if it has one.
fn placed<'r>(
    interned: Option<Obj>,
    stored: Obj,
    extra: &mut Vec<&'r ObjectRef>,
    o: &'r ObjectRef,
) -> Obj {
    if let Some(i) = interned {
        return i;
    }
    let i = match extra.iter().position(|e| *e == o) {
        Some(i) => i,
        None => {
            extra.push(o);
            extra.len() - 1
        }
    };
    stored.saturating_add(u32::try_from(i).unwrap_or(u32::MAX))
}

struct Evaluator<'a> {
    env: &'a Env<'a>,
    max_depth: u32,
    memo: PooledMemo,
    visited: u32,
    cycle: bool,
    trace: Option<DenyTrace>,
    /// Whether to build witnesses (only an explained allow needs them).
    witnesses: bool,
}

/// Evaluates a check. Request validation errors and an exceeded depth are errors; missing
/// condition parameters give [`Decision::Conditional`].
pub fn check(view: View<'_>, request: &CheckRequest<'_>) -> Result<CheckResult, EngineError> {
    let program = view.model.compiled();
    // The compiled model defines exactly the model's relations, so a request whose relation and
    // (userset) user resolve there, with a user type of the model, is valid; only one that does
    // not needs the full validation, for the error naming what is wrong.
    let root = program.relation_by_name(&request.object.object_type, request.relation);
    let user_valid = view.model.has_type(request.user.user_type())
        && match request.user {
            User::Userset(o, r) => program.relation_by_name(&o.object_type, r).is_some(),
            _ => true,
        };
    if root.is_none() || !user_valid {
        validate_request(
            view.model,
            request.user,
            request.relation,
            &request.object.object_type,
        )?;
    }
    for t in request.contextual {
        view.model
            .validate_tuple(t)
            .map_err(|e| EngineError::ContextualTuple(e.to_string()))?;
    }
    let snap = view.snapshot;
    let model = view.model;
    let stored = u32::try_from(snap.object_count()).unwrap_or(u32::MAX);
    let mut extra: Vec<&ObjectRef> = Vec::new();
    let user_object = match request.user {
        User::Object(o) | User::Userset(o, _) => Some(o),
        User::Wildcard(_) => None,
    };
    let [object_id, user_id] = interned_pair(snap, request.object, user_object);
    if let (Some(o), Some(u)) = (object_id, user_id) {
        snap.preload(o, u);
    }
    let object = placed(object_id, stored, &mut extra, request.object);
    let subject = match request.user {
        User::Object(o) => Subject::Object {
            id: placed(user_id, stored, &mut extra, o),
            object_type: program.symbol_id(&o.object_type),
        },
        User::Userset(o, r) => Subject::Userset {
            id: placed(user_id, stored, &mut extra, o),
            relation: program.relation_by_name(&o.object_type, r),
            name: program.symbol_id(r),
        },
        User::Wildcard(t) => Subject::Wildcard {
            object_type: program.symbol_id(t),
        },
    };
    let mut contextual = Vec::with_capacity(request.contextual.len());
    for t in request.contextual {
        let condition = t.condition.as_ref().map(|c| c.name.as_str());
        let userset = match &t.user {
            User::Userset(o, r) => Some((
                local_id(snap, stored, &mut extra, o),
                program.relation_by_name(&o.object_type, r),
            )),
            _ => None,
        };
        let object_user = match &t.user {
            User::Object(o) => Some((
                local_id(snap, stored, &mut extra, o),
                program.symbol_id(&o.object_type),
            )),
            _ => None,
        };
        contextual.push(Contextual {
            object: local_id(snap, stored, &mut extra, &t.object),
            relation: program.relation_by_name(&t.object.object_type, &t.relation),
            tuple: t,
            admitted: model.admits(&t.object.object_type, &t.relation, &t.user, condition),
            matches: match (&t.user, request.user) {
                (User::Wildcard(w), User::Object(u)) => *w == u.object_type,
                (a, b) => a == b,
            },
            userset,
            object_user,
        });
    }
    // Stable: tuples of one (object, relation) stay in request order.
    contextual.sort_by_key(|c| (c.object, c.relation));
    // Closures describe stored tuples only: not with contextual tuples, and not for a userset
    // subject (closures hold concrete members and wildcards).
    let closure_subject = match (request.user, subject) {
        // The subject's id is already known: a snapshot id, or a request-local one (no closure
        // holds those).
        (User::Object(o), Subject::Object { id, object_type }) => {
            let resolved = object_type.and_then(|t| view.resolved.and_then(|r| r.get(t)));
            (
                (id < stored).then_some(id),
                resolved.unwrap_or_else(|| snap.name(&o.object_type)),
            )
        }
        (User::Object(o), _) => (interned(snap, o), snap.name(&o.object_type)),
        (User::Wildcard(t), _) => (None, snap.name(t)),
        (User::Userset(..), _) => (None, None),
    };
    let mut closures: [Option<ClosureAt<'_>>; CLOSURES] = Default::default();
    if let (Some(g), User::Object(_) | User::Wildcard(_)) = (view.groups, request.user)
        && request.contextual.is_empty()
    {
        let usable = g.usable().filter_map(|(spec, c)| {
            view.resolved
                .and_then(|r| r.closure_relation(spec))
                .or_else(|| program.relation_by_name(&spec.object_type, &spec.relation))
                .map(|r| (r, c, OnceCell::new()))
        });
        for (slot, c) in closures.iter_mut().zip(usable) {
            *slot = Some(c);
        }
    }
    let env = Env {
        snap,
        model,
        program,
        user: request.user,
        subject,
        context: request.context,
        stored,
        extra: &extra,
        contextual: &contextual,
        names: match view.resolved {
            Some(_) => None,
            None => Some(NameCache::new(program.symbol_count())),
        },
        resolved: view.resolved,
        closures,
        closure_subject,
        subject_bits: std::array::from_fn(|_| Cell::new((RelId::MAX, None))),
    };
    let mut ev = Evaluator {
        env: &env,
        max_depth: request.max_depth,
        memo: PooledMemo::take(),
        visited: 0,
        cycle: false,
        trace: None,
        witnesses: request.explain,
    };
    let outcome = ev.relation(object, root, 0);
    let mut result = CheckResult {
        decision: Decision::Denied,
        explanation: None,
        deny_trace: None,
        visited: ev.visited,
        cycle: ev.cycle,
        cache_hit: false,
    };
    let denied = match outcome {
        Outcome::Yes(w) => {
            result.decision = Decision::Allowed;
            if request.explain {
                result.explanation =
                    w.map(|w| Explanation::from_witness(&w, &IriMapper::default()));
            }
            false
        }
        Outcome::No => true,
        Outcome::Unknown { why } => {
            let gaps = why.conditions.map(|g| *g).unwrap_or_default();
            if gaps.missing.is_empty() && !why.depth && gaps.errors.is_empty() {
                // Only a cycle was undecidable: OpenFGA answers "not allowed".
                true
            } else {
                if why.depth {
                    return Err(EngineError::DepthExceeded(request.max_depth));
                }
                if let Some(e) = gaps.errors.first() {
                    return Err(EngineError::Condition(e.clone()));
                }
                result.decision = Decision::Conditional {
                    missing: gaps.missing.into_iter().collect(),
                };
                false
            }
        }
    };
    if denied && request.explain {
        // A second, traced pass: the first stays free of tracing cost.
        ev.memo.clear();
        ev.trace = Some(DenyTrace::default());
        ev.witnesses = false;
        let _ = ev.relation(object, root, 0);
        result.deny_trace = ev.trace.take();
    }
    Ok(result)
}

impl<'a> Evaluator<'a> {
    fn note(
        &mut self,
        at: impl FnOnce() -> String,
        rule: impl FnOnce() -> String,
        missing: impl FnOnce() -> String,
    ) {
        if let Some(t) = &mut self.trace {
            t.push(at(), rule(), missing());
        }
    }

    /// A witness, if this pass builds them.
    fn witness(&self, w: impl FnOnce() -> Witness) -> Why {
        self.witnesses.then(|| Arc::new(w()))
    }

    /// Does the user have `relation` on `object`? (`None`: a relation the object's type does
    /// not define.)
    fn relation(&mut self, object: Obj, relation: Option<RelId>, depth: u32) -> Outcome {
        if depth >= self.max_depth {
            return Outcome::Unknown {
                why: Indeterminate {
                    depth: true,
                    ..Default::default()
                },
            };
        }
        let env = self.env;
        let Some(def) = relation.and_then(|r| env.program.relation(r)) else {
            return Outcome::No;
        };
        let rel = def.id;
        if let Subject::Userset {
            id,
            relation: Some(r),
            ..
        } = env.subject
            && id == object
            && r == rel
        {
            return Outcome::Yes(self.witness(|| Witness::SelfUserset {
                at: env.at(object, def),
            }));
        }
        // A nested group with a Leopard closure: one bitmap probe, when the walk it replaces
        // could not have hit the depth limit and no explanation or trace needs the path.
        if !self.witnesses
            && self.trace.is_none()
            && object < env.stored
            && let Some((_, c, member_of)) = env.closures.iter().flatten().find(|(r, ..)| *r == rel)
            && depth.saturating_add(c.max_depth()) < self.max_depth
        {
            let (subject, t) = env.closure_subject;
            let member_of = *member_of.get_or_init(|| subject.and_then(|s| c.member_of(s)));
            return if c.has_in(object, member_of, t) {
                Outcome::Yes(None)
            } else {
                Outcome::No
            };
        }
        if def.leaf {
            // Nothing below to recurse into or to share: no memo entry (it would only save
            // reading the same tuples again if the node were asked twice).
            self.visited += 1;
            return self.rewrite(object, def, &def.rewrite, depth);
        }
        let key = node_key(object, rel);
        let at = match self.memo.find(key) {
            Some(i) => match self.memo.slot(i) {
                Some(Slot::Done(o)) => return o.clone(),
                Some(Slot::Active) => {
                    self.cycle = true;
                    self.note(
                        || env.at(object, def),
                        || "cycle".into(),
                        || "this relation depends on itself here; the cycle adds nothing".into(),
                    );
                    return Outcome::Unknown {
                        why: Indeterminate {
                            cycle: true,
                            ..Default::default()
                        },
                    };
                }
                Some(Slot::Free) | None => {
                    self.memo.set(i, Slot::Active);
                    i
                }
            },
            None => self.memo.push_active(key),
        };
        self.visited += 1;
        let outcome = self.rewrite(object, def, &def.rewrite, depth);
        let memoizable = match &outcome {
            Outcome::Yes(_) => true,
            Outcome::No => true,
            Outcome::Unknown { why } => !why.cycle && !why.depth,
        };
        let slot = match memoizable {
            true => Slot::Done(outcome.clone()),
            false => Slot::Free,
        };
        self.memo.set(at, slot);
        outcome
    }

    fn rewrite(&mut self, object: Obj, def: &'a Rel, node: &'a Node, depth: u32) -> Outcome {
        let env = self.env;
        let at = || env.at(object, def);
        match &node.op {
            Op::This => self.direct(object, def, node, depth),
            Op::Computed(target) => match self.relation(object, *target, depth + 1) {
                Outcome::Yes(w) => Outcome::Yes(w.map(|then| {
                    Arc::new(Witness::Computed {
                        at: at(),
                        rule: node.rule.clone(),
                        then,
                    })
                })),
                other => other,
            },
            Op::TupleToUserset(ttu) => self.tuple_to_userset(object, def, node, ttu, depth),
            Op::Union(children) => {
                let mut any = Any::default();
                for c in children {
                    let o = self.rewrite(object, def, c, depth);
                    if let Some(w) = any.add(o) {
                        return Outcome::Yes(w);
                    }
                }
                any.finish()
            }
            Op::Intersection(children) => {
                let mut all = Vec::new();
                let mut unknown: Option<Indeterminate> = None;
                for c in children {
                    match self.rewrite(object, def, c, depth) {
                        Outcome::Yes(w) => all.extend(w),
                        Outcome::No => {
                            self.note(
                                at,
                                || node.dsl.clone(),
                                || format!("operand '{}' does not hold", c.dsl),
                            );
                            return Outcome::No;
                        }
                        Outcome::Unknown { why } => {
                            unknown.get_or_insert_with(Default::default).merge(&why);
                        }
                    }
                }
                match unknown {
                    Some(why) => Outcome::Unknown { why },
                    None => Outcome::Yes(self.witness(|| Witness::Intersection {
                        at: at(),
                        rule: node.rule.clone(),
                        all,
                    })),
                }
            }
            Op::Exclusion { base, subtract } => {
                let b = self.rewrite(object, def, base, depth);
                if let Outcome::No = b {
                    return b;
                }
                let s = self.rewrite(object, def, subtract, depth);
                match (b, s) {
                    (_, Outcome::Yes(_)) => {
                        self.note(
                            at,
                            || node.dsl.clone(),
                            || format!("excluded: '{}' holds", subtract.dsl),
                        );
                        Outcome::No
                    }
                    (Outcome::Yes(w), Outcome::No) => Outcome::Yes(w.map(|base| {
                        Arc::new(Witness::Exclusion {
                            at: at(),
                            rule: node.rule.clone(),
                            base,
                            excluded: subtract.dsl.clone(),
                        })
                    })),
                    (b, s) => {
                        let mut why = Indeterminate::default();
                        for o in [b, s] {
                            if let Outcome::Unknown { why: w, .. } = o {
                                why.merge(&w);
                            }
                        }
                        Outcome::Unknown { why }
                    }
                }
            }
        }
    }

    /// The request's user, if it is an unconditional concrete user of `object#def` (the model
    /// admitting its type there): a probe of the user's reverse bitmap, which is the transpose
    /// of the forward one (an index invariant).
    fn plain_direct(&self, object: Obj, def: &Rel) -> Option<UserRef> {
        let env = self.env;
        let Subject::Object {
            id,
            object_type: Some(user_type),
        } = env.subject
        else {
            return None;
        };
        let admitted = def
            .direct
            .iter()
            .any(|r| r.kind == Kind::Direct && r.object_type == user_type && r.condition.is_none());
        if !admitted || id >= env.stored || object >= env.stored {
            return None;
        }
        let bits = env.subject_bits(def, id)?;
        bits.contains(object).then_some(UserRef::Object(id))
    }

    fn direct(&mut self, object: Obj, def: &'a Rel, node: &'a Node, depth: u32) -> Outcome {
        let env = self.env;
        let relation = def.name;
        // 1. The user itself, unconditionally (bitmap probe).
        if let Some(user) = self.plain_direct(object, def) {
            return Outcome::Yes(self.witness(|| Witness::Tuple {
                tuple: env.key(object, relation, env.user.clone()),
                condition: None,
                source: env.source(object, relation, Origin::Stored(user)),
                rule: node.rule.clone(),
            }));
        }
        // Other stored tuples, unless the model admits none here (then only contextual ones).
        let stored = match def.plain_only {
            true => None,
            false => env.edges(object, env.name(relation)),
        };
        let contextual = env.contextual(object, def.id);
        let mut any = Any::default();
        // The OpenFGA order of the direct tuples read here: wildcards, usersets, conditional
        // tuples (stored), then contextual tuples. First those naming the user (or its
        // wildcard) exactly…
        if let Some(edges) = stored {
            let candidates = edges
                .wildcards
                .iter()
                .map(|w| (UserRef::Wildcard(*w), None))
                .chain(
                    edges
                        .usersets
                        .iter()
                        .map(|&[o, r]| (UserRef::Userset(o, r), None)),
                )
                .chain(
                    edges
                        .conditional
                        .iter()
                        .map(|e| (e.user, Some(&e.condition))),
                );
            for (user, condition) in candidates {
                if !env.matches_subject(user) {
                    continue;
                }
                let Some(e) = env.admit_stored(def, user, condition) else {
                    continue;
                };
                if let Some(w) = any.add(self.exact(object, def, node, &e)) {
                    return Outcome::Yes(w);
                }
            }
        }
        for c in contextual {
            if c.admitted && c.matches {
                let e = Env::contextual_edge(c);
                if let Some(w) = any.add(self.exact(object, def, node, &e)) {
                    return Outcome::Yes(w);
                }
            }
        }
        // …then the usersets the user may be in.
        if let Some(edges) = stored {
            let candidates = edges
                .usersets
                .iter()
                .map(|&[o, r]| (UserRef::Userset(o, r), None))
                .chain(
                    edges
                        .conditional
                        .iter()
                        .filter(|e| matches!(e.user, UserRef::Userset(..)))
                        .map(|e| (e.user, Some(&e.condition))),
                );
            for (user, condition) in candidates {
                let Some(e) = env.admit_stored(def, user, condition) else {
                    continue;
                };
                if let Some(w) = any.add(self.through(object, def, node, &e, depth)) {
                    return Outcome::Yes(w);
                }
            }
        }
        for c in contextual {
            if c.admitted {
                let e = Env::contextual_edge(c);
                if let Some(w) = any.add(self.through(object, def, node, &e, depth)) {
                    return Outcome::Yes(w);
                }
            }
        }
        if self.trace.is_some() {
            let user = env.user.to_string();
            self.note(
                || env.at(object, def),
                || node.rule.clone(),
                || {
                    format!(
                        "no tuple {}@{user} (nor a wildcard or a userset containing it)",
                        env.at(object, def)
                    )
                },
            );
        }
        any.finish()
    }

    /// A direct tuple naming the user (or its wildcard): holds if its condition does.
    fn exact(&mut self, object: Obj, def: &'a Rel, node: &'a Node, e: &Edge<'a>) -> Outcome {
        let env = self.env;
        let relation = def.name;
        match env.condition(e.condition) {
            Cond::Met => Outcome::Yes(self.witness(|| Witness::Tuple {
                tuple: env.key(object, relation, env.user_of(e.origin)),
                condition: e.condition.map(|c| c.name.clone()),
                source: env.source(object, relation, e.origin),
                rule: node.rule.clone(),
            })),
            not_met => {
                if let Some(c) = e.condition {
                    self.note(
                        || env.at(object, def),
                        || node.rule.clone(),
                        || {
                            format!(
                                "the tuple {}'s condition '{}' is not met",
                                env.key(object, relation, env.user_of(e.origin)),
                                c.name
                            )
                        },
                    );
                }
                match not_met {
                    Cond::Unknown(why) => Outcome::Unknown { why },
                    _ => Outcome::No,
                }
            }
        }
    }

    /// A direct userset tuple: holds if its condition does and the user is in the userset.
    /// (`No` for a tuple that is not a userset, or is the user itself, matched exactly.)
    fn through(
        &mut self,
        object: Obj,
        def: &'a Rel,
        node: &'a Node,
        e: &Edge<'a>,
        depth: u32,
    ) -> Outcome {
        let Some((uo, ur)) = e.userset else {
            return Outcome::No;
        };
        if e.matches {
            return Outcome::No;
        }
        let env = self.env;
        let relation = def.name;
        let c = env.condition(e.condition);
        both(c, || match self.relation(uo, ur, depth + 1) {
            Outcome::Yes(then) => Outcome::Yes(then.map(|then| {
                Arc::new(Witness::Userset {
                    tuple: env.key(object, relation, env.user_of(e.origin)),
                    condition: e.condition.map(|c| c.name.clone()),
                    source: env.source(object, relation, e.origin),
                    rule: node.rule.clone(),
                    then,
                })
            })),
            other => other,
        })
    }

    fn tuple_to_userset(
        &mut self,
        object: Obj,
        def: &'a Rel,
        node: &'a Node,
        ttu: &'a TupleToUserset,
        depth: u32,
    ) -> Outcome {
        let env = self.env;
        let Some(ts_def) = ttu.tupleset.and_then(|t| env.program.relation(t)) else {
            return Outcome::No;
        };
        let stored = env.edges(object, env.name(ts_def.name));
        let mut any = Any::default();
        let mut n = 0usize;
        for p in env.parents(object, ts_def.id, ttu, stored) {
            n += 1;
            let Some(target) = p.target else {
                continue;
            };
            let c = env.condition(p.condition);
            let o = both(c, || {
                match self.relation(p.parent, Some(target), depth + 1) {
                    Outcome::Yes(then) => Outcome::Yes(then.map(|then| {
                        let user = match p.origin {
                            Origin::Contextual(t) => t.user.clone(),
                            Origin::Stored(_) => User::Object(env.object_ref(p.parent)),
                        };
                        Arc::new(Witness::TupleToUserset {
                            tuple: env.key(object, ts_def.name, user),
                            condition: p.condition.map(|c| c.name.clone()),
                            source: env.source(object, ts_def.name, p.origin),
                            rule: node.rule.clone(),
                            then,
                        })
                    })),
                    other => other,
                }
            });
            if let Some(w) = any.add(o) {
                return Outcome::Yes(w);
            }
        }
        if self.trace.is_some() {
            self.note(
                || env.at(object, def),
                || node.rule.clone(),
                || {
                    if n == 0 {
                        format!(
                            "no tuple {}#{}@… to follow",
                            env.object_text(object),
                            ttu.tupleset_name
                        )
                    } else {
                        format!(
                            "none of the {n} '{}' objects grants '{}'",
                            ttu.tupleset_name, ttu.computed_name
                        )
                    }
                },
            );
        }
        any.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Change, TupleChange};
    use crate::reference::{Reference, Tri};

    /// A model with more symbols than the inline name cache and more directly assigned
    /// relations than the user's reverse-bitmap cache, contextual tuples naming objects the
    /// snapshot has never interned: the engine agrees with the reference evaluator (which reads
    /// stored and contextual tuples as one list).
    #[test]
    fn large_models_and_unknown_objects_agree_with_the_reference() {
        let mut dsl = String::from(
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, user:*, group#member]\ntype doc\n  relations\n    define parent: [doc]\n    define r0: [user, group#member]\n",
        );
        for i in 1..70 {
            dsl.push_str(&format!(
                "    define r{i}: [user, group#member] or r{}\n",
                i - 1
            ));
        }
        dsl.push_str("    define up: r69 from parent\n");
        let model = TypeSystem::from_dsl(&dsl).unwrap();
        assert!(model.compiled().symbol_count() > INLINE_NAMES);
        let t = |u: &str, r: &str, o: &str| Tuple::parse(u, r, o).unwrap();
        let stored = [
            t("user:anne", "r0", "doc:1"),
            t("group:g#member", "r35", "doc:2"),
            t("user:bob", "member", "group:g"),
            t("doc:1", "parent", "doc:3"),
            t("user:carol", "r50", "doc:1"),
        ];
        let contextual = [
            t("user:dan", "member", "group:g"),
            t("doc:2", "parent", "doc:new"),
            t("user:erin", "r10", "doc:new2"),
            t("group:h#member", "r5", "doc:1"),
            t("user:fay", "member", "group:h"),
        ];
        let changes: Vec<TupleChange> = stored
            .iter()
            .map(|t| TupleChange {
                change: Change::Add,
                tuple: t.clone(),
                graph: Arc::from(TUPLES_GRAPH),
            })
            .collect();
        let snapshot = Snapshot::empty(0).apply(1, &changes, TUPLES_GRAPH);
        // Symbols resolved per request, and resolved up front for the snapshot.
        let resolved = Resolved::new(&snapshot, &model, None);
        let views = [None, Some(&resolved)].map(|resolved| View {
            snapshot: &snapshot,
            model: &model,
            groups: None,
            resolved,
        });
        let context = Map::new();
        let all: Vec<Tuple> = stored.iter().chain(&contextual).cloned().collect();
        let reference = Reference {
            model: &model,
            tuples: &all,
            context: &context,
            max_depth: 200,
        };
        let users = [
            "user:anne",
            "user:bob",
            "user:carol",
            "user:dan",
            "user:erin",
            "user:fay",
            "user:zed",
            "user:*",
            "group:g#member",
            "group:h#member",
        ];
        let mut allowed = 0;
        for u in users {
            let user = User::parse(u).unwrap();
            for relation in ["r0", "r20", "r40", "r69", "up"] {
                for o in ["doc:1", "doc:2", "doc:3", "doc:new", "doc:new2"] {
                    let object = ObjectRef::parse(o).unwrap();
                    let want = reference.check(&user, relation, &object);
                    for explain in [false, true] {
                        let request = CheckRequest {
                            user: &user,
                            relation,
                            object: &object,
                            context: &context,
                            contextual: &contextual,
                            explain,
                            max_depth: 200,
                        };
                        for view in views {
                            let got = check(view, &request).unwrap();
                            let yes = got.decision == Decision::Allowed;
                            assert_eq!(yes, want == Tri::True, "{u} {relation} {o}");
                            if explain {
                                assert_eq!(got.explanation.is_some(), yes, "{u} {relation} {o}");
                                assert_eq!(got.deny_trace.is_some(), !yes, "{u} {relation} {o}");
                            }
                            allowed += usize::from(yes && explain);
                        }
                    }
                }
            }
        }
        assert!(allowed > 40, "{allowed}");
    }
}
