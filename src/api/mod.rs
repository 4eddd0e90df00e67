//! HTTP: `/metrics` for Prometheus (OpenMetrics when asked for, else the
//! classic text format), `/healthz` for load balancers, and the
//! supervisor API under `/api/v1` (JSON):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/v1/queues` | every queue with live figures (also `by_origin`: per municipality and via 115 or local) |
//! | GET | `/api/v1/agents` | every agent with state (`unreachable` when idle without a registered phone) and since when |
//! | POST | `/api/v1/agents/{id}/login` | log in |
//! | POST | `/api/v1/agents/{id}/logout` | log out (after the current call) |
//! | POST | `/api/v1/agents/{id}/pause` | pause; body `{"reason": "break"}` (optional: the first of `acd.pause_reasons`); 422 for a reason not in `acd.pause_reasons` |
//! | POST | `/api/v1/agents/{id}/unpause` | available again |
//! | GET | `/api/v1/tickets` | tickets (filters `state`, `tenant`, `overdue`); see [`tickets`] |
//! | GET | `/api/v1/tickets/{id}` | one ticket with its history |
//! | POST | `/api/v1/tickets` | take a ticket (supervisor): 201, or 400 naming what is wrong |
//! | POST | `/api/v1/tickets/{id}/state` | change its state (supervisor): 409 for an illegal change |
//! | POST | `/api/v1/reload` | re-read the config (like `SIGHUP`): 200 `{"status": "reloaded", "restart_needed": [...]}`, or 422 `{"error": "file:line:col ..."}` and the old config stays |
//!
//! Errors come back as `{"error": "..."}` with 404 (unknown agent) or 409
//! (the state does not allow it), saying what to do.
//!
//! Agent changes are [`AgentCommand`]s handed to the core thread
//! ([`command_agent`]), which applies them in order with calls, timers and
//! feature codes and answers with the agent's new state. Reads take a
//! snapshot of the shared ACD directly.
//!
//! Access ([`access`]): every `POST` needs a bearer token from
//! `http.tokens`, on loopback too: agent changes a `supervisor` token,
//! reload an `admin` one. `GET`s of the API need a `read` token unless
//! `http.open_reads`, `/metrics` unless `http.open_metrics` (the default);
//! `/healthz` is always open. `Host` and `Origin` are checked against DNS
//! rebinding and cross-site requests. Each change is logged with the
//! token's name and the client's address.

pub mod access;
pub mod stream;
pub mod tickets;
mod wallboard;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::acd::{
    Acd, AgentAction, AgentCommand, AgentCounts, AgentError, AgentSnapshot, AgentState,
    PauseReason, PendingChange,
};
use crate::logging::limit::KeyedLogLimit;
use crate::metrics::Metrics;
use access::{Administer, Authorized, Gate, Read, Supervise};

/// Changes logged per token: 20 lines per 10 s each, then a count, so a
/// script gone wild cannot flood the log.
static CHANGES: KeyedLogLimit<Arc<str>> = KeyedLogLimit::new(Duration::from_secs(10), 20);

/// Logs a change made through the API with who made it (rate-limited).
fn log_change(who: &access::Caller, what: std::fmt::Arguments<'_>) {
    let name: Arc<str> = who
        .token
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| "-".into());
    match CHANGES.admit(name.clone(), Instant::now()) {
        Some(admit) if admit.suppressed > 0 => tracing::info!(
            token = %name,
            client = %who.addr,
            suppressed = admit.suppressed,
            "{what}"
        ),
        Some(_) => tracing::info!(token = %name, client = %who.addr, "{what}"),
        None => {}
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: Arc<Metrics>,
    /// For reads (snapshots); changes go through `core`.
    pub acd: Arc<Acd>,
    /// Applies agent commands ([`command_agent`]).
    pub core: Arc<dyn AgentCommands>,
    /// Asks for a reload of the config; the answer comes on the one-shot.
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Who may do what ([`access`]); the daemon updates it on reload.
    pub gate: Gate,
    /// The tickets (`None` without `store:`: the tickets API answers 503).
    pub tickets: Option<Arc<tickets::Desk>>,
}

