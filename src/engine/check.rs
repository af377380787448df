//! `check(user, relation, object)`: top-down evaluation of the rewrite tree with per-request
//! memoization, cycle detection and a depth budget (see the parent module for the semantics).

use super::explain::{DenyTrace, Explanation, Source, Witness};
use super::{EngineError, View, validate_request};
use crate::condition::ConditionOutcome;
use crate::index::{Edges, UserRef};
use crate::iri::{IriMapper, TUPLES_GRAPH};
use crate::model::typesystem::{restrictions_to_dsl, rewrite_to_dsl};
use crate::model::{RelationDef, RestrictionKind, Rewrite, TypeRestriction};
use crate::tuple::{ObjectRef, Tuple, TupleCondition, TupleKey, User};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// A check request. `contextual` tuples count as if stored, for this request only.
#[derive(Clone, Copy)]
pub struct CheckRequest<'a> {
    pub user: &'a User,
    pub relation: &'a str,
    pub object: &'a ObjectRef,
    pub context: &'a Map<String, Value>,
    pub contextual: &'a [Tuple],
    pub explain: bool,
    pub max_depth: u32,
}

/// The decision of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allowed,
    Denied,
    /// The answer depends on condition parameters that were not supplied (named here).
    Conditional {
        missing: Vec<String>,
    },
}

impl Decision {
    /// The decision as a yes/no answer, for operations that cannot return "conditional" per
    /// item (lists, OpenFGA's API): missing parameters are an error naming them, never a deny
    /// or an allow.
    pub fn allowed(&self) -> Result<bool, EngineError> {
        match self {
            Decision::Allowed => Ok(true),
            Decision::Denied => Ok(false),
            Decision::Conditional { missing } => Err(EngineError::Condition(format!(
                "missing context parameters: {}",
                missing.join(", ")
            ))),
        }
    }
}

/// A decision with its explanation and evaluation metadata.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub decision: Decision,
    /// For an allow with `explain`: the witness path.
    pub explanation: Option<Explanation>,
    /// For a deny with `explain`: the branches tried.
    pub deny_trace: Option<DenyTrace>,
    /// `object#relation` nodes evaluated.
    pub visited: u32,
    /// Whether a cycle was cut somewhere in the evaluation.
    pub cycle: bool,
    /// Whether a cached result bitmap answered it (no evaluation).
    pub cache_hit: bool,
}

/// Why a branch could not be decided.
#[derive(Debug, Clone, Default, PartialEq)]
struct Indeterminate {
    missing: BTreeSet<String>,
    depth: bool,
    errors: Vec<String>,
    /// A cycle was cut below. The branch stays undecided (fail closed): at the top it is a
    /// deny, and under `but not` an undecided subtraction blocks the base — OpenFGA's behaviour
    /// (its conformance test `true_butnot_cycle_return_false`, and the differential runs).
    cycle: bool,
}

impl Indeterminate {
    fn merge(&mut self, other: &Indeterminate) {
        self.missing.extend(other.missing.iter().cloned());
        self.depth |= other.depth;
        self.cycle |= other.cycle;
        self.errors.extend(other.errors.iter().cloned());
    }
}

/// A branch's value. `Yes` and `No` are determinate (Kleene logic keeps them stable whatever
/// an indeterminate input turns out to be), so they may be memoized; `Unknown` from a cycle or
/// the depth limit may not.
#[derive(Debug, Clone)]
enum Outcome {
    Yes(Arc<Witness>),
    No,
    Unknown { why: Indeterminate },
}

/// Accumulates a union: the first `Yes` wins; otherwise any `Unknown` makes it unknown.
#[derive(Default)]
struct Any {
    unknown: Option<Indeterminate>,
}

impl Any {
    /// Returns the witness if `o` decides the union.
    fn add(&mut self, o: Outcome) -> Option<Arc<Witness>> {
        match o {
            Outcome::Yes(w) => return Some(w),
            Outcome::No => {}
            Outcome::Unknown { why } => {
                self.unknown
                    .get_or_insert_with(Default::default)
                    .merge(&why);
            }
        }
        None
    }

