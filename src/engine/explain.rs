//! Explanations: the witness of an allow (a tree of the tuples and rules that made it,
//! flattened into a path from the object to the user) and the trace of a deny (the branches
//! tried and what each lacked).

use crate::iri::IriMapper;
use crate::tuple::TupleKey;
use serde::Serialize;
use std::sync::Arc;

/// Where a tuple came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A stored triple in this named graph.
    Graph(String),
    /// A contextual tuple sent with the request.
    Contextual,
}

/// Why `object#relation` holds for the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Witness {
    /// A tuple names the user (or its wildcard) directly.
    Tuple {
        tuple: TupleKey,
        condition: Option<String>,
        source: Source,
        rule: String,
    },
    /// The user is the userset `object#relation` itself.
    SelfUserset { at: String },
    /// A userset tuple `object#relation@o#r`, and the user has `r` on `o`.
    Userset {
        tuple: TupleKey,
        condition: Option<String>,
        source: Source,
        rule: String,
        then: Arc<Witness>,
    },
    /// `object#relation` is defined as (or includes) `object#computed`.
    Computed {
        at: String,
        rule: String,
        then: Arc<Witness>,
    },
    /// `computed from tupleset`: the tuple `object#tupleset@parent`, and the user has
    /// `computed` on `parent`.
    TupleToUserset {
        tuple: TupleKey,
        condition: Option<String>,
        source: Source,
        rule: String,
        then: Arc<Witness>,
    },
    /// Every operand of an intersection holds.
    Intersection {
        at: String,
        rule: String,
        all: Vec<Arc<Witness>>,
    },
    /// The base holds and the subtracted relation does not.
    Exclusion {
        at: String,
        rule: String,
        base: Arc<Witness>,
        excluded: String,
    },
}

/// An RDF triple (IRIs in N-Triples form without brackets) and the graph it is stored in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Triple {
    pub subject: String,
    pub predicate: String,
    pub object: String,
    pub graph: Option<String>,
}

/// One step of an explanation path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathStep {
    /// `object#relation` this step concludes.
    pub at: String,
    /// The model rule applied (`document#viewer: [user, group#member]`, `viewer from parent`, …).
    pub rule: String,
    /// The tuple used, in OpenFGA shorthand, if the step reads one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuple: Option<String>,
    /// The tuple's condition, if any (it was met).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The stored triple the tuple is, if it is stored (contextual tuples have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triple: Option<Triple>,
    /// `contextual` for a contextual tuple.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The `clew:RelationBinding` the tuple was read through, when its triple is in another
    /// vocabulary (then `triple` is that triple, with its original predicate and direction).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    /// For a tuple read through a transitive property: every stored triple of the chain, in
    /// order (`triple` is the first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Triple>,
    /// The RDFS/OWL axioms the reading relied on (`rdfs:subPropertyOf`, `owl:inverseOf`,
    /// `rdfs:subClassOf`, `owl:TransitiveProperty`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub axioms: Vec<Triple>,
}

/// The explanation of an allow: the path of steps from the object to the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub path: Vec<PathStep>,
}

impl Explanation {
    pub fn from_witness(w: &Witness, iris: &IriMapper) -> Self {
        let mut path = Vec::new();
        flatten(w, iris, &mut path);
        Self { path }
    }
}

fn tuple_step(
    tuple: &TupleKey,
    condition: &Option<String>,
    source: &Source,
    rule: &str,
    iris: &IriMapper,
) -> PathStep {
    let (triple, source) = match source {
        Source::Graph(g) => (
            Some(Triple {
                subject: iris.object(&tuple.object),
                predicate: iris.relation(&tuple.relation),
                object: iris.user(&tuple.user),
                graph: Some(g.clone()),
            }),
            None,
        ),
        Source::Contextual => (None, Some("contextual".to_string())),
    };
    PathStep {
        at: format!("{}#{}", tuple.object, tuple.relation),
        rule: rule.to_string(),
        tuple: Some(tuple.to_string()),
        condition: condition.clone(),
        triple,
        source,
        binding: None,
        chain: Vec::new(),
        axioms: Vec::new(),
    }
}

fn rule_step(at: &str, rule: &str) -> PathStep {
    PathStep {
        at: at.to_string(),
        rule: rule.to_string(),
        tuple: None,
        condition: None,
        triple: None,
        source: None,
        binding: None,
        chain: Vec::new(),
        axioms: Vec::new(),
    }
}

fn flatten(w: &Witness, iris: &IriMapper, out: &mut Vec<PathStep>) {
    match w {
        Witness::Tuple {
            tuple,
            condition,
            source,
            rule,
        } => out.push(tuple_step(tuple, condition, source, rule, iris)),
        Witness::SelfUserset { at } => out.push(rule_step(at, "the user is this userset")),
        Witness::Userset {
            tuple,
            condition,
            source,
            rule,
            then,
        }
        | Witness::TupleToUserset {
            tuple,
            condition,
            source,
            rule,
            then,
        } => {
            out.push(tuple_step(tuple, condition, source, rule, iris));
            flatten(then, iris, out);
        }
        Witness::Computed { at, rule, then } => {
            out.push(rule_step(at, rule));
            flatten(then, iris, out);
        }
        Witness::Intersection { at, rule, all } => {
            out.push(rule_step(at, rule));
            for w in all {
                flatten(w, iris, out);
            }
        }
        Witness::Exclusion {
            at,
            rule,
            base,
            excluded,
        } => {
            out.push(rule_step(at, &format!("{rule} ({excluded} does not hold)")));
            flatten(base, iris, out);
        }
    }
}

/// One branch tried for a denied check, and what it lacked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tried {
    /// `object#relation`
    pub at: String,
    /// The rule evaluated there.
    pub rule: String,
    /// What was missing or failed.
    pub missing: String,
}

/// Why a check was denied: the branches tried (capped; `truncated` says so).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DenyTrace {
    pub tried: Vec<Tried>,
    pub truncated: bool,
}

/// The most branches a deny trace records.
pub const MAX_TRACE: usize = 256;

impl DenyTrace {
    pub fn push(&mut self, at: String, rule: String, missing: String) {
        if self.tried.len() >= MAX_TRACE {
            self.truncated = true;
            return;
        }
        self.tried.push(Tried { at, rule, missing });
    }
}
