//! Bulk operations over the published state: `lookup` (complete, paged, with cursors pinned to
//! a revision), `filter` (the permitted subset of candidates, with a planner choosing between
//! bitmap evaluation and per-candidate checks) and `batch_check` (many checks at one revision,
//! duplicates answered once). Each reuses the reachability cache ([`super::cache`]).
//!
//! Invariant: every answer is complete or says it is not — a page that stops early carries
//! `truncated: true` and a cursor; a cursor is only ever followed at the revision and for the
//! request it was issued for.

use super::cache::{CachedReach, ReachKey, canonical_json, last_relevant_write};
use super::{Clew, ServiceError, State};
use crate::engine::{
    self, BulkStats, CheckRequest, CheckResult, Decision, EngineError, Explanation, Lookup,
    LookupRequest, Strategy,
};
use crate::index::Obj;
use crate::tuple::{ObjectRef, Tuple, User};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

use std::sync::Arc;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// Most candidates one `filter` call may carry.
pub const MAX_FILTER_CANDIDATES: usize = 10_000;
/// Most checks one `batch_check` call may carry.
pub const MAX_BATCH_CHECKS: usize = 10_000;
/// Largest page a `lookup` returns.
pub const MAX_PAGE_SIZE: usize = 100_000;

/// Estimated cost of one top-down check and of evaluating one node bottom-up (nanoseconds,
/// measured on the bench workload; see benches/README.md). The planner compares
/// `candidates × CHECK_NS` with `closure nodes × NODE_NS`.
pub const CHECK_NS: u64 = 8_000;
pub const NODE_NS: u64 = 60_000;

/// A request that is malformed or cannot be honoured (a 4xx).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("{given} candidates given; the limit is {limit}")]
    TooManyCandidates { given: usize, limit: usize },
    #[error("{given} checks in one batch; the limit is {limit}")]
    TooManyChecks { given: usize, limit: usize },
    #[error("candidate {index} '{candidate}': {why}")]
    BadCandidate {
        index: usize,
        candidate: String,
        why: String,
    },
    #[error("page size {given} is out of range (1..={limit})")]
    BadPageSize { given: usize, limit: usize },
    #[error("malformed cursor: {0}")]
    MalformedCursor(String),
    #[error("the cursor belongs to a different request")]
    CursorMismatch,
    #[error(
        "the cursor was issued at revision {cursor}, which is no longer retained (oldest: {oldest}); restart the lookup"
    )]
    CursorExpired { cursor: u64, oldest: u64 },
    #[error(
        "the cursor was issued at revision {cursor}, but the request asks for at least revision {requested}"
    )]
    CursorRevision { cursor: u64, requested: u64 },
    #[error("revision {requested} is newer than the latest revision {latest}")]
    FutureRevision { requested: u64, latest: u64 },
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// The latest published revision (every acknowledged write is visible).
    #[default]
    Latest,
    /// At least this revision (Zanzibar's zookie): the latest state, provided it includes it.
    AtLeast(u64),
}

impl Clew {
    /// The state a read runs at.
    pub fn read_state(&self, consistency: Consistency) -> Result<Arc<State>, ServiceError> {
        let state = self.state();
        if let Consistency::AtLeast(r) = consistency
            && r > state.revision
        {
            return Err(RequestError::FutureRevision {
                requested: r,
                latest: state.revision,
            }
            .into());
        }
        Ok(state)
    }

    /// A cached result for (subject, relation, type, context), if one is valid at `state`.
    pub fn cached(
        &self,
        state: &State,
        subject: &User,
        relation: &str,
        object_type: &str,
        context: &Map<String, Value>,
        max_depth: u32,
    ) -> Option<Arc<CachedReach>> {
        if !self.cache.may_hold(subject) {
            self.stats.miss();
            return None;
        }
        let model = state.model.as_deref()?;
        let node = model.plan().node_id(object_type, relation)?;
        let key = ReachKey::new(&model.id, subject, relation, object_type, context);
        let Some(entry) = self.cache.get(&key) else {
            self.stats.miss();
            return None;
        };
        let valid = entry.depth_bound < max_depth
            && entry.valid_at(state.revision, || {
                last_relevant_write(model, &state.index, &state.node_writes, node, subject)
            });
        if valid {
            self.stats.hit();
            Some(entry)
        } else {
            self.stats.miss();
            None
        }
    }

