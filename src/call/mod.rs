//! The state machine of one call zentrale answers (the caller leg of the
//! B2BUA), sans-IO.
//!
//! A [`Call`] is created for an accepted initial INVITE and fed events
//! (`on_*` methods and [`Call::handle_timeout`]) with the current time. It
//! answers with [`Action`]s the daemon executes: send the 200, send a BYE,
//! release the media. Nothing here touches a socket or a clock.
//!
//! ```text
//!   Ringing ──answer timer──► Answered ──ACK──► Confirmed ──BYE in──► Ended
//!      │                         │                  │
//!      └─CANCEL─► Ended (487)    └─no ACK (timer L)─┴─RTP/session timeout─► Ending ──BYE answered──► Ended
//! ```

pub mod agent_leg;
pub mod dialog;
pub mod session_timer;

use std::time::{Duration, Instant};

pub use dialog::Dialog;
use session_timer::{Refresher, SessionTimer};

use crate::sip::transaction::ServerKey;

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE accepted, 180 sent, not answered yet.
    Ringing,
    /// 200 OK sent, waiting for the ACK.
    Answered,
    /// ACK received: media flows.
    Confirmed,
    /// We sent a BYE and wait for its answer.
    Ending,
    Ended,
}

/// Why a call ended; goes to logs, metrics and (later) the CDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    CallerHangup,
    Cancelled,
    NoAck,
    RtpTimeout,
    SessionExpired,
    Shutdown,
    /// zentrale ended it after a last prompt (call later, feature code).
    Completed,
    /// The agent hung up the conversation.
    AgentHangup,
    /// Handling one of the call's inputs failed inside zentrale (a bug):
    /// the call was ended so that every other call carries on.
    InternalError,
    /// The RTP port zentrale wrote into the SDP could not be bound.
    NoRtpPort,
}

impl EndReason {
    /// A short label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHangup => "caller_hangup",
            EndReason::Cancelled => "cancelled",
            EndReason::NoAck => "no_ack",
            EndReason::RtpTimeout => "rtp_timeout",
            EndReason::SessionExpired => "session_expired",
            EndReason::Shutdown => "shutdown",
            EndReason::Completed => "completed",
            EndReason::AgentHangup => "agent_hangup",
            EndReason::InternalError => "internal_error",
            EndReason::NoRtpPort => "no_rtp_port",
        }
    }

    /// The `Reason` header value of the BYE zentrale sends for it (RFC 3326).
    pub fn reason_header(self) -> &'static str {
        match self {
            EndReason::NoAck => "SIP;cause=408;text=\"ACK not received\"",
            EndReason::RtpTimeout => "SIP;cause=408;text=\"No RTP received\"",
            EndReason::SessionExpired => "SIP;cause=408;text=\"Session expired\"",
            EndReason::Shutdown => "SIP;cause=503;text=\"Shutting down\"",
            EndReason::InternalError => "SIP;cause=500;text=\"Internal error\"",
            EndReason::NoRtpPort => "SIP;cause=503;text=\"No RTP port\"",
            EndReason::CallerHangup
            | EndReason::Cancelled
            | EndReason::Completed
            | EndReason::AgentHangup => "SIP;cause=200;text=\"Call completed\"",
        }
    }
}

/// What the daemon must do for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the 200 OK (with SDP) to the INVITE and start the media.
    Answer,
    /// Answer the INVITE with 487 Request Terminated.
    Terminate487,
    /// Send a BYE with this reason.
    SendBye(EndReason),
    /// Send a session refresh (UPDATE) because we are the refresher.
    SendRefresh,
    /// The call is over: stop its media, free its port, forget it.
    Release(EndReason),
}

/// One answered (or about to be answered) caller leg. See the module docs.
#[derive(Debug)]
pub struct Call {
    pub state: CallState,
    pub dialog: Dialog,
    pub invite_key: ServerKey,
    answer_at: Option<Instant>,
    session: Option<SessionTimer>,
    /// When the session times out without a refresh.
    session_deadline: Option<Instant>,
    /// When we send our own refresh, if we are the refresher.
    refresh_at: Option<Instant>,
    ending: Option<EndReason>,
    /// When the call was answered; for durations.
    pub answered_at: Option<Instant>,
    pub created_at: Instant,
}

