//! `clew serve`: the HTTP face of a [`Clew`] instance.
//!
//! * `/v1/…` — the JSON API ([`api`]): decisions, bulk answers, tuples, models, the change
//!   stream ([`watch`]), import and export of whole documents ([`transfer`]).
//! * `/access/v1/…`, `/.well-known/authzen-configuration` — OpenID AuthZEN 1.0 ([`authzen`]).
//! * `/healthz`, `/readyz`, `/metrics` (Prometheus), `/openapi.json` ([`openapi`]).
//!
//! Every route is declared once, in [`routes`]; the router and the OpenAPI document are both
//! built from that table, so they cannot disagree. Decisions run on the async workers (a check
//! takes microseconds); everything that can take longer (writes, lookups, filters, batches,
//! SPARQL) runs on the blocking pool. Every request gets an `x-request-id`, a tracing span, a
//! latency observation and the configured time limit; a request over its time gets a 503 with
//! the error body (a write that already started still completes atomically or not at all).

pub mod api;
pub mod authzen;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod sparql;
pub mod transfer;
pub mod watch;

pub use config::{Config, ServeArgs};

use crate::service::Clew;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use error::ApiError;
use metrics::Metrics;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// What every handler shares.
pub struct AppState {
    pub clew: Arc<Clew>,
    pub config: Config,
    pub metrics: Metrics,
    /// The latest revision, for `watch` streams to wake on.
    pub revisions: tokio::sync::watch::Sender<u64>,
    /// Set when the server shuts down (ends `watch` streams so shutdown can finish).
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Slots for SPARQL requests (`sparql_max_concurrent`).
    pub sparql_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn new(clew: Arc<Clew>, config: Config) -> Self {
        let revision = clew.state().revision;
        Self {
            sparql_slots: Arc::new(tokio::sync::Semaphore::new(config.sparql_max_concurrent)),
            metrics: Metrics::new(clew.clone()),
            clew,
            config,
            revisions: tokio::sync::watch::Sender::new(revision),
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Records an acknowledged write and wakes `watch` streams.
    pub fn wrote(&self, revision: u64, kind: &str) {
        self.metrics.write(kind);
        self.revisions.send_modify(|r| *r = (*r).max(revision));
    }
}

tokio::task_local! {
    /// The deadline of the request being served (set by [`observe`]).
    static DEADLINE: Instant;
}

/// Runs `f` on the blocking pool, under the request's deadline for writes
/// ([`crate::service::with_write_deadline`]).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let deadline = DEADLINE.try_with(|d| *d).ok();
    tokio::task::spawn_blocking(move || crate::service::with_write_deadline(deadline, f))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

/// Routes that write: their time limit applies until the write starts (reading the body,
/// waiting for the single writer); a write that has started runs to completion and says how it
/// ended, so that a client is never told "timeout" about a write that then commits.
fn is_write(method: &str, route: &str) -> bool {
    method == "POST"
        && matches!(
            route,
            "/v1/tuples/write" | "/v1/model" | "/v1/import" | "/sparql"
        )
}

/// One route: its path, method, handler, summary, and request body (for the OpenAPI document).
pub struct Route {
    pub path: &'static str,
    pub method: Method,
    pub handler: MethodRouter<Arc<AppState>>,
    pub summary: &'static str,
    pub body: Option<serde_json::Value>,
}

/// Every route of the server.
pub fn routes() -> Vec<Route> {
    use openapi::schema as b;
    let r = |path, method, handler, summary, body| Route {
        path,
        method,
        handler,
        summary,
        body,
    };
    vec![
        r(
            "/v1/check",
            Method::POST,
            post(api::check),
            "Decide whether a user has a relation on an object (optionally with its explanation)",
            Some(b::check()),
        ),
        r(
            "/v1/batch-check",
            Method::POST,
            post(api::batch_check),
            "Many checks at one revision; duplicates are answered once",
            Some(b::batch_check()),
        ),
        r(
            "/v1/lookup",
            Method::POST,
            post(api::lookup),
            "Every object of a type the user has the relation on (paged, complete)",
            Some(b::lookup()),
        ),
        r(
            "/v1/filter",
            Method::POST,
            post(api::filter),
            "The permitted subset of candidate objects, in their order",
            Some(b::filter()),
        ),
        r(
            "/v1/subjects",
            Method::POST,
            post(api::subjects),
            "Who has a relation on an object (ListUsers, with exclusions)",
            Some(b::subjects()),
        ),
        r(
            "/v1/expand",
            Method::POST,
            post(api::expand),
            "The userset tree of an object's relation",
            Some(b::expand()),
        ),
        r(
            "/v1/attributes",
            Method::POST,
            post(api::attributes),
            "An object's typed literal attributes (numbers, booleans, strings, dateTimes, durations) from every data graph",
            Some(b::attributes()),
        ),
        r(
            "/v1/tuples/write",
            Method::POST,
            post(api::write),
            "Write and delete tuples atomically, under optional preconditions",
            Some(b::write()),
        ),
        r(
            "/v1/tuples/read",
            Method::POST,
            post(api::read),
            "Read stored tuples by pattern (paged)",
            Some(b::read()),
        ),
        r(
            "/v1/model",
            Method::POST,
            post(api::write_model),
            "Write a new model version (OpenFGA DSL); it becomes current",
            Some(b::model()),
        ),
        r(
            "/v1/model",
            Method::GET,
            get(api::read_model),
            "The current model",
            None,
        ),
        r(
            "/v1/model/versions",
            Method::GET,
            get(api::model_versions),
            "Every model version",
            None,
        ),
        r(
            "/v1/model/versions/{id}",
            Method::GET,
            get(api::model_version),
            "One model version",
            None,
        ),
        r(
            "/v1/model/validate",
            Method::POST,
            post(api::validate_model),
            "Validate a model without storing it (errors with line and column)",
            Some(b::model()),
        ),
        r(
            "/v1/revision",
            Method::GET,
            get(api::revision),
            "The latest revision",
            None,
        ),
        r(
            "/v1/import",
            Method::POST,
            post(transfer::import),
            "Import a document as one revision (Content-Type: text/turtle, application/n-triples, application/n-quads, application/trig, application/rdf+xml, application/jsonl, application/yaml; `?graph=&replace=&force_graph=&base=`); a syntax error names its line and column and stores nothing",
            None,
        ),
        r(
            "/v1/export",
            Method::GET,
            get(transfer::export),
            "Export the data graphs or tuples (`?format=nquads|trig|turtle|ntriples|rdfxml|jsonl|json|yaml&graph=`)",
            None,
        ),
        r(
            "/sparql",
            Method::GET,
            get(sparql::endpoint),
            "SPARQL 1.1 query (`?query=`); results as JSON, XML, CSV, TSV, graphs as Turtle, N-Triples, JSON-LD, RDF/XML",
            None,
        ),
        r(
            "/sparql",
            Method::POST,
            post(sparql::endpoint),
            "SPARQL 1.1 query or update (form, application/sparql-query, application/sparql-update); an update is one revision",
            Some(b::sparql_update()),
        ),
        r(
            "/v1/watch",
            Method::GET,
            get(watch::watch),
            "Server-Sent Events: every change after revision `since`, in order, without gaps",
            None,
        ),
        r(
            "/access/v1/evaluation",
            Method::POST,
            post(authzen::evaluation),
            "AuthZEN access evaluation",
            Some(b::authzen_evaluation()),
        ),
        r(
            "/access/v1/evaluations",
            Method::POST,
            post(authzen::evaluations),
            "AuthZEN access evaluations (batch)",
            Some(b::authzen_evaluations()),
        ),
        r(
            "/access/v1/search/resource",
            Method::POST,
            post(authzen::search_resource),
            "AuthZEN resource search",
            Some(b::authzen_search()),
        ),
        r(
            "/access/v1/search/subject",
            Method::POST,
            post(authzen::search_subject),
            "AuthZEN subject search",
            Some(b::authzen_search()),
        ),
        r(
            "/access/v1/search/action",
            Method::POST,
            post(authzen::search_action),
            "AuthZEN action search",
            Some(b::authzen_search()),
        ),
        r(
            "/.well-known/authzen-configuration",
            Method::GET,
            get(authzen::configuration),
            "AuthZEN metadata",
            None,
        ),
        r("/healthz", Method::GET, get(healthz), "Liveness", None),
        r(
            "/readyz",
            Method::GET,
            get(readyz),
            "Readiness: the store answers and a state is published",
            None,
        ),
        r(
            "/metrics",
            Method::GET,
            get(metrics_text),
            "Prometheus metrics",
            None,
        ),
        r(
            "/openapi.json",
            Method::GET,
            get(openapi_json),
            "This document",
            None,
        ),
    ]
}

/// The router, with its middleware.
pub fn router(state: Arc<AppState>) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<AppState>>)> = Vec::new();
    for route in routes() {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(route.handler),
            None => by_path.push((route.path, route.handler)),
        }
    }
    let mut app = Router::new();
    for (path, handler) in by_path {
        app = app.route(path, handler);
    }
    let request_id = HeaderName::from_static("x-request-id");
    // A known path with a method it does not serve gets the JSON error body too (and axum
    // still adds the `Allow` header).
    app.method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Time limit and metrics for every request.
