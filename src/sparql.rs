//! SPARQL 1.1 over the store, without a transport: what a query answered, the result and graph
//! formats it can be written in (and how an `Accept` header picks one), the limits a request
//! runs under, and the errors it can end with.
//!
//! Queries are evaluated by Oxigraph. Updates are parsed with `spargebra` and applied by
//! [`update`] inside one store transaction, so that their exact quad delta is known before it
//! commits: the service validates the relationship tuples in it against the model, logs it as one
//! revision and applies it to the index (see `service/sparql.rs`).

pub mod guard;
mod remote;
pub mod update;

use oxigraph::io::{RdfFormat, RdfSerializer};
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Term, Triple, Variable};
pub use oxigraph::sparql::CancellationToken;
use oxigraph::sparql::results::{QueryResultsFormat, QueryResultsSerializer};
use oxigraph::sparql::{QueryResults, SparqlEvaluator};
use std::time::{Duration, Instant};

/// Why a SPARQL request failed. Each variant names the problem; [`SparqlError::kind`] gives the
/// stable code a transport reports.
#[derive(Debug, thiserror::Error)]
pub enum SparqlError {
    #[error("SPARQL syntax error: {0}")]
    Syntax(String),
    #[error("{0}")]
    Refused(String),
    #[error("the query ran longer than its time limit of {0:?} and was cancelled")]
    Timeout(Duration),
    #[error(
        "the query returned more than {0} results (the server's limit); add a LIMIT or narrow the pattern"
    )]
    TooManyResults(usize),
    #[error(
        "the query's worker process ran out of its memory budget of {0} MiB and was stopped; narrow the query or add a LIMIT"
    )]
    MemoryLimit(u64),
    #[error("the update changes more than {0} quads (the server's limit); split it")]
    UpdateTooLarge(usize),
    #[error("graph <{0}> is maintained by Clew and is read-only over SPARQL")]
    ReadOnlyGraph(String),
    #[error("{0}")]
    InvalidTuple(String),
    #[error("{0}")]
    Evaluation(String),
    #[error("no {what} format matches the request (Accept: {accept}); available: {available}")]
    NotAcceptable {
        what: &'static str,
        accept: String,
        available: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl SparqlError {
    /// The stable error code (snake_case) for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            SparqlError::Syntax(_) => "sparql_syntax",
            SparqlError::Refused(_) => "sparql_refused",
            SparqlError::Timeout(_) => "sparql_timeout",
            SparqlError::TooManyResults(_) => "sparql_too_many_results",
            SparqlError::MemoryLimit(_) => "sparql_memory_limit",
            SparqlError::UpdateTooLarge(_) => "sparql_update_too_large",
            SparqlError::ReadOnlyGraph(_) => "sparql_read_only_graph",
            SparqlError::InvalidTuple(_) => "sparql_invalid_tuple",
            SparqlError::Evaluation(_) => "sparql_evaluation",
            SparqlError::NotAcceptable { .. } => "not_acceptable",
            SparqlError::Internal(_) => "storage_error",
        }
    }

    /// Whether the caller is at fault (a 4xx) rather than the service (a 5xx).
    pub fn is_user_error(&self) -> bool {
        !matches!(self, SparqlError::Internal(_) | SparqlError::Timeout(_))
    }
}

impl From<oxigraph::sparql::QueryEvaluationError> for SparqlError {
    fn from(e: oxigraph::sparql::QueryEvaluationError) -> Self {
        use oxigraph::sparql::QueryEvaluationError as E;
        match e {
            E::Cancelled => SparqlError::Timeout(Duration::ZERO),
            E::Dataset(e) | E::Unexpected(e) => SparqlError::Internal(e.to_string()),
            E::Service(e) => SparqlError::Evaluation(format!("SERVICE call failed: {e}")),
            other => SparqlError::Evaluation(other.to_string()),
        }
    }
}

impl From<oxigraph::store::StorageError> for SparqlError {
    fn from(e: oxigraph::store::StorageError) -> Self {
        SparqlError::Internal(e.to_string())
    }
}

/// The limits and dataset a SPARQL request runs under.
#[derive(Clone)]
pub struct SparqlOptions {
    /// Cancelled by the transport when the request's time is up or its client went away; the
    /// evaluation stops at its next step.
    pub cancel: CancellationToken,
    /// The time limit the cancellation enforces (reported in the error), and a deadline checked
    /// between results.
    pub timeout: Duration,
    /// Most solutions (or triples) a query may return.
    pub max_results: usize,
    /// Most quads one update may add and remove in all.
    pub max_update_quads: usize,
    /// `SERVICE` (federated query) is refused unless this is set.
    pub allow_service: bool,
    /// `LOAD <url>` is refused unless this is set.
    pub allow_load: bool,
    /// The protocol's `default-graph-uri` parameters (query) or `using-graph-uri` (update).
    pub default_graph_uris: Vec<String>,
    /// The protocol's `named-graph-uri` (query) or `using-named-graph-uri` (update).
    pub named_graph_uris: Vec<String>,
}