impl FromRef<ApiState> for Gate {
    fn from_ref(state: &ApiState) -> Gate {
        state.gate.clone()
    }
}

/// Where agent changes go: the core thread, which applies them in order
/// with its other inputs. The daemon's handle on the core thread is one;
/// the API knows no more of the daemon than this (the daemon imports the
/// API to start it, not the other way round).
pub trait AgentCommands: Send + Sync {
    /// Hands `command` over and waits for the outcome: the agent as the
    /// command left it, or why it was refused; `None` when the core has
    /// stopped (zentrale is shutting down).
    fn agent_command(&self, command: AgentCommand) -> CommandOutcome<'_>;
}

/// What [`AgentCommands::agent_command`] comes back with.
pub type CommandOutcome<'a> =
    std::pin::Pin<Box<dyn Future<Output = Option<Result<AgentSnapshot, AgentError>>> + Send + 'a>>;

/// A reload request to the core: the answer is `Ok(settings that need a
/// restart to change)` or `Err(why the new config was refused)`.
pub type ReloadRequest = oneshot::Sender<Result<Vec<String>, String>>;

/// The HTTP routes.
pub fn router(state: ApiState) -> Router {
    let gate = state.gate.clone();
    // What a route needs: a layer over the reads, an extractor argument in
    // the handlers of changes (which also names who made the change).
    let reads = Router::new()
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/calls", get(stream::calls))
        .route("/api/v1/snapshot", get(stream::snapshot))
        .route("/api/v1/events", get(stream::events))
        .route("/api/v1/tickets", get(tickets::list))
        .route("/api/v1/tickets/{id}", get(tickets::one))
        .route_layer(gate.require::<Read>());
    let metrics = Router::new()
        .route("/metrics", get(metrics_handler))
        .route_layer(gate.require::<access::Metrics>());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(wallboard::routes())
        .route("/api/v1/token", get(stream::token))
        .merge(reads)
        .merge(metrics)
        .route("/api/v1/agents/{id}/{action}", post(agent_action))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/tickets", post(tickets::create))
        .route("/api/v1/tickets/{id}/state", post(tickets::change))
        .layer(axum::middleware::from_fn_with_state(gate, access::guard))
        .with_state(state)
}

/// Serves the routes on `listener` until the process ends.
pub async fn serve<L>(listener: L, state: ApiState)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> access::ClientAddr:
        axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    // The first picture before the first request: a stream opened at once
    // must not start from a snapshot without the queues and agents.
    let now = std::time::Instant::now();
    state
        .metrics
        .events
        .observe_acd(&state.acd.snapshot(now), now);
    // Queue and agent changes into the event stream.
    tokio::spawn(stream::sample(
        state.acd.clone(),
        state.metrics.events.clone(),
    ));
    // The client's address reaches the handlers (access control logs it).
    let app = router(state).into_make_service_with_connect_info::<access::ClientAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

/// OpenMetrics for clients that ask for it (Prometheus does), the classic
/// text format for everyone else (`curl`, `promtool check metrics`).
async fn metrics_handler(State(state): State<ApiState>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode(),
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode_prometheus_text(),
        )
    }
}

/// One queue in `GET /api/v1/queues`.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub name: String,
    pub tenant: String,
    /// As in the config: `longest-idle`, `ring-all`, ...
    pub strategy: String,
    pub waiting: usize,
    pub ringing: usize,
    pub longest_wait_secs: Option<u64>,
    pub expected_wait_secs: u64,
    pub entered: u64,
    pub answered: u64,
    pub answered_in_threshold: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub offers_unanswered: u64,
    /// Percent over the sliding window; null before any judged call.
    pub service_level_percent: Option<f64>,
    pub service_level_target_percent: u8,
    pub service_level_threshold_secs: u64,
    /// The same figures per origin of the callers (the queue's threshold
    /// and window), e.g. a town's overflow in a district queue.
    pub by_origin: Vec<OriginView>,
    pub agents: AgentCounts,
}

