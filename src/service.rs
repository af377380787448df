//! Transport-free operations over a store: the single writer (models, tuple writes and
//! deletes, imports), and reads against the current published state.
//!
//! Invariant: `state` always holds the index and model of the store's latest committed
//! revision. A write takes the writer lock, validates, commits to the store (which logs the
//! revision), applies the same changes to the index and publishes the new state before it is
//! acknowledged; readers load the state with one atomic pointer read and never lock.

pub mod bulk;
mod import;
mod sparql;
mod write;
pub use import::{
    ExportFormat, ImportOutcome, RdfImport, TupleFormat, format_tuples, parse_tuples,
};
pub use sparql::SparqlUpdated;
pub use write::Precondition;
pub mod cache;

use crate::engine::{self, CheckRequest, CheckResult, EngineError, View};
use crate::index::groups::{GroupIndex, GroupSpec};
use crate::index::{Change, Snapshot, TupleChange};
use crate::iri::TUPLES_GRAPH;
use crate::model::typesystem::{CompileError, TupleRuleError, TypeSystem};
use crate::model::{RestrictionKind, Rewrite};
use crate::store::{Store, StoreError, Vocabulary};
use crate::tuple::{ObjectRef, Tuple, TupleKey, User};
use arc_swap::ArcSwap;
use cache::{NodeWrites, ReachCache};
use std::collections::{HashSet, VecDeque};

type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

thread_local! {
    static WRITE_DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with a deadline for the writes it makes on this thread: a write that has not taken
/// the single writer by then is refused with [`ServiceError::WriteDeadline`] and writes
/// nothing; a write that has, runs to completion (so a caller is never told a write failed
/// that then commits).
pub fn with_write_deadline<T>(deadline: Option<Instant>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            WRITE_DEADLINE.set(self.0);
        }
    }
    let _restore = Restore(WRITE_DEADLINE.replace(deadline));
    f()
}

/// Revisions kept readable after newer ones are published, so that a paged answer's cursor can
/// be followed at the revision it was computed at.
pub const DEFAULT_HISTORY: usize = 256;

/// Default budget of the reachability cache, in bytes of bitmaps.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Most tuples in one write (OpenFGA's default is 100; bulk loads use [`Clew::write_tuples_bulk`]).
pub const MAX_TUPLES_PER_WRITE: usize = 100;

