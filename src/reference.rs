//! A deliberately naive evaluator of OpenFGA semantics: the oracle for property tests.
//!
//! It reads a plain list of tuples, follows the rewrite tree literally, recomputes everything
//! (no memoization, no index, no bitmaps) and detects cycles by the `object#relation` pairs on
//! the current path. It is written to be obviously right, not fast; do not use it to serve.
//!
//! Like the engine it is Kleene-logic valued: `True`, `False`, `Unknown` (missing condition
//! parameters, a condition error, or the depth limit) and `Cycle` (an `object#relation` met again
//! on its own path: undecidable, and "not allowed" at the top, as in OpenFGA). `Unknown`
//! outranks `Cycle` when both are undecided.

use crate::condition::ConditionOutcome;
use crate::model::{RelationDef, RestrictionKind, Rewrite, TypeSystem};
use crate::tuple::{ObjectRef, Tuple, User};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    Unknown,
    Cycle,
}

fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::True, _) | (_, Tri::True) => Tri::True,
        (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
        (Tri::Cycle, _) | (_, Tri::Cycle) => Tri::Cycle,
        _ => Tri::False,
    }
}

fn and(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::False, _) | (_, Tri::False) => Tri::False,
        (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
        (Tri::Cycle, _) | (_, Tri::Cycle) => Tri::Cycle,
        _ => Tri::True,
    }
}

fn not(a: Tri) -> Tri {
    match a {
        Tri::True => Tri::False,
        Tri::False => Tri::True,
        other => other,
    }
}

/// The naive evaluator over `tuples` under `model`.
pub struct Reference<'a> {
    pub model: &'a TypeSystem,
    pub tuples: &'a [Tuple],
    pub context: &'a Map<String, Value>,
    pub max_depth: u32,
}

impl Reference<'_> {
    /// Does `user` have `relation` on `object`?
    /// (A cycle left undecided at the top is a deny.)
    pub fn check(&self, user: &User, relation: &str, object: &ObjectRef) -> Tri {
        match self.relation(user, object, relation, 0, &mut Vec::new()) {
            Tri::Cycle => Tri::False,
            t => t,
        }
    }

    fn relation(
        &self,
        user: &User,
        object: &ObjectRef,
        relation: &str,
        depth: u32,
        path: &mut Vec<(ObjectRef, String)>,
    ) -> Tri {
        if depth >= self.max_depth {
            return Tri::Unknown;
        }
        let Some(def) = self.model.relation(&object.object_type, relation) else {
            return Tri::False;
        };
        if let User::Userset(o, r) = user
            && o == object
            && r == relation
        {
            return Tri::True;
        }
        let key = (object.clone(), relation.to_string());
        if path.contains(&key) {
            return Tri::Cycle;
        }
        path.push(key);
        let result = self.rewrite(user, object, def, &def.rewrite, depth, path);
        path.pop();
        result
    }

    /// Tuples on `object#relation` that the model admits (OpenFGA's read filter).
    fn tuples_on<'t>(
        &'t self,
        object: &'t ObjectRef,
        relation: &'t str,
    ) -> impl Iterator<Item = &'t Tuple> + 't {
        self.tuples.iter().filter(move |t| {
            t.object == *object
                && t.relation == relation
                && self.model.admits(
                    &object.object_type,
                    relation,
                    &t.user,
                    t.condition.as_ref().map(|c| c.name.as_str()),
                )
        })
    }

    fn condition(&self, t: &Tuple) -> Tri {
        let Some(c) = &t.condition else {
            return Tri::True;
        };
        let Some(compiled) = self.model.condition(&c.name) else {
            return Tri::False;
        };
        match compiled.evaluate(Some(&c.context), self.context) {
            Ok(ConditionOutcome::Met) => Tri::True,
            Ok(ConditionOutcome::NotMet) => Tri::False,
            Ok(ConditionOutcome::Missing(_)) | Err(_) => Tri::Unknown,
        }
    }

    fn rewrite(
        &self,
        user: &User,
        object: &ObjectRef,
        def: &RelationDef,
        rewrite: &Rewrite,
        depth: u32,
        path: &mut Vec<(ObjectRef, String)>,
    ) -> Tri {
        match rewrite {
            Rewrite::This => {
                let mut result = Tri::False;
                for t in self.tuples_on(object, &def.name) {
                    let matched = match (&t.user, user) {
                        (User::Wildcard(w), User::Object(u)) => *w == u.object_type,
                        (a, b) => a == b,
                    };
                    let via = if matched {
                        Tri::True
                    } else if let User::Userset(o, r) = &t.user {
                        self.relation(user, o, r, depth + 1, path)
                    } else {
                        Tri::False
                    };
                    result = or(result, and(self.condition(t), via));
                }
                result
            }
            Rewrite::Computed(r) => self.relation(user, object, r, depth + 1, path),
            Rewrite::TupleToUserset { tupleset, computed } => {
                let mut result = Tri::False;
                let Some(ts) = self.model.relation(&object.object_type, tupleset) else {
                    return Tri::False;
                };
                for t in self.tuples_on(object, &ts.name) {
                    let User::Object(parent) = &t.user else {
                        continue;
                    };
                    // A tupleset tuple must be admitted as a plain direct type.
                    let plain = ts.directly_related.iter().any(|r| {
                        r.type_name == parent.object_type
                            && r.kind == RestrictionKind::Direct
                            && r.condition.as_deref()
                                == t.condition.as_ref().map(|c| c.name.as_str())
                    });
                    if !plain || self.model.relation(&parent.object_type, computed).is_none() {
                        continue;
                    }
                    let via = self.relation(user, parent, computed, depth + 1, path);
                    result = or(result, and(self.condition(t), via));
                }
                result
            }
            Rewrite::Union(children) => children.iter().fold(Tri::False, |acc, c| {
                or(acc, self.rewrite(user, object, def, c, depth, path))
            }),
            Rewrite::Intersection(children) => children.iter().fold(Tri::True, |acc, c| {
                and(acc, self.rewrite(user, object, def, c, depth, path))
            }),
            Rewrite::Exclusion { base, subtract } => and(
                self.rewrite(user, object, def, base, depth, path),
                not(self.rewrite(user, object, def, subtract, depth, path)),
            ),
        }
    }
}
