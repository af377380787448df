//! Import and export of RDF documents (Turtle, N-Triples, N-Quads, TriG, RDF/XML).
//!
//! An import is two steps. [`Store::parse_rdf`] (and [`Store::tuple_document`] for tuple files)
//! reads a whole document into a [`Document`] without touching the store: a syntax error is
//! reported with its 1-based line and column and nothing is stored. [`Store::import`] then
//! applies any number of documents in one transaction: each quad is inserted only if it is
//! absent (so the delta is exact), the delta is checked by the code that checks a SPARQL
//! update's (Clew's own graphs are read-only, every relationship tuple created must be
//! admitted by the model, the tuple graph holds only tuples), logged as one revision and
//! committed — or, on any error, dropped with the transaction.
//!
//! Graphs: the triples of a graph format, and the default-graph quads of a dataset format, go
//! into the target graph; the named graphs of an N-Quads or TriG document are kept, unless the
//! target graph is forced, in which case every quad goes into it. Blank nodes are renamed per
//! document, so two documents never share one by accident.
//!
//! Invariant: an import that fails, at any step, leaves the store (quads and revision) as it
//! was.

use super::sparql::{graph_str, is_protected};
use super::{Committed, Store, StoreError, nn, own};
use crate::iri::{LOG_GRAPH, MODELS_GRAPH, NS, REL};
use crate::model::typesystem::TypeSystem;
use crate::sparql::SparqlError;
use crate::sparql::update::DeltaBuilder;
use crate::tuple::{Tuple, TupleKey};
use oxigraph::io::{RdfParser, RdfSerializer, RdfSyntaxError};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{GraphName, GraphNameRef, NamedOrBlankNode, Quad, TripleRef};
use oxigraph::store::Transaction;

/// The RDF formats Clew imports and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RdfFormat {
    Turtle,
    NTriples,
    NQuads,
    TriG,
    RdfXml,
}

impl RdfFormat {
    pub const ALL: [RdfFormat; 5] = [
        RdfFormat::Turtle,
        RdfFormat::NTriples,
        RdfFormat::NQuads,
        RdfFormat::TriG,
        RdfFormat::RdfXml,
    ];

    /// The format a file extension names (`ttl`, `nt`, `nq`, `trig`, `rdf`, `owl`, `xml`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "ttl" | "turtle" => RdfFormat::Turtle,
            "nt" | "ntriples" => RdfFormat::NTriples,
            "nq" | "nquads" => RdfFormat::NQuads,
            "trig" => RdfFormat::TriG,
            "rdf" | "owl" | "xml" => RdfFormat::RdfXml,
            _ => return None,
        })
    }

    /// The format a name or file extension names (`turtle`, `ntriples`, `nquads`, `trig`,
    /// `rdfxml`, or an extension).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "n-triples" => Some(RdfFormat::NTriples),
            "n-quads" => Some(RdfFormat::NQuads),
            "rdfxml" | "rdf/xml" | "rdf-xml" => Some(RdfFormat::RdfXml),
            other => Self::from_extension(other),
        }
    }

    /// The format a media type names (parameters such as `; charset=utf-8` are ignored).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        Self::ALL
            .into_iter()
            .find(|f| f.media_type().eq_ignore_ascii_case(essence))
            .or_else(|| match essence.to_ascii_lowercase().as_str() {
                "application/x-turtle" => Some(RdfFormat::Turtle),
                "text/plain" => Some(RdfFormat::NTriples),
                "text/x-nquads" => Some(RdfFormat::NQuads),
                "application/x-trig" => Some(RdfFormat::TriG),
                "application/xml" | "text/xml" => Some(RdfFormat::RdfXml),
                _ => None,
            })
    }

    /// The canonical name (as `--format` takes it).
    pub fn name(self) -> &'static str {
        match self {
            RdfFormat::Turtle => "turtle",
            RdfFormat::NTriples => "ntriples",
            RdfFormat::NQuads => "nquads",
            RdfFormat::TriG => "trig",
            RdfFormat::RdfXml => "rdfxml",
        }
    }

    pub fn media_type(self) -> &'static str {
        self.oxigraph().media_type()
    }

    /// Whether the format holds a dataset (named graphs), not one graph.
    pub fn is_dataset(self) -> bool {
        matches!(self, RdfFormat::NQuads | RdfFormat::TriG)
    }

    fn oxigraph(self) -> oxigraph::io::RdfFormat {
        use oxigraph::io::RdfFormat as O;
        match self {
            RdfFormat::Turtle => O::Turtle,
            RdfFormat::NTriples => O::NTriples,
            RdfFormat::NQuads => O::NQuads,
            RdfFormat::TriG => O::TriG,
            RdfFormat::RdfXml => O::RdfXml,
        }
    }
}

