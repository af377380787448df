//! The OpenID AuthZEN Authorization API 1.0 over Clew's operations:
//!
//! | AuthZEN | Clew |
//! |---|---|
//! | `POST /access/v1/evaluation` | check |
//! | `POST /access/v1/evaluations` | batch check (with `evaluations_semantic`) |
//! | `POST /access/v1/search/resource` | lookup (paged: `page.token` is the lookup cursor) |
//! | `POST /access/v1/search/subject` | subjects |
//! | `POST /access/v1/search/action` | a check per relation of the resource's type |
//! | `GET /.well-known/authzen-configuration` | the endpoints above |
//!
//! Subject `{type, id}` is the user `type:id` (an id `eng#member` names a userset), resource
//! `{type, id}` the object, `action.name` the relation, and the request `context` the condition
//! context. `properties` are accepted and not used (attributes come from the graph and the
//! context). Clew's extension: every response `context` carries `clew.revision` and
//! `clew.model_id`; with `?explain=true` it also carries the explanation (the path for an allow,
//! the branches tried for a deny). A decision that needs context the request did not give is
//! `false` with `context.clew.missing` naming the parameters — never `true`.

use super::api::{decision_json, depth, object, outcome, user, user_filter};
use super::error::{ApiError, Json, Query};
use super::{AppState, blocking};
use crate::engine::{self, CheckRequest, CheckResult, Decision, LookupRequest};
use crate::service::bulk::{Consistency, PageRequest};
use crate::tuple::User;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Reply = Result<axum::Json<Value>, ApiError>;

#[derive(Deserialize, Clone)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub properties: Option<Value>,
}

#[derive(Deserialize, Clone)]
pub struct Action {
    pub name: String,
    #[serde(default)]
    pub properties: Option<Value>,
}

#[derive(Deserialize, Default)]
pub struct ExplainQuery {
    #[serde(default)]
    pub explain: bool,
}

fn id_of<'a>(e: &'a Entity, field: &str) -> Result<&'a str, ApiError> {
    e.id.as_deref()
        .ok_or_else(|| ApiError::bad_request("invalid_request", format!("{field}.id is required")))
}

fn subject_of(e: &Entity) -> Result<User, ApiError> {
    user("subject", &format!("{}:{}", e.kind, id_of(e, "subject")?))
}

fn context_of(v: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::bad_request(
            "invalid_request",
            "context must be an object",
        )),
    }
}

fn clew_context(r: &CheckResult, revision: u64, model_id: &str, explain: bool) -> Value {
    let mut c = json!({"revision": revision, "model_id": model_id});
    if let Decision::Conditional { missing } = &r.decision {
        c["missing"] = json!(missing);
    }
    if explain {
        let d = decision_json(r);
        for k in ["explanation", "deny_trace"] {
            if let Some(v) = d.get(k) {
                c[k] = v.clone();
            }
        }
    }
    json!({"clew": c})
}

#[derive(Deserialize)]
pub struct EvaluationBody {
    pub subject: Entity,
    pub resource: Entity,
    pub action: Action,
    #[serde(default)]
    pub context: Option<Value>,
}

pub async fn evaluation(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ExplainQuery>,
    Json(b): Json<EvaluationBody>,
) -> Reply {
    let u = subject_of(&b.subject)?;
    let o = object(
        "resource",
        &format!("{}:{}", b.resource.kind, id_of(&b.resource, "resource")?),
    )?;
    let context = context_of(b.context.as_ref())?;
    let state = s.clew.read_state(Consistency::Latest)?;
    let req = CheckRequest {
        user: &u,
        relation: &b.action.name,
        object: &o,
        context: &context,
        contextual: &[],
        explain: q.explain,
        max_depth: depth(&s, None)?,
    };
    let r = s.clew.check_in(&state, &req)?;
    s.metrics.decision("authzen", outcome(&r.decision), 1);
    Ok(axum::Json(json!({
        "decision": r.decision == Decision::Allowed,
        "context": clew_context(&r, state.revision, state.model_id(), q.explain),
    })))
}

#[derive(Deserialize)]
pub struct EvaluationItem {
    #[serde(default)]
    pub subject: Option<Entity>,
    #[serde(default)]
    pub resource: Option<Entity>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub context: Option<Value>,
}

