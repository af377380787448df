//! Leopard-style closures of nested groups: for a self-recursive userset relation such as
//! `define member: [user, group#member]`, every group's *transitive* members as one roaring
//! bitmap, so "is anne in group:eng, directly or through nested groups?" is one bitmap probe
//! and "which groups is anne in?" is one pass over the groups, instead of a graph walk.
//!
//! A closure is kept per eligible `type#relation` (the service decides eligibility from the
//! model: a rewrite that is only the direct assignment, no conditions, and no usersets other
//! than the relation itself). It is built once per model and updated incrementally by each
//! write: only the groups a change touches and their ancestors are recomputed, children first.
//!
//! Invariant: when [`GroupClosure::usable`], `members[g]` is exactly the set of concrete objects
//! (of the admitted direct types) with the relation on `g` — the least fixpoint, which equals
//! what top-down `check` decides because the nesting graph is acyclic (`cyclic` is false) and
//! no conditional tuple exists on the relation (`conditional` is false). When not usable,
//! callers evaluate without it.

use super::{IdHash, Map, Name, Obj, Snapshot, TupleChange, UserRef};
use roaring::RoaringBitmap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a closure covers, resolved from the model.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub object_type: String,
    pub relation: String,
    /// Types admitted as concrete direct users (`[user, agent]`).
    pub direct_types: Vec<String>,
    /// Types admitted as wildcards (`[user:*]`).
    pub wildcard_types: Vec<String>,
}

/// A member's groups, sorted: one allocation holding the ids themselves (a check reads them
/// from the line after the counts, where a bitmap would take three more hops).
type GroupIds = Arc<[Obj]>;

/// Member → the groups it is a transitive member of: a frozen hash map (one probe, usually one
/// cache miss, where a persistent map walks a node per level), plus a persistent delta of the
/// members changed since it was frozen. A member whose last group went stays in the delta as an
/// empty list. The delta is folded into a new frozen map once it holds a quarter as many
/// members as the frozen one (so a write copies the map at most once per that many changes).
#[derive(Debug, Clone, Default)]
struct Inverse {
    frozen: Arc<HashMap<Obj, GroupIds, IdHash>>,
    delta: Map<Obj, GroupIds>,
}

impl Inverse {
    fn current(&self, s: Obj) -> Option<&GroupIds> {
        if !self.delta.is_empty()
            && let Some(b) = self.delta.get(&s)
        {
            return Some(b);
        }
        self.frozen.get(&s)
    }

    fn get(&self, s: Obj) -> Option<&[Obj]> {
        self.current(s).filter(|b| !b.is_empty()).map(|b| &**b)
    }

    fn add(&mut self, s: Obj, g: Obj) {
        let mut groups = self.current(s).map(|b| b.to_vec()).unwrap_or_default();
        if let Err(i) = groups.binary_search(&g) {
            groups.insert(i, g);
            self.delta.insert(s, groups.into());
        }
    }

    fn remove(&mut self, s: Obj, g: Obj) {
        let Some(mut groups) = self.current(s).map(|b| b.to_vec()) else {
            return;
        };
        if let Ok(i) = groups.binary_search(&g) {
            groups.remove(i);
            self.delta.insert(s, groups.into());
        }
    }

    /// Every member with at least one group.
    fn to_map(&self) -> HashMap<Obj, GroupIds> {
        let mut out: HashMap<Obj, GroupIds> =
            self.frozen.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (k, v) in self.delta.iter() {
            out.insert(*k, v.clone());
        }
        out.retain(|_, v| !v.is_empty());
        out
    }

    /// Folds the delta in when it has grown (always, with `force`).
    fn fold(&mut self, force: bool) {
        if self.delta.is_empty() || (!force && self.delta.len() < self.frozen.len() / 4 + 1024) {
            return;
        }
        let mut frozen: HashMap<Obj, GroupIds, IdHash> =
            HashMap::with_capacity_and_hasher(self.frozen.len(), IdHash::default());
        frozen.extend(self.to_map());
        frozen.shrink_to_fit();
        self.frozen = Arc::new(frozen);
        self.delta = Map::default();
    }
}

