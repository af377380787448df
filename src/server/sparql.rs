//! The SPARQL 1.1 Protocol at `/sparql`.
//!
//! * Query: `GET /sparql?query=…`, `POST` with `application/x-www-form-urlencoded` (`query=…`),
//!   or `POST` with `application/sparql-query` (the query is the body). `default-graph-uri` and
//!   `named-graph-uri` may repeat. Results as SPARQL JSON, XML, CSV or TSV; graphs as Turtle,
//!   N-Triples, JSON-LD or RDF/XML, by the `Accept` header or a `format` parameter.
//! * Update: `POST` with a form (`update=…`, `using-graph-uri`, `using-named-graph-uri`) or
//!   `application/sparql-update`. It goes through the single writer as one revision; the
//!   answer is JSON `{revision, changed, quads_added, quads_removed, tuples_changed}`.
//!
//! Every request runs on the blocking pool under the SPARQL time limit, with a cancellation
//! token that fires at the limit or when the client goes away; at most
//! `sparql_max_concurrent` run at once, so runaway queries cannot starve the decisions.

use super::error::ApiError;
use super::{AppState, blocking};
use crate::sparql::{self, CancellationToken, SparqlOptions};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Cancels the evaluation when the request ends for any reason (done, timed out, client gone).
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// One protocol request, from the URL and/or the body.
#[derive(Default)]
struct Request {
    query: Option<String>,
    update: Option<String>,
    default_graphs: Vec<String>,
    named_graphs: Vec<String>,
    using_graphs: Vec<String>,
    using_named_graphs: Vec<String>,
    format: Option<String>,
}

impl Request {
    fn absorb(&mut self, pairs: Vec<(String, String)>) -> Result<(), ApiError> {
        for (k, v) in pairs {
            let one = |slot: &mut Option<String>, v: String| {
                if slot.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        format!("parameter '{k}' is given more than once"),
                    ));
                }
                *slot = Some(v);
                Ok(())
            };
            match k.as_str() {
                "query" => one(&mut self.query, v)?,
                "update" => one(&mut self.update, v)?,
                "default-graph-uri" => self.default_graphs.push(v),
                "named-graph-uri" => self.named_graphs.push(v),
                "using-graph-uri" => self.using_graphs.push(v),
                "using-named-graph-uri" => self.using_named_graphs.push(v),
                // `format` is Clew's; `output` and `results` are what common clients send.
                "format" | "output" | "results" => {
                    self.format.get_or_insert(v);
                }
                // Other parameters (clients add their own, e.g. timeouts) are ignored.
                _ => {}
            }
        }
        Ok(())
    }
}

fn pairs(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("the parameters are not valid application/x-www-form-urlencoded: {e}"),
        )
    })
}

fn body_text(body: &Bytes, what: &str) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_request", format!("the {what} is not UTF-8")))
}

/// `GET` and `POST /sparql`.
pub async fn endpoint(
    State(state): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut req = Request::default();
    if let Some(raw) = &raw {
        req.absorb(pairs(raw)?)?;
    }
    if method == Method::POST {
        let media = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
            .unwrap_or_default();
        match media.as_str() {
            "application/x-www-form-urlencoded" => {
                req.absorb(pairs(&body_text(&body, "form")?)?)?
            }
            "application/sparql-query" => {
                if req.query.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "a query in the body and in the URL",
                    ));
                }
                req.query = Some(body_text(&body, "query")?);
            }
            "application/sparql-update" => {
                if req.update.is_some() {
                    return Err(ApiError::bad_request(
                        "invalid_request",
                        "an update in the body and in the URL",
                    ));
                }
                req.update = Some(body_text(&body, "update")?);
            }
            other => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "Content-Type '{other}' is not a SPARQL request: use application/sparql-query, application/sparql-update or application/x-www-form-urlencoded"
                    ),
                ));
            }
        }
    } else if req.update.is_some() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "a SPARQL update must be sent with POST",
        ));
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match (req.query.take(), req.update.take()) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "invalid_request",
            "a request carries either a query or an update, not both",
        )),
        (None, None) => Err(ApiError::bad_request(
            "invalid_request",
            "no SPARQL query or update: give `query` (GET or POST) or `update` (POST)",
        )),
        (Some(q), None) => {
            if !req.using_graphs.is_empty() || !req.using_named_graphs.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "using-graph-uri and using-named-graph-uri apply to updates; a query takes default-graph-uri and named-graph-uri",
                ));
            }
            let (d, n) = (req.default_graphs, req.named_graphs);
            run_query(state, q, d, n, accept, req.format).await
        }
        (None, Some(u)) => {
            if !req.default_graphs.is_empty() || !req.named_graphs.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "default-graph-uri and named-graph-uri apply to queries; an update takes using-graph-uri and using-named-graph-uri",
                ));
            }
            run_update(state, u, req.using_graphs, req.using_named_graphs).await
        }
    }
}

