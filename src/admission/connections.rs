//! Stream connections: how many may be open, in total and per source
//! address ([`ConnectionTable`]), and when one must close
//! ([`StreamClock`]). The last few slots of the total are kept for
//! addresses that have no connection open, so that abusers from a handful
//! of addresses cannot lock out a health probe or a phone.
//!
//! A connection is closed when a message it started does not complete
//! within the header timeout (slowloris, partial headers; an accepted
//! connection must send its first message that soon too), or when it
//! carried no complete message for the idle timeout. A SIP connection that
//! carries a live registration is exempt from the idle timeout while the
//! registration lasts: the phone registered over it, and requests to the
//! phone must find it (RFC 5626 flows). CRLF keep-alive pings on such a
//! connection count as activity; on any other connection they are answered
//! but do not keep it open, or a client could hold a slot for good with
//! four bytes a minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Connection limits of a stream listener: `sip.connections` for SIP over
/// TCP, `http.connections` (the config parses into this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in total; past it new ones are closed at once.
    pub max: usize,
    /// Open connections from one source address.
    pub per_source: usize,
    /// How long a started message (its header section; for SIP also the
    /// body) may take to arrive complete.
    pub header_timeout: Duration,
    /// How long a connection may stay without a complete message. A SIP
    /// connection that carries a live registration stays while the
    /// registration lasts.
    pub idle_timeout: Duration,
    /// The largest incomplete message held: for SIP the whole message
    /// (larger gets 413 and the connection closes), for HTTP the header
    /// section.
    pub max_message_bytes: usize,
}

impl ConnectionLimits {
    /// The defaults of `sip.connections`.
    pub const SIP: ConnectionLimits = ConnectionLimits {
        max: 1024,
        per_source: 64,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
        max_message_bytes: 64 * 1024,
    };

    /// The defaults of `http.connections`.
    pub const HTTP: ConnectionLimits = ConnectionLimits {
        max: 64,
        per_source: 16,
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_message_bytes: 16 * 1024,
    };
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener's total is reached.
    Total,
    /// The source address has its share.
    PerSource,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "connection_limit",
            Refusal::PerSource => "source_connection_limit",
        }
    }
}

/// Slots at the top of a listener's total kept for sources with no
/// connection open (at most a quarter of the total): when an abuser from
/// a few addresses has filled the rest, a health probe or a phone from
/// elsewhere still gets in.
pub const RESERVED_FOR_NEW_SOURCES: usize = 4;

/// Open connections of one listener, in total and per source address.
#[derive(Debug)]
pub struct ConnectionTable {
    max: usize,
    per_source: usize,
    reserved: usize,
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    /// A table admitting `max` connections, `per_source` from one address
    /// (the last [`RESERVED_FOR_NEW_SOURCES`] only from addresses with none
    /// open).
    pub fn new(max: usize, per_source: usize) -> ConnectionTable {
        ConnectionTable {
            max,
            per_source,
            reserved: RESERVED_FOR_NEW_SOURCES.min(max / 4),
            total: 0,
            by_source: HashMap::new(),
        }
    }

    /// Counts a new connection from `source`, or says why not.
    pub fn admit(&mut self, source: IpAddr) -> Result<(), Refusal> {
        let open = self.by_source.get(&source).copied().unwrap_or(0);
        let room = if open == 0 {
            self.max
        } else {
            self.max - self.reserved
        };
        if self.total >= room {
            return Err(Refusal::Total);
        }
        let n = self.by_source.entry(source).or_insert(0);
        if *n >= self.per_source {
            return Err(Refusal::PerSource);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `source` closed.
    pub fn release(&mut self, source: IpAddr) {
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
            self.total -= 1;
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total
    }
}

/// Why a connection's time is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A started message did not complete in time.
    HeaderTimeout,
    /// No complete message for the idle timeout.
    Idle,
}

impl Expiry {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::HeaderTimeout => "header_timeout",
            Expiry::Idle => "idle",
        }
    }
}

/// The deadlines of one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct StreamClock {
    header_timeout: Duration,
    idle_timeout: Duration,
    /// When the incomplete message in the buffer began.
    partial_since: Option<Instant>,
    /// The last complete message (or the connection's start).
    active_at: Instant,
}

impl StreamClock {
    /// A connection opened at `now`.
    pub fn new(limits: &ConnectionLimits, now: Instant) -> StreamClock {
        StreamClock {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            partial_since: None,
            active_at: now,
        }
    }

    /// A message is due now: a client that connected must send its first
    /// request within the header timeout, not the idle timeout.
    pub fn expect_message(&mut self, now: Instant) {
        self.partial_since = Some(now);
    }

    /// A complete message arrived.
    pub fn on_message(&mut self, now: Instant) {
        self.active_at = now;
    }

    /// Octets of a response left: a connection that streams (the event
    /// stream, a large body) is busy, not idle. Only octets the peer
    /// actually takes count, so a client that stops reading still times out.
    pub fn on_sent(&mut self, now: Instant) {
        self.active_at = now;
    }

    /// A CRLF keep-alive arrived; `kept` when the connection carries a live
    /// registration.
    pub fn on_ping(&mut self, kept: bool, now: Instant) {
        if kept {
            self.active_at = now;
        }
    }

