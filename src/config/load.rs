//! From the YAML layer to the public types, checking everything on the way.
//!
//! Every check records its error and carries on, so one run shows the
//! operator all problems at once. The ACD parts live in submodules: `acd`
//! (the `acd:` section), `queues` (queues and targets) and `refs` (the checks
//! across files).

mod acd;
mod dialplan;
mod http;
mod limits;
mod numbers;
mod queues;
mod refs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use self::dialplan::{Hours, TenantDefaults};
use self::numbers::Numbers;
use self::refs::Refs;
use super::error::{Diag, Pos, closest};
use super::raw::{
    self, RawAcd, RawAgent, RawCdr, RawHotline, RawHours, RawHttp, RawLimits, RawQueue,
    RawRegister, RawRtp, RawSip, RawStore, RawTenant, RawTrunk,
};
use super::{
    AcdConfig, Agent, CdrConfig, Cidr, CidrError, Config, ConfigErrors, Credentials, Dialplan,
    HttpConfig, Overrides, Queue, RegisterLimits, RtpConfig, SipConfig, StoreConfig, Tenant, Trunk,
};
use crate::admission::connections::ConnectionLimits;
use crate::dialplan::{Hotline, SurgeLimits, Target};
use crate::sip::digest::{Algorithm, DEFAULT_ALGORITHMS};
use crate::sip::lockout::LockoutSettings;

/// The password the demo config ships with; never to be reachable from outside.
const DEMO_PASSWORD: &str = "demo";
/// Ringing longer than this before answering only costs callers time.
const MAX_ANSWER_AFTER_MS: u64 = 10_000;

pub(super) fn load(path: &Path, ov: &Overrides) -> Result<Config, ConfigErrors> {
    let mut d = Diag::default();
    let cfg = Loader {
        path,
        base: path.parent().unwrap_or(Path::new("")),
        d: &mut d,
    }
    .run(ov);
    match cfg {
        Some(cfg) if d.errors.is_empty() => Ok(cfg),
        _ => Err(finish(path, d)),
    }
}

/// Why the daemon could not open a database at `path`, found without
/// creating anything: an existing path must be a regular file it may
/// write; otherwise the nearest existing ancestor must be a directory
/// (the daemon creates the rest).
fn store_path_usable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err("it is a directory".into()),
        Ok(m) if m.permissions().readonly() => return Err("the file is read-only".into()),
        Ok(_) => return Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.to_string()),
        Err(_) => {}
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(format!("`{}` is not a directory", d.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir = d.parent(),
            Err(e) => return Err(format!("`{}`: {e}", d.display())),
        }
    }
    Ok(())
}

/// Sorts errors by file (main file first, then in order of appearance), line
/// and column, and drops repeats from the re-reading passes.
fn finish(main: &Path, d: Diag) -> ConfigErrors {
    let mut order: Vec<PathBuf> = vec![main.to_path_buf()];
    for e in &d.errors {
        if !order.contains(&e.file) {
            order.push(e.file.clone());
        }
    }
    let mut errors = d.errors;
    errors.sort_by_key(|e| {
        let rank = order
            .iter()
            .position(|f| *f == e.file)
            .unwrap_or(usize::MAX);
        (rank, e.line, e.column)
    });
    errors.dedup();
    ConfigErrors(errors)
}

/// Where a listen address came from, for the demo-password rule.
#[derive(Clone, Copy)]
enum ListenSource {
    File(Pos),
    Override(&'static str),
}

struct Listen {
    what: &'static str,
    addr: SocketAddr,
    source: ListenSource,
}

struct Loader<'a> {
    path: &'a Path,
    base: &'a Path,
    d: &'a mut Diag,
}

