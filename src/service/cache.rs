//! The reachability cache: per-(subject, relation, object type, context) result bitmaps, in
//! `moka`, reused across revisions for as long as no write could have changed them.
//!
//! Keys are structs (no string concatenation, so no two requests share a key by accident) and
//! carry the model id; an entry records the revision it was computed at (`computed_at`) and the
//! last revision, at that time, of any write its answer depends on (`valid_from`). Those writes
//! are what the model's rewrite graph says the answer reads ([`crate::model::plan::Read`]):
//! a wildcard or userset tuple on any relation in the closure, any tuple on a relation read as
//! a tupleset, and a tuple naming the subject itself. An entry answers a read at revision `R`
//! iff no such write happened between `R` and `computed_at`, so a single tuple write leaves the
//! entries of other subjects, and of relations it cannot reach, in place.
//!
//! Never cached: errors, results with undecided objects (missing context, cycles), results
//! that needed contextual tuples or an overlay snapshot, and results whose depth bound reached
//! the request's depth limit.

use crate::index::Snapshot;
use crate::model::TypeSystem;
use crate::tuple::User;
use roaring::RoaringBitmap;
use serde_json::{Map, Value};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// What identifies a cached result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReachKey {
    pub model_id: Arc<str>,
    pub subject: User,
    pub relation: String,
    pub object_type: String,
    /// The request context as canonical JSON (keys sorted).
    pub context: String,
}

impl ReachKey {
    pub fn new(
        model_id: &str,
        subject: &User,
        relation: &str,
        object_type: &str,
        context: &Map<String, Value>,
    ) -> Self {
        Self {
            model_id: Arc::from(model_id),
            subject: subject.clone(),
            relation: relation.to_string(),
            object_type: object_type.to_string(),
            context: canonical_json(context),
        }
    }
}

/// JSON with object keys sorted (serde_json's map is ordered by key), so equal contexts give
/// equal text.
pub fn canonical_json(m: &Map<String, Value>) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// A cached answer: every object of the type on which the relation holds (no undecided ones).
#[derive(Debug)]
pub struct CachedReach {
    pub allowed: RoaringBitmap,
    /// The same set as a dense bitset, when that is small (see [`Dense`]).
    dense: Option<Dense>,
    pub computed_at: u64,
    pub valid_from: u64,
    pub depth_bound: u32,
}

/// The most bytes a dense copy of a cached answer may take regardless of the answer's own size
/// (a type's whole id span at scale 1 of the bench workload, 200k documents, is 25 KiB).
const DENSE_MIN_BUDGET: u64 = 64 * 1024;

/// A set of ids as a plain bitset over its span `first..first + 64 × words.len()`. A cached
/// answer is probed once per candidate by filters and by cached checks; in a roaring bitmap a
/// probe of an array container is a binary search of a dozen dependent, unpredictable steps,
/// here it is one load. Built only when it takes at most four times the roaring bitmap's
/// size, or [`DENSE_MIN_BUDGET`].
#[derive(Debug)]
struct Dense {
    first: u32,
    words: Box<[u64]>,
}

impl Dense {
    fn of(b: &RoaringBitmap) -> Option<Dense> {
        let (first, last) = (b.min()?, b.max()?);
        let words = (u64::from(last - first) / 64 + 1) as usize;
        let budget = (b.serialized_size() as u64 * 4).max(DENSE_MIN_BUDGET);
        if words as u64 * 8 > budget {
            return None;
        }
        let mut bits = vec![0u64; words];
        // Internal iteration (the bitmap's `fold`): about twice as fast as `next` per object.
        b.iter().for_each(|o| {
            let i = (o - first) as usize;
            if let Some(w) = bits.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
        });
        Some(Dense {
            first,
            words: bits.into_boxed_slice(),
        })
    }

