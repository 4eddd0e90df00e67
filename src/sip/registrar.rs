//! The agents' registrar (RFC 3261 §10.3): softphones REGISTER their
//! extension here, authenticated by digest, and the ACD learns who is
//! reachable where from the [`RegistrationChange`]s.
//!
//! Sans-IO: [`Registrar::handle_register`] takes a parsed request, where it
//! came from and the time, and returns the response to send; the caller owns
//! the socket and the timer that calls [`Registrar::expire`] at
//! [`Registrar::next_expiry`].
//!
//! Choices made where the RFC leaves room:
//!
//! - **Unknown extensions are challenged like known ones**, and credentials
//!   for an unknown user are answered exactly like a wrong password (401 with
//!   a fresh challenge), so the answers do not tell which extensions exist.
//!   404 is never sent for an AOR with a user part. A user authenticated for
//!   one extension who registers another gets 403.
//! - **Malformed requests get 400 before authentication** (missing To user
//!   aside: 404): that tells an outsider nothing about accounts, and keeps
//!   nonsense away from the digest state. 423 comes after authentication,
//!   as in the RFC's order.
//! - **A Contact URI with escaped headers** (`sip:u@h?Route=...`, RFC 4475
//!   regescrt) is refused with 400: we would never use those headers, and
//!   silently dropping them would store a contact other than the one given.
//! - **At most [`MAX_CONTACTS`] bindings per extension.** A request that
//!   itself carries more gets 403; otherwise, when new contacts would exceed
//!   the limit, the bindings refreshed longest ago are dropped. Softphones
//!   behind NAT often re-register with a new port and no `+sip.instance`;
//!   refusing them would lock agents out until the old binding expires.
//! - **Binding identity:** the same `+sip.instance` (RFC 5627), or the same
//!   Contact URI by scheme, user, host (case-insensitive), port and
//!   `transport` parameter — a simplification of RFC 3261 §19.1.4 that is
//!   exact for what phones send. `reg-id` / outbound (RFC 5626) is not
//!   implemented.
//! - **Unparsable `expires` values** (contact parameter or Expires header)
//!   fall back to the next source (header, then default) rather than 400,
//!   as RFC 3261 §20.19 suggests for Expires; values past `u32::MAX`
//!   saturate before clamping.
//! - **The Date header** needs wall time, which an `Instant` cannot give.
//!   The registrar maps `Instant`s to wall time from an anchor set with
//!   [`Registrar::set_wall_clock`]; without one it takes the system clock
//!   once, at the first request.
//! - **Responses carry a To tag**, including the 401s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Transport;
use super::auth::{AuthEvent, Authenticator, Challenge, Verdict};
pub use super::digest::Accounts;
use super::message::{
    Header, HeadersExt, Method, Request, Response, StatusCode, response, with_to_tag,
};

/// The most bindings one extension may have.
pub const MAX_CONTACTS: usize = 10;

/// Expiry bounds, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarSettings {
    /// Shorter nonzero requests are refused with 423 and this as Min-Expires.
    pub min_expires: u32,
    /// Longer requests are cut to this.
    pub max_expires: u32,
    /// Used when neither the contact nor the request gives an expiry.
    pub default_expires: u32,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
        }
    }
}

/// One registered contact of an extension.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The Contact URI as the phone gave it (without `<>` and header params).
    pub contact: String,
    /// Where the REGISTER came from: behind NAT, where to send requests.
    pub source: SocketAddr,
    /// The transport the REGISTER came on.
    pub transport: Transport,
    /// When the binding lapses unless refreshed.
    pub expires_at: Instant,
    /// Call-ID of the REGISTER that made or last refreshed the binding.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// The contact's `q` preference, if given.
    pub q: Option<f32>,
    /// The `+sip.instance` parameter (RFC 5627), unquoted, if given.
    pub instance: Option<String>,
    /// The User-Agent header of the REGISTER, if any.
    pub user_agent: Option<String>,
}

/// What a REGISTER did: the response to send, and what changed for the ACD.
#[derive(Debug)]
pub struct RegisterOutcome {
    /// The final response, To tag included.
    pub response: Response,
    /// The extension and how its registration changed, if it did.
    pub changed: Option<(String, RegistrationChange)>,
    /// A failed or refused authentication, for metrics and the log.
    pub auth_event: Option<AuthEvent>,
}

/// How an extension's registration changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationChange {
    /// It had no bindings and now has some.
    Registered,
    /// It had bindings and still has; they were added, refreshed or removed.
    Refreshed,
    /// Its last binding was removed.
    Unregistered,
}

/// The bindings of all extensions.
///
/// ```
/// use std::collections::HashMap;
/// use std::time::{Duration, Instant};
/// use zentrale::sip::auth::Authenticator;
/// use zentrale::sip::digest::DigestServer;
/// use zentrale::sip::lockout::{Lockout, LockoutSettings};
/// use zentrale::sip::message::{Request, StatusCode};
/// use zentrale::sip::registrar::{Registrar, RegistrarSettings};
/// use zentrale::sip::Transport;
///
/// let now = Instant::now();
/// let mut registrar = Registrar::new(RegistrarSettings::default());
/// let mut auth = Authenticator::new(
///     DigestServer::new("zentrale", Duration::from_secs(300), now),
///     Lockout::new(LockoutSettings::default()),
/// );
/// let accounts = HashMap::from([("2001".to_string(), "geheim".to_string())]);
/// let req = Request::try_from(
///     "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
///      Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
///      From: <sip:2001@127.0.0.1>;tag=a\r\nTo: <sip:2001@127.0.0.1>\r\n\
///      Call-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:2001@127.0.0.1:5062>\r\n\
///      Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
/// )
/// .unwrap();
/// let source = "127.0.0.1:5062".parse().unwrap();
/// let out = registrar.handle_register(&req, source, Transport::Udp, &mut auth, &accounts, now);
/// // No credentials yet: challenged.
/// assert_eq!(out.response.status_code, StatusCode::Unauthorized);
/// assert!(!registrar.is_registered("2001", now));
/// ```
#[derive(Debug)]
pub struct Registrar {
    settings: RegistrarSettings,
    // Per extension, least recently refreshed first. An entry is never
    // empty; expired bindings stay until `expire` or the next REGISTER.
    bindings: HashMap<String, Vec<Binding>>,
    // The earliest `expires_at` of all bindings, kept up to date by every
    // change: the core asks for it on every turn, and a scan of 200
    // agents' bindings each time was 8-11 % of a queued call's
    // instructions (`benches/load.sh queued-instructions`).
    next_expiry: Option<Instant>,
    wall_clock: Option<(Instant, SystemTime)>,
    /// Draws the To tags of the responses.
    tags: crate::rng::SeededRng,
}

/// What one Contact header value asks for.
#[derive(Debug)]
struct ContactRequest {
    uri: String,
    key: String,
    expires: Option<u64>,
    q: Option<f32>,
    instance: Option<String>,
}

enum Contacts {
    /// No Contact: a query.
    None,
    /// `Contact: *`.
    Star,
    List(Vec<ContactRequest>),
}

