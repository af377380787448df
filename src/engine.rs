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
pub mod expand;
pub mod explain;
pub mod reach;

pub use check::{CheckRequest, CheckResult, Decision, check};
pub use explain::{DenyTrace, Explanation, PathStep, Triple};

use crate::index::{Change, Obj, Snapshot, TupleChange, UserRef};
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
    #[error("bottom-up evaluation did not converge within {0} rounds")]
    NotConverged(u32),
}

/// The graph an evaluation reads: a snapshot and the model it is interpreted under.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub snapshot: &'a Snapshot,
    pub model: &'a TypeSystem,
    /// Nested-group closures for this snapshot and model, when the caller keeps them.
    pub groups: Option<&'a crate::index::groups::GroupIndex>,
    /// The model resolved against this snapshot and these closures, when the caller keeps it
    /// (else a check resolves the names it uses, by string, per request).
    pub resolved: Option<&'a Resolved>,
}

/// A model resolved against a published state, once, instead of by string in every request:
/// the snapshot name of every symbol of the compiled model (`None`: a symbol the snapshot has no
/// name for), and the relation of each usable nested-group closure. Names are valid for exactly
/// the snapshot and model it was built from; a closure is recognised by its spec's identity, so
/// a closure of another group index is simply not found here.
#[derive(Debug, Default)]
pub struct Resolved {
    names: Box<[Option<crate::index::Name>]>,
    closures: Vec<(
        std::sync::Arc<crate::index::groups::GroupSpec>,
        crate::model::compiled::RelId,
    )>,
}

impl Resolved {
    pub fn new(
        snapshot: &Snapshot,
        model: &TypeSystem,
        groups: Option<&crate::index::groups::GroupIndex>,
    ) -> Self {
        let program = model.compiled();
        let symbols = u32::try_from(program.symbol_count()).unwrap_or(u32::MAX);
        let closures = groups
            .into_iter()
            .flat_map(|g| g.usable())
            .filter_map(|(spec, _)| {
                let rel = program.relation_by_name(&spec.object_type, &spec.relation)?;
                Some((spec.clone(), rel))
            })
            .collect();
        Self {
            names: (0..symbols)
                .map(|s| snapshot.name(program.symbol(s)))
                .collect(),
            closures,
        }
    }

    /// The name of symbol `s`: `Some(None)` if the snapshot has none, `None` if `s` is not a
    /// symbol of the model.
    pub fn get(&self, s: crate::model::compiled::Sym) -> Option<Option<crate::index::Name>> {
        self.names.get(s as usize).copied()
    }

    /// The relation of the closure with this spec, if it was resolved here.
    pub fn closure_relation(
        &self,
        spec: &crate::index::groups::GroupSpec,
    ) -> Option<crate::model::compiled::RelId> {
        self.closures
            .iter()
            .find(|(s, _)| std::ptr::eq(&**s, spec))
            .map(|(_, r)| *r)
    }
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
    if let User::Userset(o, r) = user
        && model.relation(&o.object_type, r).is_none()
    {
        return Err(EngineError::InvalidUser(format!(
            "{user}: relation '{r}' is not defined on type '{}'",
            o.object_type
        )));
    }
    Ok(())
}

/// A `lookup` request: which objects of `object_type` does `user` have `relation` on?
#[derive(Clone, Copy)]
pub struct LookupRequest<'a> {
    pub user: &'a User,
    pub relation: &'a str,
    pub object_type: &'a str,
    pub context: &'a serde_json::Map<String, serde_json::Value>,
    pub contextual: &'a [crate::tuple::Tuple],
    pub max_depth: u32,
}

/// How a bulk answer was computed (reported in response metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Bottom-up bitmap evaluation for the subject.
    Bitmap,
    /// Bitmap evaluation whose depth bound reached the request's depth limit, so every
    /// candidate it found was confirmed by a depth-limited check (exactly `check`'s answer).
    BitmapVerified,
    /// A result bitmap cached for this subject, still valid at the read revision.
    CachedBitmap,
    /// One top-down check per candidate.
    Checks,
}

/// What a bulk evaluation did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BulkStats {
    pub strategy: Strategy,
    /// Bound on the hops any answer needed (bitmap strategies).
    pub depth_bound: u32,
    pub node_evaluations: u32,
    pub rounds: u32,
    pub condition_evaluations: u32,
    /// Top-down checks run (for undecided objects, verification, or the `checks` strategy).
    pub checks: u32,
}