#[derive(Deserialize, Default)]
pub struct EvaluationsOptions {
    #[serde(default)]
    pub evaluations_semantic: Option<String>,
}

#[derive(Deserialize)]
pub struct EvaluationsBody {
    #[serde(default)]
    pub subject: Option<Entity>,
    #[serde(default)]
    pub resource: Option<Entity>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub evaluations: Option<Vec<EvaluationItem>>,
    #[serde(default)]
    pub options: Option<EvaluationsOptions>,
}

#[derive(Clone, Copy, PartialEq)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

pub async fn evaluations(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ExplainQuery>,
    Json(b): Json<EvaluationsBody>,
) -> Reply {
    let semantic = match b
        .options
        .as_ref()
        .and_then(|o| o.evaluations_semantic.as_deref())
    {
        None | Some("execute_all") => Semantic::ExecuteAll,
        Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
        Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                format!(
                    "options.evaluations_semantic '{other}' is not one of execute_all, deny_on_first_deny, permit_on_first_permit"
                ),
            ));
        }
    };
    // No `evaluations`: a single evaluation from the top-level fields (AuthZEN 1.0 §7.1).
    let items = b.evaluations.unwrap_or_else(|| {
        vec![EvaluationItem {
            subject: None,
            resource: None,
            action: None,
            context: None,
        }]
    });
    if items.len() > s.config.max_batch {
        return Err(ApiError::bad_request(
            "too_many_checks",
            format!(
                "{} evaluations in one request; the limit is {}",
                items.len(),
                s.config.max_batch
            ),
        ));
    }
    let top_context = context_of(b.context.as_ref())?;
    let mut parsed = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let missing = |f: &str| {
            ApiError::bad_request(
                "invalid_request",
                format!("evaluations[{i}]: {f} is given neither in the item nor at the top level"),
            )
        };
        let subject = it
            .subject
            .as_ref()
            .or(b.subject.as_ref())
            .ok_or_else(|| missing("subject"))?;
        let resource = it
            .resource
            .as_ref()
            .or(b.resource.as_ref())
            .ok_or_else(|| missing("resource"))?;
        let action = it
            .action
            .as_ref()
            .or(b.action.as_ref())
            .ok_or_else(|| missing("action"))?;
        let mut context = top_context.clone();
        context.extend(context_of(it.context.as_ref())?);
        parsed.push((
            subject_of(subject)?,
            action.name.clone(),
            object(
                &format!("evaluations[{i}].resource"),
                &format!("{}:{}", resource.kind, id_of(resource, "resource")?),
            )?,
            context,
        ));
    }
    let max_depth = depth(&s, None)?;
    blocking(move || {
        let state = s.clew.read_state(Consistency::Latest)?;
        let mut out = Vec::with_capacity(parsed.len());
        for (u, relation, o, context) in &parsed {
            let req = CheckRequest {
                user: u,
                relation,
                object: o,
                context,
                contextual: &[],
                explain: q.explain,
                max_depth,
            };
            let (decision, ctx) = match s.clew.check_in(&state, &req) {
                Ok(r) => {
                    s.metrics.decision("authzen", outcome(&r.decision), 1);
                    (
                        r.decision == Decision::Allowed,
                        clew_context(&r, state.revision, state.model_id(), q.explain),
                    )
                }
                Err(e) => {
                    s.metrics.decision("authzen", "error", 1);
                    let e = ApiError::from(e);
                    (
                        false,
                        json!({"error": {"code": e.code, "message": e.message}, "clew": {"revision": state.revision}}),
                    )
                }
            };
            out.push(json!({"decision": decision, "context": ctx}));
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !decision,
                Semantic::PermitOnFirstPermit => decision,
            };
            if stop {
                break;
            }
        }
        Ok(json!({"evaluations": out}))
    })
    .await
    .map(axum::Json)
}

#[derive(Deserialize, Default)]
pub struct Page {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Deserialize)]
pub struct SearchBody {
    pub subject: Entity,
    pub resource: Entity,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub context: Option<Value>,
    #[serde(default)]
    pub page: Option<Page>,
}

fn split_id(text: &str) -> Value {
    match text.split_once(':') {
        Some((t, id)) => json!({"type": t, "id": id}),
        None => json!({"type": text}),
    }
}