/// A position in a document: 1-based line, and 1-based column in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}{message}", location.map(|l| format!("line {}, column {}: ", l.line, l.column)).unwrap_or_default())]
    Syntax {
        /// Where the error is, when the parser knows.
        location: Option<Location>,
        message: String,
    },
    #[error("invalid {what} IRI <{iri}>: {message}")]
    Iri {
        what: &'static str,
        iri: String,
        message: String,
    },
    #[error("graph <{0}> is maintained by Clew and cannot be imported into")]
    ReadOnlyGraph(String),
    #[error("{0}")]
    InvalidTuple(String),
    #[error("{0}")]
    Export(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<oxigraph::store::StorageError> for ImportError {
    fn from(e: oxigraph::store::StorageError) -> Self {
        ImportError::Store(StoreError::Storage(e))
    }
}

impl From<SparqlError> for ImportError {
    fn from(e: SparqlError) -> Self {
        match e {
            SparqlError::InvalidTuple(m) => ImportError::InvalidTuple(m),
            SparqlError::ReadOnlyGraph(g) => ImportError::ReadOnlyGraph(g),
            other => ImportError::Internal(other.to_string()),
        }
    }
}

impl ImportError {
    /// Whether the caller is at fault, as opposed to the store.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ImportError::Store(_) | ImportError::Internal(_))
    }
}

/// Where a document's data goes (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct RdfSource<'a> {
    pub format: RdfFormat,
    /// The graph for triples (and a dataset's default-graph quads).
    pub graph: &'a str,
    /// Put every quad into `graph`, also those a dataset names another graph for.
    pub force_graph: bool,
    /// The base IRI relative IRIs are resolved against.
    pub base_iri: Option<&'a str>,
}

/// A parsed document, not yet stored.
#[derive(Debug, Clone, Default)]
pub struct Document {
    quads: Vec<Quad>,
    /// Tuples from a tuple file: each replaces its key's stored form in its graph.
    tuples: Vec<(Tuple, GraphName)>,
    /// Every graph it writes to, in order of first appearance.
    graphs: Vec<GraphName>,
}

impl Document {
    /// Quads it holds (for a tuple document, the quads its tuples are stored as).
    pub fn len(&self) -> usize {
        self.quads.len() + self.tuples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.quads.is_empty() && self.tuples.is_empty()
    }

    /// The graphs it writes to (`""` is the default graph).
    pub fn graphs(&self) -> Vec<String> {
        self.graphs
            .iter()
            .map(|g| graph_str(g).to_string())
            .collect()
    }

    fn note_graph(&mut self, g: &GraphName) {
        if !self.graphs.contains(g) {
            self.graphs.push(g.clone());
        }
    }
}

fn target_graph(iri: &str) -> Result<GraphName, ImportError> {
    let g = GraphName::NamedNode(nn(iri).map_err(|e| ImportError::Iri {
        what: "graph",
        iri: iri.to_string(),
        message: e.to_string(),
    })?);
    if is_protected(&g) {
        return Err(ImportError::ReadOnlyGraph(iri.to_string()));
    }
    Ok(g)
}

/// The 1-based location of byte `offset` in `bytes`.
fn location_at(bytes: &[u8], offset: usize) -> Location {
    let before = bytes.get(..offset.min(bytes.len())).unwrap_or_default();
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let column = String::from_utf8_lossy(before.get(line_start..).unwrap_or_default())
        .chars()
        .count() as u64
        + 1;
    Location { line, column }
}

/// A syntax error with its location. Oxigraph's Turtle-family parsers know the location; its
/// RDF/XML parser does not, so the document is read again with `oxrdfxml` up to the error and
/// the start of the markup it stopped in is reported.
fn syntax_error(e: &RdfSyntaxError, bytes: &[u8], source: &RdfSource<'_>) -> ImportError {
    let text = e.to_string();
    // The Turtle family writes "Parser error at line L column C: message".
    let message = match text.strip_prefix("Parser error ") {
        Some(rest) => rest.split_once(": ").map_or(rest, |(_, m)| m).to_string(),
        None => text.clone(),
    };
    let location = match e.location() {
        Some(range) => Some(Location {
            line: range.start.line + 1,
            column: range.start.column + 1,
        }),
        None if source.format == RdfFormat::RdfXml => rdfxml_error_offset(bytes, source.base_iri)
            .map(|offset| {
                let before = bytes.get(..offset).unwrap_or_default();
                let start = before.iter().rposition(|b| *b == b'<').unwrap_or(offset);
                location_at(bytes, start)
            }),
        None => None,
    };
    ImportError::Syntax { location, message }
}