async fn observe(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let limit = s.config.request_timeout;
    // The body is read in full (within its limit) before the handler runs: whatever the
    // handler answers, nothing is left unread, so a kept-alive connection stays usable after an
    // error; and a slow body counts against the request's time.
    let max_body = s.config.max_body_bytes;
    let deadline = start + limit;
    let write = is_write(&method, &route);
    let timed_out = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response()
    };
    let read = async move {
        let (parts, body) = req.into_parts();
        match axum::body::to_bytes(body, max_body).await {
            Ok(bytes) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
            Err(e) => Err({
                let text = format!(
                    "{e} {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                );
                if text.contains("length limit") {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        format!("the request body exceeds the limit of {max_body} bytes"),
                    )
                    .into_response()
                } else {
                    ApiError::bad_request("invalid_body", format!("reading the request body: {e}"))
                        .into_response()
                }
            }),
        }
    };
    let response = if write {
        match tokio::time::timeout(limit, read).await {
            Err(_) => timed_out(),
            Ok(Err(r)) => r,
            Ok(Ok(req)) => DEADLINE.scope(deadline, next.run(req)).await,
        }
    } else {
        let work = async move {
            match read.await {
                Ok(req) => DEADLINE.scope(deadline, next.run(req)).await,
                Err(r) => r,
            }
        };
        tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| timed_out())
    };
    s.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {} {} (see /openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {} (see /openapi.json)",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(s): State<Arc<AppState>>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let published = s.clew.state().revision;
    let stored = blocking(move || {
        s.clew
            .store()
            .revision()
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()))
    })
    .await?;
    Ok(axum::Json(
        json!({"status": "ready", "revision": published, "stored_revision": stored}),
    ))
}

