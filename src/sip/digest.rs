//! Server-side HTTP Digest authentication for SIP: RFC 3261 §22 with
//! RFC 2617 `qop=auth`, and SHA-256 from RFC 7616 as RFC 8760 brings it to SIP.
//!
//! rsipstack's helpers refuse nonce counts from `0000000a` on (see DESIGN.md,
//! "Digest nc bug"), so the whole check is done here: the nonce, the nonce
//! count and the response.
//!
//! Nonces are self-validating, so no state is kept for a challenge that is
//! never answered: a nonce is the hex form of
//! `issued (8 bytes, ms since the server was made) || random (8) || mac (16)`,
//! where `mac` is HMAC-SHA-256 over the first 16 bytes with the server's
//! random secret, truncated to 16 bytes. A forged or foreign nonce fails the
//! MAC ([`AuthFailure::UnknownNonce`]); one of ours older than the TTL is
//! [`AuthFailure::Stale`].
//!
//! State is kept only for nonces that were used in a request that
//! authenticated: the last nonce count seen, so a replay is refused. That map
//! is bounded ([`DigestServer::with_max_tracked_nonces`], 100 000 by default):
//! expired entries are dropped on the way, and when it is full the entry
//! first used longest ago goes. Only authenticated clients can add entries,
//! so an anonymous flood cannot push real clients out.
//!
//! Without `qop` (RFC 2069 style) a response carries no nonce count, so
//! nothing would stop a replay within the nonce's lifetime. Such a nonce is
//! therefore accepted once only; a second use is
//! [`AuthFailure::NonceCountReplay`], and the client is challenged anew.
//!
//! A nonce is spent after [`DEFAULT_MAX_NONCE_FAILURES`] wrong answers: a
//! guesser cannot keep one nonce and try passwords against it, every few
//! guesses cost a fresh challenge ([`AuthFailure::SpentNonce`], answered
//! without hashing). Those counts live in a map bounded like the other.
//!
//! The digest `uri` must name the Request-URI (RFC 2617 §3.2.2.5, RFC 7616
//! §3.4.6): otherwise a response captured for one request could be used
//! for another ([`AuthFailure::UriMismatch`], answered 400).
//!
//! Which algorithms are offered is the caller's choice per account
//! ([`Accounts::digest_algorithms`]); a response in an algorithm that was
//! not offered to its account is refused ([`AuthFailure::NotOffered`]), so
//! an account set to SHA-256 cannot be attacked through MD5.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use md5::Md5;
use sha2::{Digest, Sha256};

/// The default bound on the number of nonces whose count is tracked.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 100_000;

/// Wrong answers after which a nonce is spent by default.
pub const DEFAULT_MAX_NONCE_FAILURES: u32 = 3;

/// The algorithms offered when the config names none: MD5 alone.
///
/// RFC 8760 §2.4 wants the challenges in order of preference and the
/// client to answer the topmost it supports, which puts SHA-256 first. The
/// phones do otherwise: Debian's baresip 1.0 (libre 1.1) gives up on the
/// whole 401 when any challenge is not MD5 ("Function not implemented"),
/// whatever its place; other softphones answer only the first or only the
/// last challenge they read. MD5 alone is the one offer every one of them
/// answers. SHA-256 is there for the accounts configured for it
/// (`digest_algorithms`); a list `[SHA-256, MD5]` follows RFC 8760 and
/// also serves phones that keep the last challenge, but not baresip 1.0.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[Algorithm::Md5];

/// Where digest verification looks up an account: its password and the
/// algorithms offered to it. The daemon implements it from its config
/// (agents by extension, trunks by credentials user name).
pub trait Accounts {
    /// The password of `user`, or `None` if there is no such account.
    fn password(&self, user: &str) -> Option<String>;

    /// The algorithms offered to `user`, most preferred first. Unknown
    /// users get the same as the default, so the challenge does not tell
    /// which accounts exist.
    fn digest_algorithms(&self, _user: &str) -> &[Algorithm] {
        DEFAULT_ALGORITHMS
    }
}

impl Accounts for HashMap<String, String> {
    fn password(&self, user: &str) -> Option<String> {
        self.get(user).cloned()
    }
}