    fn finish(self) -> Outcome {
        match self.unknown {
            Some(why) => Outcome::Unknown { why },
            None => Outcome::No,
        }
    }
}

/// `type#relation: rewrite`, the rule an explanation step cites.
fn rule_text(object: &ObjectRef, def: &RelationDef, rewrite: &Rewrite) -> String {
    format!(
        "{}#{}: {}",
        object.object_type,
        def.name,
        rewrite_to_dsl(rewrite, &def.directly_related)
    )
}

/// A tuple's condition, evaluated (a tuple without one is `Met`).
enum Cond {
    Met,
    NotMet,
    Unknown(Indeterminate),
}

/// Kleene conjunction of a tuple's condition and what follows it.
fn both(condition: Cond, then: impl FnOnce() -> Outcome) -> Outcome {
    match condition {
        Cond::NotMet => Outcome::No,
        Cond::Met => then(),
        Cond::Unknown(mut why) => match then() {
            Outcome::No => Outcome::No,
            Outcome::Yes(_) => Outcome::Unknown { why },
            Outcome::Unknown { why: w2 } => {
                why.merge(&w2);
                Outcome::Unknown { why }
            }
        },
    }
}

/// The contextual tuples of a request, by (object, relation).
type ContextualEdges<'a> = HashMap<(String, &'a str), Vec<&'a Tuple>>;

struct Evaluator<'a> {
    view: View<'a>,
    user: &'a User,
    /// The user interned in the snapshot, when it is a concrete object known there.
    user_obj: Option<u32>,
    context: &'a Map<String, Value>,
    contextual: ContextualEdges<'a>,
    max_depth: u32,
    memo: HashMap<(String, String), Outcome>,
    stack: HashSet<(String, String)>,
    visited: u32,
    cycle: bool,
    trace: Option<DenyTrace>,
}

/// Evaluates a check. Request validation errors and an exceeded depth are errors; missing
/// condition parameters give [`Decision::Conditional`].
pub fn check(view: View<'_>, request: &CheckRequest<'_>) -> Result<CheckResult, EngineError> {
    validate_request(
        view.model,
        request.user,
        request.relation,
        &request.object.object_type,
    )?;
    for t in request.contextual {
        view.model
            .validate_tuple(t)
            .map_err(|e| EngineError::ContextualTuple(e.to_string()))?;
    }
    let mut contextual: ContextualEdges<'_> = HashMap::new();
    for t in request.contextual {
        contextual
            .entry((t.object.to_string(), t.relation.as_str()))
            .or_default()
            .push(t);
    }
    let user_obj = match request.user {
        User::Object(o) => view.snapshot.object(&o.to_string()),
        _ => None,
    };
    let mut ev = Evaluator {
        view,
        user: request.user,
        user_obj,
        context: request.context,
        contextual,
        max_depth: request.max_depth,
        memo: HashMap::new(),
        stack: HashSet::new(),
        visited: 0,
        cycle: false,
        trace: None,
    };
    let outcome = ev.relation(request.object, request.relation, 0);
    let mut result = CheckResult {
        decision: Decision::Denied,
        explanation: None,
        deny_trace: None,
        visited: ev.visited,
        cycle: ev.cycle,
        cache_hit: false,
    };
    let denied = match outcome {
        Outcome::Yes(w) => {
            result.decision = Decision::Allowed;
            if request.explain {
                result.explanation = Some(Explanation::from_witness(&w, &IriMapper::default()));
            }
            false
        }
        Outcome::No => true,
        // Only a cycle was undecidable: OpenFGA answers "not allowed".
        Outcome::Unknown { why }
            if why.missing.is_empty() && !why.depth && why.errors.is_empty() =>
        {
            true
        }
        Outcome::Unknown { why } => {
            if why.depth {
                return Err(EngineError::DepthExceeded(request.max_depth));
            }
            if let Some(e) = why.errors.first() {
                return Err(EngineError::Condition(e.clone()));
            }
            result.decision = Decision::Conditional {
                missing: why.missing.into_iter().collect(),
            };
            false
        }
    };
    if denied && request.explain {
        // A second, traced pass: the first stays free of tracing cost.
        ev.memo.clear();
        ev.stack.clear();
        ev.trace = Some(DenyTrace::default());
        let _ = ev.relation(request.object, request.relation, 0);
        result.deny_trace = ev.trace.take();
    }
    Ok(result)
}

