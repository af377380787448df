//! The durable store: Oxigraph (RocksDB on disk, or in memory). The only module that imports
//! `oxigraph`. It maps tuples to triples (see [`crate::iri`] and `ontology/clew.ttl`), keeps the
//! models in the graph, and records every write as a revision in the change log, in the same
//! transaction as the write itself.
//!
//! Layout (named graphs):
//! * `clew-graph:tuples` — `<object> <rel:relation> <user>` for unconditional tuples; a
//!   conditional tuple is a node `<https://clew.dev/tuple/…> a clew:ConditionalTuple` with
//!   `clew:object`, `clew:relation`, `clew:user`, `clew:condition` and `clew:conditionContext`
//!   (a JSON literal) — never also a plain triple, so a SPARQL reader cannot mistake it for an
//!   unconditional grant.
//! * `clew-graph:imported` — relationship triples loaded as pre-existing data, unvalidated
//!   ([`crate::service::Clew::import_tuples`]); also the default graph of RDF imports
//!   (`import.rs`), which are validated.
//! * `clew-graph:models` — each model version: its DSL and an RDF description of its types and
//!   relations; `clew:meta clew:currentModel` points at the latest.
//! * `clew-graph:log` — one `clew:Revision` node per write (number, time, source, the quads
//!   added and removed as N-Quads literals); `clew:meta clew:revision` is the counter.
//!
//! Invariant: `clew:meta clew:revision` equals the highest logged revision number, and every
//! change in the store beyond the initial empty state is covered by a logged revision.

use crate::index::{Change, TupleChange};
use crate::iri::{self, IriMapper, LOG_GRAPH, MODELS_GRAPH, NS, TUPLES_GRAPH};
use crate::model::typesystem::{TypeSystem, restriction_to_dsl, rewrite_to_dsl};
use crate::tuple::{ObjectRef, Tuple, TupleCondition, TupleKey, User};
use oxigraph::model::vocab::{rdf, xsd};
use oxigraph::model::{
    GraphName, GraphNameRef, Literal, NamedNode, NamedNodeRef, NamedOrBlankNode, Quad, QuadRef,
    Term,
};
use std::path::Path;
use std::sync::Arc;