/// A digest hash algorithm we offer and accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, what nearly every SIP phone speaks.
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm` parameter value. The `-sess` variants are not
    /// offered and so not accepted.
    pub fn parse(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex_hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a credentials header was not accepted. Every variant except
/// [`AuthFailure::Stale`] is answered with a fresh challenge; `Stale` is
/// answered with `stale=true` so the phone retries without asking its user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The scheme is not `Digest` (RFC 4475 regaut01: `NoOneKnowsThisScheme`).
    #[error("authorization scheme is not Digest")]
    NotDigest,
    /// The header does not parse or lacks a required parameter.
    #[error("malformed digest credentials: {0}")]
    Malformed(String),
    /// No password is known for the username.
    #[error("unknown user")]
    UnknownUser,
    /// The credentials are for another realm.
    #[error("credentials are for another realm")]
    WrongRealm,
    /// The response does not match: a wrong password, or a tampered request.
    #[error("digest response does not match")]
    BadResponse,
    /// One of our nonces, correct response, but older than the nonce TTL.
    #[error("nonce is stale")]
    Stale,
    /// The nonce was not issued by this server (or has been altered).
    #[error("nonce was not issued here")]
    UnknownNonce,
    /// The nonce count is not greater than the last one seen for this nonce,
    /// or a nonce used without `qop` was used again.
    #[error("nonce count replayed")]
    NonceCountReplay,
    /// An algorithm other than MD5 and SHA-256 (including the `-sess` ones).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// MD5 or SHA-256, but not among those offered to the account.
    #[error("digest algorithm not offered to this account")]
    NotOffered,
    /// The nonce had too many wrong answers; it is not checked again.
    #[error("nonce spent by failed attempts")]
    SpentNonce,
    /// The digest `uri` is not the request's Request-URI.
    #[error("digest uri is not the Request-URI")]
    UriMismatch,
}

impl AuthFailure {
    /// Whether the failure is a wrong guess of a password (or of a user
    /// name): what brute force produces and lockouts count.
    pub fn is_wrong_guess(&self) -> bool {
        matches!(self, AuthFailure::BadResponse | AuthFailure::UnknownUser)
    }

    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            AuthFailure::NotDigest => "not_digest",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongRealm => "wrong_realm",
            AuthFailure::BadResponse => "bad_password",
            AuthFailure::Stale => "stale",
            AuthFailure::UnknownNonce => "unknown_nonce",
            AuthFailure::NonceCountReplay => "replay",
            AuthFailure::UnsupportedAlgorithm => "unsupported_algorithm",
            AuthFailure::NotOffered => "algorithm_not_offered",
            AuthFailure::SpentNonce => "spent_nonce",
            AuthFailure::UriMismatch => "uri_mismatch",
        }
    }
}

/// How a tracked nonce has been used.
#[derive(Clone, Copy, Debug)]
enum NonceUse {
    /// With `qop`: the highest nonce count accepted so far.
    Counted(u32),
    /// Without `qop`: used once, never again.
    Once,
}

#[derive(Clone, Copy, Debug)]
struct Tracked {
    used: NonceUse,
    issued_ms: u64,
}

const NONCE_BYTES: usize = 32;
type NonceKey = [u8; 16];

/// The server side of digest authentication for one realm.
///
/// ```
/// use std::time::{Duration, Instant};
/// use zentrale::sip::digest::{Algorithm, DigestServer};
///
/// let now = Instant::now();
/// let mut auth = DigestServer::new("zentrale", Duration::from_secs(300), now);
/// let challenges = auth.challenges(now, false, &[Algorithm::Sha256, Algorithm::Md5]);
/// // In the order given: the most preferred first (RFC 8760).
/// assert!(challenges[0].contains("algorithm=SHA-256"));
/// assert!(challenges[1].contains("algorithm=MD5"));
/// ```
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    nonce_ttl: Duration,
    secret: [u8; 32],
    /// Draws the random part of each nonce.
    rng: crate::rng::SeededRng,
    epoch: Instant,
    opaque: Option<String>,
    max_tracked: usize,
    tracked: HashMap<NonceKey, Tracked>,
    // First-use order of `tracked`, for purging; may hold keys already gone.
    order: VecDeque<NonceKey>,
    max_nonce_failures: u32,
    // Wrong answers per nonce, and their first-failure order.
    failed: HashMap<NonceKey, u32>,
    failed_order: VecDeque<NonceKey>,
}

impl DigestServer {
    /// A server for `realm` whose nonces live `nonce_ttl`, with a fresh
    /// random secret. `now` is the zero point of the nonce timestamps.
    pub fn new(realm: impl Into<String>, nonce_ttl: Duration, now: Instant) -> Self {
        Self::seeded(realm, nonce_ttl, now, crate::rng::SeededRng::from_entropy())
    }

    /// [`DigestServer::new`] with the secret and the nonces' random part
    /// drawn from `rng` (the core's generator; a fixed seed in tests).
    pub fn seeded(
        realm: impl Into<String>,
        nonce_ttl: Duration,
        now: Instant,
        mut rng: crate::rng::SeededRng,
    ) -> Self {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        Self {
            realm: realm.into(),
            nonce_ttl,
            secret,
            rng,
            epoch: now,
            opaque: None,
            max_tracked: DEFAULT_MAX_TRACKED_NONCES,
            tracked: HashMap::new(),
            order: VecDeque::new(),
            max_nonce_failures: DEFAULT_MAX_NONCE_FAILURES,
            failed: HashMap::new(),
            failed_order: VecDeque::new(),
        }
    }

    /// Spends a nonce after `max` wrong answers (at least 1).
    pub fn with_max_nonce_failures(mut self, max: u32) -> Self {
        self.max_nonce_failures = max.max(1);
        self
    }

