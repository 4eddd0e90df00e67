//! Limits that keep floods and abusive connections bounded: `sip.limits`,
//! `sip.connections` and `http.connections`.
//!
//! ```yaml
//! sip:
//!   limits:
//!     transactions: 20000              # live server transactions, all sources
//!     transactions_per_source: 2000    # per source address (trunk sources: only the total)
//!     requests_per_sec: 200            # per source address; past it messages are dropped
//!     requests_burst: 400
//!     trunk_requests_per_sec: 10000    # addresses inside a trunk's `sources`
//!     trunk_requests_burst: 20000
//!     contacts_per_register: 10
//!   connections:                       # SIP over TCP
//!     max: 1024
//!     per_source: 64
//!     header_timeout_secs: 10
//!     idle_timeout_secs: 120
//!     max_message_bytes: 65536
//! http:
//!   connections: { max: 64, per_source: 16, header_timeout_secs: 5, idle_timeout_secs: 60, max_message_bytes: 16384 }
//! ```

/// `sip.limits`: what one source, and all of them together, may cost the
/// core thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipLimits {
    /// Live server transactions in total; past it a new request gets a
    /// stateless 503 with Retry-After (default 20000).
    pub transactions: usize,
    /// Live server transactions of one source address that is not a trunk
    /// source (default 2000).
    pub transactions_per_source: usize,
    /// Messages per second one source address may send on average; past
    /// its burst they are dropped unread (default 200).
    pub requests_per_sec: u32,
    /// Messages one source may send at once above its rate (default 400).
    pub requests_burst: u32,
    /// The rate for addresses inside a trunk's `sources` (default 10000).
    pub trunk_requests_per_sec: u32,
    /// The burst for trunk sources (default 20000).
    pub trunk_requests_burst: u32,
    /// Contacts one REGISTER may carry; more get 403 before authentication
    /// (default 10).
    pub contacts_per_register: usize,
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits {
            transactions: 20_000,
            transactions_per_source: 2_000,
            requests_per_sec: 200,
            requests_burst: 400,
            trunk_requests_per_sec: 10_000,
            trunk_requests_burst: 20_000,
            contacts_per_register: 10,
        }
    }
}