/// A failure answered with a status and a reason (for logs and Warning).
struct Reject(StatusCode, &'static str);

impl Registrar {
    /// An empty registrar.
    pub fn new(settings: RegistrarSettings) -> Self {
        Self::seeded(settings, crate::rng::SeededRng::from_entropy())
    }

    /// [`Registrar::new`] with the To tags of its responses drawn from
    /// `rng` (the core's generator; a fixed seed in tests).
    pub fn seeded(settings: RegistrarSettings, rng: crate::rng::SeededRng) -> Self {
        Self {
            settings,
            bindings: HashMap::new(),
            next_expiry: None,
            wall_clock: None,
            tags: rng,
        }
    }

    /// Anchors the wall clock used for Date headers: `at` is `wall`.
    pub fn set_wall_clock(&mut self, at: Instant, wall: SystemTime) {
        self.wall_clock = Some((at, wall));
    }

    /// Handles a REGISTER that came from `source` over `transport`.
    ///
    /// Nothing changes unless the response is a 200 that follows successful
    /// authentication; all contacts of a request are applied or none
    /// (RFC 3261 §10.3 step 7).
    pub fn handle_register(
        &mut self,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        auth: &mut Authenticator,
        accounts: &dyn Accounts,
        now: Instant,
    ) -> RegisterOutcome {
        if self.wall_clock.is_none() {
            self.wall_clock = Some((now, SystemTime::now()));
        }
        let mut auth_event = None;
        let mut outcome =
            match self.register(req, source, transport, auth, accounts, &mut auth_event, now) {
                Ok(outcome) => outcome,
                Err(Reject(status, why)) => {
                    let mut resp = response(req, status);
                    if !why.is_empty() {
                        resp.headers
                            .push(Header::Warning(format!("399 zentrale \"{}\"", why).into()));
                    }
                    self.finish(resp, None, now)
                }
            };
        outcome.auth_event = auth_event;
        outcome
    }

    #[allow(clippy::too_many_arguments)] // one call site; the event is an out-parameter so `?` stays usable
    fn register(
        &mut self,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        auth: &mut Authenticator,
        accounts: &dyn Accounts,
        auth_event: &mut Option<AuthEvent>,
        now: Instant,
    ) -> Result<RegisterOutcome, Reject> {
        if req.method != Method::Register {
            return Err(Reject(StatusCode::MethodNotAllowed, "not a REGISTER"));
        }
        let extension = req
            .to_header()
            .ok()
            .and_then(|to| to.uri().ok())
            .ok_or(Reject(StatusCode::BadRequest, "bad To header"))?
            .auth
            .map(|a| a.user)
            .filter(|u| !u.is_empty())
            .ok_or(Reject(StatusCode::NotFound, "To has no user part"))?;
        let call_id = req
            .call_id_header()
            .map(|c| c.value().trim().to_string())
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or(Reject(StatusCode::BadRequest, "no Call-ID"))?;
        let cseq = req
            .cseq_header()
            .ok()
            .and_then(|c| super::headers::CSeq::parse(c.value()))
            .filter(|c| c.method == "REGISTER")
            .ok_or(Reject(StatusCode::BadRequest, "bad CSeq"))?
            .seq;
        let contacts = parse_contacts(req)?;
        let header_expires = req
            .expires_header()
            .and_then(|e| parse_delta_seconds(e.value()));

        // Authentication: the first credentials for our realm decide.
        let result = auth.authenticate(req, Challenge::Www, &extension, source.ip(), accounts, now);
        *auth_event = result.event;
        let user = match result.verdict {
            Verdict::Authenticated(user) => user,
            Verdict::Challenge(challenges) => {
                let mut resp = response(req, StatusCode::Unauthorized);
                for c in challenges {
                    resp.headers.push(Header::WwwAuthenticate(c.into()));
                }
                return Ok(self.finish(resp, None, now));
            }
            Verdict::Locked => {
                return Err(Reject(
                    StatusCode::Forbidden,
                    "too many failed authentications; try again later",
                ));
            }
            Verdict::BadRequest(why) => return Err(Reject(StatusCode::BadRequest, why)),
        };
        if user != extension {
            return Err(Reject(
                StatusCode::Forbidden,
                "credentials are for another extension",
            ));
        }

        let existing = self.bindings.get(&extension).cloned().unwrap_or_default();
        let was_announced = !existing.is_empty();
        let mut next: Vec<Binding> = existing
            .into_iter()
            .filter(|b| b.expires_at > now)
            .collect();

        match contacts {
            Contacts::None => {
                let resp = self.ok_with_bindings(req, &next, now);
                return Ok(self.finish(resp, None, now));
            }
            Contacts::Star => {
                if header_expires != Some(0) {
                    return Err(Reject(StatusCode::BadRequest, "Contact * needs Expires: 0"));
                }
                for b in &next {
                    check_order(b, &call_id, cseq)?;
                }
                next.clear();
            }
            Contacts::List(list) => {
                let default = u64::from(self.settings.default_expires);
                let expiries: Vec<u64> = list
                    .iter()
                    .map(|c| c.expires.or(header_expires).unwrap_or(default))
                    .collect();
                let min = u64::from(self.settings.min_expires);
                if expiries.iter().any(|&e| e > 0 && e < min) {
                    let mut resp = response(req, StatusCode::IntervalTooBrief);
                    resp.headers.push(Header::MinExpires(
                        self.settings.min_expires.to_string().into(),
                    ));
                    return Ok(self.finish(resp, None, now));
                }
                if expiries.iter().filter(|&&e| e > 0).count() > MAX_CONTACTS {
                    return Err(Reject(StatusCode::Forbidden, "too many contacts"));
                }
                let user_agent = req.user_agent_header().map(|u| u.value().to_string());
                // Bindings made by this request: a contact listed twice
                // must not trip the CSeq check against itself.
                let mut touched = 0usize;
                for (c, expires) in list.into_iter().zip(expiries) {
                    let mut i = 0;
                    while i < next.len() {
                        if is_same_binding(&next[i], &c) {
                            if i < next.len() - touched {
                                check_order(&next[i], &call_id, cseq)?;
                            } else {
                                touched -= 1;
                            }
                            next.remove(i);
                        } else {
                            i += 1;
                        }
                    }
                    if expires == 0 {
                        continue;
                    }
                    let secs = expires.min(u64::from(self.settings.max_expires));
                    next.push(Binding {
                        contact: c.uri,
                        source,
                        transport,
                        expires_at: now + Duration::from_secs(secs),
                        call_id: call_id.clone(),
                        cseq,
                        q: c.q,
                        instance: c.instance,
                        user_agent: user_agent.clone(),
                    });
                    touched += 1;
                }
                // Over the limit: the bindings refreshed longest ago go.
                // `touched <= MAX_CONTACTS`, so only older ones are dropped.
                if next.len() > MAX_CONTACTS {
                    next.drain(..next.len() - MAX_CONTACTS);
                }
            }
        }

        let changed = match (was_announced, next.is_empty()) {
            (false, true) => None,
            (false, false) => Some(RegistrationChange::Registered),
            (true, false) => Some(RegistrationChange::Refreshed),
            (true, true) => Some(RegistrationChange::Unregistered),
        };
        let resp = self.ok_with_bindings(req, &next, now);
        if next.is_empty() {
            self.bindings.remove(&extension);
        } else {
            self.bindings.insert(extension.clone(), next);
        }
        self.bindings_changed();
        Ok(self.finish(resp, changed.map(|c| (extension, c)), now))
    }

    /// The live bindings of `extension`, highest `q` first (no `q` counts
    /// as 1.0), most recently refreshed first among equals.
    pub fn bindings(&self, extension: &str, now: Instant) -> Vec<&Binding> {
        let mut live: Vec<&Binding> = self
            .bindings
            .get(extension)
            .map(|v| v.iter().rev().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        live.sort_by(|a, b| q_of(b).total_cmp(&q_of(a)));
        live
    }

    /// Whether `extension` has a live binding at `now`.
    pub fn is_registered(&self, extension: &str, now: Instant) -> bool {
        self.bindings
            .get(extension)
            .is_some_and(|v| v.iter().any(|b| b.expires_at > now))
    }

    /// Drops the bindings that have lapsed by `now`; returns the extensions
    /// whose last binding went, for the ACD to take offline.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        self.bindings.retain(|ext, v| {
            v.retain(|b| b.expires_at > now);
            if v.is_empty() {
                gone.push(ext.clone());
            }
            !v.is_empty()
        });
        self.bindings_changed();
        gone.sort();
        gone
    }

    /// Drops every binding of the extensions `keep` says no to (accounts a
    /// reload removed); returns them, sorted.
    pub fn retain_extensions(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|ext| !keep(ext))
            .cloned()
            .collect();
        for ext in &gone {
            self.bindings.remove(ext);
        }
        self.bindings_changed();
        gone.sort();
        gone
    }

    /// The end of the longest live registration made over the TCP
    /// connection from `source`, if any: the connection must stay open
    /// until then (requests to the phone go through it).
    pub fn flow_expiry(&self, source: SocketAddr, now: Instant) -> Option<Instant> {
        self.bindings
            .values()
            .flatten()
            .filter(|b| b.transport == Transport::Tcp && b.source == source && b.expires_at > now)
            .map(|b| b.expires_at)
            .max()
    }

    /// When [`Registrar::expire`] next has something to do.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.next_expiry
    }

    /// Recomputes [`Registrar::next_expiry`] after bindings changed.
    fn bindings_changed(&mut self) {
        self.next_expiry = self.bindings.values().flatten().map(|b| b.expires_at).min();
    }

    /// The number of extensions with bindings not yet expired by
    /// [`Registrar::expire`] (lapsed ones count until then).
    pub fn registered_count(&self) -> usize {
        self.bindings.len()
    }

    fn ok_with_bindings(&self, req: &Request, bindings: &[Binding], now: Instant) -> Response {
        let mut resp = response(req, StatusCode::OK);
        for b in bindings.iter().filter(|b| b.expires_at > now) {
            let left = b.expires_at - now;
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let mut value = format!("<{}>;expires={}", b.contact, secs);
            if let Some(q) = b.q {
                value.push_str(&format!(";q={q}"));
            }
            if let Some(instance) = &b.instance {
                value.push_str(&format!(";+sip.instance=\"{instance}\""));
            }
            resp.headers.push(Header::Contact(value.into()));
        }
        resp
    }

    fn finish(
        &mut self,
        mut resp: Response,
        changed: Option<(String, RegistrationChange)>,
        now: Instant,
    ) -> RegisterOutcome {
        if let Some((at, wall)) = self.wall_clock {
            let wall = if now >= at {
                wall.checked_add(now - at)
            } else {
                wall.checked_sub(at - now)
            }
            .unwrap_or(UNIX_EPOCH);
            resp.headers.push(Header::Date(http_date(wall).into()));
        }
        RegisterOutcome {
            response: with_to_tag(resp, &self.tags.token()),
            changed,
            auth_event: None,
        }
    }
}

