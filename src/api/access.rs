//! Who may use the HTTP API: bearer tokens with roles (`http.tokens`),
//! `Host` and `Origin` checks against cross-site requests and DNS
//! rebinding, and what is open without a token.
//!
//! Two pieces, so a new route gets the same rules with one line:
//!
//! - [`guard`], a middleware on the whole router: it checks `Host` (every
//!   request) and `Origin` (every request that may change something),
//!   identifies the bearer token, and refuses any `POST`/`PUT`/`PATCH`/
//!   `DELETE` without a token of at least [`Role::Supervisor`]. It leaves
//!   the caller in the request as a [`Caller`].
//! - [`Authorized<N>`], an extractor that demands what a route needs
//!   ([`Read`], [`Metrics`], [`Supervise`], [`Administer`]); as a handler
//!   argument it also says who is asking, for the log line of a change.
//!   For a group of routes apply it as a layer with [`Gate::require`].
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use zentrale::api::access::{Authorized, Gate, Read, Supervise};
//!
//! async fn board() -> &'static str { "..." }
//! async fn pause_all(who: Authorized<Supervise>) -> String {
//!     format!("paused by {}", who.caller)
//! }
//! # fn gate() -> Gate { unimplemented!() }
//! let gate: Gate = gate();
//! let wallboard: Router<Gate> = Router::new()
//!     .route("/wallboard/data", get(board))
//!     .route_layer(gate.require::<Read>())         // GET: a read token, unless open_reads
//!     .route("/wallboard/pause-all", post(pause_all)); // the handler's argument demands supervisor
//! let app: Router = wallboard
//!     .layer(axum::middleware::from_fn_with_state(gate.clone(), zentrale::api::access::guard))
//!     .with_state(gate);
//! ```
//!
//! Answers: 401 with `WWW-Authenticate: Bearer` when the token is missing
//! or unknown (the same answer for both: it tells nothing about which
//! tokens exist), 403 when the token's role is too low or the `Origin` is
//! not allowed, 421 when `Host` names a host that is not this server. Each
//! refusal counts in `zentrale_http_refused_total{reason}` and is logged,
//! at most once per 10 s per client address (`logging::limit`).
//!
//! Tokens are compared as SHA-256 digests in constant time and every
//! configured token is compared, so the time taken says nothing about how
//! much of a guess was right. A token is never logged; only its name is.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{FromExtractorLayer, Next, from_extractor_with_state};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};

use crate::config::{HttpConfig, Role};
use crate::logging::limit::KeyedLogLimit;
use crate::metrics::ReasonLabel;

/// Refusals logged per client address: one line per 10 s, with the count
/// of those left out.
static REFUSALS: KeyedLogLimit<IpAddr> = KeyedLogLimit::new(Duration::from_secs(10), 1);

/// A configured token, as the gate keeps it: the digest of the secret,
/// never the secret.
struct Known {
    name: Arc<str>,
    digest: [u8; 32],
    role: Role,
}

/// The rules in force, built from `http:`.
struct Policy {
    tokens: Vec<Known>,
    open_reads: bool,
    open_metrics: bool,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

/// The access rules of the HTTP server, shared by its routes and replaced
/// on reload ([`Gate::update`]): a new token works, and a removed one
/// stops working, without a restart. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    policy: ArcSwap<Policy>,
    refused: Family<ReasonLabel, Counter>,
}

impl Gate {
    /// The rules of `http`; refusals count in `refused` by reason.
    pub fn new(http: &HttpConfig, refused: Family<ReasonLabel, Counter>) -> Gate {
        Gate {
            inner: Arc::new(Inner {
                policy: ArcSwap::from_pointee(Policy::new(http)),
                refused,
            }),
        }
    }

    /// Takes the rules of a reloaded config.
    pub fn update(&self, http: &HttpConfig) {
        self.inner.policy.store(Arc::new(Policy::new(http)));
    }

    /// A layer demanding `N` of every route above it (`Router::route_layer`).
    pub fn require<N: Need>(&self) -> FromExtractorLayer<Authorized<N>, Gate> {
        from_extractor_with_state(self.clone())
    }