    /// Sends `opaque` in every challenge. A client that echoes an `opaque`
    /// must echo this one; one that leaves it out is still accepted, as many
    /// phones do.
    pub fn with_opaque(mut self, opaque: impl Into<String>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// Bounds the number of nonces whose count is tracked (at least 1).
    pub fn with_max_tracked_nonces(mut self, max: usize) -> Self {
        self.max_tracked = max.max(1);
        self
    }

    /// The realm challenged for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The number of nonces whose count is tracked now.
    pub fn tracked_nonces(&self) -> usize {
        self.tracked.len()
    }

    /// Values for `WWW-Authenticate` (or `Proxy-Authenticate`) headers, one
    /// per algorithm of `algorithms`, in that order (the caller's
    /// preference; see [`DEFAULT_ALGORITHMS`] on why that is MD5 alone by
    /// default). All carry the same new nonce and `qop="auth"`;
    /// `stale=true` is added when `stale` is set.
    pub fn challenges(
        &mut self,
        now: Instant,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.new_nonce(now);
        algorithms
            .iter()
            .map(|alg| {
                let mut c = format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
                    quote_escape(&self.realm),
                    nonce,
                    alg
                );
                if let Some(opaque) = &self.opaque {
                    c.push_str(&format!(", opaque=\"{}\"", quote_escape(opaque)));
                }
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    /// The user name of an `Authorization` header value for our realm,
    /// without checking anything else (cheap: no hashing), so lockouts can
    /// be applied before the response is.
    pub fn username_of(&self, header_value: &str) -> Option<String> {
        Credentials::parse(header_value)
            .ok()
            .filter(|c| c.realm == self.realm)
            .map(|c| c.username)
    }

    /// Verifies an `Authorization` (or `Proxy-Authorization`) header value
    /// for a request with `method` and `request_uri`, which the digest
    /// `uri` must name. Returns the authenticated username.
    ///
    /// The response is checked before the nonce's age and count, so `Stale`
    /// is only reported to a client that knows the password (RFC 2617
    /// §3.2.1), and a nonce's count only moves on a request that checked out.
    pub fn verify(
        &mut self,
        method: &str,
        request_uri: &str,
        header_value: &str,
        accounts: &dyn Accounts,
        now: Instant,
    ) -> Result<String, AuthFailure> {
        let creds = Credentials::parse(header_value)?;
        if creds.realm != self.realm {
            return Err(AuthFailure::WrongRealm);
        }
        let (key, issued_ms) = self
            .check_nonce(&creds.nonce)
            .ok_or(AuthFailure::UnknownNonce)?;
        if let Some(opaque) = &creds.opaque
            && Some(opaque) != self.opaque.as_ref()
        {
            return Err(AuthFailure::UnknownNonce);
        }
        if !same_uri(&creds.uri, request_uri) {
            return Err(AuthFailure::UriMismatch);
        }
        if !accounts
            .digest_algorithms(&creds.username)
            .contains(&creds.algorithm)
        {
            return Err(AuthFailure::NotOffered);
        }
        if self
            .failed
            .get(&key)
            .is_some_and(|&n| n >= self.max_nonce_failures)
        {
            return Err(AuthFailure::SpentNonce);
        }

        // An unknown user costs the same hashing as a known one, so timing
        // does not tell them apart.
        let password = accounts.password(&creds.username);
        let expected = creds.expected_response(method, password.as_deref().unwrap_or(""));
        let matches = constant_time_eq(expected.as_bytes(), creds.response.as_bytes());
        if password.is_none() || !matches {
            self.count_failure(key);
            return Err(if password.is_none() {
                AuthFailure::UnknownUser
            } else {
                AuthFailure::BadResponse
            });
        }

        let now_ms = self.ms_since_epoch(now);
        if self.is_expired(issued_ms, now_ms) {
            return Err(AuthFailure::Stale);
        }

        let used = match creds.nc {
            Some(nc) => NonceUse::Counted(nc),
            None => NonceUse::Once,
        };
        match (self.tracked.get(&key).map(|t| t.used), used) {
            (None, _) => {}
            (Some(NonceUse::Counted(last)), NonceUse::Counted(nc)) if nc > last => {}
            _ => return Err(AuthFailure::NonceCountReplay),
        }
        self.track(key, Tracked { used, issued_ms }, now_ms);
        Ok(creds.username)
    }

    /// One more wrong answer to the nonce `key`; the map keeps at most
    /// `max_tracked` nonces, the one that first failed longest ago goes.
    fn count_failure(&mut self, key: NonceKey) {
        match self.failed.get_mut(&key) {
            Some(n) => *n += 1,
            None => {
                self.failed.insert(key, 1);
                self.failed_order.push_back(key);
                while self.failed.len() > self.max_tracked {
                    match self.failed_order.pop_front() {
                        Some(old) => {
                            self.failed.remove(&old);
                        }
                        None => break,
                    }
                }
            }
        }
    }

    fn ms_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn is_expired(&self, issued_ms: u64, now_ms: u64) -> bool {
        let ttl_ms = u64::try_from(self.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(issued_ms) > ttl_ms
    }

    fn mac(&self, data: &[u8]) -> [u8; 16] {
        let full = hmac_sha256(&self.secret, data);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    fn new_nonce(&mut self, now: Instant) -> String {
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&self.ms_since_epoch(now).to_be_bytes());
        self.rng.fill(&mut raw[8..16]);
        let mac = self.mac(&raw[..16]);
        raw[16..].copy_from_slice(&mac);
        hex::encode(raw)
    }

    /// The tracking key and issue time of a nonce, if it is ours.
    fn check_nonce(&self, nonce: &str) -> Option<(NonceKey, u64)> {
        // Only the exact lower-case form we issued counts: otherwise a
        // change of case would be a "new" nonce with a fresh count.
        if nonce.len() != NONCE_BYTES * 2
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let raw = hex::decode(nonce).ok()?;
        let mac = self.mac(&raw[..16]);
        if !constant_time_eq(&mac, &raw[16..]) {
            return None;
        }
        let mut key = [0u8; 16];
        key.copy_from_slice(&raw[..16]);
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&raw[..8]);
        Some((key, u64::from_be_bytes(issued)))
    }

    fn track(&mut self, key: NonceKey, entry: Tracked, now_ms: u64) {
        let is_new = self.tracked.insert(key, entry).is_none();
        if is_new {
            self.order.push_back(key);
        }
        // Drop what has expired at the old end, then enforce the bound.
        // First-use order is close to issue order (nonces are used within
        // their TTL), so expired entries gather at the front.
        while let Some(front) = self.order.front().copied() {
            let gone = match self.tracked.get(&front) {
                None => true,
                Some(t) => {
                    front != key
                        && (self.is_expired(t.issued_ms, now_ms)
                            || self.tracked.len() > self.max_tracked)
                }
            };
            if !gone {
                break;
            }
            self.order.pop_front();
            self.tracked.remove(&front);
        }
    }
}

/// The parsed parameters of a `Digest` credentials header.
#[derive(Debug)]
struct Credentials {
    username: String,
    realm: String,
    nonce: String,
    uri: String,
    response: String,
    algorithm: Algorithm,
    /// `(nc as sent, cnonce)` when `qop=auth`.
    qop: Option<(String, String)>,
    nc: Option<u32>,
    opaque: Option<String>,
}

impl Credentials {
    fn parse(value: &str) -> Result<Self, AuthFailure> {
        let value = value.trim_start();
        let scheme_end = value
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(value.len());
        if !value[..scheme_end].eq_ignore_ascii_case("Digest") {
            return Err(AuthFailure::NotDigest);
        }
        let params = parse_auth_params(&value[scheme_end..]).map_err(AuthFailure::Malformed)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let required = |name: &str| {
            get(name).ok_or_else(|| AuthFailure::Malformed(format!("no {name} parameter")))
        };

        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(&a).ok_or(AuthFailure::UnsupportedAlgorithm)?,
        };
        if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(AuthFailure::Malformed("userhash was not offered".into()));
        }
        let response = required("response")?.to_ascii_lowercase();
        let hex_len = match algorithm {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        };
        if response.len() != hex_len || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AuthFailure::Malformed(format!(
                "response is not {hex_len} hex digits"
            )));
        }