fn q_of(b: &Binding) -> f32 {
    b.q.unwrap_or(1.0)
}

/// RFC 3261 §10.3 step 7: a request older than the one that made the
/// binding (same Call-ID, CSeq not higher) arrived out of order.
fn check_order(b: &Binding, call_id: &str, cseq: u32) -> Result<(), Reject> {
    if b.call_id == call_id && cseq <= b.cseq {
        Err(Reject(
            StatusCode::ServerInternalError,
            "CSeq not higher than the binding's",
        ))
    } else {
        Ok(())
    }
}

fn is_same_binding(b: &Binding, c: &ContactRequest) -> bool {
    let same_instance = matches!((&b.instance, &c.instance), (Some(x), Some(y)) if x == y);
    same_instance || uri_key(&b.contact).as_deref() == Some(c.key.as_str())
}

/// delta-seconds; larger than `u32::MAX` saturates (RFC 3261 §10.2.1.1).
fn parse_delta_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX)),
    )
}

fn parse_contacts(req: &Request) -> Result<Contacts, Reject> {
    let mut values = Vec::new();
    for h in req.headers.iter() {
        if let Header::Contact(c) = h {
            values.extend(split_outside_quotes(c.value(), ','));
        }
    }
    let values: Vec<&str> = values
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return Ok(Contacts::None);
    }
    if values.contains(&"*") {
        if values.len() > 1 {
            return Err(Reject(
                StatusCode::BadRequest,
                "Contact * with other contacts",
            ));
        }
        return Ok(Contacts::Star);
    }
    values
        .into_iter()
        .map(parse_contact)
        .collect::<Result<_, _>>()
        .map(Contacts::List)
}

fn parse_contact(value: &str) -> Result<ContactRequest, Reject> {
    let bad = |why| Reject(StatusCode::BadRequest, why);
    // name-addr when a '<' comes before any parameter; otherwise addr-spec,
    // whose parameters are all header parameters (RFC 3261 §20.10).
    let lt = find_outside_quotes(value, '<');
    let semi = find_outside_quotes(value, ';');
    let (uri, params) = match lt {
        Some(lt) if semi.is_none_or(|s| lt < s) => {
            let rest = &value[lt + 1..];
            let gt = rest.find('>').ok_or(bad("Contact without '>'"))?;
            (&rest[..gt], &rest[gt + 1..])
        }
        _ => match semi {
            Some(s) => (&value[..s], &value[s..]),
            None => (value, ""),
        },
    };
    let uri = uri.trim();
    let params = params.trim();
    if !params.is_empty() && !params.starts_with(';') {
        return Err(bad("junk after the Contact URI"));
    }
    if uri.contains('?') {
        return Err(bad("Contact URI with headers"));
    }
    let key = uri_key(uri).ok_or(bad("Contact URI is not a SIP URI"))?;
    // The binding becomes the Request-URI of the INVITEs to this phone.
    super::uri::check_target(uri).map_err(bad)?;

    let mut contact = ContactRequest {
        uri: uri.to_string(),
        key,
        expires: None,
        q: None,
        instance: None,
    };
    for p in split_outside_quotes(params, ';') {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (name, val) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p, None),
        };
        if name.eq_ignore_ascii_case("expires") {
            contact.expires = val.and_then(parse_delta_seconds);
        } else if name.eq_ignore_ascii_case("q") {
            let q = val
                .and_then(|v| v.parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .ok_or(bad("bad q value"))?;
            contact.q = Some(q);
        } else if name.eq_ignore_ascii_case("+sip.instance") {
            let v = val.unwrap_or("");
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            // The value sits inside a quoted string in the response too.
            if v.is_empty() || v.contains(['"', '\\']) {
                return Err(bad("bad +sip.instance"));
            }
            contact.instance = Some(v.to_string());
        }
    }
    Ok(contact)
}

