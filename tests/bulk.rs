//! Tests for the bulk operations of the service (`lookup` with pages and cursors, `filter` with
//! its planner, `batch_check`) and for the reachability cache behind them.
//!
//! Random models and graphs (the generator of `tests/properties.rs`, extended with a second
//! tupleset to groups, group exclusions and more objects) drive the laws, at the default depth
//! limit and at small ones:
//! * consistency: `check(u,r,o)` allowed ⇔ `o ∈ lookup(u,r,type(o))` ⇔ `u ∈ subjects(o,r)`, all
//!   agreeing with the naive reference evaluator; an undecided check (missing context, depth)
//!   is never listed as allowed and must be flagged by lookup (conditional) or fail it;
//! * `filter` = `lookup ∩ candidates`, in candidate order, for every strategy;
//! * freshness: after every single-tuple write or delete, every answer of a long-lived `Clew`
//!   (whose cache holds entries from before the write) equals a fresh `Clew`'s;
//! * paging: concatenated pages equal the whole answer, at the cursor's revision;
//! * batch_check equals individual checks; contextual tuples; readers alongside a writer.
//!
//! Random tests collect violations by kind and report each kind once, with its first example
//! and a count, so one run shows every distinct disagreement. Deterministic tests pin the
//! precise cases (nested groups, revocation, wildcards, tupleset edges, cursor errors, bad
//! input) and the minimal reproductions of the disagreements found (the `chain` and
//! `self_group` tests).
//!
//! `CLEW_BULK_CASES` scales the number of random seeds (default 200).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test helpers take the request parts one by one, as the service does.
#![allow(clippy::too_many_arguments)]

use clew::engine::{
    self, CheckRequest, Decision, EngineError, LookupRequest, Strategy, UserFilter,
};
use clew::iri::IMPORTED_GRAPH;
use clew::model::TypeSystem;
use clew::reference::{Reference, Tri};
use clew::service::bulk::{
    Consistency, FilterRequest, FilterResult, LookupPage, MAX_BATCH_CHECKS, MAX_FILTER_CANDIDATES,
    MAX_PAGE_SIZE, PageRequest, RequestError,
};
use clew::service::{Clew, DEFAULT_HISTORY, ServiceError};
use clew::tuple::{ObjectRef, Tuple, TupleCondition, User};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashSet};

const DEPTH: u32 = engine::DEFAULT_MAX_DEPTH;

fn cases() -> u64 {
    std::env::var("CLEW_BULK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

// ---------------------------------------------------------------------------------------------
// The random generator (xorshift64*, so a failing seed replays).

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const RELATIONS: usize = 5;

/// How big a random graph is.
#[derive(Clone, Copy)]
struct Shape {
    objects: usize,
    groups: usize,
    users: usize,
    tuples: usize,
}

const SMALL: Shape = Shape {
    objects: 4,
    groups: 3,
    users: 4,
    tuples: 24,
};

const WIDE: Shape = Shape {
    objects: 12,
    groups: 4,
    users: 5,
    tuples: 60,
};

fn leaf(rng: &mut Rng, me: usize) -> String {
    if rng.chance(12) {
        return "member from owner".into();
    }
    let mut other = rng.below(RELATIONS);
    if other == me {
        other = (other + 1) % RELATIONS;
    }
    if rng.chance(40) {
        format!("r{other} from parent")
    } else {
        format!("r{other}")
    }
}

fn direct(rng: &mut Rng) -> String {
    let options = [
        "user",
        "user:*",
        "group#member",
        "user with small",
        "res#r0",
        "res#r1",
        "res#r2",
    ];
    let mut chosen: Vec<&str> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let o = *rng.pick(&options);
        if !chosen.contains(&o) {
            chosen.push(o);
        }
    }
    format!("[{}]", chosen.join(", "))
}

fn random_model(rng: &mut Rng) -> String {
    let member = match rng.below(4) {
        0 => "[user, user:*, group#member, user with small]",
        1 => "[user, group#member] but not banned",
        _ => "[user, user:*, group#member]",
    };
    let mut dsl = format!(
        "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define banned: [user, user:*, user with small]\n    define member: {member}\ntype res\n  relations\n    define parent: [res]\n    define owner: [group]\n"
    );
    for i in 0..RELATIONS {
        let first = if i < 2 || rng.chance(60) {
            direct(rng)
        } else {
            leaf(rng, i)
        };
        let expr = match rng.below(5) {
            0 | 1 => first,
            2 => format!("{first} or {}", leaf(rng, i)),
            3 => format!("{first} and {}", leaf(rng, i)),
            _ => format!("{first} but not {}", leaf(rng, i)),
        };
        dsl.push_str(&format!("    define r{i}: {expr}\n"));
    }
    dsl.push_str("condition small(x: int) {\n  x < 10\n}\n");
    dsl
}

fn res(i: usize) -> ObjectRef {
    ObjectRef::new("res", format!("o{i}"))
}

fn group(i: usize) -> ObjectRef {
    ObjectRef::new("group", format!("g{i}"))
}

fn user(i: usize) -> User {
    User::Object(ObjectRef::new("user", format!("u{i}")))
}

fn random_user(rng: &mut Rng, shape: Shape) -> User {
    match rng.below(12) {
        0 => User::Wildcard("user".into()),
        1 | 2 => User::Userset(group(rng.below(shape.groups)), "member".into()),
        3 => User::Userset(res(rng.below(shape.objects)), format!("r{}", rng.below(3))),
        4 => User::Object(res(rng.below(shape.objects))),
        5 => User::Object(group(rng.below(shape.groups))),
        _ => user(rng.below(shape.users)),
    }
}

fn random_tuple(rng: &mut Rng, shape: Shape) -> Tuple {
    let (object, relation) = match rng.below(20) {
        0..=3 => (group(rng.below(shape.groups)), "member".to_string()),
        4 => (group(rng.below(shape.groups)), "banned".to_string()),
        5..=7 => (res(rng.below(shape.objects)), "parent".to_string()),
        8 => (res(rng.below(shape.objects)), "owner".to_string()),
        _ => (
            res(rng.below(shape.objects)),
            format!("r{}", rng.below(RELATIONS)),
        ),
    };
    let condition = rng.chance(30).then(|| {
        let mut context = Map::new();
        if rng.chance(60) {
            context.insert("x".into(), json!(rng.below(20)));
        }
        TupleCondition {
            name: "small".into(),
            context,
        }
    });
    Tuple {
        object,
        relation,
        user: random_user(rng, shape),
        condition,
    }
}

/// A valid tuple whose key is not in `taken` (none after a few tries).
fn fresh_valid_tuple(
    rng: &mut Rng,
    shape: Shape,
    model: &TypeSystem,
    taken: &[Tuple],
) -> Option<Tuple> {
    fresh_tuple_for(rng, shape, model, taken, &[])
}

/// Like [`fresh_valid_tuple`], but half the time naming one of `prefer` as the user (writes
/// that concern the subjects a test watches).
fn fresh_tuple_for(
    rng: &mut Rng,
    shape: Shape,
    model: &TypeSystem,
    taken: &[Tuple],
    prefer: &[User],
) -> Option<Tuple> {
    let ok =
        |t: &Tuple| model.validate_tuple(t).is_ok() && !taken.iter().any(|s| s.key() == t.key());
    for _ in 0..200 {
        let t = random_tuple(rng, shape);
        if !prefer.is_empty() && rng.chance(50) {
            let favoured = Tuple {
                user: rng.pick(prefer).clone(),
                ..t.clone()
            };
            if ok(&favoured) {
                return Some(favoured);
            }
        }
        if ok(&t) {
            return Some(t);
        }
    }
    None
}

struct Case {
    clew: Clew,
    model: TypeSystem,
    /// Tuples written through the validated path (the tuple graph).
    live: Vec<Tuple>,
    /// Pre-existing graph data the model does not admit (evaluation ignores it).
    imported: Vec<Tuple>,
    shape: Shape,
}

impl Case {
    fn all_tuples(&self) -> Vec<Tuple> {
        self.live.iter().chain(&self.imported).cloned().collect()
    }

    /// A fresh instance (empty cache) holding exactly this case's tuples.
    fn fresh(&self) -> Clew {
        build(&self.model.dsl, &self.live, &self.imported)
    }
}

fn build(dsl: &str, live: &[Tuple], imported: &[Tuple]) -> Clew {
    let clew = Clew::memory().unwrap();
    clew.write_model(dsl).unwrap();
    if !live.is_empty() {
        clew.write_tuples_bulk(live, &[], "test").unwrap();
    }
    if !imported.is_empty() {
        clew.import_tuples(imported, IMPORTED_GRAPH, "test")
            .unwrap();
    }
    clew
}

fn random_case_with(rng: &mut Rng, shape: Shape) -> Option<Case> {
    let dsl = random_model(rng);
    let model = TypeSystem::from_dsl(&dsl).ok()?;
    let mut live: Vec<Tuple> = Vec::new();
    let mut imported: Vec<Tuple> = Vec::new();
    for _ in 0..(shape.tuples / 3 + rng.below(shape.tuples)) {
        let t = random_tuple(rng, shape);
        if live.iter().chain(&imported).any(|s| s.key() == t.key()) {
            continue;
        }
        if model.validate_tuple(&t).is_ok() {
            live.push(t);
        } else if imported.len() < 3 {
            imported.push(t);
        }
    }
    let clew = build(&dsl, &live, &imported);
    Some(Case {
        clew,
        model,
        live,
        imported,
        shape,
    })
}

fn random_case(seed: u64, shape: Shape) -> Option<Case> {
    random_case_with(&mut Rng::new(seed), shape)
}

/// The subjects every law is checked for: concrete users (one never named in a tuple), the
/// wildcard, usersets, and objects used as users.
fn subjects(shape: Shape) -> Vec<User> {
    let mut out: Vec<User> = (0..shape.users).map(user).collect();
    out.push(User::Object(ObjectRef::new("user", "nobody")));
    out.push(User::Wildcard("user".into()));
    out.push(User::Userset(group(0), "member".into()));
    out.push(User::Userset(group(1), "member".into()));
    out.push(User::Userset(res(1), "r0".into()));
    out.push(User::Userset(
        ObjectRef::new("group", "fresh"),
        "member".into(),
    ));
    out.push(User::Object(res(0)));
    out.push(User::Object(group(0)));
    out
}

/// (object type, relation, objects) triples to evaluate; each list ends with an object the
/// store has never seen.
fn targets(shape: Shape) -> Vec<(&'static str, String, Vec<ObjectRef>)> {
    let mut objects: Vec<ObjectRef> = (0..shape.objects).map(res).collect();
    objects.push(ObjectRef::new("res", "never"));
    let mut groups: Vec<ObjectRef> = (0..shape.groups).map(group).collect();
    groups.push(ObjectRef::new("group", "never"));
    let mut out = Vec::new();
    for r in ["parent", "owner"] {
        out.push(("res", r.to_string(), objects.clone()));
    }
    for i in 0..RELATIONS {
        out.push(("res", format!("r{i}"), objects.clone()));
    }
    out.push(("group", "member".to_string(), groups.clone()));
    out.push(("group", "banned".to_string(), groups));
    out
}

fn contexts() -> Vec<Map<String, Value>> {
    let mut with_x = Map::new();
    with_x.insert("x".into(), json!(5));
    let mut big_x = Map::new();
    big_x.insert("x".into(), json!(50));
    vec![Map::new(), with_x, big_x]
}

// ---------------------------------------------------------------------------------------------
// Answers in comparable form.

/// A check's answer, with errors kept apart from denials.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Allowed,
    Denied,
    Conditional(Vec<String>),
    Error(String),
}

/// An answer's kind, without its details (for naming failure kinds).
fn category(a: &Answer) -> &'static str {
    match a {
        Answer::Allowed => "Allowed",
        Answer::Denied => "Denied",
        Answer::Conditional(_) => "Conditional",
        Answer::Error(e) if e.contains("depth limit") => "DepthExceeded",
        Answer::Error(_) => "an error",
    }
}

fn answer(r: &Result<clew::CheckResult, ServiceError>) -> Answer {
    match r {
        Ok(r) => match &r.decision {
            Decision::Allowed => Answer::Allowed,
            Decision::Denied => Answer::Denied,
            Decision::Conditional { missing } => Answer::Conditional(missing.clone()),
        },
        Err(e) => Answer::Error(e.to_string()),
    }
}

/// An answer in the reference's terms; `Unknown` covers missing context and an exceeded depth.
fn tri(a: &Answer, r: &Result<clew::CheckResult, ServiceError>) -> Tri {
    match a {
        Answer::Allowed => Tri::True,
        Answer::Denied => Tri::False,
        Answer::Conditional(_) => Tri::Unknown,
        Answer::Error(_) => match r {
            Err(ServiceError::Engine(
                EngineError::DepthExceeded(_) | EngineError::Condition(_),
            )) => Tri::Unknown,
            Err(e) => panic!("unexpected check error: {e}"),
            Ok(_) => unreachable!(),
        },
    }
}

fn check(
    clew: &Clew,
    u: &User,
    relation: &str,
    object: &ObjectRef,
    context: &Map<String, Value>,
    max_depth: u32,
) -> Result<clew::CheckResult, ServiceError> {
    clew.check(&CheckRequest {
        user: u,
        relation,
        object,
        context,
        contextual: &[],
        explain: false,
        max_depth,
    })
    .map(|(r, _)| r)
}

fn lookup_req<'a>(
    u: &'a User,
    relation: &'a str,
    object_type: &'a str,
    context: &'a Map<String, Value>,
    max_depth: u32,
) -> LookupRequest<'a> {
    LookupRequest {
        user: u,
        relation,
        object_type,
        context,
        contextual: &[],
        max_depth,
    }
}

/// Objects whose answer depends on missing context, with the parameters missing.
type Conditional = Vec<(String, Vec<String>)>;

/// A whole lookup answer: allowed objects (as text, in answer order) and conditional ones.
#[derive(Debug, Clone, PartialEq)]
struct Listing {
    objects: Vec<String>,
    conditional: Vec<(String, Vec<String>)>,
}

fn listing(page: &LookupPage) -> Listing {
    let mut conditional: Vec<(String, Vec<String>)> = page
        .conditional
        .iter()
        .map(|(o, m)| (o.to_string(), m.clone()))
        .collect();
    conditional.sort();
    Listing {
        objects: page.objects.iter().map(|o| o.to_string()).collect(),
        conditional,
    }
}