impl<'a> Evaluator<'a> {
    fn note(
        &mut self,
        at: impl FnOnce() -> String,
        rule: impl FnOnce() -> String,
        missing: impl FnOnce() -> String,
    ) {
        if let Some(t) = &mut self.trace {
            t.push(at(), rule(), missing());
        }
    }

    /// Does the user have `relation` on `object`?
    fn relation(&mut self, object: &ObjectRef, relation: &str, depth: u32) -> Outcome {
        if depth >= self.max_depth {
            return Outcome::Unknown {
                why: Indeterminate {
                    depth: true,
                    ..Default::default()
                },
            };
        }
        let model = self.view.model;
        let Some(def) = model.relation(&object.object_type, relation) else {
            return Outcome::No;
        };
        if let User::Userset(o, r) = self.user {
            if o == object && r == relation {
                return Outcome::Yes(Arc::new(Witness::SelfUserset {
                    at: format!("{object}#{relation}"),
                }));
            }
        }
        let key = (object.to_string(), relation.to_string());
        if let Some(o) = self.memo.get(&key) {
            return o.clone();
        }
        if self.stack.contains(&key) {
            self.cycle = true;
            self.note(
                || format!("{object}#{relation}"),
                || "cycle".into(),
                || "this relation depends on itself here; the cycle adds nothing".into(),
            );
            return Outcome::Unknown {
                why: Indeterminate {
                    cycle: true,
                    ..Default::default()
                },
            };
        }
        self.visited += 1;
        self.stack.insert(key.clone());
        let outcome = self.rewrite(object, def, &def.rewrite, depth);
        self.stack.remove(&key);
        let memoizable = match &outcome {
            Outcome::Yes(_) => true,
            Outcome::No => true,
            Outcome::Unknown { why } => !why.cycle && !why.depth,
        };
        if memoizable {
            self.memo.insert(key, outcome.clone());
        }
        outcome
    }

    fn rewrite(
        &mut self,
        object: &ObjectRef,
        def: &'a RelationDef,
        rewrite: &'a Rewrite,
        depth: u32,
    ) -> Outcome {
        let at = || format!("{object}#{}", def.name);
        match rewrite {
            Rewrite::This => self.direct(object, def, depth),
            Rewrite::Computed(target) => match self.relation(object, target, depth + 1) {
                Outcome::Yes(w) => Outcome::Yes(Arc::new(Witness::Computed {
                    at: at(),
                    rule: format!("{}#{}: {target}", object.object_type, def.name),
                    then: w,
                })),
                other => other,
            },
            Rewrite::TupleToUserset { tupleset, computed } => {
                self.tuple_to_userset(object, def, tupleset, computed, depth)
            }
            Rewrite::Union(children) => {
                let mut any = Any::default();
                for c in children {
                    let o = self.rewrite(object, def, c, depth);
                    if let Some(w) = any.add(o) {
                        return Outcome::Yes(w);
                    }
                }
                any.finish()
            }
            Rewrite::Intersection(children) => {
                let mut all = Vec::new();
                let mut unknown: Option<Indeterminate> = None;
                for c in children {
                    match self.rewrite(object, def, c, depth) {
                        Outcome::Yes(w) => all.push(w),
                        Outcome::No => {
                            self.note(
                                at,
                                || rewrite_to_dsl(rewrite, &def.directly_related),
                                || {
                                    format!(
                                        "operand '{}' does not hold",
                                        rewrite_to_dsl(c, &def.directly_related)
                                    )
                                },
                            );
                            return Outcome::No;
                        }
                        Outcome::Unknown { why } => {
                            unknown.get_or_insert_with(Default::default).merge(&why);
                        }
                    }
                }
                match unknown {
                    Some(why) => Outcome::Unknown { why },
                    None => Outcome::Yes(Arc::new(Witness::Intersection {
                        at: at(),
                        rule: rule_text(object, def, rewrite),
                        all,
                    })),
                }
            }
            Rewrite::Exclusion { base, subtract } => {
                let b = self.rewrite(object, def, base, depth);
                if let Outcome::No = b {
                    return b;
                }
                let s = self.rewrite(object, def, subtract, depth);
                match (b, s) {
                    (_, Outcome::Yes(_)) => {
                        self.note(
                            at,
                            || rewrite_to_dsl(rewrite, &def.directly_related),
                            || {
                                format!(
                                    "excluded: '{}' holds",
                                    rewrite_to_dsl(subtract, &def.directly_related)
                                )
                            },
                        );
                        Outcome::No
                    }
                    (Outcome::Yes(w), Outcome::No) => Outcome::Yes(Arc::new(Witness::Exclusion {
                        at: at(),
                        rule: rule_text(object, def, rewrite),
                        base: w,
                        excluded: rewrite_to_dsl(subtract, &def.directly_related),
                    })),
                    (b, s) => {
                        let mut why = Indeterminate::default();
                        for o in [b, s] {
                            if let Outcome::Unknown { why: w, .. } = o {
                                why.merge(&w);
                            }
                        }
                        Outcome::Unknown { why }
                    }
                }
            }
        }
    }