/// The transitive members of every group of one `type#relation`.
#[derive(Debug, Clone, Default)]
pub struct GroupClosure {
    pub spec: Option<Arc<GroupSpec>>,
    members: Map<Obj, Arc<RoaringBitmap>>,
    /// The inverse of `members` (Leopard's MEMBER2GROUP): concrete member → every group it is
    /// a transitive member of, so a check fetches its subject's groups once and then tests
    /// each group with a search of that one (small, hot) sorted list.
    inverse: Inverse,
    wildcards: Map<Obj, Arc<Vec<Name>>>,
    depth: Map<Obj, u32>,
    /// Longest nesting chain (hops of userset tuples) over all groups.
    max_depth: u32,
    cyclic: bool,
    conditional: bool,
}

/// The resolved names of a spec in one snapshot.
struct Names {
    t: Name,
    r: Name,
    direct: Vec<Name>,
    wild: Vec<Name>,
}

fn names(snap: &Snapshot, spec: &GroupSpec) -> Option<Names> {
    Some(Names {
        t: snap.name(&spec.object_type)?,
        r: snap.name(&spec.relation)?,
        direct: spec
            .direct_types
            .iter()
            .filter_map(|t| snap.name(t))
            .collect(),
        wild: spec
            .wildcard_types
            .iter()
            .filter_map(|t| snap.name(t))
            .collect(),
    })
}

impl GroupClosure {
    /// Builds the closure from a snapshot.
    pub fn build(snap: &Snapshot, spec: Arc<GroupSpec>) -> GroupClosure {
        let mut out = GroupClosure {
            spec: Some(spec.clone()),
            ..Default::default()
        };
        let Some(n) = names(snap, &spec) else {
            return out; // no tuples on the relation yet
        };
        let groups: Vec<Obj> = snap
            .objects_of_type(n.t)
            .map(|b| b.iter().collect())
            .unwrap_or_default();
        out.conditional = groups.iter().any(|g| {
            snap.edges(*g, n.r)
                .is_some_and(|e| !e.conditional.is_empty())
        });
        let order = match topo_order(snap, &n, &groups) {
            Some(order) => order,
            None => {
                out.cyclic = true;
                return out;
            }
        };
        for g in order {
            out.recompute(snap, &n, g);
        }
        out.inverse.fold(true);
        out.max_depth = out.depth.values().copied().max().unwrap_or(0);
        out
    }

    /// The closure after `changes` were applied, giving `snap` (the new snapshot).
    pub fn update(&self, snap: &Snapshot, changes: &[TupleChange]) -> GroupClosure {
        let Some(spec) = self.spec.clone() else {
            return self.clone();
        };
        let relevant: Vec<&TupleChange> = changes
            .iter()
            .filter(|c| {
                c.tuple.object.object_type == spec.object_type && c.tuple.relation == spec.relation
            })
            .collect();
        if relevant.is_empty() {
            return self.clone();
        }
        let (Some(n), false) = (names(snap, &spec), self.cyclic || self.conditional) else {
            // A cycle or a condition may have gone away: start over.
            return GroupClosure::build(snap, spec);
        };
        if relevant.iter().any(|c| c.tuple.condition.is_some()) {
            let mut out = self.clone();
            out.conditional = true;
            return out;
        }
        let touched: Vec<Obj> = relevant
            .iter()
            .filter_map(|c| snap.object(&c.tuple.object.to_string()))
            .collect();
        // The touched groups and every group that contains one of them, transitively.
        let mut affected: HashSet<Obj> = HashSet::new();
        let mut stack = touched;
        while let Some(g) = stack.pop() {
            if !affected.insert(g) {
                continue;
            }
            if let Some(parents) = snap.reverse(n.t, n.r, UserRef::Userset(g, n.r)) {
                stack.extend(parents.iter());
            }
        }
        let affected: Vec<Obj> = affected.into_iter().collect();
        let Some(order) = topo_order(snap, &n, &affected) else {
            let mut out = self.clone();
            out.cyclic = true;
            return out;
        };
        let mut out = self.clone();
        for g in order {
            out.recompute(snap, &n, g);
        }
        out.inverse.fold(false);
        out.max_depth = out.depth.values().copied().max().unwrap_or(0);
        out
    }