fn lookup_all(
    clew: &Clew,
    req: &LookupRequest<'_>,
    consistency: Consistency,
) -> Result<LookupPage, ServiceError> {
    let page = clew.lookup(req, &PageRequest::default(), consistency)?;
    assert!(
        !page.truncated && page.cursor.is_none(),
        "an unlimited page is whole"
    );
    assert_eq!(
        page.total,
        page.objects.len() as u64,
        "total of a whole answer"
    );
    Ok(page)
}

fn filter<'c>(
    clew: &Clew,
    u: &User,
    relation: &str,
    object_type: &str,
    candidates: &'c [String],
    context: &Map<String, Value>,
    strategy: Option<Strategy>,
    consistency: Consistency,
) -> Result<FilterResult<'c>, ServiceError> {
    filter_at(
        clew,
        u,
        relation,
        object_type,
        candidates,
        context,
        strategy,
        consistency,
        DEPTH,
    )
}

fn filter_at<'c>(
    clew: &Clew,
    u: &User,
    relation: &str,
    object_type: &str,
    candidates: &'c [String],
    context: &Map<String, Value>,
    strategy: Option<Strategy>,
    consistency: Consistency,
    max_depth: u32,
) -> Result<FilterResult<'c>, ServiceError> {
    clew.filter(
        &FilterRequest {
            user: u,
            relation,
            object_type,
            candidates,
            context,
            contextual: &[],
            max_depth,
            explain: false,
            strategy,
        },
        consistency,
    )
}

fn allowed_list(f: &FilterResult) -> Vec<String> {
    f.allowed.iter().map(|i| i.object.to_string()).collect()
}

/// Tuples one a line, with their condition parameters.
fn show(tuples: &[Tuple]) -> String {
    let mut out = String::new();
    for t in tuples {
        out.push_str("\n  ");
        out.push_str(&t.to_string());
        if let Some(c) = &t.condition {
            out.push_str(&format!(" {}", Value::Object(c.context.clone())));
        }
    }
    out
}

