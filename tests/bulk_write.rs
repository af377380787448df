//! Bulk tuple writes (`write_tuples_bulk`): the shortcuts of the bulk path change nothing a
//! caller sees. A written tuple that is already stored in the tuple graph — written earlier,
//! inserted by SPARQL, conditional — is refused with `AlreadyExists` and the write changes
//! nothing, however large the write and whatever else the graph holds; a tuple stored only in
//! another graph does not count; and a bulk revision's change log replays exactly the tuples it
//! wrote, in the text the log has always had.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::iri::{IMPORTED_GRAPH, TUPLES_GRAPH};
use clew::service::{Clew, ServiceError};
use clew::sparql::SparqlOptions;
use clew::tuple::{Tuple, TupleCondition};
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
condition recent(age: int) {
  age < 30
}
";

/// More tuples than the bulk path's threshold for its shortcuts.
const N: usize = 2500;

fn t(user: &str, relation: &str, object: &str) -> Tuple {
    Tuple::parse(user, relation, object).unwrap()
}

fn conditional(user: &str, object: &str, age: i64) -> Tuple {
    let mut c = t(user, "viewer", object);
    let mut ctx = Map::new();
    ctx.insert("age".into(), json!(age));
    c.condition = Some(TupleCondition {
        name: "recent".into(),
        context: ctx,
    });
    c
}

/// `N` distinct tuples of every form (plain, userset, wildcard, conditional), with hostile ids.
fn many(tag: &str) -> Vec<Tuple> {
    (0..N)
        .map(|i| match i % 5 {
            0 => t(
                &format!("user:{tag}{i}"),
                "viewer",
                &format!("document:{i}"),
            ),
            1 => t(
                &format!("group:{tag}{i}#member"),
                "viewer",
                &format!("document:{i}"),
            ),
            2 => t(
                "user:*",
                "viewer",
                &format!("document:{tag}:{i}/ü%\"<>{{}}|^`"),
            ),
            3 => conditional(&format!("user:{tag}{i}"), &format!("document:c{i}"), 7),
            _ => t(
                &format!("user:{tag}\\{i}'@!$&()+,;=\u{1}"),
                "member",
                &format!("group:g{i}"),
            ),
        })
        .collect()
}

fn fresh() -> Clew {
    let clew = Clew::memory().unwrap();
    clew.write_model(MODEL).unwrap();
    clew
}

fn assert_exists(clew: &Clew, writes: &[Tuple], expected: &Tuple) {
    let before = clew.state().revision;
    let tuples = clew.state().index.tuple_count();
    let err = clew.write_tuples_bulk(writes, &[], "bulk").unwrap_err();
    match err {
        ServiceError::AlreadyExists(key) => assert_eq!(key, expected.key().to_string()),
        other => panic!("expected AlreadyExists, got {other}"),
    }
    assert_eq!(
        clew.state().revision,
        before,
        "a refused write changes nothing"
    );
    assert_eq!(clew.store().revision().unwrap(), before);
    assert_eq!(clew.state().index.tuple_count(), tuples);
}

#[test]
fn a_bulk_write_of_a_tuple_written_before_is_refused() {
    let clew = fresh();
    let first = many("a");
    clew.write_tuples_bulk(&first, &[], "bulk").unwrap();
    assert_eq!(clew.state().index.tuple_count(), N as u64);
    // Every form, as the last tuple of a large write of otherwise new tuples.
    for old in &first[..5] {
        let mut writes = many("b");
        writes.push(old.clone());
        assert_exists(&clew, &writes, old);
    }
    // A conditional tuple exists whatever condition the new write gives it.
    let mut writes = many("b");
    let mut plain = first[3].clone();
    plain.condition = None;
    writes.push(plain.clone());
    assert_exists(&clew, &writes, &plain);
}

#[test]
fn a_bulk_write_of_one_tuple_written_before_into_a_small_graph_is_refused() {
    let clew = fresh();
    let old = conditional("user:x", "document:x", 1);
    clew.write_tuples(std::slice::from_ref(&old), &[], "one")
        .unwrap();
    let mut writes = many("b");
    writes.insert(N / 2, t("user:x", "viewer", "document:x"));
    assert_exists(&clew, &writes, &old);
}

#[test]
fn a_bulk_write_of_a_tuple_inserted_by_sparql_is_refused() {
    let clew = fresh();
    let text = format!(
        "INSERT DATA {{ GRAPH <{TUPLES_GRAPH}> {{ <https://clew.dev/id/document/s> <https://clew.dev/rel/viewer> <https://clew.dev/id/user/s> }} }}"
    );
    clew.sparql_update(&text, &SparqlOptions::default())
        .unwrap();
    let mut writes = many("b");
    let dup = t("user:s", "viewer", "document:s");
    writes.push(dup.clone());
    assert_exists(&clew, &writes, &dup);
}

#[test]
fn a_tuple_stored_only_in_another_graph_does_not_block_a_bulk_write() {
    let clew = fresh();
    let other = t("user:i", "viewer", "document:i");
    clew.import_tuples(std::slice::from_ref(&other), IMPORTED_GRAPH, "import")
        .unwrap();
    let mut writes = many("b");
    writes.push(other);
    clew.write_tuples_bulk(&writes, &[], "bulk").unwrap();
}