    /// Evaluates a tuple's condition (if any) against the request context.
    fn condition(&self, condition: Option<&TupleCondition>) -> Cond {
        let Some(condition) = condition else {
            return Cond::Met;
        };
        let Some(compiled) = self.view.model.condition(&condition.name) else {
            return Cond::NotMet;
        };
        match compiled.evaluate(Some(&condition.context), self.context) {
            Ok(ConditionOutcome::Met) => Cond::Met,
            Ok(ConditionOutcome::NotMet) => Cond::NotMet,
            Ok(ConditionOutcome::Missing(names)) => Cond::Unknown(Indeterminate {
                missing: names.into_iter().collect(),
                ..Default::default()
            }),
            Err(e) => Cond::Unknown(Indeterminate {
                errors: vec![e.to_string()],
                ..Default::default()
            }),
        }
    }

    /// The direct users of `object#relation` that the model admits, stored and contextual:
    /// `(user, condition, source)`.
    fn admitted_edges(
        &self,
        object: &ObjectRef,
        def: &RelationDef,
    ) -> Vec<(User, Option<Arc<TupleCondition>>, Source)> {
        let snap = self.view.snapshot;
        let model = self.view.model;
        let mut out = Vec::new();
        let graph_of = |o: u32, r: u32, u: UserRef| {
            Source::Graph(snap.origin(o, r, u).unwrap_or(TUPLES_GRAPH).to_string())
        };
        if let (Some(o), Some(r)) = (snap.object(&object.to_string()), snap.name(&def.name)) {
            if let Some(edges) = snap.edges(o, r) {
                // Unconditional concrete users are not enumerated: `direct` answers them with
                // one bitmap probe.
                let Edges {
                    wildcards,
                    usersets,
                    conditional,
                    ..
                } = edges;
                for t in wildcards {
                    let user = User::Wildcard(snap.name_str(*t).to_string());
                    out.push((user, None, graph_of(o, r, UserRef::Wildcard(*t))));
                }
                for (uo, ur) in usersets {
                    if let Some(user) = snap.user_of(UserRef::Userset(*uo, *ur)) {
                        out.push((user, None, graph_of(o, r, UserRef::Userset(*uo, *ur))));
                    }
                }
                for e in conditional {
                    if let Some(user) = snap.user_of(e.user) {
                        out.push((user, Some(e.condition.clone()), graph_of(o, r, e.user)));
                    }
                }
            }
        }
        if let Some(ts) = self
            .contextual
            .get(&(object.to_string(), def.name.as_str()))
        {
            for t in ts {
                out.push((
                    t.user.clone(),
                    t.condition.clone().map(Arc::new),
                    Source::Contextual,
                ));
            }
        }
        out.retain(|(u, c, _)| {
            model.admits(
                &object.object_type,
                &def.name,
                u,
                c.as_ref().map(|c| c.name.as_str()),
            )
        });
        out
    }

