//! SPARQL through the service: updates are one revision each, go through the model, and keep
//! the index exact; queries see the union of the graphs, under limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, Decision, LookupRequest};
use clew::iri::{IMPORTED_GRAPH, TUPLES_GRAPH};
use clew::service::bulk::{Consistency, PageRequest};
use clew::service::{Clew, ServiceError};
use clew::sparql::{self, Answer, AnswerKind, Format, SparqlError, SparqlOptions};
use clew::tuple::{ObjectRef, Tuple, TupleKey, User};
use serde_json::Map;
use std::collections::BTreeMap;
use std::time::Duration;

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
    define viewer: ([user, group#member, user with weekday] or viewer from parent) but not blocked
condition weekday(day: string) {
  day != \"sunday\"
}
";

const ID: &str = "https://clew.dev/id/";
const REL: &str = "https://clew.dev/rel/";

fn iri(id: &str) -> String {
    let (t, rest) = id.split_once(':').unwrap();
    match rest.split_once('#') {
        Some((i, r)) => format!("<{ID}{t}/{i}#{r}>"),
        None => format!("<{ID}{t}/{rest}>"),
    }
}

fn triple(user: &str, relation: &str, object: &str) -> String {
    format!("{} <{REL}{relation}> {}", iri(object), iri(user))
}

fn opts() -> SparqlOptions {
    SparqlOptions::default()
}

fn clew() -> Clew {
    let c = Clew::memory().unwrap();
    c.write_model(MODEL).unwrap();
    c
}

fn check(clew: &Clew, user: &str, relation: &str, object: &str) -> Decision {
    let ctx = Map::new();
    let user = User::parse(user).unwrap();
    let object = ObjectRef::parse(object).unwrap();
    clew.check(&CheckRequest {
        user: &user,
        relation,
        object: &object,
        context: &ctx,
        contextual: &[],
        max_depth: engine::DEFAULT_MAX_DEPTH,
        explain: false,
    })
    .unwrap()
    .0
    .decision
}

fn update(clew: &Clew, text: &str) -> Result<clew::service::SparqlUpdated, ServiceError> {
    clew.sparql_update(text, &opts())
}

fn rows(answer: &Answer) -> Vec<Vec<String>> {
    let Answer::Solutions { rows, .. } = answer else {
        panic!("not solutions: {answer:?}")
    };
    let mut out: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|t| t.as_ref().map(|t| t.to_string()).unwrap_or_default())
                .collect()
        })
        .collect();
    out.sort();
    out
}

/// Every lookup answer for the users and types of the random graphs.
fn answers(clew: &Clew) -> Vec<Vec<String>> {
    let mut ctx = Map::new();
    ctx.insert("day".into(), "monday".into());
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

/// A fresh instance holding the tuples the store holds now (each key once, as the index does).
fn fresh_from(clew: &Clew) -> Clew {
    let mut by_key: BTreeMap<TupleKey, Tuple> = BTreeMap::new();
    for (t, _) in clew.store().all_tuples().unwrap() {
        let plain_wins = t.condition.is_none();
        let k = t.key();
        if plain_wins || !by_key.contains_key(&k) {
            by_key.insert(k, t);
        }
    }
    let fresh = Clew::memory().unwrap();
    fresh.write_model(MODEL).unwrap();
    let tuples: Vec<Tuple> = by_key.into_values().collect();
    if !tuples.is_empty() {
        fresh.write_tuples_bulk(&tuples, &[], "fresh").unwrap();
    }
    fresh
}

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

fn random_triple(rng: &mut Rng) -> String {
    let g = |rng: &mut Rng| format!("group:g{}", rng.below(5));
    let u = |rng: &mut Rng| format!("user:u{}", rng.below(5));
    let f = |rng: &mut Rng| format!("folder:f{}", rng.below(4));
    let (user, relation, object) = match rng.below(10) {
        0..=2 => (u(rng), "member", g(rng)),
        3 => (format!("{}#member", g(rng)), "member", g(rng)),
        4 => (format!("{ID}user/*"), "member", g(rng)),
        5 => (f(rng), "parent", f(rng)),
        6 => (format!("{}#member", g(rng)), "viewer", f(rng)),
        7 => (u(rng), "blocked", f(rng)),
        _ => (u(rng), "viewer", f(rng)),
    };
    if user.starts_with("https://") {
        return format!("{} <{REL}{relation}> <{user}>", iri(&object));
    }
    triple(&user, relation, &object)
}

fn random_graph(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 | 1 => format!("GRAPH <{TUPLES_GRAPH}> {{ {{}} }}"),
        2 => format!("GRAPH <{IMPORTED_GRAPH}> {{ {{}} }}"),
        _ => "{}".to_string(),
    }
}

