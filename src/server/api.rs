//! The JSON API under `/v1`. Every response names the revision (and, for decisions, the model)
//! it was computed at; every read takes `at_least_as_fresh` (a revision an earlier write
//! returned) and otherwise reads the latest state, which includes every acknowledged write.

use super::error::{ApiError, Json, Path, model_details};
use super::{AppState, blocking};
use crate::engine::{
    self, CheckRequest, CheckResult, Decision, LookupRequest, Strategy, UserFilter,
};
use crate::model::typesystem::TypeSystem;
use crate::service::Precondition;
use crate::service::bulk::{Consistency, FilterRequest, PageRequest};
use crate::store::TuplePattern;
use crate::tuple::{ObjectRef, Tuple, TupleKey, TupleSpec, User};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;

type Ctx = Map<String, Value>;
type Reply = Result<axum::Json<Value>, ApiError>;

fn consistency(at_least: Option<u64>) -> Consistency {
    at_least.map_or(Consistency::Latest, Consistency::AtLeast)
}

pub(super) fn user(field: &str, text: &str) -> Result<User, ApiError> {
    User::parse(text).map_err(|e| ApiError::bad_request("invalid_id", format!("{field}: {e}")))
}

pub(super) fn object(field: &str, text: &str) -> Result<ObjectRef, ApiError> {
    ObjectRef::parse(text).map_err(|e| ApiError::bad_request("invalid_id", format!("{field}: {e}")))
}

fn tuples(field: &str, specs: &[TupleSpec]) -> Result<Vec<Tuple>, ApiError> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.to_tuple()
                .map_err(|e| ApiError::bad_request("invalid_tuple", format!("{field}[{i}]: {e}")))
        })
        .collect()
}

/// The depth a request runs at: its own (at most the configured limit) or the default.
pub(super) fn depth(state: &AppState, asked: Option<u32>) -> Result<u32, ApiError> {
    let max = state.config.max_depth;
    match asked {
        None => Ok(engine::DEFAULT_MAX_DEPTH.min(max)),
        Some(0) => Err(ApiError::bad_request(
            "invalid_depth",
            "max_depth must be positive",
        )),
        Some(d) if d > max => Err(ApiError::bad_request(
            "depth_limit",
            format!("max_depth {d} exceeds the server's limit {max}"),
        )),
        Some(d) => Ok(d),
    }
}

pub(super) fn outcome(d: &Decision) -> &'static str {
    match d {
        Decision::Allowed => "allowed",
        Decision::Denied => "denied",
        Decision::Conditional { .. } => "conditional",
    }
}

pub(super) fn decision_json(r: &CheckResult) -> Value {
    let mut out = json!({
        "allowed": r.decision == Decision::Allowed,
        "decision": outcome(&r.decision),
    });
    if let Decision::Conditional { missing } = &r.decision {
        out["missing"] = json!(missing);
    }
    if let Some(e) = &r.explanation {
        out["explanation"] = json!(e);
    }
    if let Some(t) = &r.deny_trace {
        out["deny_trace"] = json!(t);
    }
    out
}

// ---- check ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default)]
    pub context: Ctx,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

pub async fn check(State(s): State<Arc<AppState>>, Json(b): Json<CheckBody>) -> Reply {
    let u = user("user", &b.user)?;
    let o = object("object", &b.object)?;
    let contextual = tuples("contextual_tuples", &b.contextual_tuples)?;
    let req = CheckRequest {
        user: &u,
        relation: &b.relation,
        object: &o,
        context: &b.context,
        contextual: &contextual,
        explain: b.explain,
        max_depth: depth(&s, b.max_depth)?,
    };
    let state = s.clew.read_state(consistency(b.at_least_as_fresh))?;
    let r = s.clew.check_in(&state, &req).inspect_err(|_| {
        s.metrics.decision("check", "error", 1);
    })?;
    s.metrics.decision("check", outcome(&r.decision), 1);
    let mut out = decision_json(&r);
    out["revision"] = json!(state.revision);
    out["model_id"] = json!(state.model_id());
    out["cache_hit"] = json!(r.cache_hit);
    Ok(axum::Json(out))
}

// ---- batch check ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItemBody {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default)]
    pub context: Ctx,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    pub max_depth: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    pub checks: Vec<BatchItemBody>,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