    fn refuse(&self, refusal: Refusal, caller: &Caller, method: &Method, path: &str) -> Response {
        self.inner
            .refused
            .get_or_create(&ReasonLabel {
                reason: refusal.reason(),
            })
            .inc();
        if let Some(admit) = REFUSALS.admit(caller.addr.ip(), Instant::now()) {
            tracing::warn!(
                client = %caller.addr,
                token = caller.token.as_ref().map(|t| &*t.name),
                %method,
                path,
                reason = refusal.reason(),
                suppressed = admit.suppressed,
                "HTTP request refused",
            );
        }
        refusal.into_response()
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.inner.policy.load();
        f.debug_struct("Gate")
            .field(
                "tokens",
                &p.tokens.iter().map(|t| &*t.name).collect::<Vec<_>>(),
            )
            .field("open_reads", &p.open_reads)
            .field("open_metrics", &p.open_metrics)
            .finish()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(secret));
    out
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// `host[:port]` split; IPv6 literals keep their brackets off.
fn split_host(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((ip, tail)) => (ip, tail.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

impl Policy {
    fn new(http: &HttpConfig) -> Policy {
        Policy {
            tokens: http
                .tokens
                .iter()
                .map(|t| Known {
                    name: t.name.as_str().into(),
                    digest: digest(t.secret.as_bytes()),
                    role: t.role,
                })
                .collect(),
            open_reads: http.open_reads,
            open_metrics: http.open_metrics,
            allowed_hosts: http.allowed_hosts.clone(),
            allowed_origins: http.allowed_origins.clone(),
        }
    }

    /// The token a client presented: `Ok(None)` without `Authorization`,
    /// `Err` for a header that is not a known bearer token.
    fn identify(&self, authorization: Option<&HeaderValue>) -> Result<Option<TokenId>, Refusal> {
        let Some(value) = authorization else {
            return Ok(None);
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .ok_or(Refusal::BadToken)?;
        let d = digest(presented.as_bytes());
        // Every token is compared, whatever matched before.
        let mut found = None;
        for k in &self.tokens {
            if same(&d, &k.digest) {
                found = Some(TokenId {
                    name: k.name.clone(),
                    role: k.role,
                });
            }
        }
        found.map(Some).ok_or(Refusal::BadToken)
    }

    /// Whether `Host` names this server: an IP address (a browser sends
    /// one only when the page's URL has it, so it cannot come from DNS
    /// rebinding), `localhost`, or a name in `allowed_hosts`.
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = split_host(&host);
        if name.parse::<IpAddr>().is_ok() || name == "localhost" {
            return true;
        }
        // `name` in the list: any port; `name:port`: that port only.
        self.allowed_hosts
            .iter()
            .any(|a| *a == host || (port.is_some() && *a == name))
    }

    /// Whether a page of `origin` may send a change to a server reached as
    /// `host`: the same origin, or one in `allowed_origins`. `null`
    /// (sandboxed pages, files) never may.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, host) {
            (Some(a), Some(h)) => a == h.trim().to_ascii_lowercase(),
            _ => false,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No token where one is needed: 401.
    NoToken,
    /// A token that is not a configured one, or not a bearer token: 401.
    BadToken,
    /// A token whose role is too low: 403.
    Role { has: Role, needs: Role },
    /// `Host` names another server (DNS rebinding): 421.
    Host,
    /// A change from a page of another origin: 403.
    Origin,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::BadToken => "bad_token",
            Refusal::Role { .. } => "role",
            Refusal::Host => "host",
            Refusal::Origin => "origin",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = |status: StatusCode, error: String| {
            (status, axum::Json(serde_json::json!({ "error": error }))).into_response()
        };
        match self {
            Refusal::NoToken | Refusal::BadToken => {
                let mut r = body(
                    StatusCode::UNAUTHORIZED,
                    "a valid API token is needed: send `Authorization: Bearer <token>` with a token from `http.tokens`".into(),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"zentrale\""),
                );
                r
            }
            Refusal::Role { has, needs } => body(
                StatusCode::FORBIDDEN,
                format!("this token's role `{has}` may not do this; it needs `{needs}`"),
            ),
            Refusal::Host => body(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header names another server: use the address zentrale listens on, or add the name to `http.allowed_hosts`".into(),
            ),
            Refusal::Origin => body(
                StatusCode::FORBIDDEN,
                "changes from a web page of another origin are refused: add the origin to `http.allowed_origins` if it is yours".into(),
            ),
        }
    }
}

/// A token a request carried, by its name.
#[derive(Debug, Clone)]
pub struct TokenId {
    /// The token's `name` in the config.
    pub name: Arc<str>,
    pub role: Role,
}

/// Who sent a request, as the [`guard`] found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client's address (the TCP peer).
    pub addr: SocketAddr,
    /// The token it presented, if any (always a configured one).
    pub token: Option<TokenId>,
}

