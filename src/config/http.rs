//! Who may use the HTTP API: bearer tokens with roles, what is open without
//! one, and which `Host` and `Origin` values a request may carry (`http:`).

use std::fmt;

/// What a token may do. Ordered: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// `GET` the API and `/metrics` (wallboards, dashboards).
    Read,
    /// Also change agents: log in, log out, pause, unpause.
    Supervisor,
    /// Also reload the config.
    Admin,
}

impl Role {
    /// As written in the config: `read`, `supervisor`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The role a config word names.
    pub fn from_name(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bearer token of the API (`http.tokens`).
///
/// ```yaml
/// http:
///   tokens:
///     - { name: wallboard, token_file: /etc/zentrale/wallboard.token, role: read }
///     - { name: leitstand, token_env: ZENTRALE_SUPERVISOR_TOKEN, role: supervisor }
///     - { name: ops, token: "0a9f...64 hex digits...", role: admin }
/// ```
///
/// `Debug` never shows the secret, so a `{:?}` of the config is safe to log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it; in the log line of every change made with it.
    pub name: String,
    /// The secret the client sends as `Authorization: Bearer <secret>`,
    /// already read from `token_file` or `token_env` when given so.
    pub secret: String,
    pub role: Role,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// The token the demo config ships with. zentrale refuses to start with it
/// when HTTP listens on an address reachable from other hosts.
pub const DEMO_TOKEN: &str = "demo-token-change-me";

/// The shortest secret accepted: 16 characters (a random 128-bit secret is
/// 32 hex digits; `openssl rand -hex 32` makes a good one).
pub const MIN_TOKEN_LEN: usize = 16;
