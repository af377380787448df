//! SPARQL on the store. Queries read the latest committed state. An update runs in one
//! transaction ([`crate::sparql::update::apply`]); its exact delta is then checked — Clew's own
//! graphs (models, change log) are read-only, and every relationship tuple the delta creates must
//! be admitted by the model — and turned into the tuple changes the index applies. Only then is
//! the delta logged as one revision and committed; any error drops the transaction, so nothing
//! of a rejected update is stored.

use super::bindings::{Reader, Source, Vocabulary, VocabularyDiff};
use super::{NetTuples, Store, StoreError, clew, log_revision, nn, nquads, own};
use crate::index::{Change, TupleChange};
use crate::iri::{LOG_GRAPH, MODELS_GRAPH, REL, TUPLES_GRAPH};
use crate::model::typesystem::TypeSystem;
use crate::sparql::update::Delta;
use crate::sparql::{self, Answer, SparqlError, SparqlOptions};
use crate::tuple::{Tuple, TupleKey};
use oxigraph::model::vocab::rdf;
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Quad, Term};
use oxigraph::store::Transaction;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Conditional tuples are reified under this prefix (see [`crate::iri::IriMapper::conditional_tuple`]).
const TUPLE_NODES: &str = "https://clew.dev/tuple/";

impl From<StoreError> for SparqlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Binding(b) => SparqlError::InvalidTuple(format!(
                "the write leaves a binding that cannot be read: {b}"
            )),
            StoreError::Limit(m) => SparqlError::InvalidTuple(m),
            other => SparqlError::Internal(other.to_string()),
        }
    }
}

/// What a delta does to the tuples: the index's changes, the distinct keys touched, the new
/// vocabulary if it changed one, and the net changes the log records (with bindings).
type TupleChanges = (
    Vec<TupleChange>,
    usize,
    Option<Vocabulary>,
    Option<NetTuples>,
);

/// What a committed write (a SPARQL update or an import) did.
#[derive(Debug, Default)]
pub struct Committed {
    /// The revision holding the write; `None` when it changed nothing (no revision is made).
    pub revision: Option<u64>,
    /// Quads added and removed.
    pub added: usize,
    pub removed: usize,
    /// The relationship tuples it changed, for the index: for each tuple key touched, a removal
    /// followed by its stored form after the update, if any.
    pub changes: Vec<TupleChange>,
    /// Distinct tuple keys touched.
    pub tuples_touched: usize,
    /// The graph's bindings and axioms after the write, when it changed them.
    pub vocabulary: Option<Vocabulary>,
}

pub(super) fn graph_str(g: &GraphName) -> &str {
    match g {
        GraphName::NamedNode(n) => n.as_str(),
        GraphName::DefaultGraph | GraphName::BlankNode(_) => "",
    }
}

pub(super) fn is_protected(g: &GraphName) -> bool {
    matches!(graph_str(g), LOG_GRAPH | MODELS_GRAPH)
}

fn admitted(model: Option<&TypeSystem>, t: &Tuple, what: &str) -> Result<(), SparqlError> {
    let Some(model) = model else {
        return Err(SparqlError::InvalidTuple(format!(
            "{what} would create the tuple {t}, but no authorization model has been written yet"
        )));
    };
    model.validate_tuple(t).map_err(|e| {
        SparqlError::InvalidTuple(format!(
            "{what} would create the tuple {t}, which the model does not allow: {e}"
        ))
    })
}

impl Store {
    /// Evaluates a SPARQL query (see [`sparql::query`] for its default dataset).
    pub fn sparql_query(&self, text: &str, options: &SparqlOptions) -> Result<Answer, SparqlError> {
        sparql::query(&self.db, text, options)
    }

    /// Applies a parsed update atomically (the caller is the single writer). See the module
    /// documentation for what is checked.
    pub fn sparql_update(
        &self,
        update: &spargebra::Update,
        options: &SparqlOptions,
        model: Option<&TypeSystem>,
        vocab: &Vocabulary,
        source: &str,
    ) -> Result<Committed, SparqlError> {
        let mut tx = self.db.start_transaction()?;
        let delta = sparql::update::apply(&mut tx, update, options)?;
        self.commit_delta(tx, &delta, model, vocab, source)
    }

