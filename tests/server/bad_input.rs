//! Bad input over a real socket. Each case in the table is sent as raw bytes with its own
//! method, headers and content type, and must get
//!
//! * the expected 4xx status, as `application/json`;
//! * the body `{code, message, details}`: `code` the expected stable `snake_case` name,
//!   `message` non-empty, `details` an object;
//! * and no effect: the revision, the stored tuples and the model versions are what they were.
//!
//! The server runs with small limits (body, batch, page, depth) so each limit can be crossed.
//! SPARQL cases join the table through [`sparql_cases`].

use crate::harness::{MODEL, Res, Server, read_response};
use serde_json::{Value, json};
use std::io::Write;

/// One bad request and the error it must get.
pub struct Case {
    pub name: &'static str,
    pub method: &'static str,
    pub path: String,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    pub code: &'static str,
}

const JSON: Option<&str> = Some("application/json");
const MAX_BODY: usize = 16 * 1024;

fn post(name: &'static str, path: &str, body: Value, status: u16, code: &'static str) -> Case {
    raw(name, "POST", path, JSON, body.to_string(), status, code)
}

fn raw(
    name: &'static str,
    method: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        content_type,
        headers: Vec::new(),
        body: body.into(),
        status,
        code,
    }
}

fn t(user: &str, relation: &str, object: &str) -> Value {
    json!({"user": user, "relation": relation, "object": object})
}

fn check(user: &str, relation: &str, object: &str) -> Value {
    t(user, relation, object)
}

/// The tuples the server holds before the cases run.
fn setup() -> Vec<Value> {
    vec![
        t("user:anne", "viewer", "doc:d1"),
        t("user:anne", "viewer", "doc:d2"),
        t("group:eng#member", "viewer", "doc:d3"),
        t("user:bob", "member", "group:eng"),
    ]
}

