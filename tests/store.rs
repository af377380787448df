//! The store: tuples are RDF triples a SPARQL reader sees, writes are atomic revisions logged
//! with their quads, a rejected write changes nothing, and a reopened on-disk store restores
//! the model, the tuples and the revision counter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{CheckRequest, DEFAULT_MAX_DEPTH, Decision};
#[cfg(feature = "rocksdb")]
use clew::iri::IMPORTED_GRAPH;
use clew::iri::TUPLES_GRAPH;
use clew::service::{Clew, ServiceError};
use clew::tuple::{ObjectRef, Tuple, TupleCondition, User};
use oxigraph::sparql::{QueryResults, SparqlEvaluator};
use serde_json::{Map, json};

const MODEL: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define viewer: [user, user:*, group#member, user with recent]
    define blocked: [user]
    define can_view: viewer but not blocked
condition recent(age: int) {
  age < 30
}
";

fn t(user: &str, relation: &str, object: &str) -> Tuple {
    Tuple::parse(user, relation, object).unwrap()
}

fn decide(
    clew: &Clew,
    user: &str,
    relation: &str,
    object: &str,
    context: &Map<String, serde_json::Value>,
) -> Decision {
    let user = User::parse(user).unwrap();
    let object = ObjectRef::parse(object).unwrap();
    let req = CheckRequest {
        user: &user,
        relation,
        object: &object,
        context,
        contextual: &[],
        explain: false,
        max_depth: DEFAULT_MAX_DEPTH,
    };
    clew.check(&req).unwrap().0.decision
}

fn seed(clew: &Clew) -> u64 {
    clew.write_model(MODEL).unwrap();
    let mut cond = t("user:carol", "viewer", "document:1");
    let mut ctx = Map::new();
    ctx.insert("age".into(), json!(3));
    cond.condition = Some(TupleCondition {
        name: "recent".into(),
        context: ctx,
    });
    clew.write_tuples(
        &[
            t("user:anne", "member", "group:eng"),
            t("group:eng#member", "viewer", "document:1"),
            t("user:*", "viewer", "document:2"),
            t("user:bob", "blocked", "document:2"),
            cond,
        ],
        &[],
        "test",
    )
    .unwrap()
}

#[test]
fn tuples_are_triples_that_sparql_sees() {
    let clew = Clew::memory().unwrap();
    seed(&clew);
    let query = format!(
        "SELECT ?s ?o WHERE {{ GRAPH <{TUPLES_GRAPH}> {{ ?s <https://clew.dev/rel/viewer> ?o }} }} ORDER BY ?s ?o"
    );
    let QueryResults::Solutions(rows) = SparqlEvaluator::new()
        .parse_query(&query)
        .unwrap()
        .on_store(clew.store().oxigraph())
        .execute()
        .unwrap()
    else {
        panic!("not solutions")
    };
    let rows: Vec<String> = rows
        .map(|r| {
            let r = r.unwrap();
            format!("{} {}", r.get("s").unwrap(), r.get("o").unwrap())
        })
        .collect();
    // The conditional tuple is not a plain triple: a SPARQL reader cannot mistake it for an
    // unconditional grant.
    assert_eq!(
        rows,
        vec![
            "<https://clew.dev/id/document/1> <https://clew.dev/id/group/eng#member>",
            "<https://clew.dev/id/document/2> <https://clew.dev/id/user/*>",
        ]
    );
}

#[test]
fn every_write_is_a_logged_revision_and_deletes_take_effect() {
    let clew = Clew::memory().unwrap();
    let rev = seed(&clew);
    assert_eq!(rev, 2, "model = revision 1, tuples = revision 2");
    let entry = clew.store().revision_entry(2).unwrap().unwrap();
    assert_eq!(entry.source, "test");
    assert!(
        entry
            .added
            .iter()
            .any(|q| q.contains("https://clew.dev/id/user/anne"))
    );
    assert!(entry.removed.is_empty());
    let none = Map::new();
    assert_eq!(
        decide(&clew, "user:anne", "viewer", "document:1", &none),
        Decision::Allowed
    );
    let rev3 = clew
        .write_tuples(
            &[],
            &[t("user:anne", "member", "group:eng").key()],
            "revoke",
        )
        .unwrap();
    assert_eq!(rev3, 3);
    // Visible at the revision the write returned.
    assert_eq!(clew.state().revision, 3);
    assert_eq!(
        decide(&clew, "user:anne", "viewer", "document:1", &none),
        Decision::Denied
    );
    let entry = clew.store().revision_entry(3).unwrap().unwrap();
    assert_eq!(entry.removed.len(), 1);
    assert!(entry.removed[0].contains("group/eng"));
}

#[test]
fn a_rejected_write_names_the_tuple_and_rule_and_changes_nothing() {
    let clew = Clew::memory().unwrap();
    let rev = seed(&clew);
    let before = clew.state().index.tuple_count();
    let err = clew
        .write_tuples(
            &[
                t("user:dan", "viewer", "document:3"),
                t("group:eng", "viewer", "document:3"),
            ],
            &[],
            "test",
        )
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ServiceError::TupleRule(_)), "{message}");
    assert!(message.contains("document:3#viewer@group:eng"), "{message}");
    assert!(message.contains("document#viewer"), "{message}");
    assert_eq!(clew.state().revision, rev);
    assert_eq!(clew.store().revision().unwrap(), rev);
    assert_eq!(clew.state().index.tuple_count(), before);
    assert!(
        clew.store()
            .find_tuple(&t("user:dan", "viewer", "document:3").key(), TUPLES_GRAPH)
            .unwrap()
            .is_none()
    );
    // Unknown relation, unknown type, existing tuple, missing delete: all rejected.
    for (writes, deletes) in [
        (vec![t("user:dan", "editor", "document:3")], vec![]),
        (vec![t("user:dan", "viewer", "folder:3")], vec![]),
        (vec![t("user:anne", "member", "group:eng")], vec![]),
        (vec![], vec![t("user:zed", "member", "group:eng").key()]),
        (
            vec![
                t("user:x", "blocked", "document:9"),
                t("user:x", "blocked", "document:9"),
            ],
            vec![],
        ),
    ] {
        assert!(clew.write_tuples(&writes, &deletes, "test").is_err());
        assert_eq!(clew.state().revision, rev);
    }
}