/// Objects the store has interned: every object and user object of every tuple.
fn known_objects(tuples: &[Tuple]) -> HashSet<String> {
    let mut out = HashSet::new();
    for t in tuples {
        out.insert(t.object.to_string());
        match &t.user {
            User::Object(o) | User::Userset(o, _) => {
                out.insert(o.to_string());
            }
            User::Wildcard(_) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. The consistency law.

/// Violations by kind: a random test runs every seed and then reports each kind of failure
/// once (its first, smallest-seed example) with how often it happened, so one run shows every
/// distinct bug rather than only the first.
#[derive(Default)]
struct Failures {
    kinds: Vec<(String, u64, String)>,
}

impl Failures {
    fn expect(&mut self, ok: bool, kind: impl AsRef<str>, example: impl FnOnce() -> String) {
        if ok {
            return;
        }
        let kind = kind.as_ref();
        match self.kinds.iter_mut().find(|(k, _, _)| k == kind) {
            Some((_, n, _)) => *n += 1,
            None => self.kinds.push((kind.to_string(), 1, example())),
        }
    }

    fn finish(self, what: &str) {
        if self.kinds.is_empty() {
            return;
        }
        let mut report = format!("{what}: {} kinds of violation\n", self.kinds.len());
        for (kind, n, example) in &self.kinds {
            report.push_str(&format!("\n=== {kind}: {n} times; first:\n{example}\n"));
        }
        panic!("{report}");
    }
}

#[derive(Default)]
struct LawCounts {
    models: u64,
    checks: u64,
    allowed: u64,
    undecided: u64,
    lookups: u64,
    lookup_errors: u64,
    subjects: u64,
}

/// `check` allowed ⇔ `o ∈ lookup` ⇔ `u ∈ subjects`, and all agree with the reference.
fn law_for_case(
    case: &Case,
    seed: u64,
    max_depth: u32,
    counts: &mut LawCounts,
    failures: &mut Failures,
) {
    let clew = &case.clew;
    let tuples = case.all_tuples();
    let state = clew.state();
    let view = state.view().unwrap();
    for context in contexts() {
        let reference = Reference {
            model: &case.model,
            tuples: &tuples,
            context: &context,
            max_depth,
        };
        for (object_type, relation, objects) in targets(case.shape) {
            // tri per (subject, object), for the subjects side below.
            let mut decided: Vec<(User, ObjectRef, Tri)> = Vec::new();
            for (i, u) in subjects(case.shape).into_iter().enumerate() {
                let req = lookup_req(&u, &relation, object_type, &context, max_depth);
                // Checks before the lookup (no cache entry yet) or after it (which may answer
                // from the entry the lookup left).
                let checks_first = (seed as usize + i).is_multiple_of(2);
                let run_checks = || -> Vec<Result<clew::CheckResult, ServiceError>> {
                    objects
                        .iter()
                        .map(|o| check(clew, &u, &relation, o, &context, max_depth))
                        .collect()
                };
                let early = checks_first.then(run_checks);
                let page = lookup_all(clew, &req, Consistency::Latest);
                let results = early.unwrap_or_else(run_checks);
                counts.lookups += 1;
                if page.is_err() {
                    counts.lookup_errors += 1;
                }
                let order = if checks_first {
                    "checks, then lookup"
                } else {
                    "lookup, then checks"
                };
                for (o, r) in objects.iter().zip(results) {
                    let a = answer(&r);
                    let got = tri(&a, &r);
                    let want = reference.check(&u, &relation, o);
                    counts.checks += 1;
                    let at = || {
                        format!(
                            "seed {seed}: ({u}, {relation}, {o}) depth {max_depth} context {context:?} ({order})\ncheck: {a:?}; reference: {want:?}; lookup: {:?}\nmodel:\n{}\ntuples: {}",
                            page.as_ref().map(listing).map_err(|e| e.to_string()),
                            case.model.dsl,
                            show(&tuples)
                        )
                    };
                    if got != want {
                        // Name the kind by what the uncached engine answers, which tells a
                        // cached answer apart from an engine disagreement.
                        let engine = answer(
                            &engine::check(
                                view,
                                &CheckRequest {
                                    user: &u,
                                    relation: &relation,
                                    object: o,
                                    context: &context,
                                    contextual: &[],
                                    explain: false,
                                    max_depth,
                                },
                            )
                            .map_err(ServiceError::from),
                        );
                        failures.expect(
                            false,
                            format!(
                                "service check says {} where the reference says {want:?} and engine::check says {}",
                                category(&a),
                                category(&engine)
                            ),
                            at,
                        );
                    }
                    match got {
                        Tri::True => counts.allowed += 1,
                        Tri::Unknown => counts.undecided += 1,
                        _ => {}
                    }
                    let text = o.to_string();
                    match &page {
                        Ok(page) => {
                            let l = listing(page);
                            let listed = l.objects.contains(&text);
                            let conditional = l.conditional.iter().find(|(c, _)| *c == text);
                            match &a {
                                Answer::Allowed => failures.expect(
                                    listed && conditional.is_none(),
                                    "check allows, lookup does not list",
                                    at,
                                ),
                                Answer::Denied => failures.expect(
                                    !listed && conditional.is_none(),
                                    "check denies, lookup lists or calls it conditional",
                                    at,
                                ),
                                Answer::Conditional(missing) => failures.expect(
                                    !listed && conditional.map(|(_, m)| m) == Some(missing),
                                    "check is conditional, lookup does not say so",
                                    at,
                                ),
                                Answer::Error(_) => {
                                    failures.expect(!listed, "check errors, lookup allows", at);
                                    failures.expect(
                                        listed || conditional.is_some(),
                                        "check errors, lookup answers without a word about the object",
                                        at,
                                    );
                                }
                            }
                        }
                        Err(e) => failures.expect(
                            matches!(
                                e,
                                ServiceError::Engine(
                                    EngineError::DepthExceeded(_) | EngineError::Condition(_)
                                )
                            ),
                            "unexpected lookup error",
                            at,
                        ),
                    }
                    decided.push((u.clone(), o.clone(), got));
                }
                // A lookup error must have a cause among the objects' checks.
                if page.is_err() {
                    failures.expect(
                        decided
                            .iter()
                            .any(|(du, _, t)| *du == u && *t == Tri::Unknown),
                        "lookup fails with every check decided",
                        || format!("seed {seed}: lookup({u}, {relation}, {object_type}) depth {max_depth}: {:?}\nmodel:\n{}\ntuples: {}", page.as_ref().err(), case.model.dsl, show(&tuples)),
                    );
                }
            }
            if max_depth == DEPTH {
                subjects_law(
                    case, view, &reference, &context, &relation, &objects, &decided, seed,
                );
                counts.subjects += objects.len() as u64;
            }
        }
    }
}

/// `u ∈ subjects(o, r)` ⇔ check allows (a listed wildcard covers concrete users, but only
/// those check allows), for concrete users and for `group#member` usersets.
fn subjects_law(
    case: &Case,
    view: engine::View<'_>,
    reference: &Reference<'_>,
    context: &Map<String, Value>,
    relation: &str,
    objects: &[ObjectRef],
    decided: &[(User, ObjectRef, Tri)],
    seed: u64,
) {
    let tuples = case.all_tuples();
    let tri_of = |u: &User, o: &ObjectRef| {
        decided
            .iter()
            .find(|(du, dobj, _)| du == u && dobj == o)
            .map(|(_, _, t)| *t)
            .unwrap_or_else(|| reference.check(u, relation, o))
    };
    for o in objects {
        let at = || {
            format!(
                "seed {seed}: subjects({o}, {relation}) context {context:?}\nmodel:\n{}\ntuples: {}",
                case.model.dsl,
                show(&tuples)
            )
        };
        for (filter, probes) in [
            (
                UserFilter {
                    user_type: "user".into(),
                    relation: None,
                },
                {
                    let mut p: Vec<User> = (0..case.shape.users).map(user).collect();
                    p.push(User::Object(ObjectRef::new("user", "nobody")));
                    p
                },
            ),
            (
                UserFilter {
                    user_type: "group".into(),
                    relation: Some("member".into()),
                },
                (0..case.shape.groups)
                    .map(|g| User::Userset(group(g), "member".into()))
                    .collect(),
            ),
        ] {
            let listed = match engine::list_users(view, o, relation, &filter, context, &[]) {
                Ok(l) => l,
                Err(e) => {
                    // Only an undecided candidate may make the list fail: some user of the
                    // filter's form named in a tuple (or the wildcard) is undecided.
                    let mut candidates: Vec<User> = tuples
                        .iter()
                        .map(|t| t.user.clone())
                        .filter(|u| match (&filter.relation, u) {
                            (None, User::Object(x)) => x.object_type == filter.user_type,
                            (None, User::Wildcard(t)) => *t == filter.user_type,
                            (Some(r), User::Userset(x, ur)) => {
                                x.object_type == filter.user_type && ur == r
                            }
                            _ => false,
                        })
                        .collect();
                    candidates.extend(probes.iter().cloned());
                    assert!(
                        candidates
                            .iter()
                            .any(|u| reference.check(u, relation, o) == Tri::Unknown),
                        "list_users failed ({e}) with every candidate decided: {}",
                        at()
                    );
                    continue;
                }
            };
            for u in &listed {
                assert_eq!(
                    reference.check(u, relation, o),
                    Tri::True,
                    "subjects lists {u}, which check does not allow: {}",
                    at()
                );
            }
            let wildcard = listed.contains(&User::Wildcard("user".into()));
            for u in &probes {
                let t = tri_of(u, o);
                let is_listed = listed.contains(u);
                if is_listed {
                    assert_eq!(t, Tri::True, "{u} listed but not allowed: {}", at());
                }
                if t == Tri::True {
                    let covered = is_listed || (filter.relation.is_none() && wildcard);
                    assert!(
                        covered,
                        "{u} allowed but not among the subjects {listed:?}: {}",
                        at()
                    );
                }
            }
        }
    }
}

#[test]
fn consistency_law_on_random_graphs() {
    let mut counts = LawCounts::default();
    let mut failures = Failures::default();
    for seed in 0..cases() {
        let Some(case) = random_case(seed, SMALL) else {
            continue;
        };
        counts.models += 1;
        law_for_case(&case, seed, DEPTH, &mut counts, &mut failures);
        // A small depth limit, where checks run out of budget and the bitmap evaluation's
        // depth bound decides whether its answer stands or is verified by checks.
        law_for_case(&case, seed, 2 + seed as u32 % 5, &mut counts, &mut failures);
    }
    eprintln!(
        "consistency law: {} models, {} checks ({} allowed, {} undecided), {} lookups ({} errors), {} subject lists",
        counts.models,
        counts.checks,
        counts.allowed,
        counts.undecided,
        counts.lookups,
        counts.lookup_errors,
        counts.subjects
    );
    failures.finish("consistency law");
    assert!(counts.models >= cases() / 3, "too few valid models");
    assert!(
        counts.allowed > 0 && counts.allowed < counts.checks,
        "degenerate generator"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. filter = lookup ∩ candidates, for every strategy.

/// A random candidate list of `object_type`: known objects, objects never seen, repeats, and
/// (for a userset subject of that type) the subject's own object.
fn random_candidates(
    rng: &mut Rng,
    objects: &[ObjectRef],
    object_type: &str,
    u: &User,
) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(objects.len() * 2) {
        out.push(rng.pick(objects).to_string());
    }
    if rng.chance(50) {
        out.push(format!("{object_type}:unknown{}", rng.below(3)));
    }
    if let User::Userset(o, _) = u
        && o.object_type == object_type
        && rng.chance(70)
    {
        out.push(o.to_string());
    }
    // A shuffle.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out
}

/// What `filter` must answer for `candidates`, given the whole lookup.
struct Expected {
    allowed: Vec<String>,
    conditional: Vec<(String, Vec<String>)>,
    unknown: usize,
    duplicates: usize,
    denied: usize,
}

fn expected_filter(l: &Listing, candidates: &[String], known: &HashSet<String>) -> Expected {
    let mut e = Expected {
        allowed: Vec::new(),
        conditional: Vec::new(),
        unknown: 0,
        duplicates: 0,
        denied: 0,
    };
    let mut seen = HashSet::new();
    for c in candidates {
        if !seen.insert(c.clone()) {
            e.duplicates += 1;
        } else if !known.contains(c) {
            assert!(
                !l.objects.contains(c),
                "lookup lists {c}, which the store never saw"
            );
            e.unknown += 1;
        } else if l.objects.contains(c) {
            e.allowed.push(c.clone());
        } else if let Some((_, m)) = l.conditional.iter().find(|(o, _)| o == c) {
            e.conditional.push((c.clone(), m.clone()));
        } else {
            e.denied += 1;
        }
    }
    e
}

fn check_filter(
    got: &FilterResult,
    want: &Expected,
    at: &dyn Fn() -> String,
    failures: &mut Failures,
) {
    let mut conditional = got.conditional.clone();
    for (_, m) in &mut conditional {
        m.sort();
    }
    let show = || {
        format!(
            "got allowed {:?} conditional {conditional:?} unknown {} duplicates {} denied {}; want {:?} {:?} {} {} {}\n{}",
            allowed_list(got),
            got.unknown,
            got.duplicates,
            got.denied,
            want.allowed,
            want.conditional,
            want.unknown,
            want.duplicates,
            want.denied,
            at()
        )
    };
    failures.expect(
        allowed_list(got) == want.allowed,
        "filter's allowed items are not lookup ∩ candidates in candidate order",
        show,
    );
    failures.expect(
        conditional == want.conditional,
        "filter's conditional items are not lookup's",
        show,
    );
    failures.expect(
        got.unknown == want.unknown && got.duplicates == want.duplicates,
        "filter miscounts unknown or duplicate candidates",
        show,
    );
    failures.expect(
        got.denied == want.denied,
        "filter miscounts denied candidates",
        show,
    );
}

const STRATEGIES: [Option<Strategy>; 3] = [Some(Strategy::Checks), Some(Strategy::Bitmap), None];

#[test]
fn filter_is_lookup_intersected_with_the_candidates() {
    let (mut models, mut filters, mut allowed, mut by_checks, mut by_bitmap) = (0u64, 0, 0, 0, 0);
    let mut failures = Failures::default();
    for seed in 0..cases() {
        let mut rng = Rng::new(seed ^ 0xF11E);
        let shape = if seed % 3 == 0 { WIDE } else { SMALL };
        let Some(case) = random_case_with(&mut rng, shape) else {
            continue;
        };
        models += 1;
        let tuples = case.all_tuples();
        let known_base = known_objects(&tuples);
        for context in contexts() {
            for (object_type, relation, objects) in targets(shape) {
                for u in subjects(shape) {
                    let mut known = known_base.clone();
                    if let User::Userset(o, _) = &u {
                        known.insert(o.to_string());
                    }
                    let candidates = random_candidates(&mut rng, &objects, object_type, &u);
                    // Half the time the filter runs before any lookup (nothing cached).
                    let lookup_first = rng.chance(50);
                    let max_depth = if rng.chance(15) {
                        2 + rng.below(4) as u32
                    } else {
                        DEPTH
                    };
                    let req = lookup_req(&u, &relation, object_type, &context, max_depth);
                    let mut page =
                        lookup_first.then(|| lookup_all(&case.clew, &req, Consistency::Latest));
                    let mut order = STRATEGIES.to_vec();
                    if rng.chance(50) {
                        order.reverse();
                    }
                    let mut results = Vec::new();
                    for s in order {
                        let f = filter_at(
                            &case.clew,
                            &u,
                            &relation,
                            object_type,
                            &candidates,
                            &context,
                            s,
                            Consistency::Latest,
                            max_depth,
                        );
                        results.push((s, f));
                    }
                    let page = page
                        .take()
                        .unwrap_or_else(|| lookup_all(&case.clew, &req, Consistency::Latest));
                    // The oracle itself: lookup lists exactly what the reference allows.
                    if let Ok(p) = &page {
                        let reference = Reference {
                            model: &case.model,
                            tuples: &tuples,
                            context: &context,
                            max_depth,
                        };
                        let l = listing(p);
                        let mut distinct: Vec<&String> = candidates.iter().collect();
                        distinct.sort();
                        distinct.dedup();
                        for c in distinct {
                            let Ok(o) = ObjectRef::parse(c) else { continue };
                            let want = reference.check(&u, &relation, &o);
                            failures.expect(
                                l.objects.contains(c) == (want == Tri::True),
                                "lookup (filter's oracle) disagrees with the reference",
                                || {
                                    format!(
                                        "seed {seed}: lookup({u}, {relation}) depth {max_depth} context {context:?}: {c} listed {}, reference {want:?}\nmodel:\n{}\ntuples: {}",
                                        l.objects.contains(c),
                                        case.model.dsl,
                                        show(&tuples)
                                    )
                                },
                            );
                        }
                    }
                    let at = |s: Option<Strategy>| {
                        let dsl = case.model.dsl.clone();
                        let tuples = tuples.clone();
                        let candidates = candidates.clone();
                        let context = context.clone();
                        let (u, relation) = (u.clone(), relation.clone());
                        move || {
                            format!(
                                "seed {seed}: filter({u}, {relation}, {candidates:?}) strategy {s:?} depth {max_depth} context {context:?}\nmodel:\n{dsl}\ntuples: {}",
                                show(&tuples)
                            )
                        }
                    };
                    for (s, f) in results {
                        filters += 1;
                        let page = match &page {
                            Ok(p) => p,
                            Err(e) => {
                                // Bitmap evaluation shares the lookup's failure; checks fail
                                // on the same undecided object or succeed without it.
                                if s == Some(Strategy::Bitmap) {
                                    failures.expect(
                                        f.is_err(),
                                        "lookup fails, filter by bitmap answers",
                                        || format!("lookup: {e}; {}", at(s)()),
                                    );
                                }
                                continue;
                            }
                        };
                        let f = match f {
                            Ok(f) => f,
                            Err(e) => {
                                let kind = match s {
                                    Some(Strategy::Checks) => {
                                        "filter by checks fails where lookup answers"
                                    }
                                    Some(_) => "filter by bitmap fails where lookup answers",
                                    None => "planned filter fails where lookup answers",
                                };
                                failures.expect(false, kind, || {
                                    format!("filter: {e}; lookup: {:?}\n{}", listing(page), at(s)())
                                });
                                continue;
                            }
                        };
                        let want = expected_filter(&listing(page), &candidates, &known);
                        check_filter(&f, &want, &at(s), &mut failures);
                        allowed += f.allowed.len() as u64;
                        match (s, f.plan.strategy) {
                            (Some(Strategy::Checks), got) => failures.expect(
                                got == Strategy::Checks,
                                "forced checks reported another strategy",
                                at(s),
                            ),
                            (Some(Strategy::Bitmap), got) => failures.expect(
                                matches!(
                                    got,
                                    Strategy::Bitmap
                                        | Strategy::BitmapVerified
                                        | Strategy::CachedBitmap
                                ),
                                "forced bitmap reported another strategy",
                                at(s),
                            ),
                            (_, Strategy::Checks) => by_checks += 1,
                            _ => by_bitmap += 1,
                        }
                        assert_eq!(f.revision, case.clew.state().revision);
                    }
                }
            }
        }
    }
    eprintln!(
        "filter: {models} models, {filters} filters ({allowed} allowed items); the planner chose checks {by_checks}×, bitmaps {by_bitmap}×"
    );
    failures.finish("filter");
    assert!(allowed > 0);
    assert!(
        by_checks > 0 && by_bitmap > 0,
        "the planner never chose one of its strategies"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Freshness of the cache under single-tuple writes.

/// Everything one (subject, relation, type) asks of a `Clew`, at the latest revision (which
/// must be `revision`): the lookup, each object's check, and the filter of all objects.
#[derive(Debug, Clone, PartialEq)]
struct Observation {
    lookup: Result<Listing, String>,
    checks: Vec<Answer>,
    filter: Result<(Vec<String>, Conditional), String>,
}

impl Observation {
    /// Whether two observations agree once the depth limit's failures are read as "not
    /// allowed": a check's `DepthExceeded` as a denial, and a lookup or filter that failed on
    /// the depth limit as agreeing with any answer.
    fn agrees_modulo_depth(&self, other: &Observation) -> bool {
        let depth = |e: &String| e.contains("depth limit");
        let check = |a: &Answer| match a {
            Answer::Error(e) if depth(e) => Answer::Denied,
            other => other.clone(),
        };
        let lookup = match (&self.lookup, &other.lookup) {
            (Err(e), _) | (_, Err(e)) if depth(e) => true,
            (a, b) => a == b,
        };
        let filter = match (&self.filter, &other.filter) {
            (Err(e), _) | (_, Err(e)) if depth(e) => true,
            (a, b) => a == b,
        };
        lookup
            && filter
            && self.checks.len() == other.checks.len()
            && self
                .checks
                .iter()
                .zip(&other.checks)
                .all(|(a, b)| check(a) == check(b))
    }
}

fn observe(
    clew: &Clew,
    u: &User,
    relation: &str,
    object_type: &str,
    objects: &[ObjectRef],
    context: &Map<String, Value>,
    strategy: Option<Strategy>,
    revision: u64,
    checks_first: bool,
    max_depth: u32,
) -> Observation {
    let consistency = Consistency::AtLeast(revision);
    let run_checks = || {
        objects
            .iter()
            .map(|o| answer(&check(clew, u, relation, o, context, max_depth)))
            .collect::<Vec<_>>()
    };
    let run_lookup = || {
        let req = lookup_req(u, relation, object_type, context, max_depth);
        lookup_all(clew, &req, consistency)
            .map(|p| {
                assert_eq!(
                    p.revision, revision,
                    "a read at AtLeast({revision}) ran elsewhere"
                );
                // Answer order is id order, which depends on the instance's history.
                let mut l = listing(&p);
                l.objects.sort();
                l
            })
            .map_err(|e| e.to_string())
    };
    let run_filter = || {
        let candidates: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
        filter_at(
            clew,
            u,
            relation,
            object_type,
            &candidates,
            context,
            strategy,
            consistency,
            max_depth,
        )
        .map(|f| {
            assert_eq!(f.revision, revision);
            let mut c = f.conditional.clone();
            c.sort();
            (allowed_list(&f), c)
        })
        .map_err(|e| e.to_string())
    };
    if checks_first {
        // Checks, filter, lookup: nothing this observation does is answered from a cache
        // entry it made itself (a filter by bitmaps makes the lookup's entry, which is the
        // lookup's own answer).
        let checks = run_checks();
        let filter = run_filter();
        let lookup = run_lookup();
        Observation {
            lookup,
            checks,
            filter,
        }
    } else {
        let lookup = run_lookup();
        let filter = run_filter();
        let checks = run_checks();
        Observation {
            lookup,
            checks,
            filter,
        }
    }
}

#[test]
fn cached_answers_stay_fresh_under_random_writes() {
    let (mut runs, mut writes, mut deletes, mut observations, mut hits) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let steps = 16;
    let mut failures = Failures::default();
    for seed in 0..cases() {
        let mut rng = Rng::new(seed ^ 0xCAC4E);
        let Some(mut case) = random_case_with(&mut rng, SMALL) else {
            continue;
        };
        runs += 1;
        let all_subjects = subjects(case.shape);
        let all_targets = targets(case.shape);
        // A few (subject, target) pairs watched all along, so their cache entries live across
        // writes; one context mostly (the cache is per context).
        // Mostly the default depth limit; sometimes a small one.
        // Pairs are distinct, so on the fresh instance (one per step) no pair's checks are
        // answered from a cache entry another pair made.
        let mut watched: Vec<(User, usize, u32)> = Vec::new();
        for _ in 0..10 {
            let (u, t) = (
                rng.pick(&all_subjects).clone(),
                rng.below(all_targets.len()),
            );
            let depth = if rng.chance(25) {
                2 + rng.below(4) as u32
            } else {
                DEPTH
            };
            if !watched.iter().any(|(wu, wt, _)| *wu == u && *wt == t) {
                watched.push((u, t, depth));
            }
        }
        let contexts = contexts();
        let context = rng.pick(&contexts).clone();
        for step in 0..steps {
            // The write: a new tuple, or a delete of a live one.
            let delete = !case.live.is_empty() && rng.chance(40);
            let revision = if delete {
                let i = rng.below(case.live.len());
                let gone = case.live.remove(i);
                deletes += 1;
                case.clew.write_tuples(&[], &[gone.key()], "test").unwrap()
            } else {
                let taken = case.all_tuples();
                let prefer: Vec<User> = watched.iter().map(|(u, _, _)| u.clone()).collect();
                let Some(t) = fresh_tuple_for(&mut rng, case.shape, &case.model, &taken, &prefer)
                else {
                    continue;
                };
                let r = case
                    .clew
                    .write_tuples(std::slice::from_ref(&t), &[], "test")
                    .unwrap();
                case.live.push(t);
                writes += 1;
                r
            };
            let fresh = case.fresh();
            let tuples = case.all_tuples();
            let before = case
                .clew
                .stats()
                .cache_hits
                .load(std::sync::atomic::Ordering::Relaxed);
            for (u, t, max_depth) in &watched {
                let max_depth = *max_depth;
                let reference = Reference {
                    model: &case.model,
                    tuples: &tuples,
                    context: &context,
                    max_depth,
                };
                let (object_type, relation, objects) = &all_targets[*t];
                let strategy = *rng.pick(&STRATEGIES);
                let checks_first = rng.chance(30);
                let got = observe(
                    &case.clew,
                    u,
                    relation,
                    object_type,
                    objects,
                    &context,
                    strategy,
                    revision,
                    checks_first,
                    max_depth,
                );
                let fresh_revision = fresh.state().revision;
                let want = observe(
                    &fresh,
                    u,
                    relation,
                    object_type,
                    objects,
                    &context,
                    strategy,
                    fresh_revision,
                    // Checks first: the fresh instance's checks run top-down, uncached.
                    true,
                    max_depth,
                );
                observations += 1;
                let at = || {
                    format!(
                        "seed {seed} step {step}: ({u}, {relation}, {object_type}) depth {max_depth} strategy {strategy:?} context {context:?}\nlong-lived: {got:?}\nfresh:      {want:?}\nmodel:\n{}\ntuples now: {}",
                        case.model.dsl,
                        show(&tuples)
                    )
                };
                failures.expect(
                    got == want,
                    "a long-lived instance answers unlike a fresh one",
                    at,
                );
                failures.expect(
                    got.agrees_modulo_depth(&want),
                    "… even reading depth errors as denials",
                    at,
                );
                for (o, (a, b)) in objects.iter().zip(got.checks.iter().zip(&want.checks)) {
                    let r = reference.check(u, relation, o);
                    let tri_of = |a: &Answer| match a {
                        Answer::Allowed => Tri::True,
                        Answer::Denied => Tri::False,
                        _ => Tri::Unknown,
                    };
                    failures.expect(
                        tri_of(b) == r,
                        format!(
                            "a fresh instance's check says {:?} where the reference says {r:?}",
                            tri_of(b)
                        ),
                        || format!("{o}: {}", at()),
                    );
                    failures.expect(
                        tri_of(a) == r,
                        format!(
                            "a long-lived instance's check says {:?} where the reference says {r:?}",
                            tri_of(a)
                        ),
                        || format!("{o}: {}", at()),
                    );
                }
            }
            hits += case
                .clew
                .stats()
                .cache_hits
                .load(std::sync::atomic::Ordering::Relaxed)
                - before;
        }
    }
    eprintln!(
        "freshness: {runs} runs, {writes} writes, {deletes} deletes, {observations} observations compared with a fresh instance ({hits} cache hits)"
    );
    failures.finish("freshness");
    assert!(
        hits > 0,
        "the cache never answered: the test did not exercise it"
    );
}

/// The graph the precise freshness cases use: nested groups, a folder tree, an exclusion.
const DOCS: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type doc
  relations
    define parent: [doc]
    define blocked: [user, group#member]
    define owner: [user]
    define viewer: ([user, user:*, group#member] or owner or viewer from parent) but not blocked
";

fn docs(tuples: &[(&str, &str, &str)]) -> (Clew, Vec<Tuple>) {
    let tuples: Vec<Tuple> = tuples
        .iter()
        .map(|(u, r, o)| Tuple::parse(u, r, o).unwrap())
        .collect();
    (build(DOCS, &tuples, &[]), tuples)
}

fn t(u: &str, r: &str, o: &str) -> Tuple {
    Tuple::parse(u, r, o).unwrap()
}

fn u(text: &str) -> User {
    User::parse(text).unwrap()
}

/// Lookup (objects, cache hit) at exactly `revision`.
fn viewer_docs(clew: &Clew, who: &User, revision: u64) -> (Vec<String>, bool) {
    let none = Map::new();
    let page = lookup_all(
        clew,
        &lookup_req(who, "viewer", "doc", &none, DEPTH),
        Consistency::AtLeast(revision),
    )
    .unwrap();
    assert_eq!(page.revision, revision);
    let mut objects = listing(&page).objects;
    objects.sort();
    (objects, page.cache_hit)
}

fn views(clew: &Clew, who: &User, doc: &str) -> Answer {
    let none = Map::new();
    answer(&check(
        clew,
        who,
        "viewer",
        &ObjectRef::parse(doc).unwrap(),
        &none,
        DEPTH,
    ))
}

fn filtered(
    clew: &Clew,
    who: &User,
    docs: &[&str],
    strategy: Option<Strategy>,
    revision: u64,
) -> Vec<String> {
    let none = Map::new();
    let candidates: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    let f = filter(
        clew,
        who,
        "viewer",
        "doc",
        &candidates,
        &none,
        strategy,
        Consistency::AtLeast(revision),
    )
    .unwrap();
    assert_eq!(f.revision, revision);
    allowed_list(&f)
}

/// Every read path agrees that `who` views exactly `want` among `all` at `revision`.
fn assert_views(clew: &Clew, who: &User, all: &[&str], want: &[&str], revision: u64, what: &str) {
    let (got, _) = viewer_docs(clew, who, revision);
    assert_eq!(got, want, "{what}: lookup({who})");
    for d in all {
        let expected = if want.contains(d) {
            Answer::Allowed
        } else {
            Answer::Denied
        };
        assert_eq!(
            views(clew, who, d),
            expected,
            "{what}: check({who}, viewer, {d})"
        );
    }
    for s in STRATEGIES {
        assert_eq!(
            filtered(clew, who, all, s, revision),
            want,
            "{what}: filter({who}) {s:?}"
        );
    }
}

const ALL_DOCS: [&str; 4] = ["doc:a", "doc:b", "doc:c", "doc:d"];

#[test]
fn a_write_for_one_user_leaves_another_users_cached_answer() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:bob", "viewer", "doc:b"),
        ("doc:a", "parent", "doc:c"),
        ("user:carl", "owner", "doc:d"),
    ]);
    let anne = u("user:anne");
    let bob = u("user:bob");
    let r0 = clew.state().revision;
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a", "doc:c"], r0, "start");
    assert_views(&clew, &bob, &ALL_DOCS, &["doc:b"], r0, "start");
    // A write that only concerns bob.
    let r1 = clew
        .write_tuples(&[t("user:bob", "owner", "doc:d")], &[], "test")
        .unwrap();
    let (anne_docs, hit) = viewer_docs(&clew, &anne, r1);
    assert_eq!(anne_docs, ["doc:a", "doc:c"]);
    assert!(
        hit,
        "a write naming only bob invalidated anne's cached lookup"
    );
    assert_views(
        &clew,
        &bob,
        &ALL_DOCS,
        &["doc:b", "doc:d"],
        r1,
        "bob owns d",
    );
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:c"],
        r1,
        "bob owns d",
    );
    // A delete that only concerns bob.
    let r2 = clew
        .write_tuples(&[], &[t("user:bob", "viewer", "doc:b").key()], "test")
        .unwrap();
    let (anne_docs, hit) = viewer_docs(&clew, &anne, r2);
    assert_eq!(anne_docs, ["doc:a", "doc:c"]);
    assert!(
        hit,
        "a delete naming only bob invalidated anne's cached lookup"
    );
    assert_views(&clew, &bob, &ALL_DOCS, &["doc:d"], r2, "bob loses b");
}

#[test]
fn adding_a_user_to_a_nested_group_is_visible_at_once() {
    let (clew, _) = docs(&[
        ("group:inner#member", "member", "group:outer"),
        ("group:outer#member", "viewer", "doc:b"),
        ("user:anne", "viewer", "doc:a"),
    ]);
    let dan = u("user:dan");
    let anne = u("user:anne");
    let r0 = clew.state().revision;
    assert_views(&clew, &dan, &ALL_DOCS, &[], r0, "before");
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r0, "before");
    let r1 = clew
        .write_tuples(&[t("user:dan", "member", "group:inner")], &[], "test")
        .unwrap();
    assert_views(&clew, &dan, &ALL_DOCS, &["doc:b"], r1, "dan joins inner");
    // anne, already cached, joins through a new nesting edge (a userset write).
    let r2 = clew
        .write_tuples(&[t("user:anne", "member", "group:deep")], &[], "test")
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r2, "anne joins deep");
    let r3 = clew
        .write_tuples(
            &[t("group:deep#member", "member", "group:inner")],
            &[],
            "test",
        )
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:b"],
        r3,
        "deep nests into inner",
    );
    assert_views(
        &clew,
        &dan,
        &ALL_DOCS,
        &["doc:b"],
        r3,
        "deep nests into inner",
    );
    // Userset subjects see the nesting too.
    let deep = u("group:deep#member");
    assert_views(&clew, &deep, &ALL_DOCS, &["doc:b"], r3, "group:deep#member");
    let r4 = clew
        .write_tuples(
            &[],
            &[t("group:deep#member", "member", "group:inner").key()],
            "test",
        )
        .unwrap();
    assert_views(&clew, &deep, &ALL_DOCS, &[], r4, "nesting revoked");
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r4, "nesting revoked");
}

#[test]
fn revoking_a_tuple_is_visible_at_once() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:anne", "member", "group:g"),
        ("group:g#member", "viewer", "doc:b"),
        ("doc:a", "parent", "doc:c"),
    ]);
    let anne = u("user:anne");
    let r0 = clew.state().revision;
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:b", "doc:c"],
        r0,
        "before",
    );
    let r1 = clew
        .write_tuples(&[], &[t("user:anne", "member", "group:g").key()], "test")
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a", "doc:c"], r1, "left g");
    let r2 = clew
        .write_tuples(&[], &[t("user:anne", "viewer", "doc:a").key()], "test")
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &[], r2, "viewer revoked");
    // A block is a write too: a user blocked through a group.
    let r3 = clew
        .write_tuples(
            &[
                t("user:anne", "viewer", "doc:d"),
                t("user:anne", "member", "group:g"),
            ],
            &[],
            "test",
        )
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:b", "doc:d"], r3, "back");
    let r4 = clew
        .write_tuples(&[t("group:g#member", "blocked", "doc:d")], &[], "test")
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:b"], r4, "blocked through g");
}