/// The table. `cursor` is a lookup cursor the server issued for anne's viewable docs.
fn cases(cursor: &str, revision: u64) -> Vec<Case> {
    let ok_check = check("user:anne", "viewer", "doc:d1");
    let with = |extra: Value| {
        let mut b = ok_check.clone();
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    let new = t("user:zed", "viewer", "doc:new");
    let many: Vec<Value> = (0..101)
        .map(|i| t(&format!("user:m{i}"), "viewer", "doc:many"))
        .collect();
    let lookup = json!({"user": "user:anne", "relation": "viewer", "object_type": "doc"});
    let lookup_with = |extra: Value| {
        let mut b = lookup.clone();
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    #[rustfmt::skip]
    let mut table = vec![
        // Syntax.
        raw("truncated JSON", "POST", "/v1/check", JSON, "{\"user\": ", 400, "malformed_json"),
        raw("empty body", "POST", "/v1/tuples/write", JSON, "", 400, "malformed_json"),
        raw("trailing garbage", "POST", "/v1/tuples/write", JSON,
            format!("{} x", json!({"writes": [new]})), 400, "malformed_json"),
        raw("invalid UTF-8", "POST", "/v1/check", JSON, b"{\"user\": \"\xff\"}".to_vec(), 400, "malformed_json"),
        // Shape and types.
        post("array, not object", "/v1/tuples/write", json!([new]), 422, "invalid_request"),
        post("missing field", "/v1/check", json!({"user": "user:anne", "relation": "viewer"}), 422, "invalid_request"),
        post("number for string", "/v1/check", with(json!({"user": 5})), 422, "invalid_request"),
        post("negative revision", "/v1/check", with(json!({"at_least_as_fresh": -1})), 422, "invalid_request"),
        post("string revision", "/v1/check", with(json!({"at_least_as_fresh": "1"})), 422, "invalid_request"),
        post("writes not a list", "/v1/tuples/write", json!({"writes": new}), 422, "invalid_request"),
        // Unknown fields, at every depth.
        post("unknown field", "/v1/check", with(json!({"explian": true})), 422, "invalid_request"),
        post("unknown field in a write", "/v1/tuples/write",
            json!({"writes": [{"user": "user:zed", "relation": "viewer", "object": "doc:new", "colour": "red"}]}),
            422, "invalid_request"),
        post("unknown field in a condition", "/v1/tuples/write",
            json!({"writes": [{"user": "user:zed", "relation": "viewer", "object": "doc:new",
                               "condition": {"name": "x", "contxt": {}}}]}),
            422, "invalid_request"),
        post("unknown field in a precondition", "/v1/tuples/write",
            json!({"writes": [new], "preconditions": [{"user": "user:anne", "relation": "viewer",
                                                       "object": "doc:d1", "exists": true, "really": true}]}),
            422, "invalid_request"),
        post("unknown field in a batch item", "/v1/batch-check",
            json!({"checks": [with(json!({"contxt": {}}))]}), 422, "invalid_request"),
        post("unknown field in a read", "/v1/tuples/read", json!({"objct": "doc:d1"}), 422, "invalid_request"),
        // Size limits.
        post("body over --max-body-bytes", "/v1/tuples/write",
            json!({"writes": [t("user:zed", "viewer", &format!("doc:{}", "x".repeat(MAX_BODY)))]}),
            413, "body_too_large"),
        post("batch over --max-batch", "/v1/batch-check",
            json!({"checks": [ok_check, ok_check, ok_check, ok_check]}), 400, "too_many_checks"),
        post("candidates over --max-batch", "/v1/filter",
            lookup_with(json!({"candidates": ["doc:d1", "doc:d2", "doc:d3", "doc:d4"]})), 400, "too_many_candidates"),
        post("write over the tuple limit", "/v1/tuples/write", json!({"writes": many}), 400, "too_many_tuples"),
        post("read page over --max-page-size", "/v1/tuples/read", json!({"page_size": 11}), 400, "invalid_page_size"),
        post("zero read page", "/v1/tuples/read", json!({"page_size": 0}), 400, "invalid_page_size"),
        post("lookup page over --max-page-size", "/v1/lookup", lookup_with(json!({"limit": 11})), 400, "invalid_page_size"),
        post("depth over --max-depth", "/v1/check", with(json!({"max_depth": 11})), 400, "depth_limit"),
        post("zero depth", "/v1/check", with(json!({"max_depth": 0})), 400, "invalid_depth"),
        // Ids, types, relations.
        post("user without type", "/v1/check", check("anne", "viewer", "doc:d1"), 400, "invalid_id"),
        post("object without id", "/v1/check", check("user:anne", "viewer", "doc:"), 400, "invalid_id"),
        post("unknown type", "/v1/check", check("user:anne", "viewer", "folder:f1"), 400, "unknown_type"),
        post("unknown relation", "/v1/check", check("user:anne", "editor", "doc:d1"), 400, "unknown_relation"),
        post("unknown type in lookup", "/v1/lookup",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "folder"}), 400, "unknown_type"),
        post("write to an unknown type", "/v1/tuples/write",
            json!({"writes": [t("user:zed", "viewer", "folder:f1")]}), 400, "invalid_tuple"),
        post("write of an unknown relation", "/v1/tuples/write",
            json!({"writes": [t("user:zed", "editor", "doc:d1")]}), 400, "invalid_tuple"),
        post("write of a user type the relation does not admit", "/v1/tuples/write",
            json!({"writes": [t("group:eng", "viewer", "doc:d1")]}), 400, "invalid_tuple"),
        post("bad relation name in a read", "/v1/tuples/read", json!({"relation": "no such"}), 400, "invalid_relation"),
        raw("bad model version id", "GET", "/v1/model/versions/not-an-id", None, "", 400, "invalid_id"),
        raw("model version id not UTF-8", "GET", "/v1/model/versions/%FF", None, "", 400, "invalid_path"),
        // Atomicity: one bad tuple at the end of a batch stops the whole batch.
        post("good tuples then a bad one", "/v1/tuples/write",
            json!({"writes": [new, t("user:zed", "viewer", "doc:other"), t("user:zed", "viewer", "folder:f1")]}),
            400, "invalid_tuple"),
        post("duplicate in one write", "/v1/tuples/write", json!({"writes": [new, new]}), 400, "duplicate_tuple"),
        post("write of an existing tuple", "/v1/tuples/write",
            json!({"writes": [new, t("user:anne", "viewer", "doc:d1")]}), 409, "tuple_exists"),
        post("delete of a missing tuple", "/v1/tuples/write",
            json!({"writes": [new], "deletes": [t("user:nobody", "viewer", "doc:d1")]}), 409, "tuple_not_found"),
        post("failed precondition", "/v1/tuples/write",
            json!({"writes": [new], "preconditions": [{"user": "user:anne", "relation": "viewer",
                                                       "object": "doc:d1", "exists": false}]}),
            409, "precondition_failed"),
        post("empty write", "/v1/tuples/write", json!({"writes": [], "deletes": []}), 400, "empty_write"),
        post("invalid model", "/v1/model", json!({"dsl": "model\n  schema 1.1\ntype"}), 400, "invalid_model"),
        // Revisions and cursors.
        post("revision from the future", "/v1/check",
            with(json!({"at_least_as_fresh": revision + 100})), 400, "future_revision"),
        post("read cursor not issued by the API", "/v1/tuples/read", json!({"cursor": "zzz"}), 400, "invalid_cursor"),
        post("read cursor with bad hex", "/v1/tuples/read", json!({"cursor": "t1.zz"}), 400, "invalid_cursor"),
        post("lookup cursor not issued by the API", "/v1/lookup",
            lookup_with(json!({"cursor": "c1.garbage"})), 400, "invalid_cursor"),
        post("lookup cursor of another request", "/v1/lookup",
            json!({"user": "user:bob", "relation": "viewer", "object_type": "doc", "cursor": cursor}),
            400, "cursor_mismatch"),
        post("read cursor given to lookup", "/v1/lookup", lookup_with(json!({"cursor": "t1.00"})), 400, "invalid_cursor"),
        raw("watch from the future", "GET", &format!("/v1/watch?since={}", revision + 100), None, "",
            400, "future_revision"),
        raw("watch since not a number", "GET", "/v1/watch?since=abc", None, "", 400, "invalid_query"),
        raw("watch with an unknown parameter", "GET", "/v1/watch?sinse=1", None, "", 400, "invalid_query"),
        raw("AuthZEN explain not a boolean", "POST", "/access/v1/evaluation?explain=maybe", JSON,
            json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "viewer"},
                   "resource": {"type": "doc", "id": "d1"}}).to_string(),
            400, "invalid_query"),
        // Content type.
        raw("text/plain body", "POST", "/v1/check", Some("text/plain"), ok_check.to_string(),
            415, "unsupported_media_type"),
        raw("no content type", "POST", "/v1/check", None, ok_check.to_string(), 415, "unsupported_media_type"),
        raw("form body", "POST", "/v1/tuples/write", Some("application/x-www-form-urlencoded"), "writes=1",
            415, "unsupported_media_type"),
        // Routes and methods.
        raw("unknown route", "GET", "/v2/nothing", None, "", 404, "not_found"),
        raw("misspelt route", "POST", "/v1/chek", JSON, ok_check.to_string(), 404, "not_found"),
        raw("GET on a POST route", "GET", "/v1/check", None, "", 405, "method_not_allowed"),
        raw("DELETE on a POST route", "DELETE", "/v1/tuples/write", None, "", 405, "method_not_allowed"),
        raw("PUT on the model", "PUT", "/v1/model", JSON, json!({"dsl": MODEL}).to_string(), 405, "method_not_allowed"),
        raw("POST on a GET route", "POST", "/v1/revision", JSON, "{}", 405, "method_not_allowed"),
    ];
    // A Last-Event-ID that is not a revision.
    let mut c = raw(
        "watch with a bad Last-Event-ID",
        "GET",
        "/v1/watch?since=0",
        None,
        "",
        400,
        "invalid_cursor",
    );
    c.headers.push(("Last-Event-ID", "abc".to_string()));
    table.push(c);
    table
}

