//! The real `clew serve` binary, black box: each test spawns it on `127.0.0.1:0`, reads the
//! bound address from its startup line, and talks HTTP to it. What the in-process router tests
//! (`tests/http_api.rs`) cannot see is tested here: crashes and restarts of the on-disk store,
//! concurrency across connections, signals, the wire format of errors and of the change stream,
//! and what the process prints.
//!
//! * [`durability`] — SIGKILL at random points: acknowledged writes survive, batches are all or
//!   nothing, the revision counter agrees with the data (on-disk store only).
//! * [`freshness`] — no new enemy: a check at a revoke's revision never allows.
//! * [`bad_input`] — every malformed request is a named JSON 4xx and changes nothing.
//! * [`watch`] — the change stream has every revision, in order, once, across reconnects.
//! * [`shutdown`] — SIGTERM finishes in-flight requests and exits 0; the store reopens whole.
//! * [`startup`] — `--demo` loads once, its banner works, logs stay off stdout.
//! * [`timeouts`] — a write that has started outlives its time limit and says how it ended; a
//!   write that waited past it is refused untouched.
//!
//! Every spawned server is killed when its guard drops, so a failing test leaves no process.
//! (The modules live in `tests/server/`; a crate root resolves `mod` next to itself, hence the
//! `#[path]`s.)

#[path = "server/harness.rs"]
mod harness;

#[path = "server/bad_input.rs"]
mod bad_input;
#[cfg(feature = "rocksdb")]
#[path = "server/durability.rs"]
mod durability;
#[path = "server/freshness.rs"]
mod freshness;
#[path = "server/shutdown.rs"]
mod shutdown;
#[path = "server/startup.rs"]
mod startup;
#[path = "server/timeouts.rs"]
mod timeouts;
#[path = "server/watch.rs"]
mod watch;
