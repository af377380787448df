//! Bottom-up evaluation over roaring bitmaps: for one subject, the set of objects of a type on
//! which it has a relation, computed for every node of the model's rewrite graph in dependency
//! order (see [`crate::model::plan`]) instead of one object at a time.
//!
//! Values are Kleene-valued sets ([`Sets`]): `yes` (the relation holds), `undecided` (it
//! depends on a missing condition parameter, a failing condition, or an unfounded cycle), and
//! implicitly *no* for every other object. Each rewrite rule is a set operation — a worked
//! example, for `define viewer: ([user, group#member] or viewer from parent) but not blocked`
//! and subject `user:anne`:
//!
//! ```text
//! direct   = rev(folder, viewer, user:anne)                  one bitmap from the reverse index
//!          ∪ ⋃ { rev(folder, viewer, g#member) : g ∈ member } one per group anne is in
//! from     = ⋃ { rev(folder, parent, p) : p ∈ viewer }        folders whose parent anne views
//! viewer   = (direct ∪ from) − (blocked.yes ∪ blocked.undecided)
//! ```
//!
//! and the three-valued forms: `a ∪ b` has yes `Ya ∪ Yb`; `a ∩ b` has yes `Ya ∩ Yb` and is
//! undecided on `(Da ∩ Db) − Y` (`D = Y ∪ undecided`); `a − b` has yes `Ya − Db` and is
//! undecided on `(Da − Yb) − Y`.
//!
//! Recursive components (nested groups, folder trees) are iterated to a fixpoint, Jacobi-style
//! (each round reads only the previous round's values), starting from *everything undecided*
//! (the universe of their types): they converge to the Kripke–Kleene fixpoint, which is what
//! top-down `check` computes — an unfounded cycle stays undecided and never allows, and blocks
//! under `but not`. Each round extends derivations and refutations by one hop, so the rounds
//! give a bound on how deep `check` would explore ([`Reach::depth_bound`]); callers compare it
//! with the request's depth limit, since `check` stops at that limit and this evaluation does
//! not. Nested groups with a Leopard closure ([`crate::index::groups`]) skip the iteration.

use super::{EngineError, View};
use crate::condition::ConditionOutcome;
use crate::index::{Members, Name, Obj, Snapshot, UserRef};
use crate::model::plan::Plan;
use crate::model::{RelationDef, RestrictionKind, Rewrite, TypeSystem};
use crate::tuple::User;
use roaring::RoaringBitmap;
use serde_json::{Map, Value};

/// A Kleene-valued set of objects: `yes` and `undecided` are disjoint; every other object is
/// *no*.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sets {
    pub yes: RoaringBitmap,
    pub undecided: RoaringBitmap,
}

impl Sets {
    /// Objects that are not *no*.
    pub fn maybe(&self) -> RoaringBitmap {
        &self.yes | &self.undecided
    }

    fn normalize(mut self) -> Sets {
        self.undecided -= &self.yes;
        self
    }

    fn or(mut self, other: &Sets) -> Sets {
        self.yes |= &other.yes;
        self.undecided |= &other.undecided;
        self.normalize()
    }

    fn and(&self, other: &Sets) -> Sets {
        let yes = &self.yes & &other.yes;
        let undecided = (self.maybe() & other.maybe()) - &yes;
        Sets { yes, undecided }
    }

    fn but_not(&self, subtract: &Sets) -> Sets {
        let yes = &self.yes - &subtract.maybe();
        let undecided = (self.maybe() - &subtract.yes) - &yes;
        Sets { yes, undecided }
    }
}

/// Most fixpoint rounds in one recursive component before evaluation gives up (an error, never
/// an answer). Rounds are bounded by the longest chain in the data; this is a safety net.
pub const MAX_ROUNDS: u32 = 100_000;

/// The result of bottom-up evaluation for one subject and one `type#relation`.
#[derive(Debug, Clone)]
pub struct Reach {
    pub sets: Sets,
    /// An upper bound on the hops (computed relations, tuple-to-userset steps and userset
    /// tuples) any object's answer needed; `check` answers the same when this is below its
    /// depth limit.
    pub depth_bound: u32,
    /// Nodes evaluated (a node in a recursive component counts once per round).
    pub node_evaluations: u32,
    /// Fixpoint rounds, summed over recursive components.
    pub rounds: u32,
    pub condition_evaluations: u32,
}