fn in_graph(shape: &str, body: &str) -> String {
    shape.replacen("{}", body, 1)
}

/// After every random SPARQL update — inserts and deletes of tuples in the tuple graph, the
/// imported graph and the default graph, pattern deletes, inserts computed from a WHERE, graph
/// clears, and updates the model rejects — the live index answers exactly like a fresh
/// instance loaded with the tuples the store then holds; a rejected update changes nothing.
#[test]
fn random_updates_keep_the_index_equal_to_a_fresh_load() {
    let seeds: u64 = std::env::var("CLEW_SPARQL_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let (mut applied, mut rejected) = (0, 0);
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let clew = clew();
        for step in 0..25 {
            let shape = random_graph(&mut rng);
            let text = match rng.below(9) {
                0..=3 => {
                    let n = 1 + rng.below(3);
                    let body: Vec<String> = (0..n).map(|_| random_triple(&mut rng)).collect();
                    format!("INSERT DATA {{ {} }}", in_graph(&shape, &body.join(" . ")))
                }
                4 => format!(
                    "DELETE DATA {{ {} }}",
                    in_graph(&shape, &random_triple(&mut rng))
                ),
                5 => {
                    let g = format!("group:g{}", rng.below(5));
                    let p = format!("{} <{REL}member> ?u", iri(&g));
                    format!("DELETE WHERE {{ {} }}", in_graph(&shape, &p))
                }
                6 => {
                    // Members of one group become viewers of a folder (a computed insert).
                    let g = format!("group:g{}", rng.below(5));
                    let f = format!("folder:f{}", rng.below(4));
                    let ins = format!("{} <{REL}viewer> ?u", iri(&f));
                    format!(
                        "INSERT {{ {} }} WHERE {{ {} <{REL}member> ?u . FILTER(STRSTARTS(STR(?u), \"{ID}user/u\")) }}",
                        in_graph(&shape, &ins),
                        iri(&g),
                    )
                }
                7 => {
                    if rng.below(3) == 0 {
                        format!("CLEAR SILENT GRAPH <{IMPORTED_GRAPH}>")
                    } else {
                        // Not admitted by the model: a folder as a group member.
                        let bad = triple("folder:f1", "member", "group:g1");
                        format!("INSERT DATA {{ {} . {} }}", random_triple(&mut rng), bad)
                    }
                }
                _ => {
                    // Two operations: the second sees the first.
                    let t = random_triple(&mut rng);
                    format!(
                        "INSERT DATA {{ {} }} ; DELETE DATA {{ {} }}",
                        in_graph(&shape, &t),
                        in_graph(&shape, &t)
                    )
                }
            };
            let before_rev = clew.state().revision;
            let before = answers(&clew);
            match update(&clew, &text) {
                Ok(done) => {
                    applied += 1;
                    if done.changed {
                        assert_eq!(done.revision, before_rev + 1, "{text}");
                    } else {
                        assert_eq!(clew.state().revision, before_rev, "{text}");
                    }
                }
                Err(ServiceError::Sparql(SparqlError::InvalidTuple(m))) => {
                    rejected += 1;
                    assert!(m.contains("folder/f1"), "the error names the triple: {m}");
                    assert_eq!(clew.state().revision, before_rev, "{text}");
                    assert_eq!(answers(&clew), before, "a rejected update changed answers");
                }
                Err(e) => panic!("seed {seed} step {step}: {text}: {e}"),
            }
            let state = clew.state();
            state
                .groups
                .validate(&state.index)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            assert_eq!(
                answers(&clew),
                answers(&fresh_from(&clew)),
                "seed {seed} step {step}: after {text}"
            );
        }
    }
    assert!(
        applied > 100 && rejected > 5,
        "{applied} applied, {rejected} rejected"
    );
    eprintln!("{applied} updates applied, {rejected} rejected; index exact after each");
}