/// Writes of at least this many tuples first ask whether the tuple graph is empty, which spares
/// them a lookup per tuple (found 24 % of a bulk load's profile).
const EMPTY_CHECK_MIN_WRITES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no authorization model has been written to this store")]
    NoModel,
    #[error("{0}")]
    Model(#[from] CompileError),
    #[error("{0}")]
    TupleRule(#[from] TupleRuleError),
    #[error("tuple {0} already exists")]
    AlreadyExists(String),
    #[error("tuple {0} does not exist")]
    NotFound(String),
    #[error("tuple {0} appears twice in one write")]
    Duplicate(String),
    #[error("a write holds {0} tuples; the limit is {1}")]
    TooMany(usize, usize),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the writer lock was poisoned by a panic in another writer")]
    Poisoned,
    #[error(
        "the write waited for the single writer past its time limit and was not started: nothing was written"
    )]
    WriteDeadline,
    #[error("{0}")]
    Request(#[from] bulk::RequestError),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("a write must add or delete at least one tuple")]
    EmptyWrite,
    #[error("{0}")]
    Sparql(#[from] crate::sparql::SparqlError),
    #[error("{0}")]
    Import(#[from] crate::store::ImportError),
}

impl ServiceError {
    /// Whether the caller is at fault (a 4xx), as opposed to the service (a 5xx).
    pub fn is_user_error(&self) -> bool {
        match self {
            ServiceError::Store(_) | ServiceError::Poisoned | ServiceError::WriteDeadline => false,
            ServiceError::Sparql(e) => e.is_user_error(),
            ServiceError::Import(e) => e.is_user_error(),
            _ => true,
        }
    }
}

/// The relations that get a nested-group closure: a rewrite that is only the direct
/// assignment, without conditions, whose only userset restriction is the relation itself
/// (`define member: [user, group#member]`).
pub fn group_specs(model: &TypeSystem) -> Vec<(usize, GroupSpec)> {
    let mut out = Vec::new();
    for t in &model.model.types {
        for r in &t.relations {
            if r.rewrite != Rewrite::This
                || r.directly_related.iter().any(|d| d.condition.is_some())
            {
                continue;
            }
            let mut recursive = false;
            let mut other_usersets = false;
            let mut spec = GroupSpec {
                object_type: t.name.clone(),
                relation: r.name.clone(),
                direct_types: Vec::new(),
                wildcard_types: Vec::new(),
            };
            for d in &r.directly_related {
                match &d.kind {
                    RestrictionKind::Direct => spec.direct_types.push(d.type_name.clone()),
                    RestrictionKind::Wildcard => spec.wildcard_types.push(d.type_name.clone()),
                    RestrictionKind::Userset(s) if d.type_name == t.name && *s == r.name => {
                        recursive = true;
                    }
                    RestrictionKind::Userset(_) => other_usersets = true,
                }
            }
            if recursive
                && !other_usersets
                && let Some(n) = model.plan().node_id(&t.name, &r.name)
            {
                out.push((n, spec));
            }
        }
    }
    out
}

/// What a write of quads (a SPARQL update, an import) did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// The revision that holds the write, or the current one when it changed nothing.
    pub revision: u64,
    /// Whether it changed anything (a write that changes nothing makes no revision).
    pub changed: bool,
    /// Quads added and removed.
    pub quads_added: usize,
    pub quads_removed: usize,
    /// Relationship tuples whose stored form it changed.
    pub tuples_changed: usize,
}

/// What readers see: one revision's index and model.
pub struct State {
    pub revision: u64,
    pub model: Option<Arc<TypeSystem>>,
    pub index: Arc<Snapshot>,
    /// Per-node validity memo for cached results at this revision.
    node_writes: NodeWrites,
    /// Leopard-style closures of nested groups at this revision.
    pub groups: Arc<GroupIndex>,
    /// The graph's bindings and axioms at this revision.
    pub vocab: Arc<Vocabulary>,
    /// The model resolved against this index and these closures, on the first read.
    resolved: std::sync::OnceLock<engine::Resolved>,
}

impl State {
    fn new(
        revision: u64,
        model: Option<Arc<TypeSystem>>,
        index: Arc<Snapshot>,
        groups: Arc<GroupIndex>,
        vocab: Arc<Vocabulary>,
    ) -> Self {
        let node_writes = NodeWrites::new(model.as_deref());
        Self {
            revision,
            model,
            index,
            node_writes,
            groups,
            vocab,
            resolved: std::sync::OnceLock::new(),
        }
    }

    /// The id of the model at this revision (empty when there is none).
    pub fn model_id(&self) -> &str {
        self.model.as_deref().map(|m| m.id.as_str()).unwrap_or("")
    }

    pub fn view(&self) -> Result<View<'_>, ServiceError> {
        let model = self.model.as_deref().ok_or(ServiceError::NoModel)?;
        Ok(View {
            snapshot: &self.index,
            model,
            groups: Some(&self.groups),
            resolved: Some(
                self.resolved
                    .get_or_init(|| engine::Resolved::new(&self.index, model, Some(&self.groups))),
            ),
        })
    }
}

/// A Clew instance: a store, its single writer, and the published state.
pub struct Clew {
    store: Store,
    writer: Mutex<()>,
    state: ArcSwap<State>,
    /// Recently published states, oldest first (for cursors pinned to a revision).
    history: Mutex<VecDeque<Arc<State>>>,
    history_len: usize,
    cache: ReachCache,
    stats: Stats,
    /// Folds the index's delta into a new compact base, off the writer's path.
    compactor: crate::index::compact::Compactor,
}

/// Counters for metrics.
#[derive(Default)]
pub struct Stats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

impl Stats {
    fn hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    fn miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
}

impl Clew {
    /// Opens an on-disk store directory (creating it), restoring model, tuples and revision.
    pub fn open(path: &Path) -> Result<Self, ServiceError> {
        Self::from_store(Store::open(path)?)
    }

