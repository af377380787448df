//! The rewrite graph of a model, analysed once per model version for bottom-up evaluation.
//!
//! A *node* is a `type#relation`. Node `a` depends on node `b` when evaluating `a` for a
//! subject reads `b`'s result for the same subject: a computed relation (`viewer` → `editor`
//! on the same type), a tuple-to-userset (`viewer from parent` → `viewer` on every type the
//! `parent` relation admits), or a userset restriction (`[group#member]` → `group#member`).
//! Strongly connected components of that graph are the recursive relations (nested groups,
//! folder trees); [`Plan::sccs`] lists them in dependency order, so evaluating them in that order
//! only ever reads finished results or results of the component being iterated.
//!
//! Invariants: `sccs` is a partition of the nodes in dependency order (every dependency of a
//! node is in an earlier component or its own); `reads[n]` is the closure of the tuple
//! relations `n`'s value can depend on, which is what makes a cached result's validity
//! checkable after a write.

use super::{RelationDef, RestrictionKind, Rewrite, TypeSystem};
use std::collections::{BTreeMap, HashMap};

/// A `type#relation` of the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub object_type: String,
    pub relation: String,
}

/// A tuple relation a result can depend on. `broad`: the relation is read as a tupleset
/// (`X from it`), so a tuple with a concrete user there can change other subjects' results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub object_type: String,
    pub relation: String,
    pub broad: bool,
}

/// The analysed rewrite graph of one model version.
#[derive(Debug, Default)]
pub struct Plan {
    pub model_id: String,
    nodes: Vec<Node>,
    index: HashMap<(String, String), usize>,
    /// Evaluation dependencies of each node, with whether the dependency is read under a
    /// negation (the subtracted side of a `but not`).
    deps: Vec<Vec<(usize, bool)>>,
    /// Components in dependency order.
    sccs: Vec<Vec<usize>>,
    scc_of: Vec<usize>,
    /// Whether a component is recursive (more than one node, or a node depending on itself).
    cyclic: Vec<bool>,
    /// Whether a component reads one of its own nodes under a negation.
    negated_inside: Vec<bool>,
    /// Per node: the tuple relations its value can depend on (closure).
    reads: Vec<Vec<Read>>,
    /// Per node: the components its evaluation needs, and whether each is read (transitively)
    /// under a negation.
    needs: Vec<BTreeMap<usize, bool>>,
}