/// The byte offset the RDF/XML parser had reached when it failed.
fn rdfxml_error_offset(bytes: &[u8], base_iri: Option<&str>) -> Option<usize> {
    let mut parser = oxrdfxml::RdfXmlParser::new();
    if let Some(b) = base_iri {
        parser = parser.with_base_iri(b).ok()?;
    }
    let mut reader = parser.for_slice(bytes);
    loop {
        match reader.next()? {
            Ok(_) => {}
            Err(_) => return usize::try_from(reader.buffer_position()).ok(),
        }
    }
}

impl Store {
    /// Parses a whole RDF document; nothing is stored. See the module documentation for where
    /// its quads go.
    pub fn parse_rdf(&self, bytes: &[u8], source: &RdfSource<'_>) -> Result<Document, ImportError> {
        let target = target_graph(source.graph)?;
        let mut parser = RdfParser::from_format(source.format.oxigraph())
            .with_default_graph(target.clone())
            .rename_blank_nodes();
        if let Some(base) = source.base_iri {
            parser = parser.with_base_iri(base).map_err(|e| ImportError::Iri {
                what: "base",
                iri: base.to_string(),
                message: e.to_string(),
            })?;
        }
        let mut doc = Document::default();
        doc.note_graph(&target);
        for q in parser.for_slice(bytes) {
            let mut q = q.map_err(|e| syntax_error(&e, bytes, source))?;
            if source.force_graph {
                q.graph_name = target.clone();
            } else if q.graph_name != target {
                if is_protected(&q.graph_name) {
                    return Err(ImportError::ReadOnlyGraph(
                        graph_str(&q.graph_name).to_string(),
                    ));
                }
                doc.note_graph(&q.graph_name);
            }
            doc.quads.push(q);
        }
        Ok(doc)
    }

    /// A document of tuples for `graph` (from a tuple file). Each tuple replaces whatever is
    /// stored for its key in that graph (so a changed condition is updated, not doubled).
    pub fn tuple_document(&self, tuples: &[Tuple], graph: &str) -> Result<Document, ImportError> {
        let target = target_graph(graph)?;
        let mut doc = Document::default();
        doc.note_graph(&target);
        let mut seen = std::collections::HashSet::new();
        for t in tuples {
            if !seen.insert(t.key()) {
                return Err(ImportError::InvalidTuple(format!(
                    "tuple {} appears twice",
                    t.key()
                )));
            }
            doc.tuples.push((t.clone(), target.clone()));
        }
        Ok(doc)
    }