impl BulkStats {
    fn checks(n: u32) -> Self {
        Self {
            strategy: Strategy::Checks,
            depth_bound: 0,
            node_evaluations: 0,
            rounds: 0,
            condition_evaluations: 0,
            checks: n,
        }
    }
}

/// The objects a subject has a relation on, as ids of [`Lookup::snapshot`].
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Objects on which the relation holds.
    pub allowed: roaring::RoaringBitmap,
    /// Objects whose answer depends on missing context: (object, the parameters missing).
    pub conditional: Vec<(Obj, Vec<String>)>,
    /// The snapshot the ids belong to when the request needed objects the store does not hold
    /// (contextual tuples, a userset subject on a new object); `None`: the request's snapshot.
    pub overlay: Option<std::sync::Arc<Snapshot>>,
    pub stats: BulkStats,
}

impl Lookup {
    /// The snapshot that resolves this result's ids.
    pub fn snapshot<'s>(&'s self, base: &'s Snapshot) -> &'s Snapshot {
        self.overlay.as_deref().unwrap_or(base)
    }

    /// The allowed objects, in id order.
    pub fn objects(&self, base: &Snapshot) -> Vec<ObjectRef> {
        let snap = self.snapshot(base);
        self.allowed
            .iter()
            .filter_map(|o| ObjectRef::parse(snap.object_str(o)).ok())
            .collect()
    }

    /// For yes/no callers (OpenFGA's ListObjects): an object that depends on missing context
    /// makes the whole answer an error naming the parameters, never a silent omission.
    pub fn require_decided(&self) -> Result<(), EngineError> {
        let mut missing: BTreeSet<String> = BTreeSet::new();
        for (_, m) in &self.conditional {
            missing.extend(m.iter().cloned());
        }
        if self.conditional.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Condition(format!(
                "missing context parameters: {}",
                missing.into_iter().collect::<Vec<_>>().join(", ")
            )))
        }
    }
}

/// Validates a request's contextual tuples against the model.
pub fn validate_contextual(
    model: &TypeSystem,
    contextual: &[crate::tuple::Tuple],
) -> Result<(), EngineError> {
    for t in contextual {
        model
            .validate_tuple(t)
            .map_err(|e| EngineError::ContextualTuple(e.to_string()))?;
    }
    Ok(())
}

/// The snapshot a bulk request evaluates over: the stored one, or (when the request names
/// objects the store lacks, or brings contextual tuples) a private overlay with them added.
/// `Err(())` when a contextual tuple repeats a stored or another contextual tuple's key (the
/// overlay could not represent both), so the caller answers by checks instead.
pub(crate) fn overlay(
    snap: &Snapshot,
    user: &User,
    contextual: &[crate::tuple::Tuple],
) -> Result<Option<Snapshot>, ()> {
    let mut new_objects = Vec::new();
    if let User::Userset(o, _) = user
        && snap.object(&o.to_string()).is_none()
    {
        new_objects.push(o);
    }
    if contextual.is_empty() && new_objects.is_empty() {
        return Ok(None);
    }
    let mut keys = HashSet::new();
    for t in contextual {
        if snap.contains_key(&t.key()) || !keys.insert(t.key()) {
            return Err(());
        }
    }
    let next = snap.with_objects(&new_objects);
    let graph: std::sync::Arc<str> = std::sync::Arc::from(CONTEXTUAL_GRAPH);
    let changes: Vec<TupleChange> = contextual
        .iter()
        .map(|t| TupleChange {
            change: Change::Add,
            tuple: t.clone(),
            graph: graph.clone(),
        })
        .collect();
    Ok(Some(next.apply(
        snap.revision,
        &changes,
        crate::iri::TUPLES_GRAPH,
    )))
}

/// The pseudo-graph contextual tuples are filed under in an overlay snapshot.
pub const CONTEXTUAL_GRAPH: &str = "urn:clew:contextual";