impl Loader<'_> {
    fn run(&mut self, ov: &Overrides) -> Option<Config> {
        let text = match std::fs::read_to_string(self.path) {
            Ok(t) => t,
            Err(e) => {
                self.d.at(
                    self.path,
                    Pos::START,
                    format!("cannot read the config file: {e}"),
                    "check the path given on the command line and the file's permissions",
                );
                return None;
            }
        };
        let keys = self.keys(self.path, &text, raw::MAIN_KEYS)?;
        let key_pos = |k: &str| keys.get(k).copied().unwrap_or(Pos::START);

        let mut listens = Vec::new();
        let mut tls = None;
        let sip = self
            .section::<Spanned<RawSip>>(self.path, &text, "sip", key_pos("sip"))
            .map(|s| s.unwrap_or_else(|| dflt(RawSip::default())))
            .map(|s| self.sip(s, key_pos("sip"), ov, &mut listens, &mut tls));
        let rtp = self
            .section::<Spanned<RawRtp>>(self.path, &text, "rtp", key_pos("rtp"))
            .map(|s| s.unwrap_or_else(|| dflt(RawRtp::default())))
            .map(|r| self.rtp(r, key_pos("rtp"), ov));
        let http = self
            .section::<Spanned<RawHttp>>(self.path, &text, "http", key_pos("http"))
            .map(|s| s.unwrap_or_else(|| dflt(RawHttp::default())))
            .map(|h| self.http(h, key_pos("http"), ov, &mut listens));
        let sounds_dir = self
            .section::<Spanned<String>>(self.path, &text, "sounds", key_pos("sounds"))
            .map(|s| match s {
                Some(s) => self.base.join(s.value),
                None => self.base.join("sounds"),
            });
        let sounds = sounds_dir.as_deref().map(Sounds::scan);
        let cdr = self
            .section::<Spanned<RawCdr>>(self.path, &text, "cdr", key_pos("cdr"))
            .map(|c| c.and_then(|c| self.cdr(c, key_pos("cdr"))));
        let store = self
            .section::<Spanned<RawStore>>(self.path, &text, "store", key_pos("store"))
            .map(|c| c.and_then(|c| self.store(c, key_pos("store"))));
        let acd = self
            .section::<Spanned<RawAcd>>(self.path, &text, "acd", key_pos("acd"))
            .map(|s| s.unwrap_or_else(|| dflt(RawAcd::default())))
            .map(|a| self.acd(a, key_pos("acd")));
        if let Some(sounds) = &sounds {
            self.acd_prompts(sounds, key_pos("acd"));
        }
        // Queues and agents take their defaults from `acd:`; when that section
        // is broken its error is reported and the built-in defaults stand in.
        let acd_defaults = acd.clone().unwrap_or_default();

        let trunks_raw =
            self.list::<Spanned<RawTrunk>>(self.path, &text, "trunks", key_pos("trunks"), false);
        let agents_raw =
            self.list::<Spanned<RawAgent>>(self.path, &text, "agents", key_pos("agents"), false);
        let tenants_raw =
            self.list::<Spanned<RawTenant>>(self.path, &text, "tenants", key_pos("tenants"), true);

        let trunks = self.trunks(trunks_raw.items);
        let mut refs = Refs::default();
        let tenant_ids_raw: BTreeSet<String> = tenants_raw
            .items
            .iter()
            .map(|t| t.value.id.value.clone())
            .collect();
        let tenants = self.tenants(tenants_raw.items, sounds.as_ref(), &acd_defaults, &mut refs);
        let tenant_ids = tenants_raw.complete.then_some(tenant_ids_raw);
        let agents = self.agents(agents_raw.items, tenant_ids.as_ref(), &acd_defaults);

        self.cross_check(
            &tenants,
            &refs,
            tenant_ids.as_ref(),
            agents_raw.complete.then_some(agents.as_slice()),
        );
        self.demo_passwords(&listens, &agents, &trunks);
        if let (Some(sip), Some(rtp)) = (&sip, &rtp) {
            self.slot_guarantees_fit(sip, rtp, agents.len(), &refs);
        }

        Some(Config {
            path: self.path.to_path_buf(),
            sip: sip?,
            rtp: rtp?,
            http: http?,
            acd: acd?,
            sounds_dir: sounds_dir?,
            cdr: cdr?,
            store: store?,
            trunks: trunks.into_iter().map(|(t, _)| t).collect(),
            agents: agents.into_iter().map(|(a, _)| a).collect(),
            tenants,
            tls,
        })
    }

    // ---- reading ---------------------------------------------------------

    /// The top-level keys and their positions; unknown ones are errors.
    /// `None` if the file is not a YAML mapping at all.
    fn keys(&mut self, file: &Path, text: &str, allowed: &[&str]) -> Option<HashMap<String, Pos>> {
        let keys = match raw::top_keys(text) {
            Ok(k) => k,
            Err(e) => {
                self.d.yaml(file, &e, Pos::START);
                return None;
            }
        };
        let mut out = HashMap::new();
        for k in keys {
            let pos = Pos::or(&k, Pos::START);
            if !allowed.contains(&k.value.as_str()) {
                let list = allowed.join(", ");
                let hint = match closest(&k.value, allowed) {
                    Some(c) => format!("did you mean `{c}`? top-level keys are: {list}"),
                    None => format!("remove it or use one of the top-level keys: {list}"),
                };
                self.d
                    .at(file, pos, format!("unknown key `{}`", k.value), hint);
            }
            out.insert(k.value, pos);
        }
        Some(out)
    }

    /// One section; `Err(())` after recording its error.
    fn section<T: DeserializeOwned>(
        &mut self,
        file: &Path,
        text: &str,
        key: &'static str,
        key_pos: Pos,
    ) -> Option<Option<T>> {
        match raw::section::<T>(text, key) {
            Ok(v) => Some(v),
            Err(e) => {
                self.d.yaml(file, &e, key_pos);
                None
            }
        }
    }

    fn list<T: DeserializeOwned>(
        &mut self,
        file: &Path,
        text: &str,
        key: &'static str,
        key_pos: Pos,
        required: bool,
    ) -> Items<T> {
        let s = raw::list_section::<T>(text, key);
        for e in &s.errors {
            self.d.yaml(file, e, key_pos);
        }
        if required && !s.present {
            self.d.at(
                file,
                Pos::START,
                format!("missing key `{key}`"),
                format!("add a top-level `{key}:` list"),
            );
        }
        Items {
            complete: s.errors.is_empty(),
            items: s.items,
        }
    }

    // ---- sections --------------------------------------------------------

    fn sip(
        &mut self,
        raw: Spanned<RawSip>,
        key: Pos,
        ov: &Overrides,
        listens: &mut Vec<Listen>,
        tls_out: &mut Option<super::TlsConfig>,
    ) -> SipConfig {
        let file = self.path;
        let raw = raw.value;
        let (tls, tls_pos) = match &raw.listen {
            Some(l) => {
                let lpos = Pos::or(l, key);
                let first = l.value.tls.first().map_or(lpos, |s| Pos::or(s, lpos));
                (self.addrs(&l.value.tls, "SIP TLS", lpos, listens), first)
            }
            None => (Vec::new(), key),
        };
        *tls_out = self.tls(raw.tls, key, &tls, tls_pos);
        let default_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
        let (udp, tcp) = if let Some(addr) = ov.sip_listen {
            for what in ["SIP UDP", "SIP TCP"] {
                listens.push(Listen {
                    what,
                    addr,
                    source: ListenSource::Override("--sip-listen"),
                });
            }
            (vec![addr], vec![addr])
        } else if let Some(l) = raw.listen {
            let lpos = Pos::or(&l, key);
            let udp = self.addrs(&l.value.udp, "SIP UDP", lpos, listens);
            let tcp = self.addrs(&l.value.tcp, "SIP TCP", lpos, listens);
            if l.value.udp.is_empty() && l.value.tcp.is_empty() && l.value.tls.is_empty() {
                self.d.at(
                    file,
                    lpos,
                    "SIP listens on no address",
                    "add `udp: [127.0.0.1:5060]` and/or `tcp: [127.0.0.1:5060]` under `listen:`",
                );
            }
            (udp, tcp)
        } else {
            for what in ["SIP UDP", "SIP TCP"] {
                listens.push(Listen {
                    what,
                    addr: default_addr,
                    source: ListenSource::File(key),
                });
            }
            (vec![default_addr], vec![default_addr])
        };

        let realm = raw.realm;
        if realm.value.trim().is_empty() || realm.value.contains(['"', '\\']) {
            self.d.at(
                file,
                Pos::or(&realm, key),
                format!(
                    "realm `{}` cannot be used in a digest challenge",
                    realm.value
                ),
                "write a non-empty realm without quotes or backslashes, e.g. `zentrale`",
            );
        }
        if raw.max_calls.value == 0 {
            self.d.at(
                file,
                Pos::or(&raw.max_calls, key),
                "max_calls is 0, so every call would be refused",
                "set the number of concurrent calls the machine may carry, e.g. 2000",
            );
        }
        let reg = raw.register.unwrap_or_else(|| dflt(RawRegister::default()));
        let rpos = Pos::or(&reg, key);
        let reg = reg.value;
        if reg.min_expires.value == 0 {
            self.d.at(
                file,
                Pos::or(&reg.min_expires, rpos),
                "min_expires is 0",
                "set at least 1 second; phones commonly refresh at 60 to 3600 s",
            );
        }
        if reg.min_expires.value > reg.max_expires.value {
            self.d.at(
                file,
                Pos::or(&reg.max_expires, rpos),
                format!(
                    "max_expires {} is below min_expires {}",
                    reg.max_expires.value, reg.min_expires.value
                ),
                "make min_expires <= default_expires <= max_expires",
            );
        } else if !(reg.min_expires.value..=reg.max_expires.value)
            .contains(&reg.default_expires.value)
        {
            self.d.at(
                file,
                Pos::or(&reg.default_expires, rpos),
                format!(
                    "default_expires {} is outside {}..={}",
                    reg.default_expires.value, reg.min_expires.value, reg.max_expires.value
                ),
                "make min_expires <= default_expires <= max_expires",
            );
        }
        if raw.nonce_ttl_secs.value == 0 {
            self.d.at(
                file,
                Pos::or(&raw.nonce_ttl_secs, key),
                "nonce_ttl_secs is 0, so no digest answer could ever be accepted",
                "set how long a challenge stays valid, e.g. 300",
            );
        }
        // RFC 4028 section 4: Min-SE must not be below 90 seconds.
        if raw.min_se.value < 90 {
            self.d.at(
                file,
                Pos::or(&raw.min_se, key),
                format!(
                    "min_se {} is below the RFC 4028 minimum of 90",
                    raw.min_se.value
                ),
                "set min_se to 90 or more",
            );
        } else if raw.session_expires.value < raw.min_se.value {
            self.d.at(
                file,
                Pos::or(&raw.session_expires, key),
                format!(
                    "session_expires {} is below min_se {}",
                    raw.session_expires.value, raw.min_se.value
                ),
                "raise session_expires (default 1800) or lower min_se",
            );
        }
        let digest_algorithms = raw
            .digest_algorithms
            .as_ref()
            .and_then(|a| self.algorithms(a, key, "sip"))
            .unwrap_or_else(|| DEFAULT_ALGORITHMS.to_vec());
        let (auth_limits, nonce_failures) = self.auth_limits(raw.auth_limits, key);
        SipConfig {
            digest_algorithms,
            auth_limits,
            nonce_failures,
            udp,
            tcp,
            tls,
            realm: realm.value,
            max_calls: raw.max_calls.value,
            register: RegisterLimits {
                min_expires: reg.min_expires.value,
                max_expires: reg.max_expires.value,
                default_expires: reg.default_expires.value,
            },
            nonce_ttl: Duration::from_secs(raw.nonce_ttl_secs.value),
            min_se: raw.min_se.value,
            session_expires: raw.session_expires.value,
            limits: self.sip_limits(raw.limits, key),
            connections: self.connections(raw.connections, key, ConnectionLimits::SIP),
        }
    }

    /// A `digest_algorithms` list: MD5 and/or SHA-256, each once, at least
    /// one. `None` after reporting a problem.
    fn algorithms(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
        fallback: Pos,
        whose: &str,
    ) -> Option<Vec<Algorithm>> {
        let file = self.path;
        let lpos = Pos::or(raw, fallback);
        if raw.value.is_empty() {
            self.d.at(
                file,
                lpos,
                format!("{whose}: digest_algorithms is empty, so no phone could authenticate"),
                "write [MD5] (every phone), [SHA-256, MD5], or remove the key for the default [MD5]",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for a in &raw.value {
            let pos = Pos::or(a, lpos);
            match Algorithm::parse(a.value.trim()) {
                Some(alg) if out.contains(&alg) => {
                    self.d.at(
                        file,
                        pos,
                        format!("{whose}: digest algorithm {alg} is listed twice"),
                        "list each algorithm once, most preferred first",
                    );
                    ok = false;
                }
                Some(alg) => out.push(alg),
                None => {
                    self.d.at(
                        file,
                        pos,
                        format!("{whose}: digest algorithm `{}` is not supported", a.value),
                        "use MD5 and/or SHA-256 (the -sess variants and SHA-512-256 are not offered)",
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `sip.auth_limits`, and the nonce failures from it.
    fn auth_limits(
        &mut self,
        raw: Option<Spanned<raw::RawAuthLimits>>,
        key: Pos,
    ) -> (LockoutSettings, u32) {
        let file = self.path;
        let d = LockoutSettings::default();
        let Some(raw) = raw else {
            return (d, crate::sip::digest::DEFAULT_MAX_NONCE_FAILURES);
        };
        let apos = Pos::or(&raw, key);
        let r = raw.value;
        let secs = |v: &Option<Spanned<u64>>, dflt: Duration| {
            v.as_ref().map_or(dflt, |v| Duration::from_secs(v.value))
        };
        let s = LockoutSettings {
            per_source: r.per_source.as_ref().map_or(d.per_source, |v| v.value),
            per_account: r.per_account.as_ref().map_or(d.per_account, |v| v.value),
            lockout: secs(&r.lockout_secs, d.lockout),
            max_lockout: secs(&r.max_lockout_secs, d.max_lockout),
            forget_after: secs(&r.forget_secs, d.forget_after),
            ..d
        };
        if (s.per_source > 0 || s.per_account > 0) && s.lockout.is_zero() {
            let pos = r.lockout_secs.as_ref().map_or(apos, |v| Pos::or(v, apos));
            self.d.at(
                file,
                pos,
                "lockout_secs is 0, so a lockout would never refuse anything",
                "set the first lockout in seconds, e.g. 60; or set per_source and per_account to 0 to turn the limits off",
            );
        }
        if s.max_lockout < s.lockout {
            let pos = r
                .max_lockout_secs
                .as_ref()
                .map_or(apos, |v| Pos::or(v, apos));
            self.d.at(
                file,
                pos,
                format!(
                    "max_lockout_secs {} is below lockout_secs {}",
                    s.max_lockout.as_secs(),
                    s.lockout.as_secs()
                ),
                "make max_lockout_secs at least lockout_secs (default 3600)",
            );
        }
        if s.forget_after.is_zero() {
            let pos = r.forget_secs.as_ref().map_or(apos, |v| Pos::or(v, apos));
            self.d.at(
                file,
                pos,
                "forget_secs is 0, so failures would never add up",
                "set how long failures are remembered, e.g. 900",
            );
        }
        let nonce_failures = match &r.nonce_failures {
            None => crate::sip::digest::DEFAULT_MAX_NONCE_FAILURES,
            Some(v) if v.value == 0 => {
                self.d.at(
                    file,
                    Pos::or(v, apos),
                    "nonce_failures is 0, so no nonce could be answered",
                    "set how many wrong answers spend a nonce, e.g. 3",
                );
                1
            }
            Some(v) => v.value,
        };
        (s, nonce_failures)
    }

    fn addrs(
        &mut self,
        raw: &[Spanned<String>],
        what: &'static str,
        fallback: Pos,
        listens: &mut Vec<Listen>,
    ) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for s in raw {
            let pos = Pos::or(s, fallback);
            let Some(addr) = self.addr(s, pos, what) else {
                continue;
            };
            if out.contains(&addr) {
                self.d.at(
                    self.path,
                    pos,
                    format!("{what} listen address {addr} is listed twice"),
                    "remove the second entry",
                );
                continue;
            }
            out.push(addr);
            listens.push(Listen {
                what,
                addr,
                source: ListenSource::File(pos),
            });
        }
        out
    }

    fn addr(&mut self, s: &Spanned<String>, pos: Pos, what: &str) -> Option<SocketAddr> {
        match s.value.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.d.at(
                    self.path,
                    pos,
                    format!("`{}` is not a valid {what} listen address", s.value),
                    "write IP:PORT with a numeric IP, e.g. 127.0.0.1:5060 or 0.0.0.0:5060; \
                     quote IPv6 addresses: \"[::1]:5060\"",
                );
                None
            }
        }
    }

    fn rtp(&mut self, raw: Spanned<RawRtp>, key: Pos, ov: &Overrides) -> RtpConfig {
        let file = self.path;
        let raw = raw.value;
        let ppos = Pos::or(&raw.ports, key);
        let (range, origin) = match ov.rtp_ports {
            Some(r) => (Some(r), " (from --rtp-ports)"),
            None => (self.port_range(&raw.ports, ppos), ""),
        };
        let (first, last) = range.unwrap_or((30000, 30999));
        if range.is_some() {
            let example = "e.g. 30000-30999";
            if first == 0 {
                self.d.at(
                    file,
                    ppos,
                    format!("RTP port range{origin} starts at port 0"),
                    format!("use ports from 1024 up, {example}"),
                );
            } else if first % 2 != 0 {
                self.d.at(
                    file,
                    ppos,
                    format!("first RTP port {first}{origin} is odd"),
                    format!(
                        "start the range on an even port ({}-{last}): RTP takes the even port, \
                         RTCP the odd one above",
                        first - 1
                    ),
                );
            }
            if first == last {
                self.d.at(
                    file,
                    ppos,
                    format!("RTP port range {first}-{last}{origin} holds only 1 port"),
                    format!("give at least 2 ports (one RTP/RTCP pair per call leg), {example}"),
                );
            } else if first > last {
                self.d.at(
                    file,
                    ppos,
                    format!("RTP port range {first}-{last}{origin} is reversed"),
                    format!("write the lower port first: {last}-{first}"),
                );
            }
        }
        RtpConfig {
            first_port: first,
            last_port: last,
            timeout: match raw.timeout_secs.value {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
        }
    }

    fn port_range(&mut self, s: &Spanned<String>, pos: Pos) -> Option<(u16, u16)> {
        let parsed = s.value.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        if parsed.is_none() {
            self.d.at(
                self.path,
                pos,
                format!("`{}` is not a port range", s.value),
                "write FIRST-LAST with ports up to 65535, e.g. 30000-30999",
            );
        }
        parsed
    }

    fn http(
        &mut self,
        raw: Spanned<RawHttp>,
        key: Pos,
        ov: &Overrides,
        listens: &mut Vec<Listen>,
    ) -> HttpConfig {
        let raw = raw.value;
        let pos = Pos::or(&raw.listen, key);
        let (listen, source) = match ov.http_listen {
            Some(addr) => (addr, ListenSource::Override("--http-listen")),
            None => {
                let addr = self
                    .addr(&raw.listen, pos, "HTTP")
                    .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
                (addr, ListenSource::File(pos))
            }
        };
        listens.push(Listen {
            what: "HTTP",
            addr: listen,
            source,
        });
        let access = self.http_access(
            raw.tokens,
            raw.open_reads,
            raw.open_metrics,
            raw.allowed_hosts,
            raw.allowed_origins,
            key,
            listen,
            source,
        );
        HttpConfig {
            listen,
            connections: self.connections(raw.connections, key, ConnectionLimits::HTTP),
            tokens: access.tokens,
            open_reads: access.open_reads,
            open_metrics: access.open_metrics,
            allowed_hosts: access.allowed_hosts,
            allowed_origins: access.allowed_origins,
            event_streams: self.event_streams(raw.event_streams, key),
            wallboard_agent_names: raw.wallboard_agent_names.is_some_and(|b| b.value),
        }
    }

    /// `http.event_streams`: at least 1.
    fn event_streams(&mut self, raw: Option<Spanned<u64>>, key: Pos) -> usize {
        let Some(n) = raw else {
            return super::DEFAULT_EVENT_STREAMS;
        };
        if n.value == 0 {
            self.d.at(
                self.path,
                Pos::or(&n, key),
                "`event_streams` is 0, so no wallboard could follow the event stream",
                "set at least 1 (default 32)",
            );
            return super::DEFAULT_EVENT_STREAMS;
        }
        usize::try_from(n.value).unwrap_or(usize::MAX)
    }

    /// `sip.tls:`: reads and checks the certificate, key and CA files.
    /// `None` without the section or after an error (recorded).
    fn tls(
        &mut self,
        raw: Option<Spanned<raw::RawTls>>,
        key: Pos,
        listeners: &[SocketAddr],
        listeners_pos: Pos,
    ) -> Option<super::TlsConfig> {
        let file = self.path;
        let Some(raw) = raw else {
            if !listeners.is_empty() {
                self.d.at(
                    file,
                    listeners_pos,
                    "SIP listens on TLS but has no certificate",
                    "add `tls: { cert: /etc/zentrale/cert.pem, key: /etc/zentrale/key.pem }` under `sip:`",
                );
            }
            return None;
        };
        let pos = Pos::or(&raw, key);
        let raw = raw.value;
        let cert = self.base.join(raw.cert.value.trim());
        let key_path = self.base.join(raw.key.value.trim());
        let ca = raw.ca.as_ref().map(|c| self.base.join(c.value.trim()));
        match super::tls::load(cert, key_path, ca) {
            Ok(t) => Some(t),
            Err(p) => {
                let at = match p.key {
                    super::tls::TlsKey::Cert => Pos::or(&raw.cert, pos),
                    super::tls::TlsKey::Key => Pos::or(&raw.key, pos),
                    super::tls::TlsKey::Ca => raw.ca.as_ref().map_or(pos, |c| Pos::or(c, pos)),
                };
                self.d.at(file, at, p.message, p.hint);
                None
            }
        }
    }

    /// `srtp:` of an agent or trunk (default `offer`).
    fn srtp(&mut self, raw: Option<Spanned<String>>, fallback: Pos) -> super::SrtpPolicy {
        let Some(raw) = raw else {
            return super::SrtpPolicy::default();
        };
        match super::SrtpPolicy::parse(raw.value.trim()) {
            Some(p) => p,
            None => {
                self.d.at(
                    self.path,
                    Pos::or(&raw, fallback),
                    format!("unknown srtp setting `{}`", raw.value),
                    "write `off` (plain RTP only), `offer` (SRTP when the phone wants it, the default) or `require` (refuse plain RTP with 488)",
                );
                super::SrtpPolicy::default()
            }
        }
    }

    /// `cdr:`; `None` after an error (recorded) too. Checks that the daemon
    /// could open the file for appending, so `check` finds what would stop
    /// it, but creates nothing: the daemon does that when it starts.
    fn cdr(&mut self, raw: Spanned<RawCdr>, key: Pos) -> Option<CdrConfig> {
        let file = self.path;
        let pos = Pos::or(&raw, key);
        let raw = raw.value;
        let ppos = Pos::or(&raw.path, pos);
        let caller_number = match raw.caller_number {
            None => crate::cdr::CallerNumbers::Masked,
            Some(c) => match c.value.as_str() {
                "masked" => crate::cdr::CallerNumbers::Masked,
                "full" => crate::cdr::CallerNumbers::Full,
                other => {
                    self.d.at(
                        file,
                        Pos::or(&c, pos),
                        format!("unknown caller_number `{other}`"),
                        "write `masked` (the last three digits hidden, the default) or `full`",
                    );
                    return None;
                }
            },
        };
        if raw.path.value.trim().is_empty() {
            self.d.at(
                file,
                ppos,
                "the call record path is empty",
                "name a file, e.g. `/var/log/zentrale/cdr.jsonl`, or remove the `cdr:` section",
            );
            return None;
        }
        let path = self.base.join(&raw.path.value);
        if let Err(e) = super::check_appendable(&path) {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "create the directory first, or change `cdr.path`".to_string()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "give zentrale's user write access to the file and its directory, or change `cdr.path`".to_string()
                }
                _ => "name a regular file zentrale can append to".to_string(),
            };
            self.d.at(
                file,
                ppos,
                format!(
                    "cannot open the call record file `{}` for appending: {e}",
                    path.display()
                ),
                hint,
            );
            return None;
        }
        Some(CdrConfig {
            path,
            caller_number,
        })
    }

    /// `store:`; `None` after an error (recorded) too. Checks what would
    /// stop the daemon from opening the database, creating nothing.
    fn store(&mut self, raw: Spanned<RawStore>, key: Pos) -> Option<StoreConfig> {
        let file = self.path;
        let pos = Pos::or(&raw, key);
        let raw = raw.value;
        let ppos = Pos::or(&raw.path, pos);
        let text = raw.path.value.trim();
        if text.is_empty() {
            self.d.at(
                file,
                ppos,
                "the store path is empty",
                "name the database file, e.g. `/var/lib/zentrale/zentrale.db`, or remove the `store:` section",
            );
            return None;
        }
        let path = PathBuf::from(text);
        if let Err(why) = store_path_usable(&path) {
            self.d.at(
                file,
                ppos,
                format!("cannot use `{}` as the store: {why}", path.display()),
                "name a file in a directory zentrale may write to (relative paths start where zentrale runs), or change `store.path`",
            );
            return None;
        }
        Some(StoreConfig { path })
    }

    fn trunks(&mut self, raw: Vec<Spanned<RawTrunk>>) -> Vec<(Trunk, Option<Pos>)> {
        let file = self.path;
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for t in raw {
            let tpos = Pos::or(&t, Pos::START);
            let t = t.value;
            let npos = Pos::or(&t.name, tpos);
            if !valid_id(&t.name.value) {
                self.d.at(
                    file,
                    npos,
                    format!("trunk name `{}` is not usable", t.name.value),
                    "use letters, digits, `-` and `_` only, e.g. `demo-carrier`",
                );
            } else if let Some(first) = seen.get(&t.name.value) {
                self.d.at(
                    file,
                    npos,
                    format!(
                        "trunk name `{}` is used twice (first at line {})",
                        t.name.value, first.line
                    ),
                    "give each trunk its own name",
                );
            } else {
                seen.insert(t.name.value.clone(), npos);
            }
            let spos = Pos::or(&t.sources, tpos);
            if t.sources.value.is_empty() {
                self.d.at(
                    file,
                    spos,
                    format!("trunk `{}` has no sources", t.name.value),
                    "list the networks the carrier sends from, e.g. [192.0.2.0/24]",
                );
            }
            let mut sources = Vec::new();
            for s in &t.sources.value {
                let pos = Pos::or(s, spos);
                match s.value.parse::<Cidr>() {
                    Ok(c) => sources.push(c),
                    Err(e) => {
                        let hint = match &e {
                            CidrError::BadAddress(_) => {
                                "write an IP address with an optional /prefix, e.g. 192.0.2.0/24 or 2001:db8::/32"
                                    .to_string()
                            }
                            CidrError::BadPrefix { max, .. } => {
                                format!("use a prefix from 0 to {max}")
                            }
                            CidrError::HostBits { network, .. } => format!(
                                "write {network} for the whole network, or the address without /prefix for one host"
                            ),
                        };
                        self.d
                            .at(file, pos, format!("bad source network: {e}"), hint);
                    }
                }
            }
            let mut demo_pos = None;
            let credentials = t.credentials.map(|c| {
                let cpos = Pos::or(&c, tpos);
                let c = c.value;
                if c.username.value.is_empty() {
                    self.d.at(
                        file,
                        Pos::or(&c.username, cpos),
                        "empty trunk username",
                        "write the user name the carrier authenticates with",
                    );
                }
                if c.password.value.is_empty() {
                    self.d.at(
                        file,
                        Pos::or(&c.password, cpos),
                        "empty trunk password",
                        "write the password agreed with the carrier",
                    );
                }
                if c.password.value == DEMO_PASSWORD {
                    demo_pos = Some(Pos::or(&c.password, cpos));
                }
                Credentials {
                    username: c.username.value,
                    password: c.password.value,
                }
            });
            if let Some(m) = &t.max_calls
                && m.value == 0
            {
                self.d.at(
                    file,
                    Pos::or(m, tpos),
                    format!(
                        "trunk `{}` has max_calls 0 and would refuse every call",
                        t.name.value
                    ),
                    "set a limit above 0, or remove max_calls for no per-trunk limit",
                );
            }
            let digest_algorithms = t.digest_algorithms.as_ref().and_then(|a| {
                if credentials.is_none() {
                    self.d.at(
                        file,
                        Pos::or(a, tpos),
                        format!(
                            "trunk `{}` has digest_algorithms but no credentials, so it is never challenged",
                            t.name.value
                        ),
                        "add `credentials:` for the trunk, or remove digest_algorithms",
                    );
                    return None;
                }
                self.algorithms(a, tpos, &format!("trunk `{}`", t.name.value))
            });
            let media_networks = self.media_networks(t.media_networks.as_ref(), tpos);
            let tls_only = match &t.transport {
                None => false,
                Some(tr) => match tr.value.trim().to_ascii_lowercase().as_str() {
                    "any" => false,
                    "tls" => true,
                    other => {
                        self.d.at(
                            file,
                            Pos::or(tr, tpos),
                            format!("unknown trunk transport `{other}`"),
                            "write `tls` (calls only over SIP-TLS) or `any` (the default)",
                        );
                        false
                    }
                },
            };
            let srtp = self.srtp(t.srtp, tpos);
            out.push((
                Trunk {
                    name: t.name.value,
                    sources,
                    credentials,
                    max_calls: t.max_calls.map(|m| m.value),
                    digest_algorithms,
                    media_networks,
                    tls_only,
                    srtp,
                },
                demo_pos,
            ));
        }
        out
    }

    /// A trunk's or agent's `media_networks:` (empty when absent).
    fn media_networks(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        at: Pos,
    ) -> Vec<Cidr> {
        let file = self.path;
        let Some(raw) = raw else {
            return Vec::new();
        };
        let lpos = Pos::or(raw, at);
        if raw.value.is_empty() {
            self.d.at(
                file,
                lpos,
                "media_networks is empty, so no call could have media",
                "list the networks media may go to, e.g. [192.0.2.0/24], or remove the key to allow any",
            );
        }
        let mut out = Vec::new();
        for s in &raw.value {
            match s.value.parse::<Cidr>() {
                Ok(c) => out.push(c),
                Err(e) => self.d.at(
                    file,
                    Pos::or(s, lpos),
                    format!("bad media network: {e}"),
                    "write an IP network in CIDR notation, e.g. 192.0.2.0/24, or one address",
                ),
            }
        }
        out
    }

    /// Explicit `limits.slots.guaranteed` of all tenants must fit in the
    /// caller slots the RTP range and `sip.max_calls` give.
    fn slot_guarantees_fit(
        &mut self,
        sip: &SipConfig,
        rtp: &RtpConfig,
        agents: usize,
        refs: &Refs,
    ) {
        let legs = usize::from((rtp.last_port.saturating_sub(rtp.first_port)) / 2) + 1;
        let total = crate::dialplan::caller_slots(sip.max_calls, legs, agents);
        let mut sum: u64 = 0;
        for (file, pos, tenant, guaranteed) in &refs.slot_guarantees {
            sum += u64::from(*guaranteed);
            if sum > u64::from(total) {
                self.d.at(
                    file,
                    *pos,
                    format!(
                        "tenant `{tenant}`: the guaranteed slots of the tenants add up to {sum} here, but there are only {total} caller slots ({legs} RTP legs of rtp.ports, sip.max_calls {}, less one leg per agent)",
                        sip.max_calls
                    ),
                    "lower the guarantees, or widen rtp.ports",
                );
                return;
            }
        }
    }

    fn agents(
        &mut self,
        raw: Vec<Spanned<RawAgent>>,
        tenant_ids: Option<&BTreeSet<String>>,
        acd: &AcdConfig,
    ) -> Vec<(Agent, Option<Pos>)> {
        let file = self.path;
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for a in raw {
            let apos = Pos::or(&a, Pos::START);
            let a = a.value;
            let epos = Pos::or(&a.extension, apos);
            let ext = &a.extension.value;
            if ext.is_empty()
                || ext.len() > 32
                || !ext
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                self.d.at(
                    file,
                    epos,
                    format!("extension `{ext}` cannot be a SIP user name here"),
                    "use 1 to 32 ASCII letters, digits, `.`, `-` or `_`, e.g. \"1001\"",
                );
            } else if let Some(first) = seen.get(ext) {
                self.d.at(
                    file,
                    epos,
                    format!(
                        "extension `{ext}` is used twice (first at line {})",
                        first.line
                    ),
                    "give each agent its own extension",
                );
            } else {
                seen.insert(ext.clone(), epos);
            }
            if a.name.value.trim().is_empty() {
                self.d.at(
                    file,
                    Pos::or(&a.name, apos),
                    "empty agent name",
                    "write the display name, e.g. \"Kassel 1001\"",
                );
            }
            let ppos = Pos::or(&a.password, apos);
            if a.password.value.is_empty() {
                self.d.at(
                    file,
                    ppos,
                    format!("agent {ext} has an empty password"),
                    "set a password; phones authenticate with digest",
                );
            }
            if let Some(ids) = tenant_ids
                && !ids.contains(&a.tenant.value)
            {
                let known: Vec<&str> = ids.iter().map(String::as_str).collect();
                let hint = match closest(&a.tenant.value, &known) {
                    Some(c) => format!("did you mean `{c}`? tenants are: {}", known.join(", ")),
                    None if known.is_empty() => "define the tenant under `tenants:`".to_string(),
                    None => format!(
                        "use one of the tenants: {}, or add it under `tenants:`",
                        known.join(", ")
                    ),
                };
                self.d.at(
                    file,
                    Pos::or(&a.tenant, apos),
                    format!("agent {ext}: tenant `{}` is not defined", a.tenant.value),
                    hint,
                );
            }
            let mut skills = BTreeMap::new();
            for (name, level) in a.skills {
                // Skill names have no span of their own (map keys); the level is
                // on the same line.
                let lpos = Pos::or(&level, apos);
                if !valid_skill(&name) {
                    self.d.at(
                        file,
                        lpos,
                        format!("skill name `{name}` is not usable"),
                        "use letters, digits, `-` and `_`, e.g. `meldewesen`",
                    );
                }
                match u8::try_from(level.value) {
                    Ok(l) if (1..=10).contains(&l) => {
                        skills.insert(name, l);
                    }
                    _ => self.d.at(
                        file,
                        lpos,
                        format!("skill level {} for `{name}` is outside 1..=10", level.value),
                        "use 1 (basic) to 10 (expert); remove the skill if the agent lacks it",
                    ),
                }
            }
            let demo = (a.password.value == DEMO_PASSWORD).then_some(ppos);
            let digest_algorithms = a
                .digest_algorithms
                .as_ref()
                .and_then(|l| self.algorithms(l, apos, &format!("agent {ext}")));
            let max_missed_offers = match &a.max_missed_offers {
                Some(m) if m.value == 0 => None,
                Some(m) => Some(m.value),
                None => acd.max_missed_offers,
            };
            let media_networks = self.media_networks(a.media_networks.as_ref(), apos);
            let srtp = self.srtp(a.srtp, apos);
            out.push((
                Agent {
                    media_networks,
                    extension: a.extension.value,
                    name: a.name.value,
                    password: a.password.value,
                    tenant: a.tenant.value,
                    skills,
                    wrap_up: a.wrap_up_secs.map(|w| Duration::from_secs(w.value)),
                    max_missed_offers,
                    digest_algorithms,
                    srtp,
                },
                demo,
            ));
        }
        out
    }

    fn tenants(
        &mut self,
        raw: Vec<Spanned<RawTenant>>,
        sounds: Option<&Sounds>,
        acd: &AcdConfig,
        refs: &mut Refs,
    ) -> Vec<Tenant> {
        let file = self.path;
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut dialplans_seen: HashMap<PathBuf, (String, Pos)> = HashMap::new();
        let mut numbers = Numbers::default();
        let mut out = Vec::new();
        for t in raw {
            let tpos = Pos::or(&t, Pos::START);
            let t = t.value;
            let ipos = Pos::or(&t.id, tpos);
            if !valid_id(&t.id.value) {
                self.d.at(
                    file,
                    ipos,
                    format!("tenant id `{}` is not usable", t.id.value),
                    "use letters, digits, `-` and `_`, e.g. `kreis-pinneberg`",
                );
            } else if let Some(first) = seen.get(&t.id.value) {
                self.d.at(
                    file,
                    ipos,
                    format!(
                        "tenant id `{}` is used twice (first at line {})",
                        t.id.value, first.line
                    ),
                    "give each tenant its own id",
                );
            } else {
                seen.insert(t.id.value.clone(), ipos);
            }
            if t.name.value.trim().is_empty() {
                self.d.at(
                    file,
                    Pos::or(&t.name, tpos),
                    "empty tenant name",
                    "write the display name, e.g. \"Stadt Kassel\"",
                );
            }
            let dpos = Pos::or(&t.dialplan, tpos);
            let dialplan_path = self.base.join(&t.dialplan.value);
            if let Some((other, _)) = dialplans_seen.get(&dialplan_path) {
                self.d.at(
                    file,
                    dpos,
                    format!(
                        "dialplan {} is already the dialplan of tenant `{other}`",
                        dialplan_path.display()
                    ),
                    "give each tenant its own dialplan file",
                );
                continue;
            }
            dialplans_seen.insert(dialplan_path.clone(), (t.id.value.clone(), dpos));
            let text = match std::fs::read_to_string(&dialplan_path) {
                Ok(text) => text,
                Err(e) => {
                    self.d.at(
                        file,
                        dpos,
                        format!("cannot read dialplan file {}: {e}", dialplan_path.display()),
                        format!(
                            "create the file or fix the path; relative paths are resolved against {}",
                            display_dir(self.base)
                        ),
                    );
                    continue;
                }
            };
            let dialplan = self.dialplan(
                &dialplan_path,
                &text,
                (&t.id.value, &t.name.value),
                &mut numbers,
                sounds,
                acd,
                refs,
            );
            out.push(Tenant {
                id: t.id.value,
                name: t.name.value,
                dialplan_path,
                dialplan,
            });
        }
        self.number_overlaps(&numbers);
        out
    }

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn dialplan(
        &mut self,
        file: &Path,
        text: &str,
        (tenant, tenant_name): (&str, &str),
        numbers: &mut Numbers,
        sounds: Option<&Sounds>,
        acd: &AcdConfig,
        refs: &mut Refs,
    ) -> Dialplan {
        let Some(keys) = self.keys(file, text, raw::DIALPLAN_KEYS) else {
            return Dialplan {
                hotlines: Vec::new(),
                queues: Vec::new(),
                municipality: tenant_name.to_string(),
                schedule: None,
                closed: Target::Prompt("closed".to_string()),
                limits: SurgeLimits::default(),
            };
        };
        let key_pos = |k: &str| keys.get(k).copied().unwrap_or(Pos::START);
        let municipality = self
            .section::<Spanned<String>>(file, text, "municipality", key_pos("municipality"))
            .flatten();
        let municipality =
            self.municipality(file, municipality, key_pos("municipality"), tenant_name);
        let hours = match self.section::<Spanned<RawHours>>(file, text, "hours", key_pos("hours")) {
            Some(Some(h)) => self.hours(
                file,
                &h,
                key_pos("hours"),
                (tenant, &format!("tenant `{tenant}`")),
                sounds,
                refs,
            ),
            Some(None) => Hours::default(),
            // Reported; count the hours as present so that rules needing
            // them do not echo the error.
            None => Hours::broken(key_pos("hours")),
        };
        let limits = match self
            .section::<Spanned<RawLimits>>(file, text, "limits", key_pos("limits"))
            .flatten()
        {
            Some(l) => self.limits(file, &l, key_pos("limits"), tenant, sounds, refs),
            None => SurgeLimits::default(),
        };
        let qkey = key_pos("queues");
        let raw_queues = self.list::<Spanned<RawQueue>>(file, text, "queues", qkey, false);
        if raw_queues.complete {
            refs.known_queues.insert(tenant.to_string());
        }
        let mut queues = self.queues(file, tenant, raw_queues.items, sounds, acd, refs);
        let defaults = TenantDefaults {
            municipality: municipality.clone(),
            hours,
        };
        let hotlines = self.hotlines(
            file,
            text,
            tenant,
            &keys,
            numbers,
            sounds,
            refs,
            &defaults,
            &mut queues,
        );
        let (schedule, closed) = self.schedule(file, &Hours::default(), &defaults.hours, sounds);
        Dialplan {
            hotlines,
            queues,
            municipality,
            schedule,
            closed,
            limits,
        }
    }

    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    fn hotlines(
        &mut self,
        file: &Path,
        text: &str,
        tenant: &str,
        keys: &HashMap<String, Pos>,
        numbers: &mut Numbers,
        sounds: Option<&Sounds>,
        refs: &mut Refs,
        defaults: &TenantDefaults,
        queues: &mut [Queue],
    ) -> Vec<Hotline> {
        let key = keys.get("hotlines").copied().unwrap_or(Pos::START);
        let raw = self.list::<Spanned<RawHotline>>(file, text, "hotlines", key, true);
        let mut ids: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for h in raw.items {
            let hpos = Pos::or(&h, key);
            let h = h.value;
            let ipos = Pos::or(&h.id, hpos);
            if h.id.value.trim().is_empty() {
                self.d.at(
                    file,
                    ipos,
                    "empty hotline id",
                    "write a short id, e.g. \"115\" or buergeramt",
                );
            } else if let Some(first) = ids.get(&h.id.value) {
                self.d.at(
                    file,
                    ipos,
                    format!(
                        "hotline id `{}` is used twice in this file (first at line {})",
                        h.id.value, first.line
                    ),
                    "give each hotline of a tenant its own id",
                );
            } else {
                ids.insert(h.id.value.clone(), ipos);
            }
            if h.name.value.trim().is_empty() {
                self.d.at(
                    file,
                    Pos::or(&h.name, hpos),
                    "empty hotline name",
                    "write the display name agents see",
                );
            }
            let npos = Pos::or(&h.numbers, hpos);
            if h.numbers.value.is_empty() {
                self.d.at(
                    file,
                    npos,
                    format!("hotline `{}` has no numbers", h.id.value),
                    "list the dialled numbers it answers, e.g. [\"115\", \"0561115\"]",
                );
            }
            for n in &h.numbers.value {
                let pos = Pos::or(n, npos);
                self.number(file, n, pos, (tenant, &h.id.value), numbers);
            }
            for s in [&h.greeting, &h.waiting] {
                self.sound(file, s, Pos::or(s, hpos), sounds);
            }
            let answer_after_ms = h.answer_after_ms.as_ref().map_or(0, |v| v.value);
            if let Some(v) = &h.answer_after_ms
                && v.value > MAX_ANSWER_AFTER_MS
            {
                self.d.at(
                    file,
                    Pos::or(v, hpos),
                    format!(
                        "answer_after_ms: {} is longer than a caller should ring",
                        v.value
                    ),
                    format!("use at most {MAX_ANSWER_AFTER_MS} (ms)"),
                );
            }
            let queue = h.queue.as_ref().and_then(|q| {
                let pos = Pos::or(q, hpos);
                let r = self.queue_ref(file, &q.value, tenant, pos)?;
                refs.queue(file, pos, None, format!("hotline `{}`", h.id.value), &r);
                refs.hotline_queue(file, pos, &h.id.value, &r);
                Some(r)
            });
            let municipality = match h.municipality {
                Some(m) => self.municipality(file, Some(m), hpos, &defaults.municipality),
                None => defaults.municipality.clone(),
            };
            let own_hours = match &h.hours {
                Some(raw) => self.hours(
                    file,
                    raw,
                    hpos,
                    (tenant, &format!("hotline `{}`", h.id.value)),
                    sounds,
                    refs,
                ),
                None => Hours::default(),
            };
            let (schedule, closed) = self.schedule(file, &own_hours, &defaults.hours, sounds);
            let menu = h.menu.as_ref().and_then(|m| {
                self.menu(
                    file,
                    m,
                    hpos,
                    (tenant, &h.id.value),
                    queue.as_ref(),
                    sounds,
                    refs,
                )
            });
            let overflow = h.overflow.as_ref().and_then(|o| {
                self.overflow(
                    file,
                    o,
                    hpos,
                    (tenant, &h.id.value),
                    queue.as_ref(),
                    queues,
                    sounds,
                    refs,
                )
            });
            if let Some(o) = &overflow
                && o.when_closed
                && schedule.is_none()
            {
                let pos = h.overflow.as_ref().map_or(hpos, |o| Pos::or(o, hpos));
                self.d.at(
                    file,
                    pos,
                    format!(
                        "the overflow of hotline `{}` is for when it is closed, but it has no \
                         service hours",
                        h.id.value
                    ),
                    "add `hours:` to the hotline or the dialplan, or remove when_closed",
                );
            }
            out.push(Hotline {
                id: h.id.value,
                name: h.name.value,
                numbers: h.numbers.value.into_iter().map(|n| n.value).collect(),
                greeting: h.greeting.value,
                waiting: h.waiting.value,
                answer_after_ms,
                queue,
                priority: h.priority.map_or(0, |p| p.value),
                municipality,
                via_115: h.via_115.map(|v| v.value),
                schedule,
                closed,
                menu,
                overflow,
            });
        }
        out
    }

    fn sound(&mut self, file: &Path, s: &Spanned<String>, pos: Pos, sounds: Option<&Sounds>) {
        let name = &s.value;
        // Names become file names under sounds_dir; keep them from escaping it.
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            self.d.at(
                file,
                pos,
                format!("sound name `{name}` is not usable"),
                "write the file name without directory and without .wav, e.g. greeting-kassel",
            );
            return;
        }
        let Some(sounds) = sounds else {
            return; // the `sounds:` key itself was bad; that error is reported
        };
        if sounds.names.contains(name) {
            if let Err(reason) = sounds.check(name) {
                self.d.at(
                    file,
                    pos,
                    format!(
                        "sound `{name}` cannot be played: {} {reason}",
                        sounds.dir.join(format!("{name}.wav")).display()
                    ),
                    PROMPT_HINT,
                );
            }
            return;
        }
        let mut hint = "run sounds/make-sounds.sh to make the prompts, or fix the name".to_string();
        if !sounds.dir_exists {
            hint.push_str(&format!(
                "; the sounds directory {} does not exist (set `sounds:` in {})",
                sounds.dir.display(),
                self.path.display()
            ));
        } else if let Some(c) = closest(
            name,
            &sounds.names.iter().map(String::as_str).collect::<Vec<_>>(),
        ) {
            hint = format!("did you mean `{c}`? otherwise {hint}");
        } else if !sounds.names.is_empty() && sounds.names.len() <= 12 {
            let list: Vec<&str> = sounds.names.iter().map(String::as_str).collect();
            hint.push_str(&format!("; available: {}", list.join(", ")));
        }
        self.d.at(
            file,
            pos,
            format!(
                "sound `{name}` not found: {} does not exist",
                sounds.dir.join(format!("{name}.wav")).display()
            ),
            hint,
        );
    }

    /// The safety rule: the demo passwords must never be reachable from
    /// another host.
    fn demo_passwords(
        &mut self,
        listens: &[Listen],
        agents: &[(Agent, Option<Pos>)],
        trunks: &[(Trunk, Option<Pos>)],
    ) {
        let mut holders: Vec<String> = Vec::new();
        let mut first_pos = None;
        for (a, pos) in agents {
            if let Some(p) = pos {
                holders.push(format!("agent {}", a.extension));
                first_pos.get_or_insert(*p);
            }
        }
        for (t, pos) in trunks {
            if let Some(p) = pos {
                holders.push(format!("trunk {}", t.name));
                first_pos.get_or_insert(*p);
            }
        }
        let Some(first_pos) = first_pos else {
            return;
        };
        let who = if holders.len() > 3 {
            format!(
                "{}, {} and {} more",
                holders[0],
                holders[1],
                holders.len() - 2
            )
        } else {
            holders.join(", ")
        };
        let verb = if holders.len() == 1 { "uses" } else { "use" };
        let mut reported: Vec<(SocketAddr, Option<Pos>)> = Vec::new();
        for l in listens {
            if is_loopback(l.addr.ip()) {
                continue;
            }
            let (pos, via) = match l.source {
                ListenSource::File(p) => (p, String::new()),
                // Not in the file: point at the first demo password, the thing to change.
                ListenSource::Override(flag) => (first_pos, format!(" (set by {flag})")),
            };
            let key = (
                l.addr,
                matches!(l.source, ListenSource::File(_)).then_some(pos),
            );
            if reported.contains(&key) {
                continue;
            }
            reported.push(key);
            self.d.at(
                self.path,
                pos,
                format!(
                    "{} listens on {}{via}, reachable from other hosts, while {who} still {verb} the password \"{DEMO_PASSWORD}\"",
                    l.what, l.addr
                ),
                "change those passwords or listen on 127.0.0.1",
            );
        }
    }
}

