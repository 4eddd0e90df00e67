//! The tickets API (Vormerkung):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/v1/tickets?state=&tenant=&overdue=` | tickets, oldest first, with their due time |
//! | GET | `/api/v1/tickets/{id}` | one ticket with its history |
//! | POST | `/api/v1/tickets` | take a ticket: 201 once it is in the store; 400 naming what is wrong |
//! | POST | `/api/v1/tickets/{id}/state` | `{"state": "in_progress", "note": "..."}`: 409 for a change the ticket's state does not allow |
//!
//! Taking and changing tickets needs a `supervisor` token (`api::access`
//! has no agent role yet); reading needs `read`. Every change goes to the
//! store first and into the [`Book`] only once the store has taken it, so
//! a store whose queue is full answers 503 and changes nothing.
//!
//! The due time is 24 service hours on the tenant's calendar (the
//! dialplan's `hours:`; see [`crate::tickets`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use super::access::{Authorized, Supervise};
use super::{ApiState, error, log_change};
use crate::config::Config;
use crate::daemon::clock::WallClock;
use crate::store::{Store, Write};
use crate::tickets::{
    Action, Book, Channel, Destination, Draft, Filter, State as TicketState, TenantInfo, Tenants,
    Ticket,
};

/// How long the API waits for the store to commit a new ticket before it
/// answers 202 (accepted, queued, not yet on disk).
const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// The tickets and where they are kept; shared by the API's handlers and
/// the metrics.
pub struct Desk {
    book: Mutex<Book>,
    tenants: Tenants,
    store: Arc<Store>,
    clock: WallClock,
}

impl Desk {
    /// The desk over `book` (read back from `store` at start).
    pub fn new(book: Book, tenants: Tenants, store: Arc<Store>, clock: WallClock) -> Desk {
        Desk {
            book: Mutex::new(book),
            tenants,
            store,
            clock,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.at(Instant::now())
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `zentrale_tickets_open{tenant}` and `zentrale_tickets_overdue{tenant}`.
    pub fn collector(self: &Arc<Self>) -> TicketCollector {
        TicketCollector(self.clone())
    }
}

/// The tenants of `config` as tickets see them: municipality, queues and
/// service-hours calendar.
pub fn tenants(config: &Config) -> Tenants {
    let mut out = Tenants::default();
    for t in &config.tenants {
        out.insert(
            &t.id,
            TenantInfo {
                municipality: t.dialplan.municipality.clone(),
                queues: t.dialplan.queues.iter().map(|q| q.id.clone()).collect(),
                schedule: t.dialplan.schedule.clone(),
            },
        );
    }
    out
}

/// One ticket in the API.
#[derive(Debug, Serialize)]
pub struct TicketView {
    pub id: u64,
    pub tenant: String,
    pub municipality: String,
    /// `115` or `local`.
    pub via: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    pub callback_number: Option<String>,
    /// `callback` or `email`.
    pub channel: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leika: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub due_at: String,
    pub state: TicketState,
    pub overdue: bool,
    /// Only in `GET /api/v1/tickets/{id}` and the answers to changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryView>>,
}

#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub at: String,
    pub who: String,
    /// `created` or `state`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<TicketState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<TicketState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn time(t: Timestamp) -> String {
    format!("{t:.0}")
}

fn view(t: &Ticket, now: Timestamp, history: bool) -> TicketView {
    let (queue, department) = match &t.destination {
        Destination::Queue(q) => (Some(q.to_string()), None),
        Destination::Department(d) => (None, Some(d.clone())),
    };
    TicketView {
        id: t.id,
        tenant: t.tenant.clone(),
        municipality: t.origin.municipality.clone(),
        via: t.origin.via_label(),
        queue,
        department,
        callback_number: t.callback_number.clone(),
        channel: t.channel.as_str(),
        email: t.channel.email().map(str::to_owned),
        topic: t.topic.clone(),
        leika: t.leika.clone(),
        created_by: t.created_by.clone(),
        created_at: time(t.created_at),
        due_at: time(t.due_at),
        state: t.state,
        overdue: t.is_overdue(now),
        history: history.then(|| {
            t.history
                .iter()
                .map(|h| {
                    let (from, to) = match h.action {
                        Action::Created => (None, None),
                        Action::StateChanged { from, to } => (Some(from), Some(to)),
                    };
                    HistoryView {
                        at: time(h.at),
                        who: h.who.clone(),
                        action: h.action.as_str(),
                        from,
                        to,
                        note: h.note.clone(),
                    }
                })
                .collect()
        }),
    }
}

fn no_store() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "tickets need the store: add `store: { path: ... }` to zentrale.yaml and restart zentrale"
            .into(),
    )
}

