//! The bench workload by graph shape (`default`, `deep`, `wide`, `hotuser`), in-process: a warm
//! check, the lookup of the heaviest user (bottom-up evaluation and cached), a filter of 1,000
//! candidates, and a single-tuple write followed by the read that must see it. Each benchmark
//! asserts its answers against the workload's `answers_ref/` before timing.
//!
//! Workloads: `CLEW_WORKLOAD_DIR` names one workload directory (it holds `model.fga`), or a
//! directory of `SHAPE-SCALE` workloads (`CLEW_WORKLOAD_SCALE`, default 0.01). Unset, the
//! workloads are generated at scale 0.01 into `<target>/clew-workloads/` by
//! `../shared/bench/gen_workload.py` (a shape is skipped, with a message, when that or
//! `python3` is missing). The full runner with peer comparisons is `src/bin/clew-bench.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, Decision, LookupRequest};
use clew::service::Clew;
use clew::service::bulk::{Consistency, FilterRequest, PageRequest};
use clew::tuple::{ObjectRef, Tuple, TupleSpec, User};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SHAPES: [&str; 4] = ["default", "deep", "wide", "hotuser"];
/// Checks per shape whose answers are asserted and cycled through by `check_warm`.
const CHECK_SAMPLE: usize = 2000;

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_id(rows: Vec<Value>) -> HashMap<u64, Value> {
    rows.into_iter()
        .map(|r| (r["id"].as_u64().unwrap(), r))
        .collect()
}

/// `<target>/clew-workloads`, next to the directory this benchmark binary runs from.
fn generated_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("clew-workloads"))
        .unwrap_or_else(|| PathBuf::from("target/clew-workloads"))
}

/// The workloads to run, (shape, directory).
fn workloads() -> Vec<(String, PathBuf)> {
    if let Ok(dir) = std::env::var("CLEW_WORKLOAD_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join("model.fga").exists() {
            let meta: Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap())
                    .unwrap();
            let shape = meta["shape"].as_str().unwrap_or("workload").to_string();
            return vec![(shape, dir)];
        }
        let scale = std::env::var("CLEW_WORKLOAD_SCALE").unwrap_or_else(|_| "0.01".into());
        return SHAPES
            .iter()
            .filter_map(|s| {
                let d = dir.join(format!("{s}-{scale}"));
                if d.join("model.fga").exists() {
                    Some((s.to_string(), d))
                } else {
                    eprintln!("workload: no {} (skipping {s})", d.display());
                    None
                }
            })
            .collect();
    }
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen_workload.py");
    if !generator.exists() {
        eprintln!(
            "workload: {} is missing and CLEW_WORKLOAD_DIR is not set: skipping the workload benchmarks",
            generator.display()
        );
        return Vec::new();
    }
    let root = generated_root();
    SHAPES
        .iter()
        .filter_map(|s| {
            let d = root.join(format!("{s}-0.01"));
            if !d.join("meta.json").exists() {
                let status = std::process::Command::new("python3")
                    .arg(&generator)
                    .args(["--scale", "0.01", "--shape", s, "--out"])
                    .arg(&d)
                    .stdout(std::process::Stdio::null())
                    .status();
                if !matches!(status, Ok(st) if st.success()) {
                    eprintln!(
                        "workload: could not generate {} (python3?): skipping {s}",
                        d.display()
                    );
                    return None;
                }
            }
            Some((s.to_string(), d))
        })
        .collect()
}

fn load(dir: &Path) -> Clew {
    let clew = Clew::memory().unwrap();
    clew.write_model(&std::fs::read_to_string(dir.join("model.fga")).unwrap())
        .unwrap();
    let tuples: Vec<Tuple> = jsonl(&dir.join("tuples.jsonl"))
        .into_iter()
        .map(|v| {
            serde_json::from_value::<TupleSpec>(v)
                .unwrap()
                .to_tuple()
                .unwrap()
        })
        .collect();
    clew.write_tuples_bulk(&tuples, &[], "bench").unwrap();
    clew
}