    /// Finishes a write whose exact `delta` is applied in `tx`: refuses changes to Clew's own
    /// graphs, validates the tuples it creates and derives the index's tuple changes, logs it as
    /// one revision and commits. An empty delta commits nothing and makes no revision; any error
    /// drops the transaction.
    pub(super) fn commit_delta(
        &self,
        mut tx: Transaction<'_>,
        delta: &Delta,
        model: Option<&TypeSystem>,
        vocab: &Vocabulary,
        source: &str,
    ) -> Result<Committed, SparqlError> {
        if delta.is_empty() {
            return Ok(Committed::default());
        }
        if let Some(q) = delta
            .added
            .iter()
            .chain(&delta.removed)
            .find(|q| is_protected(&q.graph_name))
        {
            return Err(SparqlError::ReadOnlyGraph(graph_str(&q.graph_name).into()));
        }
        let (changes, tuples_touched, vocabulary, net) =
            self.tuple_changes(&tx, delta, model, vocab)?;
        let mut known = self.known_revision();
        let revision = log_revision(
            &mut tx,
            *known,
            nquads(&delta.added),
            nquads(&delta.removed),
            net.as_ref(),
            source,
        )?;
        super::finish(tx, &mut known, revision)?;
        Ok(Committed {
            revision: Some(revision),
            added: delta.added.len(),
            removed: delta.removed.len(),
            changes,
            tuples_touched,
            vocabulary,
        })
    }

    /// The tuple changes a delta makes, validating each tuple it creates (shared with
    /// [`Store::import`]).
    pub(super) fn tuple_changes(
        &self,
        tx: &Transaction<'_>,
        delta: &Delta,
        model: Option<&TypeSystem>,
        vocab: &Vocabulary,
    ) -> Result<TupleChanges, SparqlError> {
        let mut keys: BTreeSet<TupleKey> = BTreeSet::new();
        // Conditional-tuple nodes touched, each once, in first-seen order.
        let mut nodes: Vec<(NamedNode, GraphName)> = Vec::new();
        let mut seen_nodes: std::collections::HashSet<(NamedNode, GraphName)> =
            std::collections::HashSet::new();
        let conditional_type = Term::NamedNode(clew("ConditionalTuple"));
        let quads = delta
            .added
            .iter()
            .map(|q| (q, true))
            .chain(delta.removed.iter().map(|q| (q, false)));
        for (q, added) in quads {
            if q.predicate.as_str().starts_with(REL) {
                match self.plain_tuple(q) {
                    Some(t) => {
                        if added {
                            admitted(model, &t, &format!("the triple {q}"))?;
                        }
                        keys.insert(t.key());
                    }
                    None if added => {
                        return Err(SparqlError::InvalidTuple(format!(
                            "the triple {q} uses a Clew relation predicate, but its subject is not an object IRI or its object is not a user IRI under <{}> (type/id)",
                            self.iris.base()
                        )));
                    }
                    None => {}
                }
                continue;
            }
            let node = match &q.subject {
                NamedOrBlankNode::NamedNode(s) if s.as_str().starts_with(TUPLE_NODES) => {
                    Some(s.clone())
                }
                NamedOrBlankNode::NamedNode(s)
                    if q.predicate == rdf::TYPE && q.object == conditional_type =>
                {
                    Some(s.clone())
                }
                _ => None,
            };
            match node {
                Some(n) if seen_nodes.insert((n.clone(), q.graph_name.clone())) => {
                    nodes.push((n, q.graph_name.clone()));
                }
                Some(_) => {}
                None if added && graph_str(&q.graph_name) == TUPLES_GRAPH => {
                    return Err(SparqlError::InvalidTuple(format!(
                        "the triple {q} is not a relationship tuple: graph <{TUPLES_GRAPH}> holds only tuples (<object> <{REL}relation> <user>, or a clew:ConditionalTuple node); put other data in another graph"
                    )));
                }
                None => {}
            }
        }
        for (node, g) in &nodes {
            // Its tuple before the update (from the committed store) is touched either way.
            if let Some(before) = self.conditional_tuple(node.as_ref(), g.as_ref())? {
                keys.insert(before.key());
            }
            let mut quads = Vec::new();
            for q in tx.quads_for_pattern(Some(node.as_ref().into()), None, None, Some(g.as_ref()))
            {
                quads.push(Ok(q?));
            }
            if quads.is_empty() {
                continue;
            }
            match self.parse_conditional(quads)? {
                Some(t) => {
                    admitted(model, &t, &format!("the conditional tuple node <{node}>"))?;
                    keys.insert(t.key());
                }
                None => {
                    return Err(SparqlError::InvalidTuple(format!(
                        "after the update, <{node}> in graph <{}> is an incomplete conditional tuple: it needs clew:object (an object IRI), clew:relation (a relation IRI), clew:user (a user IRI) and clew:condition (the condition's name)",
                        graph_str(g)
                    )));
                }
            }
        }
        // Tuples read through bindings: those of the quads the delta touches, of the nodes whose
        // class it changed, and (when it changed a binding or an axiom) every bound triple's,
        // read both before and after.
        let schema_changed = delta
            .added
            .iter()
            .chain(&delta.removed)
            .any(Vocabulary::is_schema);
        let new_vocab = if schema_changed {
            let v = Vocabulary::load(tx)?;
            (v != *vocab).then_some(v)
        } else {
            None
        };
        let after_vocab = new_vocab.as_ref().unwrap_or(vocab);
        let bound = model.is_some() && (!after_vocab.is_empty() || !vocab.is_empty());
        let mut read = ReadForms::default();
        let before = match model {
            Some(model) if bound => Some(Reader::new(vocab, &self.iris, model, &self.db)),
            _ => None,
        };
        let after = match (model, &before) {
            (Some(model), Some(before)) => {
                let after = Reader::new(after_vocab, &self.iris, model, tx);
                // A changed vocabulary re-reads only the triples it changes the reading of.
                let diff = match &new_vocab {
                    Some(v) => vocab.diff(v),
                    None => VocabularyDiff::default(),
                };
                read = bound_keys(before, &after, delta, &diff, &mut keys)?;
                Some(after)
            }
            _ => None,
        };
        // The stored form of a key: Clew's own triples, else a bound triple read above, else
        // one found by a search (a triple that supports it and did not change).
        let form = |src: &dyn Source,
                    reader: Option<&Reader<'_>>,
                    found: &HashMap<TupleKey, (Tuple, Arc<str>)>,
                    key: &TupleKey|
         -> Result<Option<(Tuple, Arc<str>)>, StoreError> {
            if let Some(own) = self.own_form(src, key, None)? {
                return Ok(Some(own));
            }
            if let Some(f) = found.get(key) {
                return Ok(Some(f.clone()));
            }
            match reader {
                Some(r) => r.stored(key),
                None => Ok(None),
            }
        };
        // With bindings, a quad can change tuples it is not (an axiom, a class): the log records
        // the net tuple changes, which watchers read.
        let mut net: Option<NetTuples> = bound.then(NetTuples::default);
        let touched = keys.len();
        let mut changes = Vec::with_capacity(keys.len() * 2);
        let tuples: Arc<str> = Arc::from(TUPLES_GRAPH);
        for key in keys {
            let stored = form(tx, after.as_ref(), &read.after, &key)?;
            if let Some((plus, minus)) = &mut net {
                let was = form(&self.db, before.as_ref(), &read.before, &key)?;
                if was.as_ref().map(|w| &w.0) != stored.as_ref().map(|s| &s.0) {
                    minus.extend(was);
                    plus.extend(stored.clone());
                }
            }
            changes.push(TupleChange {
                change: Change::Remove,
                tuple: Tuple {
                    object: key.object.clone(),
                    relation: key.relation.clone(),
                    user: key.user.clone(),
                    condition: None,
                },
                graph: tuples.clone(),
            });
            if let Some((t, g)) = stored {
                changes.push(TupleChange {
                    change: Change::Add,
                    tuple: t,
                    graph: g,
                });
            }
        }
        Ok((changes, touched, new_vocab, net))
    }

