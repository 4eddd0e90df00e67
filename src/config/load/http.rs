//! `http:` beyond the listen address: API tokens, what is open without
//! one, allowed hosts and origins, and the rules for listening beyond
//! loopback (no tokens, or the demo token, refuse the start).

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_saphyr::Spanned;

use super::{ListenSource, Loader, is_loopback, valid_id};
use crate::config::error::Pos;
use crate::config::http::{ApiToken, DEMO_TOKEN, MIN_TOKEN_LEN, Role};
use crate::config::raw::RawToken;

/// What `http:` says about access, checked.
pub(super) struct Access {
    pub tokens: Vec<ApiToken>,
    pub open_reads: bool,
    pub open_metrics: bool,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
}

/// RFC 6750 `b64token`: what may follow `Bearer ` in a header.
fn b64token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~+/=".contains(c)
}

impl Loader<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn http_access(
        &mut self,
        tokens: Vec<Spanned<RawToken>>,
        open_reads: Option<Spanned<bool>>,
        open_metrics: Option<Spanned<bool>>,
        hosts: Vec<Spanned<String>>,
        origins: Vec<Spanned<String>>,
        key: Pos,
        listen: SocketAddr,
        listen_source: ListenSource,
    ) -> Access {
        let mut out = Vec::new();
        let mut demo_at: Option<Pos> = None;
        let mut names: HashMap<String, Pos> = HashMap::new();
        let mut secrets: HashMap<String, String> = HashMap::new();
        for t in tokens {
            let tpos = Pos::or(&t, key);
            let t = t.value;
            if let Some(token) = self.token(t, tpos, &mut names, &mut secrets) {
                if token.secret == DEMO_TOKEN {
                    demo_at.get_or_insert(tpos);
                }
                out.push(token);
            }
        }
        let allowed_hosts = hosts
            .into_iter()
            .filter_map(|h| self.allowed_host(h, key))
            .collect();
        let allowed_origins = origins
            .into_iter()
            .filter_map(|o| self.allowed_origin(o, key))
            .collect();

        if !is_loopback(listen.ip()) {
            let (pos, via) = match listen_source {
                ListenSource::File(p) => (p, String::new()),
                ListenSource::Override(flag) => (key, format!(" (set by {flag})")),
            };
            if let Some(tpos) = demo_at {
                self.d.at(
                    self.path,
                    tpos,
                    format!(
                        "the demo API token \"{DEMO_TOKEN}\" is configured while HTTP is reachable from other hosts on {listen}{via}"
                    ),
                    "replace it with a secret of your own (`openssl rand -hex 32`) or listen on 127.0.0.1",
                );
            } else if out.is_empty() {
                self.d.at(
                    self.path,
                    pos,
                    format!(
                        "no API token in `http.tokens` while HTTP is reachable from other hosts on {listen}{via}"
                    ),
                    "add a token for each client under `http.tokens` (see zentrale.yaml) or listen on 127.0.0.1",
                );
            }
        }
        Access {
            tokens: out,
            open_reads: open_reads.is_some_and(|b| b.value),
            open_metrics: open_metrics.is_none_or(|b| b.value),
            allowed_hosts,
            allowed_origins,
        }
    }

    /// One entry of `http.tokens`; `None` after recording its errors.
    fn token(
        &mut self,
        t: RawToken,
        tpos: Pos,
        names: &mut HashMap<String, Pos>,
        secrets: &mut HashMap<String, String>,
    ) -> Option<ApiToken> {
        let file = self.path;
        let npos = Pos::or(&t.name, tpos);
        let mut ok = true;
        if !valid_id(&t.name.value) {
            self.d.at(
                file,
                npos,
                format!("API token name `{}` is not usable", t.name.value),
                "use letters, digits, `-` and `_` only, e.g. `wallboard`",
            );
            ok = false;
        } else if let Some(first) = names.get(&t.name.value) {
            self.d.at(
                file,
                npos,
                format!(
                    "API token name `{}` is used twice (first at line {})",
                    t.name.value, first.line
                ),
                "give each token its own name: it names the client in the log",
            );
            ok = false;
        } else {
            names.insert(t.name.value.clone(), npos);
        }
        let rpos = Pos::or(&t.role, tpos);
        let role = Role::from_name(&t.role.value);
        if role.is_none() {
            self.d.at(
                file,
                rpos,
                format!("unknown API role `{}`", t.role.value),
                "write `read` (GET only), `supervisor` (also agent changes) or `admin` (also reload)",
            );
        }
        let given = [
            t.token.is_some(),
            t.token_file.is_some(),
            t.token_env.is_some(),
        ]
        .into_iter()
        .filter(|b| *b)
        .count();
        if given != 1 {
            self.d.at(
                file,
                tpos,
                format!(
                    "API token `{}` needs exactly one of `token`, `token_file`, `token_env` ({given} given)",
                    t.name.value
                ),
                "write the secret into a file and name it with `token_file:` (or `token_env:` for an environment variable)",
            );
            return None;
        }
        let (secret, spos, from) = if let Some(s) = &t.token {
            (s.value.clone(), Pos::or(s, tpos), "`token`".to_string())
        } else if let Some(p) = &t.token_file {
            let ppos = Pos::or(p, tpos);
            let path = self.base.join(&p.value);
            match std::fs::read_to_string(&path) {
                Ok(text) => (
                    text.trim().to_string(),
                    ppos,
                    format!("the file {}", path.display()),
                ),
                Err(e) => {
                    self.d.at(
                        file,
                        ppos,
                        format!("cannot read the API token file `{}`: {e}", path.display()),
                        "create it with the secret on one line (`openssl rand -hex 32 > FILE`), readable by zentrale's user; a relative path is resolved against this file's directory",
                    );
                    return None;
                }
            }
        } else if let Some(v) = &t.token_env {
            let vpos = Pos::or(v, tpos);
            match std::env::var(&v.value) {
                Ok(val) => (
                    val.trim().to_string(),
                    vpos,
                    format!("the environment variable {}", v.value),
                ),
                Err(_) => {
                    self.d.at(
                        file,
                        vpos,
                        format!(
                            "the environment variable `{}` of API token `{}` is not set (or not UTF-8)",
                            v.value, t.name.value
                        ),
                        "set it in zentrale's environment (systemd: `Environment=` or `EnvironmentFile=`), or use `token_file:`",
                    );
                    return None;
                }
            }
        } else {
            return None;
        };
        // Never echo the secret in an error: the message may end up in a log.
        if secret.chars().count() < MIN_TOKEN_LEN {
            self.d.at(
                file,
                spos,
                format!(
                    "API token `{}` from {from} is too short ({} characters, at least {MIN_TOKEN_LEN})",
                    t.name.value,
                    secret.chars().count()
                ),
                "use a long random secret, e.g. `openssl rand -hex 32` (64 characters)",
            );
            return None;
        }
        if !secret.chars().all(b64token_char) {
            self.d.at(
                file,
                spos,
                format!(
                    "API token `{}` from {from} has characters a bearer token cannot carry",
                    t.name.value
                ),
                "use only letters, digits and - . _ ~ + / =, e.g. `openssl rand -hex 32`",
            );
            return None;
        }
        if let Some(first) = secrets.get(&secret) {
            self.d.at(
                file,
                spos,
                format!(
                    "API token `{}` has the same secret as token `{first}`",
                    t.name.value
                ),
                "give each client its own secret, so the log names who made a change",
            );
            return None;
        }
        secrets.insert(secret.clone(), t.name.value.clone());
        if !ok {
            return None;
        }
        Some(ApiToken {
            name: t.name.value,
            secret,
            role: role?,
        })
    }

    /// One entry of `http.allowed_hosts`: `name` or `name:port`, lower case.
    fn allowed_host(&mut self, h: Spanned<String>, key: Pos) -> Option<String> {
        let pos = Pos::or(&h, key);
        let v = h.value.trim().to_ascii_lowercase();
        let (name, port) = match v.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') || n.ends_with(']') => (n, Some(p)),
            _ => (v.as_str(), None),
        };
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if name_ok && port_ok {
            return Some(v);
        }
        self.d.at(
            self.path,
            pos,
            format!("`{}` is not a host for `allowed_hosts`", h.value),
            "write the name clients use in their URL, with or without the port: `zentrale.rathaus.example` or `zentrale.rathaus.example:8080` (no scheme, no path)",
        );
        None
    }

    /// One entry of `http.allowed_origins`: `scheme://host[:port]`.
    fn allowed_origin(&mut self, o: Spanned<String>, key: Pos) -> Option<String> {
        let pos = Pos::or(&o, key);
        let v = o.value.trim().to_ascii_lowercase();
        let ok = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"))
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
            });
        if ok {
            return Some(v);
        }
        self.d.at(
            self.path,
            pos,
            format!("`{}` is not an origin for `allowed_origins`", o.value),
            "write scheme, host and port as a browser sends them in `Origin`, without a path or trailing slash: `https://leitstand.rathaus.example` or `http://10.1.2.3:8000`",
        );
        None
    }
}
