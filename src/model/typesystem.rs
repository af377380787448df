//! A validated model compiled for evaluation: relation lookup by (type, relation), compiled
//! conditions, and the tuple rules OpenFGA applies on write and on read.
//!
//! Invariant: a `TypeSystem` only exists for a model that passed [`super::validate`] and whose
//! conditions all compiled; its id is derived from the model text, so equal text ⇔ equal id.

use super::{Model, ModelErrors, RelationDef, RestrictionKind, Rewrite, TypeRestriction};
use crate::condition::{CompiledCondition, ConditionError};
use crate::tuple::{Tuple, User};
use std::collections::HashMap;
use std::sync::Arc;

/// Why a tuple may not be written (or is ignored on read) under a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TupleRuleError {
    #[error("tuple {tuple}: type '{object_type}' is not defined in the model")]
    UnknownType { tuple: String, object_type: String },
    #[error("tuple {tuple}: relation '{relation}' is not defined on type '{object_type}'")]
    UnknownRelation {
        tuple: String,
        object_type: String,
        relation: String,
    },
    #[error(
        "tuple {tuple}: relation '{object_type}#{relation}' takes no direct tuples (its rule is '{rule}')"
    )]
    NotDirect {
        tuple: String,
        object_type: String,
        relation: String,
        rule: String,
    },
    #[error("tuple {tuple}: '{user}' is not allowed by '{object_type}#{relation}: [{allowed}]'")]
    TypeNotAllowed {
        tuple: String,
        object_type: String,
        relation: String,
        user: String,
        allowed: String,
    },
    #[error("tuple {tuple}: condition '{condition}' is not defined in the model")]
    UnknownCondition { tuple: String, condition: String },
    #[error("tuple {tuple}: {source}")]
    ConditionParams {
        tuple: String,
        source: ConditionError,
    },
}

/// The model's name maps: read on every request, keyed by short names the model defines, so a
/// fast seeded hash instead of SipHash.
pub type NameMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

pub struct TypeInfo {
    pub relations: NameMap<RelationDef>,
}

/// A compiled, validated authorization model.
pub struct TypeSystem {
    pub id: String,
    pub dsl: String,
    pub model: Model,
    types: NameMap<TypeInfo>,
    conditions: NameMap<Arc<CompiledCondition>>,
    /// The rewrite graph, analysed for bottom-up evaluation.
    plan: super::plan::Plan,
    /// The relations compiled for top-down evaluation.
    compiled: super::compiled::Compiled,
}

impl std::fmt::Debug for TypeSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeSystem").field("id", &self.id).finish()
    }
}

