//! Import and export: every RDF format round-trips; a syntax error in any format names its line
//! and column and stores nothing; an import is one validated revision that the next decision
//! sees; `replace` makes graphs hold exactly the file; tuple files import and export.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clew::engine::{self, CheckRequest, Decision};
use clew::iri::{IMPORTED_GRAPH, LOG_GRAPH, MODELS_GRAPH, TUPLES_GRAPH};
use clew::service::{Clew, ImportOutcome, RdfImport, ServiceError, TupleFormat, parse_tuples};
use clew::store::{ImportError, Location, RdfFormat, RdfSource};
use clew::tuple::{ObjectRef, Tuple, User};
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
    define viewer: [user, group#member, user with weekday] or viewer from parent
condition weekday(day: string) {
  day != \"sunday\"
}
";

/// A knowledge graph: relationship triples beside other data (a label, a typed literal, a
/// language-tagged literal).
const TURTLE: &str = r#"@prefix id: <https://clew.dev/id/> .
@prefix rel: <https://clew.dev/rel/> .
@prefix ex: <http://example.com/> .
<https://clew.dev/id/group/eng> rel:member <https://clew.dev/id/user/anne> , <https://clew.dev/id/group/ops#member> .
<https://clew.dev/id/group/ops> rel:member <https://clew.dev/id/user/bob> .
<https://clew.dev/id/folder/root> rel:viewer <https://clew.dev/id/group/eng#member> .
<https://clew.dev/id/folder/docs> rel:parent <https://clew.dev/id/folder/root> ;
    ex:label "Docs"@en ;
    ex:size "42"^^<http://www.w3.org/2001/XMLSchema#integer> .
"#;

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

fn source(format: RdfFormat, graph: &str) -> RdfSource<'_> {
    RdfSource {
        format,
        graph,
        force_graph: false,
        base_iri: None,
    }
}

fn import(
    clew: &Clew,
    text: &str,
    format: RdfFormat,
    graph: &str,
    replace: bool,
) -> Result<ImportOutcome, ServiceError> {
    clew.import_rdf(
        text.as_bytes(),
        &RdfImport {
            source: source(format, graph),
            replace,
            log_source: "import:test",
        },
    )
}

