//! Crash durability of the on-disk store. Cycle after cycle on one data directory: start the
//! server, check what the previous cycle left, stream atomic three-tuple batch writes (some
//! also deleting an older batch) from several clients, and SIGKILL the process at a random
//! moment. After each restart:
//!
//! * every acknowledged write is there — its batch stored, the batch it deleted gone;
//! * every unacknowledged write is there wholly or not at all (never some of its tuples, never
//!   its insertions without its deletions);
//! * nothing else is stored, and the revision counter equals the number of applied writes
//!   (so it is at least the last acknowledged revision, and moved with the data atomically);
//! * checks agree with the stored tuples (the index is rebuilt from what survived).
//!
//! `CLEW_KILL_CYCLES` sets the number of cycles (default 20); the seed is printed and
//! `CLEW_TEST_SEED` replays it.

use crate::harness::{Expected, MODEL, Res, Rng, Server, WriterLog, spawn_writer, stored_batches};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const WRITERS: usize = 3;

#[test]
fn acknowledged_writes_survive_sigkill_and_batches_are_all_or_nothing() -> Res {
    let cycles: usize = std::env::var("CLEW_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut rng = Rng::from_env("durability");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("store");
    let started = Instant::now();
    let mut expected = Expected::default();
    let mut logs: Vec<WriterLog> = Vec::new();
    let (mut acked, mut unknown, mut landed) = (0, 0, 0);
    for cycle in 0..=cycles {
        let at = |e: crate::harness::Error| format!("cycle {cycle}: {e}");
        let mut server = Server::on_disk(&data, &[]).map_err(at)?;
        if cycle == 0 {
            expected.revision = server.write_model(MODEL).map_err(at)?;
        } else {
            let stored = stored_batches(&server).map_err(at)?;
            let (u, l) = expected.apply(&logs, &stored).map_err(at)?;
            unknown += u;
            landed += l;
            expected.verify(&server, &stored).map_err(at)?;
        }
        if cycle == cycles {
            server.stop(Duration::from_secs(5)).map_err(at)?;
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let owned = expected
                    .present
                    .iter()
                    .filter(|b| b.starts_with(&format!("t{t}c")))
                    .cloned()
                    .collect();
                spawn_writer(
                    server.base.clone(),
                    format!("t{t}c{cycle}"),
                    owned,
                    rng.next_u64(),
                    stop.clone(),
                )
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.range(20, 300)));
        server.kill().map_err(at)?;
        logs = writers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| format!("cycle {cycle}: a writer panicked"))
            })
            .collect::<Result<_, _>>()?;
        acked += logs
            .iter()
            .flat_map(|l| &l.ops)
            .filter(|o| o.acked.is_some())
            .count();
    }
    eprintln!(
        "durability: {cycles} kills, {acked} acknowledged writes, {unknown} in flight at a kill \
         ({landed} of them applied), \
         {} batches stored, revision {}, {:?}",
        expected.present.len(),
        expected.revision,
        started.elapsed()
    );
    // The kills must have interrupted real traffic, or the test proves nothing.
    assert!(
        acked >= cycles,
        "only {acked} writes acknowledged in {cycles} cycles"
    );
    Ok(())
}