/// Evaluates `subject`'s `relation` on every object of `object_type`.
///
/// The snapshot must have the subject's object interned when the subject is a userset (the
/// object is then a member of its own userset); [`super::lookup`] arranges that.
pub fn reach(
    view: View<'_>,
    subject: &User,
    relation: &str,
    object_type: &str,
    context: &Map<String, Value>,
) -> Result<Reach, EngineError> {
    let plan = view.model.plan();
    let target =
        plan.node_id(object_type, relation)
            .ok_or_else(|| EngineError::UnknownRelation {
                object_type: object_type.to_string(),
                relation: relation.to_string(),
            })?;
    let subject_obj = match subject {
        User::Object(o) | User::Userset(o, _) => view.snapshot.object(&o.to_string()),
        User::Wildcard(_) => None,
    };
    let mut ev = Eval {
        snap: view.snapshot,
        model: view.model,
        plan,
        subject,
        subject_obj,
        context,
        values: vec![None; plan.len()],
        bounds: vec![0; plan.len()],
        node_evaluations: 0,
        rounds: 0,
        condition_evaluations: std::cell::Cell::new(0),
    };
    let needs = plan.needs(target).cloned().unwrap_or_default();
    for (si, scc) in plan.sccs().iter().enumerate() {
        let Some(&negated) = needs.get(&si) else {
            continue;
        };
        if let Some(done) = ev.use_closure(scc, view.groups) {
            ev.rounds += u32::from(done);
            continue;
        }
        if plan.is_cyclic(si) {
            ev.component(si, scc, negated)?;
        } else {
            for &n in scc {
                let v = ev.node(n);
                let bound = plan
                    .deps(n)
                    .iter()
                    .map(|(d, _)| ev.bounds.get(*d).copied().unwrap_or(0) + 1)
                    .max()
                    .unwrap_or(0);
                if let Some(slot) = ev.bounds.get_mut(n) {
                    *slot = bound;
                }
                if let Some(slot) = ev.values.get_mut(n) {
                    *slot = Some(v);
                }
            }
        }
    }
    let sets = ev
        .values
        .get_mut(target)
        .and_then(Option::take)
        .unwrap_or_default();
    Ok(Reach {
        sets,
        depth_bound: ev.bounds.get(target).copied().unwrap_or(0),
        node_evaluations: ev.node_evaluations,
        rounds: ev.rounds,
        condition_evaluations: ev.condition_evaluations.get(),
    })
}

/// Collects the parts of a union (borrowed bitmaps from the index, and single objects) and
/// unions them once at the end: folding many small bitmaps into a growing one copies the
/// accumulator every time.
#[derive(Default)]
struct Parts<'s> {
    yes: Vec<&'s RoaringBitmap>,
    undecided: Vec<&'s RoaringBitmap>,
    yes_one: Vec<Obj>,
    undecided_one: Vec<Obj>,
}

impl Parts<'_> {
    fn finish(self) -> Sets {
        use roaring::MultiOps;
        let mut yes = self.yes.into_iter().union();
        yes |= singles(self.yes_one);
        let mut undecided = self.undecided.into_iter().union();
        undecided |= singles(self.undecided_one);
        Sets { yes, undecided }.normalize()
    }
}

/// Below this many single objects, [`singles`] sorts them; from it, it sets their bits.
const DENSE_SINGLES: usize = 1024;

