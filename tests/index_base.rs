//! The index's compact base plus persistent delta: random writes and deletes on top of a bulk
//! built base, with compactions (inline, and background-style rebases with writes in between)
//! at random points, give exactly the tuples, edges and reverse edges of a model kept beside
//! it, keep every object's id, pass `validate()`, and make `check` answer as on a snapshot
//! built from scratch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, View};
use clew::index::compact::Compactor;
use clew::index::{Change, Snapshot, TupleChange, UserRef};
use clew::model::TypeSystem;
use clew::tuple::{ObjectRef, Tuple, TupleCondition, User};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

const GRAPH: &str = clew::iri::TUPLES_GRAPH;

const MODEL: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type folder
  relations
    define parent: [folder]
    define blocked: [user, group#member]
    define owner: [user, user with open]
    define viewer: ([user, group#member, user:*] or owner or viewer from parent) but not blocked

condition open(x: int) {
  x < 5
}
";

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random tuple over a small universe (so writes hit existing entries often), and sometimes
/// an object the base has never seen.
fn random_tuple(rng: &mut Rng, universe: u64) -> Tuple {
    let g = |rng: &mut Rng| format!("group:g{}", rng.below(universe / 4 + 1));
    let u = |rng: &mut Rng| format!("user:u{}", rng.below(universe));
    let f = |rng: &mut Rng| format!("folder:f{}", rng.below(universe));
    let (user, relation, object) = match rng.below(12) {
        0..=2 => (u(rng), "member", g(rng)),
        3 => (format!("{}#member", g(rng)), "member", g(rng)),
        4 => ("user:*".into(), "member", g(rng)),
        5 => (f(rng), "parent", f(rng)),
        6 => (format!("{}#member", g(rng)), "viewer", f(rng)),
        7 => (u(rng), "blocked", f(rng)),
        8 => (u(rng), "owner", f(rng)),
        9 => ("user:*".into(), "viewer", f(rng)),
        _ => (u(rng), "viewer", f(rng)),
    };
    let mut t = Tuple::parse(&user, relation, &object).unwrap();
    if relation == "owner" && rng.below(3) == 0 {
        t.condition = Some(TupleCondition {
            name: "open".into(),
            context: json!({"x": rng.below(10)}).as_object().unwrap().clone(),
        });
    }
    t
}

/// What the index should hold: tuple key → (condition, graph).
type Model = BTreeMap<(String, String, String), (Option<String>, String)>;

fn key(t: &Tuple) -> (String, String, String) {
    (t.object.to_string(), t.relation.clone(), t.user.to_string())
}

fn random_changes(rng: &mut Rng, model: &mut Model, n: usize, universe: u64) -> Vec<TupleChange> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = random_tuple(rng, universe);
        let remove = rng.below(3) == 0;
        let graph: Arc<str> = if rng.below(10) == 0 {
            Arc::from("urn:g:other")
        } else {
            Arc::from(GRAPH)
        };
        if remove {
            model.remove(&key(&t));
        } else {
            model.insert(
                key(&t),
                (
                    t.condition
                        .as_ref()
                        .map(|c| serde_json::to_string(c).unwrap()),
                    graph.to_string(),
                ),
            );
        }
        out.push(TupleChange {
            change: if remove { Change::Remove } else { Change::Add },
            tuple: t,
            graph,
        });
    }
    out
}

fn user_str(s: &Snapshot, u: UserRef) -> String {
    s.user_of(u).unwrap().to_string()
}

/// Everything the snapshot says, as strings (ids differ between snapshots built differently).
fn contents(s: &Snapshot) -> (Model, BTreeSet<String>) {
    let mut tuples = Model::new();
    for t in s.tuples() {
        let o = s.object(&t.object.to_string()).unwrap();
        let r = s.name(&t.relation).unwrap();
        let u = match &t.user {
            User::Object(x) => UserRef::Object(s.object(&x.to_string()).unwrap()),
            User::Userset(x, ur) => {
                UserRef::Userset(s.object(&x.to_string()).unwrap(), s.name(ur).unwrap())
            }
            User::Wildcard(w) => UserRef::Wildcard(s.name(w).unwrap()),
        };
        let graph = s.origin(o, r, u).unwrap_or(GRAPH).to_string();
        let prev = tuples.insert(
            key(&t),
            (
                t.condition
                    .as_ref()
                    .map(|c| serde_json::to_string(c).unwrap()),
                graph,
            ),
        );
        assert!(prev.is_none(), "tuple {t} listed twice");
    }
    // Reverse edges, probed for every (object type, relation, user) the tuples name.
    let mut reverse = BTreeSet::new();
    for t in s.tuples() {
        let o = s.object(&t.object.to_string()).unwrap();
        let ot = s.object_type(o).unwrap();
        let r = s.name(&t.relation).unwrap();
        let e = s.edges(o, r).unwrap();
        let users: Vec<UserRef> = e
            .direct
            .iter()
            .map(|u| UserRef::Object(*u))
            .chain(e.wildcards.iter().map(|w| UserRef::Wildcard(*w)))
            .chain(e.usersets.iter().map(|&[a, b]| UserRef::Userset(a, b)))
            .collect();
        for u in users {
            for x in s.reverse(ot, r, u).unwrap().iter() {
                reverse.insert(format!(
                    "{}#{}@{}",
                    s.object_str(x),
                    t.relation,
                    user_str(s, u)
                ));
            }
        }
        for c in e.conditional {
            for (x, cond) in s.reverse_conditional(ot, r, c.user) {
                reverse.insert(format!(
                    "{}#{}@{} if {}",
                    s.object_str(*x),
                    t.relation,
                    user_str(s, c.user),
                    cond.name
                ));
            }
        }
    }
    (tuples, reverse)
}

fn from_scratch(model: &Model, revision: u64) -> Snapshot {
    let changes: Vec<TupleChange> = model
        .iter()
        .map(|((o, r, u), (c, g))| {
            let mut t = Tuple::parse(u, r, o).unwrap();
            t.condition = c.as_ref().map(|c| serde_json::from_str(c).unwrap());
            TupleChange {
                change: Change::Add,
                tuple: t,
                graph: Arc::from(g.as_str()),
            }
        })
        .collect();
    // One change at a time, on the delta only (never the bulk path).
    let mut s = Snapshot::empty(0);
    for c in changes.chunks(7) {
        s = s.apply(revision, c, GRAPH);
    }
    s
}

fn checks(s: &Snapshot, ts: &TypeSystem, universe: u64) -> Vec<String> {
    let ctx = json!({"x": 1}).as_object().unwrap().clone();
    let mut out = Vec::new();
    for u in 0..universe.min(6) {
        let user = User::parse(&format!("user:u{u}")).unwrap();
        for f in 0..universe.min(8) {
            let object = ObjectRef::parse(&format!("folder:f{f}")).unwrap();
            let r = engine::check(
                View {
                    snapshot: s,
                    model: ts,
                    groups: None,
                    resolved: Some(&engine::Resolved::new(s, ts, None)),
                },
                &CheckRequest {
                    user: &user,
                    relation: "viewer",
                    object: &object,
                    context: &ctx,
                    contextual: &[],
                    explain: false,
                    max_depth: engine::DEFAULT_MAX_DEPTH,
                },
            )
            .map(|r| format!("{:?}", r.decision))
            .unwrap_or_else(|e| format!("error {e}"));
            out.push(format!("{user} viewer {object}: {r}"));
        }
    }
    out
}

fn ids(s: &Snapshot) -> HashMap<String, u32> {
    (0..s.object_count() as u32)
        .map(|o| (s.object_str(o).to_string(), o))
        .collect()
}

fn assert_same(s: &Snapshot, model: &Model, ts: &TypeSystem, universe: u64, what: &str) {
    s.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (tuples, reverse) = contents(s);
    assert_eq!(&tuples, model, "{what}: tuples");
    assert_eq!(s.tuple_count(), model.len() as u64, "{what}: count");
    let scratch = from_scratch(model, s.revision);
    scratch.validate().unwrap();
    let (_, scratch_reverse) = contents(&scratch);
    assert_eq!(reverse, scratch_reverse, "{what}: reverse edges");
    assert_eq!(
        checks(s, ts, universe),
        checks(&scratch, ts, universe),
        "{what}: checks"
    );
}

#[test]
fn random_writes_on_a_base_with_compactions_equal_a_build_from_scratch() {
    let ts = TypeSystem::from_dsl(MODEL).unwrap();
    for seed in 0..12u64 {
        let mut rng = Rng::new(seed);
        let universe = 6 + rng.below(40);
        let mut model = Model::new();
        let n = 300 + rng.below(300) as usize;
        let initial = random_changes(&mut rng, &mut model, n, universe);
        let mut s = Snapshot::empty(0).apply(1, &initial, GRAPH);
        assert_eq!(s.delta_len(), 0, "a load builds the base directly");
        assert_same(&s, &model, &ts, universe, &format!("seed {seed} load"));
        let mut pending: Option<(Snapshot, Snapshot)> = None;
        for step in 0..40u64 {
            let n = 1 + rng.below(6) as usize;
            let changes = random_changes(&mut rng, &mut model, n, universe + 3);
            let before = ids(&s);
            s = s.apply(step + 2, &changes, GRAPH);
            match rng.below(8) {
                0 if pending.is_none() => s = s.compact(),
                1 if pending.is_none() => {
                    let from = s.clone();
                    let compacted = from.compact();
                    pending = Some((from, compacted));
                }
                2 => {
                    if let Some((from, compacted)) = pending.take() {
                        let delta = s.delta_len();
                        s = s
                            .rebase(&from, &compacted)
                            .expect("rebase on the same line");
                        assert!(s.delta_len() <= delta - from.delta_len());
                    }
                }
                _ => {}
            }
            let after = ids(&s);
            for (k, v) in &before {
                assert_eq!(after.get(k), Some(v), "seed {seed} step {step}: id of {k}");
            }
            assert_same(
                &s,
                &model,
                &ts,
                universe,
                &format!("seed {seed} step {step}"),
            );
        }
    }
}

#[test]
fn a_rebase_refuses_a_snapshot_of_another_line() {
    let mut rng = Rng::new(99);
    let mut model = Model::new();
    let initial = random_changes(&mut rng, &mut model, 400, 20);
    let s = Snapshot::empty(0).apply(1, &initial, GRAPH);
    let more = random_changes(&mut rng, &mut model, 5, 20);
    let a = s.apply(2, &more, GRAPH);
    let from = a.clone();
    let compacted = from.compact();
    // Compacted on another line: its base is not `a`'s.
    let other = compacted.apply(3, &more, GRAPH);
    assert!(other.rebase(&from, &compacted).is_none());
    // A compacted snapshot has an empty delta and the same answers.
    assert_eq!(compacted.delta_len(), 0);
    assert_eq!(contents(&compacted), contents(&a));
}

#[test]
fn the_compactor_folds_the_delta_in_the_background_and_keeps_the_answers() {
    let ts = TypeSystem::from_dsl(MODEL).unwrap();
    let mut rng = Rng::new(7);
    let mut model = Model::new();
    let initial = random_changes(&mut rng, &mut model, 500, 30);
    let mut s = Snapshot::empty(0).apply(1, &initial, GRAPH);
    let compactor = Compactor::new(50);
    let mut compacted_at_least_once = false;
    for step in 0..400u64 {
        let changes = random_changes(&mut rng, &mut model, 2, 33);
        let delta = s.delta_len();
        s = compactor.maintain(s.apply(step + 2, &changes, GRAPH));
        if s.delta_len() < delta {
            compacted_at_least_once = true;
        }
        if step % 50 == 0 {
            compactor.wait();
            assert_same(&s, &model, &ts, 30, &format!("step {step}"));
        }
    }
    assert!(compacted_at_least_once);
    assert_same(&s, &model, &ts, 30, "end");
    let inline = Compactor::inline(10);
    let changes = random_changes(&mut rng, &mut model, 20, 33);
    let s = inline.maintain(s.apply(999, &changes, GRAPH));
    assert_eq!(s.delta_len(), 0);
    assert_same(&s, &model, &ts, 30, "inline");
}