mod attributes;
pub mod bindings;
mod import;
mod read;
mod sparql;
pub use attributes::{Attribute, AttributeValue};
pub use bindings::{BindingError, Support, Vocabulary};
pub use import::{Document, ImportError, Location, RdfFormat, RdfSource};
pub use read::{ModelVersion, TuplePattern};
pub use sparql::Committed;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Storage(#[from] oxigraph::store::StorageError),
    #[error("invalid IRI: {0}")]
    Iri(#[from] oxigraph::model::IriParseError),
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("this build has no on-disk store (built without the `rocksdb` feature)")]
    NoDisk,
    /// A binding in the graph cannot be read.
    #[error("{0}")]
    Binding(#[from] BindingError),
    /// Reading the graph through its bindings would exceed a limit.
    #[error("{0}")]
    Limit(String),
}

/// One revision of the change log.
#[derive(Debug, Clone)]
pub struct Revision {
    pub number: u64,
    pub time: String,
    pub source: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The tuples the revision made hold and stop holding, when it recorded them (a graph with
    /// bindings): one JSON object a line.
    pub tuples: Option<(Vec<String>, Vec<String>)>,
}

/// The net tuple changes of a write, as the change log records them: (added, removed), each
/// tuple with its graph.
pub type NetTuples = (Vec<(Tuple, Arc<str>)>, Vec<(Tuple, Arc<str>)>);

/// The Oxigraph-backed store.
pub struct Store {
    db: oxigraph::store::Store,
    /// Always `IriMapper::default()` (its IRIs are valid without parsing: see [`own`]).
    iris: IriMapper,
    /// The last committed revision, once read or committed (`None`: read it from the store).
    /// A commit holds this lock from logging its revision to committing it, so revisions stay
    /// unique even for callers that bypass the service's single writer. Reading the counter from
    /// the store costs, in Oxigraph's in-memory storage, one step per revision ever written (it
    /// keeps every removed version of the counter's quad): writes and SPARQL queries slowed
    /// linearly with the number of writes before this.
    revision: std::sync::Mutex<Option<u64>>,
}

fn nn(iri: &str) -> Result<NamedNode, StoreError> {
    Ok(NamedNode::new(iri)?)
}

/// A named node from an IRI the store's [`IriMapper`] made, without parsing it again (IRI
/// validation was 12 % of a bulk load). Valid by construction: the store's mapper has the
/// constant base [`iri::DEFAULT_BASE`], and every part it appends is percent-encoded to
/// unreserved characters and sub-delimiters joined by `/`, `#` or `*` (proven for arbitrary
/// types, ids and relations in `iri::tests`, and checked again here in debug builds).
fn own(iri: String) -> NamedNode {
    debug_assert!(NamedNode::new(iri.as_str()).is_ok(), "not an IRI: {iri}");
    NamedNode::new_unchecked(iri)
}

/// [`own`] for an IRI in a reused buffer.
fn own_ref(iri: &str) -> NamedNodeRef<'_> {
    debug_assert!(NamedNodeRef::new(iri).is_ok(), "not an IRI: {iri}");
    NamedNodeRef::new_unchecked(iri)
}

fn clew(local: &str) -> NamedNode {
    NamedNode::new_unchecked(iri::ns(local))
}

fn graph(iri: &str) -> GraphName {
    GraphName::NamedNode(NamedNode::new_unchecked(iri))
}

fn int(n: u64) -> Literal {
    Literal::new_typed_literal(n.to_string(), xsd::INTEGER)
}

fn meta() -> NamedNode {
    clew("meta")
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl Store {
    /// Opens (or creates) an on-disk store in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        #[cfg(feature = "rocksdb")]
        {
            Ok(Self {
                db: oxigraph::store::Store::open(path)?,
                iris: IriMapper::default(),
                revision: Default::default(),
            })
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            let _ = path;
            Err(StoreError::NoDisk)
        }
    }

    /// Opens an on-disk store read-only (beside a process that writes it): it sees what was
    /// committed when it was opened.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        #[cfg(feature = "rocksdb")]
        {
            Ok(Self {
                db: oxigraph::store::Store::open_read_only(path)?,
                iris: IriMapper::default(),
                revision: Default::default(),
            })
        }
        #[cfg(not(feature = "rocksdb"))]
        {
            let _ = path;
            Err(StoreError::NoDisk)
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Result<Self, StoreError> {
        Ok(Self {
            db: oxigraph::store::Store::new()?,
            iris: IriMapper::default(),
            revision: Default::default(),
        })
    }

    pub fn iris(&self) -> &IriMapper {
        &self.iris
    }

    /// The underlying Oxigraph store (for SPARQL queries).
    pub fn oxigraph(&self) -> &oxigraph::store::Store {
        &self.db
    }

    /// The current revision (0 for a new store).
    pub fn revision(&self) -> Result<u64, StoreError> {
        let mut known = self.known_revision();
        if let Some(r) = *known {
            return Ok(r);
        }
        let r = self.stored_revision()?;
        *known = Some(r);
        Ok(r)
    }

    /// The lock on the known revision; after a panic in a commit, the value is forgotten (read
    /// again from the store).
    pub(crate) fn known_revision(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        match self.revision.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                *g = None;
                g
            }
        }
    }

    /// The revision counter as the store holds it.
    fn stored_revision(&self) -> Result<u64, StoreError> {
        let g = graph(LOG_GRAPH);
        let p = clew("revision");
        let m = meta();
        for q in self.db.quads_for_pattern(
            Some(m.as_ref().into()),
            Some(p.as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            let q = q?;
            if let Term::Literal(l) = &q.object {
                return l
                    .value()
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("revision counter '{}'", l.value())));
            }
        }
        Ok(0)
    }

    /// The quads a tuple is stored as, in `graph_iri`.
    pub fn tuple_quads(&self, t: &Tuple, graph_iri: &str) -> Result<Vec<Quad>, StoreError> {
        let g = graph(graph_iri);
        let object = own(self.iris.object(&t.object));
        let relation = own(self.iris.relation(&t.relation));
        let user = own(self.iris.user(&t.user));
        Ok(match &t.condition {
            None => vec![Quad::new(object, relation, user, g)],
            Some(c) => {
                let node = own(self.iris.conditional_tuple(&t.object, &t.relation, &t.user));
                let context = serde_json::Value::Object(c.context.clone()).to_string();
                vec![
                    Quad::new(node.clone(), rdf::TYPE, clew("ConditionalTuple"), g.clone()),
                    Quad::new(node.clone(), clew("object"), object, g.clone()),
                    Quad::new(node.clone(), clew("relation"), relation, g.clone()),
                    Quad::new(node.clone(), clew("user"), user, g.clone()),
                    Quad::new(
                        node.clone(),
                        clew("condition"),
                        Literal::new_simple_literal(c.name.clone()),
                        g.clone(),
                    ),
                    Quad::new(
                        node,
                        clew("conditionContext"),
                        Literal::new_typed_literal(
                            context,
                            NamedNode::new_unchecked(
                                "http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON",
                            ),
                        ),
                        g,
                    ),
                ]
            }
        })
    }

    /// Whether `graph_iri` holds no quad at all (then [`Store::find_tuple`] finds nothing in it).
    /// Oxigraph walks past the quads removed from the graph to find a live one, so this can
    /// cost as much as the graph's history: use it in place of many lookups, not of one.
    pub fn graph_is_empty(&self, graph_iri: &str) -> Result<bool, StoreError> {
        let g = graph(graph_iri);
        Ok(self
            .db
            .quads_for_pattern(None, None, None, Some(g.as_ref()))
            .next()
            .transpose()?
            .is_none())
    }

    /// The stored form of a tuple key, if it is stored in `graph_iri` (with its condition).
    pub fn find_tuple(&self, key: &TupleKey, graph_iri: &str) -> Result<Option<Tuple>, StoreError> {
        let g = graph(graph_iri);
        let plain = Tuple {
            object: key.object.clone(),
            relation: key.relation.clone(),
            user: key.user.clone(),
            condition: None,
        };
        for q in self.tuple_quads(&plain, graph_iri)? {
            if self.db.contains(&q)? {
                return Ok(Some(plain));
            }
        }
        let node = own(self
            .iris
            .conditional_tuple(&key.object, &key.relation, &key.user));
        let mut name = None;
        let mut context = serde_json::Map::new();
        for q in self
            .db
            .quads_for_pattern(Some(node.as_ref().into()), None, None, Some(g.as_ref()))
        {
            let q = q?;
            if let Term::Literal(l) = &q.object {
                if q.predicate == clew("condition") {
                    name = Some(l.value().to_string());
                } else if q.predicate == clew("conditionContext")
                    && let Ok(serde_json::Value::Object(m)) = serde_json::from_str(l.value())
                {
                    context = m;
                }
            }
        }
        Ok(name.map(|name| Tuple {
            condition: Some(TupleCondition { name, context }),
            ..plain
        }))
    }

    /// Applies tuple changes and logs them as the next revision, atomically. The caller (the
    /// single writer) has validated them; removals name the stored form (with its condition).
    /// Returns the new revision.
    ///
    /// The same as [`Store::commit_quads`] of every change's [`Store::tuple_quads`] (removals,
    /// then additions, each in order), without holding those quads: each plain tuple's quad is
    /// made in three reused IRI buffers, applied and logged, then the buffers are refilled.
    pub fn commit(&self, changes: &[TupleChange], source: &str) -> Result<u64, StoreError> {
        let mut known = self.known_revision();
        let mut tx = self.db.start_transaction()?;
        let mut removed = String::new();
        let mut added = String::new();
        let (mut object, mut relation, mut user) = (String::new(), String::new(), String::new());
        for (kind, text) in [(Change::Remove, &mut removed), (Change::Add, &mut added)] {
            let count = changes.iter().filter(|c| c.change == kind).count();
            for (i, c) in changes.iter().filter(|c| c.change == kind).enumerate() {
                let g = GraphNameRef::NamedNode(NamedNodeRef::new_unchecked(&c.graph));
                if c.tuple.condition.is_some() {
                    for q in self.tuple_quads(&c.tuple, &c.graph)? {
                        match kind {
                            Change::Remove => tx.remove(&q),
                            Change::Add => tx.insert(&q),
                        }
                        push_nquad(text, q.as_ref());
                    }
                } else {
                    object.clear();
                    relation.clear();
                    user.clear();
                    self.iris.push_object(&mut object, &c.tuple.object);
                    IriMapper::push_relation(&mut relation, &c.tuple.relation);
                    self.iris.push_user(&mut user, &c.tuple.user);
                    let q = QuadRef::new(own_ref(&object), own_ref(&relation), own_ref(&user), g);
                    match kind {
                        Change::Remove => tx.remove(q),
                        Change::Add => tx.insert(q),
                    }
                    push_nquad(text, q);
                }
                if i == 0 {
                    // The rest are about as long as the first (bounded: it may be conditional).
                    text.reserve(text.len().min(512).saturating_mul(count - 1));
                }
            }
        }
        let next = log_revision(&mut tx, *known, added, removed, None, source)?;
        finish(tx, &mut known, next)
    }

    /// Applies quad changes and logs them as the next revision, atomically.
    pub fn commit_quads(
        &self,
        added: &[Quad],
        removed: &[Quad],
        source: &str,
    ) -> Result<u64, StoreError> {
        let mut known = self.known_revision();
        let mut tx = self.db.start_transaction()?;
        for q in removed {
            tx.remove(q);
        }
        for q in added {
            tx.insert(q);
        }
        let next = log_revision(
            &mut tx,
            *known,
            nquads(added),
            nquads(removed),
            None,
            source,
        )?;
        finish(tx, &mut known, next)
    }

    /// One logged revision.
    pub fn revision_entry(&self, number: u64) -> Result<Option<Revision>, StoreError> {
        let rev = nn(&format!("https://clew.dev/revision/{number}"))?;
        let log = graph(LOG_GRAPH);
        let mut out = Revision {
            number,
            time: String::new(),
            source: String::new(),
            added: Vec::new(),
            removed: Vec::new(),
            tuples: None,
        };
        let mut found = false;
        for q in
            self.db
                .quads_for_pattern(Some(rev.as_ref().into()), None, None, Some(log.as_ref()))
        {
            let q = q?;
            found = true;
            let Term::Literal(l) = &q.object else {
                continue;
            };
            let lines = || l.value().lines().map(str::to_string).collect::<Vec<_>>();
            match q.predicate.as_str().strip_prefix(NS) {
                Some("time") => out.time = l.value().to_string(),
                Some("source") => out.source = l.value().to_string(),
                Some("added") => out.added = lines(),
                Some("removed") => out.removed = lines(),
                Some("tuplesAdded") => out.tuples.get_or_insert_default().0 = lines(),
                Some("tuplesRemoved") => out.tuples.get_or_insert_default().1 = lines(),
                _ => {}
            }
        }
        Ok(found.then_some(out))
    }

    /// The relationship tuples among logged quads (a revision's `added` or `removed` lines),
    /// each with the graph it is in: plain triples, and conditional tuple nodes whose quads are
    /// all among the lines. Quads that are not tuples are skipped.
    pub fn tuples_in_log_lines(&self, lines: &[String]) -> Vec<(Tuple, String)> {
        use oxigraph::io::{RdfFormat, RdfParser};
        let text = lines.join("\n");
        let mut out = Vec::new();
        let mut nodes: Vec<(NamedNode, GraphName, Vec<Quad>)> = Vec::new();
        for q in RdfParser::from_format(RdfFormat::NQuads).for_slice(text.as_bytes()) {
            let Ok(q) = q else { continue };
            let g = match &q.graph_name {
                GraphName::NamedNode(n) => n.as_str().to_string(),
                _ => String::new(),
            };
            if let Some(t) = self.plain_tuple(&q) {
                out.push((t, g));
                continue;
            }
            if let NamedOrBlankNode::NamedNode(n) = &q.subject
                && n.as_str().starts_with("https://clew.dev/tuple/")
            {
                match nodes
                    .iter_mut()
                    .find(|(m, mg, _)| m == n && *mg == q.graph_name)
                {
                    Some((_, _, qs)) => qs.push(q),
                    None => nodes.push((n.clone(), q.graph_name.clone(), vec![q])),
                }
            }
        }
        for (_, g, quads) in nodes {
            if let Ok(Some(t)) = self.parse_conditional(quads.into_iter().map(Ok)) {
                let g = match &g {
                    GraphName::NamedNode(n) => n.as_str().to_string(),
                    _ => String::new(),
                };
                out.push((t, g));
            }
        }
        out
    }

    /// Every relationship tuple in the store (the tuple graph, the imported graph, and any other
    /// graph except Clew's own), with the graph it came from. Triples that are not tuples (their
    /// IRIs are outside the mapping) are skipped.
    pub fn all_tuples(&self) -> Result<Vec<(Tuple, Arc<str>)>, StoreError> {
        let mut out = Vec::new();
        let tuples_graph: Arc<str> = Arc::from(TUPLES_GRAPH);
        let mut graphs: Vec<Arc<str>> = Vec::new();
        for q in self.db.iter() {
            let q = q?;
            let g = match &q.graph_name {
                GraphName::NamedNode(n) => n.as_str(),
                GraphName::DefaultGraph => "",
                GraphName::BlankNode(_) => continue,
            };
            if g == LOG_GRAPH || g == MODELS_GRAPH {
                continue;
            }
            let graph_arc = if g == TUPLES_GRAPH {
                tuples_graph.clone()
            } else if let Some(a) = graphs.iter().find(|a| &***a == g) {
                a.clone()
            } else {
                let a: Arc<str> = Arc::from(g);
                graphs.push(a.clone());
                a
            };
            if let Some(t) = self.plain_tuple(&q) {
                out.push((t, graph_arc));
            } else if q.predicate == rdf::TYPE
                && q.object == Term::NamedNode(clew("ConditionalTuple"))
                && let NamedOrBlankNode::NamedNode(node) = &q.subject
                && let Some(t) = self.conditional_tuple(node.as_ref(), q.graph_name.as_ref())?
            {
                out.push((t, graph_arc));
            }
        }
        Ok(out)
    }

    /// The bindings and axioms of the data graphs (see [`bindings`]).
    pub fn vocabulary(&self) -> Result<Vocabulary, StoreError> {
        Vocabulary::load(&self.db)
    }

    /// Every tuple the data graphs read through bindings under `model` (each once, with the
    /// graph of the triple it was read from), beyond Clew's own triples.
    pub fn bound_tuples(
        &self,
        vocab: &Vocabulary,
        model: &TypeSystem,
    ) -> Result<Vec<(Tuple, Arc<str>)>, StoreError> {
        if vocab.is_empty() {
            return Ok(Vec::new());
        }
        let reader = bindings::Reader::new(vocab, &self.iris, model, &self.db);
        Ok(reader
            .all()?
            .into_iter()
            .map(|(t, g)| (t, Arc::from(g.unwrap_or_default().as_str())))
            .collect())
    }

    /// How the data graphs read a tuple key through bindings: the stored triples, binding and
    /// axioms of each way (empty when only Clew's own triples, or nothing, store it).
    pub fn supports(
        &self,
        vocab: &Vocabulary,
        model: &TypeSystem,
        key: &TupleKey,
    ) -> Result<Vec<Support>, StoreError> {
        if vocab.is_empty() {
            return Ok(Vec::new());
        }
        bindings::Reader::new(vocab, &self.iris, model, &self.db).supports(key)
    }

    /// A tuple key's form among Clew's own triples (plain or conditional) in the data graphs.
    pub fn own_tuple(&self, key: &TupleKey) -> Result<Option<(Tuple, Arc<str>)>, StoreError> {
        self.own_form(&self.db, key, None)
    }

    /// How a tuple key would still be stored once its form in `removed_graph` is removed: Clew's
    /// own triples in another graph, else a triple a binding reads (for a write that removes it
    /// there, computed before that write commits).
    pub fn stored_elsewhere(
        &self,
        vocab: &Vocabulary,
        model: Option<&TypeSystem>,
        key: &TupleKey,
        removed_graph: &str,
    ) -> Result<Option<(Tuple, Arc<str>)>, StoreError> {
        if let Some(found) = self.own_form(&self.db, key, Some(removed_graph))? {
            return Ok(Some(found));
        }
        match model {
            Some(m) if !vocab.is_empty() => {
                bindings::Reader::new(vocab, &self.iris, m, &self.db).stored(key)
            }
            _ => Ok(None),
        }
    }

    /// The tuple changes a model change makes to what the bindings read: every bound tuple
    /// under either model, in its stored form under the new one.
    pub fn rederive(
        &self,
        vocab: &Vocabulary,
        old: Option<&TypeSystem>,
        new: &TypeSystem,
    ) -> Result<Vec<TupleChange>, StoreError> {
        if vocab.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = std::collections::BTreeSet::new();
        for m in old.into_iter().chain([new]) {
            for (t, _) in bindings::Reader::new(vocab, &self.iris, m, &self.db).all()? {
                keys.insert(t.key());
            }
        }
        let reader = bindings::Reader::new(vocab, &self.iris, new, &self.db);
        let tuples: Arc<str> = Arc::from(TUPLES_GRAPH);
        let mut out = Vec::new();
        for key in keys {
            let stored = self.stored_form(&self.db, Some(&reader), &key)?;
            out.push(TupleChange {
                change: Change::Remove,
                tuple: Tuple {
                    object: key.object,
                    relation: key.relation,
                    user: key.user,
                    condition: None,
                },
                graph: tuples.clone(),
            });
            if let Some((t, g)) = stored {
                out.push(TupleChange {
                    change: Change::Add,
                    tuple: t,
                    graph: g,
                });
            }
        }
        Ok(out)
    }

    fn plain_tuple(&self, q: &Quad) -> Option<Tuple> {
        let relation = self.iris.relation_of(q.predicate.as_str())?;
        let NamedOrBlankNode::NamedNode(s) = &q.subject else {
            return None;
        };
        let Term::NamedNode(o) = &q.object else {
            return None;
        };
        Some(Tuple {
            object: self.iris.object_of(s.as_str())?,
            relation,
            user: self.iris.user_of(o.as_str())?,
            condition: None,
        })
    }

    fn conditional_tuple(
        &self,
        node: NamedNodeRef<'_>,
        g: GraphNameRef<'_>,
    ) -> Result<Option<Tuple>, StoreError> {
        self.parse_conditional(
            self.db
                .quads_for_pattern(Some(node.into()), None, None, Some(g)),
        )
    }

    /// A conditional tuple from the quads of its node, if they describe a complete one.
    fn parse_conditional(
        &self,
        quads: impl IntoIterator<Item = Result<Quad, oxigraph::store::StorageError>>,
    ) -> Result<Option<Tuple>, StoreError> {
        let mut object: Option<ObjectRef> = None;
        let mut relation: Option<String> = None;
        let mut user: Option<User> = None;
        let mut name: Option<String> = None;
        let mut context = serde_json::Map::new();
        for q in quads {
            let q = q?;
            match (q.predicate.as_str().strip_prefix(NS), &q.object) {
                (Some("object"), Term::NamedNode(n)) => object = self.iris.object_of(n.as_str()),
                (Some("relation"), Term::NamedNode(n)) => {
                    relation = self.iris.relation_of(n.as_str())
                }
                (Some("user"), Term::NamedNode(n)) => user = self.iris.user_of(n.as_str()),
                (Some("condition"), Term::Literal(l)) => name = Some(l.value().to_string()),
                (Some("conditionContext"), Term::Literal(l)) => {
                    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(l.value()) {
                        context = m;
                    }
                }
                _ => {}
            }
        }
        Ok(match (object, relation, user, name) {
            (Some(object), Some(relation), Some(user), Some(name)) => Some(Tuple {
                object,
                relation,
                user,
                condition: Some(TupleCondition { name, context }),
            }),
            _ => None,
        })
    }

    /// The quads describing a model version (its DSL and types/relations), and the pointer
    /// update making it current.
    pub fn model_quads(
        &self,
        ts: &TypeSystem,
        revision_hint: u64,
    ) -> Result<(Vec<Quad>, Vec<Quad>), StoreError> {
        let g = graph(MODELS_GRAPH);
        let m = nn(&format!("https://clew.dev/model/{}", ts.id))?;
        let lit = |s: &str| Literal::new_simple_literal(s);
        let mut add = vec![
            Quad::new(m.clone(), rdf::TYPE, clew("AuthorizationModel"), g.clone()),
            Quad::new(m.clone(), clew("modelId"), lit(&ts.id), g.clone()),
            Quad::new(m.clone(), clew("dsl"), lit(&ts.dsl), g.clone()),
            Quad::new(
                m.clone(),
                clew("schemaVersion"),
                lit(&ts.model.schema_version),
                g.clone(),
            ),
            Quad::new(
                m.clone(),
                clew("createdAtRevision"),
                int(revision_hint),
                g.clone(),
            ),
        ];
        for t in &ts.model.types {
            let tn = nn(&format!("{}/type/{}", m.as_str(), urlish(&t.name)))?;
            add.push(Quad::new(m.clone(), clew("hasType"), tn.clone(), g.clone()));
            add.push(Quad::new(tn.clone(), rdf::TYPE, clew("Type"), g.clone()));
            add.push(Quad::new(tn.clone(), clew("name"), lit(&t.name), g.clone()));
            for r in &t.relations {
                let rn = nn(&format!("{}/relation/{}", tn.as_str(), urlish(&r.name)))?;
                add.push(Quad::new(
                    tn.clone(),
                    clew("hasRelation"),
                    rn.clone(),
                    g.clone(),
                ));
                add.push(Quad::new(
                    rn.clone(),
                    rdf::TYPE,
                    clew("Relation"),
                    g.clone(),
                ));
                add.push(Quad::new(rn.clone(), clew("name"), lit(&r.name), g.clone()));
                add.push(Quad::new(
                    rn.clone(),
                    clew("predicate"),
                    own(self.iris.relation(&r.name)),
                    g.clone(),
                ));
                add.push(Quad::new(
                    rn.clone(),
                    clew("rewrite"),
                    lit(&rewrite_to_dsl(&r.rewrite, &r.directly_related)),
                    g.clone(),
                ));
                for d in &r.directly_related {
                    add.push(Quad::new(
                        rn.clone(),
                        clew("directlyRelated"),
                        lit(&restriction_to_dsl(d)),
                        g.clone(),
                    ));
                }
            }
        }
        for c in &ts.model.conditions {
            let cn = nn(&format!("{}/condition/{}", m.as_str(), urlish(&c.name)))?;
            add.push(Quad::new(
                m.clone(),
                clew("hasCondition"),
                cn.clone(),
                g.clone(),
            ));
            add.push(Quad::new(
                cn.clone(),
                rdf::TYPE,
                clew("Condition"),
                g.clone(),
            ));
            add.push(Quad::new(cn.clone(), clew("name"), lit(&c.name), g.clone()));
            add.push(Quad::new(
                cn,
                clew("expression"),
                lit(&c.expression),
                g.clone(),
            ));
        }
        let mut remove = Vec::new();
        for q in self.db.quads_for_pattern(
            Some(meta().as_ref().into()),
            Some(clew("currentModel").as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            remove.push(q?);
        }
        add.push(Quad::new(meta(), clew("currentModel"), m, g));
        // A model written again keeps its original description.
        let mut new_add = Vec::new();
        for q in add {
            if !self.db.contains(&q)? || q.predicate == clew("currentModel") {
                new_add.push(q);
            }
        }
        remove.retain(|q| !new_add.contains(q));
        Ok((new_add, remove))
    }

    /// The DSL of the current model, if any.
    pub fn current_model_dsl(&self) -> Result<Option<String>, StoreError> {
        let g = graph(MODELS_GRAPH);
        let mut current = None;
        for q in self.db.quads_for_pattern(
            Some(meta().as_ref().into()),
            Some(clew("currentModel").as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            if let Term::NamedNode(n) = q?.object {
                current = Some(n);
            }
        }
        let Some(m) = current else {
            return Ok(None);
        };
        for q in self.db.quads_for_pattern(
            Some(m.as_ref().into()),
            Some(clew("dsl").as_ref()),
            None,
            Some(g.as_ref()),
        ) {
            if let Term::Literal(l) = q?.object {
                return Ok(Some(l.value().to_string()));
            }
        }
        Err(StoreError::Corrupt(format!(
            "model {} has no DSL",
            m.as_str()
        )))
    }

    /// Flushes to disk (RocksDB's WAL already makes commits durable; this compacts memtables).
    pub fn flush(&self) -> Result<(), StoreError> {
        #[cfg(feature = "rocksdb")]
        self.db.flush()?;
        Ok(())
    }
}

/// The change log's text of quads: each quad in N-Quads (its `Display`) followed by ` .` and a
/// newline — `format!("{q} .\n")` for each, concatenated, without a string per quad.
pub(crate) fn nquads(quads: &[Quad]) -> String {
    let mut out = String::with_capacity(quads.iter().map(nquad_len_hint).sum());
    for q in quads {
        push_nquad(&mut out, q.as_ref());
    }
    out
}

/// About the length of a quad's log line (exact for named nodes and simple literals).
fn nquad_len_hint(q: &Quad) -> usize {
    let term = |t: &Term| match t {
        Term::NamedNode(n) => n.as_str().len() + 2,
        Term::Literal(l) => l.value().len() + 2,
        _ => 16,
    };
    let subject = match &q.subject {
        NamedOrBlankNode::NamedNode(n) => n.as_str().len() + 2,
        NamedOrBlankNode::BlankNode(_) => 16,
    };
    let graph = match &q.graph_name {
        GraphName::NamedNode(n) => n.as_str().len() + 3,
        GraphName::BlankNode(_) => 16,
        GraphName::DefaultGraph => 0,
    };
    subject + q.predicate.as_str().len() + 2 + term(&q.object) + graph + 5
}

/// Appends `format!("{q} .\n")` to `out`: named nodes are written directly (`<iri>`, as their
/// `Display` does), anything else through its `Display`.
fn push_nquad(out: &mut String, q: QuadRef<'_>) {
    use oxigraph::model::{GraphNameRef, NamedOrBlankNodeRef, TermRef};
    use std::fmt::Write;
    fn named(out: &mut String, n: NamedNodeRef<'_>) {
        out.push('<');
        out.push_str(n.as_str());
        out.push('>');
    }
    // Writing into a String cannot fail.
    match q.subject {
        NamedOrBlankNodeRef::NamedNode(n) => named(out, n),
        other => {
            let _ = write!(out, "{other}");
        }
    }
    out.push(' ');
    named(out, q.predicate);
    out.push(' ');
    match q.object {
        TermRef::NamedNode(n) => named(out, n),
        other => {
            let _ = write!(out, "{other}");
        }
    }
    match q.graph_name {
        GraphNameRef::DefaultGraph => {}
        GraphNameRef::NamedNode(n) => {
            out.push(' ');
            named(out, n);
        }
        other => {
            let _ = write!(out, " {other}");
        }
    }
    out.push_str(" .\n");
}

/// Commits `tx`, which logged revision `next`: on success `next` is the known revision; on
/// failure the known revision is forgotten (read again from the store next time).
pub(crate) fn finish(
    tx: oxigraph::store::Transaction<'_>,
    known: &mut Option<u64>,
    next: u64,
) -> Result<u64, StoreError> {
    match tx.commit() {
        Ok(()) => {
            *known = Some(next);
            Ok(next)
        }
        Err(e) => {
            *known = None;
            Err(e.into())
        }
    }
}

/// Logs `added`/`removed` (already applied in `tx`, given as their [`nquads`] text) as the next
/// revision in `tx`: bumps the counter (from `current`, the last committed revision when known,
/// else read in `tx`) and writes the revision node. Returns the new revision number.
fn log_revision(
    tx: &mut oxigraph::store::Transaction<'_>,
    current: Option<u64>,
    added: String,
    removed: String,
    net: Option<&NetTuples>,
    source: &str,
) -> Result<u64, StoreError> {
    let log = graph(LOG_GRAPH);
    let current = match current {
        Some(c) => c,
        None => {
            let mut c = 0;
            for q in tx.quads_for_pattern(
                Some(meta().as_ref().into()),
                Some(clew("revision").as_ref()),
                None,
                Some(log.as_ref()),
            ) {
                let q = q?;
                if let Term::Literal(l) = &q.object {
                    c = l.value().parse().map_err(|_| {
                        StoreError::Corrupt(format!("revision counter '{}'", l.value()))
                    })?;
                }
            }
            c
        }
    };
    let next = current + 1;
    let rev = nn(&format!("https://clew.dev/revision/{next}"))?;
    tx.remove(&Quad::new(
        meta(),
        clew("revision"),
        int(current),
        log.clone(),
    ));
    tx.insert(&Quad::new(meta(), clew("revision"), int(next), log.clone()));
    let lit = |s: &str| Literal::new_simple_literal(s);
    for (p, o) in [
        ("number", Term::from(int(next))),
        (
            "time",
            Literal::new_typed_literal(now_rfc3339(), xsd::DATE_TIME).into(),
        ),
        ("source", lit(source).into()),
        ("added", Literal::new_simple_literal(added).into()),
        ("removed", Literal::new_simple_literal(removed).into()),
    ] {
        tx.insert(&Quad::new(rev.clone(), clew(p), o, log.clone()));
    }
    if let Some((plus, minus)) = net {
        let json = |ts: &[(Tuple, Arc<str>)]| {
            ts.iter()
                .map(|(t, g)| {
                    let mut v = serde_json::json!(crate::tuple::TupleSpec::from(t));
                    v["graph"] = serde_json::json!(&**g);
                    format!("{v}\n")
                })
                .collect::<String>()
        };
        for (p, ts) in [("tuplesAdded", plus), ("tuplesRemoved", minus)] {
            tx.insert(&Quad::new(
                rev.clone(),
                clew(p),
                lit(&json(ts)),
                log.clone(),
            ));
        }
    }
    tx.insert(&Quad::new(rev, rdf::TYPE, clew("Revision"), log));
    Ok(next)
}

/// Percent-encodes a name for use in an IRI path segment.
fn urlish(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxigraph::model::BlankNode;

    #[test]
    fn the_log_text_is_each_quads_display_with_a_full_stop() {
        let n = |s: &str| NamedNode::new_unchecked(s);
        let g = graph(TUPLES_GRAPH);
        let quads = vec![
            Quad::new(
                n("https://a/s"),
                n("https://a/p"),
                n("https://a/o"),
                g.clone(),
            ),
            Quad::new(
                n("https://a/s"),
                n("https://a/p"),
                Literal::new_simple_literal("quote \" backslash \\ newline \n tab \t é"),
                g.clone(),
            ),
            Quad::new(
                BlankNode::new_unchecked("b0"),
                n("https://a/p"),
                Literal::new_language_tagged_literal_unchecked("x", "en"),
                GraphName::DefaultGraph,
            ),
            Quad::new(
                n("https://a/s"),
                n("https://a/p"),
                BlankNode::new_unchecked("b1"),
                GraphName::BlankNode(BlankNode::new_unchecked("g")),
            ),
            Quad::new(
                n("https://a/s"),
                n("https://a/p"),
                Literal::new_typed_literal(
                    "{\"a\":1}",
                    n("http://www.w3.org/1999/02/22-rdf-syntax-ns#JSON"),
                ),
                g,
            ),
        ];
        let expected: String = quads.iter().map(|q| format!("{q} .\n")).collect();
        assert_eq!(nquads(&quads), expected);
        assert_eq!(nquads(&[]), "");
    }
}