async fn metrics_text(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = s
        .metrics
        .encode()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document(&routes()))
}

/// The example `--demo` loads (embedded, so the binary needs no checkout): the enterprise
/// knowledge graph of `fixtures/enterprise/`, in plain FOAF/ORG/DCAT/PROV/Dublin Core, read
/// through its bindings.
pub const DEMO_MODEL: &str = include_str!("../fixtures/enterprise/model.fga");
/// The demo's graphs: (graph IRI, Turtle).
pub const DEMO_GRAPHS: [(&str, &str); 3] = [
    (
        "https://example.com/graph/bindings",
        include_str!("../fixtures/enterprise/bindings.ttl"),
    ),
    (
        "https://example.com/graph/vocabulary",
        include_str!("../fixtures/enterprise/vocab.ttl"),
    ),
    (
        "https://example.com/graph/enterprise",
        include_str!("../fixtures/enterprise/graph.ttl"),
    ),
];

/// Loads the demo into an empty store (the model, then its three graphs as one revision);
/// leaves a store with data alone.
pub fn load_demo(clew: &Clew) -> Result<bool, String> {
    if clew.state().revision > 0 {
        return Ok(false);
    }
    clew.write_model(DEMO_MODEL)
        .map_err(|e| format!("demo model: {e}"))?;
    let mut docs = Vec::new();
    for (graph, text) in DEMO_GRAPHS {
        let source = crate::store::RdfSource {
            format: crate::store::RdfFormat::Turtle,
            graph,
            force_graph: true,
            base_iri: None,
        };
        docs.push(
            clew.parse_rdf(text.as_bytes(), &source)
                .map_err(|e| format!("demo graph <{graph}>: {e}"))?,
        );
    }
    clew.import_documents(&docs, false, "demo")
        .map_err(|e| format!("demo graphs: {e}"))?;
    Ok(true)
}