    /// The stored form of a tuple key in `src`, if any: Clew's own forms (see
    /// [`Store::own_form`]), else the first triple a binding reads it from.
    pub(super) fn stored_form(
        &self,
        src: &dyn Source,
        bound: Option<&Reader<'_>>,
        key: &TupleKey,
    ) -> Result<Option<(Tuple, Arc<str>)>, StoreError> {
        if let Some(found) = self.own_form(src, key, None)? {
            return Ok(Some(found));
        }
        match bound {
            Some(reader) => reader.stored(key),
            None => Ok(None),
        }
    }

    /// How a tuple key is stored in Clew's own forms across the data graphs (but `except`), if
    /// it is: an unconditional triple wins over a conditional node, and the tuple graph over
    /// other graphs.
    pub(super) fn own_form(
        &self,
        src: &dyn Source,
        key: &TupleKey,
        except: Option<&str>,
    ) -> Result<Option<(Tuple, Arc<str>)>, StoreError> {
        let s = own(self.iris.object(&key.object));
        let p = own(self.iris.relation(&key.relation));
        let o = Term::NamedNode(own(self.iris.user(&key.user)));
        let plain = Tuple {
            object: key.object.clone(),
            relation: key.relation.clone(),
            user: key.user.clone(),
            condition: None,
        };
        let mut other: Option<Arc<str>> = None;
        for q in src.find(Some(s.as_ref()), Some(p.as_ref()), Some(o.as_ref()))? {
            let g = graph_str(&q.graph_name);
            if Some(g) == except {
                continue;
            }
            if g == TUPLES_GRAPH {
                return Ok(Some((plain, Arc::from(TUPLES_GRAPH))));
            }
            other.get_or_insert_with(|| Arc::from(g));
        }
        if let Some(g) = other {
            return Ok(Some((plain, g)));
        }
        let node = own(self
            .iris
            .conditional_tuple(&key.object, &key.relation, &key.user));
        let ty = Term::NamedNode(clew("ConditionalTuple"));
        let mut found: Option<(Tuple, Arc<str>)> = None;
        for q in src.find(Some(node.as_ref()), Some(rdf::TYPE), Some(ty.as_ref()))? {
            if Some(graph_str(&q.graph_name)) == except {
                continue;
            }
            let quads: Vec<_> = src
                .find(Some(node.as_ref()), None, None)?
                .into_iter()
                .filter(|x| x.graph_name == q.graph_name)
                .map(Ok)
                .collect();
            if let Some(t) = self.parse_conditional(quads)?
                && t.key() == *key
            {
                let g = graph_str(&q.graph_name);
                if g == TUPLES_GRAPH {
                    return Ok(Some((t, Arc::from(TUPLES_GRAPH))));
                }
                found.get_or_insert((t, Arc::from(g)));
            }
        }
        Ok(found)
    }
}

