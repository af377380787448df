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
//! At most `sparql_max_concurrent` requests run at once. With the on-disk store each query
//! runs in a worker process (`clew sparql-worker`, the same executable) that opens the store
//! read-only, under an address-space limit (`sparql_memory_mb`), and is killed at the time
//! limit or when the client goes away: a runaway query — a sorted cross product computes without
//! ever reading the store again, so no cancellation check inside the evaluator would stop it —
//! costs one process, never the server. With the in-memory store (or `--sparql-in-process`)
//! queries run on the blocking pool with a cancellation token that fires at the limit.
//! Updates always run in the server, through the single writer, under the same token.

use super::error::ApiError;
use super::{AppState, blocking};
use crate::sparql::{self, CancellationToken, SparqlOptions};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

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
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "invalid_body"
        };
        ApiError::new(status, code, r.body_text())
    })?;
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
    // Syntax, refusals and the format are settled before anything runs.
    let kind = sparql::prepare_query(&query, &opts)?;
    let fmt = sparql::negotiate(kind, accept.as_deref(), format.as_deref())?;
    let revision = state.clew.store().revision().map_err(ApiError::from)?;
    let body = match state.config.sparql_worker.clone() {
        Some((exe, dir)) => in_worker(&state, &opts, exe, dir, query, fmt).await?,
        None => {
            let clew = state.clew.clone();
            let run = opts.clone();
            limited(&state, &opts, move || {
                let (answer, _) = clew.sparql_query(&query, &run)?;
                Ok(sparql::serialize(&answer, fmt)?)
            })
            .await?
        }
    };
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

/// The worker's error report on stderr.
#[derive(serde::Serialize, serde::Deserialize)]
struct WorkerError {
    code: String,
    message: String,
}

/// Runs a query in a worker process under the memory budget; kills it at the time limit.
async fn in_worker(
    state: &Arc<AppState>,
    opts: &SparqlOptions,
    exe: PathBuf,
    dir: PathBuf,
    query: String,
    fmt: sparql::Format,
) -> Result<Vec<u8>, ApiError> {
    let c = &state.config;
    let _slot = tokio::time::timeout(opts.timeout, state.sparql_slots.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sparql_busy",
                format!(
                    "all {} SPARQL slots stayed busy for the time limit ({:?}); retry later",
                    c.sparql_max_concurrent, opts.timeout
                ),
            )
        })?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    // The address-space limit applies to the worker alone (ulimit in its own shell, then exec).
    cmd.arg("-c")
        .arg("ulimit -v \"$1\" || exit 97; shift; exec \"$@\"")
        .arg("clew-sparql-worker")
        .arg((c.sparql_memory_mb * 1024).to_string())
        .arg(exe)
        .arg("sparql-worker")
        .arg("--data-dir")
        .arg(dir)
        .arg("--format")
        .arg(fmt.name())
        .arg("--max-results")
        .arg(opts.max_results.to_string())
        .arg("--timeout-ms")
        .arg(opts.timeout.as_millis().to_string());
    if opts.allow_service {
        cmd.arg("--allow-service");
    }
    for g in &opts.default_graph_uris {
        cmd.arg("--default-graph").arg(g);
    }
    for g in &opts.named_graph_uris {
        cmd.arg("--named-graph").arg(g);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot start the SPARQL worker: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin
            .write_all(query.as_bytes())
            .await
            .map_err(|e| ApiError::internal(format!("cannot send the query to its worker: {e}")))?;
    }
    // The worker stops itself at the limit when it can; a little grace, then it is killed
    // (dropping the future kills the child).
    let grace = opts.timeout + Duration::from_millis(250);
    let out = match tokio::time::timeout(grace, child.wait_with_output()).await {
        Err(_) => return Err(sparql::SparqlError::Timeout(opts.timeout).into()),
        Ok(Err(e)) => return Err(ApiError::internal(format!("the SPARQL worker failed: {e}"))),
        Ok(Ok(out)) => out,
    };
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(report) = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<WorkerError>(l).ok())
    {
        let e = sparql::error_from_worker(&report.code, report.message, opts);
        return Err(e.into());
    }
    // No report: it died — out of its address space (allocation failure aborts), or killed.
    if stderr.contains("memory allocation")
        || stderr.contains("bad_alloc")
        || out.status.code().is_none()
    {
        return Err(sparql::SparqlError::MemoryLimit(c.sparql_memory_mb).into());
    }
    Err(ApiError::internal(format!(
        "the SPARQL worker exited with {}: {}",
        out.status,
        stderr.lines().last().unwrap_or("")
    )))
}

/// Arguments of `clew sparql-worker` (started by the server, not by people).
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[arg(long)]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub format: String,
    #[arg(long)]
    pub max_results: usize,
    #[arg(long)]
    pub timeout_ms: u64,
    #[arg(long)]
    pub allow_service: bool,
    #[arg(long)]
    pub default_graph: Vec<String>,
    #[arg(long)]
    pub named_graph: Vec<String>,
}

/// `clew sparql-worker`: reads a query on stdin, evaluates it on the store opened read-only,
/// writes the serialized answer on stdout; on error, one JSON line `{code, message}` on stderr
/// and exit status 3.
pub fn worker(args: &WorkerArgs) -> ExitCode {
    let fail = |e: sparql::SparqlError| {
        let report = WorkerError {
            code: e.kind().to_string(),
            message: e.to_string(),
        };
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        ExitCode::from(3)
    };
    let mut query = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut query) {
        return fail(sparql::SparqlError::Internal(format!(
            "reading the query: {e}"
        )));
    }
    let store = match crate::store::Store::open_read_only(&args.data_dir) {
        Ok(s) => s,
        Err(e) => return fail(e.into()),
    };
    let opts = SparqlOptions {
        timeout: Duration::from_millis(args.timeout_ms),
        max_results: args.max_results,
        allow_service: args.allow_service,
        default_graph_uris: args.default_graph.clone(),
        named_graph_uris: args.named_graph.clone(),
        ..SparqlOptions::default()
    };
    let token = opts.cancel.clone();
    let limit = opts.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        token.cancel();
    });
    let answer = store.sparql_query(&query, &opts).and_then(|a| {
        let f = sparql::negotiate(a.kind(), None, Some(&args.format))?;
        sparql::serialize(&a, f)
    });
    match answer {
        Ok(bytes) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                return ExitCode::from(4);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
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