/// The id of a model version: a content hash of its DSL text (FNV-1a, 64 bits, hex).
pub fn model_id(dsl: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dsl.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Errors compiling a model: the DSL's own errors, or a condition that does not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("{0}")]
    Model(#[from] ModelErrors),
    #[error("{0}")]
    Condition(#[from] ConditionError),
}

impl TypeSystem {
    /// Parses, validates and compiles a model.
    pub fn from_dsl(dsl: &str) -> Result<Self, CompileError> {
        let model = super::parse_and_validate(dsl)?;
        Self::new(model, dsl)
    }

    pub fn new(model: Model, dsl: &str) -> Result<Self, CompileError> {
        reject_computed_cycles(&model)?;
        let mut conditions = NameMap::default();
        for c in &model.conditions {
            conditions.insert(c.name.clone(), Arc::new(CompiledCondition::compile(c)?));
        }
        let types = model
            .types
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    TypeInfo {
                        relations: t
                            .relations
                            .iter()
                            .map(|r| (r.name.clone(), r.clone()))
                            .collect(),
                    },
                )
            })
            .collect();
        let compiled = {
            let names = conditions.keys().map(String::as_str).collect();
            super::compiled::Compiled::new(&model, &names)
        };
        let mut ts = Self {
            id: model_id(dsl),
            dsl: dsl.to_string(),
            model,
            types,
            conditions,
            plan: super::plan::Plan::default(),
            compiled,
        };
        ts.plan = super::plan::Plan::new(&ts);
        Ok(ts)
    }

    /// The model's rewrite graph, analysed for bottom-up evaluation.
    pub fn plan(&self) -> &super::plan::Plan {
        &self.plan
    }

    /// The relations compiled for top-down evaluation.
    pub fn compiled(&self) -> &super::compiled::Compiled {
        &self.compiled
    }

    pub fn has_type(&self, t: &str) -> bool {
        self.types.contains_key(t)
    }

    pub fn relation(&self, object_type: &str, relation: &str) -> Option<&RelationDef> {
        self.types.get(object_type)?.relations.get(relation)
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.model.types.iter().map(|t| t.name.as_str())
    }

    pub fn condition(&self, name: &str) -> Option<&Arc<CompiledCondition>> {
        self.conditions.get(name)
    }

    /// Whether `user` (with condition `condition`) may be directly related by
    /// `object_type#relation`: the restriction that admits it, if any.
    pub fn admitting_restriction<'a>(
        &'a self,
        object_type: &str,
        relation: &str,
        user: &User,
        condition: Option<&str>,
    ) -> Option<&'a TypeRestriction> {
        let rel = self.relation(object_type, relation)?;
        rel.directly_related.iter().find(|r| {
            r.type_name == user.user_type()
                && r.condition.as_deref() == condition
                && match (&r.kind, user) {
                    (RestrictionKind::Direct, User::Object(_)) => true,
                    (RestrictionKind::Wildcard, User::Wildcard(_)) => true,
                    (RestrictionKind::Userset(a), User::Userset(_, b)) => a == b,
                    _ => false,
                }
        })
    }

    /// OpenFGA's read-time filter: a stored tuple counts only if the current model still
    /// admits it (its type restriction, and its condition, exist).
    pub fn admits(
        &self,
        object_type: &str,
        relation: &str,
        user: &User,
        condition: Option<&str>,
    ) -> bool {
        if let Some(c) = condition
            && !self.conditions.contains_key(c)
        {
            return false;
        }
        self.admitting_restriction(object_type, relation, user, condition)
            .is_some()
    }

    /// OpenFGA's write-time validation of a tuple.
    pub fn validate_tuple(&self, tuple: &Tuple) -> Result<(), TupleRuleError> {
        let t = || tuple.to_string();
        let object_type = &tuple.object.object_type;
        let info = self
            .types
            .get(object_type)
            .ok_or_else(|| TupleRuleError::UnknownType {
                tuple: t(),
                object_type: object_type.clone(),
            })?;
        let rel =
            info.relations
                .get(&tuple.relation)
                .ok_or_else(|| TupleRuleError::UnknownRelation {
                    tuple: t(),
                    object_type: object_type.clone(),
                    relation: tuple.relation.clone(),
                })?;
        let user_type = tuple.user.user_type();
        if !self.has_type(user_type) {
            return Err(TupleRuleError::UnknownType {
                tuple: t(),
                object_type: user_type.to_string(),
            });
        }
        if let User::Userset(o, r) = &tuple.user
            && self.relation(&o.object_type, r).is_none()
        {
            return Err(TupleRuleError::UnknownRelation {
                tuple: t(),
                object_type: o.object_type.clone(),
                relation: r.clone(),
            });
        }
        if !contains_this(&rel.rewrite) {
            return Err(TupleRuleError::NotDirect {
                tuple: t(),
                object_type: object_type.clone(),
                relation: tuple.relation.clone(),
                rule: rewrite_to_dsl(&rel.rewrite, &rel.directly_related),
            });
        }
        let condition = tuple.condition.as_ref();
        if let Some(c) = condition
            && !self.conditions.contains_key(&c.name)
        {
            return Err(TupleRuleError::UnknownCondition {
                tuple: t(),
                condition: c.name.clone(),
            });
        }
        if self
            .admitting_restriction(
                object_type,
                &tuple.relation,
                &tuple.user,
                condition.map(|c| c.name.as_str()),
            )
            .is_none()
        {
            return Err(TupleRuleError::TypeNotAllowed {
                tuple: t(),
                object_type: object_type.clone(),
                relation: tuple.relation.clone(),
                user: describe_user_form(&tuple.user, condition.map(|c| c.name.as_str())),
                allowed: restrictions_to_dsl(&rel.directly_related),
            });
        }
        if let Some(c) = condition
            && let Some(def) = self.model.conditions.iter().find(|d| d.name == c.name)
        {
            crate::condition::validate_tuple_params(def, &c.context)
                .map_err(|source| TupleRuleError::ConditionParams { tuple: t(), source })?;
        }
        Ok(())
    }
}

fn describe_user_form(user: &User, condition: Option<&str>) -> String {
    let form = match user {
        User::Object(o) => o.object_type.clone(),
        User::Userset(o, r) => format!("{}#{r}", o.object_type),
        User::Wildcard(t) => format!("{t}:*"),
    };
    match condition {
        Some(c) => format!("{form} with {c}"),
        None => form,
    }
}