#[test]
fn conditions_are_stored_with_their_parameters() {
    let clew = Clew::memory().unwrap();
    seed(&clew);
    let stored = clew
        .store()
        .find_tuple(&t("user:carol", "viewer", "document:1").key(), TUPLES_GRAPH)
        .unwrap()
        .unwrap();
    let c = stored.condition.unwrap();
    assert_eq!(c.name, "recent");
    assert_eq!(c.context.get("age"), Some(&json!(3)));
    assert_eq!(
        decide(&clew, "user:carol", "viewer", "document:1", &Map::new()),
        Decision::Allowed
    );
    // A parameter the tuple lacks is missing: the decision is conditional, never an allow.
    let clew2 = Clew::memory().unwrap();
    clew2.write_model(MODEL).unwrap();
    let mut bare = t("user:carol", "viewer", "document:1");
    bare.condition = Some(TupleCondition {
        name: "recent".into(),
        context: Map::new(),
    });
    clew2.write_tuples(&[bare], &[], "test").unwrap();
    assert_eq!(
        decide(&clew2, "user:carol", "viewer", "document:1", &Map::new()),
        Decision::Conditional {
            missing: vec!["age".into()]
        }
    );
    let mut ctx = Map::new();
    ctx.insert("age".into(), json!(99));
    assert_eq!(
        decide(&clew2, "user:carol", "viewer", "document:1", &ctx),
        Decision::Denied
    );
}

