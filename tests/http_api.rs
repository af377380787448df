//! The HTTP API in process (the router driven with `tower::ServiceExt::oneshot`, no sockets):
//! the route table, the OpenAPI document, and each endpoint's answers and errors.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use clew::server::{AppState, Config, router, routes};
use clew::service::Clew;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

type Res = Result<(), Box<dyn std::error::Error>>;

const MODEL: &str = "model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type document
  relations
    define owner: [user]
    define blocked: [user]
    define viewer: ([user, user:*, group#member] or owner) but not blocked
    define can_read: viewer and reader_ok
    define reader_ok: [user with weekday]
condition weekday(day: string) {
  day != \"sunday\"
}
";

struct Api {
    app: axum::Router,
}

impl Api {
    fn new(config: Config) -> Result<Self, Box<dyn std::error::Error>> {
        let clew = Arc::new(Clew::memory()?);
        Ok(Self {
            app: router(Arc::new(AppState::new(clew, config))),
        })
    }

    fn with_model() -> Result<Self, Box<dyn std::error::Error>> {
        let api = Self::new(Config::default())?;
        Ok(api)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let Ok(req) = req.body(body) else {
            return (StatusCode::IM_A_TEAPOT, Value::Null);
        };
        let Ok(resp) = self.app.clone().oneshot(req).await;
        let status = resp.status();
        // A change stream never ends on its own: report it without reading it.
        let streaming = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            return (status, Value::String("text/event-stream".into()));
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26)
            .await
            .unwrap_or_default();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn ok(&self, path: &str, body: Value) -> Result<Value, String> {
        let (s, v) = self.post(path, body).await;
        if s == StatusCode::OK {
            Ok(v)
        } else {
            Err(format!("{path}: {s} {v}"))
        }
    }

    async fn setup(&self) -> Result<u64, String> {
        self.ok("/v1/model", json!({"dsl": MODEL})).await?;
        let v = self
            .ok(
                "/v1/tuples/write",
                json!({"writes": [
                    {"user": "user:anne", "relation": "member", "object": "group:eng"},
                    {"user": "group:eng#member", "relation": "viewer", "object": "document:d1"},
                    {"user": "user:bob", "relation": "owner", "object": "document:d2"},
                    {"user": "user:*", "relation": "viewer", "object": "document:pub"},
                    {"user": "user:carl", "relation": "blocked", "object": "document:pub"},
                    {"user": "user:anne", "relation": "reader_ok", "object": "document:d1",
                     "condition": {"name": "weekday"}},
                ]}),
            )
            .await?;
        v["revision"]
            .as_u64()
            .ok_or_else(|| format!("no revision in {v}"))
    }

    async fn check(&self, user: &str, relation: &str, object: &str) -> Result<Value, String> {
        self.ok(
            "/v1/check",
            json!({"user": user, "relation": relation, "object": object}),
        )
        .await
    }
}

fn error_code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn every_documented_route_is_served_and_every_route_is_documented() -> Res {
    let api = Api::with_model()?;
    let (s, doc) = api.call(Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    let table = routes();
    let mut documented = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().ok_or("bad path item")? {
            documented += 1;
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            assert!(
                table
                    .iter()
                    .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                "{method} {path} is documented but not in the route table"
            );
            let uri = path.replace("{id}", "abc123");
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes())?;
            let body = (m == Method::POST).then(|| json!({}));
            let (status, v) = api.call(m, &uri, body).await;
            // A 404 may be the answer (no model yet), but never "no such route".
            assert_ne!(error_code(&v), "not_found", "{method} {path}");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
    }
    assert_eq!(documented, table.len(), "every route is documented once");
    // And something that is not a route is a JSON 404.
    let (s, v) = api.call(Method::GET, "/v2/nothing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "not_found");
    let (s, _) = api.call(Method::GET, "/v1/check", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    Ok(())
}

#[tokio::test]
async fn decisions_carry_revision_and_model_and_follow_writes() -> Res {
    let api = Api::with_model()?;
    let rev = api.setup().await?;
    let v = api.check("user:anne", "viewer", "document:d1").await?;
    assert_eq!(v["allowed"], true);
    assert_eq!(v["revision"], rev);
    assert!(v["model_id"].as_str().is_some_and(|m| m.len() == 16));
    assert_eq!(
        api.check("user:bob", "viewer", "document:d1").await?["allowed"],
        false
    );
    assert_eq!(
        api.check("user:zed", "viewer", "document:pub").await?["allowed"],
        true
    );
    assert_eq!(
        api.check("user:carl", "viewer", "document:pub").await?["allowed"],
        false
    );
    // A conditional grant without its parameter is neither allowed nor denied.
    let v = api.check("user:anne", "can_read", "document:d1").await?;
    assert_eq!(v["decision"], "conditional");
    assert_eq!(v["allowed"], false);
    assert_eq!(v["missing"], json!(["day"]));
    let v = api
        .ok(
            "/v1/check",
            json!({"user": "user:anne", "relation": "can_read", "object": "document:d1", "context": {"day": "monday"}}),
        )
        .await?;
    assert_eq!(v["allowed"], true);
    // Explanation: the path names the stored triples.
    let v = api
        .ok(
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:d1", "explain": true}),
        )
        .await?;
    let path = v["explanation"]["path"].as_array().ok_or("no path")?;
    assert!(
        path.iter()
            .any(|s| s["tuple"] == "group:eng#member@user:anne"),
        "{v}"
    );
    let v = api
        .ok(
            "/v1/check",
            json!({"user": "user:bob", "relation": "viewer", "object": "document:d1", "explain": true}),
        )
        .await?;
    assert!(
        v["deny_trace"]["tried"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    // Revoke, then a check at the returned revision denies.
    let w = api
        .ok(
            "/v1/tuples/write",
            json!({"deletes": [{"user": "user:anne", "relation": "member", "object": "group:eng"}]}),
        )
        .await?;
    let r2 = w["revision"].as_u64().ok_or("no revision")?;
    assert_eq!(r2, rev + 1);
    let v = api
        .ok(
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:d1", "at_least_as_fresh": r2}),
        )
        .await?;
    assert_eq!(v["allowed"], false);
    assert_eq!(v["revision"], r2);
    let (s, v) = api
        .post(
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:d1", "at_least_as_fresh": r2 + 5}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&v), "future_revision");
    Ok(())
}

#[tokio::test]
async fn bulk_answers_over_http() -> Res {
    let api = Api::with_model()?;
    let mut writes = Vec::new();
    api.setup().await?;
    for i in 0..25 {
        writes.push(json!({"user": "group:eng#member", "relation": "viewer", "object": format!("document:x{i:02}")}));
    }
    api.ok("/v1/tuples/write", json!({"writes": writes}))
        .await?;
    // Lookup, paged: pages are disjoint and together equal the whole answer.
    let whole = api
        .ok(
            "/v1/lookup",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document"}),
        )
        .await?;
    let all: Vec<String> = serde_json::from_value(whole["objects"].clone())?;
    assert_eq!(all.len(), 27, "{whole}"); // d1, pub, x00..x24
    assert_eq!(whole["truncated"], false);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "limit": 10});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let page = api.ok("/v1/lookup", body).await?;
        let objs: Vec<String> = serde_json::from_value(page["objects"].clone())?;
        paged.extend(objs);
        match page["cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["truncated"], true);
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(paged, all);
    let (s, v) = api
        .post(
            "/v1/lookup",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "cursor": "c1.garbage"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&v), "invalid_cursor");
    // Filter keeps the candidates' order; unknown ids are counted, not permitted.
    let v = api
        .ok(
            "/v1/filter",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document",
                   "candidates": ["document:x03", "document:d2", "document:nope", "document:x01"]}),
        )
        .await?;
    let allowed: Vec<&str> = v["allowed"]
        .as_array()
        .ok_or("no allowed")?
        .iter()
        .filter_map(|i| i["object"].as_str())
        .collect();
    assert_eq!(allowed, ["document:x03", "document:x01"]);
    assert_eq!(v["unknown"], 1);
    assert_eq!(v["denied"], 1);
    assert!(v["plan"]["strategy"].is_string());
    // Subjects: the wildcard, and who it excludes.
    let v = api
        .ok(
            "/v1/subjects",
            json!({"object": "document:pub", "relation": "viewer", "subject_type": "user"}),
        )
        .await?;
    assert_eq!(v["subjects"], json!(["user:*"]));
    assert_eq!(v["excluded"], json!(["user:carl"]));
    let v = api
        .ok(
            "/v1/subjects",
            json!({"object": "document:d1", "relation": "viewer", "subject_type": "group#member"}),
        )
        .await?;
    assert_eq!(v["subjects"], json!(["group:eng#member"]));
    // Batch: duplicates answered once, identically; a bad item fails alone.
    let v = api
        .ok(
            "/v1/batch-check",
            json!({"checks": [
                {"user": "user:anne", "relation": "viewer", "object": "document:x05"},
                {"user": "user:bob", "relation": "viewer", "object": "document:x05"},
                {"user": "user:anne", "relation": "viewer", "object": "document:x05"},
                {"user": "user:anne", "relation": "nope", "object": "document:x05"},
            ]}),
        )
        .await?;
    let r = v["results"].as_array().ok_or("no results")?;
    assert_eq!(r.len(), 4);
    assert_eq!(r[0]["allowed"], true);
    assert_eq!(r[1]["allowed"], false);
    assert_eq!(r[2]["allowed"], true);
    assert_eq!(r[2]["duplicate_of"], 0);
    assert_eq!(r[3]["decision"], "error");
    // Expand.
    let v = api
        .ok(
            "/v1/expand",
            json!({"object": "document:d1", "relation": "owner"}),
        )
        .await?;
    assert!(v["tree"].is_object());
    Ok(())
}

#[tokio::test]
async fn tuple_reads_page_by_pattern_and_writes_honour_preconditions() -> Res {
    let api = Api::with_model()?;
    let rev = api.setup().await?;
    let mut writes = Vec::new();
    for i in 0..7 {
        writes.push(
            json!({"user": format!("user:u{i}"), "relation": "owner", "object": "document:big"}),
        );
    }
    api.ok("/v1/tuples/write", json!({"writes": writes}))
        .await?;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"object": "document:big", "relation": "owner", "page_size": 3});
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let v = api.ok("/v1/tuples/read", body).await?;
        for t in v["tuples"].as_array().ok_or("no tuples")? {
            seen.push(t["user"].as_str().unwrap_or("").to_string());
        }
        match v["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("user:u{i}")).collect::<Vec<_>>()
    );
    // By type only, and by user: the conditional tuple comes back with its condition.
    let v = api
        .ok(
            "/v1/tuples/read",
            json!({"object": "document:", "user": "user:anne"}),
        )
        .await?;
    let t = v["tuples"].as_array().ok_or("no tuples")?;
    assert_eq!(t.len(), 1, "{v}");
    assert_eq!(t[0]["condition"]["name"], "weekday");
    // A failed precondition applies nothing.
    let before = api.call(Method::GET, "/v1/revision", None).await.1["revision"].clone();
    let (s, v) = api
        .post(
            "/v1/tuples/write",
            json!({"writes": [{"user": "user:new", "relation": "owner", "object": "document:d9"}],
                   "preconditions": [{"user": "user:bob", "relation": "owner", "object": "document:d2", "exists": false}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(error_code(&v), "precondition_failed");
    assert_eq!(
        api.call(Method::GET, "/v1/revision", None).await.1["revision"],
        before
    );
    assert_eq!(
        api.check("user:new", "owner", "document:d9").await?["allowed"],
        false
    );
    // The satisfied precondition lets the write through.
    let v = api
        .ok(
            "/v1/tuples/write",
            json!({"writes": [{"user": "user:new", "relation": "owner", "object": "document:d9"}],
                   "preconditions": [{"user": "user:bob", "relation": "owner", "object": "document:d2", "exists": true}]}),
        )
        .await?;
    assert_eq!(v["revision"], rev + 2);
    Ok(())
}

#[tokio::test]
async fn models_are_versioned_and_validated_with_positions() -> Res {
    let api = Api::with_model()?;
    let (s, v) = api.call(Method::GET, "/v1/model", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "no_model");
    let (s, v) = api
        .post(
            "/v1/check",
            json!({"user": "user:a", "relation": "viewer", "object": "document:d"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(error_code(&v), "no_model");
    api.setup().await?;
    let second = MODEL.replace("define owner: [user]", "define owner: [user, group#member]");
    let v = api.ok("/v1/model", json!({"dsl": second})).await?;
    let id2 = v["model_id"].as_str().ok_or("no id")?.to_string();
    let (_, versions) = api.call(Method::GET, "/v1/model/versions", None).await;
    let list = versions["versions"].as_array().ok_or("no versions")?;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["id"], id2);
    assert_eq!(list[1]["current"], true);
    assert_eq!(list[0]["current"], false);
    let first = list[0]["id"].as_str().ok_or("no id")?;
    let (s, v) = api
        .call(Method::GET, &format!("/v1/model/versions/{first}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["dsl"], MODEL);
    let (s, v) = api.call(Method::GET, "/v1/model/versions/ffff", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&v), "model_not_found");
    // Validation reports line and column (1-based) and stores nothing.
    let v = api
        .ok(
            "/v1/model/validate",
            json!({"dsl": "model\n  schema 1.1\ntype user\n  relations\n    define x: [nope]\n"}),
        )
        .await?;
    assert_eq!(v["valid"], false);
    let e = &v["errors"][0];
    assert_eq!(e["line"], 5, "{v}");
    assert!(e["column"].as_u64().is_some_and(|c| c > 1));
    let (s, v) = api
        .post("/v1/model", json!({"dsl": "model\n  schema 1.1\ntype"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&v), "invalid_model");
    assert!(v["details"]["errors"][0]["line"].is_u64());
    let (_, cur) = api.call(Method::GET, "/v1/model", None).await;
    assert_eq!(cur["model_id"], id2);
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_a_named_4xx_and_changes_nothing() -> Res {
    let config = Config {
        max_batch: 3,
        max_depth: 10,
        max_body_bytes: 2048,
        ..Config::default()
    };
    let api = Api::new(config)?;
    api.setup().await?;
    let (_, r0) = api.call(Method::GET, "/v1/revision", None).await;
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/v1/check",
            json!({"user": "user:anne"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/check",
            json!({"user": 5, "relation": "viewer", "object": "document:d1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/check",
            json!({"user": "anne", "relation": "viewer", "object": "document:d1"}),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "nodoc:d1"}),
            StatusCode::BAD_REQUEST,
            "unknown_type",
        ),
        (
            "/v1/check",
            json!({"user": "user:anne", "relation": "nope", "object": "document:d1"}),
            StatusCode::BAD_REQUEST,
            "unknown_relation",
        ),
        (
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:d1", "max_depth": 11}),
            StatusCode::BAD_REQUEST,
            "depth_limit",
        ),
        (
            "/v1/batch-check",
            json!({"checks": [
            {"user": "user:a", "relation": "viewer", "object": "document:d1"},
            {"user": "user:a", "relation": "viewer", "object": "document:d1"},
            {"user": "user:a", "relation": "viewer", "object": "document:d1"},
            {"user": "user:a", "relation": "viewer", "object": "document:d1"}]}),
            StatusCode::BAD_REQUEST,
            "too_many_checks",
        ),
        (
            "/v1/tuples/write",
            json!({"writes": [{"user": "group:eng", "relation": "owner", "object": "document:d1"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_tuple",
        ),
        (
            "/v1/tuples/write",
            json!({"writes": [
            {"user": "user:z", "relation": "owner", "object": "document:d1"},
            {"user": "user:z", "relation": "owner", "object": "document:d1"}]}),
            StatusCode::BAD_REQUEST,
            "duplicate_tuple",
        ),
        (
            "/v1/tuples/write",
            json!({"writes": [{"user": "user:bob", "relation": "owner", "object": "document:d2"}]}),
            StatusCode::CONFLICT,
            "tuple_exists",
        ),
        (
            "/v1/tuples/write",
            json!({"deletes": [{"user": "user:nobody", "relation": "owner", "object": "document:d2"}]}),
            StatusCode::CONFLICT,
            "tuple_not_found",
        ),
        (
            "/v1/tuples/write",
            json!({}),
            StatusCode::BAD_REQUEST,
            "empty_write",
        ),
        (
            "/v1/tuples/write",
            json!({"writes": [], "extra": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/tuples/read",
            json!({"cursor": "zzz"}),
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        (
            "/v1/tuples/read",
            json!({"page_size": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_page_size",
        ),
        (
            "/v1/lookup",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "limit": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_page_size",
        ),
        (
            "/v1/filter",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "candidates": ["a:1", "b:2", "c:3", "d:4"]}),
            StatusCode::BAD_REQUEST,
            "too_many_candidates",
        ),
        (
            "/v1/filter",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "candidates": ["group:eng"]}),
            StatusCode::BAD_REQUEST,
            "invalid_candidate",
        ),
        (
            "/v1/filter",
            json!({"user": "user:anne", "relation": "viewer", "object_type": "document", "candidates": [], "strategy": "magic"}),
            StatusCode::BAD_REQUEST,
            "invalid_strategy",
        ),
        (
            "/v1/model",
            json!({"dsl": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            "/v1/check",
            json!({"user": "user:anne", "relation": "viewer", "object": format!("document:{}", "x".repeat(3000))}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, v) = api.post(path, body.clone()).await;
        assert_eq!(s, status, "{path} {body}: {v}");
        assert_eq!(error_code(&v), code, "{path} {body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(v["details"].is_object(), "{v}");
    }
    // Malformed JSON (not expressible as a Value).
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/check")
        .header("content-type", "application/json")
        .body(Body::from("{\"user\": "))?;
    let resp = api.app.clone().oneshot(req).await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await?)?;
    assert_eq!(error_code(&v), "malformed_json");
    let (_, r1) = api.call(Method::GET, "/v1/revision", None).await;
    assert_eq!(r0, r1, "no bad request changed the store");
    assert_eq!(
        api.check("user:z", "owner", "document:d1").await?["allowed"],
        false
    );
    Ok(())
}

#[tokio::test]
async fn authzen_maps_onto_check_lookup_and_subjects() -> Res {
    let api = Api::with_model()?;
    api.setup().await?;
    let v = api
        .ok(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "viewer"},
                   "resource": {"type": "document", "id": "d1"}}),
        )
        .await?;
    assert_eq!(v["decision"], true);
    assert!(v["context"]["clew"]["revision"].is_u64());
    assert!(v["context"]["clew"].get("explanation").is_none());
    let v = api
        .ok(
            "/access/v1/evaluation?explain=true",
            json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "viewer"},
                   "resource": {"type": "document", "id": "d1"}}),
        )
        .await?;
    assert!(
        v["context"]["clew"]["explanation"]["path"].is_array(),
        "{v}"
    );
    // Missing condition context is a false decision that names what is missing.
    let v = api
        .ok(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "can_read"},
                   "resource": {"type": "document", "id": "d1"}}),
        )
        .await?;
    assert_eq!(v["decision"], false);
    assert_eq!(v["context"]["clew"]["missing"], json!(["day"]));
    // Batch with defaults and semantics.
    let body = |semantic: &str| {
        json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "viewer"},
               "evaluations": [
                   {"resource": {"type": "document", "id": "d1"}},
                   {"resource": {"type": "document", "id": "d2"}},
                   {"resource": {"type": "document", "id": "pub"}}],
               "options": {"evaluations_semantic": semantic}})
    };
    let v = api
        .ok("/access/v1/evaluations", body("execute_all"))
        .await?;
    let d: Vec<bool> = v["evaluations"]
        .as_array()
        .ok_or("none")?
        .iter()
        .filter_map(|e| e["decision"].as_bool())
        .collect();
    assert_eq!(d, [true, false, true]);
    let v = api
        .ok("/access/v1/evaluations", body("deny_on_first_deny"))
        .await?;
    assert_eq!(v["evaluations"].as_array().map(Vec::len), Some(2));
    let v = api
        .ok("/access/v1/evaluations", body("permit_on_first_permit"))
        .await?;
    assert_eq!(v["evaluations"].as_array().map(Vec::len), Some(1));
    // Searches.
    let v = api
        .ok(
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": "anne"}, "action": {"name": "viewer"},
                   "resource": {"type": "document"}}),
        )
        .await?;
    let mut ids: Vec<&str> = v["results"]
        .as_array()
        .ok_or("none")?
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["d1", "pub"]);
    assert_eq!(v["page"]["next_token"], "");
    let v = api
        .ok(
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "owner"},
                   "resource": {"type": "document", "id": "d2"}}),
        )
        .await?;
    assert_eq!(v["results"], json!([{"type": "user", "id": "bob"}]));
    let v = api
        .ok(
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": "bob"}, "resource": {"type": "document", "id": "d2"}}),
        )
        .await?;
    let names: Vec<&str> = v["results"]
        .as_array()
        .ok_or("none")?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["owner", "viewer"]);
    let (s, v) = api
        .call(Method::GET, "/.well-known/authzen-configuration", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v["access_evaluation_endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with("/access/v1/evaluation"))
    );
    Ok(())
}

