//! `expand(object, relation)`: the userset tree of one object's relation, one level deep, as
//! OpenFGA's Expand returns it — the rewrite rule with its direct tuples filled in, computed
//! relations and tuple-to-userset steps named (not followed), so a caller can walk further by
//! expanding the usersets it names.
//!
//! Invariant: the tree has the shape of the relation's rewrite; leaves list exactly the stored
//! tuples the model admits (read-time filter), with their conditions.

use super::{EngineError, View};
use crate::model::{RelationDef, RestrictionKind, Rewrite};
use crate::tuple::{ObjectRef, User};
use serde::Serialize;

/// A direct user of a leaf, with the condition its tuple carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpandUser {
    pub user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// A node of the userset tree. `name` is the `object#relation` it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExpandNode {
    /// `[…]`: the users directly related (concrete users, wildcards and usersets).
    Users {
        name: String,
        users: Vec<ExpandUser>,
    },
    /// `relation`: the same object's other relation.
    Computed { name: String, userset: String },
    /// `computed from tupleset`: the objects the tupleset names, each with `computed`.
    TupleToUserset {
        name: String,
        tupleset: String,
        computed: Vec<String>,
    },
    Union {
        name: String,
        nodes: Vec<ExpandNode>,
    },
    Intersection {
        name: String,
        nodes: Vec<ExpandNode>,
    },
    Difference {
        name: String,
        base: Box<ExpandNode>,
        subtract: Box<ExpandNode>,
    },
}

/// Expands `object#relation` one level.
pub fn expand(
    view: View<'_>,
    object: &ObjectRef,
    relation: &str,
) -> Result<ExpandNode, EngineError> {
    if !view.model.has_type(&object.object_type) {
        return Err(EngineError::UnknownType(object.object_type.clone()));
    }
    let def = view
        .model
        .relation(&object.object_type, relation)
        .ok_or_else(|| EngineError::UnknownRelation {
            object_type: object.object_type.clone(),
            relation: relation.to_string(),
        })?;
    Ok(node(view, object, def, &def.rewrite))
}

fn node(view: View<'_>, object: &ObjectRef, def: &RelationDef, rewrite: &Rewrite) -> ExpandNode {
    let name = format!("{object}#{}", def.name);
    match rewrite {
        Rewrite::This => ExpandNode::Users {
            users: direct_users(view, object, &def.name)
                .into_iter()
                .map(|(u, c)| ExpandUser {
                    user: u.to_string(),
                    condition: c,
                })
                .collect(),
            name,
        },
        Rewrite::Computed(r) => ExpandNode::Computed {
            name,
            userset: format!("{object}#{r}"),
        },
        Rewrite::TupleToUserset { tupleset, computed } => {
            let mut targets = Vec::new();
            if let Some(ts) = view.model.relation(&object.object_type, tupleset) {
                for (u, _) in direct_users(view, object, &ts.name) {
                    if let User::Object(parent) = u {
                        let plain = ts.directly_related.iter().any(|r| {
                            r.type_name == parent.object_type && r.kind == RestrictionKind::Direct
                        });
                        if plain && view.model.relation(&parent.object_type, computed).is_some() {
                            targets.push(format!("{parent}#{computed}"));
                        }
                    }
                }
            }
            ExpandNode::TupleToUserset {
                name,
                tupleset: format!("{object}#{tupleset}"),
                computed: targets,
            }
        }
        Rewrite::Union(children) => ExpandNode::Union {
            nodes: children
                .iter()
                .map(|c| node(view, object, def, c))
                .collect(),
            name,
        },
        Rewrite::Intersection(children) => ExpandNode::Intersection {
            nodes: children
                .iter()
                .map(|c| node(view, object, def, c))
                .collect(),
            name,
        },
        Rewrite::Exclusion { base, subtract } => ExpandNode::Difference {
            base: Box::new(node(view, object, def, base)),
            subtract: Box::new(node(view, object, def, subtract)),
            name,
        },
    }
}

/// The stored tuples on `object#relation` the model admits: (user, condition name).
fn direct_users(view: View<'_>, object: &ObjectRef, relation: &str) -> Vec<(User, Option<String>)> {
    let snap = view.snapshot;
    let mut out = Vec::new();
    let (Some(o), Some(r)) = (snap.object(&object.to_string()), snap.name(relation)) else {
        return out;
    };
    let Some(edges) = snap.edges(o, r) else {
        return out;
    };
    for (u, c) in edges.users() {
        let c = c.map(|c| c.name.clone());
        if let Some(user) = snap.user_of(u)
            && view
                .model
                .admits(&object.object_type, relation, &user, c.as_deref())
        {
            out.push((user, c));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