impl Caller {
    fn role(&self) -> Option<Role> {
        self.token.as_ref().map(|t| t.role)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.token {
            Some(t) => write!(f, "token {} from {}", t.name, self.addr),
            None => write!(f, "{} without a token", self.addr),
        }
    }
}

/// Methods that change nothing.
fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The client's address of an admitted HTTP connection, as handlers see it
/// through `ConnectInfo<ClientAddr>` (axum derives `ConnectInfo` only for its
/// own `TcpListener`; the listener the daemon serves on, which guards the
/// connection limits, says how to get it from its connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The middleware for the whole router: `Host`, `Origin` and the token
/// (see the [module](self)); puts a [`Caller`] into the request.
pub async fn guard(
    axum::extract::State(gate): axum::extract::State<Gate>,
    mut req: Request,
    next: Next,
) -> Response {
    let policy = gate.inner.policy.load();
    let addr = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map(|c| c.0.0)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut caller = Caller { addr, token: None };
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    if let Some(h) = &host
        && !policy.host_allowed(h)
    {
        return gate.refuse(Refusal::Host, &caller, &method, &path);
    }
    if !is_safe(&method)
        && let Some(origin) = req.headers().get(header::ORIGIN)
        && !origin
            .to_str()
            .is_ok_and(|o| policy.origin_allowed(o, host.as_deref()))
    {
        return gate.refuse(Refusal::Origin, &caller, &method, &path);
    }
    match policy.identify(req.headers().get(header::AUTHORIZATION)) {
        Ok(token) => caller.token = token,
        Err(refusal) => return gate.refuse(refusal, &caller, &method, &path),
    }
    if !is_safe(&method)
        && let Err(refusal) = decide(Role::Supervisor, false, caller.role())
    {
        return gate.refuse(refusal, &caller, &method, &path);
    }
    drop(policy);
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Whether a caller with `role` may do what needs `needs`; `open`: the
/// config lets it through without a token.
fn decide(needs: Role, open: bool, role: Option<Role>) -> Result<(), Refusal> {
    match role {
        _ if open => Ok(()),
        None => Err(Refusal::NoToken),
        Some(has) if has >= needs => Ok(()),
        Some(has) => Err(Refusal::Role { has, needs }),
    }
}

/// What a route needs; see [`Authorized`].
pub trait Need: Send + Sync + 'static {
    /// The role needed.
    const ROLE: Role;
    /// Whether the config lets it through without a token.
    fn open(gate: &Gate) -> bool;
}

/// Reading the API: a `read` token, or none with `open_reads: true`.
pub struct Read;
/// `/metrics`: a `read` token, or none with `open_metrics: true` (the default).
pub struct Metrics;
/// Changing agents: a `supervisor` token.
pub struct Supervise;
/// Reloading the config: an `admin` token.
pub struct Administer;

impl Need for Read {
    const ROLE: Role = Role::Read;
    fn open(gate: &Gate) -> bool {
        gate.inner.policy.load().open_reads
    }
}
impl Need for Metrics {
    const ROLE: Role = Role::Read;
    fn open(gate: &Gate) -> bool {
        gate.inner.policy.load().open_metrics
    }
}
impl Need for Supervise {
    const ROLE: Role = Role::Supervisor;
    fn open(_: &Gate) -> bool {
        false
    }
}
impl Need for Administer {
    const ROLE: Role = Role::Admin;
    fn open(_: &Gate) -> bool {
        false
    }
}

/// Proof that the request may do what `N` needs, and who sent it. As a
/// handler argument or, for several routes, a layer ([`Gate::require`]).
/// Without the [`guard`] in front every request counts as tokenless.
pub struct Authorized<N> {
    pub caller: Caller,
    need: PhantomData<N>,
}

