//! The OpenAPI 3.1 document at `/openapi.json`, generated from the route table
//! ([`super::routes`]) so that it lists exactly the routes the server has.

use super::Route;
use serde_json::{Map, Value, json};

/// Request body schemas.
pub mod schema {
    use serde_json::{Value, json};

    /// An object schema: (name, JSON type or schema, required). Unknown fields are rejected.
    fn obj(fields: &[(&str, Value, bool)]) -> Value {
        let props: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(n, t, _)| (n.to_string(), t.clone()))
            .collect();
        let required: Vec<&str> = fields.iter().filter(|f| f.2).map(|f| f.0).collect();
        json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
    }

    fn s() -> Value {
        json!({"type": "string"})
    }
    fn int() -> Value {
        json!({"type": "integer", "minimum": 0})
    }
    fn bool_() -> Value {
        json!({"type": "boolean"})
    }
    fn map() -> Value {
        json!({"type": "object", "description": "condition parameters"})
    }
    fn tuple() -> Value {
        json!({"type": "object", "properties": {
            "user": {"type": "string"}, "relation": {"type": "string"}, "object": {"type": "string"},
            "condition": {"type": "object", "properties": {"name": {"type": "string"}, "context": {"type": "object"}}}
        }, "required": ["user", "relation", "object"]})
    }
    fn tuples() -> Value {
        json!({"type": "array", "items": tuple()})
    }
    fn fresh() -> (&'static str, Value, bool) {
        (
            "at_least_as_fresh",
            json!({"type": "integer", "description": "a revision an earlier write returned; the answer includes it"}),
            false,
        )
    }

    fn check_fields() -> Vec<(&'static str, Value, bool)> {
        vec![
            ("user", s(), true),
            ("relation", s(), true),
            ("object", s(), true),
            ("context", map(), false),
            ("contextual_tuples", tuples(), false),
            ("explain", bool_(), false),
            ("max_depth", int(), false),
        ]
    }

    pub fn check() -> Value {
        let mut f = check_fields();
        f.push(fresh());
        obj(&f)
    }
    pub fn batch_check() -> Value {
        obj(&[
            (
                "checks",
                json!({"type": "array", "items": obj(&check_fields())}),
                true,
            ),
            fresh(),
        ])
    }
    pub fn lookup() -> Value {
        obj(&[
            ("user", s(), true),
            ("relation", s(), true),
            ("object_type", s(), true),
            ("context", map(), false),
            ("contextual_tuples", tuples(), false),
            ("limit", int(), false),
            ("cursor", s(), false),
            ("max_depth", int(), false),
            fresh(),
        ])
    }
    pub fn filter() -> Value {
        obj(&[
            ("user", s(), true),
            ("relation", s(), true),
            ("object_type", s(), true),
            (
                "candidates",
                json!({"type": "array", "items": {"type": "string"}}),
                true,
            ),
            ("context", map(), false),
            ("contextual_tuples", tuples(), false),
            ("explain", bool_(), false),
            ("strategy", json!({"enum": ["checks", "bitmap"]}), false),
            ("max_depth", int(), false),
            fresh(),
        ])
    }
    pub fn subjects() -> Value {
        obj(&[
            ("object", s(), true),
            ("relation", s(), true),
            ("subject_type", s(), true),
            ("context", map(), false),
            ("contextual_tuples", tuples(), false),
            fresh(),
        ])
    }
    pub fn expand() -> Value {
        obj(&[("object", s(), true), ("relation", s(), true), fresh()])
    }
    pub fn write() -> Value {
        let key = obj(&[
            ("user", s(), true),
            ("relation", s(), true),
            ("object", s(), true),
        ]);
        let pre = obj(&[
            ("user", s(), true),
            ("relation", s(), true),
            ("object", s(), true),
            ("exists", bool_(), true),
        ]);
        obj(&[
            ("writes", tuples(), false),
            ("deletes", json!({"type": "array", "items": key}), false),
            (
                "preconditions",
                json!({"type": "array", "items": pre}),
                false,
            ),
        ])
    }
    pub fn read() -> Value {
        obj(&[
            ("object", s(), false),
            ("relation", s(), false),
            ("user", s(), false),
            ("page_size", int(), false),
            ("cursor", s(), false),
            ("at_least_as_fresh", int(), false),
        ])
    }
    pub fn model() -> Value {
        obj(&[("dsl", s(), true)])
    }
    fn entity() -> Value {
        json!({"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "properties": {"type": "object"}}, "required": ["type"]})
    }
    fn action() -> Value {
        json!({"type": "object", "properties": {"name": {"type": "string"}, "properties": {"type": "object"}}, "required": ["name"]})
    }
    pub fn authzen_evaluation() -> Value {
        json!({"type": "object", "properties": {"subject": entity(), "resource": entity(), "action": action(), "context": {"type": "object"}}, "required": ["subject", "resource", "action"]})
    }
    pub fn authzen_evaluations() -> Value {
        json!({"type": "object", "properties": {
            "subject": entity(), "resource": entity(), "action": action(), "context": {"type": "object"},
            "evaluations": {"type": "array", "items": {"type": "object", "properties": {"subject": entity(), "resource": entity(), "action": action(), "context": {"type": "object"}}}},
            "options": {"type": "object", "properties": {"evaluations_semantic": {"enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"]}}}
        }})
    }
    pub fn authzen_search() -> Value {
        json!({"type": "object", "properties": {"subject": entity(), "resource": entity(), "action": action(), "context": {"type": "object"},
            "page": {"type": "object", "properties": {"token": {"type": "string"}, "limit": {"type": "integer"}}}}, "required": ["subject", "resource"]})
    }
    pub fn sparql_update() -> Value {
        json!({"type": "string", "description": "a SPARQL 1.1 Update (application/sparql-update), or form field `update`"})
    }
}

