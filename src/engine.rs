//! Pure evaluation over a snapshot: `check` with its explanation (the witness path for an
//! allow, the branches tried for a deny), and the slow-but-complete `list_objects` /
//! `list_users` built on it. No I/O, no locks, no Oxigraph types.
//!
//! Semantics are OpenFGA's (schema 1.1), evaluated top-down over the rewrite tree:
//! * a branch is `Yes` (with a witness), `No`, or `Unknown` (missing condition parameters, a
//!   condition error, or the depth limit) — three-valued logic: a union is `Yes` if any child is,
//!   an intersection `No` if any child is, an exclusion `No` if its base is `No` or its subtract
//!   `Yes`; otherwise an `Unknown` child makes the node `Unknown`;
//! * a cycle (an `object#relation` already on the resolution stack) is `No` for that branch and
//!   taints every result derived from it, which is then never memoized;
//! * the depth budget counts dispatches (computed usersets, tuple-to-userset hops and userset
//!   tuples); reaching it is `Unknown`, so the decision is an error, never an allow.
//!
//! Stored tuples the current model no longer admits (type restriction or condition gone) are
//! ignored on read, as OpenFGA does.

pub mod check;
pub mod explain;

pub use check::{CheckRequest, CheckResult, Decision, check};
pub use explain::{DenyTrace, Explanation, PathStep, Triple};

use crate::index::{Snapshot, UserRef};
use crate::model::TypeSystem;
use crate::tuple::{ObjectRef, User};
use std::collections::{BTreeSet, HashSet};

/// OpenFGA's default resolution depth.
pub const DEFAULT_MAX_DEPTH: u32 = 25;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("type '{0}' is not defined in the model")]
    UnknownType(String),
    #[error("relation '{relation}' is not defined on type '{object_type}'")]
    UnknownRelation {
        object_type: String,
        relation: String,
    },
    #[error("invalid user: {0}")]
    InvalidUser(String),
    #[error("the resolution depth limit ({0}) was exceeded")]
    DepthExceeded(u32),
    #[error("condition evaluation failed: {0}")]
    Condition(String),
    #[error("invalid contextual tuple: {0}")]
    ContextualTuple(String),
}

/// The graph an evaluation reads: a snapshot and the model it is interpreted under.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub snapshot: &'a Snapshot,
    pub model: &'a TypeSystem,
}

/// Validates the parts of a request that name model entities (OpenFGA's request validation).
pub fn validate_request(
    model: &TypeSystem,
    user: &User,
    relation: &str,
    object_type: &str,
) -> Result<(), EngineError> {
    if !model.has_type(object_type) {
        return Err(EngineError::UnknownType(object_type.to_string()));
    }
    if model.relation(object_type, relation).is_none() {
        return Err(EngineError::UnknownRelation {
            object_type: object_type.to_string(),
            relation: relation.to_string(),
        });
    }
    if !model.has_type(user.user_type()) {
        return Err(EngineError::InvalidUser(format!(
            "{user}: type '{}' is not defined in the model",
            user.user_type()
        )));
    }
    if let User::Userset(o, r) = user {
        if model.relation(&o.object_type, r).is_none() {
            return Err(EngineError::InvalidUser(format!(
                "{user}: relation '{r}' is not defined on type '{}'",
                o.object_type
            )));
        }
    }
    Ok(())
}

/// A `list_objects` request: which objects of `object_type` does `user` have `relation` on?
#[derive(Clone, Copy)]
pub struct ListObjectsRequest<'a> {
    pub user: &'a User,
    pub relation: &'a str,
    pub object_type: &'a str,
    pub context: &'a serde_json::Map<String, serde_json::Value>,
    pub contextual: &'a [crate::tuple::Tuple],
}

/// Every object of `object_type` that `user` has `relation` on: each candidate known to the
/// snapshot (or named by a contextual tuple) is checked. Complete and correct; slow on large
/// graphs (a later issue replaces it with bitmap evaluation).
pub fn list_objects(
    view: View<'_>,
    request: &ListObjectsRequest<'_>,
) -> Result<Vec<ObjectRef>, EngineError> {
    let object_type = request.object_type;
    validate_request(view.model, request.user, request.relation, object_type)?;
    let mut candidates: Vec<ObjectRef> = Vec::new();
    if let Some(t) = view.snapshot.name(object_type) {
        if let Some(objects) = view.snapshot.objects_of_type(t) {
            for o in objects {
                if let Ok(obj) = ObjectRef::parse(view.snapshot.object_str(o)) {
                    candidates.push(obj);
                }
            }
        }
    }
    for t in request.contextual {
        for obj in [Some(&t.object), user_object(&t.user)]
            .into_iter()
            .flatten()
        {
            if obj.object_type == object_type {
                candidates.push(obj.clone());
            }
        }
    }
    if let User::Userset(o, _) = request.user {
        if o.object_type == object_type {
            candidates.push(o.clone());
        }
    }
    candidates.sort();
    candidates.dedup();
    let mut out = Vec::new();
    for object in candidates {
        let r = check(
            view,
            &CheckRequest {
                user: request.user,
                relation: request.relation,
                object: &object,
                context: request.context,
                contextual: request.contextual,
                explain: false,
                max_depth: DEFAULT_MAX_DEPTH,
            },
        )?;
        if r.decision.allowed()? {
            out.push(object);
        }
    }
    Ok(out)
}

fn user_object(u: &User) -> Option<&ObjectRef> {
    match u {
        User::Object(o) | User::Userset(o, _) => Some(o),
        User::Wildcard(_) => None,
    }
}

/// A filter of `list_users`: a type, optionally with a relation (`group#member`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserFilter {
    pub user_type: String,
    pub relation: Option<String>,
}