#[test]
fn writing_a_wildcard_is_visible_at_once() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:erin", "blocked", "doc:b"),
    ]);
    let anne = u("user:anne");
    let erin = u("user:erin");
    let star = u("user:*");
    let r0 = clew.state().revision;
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r0, "before");
    assert_views(&clew, &erin, &ALL_DOCS, &[], r0, "before");
    assert_views(&clew, &star, &ALL_DOCS, &[], r0, "before");
    let r1 = clew
        .write_tuples(&[t("user:*", "viewer", "doc:b")], &[], "test")
        .unwrap();
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a", "doc:b"], r1, "public b");
    assert_views(&clew, &erin, &ALL_DOCS, &[], r1, "public b, erin blocked");
    assert_views(&clew, &star, &ALL_DOCS, &["doc:b"], r1, "public b");
    // A wildcard member of a group reaches through the userset.
    let r2 = clew
        .write_tuples(&[t("group:all#member", "viewer", "doc:c")], &[], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:b"],
        r2,
        "group all, empty",
    );
    let r3 = clew
        .write_tuples(&[t("user:*", "member", "group:all")], &[], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:b", "doc:c"],
        r3,
        "everyone in all",
    );
    assert_views(&clew, &erin, &ALL_DOCS, &["doc:c"], r3, "everyone in all");
    let r4 = clew
        .write_tuples(&[], &[t("user:*", "viewer", "doc:b").key()], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:c"],
        r4,
        "b private again",
    );
    assert_views(&clew, &star, &ALL_DOCS, &["doc:c"], r4, "b private again");
}

#[test]
fn writing_a_tupleset_edge_is_visible_at_once() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:bob", "owner", "doc:b"),
    ]);
    let anne = u("user:anne");
    let bob = u("user:bob");
    let r0 = clew.state().revision;
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r0, "before");
    assert_views(&clew, &bob, &ALL_DOCS, &["doc:b"], r0, "before");
    // doc:c's parent is doc:a (a tuple naming neither anne nor bob as user).
    let r1 = clew
        .write_tuples(&[t("doc:a", "parent", "doc:c")], &[], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:c"],
        r1,
        "c under a",
    );
    assert_views(&clew, &bob, &ALL_DOCS, &["doc:b"], r1, "c under a");
    // Two hops: d under c.
    let r2 = clew
        .write_tuples(&[t("doc:c", "parent", "doc:d")], &[], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:c", "doc:d"],
        r2,
        "d under c",
    );
    // Re-parent: d moves under b.
    let r3 = clew
        .write_tuples(
            &[t("doc:b", "parent", "doc:d")],
            &[t("doc:c", "parent", "doc:d").key()],
            "test",
        )
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:c"],
        r3,
        "d under b",
    );
    assert_views(&clew, &bob, &ALL_DOCS, &["doc:b", "doc:d"], r3, "d under b");
    // And an older revision still reads as it was (a cursor-style pinned read).
    let old = clew.state_at(r2).unwrap();
    let none = Map::new();
    let (lookup, _) = clew
        .reach_in(&old, &lookup_req(&anne, "viewer", "doc", &none, DEPTH))
        .unwrap();
    let objects: Vec<String> = lookup
        .objects(&old.index)
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        objects,
        ["doc:a", "doc:c", "doc:d"],
        "the answer at r2, read after r3"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Paging.

/// Follows a lookup page by page with `limit`; checks every page's shape and returns the
/// objects in order and the revision they were read at.
fn follow_pages(
    clew: &Clew,
    req: &LookupRequest<'_>,
    limit: usize,
    first_cursor: Option<String>,
    already: usize,
    at: &dyn Fn() -> String,
) -> (Vec<String>, u64, Conditional) {
    let mut out = Vec::new();
    let mut conditional = Vec::new();
    let mut cursor = first_cursor;
    let mut revision = None;
    let mut total = None;
    for _ in 0..10_000 {
        let started_with_cursor = cursor.is_some();
        let page = clew
            .lookup(
                req,
                &PageRequest {
                    limit: Some(limit),
                    cursor: cursor.clone(),
                },
                Consistency::Latest,
            )
            .unwrap_or_else(|e| panic!("page failed: {e}: {}", at()));
        assert!(page.objects.len() <= limit, "page over the limit: {}", at());
        if let Some(r) = revision {
            assert_eq!(
                page.revision,
                r,
                "pages of one answer at different revisions: {}",
                at()
            );
        }
        revision = Some(page.revision);
        if let Some(t) = total {
            assert_eq!(page.total, t, "total changed between pages: {}", at());
        }
        total = Some(page.total);
        if !started_with_cursor {
            conditional = listing(&page).conditional;
        } else {
            assert!(
                page.conditional.is_empty(),
                "conditional objects repeated on a later page"
            );
        }
        out.extend(page.objects.iter().map(|o| o.to_string()));
        assert_eq!(
            page.truncated,
            page.cursor.is_some(),
            "truncated ⇔ cursor: {}",
            at()
        );
        if !page.truncated {
            assert_eq!(
                (already + out.len()) as u64,
                page.total,
                "pages do not add up to total: {}",
                at()
            );
            return (out, page.revision, conditional);
        }
        assert_eq!(
            page.objects.len(),
            limit,
            "a non-final page is full: {}",
            at()
        );
        cursor = page.cursor;
    }
    panic!("paging did not end: {}", at());
}