    /// Bottom-up evaluation at `state`, through the cache: returns the lookup and whether it
    /// came from the cache. Results are cached when they are plain (see `cache`'s module doc).
    pub fn reach_in(
        &self,
        state: &State,
        request: &LookupRequest<'_>,
    ) -> Result<(Lookup, bool), ServiceError> {
        let view = state.view()?;
        engine::validate_request(
            view.model,
            request.user,
            request.relation,
            request.object_type,
        )?;
        if request.contextual.is_empty()
            && let Some(hit) = self.cached(
                state,
                request.user,
                request.relation,
                request.object_type,
                request.context,
                request.max_depth,
            )
        {
            return Ok((
                Lookup {
                    allowed: hit.allowed.clone(),
                    conditional: Vec::new(),
                    overlay: None,
                    stats: BulkStats {
                        strategy: Strategy::CachedBitmap,
                        depth_bound: hit.depth_bound,
                        node_evaluations: 0,
                        rounds: 0,
                        condition_evaluations: 0,
                        checks: 0,
                    },
                },
                true,
            ));
        }
        let lookup = engine::lookup(view, request)?;
        let cacheable = request.contextual.is_empty()
            && lookup.overlay.is_none()
            && lookup.conditional.is_empty()
            && lookup.stats.strategy == Strategy::Bitmap
            && lookup.stats.checks == 0;
        if cacheable
            && let Some(node) = view
                .model
                .plan()
                .node_id(request.object_type, request.relation)
        {
            let valid_from = last_relevant_write(
                view.model,
                &state.index,
                &state.node_writes,
                node,
                request.user,
            );
            self.cache.insert(
                ReachKey::new(
                    &view.model.id,
                    request.user,
                    request.relation,
                    request.object_type,
                    request.context,
                ),
                Arc::new(CachedReach::new(
                    lookup.allowed.clone(),
                    state.revision,
                    valid_from,
                    lookup.stats.depth_bound,
                )),
            );
        }
        Ok((lookup, false))
    }