#[test]
fn a_bulk_write_after_every_tuple_was_deleted_is_accepted_and_a_duplicate_refused() {
    let clew = fresh();
    let first = many("a");
    clew.write_tuples_bulk(&first, &[], "bulk").unwrap();
    let keys: Vec<_> = first.iter().map(Tuple::key).collect();
    clew.write_tuples_bulk(&[], &keys, "delete").unwrap();
    assert!(clew.store().graph_is_empty(TUPLES_GRAPH).unwrap());
    clew.write_tuples_bulk(&first, &[], "again").unwrap();
    assert_eq!(clew.state().index.tuple_count(), N as u64);
    let mut writes = many("b");
    writes.push(first[N - 1].clone());
    assert_exists(&clew, &writes, &first[N - 1]);
    // Twice in one write is its own error, as before.
    let mut twice = many("c");
    twice.push(twice[0].clone());
    assert!(matches!(
        clew.write_tuples_bulk(&twice, &[], "twice"),
        Err(ServiceError::Duplicate(_))
    ));
}

#[test]
fn a_bulk_revision_logs_every_quad_and_replays_exactly() {
    let clew = fresh();
    let writes = many("a");
    let rev = clew.write_tuples_bulk(&writes, &[], "bulk").unwrap();
    let entry = clew.store().revision_entry(rev).unwrap().unwrap();
    // The log's text: each quad as N-Quads, in write order.
    let mut expected = Vec::new();
    for w in &writes {
        for q in clew.store().tuple_quads(w, TUPLES_GRAPH).unwrap() {
            expected.push(format!("{q} ."));
        }
    }
    assert_eq!(entry.added, expected);
    assert!(entry.removed.is_empty());
    let mut replayed: Vec<String> = clew
        .store()
        .tuples_in_log_lines(&entry.added)
        .into_iter()
        .map(|(t, g)| {
            assert_eq!(g, TUPLES_GRAPH);
            format!("{} {:?}", t.key(), t.condition.map(|c| (c.name, c.context)))
        })
        .collect();
    let mut want: Vec<String> = writes
        .iter()
        .map(|t| {
            format!(
                "{} {:?}",
                t.key(),
                t.condition.clone().map(|c| (c.name, c.context))
            )
        })
        .collect();
    replayed.sort();
    want.sort();
    assert_eq!(replayed, want);
    // A bulk delete logs the removed quads the same way.
    let keys: Vec<_> = writes.iter().map(Tuple::key).collect();
    let rev = clew.write_tuples_bulk(&[], &keys, "delete").unwrap();
    let entry = clew.store().revision_entry(rev).unwrap().unwrap();
    assert_eq!(entry.removed, expected);
    assert!(entry.added.is_empty());
}

#[test]
fn a_write_that_deletes_and_adds_logs_removals_then_additions_in_order() {
    let clew = fresh();
    let first = many("a");
    clew.write_tuples_bulk(&first, &[], "bulk").unwrap();
    // Delete every other tuple (their stored forms, conditions included) and add new ones.
    let deleted: Vec<&Tuple> = first.iter().step_by(2).collect();
    let keys: Vec<_> = deleted.iter().map(|t| t.key()).collect();
    let writes = many("n");
    let rev = clew.write_tuples_bulk(&writes, &keys, "mixed").unwrap();
    let entry = clew.store().revision_entry(rev).unwrap().unwrap();
    let lines = |ts: &mut dyn Iterator<Item = &Tuple>| -> Vec<String> {
        ts.flat_map(|t| clew.store().tuple_quads(t, TUPLES_GRAPH).unwrap())
            .map(|q| format!("{q} ."))
            .collect()
    };
    assert_eq!(entry.removed, lines(&mut deleted.iter().copied()));
    assert_eq!(entry.added, lines(&mut writes.iter()));
    assert_eq!(
        clew.state().index.tuple_count(),
        (N - deleted.len() + N) as u64
    );
    let mut stored: Vec<String> = clew
        .store()
        .all_tuples()
        .unwrap()
        .into_iter()
        .map(|(t, _)| format!("{t:?}"))
        .collect();
    let mut want: Vec<String> = first
        .iter()
        .skip(1)
        .step_by(2)
        .chain(&writes)
        .map(|t| format!("{t:?}"))
        .collect();
    stored.sort();
    want.sort();
    assert_eq!(stored, want);
}

#[test]
fn a_key_twice_in_one_write_is_a_duplicate_whatever_its_condition_or_side() {
    let clew = fresh();
    let first = many("a");
    clew.write_tuples_bulk(&first, &[], "bulk").unwrap();
    let rev = clew.state().revision;
    let mut plain = first[3].clone();
    plain.condition = None;
    let cases: [(Vec<Tuple>, Vec<_>); 3] = [
        // The same key with and without a condition.
        (
            [many("b"), vec![plain.clone(), first[3].clone()]].concat(),
            vec![],
        ),
        // Deleted and written.
        (many("b"), vec![first[0].key(), many("b")[7].key()]),
        // Deleted twice.
        (vec![], vec![first[1].key(), first[2].key(), first[1].key()]),
    ];
    for (writes, deletes) in cases {
        match clew.write_tuples_bulk(&writes, &deletes, "dup") {
            Err(ServiceError::Duplicate(_)) => {}
            other => panic!("expected Duplicate, got {other:?}"),
        }
        assert_eq!(clew.state().revision, rev);
    }
}
