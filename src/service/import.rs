//! Import and export through the service: RDF documents and tuple files (JSON lines, a JSON
//! list, YAML) are parsed completely first — a syntax error carries its line and column and
//! stores nothing — and then applied through the single writer as one revision, validated as a
//! SPARQL update is ([`crate::store::Store::import`]); the published state advances with it
//! before the call returns. Exports read one exact revision (under the writer lock).
//!
//! Invariant: an import either is one logged revision that the index reflects, or changes
//! nothing at all.

use super::{Clew, ServiceError};
use crate::iri::{LOG_GRAPH, MODELS_GRAPH, TUPLES_GRAPH};
use crate::store::{Document, ImportError, Location, RdfFormat, RdfSource};
use crate::tuple::{Tuple, TupleSpec};

/// Tuple file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TupleFormat {
    /// One `{user, relation, object, condition?}` object per line (`.jsonl`, `.ndjson`).
    JsonLines,
    /// A JSON list of them (`.json`).
    Json,
    /// A YAML list of them (`.yaml`, `.yml`).
    Yaml,
}

impl TupleFormat {
    /// The format a file extension names.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => TupleFormat::JsonLines,
            "json" => TupleFormat::Json,
            "yaml" | "yml" => TupleFormat::Yaml,
            _ => return None,
        })
    }

    /// The format a name (`jsonl`, `json`, `yaml`) or extension names.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "jsonlines" | "json-lines" => Some(TupleFormat::JsonLines),
            other => Self::from_extension(other),
        }
    }

    /// The format a media type names (parameters are ignored).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        Some(match essence.to_ascii_lowercase().as_str() {
            "application/jsonl" | "application/x-ndjson" | "application/x-jsonlines" => {
                TupleFormat::JsonLines
            }
            "application/json" => TupleFormat::Json,
            "application/yaml" | "application/x-yaml" | "text/yaml" => TupleFormat::Yaml,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TupleFormat::JsonLines => "jsonl",
            TupleFormat::Json => "json",
            TupleFormat::Yaml => "yaml",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            TupleFormat::JsonLines => "application/jsonl",
            TupleFormat::Json => "application/json",
            TupleFormat::Yaml => "application/yaml",
        }
    }
}

/// What an export writes: an RDF serialization or a tuple file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Rdf(RdfFormat),
    Tuples(TupleFormat),
}

impl ExportFormat {
    /// `nquads`, `trig`, `turtle`, `ntriples`, `rdfxml`, `jsonl`, `json`, `yaml` (or an
    /// extension).
    pub fn from_name(name: &str) -> Option<Self> {
        RdfFormat::from_name(name)
            .map(ExportFormat::Rdf)
            .or_else(|| TupleFormat::from_name(name).map(ExportFormat::Tuples))
    }

    pub fn media_type(self) -> &'static str {
        match self {
            ExportFormat::Rdf(f) => f.media_type(),
            ExportFormat::Tuples(f) => f.media_type(),
        }
    }
}

/// An RDF import ([`Clew::import_rdf`]).
#[derive(Debug, Clone, Copy)]
pub struct RdfImport<'a> {
    /// The format, and where the data goes.
    pub source: RdfSource<'a>,
    /// Clear the graphs the document writes to first, so they hold exactly the document.
    pub replace: bool,
    /// Recorded in the change log (`import:<file name>`).
    pub log_source: &'a str,
}

/// What an import did.
pub type ImportOutcome = super::Applied;

fn syntax(line: usize, column: usize, message: impl Into<String>) -> ImportError {
    ImportError::Syntax {
        location: Some(Location {
            line: line as u64,
            column: column as u64,
        }),
        message: message.into(),
    }
}

/// Parses a tuple file. Syntax errors carry their line and column; a tuple that is not valid
/// OpenFGA shorthand names its line (JSON lines) or its position in the list.
pub fn parse_tuples(text: &str, format: TupleFormat) -> Result<Vec<Tuple>, ImportError> {
    match format {
        TupleFormat::JsonLines => {
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let spec: TupleSpec = serde_json::from_str(line)
                    .map_err(|e| syntax(i + 1, e.column().max(1), e.to_string()))?;
                let t = spec
                    .to_tuple()
                    .map_err(|e| syntax(i + 1, 1, e.to_string()))?;
                out.push(t);
            }
            Ok(out)
        }
        TupleFormat::Json | TupleFormat::Yaml => {
            let specs: Vec<TupleSpec> = match format {
                TupleFormat::Json => serde_json::from_str(text)
                    .map_err(|e| syntax(e.line().max(1), e.column().max(1), e.to_string()))?,
                _ => serde_norway::from_str(text).map_err(|e| match e.location() {
                    Some(l) => syntax(l.line(), l.column(), e.to_string()),
                    None => ImportError::Syntax {
                        location: None,
                        message: e.to_string(),
                    },
                })?,
            };
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    s.to_tuple()
                        .map_err(|e| ImportError::InvalidTuple(format!("tuple {}: {e}", i + 1)))
                })
                .collect()
        }
    }
}