    /// Recomputes one group from its direct users and its (already final) children.
    fn recompute(&mut self, snap: &Snapshot, n: &Names, g: Obj) {
        use roaring::MultiOps;
        let mut parts: Vec<&RoaringBitmap> = Vec::new();
        let mut wild: Vec<Name> = Vec::new();
        let mut depth = 0;
        let children = children(snap, n, g);
        let child_members: Vec<Arc<RoaringBitmap>> = children
            .iter()
            .filter_map(|c| self.members.get(c).cloned())
            .collect();
        let own = snap.edges(g, n.r).map(|e| {
            let admitted = e
                .direct
                .iter()
                .copied()
                .filter(|u| snap.object_type(*u).is_some_and(|t| n.direct.contains(&t)));
            RoaringBitmap::from_sorted_iter(admitted).unwrap_or_default()
        });
        if let Some(own) = &own {
            parts.push(own);
        }
        if let Some(e) = snap.edges(g, n.r) {
            for w in e.wildcards {
                if n.wild.contains(w) {
                    wild.push(*w);
                }
            }
        }
        for c in &children {
            if let Some(w) = self.wildcards.get(c) {
                wild.extend(w.iter().copied());
            }
            depth = depth.max(self.depth.get(c).copied().unwrap_or(0) + 1);
        }
        parts.extend(child_members.iter().map(|b| &**b));
        let members = parts.into_iter().union();
        wild.sort_unstable();
        wild.dedup();
        let old = self.members.get(&g).cloned().unwrap_or_default();
        for s in &*old - &members {
            self.inverse.remove(s, g);
        }
        for s in &members - &*old {
            self.inverse.add(s, g);
        }
        if members.is_empty() {
            self.members.remove(&g);
        } else {
            self.members.insert(g, Arc::new(members));
        }
        if wild.is_empty() {
            self.wildcards.remove(&g);
        } else {
            self.wildcards.insert(g, Arc::new(wild));
        }
        self.depth.insert(g, depth);
    }

    /// Whether the closure answers exactly (see the module doc).
    pub fn usable(&self) -> bool {
        self.spec.is_some() && !self.cyclic && !self.conditional
    }

    /// The longest nesting chain, in userset hops.
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// Whether `subject` (a concrete object of type `subject_type`) is a transitive member of
    /// `group`.
    pub fn contains(&self, group: Obj, subject: Obj, subject_type: Name) -> bool {
        self.members
            .get(&group)
            .is_some_and(|m| m.contains(subject))
            || self
                .wildcards
                .get(&group)
                .is_some_and(|w| w.contains(&subject_type))
    }

    /// Whether a concrete subject (`subject`, of type `subject_type`) or, with `subject` `None`,
    /// the wildcard of `subject_type`, is a transitive member of `group`.
    pub fn has(&self, group: Obj, subject: Option<Obj>, subject_type: Option<Name>) -> bool {
        subject.is_some_and(|s| self.members.get(&group).is_some_and(|m| m.contains(s)))
            || subject_type
                .is_some_and(|t| self.wildcards.get(&group).is_some_and(|w| w.contains(&t)))
    }

    /// The groups a concrete subject is a transitive member of (wildcards not included).
    pub fn member_of(&self, subject: Obj) -> Option<&[Obj]> {
        self.inverse.get(subject)
    }

    /// [`GroupClosure::has`] with the subject's groups already fetched by
    /// [`GroupClosure::member_of`].
    pub fn has_in(
        &self,
        group: Obj,
        member_of: Option<&[Obj]>,
        subject_type: Option<Name>,
    ) -> bool {
        member_of.is_some_and(|m| m.binary_search(&group).is_ok())
            || subject_type.is_some_and(|t| {
                !self.wildcards.is_empty()
                    && self.wildcards.get(&group).is_some_and(|w| w.contains(&t))
            })
    }