    /// The unconditional concrete users of `object#relation` of one type, as a bitmap probe.
    fn has_plain_direct(
        &self,
        object: &ObjectRef,
        relation: &str,
        user: &ObjectRef,
    ) -> Option<Source> {
        let snap = self.view.snapshot;
        let (o, r, u, t) = (
            snap.object(&object.to_string())?,
            snap.name(relation)?,
            self.user_obj?,
            snap.name(&user.object_type)?,
        );
        let edges = snap.edges(o, r)?;
        let i = edges.direct.binary_search_by_key(&t, |(t, _)| *t).ok()?;
        let (_, bits) = edges.direct.get(i)?;
        if bits.contains(u) {
            Some(Source::Graph(
                snap.origin(o, r, UserRef::Object(u))
                    .unwrap_or(TUPLES_GRAPH)
                    .to_string(),
            ))
        } else {
            None
        }
    }

    fn direct(&mut self, object: &ObjectRef, def: &'a RelationDef, depth: u32) -> Outcome {
        let model = self.view.model;
        let rule = || {
            format!(
                "{}#{}: [{}]",
                object.object_type,
                def.name,
                restrictions_to_dsl(&def.directly_related)
            )
        };
        let key = |user: &User| TupleKey {
            object: object.clone(),
            relation: def.name.clone(),
            user: user.clone(),
        };
        // 1. The user itself, unconditionally (bitmap probe).
        if let User::Object(u) = self.user {
            if model
                .admitting_restriction(&object.object_type, &def.name, self.user, None)
                .is_some()
            {
                if let Some(source) = self.has_plain_direct(object, &def.name, u) {
                    return Outcome::Yes(Arc::new(Witness::Tuple {
                        tuple: key(self.user),
                        condition: None,
                        source,
                        rule: rule(),
                    }));
                }
            }
        }
        let mut any = Any::default();
        let edges = self.admitted_edges(object, def);
        // Conditional concrete users, wildcards, exact usersets, contextual tuples.
        for (user, condition, source) in &edges {
            let matches = match (&user, self.user) {
                (User::Wildcard(t), User::Object(u)) => *t == u.object_type,
                (a, b) => *a == b,
            };
            if !matches {
                continue;
            }
            let o = match self.condition(condition.as_deref()) {
                Cond::Met => Outcome::Yes(Arc::new(Witness::Tuple {
                    tuple: key(user),
                    condition: condition.as_ref().map(|c| c.name.clone()),
                    source: source.clone(),
                    rule: rule(),
                })),
                not_met => {
                    if let Some(c) = condition {
                        let name = c.name.clone();
                        self.note(
                            || format!("{object}#{}", def.name),
                            rule,
                            || format!("the tuple {}'s condition '{name}' is not met", key(user)),
                        );
                    }
                    match not_met {
                        Cond::Unknown(why) => Outcome::Unknown { why },
                        _ => Outcome::No,
                    }
                }
            };
            if let Some(w) = any.add(o) {
                return Outcome::Yes(w);
            }
        }
        // Usersets: the user may be in them.
        for (user, condition, source) in &edges {
            let User::Userset(uo, ur) = user else {
                continue;
            };
            if user == self.user {
                continue; // matched exactly above
            }
            let c = self.condition(condition.as_deref());
            let o = both(c, || match self.relation(uo, ur, depth + 1) {
                Outcome::Yes(then) => Outcome::Yes(Arc::new(Witness::Userset {
                    tuple: key(user),
                    condition: condition.as_ref().map(|c| c.name.clone()),
                    source: source.clone(),
                    rule: rule(),
                    then,
                })),
                other => other,
            });
            if let Some(w) = any.add(o) {
                return Outcome::Yes(w);
            }
        }
        if self.trace.is_some() {
            let user = self.user.to_string();
            self.note(
                || format!("{object}#{}", def.name),
                rule,
                || {
                    format!(
                        "no tuple {object}#{}@{user} (nor a wildcard or a userset containing it)",
                        def.name
                    )
                },
            );
        }
        any.finish()
    }

