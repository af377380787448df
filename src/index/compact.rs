//! Compaction off the writer's path: when a snapshot's delta has grown past a threshold, a
//! background thread folds it into a new compact base ([`Snapshot::compact`]); a later write
//! picks the result up and rebases its snapshot onto it ([`Snapshot::rebase`]), keeping in the
//! delta only what changed while the compaction ran. The writer never waits for a build.
//!
//! Invariant: the snapshot [`Compactor::maintain`] returns has exactly the tuples, ids and write
//! revisions of the one it was given (a rebase changes only where entries are stored).

use super::Snapshot;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// A compaction in flight: the snapshot it started from, and the thread building its base.
struct Job {
    from: Snapshot,
    handle: JoinHandle<Snapshot>,
}

/// The single writer's compaction state (see the module doc).
pub struct Compactor {
    job: Mutex<Option<Job>>,
    min_delta: usize,
    /// Compact inline, on the caller's thread (tests: deterministic).
    inline: bool,
}

impl Default for Compactor {
    fn default() -> Self {
        Self::new(super::MIN_DELTA)
    }
}

impl Compactor {
    /// Compacts in the background once a delta exceeds `min_delta` changes (and a fixed share
    /// of the base).
    pub fn new(min_delta: usize) -> Self {
        Self {
            job: Mutex::new(None),
            min_delta,
            inline: false,
        }
    }

    /// Compacts on the caller's thread, as soon as the threshold is passed (for tests).
    pub fn inline(min_delta: usize) -> Self {
        Self {
            inline: true,
            ..Self::new(min_delta)
        }
    }

    /// Called by the writer with the snapshot it is about to publish: returns it rebased onto a
    /// finished compaction, if one is ready, and starts a new compaction when its delta is
    /// large.
    pub fn maintain(&self, next: Snapshot) -> Snapshot {
        if self.inline {
            return if next.wants_compaction(self.min_delta) {
                next.compact()
            } else {
                next
            };
        }
        let Ok(mut job) = self.job.lock() else {
            return next;
        };
        let mut next = next;
        if job.as_ref().is_some_and(|j| j.handle.is_finished())
            && let Some(j) = job.take()
            && let Ok(compacted) = j.handle.join()
            && let Some(rebased) = next.rebase(&j.from, &compacted)
        {
            next = rebased;
        }
        if job.is_none() && next.wants_compaction(self.min_delta) {
            let from = next.clone();
            let work = next.clone();
            let spawned = std::thread::Builder::new()
                .name("clew-compact".into())
                .spawn(move || work.compact());
            if let Ok(handle) = spawned {
                *job = Some(Job { from, handle });
            }
        }
        next
    }

    /// Waits for a compaction in flight, if any (so that the next `maintain` picks it up).
    pub fn wait(&self) {
        if let Ok(job) = self.job.lock()
            && let Some(j) = job.as_ref()
        {
            while !j.handle.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
}
