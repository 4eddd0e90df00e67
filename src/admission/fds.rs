//! The file-descriptor budget.
//!
//! Every RTP port zentrale may hand out is a socket, so the RTP range
//! needs that many descriptors, and the core needs some of its own
//! (listeners, epoll, event fds, log and record files, connections to
//! phones). SIP-TCP and HTTP connections get what is left and never more,
//! so no number of connections can make a call fail for want of an RTP
//! socket, or stop `/healthz` from being accepted. At start the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (the daemon does that;
//! here the arithmetic).

/// Descriptors kept for the core beyond RTP and the connection caps:
/// listeners, epoll and event fds, log and record files, outgoing TCP
/// connections to phones, the runtime's own.
pub const RESERVED: u64 = 256;

/// The connection caps that fit the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// SIP-TCP connections allowed.
    pub sip: usize,
    /// HTTP connections allowed.
    pub http: usize,
    /// The configured caps did not fit and were lowered.
    pub lowered: bool,
    /// Descriptors RTP needs.
    pub rtp: u64,
}

/// Sockets the RTP range `first..=last` can need: one per even port.
pub fn rtp_sockets(first: u16, last: u16) -> u64 {
    if last < first {
        return 0;
    }
    u64::from(last - first) / 2 + 1
}

/// The caps for `limit` descriptors, RTP needing `rtp`, and the
/// configured caps `sip` and `http`. When they do not fit, HTTP keeps up
/// to a quarter of what is left (at least one, so `/healthz` answers) and
/// SIP-TCP the rest.
pub fn plan(limit: u64, rtp: u64, sip: usize, http: usize) -> Plan {
    let left = limit.saturating_sub(rtp).saturating_sub(RESERVED);
    let left = usize::try_from(left).unwrap_or(usize::MAX);
    if sip.saturating_add(http) <= left {
        return Plan {
            sip,
            http,
            lowered: false,
            rtp,
        };
    }
    let http = http.min((left / 4).max(1));
    let sip = sip.min(left.saturating_sub(http));
    Plan {
        sip,
        http,
        lowered: true,
        rtp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_needs_one_socket_per_even_port() {
        assert_eq!(rtp_sockets(30000, 30999), 500);
        assert_eq!(rtp_sockets(30000, 30000), 1);
        assert_eq!(rtp_sockets(30000, 30001), 1);
    }

    #[test]
    fn caps_that_fit_stay() {
        let p = plan(65536, 500, 1024, 64);
        assert_eq!((p.sip, p.http, p.lowered), (1024, 64, false));
    }

    #[test]
    fn caps_that_do_not_fit_are_lowered_and_rtp_keeps_its_share() {
        // The common default soft limit: 1024.
        let p = plan(1024, 500, 1024, 64);
        assert!(p.lowered);
        assert_eq!(p.http, 64);
        assert_eq!(p.sip, 1024 - 500 - RESERVED as usize - 64);
        assert!(p.rtp + RESERVED + (p.sip + p.http) as u64 <= 1024);
        // Nothing left: HTTP still gets one slot, SIP-TCP none.
        let p = plan(600, 500, 1024, 64);
        assert_eq!((p.sip, p.http), (0, 1));
    }
}
