//! RFC 4028 session timers, from the UAS side.
//!
//! zentrale does not ask for session timers itself; it honours them when the
//! caller (or a proxy on the way) does, so a carrier that needs refreshes to
//! clean up dead calls gets them.

use std::time::Duration;

use crate::sip::message::Request;

/// Who sends the refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// The negotiated session timer of a dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: u32,
    pub refresher: Refresher,
}

impl SessionTimer {
    /// The `Session-Expires` value for our 2xx.
    pub fn header_value(&self) -> String {
        let r = match self.refresher {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        };
        format!("{};refresher={r}", self.interval)
    }

    /// When the session is considered dead without a refresh (§10: the
    /// interval minus the smaller of 32 s and a third of it).
    pub fn expiry(&self) -> Duration {
        let i = self.interval as u64;
        Duration::from_secs(i - (i / 3).min(32))
    }

    /// When we refresh, if we are the refresher (§7.4: half the interval).
    pub fn refresh_after(&self) -> Duration {
        Duration::from_secs(self.interval as u64 / 2)
    }
}

/// Outcome of looking at an INVITE/UPDATE for session timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiation {
    /// The request did not ask for a session timer.
    None,
    Agreed(SessionTimer),
    /// The interval is below our minimum: answer 422 with this `Min-SE`.
    TooSmall {
        min_se: u32,
    },
}

/// Decides the session timer for a request (RFC 4028 §9).
///
/// ```
/// use zentrale::call::session_timer::{negotiate, Negotiation, Refresher};
/// use zentrale::sip::message::Request;
/// let inv = Request::try_from("INVITE sip:115@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
///     From: <sip:a@h>;tag=1\r\nTo: <sip:115@h>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
///     Supported: timer\r\nSession-Expires: 600\r\n\r\n").unwrap();
/// match negotiate(&inv, 90) {
///     Negotiation::Agreed(t) => assert_eq!((t.interval, t.refresher), (600, Refresher::Uac)),
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn negotiate(req: &Request, min_se: u32) -> Negotiation {
    let h = crate::sip::headers::session_headers(&req.headers);
    let (expires, uac_supports, their_min_se) = (h.expires, h.supports_timer, h.min_se);
    let refresher = h.refresher.and_then(|r| {
        if r.eq_ignore_ascii_case("uac") {
            Some(Refresher::Uac)
        } else if r.eq_ignore_ascii_case("uas") {
            Some(Refresher::Uas)
        } else {
            None
        }
    });
    let Some(interval) = expires else {
        return Negotiation::None;
    };
    let floor = min_se.max(their_min_se);
    if interval < floor {
        return Negotiation::TooSmall { min_se: floor };
    }
    // A UAC that does not support timers cannot refresh (§9): we must.
    let refresher = match (refresher, uac_supports) {
        (_, false) => Refresher::Uas,
        (Some(r), true) => r,
        (None, true) => Refresher::Uac,
    };
    Negotiation::Agreed(SessionTimer {
        interval,
        refresher,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> Request {
        Request::try_from(format!(
            "INVITE sip:115@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:115@h>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{extra}\r\n"
        ))
        .unwrap()
    }

    #[test]
    fn cases() {
        assert_eq!(negotiate(&req(""), 90), Negotiation::None);
        assert_eq!(
            negotiate(&req("Supported: timer\r\nSession-Expires: 60\r\n"), 90),
            Negotiation::TooSmall { min_se: 90 }
        );
        assert_eq!(
            negotiate(
                &req("Supported: timer\r\nSession-Expires: 1800;refresher=uas\r\n"),
                90
            ),
            Negotiation::Agreed(SessionTimer {
                interval: 1800,
                refresher: Refresher::Uas
            })
        );
        // A proxy asked for timers on behalf of a UAC that cannot refresh.
        assert_eq!(
            negotiate(&req("Session-Expires: 300;refresher=uac\r\n"), 90),
            Negotiation::Agreed(SessionTimer {
                interval: 300,
                refresher: Refresher::Uas
            })
        );
        let t = SessionTimer {
            interval: 90,
            refresher: Refresher::Uac,
        };
        assert_eq!(t.expiry(), Duration::from_secs(60));
        let t = SessionTimer {
            interval: 1800,
            refresher: Refresher::Uac,
        };
        assert_eq!(t.expiry(), Duration::from_secs(1768));
    }
}