#[test]
fn an_update_is_one_logged_revision_and_the_next_check_sees_it() {
    let clew = clew();
    assert_eq!(
        check(&clew, "user:anne", "viewer", "folder:x"),
        Decision::Denied
    );
    let text = format!(
        "INSERT DATA {{ GRAPH <{TUPLES_GRAPH}> {{ {} . {} }} }}",
        triple("user:anne", "member", "group:eng"),
        triple("group:eng#member", "viewer", "folder:x"),
    );
    let done = update(&clew, &text).unwrap();
    assert!(done.changed);
    assert_eq!(
        (done.quads_added, done.quads_removed, done.tuples_changed),
        (2, 0, 2)
    );
    assert_eq!(clew.state().revision, done.revision);
    assert_eq!(
        check(&clew, "user:anne", "viewer", "folder:x"),
        Decision::Allowed
    );
    let entry = clew.store().revision_entry(done.revision).unwrap().unwrap();
    assert_eq!(entry.source, "sparql");
    assert_eq!(entry.added.len(), 2);
    assert!(entry.added.iter().all(|q| q.contains(TUPLES_GRAPH)));
    // The same insert again changes nothing and makes no revision.
    let again = update(&clew, &text).unwrap();
    assert!(!again.changed);
    assert_eq!(again.revision, done.revision);
    assert_eq!(clew.store().revision().unwrap(), done.revision);
    // A revoke by pattern takes effect at once.
    let revoke = update(
        &clew,
        &format!(
            "DELETE WHERE {{ GRAPH ?g {{ {} <{REL}member> ?u }} }}",
            iri("group:eng")
        ),
    )
    .unwrap();
    assert_eq!(revoke.revision, done.revision + 1);
    assert_eq!(
        check(&clew, "user:anne", "viewer", "folder:x"),
        Decision::Denied
    );
}

#[test]
fn an_update_the_model_does_not_allow_is_rejected_whole() {
    let clew = clew();
    let rev = clew.state().revision;
    let good = triple("user:anne", "member", "group:eng");
    for (bad, needle) in [
        // relation not on the type
        (
            triple("user:anne", "parent", "group:eng"),
            "relation 'parent'",
        ),
        // user type not allowed
        (triple("folder:f", "member", "group:eng"), "folder"),
        // unknown type
        (triple("user:anne", "member", "team:t"), "team"),
        // a relation predicate on something that is not an object IRI
        (
            format!("<http://example.org/x> <{REL}member> {}", iri("user:anne")),
            "http://example.org/x",
        ),
    ] {
        let text = format!("INSERT DATA {{ {good} . {bad} }}");
        let err = update(&clew, &text).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ServiceError::Sparql(SparqlError::InvalidTuple(_))),
            "{msg}"
        );
        assert!(msg.contains(needle), "{msg} should name {needle}");
        assert_eq!(clew.state().revision, rev);
        assert_eq!(clew.store().revision().unwrap(), rev);
        assert_eq!(
            check(&clew, "user:anne", "member", "group:eng"),
            Decision::Denied
        );
    }
    // The tuple graph holds only tuples.
    let err = update(
        &clew,
        &format!("INSERT DATA {{ GRAPH <{TUPLES_GRAPH}> {{ <http://e/a> <http://e/b> \"c\" }} }}"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a relationship tuple"),
        "{err}"
    );
    // Other data may go anywhere else.
    let ok = update(&clew, "INSERT DATA { <http://e/a> <http://e/b> \"c\" }").unwrap();
    assert!(ok.changed);
    assert_eq!(ok.tuples_changed, 0);
}

