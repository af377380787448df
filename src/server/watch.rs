//! `GET /v1/watch?since=R`: every change after revision R as Server-Sent Events, one event per
//! revision, in order and without gaps. Each event's `id` is its revision, so a client that
//! reconnects with `Last-Event-ID` (or `since`) resumes exactly after the last one it saw. The
//! change log is never truncated, so any past revision can be resumed from.

use super::AppState;
use super::error::{ApiError, Query};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Revisions read from the log per step.
const CHUNK: u64 = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Stream the revisions after this one (default: only future ones).
    pub since: Option<u64>,
}

struct Cursor {
    app: Arc<AppState>,
    next: u64,
    revisions: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    buffer: VecDeque<Event>,
    done: bool,
}

fn event_of(app: &AppState, n: u64) -> Result<Event, String> {
    let entry = app
        .clew
        .store()
        .revision_entry(n)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("revision {n} is missing from the change log"))?;
    let store = app.clew.store();
    let tuples = |lines: &[String]| {
        store
            .tuples_in_log_lines(lines)
            .into_iter()
            .map(|(t, graph)| {
                let mut v = json!(crate::tuple::TupleSpec::from(&t));
                v["graph"] = json!(graph);
                v
            })
            .collect::<Vec<_>>()
    };
    let recorded = |lines: &[String]| {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect::<Vec<_>>()
    };
    let (tuples_added, tuples_removed) = match &entry.tuples {
        // Recorded by a write to a graph with bindings.
        Some((plus, minus)) => (recorded(plus), recorded(minus)),
        None => (tuples(&entry.added), tuples(&entry.removed)),
    };
    let data = json!({
        "revision": n,
        "time": entry.time,
        "source": entry.source,
        "tuples_added": tuples_added,
        "tuples_removed": tuples_removed,
        "added": entry.added,
        "removed": entry.removed,
    });
    Ok(Event::default()
        .id(n.to_string())
        .event("revision")
        .data(data.to_string()))
}

async fn step(mut c: Cursor) -> Option<(Result<Event, Infallible>, Cursor)> {
    loop {
        if let Some(e) = c.buffer.pop_front() {
            return Some((Ok(e), c));
        }
        if c.done {
            return None;
        }
        let current = *c.revisions.borrow_and_update();
        if c.next <= current {
            let (from, to) = (c.next, current.min(c.next + CHUNK - 1));
            let app = c.app.clone();
            let read = tokio::task::spawn_blocking(move || {
                (from..=to)
                    .map(|n| event_of(&app, n))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
            match read {
                Ok(Ok(events)) => {
                    c.buffer.extend(events);
                    c.next = to + 1;
                }
                Ok(Err(e)) => {
                    tracing::error!("watch: {e}");
                    c.buffer.push_back(
                        Event::default()
                            .event("error")
                            .data(json!({"code": "storage_error", "message": e}).to_string()),
                    );
                    c.done = true;
                }
                Err(e) => {
                    tracing::error!("watch: {e}");
                    c.done = true;
                }
            }
            continue;
        }
        tokio::select! {
            changed = c.revisions.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            _ = c.shutdown.changed() => return None,
        }
    }
}

pub async fn watch(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<WatchQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let latest = app.clew.state().revision;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_cursor", "Last-Event-ID must be a revision")
                })?,
        ),
        None => None,
    };
    let since = resume.or(q.since).unwrap_or(latest);
    if since > latest {
        return Err(ApiError::bad_request(
            "future_revision",
            format!("revision {since} is newer than the latest revision {latest}"),
        ));
    }
    let cursor = Cursor {
        next: since + 1,
        revisions: app.revisions.subscribe(),
        shutdown: app.shutdown.subscribe(),
        buffer: VecDeque::new(),
        done: false,
        app,
    };
    let stream = futures_util::stream::unfold(cursor, step);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