/// SPARQL cases in the same form: each must be a named 4xx that changes nothing.
pub fn sparql_cases() -> Vec<Case> {
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const UPDATE: Option<&str> = Some("application/sparql-update");
    let form = |pairs: &[(&str, &str)]| serde_urlencoded::to_string(pairs).unwrap_or_default();
    let id = "https://clew.dev/id/";
    let rel = "https://clew.dev/rel/";
    let good = format!("<{id}doc/d9> <{rel}viewer> <{id}user/zed>");
    vec![
        raw(
            "sparql query syntax",
            "POST",
            "/sparql",
            FORM,
            form(&[("query", "SELECT * WHERE { ?s ?p }")]),
            400,
            "sparql_syntax",
        ),
        raw(
            "sparql query syntax by GET",
            "GET",
            &format!("/sparql?{}", form(&[("query", "SELEKT")])),
            None,
            "",
            400,
            "sparql_syntax",
        ),
        raw(
            "sparql update syntax",
            "POST",
            "/sparql",
            UPDATE,
            "INSERT DATA { ?s ?p ?o }",
            400,
            "sparql_syntax",
        ),
        raw(
            "sparql update the model forbids (whole update refused)",
            "POST",
            "/sparql",
            UPDATE,
            format!("INSERT DATA {{ {good} . <{id}doc/d9> <{rel}owner> <{id}user/zed> }}"),
            400,
            "sparql_invalid_tuple",
        ),
        raw(
            "sparql update with a user type the relation does not allow",
            "POST",
            "/sparql",
            UPDATE,
            format!("INSERT DATA {{ {good} . <{id}doc/d9> <{rel}viewer> <{id}doc/d1> }}"),
            400,
            "sparql_invalid_tuple",
        ),
        raw(
            "sparql update of the change log",
            "POST",
            "/sparql",
            UPDATE,
            "DELETE WHERE { GRAPH <https://clew.dev/graph/log> { ?s ?p ?o } }",
            403,
            "sparql_read_only_graph",
        ),
        raw(
            "sparql CLEAR ALL",
            "POST",
            "/sparql",
            UPDATE,
            "CLEAR ALL",
            403,
            "sparql_read_only_graph",
        ),
        raw(
            "sparql LOAD refused",
            "POST",
            "/sparql",
            UPDATE,
            "LOAD <http://127.0.0.1:9/x.ttl>",
            403,
            "sparql_refused",
        ),
        raw(
            "sparql SERVICE refused",
            "POST",
            "/sparql",
            FORM,
            form(&[(
                "query",
                "SELECT * { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }",
            )]),
            403,
            "sparql_refused",
        ),
        raw(
            "sparql update by GET",
            "GET",
            &format!("/sparql?{}", form(&[("update", "CLEAR DEFAULT")])),
            None,
            "",
            400,
            "invalid_request",
        ),
        raw(
            "sparql with neither query nor update",
            "POST",
            "/sparql",
            FORM,
            "",
            400,
            "invalid_request",
        ),
        raw(
            "sparql JSON body",
            "POST",
            "/sparql",
            JSON,
            "{}",
            415,
            "unsupported_media_type",
        ),
        {
            let mut c = raw(
                "sparql unacceptable format",
                "POST",
                "/sparql",
                FORM,
                form(&[("query", "ASK {}")]),
                406,
                "not_acceptable",
            );
            c.headers.push(("accept", "image/png".to_string()));
            c
        },
        raw(
            "sparql body over the limit",
            "POST",
            "/sparql",
            UPDATE,
            vec![b' '; MAX_BODY + 1],
            413,
            "body_too_large",
        ),
    ]
}

