//! The two SPARQL features that reach outside the server, each used only when the server
//! enables it: `LOAD <url>` fetches an RDF document, and `SERVICE <endpoint>` sends a
//! sub-query to another SPARQL endpoint (SPARQL 1.1 Federated Query). Both speak plain HTTP
//! (this build has no TLS client), with the request's time limit and a size cap.

use super::{SparqlError, SparqlOptions};
use oxigraph::io::{RdfFormat, RdfParser};
use oxigraph::model::{NamedNode, Triple};
use oxigraph::sparql::results::{
    QueryResultsFormat, QueryResultsParser, SliceQueryResultsParserOutput,
};
use oxigraph::sparql::{
    DefaultServiceHandler, QueryEvaluationError, QuerySolution, QuerySolutionIter,
};
use spargebra::Query;
use spargebra::algebra::GraphPattern;
use std::sync::Arc;
use std::time::Duration;

/// Largest document `LOAD` or a `SERVICE` answer may be.
const MAX_REMOTE_BYTES: u64 = 64 * 1024 * 1024;

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into()
}

fn fetched(url: &str, e: impl std::fmt::Display) -> SparqlError {
    SparqlError::Evaluation(format!("fetching <{url}> failed: {e}"))
}

/// Fetches and parses the RDF document at `source` (its format from the response's
/// `Content-Type`, else from the URL's extension). Returns its triples; blank nodes are renamed
/// so they cannot collide with the store's.
pub fn load(source: &NamedNode, options: &SparqlOptions) -> Result<Vec<Triple>, SparqlError> {
    if !options.allow_load {
        return Err(SparqlError::Refused(format!(
            "LOAD {source} is disabled on this server"
        )));
    }
    let url = source.as_str();
    let mut resp = agent(options.timeout)
        .get(url)
        .header(
            "Accept",
            "text/turtle, application/n-triples, application/rdf+xml, application/ld+json;q=0.9, application/n-quads;q=0.8, application/trig;q=0.8",
        )
        .call()
        .map_err(|e| fetched(url, e))?;
    if !resp.status().is_success() {
        return Err(fetched(url, format!("HTTP {}", resp.status())));
    }
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let format = media
        .as_deref()
        .and_then(RdfFormat::from_media_type)
        .or_else(|| {
            url.rsplit_once('.')
                .and_then(|(_, ext)| RdfFormat::from_extension(ext))
        })
        .ok_or_else(|| {
            fetched(
                url,
                format!(
                    "unknown RDF format (Content-Type {})",
                    media.as_deref().unwrap_or("none")
                ),
            )
        })?;
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_REMOTE_BYTES)
        .read_to_vec()
        .map_err(|e| fetched(url, e))?;
    let parser = RdfParser::from_format(format)
        .with_base_iri(url)
        .map_err(|e| fetched(url, e))?
        .rename_blank_nodes();
    let mut out = Vec::new();
    for q in parser.for_slice(&body) {
        let q = q.map_err(|e| SparqlError::Evaluation(format!("<{url}>: {e}")))?;
        out.push(Triple::new(q.subject, q.predicate, q.object));
    }
    Ok(out)
}

/// Evaluates `SERVICE` patterns by sending them, as a `SELECT *`, to the named endpoint with
/// the SPARQL 1.1 Protocol, and reading its JSON results.
pub struct HttpService {
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(String);

impl DefaultServiceHandler for HttpService {
    type Error = ServiceError;

    fn handle(
        &self,
        service_name: &NamedNode,
        pattern: &GraphPattern,
        base_iri: Option<&oxiri::Iri<String>>,
    ) -> Result<QuerySolutionIter<'static>, Self::Error> {
        let url = service_name.as_str();
        let query = Query::Select {
            dataset: None,
            pattern: pattern.clone(),
            base_iri: base_iri.cloned(),
        };
        let err = |e: &dyn std::fmt::Display| ServiceError(format!("SERVICE <{url}>: {e}"));
        let mut resp = agent(self.timeout)
            .post(url)
            .header("Content-Type", "application/sparql-query")
            .header("Accept", "application/sparql-results+json")
            .send(query.to_string())
            .map_err(|e| err(&e))?;
        if !resp.status().is_success() {
            return Err(err(&format!("HTTP {}", resp.status())));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REMOTE_BYTES)
            .read_to_vec()
            .map_err(|e| err(&e))?;
        let parsed = QueryResultsParser::from_format(QueryResultsFormat::Json)
            .for_slice(&body)
            .map_err(|e| err(&e))?;
        let SliceQueryResultsParserOutput::Solutions(solutions) = parsed else {
            return Err(err(&"the endpoint answered a boolean, not solutions"));
        };
        let variables: Arc<[oxigraph::sparql::Variable]> = solutions.variables().into();
        let mut rows: Vec<QuerySolution> = Vec::new();
        for s in solutions {
            rows.push(s.map_err(|e| err(&e))?);
        }
        Ok(QuerySolutionIter::new(
            variables,
            rows.into_iter().map(Ok::<_, QueryEvaluationError>),
        ))
    }
}