#[test]
fn pages_concatenate_to_the_whole_answer_even_across_writes() {
    let (mut pagings, mut multi_page, mut across_writes) = (0u64, 0u64, 0u64);
    let contexts = contexts();
    for seed in 0..cases() {
        let mut rng = Rng::new(seed ^ 0x9A6E);
        let Some(mut case) = random_case_with(&mut rng, WIDE) else {
            continue;
        };
        let all_subjects = subjects(case.shape);
        for (object_type, relation, _) in targets(case.shape) {
            for u in &all_subjects {
                let context = rng.pick(&contexts).clone();
                let req = lookup_req(u, &relation, object_type, &context, DEPTH);
                let Ok(whole) = lookup_all(&case.clew, &req, Consistency::Latest) else {
                    continue;
                };
                let whole_listing = listing(&whole);
                let whole_objects = whole_listing.objects.clone();
                let n = whole_objects.len();
                let at = || format!("seed {seed}: lookup({u}, {relation}, {object_type}) of {n}");
                let mut limits: BTreeSet<usize> = [1, 2, 3, n, n + 1].into_iter().collect();
                limits.remove(&0);
                for limit in limits {
                    let (got, revision, conditional) =
                        follow_pages(&case.clew, &req, limit, None, 0, &at);
                    assert_eq!(got, whole_objects, "limit {limit}: {}", at());
                    assert_eq!(
                        conditional,
                        whole_listing.conditional,
                        "the first page's conditional objects: {}",
                        at()
                    );
                    assert_eq!(revision, whole.revision);
                    pagings += 1;
                    if n > limit {
                        multi_page += 1;
                    }
                }
                // Page one now, writes meanwhile, the rest later: the answer at page one's
                // revision.
                if n >= 2 && rng.chance(60) {
                    let first = case
                        .clew
                        .lookup(
                            &req,
                            &PageRequest {
                                limit: Some(1),
                                cursor: None,
                            },
                            Consistency::Latest,
                        )
                        .unwrap();
                    assert!(first.truncated);
                    for _ in 0..3 {
                        if !case.live.is_empty() && rng.chance(50) {
                            let gone = case.live.remove(rng.below(case.live.len()));
                            case.clew.write_tuples(&[], &[gone.key()], "test").unwrap();
                        } else if let Some(t) =
                            fresh_valid_tuple(&mut rng, case.shape, &case.model, &case.all_tuples())
                        {
                            case.clew
                                .write_tuples(std::slice::from_ref(&t), &[], "test")
                                .unwrap();
                            case.live.push(t);
                        }
                    }
                    // Reads at the latest revision meanwhile (so the cache holds newer entries).
                    let _ = lookup_all(&case.clew, &req, Consistency::Latest);
                    let mut got: Vec<String> =
                        first.objects.iter().map(|o| o.to_string()).collect();
                    let limit = 1 + rng.below(n);
                    let (rest, revision, _) = follow_pages(
                        &case.clew,
                        &req,
                        limit,
                        first.cursor.clone(),
                        first.objects.len(),
                        &at,
                    );
                    got.extend(rest);
                    assert_eq!(got, whole_objects, "pages across writes: {}", at());
                    assert_eq!(
                        revision, first.revision,
                        "a cursor read at another revision"
                    );
                    across_writes += 1;
                }
            }
        }
    }
    eprintln!(
        "paging: {pagings} pagings ({multi_page} over several pages), {across_writes} followed across writes"
    );
    assert!(multi_page > 0 && across_writes > 0);
}

/// A small graph with a five-object answer, for the cursor error cases.
fn paged_docs() -> (Clew, LookupPage) {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:anne", "viewer", "doc:b"),
        ("user:anne", "viewer", "doc:c"),
        ("user:anne", "viewer", "doc:d"),
        ("user:anne", "owner", "doc:e"),
        ("user:bob", "viewer", "doc:a"),
    ]);
    let none = Map::new();
    let anne = u("user:anne");
    let first = clew
        .lookup(
            &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
            &PageRequest {
                limit: Some(2),
                cursor: None,
            },
            Consistency::Latest,
        )
        .unwrap();
    assert!(first.truncated && first.cursor.is_some());
    assert_eq!(first.total, 5);
    (clew, first)
}

fn page_with(
    clew: &Clew,
    who: &str,
    relation: &str,
    context: &Map<String, Value>,
    max_depth: u32,
    limit: Option<usize>,
    cursor: Option<String>,
    consistency: Consistency,
) -> Result<LookupPage, ServiceError> {
    let user = u(who);
    clew.lookup(
        &lookup_req(&user, relation, "doc", context, max_depth),
        &PageRequest { limit, cursor },
        consistency,
    )
}

#[test]
fn bad_cursors_and_page_sizes_are_clear_errors() {
    let (clew, first) = paged_docs();
    let none = Map::new();
    let cursor = first.cursor.clone().unwrap();
    let r0 = first.revision;
    let page = |who: &str,
                relation: &str,
                context: &Map<String, Value>,
                depth: u32,
                limit: Option<usize>,
                cursor: Option<String>,
                c: Consistency| {
        page_with(&clew, who, relation, context, depth, limit, cursor, c)
    };
    // The cursor itself works.
    let second = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(2),
        Some(cursor.clone()),
        Consistency::Latest,
    )
    .unwrap();
    assert_eq!(second.objects.len(), 2);
    assert!(second.truncated);
    // Malformed cursors.
    let mut tampered = cursor.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let bad = [
        String::new(),
        "nonsense".to_string(),
        cursor[..cursor.len() / 2].to_string(),
        format!("{cursor}.x"),
        tampered,
        "c1.1.0000000000000000.0.00000000".to_string(),
        "x".repeat(500),
    ];
    for text in bad {
        let e = page(
            "user:anne",
            "viewer",
            &none,
            DEPTH,
            Some(2),
            Some(text.clone()),
            Consistency::Latest,
        )
        .unwrap_err();
        assert!(
            matches!(e, ServiceError::Request(RequestError::MalformedCursor(_))),
            "cursor {text:?}: {e:?}"
        );
        assert!(e.is_user_error());
    }
    // A cursor used with another request: another user, relation, context or depth.
    let mut ctx = Map::new();
    ctx.insert("x".into(), json!(1));
    for (who, relation, context, depth) in [
        ("user:bob", "viewer", &none, DEPTH),
        ("user:anne", "owner", &none, DEPTH),
        ("user:anne", "viewer", &ctx, DEPTH),
        ("user:anne", "viewer", &none, DEPTH - 1),
    ] {
        let e = page(
            who,
            relation,
            context,
            depth,
            Some(2),
            Some(cursor.clone()),
            Consistency::Latest,
        )
        .unwrap_err();
        assert!(
            matches!(e, ServiceError::Request(RequestError::CursorMismatch)),
            "cursor reused for ({who}, {relation}, {context:?}, {depth}): {e:?}"
        );
    }
    // A different page size is the same request: allowed.
    let wide = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(10),
        Some(cursor.clone()),
        Consistency::Latest,
    )
    .unwrap();
    assert_eq!(wide.objects.len(), 3);
    assert!(!wide.truncated);
    // A cursor asked for with a newer revision than its own.
    let r1 = clew
        .write_tuples(&[t("user:anne", "viewer", "doc:f")], &[], "test")
        .unwrap();
    assert!(r1 > r0);
    let e = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(2),
        Some(cursor.clone()),
        Consistency::AtLeast(r1),
    )
    .unwrap_err();
    assert!(
        matches!(e, ServiceError::Request(RequestError::CursorRevision { cursor: c, requested }) if c == r0 && requested == r1),
        "{e:?}"
    );
    // …while AtLeast(its own revision) follows it, at its revision.
    let ok = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(2),
        Some(cursor.clone()),
        Consistency::AtLeast(r0),
    )
    .unwrap();
    assert_eq!(ok.revision, r0);
    assert_eq!(ok.objects, second.objects);
    // A revision that does not exist yet, without a cursor.
    let e = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        None,
        None,
        Consistency::AtLeast(r1 + 10),
    )
    .unwrap_err();
    assert!(
        matches!(e, ServiceError::Request(RequestError::FutureRevision { requested, latest }) if requested == r1 + 10 && latest == r1),
        "{e:?}"
    );
    // Page sizes out of range.
    for limit in [0, MAX_PAGE_SIZE + 1, usize::MAX] {
        let e = page(
            "user:anne",
            "viewer",
            &none,
            DEPTH,
            Some(limit),
            None,
            Consistency::Latest,
        )
        .unwrap_err();
        assert!(
            matches!(e, ServiceError::Request(RequestError::BadPageSize { given, limit: l }) if given == limit && l == MAX_PAGE_SIZE),
            "limit {limit}: {e:?}"
        );
        let e = page(
            "user:anne",
            "viewer",
            &none,
            DEPTH,
            Some(limit),
            Some(cursor.clone()),
            Consistency::Latest,
        )
        .unwrap_err();
        assert!(
            matches!(e, ServiceError::Request(RequestError::BadPageSize { .. })),
            "{e:?}"
        );
    }
    let max = page(
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(MAX_PAGE_SIZE),
        None,
        Consistency::Latest,
    )
    .unwrap();
    assert_eq!(max.objects.len(), 6);
    assert!(!max.truncated);
}