impl<N: Need, S: Send + Sync> FromRequestParts<S> for Authorized<N>
where
    Gate: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let gate = Gate::from_ref(state);
        let caller = parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            token: None,
        });
        match decide(N::ROLE, N::open(&gate), caller.role()) {
            Ok(()) => Ok(Authorized {
                caller,
                need: PhantomData,
            }),
            Err(refusal) => Err(gate.refuse(refusal, &caller, &parts.method, parts.uri.path())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiToken;

    fn http() -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            connections: crate::admission::connections::ConnectionLimits::HTTP,
            tokens: vec![
                ApiToken {
                    name: "wallboard".into(),
                    secret: "read-secret-0123456789".into(),
                    role: Role::Read,
                },
                ApiToken {
                    name: "leitstand".into(),
                    secret: "super-secret-0123456789".into(),
                    role: Role::Supervisor,
                },
            ],
            open_reads: false,
            open_metrics: true,
            allowed_hosts: vec!["zentrale.example".into(), "board.example:9000".into()],
            allowed_origins: vec!["https://leitstand.example".into()],
            event_streams: crate::config::DEFAULT_EVENT_STREAMS,
            wallboard_agent_names: false,
        }
    }

    fn bearer(s: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {s}")).unwrap()
    }

    #[test]
    fn tokens_are_known_by_their_secret_only() {
        let p = Policy::new(&http());
        let t = p
            .identify(Some(&bearer("super-secret-0123456789")))
            .unwrap()
            .unwrap();
        assert_eq!((&*t.name, t.role), ("leitstand", Role::Supervisor));
        let lower = HeaderValue::from_static("bearer read-secret-0123456789");
        assert_eq!(p.identify(Some(&lower)).unwrap().unwrap().role, Role::Read);
        assert_eq!(p.identify(None).unwrap().map(|t| t.role), None);
        for bad in [
            bearer("super-secret-012345678"),
            bearer("super-secret-01234567890"),
            bearer(""),
            HeaderValue::from_static("Basic c3VwZXI6c2VjcmV0"),
            HeaderValue::from_static("super-secret-0123456789"),
        ] {
            assert_eq!(
                p.identify(Some(&bad)).unwrap_err(),
                Refusal::BadToken,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn roles_include_the_lower_ones() {
        assert_eq!(decide(Role::Read, false, Some(Role::Admin)), Ok(()));
        assert_eq!(
            decide(Role::Supervisor, false, Some(Role::Supervisor)),
            Ok(())
        );
        assert_eq!(
            decide(Role::Admin, false, Some(Role::Supervisor)),
            Err(Refusal::Role {
                has: Role::Supervisor,
                needs: Role::Admin
            })
        );
        assert_eq!(decide(Role::Read, false, None), Err(Refusal::NoToken));
        assert_eq!(decide(Role::Read, true, None), Ok(()));
    }

    #[test]
    fn hosts_by_address_localhost_or_allowed_name() {
        let p = Policy::new(&http());
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "10.1.2.3:8080",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "zentrale.example",
            "zentrale.example:8080",
            "board.example:9000",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        // A rebinding attacker's name, with the right port or without.
        for bad in [
            "evil.example:8080",
            "evil.example",
            "board.example:9001",
            "board.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins_same_or_allowed() {
        let p = Policy::new(&http());
        let host = Some("127.0.0.1:8080");
        assert!(p.origin_allowed("http://127.0.0.1:8080", host));
        assert!(p.origin_allowed("https://leitstand.example", host));
        assert!(p.origin_allowed("HTTPS://Leitstand.Example", host));
        assert!(!p.origin_allowed("https://evil.example", host));
        assert!(!p.origin_allowed("http://127.0.0.1:8081", host));
        assert!(!p.origin_allowed("null", host));
        assert!(!p.origin_allowed("http://127.0.0.1:8080", None));
    }

    #[test]
    fn debug_shows_names_not_secrets() {
        let gate = Gate::new(&http(), Family::default());
        let text = format!("{gate:?} {:?}", http());
        assert!(
            text.contains("wallboard") && text.contains("leitstand"),
            "{text}"
        );
        assert!(!text.contains("secret-0123456789"), "{text}");
    }
}