struct Items<T> {
    items: Vec<T>,
    /// No item failed to parse, so cross-references to this list are safe to check.
    complete: bool,
}

/// What to do about a prompt file that cannot be played.
const PROMPT_HINT: &str = "prompts must be 8000 Hz mono 16-bit PCM WAV of at least 200 ms; \
                           regenerate it with sounds/make-sounds.sh or convert it with \
                           `sox IN -r 8000 -c 1 -b 16 OUT.wav`";

/// The `.wav` files present in the sounds directory.
struct Sounds {
    dir: PathBuf,
    dir_exists: bool,
    names: BTreeSet<String>,
    /// [`crate::media::wav::check_prompt`] of each name looked at, so a
    /// prompt named in many places is read once.
    checked: std::cell::RefCell<HashMap<String, Result<(), String>>>,
}

impl Sounds {
    fn scan(dir: &Path) -> Sounds {
        let mut names = BTreeSet::new();
        let entries = std::fs::read_dir(dir);
        let dir_exists = entries.is_ok();
        for entry in entries.into_iter().flatten().flatten() {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "wav")
                && p.is_file()
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                names.insert(stem.to_string());
            }
        }
        Sounds {
            dir: dir.to_path_buf(),
            dir_exists,
            names,
            checked: Default::default(),
        }
    }

    /// Whether the present file of `name` can be played (format, length,
    /// not cut short); `Err`: why not. Reads each file once.
    fn check(&self, name: &str) -> Result<(), String> {
        self.checked
            .borrow_mut()
            .entry(name.to_string())
            .or_insert_with(|| {
                crate::media::wav::check_prompt(&self.dir.join(format!("{name}.wav"))).map(|_| ())
            })
            .clone()
    }
}

fn dflt<T>(value: T) -> Spanned<T> {
    Spanned::new(
        value,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

fn display_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        "the current directory".to_string()
    } else {
        p.display().to_string()
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Skill names: letters (also umlauts), digits, `-` and `_`.
fn valid_skill(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}