/// Every user matching `filter` with `relation` on `object` (OpenFGA ListUsers semantics, by
/// checking every candidate: concrete objects of the type, its wildcard, and usersets).
/// A wildcard `type:*` in the answer means every user of that type.
pub fn list_users(
    view: View<'_>,
    object: &ObjectRef,
    relation: &str,
    filter: &UserFilter,
    context: &serde_json::Map<String, serde_json::Value>,
    contextual: &[crate::tuple::Tuple],
) -> Result<Vec<User>, EngineError> {
    if !view.model.has_type(&filter.user_type) {
        return Err(EngineError::UnknownType(filter.user_type.clone()));
    }
    if let Some(r) = &filter.relation {
        if view.model.relation(&filter.user_type, r).is_none() {
            return Err(EngineError::UnknownRelation {
                object_type: filter.user_type.clone(),
                relation: r.clone(),
            });
        }
    }
    if !view.model.has_type(&object.object_type) {
        return Err(EngineError::UnknownType(object.object_type.clone()));
    }
    if view.model.relation(&object.object_type, relation).is_none() {
        return Err(EngineError::UnknownRelation {
            object_type: object.object_type.clone(),
            relation: relation.to_string(),
        });
    }
    let mut candidates = BTreeSet::new();
    let mut visited = HashSet::new();
    let walker = Candidates {
        view,
        filter,
        contextual,
    };
    walker.collect(object, relation, &mut visited, &mut candidates);
    let mut out = Vec::new();
    for user in candidates {
        let request = CheckRequest {
            user: &user,
            relation,
            object,
            context,
            contextual,
            explain: false,
            max_depth: DEFAULT_MAX_DEPTH,
        };
        let r = check(view, &request)?;
        if r.decision.allowed()? {
            out.push(user);
        }
    }
    Ok(out)
}

/// Collects the users of `filter`'s form that appear on some positive path to
/// `object#relation` (through usersets, computed relations, tuple-to-userset hops, both sides of
/// unions and intersections, and the base of exclusions). ListUsers reports exactly those that
/// then pass a check: a concrete user reached only through a wildcard is not listed (the
/// wildcard is), as in OpenFGA.
struct Candidates<'a> {
    view: View<'a>,
    filter: &'a UserFilter,
    contextual: &'a [crate::tuple::Tuple],
}

impl Candidates<'_> {
    fn collect(
        &self,
        object: &ObjectRef,
        relation: &str,
        visited: &mut HashSet<(String, String)>,
        out: &mut BTreeSet<User>,
    ) {
        if !visited.insert((object.to_string(), relation.to_string())) {
            return;
        }
        if object.object_type == self.filter.user_type
            && self.filter.relation.as_deref() == Some(relation)
        {
            out.insert(User::Userset(object.clone(), relation.to_string()));
        }
        let Some(def) = self.view.model.relation(&object.object_type, relation) else {
            return;
        };
        self.rewrite(object, def, &def.rewrite, visited, out);
    }

    fn rewrite(
        &self,
        object: &ObjectRef,
        def: &crate::model::RelationDef,
        rewrite: &crate::model::Rewrite,
        visited: &mut HashSet<(String, String)>,
        out: &mut BTreeSet<User>,
    ) {
        use crate::model::Rewrite;
        match rewrite {
            Rewrite::This => {
                for user in self.direct_users(object, &def.name) {
                    let matches = match (&user, &self.filter.relation) {
                        (User::Object(o), None) => o.object_type == self.filter.user_type,
                        (User::Wildcard(t), None) => *t == self.filter.user_type,
                        (User::Userset(o, r), Some(fr)) => {
                            o.object_type == self.filter.user_type && r == fr
                        }
                        _ => false,
                    };
                    if let User::Userset(o, r) = &user {
                        self.collect(o, r, visited, out);
                    }
                    if matches {
                        out.insert(user);
                    }
                }
            }
            Rewrite::Computed(r) => self.collect(object, r, visited, out),
            Rewrite::TupleToUserset { tupleset, computed } => {
                for user in self.direct_users(object, tupleset) {
                    if let User::Object(parent) = user {
                        self.collect(&parent, computed, visited, out);
                    }
                }
            }
            Rewrite::Union(children) | Rewrite::Intersection(children) => {
                for c in children {
                    self.rewrite(object, def, c, visited, out);
                }
            }
            Rewrite::Exclusion { base, .. } => self.rewrite(object, def, base, visited, out),
        }
    }

    /// Every stored or contextual user of `object#relation` the model admits.
    fn direct_users(&self, object: &ObjectRef, relation: &str) -> Vec<User> {
        let snap = self.view.snapshot;
        let mut out = Vec::new();
        if let (Some(o), Some(r)) = (snap.object(&object.to_string()), snap.name(relation)) {
            if let Some(edges) = snap.edges(o, r) {
                for (_, bits) in &edges.direct {
                    out.extend(bits.iter().filter_map(|u| snap.user_of(UserRef::Object(u))));
                }
                out.extend(
                    edges
                        .wildcards
                        .iter()
                        .filter_map(|t| snap.user_of(UserRef::Wildcard(*t))),
                );
                out.extend(
                    edges
                        .usersets
                        .iter()
                        .filter_map(|(uo, ur)| snap.user_of(UserRef::Userset(*uo, *ur))),
                );
                out.extend(
                    edges
                        .conditional
                        .iter()
                        .filter_map(|e| snap.user_of(e.user)),
                );
            }
        }
        for t in self.contextual {
            if t.object == *object && t.relation == relation {
                out.push(t.user.clone());
            }
        }
        out
    }
}