#[tokio::test]
async fn metrics_count_decisions_and_report_the_revision() -> Res {
    let api = Api::with_model()?;
    let rev = api.setup().await?;
    api.check("user:anne", "viewer", "document:d1").await?;
    api.check("user:bob", "viewer", "document:d1").await?;
    let req = Request::builder().uri("/metrics").body(Body::empty())?;
    let resp = api.app.clone().oneshot(req).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await?
            .to_vec(),
    )?;
    assert!(
        text.contains("clew_decisions_total{operation=\"check\",outcome=\"allowed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("clew_decisions_total{operation=\"check\",outcome=\"denied\"} 1"),
        "{text}"
    );
    assert!(text.contains(&format!("clew_revision {rev}")), "{text}");
    assert!(
        text.contains("clew_writes_total{kind=\"tuples\"} 1"),
        "{text}"
    );
    assert!(text.contains("clew_http_request_duration_seconds_count{route=\"/v1/check\",method=\"POST\",status=\"200\"} 2"), "{text}");
    Ok(())
}

/// A raw request: method, path (with query string), headers, body; returns status, headers,
/// body text.
async fn raw(
    api: &Api,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(StatusCode, axum::http::HeaderMap, String), Box<dyn std::error::Error>> {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let Ok(resp) = api
        .app
        .clone()
        .oneshot(req.body(Body::from(body.to_string()))?)
        .await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26).await?;
    Ok((status, headers, String::from_utf8(bytes.to_vec())?))
}