struct Parsed {
    user: User,
    object: ObjectRef,
    contextual: Vec<Tuple>,
    depth: u32,
}

/// One answer of a batch reply, as [`decision_json`] writes it (fields in its key order, so the
/// bytes are the same), serialized straight from the results instead of through a `Value`
/// tree: a batch reply is most of a batch request's allocations otherwise.
#[derive(Serialize)]
struct BatchEntry<'a> {
    allowed: bool,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deny_trace: Option<&'a crate::engine::DenyTrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a crate::engine::Explanation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<&'a [String]>,
}

#[derive(Serialize)]
struct BatchReply<'a> {
    model_id: &'a str,
    results: Vec<BatchEntry<'a>>,
    revision: u64,
}

/// Most checks in a batch that is evaluated on the runtime's worker (see `batch_check`).
const INLINE_BATCH: usize = 128;

pub async fn batch_check(
    State(s): State<Arc<AppState>>,
    Json(b): Json<BatchBody>,
) -> Result<axum::response::Response, ApiError> {
    let max = s.config.max_batch;
    if b.checks.len() > max {
        return Err(ApiError::bad_request(
            "too_many_checks",
            format!("{} checks in one batch; the limit is {max}", b.checks.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(b.checks.len());
    for (i, c) in b.checks.iter().enumerate() {
        let at = |f: &str| format!("checks[{i}].{f}");
        parsed.push(Parsed {
            user: user(&at("user"), &c.user)?,
            object: object(&at("object"), &c.object)?,
            contextual: tuples(&at("contextual_tuples"), &c.contextual_tuples)?,
            depth: depth(&s, c.max_depth)?,
        });
    }
    // A small batch of plain checks (a couple of hundred microseconds) runs on the runtime's
    // worker; handing it to the blocking pool and back cost two thread wake-ups per request,
    // about 5 % of the server's throughput under load. Larger or heavier batches go there.
    let inline = b.checks.len() <= INLINE_BATCH
        && b.checks
            .iter()
            .all(|c| !c.explain && c.contextual_tuples.is_empty());
    let s2 = s.clone();
    let run = move || {
        let reqs: Vec<CheckRequest<'_>> = b
            .checks
            .iter()
            .zip(&parsed)
            .map(|(c, p)| CheckRequest {
                user: &p.user,
                relation: &c.relation,
                object: &p.object,
                context: &c.context,
                contextual: &p.contextual,
                explain: c.explain,
                max_depth: p.depth,
            })
            .collect();
        let out = s2
            .clew
            .batch_check(&reqs, consistency(b.at_least_as_fresh))?;
        let mut results = Vec::with_capacity(out.items.len());
        let (mut allowed, mut denied, mut other) = (0, 0, 0);
        for item in &out.items {
            let entry = match &item.result {
                Ok(r) => {
                    match r.decision {
                        Decision::Allowed => allowed += 1,
                        Decision::Denied => denied += 1,
                        Decision::Conditional { .. } => other += 1,
                    }
                    BatchEntry {
                        allowed: r.decision == Decision::Allowed,
                        decision: outcome(&r.decision),
                        deny_trace: r.deny_trace.as_ref(),
                        duplicate_of: item.duplicate_of,
                        error: None,
                        explanation: r.explanation.as_ref(),
                        missing: match &r.decision {
                            Decision::Conditional { missing } => Some(missing),
                            _ => None,
                        },
                    }
                }
                Err(e) => {
                    other += 1;
                    BatchEntry {
                        allowed: false,
                        decision: "error",
                        deny_trace: None,
                        duplicate_of: item.duplicate_of,
                        error: Some(e),
                        explanation: None,
                        missing: None,
                    }
                }
            };
            results.push(entry);
        }
        s2.metrics.decision("batch_check", "allowed", allowed);
        s2.metrics.decision("batch_check", "denied", denied);
        s2.metrics.decision("batch_check", "other", other);
        let reply = BatchReply {
            model_id: &out.model_id,
            results,
            revision: out.revision,
        };
        serde_json::to_vec(&reply).map_err(|e| ApiError::internal(e.to_string()))
    };
    let body = match inline {
        true => run(),
        false => blocking(run).await,
    };
    body.map(|body| {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    })
}

// ---- lookup ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    pub user: String,
    pub relation: String,
    pub object_type: String,
    #[serde(default)]
    pub context: Ctx,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

/// A lookup page as the API writes it: the page's fields and its conditional objects,
/// serialized straight to bytes (a page can hold 100,000 objects; a JSON value tree of it would
/// copy every one).
#[derive(serde::Serialize)]
struct LookupReply<'a> {
    #[serde(flatten)]
    page: &'a crate::service::bulk::LookupPage,
    conditional: Vec<Value>,
}

pub async fn lookup(
    State(s): State<Arc<AppState>>,
    Json(b): Json<LookupBody>,
) -> Result<axum::response::Response, ApiError> {
    let u = user("user", &b.user)?;
    let contextual = tuples("contextual_tuples", &b.contextual_tuples)?;
    let max_depth = depth(&s, b.max_depth)?;
    let max = s.config.max_page_size;
    if let Some(l) = b.limit
        && (l == 0 || l > max)
    {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("limit {l} is out of range (1..={max})"),
        ));
    }
    blocking(move || {
        let req = LookupRequest {
            user: &u,
            relation: &b.relation,
            object_type: &b.object_type,
            context: &b.context,
            contextual: &contextual,
            max_depth,
        };
        let page = s.clew.lookup(
            &req,
            &PageRequest {
                limit: b.limit,
                cursor: b.cursor.clone(),
            },
            consistency(b.at_least_as_fresh),
        )?;
        s.metrics
            .decision("lookup", "allowed", page.objects.len() as u64);
        let reply = LookupReply {
            page: &page,
            conditional: page
                .conditional
                .iter()
                .map(|(o, m)| json!({"object": o.to_string(), "missing": m}))
                .collect(),
        };
        serde_json::to_vec(&reply).map_err(|e| ApiError::internal(e.to_string()))
    })
    .await
    .map(|bytes| {
        axum::response::IntoResponse::into_response((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        ))
    })
}

// ---- filter ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    pub user: String,
    pub relation: String,
    pub object_type: String,
    pub candidates: Vec<String>,
    #[serde(default)]
    pub context: Ctx,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub explain: bool,
    /// Force a strategy: `checks` or `bitmap` (default: the planner chooses).
    #[serde(default)]
    pub strategy: Option<String>,
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

pub async fn filter(State(s): State<Arc<AppState>>, Json(b): Json<FilterBody>) -> Reply {
    let u = user("user", &b.user)?;
    let contextual = tuples("contextual_tuples", &b.contextual_tuples)?;
    let max_depth = depth(&s, b.max_depth)?;
    let max = s.config.max_batch;
    if b.candidates.len() > max {
        return Err(ApiError::bad_request(
            "too_many_candidates",
            format!(
                "{} candidates given; the limit is {max}",
                b.candidates.len()
            ),
        ));
    }
    let strategy = match b.strategy.as_deref() {
        None => None,
        Some("checks") => Some(Strategy::Checks),
        Some("bitmap") => Some(Strategy::Bitmap),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_strategy",
                format!("strategy '{other}': expected 'checks' or 'bitmap'"),
            ));
        }
    };
    blocking(move || {
        let req = FilterRequest {
            user: &u,
            relation: &b.relation,
            object_type: &b.object_type,
            candidates: &b.candidates,
            context: &b.context,
            contextual: &contextual,
            max_depth,
            explain: b.explain,
            strategy,
        };
        let out = s.clew.filter(&req, consistency(b.at_least_as_fresh))?;
        s.metrics
            .decision("filter", "allowed", out.allowed.len() as u64);
        s.metrics
            .decision("filter", "denied", (out.denied + out.unknown) as u64);
        let mut v = serde_json::to_value(&out).map_err(|e| ApiError::internal(e.to_string()))?;
        v["conditional"] = json!(
            out.conditional
                .iter()
                .map(|(o, m)| json!({"object": o, "missing": m}))
                .collect::<Vec<_>>()
        );
        Ok(v)
    })
    .await
    .map(axum::Json)
}