fn options(state: &AppState, default: Vec<String>, named: Vec<String>) -> SparqlOptions {
    let c = &state.config;
    SparqlOptions {
        cancel: CancellationToken::new(),
        timeout: c.sparql_timeout,
        max_results: c.sparql_max_results,
        max_update_quads: c.sparql_max_update_quads,
        allow_service: c.sparql_allow_service,
        allow_load: c.sparql_allow_load,
        default_graph_uris: default,
        named_graph_uris: named,
    }
}

/// Runs `f` with a SPARQL slot, under the time limit, cancelled when the request ends.
async fn limited<T: Send + 'static>(
    state: &Arc<AppState>,
    options: &SparqlOptions,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _cancel = CancelOnDrop(options.cancel.clone());
    let busy = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sparql_busy",
            format!(
                "all {} SPARQL slots stayed busy for the time limit ({:?}); retry later",
                state.config.sparql_max_concurrent, options.timeout
            ),
        )
    };
    let slot = tokio::time::timeout(options.timeout, state.sparql_slots.clone().acquire_owned())
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
    let token = options.cancel.clone();
    let timer = tokio::spawn({
        let limit = options.timeout;
        async move {
            tokio::time::sleep(limit).await;
            token.cancel();
        }
    });
    let out = blocking(move || {
        let _slot = slot;
        f()
    })
    .await;
    timer.abort();
    out
}

async fn run_query(
    state: Arc<AppState>,
    query: String,
    default: Vec<String>,
    named: Vec<String>,
    accept: Option<String>,
    format: Option<String>,
) -> Result<Response, ApiError> {
    let opts = options(&state, default, named);
    let clew = state.clew.clone();
    let run = opts.clone();
    let (answer, revision) = limited(&state, &opts, move || {
        clew.sparql_query(&query, &run).map_err(ApiError::from)
    })
    .await?;
    let fmt = sparql::negotiate(answer.kind(), accept.as_deref(), format.as_deref())?;
    let body = sparql::serialize(&answer, fmt)?;
    state.metrics.decision("sparql_query", "ok", 1);
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(fmt.content_type()),
    );
    h.insert("x-clew-revision", HeaderValue::from(revision));
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(resp)
}

async fn run_update(
    state: Arc<AppState>,
    update: String,
    using: Vec<String>,
    using_named: Vec<String>,
) -> Result<Response, ApiError> {
    let opts = options(&state, using, using_named);
    let clew = state.clew.clone();
    let run = opts.clone();
    let done = limited(&state, &opts, move || {
        clew.sparql_update(&update, &run).map_err(ApiError::from)
    })
    .await?;
    if done.changed {
        state.wrote(done.revision, "sparql");
    }
    let mut resp = axum::Json(&done).into_response();
    resp.headers_mut()
        .insert("x-clew-revision", HeaderValue::from(done.revision));
    Ok(resp)
}
