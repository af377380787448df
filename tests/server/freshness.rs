//! No new enemy, over the wire and under load. Several clients each repeatedly grant a tuple
//! (directly, or through group membership) and revoke it, while other clients write unrelated
//! tuples (so revisions move under them) and check the toggled objects without a freshness
//! bound (so caches fill with decisions from every revision). For every round:
//!
//! * at the grant's revision, check, lookup and a repeated (cacheable) check all allow, and
//!   the tuple reads back;
//! * at the revoke's revision, check, batch-check, lookup, filter and subjects all deny, and
//!   the tuple is no longer read back — a stale snapshot or a cache keyed without the
//!   revision would let the revoked user in;
//! * an answer's revision is never older than the revision it was asked to be fresh at.

use crate::harness::{MODEL, Res, Server};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

const TOGGLERS: usize = 4;
const ROUNDS: usize = 100;

fn at_least(v: &Value, revision: u64, what: &str) -> Res {
    match v["revision"].as_u64() {
        Some(r) if r >= revision => Ok(()),
        _ => Err(format!("{what}: answered at an older revision than {revision}: {v}").into()),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().or_else(|| x["object"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// One client's rounds of grant, probe, revoke, probe.
fn toggle(server: &Server, t: usize, rounds: &AtomicUsize) -> Res {
    let user = format!("user:u{t}");
    for round in 0..ROUNDS {
        let direct = round % 2 == 0;
        let (tuple, object) = if direct {
            let object = format!("doc:d{t}");
            (
                json!({"user": user, "relation": "viewer", "object": object}),
                object,
            )
        } else {
            (
                json!({"user": user, "relation": "member", "object": format!("group:g{t}")}),
                format!("doc:viag{t}"),
            )
        };
        let check = |fresh: Option<u64>| {
            let mut b = json!({"user": user, "relation": "viewer", "object": object});
            if let Some(r) = fresh {
                b["at_least_as_fresh"] = json!(r);
            }
            server.ok("/v1/check", &b)
        };
        let lookup = |fresh: u64| {
            server.ok(
                "/v1/lookup",
                &json!({"user": user, "relation": "viewer", "object_type": "doc", "at_least_as_fresh": fresh}),
            )
        };
        let ctx = |what: &str, r: u64| format!("client {t} round {round} ({object}) {what} at {r}");
        let stored = |fresh: u64| -> Res<usize> {
            let mut b = tuple.clone();
            b["at_least_as_fresh"] = json!(fresh);
            let v = server.ok("/v1/tuples/read", &b)?;
            at_least(&v, fresh, &ctx("tuples/read", fresh))?;
            Ok(v["tuples"].as_array().map_or(0, Vec::len))
        };

        let granted = server.write(&json!({ "writes": [tuple] }))?;
        for what in ["check", "repeated check"] {
            let v = check(Some(granted))?;
            at_least(&v, granted, &ctx(what, granted))?;
            if v["allowed"] != true {
                return Err(format!("{}: denied after the grant: {v}", ctx(what, granted)).into());
            }
        }
        if check(None)?["allowed"] != true {
            return Err(format!("{}: latest read misses the grant", ctx("check", granted)).into());
        }
        if stored(granted)? != 1 {
            return Err(format!(
                "{}: the granted tuple is not read back",
                ctx("read", granted)
            )
            .into());
        }
        let v = lookup(granted)?;
        at_least(&v, granted, &ctx("lookup", granted))?;
        if !strings(&v["objects"]).contains(&object) {
            return Err(format!("{}: lookup misses the grant: {v}", ctx("lookup", granted)).into());
        }

        let revoked = server.write(&json!({ "deletes": [tuple] }))?;
        if revoked <= granted {
            return Err(format!("revoke at {revoked} is not after the grant at {granted}").into());
        }
        let v = check(Some(revoked))?;
        at_least(&v, revoked, &ctx("check", revoked))?;
        if v["allowed"] != false || v["decision"] != "denied" {
            return Err(format!(
                "{}: NEW ENEMY: allowed after revoke: {v}",
                ctx("check", revoked)
            )
            .into());
        }
        if check(None)?["allowed"] != false {
            return Err(format!("{}: latest read misses the revoke", ctx("check", revoked)).into());
        }
        let v = server.ok(
            "/v1/batch-check",
            &json!({"checks": [{"user": user, "relation": "viewer", "object": object}], "at_least_as_fresh": revoked}),
        )?;
        at_least(&v, revoked, &ctx("batch-check", revoked))?;
        if v["results"][0]["allowed"] != false {
            return Err(format!("{}: NEW ENEMY: {v}", ctx("batch-check", revoked)).into());
        }
        let v = lookup(revoked)?;
        at_least(&v, revoked, &ctx("lookup", revoked))?;
        if strings(&v["objects"]).contains(&object) {
            return Err(format!("{}: NEW ENEMY: {v}", ctx("lookup", revoked)).into());
        }
        let v = server.ok(
            "/v1/filter",
            &json!({"user": user, "relation": "viewer", "object_type": "doc", "candidates": [object], "at_least_as_fresh": revoked}),
        )?;
        if !strings(&v["allowed"]).is_empty() {
            return Err(format!("{}: NEW ENEMY: {v}", ctx("filter", revoked)).into());
        }
        let v = server.ok(
            "/v1/subjects",
            &json!({"object": object, "relation": "viewer", "subject_type": "user", "at_least_as_fresh": revoked}),
        )?;
        at_least(&v, revoked, &ctx("subjects", revoked))?;
        if strings(&v["subjects"]).contains(&user) {
            return Err(format!("{}: NEW ENEMY: {v}", ctx("subjects", revoked)).into());
        }
        if stored(revoked)? != 0 {
            return Err(
                format!("{}: the revoked tuple is still read", ctx("read", revoked)).into(),
            );
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Unrelated writes, so that revisions advance between a client's write and its read.
fn churn(server: &Server, done: &AtomicBool) -> Res<u64> {
    let mut n = 0;
    while !done.load(Ordering::Relaxed) {
        let tuple = json!({"user": format!("user:noise{}", n % 7), "relation": "viewer", "object": "doc:noise"});
        let body = if (n / 7) % 2 == 0 {
            json!({ "writes": [tuple] })
        } else {
            json!({ "deletes": [tuple] })
        };
        server.write(&body)?;
        n += 1;
    }
    Ok(n)
}

/// Checks of the toggled objects at whatever the latest revision is, filling the caches.
fn readers(server: &Server, done: &AtomicBool) -> Res<u64> {
    let mut n = 0;
    while !done.load(Ordering::Relaxed) {
        let t = (n as usize) % TOGGLERS;
        for object in [format!("doc:d{t}"), format!("doc:viag{t}")] {
            server.ok(
                "/v1/check",
                &json!({"user": format!("user:u{t}"), "relation": "viewer", "object": object}),
            )?;
        }
        n += 1;
    }
    Ok(n)
}

#[test]
fn a_check_at_the_revoke_revision_never_allows() -> Res {
    let started = Instant::now();
    let server = Server::start(&["--memory"])?;
    server.write_model(MODEL)?;
    let standing: Vec<Value> = (0..TOGGLERS)
        .map(|t| json!({"user": format!("group:g{t}#member"), "relation": "viewer", "object": format!("doc:viag{t}")}))
        .collect();
    server.write(&json!({ "writes": standing }))?;
    let done = AtomicBool::new(false);
    let rounds = AtomicUsize::new(0);
    let (toggled, background) = std::thread::scope(|s| {
        let bg = [
            s.spawn(|| churn(&server, &done)),
            s.spawn(|| readers(&server, &done)),
        ];
        let clients: Vec<_> = (0..TOGGLERS)
            .map(|t| {
                let (server, rounds) = (&server, &rounds);
                s.spawn(move || toggle(server, t, rounds))
            })
            .collect();
        let toggled: Vec<Res> = clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("a client panicked".into())))
            .collect();
        done.store(true, Ordering::Relaxed);
        let background: Vec<Res<u64>> = bg
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err("a background thread panicked".into()))
            })
            .collect();
        (toggled, background)
    });
    for r in toggled {
        r?;
    }
    let mut counts = Vec::new();
    for r in background {
        counts.push(r?);
    }
    let rounds = rounds.load(Ordering::Relaxed);
    eprintln!(
        "freshness: {rounds} grant/revoke rounds, {} churn writes, {} background check pairs, {:?}",
        counts.first().unwrap_or(&0),
        counts.get(1).unwrap_or(&0),
        started.elapsed()
    );
    assert_eq!(rounds, TOGGLERS * ROUNDS);
    Ok(())
}