    /// Applies documents as one revision, atomically (the caller is the single writer). With
    /// `replace`, every graph a document writes to is cleared first. See the module
    /// documentation for what is checked.
    pub fn import(
        &self,
        docs: &[Document],
        replace: bool,
        model: Option<&TypeSystem>,
        vocab: &super::Vocabulary,
        source: &str,
    ) -> Result<Committed, ImportError> {
        let mut tx = self.db.start_transaction()?;
        let mut net = DeltaBuilder::default();
        if replace {
            let mut cleared: Vec<&GraphName> = Vec::new();
            for g in docs.iter().flat_map(|d| &d.graphs) {
                if cleared.contains(&g) {
                    continue;
                }
                cleared.push(g);
                let existing = tx
                    .quads_for_pattern(None, None, None, Some(g.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?;
                for q in &existing {
                    net.remove(&mut tx, q)?;
                }
            }
        }
        for doc in docs {
            for (t, g) in &doc.tuples {
                for q in self.key_quads_in(&tx, &t.key(), g.as_ref())? {
                    net.remove(&mut tx, &q)?;
                }
                for q in self.tuple_quads(t, graph_str(g))? {
                    net.insert(&mut tx, &q)?;
                }
            }
            for q in &doc.quads {
                net.insert(&mut tx, q)?;
            }
        }
        let delta = net.into_delta();
        Ok(self.commit_delta(tx, &delta, model, vocab, source)?)
    }

    /// The quads storing `key` in graph `g` (in `tx`): its plain triple and its conditional
    /// tuple node, whichever are there.
    fn key_quads_in(
        &self,
        tx: &Transaction<'_>,
        key: &TupleKey,
        g: GraphNameRef<'_>,
    ) -> Result<Vec<Quad>, ImportError> {
        let s = own(self.iris.object(&key.object));
        let p = own(self.iris.relation(&key.relation));
        let o = own(self.iris.user(&key.user));
        let mut out = Vec::new();
        let plain = Quad::new(s, p, o, g.into_owned());
        if tx.contains(&plain)? {
            out.push(plain);
        }
        let node = own(self
            .iris
            .conditional_tuple(&key.object, &key.relation, &key.user));
        for q in tx.quads_for_pattern(Some(node.as_ref().into()), None, None, Some(g)) {
            out.push(q?);
        }
        Ok(out)
    }

    /// The data graphs that hold quads: every named graph except the log and models graphs,
    /// in IRI order, then `""` if the default graph holds any.
    pub fn data_graphs(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for g in self.db.named_graphs() {
            let g = g?;
            let name = match &g {
                NamedOrBlankNode::NamedNode(n) => n.as_str().to_string(),
                NamedOrBlankNode::BlankNode(_) => continue,
            };
            if name == LOG_GRAPH || name == MODELS_GRAPH {
                continue;
            }
            let gn = GraphName::from(g);
            if self
                .db
                .quads_for_pattern(None, None, None, Some(gn.as_ref()))
                .next()
                .is_some()
            {
                out.push(name);
            }
        }
        out.sort();
        if self
            .db
            .quads_for_pattern(None, None, None, Some(GraphNameRef::DefaultGraph))
            .next()
            .is_some()
        {
            out.push(String::new());
        }
        Ok(out)
    }

    /// Serializes graphs: for a dataset format, `graphs` (default: every data graph, see
    /// [`Store::data_graphs`]); for a graph format, the one graph named — or, when none is,
    /// the only data graph there is. `""` names the default graph.
    pub fn export_rdf(
        &self,
        format: RdfFormat,
        graphs: Option<&[String]>,
    ) -> Result<Vec<u8>, ImportError> {
        let graphs = match graphs {
            Some(g) if !g.is_empty() => g.to_vec(),
            _ => self.data_graphs()?,
        };
        if !format.is_dataset() && graphs.len() != 1 {
            let list = graphs
                .iter()
                .map(|g| format!("<{g}>"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ImportError::Export(format!(
                "{} holds one graph, and {} graphs are selected ({list}); name one, or export as nquads or trig",
                format.name(),
                graphs.len(),
            )));
        }
        let mut names = Vec::with_capacity(graphs.len());
        for g in &graphs {
            names.push(if g.is_empty() {
                GraphName::DefaultGraph
            } else {
                GraphName::NamedNode(nn(g).map_err(|e| ImportError::Iri {
                    what: "graph",
                    iri: g.clone(),
                    message: e.to_string(),
                })?)
            });
        }
        let mut serializer = RdfSerializer::from_format(format.oxigraph());
        for (prefix, iri) in [
            ("clew", NS),
            ("rel", REL),
            ("rdf", rdf::TYPE.as_str().trim_end_matches("type")),
            ("xsd", xsd::STRING.as_str().trim_end_matches("string")),
        ] {
            serializer = serializer
                .with_prefix(prefix, iri)
                .map_err(|e| ImportError::Internal(e.to_string()))?;
        }
        let io = |e: std::io::Error| ImportError::Export(format!("{}: {e}", format.name()));
        let mut w = serializer.for_writer(Vec::new());
        for g in &names {
            for q in self
                .db
                .quads_for_pattern(None, None, None, Some(g.as_ref()))
            {
                let q = q?;
                if format.is_dataset() {
                    w.serialize_quad(&q).map_err(io)?;
                } else {
                    w.serialize_triple(TripleRef::new(
                        q.subject.as_ref(),
                        q.predicate.as_ref(),
                        q.object.as_ref(),
                    ))
                    .map_err(io)?;
                }
            }
        }
        w.finish().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_in_characters() {
        let text = "ab\nçd<x";
        assert_eq!(
            location_at(text.as_bytes(), 0),
            Location { line: 1, column: 1 }
        );
        let lt = text.find('<').unwrap_or(0);
        assert_eq!(
            location_at(text.as_bytes(), lt),
            Location { line: 2, column: 3 }
        );
    }

    #[test]
    fn formats_by_name_extension_and_media_type() {
        for f in RdfFormat::ALL {
            assert_eq!(RdfFormat::from_name(f.name()), Some(f));
            assert_eq!(RdfFormat::from_media_type(f.media_type()), Some(f));
        }
        assert_eq!(RdfFormat::from_extension("owl"), Some(RdfFormat::RdfXml));
        assert_eq!(
            RdfFormat::from_media_type("text/turtle; charset=utf-8"),
            Some(RdfFormat::Turtle)
        );
        assert_eq!(RdfFormat::from_name("json"), None);
    }
}