/// Every quad of the data graphs, one N-Quads line each, sorted.
fn quads(clew: &Clew) -> Vec<String> {
    let text = clew.export_rdf(RdfFormat::NQuads, None).unwrap();
    let mut lines: Vec<String> = String::from_utf8(text)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// A store with a knowledge graph imported and tuples (one conditional) written.
fn populated() -> Clew {
    let c = clew();
    import(&c, TURTLE, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap();
    let conditional = Tuple::parse("user:carl", "viewer", "folder:docs")
        .unwrap()
        .with_condition(Some(clew::tuple::TupleCondition {
            name: "weekday".into(),
            context: serde_json::from_str(r#"{"day": "monday"}"#).unwrap(),
        }));
    let plain = Tuple::parse("user:dana", "member", "group:ops").unwrap();
    c.write_tuples(&[conditional, plain], &[], "test").unwrap();
    c
}

#[test]
fn a_turtle_import_is_one_revision_and_the_next_check_sees_it() {
    let c = clew();
    let before = c.state().revision;
    assert_eq!(
        check(&c, "user:anne", "member", "group:eng"),
        Decision::Denied
    );
    let out = import(
        &c,
        "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> .\n",
        RdfFormat::Turtle,
        IMPORTED_GRAPH,
        false,
    )
    .unwrap();
    assert_eq!(
        out,
        ImportOutcome {
            revision: before + 1,
            changed: true,
            quads_added: 1,
            quads_removed: 0,
            tuples_changed: 1,
        }
    );
    assert_eq!(c.state().revision, before + 1);
    assert_eq!(c.store().revision().unwrap(), before + 1);
    assert_eq!(
        check(&c, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
    let entry = c.store().revision_entry(before + 1).unwrap().unwrap();
    assert_eq!(entry.source, "import:test");
    assert_eq!(entry.added.len(), 1);

    // The whole knowledge graph: nested groups and inheritance work over it.
    let out = import(&c, TURTLE, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap();
    assert_eq!(out.revision, before + 2);
    assert_eq!(
        out.quads_added, 6,
        "the triple already there is not added again"
    );
    assert_eq!(
        check(&c, "user:bob", "viewer", "folder:docs"),
        Decision::Allowed
    );
    // Importing it again changes nothing and makes no revision.
    let out = import(&c, TURTLE, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap();
    assert!(!out.changed);
    assert_eq!(out.revision, before + 2);
    assert_eq!(c.store().revision().unwrap(), before + 2);
}

#[test]
fn every_format_round_trips() {
    let a = populated();
    let all = quads(&a);
    assert!(all.len() > 10, "{all:?}");
    // Datasets: every data graph.
    for format in [RdfFormat::NQuads, RdfFormat::TriG] {
        let text = a.export_rdf(format, None).unwrap();
        let b = clew();
        let out = b
            .import_rdf(
                &text,
                &RdfImport {
                    source: source(format, IMPORTED_GRAPH),
                    replace: false,
                    log_source: "import:round-trip",
                },
            )
            .unwrap();
        assert_eq!(out.quads_added, all.len(), "{format:?}");
        assert_eq!(quads(&b), all, "{format:?}");
        for (u, r, o) in [
            ("user:bob", "viewer", "folder:docs"),
            ("user:dana", "viewer", "folder:docs"),
            ("user:carl", "viewer", "folder:docs"),
            ("user:erin", "viewer", "folder:docs"),
        ] {
            assert_eq!(
                check(&b, u, r, o),
                check(&a, u, r, o),
                "{format:?} {u} {r} {o}"
            );
        }
        // And the tuple graph kept its name.
        assert_eq!(b.store().read_tuples(&Default::default()).unwrap().len(), 2);
    }
    // Graph formats: one graph.
    let graph = [IMPORTED_GRAPH.to_string()];
    let imported: Vec<String> = all
        .iter()
        .filter(|l| l.ends_with(&format!("<{IMPORTED_GRAPH}> .")))
        .cloned()
        .collect();
    for format in [RdfFormat::Turtle, RdfFormat::NTriples, RdfFormat::RdfXml] {
        let text = a.export_rdf(format, Some(&graph)).unwrap();
        let b = clew();
        let out = b
            .import_rdf(
                &text,
                &RdfImport {
                    source: source(format, IMPORTED_GRAPH),
                    replace: false,
                    log_source: "import:round-trip",
                },
            )
            .unwrap();
        assert_eq!(out.quads_added, imported.len(), "{format:?}");
        assert_eq!(
            quads(&b),
            imported,
            "{format:?}\n{}",
            String::from_utf8_lossy(&text)
        );
        assert_eq!(
            check(&b, "user:bob", "viewer", "folder:docs"),
            Decision::Allowed,
            "{format:?}"
        );
    }
    // A graph format with several graphs selected names them.
    let err = a.export_rdf(RdfFormat::Turtle, None).unwrap_err();
    assert!(err.to_string().contains(TUPLES_GRAPH), "{err}");
}

/// (format, document, line, marker): each document's error is at the last occurrence of the
/// marker on that line — the token the parser stopped at.
const SYNTAX_ERRORS: [(RdfFormat, &str, u64, &str); 5] = [
    (
        RdfFormat::Turtle,
        // The object is `$`.
        "@prefix rel: <https://clew.dev/rel/> .\n<https://clew.dev/id/group/eng> rel:member <https://clew.dev/id/user/anne> .\n<https://clew.dev/id/group/eng> rel:member $ .\n",
        3,
        "$",
    ),
    (
        RdfFormat::NTriples,
        // The literal is never closed.
        "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> .\n<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> \"x .\n",
        2,
        "\"x",
    ),
    (
        RdfFormat::NQuads,
        // A fifth term.
        "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> <http://example.com/g> .\n<http://a.example/s> <http://a.example/p> <http://a.example/o> <http://example.com/g> <http://example.com/h> .\n",
        2,
        "<http://example.com/h>",
    ),
    (
        RdfFormat::TriG,
        // A triple without a predicate.
        "<http://example.com/g> {\n  <https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> .\n  <http://a.example/s> .\n}\n",
        3,
        ".",
    ),
    (
        RdfFormat::RdfXml,
        // An end tag that does not match.
        "<?xml version=\"1.0\"?>\n<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns:rel=\"https://clew.dev/rel/\">\n  <rdf:Description rdf:about=\"https://clew.dev/id/group/eng\"><rel:member rdf:resource=\"https://clew.dev/id/user/anne\"/>\n  </rdf:Descriptio>\n</rdf:RDF>\n",
        4,
        "</rdf:Descriptio>",
    ),
];

#[test]
fn a_syntax_error_names_its_line_and_column_and_stores_nothing() {
    let c = populated();
    let revision = c.state().revision;
    let before = quads(&c);
    for (format, text, line, marker) in SYNTAX_ERRORS {
        let line_text = text.lines().nth(line as usize - 1).unwrap();
        let column = line_text.rfind(marker).unwrap() as u64 + 1;
        let err = import(&c, text, format, IMPORTED_GRAPH, false).unwrap_err();
        let ServiceError::Import(ImportError::Syntax { location, .. }) = &err else {
            panic!("{format:?}: not a syntax error: {err}");
        };
        assert_eq!(
            *location,
            Some(Location { line, column }),
            "{format:?}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("line {line}, column {column}: ")),
            "{err}"
        );
        // With `replace` too: the graph is not cleared.
        assert!(import(&c, text, format, IMPORTED_GRAPH, true).is_err());
        assert_eq!(c.store().revision().unwrap(), revision, "{format:?}");
        assert_eq!(c.state().revision, revision, "{format:?}");
        assert_eq!(quads(&c), before, "{format:?}");
    }
    // An RDF/XML error the XML layer does not see: an unknown rdf: attribute.
    let text = "<?xml version=\"1.0\"?>\n<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n  <rdf:Description rdf:about=\"http://a.example/s\" rdf:aboutEach=\"x\"/>\n</rdf:RDF>\n";
    let err = import(&c, text, RdfFormat::RdfXml, IMPORTED_GRAPH, false).unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().starts_with("line 3, column 3: "), "{err}");
    assert_eq!(quads(&c), before);
}

#[test]
fn a_tuple_the_model_does_not_allow_rejects_the_whole_file() {
    let c = populated();
    let revision = c.state().revision;
    let before = quads(&c);
    let text = "<https://clew.dev/id/group/new> <https://clew.dev/rel/member> <https://clew.dev/id/user/zoe> .\n<https://clew.dev/id/group/eng> <https://clew.dev/rel/viewer> <https://clew.dev/id/user/zoe> .\n";
    let err = import(&c, text, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, ServiceError::Import(ImportError::InvalidTuple(_))),
        "{err}"
    );
    assert!(
        message.contains("<https://clew.dev/id/group/eng> <https://clew.dev/rel/viewer> <https://clew.dev/id/user/zoe>"),
        "the error names the triple: {message}"
    );
    assert_eq!(c.store().revision().unwrap(), revision);
    assert_eq!(quads(&c), before);
    assert_eq!(
        check(&c, "user:zoe", "member", "group:new"),
        Decision::Denied
    );

    // Non-tuple data is not allowed in the tuple graph.
    let err = import(
        &c,
        "<http://a.example/s> <http://a.example/p> \"o\" .\n",
        RdfFormat::Turtle,
        TUPLES_GRAPH,
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a relationship tuple"),
        "{err}"
    );
    // Clew's own graphs cannot be imported into, as the target or named in a dataset.
    for g in [LOG_GRAPH, MODELS_GRAPH] {
        let err = import(&c, TURTLE, RdfFormat::Turtle, g, false).unwrap_err();
        assert!(
            matches!(err, ServiceError::Import(ImportError::ReadOnlyGraph(_))),
            "{err}"
        );
        let nq =
            format!("<http://a.example/s> <http://a.example/p> <http://a.example/o> <{g}> .\n");
        let err = import(&c, &nq, RdfFormat::NQuads, IMPORTED_GRAPH, false).unwrap_err();
        assert!(
            matches!(err, ServiceError::Import(ImportError::ReadOnlyGraph(_))),
            "{err}"
        );
    }
    assert_eq!(c.store().revision().unwrap(), revision);
    assert_eq!(quads(&c), before);
}

#[test]
fn several_documents_are_one_revision_or_nothing() {
    let c = clew();
    let revision = c.state().revision;
    let good = c
        .parse_rdf(
            TURTLE.as_bytes(),
            &source(RdfFormat::Turtle, IMPORTED_GRAPH),
        )
        .unwrap();
    let bad = c
        .parse_rdf(
            b"<https://clew.dev/id/folder/x> <https://clew.dev/rel/member> <https://clew.dev/id/user/zoe> .",
            &source(RdfFormat::NTriples, "http://example.com/other"),
        )
        .unwrap();
    assert!(
        c.import_documents(&[good.clone(), bad], false, "import:a,b")
            .is_err()
    );
    assert_eq!(c.store().revision().unwrap(), revision);
    assert!(quads(&c).is_empty());
    let tuples = c
        .tuple_document(
            &[Tuple::parse("user:zoe", "member", "group:eng").unwrap()],
            TUPLES_GRAPH,
        )
        .unwrap();
    let out = c
        .import_documents(&[good, tuples], false, "import:a,b")
        .unwrap();
    assert_eq!(out.revision, revision + 1);
    assert_eq!(
        check(&c, "user:zoe", "viewer", "folder:docs"),
        Decision::Allowed
    );
    assert_eq!(
        check(&c, "user:bob", "viewer", "folder:docs"),
        Decision::Allowed
    );
}

#[test]
fn replace_removes_what_the_file_no_longer_has() {
    let c = clew();
    let first = "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> , <https://clew.dev/id/user/bob> .\n";
    let second = "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> .\n";
    import(&c, first, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap();
    // Something in another graph stays.
    import(
        &c,
        "<https://clew.dev/id/group/ops> <https://clew.dev/rel/member> <https://clew.dev/id/user/bob> .",
        RdfFormat::NTriples,
        "http://example.com/other",
        false,
    )
    .unwrap();
    assert_eq!(
        check(&c, "user:bob", "member", "group:eng"),
        Decision::Allowed
    );
    // Without replace, the second file adds nothing.
    let out = import(&c, second, RdfFormat::Turtle, IMPORTED_GRAPH, false).unwrap();
    assert!(!out.changed);
    assert_eq!(
        check(&c, "user:bob", "member", "group:eng"),
        Decision::Allowed
    );
    // With it, bob is gone.
    let revision = c.state().revision;
    let out = import(&c, second, RdfFormat::Turtle, IMPORTED_GRAPH, true).unwrap();
    assert_eq!(
        out,
        ImportOutcome {
            revision: revision + 1,
            changed: true,
            quads_added: 0,
            quads_removed: 1,
            tuples_changed: 1,
        }
    );
    assert_eq!(
        check(&c, "user:bob", "member", "group:eng"),
        Decision::Denied
    );
    assert_eq!(
        check(&c, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
    assert_eq!(
        check(&c, "user:bob", "member", "group:ops"),
        Decision::Allowed
    );
    // The index matches a fresh load of the store.
    let fresh_quads = quads(&c);
    assert_eq!(fresh_quads.len(), 2, "{fresh_quads:?}");
}

#[test]
fn dataset_graphs_are_kept_unless_the_graph_is_forced() {
    let nq = "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> <http://example.com/g1> .\n<http://a.example/s> <http://a.example/p> \"o\" .\n";
    let c = clew();
    import(&c, nq, RdfFormat::NQuads, IMPORTED_GRAPH, false).unwrap();
    assert_eq!(
        quads(&c),
        vec![
            format!("<http://a.example/s> <http://a.example/p> \"o\" <{IMPORTED_GRAPH}> ."),
            "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/anne> <http://example.com/g1> .".to_string(),
        ]
    );
    assert_eq!(
        check(&c, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
    let c = clew();
    c.import_rdf(
        nq.as_bytes(),
        &RdfImport {
            source: RdfSource {
                force_graph: true,
                ..source(RdfFormat::NQuads, "http://example.com/forced")
            },
            replace: false,
            log_source: "import:test",
        },
    )
    .unwrap();
    assert!(
        quads(&c)
            .iter()
            .all(|l| l.ends_with("<http://example.com/forced> .")),
        "{:?}",
        quads(&c)
    );
    // A base IRI resolves relative IRIs.
    let c = clew();
    c.import_rdf(
        b"<group/eng> <https://clew.dev/rel/member> <user/anne> .",
        &RdfImport {
            source: RdfSource {
                base_iri: Some("https://clew.dev/id/"),
                ..source(RdfFormat::Turtle, IMPORTED_GRAPH)
            },
            replace: false,
            log_source: "import:test",
        },
    )
    .unwrap();
    assert_eq!(
        check(&c, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
}

#[test]
fn tuple_files_import_and_export() {
    let c = populated();
    for format in [TupleFormat::JsonLines, TupleFormat::Json, TupleFormat::Yaml] {
        let text = c.export_tuples(format, None).unwrap();
        let text = String::from_utf8(text).unwrap();
        let tuples = parse_tuples(&text, format).unwrap();
        // Five relationship tuples in the imported graph, two written.
        assert_eq!(tuples.len(), 7, "{format:?}\n{text}");
        assert!(
            tuples.iter().any(|t| t.condition.is_some()),
            "{format:?}: the condition is kept\n{text}"
        );
        let b = clew();
        let doc = b.tuple_document(&tuples, TUPLES_GRAPH).unwrap();
        let out = b.import_documents(&[doc], false, "import:tuples").unwrap();
        assert_eq!(out.tuples_changed, 7, "{format:?}");
        assert_eq!(
            String::from_utf8(b.export_tuples(format, None).unwrap()).unwrap(),
            text,
            "{format:?}"
        );
        assert_eq!(
            check(&b, "user:bob", "viewer", "folder:docs"),
            Decision::Allowed
        );
    }
    let jsonl = String::from_utf8(c.export_tuples(TupleFormat::JsonLines, None).unwrap()).unwrap();
    assert_eq!(jsonl.lines().count(), 7);
    assert!(
        jsonl.lines().next().unwrap().starts_with('{'),
        "one object per line: {jsonl}"
    );

    // Importing a tuple file again with a changed condition updates the tuple in place, and
    // replace drops what the file no longer has.
    let b = clew();
    let v1 = "{\"user\":\"user:anne\",\"relation\":\"member\",\"object\":\"group:eng\"}\n{\"user\":\"user:bob\",\"relation\":\"member\",\"object\":\"group:eng\"}\n";
    let tuples = parse_tuples(v1, TupleFormat::JsonLines).unwrap();
    let doc = b.tuple_document(&tuples, TUPLES_GRAPH).unwrap();
    b.import_documents(&[doc], false, "import:v1").unwrap();
    assert_eq!(
        check(&b, "user:bob", "member", "group:eng"),
        Decision::Allowed
    );
    let v2 = "- {user: 'user:anne', relation: member, object: 'group:eng'}\n";
    let tuples = parse_tuples(v2, TupleFormat::Yaml).unwrap();
    let doc = b.tuple_document(&tuples, TUPLES_GRAPH).unwrap();
    let out = b.import_documents(&[doc], true, "import:v2").unwrap();
    assert_eq!(out.quads_removed, 1);
    assert_eq!(
        check(&b, "user:bob", "member", "group:eng"),
        Decision::Denied
    );
    assert_eq!(
        check(&b, "user:anne", "member", "group:eng"),
        Decision::Allowed
    );
    let cond = "{\"user\":\"user:anne\",\"relation\":\"viewer\",\"object\":\"folder:x\",\"condition\":{\"name\":\"weekday\",\"context\":{\"day\":\"monday\"}}}\n";
    for day in ["monday", "sunday"] {
        let text = cond.replace("monday", day);
        let tuples = parse_tuples(&text, TupleFormat::JsonLines).unwrap();
        let doc = b.tuple_document(&tuples, TUPLES_GRAPH).unwrap();
        b.import_documents(&[doc], false, "import:cond").unwrap();
    }
    let stored = b.store().read_tuples(&Default::default()).unwrap();
    let anne_x: Vec<&Tuple> = stored.iter().filter(|t| t.object.id == "x").collect();
    assert_eq!(anne_x.len(), 1);
    let ctx = &anne_x[0].condition.as_ref().unwrap().context;
    assert_eq!(ctx["day"], "sunday");

    // A tuple the model does not allow rejects the whole file.
    let revision = b.state().revision;
    let bad = "{\"user\":\"user:zoe\",\"relation\":\"member\",\"object\":\"group:eng\"}\n{\"user\":\"user:zoe\",\"relation\":\"nope\",\"object\":\"group:eng\"}\n";
    let tuples = parse_tuples(bad, TupleFormat::JsonLines).unwrap();
    let doc = b.tuple_document(&tuples, TUPLES_GRAPH).unwrap();
    let err = b.import_documents(&[doc], false, "import:bad").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(b.store().revision().unwrap(), revision);
    assert_eq!(
        check(&b, "user:zoe", "member", "group:eng"),
        Decision::Denied
    );
}

#[test]
fn tuple_file_syntax_errors_name_line_and_column() {
    let at = |text: &str, format| match parse_tuples(text, format) {
        Err(ImportError::Syntax {
            location: Some(l), ..
        }) => (l.line, l.column),
        other => panic!("{other:?}"),
    };
    let jsonl = "{\"user\":\"user:a\",\"relation\":\"member\",\"object\":\"group:g\"}\n\n{\"user\":\"user:a\" \"relation\":\"member\"}\n";
    assert_eq!(at(jsonl, TupleFormat::JsonLines), (3, 18));
    let bad_user = "{\"user\":\"user a\",\"relation\":\"member\",\"object\":\"group:g\"}\n";
    assert_eq!(at(bad_user, TupleFormat::JsonLines).0, 1);
    let yaml = "- {user: 'user:a', relation: member, object: 'group:g'}\n- {user: 'user:a', relation: [member, object: 'group:g'}\n";
    assert_eq!(at(yaml, TupleFormat::Yaml).0, 2);
    let json = "[\n  {\"user\": \"user:a\", \"relation\": \"member\", \"object\": \"group:g\"},\n  {\"user\": \"user:a\",, }\n]";
    assert_eq!(at(json, TupleFormat::Json), (3, 21));
}

mod http {
    use super::*;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use clew::server::{AppState, Config, router};
    use std::sync::Arc;
    use tower::ServiceExt;

    async fn call(
        app: &axum::Router,
        method: Method,
        uri: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Option<String>, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let revision = resp
            .headers()
            .get("x-clew-revision")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, revision, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn import_and_export_over_http() {
        let clew = Arc::new(clew());
        let app = router(Arc::new(AppState::new(clew.clone(), Config::default())));
        let revision = clew.state().revision;
        let (s, _, body) = call(
            &app,
            Method::POST,
            "/v1/import",
            "text/turtle; charset=utf-8",
            TURTLE,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["revision"], revision + 1);
        assert_eq!(v["quads_added"], 7);
        assert_eq!(v["tuples_changed"], 5);
        assert_eq!(
            check(&clew, "user:bob", "viewer", "folder:docs"),
            Decision::Allowed
        );
        // A syntax error: 400 with line and column, nothing stored.
        let (s, _, body) = call(
            &app,
            Method::POST,
            "/v1/import?graph=http://example.com/g",
            "application/n-triples",
            "<http://a.example/s> <http://a.example/p> <http://a.example/o> .\n<http://a.example/s> <http://a.example/p> .\n",
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "import_syntax");
        assert_eq!(v["details"]["line"], 2, "{v}");
        assert!(v["details"]["column"].as_u64().is_some(), "{v}");
        assert_eq!(clew.store().revision().unwrap(), revision + 1);
        // Clew's graphs are read-only; an unknown media type is a 415.
        let (s, _, _) = call(
            &app,
            Method::POST,
            &format!("/v1/import?graph={LOG_GRAPH}"),
            "text/turtle",
            TURTLE,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _, _) = call(&app, Method::POST, "/v1/import", "text/csv", "a,b").await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Tuple files too, into the tuple graph.
        let (s, _, body) = call(
            &app,
            Method::POST,
            "/v1/import",
            "application/jsonl",
            "{\"user\":\"user:zoe\",\"relation\":\"member\",\"object\":\"group:eng\"}\n",
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            clew.store().read_tuples(&Default::default()).unwrap().len(),
            1
        );
        // Export: the body is the serialization, at the revision the header names.
        let (s, rev, body) = call(&app, Method::GET, "/v1/export", "", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(rev, Some((revision + 2).to_string()));
        assert_eq!(body.lines().count(), 8, "{body}");
        let (s, _, body) = call(
            &app,
            Method::GET,
            &format!("/v1/export?format=turtle&graph={IMPORTED_GRAPH}"),
            "",
            "",
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert!(body.contains("@prefix rel:"), "{body}");
        let (s, _, body) = call(&app, Method::GET, "/v1/export?format=yaml", "", "").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(parse_tuples(&body, TupleFormat::Yaml).unwrap().len(), 6);
        let (s, _, _) = call(&app, Method::GET, "/v1/export?format=turtle", "", "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "two graphs, no graph named");
        let (s, _, _) = call(&app, Method::GET, "/v1/export?format=csv", "", "").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}

/// `clew import` and `clew export` on a store directory.
#[cfg(feature = "rocksdb")]
mod cli {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Output};

    fn clew_cmd(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_clew"))
            .args(args)
            .output()
            .unwrap()
    }

    fn text(o: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    fn write(dir: &Path, name: &str, content: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }

    fn state(store: &str) -> (u64, Vec<String>) {
        let c = Clew::open(Path::new(store)).unwrap();
        (c.state().revision, quads(&c))
    }

    #[test]
    fn import_is_one_revision_and_a_syntax_error_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let s = store.to_str().unwrap();
        let model = write(dir.path(), "model.fga", MODEL);
        let out = clew_cmd(&["load", "--store", s, "--model", &model]);
        assert!(out.status.success(), "{}", text(&out));
        let ttl = write(dir.path(), "kg.ttl", TURTLE);
        let jsonl = write(
            dir.path(),
            "t.jsonl",
            "{\"user\":\"user:zoe\",\"relation\":\"member\",\"object\":\"group:eng\"}\n",
        );
        // Two files, one revision.
        let out = clew_cmd(&["import", "--store", s, &ttl, &jsonl]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("at revision 2"), "{}", text(&out));
        let (revision, before) = state(s);
        assert_eq!(revision, 2);
        assert_eq!(before.len(), 8);
        let out = clew_cmd(&["check", "--store", s, "user:zoe", "viewer", "folder:docs"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));

        // A syntax error in the second file: FILE:LINE:COLUMN, exit 1, nothing stored.
        let good = write(
            dir.path(),
            "good.nt",
            "<https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/yan> .\n",
        );
        for (name, content, at) in [
            (
                "bad.ttl",
                "@prefix rel: <https://clew.dev/rel/> .\n\n<https://clew.dev/id/group/eng> rel:member $ .\n",
                ":3:44: ",
            ),
            (
                "bad.nq",
                "<http://a.example/s> <http://a.example/p> .\n",
                ":1:43: ",
            ),
            (
                "bad.jsonl",
                "{\"user\":\"user:a\" \"relation\":\"member\"}\n",
                ":1:18: ",
            ),
        ] {
            let bad = write(dir.path(), name, content);
            let out = clew_cmd(&["import", "--store", s, "--replace", &good, &bad]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.starts_with(&format!("{bad}{at}")), "{stderr}");
            assert_eq!(state(s), (revision, before.clone()), "{name}");
        }
        // A tuple the model does not allow: exit 1, nothing stored.
        let bad = write(
            dir.path(),
            "bad.nt",
            "<https://clew.dev/id/group/eng> <https://clew.dev/rel/viewer> <https://clew.dev/id/user/yan> .\n",
        );
        let out = clew_cmd(&["import", "--store", s, &good, &bad]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("rel/viewer"), "{}", text(&out));
        assert_eq!(state(s), (revision, before.clone()));

        // Export and re-import into a fresh store: the same quads.
        let nq = dir.path().join("all.nq");
        let out = clew_cmd(&["export", "--store", s, "-o", nq.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        let out = clew_cmd(&["export", "--store", s, "--format", "jsonl"]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
        let fresh = dir.path().join("fresh");
        let f = fresh.to_str().unwrap();
        let out = clew_cmd(&["load", "--store", f, "--model", &model]);
        assert!(out.status.success(), "{}", text(&out));
        let out = clew_cmd(&["import", "--store", f, nq.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(state(f).1, before);
        let out = clew_cmd(&["export", "--store", s, "--format", "turtle"]);
        assert_eq!(out.status.code(), Some(2), "two graphs: {}", text(&out));
    }
}