    fn contains(&self, o: u32) -> bool {
        let Some(i) = o.checked_sub(self.first) else {
            return false;
        };
        let i = i as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| (w >> (i % 64)) & 1 == 1)
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// Per-revision memo of the subject-independent part of validity: for each node, the last
/// revision of a write that can affect every subject's answer there.
pub struct NodeWrites {
    slots: Vec<OnceLock<u64>>,
}

impl NodeWrites {
    pub fn new(model: Option<&TypeSystem>) -> Self {
        let n = model.map(|m| m.plan().len()).unwrap_or(0);
        Self {
            slots: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The last revision, in `snap`, of a write that can change any subject's answer for
    /// `node`.
    pub fn get(&self, model: &TypeSystem, snap: &Snapshot, node: usize) -> u64 {
        let compute = || {
            let mut last = 0;
            for r in model.plan().reads(node) {
                let (Some(t), Some(rel)) = (snap.name(&r.object_type), snap.name(&r.relation))
                else {
                    continue;
                };
                let w = if r.broad {
                    snap.relation_written(t, rel)
                } else {
                    snap.set_written(t, rel)
                };
                last = last.max(w);
            }
            last
        };
        match self.slots.get(node) {
            Some(slot) => *slot.get_or_init(compute),
            None => compute(),
        }
    }
}

/// The last revision, in `snap`, of a write that can change `subject`'s answer for `node`.
pub fn last_relevant_write(
    model: &TypeSystem,
    snap: &Snapshot,
    writes: &NodeWrites,
    node: usize,
    subject: &User,
) -> u64 {
    let mut last = writes.get(model, snap, node);
    if let User::Object(o) = subject
        && let Some(id) = snap.object(&o.to_string())
    {
        last = last.max(snap.subject_written(id));
    }
    last
}

impl CachedReach {
    pub fn new(
        allowed: RoaringBitmap,
        computed_at: u64,
        valid_from: u64,
        depth_bound: u32,
    ) -> Self {
        Self {
            dense: Dense::of(&allowed),
            allowed,
            computed_at,
            valid_from,
            depth_bound,
        }
    }

    /// Whether object `o` is in the answer.
    pub fn contains(&self, o: u32) -> bool {
        match &self.dense {
            Some(d) => d.contains(o),
            None => self.allowed.contains(o),
        }
    }

    /// Bytes held (the bitmap serialized, and its dense copy).
    pub fn bytes(&self) -> usize {
        self.allowed.serialized_size() + self.dense.as_ref().map_or(0, Dense::bytes)
    }

    /// Whether this entry is the answer at `snap`'s revision (see the module doc).
    pub fn valid_at(&self, revision: u64, last_relevant_write: impl FnOnce() -> u64) -> bool {
        if revision < self.computed_at {
            self.valid_from <= revision
        } else {
            last_relevant_write() <= self.computed_at
        }
    }
}

/// Bits in the subject filter (a power of two): 2^20 bits, 128 KiB.
const SUBJECT_BITS: usize = 1 << 20;

/// The cache itself, weighed by bitmap size, with a filter of the subjects it may hold.
pub struct ReachCache {
    inner: moka::sync::Cache<ReachKey, Arc<CachedReach>>,
    /// One bit per subject hash, set when an entry for that subject is inserted and cleared
    /// only by [`ReachCache::clear`]: a clear bit proves that no entry for the subject exists,
    /// so a check for a subject never looked up skips building a key and probing `moka`
    /// (a set bit only means "ask the cache"; eviction leaves bits set, which costs a probe,
    /// never an answer).
    subjects: Box<[AtomicU64]>,
    hasher: foldhash::fast::FixedState,
}

impl ReachCache {
    pub fn new(max_bytes: u64) -> Self {
        let inner = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &ReachKey, v: &Arc<CachedReach>| {
                let bytes =
                    v.bytes() + k.relation.len() + k.object_type.len() + k.context.len() + 128;
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            inner,
            subjects: (0..SUBJECT_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// The word and bit of `subject` in the filter.
    fn slot(&self, subject: &User) -> (Option<&AtomicU64>, u64) {
        let h = self.hasher.hash_one(subject) as usize & (SUBJECT_BITS - 1);
        (self.subjects.get(h / 64), 1u64 << (h % 64))
    }

    /// Whether the cache may hold an entry for `subject` (false: it certainly holds none).
    pub fn may_hold(&self, subject: &User) -> bool {
        match self.slot(subject) {
            (Some(word), bit) => word.load(Ordering::Acquire) & bit != 0,
            (None, _) => true,
        }
    }

    pub fn get(&self, key: &ReachKey) -> Option<Arc<CachedReach>> {
        self.inner.get(key)
    }

    pub fn insert(&self, key: ReachKey, value: Arc<CachedReach>) {
        // The bit is set before the entry is visible, so a reader that finds the bit clear
        // cannot miss an entry that was already there.
        if let (Some(word), bit) = self.slot(&key.subject) {
            word.fetch_or(bit, Ordering::AcqRel);
        }
        self.inner.insert(key, value);
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }

    pub fn clear(&self) {
        self.inner.invalidate_all();
        // Entries are gone once invalidated; a bit cleared here while an insert races only
        // makes that new entry unreachable through the filter (a miss), never a wrong answer.
        for word in self.subjects.iter() {
            word.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached answer answers membership the same with and without its dense copy, at the
    /// edges of the span and outside it; a sparse answer over a wide span keeps no dense copy.
    #[test]
    fn dense_copies_answer_membership_like_the_bitmap() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for (n, span, offset) in [
            (1, 1, 0),
            (50, 200, 7),
            (20_000, 200_000, 1000),
            (5, 64, 63),
        ] {
            let b: RoaringBitmap = (0..n).map(|_| offset + next(span) as u32).collect();
            let c = CachedReach::new(b.clone(), 1, 0, 0);
            assert!(c.dense.is_some(), "{n} in {span}");
            let (lo, hi) = (b.min().unwrap(), b.max().unwrap());
            for o in lo.saturating_sub(70)..=hi + 70 {
                assert_eq!(c.contains(o), b.contains(o), "{o}");
            }
            assert!(!c.contains(u32::MAX) && c.contains(lo) && c.contains(hi));
        }
        let sparse: RoaringBitmap = [3, 1 << 20, u32::MAX - 1].into_iter().collect();
        let c = CachedReach::new(sparse.clone(), 1, 0, 0);
        assert!(c.dense.is_none());
        for o in [0, 3, 4, 1 << 20, u32::MAX - 1, u32::MAX] {
            assert_eq!(c.contains(o), sparse.contains(o), "{o}");
        }
        assert!(
            CachedReach::new(RoaringBitmap::new(), 1, 0, 0)
                .dense
                .is_none()
        );
    }
}
