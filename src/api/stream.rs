//! The event stream (`GET /api/v1/events`, Server-Sent Events), the
//! picture it starts from (`GET /api/v1/snapshot`), the live calls
//! (`GET /api/v1/calls`) and who a token is (`GET /api/v1/token`).
//!
//! A stream starts with a `snapshot` event, or, for a client that sends
//! `Last-Event-ID` still within the buffer, with the events it missed;
//! then `queue`, `agent` and `call` events as they happen, and a comment
//! line every 15 s so proxies keep the connection. Each stream holds a
//! cursor into the shared log ([`crate::events::Hub`]); one that falls
//! behind the buffer is ended (the client reconnects and gets a
//! snapshot). At most `http.event_streams` streams are open at once;
//! past that 503 with `Retry-After`.
//!
//! Authentication is the API's: `Authorization: Bearer` with a `read`
//! token, or none with `http.open_reads`. The wallboard page reads the
//! stream with `fetch`, which can send that header (an `EventSource`
//! cannot), so a token never travels in a URL and never reaches a log.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;
use super::access::{Caller, Read};
use crate::acd::Acd;
use crate::config::Config;
use crate::events::{Cursor, Hub, Next, Resume, sse};

/// How often the ACD's figures are compared with the last ones: agent and
/// queue events reach clients within this (call events at once).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A comment line on a quiet stream this often, or at half the HTTP idle
/// timeout when that is shorter: the comment is what keeps a quiet stream
/// from being closed as idle.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Applies `http.event_streams` and `http.wallboard_agent_names` (start
/// and reload).
pub fn configure(hub: &Hub, config: &Config) {
    hub.set_max_streams(config.http.event_streams);
    hub.set_keep_alive(KEEP_ALIVE.min(config.http.connections.idle_timeout / 2));
    let names: HashMap<Arc<str>, Arc<str>> = if config.http.wallboard_agent_names {
        config
            .agents
            .iter()
            .map(|a| (Arc::from(a.extension.as_str()), Arc::from(a.name.as_str())))
            .collect()
    } else {
        HashMap::new()
    };
    hub.set_names(names);
}

/// Publishes the ACD's queue and agent changes until the process ends.
/// The ACD knows nothing of clients; this compares its snapshots (as
/// `/metrics` reads them) on the runtime, never on the core thread.
pub async fn sample(acd: Arc<Acd>, hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        hub.observe_acd(&acd.snapshot(now), now);
    }
}

/// `GET /api/v1/events`.
pub async fn events(
    _who: super::Authorized<Read>,
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Response {
    let hub = state.metrics.events.clone();
    let Some(permit) = hub.open_stream() else {
        let mut r = super::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams are open (`http.event_streams`): try again later, or raise the cap".into(),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let now = Instant::now();
    // Reconnect after 2 s (EventSource clients); then what was missed.
    let mut first = String::from("retry: 2000\n\n");
    let after = match hub.since(last) {
        Resume::Events(missed) => {
            for e in &missed {
                first.push_str(&sse(e.id, e.change.kind(), &e.change.to_json(now)));
            }
            missed.last().map_or(last.unwrap_or(0), |e| e.id)
        }
        Resume::Snapshot => {
            let snap = hub.snapshot();
            first.push_str(&sse(snap.id, "snapshot", &snap.to_json(now)));
            snap.id
        }
    };
    let cursor = permit.cursor(after);
    let keep_alive = hub.keep_alive();
    let body = futures_util::stream::unfold(
        (Some(first), Some(cursor)),
        move |(first, cursor)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(Bytes::from(first)), (None, cursor)));
            }
            let mut cursor: Cursor = cursor?;
            let chunk = match cursor.next(keep_alive).await {
                Next::Events(events) => {
                    let now = Instant::now();
                    events
                        .iter()
                        .map(|e| sse(e.id, e.change.kind(), &e.change.to_json(now)))
                        .collect::<String>()
                }
                Next::Idle => ": keep-alive\n\n".to_owned(),
                // Fell behind the buffer: end the stream; the client comes
                // back with its Last-Event-ID and gets a snapshot.
                Next::Behind => return None,
            };
            Some((Ok(Bytes::from(chunk)), (None, Some(cursor))))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// `GET /api/v1/snapshot`: what a new stream starts from.
pub async fn snapshot(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(state.metrics.events.snapshot().to_json(Instant::now()))
}

/// `GET /api/v1/calls`: the live hotline calls (masked numbers).
pub async fn calls(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let now = Instant::now();
    let snap = state.metrics.events.snapshot();
    Json(json!(
        snap.calls
            .iter()
            .map(|c| crate::events::Change::Call(crate::events::CallChange {
                kind: crate::events::CallKind::Changed,
                call: c.clone(),
                disposition: None,
            })
            .to_json(now))
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("kind");
                }
                v
            })
            .collect::<Vec<_>>()
    ))
}

/// `GET /api/v1/token`: the name and role of the token sent (a page's
/// login checks a token with it); `null`s without one.
pub async fn token(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    Json(match caller.token {
        Some(t) => json!({ "name": &*t.name, "role": t.role.to_string() }),
        None => json!({ "name": null, "role": null }),
    })
}