fn form(pairs: &[(&str, &str)]) -> Result<String, Box<dyn std::error::Error>> {
    Ok(serde_urlencoded::to_string(pairs)?)
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// The SPARQL 1.1 Protocol: every way of sending a query, content negotiation, and an update
/// whose tuples take effect in the very next decision.
#[tokio::test]
async fn sparql_protocol_queries_and_updates() -> Res {
    let api = Api::with_model()?;
    let rev = api.setup().await?;
    let members =
        "SELECT ?u WHERE { <https://clew.dev/id/group/eng> <https://clew.dev/rel/member> ?u }";
    let anne = "https://clew.dev/id/user/anne";
    // GET, form POST and direct POST answer the same, with the revision.
    let q = form(&[("query", members)])?;
    for (method, path, headers, body) in [
        (Method::GET, format!("/sparql?{q}"), vec![], String::new()),
        (Method::POST, "/sparql".to_string(), vec![FORM], q.clone()),
        (
            Method::POST,
            "/sparql".to_string(),
            vec![("content-type", "application/sparql-query")],
            members.to_string(),
        ),
    ] {
        let (s, h, text) = raw(&api, method.clone(), &path, &headers, &body).await?;
        assert_eq!(s, StatusCode::OK, "{method} {text}");
        assert_eq!(h["content-type"], "application/sparql-results+json");
        assert_eq!(h["x-clew-revision"].to_str()?, rev.to_string());
        let v: Value = serde_json::from_str(&text)?;
        assert_eq!(v["head"]["vars"], json!(["u"]));
        assert_eq!(v["results"]["bindings"][0]["u"]["value"], anne, "{text}");
        assert_eq!(v["results"]["bindings"].as_array().map(Vec::len), Some(1));
    }
    // Content negotiation: CSV, TSV, XML; graphs as Turtle, N-Triples, JSON-LD, RDF/XML.
    for (accept, ctype, needle) in [
        (
            "text/csv",
            "text/csv; charset=utf-8",
            "u\r\nhttps://clew.dev/id/user/anne",
        ),
        (
            "text/tab-separated-values",
            "text/tab-separated-values; charset=utf-8",
            "?u\n<https://clew.dev/id/user/anne>",
        ),
        (
            "application/sparql-results+xml",
            "application/sparql-results+xml",
            "<uri>https://clew.dev/id/user/anne</uri>",
        ),
    ] {
        let (s, h, text) = raw(
            &api,
            Method::GET,
            &format!("/sparql?{q}"),
            &[("accept", accept)],
            "",
        )
        .await?;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], ctype);
        assert!(text.contains(needle), "{accept}: {text:?}");
    }
    let construct = form(&[(
        "query",
        "CONSTRUCT { ?g <http://e/has> ?u } WHERE { ?g <https://clew.dev/rel/member> ?u }",
    )])?;
    for (accept, ctype, needle) in [
        (
            "text/turtle",
            "text/turtle",
            "<http://e/has> <https://clew.dev/id/user/anne>",
        ),
        (
            "application/n-triples",
            "application/n-triples",
            "<https://clew.dev/id/group/eng> <http://e/has> <https://clew.dev/id/user/anne> .",
        ),
        ("application/ld+json", "application/ld+json", "\"@id\""),
        ("application/rdf+xml", "application/rdf+xml", "rdf:RDF"),
    ] {
        let (s, h, text) = raw(
            &api,
            Method::GET,
            &format!("/sparql?{construct}"),
            &[("accept", accept)],
            "",
        )
        .await?;
        assert_eq!(s, StatusCode::OK, "{accept}: {text}");
        assert_eq!(h["content-type"], ctype);
        assert!(text.contains(needle), "{accept}: {text}");
    }
    let (s, _, text) = raw(
        &api,
        Method::GET,
        &format!("/sparql?{q}"),
        &[("accept", "image/png")],
        "",
    )
    .await?;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE, "{text}");
    // An update by form and by direct POST: one revision each, seen by the next check.
    assert_eq!(
        api.check("user:zoe", "viewer", "document:d1").await?["allowed"],
        false
    );
    let insert = "INSERT DATA { GRAPH <https://clew.dev/graph/tuples> { <https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/zoe> } }";
    let (s, h, text) = raw(
        &api,
        Method::POST,
        "/sparql",
        &[FORM],
        &form(&[("update", insert)])?,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text)?;
    assert_eq!(v["revision"], rev + 1);
    assert_eq!(v["changed"], true);
    assert_eq!(h["x-clew-revision"].to_str()?, (rev + 1).to_string());
    let c = api.check("user:zoe", "viewer", "document:d1").await?;
    assert_eq!(c["allowed"], true);
    assert_eq!(c["revision"], rev + 1);
    let delete = "DELETE DATA { GRAPH <https://clew.dev/graph/tuples> { <https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/zoe> } }";
    let (s, _, text) = raw(
        &api,
        Method::POST,
        "/sparql",
        &[("content-type", "application/sparql-update")],
        delete,
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        api.check("user:zoe", "viewer", "document:d1").await?["allowed"],
        false
    );
    // The tuple API sees SPARQL's writes too.
    let v = api
        .ok("/v1/tuples/read", json!({"object": "group:eng"}))
        .await?;
    assert_eq!(v["tuples"].as_array().map(Vec::len), Some(1), "{v}");
    Ok(())
}

