//! SPARQL 1.1 Update applied inside one store transaction, so that its exact quad delta is known
//! before anything commits.
//!
//! Each operation runs in order and sees the effects of the ones before it (the transaction
//! reads its own writes). `DELETE/INSERT … WHERE` evaluates its `WHERE` as a `SELECT` of the
//! template variables on the transaction, instantiates the templates per solution (fresh blank
//! nodes per solution for `INSERT`), then deletes and inserts. Every write is guarded by
//! `contains`, so the delta holds only quads that really appeared or disappeared; a quad added
//! and removed again within one update is in neither list.

use super::remote;
use super::{SparqlError, SparqlOptions};
use oxigraph::model::{
    BlankNode, GraphName, GraphNameRef, Literal, NamedNode, NamedOrBlankNode, Quad, Term,
};
use oxigraph::sparql::{QueryResults, SparqlEvaluator, Variable};
use oxigraph::store::{StorageError, Transaction};
use spargebra::algebra::{GraphPattern, GraphTarget, QueryDataset};
use spargebra::term::{
    GraphName as SGraphName, GraphNamePattern, GroundQuad, GroundQuadPattern, GroundTerm,
    GroundTermPattern, NamedNodePattern, Quad as SQuad, QuadPattern, TermPattern,
};
use spargebra::{GraphUpdateOperation, Query, Update};
use std::collections::HashMap;
use std::time::Instant;

/// The net change an update made: quads that were not there before and are now, and quads that
/// were there and are not any more.
#[derive(Debug, Default, Clone)]
pub struct Delta {
    pub added: Vec<Quad>,
    pub removed: Vec<Quad>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// The exact delta of writes made through it, in the order they were first made.
#[derive(Default)]
pub(crate) struct DeltaBuilder {
    added: Vec<Option<Quad>>,
    removed: Vec<Option<Quad>>,
    added_at: HashMap<Quad, usize>,
    removed_at: HashMap<Quad, usize>,
}

impl DeltaBuilder {
    pub(crate) fn insert(
        &mut self,
        tx: &mut Transaction<'_>,
        q: &Quad,
    ) -> Result<(), StorageError> {
        if tx.contains(q)? {
            return Ok(());
        }
        tx.insert(q);
        match self.removed_at.remove(q) {
            Some(i) => {
                if let Some(slot) = self.removed.get_mut(i) {
                    *slot = None;
                }
            }
            None => {
                self.added_at.insert(q.clone(), self.added.len());
                self.added.push(Some(q.clone()));
            }
        }
        Ok(())
    }

    pub(crate) fn remove(
        &mut self,
        tx: &mut Transaction<'_>,
        q: &Quad,
    ) -> Result<(), StorageError> {
        if !tx.contains(q)? {
            return Ok(());
        }
        tx.remove(q);
        match self.added_at.remove(q) {
            Some(i) => {
                if let Some(slot) = self.added.get_mut(i) {
                    *slot = None;
                }
            }
            None => {
                self.removed_at.insert(q.clone(), self.removed.len());
                self.removed.push(Some(q.clone()));
            }
        }
        Ok(())
    }

    /// Quads added or removed so far (net).
    pub(crate) fn len(&self) -> usize {
        self.added_at.len() + self.removed_at.len()
    }

    pub(crate) fn into_delta(self) -> Delta {
        Delta {
            added: self.added.into_iter().flatten().collect(),
            removed: self.removed.into_iter().flatten().collect(),
        }
    }
}

/// Writes of an update go through here (into the transaction and the delta), within the
/// update's quad budget.
struct Net<'t, 'a> {
    tx: &'t mut Transaction<'a>,
    delta: DeltaBuilder,
    limit: usize,
}

impl Net<'_, '_> {
    fn insert(&mut self, q: Quad) -> Result<(), SparqlError> {
        self.delta.insert(self.tx, &q)?;
        self.check_size()
    }

    fn remove(&mut self, q: Quad) -> Result<(), SparqlError> {
        self.delta.remove(self.tx, &q)?;
        self.check_size()
    }

    fn check_size(&self) -> Result<(), SparqlError> {
        if self.delta.len() > self.limit {
            return Err(SparqlError::UpdateTooLarge(self.limit));
        }
        Ok(())
    }

    /// Every quad of a graph.
    fn graph_quads(&self, g: GraphNameRef<'_>) -> Result<Vec<Quad>, SparqlError> {
        let mut out = Vec::new();
        for q in self.tx.quads_for_pattern(None, None, None, Some(g)) {
            out.push(q?);
        }
        Ok(out)
    }