/// Needs the on-disk store.
#[cfg(feature = "rocksdb")]
#[test]
fn a_reopened_store_restores_model_tuples_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let none = Map::new();
    let rev = {
        let clew = Clew::open(dir.path()).unwrap();
        seed(&clew);
        clew.import_tuples(
            &[t("user:old", "viewer", "document:3")],
            IMPORTED_GRAPH,
            "import",
        )
        .unwrap();
        clew.write_tuples(&[], &[t("user:bob", "blocked", "document:2").key()], "test")
            .unwrap()
    };
    let clew = Clew::open(dir.path()).unwrap();
    let state = clew.state();
    assert_eq!(state.revision, rev);
    assert_eq!(clew.store().revision().unwrap(), rev);
    assert!(state.model.is_some());
    state.index.validate().unwrap();
    assert_eq!(state.index.tuple_count(), 5);
    assert_eq!(
        decide(&clew, "user:anne", "viewer", "document:1", &none),
        Decision::Allowed
    );
    assert_eq!(
        decide(&clew, "user:bob", "can_view", "document:2", &none),
        Decision::Allowed
    );
    assert_eq!(
        decide(&clew, "user:carol", "viewer", "document:1", &none),
        Decision::Allowed
    );
    assert_eq!(
        decide(&clew, "user:old", "viewer", "document:3", &none),
        Decision::Allowed
    );
    // The next write continues the sequence.
    let next = clew
        .write_tuples(&[t("user:eve", "viewer", "document:4")], &[], "test")
        .unwrap();
    assert_eq!(next, rev + 1);
}

#[test]
fn tuples_a_new_model_no_longer_admits_are_ignored_not_lost() {
    let clew = Clew::memory().unwrap();
    seed(&clew);
    let none = Map::new();
    assert_eq!(
        decide(&clew, "user:zoe", "viewer", "document:2", &none),
        Decision::Allowed
    );
    // The new model drops the wildcard: the stored `user:*` triple stays in the graph but no
    // longer grants anything.
    clew.write_model(&MODEL.replace("[user, user:*, group#member", "[user, group#member"))
        .unwrap();
    assert_eq!(
        decide(&clew, "user:zoe", "viewer", "document:2", &none),
        Decision::Denied
    );
    assert!(
        clew.store()
            .find_tuple(&t("user:*", "viewer", "document:2").key(), TUPLES_GRAPH)
            .unwrap()
            .is_some()
    );
    clew.write_model(MODEL).unwrap();
    assert_eq!(
        decide(&clew, "user:zoe", "viewer", "document:2", &none),
        Decision::Allowed
    );
}

#[test]
fn the_ontology_parses_and_every_term_is_labelled_and_commented() {
    use oxigraph::io::{RdfFormat, RdfParser};
    use std::collections::{BTreeMap, BTreeSet};
    let text = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/ontology/clew.ttl")).unwrap();
    let mut props: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for q in RdfParser::from_format(RdfFormat::Turtle).for_slice(&text) {
        let q = q.unwrap();
        let s = q.subject.to_string();
        if s.starts_with("<https://clew.dev/ns#") {
            props
                .entry(s)
                .or_default()
                .insert(q.predicate.as_str().to_string());
        }
    }
    assert!(props.len() > 30, "{} terms", props.len());
    for (term, ps) in &props {
        assert!(
            ps.contains("http://www.w3.org/2000/01/rdf-schema#label"),
            "{term} has no label"
        );
        assert!(
            ps.contains("http://www.w3.org/2000/01/rdf-schema#comment"),
            "{term} has no comment"
        );
    }
    // Every clew: term the store writes is described.
    for used in [
        "ConditionalTuple",
        "object",
        "relation",
        "user",
        "condition",
        "conditionContext",
        "AuthorizationModel",
        "modelId",
        "dsl",
        "schemaVersion",
        "createdAtRevision",
        "currentModel",
        "hasType",
        "Type",
        "name",
        "hasRelation",
        "Relation",
        "predicate",
        "rewrite",
        "directlyRelated",
        "hasCondition",
        "Condition",
        "expression",
        "meta",
        "revision",
        "Revision",
        "number",
        "time",
        "source",
        "added",
        "removed",
    ] {
        assert!(
            props.contains_key(&format!("<https://clew.dev/ns#{used}>")),
            "clew:{used} undescribed"
        );
    }
}