impl Default for SparqlOptions {
    fn default() -> Self {
        Self {
            cancel: CancellationToken::new(),
            timeout: Duration::from_secs(5),
            max_results: 100_000,
            max_update_quads: 100_000,
            allow_service: false,
            allow_load: false,
            default_graph_uris: Vec::new(),
            named_graph_uris: Vec::new(),
        }
    }
}

impl SparqlOptions {
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    pub(crate) fn timed_out(&self) -> SparqlError {
        SparqlError::Timeout(self.timeout)
    }
}

/// What a query answered, materialized (within [`SparqlOptions::max_results`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `ASK`.
    Boolean(bool),
    /// `SELECT`: the projected variables and one row of optional values per solution.
    Solutions {
        variables: Vec<Variable>,
        rows: Vec<Vec<Option<Term>>>,
    },
    /// `CONSTRUCT` and `DESCRIBE`.
    Graph(Vec<Triple>),
}

impl Answer {
    pub fn kind(&self) -> AnswerKind {
        match self {
            Answer::Boolean(_) | Answer::Solutions { .. } => AnswerKind::Results,
            Answer::Graph(_) => AnswerKind::Graph,
        }
    }

    /// Solutions or triples in the answer (1 for a boolean).
    pub fn len(&self) -> usize {
        match self {
            Answer::Boolean(_) => 1,
            Answer::Solutions { rows, .. } => rows.len(),
            Answer::Graph(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an answer is a result table/boolean or an RDF graph: they have different formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    Results,
    Graph,
}

/// A serialization format for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Results(QueryResultsFormat),
    Graph(RdfFormat),
}

/// The result formats, preferred first, with their short names for `?format=`.
const RESULT_FORMATS: [(&str, QueryResultsFormat); 4] = [
    ("json", QueryResultsFormat::Json),
    ("xml", QueryResultsFormat::Xml),
    ("csv", QueryResultsFormat::Csv),
    ("tsv", QueryResultsFormat::Tsv),
];

fn graph_formats() -> [(&'static str, RdfFormat); 4] {
    [
        ("turtle", RdfFormat::Turtle),
        ("ntriples", RdfFormat::NTriples),
        (
            "jsonld",
            RdfFormat::JsonLd {
                profile: Default::default(),
            },
        ),
        ("rdfxml", RdfFormat::RdfXml),
    ]
}

impl Format {
    /// The short name (`?format=`) of this format.
    pub fn name(self) -> &'static str {
        match self {
            Format::Results(f) => RESULT_FORMATS
                .iter()
                .find(|(_, g)| *g == f)
                .map_or("json", |(n, _)| n),
            Format::Graph(f) => graph_formats()
                .iter()
                .find(|(_, g)| *g == f)
                .map_or("turtle", |(n, _)| n),
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Results(QueryResultsFormat::Json) => "application/sparql-results+json",
            Format::Results(QueryResultsFormat::Xml) => "application/sparql-results+xml",
            Format::Results(QueryResultsFormat::Csv) => "text/csv; charset=utf-8",
            Format::Results(QueryResultsFormat::Tsv) => "text/tab-separated-values; charset=utf-8",
            Format::Graph(RdfFormat::Turtle) => "text/turtle",
            Format::Graph(RdfFormat::NTriples) => "application/n-triples",
            Format::Graph(RdfFormat::RdfXml) => "application/rdf+xml",
            Format::Graph(RdfFormat::JsonLd { .. }) => "application/ld+json",
            Format::Results(f) => f.media_type(),
            Format::Graph(f) => f.media_type(),
        }
    }
}

fn media_matches(range: &str, media: &str) -> bool {
    let (rt, rs) = range.split_once('/').unwrap_or((range, "*"));
    let (mt, ms) = media.split_once('/').unwrap_or((media, ""));
    (rt == "*" || rt.eq_ignore_ascii_case(mt)) && (rs == "*" || rs.eq_ignore_ascii_case(ms))
}

/// Picks the format for an answer of `kind`: `format` (a short name such as `json`, `csv`,
/// `turtle`, `jsonld`, or a media type) wins; otherwise the `Accept` header's preferences with
/// their q-values; with neither, JSON for results and Turtle for graphs.
pub fn negotiate(
    kind: AnswerKind,
    accept: Option<&str>,
    format: Option<&str>,
) -> Result<Format, SparqlError> {
    let candidates: Vec<(&str, &str, Format)> = match kind {
        AnswerKind::Results => RESULT_FORMATS
            .iter()
            .map(|(n, f)| (*n, f.media_type(), Format::Results(*f)))
            .collect(),
        AnswerKind::Graph => graph_formats()
            .iter()
            .map(|(n, f)| (*n, Format::Graph(*f).content_type(), Format::Graph(*f)))
            .collect(),
    };
    let what = match kind {
        AnswerKind::Results => "query results",
        AnswerKind::Graph => "RDF graph",
    };
    let available = || {
        candidates
            .iter()
            .map(|(n, m, _)| format!("{n} ({m})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = format.map(str::trim).filter(|f| !f.is_empty()) {
        let media = name.split(';').next().unwrap_or(name).trim();
        return candidates
            .iter()
            .find(|(n, m, _)| n.eq_ignore_ascii_case(name) || media_matches(m, media))
            .map(|(_, _, f)| *f)
            .ok_or_else(|| SparqlError::NotAcceptable {
                what,
                accept: format!("format={name}"),
                available: available(),
            });
    }
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(candidates[0].2);
    };
    // (q, order in the header, media range); the highest q wins, then the earliest.
    let mut ranges: Vec<(f32, usize, &str)> = Vec::new();
    for (i, part) in accept.split(',').enumerate() {
        let mut fields = part.split(';');
        let range = fields.next().unwrap_or("").trim();
        if range.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in fields {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q > 0.0 {
            ranges.push((q, i, range));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, range) in &ranges {
        // An exact media type first (text/turtle), then the types a wildcard range covers.
        if let Some((_, _, f)) = candidates.iter().find(|(_, m, _)| {
            m.split(';')
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case(range))
        }) {
            return Ok(*f);
        }
        if let Some((_, _, f)) = candidates
            .iter()
            .find(|(_, m, _)| media_matches(range, m.split(';').next().unwrap_or(m)))
        {
            return Ok(*f);
        }
        // Common aliases clients send.
        let alias = match range.to_ascii_lowercase().as_str() {
            "application/json" => Some("json"),
            "application/xml" | "text/xml" => Some("xml"),
            "application/x-turtle" => Some("turtle"),
            "text/plain" => Some("ntriples"),
            _ => None,
        };
        if let Some(a) = alias
            && let Some((_, _, f)) = candidates.iter().find(|(n, _, _)| *n == a)
        {
            return Ok(*f);
        }
    }
    Err(SparqlError::NotAcceptable {
        what,
        accept: accept.to_string(),
        available: available(),
    })
}

/// Writes an answer in a format (which must suit the answer's kind).
pub fn serialize(answer: &Answer, format: Format) -> Result<Vec<u8>, SparqlError> {
    let io = |e: std::io::Error| SparqlError::Internal(format!("serializing the answer: {e}"));
    match (answer, format) {
        (Answer::Boolean(b), Format::Results(f)) => QueryResultsSerializer::from_format(f)
            .serialize_boolean_to_writer(Vec::new(), *b)
            .map_err(io),
        (Answer::Solutions { variables, rows }, Format::Results(f)) => {
            let mut out = QueryResultsSerializer::from_format(f)
                .serialize_solutions_to_writer(Vec::new(), variables.clone())
                .map_err(io)?;
            for row in rows {
                out.serialize(
                    variables
                        .iter()
                        .zip(row)
                        .filter_map(|(v, t)| t.as_ref().map(|t| (v.as_ref(), t.as_ref()))),
                )
                .map_err(io)?;
            }
            out.finish().map_err(io)
        }
        (Answer::Graph(triples), Format::Graph(f)) => {
            let mut out = RdfSerializer::from_format(f).for_writer(Vec::new());
            for t in triples {
                out.serialize_triple(t).map_err(io)?;
            }
            out.finish().map_err(io)
        }
        _ => Err(SparqlError::Internal(
            "the answer's kind does not match the format".into(),
        )),
    }
}

/// Parses a SPARQL update (for the service, which applies it with [`update::apply`]), refusing
/// `LOAD` and `SERVICE` unless allowed.
pub fn parse_update(text: &str, options: &SparqlOptions) -> Result<spargebra::Update, SparqlError> {
    let update = spargebra::SparqlParser::new()
        .parse_update(text)
        .map_err(|e| SparqlError::Syntax(e.to_string()))?;
    guard::check_update(&update, options.allow_service, options.allow_load)?;
    Ok(update)
}

fn graph_iris(v: &[String]) -> Result<Vec<NamedNode>, SparqlError> {
    v.iter()
        .map(|s| {
            NamedNode::new(s.clone())
                .map_err(|e| SparqlError::Syntax(format!("graph IRI <{s}> is invalid: {e}")))
        })
        .collect()
}

/// Parses a query and checks what it may use; returns the kind of answer it will give.
pub fn prepare_query(text: &str, options: &SparqlOptions) -> Result<AnswerKind, SparqlError> {
    let parsed = spargebra::SparqlParser::new()
        .parse_query(text)
        .map_err(|e| SparqlError::Syntax(e.to_string()))?;
    guard::check_query(&parsed, options.allow_service)?;
    Ok(match parsed {
        spargebra::Query::Select { .. } | spargebra::Query::Ask { .. } => AnswerKind::Results,
        spargebra::Query::Construct { .. } | spargebra::Query::Describe { .. } => AnswerKind::Graph,
    })
}

/// Rebuilds an error a worker process reported (by its [`SparqlError::kind`] and message),
/// under the options the worker ran with.
pub fn error_from_worker(kind: &str, message: String, options: &SparqlOptions) -> SparqlError {
    match kind {
        "sparql_syntax" => SparqlError::Syntax(message),
        "sparql_refused" => SparqlError::Refused(message),
        "sparql_evaluation" => SparqlError::Evaluation(message),
        "sparql_timeout" => SparqlError::Timeout(options.timeout),
        "sparql_too_many_results" => SparqlError::TooManyResults(options.max_results),
        _ => SparqlError::Internal(message),
    }
}

/// Evaluates a query on the store's latest committed state and materializes its answer.
///
/// The dataset: the protocol's `default-graph-uri`/`named-graph-uri` if given, else the
/// query's `FROM`/`FROM NAMED`, else Clew's default — the default graph is the **union of all
/// graphs** (tuples, imported data, models and the change log), so `SELECT * { ?s ?p ?o }`
/// sees everything, and `GRAPH ?g { … }` still tells the graphs apart.
pub fn query(
    store: &oxigraph::store::Store,
    text: &str,
    options: &SparqlOptions,
) -> Result<Answer, SparqlError> {
    let deadline = options.deadline();
    let parsed = spargebra::SparqlParser::new()
        .parse_query(text)
        .map_err(|e| SparqlError::Syntax(e.to_string()))?;
    guard::check_query(&parsed, options.allow_service)?;
    let mut evaluator = SparqlEvaluator::new().with_cancellation_token(options.cancel.clone());
    if options.allow_service {
        evaluator = evaluator.with_default_service_handler(remote::HttpService {
            timeout: options.timeout,
        });
    }
    let mut prepared = evaluator.for_query(parsed);
    let dataset = prepared.dataset_mut();
    if !options.default_graph_uris.is_empty() || !options.named_graph_uris.is_empty() {
        dataset.set_default_graph(
            graph_iris(&options.default_graph_uris)?
                .into_iter()
                .map(GraphName::NamedNode)
                .collect(),
        );
        dataset.set_available_named_graphs(
            graph_iris(&options.named_graph_uris)?
                .into_iter()
                .map(NamedOrBlankNode::NamedNode)
                .collect(),
        );
    } else if dataset.is_default_dataset() {
        dataset.set_default_graph_as_union();
    }
    let timed = |e: oxigraph::sparql::QueryEvaluationError| match SparqlError::from(e) {
        SparqlError::Timeout(_) => options.timed_out(),
        other => other,
    };
    let over_time = || std::time::Instant::now() > deadline || options.cancel.is_cancelled();
    match prepared.on_store(store).execute().map_err(timed)? {
        QueryResults::Boolean(b) => Ok(Answer::Boolean(b)),
        QueryResults::Solutions(iter) => {
            let variables = iter.variables().to_vec();
            let mut rows = Vec::new();
            for s in iter {
                if over_time() {
                    return Err(options.timed_out());
                }
                let s = s.map_err(timed)?;
                if rows.len() >= options.max_results {
                    return Err(SparqlError::TooManyResults(options.max_results));
                }
                rows.push(s.values().to_vec());
            }
            Ok(Answer::Solutions { variables, rows })
        }
        QueryResults::Graph(iter) => {
            let mut triples = Vec::new();
            for t in iter {
                if over_time() {
                    return Err(options.timed_out());
                }
                let t = t.map_err(timed)?;
                if triples.len() >= options.max_results {
                    return Err(SparqlError::TooManyResults(options.max_results));
                }
                triples.push(t);
            }
            Ok(Answer::Graph(triples))
        }
    }
}