// ---- subjects ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectsBody {
    pub object: String,
    pub relation: String,
    /// A user type (`user`) or a userset type (`group#member`).
    pub subject_type: String,
    #[serde(default)]
    pub context: Ctx,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleSpec>,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

pub(super) fn user_filter(text: &str) -> UserFilter {
    match text.split_once('#') {
        Some((t, r)) => UserFilter {
            user_type: t.to_string(),
            relation: Some(r.to_string()),
        },
        None => UserFilter {
            user_type: text.to_string(),
            relation: None,
        },
    }
}

pub async fn subjects(State(s): State<Arc<AppState>>, Json(b): Json<SubjectsBody>) -> Reply {
    let o = object("object", &b.object)?;
    let contextual = tuples("contextual_tuples", &b.contextual_tuples)?;
    let filter = user_filter(&b.subject_type);
    blocking(move || {
        let state = s.clew.read_state(consistency(b.at_least_as_fresh))?;
        let view = state.view()?;
        let answer = engine::subjects(view, &o, &b.relation, &filter, &b.context, &contextual)?;
        s.metrics
            .decision("subjects", "allowed", answer.users.len() as u64);
        Ok(json!({
            "subjects": answer.users.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "excluded": answer.excluded.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "revision": state.revision,
            "model_id": state.model_id(),
        }))
    })
    .await
    .map(axum::Json)
}