/// The identity of a Contact URI: scheme, user, host, port, transport.
fn uri_key(uri: &str) -> Option<String> {
    let scheme_ok = ["sip:", "sips:"].iter().any(|s| {
        uri.get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    if !scheme_ok {
        return None;
    }
    let parsed = rsipstack::sip::parse_uri(uri).ok()?;
    let host = parsed.host_with_port.host.to_string().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let transport = parsed.params.iter().find_map(|p| match p {
        rsipstack::sip::Param::Transport(t) => Some(t.to_string().to_ascii_lowercase()),
        _ => None,
    });
    Some(format!(
        "{}:{}@{}:{}/{}",
        parsed
            .scheme
            .map(|s| s.to_string())
            .unwrap_or_default()
            .to_ascii_lowercase(),
        parsed.auth.map(|a| a.user).unwrap_or_default(),
        host,
        parsed.host_with_port.port.map(|p| p.0).unwrap_or(0),
        transport.unwrap_or_default()
    ))
}

fn find_outside_quotes(s: &str, needle: char) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && c == needle {
            return Some(i);
        }
    }
    None
}

/// Splits at `sep` outside quoted strings and outside `<...>`.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted {
            match c {
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
        } else {
            match c {
                '"' => quoted = true,
                '<' => angle = true,
                '>' => angle = false,
                c if c == sep && !angle => {
                    out.push(&s[start..i]);
                    start = i + c.len_utf8();
                }
                _ => {}
            }
        }
    }
    out.push(&s[start..]);
    out
}