#[test]
fn contextual_tuples_count_for_one_request_and_are_validated() {
    let clew = Clew::memory().unwrap();
    seed(&clew);
    let none = Map::new();
    let dan = User::parse("user:dan").unwrap();
    let doc = ObjectRef::parse("document:1").unwrap();
    let contextual = vec![t("user:dan", "member", "group:eng")];
    let req = CheckRequest {
        user: &dan,
        relation: "viewer",
        object: &doc,
        context: &none,
        contextual: &contextual,
        explain: true,
        max_depth: DEFAULT_MAX_DEPTH,
    };
    let (r, _) = clew.check(&req).unwrap();
    assert_eq!(r.decision, Decision::Allowed);
    let path = r.explanation.unwrap().path;
    let last = path.last().unwrap();
    assert_eq!(last.tuple.as_deref(), Some("group:eng#member@user:dan"));
    assert_eq!(last.source.as_deref(), Some("contextual"));
    assert!(last.triple.is_none(), "a contextual tuple is not stored");
    // Nothing was stored: without the contextual tuple the answer is a deny.
    assert_eq!(
        decide(&clew, "user:dan", "viewer", "document:1", &none),
        Decision::Denied
    );
    // A contextual tuple the model does not admit is an error, not a silent deny.
    let bad = vec![t("user:dan", "member", "document:1")];
    let err = clew
        .check(&CheckRequest {
            contextual: &bad,
            ..req
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("document:1#member@user:dan"),
        "{err}"
    );
}

#[test]
fn a_deny_says_what_was_missing() {
    let clew = Clew::memory().unwrap();
    seed(&clew);
    let none = Map::new();
    let bob = User::parse("user:bob").unwrap();
    let doc = ObjectRef::parse("document:2").unwrap();
    let req = CheckRequest {
        user: &bob,
        relation: "can_view",
        object: &doc,
        context: &none,
        contextual: &[],
        explain: true,
        max_depth: DEFAULT_MAX_DEPTH,
    };
    let (r, _) = clew.check(&req).unwrap();
    assert_eq!(r.decision, Decision::Denied);
    let trace = r.deny_trace.unwrap();
    assert!(
        trace
            .tried
            .iter()
            .any(|t| t.at == "document:2#can_view" && t.missing.contains("'blocked' holds")),
        "{trace:#?}"
    );
    let eve = User::parse("user:eve").unwrap();
    let doc1 = ObjectRef::parse("document:1").unwrap();
    let (r, _) = clew
        .check(&CheckRequest {
            user: &eve,
            object: &doc1,
            relation: "viewer",
            ..req
        })
        .unwrap();
    let trace = r.deny_trace.unwrap();
    assert!(
        trace.tried.iter().any(|t| t.at == "group:eng#member"
            && t.missing.contains("no tuple group:eng#member@user:eve")),
        "{trace:#?}"
    );
}

/// Commits from several threads straight on a store (bypassing the service's single writer)
/// get unique, consecutive revisions, each logged; the store's revision is the last of them, and
/// a revision read after the writes agrees with the log.
#[test]
fn concurrent_commits_get_unique_consecutive_revisions() {
    use clew::index::{Change, TupleChange};
    use clew::store::Store;
    use std::sync::Arc;
    let store = Arc::new(Store::memory().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..50 {
                    let tuple =
                        clew::tuple::Tuple::parse(&format!("user:u{t}_{i}"), "viewer", "doc:d")
                            .unwrap();
                    let change = TupleChange {
                        change: Change::Add,
                        tuple,
                        graph: Arc::from(TUPLES_GRAPH),
                    };
                    got.push(store.commit(&[change], "test").unwrap());
                }
                got
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
    assert_eq!(store.revision().unwrap(), 200);
    for n in [1, 100, 200] {
        assert!(
            store.revision_entry(n).unwrap().is_some(),
            "revision {n} logged"
        );
    }
    assert!(store.revision_entry(201).unwrap().is_none());
}