    /// After the bytes read were framed: `buffered` octets of an
    /// incomplete message are left.
    pub fn on_buffered(&mut self, buffered: usize, now: Instant) {
        match (buffered, self.partial_since) {
            (0, _) => self.partial_since = None,
            (_, None) => self.partial_since = Some(now),
            _ => {}
        }
    }

    /// When the connection must close, and why, if nothing arrives before.
    /// `kept_until`: the end of a live registration the connection carries.
    pub fn deadline(&self, kept_until: Option<Instant>) -> (Instant, Expiry) {
        let idle = self.active_at + self.idle_timeout;
        let idle = kept_until.map_or(idle, |k| idle.max(k));
        match self.partial_since {
            Some(since) if since + self.header_timeout < idle => {
                (since + self.header_timeout, Expiry::HeaderTimeout)
            }
            _ => (idle, Expiry::Idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn total_and_per_source_caps() {
        let mut t = ConnectionTable::new(3, 2);
        assert_eq!(t.admit(ip(1)), Ok(()));
        assert_eq!(t.admit(ip(1)), Ok(()));
        assert_eq!(t.admit(ip(1)), Err(Refusal::PerSource));
        assert_eq!(t.admit(ip(2)), Ok(()));
        assert_eq!(t.admit(ip(3)), Err(Refusal::Total));
        t.release(ip(1));
        assert_eq!(t.open(), 2);
        assert_eq!(t.admit(ip(3)), Ok(()));
        // A source that was never admitted changes nothing.
        t.release(ip(9));
        assert_eq!(t.open(), 3);
    }

    #[test]
    fn the_last_slots_are_for_sources_with_nothing_open() {
        // 16 slots, 4 of them reserved.
        let mut t = ConnectionTable::new(16, 16);
        for _ in 0..12 {
            assert_eq!(t.admit(ip(1)), Ok(()));
        }
        assert_eq!(t.admit(ip(1)), Err(Refusal::Total));
        for last in 2..6 {
            assert_eq!(t.admit(ip(last)), Ok(()), "a new source");
            assert_eq!(t.admit(ip(last)), Err(Refusal::Total), "its second");
        }
        assert_eq!(t.admit(ip(9)), Err(Refusal::Total), "all 16 taken");
    }

    #[test]
    fn the_first_message_is_due_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(&LIMITS, t0);
        c.expect_message(t0);
        assert_eq!(
            c.deadline(None),
            (t0 + LIMITS.header_timeout, Expiry::HeaderTimeout)
        );
        let t1 = t0 + Duration::from_secs(1);
        c.on_message(t1);
        c.on_buffered(0, t1);
        assert_eq!(c.deadline(None), (t1 + LIMITS.idle_timeout, Expiry::Idle));
    }

    const LIMITS: ConnectionLimits = ConnectionLimits {
        max: 10,
        per_source: 5,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
        max_message_bytes: 65536,
    };

    #[test]
    fn idle_connection_closes_after_the_idle_timeout() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(&LIMITS, t0);
        assert_eq!(c.deadline(None), (t0 + LIMITS.idle_timeout, Expiry::Idle));
        let t1 = t0 + Duration::from_secs(100);
        c.on_message(t1);
        assert_eq!(c.deadline(None), (t1 + LIMITS.idle_timeout, Expiry::Idle));
    }

    #[test]
    fn a_response_leaving_keeps_the_connection_from_being_idle() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(&LIMITS, t0);
        let t1 = t0 + LIMITS.idle_timeout - Duration::from_secs(1);
        c.on_sent(t1);
        assert_eq!(c.deadline(None), (t1 + LIMITS.idle_timeout, Expiry::Idle));
    }

    #[test]
    fn a_partial_message_must_complete_within_the_header_timeout() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(&LIMITS, t0);
        let t1 = t0 + Duration::from_secs(5);
        c.on_buffered(10, t1);
        // More bytes trickling in (slowloris) do not move the deadline.
        c.on_buffered(20, t1 + Duration::from_secs(8));
        assert_eq!(
            c.deadline(None),
            (t1 + LIMITS.header_timeout, Expiry::HeaderTimeout)
        );
        // Completed: back to idle.
        c.on_message(t1 + Duration::from_secs(9));
        c.on_buffered(0, t1 + Duration::from_secs(9));
        assert_eq!(c.deadline(None).1, Expiry::Idle);
    }

    #[test]
    fn a_registration_keeps_the_connection_and_its_pings_count() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(&LIMITS, t0);
        let until = t0 + Duration::from_secs(3600);
        assert_eq!(c.deadline(Some(until)), (until, Expiry::Idle));
        // Pings on a connection without a registration keep nothing open.
        let t1 = t0 + Duration::from_secs(60);
        c.on_ping(false, t1);
        assert_eq!(c.deadline(None).0, t0 + LIMITS.idle_timeout);
        c.on_ping(true, t1);
        assert_eq!(c.deadline(None).0, t1 + LIMITS.idle_timeout);
        // A registration that lapsed keeps nothing either.
        assert_eq!(c.deadline(Some(t0)).0, t1 + LIMITS.idle_timeout);
    }
}