impl Call {
    /// A call that will be answered `answer_after` from `now` (zero: at once).
    pub fn new(
        dialog: Dialog,
        invite_key: ServerKey,
        session: Option<SessionTimer>,
        answer_after: Duration,
        now: Instant,
    ) -> Call {
        Call {
            state: CallState::Ringing,
            dialog,
            invite_key,
            answer_at: Some(now + answer_after),
            session,
            session_deadline: None,
            refresh_at: None,
            ending: None,
            answered_at: None,
            created_at: now,
        }
    }

    /// The negotiated session timer, for the 200 OK.
    pub fn session_timer(&self) -> Option<SessionTimer> {
        self.session
    }

    /// The next instant [`Call::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.answer_at, self.session_deadline, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.answer_at.is_some_and(|t| t <= now) {
            self.answer_at = None;
            if self.state == CallState::Ringing {
                self.state = CallState::Answered;
                self.answered_at = Some(now);
                self.arm_session(now);
                actions.push(Action::Answer);
            }
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            if self.state == CallState::Confirmed {
                actions.push(Action::SendRefresh);
            }
        }
        if self.session_deadline.is_some_and(|t| t <= now) {
            self.session_deadline = None;
            actions.extend(self.hang_up(EndReason::SessionExpired));
        }
        actions
    }

    /// The ACK for our 2xx arrived.
    pub fn on_ack(&mut self) {
        if self.state == CallState::Answered {
            self.state = CallState::Confirmed;
        }
    }

    /// A CANCEL for the INVITE: only effective before the answer.
    pub fn on_cancel(&mut self) -> Vec<Action> {
        if self.state != CallState::Ringing {
            return Vec::new();
        }
        self.state = CallState::Ended;
        self.answer_at = None;
        vec![Action::Terminate487, Action::Release(EndReason::Cancelled)]
    }

    /// The caller sent BYE (answered 200 by the daemon).
    pub fn on_bye(&mut self) -> Vec<Action> {
        if self.state == CallState::Ended {
            return Vec::new();
        }
        // A BYE before the answer is legal only after a 2xx; before it the
        // daemon answered 481. A BYE while we wait for ours is the race
        // of both hanging up: either way the call is over.
        let release = self.state != CallState::Ending;
        self.state = CallState::Ended;
        self.clear_timers();
        if release {
            vec![Action::Release(EndReason::CallerHangup)]
        } else {
            vec![Action::Release(
                self.ending.unwrap_or(EndReason::CallerHangup),
            )]
        }
    }

    /// A refresh (re-INVITE or UPDATE) from the caller was accepted.
    pub fn on_refresh(&mut self, session: Option<SessionTimer>, now: Instant) {
        if session.is_some() {
            self.session = session;
        }
        if matches!(self.state, CallState::Answered | CallState::Confirmed) {
            self.arm_session(now);
        }
    }

    /// Our refresh was answered 2xx.
    pub fn on_refresh_answered(&mut self, now: Instant) {
        if self.state == CallState::Confirmed {
            self.arm_session(now);
        }
    }

    /// Timer L: the 2xx was never acknowledged (RFC 3261 §13.3.1.4: BYE).
    pub fn on_no_ack(&mut self) -> Vec<Action> {
        if self.state != CallState::Answered {
            return Vec::new();
        }
        self.hang_up(EndReason::NoAck)
    }

    /// The media engine saw no RTP from the caller for the configured time.
    pub fn on_rtp_timeout(&mut self) -> Vec<Action> {
        self.hang_up(EndReason::RtpTimeout)
    }

    /// Our BYE got a final response or timed out.
    pub fn on_bye_done(&mut self) -> Vec<Action> {
        if self.state != CallState::Ending {
            return Vec::new();
        }
        self.state = CallState::Ended;
        vec![Action::Release(self.ending.unwrap_or(EndReason::Shutdown))]
    }

    /// Ends the call from our side (timeouts, shutdown).
    pub fn hang_up(&mut self, reason: EndReason) -> Vec<Action> {
        match self.state {
            CallState::Answered | CallState::Confirmed => {
                self.state = CallState::Ending;
                self.ending = Some(reason);
                self.clear_timers();
                vec![Action::SendBye(reason)]
            }
            CallState::Ringing => {
                // Not answered yet: a final error response ends it.
                self.state = CallState::Ended;
                self.clear_timers();
                vec![Action::Terminate487, Action::Release(reason)]
            }
            CallState::Ending | CallState::Ended => Vec::new(),
        }
    }

    fn arm_session(&mut self, now: Instant) {
        if let Some(t) = self.session {
            self.session_deadline = Some(now + t.expiry());
            self.refresh_at = (t.refresher == Refresher::Uas).then(|| now + t.refresh_after());
        }
    }

    fn clear_timers(&mut self) {
        self.answer_at = None;
        self.session_deadline = None;
        self.refresh_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Transport;
    use crate::sip::message::Request;
    use crate::sip::transaction::{Peer, server_key};

    fn call(session: Option<SessionTimer>, now: Instant) -> Call {
        let inv = Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:115@127.0.0.1>\r\nContact: <sip:a@127.0.0.1:5070>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let peer = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        let d = Dialog::from_invite(&inv, peer, &mut crate::rng::SeededRng::from_u64(1)).unwrap();
        Call::new(
            d,
            server_key(&inv).unwrap(),
            session,
            Duration::from_millis(500),
            now,
        )
    }

    #[test]
    fn answers_after_delay_then_bye_releases() {
        let t0 = Instant::now();
        let mut c = call(None, t0);
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        assert!(c.handle_timeout(t0 + Duration::from_millis(499)).is_empty());
        assert_eq!(
            c.handle_timeout(t0 + Duration::from_millis(500)),
            vec![Action::Answer]
        );
        c.on_ack();
        assert_eq!(c.state, CallState::Confirmed);
        assert_eq!(c.on_bye(), vec![Action::Release(EndReason::CallerHangup)]);
        assert!(c.on_bye().is_empty(), "a retransmitted BYE changes nothing");
    }

    #[test]
    fn cancel_only_before_answer() {
        let t0 = Instant::now();
        let mut c = call(None, t0);
        assert_eq!(
            c.on_cancel(),
            vec![Action::Terminate487, Action::Release(EndReason::Cancelled)]
        );
        assert_eq!(c.poll_timeout(), None);
        let mut c = call(None, t0);
        c.handle_timeout(t0 + Duration::from_secs(1));
        assert!(c.on_cancel().is_empty());
    }

    #[test]
    fn missing_ack_sends_bye_then_releases() {
        let t0 = Instant::now();
        let mut c = call(None, t0);
        c.handle_timeout(t0 + Duration::from_secs(1));
        assert_eq!(c.on_no_ack(), vec![Action::SendBye(EndReason::NoAck)]);
        assert_eq!(c.on_bye_done(), vec![Action::Release(EndReason::NoAck)]);
    }

    #[test]
    fn session_expires_without_refresh() {
        let t0 = Instant::now();
        let st = SessionTimer {
            interval: 90,
            refresher: Refresher::Uac,
        };
        let mut c = call(Some(st), t0);
        let answered = t0 + Duration::from_millis(500);
        c.handle_timeout(answered);
        c.on_ack();
        // A refresh at 50 s moves the deadline to 50 + 60 s.
        c.on_refresh(None, answered + Duration::from_secs(50));
        assert!(
            c.handle_timeout(answered + Duration::from_secs(100))
                .is_empty()
        );
        assert_eq!(
            c.handle_timeout(answered + Duration::from_secs(110)),
            vec![Action::SendBye(EndReason::SessionExpired)]
        );
    }

    #[test]
    fn uas_refresher_refreshes_at_half_interval() {
        let t0 = Instant::now();
        let st = SessionTimer {
            interval: 120,
            refresher: Refresher::Uas,
        };
        let mut c = call(Some(st), t0);
        let answered = t0 + Duration::from_millis(500);
        c.handle_timeout(answered);
        c.on_ack();
        assert_eq!(
            c.handle_timeout(answered + Duration::from_secs(60)),
            vec![Action::SendRefresh]
        );
        c.on_refresh_answered(answered + Duration::from_secs(60));
        assert!(
            c.handle_timeout(answered + Duration::from_secs(119))
                .is_empty()
        );
    }

    #[test]
    fn rtp_timeout_hangs_up_once() {
        let t0 = Instant::now();
        let mut c = call(None, t0);
        c.handle_timeout(t0 + Duration::from_secs(1));
        c.on_ack();
        assert_eq!(
            c.on_rtp_timeout(),
            vec![Action::SendBye(EndReason::RtpTimeout)]
        );
        assert!(c.on_rtp_timeout().is_empty());
    }
}
