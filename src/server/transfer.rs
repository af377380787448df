//! `POST /v1/import` and `GET /v1/export`: whole documents in and out.
//!
//! An import's format is its Content-Type (`text/turtle`, `application/n-triples`,
//! `application/n-quads`, `application/trig`, `application/rdf+xml`; tuple files as
//! `application/jsonl`, `application/json`, `application/yaml`). The document is parsed
//! completely first — a syntax error is a 400 `import_syntax` whose details carry `line` and
//! `column` — and is then one revision through the single writer, or nothing. The answer is
//! `{revision, changed, quads_added, quads_removed, tuples_changed}`. An export's body is the
//! serialization, with `x-clew-revision` naming the revision it is.

use super::error::{ApiError, Query};
use super::{AppState, blocking};
use crate::iri::{IMPORTED_GRAPH, TUPLES_GRAPH};
use crate::service::{ExportFormat, ImportOutcome, ServiceError, TupleFormat, parse_tuples};
use crate::store::{RdfFormat, RdfSource};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// The graph for triples (default: the imported graph; for tuple files, the tuple graph).
    graph: Option<String>,
    /// Put every quad of a dataset into `graph`.
    #[serde(default)]
    force_graph: bool,
    /// Clear the graphs the document writes to first.
    #[serde(default)]
    replace: bool,
    /// Base IRI for relative IRIs.
    base: Option<String>,
}

pub async fn import(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ImportParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ImportOutcome>, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = RdfFormat::from_media_type(media_type)
        .map(ExportFormat::Rdf)
        .or_else(|| TupleFormat::from_media_type(media_type).map(ExportFormat::Tuples))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "Content-Type '{media_type}' is not an importable format: text/turtle, application/n-triples, application/n-quads, application/trig, application/rdf+xml, application/jsonl, application/json or application/yaml"
                ),
            )
        })?;
    let s2 = s.clone();
    let out = blocking(move || {
        let clew = &s2.clew;
        let doc = match format {
            ExportFormat::Rdf(format) => clew.parse_rdf(
                &body,
                &RdfSource {
                    format,
                    graph: q.graph.as_deref().unwrap_or(IMPORTED_GRAPH),
                    force_graph: q.force_graph,
                    base_iri: q.base.as_deref(),
                },
            )?,
            ExportFormat::Tuples(format) => {
                let text = std::str::from_utf8(&body).map_err(|e| {
                    ApiError::bad_request("import_syntax", format!("the body is not UTF-8: {e}"))
                })?;
                let tuples = parse_tuples(text, format).map_err(ServiceError::from)?;
                clew.tuple_document(&tuples, q.graph.as_deref().unwrap_or(TUPLES_GRAPH))?
            }
        };
        Ok(clew.import_documents(&[doc], q.replace, "import:http")?)
    })
    .await?;
    if out.changed {
        s.wrote(out.revision, "import");
    }
    Ok(axum::Json(out))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// nquads (default), trig, turtle, ntriples, rdfxml, jsonl, json or yaml.
    format: Option<String>,
    /// Only this graph.
    graph: Option<String>,
}

pub async fn export(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let name = q.format.as_deref().unwrap_or("nquads");
    let format = ExportFormat::from_name(name).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_format",
            format!(
                "format '{name}': expected nquads, trig, turtle, ntriples, rdfxml, jsonl, json or yaml"
            ),
        )
    })?;
    let graphs = q.graph.map(|g| vec![g]);
    let (bytes, revision) = blocking(move || Ok(s.clew.export(format, graphs.as_deref())?)).await?;
    let mut response = ([(header::CONTENT_TYPE, format.media_type())], bytes).into_response();
    response
        .headers_mut()
        .insert("x-clew-revision", HeaderValue::from(revision));
    Ok(response)
}