#[test]
fn conditional_tuples_can_be_written_and_must_be_complete() {
    let clew = clew();
    let node = "<https://clew.dev/tuple/folder%3Ax/viewer/user%3Abob>";
    let ns = "https://clew.dev/ns#";
    let full = format!(
        "INSERT DATA {{ GRAPH <{TUPLES_GRAPH}> {{ {node} a <{ns}ConditionalTuple> ; <{ns}object> {} ; <{ns}relation> <{REL}viewer> ; <{ns}user> {} ; <{ns}condition> \"weekday\" ; <{ns}conditionContext> \"{{}}\"^^<http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON> }} }}",
        iri("folder:x"),
        iri("user:bob")
    );
    update(&clew, &full).unwrap();
    let user = User::parse("user:bob").unwrap();
    let object = ObjectRef::parse("folder:x").unwrap();
    let decide = |day: &str| {
        let mut ctx = Map::new();
        ctx.insert("day".into(), day.into());
        clew.check(&CheckRequest {
            user: &user,
            relation: "viewer",
            object: &object,
            context: &ctx,
            contextual: &[],
            max_depth: engine::DEFAULT_MAX_DEPTH,
            explain: false,
        })
        .unwrap()
        .0
        .decision
    };
    assert_eq!(decide("monday"), Decision::Allowed);
    assert_eq!(decide("sunday"), Decision::Denied);
    // The change log decodes back to the tuple, with its condition and graph (what watch sends).
    let rev = clew.state().revision;
    let entry = clew.store().revision_entry(rev).unwrap().unwrap();
    let decoded = clew.store().tuples_in_log_lines(&entry.added);
    assert_eq!(decoded.len(), 1, "{decoded:?}");
    assert_eq!(
        decoded[0].0.to_string(),
        "folder:x#viewer@user:bob with weekday"
    );
    assert_eq!(decoded[0].1, TUPLES_GRAPH);
    // Removing the condition's name leaves an incomplete node: refused, nothing changes.
    let rev = clew.state().revision;
    let err = update(
        &clew,
        &format!("DELETE WHERE {{ GRAPH <{TUPLES_GRAPH}> {{ {node} <{ns}condition> ?c }} }}"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("incomplete conditional tuple"),
        "{err}"
    );
    assert_eq!(clew.state().revision, rev);
    assert_eq!(decide("monday"), Decision::Allowed);
    // Removing the whole node revokes it.
    update(
        &clew,
        &format!("DELETE WHERE {{ GRAPH <{TUPLES_GRAPH}> {{ {node} ?p ?o }} }}"),
    )
    .unwrap();
    assert_eq!(decide("monday"), Decision::Denied);
}

#[test]
fn clews_own_graphs_are_read_only() {
    let clew = clew();
    let rev = clew.state().revision;
    for text in [
        "DROP GRAPH <https://clew.dev/graph/log>",
        "CLEAR ALL",
        "INSERT DATA { GRAPH <https://clew.dev/graph/models> { <http://e/a> <http://e/b> <http://e/c> } }",
        "DELETE WHERE { GRAPH <https://clew.dev/graph/log> { ?s ?p ?o } }",
    ] {
        let err = update(&clew, text).unwrap_err();
        assert!(
            matches!(err, ServiceError::Sparql(SparqlError::ReadOnlyGraph(_))),
            "{text}: {err}"
        );
        assert_eq!(clew.store().revision().unwrap(), rev, "{text}");
    }
    // The model survives.
    assert!(clew.store().current_model_dsl().unwrap().is_some());
}

#[test]
fn queries_see_the_union_of_graphs_unless_told_otherwise() {
    let clew = clew();
    clew.write_tuples(
        &[Tuple::parse("user:anne", "member", "group:eng").unwrap()],
        &[],
        "t",
    )
    .unwrap();
    update(
        &clew,
        &format!(
            "INSERT DATA {{ {} }}",
            triple("user:bob", "member", "group:eng")
        ),
    )
    .unwrap();
    let q = format!(
        "SELECT ?u WHERE {{ {} <{REL}member> ?u }}",
        iri("group:eng")
    );
    let (all, rev) = clew.sparql_query(&q, &opts()).unwrap();
    assert_eq!(rev, clew.state().revision);
    assert_eq!(
        rows(&all),
        vec![
            vec![format!("<{ID}user/anne>")],
            vec![format!("<{ID}user/bob>")]
        ]
    );
    let only_tuples = SparqlOptions {
        default_graph_uris: vec![TUPLES_GRAPH.into()],
        ..opts()
    };
    let (some, _) = clew.sparql_query(&q, &only_tuples).unwrap();
    assert_eq!(rows(&some), vec![vec![format!("<{ID}user/anne>")]]);
    let (ask, _) = clew
        .sparql_query(
            "ASK { GRAPH <https://clew.dev/graph/log> { ?r a <https://clew.dev/ns#Revision> } }",
            &opts(),
        )
        .unwrap();
    assert_eq!(ask, Answer::Boolean(true));
    let (g, _) = clew
        .sparql_query(
            &format!("CONSTRUCT {{ ?u <http://e/in> ?g }} WHERE {{ ?g <{REL}member> ?u }}"),
            &opts(),
        )
        .unwrap();
    assert_eq!(g.kind(), AnswerKind::Graph);
    assert_eq!(g.len(), 2);
}

#[test]
fn limits_refusals_and_errors_are_named() {
    let clew = clew();
    let tuples: Vec<Tuple> = (0..30)
        .map(|i| Tuple::parse(&format!("user:u{i}"), "member", "group:big").unwrap())
        .collect();
    clew.write_tuples_bulk(&tuples, &[], "t").unwrap();
    let small = SparqlOptions {
        max_results: 10,
        ..opts()
    };
    let err = clew
        .sparql_query("SELECT * { ?s ?p ?o }", &small)
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Sparql(SparqlError::TooManyResults(10))),
        "{err}"
    );
    // A query that keeps reading the store stops when its token is cancelled (the transport
    // cancels at the time limit). Queries that compute without reading — a sorted cross
    // product — are only stopped by killing them: the server runs queries in a worker process
    // for that (tests/http_api.rs and the server tests).
    let quick = SparqlOptions {
        timeout: Duration::from_millis(50),
        ..opts()
    };
    quick.cancel.cancel();
    let err = clew
        .sparql_query("SELECT * { ?a ?b ?c . ?d ?e ?f }", &quick)
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Sparql(SparqlError::Timeout(_))),
        "{err}"
    );
    // An update over its quad budget is refused whole.
    let tight = SparqlOptions {
        max_update_quads: 5,
        ..opts()
    };
    let rev = clew.state().revision;
    let err = clew
        .sparql_update(
            &format!(
                "DELETE WHERE {{ GRAPH ?g {{ {} <{REL}member> ?u }} }}",
                iri("group:big")
            ),
            &tight,
        )
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Sparql(SparqlError::UpdateTooLarge(5))),
        "{err}"
    );
    assert_eq!(clew.state().revision, rev);
    assert_eq!(
        check(&clew, "user:u3", "member", "group:big"),
        Decision::Allowed
    );
    // SERVICE and LOAD are refused by default; syntax errors give a position.
    for (text, is_update) in [
        (
            "SELECT * { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }",
            false,
        ),
        ("LOAD <http://127.0.0.1:9/data.ttl>", true),
    ] {
        let err = if is_update {
            clew.sparql_update(text, &opts()).unwrap_err()
        } else {
            clew.sparql_query(text, &opts()).unwrap_err()
        };
        assert!(
            matches!(err, ServiceError::Sparql(SparqlError::Refused(_))),
            "{text}: {err}"
        );
    }
    let err = clew
        .sparql_query("SELECT * WHERE { ?s ?p }", &opts())
        .unwrap_err();
    assert!(err.to_string().contains("1:"), "{err}");
    let err = clew
        .sparql_update("INSERT DATA { ?s ?p ?o }", &opts())
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Sparql(SparqlError::Syntax(_))),
        "{err}"
    );
    assert_eq!(clew.state().revision, rev);
}

