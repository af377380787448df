//! The change stream (`GET /v1/watch`) as a client sees it on the wire: Server-Sent Events,
//! one per revision, whose `id` is the revision.
//!
//! * From a past revision, every later revision arrives in order, without gaps, each with the
//!   tuples it added and removed (and nothing else), as raw quads and decoded.
//! * A client that drops the connection and reconnects with `Last-Event-ID` (which wins over a
//!   `since` that would replay from the start) or with `since=` gets the rest: nothing missed,
//!   nothing repeated.
//! * A stream opened at the latest revision follows live writes from concurrent clients, and
//!   each event is the write that was acknowledged with its revision.
//! * Without `since`, a stream starts at the latest revision (no replay).

use crate::harness::{MODEL, Res, Server, Sse};
use serde_json::{Value, json};

/// A tuple as the test wrote it: (user, relation, object).
type T = (String, String, String);

/// One revision the test expects: what it added and removed.
#[derive(Debug, Clone)]
struct Change {
    revision: u64,
    added: Vec<T>,
    removed: Vec<T>,
}

fn tuple(k: usize) -> T {
    (format!("user:u{k}"), "viewer".into(), format!("doc:w{k}"))
}

fn json_of(t: &T) -> Value {
    json!({"user": t.0, "relation": t.1, "object": t.2})
}

/// Whether an N-Quads line of the change log is the triple of tuple `t`.
fn mentions(line: &str, t: &T) -> bool {
    let iri = |r: &str| format!("/{}>", r.replacen(':', "/", 1));
    line.contains(&iri(&t.0)) && line.contains(&format!("/{}>", t.1)) && line.contains(&iri(&t.2))
}

fn lines(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The next `n` events.
fn take(sse: &mut Sse, n: usize) -> Res<Vec<(u64, Value)>> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = sse
            .next_event()?
            .ok_or_else(|| format!("the stream ended after {} of {n} events", out.len()))?;
        if e.event != "revision" {
            return Err(format!("unexpected event {e:?}").into());
        }
        let id: u64 = e.id.as_deref().unwrap_or("").parse()?;
        let data: Value = serde_json::from_str(&e.data)?;
        if data["revision"] != id {
            return Err(format!("event id {id} carries revision {}", data["revision"]).into());
        }
        out.push((id, data));
    }
    Ok(out)
}

/// The events are exactly `expected`: same revisions in the same order, same changes.
fn same(events: &[(u64, Value)], expected: &[Change]) -> Res {
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    let want: Vec<u64> = expected.iter().map(|c| c.revision).collect();
    if ids != want {
        return Err(format!("revisions {ids:?}, expected {want:?}").into());
    }
    for ((rev, data), change) in events.iter().zip(expected) {
        for (field, tuples) in [("added", &change.added), ("removed", &change.removed)] {
            // The raw quads of the change log …
            let got = lines(&data[field]);
            let matched = tuples.iter().all(|t| got.iter().any(|l| mentions(l, t)));
            if got.len() != tuples.len() || !matched {
                return Err(format!("revision {rev} {field} {got:?}, expected {tuples:?}").into());
            }
            // … and the same change decoded as tuples.
            let decoded = format!("tuples_{field}");
            let mut got: Vec<T> = data[&decoded]
                .as_array()
                .ok_or_else(|| format!("revision {rev} has no {decoded}: {data}"))?
                .iter()
                .map(|t| {
                    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
                    (s("user"), s("relation"), s("object"))
                })
                .collect();
            got.sort();
            let mut want = tuples.clone();
            want.sort();
            if got != want {
                return Err(format!("revision {rev} {decoded} {got:?}, expected {want:?}").into());
            }
        }
    }
    Ok(())
}

/// Writes tuples `from..to` (each write adds one; every third also removes the one before)
/// and returns the acknowledged changes.
fn write_range(server: &Server, from: usize, to: usize) -> Res<Vec<Change>> {
    let mut out = Vec::new();
    for k in from..to {
        let mut change = Change {
            revision: 0,
            added: vec![tuple(k)],
            removed: Vec::new(),
        };
        if (k - from) % 3 == 2 {
            change.removed.push(tuple(k - 1));
        }
        let body = json!({
            "writes": change.added.iter().map(json_of).collect::<Vec<_>>(),
            "deletes": change.removed.iter().map(json_of).collect::<Vec<_>>(),
        });
        change.revision = server.write(&body)?;
        out.push(change);
    }
    Ok(out)
}

#[test]
fn the_change_stream_has_every_revision_once_in_order_across_reconnects() -> Res {
    let server = Server::start(&["--memory"])?;
    let model = server.write_model(MODEL)?;
    let history = write_range(&server, 0, 12)?;

    // Replay from a past revision.
    let mut sse = Sse::open(&server, &format!("/v1/watch?since={model}"), None)?;
    same(&take(&mut sse, history.len())?, &history)?;
    drop(sse);

    // Drop after five, resume with Last-Event-ID (it wins over since=0).
    let mut sse = Sse::open(&server, &format!("/v1/watch?since={model}"), None)?;
    let first = take(&mut sse, 5)?;
    drop(sse);
    let last = first.last().map(|e| e.0).ok_or("no events")?;
    let mut sse = Sse::open(&server, "/v1/watch?since=0", Some(last))?;
    let rest = take(&mut sse, history.len() - 5)?;
    drop(sse);
    same(&[first, rest].concat(), &history)?;

    // Live: two concurrent writers; the stream shows every acknowledged write at its revision.
    let latest = server.revision()?;
    let mut sse = Sse::open(&server, &format!("/v1/watch?since={latest}"), None)?;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| write_range(&server, 100, 110));
        let b = s.spawn(|| write_range(&server, 200, 210));
        (
            a.join().unwrap_or_else(|_| Err("writer panicked".into())),
            b.join().unwrap_or_else(|_| Err("writer panicked".into())),
        )
    });
    let mut live = [a?, b?].concat();
    live.sort_by_key(|c| c.revision);
    let revs: Vec<u64> = live.iter().map(|c| c.revision).collect();
    let want: Vec<u64> = (latest + 1..=latest + live.len() as u64).collect();
    assert_eq!(revs, want, "acknowledged revisions are consecutive");
    // Read eight live events, reconnect with since= at the eighth, read the rest.
    let head = take(&mut sse, 8)?;
    drop(sse);
    let mut sse = Sse::open(&server, &format!("/v1/watch?since={}", head[7].0), None)?;
    let tail = take(&mut sse, live.len() - 8)?;
    same(&[head, tail].concat(), &live)?;
    // The stream is still live after the catch-up: one more write arrives.
    let next = write_range(&server, 300, 301)?;
    same(&take(&mut sse, 1)?, &next)?;
    drop(sse);

    // Without since: only what happens after connecting.
    let mut sse = Sse::open(&server, "/v1/watch", None)?;
    let after = write_range(&server, 400, 401)?;
    same(&take(&mut sse, 1)?, &after)?;
    Ok(())
}