#[test]
fn a_cursor_outlives_some_writes_and_then_expires() {
    let (clew, first) = paged_docs();
    let none = Map::new();
    let cursor = first.cursor.clone().unwrap();
    let r0 = first.revision;
    // Writes that change the answer: the cursor still reads the answer at r0.
    let mut written = Vec::new();
    for i in 0..10 {
        let doc = format!("doc:n{i}");
        clew.write_tuples(&[t("user:anne", "viewer", &doc)], &[], "test")
            .unwrap();
        written.push(doc);
    }
    clew.write_tuples(&[], &[t("user:anne", "viewer", "doc:c").key()], "test")
        .unwrap();
    let rest = page_with(
        &clew,
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(10),
        Some(cursor.clone()),
        Consistency::Latest,
    )
    .unwrap();
    assert_eq!(rest.revision, r0);
    let mut all: Vec<String> = first
        .objects
        .iter()
        .chain(&rest.objects)
        .map(|o| o.to_string())
        .collect();
    all.sort();
    assert_eq!(all, ["doc:a", "doc:b", "doc:c", "doc:d", "doc:e"]);
    // Up to DEFAULT_HISTORY - 1 newer revisions the cursor's revision is still retained…
    let mut i = 0;
    while clew.state().revision < r0 + DEFAULT_HISTORY as u64 - 1 {
        clew.write_tuples(
            &[t("user:bob", "viewer", &format!("doc:m{i}"))],
            &[],
            "test",
        )
        .unwrap();
        i += 1;
    }
    let still = page_with(
        &clew,
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(10),
        Some(cursor.clone()),
        Consistency::Latest,
    )
    .unwrap();
    assert_eq!(still.revision, r0);
    assert_eq!(still.objects, rest.objects);
    // …and with more than DEFAULT_HISTORY newer ones it is gone: the cursor expires, clearly.
    for _ in 0..2 {
        clew.write_tuples(
            &[t("user:bob", "viewer", &format!("doc:m{i}"))],
            &[],
            "test",
        )
        .unwrap();
        i += 1;
    }
    assert!(clew.state().revision > r0 + DEFAULT_HISTORY as u64);
    let e = page_with(
        &clew,
        "user:anne",
        "viewer",
        &none,
        DEPTH,
        Some(10),
        Some(cursor),
        Consistency::Latest,
    )
    .unwrap_err();
    match e {
        ServiceError::Request(RequestError::CursorExpired { cursor, oldest }) => {
            assert_eq!(cursor, r0);
            assert!(oldest > r0, "oldest retained {oldest} ≤ the expired {r0}");
            assert!(clew.state_at(oldest).is_some_and(|s| s.revision == oldest));
        }
        other => panic!("expected CursorExpired, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 5. batch_check.

#[test]
fn batch_check_equals_individual_checks() {
    let (mut batches, mut items, mut duplicates, mut from_bitmap) = (0u64, 0u64, 0u64, 0u64);
    let mut failures = Failures::default();
    for seed in 0..cases() {
        let mut rng = Rng::new(seed ^ 0xBA7C);
        let shape = if seed % 2 == 0 { WIDE } else { SMALL };
        let Some(case) = random_case_with(&mut rng, shape) else {
            continue;
        };
        let fresh = case.fresh();
        let all_subjects = subjects(shape);
        let all_targets = targets(shape);
        let contexts = contexts();
        // Owned request parts; requests borrow them.
        // (user, relation, object, context, explain, max_depth)
        type Spec = (User, String, ObjectRef, Map<String, Value>, bool, u32);
        let mut specs: Vec<Spec> = Vec::new();
        let depth = |rng: &mut Rng| {
            if rng.chance(15) {
                2 + rng.below(4) as u32
            } else {
                DEPTH
            }
        };
        for _ in 0..40 {
            let (_, relation, objects) = rng.pick(&all_targets);
            specs.push((
                rng.pick(&all_subjects).clone(),
                relation.clone(),
                rng.pick(objects).clone(),
                rng.pick(&contexts).clone(),
                rng.chance(10),
                depth(&mut rng),
            ));
        }
        // Many checks for one subject, relation and type: the service answers them from one
        // bitmap (objects beyond the store's are distinct checks too).
        let (object_type, relation, _) = rng.pick(&all_targets).clone();
        let heavy = rng.pick(&all_subjects).clone();
        let context = rng.pick(&contexts).clone();
        let heavy_depth = depth(&mut rng);
        for i in 0..120 {
            let o = ObjectRef::new(
                object_type,
                if i < 20 {
                    format!("o{}", i % shape.objects)
                } else {
                    format!("x{i}")
                },
            );
            let o = if object_type == "group" && i < 20 {
                group(i % shape.groups)
            } else {
                o
            };
            specs.push((
                heavy.clone(),
                relation.clone(),
                o,
                context.clone(),
                false,
                heavy_depth,
            ));
        }
        // Duplicates of earlier checks, and a check that fails on its own.
        for _ in 0..15 {
            let s = rng.pick(&specs).clone();
            specs.push(s);
        }
        specs.push((
            user(0),
            "no_such_relation".into(),
            res(0),
            Map::new(),
            false,
            DEPTH,
        ));
        for i in (1..specs.len()).rev() {
            let j = rng.below(i + 1);
            specs.swap(i, j);
        }
        let requests: Vec<CheckRequest<'_>> = specs
            .iter()
            .map(|(u, r, o, c, explain, max_depth)| CheckRequest {
                user: u,
                relation: r,
                object: o,
                context: c,
                contextual: &[],
                explain: *explain,
                max_depth: *max_depth,
            })
            .collect();
        let batch = case
            .clew
            .batch_check(&requests, Consistency::Latest)
            .unwrap();
        batches += 1;
        assert_eq!(batch.items.len(), requests.len());
        assert_eq!(batch.revision, case.clew.state().revision);
        for (i, (req, item)) in requests.iter().zip(&batch.items).enumerate() {
            items += 1;
            let at = || {
                format!(
                    "seed {seed}: batch item {i} of {} ({}, {}, {}) depth {} context {:?}\nmodel:\n{}\ntuples: {}",
                    requests.len(),
                    req.user,
                    req.relation,
                    req.object,
                    req.max_depth,
                    req.context,
                    case.model.dsl,
                    show(&case.all_tuples())
                )
            };
            let got = match &item.result {
                Ok(r) => {
                    if r.cache_hit && r.visited == 0 {
                        from_bitmap += 1;
                    }
                    answer(&Ok(r.clone()))
                }
                Err(e) => Answer::Error(e.clone()),
            };
            let alone = answer(&fresh.check(req).map(|(r, _)| r));
            failures.expect(
                got == alone,
                format!(
                    "batch item says {} where a single check on a fresh instance says {}",
                    category(&got),
                    category(&alone)
                ),
                || format!("batch: {got:?}; single: {alone:?}\n{}", at()),
            );
            let again = answer(&case.clew.check(req).map(|(r, _)| r));
            failures.expect(
                again == alone,
                format!(
                    "a single check on the batch's instance says {} where one on a fresh instance says {}",
                    category(&again),
                    category(&alone)
                ),
                || format!("same instance: {again:?}; fresh: {alone:?}\n{}", at()),
            );
            // Duplicates point at the first identical check and share its answer.
            let first = requests
                .iter()
                .position(|r| {
                    r.user == req.user
                        && r.relation == req.relation
                        && r.object == req.object
                        && r.context == req.context
                        && r.explain == req.explain
                        && r.max_depth == req.max_depth
                })
                .unwrap();
            if first == i {
                failures.expect(
                    item.duplicate_of.is_none(),
                    "a first check marked a duplicate",
                    at,
                );
            } else {
                duplicates += 1;
                failures.expect(
                    item.duplicate_of == Some(first),
                    "a duplicate does not point at the first identical check",
                    || {
                        format!(
                            "duplicate_of {:?}, first {first}\n{}",
                            item.duplicate_of,
                            at()
                        )
                    },
                );
                let original = &batch.items[first];
                let same = match (&item.result, &original.result) {
                    (Ok(a), Ok(b)) => {
                        a.decision == b.decision
                            && a.explanation.is_some() == b.explanation.is_some()
                    }
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                failures.expect(
                    same,
                    "a duplicate answered differently from its original",
                    at,
                );
            }
        }
    }
    eprintln!(
        "batch_check: {batches} batches, {items} items ({duplicates} duplicates, {from_bitmap} answered from a bitmap)"
    );
    failures.finish("batch_check");
    assert!(
        duplicates > 0 && from_bitmap > 0,
        "the batch paths were not exercised"
    );
}

#[test]
fn batch_check_size_limit() {
    let (clew, _) = docs(&[("user:anne", "viewer", "doc:a")]);
    let anne = u("user:anne");
    let none = Map::new();
    let objects: Vec<ObjectRef> = (0..=MAX_BATCH_CHECKS)
        .map(|i| ObjectRef::new("doc", format!("d{i}")))
        .collect();
    let requests: Vec<CheckRequest<'_>> = objects
        .iter()
        .map(|o| CheckRequest {
            user: &anne,
            relation: "viewer",
            object: o,
            context: &none,
            contextual: &[],
            explain: false,
            max_depth: DEPTH,
        })
        .collect();
    let e = clew
        .batch_check(&requests, Consistency::Latest)
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Request(RequestError::TooManyChecks { given, limit }) if given == MAX_BATCH_CHECKS + 1 && limit == MAX_BATCH_CHECKS),
        "{e:?}"
    );
    let ok = clew
        .batch_check(&requests[..MAX_BATCH_CHECKS], Consistency::Latest)
        .unwrap();
    assert_eq!(ok.items.len(), MAX_BATCH_CHECKS);
    let allowed = ok
        .items
        .iter()
        .filter(|i| matches!(&i.result, Ok(r) if r.decision == Decision::Allowed))
        .count();
    assert_eq!(allowed, 0, "none of d0…d9999 is viewable");
    let e = clew
        .batch_check(&requests, Consistency::AtLeast(clew.state().revision + 1))
        .unwrap_err();
    assert!(
        matches!(
            e,
            ServiceError::Request(
                RequestError::TooManyChecks { .. } | RequestError::FutureRevision { .. }
            )
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input for lookup and filter.

fn filter_docs<'c>(
    clew: &Clew,
    who: &str,
    relation: &str,
    object_type: &str,
    candidates: &'c [String],
) -> Result<FilterResult<'c>, ServiceError> {
    let none = Map::new();
    filter(
        clew,
        &u(who),
        relation,
        object_type,
        candidates,
        &none,
        None,
        Consistency::Latest,
    )
}

#[test]
fn bad_lookup_and_filter_requests_are_clear_errors() {
    let (clew, _) = docs(&[("user:anne", "viewer", "doc:a")]);
    let none = Map::new();
    let anne = u("user:anne");
    let full = PageRequest::default();
    // Lookup: unknown type, unknown relation, a user of an unknown type.
    let e = clew
        .lookup(
            &lookup_req(&anne, "viewer", "folder", &none, DEPTH),
            &full,
            Consistency::Latest,
        )
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Engine(EngineError::UnknownType(t)) if t == "folder"),
        "{e:?}"
    );
    assert!(e.to_string().contains("folder") && e.is_user_error());
    let e = clew
        .lookup(
            &lookup_req(&anne, "editor", "doc", &none, DEPTH),
            &full,
            Consistency::Latest,
        )
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Engine(EngineError::UnknownRelation { object_type, relation }) if object_type == "doc" && relation == "editor"),
        "{e:?}"
    );
    assert!(e.to_string().contains("editor"));
    let robot = u("robot:r2");
    let e = clew
        .lookup(
            &lookup_req(&robot, "viewer", "doc", &none, DEPTH),
            &full,
            Consistency::Latest,
        )
        .unwrap_err();
    assert!(
        matches!(&e, ServiceError::Engine(EngineError::InvalidUser(m)) if m.contains("robot")),
        "{e:?}"
    );
    // The same through a paged request.
    let e = clew
        .lookup(
            &lookup_req(&anne, "editor", "doc", &none, DEPTH),
            &PageRequest {
                limit: Some(1),
                cursor: None,
            },
            Consistency::Latest,
        )
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Engine(EngineError::UnknownRelation { .. })),
        "{e:?}"
    );

    // Filter: unknown type and relation.
    let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let e = filter_docs(&clew, "user:anne", "viewer", "folder", &c(&["folder:x"])).unwrap_err();
    assert!(
        matches!(&e, ServiceError::Engine(EngineError::UnknownType(t)) if t == "folder"),
        "{e:?}"
    );
    let e = filter_docs(&clew, "user:anne", "editor", "doc", &c(&["doc:a"])).unwrap_err();
    assert!(
        matches!(&e, ServiceError::Engine(EngineError::UnknownRelation { relation, .. }) if relation == "editor"),
        "{e:?}"
    );
    let e = filter_docs(&clew, "robot:r2", "viewer", "doc", &c(&["doc:a"])).unwrap_err();
    assert!(
        matches!(e, ServiceError::Engine(EngineError::InvalidUser(_))),
        "{e:?}"
    );
    // A candidate of another type, named with its position.
    let e = filter_docs(
        &clew,
        "user:anne",
        "viewer",
        "doc",
        &c(&["doc:a", "doc:b", "group:g"]),
    )
    .unwrap_err();
    match &e {
        ServiceError::Request(RequestError::BadCandidate {
            index,
            candidate,
            why,
        }) => {
            assert_eq!((*index, candidate.as_str()), (2, "group:g"));
            assert!(why.contains("doc"), "{why}");
        }
        other => panic!("expected BadCandidate, got {other:?}"),
    }
    assert!(e.to_string().contains("group:g") && e.is_user_error());
    // Malformed candidate ids.
    for (i, bad) in ["doc", "doc:", ":a", "doc:a#viewer", "doc:*", "doc:a b", ""]
        .iter()
        .enumerate()
    {
        let list = c(&["doc:a", bad]);
        let e = filter_docs(&clew, "user:anne", "viewer", "doc", &list).unwrap_err();
        assert!(
            matches!(&e, ServiceError::Request(RequestError::BadCandidate { index: 1, candidate, .. }) if candidate == bad),
            "case {i} {bad:?}: {e:?}"
        );
    }
    // Too many candidates (checked before anything else), and exactly the limit.
    let many: Vec<String> = (0..=MAX_FILTER_CANDIDATES)
        .map(|i| format!("doc:d{i}"))
        .collect();
    let e = filter_docs(&clew, "user:anne", "viewer", "doc", &many).unwrap_err();
    assert!(
        matches!(e, ServiceError::Request(RequestError::TooManyCandidates { given, limit }) if given == MAX_FILTER_CANDIDATES + 1 && limit == MAX_FILTER_CANDIDATES),
        "{e:?}"
    );
    let e = filter_docs(&clew, "user:anne", "viewer", "nosuchtype", &many).unwrap_err();
    assert!(
        matches!(
            e,
            ServiceError::Request(RequestError::TooManyCandidates { .. })
        ),
        "{e:?}"
    );
    let ok = filter_docs(
        &clew,
        "user:anne",
        "viewer",
        "doc",
        &many[..MAX_FILTER_CANDIDATES],
    )
    .unwrap();
    assert_eq!(
        ok.unknown, MAX_FILTER_CANDIDATES,
        "d0…d9999 were never seen"
    );
    assert!(ok.allowed.is_empty());
    // An empty candidate list is a valid, empty answer.
    let empty = filter_docs(&clew, "user:anne", "viewer", "doc", &[]).unwrap();
    assert!(empty.allowed.is_empty() && empty.unknown == 0 && empty.denied == 0);
    // Without a model every bulk read is NoModel.
    let bare = Clew::memory().unwrap();
    let e = bare
        .lookup(
            &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
            &full,
            Consistency::Latest,
        )
        .unwrap_err();
    assert!(matches!(e, ServiceError::NoModel), "{e:?}");
    let e = filter_docs(&bare, "user:anne", "viewer", "doc", &c(&["doc:a"])).unwrap_err();
    assert!(matches!(e, ServiceError::NoModel), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// The depth limit: a denial whose top-down proof needs more hops than the limit.

/// Groups nested 30 deep (`c0 ∋ c1#member ∋ … ∋ c30#member`), `doc:a` shared with the outermost;
/// anne is in none of them, and views `doc:b` directly. A check that anne views `doc:a` must
/// walk the whole chain to deny, which takes more than the default 25 hops: it fails with
/// `DepthExceeded`. Bottom-up, anne's groups are none at all (depth bound 0), so the bitmap
/// evaluation is not verified by checks.
const CHAIN: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type doc
  relations
    define viewer: [user, group#member]
";

fn chain() -> Clew {
    let mut tuples: Vec<Tuple> = (0..30)
        .map(|i| {
            t(
                &format!("group:c{}#member", i + 1),
                "member",
                &format!("group:c{i}"),
            )
        })
        .collect();
    tuples.push(t("group:c0#member", "viewer", "doc:a"));
    tuples.push(t("user:anne", "viewer", "doc:b"));
    build(CHAIN, &tuples, &[])
}

fn is_depth_error(a: &Answer) -> bool {
    matches!(a, Answer::Error(e) if e.contains("depth"))
}

#[test]
fn chain_check_runs_out_of_depth_on_a_fresh_instance() {
    // The premise of the tests below: engine and reference agree that this check is undecided.
    let clew = chain();
    let anne = u("user:anne");
    assert!(
        is_depth_error(&views(&clew, &anne, "doc:a")),
        "{:?}",
        views(&clew, &anne, "doc:a")
    );
    assert_eq!(views(&clew, &anne, "doc:b"), Answer::Allowed);
    let tuples = clew.state().index.tuples();
    let model = TypeSystem::from_dsl(CHAIN).unwrap();
    let none = Map::new();
    let reference = Reference {
        model: &model,
        tuples: &tuples,
        context: &none,
        max_depth: DEPTH,
    };
    assert_eq!(
        reference.check(&anne, "viewer", &ObjectRef::parse("doc:a").unwrap()),
        Tri::Unknown
    );
}

/// `lookup` promises `check`'s answer exactly (engine::lookup's doc): where check cannot decide
/// an object for lack of depth, lookup must fail or flag the object, not silently drop it.
#[test]
fn lookup_does_not_drop_an_object_whose_check_runs_out_of_depth() {
    let clew = chain();
    let anne = u("user:anne");
    let none = Map::new();
    let page = lookup_all(
        &clew,
        &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
        Consistency::Latest,
    );
    match &page {
        Err(e) => assert!(e.to_string().contains("depth"), "{e}"),
        Ok(page) => {
            let l = listing(page);
            assert!(!l.objects.contains(&"doc:a".to_string()));
            assert!(
                l.conditional.iter().any(|(o, _)| o == "doc:a"),
                "check(anne, viewer, doc:a) fails with DepthExceeded, but lookup answers {l:?} (strategy {:?}, depth bound {}) as if doc:a were denied",
                page.stats.strategy,
                page.stats.depth_bound
            );
        }
    }
}

/// The same check at the same revision has one answer, whether or not a lookup for the same
/// subject happened to fill the cache first.
#[test]
fn a_cached_lookup_does_not_change_what_check_answers() {
    let clew = chain();
    let anne = u("user:anne");
    let none = Map::new();
    let before = views(&clew, &anne, "doc:a");
    let _ = lookup_all(
        &clew,
        &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
        Consistency::Latest,
    );
    let after = views(&clew, &anne, "doc:a");
    assert_eq!(
        before, after,
        "check(anne, viewer, doc:a) answered {before:?} before a lookup and {after:?} after it (served from the cached bitmap)"
    );
}

/// Every filter strategy gives one answer (or fails alike).
#[test]
fn filter_strategies_agree_when_a_check_runs_out_of_depth() {
    let clew = chain();
    let anne = u("user:anne");
    let none = Map::new();
    let candidates = vec!["doc:a".to_string(), "doc:b".to_string()];
    let run = |s: Option<Strategy>| {
        filter(
            &clew,
            &anne,
            "viewer",
            "doc",
            &candidates,
            &none,
            s,
            Consistency::Latest,
        )
        .map(|f| (allowed_list(&f), f.conditional.clone(), f.denied))
        .map_err(|e| e.to_string())
    };
    let by_checks = run(Some(Strategy::Checks));
    let by_bitmap = run(Some(Strategy::Bitmap));
    assert_eq!(
        by_checks, by_bitmap,
        "filter by checks answers {by_checks:?}, by bitmap {by_bitmap:?}"
    );
}

/// A batch answers each check as a single check would, also when it answers a large group
/// for one subject from one bitmap.
#[test]
fn batch_check_agrees_with_check_when_a_check_runs_out_of_depth() {
    let clew = chain();
    let anne = u("user:anne");
    let none = Map::new();
    let objects: Vec<ObjectRef> = (0..100)
        .map(|i| {
            ObjectRef::new(
                "doc",
                if i == 0 {
                    "a".to_string()
                } else {
                    format!("x{i}")
                },
            )
        })
        .collect();
    let requests: Vec<CheckRequest<'_>> = objects
        .iter()
        .map(|o| CheckRequest {
            user: &anne,
            relation: "viewer",
            object: o,
            context: &none,
            contextual: &[],
            explain: false,
            max_depth: DEPTH,
        })
        .collect();
    let fresh = chain();
    let single = answer(&fresh.check(&requests[0]).map(|(r, _)| r));
    let batch = clew.batch_check(&requests, Consistency::Latest).unwrap();
    let item = match &batch.items[0].result {
        Ok(r) => answer(&Ok(r.clone())),
        Err(e) => Answer::Error(e.clone()),
    };
    assert_eq!(item, single, "batch item for doc:a vs the single check");
}

// ---------------------------------------------------------------------------------------------
// Model changes, consistency tokens, and concurrent readers.

const DOCS_B: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type doc
  relations
    define parent: [doc]
    define blocked: [user, group#member]
    define owner: [user]
    define editor: [user]
    define viewer: [user, user:*, group#member] or editor
";

#[test]
fn a_model_change_is_visible_at_once_and_back() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:anne", "owner", "doc:b"),
        ("doc:a", "parent", "doc:c"),
        ("user:anne", "blocked", "doc:a"),
    ]);
    let anne = u("user:anne");
    let r0 = clew.state().revision;
    // Under DOCS: owner counts, parents count, blocked wins.
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:b"], r0, "model A");
    let (_, r1) = clew.write_model(DOCS_B).unwrap();
    // Under DOCS_B: only direct viewers and editors; blocked means nothing.
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:a"], r1, "model B");
    let r2 = clew
        .write_tuples(&[t("user:anne", "editor", "doc:d")], &[], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:d"],
        r2,
        "model B, editor",
    );
    let (_, r3) = clew.write_model(DOCS).unwrap();
    // Back to DOCS: the editor tuple is not admitted and is ignored.
    assert_views(&clew, &anne, &ALL_DOCS, &["doc:b"], r3, "model A again");
    let r4 = clew
        .write_tuples(&[], &[t("user:anne", "blocked", "doc:a").key()], "test")
        .unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:b", "doc:c"],
        r4,
        "model A, unblocked",
    );
    let (_, r5) = clew.write_model(DOCS_B).unwrap();
    assert_views(
        &clew,
        &anne,
        &ALL_DOCS,
        &["doc:a", "doc:d"],
        r5,
        "model B again",
    );
}