#[test]
fn formats_are_negotiated_from_accept_and_format() {
    use sparql::negotiate;
    let r = AnswerKind::Results;
    let g = AnswerKind::Graph;
    let ct = |f: Format| f.content_type();
    assert_eq!(
        ct(negotiate(r, None, None).unwrap()),
        "application/sparql-results+json"
    );
    assert_eq!(ct(negotiate(g, None, None).unwrap()), "text/turtle");
    assert_eq!(
        ct(negotiate(
            r,
            Some("text/csv;q=0.5, application/sparql-results+xml"),
            None
        )
        .unwrap()),
        "application/sparql-results+xml"
    );
    assert_eq!(
        ct(negotiate(r, Some("text/tab-separated-values"), None).unwrap()),
        "text/tab-separated-values; charset=utf-8"
    );
    assert_eq!(
        ct(negotiate(r, Some("*/*"), None).unwrap()),
        "application/sparql-results+json"
    );
    assert_eq!(
        ct(negotiate(r, Some("application/json"), None).unwrap()),
        "application/sparql-results+json"
    );
    assert_eq!(
        ct(negotiate(g, Some("application/ld+json"), None).unwrap()),
        "application/ld+json"
    );
    assert_eq!(
        ct(negotiate(g, Some("application/rdf+xml"), None).unwrap()),
        "application/rdf+xml"
    );
    assert_eq!(
        ct(negotiate(g, Some("application/n-triples"), None).unwrap()),
        "application/n-triples"
    );
    assert_eq!(
        ct(negotiate(g, Some("text/html"), Some("ntriples")).unwrap()),
        "application/n-triples"
    );
    assert_eq!(
        ct(negotiate(r, None, Some("csv")).unwrap()),
        "text/csv; charset=utf-8"
    );
    assert!(matches!(
        negotiate(r, Some("image/png"), None),
        Err(SparqlError::NotAcceptable { .. })
    ));
    assert!(negotiate(r, None, Some("turtle")).is_err());
    assert!(negotiate(r, Some("text/csv;q=0"), None).is_err());
    // Each format writes something a parser for it would recognise.
    let answer = Answer::Solutions {
        variables: vec![oxigraph::model::Variable::new_unchecked("x")],
        rows: vec![vec![Some(
            oxigraph::model::Literal::new_simple_literal("a,b").into(),
        )]],
    };
    let csv = sparql::serialize(&answer, negotiate(r, None, Some("csv")).unwrap()).unwrap();
    assert_eq!(String::from_utf8(csv).unwrap(), "x\r\n\"a,b\"\r\n");
    let json = sparql::serialize(&answer, negotiate(r, None, None).unwrap()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["results"]["bindings"][0]["x"]["value"], "a,b");
}

#[cfg(feature = "rocksdb")]
#[test]
fn an_update_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let rev = {
        let clew = Clew::open(dir.path()).unwrap();
        clew.write_model(MODEL).unwrap();
        update(
            &clew,
            &format!(
                "INSERT DATA {{ {} }}",
                triple("user:anne", "member", "group:eng")
            ),
        )
        .unwrap()
        .revision
    };
    let clew = Clew::open(dir.path()).unwrap();
    assert_eq!(clew.state().revision, rev);
    assert_eq!(
        check(&clew, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
}