/// Query of `GET /api/v1/tickets`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub tenant: Option<String>,
    pub overdue: Option<bool>,
}

pub(super) async fn list(
    State(state): State<ApiState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(desk) = state.tickets.as_ref() else {
        return no_store();
    };
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{e}; filters: state=open|in_progress|called_back|failed|closed, tenant=ID, overdue=true|false"
                ),
            );
        }
    };
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => match TicketState::parse(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown state `{s}`; use open, in_progress, called_back, failed or closed"
                    ),
                );
            }
        },
    };
    let filter = Filter {
        state: state_filter,
        tenant: q.tenant,
        overdue: q.overdue,
    };
    let now = desk.now();
    let book = desk.book();
    let out: Vec<TicketView> = book
        .list(&filter, now)
        .map(|t| view(t, now, false))
        .collect();
    Json(out).into_response()
}

pub(super) async fn one(State(state): State<ApiState>, Path(id): Path<String>) -> Response {
    let Some(desk) = state.tickets.as_ref() else {
        return no_store();
    };
    let now = desk.now();
    let book = desk.book();
    match id.parse::<u64>().ok().and_then(|id| book.get(id)) {
        Some(t) => Json(view(t, now, true)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no ticket `{id}`; list them with GET /api/v1/tickets"),
        ),
    }
}

/// Body of `POST /api/v1/tickets`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    pub tenant: String,
    #[serde(default)]
    pub municipality: Option<String>,
    #[serde(default)]
    pub via_115: bool,
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub callback_number: Option<String>,
    /// `callback` (default) or `email`.
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub topic: String,
    #[serde(default)]
    pub leika: Option<String>,
    /// Who takes it (an agent's id); the token's name when left out.
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

fn bad_json(e: JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        format!(
            "{}; send a JSON object (Content-Type: application/json)",
            e.body_text()
        ),
    )
}

#[derive(Serialize)]
struct Problems {
    error: String,
    problems: Vec<String>,
}

pub(super) async fn create(
    who: Authorized<Supervise>,
    State(state): State<ApiState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Response {
    let Some(desk) = state.tickets.clone() else {
        return no_store();
    };
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let token = who.caller.token.as_ref().map(|t| t.name.to_string());
    let channel = match (body.channel.as_deref(), body.email) {
        (None | Some("callback"), None) => Ok(Channel::Callback),
        (Some("email"), Some(a)) | (None, Some(a)) => Ok(Channel::Email(a)),
        (Some("email"), None) => Err("`channel: email` needs `email`, the address to write to"),
        (Some("callback"), Some(_)) => {
            Err("`email` is for `channel: email`; leave it out for a callback")
        }
        _ => Err("unknown channel; use `callback` or `email`"),
    };
    let channel = match channel {
        Ok(c) => c,
        Err(why) => return error(StatusCode::BAD_REQUEST, why.into()),
    };
    let draft = Draft {
        tenant: body.tenant,
        municipality: body.municipality,
        via_115: body.via_115,
        queue: body.queue,
        department: body.department,
        callback_number: body.callback_number,
        channel,
        topic: body.topic,
        leika: body.leika,
        created_by: body.created_by.or(token).unwrap_or_default(),
        note: body.note,
    };
    let now = desk.now();
    let (ticket, committed) = {
        let mut book = desk.book();
        let ticket = match book.prepare(draft, &desk.tenants, now) {
            Ok(t) => t,
            Err(problems) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(Problems {
                        error: problems.join("; "),
                        problems,
                    }),
                )
                    .into_response();
            }
        };
        let committed = match desk
            .store
            .submit_durable(Write::NewTicket(Box::new(ticket.clone())))
        {
            Ok(rx) => rx,
            Err(full) => return error(StatusCode::SERVICE_UNAVAILABLE, full.to_string()),
        };
        book.insert(ticket.clone());
        (ticket, committed)
    };
    log_change(
        &who.caller,
        format_args!(
            "ticket {} taken for {} ({}), callback number {}",
            ticket.id,
            ticket.tenant,
            ticket.channel.as_str(),
            ticket.masked_number().unwrap_or_else(|| "-".into())
        ),
    );
    let status = match tokio::time::timeout(COMMIT_WAIT, committed).await {
        Ok(Ok(())) => StatusCode::CREATED,
        // Queued: the writer retries until it is stored.
        _ => StatusCode::ACCEPTED,
    };
    (status, Json(view(&ticket, now, true))).into_response()
}