    fn tuple_to_userset(
        &mut self,
        object: &ObjectRef,
        def: &'a RelationDef,
        tupleset: &str,
        computed: &str,
        depth: u32,
    ) -> Outcome {
        let model = self.view.model;
        let rule = format!(
            "{}#{}: {computed} from {tupleset}",
            object.object_type, def.name
        );
        let Some(ts_def) = model.relation(&object.object_type, tupleset) else {
            return Outcome::No;
        };
        let parents = self.tupleset_parents(object, ts_def);
        let mut any = Any::default();
        for (parent, condition, source) in &parents {
            if model.relation(&parent.object_type, computed).is_none() {
                continue;
            }
            let c = self.condition(condition.as_deref());
            let o = both(c, || match self.relation(parent, computed, depth + 1) {
                Outcome::Yes(then) => Outcome::Yes(Arc::new(Witness::TupleToUserset {
                    tuple: TupleKey {
                        object: object.clone(),
                        relation: tupleset.to_string(),
                        user: User::Object(parent.clone()),
                    },
                    condition: condition.as_ref().map(|c| c.name.clone()),
                    source: source.clone(),
                    rule: rule.clone(),
                    then,
                })),
                other => other,
            });
            if let Some(w) = any.add(o) {
                return Outcome::Yes(w);
            }
        }
        if self.trace.is_some() {
            let n = parents.len();
            self.note(
                || format!("{object}#{}", def.name),
                || rule.clone(),
                || {
                    if n == 0 {
                        format!("no tuple {object}#{tupleset}@… to follow")
                    } else {
                        format!("none of the {n} '{tupleset}' objects grants '{computed}'")
                    }
                },
            );
        }
        any.finish()
    }

    /// The objects related to `object` by the tupleset relation (concrete objects only: OpenFGA
    /// follows no userset or wildcard through a tupleset).
    fn tupleset_parents(
        &self,
        object: &ObjectRef,
        ts_def: &RelationDef,
    ) -> Vec<(ObjectRef, Option<Arc<TupleCondition>>, Source)> {
        let snap = self.view.snapshot;
        let model = self.view.model;
        let mut out = Vec::new();
        if let (Some(o), Some(r)) = (snap.object(&object.to_string()), snap.name(&ts_def.name)) {
            if let Some(edges) = snap.edges(o, r) {
                for (t, bits) in &edges.direct {
                    let type_name = snap.name_str(*t);
                    let admitted = ts_def.directly_related.iter().any(|r: &TypeRestriction| {
                        r.type_name == type_name
                            && r.kind == RestrictionKind::Direct
                            && r.condition.is_none()
                    });
                    if !admitted {
                        continue;
                    }
                    for p in bits {
                        if let Ok(parent) = ObjectRef::parse(snap.object_str(p)) {
                            let source = Source::Graph(
                                snap.origin(o, r, UserRef::Object(p))
                                    .unwrap_or(TUPLES_GRAPH)
                                    .to_string(),
                            );
                            out.push((parent, None, source));
                        }
                    }
                }
                for e in &edges.conditional {
                    if let UserRef::Object(p) = e.user {
                        if let Ok(parent) = ObjectRef::parse(snap.object_str(p)) {
                            let user = User::Object(parent.clone());
                            if model.admits(
                                &object.object_type,
                                &ts_def.name,
                                &user,
                                Some(&e.condition.name),
                            ) {
                                let source = Source::Graph(
                                    snap.origin(o, r, e.user)
                                        .unwrap_or(TUPLES_GRAPH)
                                        .to_string(),
                                );
                                out.push((parent, Some(e.condition.clone()), source));
                            }
                        }
                    }
                }
            }
        }
        if let Some(ts) = self
            .contextual
            .get(&(object.to_string(), ts_def.name.as_str()))
        {
            for t in ts {
                if let User::Object(parent) = &t.user {
                    let c = t.condition.as_ref().map(|c| c.name.as_str());
                    if model.admits(&object.object_type, &ts_def.name, &t.user, c) {
                        out.push((
                            parent.clone(),
                            t.condition.clone().map(Arc::new),
                            Source::Contextual,
                        ));
                    }
                }
            }
        }
        out
    }
}