fn sorted_strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn bench_shape(c: &mut Criterion, shape: &str, dir: &Path) {
    let clew = load(dir);
    // The deep shape's longest chains need SpiceDB's dispatch depth (50), not OpenFGA's 25.
    let max_depth = if shape == "deep" {
        50
    } else {
        engine::DEFAULT_MAX_DEPTH
    };
    let context = Map::new();
    let refs = dir.join("answers_ref");
    let mut g = c.benchmark_group(format!("workload/{shape}"));

    // ------------------------------------------------------------ check (warm)
    let checks = jsonl(&dir.join("checks.jsonl"));
    let ref_checks = by_id(jsonl(&refs.join("checks.jsonl")));
    let sample: Vec<(User, String, ObjectRef, bool)> = checks
        .iter()
        .take(CHECK_SAMPLE)
        .map(|q| {
            (
                User::parse(q["user"].as_str().unwrap()).unwrap(),
                q["relation"].as_str().unwrap().to_string(),
                ObjectRef::parse(q["object"].as_str().unwrap()).unwrap(),
                ref_checks[&q["id"].as_u64().unwrap()]["allowed"]
                    .as_bool()
                    .unwrap(),
            )
        })
        .collect();
    fn req<'a>(
        (user, relation, object, _): &'a (User, String, ObjectRef, bool),
        context: &'a Map<String, Value>,
        max_depth: u32,
    ) -> CheckRequest<'a> {
        CheckRequest {
            user,
            relation,
            object,
            context,
            contextual: &[],
            explain: false,
            max_depth,
        }
    }
    for s in &sample {
        let (r, _) = clew.check(&req(s, &context, max_depth)).unwrap();
        assert_eq!(
            r.decision == Decision::Allowed,
            s.3,
            "{shape}: check {}#{}@{}",
            s.2,
            s.1,
            s.0
        );
    }
    let mut i = 0;
    g.bench_function("check_warm", |b| {
        b.iter(|| {
            let s = &sample[i % sample.len()];
            i += 1;
            clew.check(black_box(&req(s, &context, max_depth))).unwrap()
        })
    });

    // ------------------------------------------------------------ lookup of the heaviest user
    let lookups = jsonl(&dir.join("lookups.jsonl"));
    let ref_lookups = by_id(jsonl(&refs.join("lookups.jsonl")));
    let heavy = lookups
        .iter()
        .max_by_key(|q| q["expected_count"].as_u64().unwrap_or(0))
        .unwrap();
    let heavy_user = User::parse(heavy["user"].as_str().unwrap()).unwrap();
    let lreq = LookupRequest {
        user: &heavy_user,
        relation: heavy["relation"].as_str().unwrap(),
        object_type: heavy["type"].as_str().unwrap(),
        context: &context,
        contextual: &[],
        max_depth,
    };
    let expected = sorted_strings(&ref_lookups[&heavy["id"].as_u64().unwrap()]["objects"]);
    let state = clew.state();
    let view = state.view().unwrap();
    let mut got: Vec<String> = engine::lookup(view, &lreq)
        .unwrap()
        .objects(&state.index)
        .iter()
        .map(|o| o.to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected, "{shape}: lookup of the heaviest user");
    let page = PageRequest::default();
    let mut got: Vec<String> = clew
        .lookup(&lreq, &page, Consistency::Latest)
        .unwrap()
        .objects
        .iter()
        .map(|o| o.to_string())
        .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "{shape}: lookup of the heaviest user (service)"
    );
    g.bench_function(
        format!("lookup_heaviest_eval/{}_objects", expected.len()),
        |b| b.iter(|| engine::lookup(view, black_box(&lreq)).unwrap()),
    );
    g.bench_function(
        format!("lookup_heaviest_cached/{}_objects", expected.len()),
        |b| {
            b.iter(|| {
                clew.lookup(black_box(&lreq), &page, Consistency::Latest)
                    .unwrap()
            })
        },
    );

    // ------------------------------------------------------------ filter of 1,000 candidates
    let filters = jsonl(&dir.join("filters.jsonl"));
    let ref_filters = by_id(jsonl(&refs.join("filters.jsonl")));
    let f = &filters[0];
    let f_user = User::parse(f["user"].as_str().unwrap()).unwrap();
    let candidates: Vec<String> = sorted_strings(&f["objects"]);
    let freq = FilterRequest {
        user: &f_user,
        relation: f["relation"].as_str().unwrap(),
        object_type: "document",
        candidates: &candidates,
        context: &context,
        contextual: &[],
        max_depth,
        explain: false,
        strategy: None,
    };
    let expected = sorted_strings(&ref_filters[&f["id"].as_u64().unwrap()]["allowed"]);
    let mut got: Vec<String> = clew
        .filter(&freq, Consistency::Latest)
        .unwrap()
        .allowed
        .into_iter()
        .map(|i| i.object.to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected, "{shape}: filter {}", f["id"]);
    g.bench_function(format!("filter/{}_candidates", candidates.len()), |b| {
        b.iter(|| clew.filter(black_box(&freq), Consistency::Latest).unwrap())
    });
    // Every filter request of the workload in turn, candidates in the request's order (each
    // iteration probes other objects, so fewer of them are in the CPU's caches), each asserted
    // first (which also caches every subject's bitmap: this measures warm filters).
    let all: Vec<(User, String, Vec<String>, Vec<String>)> = filters
        .iter()
        .map(|f| {
            (
                User::parse(f["user"].as_str().unwrap()).unwrap(),
                f["relation"].as_str().unwrap().to_string(),
                f["objects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o.as_str().unwrap().to_string())
                    .collect(),
                sorted_strings(&ref_filters[&f["id"].as_u64().unwrap()]["allowed"]),
            )
        })
        .collect();
    let requests: Vec<FilterRequest<'_, '_>> = all
        .iter()
        .map(|(user, relation, candidates, _)| FilterRequest {
            user,
            relation,
            object_type: "document",
            candidates,
            context: &context,
            contextual: &[],
            max_depth,
            explain: false,
            strategy: None,
        })
        .collect();
    for (r, (.., expected)) in requests.iter().zip(&all) {
        let mut got: Vec<String> = clew
            .filter(r, Consistency::Latest)
            .unwrap()
            .allowed
            .into_iter()
            .map(|i| i.object.to_string())
            .collect();
        got.sort();
        assert_eq!(&got, expected, "{shape}: a filter of the workload");
    }
    let mut i = 0;
    g.bench_function(
        format!("filter_each_request/{}_candidates", candidates.len()),
        |b| {
            b.iter(|| {
                let r = &requests[i % requests.len()];
                i += 1;
                clew.filter(black_box(r), Consistency::Latest).unwrap()
            })
        },
    );

    // ------------------------------------------------------------ one-tuple write, then read
    let (user, _, object, _) = sample
        .iter()
        .find(|(u, r, o, allowed)| {
            !allowed && r == "read" && o.object_type == "document" && matches!(u, User::Object(_))
        })
        .expect("a denied document#read check");
    let tuple = Tuple {
        user: user.clone(),
        relation: "viewer".into(),
        object: object.clone(),
        condition: None,
    };
    let rreq = CheckRequest {
        user,
        relation: "read",
        object,
        context: &context,
        contextual: &[],
        explain: false,
        max_depth,
    };
    g.bench_function("write_grant_revoke_each_then_check", |b| {
        b.iter(|| {
            clew.write_tuples(std::slice::from_ref(&tuple), &[], "bench")
                .unwrap();
            assert_eq!(clew.check(&rreq).unwrap().0.decision, Decision::Allowed);
            clew.write_tuples(&[], &[tuple.key()], "bench").unwrap();
            assert_eq!(clew.check(&rreq).unwrap().0.decision, Decision::Denied);
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    for (shape, dir) in workloads() {
        bench_shape(c, &shape, &dir);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