    /// `lookup`: every object of a type the user has the relation on, in pages.
    ///
    /// Without a limit the whole answer comes in one page. With one, at most `limit` objects
    /// come back with `truncated: true` and a cursor when more remain; the cursor pins the
    /// revision, so following it pages through the same answer even if writes land meanwhile.
    pub fn lookup(
        &self,
        request: &LookupRequest<'_>,
        page: &PageRequest,
        consistency: Consistency,
    ) -> Result<LookupPage, ServiceError> {
        if let Some(limit) = page.limit
            && (limit == 0 || limit > MAX_PAGE_SIZE)
        {
            return Err(RequestError::BadPageSize {
                given: limit,
                limit: MAX_PAGE_SIZE,
            }
            .into());
        }
        let fingerprint = fingerprint(request);
        let (state, after) = match &page.cursor {
            None => (self.read_state(consistency)?, None),
            Some(text) => {
                let c = Cursor::decode(text)?;
                if c.fingerprint != fingerprint {
                    return Err(RequestError::CursorMismatch.into());
                }
                if let Consistency::AtLeast(r) = consistency
                    && r > c.revision
                {
                    return Err(RequestError::CursorRevision {
                        cursor: c.revision,
                        requested: r,
                    }
                    .into());
                }
                let state = self
                    .state_at(c.revision)
                    .filter(|s| s.revision == c.revision);
                let Some(state) = state else {
                    let oldest = self
                        .history
                        .lock()
                        .ok()
                        .and_then(|h| h.front().map(|s| s.revision))
                        .unwrap_or(0);
                    return Err(RequestError::CursorExpired {
                        cursor: c.revision,
                        oldest,
                    }
                    .into());
                };
                (state, Some(c.after))
            }
        };
        let (lookup, cache_hit) = self.reach_in(&state, request)?;
        let shared = lookup
            .overlay
            .clone()
            .unwrap_or_else(|| state.index.clone());
        let snap = &*shared;
        let total = lookup.allowed.len();
        let start = after.map(|a| a.saturating_add(1)).unwrap_or(0);
        let skip = if start == 0 {
            0
        } else {
            lookup.allowed.rank(start - 1)
        };
        let remaining = total.saturating_sub(skip);
        let take = page
            .limit
            .map(|l| (l as u64).min(remaining))
            .unwrap_or(remaining);
        let truncated = take < remaining;
        let ids: Vec<Obj> = lookup
            .allowed
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(usize::try_from(take).unwrap_or(usize::MAX))
            .collect();
        let last = ids.last().copied();
        let objects = ObjectNames {
            snapshot: shared.clone(),
            ids,
        };
        let cursor = match (truncated, last) {
            (true, Some(l)) => Some(
                Cursor {
                    revision: state.revision,
                    fingerprint,
                    after: l,
                }
                .encode(),
            ),
            _ => None,
        };
        let conditional = if after.is_none() {
            lookup
                .conditional
                .iter()
                .filter_map(|(o, m)| {
                    ObjectRef::parse(snap.object_str(*o))
                        .ok()
                        .map(|o| (o, m.clone()))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(LookupPage {
            objects,
            conditional,
            truncated,
            cursor,
            total,
            revision: state.revision,
            model_id: state.model_id().to_string(),
            stats: lookup.stats,
            cache_hit,
        })
    }

    /// `filter`: the permitted subset of `candidates` (objects of one type), in their order.
    ///
    /// The planner answers from a cached result bitmap when one is valid; otherwise it compares
    /// the cost of one top-down check per known candidate with the cost of evaluating the
    /// subject's bitmap (which is then cached for the next request), and reports its choice.
    pub fn filter<'c>(
        &self,
        request: &FilterRequest<'_, 'c>,
        consistency: Consistency,
    ) -> Result<FilterResult<'c>, ServiceError> {
        if request.candidates.len() > MAX_FILTER_CANDIDATES {
            return Err(RequestError::TooManyCandidates {
                given: request.candidates.len(),
                limit: MAX_FILTER_CANDIDATES,
            }
            .into());
        }
        let state = self.read_state(consistency)?;
        let view = state.view()?;
        engine::validate_request(
            view.model,
            request.user,
            request.relation,
            request.object_type,
        )?;
        engine::validate_contextual(view.model, request.contextual)?;
        for (index, c) in request.candidates.iter().enumerate() {
            if plain_candidate(c, request.object_type) {
                continue;
            }
            let (t, _) = ObjectRef::validate(c).map_err(|e| RequestError::BadCandidate {
                index,
                candidate: c.clone(),
                why: e.to_string(),
            })?;
            if t != request.object_type {
                return Err(RequestError::BadCandidate {
                    index,
                    candidate: c.clone(),
                    why: format!("not of type '{}'", request.object_type),
                }
                .into());
            }
        }
        // A candidate can only be permitted if the evaluation knows it: the store has seen it,
        // a contextual tuple names it, or it is a userset subject's own object.
        let self_object = match request.user {
            User::Userset(o, _) => Some(o.to_string()),
            _ => None,
        };
        // Every candidate's id, probed once, in batches whose cache misses overlap.
        let mut ids: Vec<Option<Obj>> = Vec::new();
        state.index.objects_many(request.candidates, &mut ids);
        let known = |c: &str, id: Option<Obj>| {
            id.is_some()
                || self_object.as_deref() == Some(c)
                || request.contextual.iter().any(|t| {
                    t.object.object_type == request.object_type && t.object.to_string() == c
                })
        };
        let cached = if request.contextual.is_empty() {
            self.cached(
                &state,
                request.user,
                request.relation,
                request.object_type,
                request.context,
                request.max_depth,
            )
        } else {
            None
        };
        let (strategy, reason) = match (request.strategy, &cached) {
            (Some(s), _) => (s, "requested".to_string()),
            (None, Some(_)) => (
                Strategy::CachedBitmap,
                "a result bitmap for this subject is cached and valid".into(),
            ),
            (None, None) => {
                let known_count = request
                    .candidates
                    .iter()
                    .zip(&ids)
                    .filter(|(c, id)| known(c, **id))
                    .count() as u64;
                let components = view
                    .model
                    .plan()
                    .node_id(request.object_type, request.relation)
                    .and_then(|n| view.model.plan().needs(n))
                    .map(|n| n.len() as u64)
                    .unwrap_or(1);
                let (checks, bitmap) = (known_count * CHECK_NS, components * NODE_NS);
                if checks <= bitmap {
                    (
                        Strategy::Checks,
                        format!(
                            "{known_count} known candidates × {CHECK_NS} ns ≤ {components} components × {NODE_NS} ns"
                        ),
                    )
                } else {
                    (
                        Strategy::Bitmap,
                        format!(
                            "{known_count} known candidates × {CHECK_NS} ns > {components} components × {NODE_NS} ns"
                        ),
                    )
                }
            }
        };
        let mut out = FilterResult {
            allowed: Vec::new(),
            conditional: Vec::new(),
            unknown: 0,
            duplicates: 0,
            denied: 0,
            revision: state.revision,
            model_id: state.model_id().to_string(),
            plan: FilterPlan {
                strategy,
                reason,
                stats: None,
            },
            cache_hit: false,
        };
        let mut seen = Seen::with_capacity(request.candidates.len());
        let record = |out: &mut FilterResult<'c>, c: &'c str, d: Decision| match d {
            Decision::Allowed => out.allowed.push(FilterItem {
                object: c,
                explanation: None,
            }),
            Decision::Denied => out.denied += 1,
            Decision::Conditional { missing } => out.conditional.push((c.to_string(), missing)),
        };
        if strategy == Strategy::Checks {
            for (c, id) in request.candidates.iter().zip(&ids) {
                if !seen.first(c, *id) {
                    out.duplicates += 1;
                    continue;
                }
                if !known(c, *id) {
                    out.unknown += 1;
                    continue;
                }
                let object = ObjectRef::parse(c).map_err(|e| RequestError::BadCandidate {
                    index: 0,
                    candidate: c.clone(),
                    why: e.to_string(),
                })?;
                let r = self.check_in(
                    &state,
                    &CheckRequest {
                        user: request.user,
                        relation: request.relation,
                        object: &object,
                        context: request.context,
                        contextual: request.contextual,
                        explain: false,
                        max_depth: request.max_depth,
                    },
                )?;
                record(&mut out, c, r.decision);
            }
        } else {
            let lookup_request = LookupRequest {
                user: request.user,
                relation: request.relation,
                object_type: request.object_type,
                context: request.context,
                contextual: request.contextual,
                max_depth: request.max_depth,
            };
            let (allowed, conditional, snap_overlay, hit) = match cached {
                Some(entry) if request.strategy.is_none() || strategy == Strategy::CachedBitmap => {
                    (Shared::Cached(entry), HashMap::new(), None, true)
                }
                _ => {
                    let (lookup, hit) = self.reach_in(&state, &lookup_request)?;
                    out.plan.strategy = lookup.stats.strategy;
                    out.plan.stats = Some(lookup.stats.clone());
                    let conditional: HashMap<Obj, Vec<String>> =
                        lookup.conditional.iter().cloned().collect();
                    (
                        Shared::Owned(lookup.allowed),
                        conditional,
                        lookup.overlay,
                        hit,
                    )
                }
            };
            out.cache_hit = hit;
            if let Some(overlay) = snap_overlay.as_deref() {
                // Contextual tuples may name objects the store has never seen.
                overlay.objects_many(request.candidates, &mut ids);
            }
            for (c, id) in request.candidates.iter().zip(ids) {
                if !seen.first(c, id) {
                    out.duplicates += 1;
                    continue;
                }
                let Some(id) = id else {
                    out.unknown += 1;
                    continue;
                };
                let d = if allowed.contains(id) {
                    Decision::Allowed
                } else {
                    match conditional.get(&id) {
                        Some(m) => Decision::Conditional { missing: m.clone() },
                        None => Decision::Denied,
                    }
                };
                record(&mut out, c, d);
            }
        }
        if request.explain {
            for item in &mut out.allowed {
                let object = ObjectRef::parse(item.object)
                    .map_err(|e| ServiceError::Engine(EngineError::InvalidUser(e.to_string())))?;
                let r = engine::check(
                    view,
                    &CheckRequest {
                        user: request.user,
                        relation: request.relation,
                        object: &object,
                        context: request.context,
                        contextual: request.contextual,
                        explain: true,
                        max_depth: request.max_depth,
                    },
                )?;
                item.explanation = r.explanation;
                if let Some(e) = &mut item.explanation {
                    self.annotate(&state, e)?;
                }
            }
        }
        Ok(out)
    }

    /// Many checks at one revision. Identical checks are evaluated once and get the same
    /// answer; checks that share a subject, relation and object type with enough others are
    /// answered from one bitmap evaluation. Each item fails or succeeds on its own.
    pub fn batch_check(
        &self,
        checks: &[CheckRequest<'_>],
        consistency: Consistency,
    ) -> Result<BatchResult, ServiceError> {
        if checks.len() > MAX_BATCH_CHECKS {
            return Err(RequestError::TooManyChecks {
                given: checks.len(),
                limit: MAX_BATCH_CHECKS,
            }
            .into());
        }
        let state = self.read_state(consistency)?;
        state.view()?;
        // Identical requests share one evaluation.
        // foldhash: these keys hold the request's strings, and SipHash showed in profiles.
        let mut first: FastMap<CheckKey, usize> = FastMap::default();
        let mut owner = Vec::with_capacity(checks.len());
        for (i, c) in checks.iter().enumerate() {
            owner.push(*first.entry(CheckKey::of(c)).or_insert(i));
        }
        // Groups large enough to pay for a bitmap evaluation get one.
        let keys: Vec<GroupKey<'_>> = checks.iter().map(GroupKey::of).collect();
        let mut groups: FastMap<&GroupKey<'_>, usize> = FastMap::default();
        for (i, (c, g)) in checks.iter().zip(&keys).enumerate() {
            if owner.get(i) == Some(&i) && c.contextual.is_empty() && !c.explain {
                *groups.entry(g).or_default() += 1;
            }
        }
        let mut bitmaps: FastMap<&GroupKey<'_>, Option<Lookup>> = FastMap::default();
        let mut results: Vec<Option<Result<CheckResult, ServiceError>>> =
            (0..checks.len()).map(|_| None).collect();
        for (i, (c, g)) in checks.iter().zip(&keys).enumerate() {
            let o = owner.get(i).copied().unwrap_or(i);
            if o != i {
                continue;
            }
            // A node's evaluation needs at least its own component, so a group that costs no
            // more in checks than one node's evaluation never gets a bitmap: most checks of a
            // batch skip the plan lookup.
            let cost = groups.get(g).copied().unwrap_or(0) as u64 * CHECK_NS;
            let big = cost > NODE_NS
                && cost
                    > state
                        .model
                        .as_deref()
                        .and_then(|m| {
                            let p = m.plan();
                            p.node_id(&c.object.object_type, c.relation)
                                .and_then(|n| p.needs(n))
                        })
                        .map(|n| n.len() as u64)
                        .unwrap_or(1)
                        * NODE_NS;
            let r = if big && c.contextual.is_empty() && !c.explain {
                let entry = bitmaps.entry(g).or_insert_with(|| {
                    self.reach_in(
                        &state,
                        &LookupRequest {
                            user: c.user,
                            relation: c.relation,
                            object_type: &c.object.object_type,
                            context: c.context,
                            contextual: &[],
                            max_depth: c.max_depth,
                        },
                    )
                    .ok()
                    .map(|(l, _)| l)
                    // Only plain results answer membership; others fall back to checks.
                    .filter(|l| l.overlay.is_none() && l.conditional.is_empty())
                });
                match entry {
                    Some(l) => engine::validate_request(
                        state.view()?.model,
                        c.user,
                        c.relation,
                        &c.object.object_type,
                    )
                    .map_err(ServiceError::from)
                    .map(|()| {
                        let allowed = state
                            .index
                            .object(&c.object.to_string())
                            .is_some_and(|id| l.allowed.contains(id));
                        CheckResult {
                            decision: if allowed {
                                Decision::Allowed
                            } else {
                                Decision::Denied
                            },
                            explanation: None,
                            deny_trace: None,
                            visited: 0,
                            cycle: false,
                            cache_hit: true,
                        }
                    }),
                    None => self.check_in(&state, c),
                }
            } else {
                self.check_in(&state, c)
            };
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(r);
            }
        }
        let mut out = Vec::with_capacity(checks.len());
        for i in 0..checks.len() {
            let o = owner.get(i).copied().unwrap_or(i);
            let r = match results.get(o) {
                Some(Some(Ok(r))) => Ok(r.clone()),
                Some(Some(Err(e))) => Err(e.to_string()),
                _ => Err("internal: missing batch result".to_string()),
            };
            out.push(BatchItem {
                result: r,
                duplicate_of: (o != i).then_some(o),
            });
        }
        Ok(BatchResult {
            items: out,
            revision: state.revision,
            model_id: state.model_id().to_string(),
        })
    }
}

/// A result bitmap, borrowed from the cache or owned.
enum Shared {
    Cached(Arc<CachedReach>),
    Owned(roaring::RoaringBitmap),
}

impl Shared {
    fn contains(&self, o: Obj) -> bool {
        match self {
            Shared::Cached(c) => c.contains(o),
            Shared::Owned(b) => b.contains(o),
        }
    }
}

/// Paging for `lookup`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Most objects to return (none: all).
    pub limit: Option<usize>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// The objects of a page, `type:id`: their ids and the snapshot that resolves them, so a page
/// of 100,000 objects costs no string copies (each is read from the index's string arena when
/// it is written out or iterated).
#[derive(Clone)]
pub struct ObjectNames {
    snapshot: Arc<crate::index::Snapshot>,
    ids: Vec<Obj>,
}

impl ObjectNames {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The objects, in the page's order.
    pub fn iter(&self) -> ObjectNamesIter<'_> {
        ObjectNamesIter {
            snapshot: &self.snapshot,
            ids: self.ids.iter(),
        }
    }
}