#[test]
fn reads_newer_than_the_latest_revision_are_refused() {
    let (clew, _) = docs(&[("user:anne", "viewer", "doc:a")]);
    let anne = u("user:anne");
    let none = Map::new();
    let latest = clew.state().revision;
    let future = Consistency::AtLeast(latest + 1);
    let is_future = |e: &ServiceError| matches!(e, ServiceError::Request(RequestError::FutureRevision { requested, latest: l }) if *requested == latest + 1 && *l == latest);
    let e = lookup_all(
        &clew,
        &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
        future,
    )
    .unwrap_err();
    assert!(is_future(&e), "{e:?}");
    let e = filter(
        &clew,
        &anne,
        "viewer",
        "doc",
        &["doc:a".to_string()],
        &none,
        None,
        future,
    )
    .unwrap_err();
    assert!(is_future(&e), "{e:?}");
    let object = ObjectRef::parse("doc:a").unwrap();
    let request = CheckRequest {
        user: &anne,
        relation: "viewer",
        object: &object,
        context: &none,
        contextual: &[],
        explain: false,
        max_depth: DEPTH,
    };
    let e = clew.batch_check(&[request], future).unwrap_err();
    assert!(is_future(&e), "{e:?}");
    // The latest revision itself, and older ones, read the latest state.
    for c in [
        Consistency::AtLeast(latest),
        Consistency::AtLeast(0),
        Consistency::Latest,
    ] {
        let page = lookup_all(&clew, &lookup_req(&anne, "viewer", "doc", &none, DEPTH), c).unwrap();
        assert_eq!(page.revision, latest);
        assert_eq!(listing(&page).objects, ["doc:a"]);
        let b = clew.batch_check(&[request], c).unwrap();
        assert_eq!(b.revision, latest);
    }
}

/// Readers running alongside a writer: every answer, at the revision it reports, is the
/// reference's answer over the tuples of that revision.
#[test]
fn concurrent_readers_see_consistent_revisions() {
    use std::sync::{Arc, Mutex};
    let runs = (cases() / 20).max(3);
    let mut answers = 0usize;
    for seed in 0..runs {
        let mut rng = Rng::new(seed ^ 0xC0C0);
        let Some(case) = random_case_with(&mut rng, SMALL) else {
            continue;
        };
        let clew = Arc::new(case.clew);
        let model = case.model;
        let shape = case.shape;
        let imported = case.imported;
        // revision -> the tuples at that revision.
        type Shared<T> = Arc<Mutex<Vec<T>>>;
        let history: Shared<(u64, Vec<Tuple>)> =
            Arc::new(Mutex::new(vec![(clew.state().revision, case.live.clone())]));
        let records: Shared<(u64, User, String, Vec<String>)> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        std::thread::scope(|scope| {
            for r in 0..2u64 {
                let (clew, records, done) = (clew.clone(), records.clone(), done.clone());
                scope.spawn(move || {
                    let mut rng = Rng::new(seed * 7 + r);
                    let all_subjects = subjects(shape);
                    let none = Map::new();
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let u = rng.pick(&all_subjects).clone();
                        let relation = format!("r{}", rng.below(RELATIONS));
                        let req = lookup_req(&u, &relation, "res", &none, DEPTH);
                        if let Ok(page) = lookup_all(&clew, &req, Consistency::Latest) {
                            let mut objects = listing(&page).objects;
                            objects.sort();
                            records
                                .lock()
                                .unwrap()
                                .push((page.revision, u, relation, objects));
                        }
                    }
                });
            }
            let mut live = case.live.clone();
            for _ in 0..30 {
                let revision = if !live.is_empty() && rng.chance(40) {
                    let gone = live.remove(rng.below(live.len()));
                    clew.write_tuples(&[], &[gone.key()], "test").unwrap()
                } else {
                    let taken: Vec<Tuple> = live.iter().chain(&imported).cloned().collect();
                    let Some(t) = fresh_valid_tuple(&mut rng, shape, &model, &taken) else {
                        continue;
                    };
                    let r = clew
                        .write_tuples(std::slice::from_ref(&t), &[], "test")
                        .unwrap();
                    live.push(t);
                    r
                };
                history.lock().unwrap().push((revision, live.clone()));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let history = history.lock().unwrap();
        let none = Map::new();
        for (revision, u, relation, objects) in records.lock().unwrap().iter() {
            let (_, live) = history
                .iter()
                .find(|(r, _)| r == revision)
                .unwrap_or_else(|| {
                    panic!("an answer at revision {revision}, which no write returned")
                });
            let tuples: Vec<Tuple> = live.iter().chain(&imported).cloned().collect();
            let reference = Reference {
                model: &model,
                tuples: &tuples,
                context: &none,
                max_depth: DEPTH,
            };
            let want: Vec<String> = (0..shape.objects)
                .map(res)
                .filter(|o| reference.check(u, relation, o) == Tri::True)
                .map(|o| o.to_string())
                .collect();
            let mut want = want;
            want.sort();
            assert_eq!(
                objects,
                &want,
                "seed {seed}: lookup({u}, {relation}) at revision {revision}\nmodel:\n{}\ntuples: {}",
                model.dsl,
                show(&tuples)
            );
            answers += 1;
        }
    }
    eprintln!("concurrent readers: {answers} answers checked against their revision");
    assert!(answers > 0);
}

// ---------------------------------------------------------------------------------------------
// Contextual tuples.

/// With contextual tuples (new objects among them, and keys that repeat stored tuples), lookup,
/// filter (every strategy) and batch_check all give check's answer, which is the reference's
/// over the stored and contextual tuples together.
#[test]
fn contextual_tuples_agree_across_operations() {
    let mut failures = Failures::default();
    let (mut cases_run, mut compared) = (0u64, 0u64);
    let wider = Shape {
        objects: SMALL.objects + 2,
        ..SMALL
    };
    for seed in 0..cases() / 2 {
        let mut rng = Rng::new(seed ^ 0xC0E7);
        let Some(case) = random_case_with(&mut rng, SMALL) else {
            continue;
        };
        cases_run += 1;
        let mut contextual: Vec<Tuple> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            if rng.chance(25) && !case.live.is_empty() {
                // A stored key again, perhaps under another condition.
                let mut t = rng.pick(&case.live).clone();
                let plain = Tuple {
                    condition: None,
                    ..t.clone()
                };
                if rng.chance(50) && case.model.validate_tuple(&plain).is_ok() {
                    t = plain;
                }
                if !contextual.iter().any(|c| c.key() == t.key()) {
                    contextual.push(t);
                }
            } else if let Some(t) = fresh_valid_tuple(&mut rng, wider, &case.model, &contextual) {
                contextual.push(t);
            }
        }
        let mut tuples = case.all_tuples();
        tuples.extend(contextual.iter().cloned());
        let contexts = contexts();
        let context = rng.pick(&contexts).clone();
        let reference = Reference {
            model: &case.model,
            tuples: &tuples,
            context: &context,
            max_depth: DEPTH,
        };
        for (object_type, relation, mut all_objects) in targets(case.shape) {
            if object_type == "res" {
                all_objects.extend((SMALL.objects..wider.objects).map(res));
            }
            for u in subjects(case.shape) {
                // A userset subject's own object (a member of itself) is probed too.
                let mut objects = all_objects.clone();
                if let User::Userset(o, _) = &u
                    && o.object_type == object_type
                    && !objects.contains(o)
                {
                    objects.push(o.clone());
                }
                let at = || {
                    format!(
                        "seed {seed}: ({u}, {relation}, {object_type}) context {context:?} contextual: {}\nmodel:\n{}\nstored: {}",
                        show(&contextual),
                        case.model.dsl,
                        show(&case.all_tuples())
                    )
                };
                let req = LookupRequest {
                    user: &u,
                    relation: &relation,
                    object_type,
                    context: &context,
                    contextual: &contextual,
                    max_depth: DEPTH,
                };
                let page = lookup_all(&case.clew, &req, Consistency::Latest);
                let checks: Vec<(ObjectRef, Answer, Tri)> = objects
                    .iter()
                    .map(|o| {
                        let r = case
                            .clew
                            .check(&CheckRequest {
                                user: &u,
                                relation: &relation,
                                object: o,
                                context: &context,
                                contextual: &contextual,
                                explain: false,
                                max_depth: DEPTH,
                            })
                            .map(|(r, _)| r);
                        let a = answer(&r);
                        let t = tri(&a, &r);
                        (o.clone(), a, t)
                    })
                    .collect();
                for (o, a, t) in &checks {
                    compared += 1;
                    let want = reference.check(&u, &relation, o);
                    failures.expect(
                        *t == want,
                        "check with contextual tuples disagrees with the reference",
                        || format!("{o}: check {a:?}, reference {want:?}\n{}", at()),
                    );
                    if let Ok(page) = &page {
                        let l = listing(page);
                        let text = o.to_string();
                        let listed = l.objects.contains(&text);
                        failures.expect(
                            listed == (*a == Answer::Allowed),
                            "lookup with contextual tuples disagrees with check",
                            || format!("{o}: check {a:?}, lookup {l:?}\n{}", at()),
                        );
                    }
                }
                let Ok(page) = page else { continue };
                let l = listing(&page);
                // Paged, the same answer (cursors carry the contextual tuples' fingerprint).
                if l.objects.len() >= 2 {
                    let (paged, _, _) = follow_pages(&case.clew, &req, 1, None, 0, &at);
                    failures.expect(
                        paged == l.objects,
                        "paged lookup with contextual tuples differs from the whole answer",
                        || format!("pages {paged:?}, whole {:?}\n{}", l.objects, at()),
                    );
                }
                // Nothing outside the probed objects is listed, either.
                for o in &l.objects {
                    failures.expect(
                        objects.iter().any(|p| p.to_string() == *o),
                        "lookup with contextual tuples lists an object no tuple names",
                        || format!("{o}: {l:?}\n{}", at()),
                    );
                }
                let candidates: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
                for s in STRATEGIES {
                    let f = case.clew.filter(
                        &FilterRequest {
                            user: &u,
                            relation: &relation,
                            object_type,
                            candidates: &candidates,
                            context: &context,
                            contextual: &contextual,
                            max_depth: DEPTH,
                            explain: false,
                            strategy: s,
                        },
                        Consistency::Latest,
                    );
                    let want: Vec<String> = checks
                        .iter()
                        .filter(|(_, a, _)| *a == Answer::Allowed)
                        .map(|(o, _, _)| o.to_string())
                        .collect();
                    match f {
                        Ok(f) => failures.expect(
                            allowed_list(&f) == want,
                            "filter with contextual tuples disagrees with check",
                            || {
                                format!(
                                    "{s:?}: filter {:?}, checks {want:?}\n{}",
                                    allowed_list(&f),
                                    at()
                                )
                            },
                        ),
                        Err(e) => {
                            failures.expect(false, "filter with contextual tuples fails", || {
                                format!("{s:?}: {e}\n{}", at())
                            })
                        }
                    }
                }
            }
        }
    }
    eprintln!("contextual: {cases_run} cases, {compared} checks compared");
    failures.finish("contextual tuples");
}

/// `filter` with `explain`: every permitted item carries its witness path (and only those
/// items are permitted), whatever the strategy.
#[test]
fn filter_explains_every_permitted_item() {
    let (clew, _) = docs(&[
        ("user:anne", "viewer", "doc:a"),
        ("user:anne", "member", "group:g"),
        ("group:g#member", "viewer", "doc:b"),
        ("doc:a", "parent", "doc:c"),
        ("user:anne", "owner", "doc:d"),
        ("user:anne", "blocked", "doc:d"),
    ]);
    let anne = u("user:anne");
    let none = Map::new();
    let candidates: Vec<String> = ["doc:d", "doc:c", "doc:x", "doc:b", "doc:a", "doc:c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in STRATEGIES {
        let f = clew
            .filter(
                &FilterRequest {
                    user: &anne,
                    relation: "viewer",
                    object_type: "doc",
                    candidates: &candidates,
                    context: &none,
                    contextual: &[],
                    max_depth: DEPTH,
                    explain: true,
                    strategy: s,
                },
                Consistency::Latest,
            )
            .unwrap();
        assert_eq!(allowed_list(&f), ["doc:c", "doc:b", "doc:a"], "{s:?}");
        assert_eq!((f.unknown, f.duplicates, f.denied), (1, 1, 1), "{s:?}");
        for item in &f.allowed {
            let e = item
                .explanation
                .as_ref()
                .unwrap_or_else(|| panic!("{s:?}: {} has no explanation", item.object));
            assert!(
                !e.path.is_empty(),
                "{s:?}: {} has an empty path",
                item.object
            );
        }
    }
}

/// A large group of checks for one subject is answered from one bitmap, except that objects the
/// bitmap leaves undecided (missing context) keep check's conditional answer.
#[test]
fn batch_check_keeps_conditional_answers_in_a_large_group() {
    let dsl = "model
  schema 1.1
type user
type doc
  relations
    define viewer: [user, user with small]
condition small(x: int) {
  x < 10
}
";
    let mut tuples = vec![
        t("user:anne", "viewer", "doc:a"),
        Tuple::parse("user:anne", "viewer", "doc:b")
            .unwrap()
            .with_condition(Some(TupleCondition {
                name: "small".into(),
                context: Map::new(),
            })),
    ];
    for i in 0..20 {
        tuples.push(t("user:bob", "viewer", &format!("doc:n{i}")));
    }
    let clew = build(dsl, &tuples, &[]);
    let anne = u("user:anne");
    let none = Map::new();
    let objects: Vec<ObjectRef> = ["a", "b"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..100).map(|i| format!("n{i}")))
        .map(|id| ObjectRef::new("doc", id))
        .collect();
    let requests: Vec<CheckRequest<'_>> = objects
        .iter()
        .map(|o| CheckRequest {
            user: &anne,
            relation: "viewer",
            object: o,
            context: &none,
            contextual: &[],
            explain: false,
            max_depth: DEPTH,
        })
        .collect();
    let batch = clew.batch_check(&requests, Consistency::Latest).unwrap();
    let got: Vec<Answer> = batch
        .items
        .iter()
        .map(|i| match &i.result {
            Ok(r) => answer(&Ok(r.clone())),
            Err(e) => Answer::Error(e.clone()),
        })
        .collect();
    assert_eq!(got[0], Answer::Allowed);
    assert_eq!(
        got[1],
        Answer::Conditional(vec!["x".into()]),
        "doc:b depends on x"
    );
    assert!(got[2..].iter().all(|a| *a == Answer::Denied));
    // With x given, the same batch decides doc:b.
    let mut ctx = Map::new();
    ctx.insert("x".into(), json!(3));
    let with_x: Vec<CheckRequest<'_>> = requests
        .iter()
        .map(|r| CheckRequest {
            context: &ctx,
            ..*r
        })
        .collect();
    let batch = clew.batch_check(&with_x, Consistency::Latest).unwrap();
    assert!(matches!(&batch.items[1].result, Ok(r) if r.decision == Decision::Allowed));
}