impl Plan {
    /// Analyses a compiled model.
    pub fn new(model: &TypeSystem) -> Plan {
        let mut nodes = Vec::new();
        let mut index = HashMap::new();
        for t in &model.model.types {
            for r in &t.relations {
                index.insert((t.name.clone(), r.name.clone()), nodes.len());
                nodes.push(Node {
                    object_type: t.name.clone(),
                    relation: r.name.clone(),
                });
            }
        }
        let mut deps = vec![Vec::new(); nodes.len()];
        let mut direct_reads = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            let Some(def) = model.relation(&n.object_type, &n.relation) else {
                continue;
            };
            let mut out = Vec::new();
            let mut reads = Vec::new();
            rewrite_deps(
                model,
                &index,
                &n.object_type,
                def,
                &def.rewrite,
                false,
                &mut out,
                &mut reads,
            );
            out.sort_unstable();
            out.dedup();
            if let Some(slot) = deps.get_mut(i) {
                *slot = out;
            }
            if let Some(slot) = direct_reads.get_mut(i) {
                *slot = reads;
            }
        }
        // Components (petgraph's Tarjan returns them in reverse topological order of the
        // edges, i.e. dependencies first, since our edges point at dependencies).
        let mut graph = petgraph::graph::DiGraph::<usize, ()>::new();
        let ids: Vec<_> = (0..nodes.len()).map(|i| graph.add_node(i)).collect();
        for (i, ds) in deps.iter().enumerate() {
            for (d, _) in ds {
                if let (Some(a), Some(b)) = (ids.get(i), ids.get(*d)) {
                    graph.add_edge(*a, *b, ());
                }
            }
        }
        let mut sccs = Vec::new();
        let mut scc_of = vec![0; nodes.len()];
        for comp in petgraph::algo::tarjan_scc(&graph) {
            let members: Vec<usize> = comp
                .iter()
                .filter_map(|n| graph.node_weight(*n).copied())
                .collect();
            for m in &members {
                if let Some(s) = scc_of.get_mut(*m) {
                    *s = sccs.len();
                }
            }
            sccs.push(members);
        }
        let mut cyclic = vec![false; sccs.len()];
        let mut negated_inside = vec![false; sccs.len()];
        for (i, ds) in deps.iter().enumerate() {
            let si = scc_of.get(i).copied().unwrap_or(0);
            for (d, neg) in ds {
                if scc_of.get(*d).copied() == Some(si) {
                    if let Some(c) = cyclic.get_mut(si) {
                        *c = true;
                    }
                    if *neg && let Some(n) = negated_inside.get_mut(si) {
                        *n = true;
                    }
                }
            }
        }
        let mut plan = Plan {
            model_id: model.id.clone(),
            nodes,
            index,
            deps,
            sccs,
            scc_of,
            cyclic,
            negated_inside,
            reads: Vec::new(),
            needs: Vec::new(),
        };
        plan.reads = (0..plan.nodes.len())
            .map(|i| plan.closure_reads(i, &direct_reads))
            .collect();
        plan.needs = (0..plan.nodes.len())
            .map(|i| plan.closure_needs(i))
            .collect();
        plan
    }

    pub fn node_id(&self, object_type: &str, relation: &str) -> Option<usize> {
        self.index
            .get(&(object_type.to_string(), relation.to_string()))
            .copied()
    }

    pub fn node(&self, id: usize) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn sccs(&self) -> &[Vec<usize>] {
        &self.sccs
    }

    pub fn is_cyclic(&self, scc: usize) -> bool {
        self.cyclic.get(scc).copied().unwrap_or(false)
    }

    /// Whether evaluating a recursive component must distinguish "undecided because of a
    /// cycle" from "no": it reads itself under a negation, or its result is read under one.
    pub fn needs_undecided(&self, scc: usize, read_negated: bool) -> bool {
        read_negated || self.negated_inside.get(scc).copied().unwrap_or(false)
    }

    /// The components evaluating `node` needs, with whether each is read under a negation.
    pub fn needs(&self, node: usize) -> Option<&BTreeMap<usize, bool>> {
        self.needs.get(node)
    }

    /// The tuple relations `node`'s value can depend on.
    pub fn reads(&self, node: usize) -> &[Read] {
        self.reads.get(node).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn deps(&self, node: usize) -> &[(usize, bool)] {
        self.deps.get(node).map(|v| v.as_slice()).unwrap_or(&[])
    }

    fn closure_reads(&self, start: usize, direct: &[Vec<Read>]) -> Vec<Read> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![start];
        let mut out: BTreeMap<(String, String), bool> = BTreeMap::new();
        while let Some(n) = stack.pop() {
            if std::mem::replace(seen.get_mut(n).unwrap_or(&mut true), true) {
                continue;
            }
            for r in direct.get(n).into_iter().flatten() {
                let b = out
                    .entry((r.object_type.clone(), r.relation.clone()))
                    .or_insert(false);
                *b |= r.broad;
            }
            for (d, _) in self.deps(n) {
                stack.push(*d);
            }
        }
        out.into_iter()
            .map(|((object_type, relation), broad)| Read {
                object_type,
                relation,
                broad,
            })
            .collect()
    }

    fn closure_needs(&self, start: usize) -> BTreeMap<usize, bool> {
        // A node can be reached both plainly and under a negation; negated wins.
        let mut best: HashMap<usize, bool> = HashMap::new();
        let mut stack = vec![(start, false)];
        while let Some((n, neg)) = stack.pop() {
            match best.get(&n) {
                Some(true) => continue,
                Some(false) if !neg => continue,
                _ => {}
            }
            best.insert(n, neg);
            for (d, dneg) in self.deps(n) {
                stack.push((*d, neg || *dneg));
            }
        }
        let mut out = BTreeMap::new();
        for (n, neg) in best {
            let s = self.scc_of.get(n).copied().unwrap_or(0);
            let e = out.entry(s).or_insert(false);
            *e |= neg;
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn rewrite_deps(
    model: &TypeSystem,
    index: &HashMap<(String, String), usize>,
    object_type: &str,
    def: &RelationDef,
    rewrite: &Rewrite,
    neg: bool,
    out: &mut Vec<(usize, bool)>,
    reads: &mut Vec<Read>,
) {
    let node = |t: &str, r: &str| index.get(&(t.to_string(), r.to_string())).copied();
    match rewrite {
        Rewrite::This => {
            reads.push(Read {
                object_type: object_type.to_string(),
                relation: def.name.clone(),
                broad: false,
            });
            for r in &def.directly_related {
                if let RestrictionKind::Userset(s) = &r.kind
                    && let Some(n) = node(&r.type_name, s)
                {
                    out.push((n, neg));
                }
            }
        }
        Rewrite::Computed(r) => {
            if let Some(n) = node(object_type, r) {
                out.push((n, neg));
            }
        }
        Rewrite::TupleToUserset { tupleset, computed } => {
            reads.push(Read {
                object_type: object_type.to_string(),
                relation: tupleset.clone(),
                broad: true,
            });
            if let Some(ts) = model.relation(object_type, tupleset) {
                for r in &ts.directly_related {
                    if r.kind == RestrictionKind::Direct
                        && let Some(n) = node(&r.type_name, computed)
                    {
                        out.push((n, neg));
                    }
                }
            }
        }
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            for c in children {
                rewrite_deps(model, index, object_type, def, c, neg, out, reads);
            }
        }
        Rewrite::Exclusion { base, subtract } => {
            rewrite_deps(model, index, object_type, def, base, neg, out, reads);
            rewrite_deps(model, index, object_type, def, subtract, true, out, reads);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_come_in_dependency_order() {
        let model = TypeSystem::from_dsl(
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\ntype folder\n  relations\n    define parent: [folder]\n    define blocked: [user, group#member]\n    define viewer: ([user, group#member] or viewer from parent) but not blocked\n",
        )
        .unwrap_or_else(|e| unreachable_model(&e.to_string()));
        let plan = Plan::new(&model);
        let member = plan.node_id("group", "member").unwrap_or(usize::MAX);
        let viewer = plan.node_id("folder", "viewer").unwrap_or(usize::MAX);
        let blocked = plan.node_id("folder", "blocked").unwrap_or(usize::MAX);
        let pos = |n: usize| plan.sccs().iter().position(|s| s.contains(&n));
        assert!(pos(member) < pos(viewer));
        assert!(pos(blocked) < pos(viewer));
        assert!(plan.is_cyclic(pos(member).unwrap_or(0)));
        assert!(plan.is_cyclic(pos(viewer).unwrap_or(0)));
        // group#member is read under the negation (through `blocked`) when evaluating viewer.
        let needs = plan.needs(viewer).cloned().unwrap_or_default();
        assert_eq!(needs.get(&pos(member).unwrap_or(0)), Some(&true));
        assert_eq!(needs.get(&pos(viewer).unwrap_or(0)), Some(&false));
        let reads = plan.reads(viewer);
        assert!(reads.iter().any(|r| r.relation == "parent" && r.broad));
        assert!(reads.iter().any(|r| r.object_type == "group" && !r.broad));
    }

    fn unreachable_model(e: &str) -> TypeSystem {
        // Test helper: a model that fails to compile is a test bug.
        #[allow(clippy::panic)]
        {
            panic!("{e}")
        }
    }
}