/// Every object of `object_type` that `user` has `relation` on, by bottom-up bitmap
/// evaluation; complete (no limit: callers page the result). Objects left undecided by the
/// bitmaps (missing context, cycles) and, when the depth bound reaches the request's depth
/// limit, every object of the type, are confirmed by `check`, so the answer is `check`'s
/// exactly (a depth-exceeded check makes the lookup an error).
pub fn lookup(view: View<'_>, request: &LookupRequest<'_>) -> Result<Lookup, EngineError> {
    validate_request(
        view.model,
        request.user,
        request.relation,
        request.object_type,
    )?;
    validate_contextual(view.model, request.contextual)?;
    let overlay = match overlay(view.snapshot, request.user, request.contextual) {
        Ok(o) => o.map(std::sync::Arc::new),
        Err(()) => return lookup_by_checks(view, request),
    };
    let snap = overlay.as_deref().unwrap_or(view.snapshot);
    let eval_view = View {
        snapshot: snap,
        model: view.model,
        // Closures describe the stored snapshot only, not an overlay with contextual tuples.
        groups: if overlay.is_some() && !request.contextual.is_empty() {
            None
        } else {
            view.groups
        },
        // An overlay may name what the stored snapshot does not.
        resolved: if overlay.is_some() {
            None
        } else {
            view.resolved
        },
    };
    let r = reach::reach(
        eval_view,
        request.user,
        request.relation,
        request.object_type,
        request.context,
    )?;
    let verify = r.depth_bound >= request.max_depth;
    let mut stats = BulkStats {
        strategy: if verify {
            Strategy::BitmapVerified
        } else {
            Strategy::Bitmap
        },
        depth_bound: r.depth_bound,
        node_evaluations: r.node_evaluations,
        rounds: r.rounds,
        condition_evaluations: r.condition_evaluations,
        checks: 0,
    };
    // When the bound reaches the depth limit, `check` may run out of depth on any object of
    // the type (also on one the bitmaps refute), so every one is checked: the answer is then
    // `check`'s exactly, and an object `check` cannot decide makes the lookup an error rather
    // than a silent omission.
    let (mut allowed, to_check) = if verify {
        let mut all = r.sets.maybe();
        if let Some(objects) = snap
            .name(request.object_type)
            .and_then(|t| snap.objects_of_type(t))
        {
            all |= objects;
        }
        (roaring::RoaringBitmap::new(), all)
    } else {
        (r.sets.yes, r.sets.undecided)
    };
    let mut conditional = Vec::new();
    for o in &to_check {
        let Ok(object) = ObjectRef::parse(snap.object_str(o)) else {
            continue;
        };
        stats.checks += 1;
        let c = check(
            view,
            &CheckRequest {
                user: request.user,
                relation: request.relation,
                object: &object,
                context: request.context,
                contextual: request.contextual,
                explain: false,
                max_depth: request.max_depth,
            },
        )?;
        match c.decision {
            Decision::Allowed => {
                allowed.insert(o);
            }
            Decision::Denied => {}
            Decision::Conditional { missing } => conditional.push((o, missing)),
        }
    }
    Ok(Lookup {
        allowed,
        conditional,
        overlay,
        stats,
    })
}