/// Objects that depend on missing context come once, with the first page; later pages carry
/// only allowed objects, and `total` counts the allowed ones.
#[test]
fn conditional_objects_come_once_with_the_first_page() {
    let dsl = "model
  schema 1.1
type user
type doc
  relations
    define viewer: [user, user with small]
condition small(x: int) {
  x < 10
}
";
    let small = |doc: &str| {
        Tuple::parse("user:anne", "viewer", doc)
            .unwrap()
            .with_condition(Some(TupleCondition {
                name: "small".into(),
                context: Map::new(),
            }))
    };
    let tuples = vec![
        t("user:anne", "viewer", "doc:a"),
        small("doc:b"),
        t("user:anne", "viewer", "doc:c"),
        small("doc:d"),
        t("user:anne", "viewer", "doc:e"),
    ];
    let clew = build(dsl, &tuples, &[]);
    let anne = u("user:anne");
    let none = Map::new();
    let req = lookup_req(&anne, "viewer", "doc", &none, DEPTH);
    let mut cursor = None;
    let mut pages = Vec::new();
    loop {
        let page = clew
            .lookup(
                &req,
                &PageRequest {
                    limit: Some(1),
                    cursor: cursor.clone(),
                },
                Consistency::Latest,
            )
            .unwrap();
        assert_eq!(page.total, 3);
        cursor = page.cursor.clone();
        pages.push(page);
        if cursor.is_none() {
            break;
        }
    }
    let objects: Vec<String> = pages
        .iter()
        .flat_map(|p| p.objects.iter().map(|o| o.to_string()))
        .collect();
    let mut sorted = objects.clone();
    sorted.sort();
    assert_eq!(sorted, ["doc:a", "doc:c", "doc:e"]);
    let mut first = listing(&pages[0]).conditional;
    first.sort();
    assert_eq!(
        first,
        [
            ("doc:b".to_string(), vec!["x".to_string()]),
            ("doc:d".to_string(), vec!["x".to_string()])
        ]
    );
    for p in &pages[1..] {
        assert!(
            p.conditional.is_empty(),
            "conditional objects repeated: {:?}",
            p.conditional
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A cycle meeting missing context.

/// `group:g` is a member of itself, and anne is banned from it under a condition whose
/// parameter is missing. Top-down (engine and reference alike), the base is undecided (a cycle)
/// and so is the subtraction (missing `x`): the check is conditional on `x`. The bitmap
/// evaluation computes `member` as a least fixpoint (its component is not read under a
/// negation), where the cycle is plainly "no" — so the object is neither allowed nor undecided.
const SELF_GROUP: &str = "model
  schema 1.1
type user
type group
  relations
    define banned: [user with small]
    define member: [user, group#member] but not banned
condition small(x: int) {
  x < 10
}
";

fn self_group() -> Clew {
    let tuples = vec![
        t("group:g#member", "member", "group:g"),
        Tuple::parse("user:anne", "banned", "group:g")
            .unwrap()
            .with_condition(Some(TupleCondition {
                name: "small".into(),
                context: Map::new(),
            })),
    ];
    build(SELF_GROUP, &tuples, &[])
}

fn member_of_g(clew: &Clew) -> Answer {
    let none = Map::new();
    answer(&check(
        clew,
        &u("user:anne"),
        "member",
        &ObjectRef::parse("group:g").unwrap(),
        &none,
        DEPTH,
    ))
}

#[test]
fn self_group_check_is_conditional_on_a_fresh_instance() {
    let clew = self_group();
    assert_eq!(member_of_g(&clew), Answer::Conditional(vec!["x".into()]));
    let model = TypeSystem::from_dsl(SELF_GROUP).unwrap();
    let tuples = clew.state().index.tuples();
    let none = Map::new();
    let reference = Reference {
        model: &model,
        tuples: &tuples,
        context: &none,
        max_depth: DEPTH,
    };
    assert_eq!(
        reference.check(
            &u("user:anne"),
            "member",
            &ObjectRef::parse("group:g").unwrap()
        ),
        Tri::Unknown
    );
}

/// lookup must report `group:g` as conditional on `x`, as check does.
#[test]
fn lookup_reports_a_cycle_under_missing_context_as_conditional() {
    let clew = self_group();
    let anne = u("user:anne");
    let none = Map::new();
    let page = lookup_all(
        &clew,
        &lookup_req(&anne, "member", "group", &none, DEPTH),
        Consistency::Latest,
    )
    .unwrap();
    let l = listing(&page);
    assert!(l.objects.is_empty(), "{l:?}");
    assert_eq!(
        l.conditional,
        [("group:g".to_string(), vec!["x".to_string()])],
        "check(anne, member, group:g) is conditional on x, but lookup answers {l:?}"
    );
}

/// …and a lookup must not turn the check's "conditional" into a cached "denied".
#[test]
fn a_cached_lookup_does_not_turn_conditional_into_denied() {
    let clew = self_group();
    let anne = u("user:anne");
    let none = Map::new();
    let before = member_of_g(&clew);
    let _ = lookup_all(
        &clew,
        &lookup_req(&anne, "member", "group", &none, DEPTH),
        Consistency::Latest,
    );
    let after = member_of_g(&clew);
    assert_eq!(before, after, "check before and after a lookup");
    // filter, by either strategy, gives check's answer too.
    let candidates = vec!["group:g".to_string()];
    for s in STRATEGIES {
        let f = filter(
            &clew,
            &anne,
            "member",
            "group",
            &candidates,
            &none,
            s,
            Consistency::Latest,
        )
        .unwrap();
        assert_eq!(
            f.conditional,
            [("group:g".to_string(), vec!["x".to_string()])],
            "filter {s:?}: allowed {:?}, conditional {:?}, denied {}",
            allowed_list(&f),
            f.conditional,
            f.denied
        );
    }
}

/// The same disagreement in other shapes: wherever a cycle (undecided top-down) meets a missing
/// condition parameter, check is conditional, and lookup must say so.
#[test]
fn a_cycle_meeting_missing_context_is_conditional_in_every_shape() {
    let cases = [
        (
            "but not",
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define banned: [user with small]\n    define member: [user, group#member] but not banned\ncondition small(x: int) {\n  x < 10\n}\n",
            vec![
                ("group:g#member", "member", "group:g", false),
                ("user:anne", "banned", "group:g", true),
            ],
        ),
        (
            "and",
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define allowed: [user with small]\n    define member: [user, group#member] and allowed\ncondition small(x: int) {\n  x < 10\n}\n",
            vec![
                ("group:g#member", "member", "group:g", false),
                ("user:anne", "allowed", "group:g", true),
            ],
        ),
        (
            "conditional userset edge",
            "model\n  schema 1.1\ntype user\ntype group\n  relations\n    define member: [user, group#member with small]\ncondition small(x: int) {\n  x < 10\n}\n",
            vec![("group:g#member", "member", "group:g", true)],
        ),
    ];
    let mut wrong = Vec::new();
    for (shape, dsl, tuples) in cases {
        let tuples: Vec<Tuple> = tuples
            .iter()
            .map(|(u, r, o, conditional)| {
                Tuple::parse(u, r, o)
                    .unwrap()
                    .with_condition(conditional.then(|| TupleCondition {
                        name: "small".into(),
                        context: Map::new(),
                    }))
            })
            .collect();
        let clew = build(dsl, &tuples, &[]);
        let model = TypeSystem::from_dsl(dsl).unwrap();
        let none = Map::new();
        let anne = u("user:anne");
        let g = ObjectRef::parse("group:g").unwrap();
        let reference = Reference {
            model: &model,
            tuples: &tuples,
            context: &none,
            max_depth: DEPTH,
        };
        assert_eq!(
            reference.check(&anne, "member", &g),
            Tri::Unknown,
            "{shape}"
        );
        let checked = answer(&check(&clew, &anne, "member", &g, &none, DEPTH));
        assert_eq!(checked, Answer::Conditional(vec!["x".into()]), "{shape}");
        let page = lookup_all(
            &clew,
            &lookup_req(&anne, "member", "group", &none, DEPTH),
            Consistency::Latest,
        )
        .unwrap();
        let l = listing(&page);
        let after = answer(&check(&clew, &anne, "member", &g, &none, DEPTH));
        if l.conditional != [("group:g".to_string(), vec!["x".to_string()])] || after != checked {
            wrong.push(format!(
                "{shape}: check {checked:?}; lookup {l:?}; check after the lookup {after:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A result cached at the default depth limit answers a request with a smaller limit only when
/// its depth bound is below that limit: anne is three groups down, so a check needs four hops,
/// and under a limit of three or fewer it runs out of depth — cached or not.
#[test]
fn a_cached_result_does_not_answer_a_request_with_a_smaller_depth_limit() {
    let tuples = vec![
        t("group:c0#member", "viewer", "doc:a"),
        t("group:c1#member", "member", "group:c0"),
        t("group:c2#member", "member", "group:c1"),
        t("user:anne", "member", "group:c2"),
        t("user:anne", "viewer", "doc:b"),
    ];
    let clew = build(CHAIN, &tuples, &[]);
    let fresh = build(CHAIN, &tuples, &[]);
    let anne = u("user:anne");
    let none = Map::new();
    let page = lookup_all(
        &clew,
        &lookup_req(&anne, "viewer", "doc", &none, DEPTH),
        Consistency::Latest,
    )
    .unwrap();
    let mut objects = listing(&page).objects;
    objects.sort();
    assert_eq!(objects, ["doc:a", "doc:b"]);
    let doc_a = ObjectRef::parse("doc:a").unwrap();
    for depth in 1..=6 {
        let cached = answer(&check(&clew, &anne, "viewer", &doc_a, &none, depth));
        let uncached = answer(&check(&fresh, &anne, "viewer", &doc_a, &none, depth));
        assert_eq!(cached, uncached, "check at max_depth {depth}");
        assert_eq!(
            uncached == Answer::Allowed,
            depth >= 4,
            "four hops are needed: {uncached:?} at {depth}"
        );
        let l = |c: &Clew| {
            lookup_all(
                c,
                &lookup_req(&anne, "viewer", "doc", &none, depth),
                Consistency::Latest,
            )
            .map(|p| {
                let mut o = listing(&p).objects;
                o.sort();
                o
            })
            .map_err(|e| e.to_string())
        };
        assert_eq!(l(&clew), l(&fresh), "lookup at max_depth {depth}");
        assert!(
            !l(&clew).is_ok_and(|o| o.contains(&"doc:a".to_string())) || depth >= 4,
            "doc:a listed at max_depth {depth}"
        );
    }
}

/// Cached results are per context: a result computed where a condition holds does not answer
/// a request whose context breaks it.
#[test]
fn cached_results_are_per_context() {
    let dsl = "model
  schema 1.1
type user
type doc
  relations
    define viewer: [user, user with small]
condition small(x: int) {
  x < 10
}
";
    let tuples = vec![
        t("user:anne", "viewer", "doc:a"),
        Tuple::parse("user:anne", "viewer", "doc:b")
            .unwrap()
            .with_condition(Some(TupleCondition {
                name: "small".into(),
                context: Map::new(),
            })),
    ];
    let clew = build(dsl, &tuples, &[]);
    let anne = u("user:anne");
    let x = |v: i64| {
        let mut m = Map::new();
        m.insert("x".into(), json!(v));
        m
    };
    let doc_b = ObjectRef::parse("doc:b").unwrap();
    for (context, want) in [
        (x(5), true),
        (x(50), false),
        (x(5), true),
        (Map::new(), false),
    ] {
        let page = lookup_all(
            &clew,
            &lookup_req(&anne, "viewer", "doc", &context, DEPTH),
            Consistency::Latest,
        )
        .unwrap();
        let listed = listing(&page).objects.contains(&"doc:b".to_string());
        assert_eq!(listed, want, "lookup with {context:?}");
        let a = answer(&check(&clew, &anne, "viewer", &doc_b, &context, DEPTH));
        assert_eq!(a == Answer::Allowed, want, "check with {context:?}: {a:?}");
        let candidates = ["doc:b".to_string()];
        let f = filter(
            &clew,
            &anne,
            "viewer",
            "doc",
            &candidates,
            &context,
            Some(Strategy::Bitmap),
            Consistency::Latest,
        )
        .unwrap();
        assert_eq!(!f.allowed.is_empty(), want, "filter with {context:?}");
    }
}
