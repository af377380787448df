//! The model's relations numbered densely, with their rewrite trees compiled for top-down
//! evaluation: every name a rule mentions is resolved once, at model load, to a relation id
//! ([`RelId`]) or a symbol ([`Sym`]), and the rule texts explanations cite are rendered once.
//! `check` then walks ids only and never looks a relation up by name.
//!
//! Invariants: [`Compiled::relation_id`]`(t, r)` is `Some(i)` exactly when
//! `TypeSystem::relation(t, r)` is `Some(def)`, and then `relations[i]` is compiled from `def`;
//! a symbol stands for one string wherever it appears (types and relations share one table).
//!
//! Worked example: in `type folder, define viewer: [user, group#member] or viewer from parent`,
//! `folder#viewer` becomes `Union[This, TupleToUserset { tupleset: id(folder#parent), parents:
//! [(folder, id(folder#viewer))] }]` and its direct restrictions `[Direct(user), Userset(group,
//! member → id(group#member))]`: following `viewer from parent` to a parent of type `folder`
//! lands on a relation id without a lookup.

use super::typesystem::rewrite_to_dsl;
use super::{Model, RelationDef, RestrictionKind, Rewrite, TypeRestriction};
use std::collections::{HashMap, HashSet};

/// A relation of the model, `type#relation`, numbered densely from 0.
pub type RelId = u32;
/// A type or relation name of the model, numbered densely from 0.
pub type Sym = u32;

/// One compiled relation.
#[derive(Debug)]
pub struct Rel {
    /// Its own id (its index in the relation table).
    pub id: RelId,
    /// The type the relation is defined on.
    pub object_type: Sym,
    pub name: Sym,
    pub rewrite: Node,
    /// The direct type restrictions (`[...]`), in declaration order.
    pub direct: Vec<Restriction>,
    /// Every restriction is a concrete type without a condition (`[user, folder]`): the only
    /// stored tuples read here are unconditional concrete users (a wildcard, userset or
    /// conditional tuple stored under an older model is not admitted).
    pub plain_only: bool,
    /// The rewrite is `[...]` alone and admits no userset: evaluating it reads this relation's
    /// own tuples and nothing else, so it can neither recurse nor be part of a cycle.
    pub leaf: bool,
}

/// A node of a compiled rewrite tree, with the texts explanations cite for it.
#[derive(Debug)]
pub struct Node {
    pub op: Op,
    /// The node as DSL text (`rewrite_to_dsl`).
    pub dsl: String,
    /// `type#relation: dsl`, the rule an explanation step cites.
    pub rule: String,
}

#[derive(Debug)]
pub enum Op {
    This,
    /// Another relation of the same type (`None`: not defined on it).
    Computed(Option<RelId>),
    TupleToUserset(TupleToUserset),
    Union(Vec<Node>),
    Intersection(Vec<Node>),
    Exclusion {
        base: Box<Node>,
        subtract: Box<Node>,
    },
}

/// `computed from tupleset`.
#[derive(Debug)]
pub struct TupleToUserset {
    /// The tupleset relation on the same type (`None`: not defined on it).
    pub tupleset: Option<RelId>,
    pub tupleset_name: String,
    pub computed_name: String,
    /// The tupleset's concrete-object restrictions (`[folder]`, `[folder with c]`), each with
    /// the `computed` relation on that type (`None`: the type does not define it).
    pub parents: Vec<Parent>,
}

/// A type a tupleset admits, and where `computed from tupleset` continues on it.
#[derive(Debug)]
pub struct Parent {
    pub object_type: Sym,
    pub condition: Option<String>,
    /// The condition is `None` or one the model defines (a tuple naming an undefined
    /// condition is ignored on read).
    pub usable: bool,
    pub target: Option<RelId>,
}

/// A compiled type restriction.
#[derive(Debug)]
pub struct Restriction {
    pub object_type: Sym,
    pub kind: Kind,
    pub condition: Option<String>,
    /// The condition is `None` or one the model defines.
    pub usable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `user`
    Direct,
    /// `user:*`
    Wildcard,
    /// `group#member`, with the relation id of `group#member` (`None`: not defined).
    Userset {
        relation: Sym,
        target: Option<RelId>,
    },
}

/// The compiled relations of a model.
#[derive(Debug, Default)]
pub struct Compiled {
    symbols: Vec<String>,
    symbol_ids: HashMap<String, Sym, foldhash::fast::RandomState>,
    relations: Vec<Rel>,
    /// type → relation name → id, exactly as `TypeSystem` resolves them (a type declared twice
    /// keeps its last declaration).
    by_type:
        HashMap<Sym, HashMap<Sym, RelId, foldhash::fast::RandomState>, foldhash::fast::RandomState>,
}