fn demo_banner(addr: &std::net::SocketAddr) -> String {
    let u = format!("http://{addr}");
    format!(
        r#"Try:
  curl -s {u}/v1/check -H 'content-type: application/json' \
    -d '{{"user":"user:dan","relation":"reader","object":"dataset:gl-journal","explain":true}}'
  curl -s {u}/v1/lookup -H 'content-type: application/json' \
    -d '{{"user":"user:walt","relation":"viewer","object_type":"document"}}'
  curl -s {u}/v1/subjects -H 'content-type: application/json' \
    -d '{{"object":"dataset:access-review","relation":"reader","subject_type":"user"}}'
  curl -s {u}/v1/tuples/write -H 'content-type: application/json' \
    -d '{{"writes":[{{"user":"user:zoe","relation":"invoker","object":"tool:pager"}}]}}'
  curl -s {u}/access/v1/evaluation -H 'content-type: application/json' \
    -d '{{"subject":{{"type":"user","id":"quinn"}},"action":{{"name":"reader"}},"resource":{{"type":"dataset","id":"sales-pipeline"}}}}'
  curl -s '{u}/sparql' --data-urlencode 'query=SELECT ?who WHERE {{ ?who <http://www.w3.org/ns/org#memberOf> <https://id.example.com/org/data-eng> }}'
  curl -sN '{u}/v1/watch?since=0'
  curl -s {u}/metrics
"#
    )
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries only the startup line (and the demo banner), which
    // scripts and tests read for the bound address.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves the configuration, opens the store and serves until SIGTERM or Ctrl-C; in-flight
/// requests finish, then the store is flushed.
pub fn run(args: &ServeArgs) -> Result<(), String> {
    let mut config = Config::resolve(args)?;
    if !config.sparql_in_process {
        // This very executable, even if its file is replaced while the server runs (Linux's
        // /proc/<pid>/exe keeps pointing at the running image).
        let proc_exe = std::path::PathBuf::from(format!("/proc/{}/exe", std::process::id()));
        let exe = if proc_exe.exists() {
            Ok(proc_exe)
        } else {
            std::env::current_exe()
        };
        if let (Some(dir), Ok(exe)) = (&config.data_dir, exe) {
            config.sparql_worker = Some((exe, dir.clone()));
        }
    }
    init_logging(config.log_json);
    let clew = match &config.data_dir {
        Some(dir) => Clew::open(dir).map_err(|e| format!("{}: {e}", dir.display()))?,
        None => Clew::memory().map_err(|e| e.to_string())?,
    };
    let clew = Arc::new(clew);
    if config.demo {
        if load_demo(&clew)? {
            tracing::info!("loaded the demo graph (fixtures/enterprise)");
        } else {
            tracing::info!("the store already holds data; --demo loads nothing");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let state = Arc::new(AppState::new(clew.clone(), config.clone()));
    let served = clew.clone();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let store = match &config.data_dir {
            Some(d) => d.display().to_string(),
            None => "memory".to_string(),
        };
        let revision = served.state().revision;
        // Handlers first, address second: whoever waits for the address may signal at once.
        let signal = shutdown_signal()?;
        tracing::info!(%addr, store, revision, "clew listening");
        println!("clew listening on http://{addr} (store: {store}, revision {revision})");
        if config.demo {
            println!("{}", demo_banner(&addr));
        }
        tokio::spawn(compact_when_idle(state.clone()));
        let shutdown = state.shutdown.clone();
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down: finishing in-flight requests");
                shutdown.send_replace(true);
            })
            .await
            .map_err(|e| e.to_string())
    })?;
    clew.store().flush().map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// How often the idle compactor looks at the revision.
const IDLE_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// Compacts the index once writes pause: when the revision has not moved for a whole tick and
/// the index holds a delta ([`Clew::compact_idle`]). Stops at shutdown.
async fn compact_when_idle(state: Arc<AppState>) {
    let mut shutdown = state.shutdown.subscribe();
    let mut tick = tokio::time::interval(IDLE_TICK);
    let mut last = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let current = state.clew.state();
        let revision = current.revision;
        let idle =
            last == Some(revision) && (current.index.delta_len() > 0 || current.groups.has_delta());
        drop(current);
        last = Some(revision);
        if idle {
            let clew = state.clew.clone();
            match tokio::task::spawn_blocking(move || clew.compact_idle()).await {
                Ok(Ok(true)) => tracing::debug!(revision, "compacted the index while idle"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!("idle compaction: {e}"),
                Err(e) => tracing::warn!("idle compaction task: {e}"),
            }
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that completes on the
/// first of them. Installing them before the address is printed means a signal sent as soon
/// as the server is reachable shuts it down gracefully instead of killing it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
        let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