    /// Every group `subject` is a transitive member of.
    pub fn groups_of(&self, subject: Option<Obj>, subject_type: Option<Name>) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let Some(m) = subject.and_then(|s| self.member_of(s)) {
            out.extend(m.iter().copied());
        }
        if let Some(t) = subject_type {
            for (g, w) in self.wildcards.iter() {
                if w.contains(&t) {
                    out.insert(*g);
                }
            }
        }
        out
    }

    /// Checks the invariant against a from-scratch build (for tests).
    pub fn validate(&self, snap: &Snapshot) -> Result<(), String> {
        let Some(spec) = self.spec.clone() else {
            return Ok(());
        };
        let fresh = GroupClosure::build(snap, spec);
        if fresh.usable() != self.usable() {
            return Err(format!(
                "usable {} but a rebuild says {}",
                self.usable(),
                fresh.usable()
            ));
        }
        if !self.usable() {
            return Ok(());
        }
        let a: HashMap<Obj, RoaringBitmap> = self
            .members
            .iter()
            .map(|(k, v)| (*k, (**v).clone()))
            .collect();
        let b: HashMap<Obj, RoaringBitmap> = fresh
            .members
            .iter()
            .map(|(k, v)| (*k, (**v).clone()))
            .collect();
        if a != b {
            return Err("incrementally maintained members differ from a rebuild".into());
        }
        let inv = |c: &GroupClosure| -> HashMap<Obj, RoaringBitmap> {
            c.inverse
                .to_map()
                .into_iter()
                .map(|(k, v)| (k, v.iter().copied().collect()))
                .collect()
        };
        if inv(self) != inv(&fresh) {
            return Err("incrementally maintained member → groups differ from a rebuild".into());
        }
        // The inverse is exactly the transpose of the members.
        let mut transpose: HashMap<Obj, RoaringBitmap> = HashMap::new();
        for (g, m) in &a {
            for s in m {
                transpose.entry(s).or_default().insert(*g);
            }
        }
        if transpose != inv(self) {
            return Err("member → groups is not the transpose of group → members".into());
        }
        if self.max_depth != fresh.max_depth {
            return Err(format!(
                "max depth {} but a rebuild says {}",
                self.max_depth, fresh.max_depth
            ));
        }
        Ok(())
    }
}

/// The groups nested directly in `g` (usersets `child#relation` of the same type).
fn children(snap: &Snapshot, n: &Names, g: Obj) -> Vec<Obj> {
    snap.edges(g, n.r)
        .map(|e| {
            e.usersets
                .iter()
                .filter(|&&[c, r]| r == n.r && snap.object_type(c) == Some(n.t))
                .map(|&[c, _]| c)
                .collect()
        })
        .unwrap_or_default()
}

