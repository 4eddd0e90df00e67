//! The YAML layer: types as written, with source spans, and a reader that
//! keeps going after an error.
//!
//! serde stops at the first error in a document. To report more than one
//! problem per file we read the file several times: once for its top-level
//! keys, then each section on its own, and when a list section fails, each
//! list item on its own. The files are small, so the extra passes cost
//! nothing that matters, and the error path is the only one that repeats.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_saphyr::{Location, Spanned};

/// A value that serde filled in from a default; it has no place in the file.
fn dflt<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

// ---- main file -------------------------------------------------------------

/// Keys of the main file, for the unknown-key check.
pub(crate) const MAIN_KEYS: &[&str] = &[
    "sip", "rtp", "http", "sounds", "cdr", "store", "acd", "trunks", "agents", "tenants",
];
/// Keys of a dialplan file.
pub(crate) const DIALPLAN_KEYS: &[&str] =
    &["municipality", "hours", "limits", "hotlines", "queues"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSip {
    #[serde(default)]
    pub listen: Option<Spanned<RawListen>>,
    #[serde(default = "default_realm")]
    pub realm: Spanned<String>,
    #[serde(default = "default_max_calls")]
    pub max_calls: Spanned<usize>,
    #[serde(default)]
    pub register: Option<Spanned<RawRegister>>,
    #[serde(default = "default_nonce_ttl")]
    pub nonce_ttl_secs: Spanned<u64>,
    #[serde(default = "default_min_se")]
    pub min_se: Spanned<u32>,
    #[serde(default = "default_session_expires")]
    pub session_expires: Spanned<u32>,
    #[serde(default)]
    pub limits: Option<Spanned<RawSipLimits>>,
    #[serde(default)]
    pub connections: Option<Spanned<RawConnections>>,
    #[serde(default)]
    pub digest_algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub auth_limits: Option<Spanned<RawAuthLimits>>,
    #[serde(default)]
    pub tls: Option<Spanned<RawTls>>,
}

/// `sip.auth_limits`: every key optional (defaults in `LockoutSettings`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthLimits {
    #[serde(default)]
    pub per_source: Option<Spanned<u32>>,
    #[serde(default)]
    pub per_account: Option<Spanned<u32>>,
    #[serde(default)]
    pub lockout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_lockout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub forget_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub nonce_failures: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
}

impl Default for RawSip {
    fn default() -> Self {
        RawSip {
            listen: None,
            realm: default_realm(),
            max_calls: default_max_calls(),
            register: None,
            nonce_ttl_secs: default_nonce_ttl(),
            min_se: default_min_se(),
            session_expires: default_session_expires(),
            limits: None,
            connections: None,
            digest_algorithms: None,
            auth_limits: None,
            tls: None,
        }
    }
}

fn default_realm() -> Spanned<String> {
    dflt("zentrale".to_string())
}
fn default_max_calls() -> Spanned<usize> {
    dflt(2000)
}
fn default_nonce_ttl() -> Spanned<u64> {
    dflt(300)
}
fn default_min_se() -> Spanned<u32> {
    dflt(90)
}
fn default_session_expires() -> Spanned<u32> {
    dflt(1800)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListen {
    #[serde(default)]
    pub udp: Vec<Spanned<String>>,
    #[serde(default)]
    pub tcp: Vec<Spanned<String>>,
    #[serde(default)]
    pub tls: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegister {
    #[serde(default = "default_min_expires")]
    pub min_expires: Spanned<u32>,
    #[serde(default = "default_max_expires")]
    pub max_expires: Spanned<u32>,
    #[serde(default = "default_max_expires")]
    pub default_expires: Spanned<u32>,
}

impl Default for RawRegister {
    fn default() -> Self {
        RawRegister {
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            default_expires: default_max_expires(),
        }
    }
}

fn default_min_expires() -> Spanned<u32> {
    dflt(60)
}
fn default_max_expires() -> Spanned<u32> {
    dflt(3600)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRtp {
    #[serde(default = "default_ports")]
    pub ports: Spanned<String>,
    #[serde(default = "default_rtp_timeout")]
    pub timeout_secs: Spanned<u64>,
}

impl Default for RawRtp {
    fn default() -> Self {
        RawRtp {
            ports: default_ports(),
            timeout_secs: default_rtp_timeout(),
        }
    }
}

fn default_ports() -> Spanned<String> {
    dflt("30000-30999".to_string())
}
fn default_rtp_timeout() -> Spanned<u64> {
    dflt(60)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    #[serde(default = "default_http_listen")]
    pub listen: Spanned<String>,
    #[serde(default)]
    pub tokens: Vec<Spanned<RawToken>>,
    #[serde(default)]
    pub open_reads: Option<Spanned<bool>>,
    #[serde(default)]
    pub open_metrics: Option<Spanned<bool>>,
    #[serde(default)]
    pub allowed_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_origins: Vec<Spanned<String>>,
    pub connections: Option<Spanned<RawConnections>>,
    #[serde(default)]
    pub event_streams: Option<Spanned<u64>>,
    #[serde(default)]
    pub wallboard_agent_names: Option<Spanned<bool>>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_http_listen(),
            tokens: Vec::new(),
            open_reads: None,
            open_metrics: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            connections: None,
            event_streams: None,
            wallboard_agent_names: None,
        }
    }
}

/// An API token as written: the secret inline, in a file, or in an
/// environment variable (exactly one of the three).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: Spanned<String>,
    #[serde(default)]
    pub token: Option<Spanned<String>>,
    #[serde(default)]
    pub token_file: Option<Spanned<String>>,
    #[serde(default)]
    pub token_env: Option<Spanned<String>>,
    pub role: Spanned<String>,
}