fn error_response() -> Value {
    json!({"description": "An error: `{code, message, details}`", "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}},
        "required": ["code", "message", "details"]
    }}}})
}

/// The document for a route table.
pub fn document(routes: &[Route]) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in routes {
        let method = r.method.as_str().to_ascii_lowercase();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{method}{}", r.path.replace(['/', '.', '{', '}', '-'], "_")),
            "responses": {
                "200": {"description": "OK"},
                "4XX": error_response(),
                "5XX": error_response(),
            },
        });
        if let Some(body) = &r.body {
            let content = if body.get("type") == Some(&json!("string")) {
                let form = json!({"type": "object", "properties": {
                    "query": {"type": "string"}, "update": {"type": "string"},
                    "default-graph-uri": {"type": "string"}, "named-graph-uri": {"type": "string"},
                    "using-graph-uri": {"type": "string"}, "using-named-graph-uri": {"type": "string"}}});
                json!({"application/sparql-query": {"schema": {"type": "string"}},
                       "application/sparql-update": {"schema": body},
                       "application/x-www-form-urlencoded": {"schema": form}})
            } else {
                json!({"application/json": {"schema": body}})
            };
            op["requestBody"] = json!({"required": true, "content": content});
        }
        if r.path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
        }
        if r.path == "/sparql" && r.method == axum::http::Method::GET {
            op["parameters"] = json!([
                {"name": "query", "in": "query", "required": true, "schema": {"type": "string"}},
                {"name": "default-graph-uri", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "named-graph-uri", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "format", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json", "xml", "csv", "tsv", "turtle", "ntriples", "jsonld", "rdfxml"]}}
            ]);
        }
        if r.path == "/v1/watch" {
            op["parameters"] = json!([{"name": "since", "in": "query", "required": false, "schema": {"type": "integer"}}]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Clew",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A knowledge-graph authorization engine: OpenFGA-language models over an RDF store. Every response names the revision it was computed at."
        },
        "paths": paths,
    })
}