/// method, path, headers, body, expected status, code, and a word the message contains.
type Case<'a> = (
    Method,
    String,
    Vec<(&'a str, &'a str)>,
    String,
    StatusCode,
    &'a str,
    &'a str,
);

/// Bad SPARQL requests get a 4xx JSON error naming the problem, and change nothing.
#[tokio::test]
async fn sparql_bad_requests_are_named_and_change_nothing() -> Res {
    let api = Api::with_model()?;
    let rev = api.setup().await?;
    let bad_tuple = "INSERT DATA { <https://clew.dev/id/group/eng> <https://clew.dev/rel/member> <https://clew.dev/id/user/zoe> . <https://clew.dev/id/group/eng> <https://clew.dev/rel/owner> <https://clew.dev/id/user/zoe> }";
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            format!(
                "/sparql?{}",
                form(&[("query", "SELECT * WHERE { ?s ?p }")])?
            ),
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "sparql_syntax",
            "1:",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![FORM],
            form(&[("update", "INSERT DATA { ?s ?p ?o }")])?,
            StatusCode::BAD_REQUEST,
            "sparql_syntax",
            "error",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![FORM],
            form(&[("update", bad_tuple)])?,
            StatusCode::BAD_REQUEST,
            "sparql_invalid_tuple",
            "rel/owner",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![FORM],
            form(&[("update", "CLEAR ALL")])?,
            StatusCode::FORBIDDEN,
            "sparql_read_only_graph",
            "read-only",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![FORM],
            form(&[("update", "LOAD <http://127.0.0.1:9/x.ttl>")])?,
            StatusCode::FORBIDDEN,
            "sparql_refused",
            "LOAD",
        ),
        (
            Method::GET,
            format!(
                "/sparql?{}",
                form(&[(
                    "query",
                    "SELECT * { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }"
                )])?
            ),
            vec![],
            String::new(),
            StatusCode::FORBIDDEN,
            "sparql_refused",
            "SERVICE",
        ),
        (
            Method::GET,
            format!("/sparql?{}", form(&[("update", "CLEAR DEFAULT")])?),
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "POST",
        ),
        (
            Method::GET,
            "/sparql".into(),
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "no SPARQL",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![FORM],
            form(&[("query", "ASK {}"), ("update", "CLEAR DEFAULT")])?,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "not both",
        ),
        (
            Method::POST,
            "/sparql".into(),
            vec![("content-type", "application/json")],
            "{}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/sparql-query",
        ),
        (
            Method::GET,
            format!(
                "/sparql?{}",
                form(&[("query", "ASK {}"), ("query", "ASK {}")])?
            ),
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "more than once",
        ),
        (
            Method::GET,
            format!(
                "/sparql?{}",
                form(&[("query", "ASK {}"), ("default-graph-uri", "not an iri")])?
            ),
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "sparql_syntax",
            "not an iri",
        ),
    ];
    for (method, path, headers, body, status, code, needle) in cases {
        let (s, _, text) = raw(&api, method.clone(), &path, &headers, &body).await?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}: {text}"))?;
        assert_eq!(s, status, "{method} {path} {body}: {text}");
        assert_eq!(v["code"], code, "{text}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{text} should mention {needle}"
        );
        assert!(v["details"].is_object());
        let (_, r) = api.call(Method::GET, "/v1/revision", None).await;
        assert_eq!(r["revision"], rev, "{path} changed the store");
    }
    assert_eq!(
        api.check("user:zoe", "member", "group:eng").await?["allowed"],
        false
    );
    Ok(())
}