/// The iterator of [`ObjectNames::iter`].
pub struct ObjectNamesIter<'a> {
    snapshot: &'a crate::index::Snapshot,
    ids: std::slice::Iter<'a, Obj>,
}

impl<'a> Iterator for ObjectNamesIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.ids.next().map(|o| self.snapshot.object_str(*o))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}

impl ExactSizeIterator for ObjectNamesIter<'_> {}

impl<'a> IntoIterator for &'a ObjectNames {
    type Item = &'a str;
    type IntoIter = ObjectNamesIter<'a>;

    fn into_iter(self) -> ObjectNamesIter<'a> {
        self.iter()
    }
}

impl Serialize for ObjectNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// Equal when they name the same objects in the same order (whatever snapshot resolves them).
impl PartialEq for ObjectNames {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for ObjectNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One page of a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct LookupPage {
    /// Objects `type:id`, in a stable order (the index's).
    pub objects: ObjectNames,
    /// Objects whose answer depends on missing context, with the parameters missing (first
    /// page only).
    #[serde(skip)]
    pub conditional: Vec<(ObjectRef, Vec<String>)>,
    /// More objects remain: follow `cursor`.
    pub truncated: bool,
    pub cursor: Option<String>,
    /// Size of the whole answer.
    pub total: u64,
    pub revision: u64,
    pub model_id: String,
    pub stats: BulkStats,
    pub cache_hit: bool,
}

/// A `filter` request.
#[derive(Clone, Copy)]
pub struct FilterRequest<'a, 'c> {
    pub user: &'a User,
    pub relation: &'a str,
    pub object_type: &'a str,
    /// Objects `type:id`, all of `object_type`.
    pub candidates: &'c [String],
    pub context: &'a Map<String, Value>,
    pub contextual: &'a [Tuple],
    pub max_depth: u32,
    /// Attach an explanation to every permitted item.
    pub explain: bool,
    /// Force a strategy (`None`: the planner chooses).
    pub strategy: Option<Strategy>,
}

/// A permitted candidate.
#[derive(Debug, Clone, Serialize)]
pub struct FilterItem<'c> {
    /// The candidate, as the request gave it (borrowed: a filter allocates nothing per
    /// permitted candidate).
    pub object: &'c str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// What the planner chose, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FilterPlan {
    pub strategy: Strategy,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<BulkStats>,
}

