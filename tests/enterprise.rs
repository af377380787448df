//! The enterprise example (`fixtures/enterprise/`), exactly as `clew serve --demo` loads it: a
//! graph in plain FOAF/ORG/DCAT/PROV/Dublin Core read through bindings. Its tuple twin (computed
//! by the generator from its own data model, and checked against the real OpenFGA) equals what
//! the index holds; every check, lookup and subject query of the scenario gets its expected
//! answer, and every allowed check its expected explanation path — the stored triples with
//! their original predicates and the axioms relied on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, Decision, LookupRequest, UserFilter};
use clew::service::Clew;
use clew::service::bulk::{Consistency, PageRequest};
use clew::tuple::{ObjectRef, TupleSpec, User};
use serde::Deserialize;
use serde_json::Map;
use std::collections::{BTreeMap, BTreeSet};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/enterprise");

#[derive(Deserialize)]
struct Scenario {
    prefixes: BTreeMap<String, String>,
    checks: Vec<Check>,
    lookups: Vec<Lookup>,
    subjects: Vec<Subjects>,
}

#[derive(Deserialize)]
struct Check {
    name: String,
    user: String,
    relation: String,
    object: String,
    allowed: bool,
    #[serde(default)]
    path: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    tuple: String,
    #[serde(default)]
    triple: Option<String>,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    axioms: Vec<String>,
}

#[derive(Deserialize)]
struct Lookup {
    name: String,
    user: String,
    relation: String,
    object_type: String,
    objects: Vec<String>,
}

#[derive(Deserialize)]
struct Subjects {
    name: String,
    object: String,
    relation: String,
    subject_type: String,
    subjects: Vec<String>,
}

fn demo() -> Clew {
    let clew = Clew::memory().unwrap();
    assert!(clew::server::load_demo(&clew).unwrap());
    clew
}