/// A queue's figures for the callers of one origin.
#[derive(Debug, Serialize)]
pub struct OriginView {
    pub municipality: String,
    /// `115` or `local`.
    pub via: &'static str,
    pub entered: u64,
    pub answered: u64,
    pub answered_in_threshold: u64,
    pub abandoned: u64,
    pub timed_out: u64,
    pub service_level_percent: Option<f64>,
}

/// One agent in `GET /api/v1/agents`.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub id: String,
    pub tenant: String,
    /// `logged_out`, `available`, `unreachable` (logged in and idle, but
    /// no phone registered: offered nothing), `reserved`, `ringing`,
    /// `talking`, `wrap_up`, `paused`.
    pub state: &'static str,
    /// The pause reason while paused.
    pub reason: Option<String>,
    pub registered: bool,
    pub since_secs: u64,
    /// `pause:<reason>` or `logout` when asked for during a call.
    pub pending: Option<String>,
    pub queue: Option<String>,
    pub answered_today: u32,
    pub talk_today_secs: u64,
    pub missed_in_row: u32,
}

fn state_name(s: &AgentState) -> (&'static str, Option<String>) {
    match s {
        AgentState::LoggedOut => ("logged_out", None),
        AgentState::Available => ("available", None),
        AgentState::Reserved => ("reserved", None),
        AgentState::Ringing => ("ringing", None),
        AgentState::Talking => ("talking", None),
        AgentState::WrapUp => ("wrap_up", None),
        AgentState::Paused(r) => ("paused", Some(r.name().to_owned())),
    }
}

async fn queues(State(state): State<ApiState>) -> Json<Vec<QueueView>> {
    let snap = state.acd.snapshot(Instant::now());
    Json(
        snap.queues
            .into_iter()
            .map(|q| QueueView {
                name: q.name.to_string(),
                tenant: q.tenant.to_string(),
                strategy: q.strategy.name().into(),
                waiting: q.waiting,
                ringing: q.offered,
                longest_wait_secs: q.longest_wait.map(|d| d.as_secs()),
                expected_wait_secs: q.expected_wait.as_secs(),
                entered: q.counters.entered,
                answered: q.counters.answered,
                answered_in_threshold: q.counters.answered_in_threshold,
                abandoned: q.counters.abandoned,
                timed_out: q.counters.timed_out,
                offers_unanswered: q.counters.offers_unanswered,
                service_level_percent: q.service_level.percent,
                service_level_target_percent: q.service_level.target_percent,
                service_level_threshold_secs: q.service_level.threshold.as_secs(),
                by_origin: q
                    .segments
                    .iter()
                    .map(|s| OriginView {
                        municipality: s.segment.municipality.to_string(),
                        via: crate::dialplan::via_label(s.segment.via_115),
                        entered: s.counters.entered,
                        answered: s.counters.answered,
                        answered_in_threshold: s.counters.answered_in_threshold,
                        abandoned: s.counters.abandoned,
                        timed_out: s.counters.timed_out,
                        service_level_percent: s.service_level.percent,
                    })
                    .collect(),
                agents: q.agents,
            })
            .collect(),
    )
}

async fn agents(State(state): State<ApiState>) -> Json<Vec<AgentView>> {
    let now = Instant::now();
    let snap = state.acd.snapshot(now);
    Json(
        snap.agents
            .into_iter()
            .map(|a| agent_view(a, now))
            .collect(),
    )
}