/// The answer to `filter`.
#[derive(Debug, Clone, Serialize)]
pub struct FilterResult<'c> {
    /// Permitted candidates, in the order given (first occurrence).
    pub allowed: Vec<FilterItem<'c>>,
    /// Candidates whose answer depends on missing context: (object, parameters missing).
    pub conditional: Vec<(String, Vec<String>)>,
    /// Candidates the store has never seen (not permitted).
    pub unknown: usize,
    /// Candidates repeated in the list (answered once).
    pub duplicates: usize,
    /// Known candidates that are not permitted.
    pub denied: usize,
    pub revision: u64,
    pub model_id: String,
    pub plan: FilterPlan,
    pub cache_hit: bool,
}

/// One answer of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub result: Result<CheckResult, String>,
    /// When this check repeats an earlier one: that one's index.
    pub duplicate_of: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct BatchResult {
    pub items: Vec<BatchItem>,
    pub revision: u64,
    pub model_id: String,
}

/// Whether a candidate is `object_type:id` with a plain ASCII id that [`ObjectRef::validate`]
/// accepts (the common case, checked without its general parse; anything else goes through
/// it, for its error).
fn plain_candidate(c: &str, object_type: &str) -> bool {
    let Some(id) = c
        .strip_prefix(object_type)
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return false;
    };
    c.len() <= crate::tuple::MAX_OBJECT_LEN
        && !id.is_empty()
        && id != "*"
        && id
            .bytes()
            .all(|b| b.is_ascii() && b != b'#' && !matches!(b, b'\t'..=b'\r' | b' '))
}