/// Writes tuples as a tuple file (one [`TupleSpec`] per line for JSON lines).
pub fn format_tuples(tuples: &[Tuple], format: TupleFormat) -> Result<Vec<u8>, ImportError> {
    let specs: Vec<TupleSpec> = tuples.iter().map(TupleSpec::from).collect();
    let err = |e: String| ImportError::Export(format!("{}: {e}", format.name()));
    match format {
        TupleFormat::JsonLines => {
            let mut out = Vec::new();
            for s in &specs {
                serde_json::to_writer(&mut out, s).map_err(|e| err(e.to_string()))?;
                out.push(b'\n');
            }
            Ok(out)
        }
        TupleFormat::Json => {
            let mut out = serde_json::to_vec_pretty(&specs).map_err(|e| err(e.to_string()))?;
            out.push(b'\n');
            Ok(out)
        }
        TupleFormat::Yaml => serde_norway::to_string(&specs)
            .map(String::into_bytes)
            .map_err(|e| err(e.to_string())),
    }
}

impl Clew {
    /// Parses a whole RDF document (nothing is stored; no lock is taken).
    pub fn parse_rdf(
        &self,
        bytes: &[u8],
        source: &RdfSource<'_>,
    ) -> Result<Document, ServiceError> {
        Ok(self.store.parse_rdf(bytes, source)?)
    }

    /// A document of tuples for `graph`; each replaces its key's stored form in that graph.
    pub fn tuple_document(&self, tuples: &[Tuple], graph: &str) -> Result<Document, ServiceError> {
        Ok(self.store.tuple_document(tuples, graph)?)
    }

    /// Parses and imports one RDF document as one revision (see [`Clew::import_documents`]).
    pub fn import_rdf(
        &self,
        bytes: &[u8],
        import: &RdfImport<'_>,
    ) -> Result<ImportOutcome, ServiceError> {
        let doc = self.parse_rdf(bytes, &import.source)?;
        self.import_documents(&[doc], import.replace, import.log_source)
    }

    /// Imports parsed documents as one revision, through the single writer: all of them or
    /// nothing. With `replace`, every graph a document writes to is cleared first. The
    /// relationship tuples created must be admitted by the current model; Clew's own graphs
    /// cannot be written.
    pub fn import_documents(
        &self,
        docs: &[Document],
        replace: bool,
        log_source: &str,
    ) -> Result<ImportOutcome, ServiceError> {
        let _guard = self.lock_writer()?;
        let current = self.state.load_full();
        let out = self.store.import(
            docs,
            replace,
            current.model.as_deref(),
            &current.vocab,
            log_source,
        )?;
        Ok(self.publish_committed(&current, &out))
    }

    /// Serializes the store's data graphs (see [`crate::store::Store::export_rdf`]).
    pub fn export_rdf(
        &self,
        format: RdfFormat,
        graphs: Option<&[String]>,
    ) -> Result<Vec<u8>, ServiceError> {
        Ok(self.export(ExportFormat::Rdf(format), graphs)?.0)
    }

    /// The relationship tuples of `graphs` (default: every data graph), in key order, each key
    /// once (as the tuple graph stores it, else the first other graph in IRI order), as a tuple
    /// file. Tuple files carry no graph, so importing the export puts every tuple into one
    /// graph.
    pub fn export_tuples(
        &self,
        format: TupleFormat,
        graphs: Option<&[String]>,
    ) -> Result<Vec<u8>, ServiceError> {
        Ok(self.export(ExportFormat::Tuples(format), graphs)?.0)
    }

    /// Exports in any [`ExportFormat`], and the revision exported. It holds the writer lock
    /// while it reads, so the export is exactly that revision (writes wait until it is done).
    pub fn export(
        &self,
        format: ExportFormat,
        graphs: Option<&[String]>,
    ) -> Result<(Vec<u8>, u64), ServiceError> {
        let _guard = self.lock_writer()?;
        let revision = self.state.load().revision;
        let bytes = match format {
            ExportFormat::Rdf(f) => self.store.export_rdf(f, graphs)?,
            ExportFormat::Tuples(f) => format_tuples(&self.tuples_of(graphs)?, f)?,
        };
        Ok((bytes, revision))
    }

    fn tuples_of(&self, graphs: Option<&[String]>) -> Result<Vec<Tuple>, ServiceError> {
        let mut tuples: Vec<(String, bool, std::sync::Arc<str>, Tuple)> = Vec::new();
        let state = self.state.load_full();
        let mut all = self.store.all_tuples()?;
        if let Some(model) = state.model.as_deref() {
            all.extend(self.store.bound_tuples(&state.vocab, model)?);
        }
        for (t, g) in all {
            let selected = match graphs {
                Some(gs) if !gs.is_empty() => gs.iter().any(|s| *s == *g),
                _ => &*g != LOG_GRAPH && &*g != MODELS_GRAPH,
            };
            if selected {
                tuples.push((t.key().to_string(), &*g != TUPLES_GRAPH, g, t));
            }
        }
        tuples.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
        tuples.dedup_by(|a, b| a.0 == b.0);
        Ok(tuples.into_iter().map(|(.., t)| t).collect())
    }
}