impl Compiled {
    /// Compiles every relation of `model`; `conditions` are the condition names it defines.
    pub fn new(model: &Model, conditions: &HashSet<&str>) -> Self {
        let mut c = Compiled::default();
        // Number the relations first, so that rules can refer to any of them.
        let mut numbered: Vec<(Sym, &RelationDef)> = Vec::new();
        for t in &model.types {
            let ts = c.intern(&t.name);
            let mut rels = HashMap::default();
            for r in &t.relations {
                let name = c.intern(&r.name);
                let id = u32::try_from(numbered.len()).unwrap_or(u32::MAX);
                rels.insert(name, id);
                numbered.push((ts, r));
            }
            c.by_type.insert(ts, rels);
        }
        for (id, (ts, def)) in (0u32..).zip(numbered) {
            let type_name = c.symbol(ts).to_string();
            let rewrite = c.node(&type_name, ts, def, &def.rewrite);
            let direct: Vec<Restriction> = def
                .directly_related
                .iter()
                .map(|r| c.restriction(r, conditions))
                .collect();
            let plain_only = direct
                .iter()
                .all(|r| r.kind == Kind::Direct && r.condition.is_none());
            let leaf = matches!(rewrite.op, Op::This)
                && direct
                    .iter()
                    .all(|r| !matches!(r.kind, Kind::Userset { .. }));
            let name = c.intern(&def.name);
            c.relations.push(Rel {
                id,
                object_type: ts,
                name,
                rewrite,
                direct,
                plain_only,
                leaf,
            });
        }
        // Parents of tuple-to-usersets need the tupleset's restrictions, compiled above.
        let mut parents = Vec::new();
        collect_ttus(&c.relations, &mut parents);
        let resolved: Vec<Vec<Parent>> = parents
            .iter()
            .map(|(tupleset, computed)| c.parents(*tupleset, computed))
            .collect();
        let mut resolved = resolved.into_iter();
        for rel in &mut c.relations {
            fill_ttus(&mut rel.rewrite, &mut resolved);
        }
        c
    }

    fn intern(&mut self, s: &str) -> Sym {
        if let Some(id) = self.symbol_ids.get(s) {
            return *id;
        }
        let id = u32::try_from(self.symbols.len()).unwrap_or(u32::MAX);
        self.symbols.push(s.to_string());
        self.symbol_ids.insert(s.to_string(), id);
        id
    }

    fn node(&mut self, type_name: &str, ts: Sym, def: &RelationDef, rewrite: &Rewrite) -> Node {
        let op = match rewrite {
            Rewrite::This => Op::This,
            Rewrite::Computed(target) => {
                let target = self.intern(target);
                Op::Computed(self.relation_id(ts, target))
            }
            Rewrite::TupleToUserset { tupleset, computed } => {
                let tsym = self.intern(tupleset);
                self.intern(computed);
                Op::TupleToUserset(TupleToUserset {
                    tupleset: self.relation_id(ts, tsym),
                    tupleset_name: tupleset.clone(),
                    computed_name: computed.clone(),
                    parents: Vec::new(),
                })
            }
            Rewrite::Union(children) => Op::Union(
                children
                    .iter()
                    .map(|c| self.node(type_name, ts, def, c))
                    .collect(),
            ),
            Rewrite::Intersection(children) => Op::Intersection(
                children
                    .iter()
                    .map(|c| self.node(type_name, ts, def, c))
                    .collect(),
            ),
            Rewrite::Exclusion { base, subtract } => Op::Exclusion {
                base: Box::new(self.node(type_name, ts, def, base)),
                subtract: Box::new(self.node(type_name, ts, def, subtract)),
            },
        };
        let dsl = rewrite_to_dsl(rewrite, &def.directly_related);
        Node {
            op,
            rule: format!("{type_name}#{}: {dsl}", def.name),
            dsl,
        }
    }

    fn restriction(&mut self, r: &TypeRestriction, conditions: &HashSet<&str>) -> Restriction {
        let object_type = self.intern(&r.type_name);
        let kind = match &r.kind {
            RestrictionKind::Direct => Kind::Direct,
            RestrictionKind::Wildcard => Kind::Wildcard,
            RestrictionKind::Userset(rel) => {
                let relation = self.intern(rel);
                Kind::Userset {
                    relation,
                    target: self.relation_id(object_type, relation),
                }
            }
        };
        Restriction {
            object_type,
            kind,
            usable: r
                .condition
                .as_deref()
                .is_none_or(|c| conditions.contains(c)),
            condition: r.condition.clone(),
        }
    }