        let (qop, nc) = match get("qop") {
            None => (None, None),
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_text = required("nc")?;
                let nc = parse_nc(&nc_text)?;
                let cnonce = required("cnonce")?;
                (Some((nc_text, cnonce)), Some(nc))
            }
            Some(q) => return Err(AuthFailure::Malformed(format!("qop {q} was not offered"))),
        };

        Ok(Credentials {
            username: required("username")?,
            realm: required("realm")?,
            nonce: required("nonce")?,
            uri: required("uri")?,
            response,
            algorithm,
            qop,
            nc,
            opaque: get("opaque"),
        })
    }

    /// The response a client knowing `password` would have sent.
    fn expected_response(&self, method: &str, password: &str) -> String {
        let ha1 = ha1(self.algorithm, &self.username, &self.realm, password);
        let qop = self.qop.as_ref().map(|(nc, c)| (nc.as_str(), c.as_str()));
        response(self.algorithm, &ha1, &self.nonce, qop, method, &self.uri)
    }
}

/// H(A1) (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2): the hash of
/// `user:realm:password`.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hex_hash(&format!("{user}:{realm}:{password}"))
}

/// The `response` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1) for `method`
/// on `uri`, from [`ha1`] and the server's `nonce`; `qop` is `(nc, cnonce)`
/// for `qop=auth`, `None` for the RFC 2069 form. What the server checks and
/// what a client (the test peers) sends are computed here alike.
///
/// ```
/// use zentrale::sip::digest::{Algorithm, ha1, response};
/// // RFC 2617 §3.5.
/// let ha1 = ha1(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
/// let r = response(
///     Algorithm::Md5,
///     &ha1,
///     "dcd98b7102dd2f0e8b11d0f600bfb0c093",
///     Some(("00000001", "0a4f113b")),
///     "GET",
///     "/dir/index.html",
/// );
/// assert_eq!(r, "6629fae49393a05397450978507c4ef1");
/// ```
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex_hash(&format!("{method}:{uri}"));
    match qop {
        // The nonce count goes into the hash as sent, not re-formatted.
        Some((nc, cnonce)) => {
            algorithm.hex_hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
        }
        None => algorithm.hex_hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// The parameters of a `Digest` challenge or credentials value, unquoted,
/// in order; `None` for another scheme or a list that does not parse (the
/// same reading the server gives an `Authorization` value).
///
/// ```
/// use zentrale::sip::digest::params;
/// let p = params(r#"Digest realm="zentrale", nonce="abc", qop="auth""#).unwrap();
/// assert_eq!(p[1], ("nonce".to_owned(), "abc".to_owned()));
/// assert_eq!(params("Basic realm=\"x\""), None);
/// ```
pub fn params(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim_start();
    let scheme_end = value
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case("Digest") {
        return None;
    }
    parse_auth_params(&value[scheme_end..]).ok()
}

/// `nc-value = 8LHEX` (RFC 2617 §3.2.2); upper case is tolerated. Zero is
/// not a count.
fn parse_nc(text: &str) -> Result<u32, AuthFailure> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthFailure::Malformed("nc is not 8 hex digits".into()));
    }
    match u32::from_str_radix(text, 16) {
        Ok(0) | Err(_) => Err(AuthFailure::Malformed("nc is zero".into())),
        Ok(n) => Ok(n),
    }
}