fn scenario() -> Scenario {
    let text = std::fs::read_to_string(format!("{DIR}/scenario.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// A CURIE, `<iri>` or `a` as a full IRI.
fn expand(prefixes: &BTreeMap<String, String>, term: &str) -> String {
    if term == "a" {
        return "http://www.w3.org/1999/02/22-rdf-syntax-ns#type".into();
    }
    if let Some(iri) = term.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
        return iri.to_string();
    }
    let (p, local) = term
        .split_once(':')
        .unwrap_or_else(|| panic!("not a CURIE: {term}"));
    let ns = prefixes
        .get(p)
        .unwrap_or_else(|| panic!("undeclared prefix in {term}"));
    format!("{ns}{local}")
}

fn triple(prefixes: &BTreeMap<String, String>, text: &str) -> (String, String, String) {
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "a triple is three terms: {text}");
    (
        expand(prefixes, parts[0]),
        expand(prefixes, parts[1]),
        expand(prefixes, parts[2]),
    )
}

fn as_tuple(t: &clew::engine::Triple) -> (String, String, String) {
    (t.subject.clone(), t.predicate.clone(), t.object.clone())
}

#[test]
fn the_index_holds_exactly_the_tuple_twin() {
    let clew = demo();
    let text = std::fs::read_to_string(format!("{DIR}/twin.tuples.yaml")).unwrap();
    let specs: Vec<TupleSpec> = serde_norway::from_str(&text).unwrap();
    let twin: BTreeSet<String> = specs
        .iter()
        .map(|s| s.to_tuple().unwrap().key().to_string())
        .collect();
    let index: BTreeSet<String> = clew
        .state()
        .index
        .tuples()
        .into_iter()
        .map(|t| t.key().to_string())
        .collect();
    let missing: Vec<_> = twin.difference(&index).collect();
    let extra: Vec<_> = index.difference(&twin).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert!(twin.len() > 500);
}

#[test]
fn every_scenario_check_has_its_decision_and_explanation_path() {
    let clew = demo();
    let sc = scenario();
    assert!(sc.checks.len() >= 40);
    let ctx = Map::new();
    let mut failures = Vec::new();
    for c in &sc.checks {
        let user = User::parse(&c.user).unwrap();
        let object = ObjectRef::parse(&c.object).unwrap();
        let (r, _) = clew
            .check(&CheckRequest {
                user: &user,
                relation: &c.relation,
                object: &object,
                context: &ctx,
                contextual: &[],
                max_depth: engine::DEFAULT_MAX_DEPTH,
                explain: true,
            })
            .unwrap();
        let allowed = r.decision == Decision::Allowed;
        if allowed != c.allowed {
            failures.push(format!("{}: allowed {allowed}, want {}", c.name, c.allowed));
            continue;
        }
        if !allowed {
            assert!(
                r.deny_trace.is_some(),
                "{}: a deny says what was tried",
                c.name
            );
            continue;
        }
        let path = r.explanation.expect("an allow is explained").path;
        let steps: Vec<_> = path.iter().filter(|s| s.tuple.is_some()).collect();
        let got: Vec<&str> = steps.iter().map(|s| s.tuple.as_deref().unwrap()).collect();
        let want: Vec<&str> = c.path.iter().map(|s| s.tuple.as_str()).collect();
        if got != want {
            failures.push(format!("{}: path {got:?}, want {want:?}", c.name));
            continue;
        }
        for (s, w) in steps.iter().zip(&c.path) {
            let stored: Vec<(String, String, String)> = if s.chain.is_empty() {
                s.triple.iter().map(as_tuple).collect()
            } else {
                s.chain.iter().map(as_tuple).collect()
            };
            let expected: Vec<(String, String, String)> = match &w.triple {
                Some(t) => vec![triple(&sc.prefixes, t)],
                None => w.chain.iter().map(|t| triple(&sc.prefixes, t)).collect(),
            };
            if stored != expected {
                failures.push(format!(
                    "{}: step {}: triples {stored:?}, want {expected:?}",
                    c.name, w.tuple
                ));
            }
            let axioms: BTreeSet<(String, String, String)> =
                s.axioms.iter().map(as_tuple).collect();
            let expected: BTreeSet<(String, String, String)> =
                w.axioms.iter().map(|t| triple(&sc.prefixes, t)).collect();
            if axioms != expected {
                failures.push(format!(
                    "{}: step {}: axioms {axioms:?}, want {expected:?}",
                    c.name, w.tuple
                ));
            }
            if s.binding.is_none() {
                failures.push(format!("{}: step {} names no binding", c.name, w.tuple));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_scenario_lookup_and_subject_query_has_its_exact_answer() {
    let clew = demo();
    let sc = scenario();
    let ctx = Map::new();
    let mut failures = Vec::new();
    for l in &sc.lookups {
        let user = User::parse(&l.user).unwrap();
        let page = clew
            .lookup(
                &LookupRequest {
                    user: &user,
                    relation: &l.relation,
                    object_type: &l.object_type,
                    context: &ctx,
                    contextual: &[],
                    max_depth: engine::DEFAULT_MAX_DEPTH,
                },
                &PageRequest::default(),
                Consistency::Latest,
            )
            .unwrap();
        let got: BTreeSet<String> = page.objects.iter().map(|o| o.to_string()).collect();
        let want: BTreeSet<String> = l.objects.iter().cloned().collect();
        if got != want {
            failures.push(format!("{}: {got:?}, want {want:?}", l.name));
        }
    }
    let state = clew.state();
    let view = state.view().unwrap();
    for s in &sc.subjects {
        let object = ObjectRef::parse(&s.object).unwrap();
        let filter = match s.subject_type.split_once('#') {
            Some((t, r)) => UserFilter {
                user_type: t.to_string(),
                relation: Some(r.to_string()),
            },
            None => UserFilter {
                user_type: s.subject_type.clone(),
                relation: None,
            },
        };
        let answer = engine::subjects(view, &object, &s.relation, &filter, &ctx, &[]).unwrap();
        let got: BTreeSet<String> = answer.users.iter().map(|u| u.to_string()).collect();
        let want: BTreeSet<String> = s.subjects.iter().cloned().collect();
        if got != want {
            failures.push(format!("{}: {got:?}, want {want:?}", s.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