/// OpenFGA's server-side rule (beyond the language package's checks): the relations of a type
/// may not reference each other in a cycle of computed usersets (`define a: [user] or b`,
/// `define b: a`, or `define a: [user] or a`) — "an authorization model cannot contain a cycle".
/// Cycles through tuples (`[group#member]`, `x from parent`) are fine.
fn reject_computed_cycles(model: &Model) -> Result<(), ModelErrors> {
    fn computed<'a>(r: &'a Rewrite, out: &mut Vec<&'a str>) {
        match r {
            Rewrite::Computed(s) => out.push(s),
            Rewrite::This | Rewrite::TupleToUserset { .. } => {}
            Rewrite::Union(c) | Rewrite::Intersection(c) => c.iter().for_each(|c| computed(c, out)),
            Rewrite::Exclusion { base, subtract } => {
                computed(base, out);
                computed(subtract, out);
            }
        }
    }
    let mut errors = Vec::new();
    for t in &model.types {
        let mut graph = petgraph::graphmap::DiGraphMap::<&str, ()>::new();
        for r in &t.relations {
            graph.add_node(r.name.as_str());
            let mut targets = Vec::new();
            computed(&r.rewrite, &mut targets);
            for s in targets {
                graph.add_edge(r.name.as_str(), s, ());
            }
        }
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || scc.first().is_some_and(|n| graph.contains_edge(n, n));
            if !cyclic {
                continue;
            }
            // Report at the first relation of the cycle in declaration order.
            if let Some(r) = t.relations.iter().find(|r| scc.contains(&r.name.as_str())) {
                errors.push(super::ModelError {
                    kind: super::ModelErrorKind::Semantic,
                    message: format!(
                        "the definition of relation '{}' in type '{}' is invalid: an authorization model cannot contain a cycle of computed relations ({})",
                        r.name,
                        t.name,
                        scc.join(" → ")
                    ),
                    line: r.span.line,
                    column: r.span.column,
                });
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ModelErrors { errors })
    }
}

/// Whether a rewrite contains the direct assignment.
pub fn contains_this(rewrite: &Rewrite) -> bool {
    match rewrite {
        Rewrite::This => true,
        Rewrite::Computed(_) | Rewrite::TupleToUserset { .. } => false,
        Rewrite::Union(c) | Rewrite::Intersection(c) => c.iter().any(contains_this),
        Rewrite::Exclusion { base, subtract } => contains_this(base) || contains_this(subtract),
    }
}

/// A type restriction as DSL text: `user`, `user:*`, `group#member`, `user with cond`.
pub fn restriction_to_dsl(r: &TypeRestriction) -> String {
    let base = match &r.kind {
        RestrictionKind::Direct => r.type_name.clone(),
        RestrictionKind::Wildcard => format!("{}:*", r.type_name),
        RestrictionKind::Userset(rel) => format!("{}#{rel}", r.type_name),
    };
    match &r.condition {
        Some(c) => format!("{base} with {c}"),
        None => base,
    }
}

/// The restrictions of a direct assignment, comma-separated (without brackets).
pub fn restrictions_to_dsl(rs: &[TypeRestriction]) -> String {
    rs.iter()
        .map(restriction_to_dsl)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A rewrite as DSL text (sub-expressions parenthesised), used in explanations and errors.
pub fn rewrite_to_dsl(rewrite: &Rewrite, direct: &[TypeRestriction]) -> String {
    let sub = |r: &Rewrite| match r {
        Rewrite::Union(_) | Rewrite::Intersection(_) | Rewrite::Exclusion { .. } => {
            format!("({})", rewrite_to_dsl(r, direct))
        }
        _ => rewrite_to_dsl(r, direct),
    };
    match rewrite {
        Rewrite::This => format!("[{}]", restrictions_to_dsl(direct)),
        Rewrite::Computed(r) => r.clone(),
        Rewrite::TupleToUserset { tupleset, computed } => format!("{computed} from {tupleset}"),
        Rewrite::Union(c) => c.iter().map(sub).collect::<Vec<_>>().join(" or "),
        Rewrite::Intersection(c) => c.iter().map(sub).collect::<Vec<_>>().join(" and "),
        Rewrite::Exclusion { base, subtract } => format!("{} but not {}", sub(base), sub(subtract)),
    }
}
