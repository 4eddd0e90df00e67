//! `sip.limits`, `sip.connections` and `http.connections`.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::Loader;
use crate::admission::connections::ConnectionLimits;
use crate::config::SipLimits;
use crate::config::error::Pos;
use crate::config::raw::{RawConnections, RawSipLimits};

/// The largest `max_message_bytes` accepted: a connection holds this much
/// per partial message, times the connection cap.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The smallest: below it ordinary INVITEs with SDP would not fit.
const MIN_MESSAGE_BYTES: usize = 4096;

impl Loader<'_> {
    /// A number that must be at least 1: its value, or `default` when left
    /// out; an error at its place otherwise.
    fn positive<T>(&mut self, v: Option<Spanned<T>>, pos: Pos, name: &str, default: T) -> T
    where
        T: Copy + PartialOrd + Default + std::fmt::Display,
    {
        let Some(v) = v else {
            return default;
        };
        if v.value <= T::default() {
            self.d.at(
                self.path,
                Pos::or(&v, pos),
                format!("{name} is {}, which would refuse everything", v.value),
                format!("set a value above 0 (default {default})"),
            );
            return default;
        }
        v.value
    }

    pub(super) fn sip_limits(&mut self, raw: Option<Spanned<RawSipLimits>>, key: Pos) -> SipLimits {
        let d = SipLimits::default();
        let Some(raw) = raw else {
            return d;
        };
        let pos = Pos::or(&raw, key);
        let raw = raw.value;
        let per_source_pos = raw
            .transactions_per_source
            .as_ref()
            .map_or(pos, |v| Pos::or(v, pos));
        let burst_pos = raw.requests_burst.as_ref().map_or(pos, |v| Pos::or(v, pos));
        let trunk_burst_pos = raw
            .trunk_requests_burst
            .as_ref()
            .map_or(pos, |v| Pos::or(v, pos));
        let limits = SipLimits {
            transactions: self.positive(raw.transactions, pos, "transactions", d.transactions),
            transactions_per_source: self.positive(
                raw.transactions_per_source,
                pos,
                "transactions_per_source",
                d.transactions_per_source,
            ),
            requests_per_sec: self.positive(
                raw.requests_per_sec,
                pos,
                "requests_per_sec",
                d.requests_per_sec,
            ),
            requests_burst: self.positive(
                raw.requests_burst,
                pos,
                "requests_burst",
                d.requests_burst,
            ),
            trunk_requests_per_sec: self.positive(
                raw.trunk_requests_per_sec,
                pos,
                "trunk_requests_per_sec",
                d.trunk_requests_per_sec,
            ),
            trunk_requests_burst: self.positive(
                raw.trunk_requests_burst,
                pos,
                "trunk_requests_burst",
                d.trunk_requests_burst,
            ),
            contacts_per_register: self.positive(
                raw.contacts_per_register,
                pos,
                "contacts_per_register",
                d.contacts_per_register,
            ),
        };
        if limits.transactions_per_source > limits.transactions {
            self.d.at(
                self.path,
                per_source_pos,
                format!(
                    "transactions_per_source {} is above transactions {}",
                    limits.transactions_per_source, limits.transactions
                ),
                "make transactions_per_source at most transactions",
            );
        }
        // A burst below the rate would refuse a steady source at its rate
        // whenever two messages arrive in the same instant.
        if limits.requests_burst < limits.requests_per_sec {
            self.d.at(
                self.path,
                burst_pos,
                format!(
                    "requests_burst {} is below requests_per_sec {}",
                    limits.requests_burst, limits.requests_per_sec
                ),
                "make requests_burst at least requests_per_sec (e.g. twice it)",
            );
        }
        if limits.trunk_requests_burst < limits.trunk_requests_per_sec {
            self.d.at(
                self.path,
                trunk_burst_pos,
                format!(
                    "trunk_requests_burst {} is below trunk_requests_per_sec {}",
                    limits.trunk_requests_burst, limits.trunk_requests_per_sec
                ),
                "make trunk_requests_burst at least trunk_requests_per_sec (e.g. twice it)",
            );
        }
        limits
    }

    pub(super) fn connections(
        &mut self,
        raw: Option<Spanned<RawConnections>>,
        key: Pos,
        d: ConnectionLimits,
    ) -> ConnectionLimits {
        let Some(raw) = raw else {
            return d;
        };
        let pos = Pos::or(&raw, key);
        let raw = raw.value;
        let per_source_pos = raw.per_source.as_ref().map_or(pos, |v| Pos::or(v, pos));
        let bytes_pos = raw
            .max_message_bytes
            .as_ref()
            .map_or(pos, |v| Pos::or(v, pos));
        let secs = |s: u64| Duration::from_secs(s);
        let limits = ConnectionLimits {
            max: self.positive(raw.max, pos, "max", d.max),
            per_source: self.positive(raw.per_source, pos, "per_source", d.per_source),
            header_timeout: secs(self.positive(
                raw.header_timeout_secs,
                pos,
                "header_timeout_secs",
                d.header_timeout.as_secs(),
            )),
            idle_timeout: secs(self.positive(
                raw.idle_timeout_secs,
                pos,
                "idle_timeout_secs",
                d.idle_timeout.as_secs(),
            )),
            max_message_bytes: self.positive(
                raw.max_message_bytes,
                pos,
                "max_message_bytes",
                d.max_message_bytes,
            ),
        };
        if limits.per_source > limits.max {
            self.d.at(
                self.path,
                per_source_pos,
                format!(
                    "per_source {} is above max {}",
                    limits.per_source, limits.max
                ),
                "make per_source at most max",
            );
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&limits.max_message_bytes) {
            self.d.at(
                self.path,
                bytes_pos,
                format!(
                    "max_message_bytes {} is outside {MIN_MESSAGE_BYTES}..={MAX_MESSAGE_BYTES}",
                    limits.max_message_bytes
                ),
                format!("set a size in that range (default {})", d.max_message_bytes),
            );
        }
        limits
    }
}