/// Splits `name=value, name="quoted", ...` into pairs, unquoting values.
/// Duplicate names are refused: which one would count is ambiguous.
fn parse_auth_params(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        // Skip separators.
        while let Some(&(_, c)) = chars.peek() {
            if c == ',' || c.is_ascii_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let name = &s[start..end];
        if name.is_empty() {
            return Err("empty parameter name".into());
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("parameter {name} has no value"));
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(format!("parameter {name} has an unclosed quote"));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
            if value.is_empty() {
                return Err(format!("parameter {name} has an empty value"));
            }
        }
        if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Err(format!("parameter {name} appears twice"));
        }
        out.push((name.to_string(), value));
        // After a value only whitespace and then a comma or the end may follow.
        while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some(&(_, ',')) => {}
            Some(&(_, c)) => return Err(format!("unexpected {c:?} after parameter {name}")),
        }
    }
    Ok(out)
}

/// Whether the digest `uri` names the Request-URI: the same text, or the
/// same scheme, user, host (case-insensitive), port and `transport`, as
/// RFC 3261 §19.1.4 compares them for what phones send (a client may write
/// the URI with other parameter order or case).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    let key = |uri: &str| {
        let parsed = rsipstack::sip::parse_uri(uri).ok()?;
        let transport = parsed.params.iter().find_map(|p| match p {
            rsipstack::sip::Param::Transport(t) => Some(t.to_string().to_ascii_lowercase()),
            _ => None,
        });
        Some((
            parsed.scheme.map(|s| s.to_string().to_ascii_lowercase()),
            parsed.auth.map(|a| a.user),
            parsed.host_with_port.host.to_string().to_ascii_lowercase(),
            parsed.host_with_port.port.map(|p| p.0),
            transport,
        ))
    };
    match (key(digest_uri), key(request_uri)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Compares without an early exit, so the time taken does not tell how
/// much of a guessed response was right. Lengths are public.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA-256 (RFC 2104) with a key no longer than the block.
fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(data)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn nonce_of(challenge: &str) -> String {
        let params = parse_auth_params(challenge.trim_start_matches("Digest")).unwrap();
        params.into_iter().find(|(k, _)| k == "nonce").unwrap().1
    }

    /// Computes a response the long way, independent of `Credentials`.
    #[allow(clippy::too_many_arguments)]
    fn respond(
        alg: Algorithm,
        user: &str,
        realm: &str,
        pass: &str,
        method: &str,
        uri: &str,
        nonce: &str,
        nc_cnonce: Option<(&str, &str)>,
    ) -> String {
        let h = |s: String| match alg {
            Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
        };
        let ha1 = h(format!("{user}:{realm}:{pass}"));
        let ha2 = h(format!("{method}:{uri}"));
        let (resp, extra) = match nc_cnonce {
            Some((nc, cnonce)) => (
                h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
                format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""),
            ),
            None => (h(format!("{ha1}:{nonce}:{ha2}")), String::new()),
        };
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{resp}\", algorithm={}{extra}",
            alg.as_str()
        )
    }

    const URI: &str = "sip:z";
    const BOTH: &[Algorithm] = &[Algorithm::Md5, Algorithm::Sha256];

    /// One account, 2001, offered both algorithms.
    struct Pw;

    impl Accounts for Pw {
        fn password(&self, user: &str) -> Option<String> {
            (user == "2001").then(|| "geheim".to_string())
        }
        fn digest_algorithms(&self, _user: &str) -> &[Algorithm] {
            BOTH
        }
    }

    #[test]
    fn rfc_2617_and_7616_examples() {
        // RFC 2617 §3.5.
        let c = Credentials::parse(
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, \
             nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.expected_response("GET", "Circle Of Life"), c.response);
        // RFC 7616 §3.9.1, SHA-256 and MD5.
        let base = "username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
             qop=auth, nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\"";
        let c = Credentials::parse(&format!(
            "Digest {base}, algorithm=SHA-256, \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
        ))
        .unwrap();
        assert_eq!(c.expected_response("GET", "Circle of Life"), c.response);
        let c = Credentials::parse(&format!(
            "Digest {base}, algorithm=MD5, response=\"8ca523f5e9506fed4657c9700eebdbec\""
        ))
        .unwrap();
        assert_eq!(c.expected_response("GET", "Circle of Life"), c.response);
    }

    #[test]
    fn challenges_md5_first_then_sha256() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let c = s.challenges(t0, false, BOTH);
        assert_eq!(c.len(), 2);
        assert!(c[0].starts_with("Digest realm=\"zentrale\""));
        assert!(c[0].contains("algorithm=MD5") && c[0].contains("qop=\"auth\""));
        assert!(c[1].contains("algorithm=SHA-256") && !c[1].contains("stale"));
        assert!(s.challenges(t0, true, BOTH)[0].ends_with("stale=true"));
    }

    #[test]
    fn nonce_counts_past_9_and_past_ff_are_accepted() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = nonce_of(&s.challenges(t0, false, BOTH)[0]);
            for nc in [
                "00000001", "00000009", "0000000a", "000000ff", "00000100", "ffffffff",
            ] {
                let h = respond(
                    alg,
                    "2001",
                    "zentrale",
                    "geheim",
                    "REGISTER",
                    "sip:z",
                    &nonce,
                    Some((nc, "c1")),
                );
                assert_eq!(
                    s.verify("REGISTER", URI, &h, &Pw, t0),
                    Ok("2001".into()),
                    "{nc}"
                );
            }
        }
    }

    #[test]
    fn replayed_or_lower_nc_is_refused() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[1]);
        let mk = |nc| {
            respond(
                Algorithm::Md5,
                "2001",
                "zentrale",
                "geheim",
                "REGISTER",
                "sip:z",
                &nonce,
                Some((nc, "abc")),
            )
        };
        assert!(s.verify("REGISTER", URI, &mk("0000000a"), &Pw, t0).is_ok());
        assert_eq!(
            s.verify("REGISTER", URI, &mk("0000000a"), &Pw, t0),
            Err(AuthFailure::NonceCountReplay)
        );
        assert_eq!(
            s.verify("REGISTER", URI, &mk("00000002"), &Pw, t0),
            Err(AuthFailure::NonceCountReplay)
        );
        assert!(s.verify("REGISTER", URI, &mk("0000000B"), &Pw, t0).is_ok());
    }

    #[test]
    fn failures_are_told_apart() {
        let t0 = Instant::now();
        // One nonce takes every kind of failure here: it must not be spent.
        let mut s = DigestServer::new("zentrale", TTL, t0).with_max_nonce_failures(10);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[0]);
        let ok = |user: &str, pass: &str, realm: &str, nonce: &str| {
            respond(
                Algorithm::Sha256,
                user,
                realm,
                pass,
                "REGISTER",
                "sip:z",
                nonce,
                Some(("00000001", "x")),
            )
        };
        let v = |s: &mut DigestServer, h: &str, now| s.verify("REGISTER", URI, h, &Pw, now);
        assert_eq!(
            v(&mut s, "NoOneKnowsThisScheme opaque-data=here", t0),
            Err(AuthFailure::NotDigest)
        );
        assert!(matches!(
            v(&mut s, "Digest username=\"2001\"", t0),
            Err(AuthFailure::Malformed(_))
        ));
        assert!(matches!(
            v(&mut s, "Digest username=\"2001, realm=x", t0),
            Err(AuthFailure::Malformed(_))
        ));
        assert_eq!(
            v(&mut s, &ok("2001", "falsch", "zentrale", &nonce), t0),
            Err(AuthFailure::BadResponse)
        );
        assert_eq!(
            v(&mut s, &ok("9999", "geheim", "zentrale", &nonce), t0),
            Err(AuthFailure::UnknownUser)
        );
        assert_eq!(
            v(&mut s, &ok("2001", "geheim", "other", &nonce), t0),
            Err(AuthFailure::WrongRealm)
        );
        let forged = format!("{}0", &nonce[..63]);
        let forged = if forged == nonce {
            format!("{}1", &nonce[..63])
        } else {
            forged
        };
        assert_eq!(
            v(&mut s, &ok("2001", "geheim", "zentrale", &forged), t0),
            Err(AuthFailure::UnknownNonce)
        );
        assert_eq!(
            v(
                &mut s,
                &ok("2001", "geheim", "zentrale", &nonce.to_uppercase()),
                t0
            ),
            Err(AuthFailure::UnknownNonce)
        );
        let sess = ok("2001", "geheim", "zentrale", &nonce)
            .replace("algorithm=SHA-256", "algorithm=MD5-sess");
        assert_eq!(v(&mut s, &sess, t0), Err(AuthFailure::UnsupportedAlgorithm));
        // Expired: stale, but only with the right password.
        let later = t0 + TTL + Duration::from_secs(1);
        assert_eq!(
            v(&mut s, &ok("2001", "geheim", "zentrale", &nonce), later),
            Err(AuthFailure::Stale)
        );
        assert_eq!(
            v(&mut s, &ok("2001", "falsch", "zentrale", &nonce), later),
            Err(AuthFailure::BadResponse)
        );
        // Exactly at the TTL it is still fresh.
        assert!(v(&mut s, &ok("2001", "geheim", "zentrale", &nonce), t0 + TTL).is_ok());
    }

    #[test]
    fn another_servers_nonce_is_unknown() {
        let t0 = Instant::now();
        let mut a = DigestServer::new("zentrale", TTL, t0);
        let mut b = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&a.challenges(t0, false, BOTH)[0]);
        let h = respond(
            Algorithm::Md5,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            "sip:z",
            &nonce,
            Some(("00000001", "x")),
        );
        assert_eq!(
            b.verify("REGISTER", URI, &h, &Pw, t0),
            Err(AuthFailure::UnknownNonce)
        );
        assert!(a.verify("REGISTER", URI, &h, &Pw, t0).is_ok());
    }

    #[test]
    fn without_qop_a_nonce_is_single_use() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[1]);
        let h = respond(
            Algorithm::Md5,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            "sip:z",
            &nonce,
            None,
        );
        assert!(s.verify("REGISTER", URI, &h, &Pw, t0).is_ok());
        assert_eq!(
            s.verify("REGISTER", URI, &h, &Pw, t0),
            Err(AuthFailure::NonceCountReplay)
        );
    }

    #[test]
    fn opaque_must_match_when_echoed() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0).with_opaque("abc");
        let c = s.challenges(t0, false, BOTH);
        assert!(c[0].contains("opaque=\"abc\""));
        let nonce = nonce_of(&c[0]);
        let h = respond(
            Algorithm::Md5,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            "sip:z",
            &nonce,
            Some(("00000001", "x")),
        );
        assert_eq!(
            s.verify("REGISTER", URI, &format!("{h}, opaque=\"xyz\""), &Pw, t0),
            Err(AuthFailure::UnknownNonce)
        );
        assert!(
            s.verify("REGISTER", URI, &format!("{h}, opaque=\"abc\""), &Pw, t0)
                .is_ok()
        );
    }

    #[test]
    fn tracked_nonces_stay_bounded() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0).with_max_tracked_nonces(3);
        let mut first = None;
        for i in 0..10 {
            let now = t0 + Duration::from_millis(i);
            let nonce = nonce_of(&s.challenges(now, false, BOTH)[0]);
            let h = respond(
                Algorithm::Md5,
                "2001",
                "zentrale",
                "geheim",
                "REGISTER",
                "sip:z",
                &nonce,
                Some(("00000001", "x")),
            );
            assert!(s.verify("REGISTER", URI, &h, &Pw, now).is_ok());
            first.get_or_insert(h);
            assert!(s.tracked_nonces() <= 3);
        }
        // Expired entries go on the next success.
        let later = t0 + TTL * 2;
        let nonce = nonce_of(&s.challenges(later, false, BOTH)[0]);
        let h = respond(
            Algorithm::Md5,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            "sip:z",
            &nonce,
            Some(("00000001", "x")),
        );
        assert!(s.verify("REGISTER", URI, &h, &Pw, later).is_ok());
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn default_offer_is_md5_alone_and_the_order_is_the_callers() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let c = s.challenges(t0, false, DEFAULT_ALGORITHMS);
        assert_eq!(c.len(), 1);
        assert!(c[0].contains("algorithm=MD5"));
        let c = s.challenges(t0, false, &[Algorithm::Sha256, Algorithm::Md5]);
        assert!(c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"));
    }

    #[test]
    fn an_algorithm_not_offered_to_the_account_is_refused() {
        struct Sha256Only;
        impl Accounts for Sha256Only {
            fn password(&self, user: &str) -> Option<String> {
                (user == "2001").then(|| "geheim".to_string())
            }
            fn digest_algorithms(&self, _user: &str) -> &[Algorithm] {
                &[Algorithm::Sha256]
            }
        }
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&s.challenges(t0, false, &[Algorithm::Sha256])[0]);
        let with = |alg| {
            respond(
                alg,
                "2001",
                "zentrale",
                "geheim",
                "REGISTER",
                URI,
                &nonce,
                Some(("00000001", "x")),
            )
        };
        assert_eq!(
            s.verify("REGISTER", URI, &with(Algorithm::Md5), &Sha256Only, t0),
            Err(AuthFailure::NotOffered)
        );
        assert!(
            s.verify("REGISTER", URI, &with(Algorithm::Sha256), &Sha256Only, t0)
                .is_ok()
        );
        // The default book offers MD5 alone.
        let book = HashMap::from([("2001".to_string(), "geheim".to_string())]);
        let nonce2 = nonce_of(&s.challenges(t0, false, DEFAULT_ALGORITHMS)[0]);
        let sha = respond(
            Algorithm::Sha256,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            URI,
            &nonce2,
            Some(("00000001", "x")),
        );
        assert_eq!(
            s.verify("REGISTER", URI, &sha, &book, t0),
            Err(AuthFailure::NotOffered)
        );
    }

    #[test]
    fn a_nonce_is_spent_after_three_wrong_answers() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[0]);
        let guess = |pass: &str, nc: &str| {
            respond(
                Algorithm::Md5,
                "2001",
                "zentrale",
                pass,
                "REGISTER",
                URI,
                &nonce,
                Some((nc, "x")),
            )
        };
        for (i, pass) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(
                s.verify("REGISTER", URI, &guess(pass, "00000001"), &Pw, t0),
                Err(AuthFailure::BadResponse),
                "guess {i}"
            );
        }
        // Spent: even the right password is not checked against it.
        assert_eq!(
            s.verify("REGISTER", URI, &guess("geheim", "00000001"), &Pw, t0),
            Err(AuthFailure::SpentNonce)
        );
        // A fresh nonce works.
        let fresh = nonce_of(&s.challenges(t0, false, BOTH)[0]);
        let ok = respond(
            Algorithm::Md5,
            "2001",
            "zentrale",
            "geheim",
            "REGISTER",
            URI,
            &fresh,
            Some(("00000001", "x")),
        );
        assert!(s.verify("REGISTER", URI, &ok, &Pw, t0).is_ok());
        // Configurable, and unknown users spend it too.
        let mut s = DigestServer::new("zentrale", TTL, t0).with_max_nonce_failures(1);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[0]);
        let h = respond(
            Algorithm::Md5,
            "9999",
            "zentrale",
            "x",
            "REGISTER",
            URI,
            &nonce,
            None,
        );
        assert_eq!(
            s.verify("REGISTER", URI, &h, &Pw, t0),
            Err(AuthFailure::UnknownUser)
        );
        assert_eq!(
            s.verify("REGISTER", URI, &h, &Pw, t0),
            Err(AuthFailure::SpentNonce)
        );
    }

    #[test]
    fn the_digest_uri_must_name_the_request_uri() {
        let t0 = Instant::now();
        let mut s = DigestServer::new("zentrale", TTL, t0);
        let nonce = nonce_of(&s.challenges(t0, false, BOTH)[0]);
        let for_uri = |uri: &str| {
            respond(
                Algorithm::Md5,
                "2001",
                "zentrale",
                "geheim",
                "INVITE",
                uri,
                &nonce,
                Some(("00000001", "x")),
            )
        };
        // A response made for another URI, even a correct one, is 400.
        assert_eq!(
            s.verify(
                "INVITE",
                "sip:115@127.0.0.1",
                &for_uri("sip:116@127.0.0.1"),
                &Pw,
                t0
            ),
            Err(AuthFailure::UriMismatch)
        );
        // The same URI written with another case of host or scheme passes.
        assert!(
            s.verify(
                "INVITE",
                "sip:115@LOCALHOST:5060",
                &for_uri("SIP:115@localhost:5060"),
                &Pw,
                t0
            )
            .is_ok()
        );
        assert!(same_uri("sip:a@h;transport=udp", "sip:a@h;transport=UDP"));
        assert!(!same_uri("sip:a@h:5060", "sip:a@h"));
        assert!(!same_uri("sip:a@h", "sip:b@h"));
        assert!(!same_uri("garbage", "sip:a@h"));
    }

    #[test]
    fn param_parser_handles_spacing_and_escapes() {
        let p = parse_auth_params(r#" a = "x\"y" ,b=tok,  c="" "#).unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "x\"y".into()),
                ("b".into(), "tok".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(parse_auth_params("a=1, A=2").is_err());
        assert!(parse_auth_params("a").is_err());
        assert!(parse_auth_params("a=\"x").is_err());
        assert!(parse_nc("0000000").is_err());
        assert!(parse_nc("00000000").is_err());
        assert!(parse_nc("0000000g").is_err());
        assert_eq!(parse_nc("00000100"), Ok(256));
    }
}