fn action_of(b: &SearchBody) -> Result<&str, ApiError> {
    b.action
        .as_ref()
        .map(|a| a.name.as_str())
        .ok_or_else(|| ApiError::bad_request("invalid_request", "action.name is required"))
}

pub async fn search_resource(State(s): State<Arc<AppState>>, Json(b): Json<SearchBody>) -> Reply {
    let u = subject_of(&b.subject)?;
    let relation = action_of(&b)?.to_string();
    let context = context_of(b.context.as_ref())?;
    let page = b.page.unwrap_or_default();
    if let Some(l) = page.limit
        && (l == 0 || l > s.config.max_page_size)
    {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!(
                "page.limit {l} is out of range (1..={})",
                s.config.max_page_size
            ),
        ));
    }
    let object_type = b.resource.kind.clone();
    let max_depth = depth(&s, None)?;
    blocking(move || {
        let req = LookupRequest {
            user: &u,
            relation: &relation,
            object_type: &object_type,
            context: &context,
            contextual: &[],
            max_depth,
        };
        let out = s.clew.lookup(
            &req,
            &PageRequest {
                limit: page.limit,
                cursor: page.token.filter(|t| !t.is_empty()),
            },
            Consistency::Latest,
        )?;
        s.metrics
            .decision("authzen", "allowed", out.objects.len() as u64);
        Ok(json!({
            "results": out.objects.iter().map(split_id).collect::<Vec<_>>(),
            "page": {"next_token": out.cursor.clone().unwrap_or_default()},
            "context": {"clew": {"revision": out.revision, "model_id": out.model_id, "total": out.total}},
        }))
    })
    .await
    .map(axum::Json)
}

pub async fn search_subject(State(s): State<Arc<AppState>>, Json(b): Json<SearchBody>) -> Reply {
    let o = object(
        "resource",
        &format!("{}:{}", b.resource.kind, id_of(&b.resource, "resource")?),
    )?;
    let relation = action_of(&b)?.to_string();
    let context = context_of(b.context.as_ref())?;
    let filter = user_filter(&b.subject.kind);
    blocking(move || {
        let state = s.clew.read_state(Consistency::Latest)?;
        let view = state.view()?;
        let answer = engine::subjects(view, &o, &relation, &filter, &context, &[])?;
        s.metrics
            .decision("authzen", "allowed", answer.users.len() as u64);
        Ok(json!({
            "results": answer.users.iter().map(|u| split_id(&u.to_string())).collect::<Vec<_>>(),
            "page": {"next_token": ""},
            "context": {"clew": {
                "revision": state.revision,
                "model_id": state.model_id(),
                "excluded": answer.excluded.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }},
        }))
    })
    .await
    .map(axum::Json)
}

pub async fn search_action(State(s): State<Arc<AppState>>, Json(b): Json<SearchBody>) -> Reply {
    let u = subject_of(&b.subject)?;
    let o = object(
        "resource",
        &format!("{}:{}", b.resource.kind, id_of(&b.resource, "resource")?),
    )?;
    let context = context_of(b.context.as_ref())?;
    let max_depth = depth(&s, None)?;
    blocking(move || {
        let state = s.clew.read_state(Consistency::Latest)?;
        let view = state.view()?;
        let relations: Vec<String> = view
            .model
            .model
            .types
            .iter()
            .find(|t| t.name == o.object_type)
            .map(|t| t.relations.iter().map(|r| r.name.clone()).collect())
            .ok_or_else(|| {
                ApiError::from(engine::EngineError::UnknownType(o.object_type.clone()))
            })?;
        let mut results = Vec::new();
        for relation in &relations {
            let req = CheckRequest {
                user: &u,
                relation,
                object: &o,
                context: &context,
                contextual: &[],
                explain: false,
                max_depth,
            };
            if s.clew.check_in(&state, &req)?.decision == Decision::Allowed {
                results.push(json!({"name": relation}));
            }
        }
        Ok(json!({
            "results": results,
            "context": {"clew": {"revision": state.revision, "model_id": state.model_id()}},
        }))
    })
    .await
    .map(axum::Json)
}

pub async fn configuration(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
) -> axum::Json<Value> {
    let base = s.config.public_url.clone().unwrap_or_else(|| {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| s.config.listen.to_string());
        format!("http://{host}")
    });
    let base = base.trim_end_matches('/');
    axum::Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    }))
}
