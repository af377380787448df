//! Check latency on a generated workload (a model, its tuples and a list of checks), in-process
//! on the pure engine (`engine::check`, no service cache). Runs only when `CLEW_WORKLOAD_DIR`
//! names a workload directory (`model.fga`, `tuples.jsonl`, `checks.jsonl`, and
//! `answers_ref/checks.jsonl` with the expected answers); otherwise it does nothing.
//!
//! Before timing it asserts the first 1000 answers against `answers_ref`. The timed loop cycles
//! over every check of the workload, one check per iteration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, DEFAULT_MAX_DEPTH, Decision, View};
use clew::index::{Change, Snapshot, TupleChange};
use clew::iri::TUPLES_GRAPH;
use clew::model::TypeSystem;
use clew::tuple::{ObjectRef, TupleSpec, User};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

/// How many answers are compared with the reference before timing.
const VERIFIED: usize = 1000;

struct Workload {
    model: TypeSystem,
    snapshot: Snapshot,
    /// (id, user, relation, object)
    checks: Vec<(u64, User, String, ObjectRef)>,
    answers: HashMap<u64, bool>,
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn load(dir: &Path) -> Workload {
    let dsl = std::fs::read_to_string(dir.join("model.fga")).unwrap();
    let model = TypeSystem::from_dsl(&dsl).unwrap();
    let graph: Arc<str> = Arc::from(TUPLES_GRAPH);
    let changes: Vec<TupleChange> = lines(&dir.join("tuples.jsonl"))
        .into_iter()
        .map(|v| {
            let spec: TupleSpec = serde_json::from_value(v).unwrap();
            TupleChange {
                change: Change::Add,
                tuple: spec.to_tuple().unwrap(),
                graph: graph.clone(),
            }
        })
        .collect();
    let snapshot = Snapshot::empty(0).apply(1, &changes, TUPLES_GRAPH);
    let str_of = |v: &Value, k: &str| v[k].as_str().unwrap().to_string();
    let checks = lines(&dir.join("checks.jsonl"))
        .iter()
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                User::parse(&str_of(v, "user")).unwrap(),
                str_of(v, "relation"),
                ObjectRef::parse(&str_of(v, "object")).unwrap(),
            )
        })
        .collect();
    let answers = lines(&dir.join("answers_ref/checks.jsonl"))
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), v["allowed"].as_bool().unwrap()))
        .collect();
    Workload {
        model,
        snapshot,
        checks,
        answers,
    }
}

fn bench(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("CLEW_WORKLOAD_DIR") else {
        eprintln!("CLEW_WORKLOAD_DIR is not set: skipping the workload benchmark");
        return;
    };
    let w = load(Path::new(&dir));
    let resolved = clew::engine::Resolved::new(&w.snapshot, &w.model, None);
    let view = View {
        snapshot: &w.snapshot,
        model: &w.model,
        groups: None,
        resolved: Some(&resolved),
    };
    let context = Map::new();
    fn request<'a>(
        (_, user, relation, object): &'a (u64, User, String, ObjectRef),
        context: &'a Map<String, Value>,
    ) -> CheckRequest<'a> {
        CheckRequest {
            user,
            relation,
            object,
            context,
            contextual: &[],
            explain: false,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
    for check in w.checks.iter().take(VERIFIED) {
        let expected = w.answers[&check.0];
        let got = engine::check(view, &request(check, &context))
            .unwrap()
            .decision;
        assert_eq!(
            got == Decision::Allowed,
            expected,
            "check {} ({} {} {}): got {got:?}",
            check.0,
            check.1,
            check.2,
            check.3
        );
    }
    let requests: Vec<CheckRequest<'_>> = w.checks.iter().map(|c| request(c, &context)).collect();
    let mut group = c.benchmark_group("workload");
    group.bench_function("check", |b| {
        let mut i = 0;
        b.iter(|| {
            let r = &requests[i % requests.len()];
            i += 1;
            engine::check(view, black_box(r)).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