/// The candidates a filter has already answered: known ones by id (distinct names have
/// distinct ids), unknown ones by name.
struct Seen<'c> {
    ids: FastSet<Obj>,
    names: FastSet<&'c str>,
}

impl<'c> Seen<'c> {
    fn with_capacity(n: usize) -> Self {
        Self {
            ids: FastSet::with_capacity_and_hasher(n, Default::default()),
            names: FastSet::default(),
        }
    }

    /// Whether this is the first time the candidate `c` (with id `id`, if known) is seen.
    fn first(&mut self, c: &'c str, id: Option<Obj>) -> bool {
        match id {
            Some(id) => self.ids.insert(id),
            None => self.names.insert(c),
        }
    }
}

/// A part of a batch key compared by value but left out of its hash (JSON values and tuple
/// conditions have no hash): equal keys still hash alike, since the rest of the key is hashed.
/// Contexts are JSON objects without NaN, so equality is an equivalence.
#[derive(PartialEq)]
struct Unhashed<T>(T);

impl<T: PartialEq> Eq for Unhashed<T> {}

impl<T> std::hash::Hash for Unhashed<T> {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Checks that one bitmap evaluation can answer together, by reference: nothing is copied or
/// encoded per check (the context last, so cheaper fields decide first).
#[derive(PartialEq, Eq, Hash)]
struct GroupKey<'r> {
    user: &'r User,
    relation: &'r str,
    object_type: &'r str,
    max_depth: u32,
    context: Unhashed<&'r Map<String, Value>>,
}