/// The tuple keys a delta may change through bindings when the vocabulary stays: the tuples its
/// quads are read as, those of every bound triple at a node whose bound class it changed, and for
/// a transitive binding every pair the changed edges join; each read before and after.
fn bound_keys(
    before: &Reader<'_>,
    after: &Reader<'_>,
    delta: &Delta,
    diff: &VocabularyDiff,
    keys: &mut BTreeSet<TupleKey>,
) -> Result<ReadForms, StoreError> {
    // The candidate quads, each with the state it is in: (quad, in the state before, after).
    let mut quads: Vec<(Quad, bool, bool)> = Vec::new();
    let mut nodes: BTreeSet<NamedNode> = BTreeSet::new();
    for (q, added) in delta
        .added
        .iter()
        .map(|q| (q, true))
        .chain(delta.removed.iter().map(|q| (q, false)))
    {
        let p = q.predicate.as_str();
        if before.vocab.reads(p) || after.vocab.reads(p) {
            quads.push((q.clone(), !added, added));
        }
        if (before.vocab.is_typing(q) || after.vocab.is_typing(q))
            && let NamedOrBlankNode::NamedNode(n) = &q.subject
        {
            nodes.insert(n.clone());
        }
    }
    // The vocabulary changed: every triple of a predicate read differently, and every node of
    // a class that changed type, before and after.
    for p in &diff.predicates {
        let p = nn(p)?;
        for (reader, is_after) in [(before, false), (after, true)] {
            for q in reader.src.find(None, Some(p.as_ref()), None)? {
                quads.push((q, !is_after, is_after));
            }
        }
    }
    for c in &diff.classes {
        let c = Term::NamedNode(nn(c)?);
        for reader in [before, after] {
            for q in reader.src.find(None, Some(rdf::TYPE), Some(c.as_ref()))? {
                if let NamedOrBlankNode::NamedNode(n) = &q.subject {
                    nodes.insert(n.clone());
                }
            }
        }
    }
    for n in &nodes {
        let t = Term::NamedNode(n.clone());
        for (reader, is_after) in [(before, false), (after, true)] {
            let mut at = reader.src.find(Some(n.as_ref()), None, None)?;
            at.extend(reader.src.find(None, None, Some(t.as_ref()))?);
            for q in at {
                if reader.vocab.reads(q.predicate.as_str()) {
                    quads.push((q, !is_after, is_after));
                }
            }
        }
    }
    // Each quad is read in the state it is in; what it is read as there is a stored form.
    let mut out = ReadForms::default();
    for (q, in_before, in_after) in &quads {
        for (reader, present, found) in [
            (before, *in_before, &mut out.before),
            (after, *in_after, &mut out.after),
        ] {
            if !present {
                continue;
            }
            for s in reader.read(q)? {
                for k in reader.closure_candidates(&s)? {
                    keys.insert(k);
                }
                let key = s.tuple.key();
                keys.insert(key.clone());
                found.entry(key).or_insert_with(|| s.into_stored());
            }
        }
    }
    Ok(out)
}

/// Stored forms found while reading the candidate quads: what each key is read as, in the
/// state before the write and after it.
#[derive(Default)]
struct ReadForms {
    before: HashMap<TupleKey, (Tuple, Arc<str>)>,
    after: HashMap<TupleKey, (Tuple, Arc<str>)>,
}