/// RFC 1123 date in GMT, as the Date header wants (RFC 3261 §20.17).
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::digest::{Algorithm, DigestServer};
    use crate::sip::lockout::{Lockout, LockoutSettings};
    use md5::Md5;
    use sha2::{Digest, Sha256};

    const RURI: &str = "sip:127.0.0.1";
    const TTL: Duration = Duration::from_secs(300);

    fn settings() -> RegistrarSettings {
        RegistrarSettings {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 1800,
        }
    }

    /// The test accounts, offered MD5 and SHA-256 (in that order).
    struct Book(HashMap<String, String>);

    impl Accounts for Book {
        fn password(&self, user: &str) -> Option<String> {
            self.0.get(user).cloned()
        }
        fn digest_algorithms(&self, _user: &str) -> &[Algorithm] {
            &[Algorithm::Md5, Algorithm::Sha256]
        }
    }

    fn accounts() -> Book {
        Book(HashMap::from([
            ("2001".to_string(), "geheim".to_string()),
            ("2002".to_string(), "anders".to_string()),
            ("watson".to_string(), "elementary".to_string()),
        ]))
    }

    fn source() -> SocketAddr {
        "127.0.0.1:5062".parse().unwrap()
    }

    /// A REGISTER for `to_user`; `extra` are further header lines.
    fn register(to_user: &str, call_id: &str, cseq: u32, extra: &[String]) -> Request {
        let mut text = format!(
            "REGISTER {RURI} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK{cseq}x\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{to_user}@127.0.0.1>;tag=f{cseq}\r\n\
             To: <sip:{to_user}@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             User-Agent: test-phone/1.0\r\n"
        );
        for h in extra {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        Request::try_from(text.as_str()).unwrap()
    }

    fn contact(c: &str) -> String {
        format!("Contact: {c}")
    }

    #[derive(Clone, Copy)]
    enum Alg {
        Md5,
        Sha256,
    }

    /// The Authorization header a phone would send, computed here without
    /// the digest module.
    fn authorization(alg: Alg, user: &str, pass: &str, nonce: &str, nc: &str) -> String {
        let (h, name): (fn(&str) -> String, _) = match alg {
            Alg::Md5 => (|s| hex::encode(Md5::digest(s.as_bytes())), "MD5"),
            Alg::Sha256 => (|s| hex::encode(Sha256::digest(s.as_bytes())), "SHA-256"),
        };
        let cnonce = "0a4f113b";
        let ha1 = h(&format!("{user}:zentrale:{pass}"));
        let ha2 = h(&format!("REGISTER:{RURI}"));
        let resp = h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        format!(
            "Authorization: Digest username=\"{user}\", realm=\"zentrale\", nonce=\"{nonce}\", \
             uri=\"{RURI}\", response=\"{resp}\", algorithm={name}, qop=auth, nc={nc}, \
             cnonce=\"{cnonce}\""
        )
    }

    fn header_values<'a>(resp: &'a Response, name: &str) -> Vec<&'a str> {
        resp.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| match h {
                Header::WwwAuthenticate(x) => x.value(),
                Header::Contact(x) => x.value(),
                Header::MinExpires(x) => x.value(),
                Header::Date(x) => x.value(),
                Header::To(x) => x.value(),
                Header::Warning(x) => x.value(),
                _ => "",
            })
            .collect()
    }

    fn nonce_for(resp: &Response, alg: Alg) -> String {
        let want = match alg {
            Alg::Md5 => "algorithm=MD5",
            Alg::Sha256 => "algorithm=SHA-256",
        };
        let c = header_values(resp, "WWW-Authenticate")
            .into_iter()
            .find(|c| c.contains(want))
            .expect("challenge for the algorithm");
        let start = c.find("nonce=\"").unwrap() + 7;
        c[start..].split('"').next().unwrap().to_string()
    }

    struct Fixture {
        reg: Registrar,
        auth: Authenticator,
        accounts: Book,
        t0: Instant,
    }

    impl Fixture {
        fn new() -> Self {
            let t0 = Instant::now();
            Self {
                reg: Registrar::new(settings()),
                auth: Authenticator::new(
                    DigestServer::new("zentrale", TTL, t0),
                    Lockout::new(LockoutSettings::default()),
                ),
                accounts: accounts(),
                t0,
            }
        }

        fn send(&mut self, req: &Request, now: Instant) -> RegisterOutcome {
            self.reg.handle_register(
                req,
                source(),
                Transport::Udp,
                &mut self.auth,
                &self.accounts,
                now,
            )
        }

        /// A fresh nonce, as a phone would get it from a first 401.
        fn nonce(&mut self, alg: Alg, now: Instant) -> String {
            let out = self.send(&register("2001", "probe", 1, &[]), now);
            assert_eq!(out.response.status_code, StatusCode::Unauthorized);
            nonce_for(&out.response, alg)
        }

        /// Registers 2001 with the given headers, authenticated.
        fn send_auth(
            &mut self,
            call_id: &str,
            cseq: u32,
            headers: &[String],
            now: Instant,
        ) -> RegisterOutcome {
            let nonce = self.nonce(Alg::Md5, now);
            let mut h = headers.to_vec();
            h.push(authorization(
                Alg::Md5,
                "2001",
                "geheim",
                &nonce,
                "00000001",
            ));
            self.send(&register("2001", call_id, cseq, &h), now)
        }
    }

    fn status(out: &RegisterOutcome) -> StatusCode {
        out.response.status_code.clone()
    }

    #[test]
    fn first_register_is_challenged_sha256_then_md5() {
        let mut f = Fixture::new();
        let out = f.send(
            &register("2001", "c1", 1, &[contact("<sip:2001@127.0.0.1:5062>")]),
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::Unauthorized);
        let ch = header_values(&out.response, "WWW-Authenticate");
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=MD5") && ch[0].contains("qop=\"auth\""));
        assert!(ch[1].contains("algorithm=SHA-256") && !ch[1].contains("stale"));
        assert!(tag_of_to(&out.response).is_some());
        assert_eq!(header_values(&out.response, "Date").len(), 1);
        assert!(out.changed.is_none());
        assert!(!f.reg.is_registered("2001", f.t0));
    }

    fn tag_of_to(resp: &Response) -> Option<String> {
        header_values(resp, "To")
            .first()
            .and_then(|v| crate::sip::message::tag_of(v).map(str::to_string))
    }

    #[test]
    fn correct_credentials_register_with_md5_and_sha256() {
        for alg in [Alg::Md5, Alg::Sha256] {
            let mut f = Fixture::new();
            let nonce = f.nonce(alg, f.t0);
            let req = register(
                "2001",
                "c1",
                2,
                &[
                    contact("<sip:2001@127.0.0.1:5062>;q=0.7"),
                    authorization(alg, "2001", "geheim", &nonce, "00000001"),
                ],
            );
            let out = f.send(&req, f.t0);
            assert_eq!(status(&out), StatusCode::OK);
            assert_eq!(
                out.changed,
                Some(("2001".into(), RegistrationChange::Registered))
            );
            assert_eq!(
                header_values(&out.response, "Contact"),
                vec!["<sip:2001@127.0.0.1:5062>;expires=1800;q=0.7"]
            );
            assert_eq!(header_values(&out.response, "Date").len(), 1);
            assert!(tag_of_to(&out.response).is_some());
            let b = f.reg.bindings("2001", f.t0);
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].contact, "sip:2001@127.0.0.1:5062");
            assert_eq!(b[0].source, source());
            assert_eq!(b[0].transport, Transport::Udp);
            assert_eq!(b[0].expires_at, f.t0 + Duration::from_secs(1800));
            assert_eq!(b[0].q, Some(0.7));
            assert_eq!(b[0].call_id, "c1");
            assert_eq!(b[0].cseq, 2);
            assert_eq!(b[0].user_agent.as_deref(), Some("test-phone/1.0"));
            assert_eq!(f.reg.registered_count(), 1);
        }
    }

    #[test]
    fn nonce_reuse_with_increasing_nc_past_9_and_ff() {
        let mut f = Fixture::new();
        let nonce = f.nonce(Alg::Md5, f.t0);
        for (i, nc) in ["00000001", "0000000a", "00000100"].iter().enumerate() {
            let now = f.t0 + Duration::from_secs(i as u64 * 10);
            let req = register(
                "2001",
                "c1",
                10 + i as u32,
                &[
                    contact("<sip:2001@127.0.0.1:5062>"),
                    authorization(Alg::Md5, "2001", "geheim", &nonce, nc),
                ],
            );
            let out = f.send(&req, now);
            assert_eq!(status(&out), StatusCode::OK, "nc {nc}");
            let change = if i == 0 {
                RegistrationChange::Registered
            } else {
                RegistrationChange::Refreshed
            };
            assert_eq!(out.changed, Some(("2001".into(), change)));
        }
        assert_eq!(f.reg.bindings("2001", f.t0).len(), 1);
    }

    #[test]
    fn wrong_password_is_challenged_again_and_binds_nothing() {
        let mut f = Fixture::new();
        let nonce = f.nonce(Alg::Sha256, f.t0);
        let req = register(
            "2001",
            "c1",
            2,
            &[
                contact("<sip:2001@127.0.0.1:5062>"),
                authorization(Alg::Sha256, "2001", "falsch", &nonce, "00000001"),
            ],
        );
        let out = f.send(&req, f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        let ch = header_values(&out.response, "WWW-Authenticate");
        assert_eq!(ch.len(), 2);
        assert!(!ch[0].contains("stale"));
        assert!(out.changed.is_none());
        assert!(f.reg.bindings("2001", f.t0).is_empty());
        assert_eq!(f.reg.registered_count(), 0);
    }

    #[test]
    fn repeated_wrong_passwords_lock_out_with_403_and_are_reported() {
        let mut f = Fixture::new();
        let source_ip = source().ip();
        let spare = f.nonce(Alg::Md5, f.t0);
        // The default limits: the account locks at the 5th wrong answer.
        for i in 1..=5u32 {
            let nonce = f.nonce(Alg::Md5, f.t0);
            let req = register(
                "2001",
                "c1",
                i + 1,
                &[authorization(
                    Alg::Md5,
                    "2001",
                    "falsch",
                    &nonce,
                    "00000001",
                )],
            );
            let out = f.send(&req, f.t0);
            let event = out.auth_event.clone().expect("a failure is reported");
            assert_eq!(
                (event.source, event.account.as_str(), event.reason),
                (source_ip, "2001", "bad_password")
            );
            if i < 5 {
                assert_eq!(status(&out), StatusCode::Unauthorized, "guess {i}");
                assert_eq!(event.lockout, None);
            } else {
                assert_eq!(status(&out), StatusCode::Forbidden, "guess {i}");
                assert_eq!(
                    event.lockout,
                    Some((crate::sip::lockout::Scope::Account, Duration::from_secs(60)))
                );
            }
        }
        // Locked: no challenge, and even the right password gets 403.
        let out = f.send(&register("2001", "c2", 1, &[]), f.t0);
        assert_eq!(status(&out), StatusCode::Forbidden);
        assert!(header_values(&out.response, "WWW-Authenticate").is_empty());
        let right = authorization(Alg::Md5, "2001", "geheim", &spare, "00000001");
        let out = f.send(&register("2001", "c2", 2, &[right]), f.t0);
        assert_eq!(status(&out), StatusCode::Forbidden);
        assert_eq!(out.auth_event.map(|e| e.reason), Some("locked"));
        // After the lockout it registers.
        let later = f.t0 + Duration::from_secs(61);
        let out = f.send_auth("c3", 1, &[contact("<sip:2001@127.0.0.1:5062>")], later);
        assert_eq!(status(&out), StatusCode::OK);
        assert!(out.auth_event.is_none());
    }

    #[test]
    fn a_phone_that_registered_is_not_locked_out_by_a_guesser_elsewhere() {
        let mut f = Fixture::new();
        let out = f.send_auth("phone", 1, &[contact("<sip:2001@127.0.0.1:5062>")], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        let guesser: SocketAddr = "127.0.0.66:5060".parse().unwrap();
        for i in 0..5u32 {
            let probe = register("2001", "g", 2 * i + 1, &[]);
            let out = f.reg.handle_register(
                &probe,
                guesser,
                Transport::Udp,
                &mut f.auth,
                &f.accounts,
                f.t0,
            );
            let nonce = nonce_for(&out.response, Alg::Md5);
            let guess = register(
                "2001",
                "g",
                2 * i + 2,
                &[authorization(
                    Alg::Md5,
                    "2001",
                    "falsch",
                    &nonce,
                    "00000001",
                )],
            );
            f.reg.handle_register(
                &guess,
                guesser,
                Transport::Udp,
                &mut f.auth,
                &f.accounts,
                f.t0,
            );
        }
        // The account is locked for the guesser ...
        let out = f.reg.handle_register(
            &register("2001", "g", 99, &[]),
            guesser,
            Transport::Udp,
            &mut f.auth,
            &f.accounts,
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::Forbidden);
        // ... while the phone is challenged and refreshes as before.
        let out = f.send_auth("phone", 2, &[contact("<sip:2001@127.0.0.1:5062>")], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
    }

    #[test]
    fn default_accounts_are_challenged_with_md5_alone() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(settings());
        let mut auth = Authenticator::new(
            DigestServer::new("zentrale", TTL, t0),
            Lockout::new(LockoutSettings::default()),
        );
        let book = HashMap::from([("2001".to_string(), "geheim".to_string())]);
        let out = reg.handle_register(
            &register("2001", "c1", 1, &[]),
            source(),
            Transport::Udp,
            &mut auth,
            &book,
            t0,
        );
        let ch = header_values(&out.response, "WWW-Authenticate");
        assert_eq!(ch.len(), 1, "{ch:?}");
        assert!(ch[0].contains("algorithm=MD5"));
    }

    #[test]
    fn a_digest_uri_other_than_the_request_uri_is_400() {
        let mut f = Fixture::new();
        let nonce = f.nonce(Alg::Md5, f.t0);
        let auth = authorization(Alg::Md5, "2001", "geheim", &nonce, "00000001")
            .replace(&format!("uri=\"{RURI}\""), "uri=\"sip:10.0.0.1\"");
        let out = f.send(&register("2001", "c1", 2, &[auth]), f.t0);
        assert_eq!(status(&out), StatusCode::BadRequest);
        assert_eq!(out.auth_event.map(|e| e.reason), Some("uri_mismatch"));
    }

    #[test]
    fn replayed_nc_is_refused() {
        let mut f = Fixture::new();
        let nonce = f.nonce(Alg::Md5, f.t0);
        let auth = authorization(Alg::Md5, "2001", "geheim", &nonce, "0000000a");
        let c = contact("<sip:2001@127.0.0.1:5062>");
        let out = f.send(&register("2001", "c1", 2, &[c.clone(), auth.clone()]), f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        // The same credentials again (a captured request, new CSeq).
        let out = f.send(&register("2001", "c1", 3, &[c.clone(), auth]), f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        // A lower count too.
        let lower = authorization(Alg::Md5, "2001", "geheim", &nonce, "00000009");
        let out = f.send(&register("2001", "c1", 4, &[c, lower]), f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        assert_eq!(f.reg.bindings("2001", f.t0)[0].cseq, 2);
    }

    #[test]
    fn expired_nonce_gets_stale_true() {
        let mut f = Fixture::new();
        let nonce = f.nonce(Alg::Md5, f.t0);
        let later = f.t0 + TTL + Duration::from_secs(1);
        let req = register(
            "2001",
            "c1",
            2,
            &[
                contact("<sip:2001@127.0.0.1:5062>"),
                authorization(Alg::Md5, "2001", "geheim", &nonce, "00000001"),
            ],
        );
        let out = f.send(&req, later);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        let ch = header_values(&out.response, "WWW-Authenticate");
        assert!(ch.iter().all(|c| c.contains("stale=true")));
        assert!(!f.reg.is_registered("2001", later));
    }

    #[test]
    fn too_brief_is_423_with_min_expires() {
        let mut f = Fixture::new();
        let out = f.send_auth(
            "c1",
            2,
            &[contact("<sip:2001@127.0.0.1:5062>"), "Expires: 10".into()],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::IntervalTooBrief);
        assert_eq!(header_values(&out.response, "Min-Expires"), vec!["60"]);
        assert!(!f.reg.is_registered("2001", f.t0));
        // The contact parameter wins over the header.
        let out = f.send_auth(
            "c1",
            3,
            &[
                contact("<sip:2001@127.0.0.1:5062>;expires=120"),
                "Expires: 10".into(),
            ],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(
            f.reg.bindings("2001", f.t0)[0].expires_at,
            f.t0 + Duration::from_secs(120)
        );
    }

    #[test]
    fn long_expiry_is_clamped_to_max() {
        let mut f = Fixture::new();
        let out = f.send_auth(
            "c1",
            2,
            &[
                contact("<sip:2001@127.0.0.1:5062>"),
                "Expires: 99999999999".into(),
            ],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(
            header_values(&out.response, "Contact"),
            vec!["<sip:2001@127.0.0.1:5062>;expires=3600"]
        );
        assert_eq!(f.reg.next_expiry(), Some(f.t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn unregister_with_expires_zero_and_with_star() {
        let mut f = Fixture::new();
        let c = "<sip:2001@127.0.0.1:5062>";
        assert_eq!(
            status(&f.send_auth("c1", 2, &[contact(c)], f.t0)),
            StatusCode::OK
        );
        let out = f.send_auth("c1", 3, &[contact(&format!("{c};expires=0"))], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(
            out.changed,
            Some(("2001".into(), RegistrationChange::Unregistered))
        );
        assert!(header_values(&out.response, "Contact").is_empty());
        assert!(!f.reg.is_registered("2001", f.t0));
        assert_eq!(f.reg.registered_count(), 0);

        // Two contacts, then `*`.
        let both = contact("<sip:2001@127.0.0.1:5062>, <sip:2001@10.0.0.7:5060>");
        let out = f.send_auth("c1", 4, &[both], f.t0);
        assert_eq!(f.reg.bindings("2001", f.t0).len(), 2);
        assert_eq!(
            out.changed,
            Some(("2001".into(), RegistrationChange::Registered))
        );
        let out = f.send_auth("c1", 5, &[contact("*"), "Expires: 60".into()], f.t0);
        assert_eq!(status(&out), StatusCode::BadRequest);
        let out = f.send_auth(
            "c1",
            5,
            &[contact("*"), contact(c), "Expires: 0".into()],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::BadRequest);
        let out = f.send_auth("c1", 5, &[contact("*")], f.t0);
        assert_eq!(status(&out), StatusCode::BadRequest);
        assert_eq!(f.reg.bindings("2001", f.t0).len(), 2);
        let out = f.send_auth("c1", 6, &[contact("*"), "Expires: 0".into()], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(
            out.changed,
            Some(("2001".into(), RegistrationChange::Unregistered))
        );
        assert!(f.reg.bindings("2001", f.t0).is_empty());
    }

    #[test]
    fn two_contacts_in_two_headers_sorted_by_q() {
        let mut f = Fixture::new();
        let out = f.send_auth(
            "c1",
            2,
            &[
                contact("<sip:2001@10.0.0.7:5060>;q=0.2"),
                contact("\"Desk; 2\" <sip:2001@10.0.0.8:5060;transport=tcp>;q=0.9"),
            ],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(header_values(&out.response, "Contact").len(), 2);
        let b = f.reg.bindings("2001", f.t0);
        assert_eq!(b[0].contact, "sip:2001@10.0.0.8:5060;transport=tcp");
        assert_eq!(b[1].contact, "sip:2001@10.0.0.7:5060");
        // A query (no Contact) lists both and changes nothing.
        let out = f.send_auth("c1", 3, &[], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(header_values(&out.response, "Contact").len(), 2);
        assert!(out.changed.is_none());
    }

    #[test]
    fn bindings_expire_with_time() {
        let mut f = Fixture::new();
        f.send_auth(
            "c1",
            2,
            &[contact("<sip:2001@127.0.0.1:5062>;expires=60")],
            f.t0,
        );
        f.send_auth(
            "c1",
            3,
            &[contact("<sip:2001@127.0.0.1:5064>;expires=120")],
            f.t0,
        );
        assert_eq!(f.reg.next_expiry(), Some(f.t0 + Duration::from_secs(60)));
        let t1 = f.t0 + Duration::from_secs(61);
        assert!(f.reg.expire(t1).is_empty());
        assert_eq!(f.reg.bindings("2001", t1).len(), 1);
        assert_eq!(f.reg.next_expiry(), Some(f.t0 + Duration::from_secs(120)));
        let t2 = f.t0 + Duration::from_secs(120);
        assert!(!f.reg.is_registered("2001", t2));
        assert_eq!(f.reg.expire(t2), vec!["2001".to_string()]);
        assert_eq!(f.reg.registered_count(), 0);
        assert_eq!(f.reg.next_expiry(), None);
        assert!(f.reg.expire(t2).is_empty());
    }

    #[test]
    fn bindings_of_removed_accounts_are_dropped() {
        let mut f = Fixture::new();
        f.send_auth(
            "c1",
            2,
            &[contact("<sip:2001@127.0.0.1:5062>;expires=600")],
            f.t0,
        );
        assert_eq!(
            f.reg.retain_extensions(|ext| ext == "2001"),
            Vec::<String>::new()
        );
        assert!(f.reg.is_registered("2001", f.t0));
        assert_eq!(f.reg.retain_extensions(|_| false), vec!["2001".to_string()]);
        assert!(!f.reg.is_registered("2001", f.t0));
        assert_eq!((f.reg.registered_count(), f.reg.next_expiry()), (0, None));
    }

    #[test]
    fn lapsed_bindings_removed_by_register_are_reported() {
        // The ACD only hears of a lapse through expire() or an outcome; a
        // REGISTER that comes first must not swallow it.
        let mut f = Fixture::new();
        let c = "<sip:2001@127.0.0.1:5062>";
        f.send_auth("c1", 2, &[contact(&format!("{c};expires=60"))], f.t0);
        let t1 = f.t0 + Duration::from_secs(100);
        let out = f.send_auth("c1", 3, &[contact(&format!("{c};expires=0"))], t1);
        assert_eq!(
            out.changed,
            Some(("2001".into(), RegistrationChange::Unregistered))
        );
        assert!(f.reg.expire(t1).is_empty());
    }

    #[test]
    fn call_id_and_cseq_ordering() {
        let mut f = Fixture::new();
        let c = contact("<sip:2001@127.0.0.1:5062>");
        assert_eq!(
            status(&f.send_auth("c1", 5, std::slice::from_ref(&c), f.t0)),
            StatusCode::OK
        );
        // Same Call-ID, CSeq not higher: out of order, refused, unchanged.
        for cseq in [5, 4] {
            let out = f.send_auth(
                "c1",
                cseq,
                &[contact("<sip:2001@127.0.0.1:5062>;expires=0")],
                f.t0,
            );
            assert_eq!(status(&out), StatusCode::ServerInternalError);
            assert!(out.changed.is_none());
        }
        assert!(f.reg.is_registered("2001", f.t0));
        // A new Call-ID may have any CSeq: the phone restarted.
        let out = f.send_auth("c2", 1, std::slice::from_ref(&c), f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        let b = f.reg.bindings("2001", f.t0);
        assert_eq!((b.len(), b[0].call_id.as_str(), b[0].cseq), (1, "c2", 1));
        // The same contact twice in one request is one binding, no 500.
        let out = f.send_auth("c2", 2, &[c.clone(), c], f.t0);
        assert_eq!(status(&out), StatusCode::OK);
        assert_eq!(f.reg.bindings("2001", f.t0).len(), 1);
    }

    #[test]
    fn same_instance_with_new_call_id_replaces() {
        let mut f = Fixture::new();
        let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
        let out = f.send_auth(
            "c1",
            2,
            &[contact(&format!("<sip:2001@192.168.1.5:5060>;{inst}"))],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::OK);
        // After a reboot behind NAT: new Call-ID, new address, same instance.
        let out = f.send_auth(
            "c9",
            1,
            &[contact(&format!("<sip:2001@192.168.1.5:5099>;{inst}"))],
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::OK);
        let b = f.reg.bindings("2001", f.t0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].contact, "sip:2001@192.168.1.5:5099");
        assert_eq!(
            b[0].instance.as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert!(header_values(&out.response, "Contact")[0].contains(inst));
    }

    #[test]
    fn at_most_ten_contacts() {
        let mut f = Fixture::new();
        for port in 0..12u32 {
            let c = contact(&format!("<sip:2001@10.0.0.1:{}>", 5000 + port));
            let out = f.send_auth("c1", 2 + port, &[c], f.t0);
            assert_eq!(status(&out), StatusCode::OK);
        }
        let b = f.reg.bindings("2001", f.t0);
        assert_eq!(b.len(), MAX_CONTACTS);
        // The two refreshed longest ago went.
        assert!(
            b.iter()
                .all(|b| !b.contact.ends_with(":5000") && !b.contact.ends_with(":5001"))
        );
        let many: Vec<String> = (0..11)
            .map(|p| contact(&format!("<sip:2001@10.0.0.2:{}>", 6000 + p)))
            .collect();
        let out = f.send_auth("c1", 100, &many, f.t0);
        assert_eq!(status(&out), StatusCode::Forbidden);
    }

    #[test]
    fn credentials_for_another_extension_get_403() {
        let mut f = Fixture::new();
        let out = f.send(&register("2002", "c1", 1, &[]), f.t0);
        let nonce = nonce_for(&out.response, Alg::Md5);
        let req = register(
            "2002",
            "c1",
            2,
            &[
                contact("<sip:2002@127.0.0.1:5062>"),
                authorization(Alg::Md5, "2001", "geheim", &nonce, "00000001"),
            ],
        );
        let out = f.send(&req, f.t0);
        assert_eq!(status(&out), StatusCode::Forbidden);
        assert!(!f.reg.is_registered("2002", f.t0));
        assert!(!f.reg.is_registered("2001", f.t0));
    }

    #[test]
    fn unknown_extension_looks_like_wrong_password() {
        let mut f = Fixture::new();
        let out = f.send(&register("9999", "c1", 1, &[contact("<sip:9999@h>")]), f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        let nonce = nonce_for(&out.response, Alg::Md5);
        let req = register(
            "9999",
            "c1",
            2,
            &[
                contact("<sip:9999@h>"),
                authorization(Alg::Md5, "9999", "rate", &nonce, "00000001"),
            ],
        );
        let out = f.send(&req, f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        assert_eq!(header_values(&out.response, "WWW-Authenticate").len(), 2);
    }

    // RFC 4475 messages, verbatim from the RFC's test data.
    const REGAUT01: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        To: sip:j.user@example.com\r\n\
        From: sip:j.user@example.com;tag=87321hj23128\r\n\
        Max-Forwards: 8\r\n\
        Call-ID: regaut01.0ha0isndaksdj\r\n\
        CSeq: 9338 REGISTER\r\n\
        Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw\r\n\
        Authorization: NoOneKnowsThisScheme opaque-data=here\r\n\
        Content-Length:0\r\n\r\n";
    const CPARAM01: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n\
        Max-Forwards: 70\r\n\
        From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe\r\n\
        To: sip:watson@example.com\r\n\
        Call-ID: cparam01.70710@saturn.example.com\r\n\
        CSeq: 2 REGISTER\r\n\
        Contact: sip:+19725552222@gw1.example.net;unknownparam\r\n\
        l: 0\r\n\r\n";
    const CPARAM02: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\n\
        Max-Forwards: 70\r\n\
        From: sip:watson@example.com;tag=838293\r\n\
        To: sip:watson@example.com\r\n\
        Call-ID: cparam02.70710@saturn.example.com\r\n\
        CSeq: 3 REGISTER\r\n\
        Contact: <sip:+19725552222@gw1.example.net;unknownparam>\r\n\
        l: 0\r\n\r\n";
    const REGESCRT: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        To: sip:user@example.com\r\n\
        From: sip:user@example.com;tag=8\r\n\
        Max-Forwards: 70\r\n\
        Call-ID: regescrt.k345asrl3fdbv@192.0.2.1\r\n\
        CSeq: 14398234 REGISTER\r\n\
        Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\r\n\
        M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>\r\n\
        L:0\r\n\r\n";

    #[test]
    fn rfc4475_regaut01_unknown_scheme_is_challenged() {
        let mut f = Fixture::new();
        let out = f.send(&Request::try_from(REGAUT01).unwrap(), f.t0);
        assert_eq!(status(&out), StatusCode::Unauthorized);
        assert_eq!(header_values(&out.response, "WWW-Authenticate").len(), 2);
    }

    #[test]
    fn rfc4475_cparam_contacts_are_valid() {
        let mut f = Fixture::new();
        for (text, uri) in [
            (CPARAM01, "sip:+19725552222@gw1.example.net"),
            (CPARAM02, "sip:+19725552222@gw1.example.net;unknownparam"),
        ] {
            let req = Request::try_from(text).unwrap();
            let out = f.send(&req, f.t0);
            assert_eq!(status(&out), StatusCode::Unauthorized);
            // With credentials added (uri as in the Request-URI), they bind.
            let h = |s: &str| hex::encode(Md5::digest(s.as_bytes()));
            let nonce = nonce_for(&out.response, Alg::Md5);
            let ha1 = h("watson:zentrale:elementary");
            let ha2 = h("REGISTER:sip:example.com");
            let resp = h(&format!("{ha1}:{nonce}:00000001:x:auth:{ha2}"));
            let auth = format!(
                "Authorization: Digest username=\"watson\", realm=\"zentrale\", \
                 nonce=\"{nonce}\", uri=\"sip:example.com\", response=\"{resp}\", \
                 qop=auth, nc=00000001, cnonce=\"x\"\r\nl: 0\r\n\r\n"
            );
            let text = text.replace("l: 0\r\n\r\n", &auth);
            let out = f.send(&Request::try_from(text.as_str()).unwrap(), f.t0);
            assert_eq!(status(&out), StatusCode::OK);
            assert!(
                f.reg
                    .bindings("watson", f.t0)
                    .iter()
                    .any(|b| b.contact == uri)
            );
        }
        // Unknown URI parameters do not make a URI another one (RFC 3261
        // §19.1.4), so cparam02's contact replaced cparam01's.
        assert_eq!(f.reg.bindings("watson", f.t0).len(), 1);
    }

    #[test]
    fn rfc4475_regescrt_contact_with_headers_is_400() {
        let mut f = Fixture::new();
        let out = f.send(&Request::try_from(REGESCRT).unwrap(), f.t0);
        assert_eq!(status(&out), StatusCode::BadRequest);
        assert!(tag_of_to(&out.response).is_some());
    }

    #[test]
    fn malformed_requests_get_400_not_a_panic() {
        let mut f = Fixture::new();
        for c in [
            "<sip:2001@h",
            "<tel:+4930123>",
            "<sip:2001@h> junk",
            "<sip:2001@h>;q=7",
            "<sip:2001@h>;+sip.instance=\"a\\\"b\"",
        ] {
            let out = f.send(&register("2001", "c1", 1, &[contact(c)]), f.t0);
            assert_eq!(status(&out), StatusCode::BadRequest, "{c}");
        }
        let out = f.send(
            &register("2001", "c1", 1, &["Authorization: Digest ,,,=\"".into()]),
            f.t0,
        );
        assert_eq!(status(&out), StatusCode::Unauthorized);
    }

    /// A binding becomes the Request-URI of zentrale's INVITEs, so one no
    /// request could be sent to is refused at REGISTER.
    #[test]
    fn contacts_no_invite_could_go_to_are_400() {
        let mut f = Fixture::new();
        for c in [
            "<sip:2001@h:0>",
            "<sip:2001@h:99999>",
            "<sip:@h>",
            "<sip:2001@bad_host>",
            "<sip:2001@[::1>",
            "<sip:2001@h;>",
        ] {
            let out = f.send(&register("2001", "c1", 1, &[contact(c)]), f.t0);
            assert_eq!(status(&out), StatusCode::BadRequest, "{c}");
        }
    }

    #[test]
    fn date_header_follows_the_wall_clock_anchor() {
        let mut f = Fixture::new();
        let wall = UNIX_EPOCH + Duration::from_secs(784_111_777);
        f.reg.set_wall_clock(f.t0, wall);
        let out = f.send(
            &register("2001", "c1", 1, &[]),
            f.t0 + Duration::from_secs(1),
        );
        assert_eq!(
            header_values(&out.response, "Date"),
            vec!["Sun, 06 Nov 1994 08:49:38 GMT"]
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