/// `subset` ordered children first (children outside the subset are taken as final), or
/// `None` when the nesting inside it has a cycle. Iterative, so deep chains cannot overflow
/// the stack.
fn topo_order(snap: &Snapshot, n: &Names, subset: &[Obj]) -> Option<Vec<Obj>> {
    let inside: HashSet<Obj> = subset.iter().copied().collect();
    // 0 = unseen, 1 = on the stack, 2 = done.
    let mut mark: HashMap<Obj, u8> = HashMap::new();
    let mut order = Vec::with_capacity(subset.len());
    for &start in subset {
        if mark.get(&start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(Obj, Vec<Obj>)> = vec![(start, children(snap, n, start))];
        mark.insert(start, 1);
        while let Some((g, pending)) = stack.last_mut() {
            let g = *g;
            match pending.pop() {
                Some(c) if inside.contains(&c) => match mark.get(&c).copied().unwrap_or(0) {
                    0 => {
                        mark.insert(c, 1);
                        let cs = children(snap, n, c);
                        stack.push((c, cs));
                    }
                    1 => return None,
                    _ => {}
                },
                Some(_) => {}
                None => {
                    mark.insert(g, 2);
                    order.push(g);
                    stack.pop();
                }
            }
        }
    }
    Some(order)
}

/// The group closures of one model version, by plan node.
#[derive(Debug, Clone, Default)]
pub struct GroupIndex {
    closures: HashMap<usize, GroupClosure>,
}

impl GroupIndex {
    /// Whether any closure's member → groups map has changes not yet folded in.
    pub fn has_delta(&self) -> bool {
        self.closures.values().any(|c| !c.inverse.delta.is_empty())
    }

    /// The same closures with every member → groups map folded (for an idle writer: a check
    /// then fetches its subject's groups in one probe of the frozen map).
    pub fn folded(&self) -> GroupIndex {
        let mut out = self.clone();
        for c in out.closures.values_mut() {
            c.inverse.fold(true);
        }
        out
    }

    /// Builds a closure for every `(node, spec)`.
    pub fn build(snap: &Snapshot, specs: Vec<(usize, GroupSpec)>) -> GroupIndex {
        GroupIndex {
            closures: specs
                .into_iter()
                .map(|(n, spec)| (n, GroupClosure::build(snap, Arc::new(spec))))
                .collect(),
        }
    }

    /// The index after `changes` (already applied to `snap`).
    pub fn update(&self, snap: &Snapshot, changes: &[TupleChange]) -> GroupIndex {
        GroupIndex {
            closures: self
                .closures
                .iter()
                .map(|(n, c)| (*n, c.update(snap, changes)))
                .collect(),
        }
    }

    /// Every usable closure with the `type#relation` it covers (the spec shared with it, so that
    /// its identity names the closure: see [`crate::engine::Resolved`]).
    pub fn usable(&self) -> impl Iterator<Item = (&Arc<GroupSpec>, &GroupClosure)> {
        self.closures
            .values()
            .filter(|c| c.usable())
            .filter_map(|c| c.spec.as_ref().map(|s| (s, c)))
    }

    /// The usable closure for a plan node, if there is one.
    pub fn closure(&self, node: usize) -> Option<&GroupClosure> {
        self.closures.get(&node).filter(|c| c.usable())
    }

    /// Checks every closure against a rebuild (for tests and debug builds).
    pub fn validate(&self, snap: &Snapshot) -> Result<(), String> {
        for c in self.closures.values() {
            c.validate(snap)?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.closures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.closures.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random adds and removes, with folds forced or due along the way, leave the inverse equal
    /// to a plain map of the same operations, and never expose an emptied member.
    #[test]
    fn the_inverse_agrees_with_a_plain_map_across_folds() {
        let mut inv = Inverse::default();
        let mut want: HashMap<Obj, RoaringBitmap> = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut folded = 0;
        for step in 0..20_000 {
            let (s, g) = (next(3000) as Obj, next(40) as Obj);
            if next(3) == 0 {
                inv.remove(s, g);
                if let Some(b) = want.get_mut(&s) {
                    b.remove(g);
                }
            } else {
                inv.add(s, g);
                want.entry(s).or_default().insert(g);
            }
            let before = inv.delta.len();
            inv.fold(step % 5000 == 4999);
            folded += usize::from(before > 0 && inv.delta.is_empty());
            if step % 997 == 0 {
                for s in 0..3000 {
                    let got = inv.get(s).map(<[Obj]>::to_vec);
                    let expect = want
                        .get(&s)
                        .filter(|b| !b.is_empty())
                        .map(|b| b.iter().collect::<Vec<_>>());
                    assert_eq!(got, expect, "member {s} at step {step}");
                }
            }
        }
        assert!(folded >= 4, "{folded}");
        want.retain(|_, b| !b.is_empty());
        let got: HashMap<Obj, RoaringBitmap> = inv
            .to_map()
            .into_iter()
            .map(|(k, v)| (k, v.iter().copied().collect()))
            .collect();
        assert_eq!(got, want);
    }
}