    /// A fresh in-memory instance.
    pub fn memory() -> Result<Self, ServiceError> {
        Self::from_store(Store::memory()?)
    }

    fn from_store(store: Store) -> Result<Self, ServiceError> {
        let state = Arc::new(Self::load_state(&store)?);
        Ok(Self {
            store,
            writer: Mutex::new(()),
            state: ArcSwap::new(state.clone()),
            history: Mutex::new(VecDeque::from([state])),
            history_len: DEFAULT_HISTORY,
            cache: ReachCache::new(DEFAULT_CACHE_BYTES),
            stats: Stats::default(),
            compactor: Default::default(),
        })
    }

    /// Takes the single writer. Under a deadline ([`with_write_deadline`]) a write that gets it
    /// too late is refused before it changes anything; once it has it, it runs to completion.
    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>, ServiceError> {
        let guard = self.writer.lock().map_err(|_| ServiceError::Poisoned)?;
        if WRITE_DEADLINE.get().is_some_and(|d| Instant::now() > d) {
            return Err(ServiceError::WriteDeadline);
        }
        Ok(guard)
    }

    /// Publishes a new state: readers see it from the next atomic load on; it joins the
    /// history so cursors can still read it later.
    fn publish(&self, state: State) {
        let state = Arc::new(state);
        self.state.store(state.clone());
        if let Ok(mut h) = self.history.lock() {
            h.push_back(state);
            while h.len() > self.history_len.max(1) {
                h.pop_front();
            }
        }
    }

    /// Folds the published index's delta into a new compact base and publishes it at the same
    /// revision: the same answers, but reads stop probing the delta's persistent maps (a burst
    /// of writes otherwise leaves up to a thirty-second of the base in the delta, and a finished
    /// background compaction is only picked up by the next write); the group closures' member →
    /// groups maps are folded too. For a writer that has gone idle ([`crate::server`] calls it
    /// when the revision has not moved for a while).
    ///
    /// A background compaction the last writes started is waited for and used first, so the
    /// same delta is not compacted twice. What is left is compacted without the writer lock; a
    /// write that lands meanwhile is carried over by [`Snapshot::rebase`], and when the index
    /// moved to another base meanwhile nothing is published. Returns whether it published.
    pub fn compact_idle(&self) -> Result<bool, ServiceError> {
        self.compactor.wait();
        let picked = {
            let _guard = self.lock_writer()?;
            let current = self.state();
            let next = self.compactor.maintain((*current.index).clone());
            let fewer = next.delta_len() < current.index.delta_len();
            if fewer {
                self.republish(&current, Some(Arc::new(next)), None);
            }
            fewer
        };
        let seen = self.state();
        let compacted = match seen.index.delta_len() {
            0 => None,
            _ => Some(seen.index.compact()).filter(|c| c.delta_len() == 0),
        };
        if compacted.is_none() && !seen.groups.has_delta() {
            return Ok(picked);
        }
        let _guard = self.lock_writer()?;
        let current = self.state();
        let index = match &compacted {
            Some(c) => current.index.rebase(&seen.index, c).map(Arc::new),
            None => None,
        };
        let groups = current.groups.has_delta().then(|| current.groups.folded());
        if index.is_none() && groups.is_none() {
            return Ok(picked);
        }
        self.republish(&current, index, groups.map(Arc::new));
        Ok(true)
    }

    /// Publishes `current`'s revision again with a new index and/or group closures that give
    /// the same answers (the caller holds the writer lock).
    fn republish(
        &self,
        current: &State,
        index: Option<Arc<Snapshot>>,
        groups: Option<Arc<GroupIndex>>,
    ) {
        self.publish(State::new(
            current.revision,
            current.model.clone(),
            index.unwrap_or_else(|| current.index.clone()),
            groups.unwrap_or_else(|| current.groups.clone()),
            current.vocab.clone(),
        ));
    }