/// The `checks` strategy for a whole lookup: every candidate object known to the snapshot (or
/// named by a contextual tuple) is checked. Used when contextual tuples repeat stored keys.
fn lookup_by_checks(view: View<'_>, request: &LookupRequest<'_>) -> Result<Lookup, EngineError> {
    let object_type = request.object_type;
    let mut candidates: Vec<ObjectRef> = Vec::new();
    if let Some(t) = view.snapshot.name(object_type)
        && let Some(objects) = view.snapshot.objects_of_type(t)
    {
        for o in objects {
            if let Ok(obj) = ObjectRef::parse(view.snapshot.object_str(o)) {
                candidates.push(obj);
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
    if let User::Userset(o, _) = request.user
        && o.object_type == object_type
    {
        candidates.push(o.clone());
    }
    candidates.sort();
    candidates.dedup();
    let mut allowed = Vec::new();
    let mut conditional = Vec::new();
    let n = candidates.len();
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
                max_depth: request.max_depth,
            },
        )?;
        match r.decision {
            Decision::Allowed => allowed.push(object),
            Decision::Denied => {}
            Decision::Conditional { missing } => conditional.push((object, missing)),
        }
    }
    // Resolve into an overlay that holds every candidate, so ids are meaningful.
    let objects: Vec<&ObjectRef> = allowed
        .iter()
        .chain(conditional.iter().map(|(o, _)| o))
        .collect();
    let snap = view.snapshot.with_objects(&objects);
    let ids = |o: &ObjectRef| snap.object(&o.to_string());
    let allowed_ids = allowed.iter().filter_map(ids).collect();
    let conditional_ids = conditional
        .iter()
        .filter_map(|(o, m)| ids(o).map(|id| (id, m.clone())))
        .collect();
    Ok(Lookup {
        allowed: allowed_ids,
        conditional: conditional_ids,
        overlay: Some(std::sync::Arc::new(snap)),
        stats: BulkStats::checks(u32::try_from(n).unwrap_or(u32::MAX)),
    })
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
    if let Some(r) = &filter.relation
        && view.model.relation(&filter.user_type, r).is_none()
    {
        return Err(EngineError::UnknownRelation {
            object_type: filter.user_type.clone(),
            relation: r.clone(),
        });
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
        every_branch: false,
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

/// The answer to `subjects`: OpenFGA's ListUsers answer, plus the users a listed wildcard does
/// not cover.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Subjects {
    /// Concrete users, usersets and wildcards (as ListUsers lists them).
    pub users: Vec<User>,
    /// When `users` holds the wildcard `type:*`: the concrete users of that type that do not
    /// have the relation nonetheless (excluded by a `but not`, or failing an intersection).
    pub excluded: Vec<User>,
}

/// `subjects(object, relation, filter)`: [`list_users`], and for a wildcard in the answer the
/// users it does not cover — every concrete user of the type named anywhere in the tuples
/// reachable from the object (including subtracted and intersected branches) whose check
/// denies.
pub fn subjects(
    view: View<'_>,
    object: &ObjectRef,
    relation: &str,
    filter: &UserFilter,
    context: &serde_json::Map<String, serde_json::Value>,
    contextual: &[crate::tuple::Tuple],
) -> Result<Subjects, EngineError> {
    let users = list_users(view, object, relation, filter, context, contextual)?;
    let wildcard = users
        .iter()
        .any(|u| matches!(u, User::Wildcard(t) if *t == filter.user_type));
    let mut excluded = Vec::new();
    if wildcard && filter.relation.is_none() {
        let mut candidates = BTreeSet::new();
        let mut visited = HashSet::new();
        let walker = Candidates {
            view,
            filter,
            contextual,
            every_branch: true,
        };
        walker.collect(object, relation, &mut visited, &mut candidates);
        for user in candidates {
            if !matches!(user, User::Object(_)) {
                continue;
            }
            let r = check(
                view,
                &CheckRequest {
                    user: &user,
                    relation,
                    object,
                    context,
                    contextual,
                    explain: false,
                    max_depth: DEFAULT_MAX_DEPTH,
                },
            )?;
            if !r.decision.allowed()? {
                excluded.push(user);
            }
        }
    }
    Ok(Subjects { users, excluded })
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
    /// Also walk subtracted branches (to find users a wildcard does not cover).
    every_branch: bool,
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
            Rewrite::Exclusion { base, subtract } => {
                self.rewrite(object, def, base, visited, out);
                if self.every_branch {
                    self.rewrite(object, def, subtract, visited, out);
                }
            }
        }
    }

    /// Every stored or contextual user of `object#relation` the model admits.
    fn direct_users(&self, object: &ObjectRef, relation: &str) -> Vec<User> {
        let snap = self.view.snapshot;
        let mut out = Vec::new();
        if let (Some(o), Some(r)) = (snap.object(&object.to_string()), snap.name(relation))
            && let Some(edges) = snap.edges(o, r)
        {
            out.extend(
                edges
                    .direct
                    .iter()
                    .filter_map(|u| snap.user_of(UserRef::Object(*u))),
            );
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
                    .filter_map(|&[uo, ur]| snap.user_of(UserRef::Userset(uo, ur))),
            );
            out.extend(
                edges
                    .conditional
                    .iter()
                    .filter_map(|e| snap.user_of(e.user)),
            );
        }
        for t in self.contextual {
            if t.object == *object && t.relation == relation {
                out.push(t.user.clone());
            }
        }
        out
    }
}
