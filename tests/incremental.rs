//! Incremental maintenance: the nested-group closures and the reachability cache stay exact
//! under single-tuple writes, and a write leaves unrelated cache entries in place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, LookupRequest};
use clew::service::Clew;
use clew::service::bulk::{Consistency, PageRequest};
use clew::tuple::{Tuple, TupleKey, User};
use serde_json::Map;

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
    define viewer: ([user, group#member] or viewer from parent) but not blocked
";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_tuple(rng: &mut Rng) -> Tuple {
    let g = |rng: &mut Rng| format!("group:g{}", rng.below(6));
    let u = |rng: &mut Rng| format!("user:u{}", rng.below(5));
    let f = |rng: &mut Rng| format!("folder:f{}", rng.below(5));
    let (user, relation, object) = match rng.below(10) {
        0..=2 => (u(rng), "member", g(rng)),
        3..=4 => (format!("{}#member", g(rng)), "member", g(rng)),
        5 => ("user:*".into(), "member", g(rng)),
        6 => (f(rng), "parent", f(rng)),
        7 => (format!("{}#member", g(rng)), "viewer", f(rng)),
        8 => (u(rng), "blocked", f(rng)),
        _ => (u(rng), "viewer", f(rng)),
    };
    Tuple::parse(&user, relation, &object).unwrap()
}

/// Writes `t` if it is not stored, deletes it if it is (a single-tuple write either way), and
/// keeps `stored` in step.
fn toggle(clew: &Clew, stored: &mut Vec<Tuple>, t: Tuple) {
    match stored.iter().position(|s| s.key() == t.key()) {
        Some(i) => {
            let key: TupleKey = stored.remove(i).key();
            clew.write_tuples(&[], &[key], "test").unwrap();
        }
        None => {
            clew.write_tuples(std::slice::from_ref(&t), &[], "test")
                .unwrap();
            stored.push(t);
        }
    }
}

/// The answers of a fresh instance loaded with `stored` in one bulk write.
fn fresh_answers(stored: &[Tuple]) -> Vec<Vec<String>> {
    let fresh = Clew::memory().unwrap();
    fresh.write_model(MODEL).unwrap();
    fresh.write_tuples_bulk(stored, &[], "fresh").unwrap();
    answers(&fresh)
}

fn answers(clew: &Clew) -> Vec<Vec<String>> {
    let ctx = Map::new();
    let mut out = Vec::new();
    for u in 0..5 {
        let user = User::parse(&format!("user:u{u}")).unwrap();
        for (relation, object_type) in [("member", "group"), ("viewer", "folder")] {
            let page = clew
                .lookup(
                    &LookupRequest {
                        user: &user,
                        relation,
                        object_type,
                        context: &ctx,
                        contextual: &[],
                        max_depth: engine::DEFAULT_MAX_DEPTH,
                    },
                    &PageRequest::default(),
                    Consistency::Latest,
                )
                .unwrap();
            let mut objects: Vec<String> = page.objects.iter().map(|o| o.to_string()).collect();
            objects.sort();
            out.push(objects);
        }
    }
    out
}

/// After every single-tuple write or delete (including ones that close a nesting cycle), the
/// incrementally maintained closures equal a rebuild, and every cached lookup equals the
/// answer of a fresh instance loaded with the same tuples.
#[test]
fn closures_and_cache_stay_exact_under_random_writes() {
    let seeds: u64 = std::env::var("CLEW_INCREMENTAL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut steps = 0;
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let clew = Clew::memory().unwrap();
        clew.write_model(MODEL).unwrap();
        let mut stored: Vec<Tuple> = Vec::new();
        for _ in 0..30 {
            toggle(&clew, &mut stored, random_tuple(&mut rng));
            steps += 1;
            let state = clew.state();
            state
                .groups
                .validate(&state.index)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(
                answers(&clew),
                fresh_answers(&stored),
                "seed {seed}: cached answers differ from a fresh instance; tuples {stored:#?}"
            );
        }
    }
    eprintln!("{steps} single-tuple writes, closures and cached lookups exact after each");
}

/// A write for one user leaves another user's cached result valid (a cache hit), while the
/// written user's next read recomputes and sees the write; a wildcard write invalidates both.
#[test]
fn a_write_for_one_user_keeps_other_users_cache_entries() {
    let clew = Clew::memory().unwrap();
    clew.write_model(MODEL).unwrap();
    let tuples: Vec<Tuple> = [
        ("user:anne", "member", "group:eng"),
        ("user:bob", "member", "group:ops"),
        ("group:eng#member", "viewer", "folder:f1"),
        ("group:ops#member", "viewer", "folder:f2"),
        ("folder:f1", "parent", "folder:f3"),
    ]
    .iter()
    .map(|(u, r, o)| Tuple::parse(u, r, o).unwrap())
    .collect();
    clew.write_tuples_bulk(&tuples, &[], "test").unwrap();
    let ctx = Map::new();
    let lookup = |who: &str| {
        let user = User::parse(who).unwrap();
        clew.lookup(
            &LookupRequest {
                user: &user,
                relation: "viewer",
                object_type: "folder",
                context: &ctx,
                contextual: &[],
                max_depth: engine::DEFAULT_MAX_DEPTH,
            },
            &PageRequest::default(),
            Consistency::Latest,
        )
        .unwrap()
    };
    let names = |p: &clew::service::bulk::LookupPage| {
        let mut v: Vec<String> = p.objects.iter().map(|o| o.to_string()).collect();
        v.sort();
        v
    };
    assert!(!lookup("user:anne").cache_hit);
    assert!(!lookup("user:bob").cache_hit);
    assert!(lookup("user:anne").cache_hit);
    assert_eq!(names(&lookup("user:anne")), ["folder:f1", "folder:f3"]);

    // Anne joins ops: bob's entry stays, anne's is recomputed and sees the write.
    let rev = clew
        .write_tuples(
            &[Tuple::parse("user:anne", "member", "group:ops").unwrap()],
            &[],
            "test",
        )
        .unwrap();
    assert_eq!(clew.state().revision, rev);
    let bob = lookup("user:bob");
    assert!(bob.cache_hit, "a write for anne flushed bob's entry");
    assert_eq!(names(&bob), ["folder:f2"]);
    let anne = lookup("user:anne");
    assert!(!anne.cache_hit, "anne's stale entry was served");
    assert_eq!(names(&anne), ["folder:f1", "folder:f2", "folder:f3"]);

    // Anne is blocked on f3: only anne's answer changes.
    clew.write_tuples(
        &[Tuple::parse("user:anne", "blocked", "folder:f3").unwrap()],
        &[],
        "test",
    )
    .unwrap();
    assert!(lookup("user:bob").cache_hit);
    assert_eq!(names(&lookup("user:anne")), ["folder:f1", "folder:f2"]);

    // Everyone joins eng (a wildcard): every subject's entry is invalid.
    clew.write_tuples(
        &[Tuple::parse("user:*", "member", "group:eng").unwrap()],
        &[],
        "test",
    )
    .unwrap();
    let bob = lookup("user:bob");
    assert!(
        !bob.cache_hit,
        "a wildcard write must invalidate every subject"
    );
    assert_eq!(names(&bob), ["folder:f1", "folder:f2", "folder:f3"]);

    // A tupleset (parent) edge changes everyone's answer too.
    lookup("user:bob");
    clew.write_tuples(
        &[],
        &[Tuple::parse("folder:f1", "parent", "folder:f3")
            .unwrap()
            .key()],
        "test",
    )
    .unwrap();
    let bob = lookup("user:bob");
    assert!(!bob.cache_hit);
    assert_eq!(names(&bob), ["folder:f1", "folder:f2"]);
}

/// Idle compaction ([`Clew::compact_idle`]) publishes the same revision with an empty delta,
/// and the compacted index answers like a fresh instance loaded with the same tuples; writes
/// after it land in a new delta as before.
#[test]
fn idle_compaction_keeps_the_revision_and_the_answers() {
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let clew = Clew::memory().unwrap();
    clew.write_model(MODEL).unwrap();
    let mut stored: Vec<Tuple> = Vec::new();
    for round in 0..4 {
        for _ in 0..25 {
            toggle(&clew, &mut stored, random_tuple(&mut rng));
        }
        let before = clew.state();
        assert!(
            before.index.delta_len() > 0,
            "round {round}: writes left a delta"
        );
        assert!(clew.compact_idle().unwrap(), "round {round}");
        let after = clew.state();
        assert_eq!(after.revision, before.revision, "round {round}");
        assert_eq!(after.index.delta_len(), 0, "round {round}");
        assert!(!after.groups.has_delta(), "round {round}");
        after.index.validate().unwrap();
        after.groups.validate(&after.index).unwrap();
        assert!(
            !clew.compact_idle().unwrap(),
            "round {round}: nothing left to fold"
        );
        assert_eq!(answers(&clew), fresh_answers(&stored), "round {round}");
    }
}