// Hand-written: a `{:?}` must never show a secret.
impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawToken")
            .field("name", &self.name.value)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file.as_ref().map(|s| &s.value))
            .field("token_env", &self.token_env.as_ref().map(|s| &s.value))
            .field("role", &self.role.value)
            .finish()
    }
}

fn default_http_listen() -> Spanned<String> {
    dflt("127.0.0.1:8080".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCdr {
    pub path: Spanned<String>,
    #[serde(default)]
    pub caller_number: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    pub path: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrunk {
    pub name: Spanned<String>,
    pub sources: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub credentials: Option<Spanned<RawCredentials>>,
    #[serde(default)]
    pub max_calls: Option<Spanned<u32>>,
    #[serde(default)]
    pub digest_algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub media_networks: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub transport: Option<Spanned<String>>,
    #[serde(default)]
    pub srtp: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCredentials {
    pub username: Spanned<String>,
    pub password: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub extension: Spanned<String>,
    pub name: Spanned<String>,
    pub password: Spanned<String>,
    pub tenant: Spanned<String>,
    // i64, not u8: out-of-range levels get our own error with the allowed range.
    #[serde(default)]
    pub skills: BTreeMap<String, Spanned<i64>>,
    #[serde(default)]
    pub wrap_up_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_missed_offers: Option<Spanned<u32>>,
    #[serde(default)]
    pub digest_algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub media_networks: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub srtp: Option<Spanned<String>>,
}

// Optional keys are `Option`s rather than serde defaults here, so an error
// about a default can point at the enclosing key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcd {
    #[serde(default)]
    pub login_on_register: Option<Spanned<bool>>,
    #[serde(default)]
    pub max_missed_offers: Option<Spanned<u32>>,
    #[serde(default)]
    pub wrap_up_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub feature_codes: Option<Spanned<RawFeatureCodes>>,
    #[serde(default)]
    pub pause_reasons: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub pause_codes: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFeatureCodes {
    #[serde(default)]
    pub login: Option<Spanned<String>>,
    #[serde(default)]
    pub logout: Option<Spanned<String>>,
    #[serde(default)]
    pub pause: Option<Spanned<String>>,
    #[serde(default)]
    pub unpause: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub dialplan: Spanned<String>,
}

// ---- dialplan files ----------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHotline {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub numbers: Spanned<Vec<Spanned<String>>>,
    pub greeting: Spanned<String>,
    #[serde(default = "default_waiting")]
    pub waiting: Spanned<String>,
    #[serde(default)]
    pub answer_after_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub queue: Option<Spanned<String>>,
    #[serde(default)]
    pub priority: Option<Spanned<i32>>,
    #[serde(default)]
    pub municipality: Option<Spanned<String>>,
    #[serde(default)]
    pub via_115: Option<Spanned<bool>>,
    #[serde(default)]
    pub hours: Option<Spanned<RawHours>>,
    #[serde(default)]
    pub menu: Option<Spanned<RawMenu>>,
    #[serde(default)]
    pub overflow: Option<Spanned<RawOverflow>>,
}

/// `hours:` of a dialplan or a hotline; a hotline's keys replace the
/// dialplan's one by one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHours {
    #[serde(default)]
    pub time_zone: Option<Spanned<String>>,
    #[serde(default)]
    pub state: Option<Spanned<String>>,
    #[serde(default)]
    pub weekly: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub closures: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub closed: Option<Spanned<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub max_calls: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_waiting: Option<Spanned<u32>>,
    #[serde(default)]
    pub busy: Option<Spanned<RawTarget>>,
    #[serde(default)]
    pub slots: Option<Spanned<RawSlots>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlots {
    #[serde(default)]
    pub guaranteed: Option<Spanned<u32>>,
    #[serde(default)]
    pub max: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMenu {
    pub prompt: Spanned<String>,
    pub digits: Spanned<RawDigits>,
    #[serde(default)]
    pub timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub invalid: Option<Spanned<String>>,
    #[serde(default)]
    pub repeat_on_timeout: Option<Spanned<bool>>,
    #[serde(default)]
    pub default: Option<Spanned<RawTarget>>,
}

/// A menu's `digits:` mapping in file order, keys with their place, so a
/// key written twice (`1` and `"1"`) gets our own error naming both lines.
#[derive(Debug)]
pub(crate) struct RawDigits(pub Vec<(Spanned<String>, Spanned<RawTarget>)>);

impl<'de> Deserialize<'de> for RawDigits {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDigits;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of keys to targets, such as `{ \"1\": { queue: kfz } }`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDigits, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<Spanned<RawTarget>>()?;
                    entries.push((k, v));
                }
                Ok(RawDigits(entries))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverflow {
    #[serde(default)]
    pub after_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub when_closed: Option<Spanned<bool>>,
    #[serde(default)]
    pub when_no_agents: Option<Spanned<bool>>,
    #[serde(default)]
    pub when_expected_wait_over_secs: Option<Spanned<u64>>,
    pub target: Spanned<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub id: Spanned<String>,
    pub name: Spanned<String>,
    pub skill: Spanned<String>,
    // i64: out-of-range levels get our own error, as for agents' skills.
    #[serde(default)]
    pub min_level: Option<Spanned<i64>>,
    #[serde(default)]
    pub agents_from: Option<Spanned<Vec<Spanned<String>>>>,
    // A string: unknown names get our own error with the list and a suggestion.
    #[serde(default)]
    pub strategy: Option<Spanned<String>>,
    #[serde(default)]
    pub priority: Option<Spanned<i32>>,
    #[serde(default)]
    pub wrap_up_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub ring_timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_waiting: Option<Spanned<u32>>,
    #[serde(default)]
    pub max_expected_wait_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_wait_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub join_empty: Option<Spanned<bool>>,
    #[serde(default)]
    pub announce_every_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub music: Option<Spanned<String>>,
    #[serde(default)]
    pub service_level: Option<Spanned<RawServiceLevel>>,
    #[serde(default)]
    pub widen: Option<Spanned<Vec<Spanned<RawWiden>>>>,
    #[serde(default)]
    pub on_timeout: Option<Spanned<RawTarget>>,
    #[serde(default)]
    pub on_no_agents: Option<Spanned<RawTarget>>,
    #[serde(default)]
    pub on_full: Option<Spanned<RawTarget>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServiceLevel {
    #[serde(default)]
    pub seconds: Option<Spanned<u64>>,
    #[serde(default)]
    pub target_percent: Option<Spanned<i64>>,
    #[serde(default)]
    pub window_secs: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWiden {
    pub after_secs: Spanned<u64>,
    #[serde(default)]
    pub min_level: Option<Spanned<i64>>,
    #[serde(default)]
    pub skill: Option<Spanned<String>>,
}

/// A target as written: a bare word (`hangup`) or a mapping of kind to value
/// (`{ queue: general }`). Kinds are checked when loading, so a misspelt
/// kind gets a suggestion instead of serde's generic message.
#[derive(Debug)]
pub(crate) enum RawTarget {
    Word(String),
    Tagged(Vec<(Spanned<String>, Spanned<String>)>),
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`hangup` or a mapping such as `{ queue: general }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Word(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTarget, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<Spanned<String>>()?;
                    entries.push((k, v));
                }
                Ok(RawTarget::Tagged(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn default_waiting() -> Spanned<String> {
    dflt("waiting".to_string())
}

// ---- the resilient reader ----------------------------------------------------

fn options() -> serde_saphyr::Options {
    // We print our own position and hint; saphyr's snippet would repeat them.
    serde_saphyr::options! { with_snippet: false }
}

/// The top-level keys of a document and where they are.
pub(crate) fn top_keys(text: &str) -> Result<Vec<Spanned<String>>, serde_saphyr::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<Spanned<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of configuration keys")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(k) = map.next_key::<Spanned<String>>()? {
                map.next_value::<IgnoredAny>()?;
                keys.push(k);
            }
            Ok(keys)
        }
    }
    impl<'de> DeserializeSeed<'de> for Keys {
        type Value = Vec<Spanned<String>>;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |d| Keys.deserialize(d))
}

/// Reads the value of top-level `key` as `T` (all of it, or only item
/// `index` if the value is a list), skipping everything else.
struct Pick<T> {
    key: &'static str,
    index: Option<usize>,
    marker: PhantomData<fn() -> T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Pick<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of configuration keys")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key && found.is_none() {
                found = match self.index {
                    None => Some(map.next_value::<T>()?),
                    Some(index) => map.next_value_seed(Nth::<T> {
                        index,
                        marker: PhantomData,
                    })?,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Pick<T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// Item `index` of a sequence as `T`; the other items are skipped unread.
struct Nth<T> {
    index: usize,
    marker: PhantomData<fn() -> T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Nth<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut i = 0;
        loop {
            if i == self.index {
                match seq.next_element::<T>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Nth<T> {
    type Value = Option<T>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

/// The value of top-level `key` as `T`, `None` if the key is absent.
pub(crate) fn section<T: DeserializeOwned>(
    text: &str,
    key: &'static str,
) -> Result<Option<T>, serde_saphyr::Error> {
    let pick = Pick::<T> {
        key,
        index: None,
        marker: PhantomData,
    };
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |d| pick.deserialize(d))
}

/// A list section read item by item. Items that fail are left out and their
/// errors returned, so one bad agent does not hide the problems of the next.
pub(crate) struct ListSection<T> {
    pub items: Vec<T>,
    pub errors: Vec<serde_saphyr::Error>,
    /// Whether the key was present at all.
    pub present: bool,
}

pub(crate) fn list_section<T: DeserializeOwned>(text: &str, key: &'static str) -> ListSection<T> {
    match section::<Vec<T>>(text, key) {
        Ok(Some(items)) => ListSection {
            items,
            errors: Vec::new(),
            present: true,
        },
        Ok(None) => ListSection {
            items: Vec::new(),
            errors: Vec::new(),
            present: false,
        },
        Err(whole) => {
            // Not a list at all (or not countable): the whole-section error is
            // the best we have.
            let count = match section::<Vec<IgnoredAny>>(text, key) {
                Ok(Some(v)) => v.len(),
                _ => {
                    return ListSection {
                        items: Vec::new(),
                        errors: vec![whole],
                        present: true,
                    };
                }
            };
            let mut out = ListSection {
                items: Vec::new(),
                errors: Vec::new(),
                present: true,
            };
            for index in 0..count {
                let pick = Pick::<T> {
                    key,
                    index: Some(index),
                    marker: PhantomData,
                };
                match serde_saphyr::with_deserializer_from_str_with_options(text, options(), |d| {
                    pick.deserialize(d)
                }) {
                    Ok(Some(item)) => out.items.push(item),
                    Ok(None) => {}
                    Err(e) => out.errors.push(e),
                }
            }
            if out.errors.is_empty() {
                out.errors.push(whole);
            }
            out
        }
    }
}

/// `sip.limits` (see [`crate::config::SipLimits`]); a key left out takes
/// its default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSipLimits {
    #[serde(default)]
    pub transactions: Option<Spanned<usize>>,
    #[serde(default)]
    pub transactions_per_source: Option<Spanned<usize>>,
    #[serde(default)]
    pub requests_per_sec: Option<Spanned<u32>>,
    #[serde(default)]
    pub requests_burst: Option<Spanned<u32>>,
    #[serde(default)]
    pub trunk_requests_per_sec: Option<Spanned<u32>>,
    #[serde(default)]
    pub trunk_requests_burst: Option<Spanned<u32>>,
    #[serde(default)]
    pub contacts_per_register: Option<Spanned<usize>>,
}

/// `sip.connections` and `http.connections` (see
/// [`crate::admission::connections::ConnectionLimits`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnections {
    #[serde(default)]
    pub max: Option<Spanned<usize>>,
    #[serde(default)]
    pub per_source: Option<Spanned<usize>>,
    #[serde(default)]
    pub header_timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub idle_timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_message_bytes: Option<Spanned<usize>>,
}