    /// The concrete-object restrictions of `tupleset`, each with `computed` on its type.
    fn parents(&self, tupleset: Option<RelId>, computed: &str) -> Vec<Parent> {
        let Some(ts) = tupleset.and_then(|t| self.relation(t)) else {
            return Vec::new();
        };
        let computed = self.symbol_ids.get(computed).copied();
        ts.direct
            .iter()
            .filter(|r| r.kind == Kind::Direct)
            .map(|r| Parent {
                object_type: r.object_type,
                condition: r.condition.clone(),
                usable: r.usable,
                target: computed.and_then(|c| self.relation_id(r.object_type, c)),
            })
            .collect()
    }

    pub fn symbol(&self, s: Sym) -> &str {
        self.symbols.get(s as usize).map_or("", |s| s.as_str())
    }

    pub fn symbol_id(&self, s: &str) -> Option<Sym> {
        self.symbol_ids.get(s).copied()
    }

    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    pub fn relation(&self, id: RelId) -> Option<&Rel> {
        self.relations.get(id as usize)
    }

    pub fn relation_id(&self, object_type: Sym, relation: Sym) -> Option<RelId> {
        self.by_type.get(&object_type)?.get(&relation).copied()
    }

    /// The id of `object_type#relation`, by name.
    pub fn relation_by_name(&self, object_type: &str, relation: &str) -> Option<RelId> {
        self.relation_id(self.symbol_id(object_type)?, self.symbol_id(relation)?)
    }
}

/// The (tupleset, computed) of every tuple-to-userset, in tree order.
fn collect_ttus(rels: &[Rel], out: &mut Vec<(Option<RelId>, String)>) {
    fn walk(n: &Node, out: &mut Vec<(Option<RelId>, String)>) {
        match &n.op {
            Op::This | Op::Computed(_) => {}
            Op::TupleToUserset(t) => out.push((t.tupleset, t.computed_name.clone())),
            Op::Union(c) | Op::Intersection(c) => c.iter().for_each(|c| walk(c, out)),
            Op::Exclusion { base, subtract } => {
                walk(base, out);
                walk(subtract, out);
            }
        }
    }
    for r in rels {
        walk(&r.rewrite, out);
    }
}

/// Sets the parents of every tuple-to-userset, in the order [`collect_ttus`] listed them.
fn fill_ttus(n: &mut Node, parents: &mut impl Iterator<Item = Vec<Parent>>) {
    match &mut n.op {
        Op::This | Op::Computed(_) => {}
        Op::TupleToUserset(t) => t.parents = parents.next().unwrap_or_default(),
        Op::Union(c) | Op::Intersection(c) => c.iter_mut().for_each(|c| fill_ttus(c, parents)),
        Op::Exclusion { base, subtract } => {
            fill_ttus(base, parents);
            fill_ttus(subtract, parents);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TypeSystem;

    #[test]
    fn relation_ids_agree_with_the_type_system() {
        let ts = TypeSystem::from_dsl(
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member]\ntype folder\n  relations\n    define parent: [folder, group]\n    define viewer: [user, group#member] or viewer from parent\n",
        )
        .unwrap();
        let c = ts.compiled();
        for (t, r) in [
            ("group", "member"),
            ("folder", "parent"),
            ("folder", "viewer"),
            ("user", "member"),
            ("folder", "member"),
            ("nope", "viewer"),
        ] {
            assert_eq!(
                c.relation_by_name(t, r).is_some(),
                ts.relation(t, r).is_some(),
                "{t}#{r}"
            );
        }
        let viewer = c
            .relation(c.relation_by_name("folder", "viewer").unwrap())
            .unwrap();
        assert_eq!(
            viewer.rewrite.rule,
            "folder#viewer: [user, group#member] or viewer from parent"
        );
        let Op::Union(children) = &viewer.rewrite.op else {
            panic!("{:?}", viewer.rewrite.op)
        };
        let Op::TupleToUserset(ttu) = &children[1].op else {
            panic!("{:?}", children[1].op)
        };
        assert_eq!(ttu.tupleset, c.relation_by_name("folder", "parent"));
        // `group` has no `viewer`: that parent leads nowhere.
        let targets: Vec<_> = ttu
            .parents
            .iter()
            .map(|p| (c.symbol(p.object_type), p.target))
            .collect();
        assert_eq!(
            targets,
            [
                ("folder", c.relation_by_name("folder", "viewer")),
                ("group", None)
            ]
        );
        assert_eq!(
            viewer.direct[1].kind,
            Kind::Userset {
                relation: c.symbol_id("member").unwrap(),
                target: c.relation_by_name("group", "member"),
            }
        );
    }
}