    fn named_graphs(&self) -> Result<Vec<NamedOrBlankNode>, SparqlError> {
        let mut out = Vec::new();
        for g in self.tx.named_graphs() {
            out.push(g?);
        }
        Ok(out)
    }

    fn clear(&mut self, g: GraphNameRef<'_>) -> Result<(), SparqlError> {
        for q in self.graph_quads(g)? {
            self.remove(q)?;
        }
        Ok(())
    }
}

/// Applies `update` in `tx` and returns its delta. The caller commits or drops the transaction.
pub fn apply(
    tx: &mut Transaction<'_>,
    update: &Update,
    options: &SparqlOptions,
) -> Result<Delta, SparqlError> {
    let deadline = options.deadline();
    let mut net = Net {
        tx,
        delta: DeltaBuilder::default(),
        limit: options.max_update_quads,
    };
    for op in &update.operations {
        if Instant::now() > deadline || options.cancel.is_cancelled() {
            return Err(options.timed_out());
        }
        match op {
            GraphUpdateOperation::InsertData { data } => {
                let mut bnodes = HashMap::new();
                for q in data {
                    net.insert(ground_data_quad(q, &mut bnodes))?;
                }
            }
            GraphUpdateOperation::DeleteData { data } => {
                for q in data {
                    if let Some(q) = ground_quad(q) {
                        net.remove(q)?;
                    }
                }
            }
            GraphUpdateOperation::DeleteInsert {
                delete,
                insert,
                using,
                pattern,
            } => {
                let using = protocol_dataset(options).or_else(|| using.clone());
                delete_insert(
                    &mut net, delete, insert, using, pattern, update, options, deadline,
                )?;
            }
            GraphUpdateOperation::Load {
                silent,
                source,
                destination,
            } => match remote::load(source, options) {
                Ok(quads) => {
                    let graph = match destination {
                        SGraphName::NamedNode(n) => GraphName::NamedNode(n.clone()),
                        SGraphName::DefaultGraph => GraphName::DefaultGraph,
                    };
                    if let GraphName::NamedNode(n) = &graph {
                        net.tx.insert_named_graph(n);
                    }
                    for t in quads {
                        net.insert(Quad::new(t.subject, t.predicate, t.object, graph.clone()))?;
                    }
                }
                Err(_) if *silent => {}
                Err(e) => return Err(e),
            },
            GraphUpdateOperation::Clear { silent, graph } => match graph {
                GraphTarget::NamedNode(n) => {
                    if !net.tx.contains_named_graph(n)? && !silent {
                        return Err(no_graph(n));
                    }
                    net.clear(n.into())?;
                }
                GraphTarget::DefaultGraph => net.clear(GraphNameRef::DefaultGraph)?,
                GraphTarget::NamedGraphs => {
                    for g in net.named_graphs()? {
                        net.clear(g.as_ref().into())?;
                    }
                }
                GraphTarget::AllGraphs => {
                    net.clear(GraphNameRef::DefaultGraph)?;
                    for g in net.named_graphs()? {
                        net.clear(g.as_ref().into())?;
                    }
                }
            },
            GraphUpdateOperation::Create { silent, graph } => {
                if net.tx.contains_named_graph(graph)? {
                    if !silent {
                        return Err(SparqlError::Evaluation(format!(
                            "graph {graph} already exists"
                        )));
                    }
                } else {
                    net.tx.insert_named_graph(graph);
                }
            }
            GraphUpdateOperation::Drop { silent, graph } => match graph {
                GraphTarget::NamedNode(n) => {
                    if !net.tx.contains_named_graph(n)? {
                        if !silent {
                            return Err(no_graph(n));
                        }
                    } else {
                        net.clear(n.into())?;
                        // Clew's own graphs stay declared (emptying them is refused later).
                        if !n.as_str().starts_with(CLEW_GRAPHS) {
                            net.tx.remove_named_graph(n)?;
                        }
                    }
                }
                GraphTarget::DefaultGraph => net.clear(GraphNameRef::DefaultGraph)?,
                GraphTarget::NamedGraphs | GraphTarget::AllGraphs => {
                    if matches!(graph, GraphTarget::AllGraphs) {
                        net.clear(GraphNameRef::DefaultGraph)?;
                    }
                    for g in net.named_graphs()? {
                        net.clear(g.as_ref().into())?;
                    }
                }
            },
        }
    }
    let Delta {
        mut added,
        mut removed,
    } = net.delta.into_delta();
    // A stable order, so the change log reads the same for the same update.
    added.sort_by_cached_key(ToString::to_string);
    removed.sort_by_cached_key(ToString::to_string);
    Ok(Delta { added, removed })
}

/// Clew's own graphs share this prefix (see `iri.rs`).
const CLEW_GRAPHS: &str = "https://clew.dev/graph/";

fn no_graph(n: &NamedNode) -> SparqlError {
    SparqlError::Evaluation(format!(
        "graph {n} does not exist (use SILENT to ignore this)"
    ))
}

/// The dataset given by the protocol's `using-graph-uri` / `using-named-graph-uri` parameters.
fn protocol_dataset(options: &SparqlOptions) -> Option<QueryDataset> {
    if options.default_graph_uris.is_empty() && options.named_graph_uris.is_empty() {
        return None;
    }
    let nodes = |v: &[String]| {
        v.iter()
            .map(|s| NamedNode::new_unchecked(s.clone()))
            .collect::<Vec<_>>()
    };
    Some(QueryDataset {
        default: nodes(&options.default_graph_uris),
        named: (!options.named_graph_uris.is_empty()).then(|| nodes(&options.named_graph_uris)),
    })
}

#[allow(clippy::too_many_arguments)]
fn delete_insert(
    net: &mut Net<'_, '_>,
    delete: &[GroundQuadPattern],
    insert: &[QuadPattern],
    using: Option<QueryDataset>,
    pattern: &GraphPattern,
    update: &Update,
    options: &SparqlOptions,
    deadline: Instant,
) -> Result<(), SparqlError> {
    let mut variables: Vec<Variable> = Vec::new();
    let mut add_var = |v: &Variable| {
        if !variables.contains(v) {
            variables.push(v.clone());
        }
    };
    for q in delete {
        ground_pattern_vars(&q.subject, &mut add_var);
        ground_pattern_vars(&q.object, &mut add_var);
        named_pattern_vars(&q.predicate, &mut add_var);
        graph_pattern_vars(&q.graph_name, &mut add_var);
    }
    for q in insert {
        term_pattern_vars(&q.subject, &mut add_var);
        term_pattern_vars(&q.object, &mut add_var);
        named_pattern_vars(&q.predicate, &mut add_var);
        graph_pattern_vars(&q.graph_name, &mut add_var);
    }
    let query = Query::Select {
        dataset: using,
        pattern: GraphPattern::Project {
            inner: Box::new(pattern.clone()),
            variables: variables.clone(),
        },
        base_iri: update.base_iri.clone(),
    };
    let mut solutions: Vec<Vec<Option<Term>>> = Vec::new();
    {
        let results = SparqlEvaluator::new()
            .with_cancellation_token(options.cancel.clone())
            .for_query(query)
            .on_transaction(net.tx)
            .execute()?;
        let QueryResults::Solutions(iter) = results else {
            return Err(SparqlError::Internal(
                "the WHERE of an update did not evaluate to solutions".into(),
            ));
        };
        let order: Vec<usize> = variables
            .iter()
            .map(|v| {
                iter.variables()
                    .iter()
                    .position(|w| w == v)
                    .unwrap_or(usize::MAX)
            })
            .collect();
        for s in iter {
            if Instant::now() > deadline {
                return Err(options.timed_out());
            }
            let s = s.map_err(|e| match SparqlError::from(e) {
                SparqlError::Timeout(_) => options.timed_out(),
                other => other,
            })?;
            let values = s.values();
            solutions.push(
                order
                    .iter()
                    .map(|i| values.get(*i).cloned().flatten())
                    .collect(),
            );
            if solutions.len() > options.max_update_quads {
                return Err(SparqlError::UpdateTooLarge(options.max_update_quads));
            }
        }
    }
    let bind = |row: &[Option<Term>], v: &Variable| -> Option<Term> {
        variables
            .iter()
            .position(|w| w == v)
            .and_then(|i| row.get(i).cloned().flatten())
    };
    let mut deletes = Vec::new();
    let mut inserts = Vec::new();
    for row in &solutions {
        for q in delete {
            if let Some(q) = instantiate_delete(q, row, &bind) {
                deletes.push(q);
            }
        }
        let mut bnodes = HashMap::new();
        for q in insert {
            if let Some(q) = instantiate_insert(q, row, &bind, &mut bnodes) {
                inserts.push(q);
            }
        }
    }
    for q in deletes {
        net.remove(q)?;
    }
    for q in inserts {
        net.insert(q)?;
    }
    Ok(())
}

type Bind<'b> = dyn Fn(&[Option<Term>], &Variable) -> Option<Term> + 'b;

fn subject_of(t: Term) -> Option<NamedOrBlankNode> {
    match t {
        Term::NamedNode(n) => Some(n.into()),
        Term::BlankNode(b) => Some(b.into()),
        _ => None,
    }
}

fn graph_of(g: &GraphNamePattern, row: &[Option<Term>], bind: &Bind<'_>) -> Option<GraphName> {
    Some(match g {
        GraphNamePattern::NamedNode(n) => GraphName::NamedNode(n.clone()),
        GraphNamePattern::DefaultGraph => GraphName::DefaultGraph,
        GraphNamePattern::Variable(v) => match bind(row, v)? {
            Term::NamedNode(n) => GraphName::NamedNode(n),
            _ => return None,
        },
    })
}

fn predicate_of(p: &NamedNodePattern, row: &[Option<Term>], bind: &Bind<'_>) -> Option<NamedNode> {
    match p {
        NamedNodePattern::NamedNode(n) => Some(n.clone()),
        NamedNodePattern::Variable(v) => match bind(row, v)? {
            Term::NamedNode(n) => Some(n),
            _ => None,
        },
    }
}

fn ground_term_of(t: &GroundTermPattern, row: &[Option<Term>], bind: &Bind<'_>) -> Option<Term> {
    match t {
        GroundTermPattern::NamedNode(n) => Some(n.clone().into()),
        GroundTermPattern::Literal(l) => Some(l.clone().into()),
        GroundTermPattern::Variable(v) => bind(row, v),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn instantiate_delete(
    q: &GroundQuadPattern,
    row: &[Option<Term>],
    bind: &Bind<'_>,
) -> Option<Quad> {
    Some(Quad::new(
        subject_of(ground_term_of(&q.subject, row, bind)?)?,
        predicate_of(&q.predicate, row, bind)?,
        ground_term_of(&q.object, row, bind)?,
        graph_of(&q.graph_name, row, bind)?,
    ))
}

fn instantiate_insert(
    q: &QuadPattern,
    row: &[Option<Term>],
    bind: &Bind<'_>,
    bnodes: &mut HashMap<BlankNode, BlankNode>,
) -> Option<Quad> {
    let mut term = |t: &TermPattern| -> Option<Term> {
        match t {
            TermPattern::NamedNode(n) => Some(n.clone().into()),
            TermPattern::Literal(l) => Some(l.clone().into()),
            TermPattern::BlankNode(b) => Some(bnodes.entry(b.clone()).or_default().clone().into()),
            TermPattern::Variable(v) => bind(row, v),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    };
    let subject = subject_of(term(&q.subject)?)?;
    let object = term(&q.object)?;
    Some(Quad::new(
        subject,
        predicate_of(&q.predicate, row, bind)?,
        object,
        graph_of(&q.graph_name, row, bind)?,
    ))
}

fn ground_data_quad(q: &SQuad, bnodes: &mut HashMap<BlankNode, BlankNode>) -> Quad {
    let subject = match &q.subject {
        NamedOrBlankNode::BlankNode(b) => {
            NamedOrBlankNode::BlankNode(bnodes.entry(b.clone()).or_default().clone())
        }
        other => other.clone(),
    };
    let object = match &q.object {
        Term::BlankNode(b) => Term::BlankNode(bnodes.entry(b.clone()).or_default().clone()),
        other => other.clone(),
    };
    Quad::new(
        subject,
        q.predicate.clone(),
        object,
        graph_name(&q.graph_name),
    )
}

fn ground_quad(q: &GroundQuad) -> Option<Quad> {
    let object: Term = match &q.object {
        GroundTerm::NamedNode(n) => n.clone().into(),
        GroundTerm::Literal(l) => Literal::clone(l).into(),
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(Quad::new(
        q.subject.clone(),
        q.predicate.clone(),
        object,
        graph_name(&q.graph_name),
    ))
}

fn graph_name(g: &SGraphName) -> GraphName {
    match g {
        SGraphName::NamedNode(n) => GraphName::NamedNode(n.clone()),
        SGraphName::DefaultGraph => GraphName::DefaultGraph,
    }
}

fn ground_pattern_vars(t: &GroundTermPattern, add: &mut impl FnMut(&Variable)) {
    if let GroundTermPattern::Variable(v) = t {
        add(v);
    }
}

fn term_pattern_vars(t: &TermPattern, add: &mut impl FnMut(&Variable)) {
    if let TermPattern::Variable(v) = t {
        add(v);
    }
}

fn named_pattern_vars(t: &NamedNodePattern, add: &mut impl FnMut(&Variable)) {
    if let NamedNodePattern::Variable(v) = t {
        add(v);
    }
}

fn graph_pattern_vars(t: &GraphNamePattern, add: &mut impl FnMut(&Variable)) {
    if let GraphNamePattern::Variable(v) = t {
        add(v);
    }
}