impl<'r> GroupKey<'r> {
    fn of(c: &CheckRequest<'r>) -> Self {
        Self {
            user: c.user,
            relation: c.relation,
            object_type: &c.object.object_type,
            max_depth: c.max_depth,
            context: Unhashed(c.context),
        }
    }
}

/// Identifies a check request (for de-duplication within a batch): its group, and what else
/// the request says. Equal keys are equal requests.
#[derive(PartialEq, Eq, Hash)]
struct CheckKey<'r> {
    group: GroupKey<'r>,
    object_id: &'r str,
    explain: bool,
    contextual: Unhashed<&'r [Tuple]>,
}

impl<'r> CheckKey<'r> {
    fn of(c: &CheckRequest<'r>) -> Self {
        Self {
            group: GroupKey::of(c),
            object_id: &c.object.id,
            explain: c.explain,
            contextual: Unhashed(c.contextual),
        }
    }
}

fn contextual_text(ts: &[Tuple]) -> String {
    let mut out = String::new();
    for t in ts {
        let c = t
            .condition
            .as_ref()
            .map(|c| format!("{}:{}", c.name, canonical_json(&c.context)))
            .unwrap_or_default();
        // Length-prefixed, so no two lists encode alike.
        for part in [t.to_string(), c] {
            out.push_str(&part.len().to_string());
            out.push(':');
            out.push_str(&part);
        }
    }
    out
}

