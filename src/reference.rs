//! A deliberately naive evaluator of OpenFGA semantics: the oracle for property tests.
//!
//! It reads a plain list of tuples, follows the rewrite tree literally, recomputes everything
//! (no memoization, no index, no bitmaps) and detects cycles by the `object#relation` pairs on
//! the current path. It is written to be obviously right, not fast; do not use it to serve.
//!
//! Values follow Kleene logic: `True`, `False`, or undecided — because of missing condition
//! parameters, a condition error or the depth limit (`unknown`), or because an `object#relation`
//! was met again on its own path (a cycle, recorded with its head). An undecided value whose
//! only reason is cycles headed at the node being completed resolves there to `False`: the least
//! fixpoint for a cycle of unions, and OpenFGA's answer for a cycle through `but not`.

use crate::condition::ConditionOutcome;
use crate::model::{RelationDef, RestrictionKind, Rewrite, TypeSystem};
use crate::tuple::{ObjectRef, Tuple, User};
use serde_json::{Map, Value};

/// The decision the reference reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    True,
    False,
    /// Missing parameters, a condition error or the depth limit.
    Unknown,
}

type Key = (ObjectRef, String);

#[derive(Debug, Clone, PartialEq)]
enum Val {
    True,
    False,
    Undecided { unknown: bool, heads: Vec<Key> },
}

fn undecided(a: &Val, b: &Val) -> Val {
    let mut unknown = false;
    let mut heads: Vec<Key> = Vec::new();
    for v in [a, b] {
        if let Val::Undecided {
            unknown: u,
            heads: h,
        } = v
        {
            unknown |= u;
            for k in h {
                if !heads.contains(k) {
                    heads.push(k.clone());
                }
            }
        }
    }
    Val::Undecided { unknown, heads }
}

fn or(a: Val, b: Val) -> Val {
    match (&a, &b) {
        (Val::True, _) | (_, Val::True) => Val::True,
        (Val::False, Val::False) => Val::False,
        _ => undecided(&a, &b),
    }
}

fn and(a: Val, b: Val) -> Val {
    match (&a, &b) {
        (Val::False, _) | (_, Val::False) => Val::False,
        (Val::True, Val::True) => Val::True,
        _ => undecided(&a, &b),
    }
}

fn not(a: Val) -> Val {
    match a {
        Val::True => Val::False,
        Val::False => Val::True,
        other => other,
    }
}

const UNKNOWN: Val = Val::Undecided {
    unknown: true,
    heads: Vec::new(),
};

/// The naive evaluator over `tuples` under `model`.
pub struct Reference<'a> {
    pub model: &'a TypeSystem,
    pub tuples: &'a [Tuple],
    pub context: &'a Map<String, Value>,
    pub max_depth: u32,
}

impl Reference<'_> {
    /// Does `user` have `relation` on `object`?
    pub fn check(&self, user: &User, relation: &str, object: &ObjectRef) -> Tri {
        match self.relation(user, object, relation, 0, &mut Vec::new()) {
            Val::True => Tri::True,
            Val::False | Val::Undecided { unknown: false, .. } => Tri::False,
            Val::Undecided { unknown: true, .. } => Tri::Unknown,
        }
    }

    fn relation(
        &self,
        user: &User,
        object: &ObjectRef,
        relation: &str,
        depth: u32,
        path: &mut Vec<Key>,
    ) -> Val {
        if depth >= self.max_depth {
            return UNKNOWN;
        }
        let Some(def) = self.model.relation(&object.object_type, relation) else {
            return Val::False;
        };
        if let User::Userset(o, r) = user {
            if o == object && r == relation {
                return Val::True;
            }
        }
        let key = (object.clone(), relation.to_string());
        if path.contains(&key) {
            return Val::Undecided {
                unknown: false,
                heads: vec![key],
            };
        }
        path.push(key.clone());
        let result = self.rewrite(user, object, def, &def.rewrite, depth, path);
        path.pop();
        match result {
            Val::Undecided { unknown, mut heads } => {
                heads.retain(|h| *h != key);
                if !unknown && heads.is_empty() {
                    Val::False
                } else {
                    Val::Undecided { unknown, heads }
                }
            }
            v => v,
        }
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

    fn condition(&self, t: &Tuple) -> Val {
        let Some(c) = &t.condition else {
            return Val::True;
        };
        let Some(compiled) = self.model.condition(&c.name) else {
            return Val::False;
        };
        match compiled.evaluate(Some(&c.context), self.context) {
            Ok(ConditionOutcome::Met) => Val::True,
            Ok(ConditionOutcome::NotMet) => Val::False,
            Ok(ConditionOutcome::Missing(_)) | Err(_) => UNKNOWN,
        }
    }

    fn rewrite(
        &self,
        user: &User,
        object: &ObjectRef,
        def: &RelationDef,
        rewrite: &Rewrite,
        depth: u32,
        path: &mut Vec<Key>,
    ) -> Val {
        match rewrite {
            Rewrite::This => {
                let mut result = Val::False;
                for t in self.tuples_on(object, &def.name) {
                    let matched = match (&t.user, user) {
                        (User::Wildcard(w), User::Object(u)) => *w == u.object_type,
                        (a, b) => a == b,
                    };
                    let via = if matched {
                        Val::True
                    } else if let User::Userset(o, r) = &t.user {
                        self.relation(user, o, r, depth + 1, path)
                    } else {
                        Val::False
                    };
                    result = or(result, and(self.condition(t), via));
                }
                result
            }
            Rewrite::Computed(r) => self.relation(user, object, r, depth + 1, path),
            Rewrite::TupleToUserset { tupleset, computed } => {
                let mut result = Val::False;
                let Some(ts) = self.model.relation(&object.object_type, tupleset) else {
                    return Val::False;
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
            Rewrite::Union(children) => children.iter().fold(Val::False, |acc, c| {
                or(acc, self.rewrite(user, object, def, c, depth, path))
            }),
            Rewrite::Intersection(children) => children.iter().fold(Val::True, |acc, c| {
                and(acc, self.rewrite(user, object, def, c, depth, path))
            }),
            Rewrite::Exclusion { base, subtract } => and(
                self.rewrite(user, object, def, base, depth, path),
                not(self.rewrite(user, object, def, subtract, depth, path)),
            ),
        }
    }
}