/// A bitmap of single objects (unsorted, possibly repeated; they come from the index's short
/// reverse entries, often thousands of them in one union). Many are set as bits of a byte
/// array over their range and converted container by container, unless the range is sparse:
/// one pass over the objects, where inserting them one by one into the bitmap, even sorted,
/// cost a search per object (the largest part of a cold 1,000-candidate filter).
fn singles(mut ids: Vec<Obj>) -> RoaringBitmap {
    if ids.len() >= DENSE_SINGLES
        && let (Some(&min), Some(&max)) = (ids.iter().min(), ids.iter().max())
        && max < u32::MAX - 64
    {
        let base = min & !7;
        let span = (max - base) as usize + 1;
        // At most 64 bits of range per object: a byte array no larger than 8 bytes an object.
        if span / 64 <= ids.len() {
            let mut bytes = vec![0u8; span.div_ceil(8)];
            for id in &ids {
                let i = (id - base) as usize;
                if let Some(b) = bytes.get_mut(i / 8) {
                    *b |= 1 << (i % 8);
                }
            }
            return RoaringBitmap::from_lsb0_bytes(base, &bytes);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    // Sorted and distinct, so `from_sorted_iter` cannot fail; the fallback only keeps this total.
    RoaringBitmap::from_sorted_iter(ids.iter().copied())
        .unwrap_or_else(|_| ids.into_iter().collect())
}

/// A condition outcome or a set label, for combining a tuple with what it leads to.
#[derive(Clone, Copy, PartialEq)]
enum Label {
    Yes,
    Undecided,
}

struct Eval<'a> {
    snap: &'a Snapshot,
    model: &'a TypeSystem,
    plan: &'a Plan,
    subject: &'a User,
    subject_obj: Option<Obj>,
    context: &'a Map<String, Value>,
    values: Vec<Option<Sets>>,
    bounds: Vec<u32>,
    node_evaluations: u32,
    rounds: u32,
    condition_evaluations: std::cell::Cell<u32>,
}

impl<'a> Eval<'a> {
    /// A nested-group component answered by its Leopard closure: the groups the subject is a
    /// transitive member of, in one pass. `None` when there is no usable closure (or the
    /// subject is a userset, which closures do not track).
    fn use_closure(
        &mut self,
        scc: &[usize],
        groups: Option<&crate::index::groups::GroupIndex>,
    ) -> Option<bool> {
        let [n] = scc else {
            return None;
        };
        let closure = groups?.closure(*n)?;
        let (obj, type_name) = match self.subject {
            User::Object(o) => (self.subject_obj, self.snap.name(&o.object_type)),
            User::Wildcard(t) => (None, self.snap.name(t)),
            User::Userset(..) => return None,
        };
        let yes = closure.groups_of(obj, type_name);
        self.node_evaluations += 1;
        if let Some(slot) = self.values.get_mut(*n) {
            *slot = Some(Sets {
                yes,
                undecided: RoaringBitmap::new(),
            });
        }
        if let Some(slot) = self.bounds.get_mut(*n) {
            *slot = closure.max_depth();
        }
        Some(true)
    }

    /// Iterates a recursive component to its fixpoint (see the module doc).
    fn component(&mut self, si: usize, scc: &[usize], negated: bool) -> Result<(), EngineError> {
        // Always from "everything undecided": besides telling unfounded cycles from "no" where
        // a negation reads them, the rounds it takes to refute bound how deep a top-down
        // `check` would explore, which the depth bound must cover (an object `check` cannot
        // refute within its depth limit is an error there, not a "no").
        let _ = (si, negated);
        let kleene = true;
        let mut external = 0;
        for &n in scc {
            let start = if kleene {
                let universe = self
                    .plan
                    .node(n)
                    .and_then(|node| self.snap.name(&node.object_type))
                    .and_then(|t| self.snap.objects_of_type(t))
                    .cloned()
                    .unwrap_or_default();
                Sets {
                    yes: RoaringBitmap::new(),
                    undecided: universe,
                }
            } else {
                Sets::default()
            };
            if let Some(slot) = self.values.get_mut(n) {
                *slot = Some(start);
            }
            for (d, _) in self.plan.deps(n) {
                if !scc.contains(d) {
                    external = external.max(self.bounds.get(*d).copied().unwrap_or(0) + 1);
                }
            }
        }
        let mut rounds = 0u32;
        let mut changed_rounds = 0u32;
        loop {
            rounds += 1;
            if rounds > MAX_ROUNDS {
                return Err(EngineError::NotConverged(MAX_ROUNDS));
            }
            let next: Vec<Sets> = scc.iter().map(|&n| self.node(n)).collect();
            let mut changed = false;
            for (&n, v) in scc.iter().zip(next) {
                if let Some(slot) = self.values.get_mut(n)
                    && slot.as_ref() != Some(&v)
                {
                    changed = true;
                    *slot = Some(v);
                }
            }
            if !changed {
                break;
            }
            changed_rounds = rounds;
        }
        self.rounds += rounds;
        for &n in scc {
            if let Some(slot) = self.bounds.get_mut(n) {
                *slot = external + changed_rounds;
            }
        }
        Ok(())
    }

    fn value(&self, n: Option<usize>) -> Sets {
        self.value_ref(n).cloned().unwrap_or_default()
    }

    fn value_ref(&self, n: Option<usize>) -> Option<&Sets> {
        n.and_then(|n| self.values.get(n)).and_then(|v| v.as_ref())
    }

    /// One node's value from the current values of its dependencies.
    fn node(&mut self, n: usize) -> Sets {
        self.node_evaluations += 1;
        let Some(node) = self.plan.node(n) else {
            return Sets::default();
        };
        let Some(def) = self.model.relation(&node.object_type, &node.relation) else {
            return Sets::default();
        };
        let type_name = self.snap.name(&node.object_type);
        let mut sets = self.rewrite(&node.object_type, type_name, def, &def.rewrite);
        // A userset subject is a member of itself: `group:eng#member` has `member` on
        // `group:eng`.
        if let User::Userset(o, r) = self.subject
            && o.object_type == node.object_type
            && *r == node.relation
            && let Some(x) = self.subject_obj
        {
            sets.yes.insert(x);
            sets.undecided.remove(x);
        }
        sets
    }

    fn rewrite(
        &mut self,
        object_type: &str,
        type_name: Option<Name>,
        def: &RelationDef,
        rewrite: &Rewrite,
    ) -> Sets {
        match rewrite {
            Rewrite::This => self.direct(type_name, def),
            Rewrite::Computed(r) => self.value(self.plan.node_id(object_type, r)),
            Rewrite::TupleToUserset { tupleset, computed } => {
                self.tuple_to_userset(object_type, type_name, tupleset, computed)
            }
            Rewrite::Union(children) => {
                let mut acc = Sets::default();
                for c in children {
                    let v = self.rewrite(object_type, type_name, def, c);
                    acc = acc.or(&v);
                }
                acc
            }
            Rewrite::Intersection(children) => {
                let mut acc: Option<Sets> = None;
                for c in children {
                    let v = self.rewrite(object_type, type_name, def, c);
                    acc = Some(match acc {
                        None => v,
                        Some(a) => a.and(&v),
                    });
                    if acc
                        .as_ref()
                        .is_some_and(|a| a.yes.is_empty() && a.undecided.is_empty())
                    {
                        break;
                    }
                }
                acc.unwrap_or_default()
            }
            Rewrite::Exclusion { base, subtract } => {
                let b = self.rewrite(object_type, type_name, def, base);
                if b.yes.is_empty() && b.undecided.is_empty() {
                    return b;
                }
                let s = self.rewrite(object_type, type_name, def, subtract);
                b.but_not(&s)
            }
        }
    }

    /// `[restrictions]`: the objects whose direct tuples name the subject, its wildcard, or a
    /// userset the subject is in, admitted by one of the relation's type restrictions.
    fn direct(&self, type_name: Option<Name>, def: &RelationDef) -> Sets {
        let mut acc = Parts::default();
        let (Some(t), Some(r)) = (type_name, self.snap.name(&def.name)) else {
            return Sets::default();
        };
        for rest in &def.directly_related {
            let condition = rest.condition.as_deref();
            match &rest.kind {
                RestrictionKind::Direct => {
                    if let (User::Object(u), Some(o)) = (self.subject, self.subject_obj)
                        && u.object_type == rest.type_name
                    {
                        self.edges(t, r, UserRef::Object(o), condition, Label::Yes, &mut acc);
                    }
                }
                RestrictionKind::Wildcard => {
                    let matches = match self.subject {
                        User::Object(u) => u.object_type == rest.type_name,
                        User::Wildcard(w) => *w == rest.type_name,
                        User::Userset(..) => false,
                    };
                    if let (true, Some(w)) = (matches, self.snap.name(&rest.type_name)) {
                        self.edges(t, r, UserRef::Wildcard(w), condition, Label::Yes, &mut acc);
                    }
                }
                RestrictionKind::Userset(s) => {
                    let Some(sn) = self.snap.name(s) else {
                        continue;
                    };
                    let Some(via) = self.value_ref(self.plan.node_id(&rest.type_name, s)) else {
                        continue;
                    };
                    for x in &via.yes {
                        self.edges(
                            t,
                            r,
                            UserRef::Userset(x, sn),
                            condition,
                            Label::Yes,
                            &mut acc,
                        );
                    }
                    for x in &via.undecided {
                        self.edges(
                            t,
                            r,
                            UserRef::Userset(x, sn),
                            condition,
                            Label::Undecided,
                            &mut acc,
                        );
                    }
                }
            }
        }
        acc.finish()
    }

    /// `computed from tupleset`: objects whose `tupleset` tuple names a parent on which the
    /// subject has `computed`.
    fn tuple_to_userset(
        &self,
        object_type: &str,
        type_name: Option<Name>,
        tupleset: &str,
        computed: &str,
    ) -> Sets {
        let mut acc = Parts::default();
        let (Some(t), Some(ts), Some(ts_def)) = (
            type_name,
            self.snap.name(tupleset),
            self.model.relation(object_type, tupleset),
        ) else {
            return Sets::default();
        };
        for rest in &ts_def.directly_related {
            if rest.kind != RestrictionKind::Direct
                || self.model.relation(&rest.type_name, computed).is_none()
            {
                continue;
            }
            let Some(parents) = self.value_ref(self.plan.node_id(&rest.type_name, computed)) else {
                continue;
            };
            let condition = rest.condition.as_deref();
            for p in &parents.yes {
                self.edges(t, ts, UserRef::Object(p), condition, Label::Yes, &mut acc);
            }
            for p in &parents.undecided {
                self.edges(
                    t,
                    ts,
                    UserRef::Object(p),
                    condition,
                    Label::Undecided,
                    &mut acc,
                );
            }
        }
        acc.finish()
    }

    /// Adds the objects `user` is related to by `t#r` under the restriction's `condition`
    /// (none: the plain edges; a name: the conditional edges with that condition, evaluated),
    /// each combined with `label` (what holds for the user itself).
    fn edges(
        &self,
        t: Name,
        r: Name,
        user: UserRef,
        condition: Option<&str>,
        label: Label,
        acc: &mut Parts<'a>,
    ) {
        match condition {
            None => match (self.snap.reverse(t, r, user), label) {
                (Some(Members::Bitmap(bits)), Label::Yes) => acc.yes.push(bits),
                (Some(Members::Bitmap(bits)), Label::Undecided) => acc.undecided.push(bits),
                (Some(Members::Slice(s)), Label::Yes) => acc.yes_one.extend_from_slice(s),
                (Some(Members::Slice(s)), Label::Undecided) => {
                    acc.undecided_one.extend_from_slice(s)
                }
                (None, _) => {}
            },
            Some(name) => {
                let Some(compiled) = self.model.condition(name) else {
                    return; // not admitted by the model
                };
                for (o, c) in self.snap.reverse_conditional(t, r, user) {
                    if c.name != name {
                        continue;
                    }
                    self.condition_evaluations
                        .set(self.condition_evaluations.get() + 1);
                    let outcome = match compiled.evaluate(Some(&c.context), self.context) {
                        Ok(ConditionOutcome::Met) => Some(label),
                        Ok(ConditionOutcome::NotMet) => None,
                        Ok(ConditionOutcome::Missing(_)) | Err(_) => Some(Label::Undecided),
                    };
                    match outcome {
                        Some(Label::Yes) => acc.yes_one.push(*o),
                        Some(Label::Undecided) => acc.undecided_one.push(*o),
                        None => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(ids: &[Obj]) -> RoaringBitmap {
        ids.iter().copied().collect()
    }

    #[test]
    fn singles_dense_sparse_and_edge_ranges() {
        // Dense, repeated, and starting off a byte boundary.
        let dense: Vec<Obj> = (0..5000u32).map(|i| 70_003 + (i * 7) % 3000).collect();
        assert_eq!(singles(dense.clone()), naive(&dense));
        // Many objects over a sparse range: the sorted path.
        let sparse: Vec<Obj> = (0..2000u32).map(|i| i * 100_003).collect();
        assert_eq!(singles(sparse.clone()), naive(&sparse));
        // Near the top of the id space, and spanning containers.
        let top: Vec<Obj> = (0..1500u32).map(|i| u32::MAX - i).collect();
        assert_eq!(singles(top.clone()), naive(&top));
        let across: Vec<Obj> = (0..3000u32).map(|i| 65_000 + i).collect();
        assert_eq!(singles(across.clone()), naive(&across));
        assert!(singles(Vec::new()).is_empty());
    }

    proptest! {
        #[test]
        fn singles_is_the_set_of_its_objects(
            ids in proptest::collection::vec(0u32..400_000, 0..4000),
            shift in 0u32..1_000_000,
        ) {
            let ids: Vec<Obj> = ids.into_iter().map(|i| i + shift).collect();
            prop_assert_eq!(singles(ids.clone()), naive(&ids));
        }
    }
}