/// Body of `POST /api/v1/tickets/{id}/state`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    pub state: String,
    /// Why, into the history.
    #[serde(default)]
    pub note: Option<String>,
    /// Who (an agent's id); the token's name when left out.
    #[serde(default)]
    pub by: Option<String>,
}

pub(super) async fn change(
    who: Authorized<Supervise>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<StateBody>, JsonRejection>,
) -> Response {
    let Some(desk) = state.tickets.clone() else {
        return no_store();
    };
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => return bad_json(e),
    };
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no ticket `{id}`; list them with GET /api/v1/tickets"),
        );
    };
    let Some(to) = TicketState::parse(&body.state) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown state `{}`; use open, in_progress, called_back, failed or closed",
                body.state
            ),
        );
    };
    let by = body
        .by
        .or_else(|| who.caller.token.as_ref().map(|t| t.name.to_string()))
        .unwrap_or_default();
    let now = desk.now();
    let committed = {
        let mut book = desk.book();
        let entry = match book.plan_change(id, to, &by, body.note, now) {
            Ok(e) => e,
            Err(e) => {
                let status = match e {
                    crate::tickets::ChangeError::UnknownTicket(_) => StatusCode::NOT_FOUND,
                    crate::tickets::ChangeError::Illegal { .. } => StatusCode::CONFLICT,
                    crate::tickets::ChangeError::Invalid(_) => StatusCode::BAD_REQUEST,
                };
                return error(status, e.to_string());
            }
        };
        let committed = match desk.store.submit_durable(Write::TicketChanged {
            id,
            state: to,
            entry: Box::new(entry.clone()),
        }) {
            Ok(rx) => rx,
            Err(full) => return error(StatusCode::SERVICE_UNAVAILABLE, full.to_string()),
        };
        book.apply_change(id, entry);
        committed
    };
    log_change(
        &who.caller,
        format_args!("ticket {id} became {to} (by {by})"),
    );
    let status = match tokio::time::timeout(COMMIT_WAIT, committed).await {
        Ok(Ok(())) => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    let book = desk.book();
    match book.get(id) {
        Some(t) => (status, Json(view(t, now, true))).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no ticket {id}")),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// Open and overdue tickets per tenant, at scrape time; every configured
/// tenant has both series, at 0 when it has no tickets.
#[derive(Debug)]
pub struct TicketCollector(Arc<Desk>);

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

impl Collector for TicketCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = self.0.now();
        let open: Family<TenantLabel, Gauge> = Family::default();
        let overdue: Family<TenantLabel, Gauge> = Family::default();
        for tenant in self.0.tenants.ids() {
            let l = TenantLabel {
                tenant: tenant.to_owned(),
            };
            let _ = open.get_or_create(&l);
            let _ = overdue.get_or_create(&l);
        }
        {
            let book = self.0.book();
            for (tenant, c) in book.counts(now) {
                let l = TenantLabel {
                    tenant: tenant.to_owned(),
                };
                open.get_or_create(&l).set(c.open as i64);
                overdue.get_or_create(&l).set(c.overdue as i64);
            }
        }
        let m = encoder.encode_descriptor(
            "tickets_open",
            "Tickets still owed feedback (open, in progress, failed), per tenant",
            None,
            open.metric_type(),
        )?;
        open.encode(m)?;
        let m = encoder.encode_descriptor(
            "tickets_overdue",
            "Tickets still owed feedback past their due time of 24 service hours, per tenant",
            None,
            overdue.metric_type(),
        )?;
        overdue.encode(m)?;
        Ok(())
    }
}