// ---- expand ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpandBody {
    pub object: String,
    pub relation: String,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

pub async fn expand(State(s): State<Arc<AppState>>, Json(b): Json<ExpandBody>) -> Reply {
    let o = object("object", &b.object)?;
    let state = s.clew.read_state(consistency(b.at_least_as_fresh))?;
    let view = state.view().map_err(ApiError::from)?;
    let tree = engine::expand::expand(view, &o, &b.relation)?;
    Ok(axum::Json(json!({
        "tree": tree,
        "revision": state.revision,
        "model_id": state.model_id(),
    })))
}

// ---- tuples ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub user: String,
    pub relation: String,
    pub object: String,
}

impl KeyBody {
    fn key(&self, field: &str) -> Result<TupleKey, ApiError> {
        Tuple::parse(&self.user, &self.relation, &self.object)
            .map(|t| t.key())
            .map_err(|e| ApiError::bad_request("invalid_tuple", format!("{field}: {e}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreconditionBody {
    pub user: String,
    pub relation: String,
    pub object: String,
    /// `true`: the tuple must exist; `false`: it must not.
    pub exists: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    #[serde(default)]
    pub writes: Vec<TupleSpec>,
    #[serde(default)]
    pub deletes: Vec<KeyBody>,
    #[serde(default)]
    pub preconditions: Vec<PreconditionBody>,
}

pub async fn write(State(s): State<Arc<AppState>>, Json(b): Json<WriteBody>) -> Reply {
    let writes = tuples("writes", &b.writes)?;
    let deletes = b
        .deletes
        .iter()
        .enumerate()
        .map(|(i, k)| k.key(&format!("deletes[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let preconditions = b
        .preconditions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Tuple::parse(&p.user, &p.relation, &p.object)
                .map(|t| Precondition {
                    key: t.key(),
                    exists: p.exists,
                })
                .map_err(|e| {
                    ApiError::bad_request("invalid_tuple", format!("preconditions[{i}]: {e}"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let s2 = s.clone();
    let revision = blocking(move || {
        Ok(s2
            .clew
            .write(&writes, &deletes, &preconditions, "api write")?)
    })
    .await?;
    s.wrote(revision, "tuples");
    Ok(axum::Json(json!({
        "revision": revision,
        "written": b.writes.len(),
        "deleted": b.deletes.len(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    /// `type:id`, or `type:` for every object of a type.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub relation: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub page_size: Option<usize>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Fail (`future_revision`) unless the store has reached this revision.
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

const DEFAULT_READ_PAGE: usize = 100;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

pub async fn read(State(s): State<Arc<AppState>>, Json(b): Json<ReadBody>) -> Reply {
    let mut pattern = TuplePattern::default();
    if let Some(o) = &b.object {
        match o.strip_suffix(':') {
            Some(t) if !t.contains(':') => pattern.object_type = Some(t.to_string()),
            _ => {
                let o = object("object", o)?;
                pattern.object_type = Some(o.object_type);
                pattern.object_id = Some(o.id);
            }
        }
    }
    if let Some(r) = &b.relation {
        crate::tuple::check_relation_name(r)
            .map_err(|e| ApiError::bad_request("invalid_relation", format!("relation: {e}")))?;
        pattern.relation = Some(r.clone());
    }
    if let Some(u) = &b.user {
        pattern.user = Some(user("user", u)?);
    }
    let max = s.config.max_page_size;
    let size = b.page_size.unwrap_or(DEFAULT_READ_PAGE.min(max));
    if size == 0 || size > max {
        return Err(ApiError::bad_request(
            "invalid_page_size",
            format!("page_size {size} is out of range (1..={max})"),
        ));
    }
    let after = match &b.cursor {
        None => None,
        Some(c) => Some(c.strip_prefix("t1.").and_then(unhex).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "malformed cursor: not one this API issued",
            )
        })?),
    };
    blocking(move || {
        // Tuples are read from the store's latest committed state, which is at least this
        // revision (a write publishes its state after it commits).
        let revision = s
            .clew
            .read_state(consistency(b.at_least_as_fresh))?
            .revision;
        let all = s.clew.store().read_tuples(&pattern)?;
        let start = match &after {
            None => 0,
            Some(a) => all.partition_point(|t| t.key().to_string() <= *a),
        };
        let page: Vec<&Tuple> = all.iter().skip(start).take(size).collect();
        let cursor = (start + page.len() < all.len())
            .then(|| {
                page.last()
                    .map(|t| format!("t1.{}", hex(&t.key().to_string())))
            })
            .flatten();
        Ok(json!({
            "tuples": page.iter().map(|t| TupleSpec::from(*t)).collect::<Vec<_>>(),
            "cursor": cursor,
            "revision": revision,
        }))
    })
    .await
    .map(axum::Json)
}

// ---- models ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelBody {
    pub dsl: String,
}

pub async fn write_model(State(s): State<Arc<AppState>>, Json(b): Json<ModelBody>) -> Reply {
    let s2 = s.clone();
    let (id, revision) = blocking(move || Ok(s2.clew.write_model(&b.dsl)?)).await?;
    s.wrote(revision, "model");
    Ok(axum::Json(json!({"model_id": id, "revision": revision})))
}

pub async fn read_model(State(s): State<Arc<AppState>>) -> Reply {
    let state = s.clew.state();
    let model = state.model.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_model",
            "no authorization model has been written to this store",
        )
    })?;
    Ok(axum::Json(json!({
        "model_id": model.id,
        "dsl": model.dsl,
        "revision": state.revision,
    })))
}

pub async fn model_versions(State(s): State<Arc<AppState>>) -> Reply {
    blocking(move || {
        let revision = s.clew.state().revision;
        let versions = s.clew.store().model_versions()?;
        Ok(json!({"versions": versions, "revision": revision}))
    })
    .await
    .map(axum::Json)
}

pub async fn model_version(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request(
            "invalid_id",
            format!("model id '{id}': expected letters and digits"),
        ));
    }
    blocking(move || {
        let dsl = s.clew.store().model_dsl(&id)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("no model version '{id}'"),
            )
        })?;
        Ok(json!({"model_id": id, "dsl": dsl}))
    })
    .await
    .map(axum::Json)
}

pub async fn validate_model(Json(b): Json<ModelBody>) -> Reply {
    Ok(axum::Json(match TypeSystem::from_dsl(&b.dsl) {
        Ok(ts) => json!({
            "valid": true,
            "model_id": ts.id,
            "types": ts.model.types.len(),
            "conditions": ts.model.conditions.len(),
        }),
        Err(e) => {
            let mut v = model_details(&e);
            v["valid"] = json!(false);
            v["message"] = json!(e.to_string());
            v
        }
    }))
}

pub async fn revision(State(s): State<Arc<AppState>>) -> Reply {
    let state = s.clew.state();
    Ok(axum::Json(
        json!({"revision": state.revision, "model_id": state.model_id()}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesBody {
    pub object: String,
    #[serde(default)]
    pub at_least_as_fresh: Option<u64>,
}

/// The typed literal attributes of an object's node (for conditions and for stewards).
pub async fn attributes(State(s): State<Arc<AppState>>, Json(b): Json<AttributesBody>) -> Reply {
    let o = object("object", &b.object)?;
    blocking(move || {
        let state = s.clew.read_state(consistency(b.at_least_as_fresh))?;
        let revision = state.revision;
        let attributes = s.clew.store().attributes(&o, &state.vocab)?;
        Ok(axum::Json(json!({
            "object": o.to_string(),
            "attributes": attributes,
            "revision": revision,
        })))
    })
    .await
}