fn agent_view(a: AgentSnapshot, now: Instant) -> AgentView {
    let (name, reason) = match state_name(&a.state) {
        // Available without a phone is not available: no call reaches it.
        ("available", r) if !a.registered => ("unreachable", r),
        other => other,
    };
    AgentView {
        id: a.id.to_string(),
        tenant: a.tenant.to_string(),
        state: name,
        reason,
        registered: a.registered,
        since_secs: now.saturating_duration_since(a.since).as_secs(),
        pending: a.pending.map(|p| match p {
            PendingChange::Pause(r) => format!("pause:{}", r.name()),
            PendingChange::Logout => "logout".into(),
        }),
        queue: a.queue.map(|q| q.to_string()),
        answered_today: a.answered_today,
        talk_today_secs: a.talk_today.as_secs(),
        missed_in_row: a.missed_in_row,
    }
}

/// Body of `POST /api/v1/agents/{id}/pause`.
#[derive(Debug, Default, Deserialize)]
pub struct PauseBody {
    pub reason: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

fn error(status: StatusCode, error: String) -> Response {
    (status, Json(ErrorBody { error })).into_response()
}

/// Why an agent command was not applied: the HTTP status and the message
/// for `{"error": ...}`. Answers as that (`IntoResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRefused {
    pub status: StatusCode,
    pub error: String,
}

impl From<AgentError> for CommandRefused {
    fn from(e: AgentError) -> Self {
        let status = match e {
            AgentError::Unknown(_) => StatusCode::NOT_FOUND,
            AgentError::UnknownPauseReason { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::CONFLICT,
        };
        CommandRefused {
            status,
            error: e.to_string(),
        }
    }
}

impl IntoResponse for CommandRefused {
    fn into_response(self) -> Response {
        error(self.status, self.error)
    }
}

/// Hands `command` to the core, which applies it in order with every other
/// input, and returns the agent as the command left it: 404 for an unknown
/// agent, 422 for a pause reason not in `acd.pause_reasons`, 409 when the
/// agent's state does not allow it, 503 when zentrale is shutting down.
/// Any route that changes an agent calls this (and logs who asked, with
/// `log_change`).
pub async fn command_agent(
    state: &ApiState,
    command: AgentCommand,
) -> Result<AgentView, CommandRefused> {
    match state.core.agent_command(command).await {
        Some(Ok(agent)) => Ok(agent_view(agent, Instant::now())),
        Some(Err(e)) => Err(e.into()),
        None => Err(CommandRefused {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "zentrale is shutting down; the agent was not changed".into(),
        }),
    }
}

async fn agent_action(
    who: Authorized<Supervise>,
    State(state): State<ApiState>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<PauseBody>>,
) -> Response {
    let action = match action.as_str() {
        "login" => AgentAction::Login,
        "logout" => AgentAction::Logout,
        "pause" => AgentAction::Pause {
            // No reason: the first configured, chosen by the ACD.
            reason: body
                .and_then(|Json(b)| b.reason)
                .map(|name| PauseReason::from_name(&name)),
        },
        "unpause" => AgentAction::Unpause,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action `{other}`: use login, logout, pause or unpause"),
            );
        }
    };
    let name = action.name();
    match command_agent(&state, AgentCommand::new(id.as_str(), action)).await {
        Ok(agent) => {
            log_change(
                &who.caller,
                format_args!("agent {id} changed by the API: {name}"),
            );
            Json(agent).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// The answer of `POST /api/v1/reload`.
#[derive(Debug, Serialize)]
pub struct ReloadView {
    pub status: &'static str,
    /// Changed settings that only a restart applies (listeners, RTP range, ...).
    pub restart_needed: Vec<String>,
}

async fn reload(who: Authorized<Administer>, State(state): State<ApiState>) -> Response {
    log_change(
        &who.caller,
        format_args!("config reload asked for by the API"),
    );
    let (tx, rx) = oneshot::channel();
    if state.reload.send(tx).await.is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "zentrale is shutting down; no reload".into(),
        );
    }
    match rx.await {
        Ok(Ok(restart_needed)) => Json(ReloadView {
            status: "reloaded",
            restart_needed,
        })
        .into_response(),
        Ok(Err(errors)) => error(StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the reload was not answered (shutting down?); try again".into(),
        ),
    }
}