/// A stable 64-bit fingerprint of everything that determines a lookup's answer.
fn fingerprint(r: &LookupRequest<'_>) -> u64 {
    let mut h = Fnv::default();
    for part in [
        r.user.to_string(),
        r.relation.to_string(),
        r.object_type.to_string(),
        canonical_json(r.context),
        contextual_text(r.contextual),
        r.max_depth.to_string(),
    ] {
        h.write(&(part.len() as u64).to_le_bytes());
        h.write(part.as_bytes());
    }
    h.0
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A lookup cursor: `c1.<revision>.<fingerprint hex>.<last id>.<checksum hex>`.
struct Cursor {
    revision: u64,
    fingerprint: u64,
    after: Obj,
}

impl Cursor {
    fn body(&self) -> String {
        format!(
            "c1.{}.{:016x}.{}",
            self.revision, self.fingerprint, self.after
        )
    }

    fn encode(&self) -> String {
        let body = self.body();
        let mut h = Fnv::default();
        h.write(body.as_bytes());
        format!("{body}.{:08x}", h.0 as u32)
    }

    fn decode(text: &str) -> Result<Cursor, RequestError> {
        let bad = |why: &str| RequestError::MalformedCursor(format!("'{text}': {why}"));
        if text.len() > 128 {
            return Err(bad("too long"));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let [version, revision, fingerprint, after, checksum] = parts.as_slice() else {
            return Err(bad("expected 5 dot-separated fields"));
        };
        if *version != "c1" {
            return Err(bad("unknown version"));
        }
        let c = Cursor {
            revision: revision.parse().map_err(|_| bad("bad revision"))?,
            fingerprint: u64::from_str_radix(fingerprint, 16)
                .map_err(|_| bad("bad fingerprint"))?,
            after: after.parse().map_err(|_| bad("bad position"))?,
        };
        if c.encode().rsplit('.').next() != Some(*checksum) {
            return Err(bad("checksum mismatch"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let c = Cursor {
            revision: 42,
            fingerprint: 0xdead_beef,
            after: 7,
        };
        let text = c.encode();
        let back = Cursor::decode(&text).ok();
        assert!(
            back.is_some_and(|b| b.revision == 42 && b.after == 7 && b.fingerprint == 0xdead_beef)
        );
        let tampered = text.replacen(".7.", ".8.", 1);
        assert!(matches!(
            Cursor::decode(&tampered),
            Err(RequestError::MalformedCursor(_))
        ));
        for bad in ["", "c1", "c2.1.0.0.0", "c1.x.0.0.0", &"c".repeat(200)] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    /// The fast path accepts exactly what the general validation accepts with that type (and
    /// sends everything else to it).
    #[test]
    fn plain_candidates_agree_with_object_validation() {
        let long = format!("doc:{}", "x".repeat(252));
        let longer = format!("doc:{}", "x".repeat(253));
        let cases = [
            "doc:1",
            "doc:a:b",
            "doc:",
            "doc:*",
            "doc:**",
            "doc:a#b",
            "doc:a b",
            "doc:a\tb",
            "doc:a\x0bb",
            "doc:a\rb",
            "doc:é",
            "doc:a\u{a0}b",
            "docs:1",
            "do:1",
            "doc1",
            ":1",
            "user:1",
            "doc::",
            "doc:@",
            &long,
            &longer,
        ];
        for c in cases {
            let general = ObjectRef::validate(c).is_ok_and(|(t, _)| t == "doc");
            if plain_candidate(c, "doc") {
                assert!(general, "fast path accepted {c:?}");
            } else {
                assert!(!general || !c.is_ascii(), "fast path refused {c:?}");
            }
        }
        assert!(plain_candidate(&long, "doc"));
        assert!(!plain_candidate(&longer, "doc"));
    }
}