    /// The published state at `revision`, if it is still retained.
    pub fn state_at(&self, revision: u64) -> Option<Arc<State>> {
        let current = self.state();
        if current.revision == revision {
            return Some(current);
        }
        let h = self.history.lock().ok()?;
        // Revisions that published no state (none do today) resolve to the latest before them.
        h.iter().rev().find(|s| s.revision <= revision).cloned()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Entries in the reachability cache.
    pub fn cache_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Builds the state from the store: its revision, current model and every tuple.
    fn load_state(store: &Store) -> Result<State, ServiceError> {
        let revision = store.revision()?;
        let model = match store.current_model_dsl()? {
            Some(dsl) => Some(Arc::new(TypeSystem::from_dsl(&dsl)?)),
            None => None,
        };
        let vocab = store.vocabulary()?;
        let mut tuples = store.all_tuples()?;
        if let Some(m) = &model {
            // Clew's own triples first: a key stored both ways keeps its own (maybe conditional) form.
            let own: FastSet<TupleKey> = tuples.iter().map(|(t, _)| t.key()).collect();
            tuples.extend(
                store
                    .bound_tuples(&vocab, m)?
                    .into_iter()
                    .filter(|(t, _)| !own.contains(&t.key())),
            );
        }
        let changes: Vec<TupleChange> = tuples
            .into_iter()
            .map(|(tuple, graph)| TupleChange {
                change: Change::Add,
                tuple,
                graph,
            })
            .collect();
        let index = Snapshot::empty(0).apply(revision, &changes, TUPLES_GRAPH);
        let groups = match &model {
            Some(m) => GroupIndex::build(&index, group_specs(m)),
            None => GroupIndex::default(),
        };
        Ok(State::new(
            revision,
            model,
            Arc::new(index),
            Arc::new(groups),
            Arc::new(vocab),
        ))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The current published state (one atomic load; never blocks).
    pub fn state(&self) -> Arc<State> {
        self.state.load_full()
    }

    /// Parses, validates and stores a model; it becomes current. Returns (model id, revision).
    pub fn write_model(&self, dsl: &str) -> Result<(String, u64), ServiceError> {
        let ts = Arc::new(TypeSystem::from_dsl(dsl)?);
        let _guard = self.lock_writer()?;
        let current = self.state.load_full();
        let (add, remove) = self.store.model_quads(&ts, current.revision + 1)?;
        // What the bindings read depends on the model's type restrictions (read before the
        // commit, so that an error changes nothing).
        let changes = self
            .store
            .rederive(&current.vocab, current.model.as_deref(), &ts)?;
        let revision = self.store.commit_quads(&add, &remove, "model")?;
        let id = ts.id.clone();
        let index = current.index.apply(revision, &changes, TUPLES_GRAPH);
        let groups = GroupIndex::build(&index, group_specs(&ts));
        self.publish(State::new(
            revision,
            Some(ts),
            Arc::new(index),
            Arc::new(groups),
            current.vocab.clone(),
        ));
        Ok((id, revision))
    }

    /// Writes and deletes tuples atomically (OpenFGA's Write): every written tuple must be
    /// admitted by the current model and not exist yet; every deleted one must exist.
    /// Nothing is applied unless everything is valid. Returns the new revision.
    pub fn write_tuples(
        &self,
        writes: &[Tuple],
        deletes: &[TupleKey],
        source: &str,
    ) -> Result<u64, ServiceError> {
        let n = writes.len() + deletes.len();
        if n > MAX_TUPLES_PER_WRITE {
            return Err(ServiceError::TooMany(n, MAX_TUPLES_PER_WRITE));
        }
        self.write_tuples_bulk(writes, deletes, source)
    }

    /// [`Clew::write_tuples`] without the per-write size limit (for loading files).
    pub fn write_tuples_bulk(
        &self,
        writes: &[Tuple],
        deletes: &[TupleKey],
        source: &str,
    ) -> Result<u64, ServiceError> {
        let _guard = self.lock_writer()?;
        self.write_locked(writes, deletes, source)
    }

    /// The body of a tuple write; the caller holds the writer lock.
    fn write_locked(
        &self,
        writes: &[Tuple],
        deletes: &[TupleKey],
        source: &str,
    ) -> Result<u64, ServiceError> {
        let current = self.state.load_full();
        let model = current.model.as_deref().ok_or(ServiceError::NoModel)?;
        // foldhash: SipHash of every key was 4.5 % of a bulk load. The set borrows each key's
        // parts (object, relation, user: what TupleKey's equality compares) rather than
        // cloning them into a TupleKey (building and dropping those was a tenth of a load).
        let mut seen: FastSet<(&ObjectRef, &str, &User)> =
            FastSet::with_capacity_and_hasher(writes.len() + deletes.len(), Default::default());
        for t in writes {
            model.validate_tuple(t)?;
            if !seen.insert((&t.object, &t.relation, &t.user)) {
                return Err(ServiceError::Duplicate(t.key().to_string()));
            }
        }
        for k in deletes {
            if !seen.insert((&k.object, &k.relation, &k.user)) {
                return Err(ServiceError::Duplicate(k.to_string()));
            }
        }
        drop(seen);
        let mut changes = Vec::with_capacity(writes.len() + deletes.len());
        let graph: Arc<str> = Arc::from(TUPLES_GRAPH);
        for k in deletes {
            let stored = self
                .store
                .find_tuple(k, TUPLES_GRAPH)?
                .ok_or_else(|| ServiceError::NotFound(k.to_string()))?;
            changes.push(TupleChange {
                change: Change::Remove,
                tuple: stored,
                graph: graph.clone(),
            });
        }
        // A tuple graph without a single quad stores none of the written tuples (a bulk load
        // into a fresh store): one look at the graph answers every lookup. Only for large
        // writes, as that look can walk the graph's removed quads.
        let none_stored =
            writes.len() >= EMPTY_CHECK_MIN_WRITES && self.store.graph_is_empty(TUPLES_GRAPH)?;
        for t in writes {
            if !none_stored && self.store.find_tuple(&t.key(), TUPLES_GRAPH)?.is_some() {
                return Err(ServiceError::AlreadyExists(t.key().to_string()));
            }
            changes.push(TupleChange {
                change: Change::Add,
                tuple: t.clone(),
                graph: graph.clone(),
            });
        }
        self.commit(&current, &changes, source)
    }

    /// Imports tuples as pre-existing graph data into `graph`, without model validation (as
    /// triples left in the graph by an earlier model, or written by a steward). Evaluation
    /// ignores those the current model does not admit.
    pub fn import_tuples(
        &self,
        tuples: &[Tuple],
        graph: &str,
        source: &str,
    ) -> Result<u64, ServiceError> {
        let _guard = self.lock_writer()?;
        let current = self.state.load_full();
        let graph: Arc<str> = Arc::from(graph);
        let changes: Vec<TupleChange> = tuples
            .iter()
            .map(|t| TupleChange {
                change: Change::Add,
                tuple: t.clone(),
                graph: graph.clone(),
            })
            .collect();
        self.commit(&current, &changes, source)
    }

    fn commit(
        &self,
        current: &State,
        changes: &[TupleChange],
        source: &str,
    ) -> Result<u64, ServiceError> {
        // A removed key can still be stored another way (in another graph, or as a triple a
        // binding reads): the index keeps it in that form. Found before the commit, so that an
        // error leaves both the store and the index as they were.
        // Without removals that is `changes` itself (no copy of every tuple).
        let removes = changes.iter().any(|c| c.change == Change::Remove);
        let mut applied = Vec::with_capacity(if removes { changes.len() } else { 0 });
        for c in changes.iter().filter(|_| removes) {
            applied.push(c.clone());
            if c.change == Change::Remove
                && let Some((tuple, graph)) = self.store.stored_elsewhere(
                    &current.vocab,
                    current.model.as_deref(),
                    &c.tuple.key(),
                    &c.graph,
                )?
            {
                applied.push(TupleChange {
                    change: Change::Add,
                    tuple,
                    graph,
                });
            }
        }
        let revision = self.store.commit(changes, source)?;
        let applied = if removes { &applied[..] } else { changes };
        self.advance(current, revision, applied, None);
        Ok(revision)
    }

    /// Publishes what a store write committed (a SPARQL update, an import) and says what it
    /// did; a write that changed nothing leaves the state as it is.
    fn publish_committed(&self, current: &State, out: &crate::store::Committed) -> Applied {
        let Some(revision) = out.revision else {
            return Applied {
                revision: current.revision,
                changed: false,
                quads_added: 0,
                quads_removed: 0,
                tuples_changed: 0,
            };
        };
        self.advance(current, revision, &out.changes, out.vocabulary.clone());
        Applied {
            revision,
            changed: true,
            quads_added: out.added,
            quads_removed: out.removed,
            tuples_changed: out.tuples_touched,
        }
    }

    /// Publishes the state after `revision`, which the store has committed: the current index
    /// with `changes` applied, and the group closures updated to match.
    fn advance(
        &self,
        current: &State,
        revision: u64,
        changes: &[TupleChange],
        vocab: Option<Vocabulary>,
    ) {
        let index = self
            .compactor
            .maintain(current.index.apply(revision, changes, TUPLES_GRAPH));
        let groups = current.groups.update(&index, changes);
        #[cfg(debug_assertions)]
        if let Err(e) = index.validate() {
            tracing::error!("index invariant violated after revision {revision}: {e}");
        }
        self.publish(State::new(
            revision,
            current.model.clone(),
            Arc::new(index),
            Arc::new(groups),
            vocab.map(Arc::new).unwrap_or_else(|| current.vocab.clone()),
        ));
    }

    /// A check against the current state; returns the result and the revision it was made at.
    /// A valid cached result bitmap for the subject answers it by one membership test;
    /// otherwise (and whenever an explanation is asked for) it is evaluated top-down.
    pub fn check(&self, request: &CheckRequest<'_>) -> Result<(CheckResult, u64), ServiceError> {
        let state = self.state();
        let result = self.check_in(&state, request)?;
        Ok((result, state.revision))
    }

    /// A check against a given state.
    pub fn check_in(
        &self,
        state: &State,
        request: &CheckRequest<'_>,
    ) -> Result<CheckResult, ServiceError> {
        let view = state.view()?;
        if !request.explain
            && request.contextual.is_empty()
            && let Some(hit) = self.cached(
                state,
                request.user,
                request.relation,
                &request.object.object_type,
                request.context,
                request.max_depth,
            )
        {
            engine::validate_request(
                view.model,
                request.user,
                request.relation,
                &request.object.object_type,
            )?;
            let allowed = state
                .index
                .object(&request.object.to_string())
                .is_some_and(|o| hit.contains(o));
            return Ok(CheckResult {
                decision: if allowed {
                    engine::Decision::Allowed
                } else {
                    engine::Decision::Denied
                },
                explanation: None,
                deny_trace: None,
                visited: 0,
                cycle: false,
                cache_hit: true,
            });
        }
        let mut result = engine::check(view, request)?;
        if let Some(e) = &mut result.explanation {
            self.annotate(state, e)?;
        }
        Ok(result)
    }

    /// Shows each stored tuple of an explanation as it is stored: a tuple read through a
    /// binding gets the triple it was read from (original predicate and direction), the binding
    /// and the axioms relied on. Tuples stored as Clew's own triples keep theirs.
    pub fn annotate(&self, state: &State, e: &mut engine::Explanation) -> Result<(), ServiceError> {
        let Some(model) = state.model.as_deref() else {
            return Ok(());
        };
        if state.vocab.is_empty() {
            return Ok(());
        }
        for step in &mut e.path {
            let (Some(text), Some(_)) = (&step.tuple, &step.triple) else {
                continue;
            };
            let Some(key) = parse_key(text) else {
                continue;
            };
            if self.store.own_tuple(&key)?.is_some() {
                continue;
            }
            let Some(s) = self
                .store
                .supports(&state.vocab, model, &key)?
                .into_iter()
                .next()
            else {
                continue;
            };
            step.triple = s.triples.first().cloned();
            if s.triples.len() > 1 {
                step.chain = s.triples;
            }
            step.binding = Some(s.binding);
            step.axioms = s.axioms;
        }
        Ok(())
    }
}

/// A tuple key from its shorthand `object#relation@user` (the object has no `#`, the relation
/// no `@`).
fn parse_key(text: &str) -> Option<TupleKey> {
    let (object, rest) = text.split_once('#')?;
    let (relation, user) = rest.split_once('@')?;
    Tuple::parse(user, relation, object).ok().map(|t| t.key())
}