/// What a bad request must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    revision: u64,
    tuples: Vec<Value>,
    models: Value,
}

fn snapshot(server: &Server) -> Res<Snapshot> {
    let (_, models) = server.get("/v1/model/versions")?;
    Ok(Snapshot {
        revision: server.revision()?,
        tuples: server.read_all(&json!({}), 10)?,
        models: models["versions"].clone(),
    })
}

fn is_snake_case(code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase())
        && code
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !code.ends_with('_')
        && !code.contains("__")
}

fn send(server: &Server, case: &Case) -> Res<(u16, String, Value)> {
    let mut req = ureq::http::Request::builder()
        .method(case.method)
        .uri(server.url(&case.path));
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in &case.headers {
        req = req.header(*k, v);
    }
    let resp = if case.body.is_empty() && case.method != "POST" {
        server.agent.run(req.body(())?)?
    } else {
        server.agent.run(req.body(case.body.clone())?)?
    };
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (status, v) = crate::harness::reply(resp)?;
    Ok((status, ct, v))
}

#[test]
fn bad_requests_get_a_named_json_4xx_and_change_nothing() -> Res {
    let server = Server::start(&[
        "--memory",
        "--max-body-bytes",
        &MAX_BODY.to_string(),
        "--max-batch",
        "3",
        "--max-page-size",
        "10",
        "--max-depth",
        "10",
    ])?;
    server.write_model(MODEL)?;
    let revision = server.write(&json!({ "writes": setup() }))?;
    let page = server.ok(
        "/v1/lookup",
        &json!({"user": "user:anne", "relation": "viewer", "object_type": "doc", "limit": 1}),
    )?;
    let cursor = page["cursor"]
        .as_str()
        .ok_or_else(|| format!("no cursor in {page}"))?
        .to_string();
    let before = snapshot(&server)?;
    assert_eq!(before.tuples.len(), setup().len());
    let mut failures = Vec::new();
    let table: Vec<Case> = cases(&cursor, revision)
        .into_iter()
        .chain(sparql_cases())
        .collect();
    for case in &table {
        let (status, ct, v) = send(&server, case)
            .map_err(|e| format!("{} ({} {}): {e}", case.name, case.method, case.path))?;
        let code = v["code"].as_str().unwrap_or("");
        let mut wrong = Vec::new();
        if status != case.status {
            wrong.push(format!("status {status}, expected {}", case.status));
        }
        if !ct.starts_with("application/json") {
            wrong.push(format!("content-type '{ct}'"));
        }
        if code != case.code || !is_snake_case(code) {
            wrong.push(format!("code '{code}', expected '{}'", case.code));
        }
        if v["message"].as_str().is_none_or(str::is_empty) {
            wrong.push("no message".to_string());
        }
        if !v["details"].is_object() {
            wrong.push("details is not an object".to_string());
        }
        // On the same pooled connections: a response after which the server closes the
        // connection must say so (`connection: close`), or this reuse fails.
        let after = snapshot(&server).map_err(|e| format!("after {}: {e}", case.name))?;
        if after != before {
            wrong.push(format!("the store changed: {before:?} → {after:?}"));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{} ({} {}): {}; body {v}",
                case.name,
                case.method,
                case.path,
                wrong.join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
    // The server is still healthy, and a good request still works.
    assert_eq!(server.get("/healthz")?.0, 200);
    assert!(server.allowed("user:anne", "viewer", "doc:d1")?);
    Ok(())
}

/// A body over the limit is refused before it is read; if the server then closes the
/// connection (it cannot cheaply drain a large remainder), the 413 must say
/// `connection: close` — otherwise a keep-alive client reuses the connection and its next
/// request fails. Either the 413 says so, or the connection still serves a request.
#[test]
fn an_oversized_body_leaves_the_connection_usable_or_says_it_is_closing() -> Res {
    let server = Server::start(&["--memory", "--max-body-bytes", &MAX_BODY.to_string()])?;
    let body = json!({"user": "user:a", "relation": "viewer", "object": format!("doc:{}", "x".repeat(4 * MAX_BODY))})
        .to_string();
    for _ in 0..3 {
        let mut tcp = std::net::TcpStream::connect(server.addr)?;
        write!(
            tcp,
            "POST /v1/check HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            server.addr,
            body.len()
        )?;
        tcp.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (status, headers, v) = read_response(&mut tcp)?;
        assert_eq!(status, 413, "{v}");
        assert_eq!(v["code"], "body_too_large", "{v}");
        let closing = headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        if !closing {
            let next = write!(
                tcp,
                "GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n",
                server.addr
            )
            .map_err(Into::into)
            .and_then(|()| read_response(&mut tcp));
            assert!(
                next.as_ref().is_ok_and(|r| r.0 == 200),
                "the 413 kept the connection alive, but the next request on it failed: {:?}",
                next.err()
            );
        }
    }
    Ok(())
}
