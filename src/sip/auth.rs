//! Authentication of a request: digest verification ([`super::digest`])
//! behind the brute-force limits ([`super::lockout`]), with the answer to
//! give. The registrar (REGISTER, 401) and the core (INVITE, 407) share it.
//!
//! Sans-IO: [`Authenticator::authenticate`] takes the request, its source
//! address and the time and says what to answer; what happened is in
//! [`AuthEvent`] for the caller to count and log.

use std::net::IpAddr;
use std::time::Instant;

use super::digest::{Accounts, AuthFailure, DigestServer};
use super::lockout::{Failure, Lockout, Scope};
use super::message::{Header, Request};

/// Which header pair a request authenticates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Authorization` / `WWW-Authenticate`, answered 401 (registrar).
    Www,
    /// `Proxy-Authorization` / `Proxy-Authenticate`, answered 407.
    Proxy,
}

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The user name that authenticated.
    Authenticated(String),
    /// 401 or 407 with these challenge header values.
    Challenge(Vec<String>),
    /// 403: the source or account is locked out (nothing was verified).
    Locked,
    /// 400 with this reason (the digest `uri` is not the Request-URI).
    BadRequest(&'static str),
}

/// A failed attempt, for metrics and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub source: IpAddr,
    /// The digest user name tried (or the account the request named).
    pub account: String,
    /// [`AuthFailure::label`], or `locked` for a refusal during a lockout.
    pub reason: &'static str,
    /// A lockout this attempt started.
    pub lockout: Option<(Scope, std::time::Duration)>,
    /// `Some(suppressed)`: write a log line now (and say how many were
    /// suppressed before it); `None`: rate-limited away.
    pub log: Option<u64>,
}

/// The outcome of [`Authenticator::authenticate`].
#[derive(Debug)]
pub struct AuthResult {
    pub verdict: Verdict,
    /// Set when the attempt failed or was refused.
    pub event: Option<AuthEvent>,
}

/// Digest server and lockouts together.
#[derive(Debug)]
pub struct Authenticator {
    pub digest: DigestServer,
    pub lockout: Lockout,
}

impl Authenticator {
    /// Joins a digest server and lockout counts.
    pub fn new(digest: DigestServer, lockout: Lockout) -> Self {
        Self { digest, lockout }
    }

    /// Authenticates `req` from `source`. `account` is whom the request
    /// is for (the REGISTER's To user, the agent's From user, the trunk's
    /// user name): its algorithms are offered when challenging. The first
    /// credentials for our realm decide.
    pub fn authenticate(
        &mut self,
        req: &Request,
        kind: Challenge,
        account: &str,
        source: IpAddr,
        accounts: &dyn Accounts,
        now: Instant,
    ) -> AuthResult {
        let mut values = req.headers.iter().filter_map(|h| match (kind, h) {
            (Challenge::Www, Header::Authorization(v)) => Some(v.value()),
            (Challenge::Proxy, Header::ProxyAuthorization(v)) => Some(v.value()),
            _ => None,
        });
        let ours = values.find(|v| self.digest.username_of(v).is_some());
        let tried = ours.and_then(|v| self.digest.username_of(v));
        // Without credentials the request's account decides, so a phone
        // that authenticated from here before gets its challenge.
        let whom = tried.as_deref().unwrap_or(account);
        if let Err(_locked) = self.lockout.check(source, Some(whom), now) {
            let log = self.lockout.refused(source, now);
            return AuthResult {
                verdict: Verdict::Locked,
                event: Some(AuthEvent {
                    source,
                    account: tried.unwrap_or_else(|| account.to_string()),
                    reason: "locked",
                    lockout: None,
                    log,
                }),
            };
        }
        let algorithms = accounts.digest_algorithms(account);
        let Some(value) = ours else {
            // No credentials (or only another realm's, or unparsable ones,
            // which `username_of` cannot read): a first challenge.
            let failure = req
                .headers
                .iter()
                .find_map(|h| match (kind, h) {
                    (Challenge::Www, Header::Authorization(v)) => Some(v.value()),
                    (Challenge::Proxy, Header::ProxyAuthorization(v)) => Some(v.value()),
                    _ => None,
                })
                .map(|_| "malformed");
            return AuthResult {
                verdict: Verdict::Challenge(self.digest.challenges(now, false, algorithms)),
                event: failure.map(|reason| AuthEvent {
                    source,
                    account: account.to_string(),
                    reason,
                    lockout: None,
                    log: None,
                }),
            };
        };
        let uri = req.uri.to_string();
        let method = req.method.to_string();
        match self.digest.verify(&method, &uri, value, accounts, now) {
            Ok(user) => {
                self.lockout.succeeded(source, &user, now);
                AuthResult {
                    verdict: Verdict::Authenticated(user),
                    event: None,
                }
            }
            Err(AuthFailure::UriMismatch) => AuthResult {
                verdict: Verdict::BadRequest("digest uri is not the Request-URI"),
                event: Some(AuthEvent {
                    source,
                    account: tried.unwrap_or_default(),
                    reason: AuthFailure::UriMismatch.label(),
                    lockout: None,
                    log: None,
                }),
            },
            Err(e) => {
                let user = tried.unwrap_or_default();
                let Failure { locked, log } = if e.is_wrong_guess() {
                    self.lockout.failed(source, &user, now)
                } else {
                    Failure::default()
                };
                let verdict = if locked.is_some() {
                    Verdict::Locked
                } else {
                    let stale = e == AuthFailure::Stale;
                    Verdict::Challenge(self.digest.challenges(now, stale, algorithms))
                };
                AuthResult {
                    verdict,
                    event: (e != AuthFailure::Stale).then_some(AuthEvent {
                        source,
                        account: user,
                        reason: e.label(),
                        lockout: locked,
                        log,
                    }),
                }
            }
        }
    }
}
