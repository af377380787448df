//! Check latency by graph shape, in-process on a warm index. Each benchmark asserts its
//! answer before timing. (Issue 3 adds the bench workload shapes and the peer comparison.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, DEFAULT_MAX_DEPTH, Decision};
use clew::service::Clew;
use clew::tuple::{ObjectRef, Tuple, User};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Map;
use std::hint::black_box;

const MODEL: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
type document
  relations
    define folder: [folder]
    define blocked: [user]
    define viewer: ([user, group#member] or viewer from folder) but not blocked
";

/// `depth` nested groups (g0 ⊂ g1 ⊂ … ), a folder chain of `depth`, `width` documents in the
/// deepest folder, and `width` users in the innermost group.
fn graph(depth: usize, width: usize) -> Clew {
    let clew = Clew::memory().unwrap();
    clew.write_model(MODEL).unwrap();
    let mut tuples = Vec::new();
    for i in 1..depth {
        tuples.push(
            Tuple::parse(
                &format!("group:g{}#member", i - 1),
                "member",
                &format!("group:g{i}"),
            )
            .unwrap(),
        );
        tuples.push(
            Tuple::parse(
                &format!("folder:f{}", i - 1),
                "parent",
                &format!("folder:f{i}"),
            )
            .unwrap(),
        );
    }
    tuples.push(
        Tuple::parse(
            &format!("group:g{}#member", depth - 1),
            "viewer",
            "folder:f0",
        )
        .unwrap(),
    );
    for u in 0..width {
        tuples.push(Tuple::parse(&format!("user:u{u}"), "member", "group:g0").unwrap());
        tuples.push(
            Tuple::parse(
                &format!("folder:f{}", depth - 1),
                "folder",
                &format!("document:d{u}"),
            )
            .unwrap(),
        );
    }
    tuples.push(Tuple::parse("user:u1", "blocked", "document:d0").unwrap());
    clew.write_tuples_bulk(&tuples, &[], "bench").unwrap();
    clew
}

fn bench(c: &mut Criterion) {
    let context = Map::new();
    for (name, depth, width) in [("shallow", 2, 1000), ("deep", 10, 1000), ("wide", 3, 20000)] {
        let clew = graph(depth, width);
        let state = clew.state();
        let view = state.view().unwrap();
        let user = User::parse("user:u0").unwrap();
        let object = ObjectRef::parse("document:d7").unwrap();
        let req = CheckRequest {
            user: &user,
            relation: "viewer",
            object: &object,
            context: &context,
            contextual: &[],
            explain: false,
            max_depth: DEFAULT_MAX_DEPTH,
        };
        assert_eq!(
            engine::check(view, &req).unwrap().decision,
            Decision::Allowed
        );
        c.bench_function(&format!("check/allowed/{name}"), |b| {
            b.iter(|| engine::check(view, black_box(&req)).unwrap())
        });
        let blocked = User::parse("user:u1").unwrap();
        let d0 = ObjectRef::parse("document:d0").unwrap();
        let deny = CheckRequest {
            user: &blocked,
            object: &d0,
            ..req
        };
        assert_eq!(
            engine::check(view, &deny).unwrap().decision,
            Decision::Denied
        );
        c.bench_function(&format!("check/excluded/{name}"), |b| {
            b.iter(|| engine::check(view, black_box(&deny)).unwrap())
        });
        let explain = CheckRequest {
            explain: true,
            ..req
        };
        assert!(engine::check(view, &explain).unwrap().explanation.is_some());
        c.bench_function(&format!("check/explain/{name}"), |b| {
            b.iter(|| engine::check(view, black_box(&explain)).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
