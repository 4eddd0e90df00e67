//! The core's dialplan side: the decision for a new call, what the caller
//! hears after answering, IVR menus fed with DTMF, surge limits and
//! overflow counting. The [`Dialplan`](crate::dialplan::Dialplan) and
//! [`Menu`] decide; this file carries their answers to media and the ACD.

use std::fmt::Write as _;
use std::time::Instant;

use tracing::info;

use super::Core;
use super::index::SessionId;
use super::session::{Next, Phase};
use crate::cdr::Why;
use crate::dialplan::Target;
use crate::dialplan::{BusyReason, CallInput, CallRoute, Menu, MenuAction, QueueExit, SipHeaders};
use crate::media::engine::Playlist;
use crate::metrics::{MenuLabels, OverflowLabels};
use crate::sip::message::{Header, Param, Request, Scheme, Uri};
use crate::sip::transaction::Transmit;

/// The header values the dialplan reads, from an INVITE (borrowed: this
/// runs for every call).
pub(super) fn call_input(req: &Request) -> CallInput {
    let (mut to, mut from) = ("", "");
    let mut diversion = Vec::new();
    let mut history = Vec::new();
    let mut privacy = Vec::new();
    let mut pai = Vec::new();
    for h in req.headers.iter() {
        match h {
            Header::To(v) => to = v.value(),
            Header::From(v) => from = v.value(),
            Header::Diversion(v) => diversion.push(v.value().trim()),
            Header::HistoryInfo(v) => history.push(v.value().trim()),
            Header::Privacy(v) => privacy.push(v.value().trim()),
            Header::PAssertedIdentity(v) => pai.push(v.value().trim()),
            _ => {}
        }
    }
    let plain = plain_user(&req.uri);
    // Only the unusual Request-URI is written out for the dialplan to read.
    let mut uri = String::new();
    if plain.is_none() {
        let _ = write!(uri, "{}", req.uri);
    }
    let mut input = CallInput::from_sip(&SipHeaders {
        request_uri: &uri,
        to,
        from,
        diversion: &diversion,
        history_info: &history,
        privacy: &privacy,
        p_asserted_identity: &pai,
    });
    if let Some(user) = plain {
        input.request_user = user.to_owned();
    }
    input
}

/// The user of a `sip:`/`sips:` Request-URI when it is made only of
/// characters that rsipstack writes back as they are and that
/// [`uri_user`](crate::dialplan::uri_user) gives no meaning (no `;`, `?`,
/// `%`, `:`), and no parameter holds an `@` (`uri_user` reads up to the
/// last one): then that user is what `uri_user` would read from the
/// written URI, without writing it (the usual called number, also with
/// a carrier's `;user=phone`).
fn plain_user(uri: &Uri) -> Option<&str> {
    if !matches!(uri.scheme, Some(Scheme::Sip | Scheme::Sips)) {
        return None;
    }
    let plain_param = |p: &Param| match p {
        Param::Transport(_) | Param::Lr => true,
        Param::User(u) => !u.value().contains('@'),
        _ => false,
    };
    if !uri.params.iter().all(plain_param) {
        return None;
    }
    let auth = uri.auth.as_ref().filter(|a| a.password.is_none())?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,/".contains(&b);
    (!auth.user.is_empty() && auth.user.bytes().all(plain)).then_some(auth.user.as_str())
}

/// The key of a SIP INFO DTMF body: `application/dtmf-relay`
/// (`Signal=1`) or `application/dtmf` (`1`).
pub(super) fn info_digit(req: &Request) -> Option<char> {
    crate::sip::headers::info_digit(&req.headers, &req.body)
}

impl Core {
    /// What the caller hears when answered: the greeting (unless the call
    /// goes straight to a target), then what loops until the next step.
    pub(super) fn first_playlist(&self, sid: SessionId) -> Playlist {
        let Some(s) = self.sessions.get(&sid) else {
            return Playlist {
                items: Vec::new(),
                then_loop: None,
            };
        };
        let next = match s.phase() {
            Phase::Ringing(next) | Phase::Greeting(next) => Some(next),
            _ => None,
        };
        let greeting = match next {
            Some(Next::Direct(_)) => None,
            _ => self.prompts.get(&s.route.greeting),
        };
        let music = |queue: &str| {
            let music = self.queues.get(queue).map_or("moh", |c| c.music.as_str());
            self.prompts.get(music)
        };
        let has_menu = s.plan.as_ref().is_some_and(|p| p.menu.is_some());
        let then_loop = match next {
            // A queued hotline's callers hear the queue's music after the
            // greeting; they join the queue when the greeting is over
            // (PlaylistDone), so an offer never cuts it short.
            Some(Next::Hotline) if has_menu => None,
            Some(Next::Hotline) => match &s.route.queue {
                Some(q) => music(q),
                None => self.prompts.get(&s.route.waiting),
            },
            Some(Next::Greeting(Target::Queue(q))) => music(&q.to_string()),
            Some(Next::Greeting(_) | Next::Direct(_)) | None => None,
        };
        Playlist {
            items: greeting.into_iter().collect(),
            then_loop,
        }
    }

    /// The greeting is over (or there was none): the next step of the call.
    pub(super) fn after_greeting(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(s) = self.sessions.get_mut(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        let Phase::Greeting(next) = s.phase() else {
            return;
        };
        let priority = s.route.priority;
        match next.clone() {
            Next::Hotline => match s.plan.as_ref().and_then(|p| p.menu.clone()) {
                Some(spec) => {
                    let mut menu = Menu::new(spec);
                    let actions = menu.start(now);
                    s.menu = Some(menu);
                    self.set_phase(sid, Phase::Menu, now);
                    self.apply_menu(sid, actions, now, out);
                }
                None => self.join_queue(sid, now, out),
            },
            Next::Greeting(target) => {
                // Closed, or overflowing at once because closed.
                self.set_phase(sid, Phase::Leaving(Why::Closed), now);
                self.go_to(sid, target, priority, None, now, out)
            }
            Next::Direct(target) => {
                self.set_phase(sid, Phase::Leaving(Why::Surge), now);
                self.go_to(sid, target, priority, None, now, out)
            }
        }
    }

    fn apply_menu(
        &mut self,
        sid: SessionId,
        actions: Vec<MenuAction>,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        for action in actions {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            let Some(stream) = s.caller.as_ref().map(|c| c.media.stream) else {
                return;
            };
            match action {
                MenuAction::Play(names) => {
                    let items = names.iter().filter_map(|n| self.prompts.get(n)).collect();
                    self.media.play(
                        stream,
                        Playlist {
                            items,
                            then_loop: None,
                        },
                    );
                }
                MenuAction::Done { target, choice } => {
                    s.menu = None;
                    let priority = s.route.priority;
                    let call_id = s.caller.as_ref().map(|c| &*c.call.dialog.call_id);
                    info!(call_id = call_id.unwrap_or(""), choice = %choice.label(), target = %target, "menu done");
                    self.metrics
                        .menu_choices
                        .get_or_create(&MenuLabels {
                            tenant: s.route.tenant.clone(),
                            hotline: s.route.hotline.clone(),
                            choice: choice.label(),
                        })
                        .inc();
                    if let Some(f) = s.facts.as_mut() {
                        f.menu = Some(choice);
                    }
                    self.set_phase(sid, Phase::Leaving(Why::Planned), now);
                    self.go_to(sid, target, priority, None, now, out);
                }
            }
        }
        self.reschedule(sid);
    }

    /// The menu's prompts have played: its key timer starts.
    pub(super) fn menu_prompt_done(&mut self, sid: SessionId, now: Instant) {
        if let Some(menu) = self.sessions.get_mut(&sid).and_then(|s| s.menu.as_mut()) {
            menu.prompt_finished(now);
        }
        self.reschedule(sid);
    }

    /// A key from the caller (RFC 4733 or SIP INFO); only menus listen.
    pub(super) fn on_digit(
        &mut self,
        sid: SessionId,
        digit: char,
        now: Instant,
        out: &mut Vec<Transmit>,
    ) {
        let Some(menu) = self.sessions.get_mut(&sid).and_then(|s| s.menu.as_mut()) else {
            return;
        };
        let actions = menu.on_digit(digit, now);
        self.apply_menu(sid, actions, now, out);
    }

    /// The menu's timer, if due.
    pub(super) fn menu_timeout(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(menu) = self.sessions.get_mut(&sid).and_then(|s| s.menu.as_mut()) else {
            return;
        };
        if menu.poll_timeout().is_some_and(|t| t <= now) {
            let actions = menu.handle_timeout(now);
            self.apply_menu(sid, actions, now, out);
        }
    }

    /// Whether a new call of `plan`'s tenant fits its surge limits.
    pub(super) fn surge_check(&self, plan: &CallRoute) -> Result<(), BusyReason> {
        let tenant = plan.route.tenant.as_str();
        let calls = self.tenant_calls.get(tenant).copied().unwrap_or(0);
        // Only counted when limited: a walk over the calls. Callers count
        // where they wait: one that overflowed from a town hall into the
        // district's queue loads the district.
        let waiting = if plan.limits.max_waiting.is_some() {
            self.sessions
                .values()
                .filter(|s| s.caller.is_some())
                .filter(|s| match s.phase() {
                    Phase::Queued { queue } => self
                        .queues
                        .get(&**queue)
                        .is_some_and(|q| q.tenant == tenant),
                    _ => false,
                })
                .count() as u32
        } else {
            0
        };
        plan.limits.admit(calls, waiting)
    }

    /// A caller leaves (or is kept out of) a queue for `target`: if that is
    /// its hotline's overflow, count it for the municipality.
    pub(super) fn count_overflow(
        &mut self,
        sid: SessionId,
        target: &Target,
        exit: QueueExit,
        now: Instant,
    ) {
        let Some(s) = self.sessions.get(&sid).filter(|s| s.caller.is_some()) else {
            return;
        };
        let Some(plan) = s.plan.as_ref() else {
            return;
        };
        let Some(overflow) = &plan.overflow else {
            return;
        };
        if let Some(cause) = overflow.cause_for(target, exit) {
            let call_id = s.caller.as_ref().map(|c| &*c.call.dialog.call_id);
            info!(call_id = call_id.unwrap_or(""), municipality = %plan.origin.municipality, cause = cause.as_str(), "overflow");
            let label = overflow.target_label();
            self.metrics
                .overflow
                .get_or_create(&OverflowLabels {
                    from_municipality: plan.origin.municipality.to_string(),
                    target: label.clone(),
                })
                .inc();
            self.note_overflow(sid, cause, label, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_user_is_what_the_written_uri_gives() {
        for uri in [
            "sip:115@127.0.0.1:5060",
            "SIPS:0561115@host;transport=tcp",
            "sip:+49561115@h",
            "sip:0561115;isub=12@h",
            "sip:a%3Bb@h",
            "sip:user:secret@h",
            "sip:h",
            "tel:+4930123",
            "sip:%31%31%35@h",
            "sip:+49561115@carrier;user=phone",
            "sip:115@h;x=a@b",
            "sip:115@h;user=a@b",
            "sip:115@h;transport=tcp;lr",
        ] {
            let parsed = crate::sip::message::Uri::try_from(uri).unwrap();
            let written = crate::dialplan::uri_user(&parsed.to_string()).unwrap_or_default();
            let plain = plain_user(&parsed);
            if let Some(user) = plain {
                assert_eq!(user, written, "{uri}");
            }
            let request = req("", "");
            let request = Request {
                uri: parsed,
                ..request
            };
            assert_eq!(call_input(&request).request_user, written, "{uri}");
        }
        let plain = |u: &str| plain_user(&crate::sip::message::Uri::try_from(u).unwrap()).is_some();
        assert!(plain("sip:0561115@h"));
        assert!(plain("sip:+49561115@carrier;user=phone"));
        assert!(!plain("sip:115@h;x=a@b"));
        assert!(!plain("sip:0561115;isub=12@h"));
        assert!(!plain("tel:+4930123"));
    }

    fn req(extra: &str, body: &str) -> Request {
        Request::try_from(format!(
            "INFO sip:115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:05617870123@h>;tag=1\r\nTo: <sip:115@h>;tag=2\r\nCall-ID: x\r\n\
             CSeq: 2 INFO\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .unwrap()
    }

    #[test]
    fn info_digits_in_both_body_formats() {
        let relay = req(
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=1\r\nDuration=160\r\n",
        );
        assert_eq!(info_digit(&relay), Some('1'));
        let plain = req("Content-Type: application/dtmf\r\n", "#\r\n");
        assert_eq!(info_digit(&plain), Some('#'));
        let other = req("Content-Type: text/plain\r\n", "Signal=1\r\n");
        assert_eq!(info_digit(&other), None);
        let garbage = req("Content-Type: application/dtmf-relay\r\n", "Signal=12\r\n");
        assert_eq!(info_digit(&garbage), None);
    }

    #[test]
    fn input_reads_forwarding_and_privacy_headers() {
        let r = Request::try_from(
            "INVITE sip:04101115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:05617870123@h>;tag=1\r\nTo: <sip:04101115@h>\r\nCall-ID: x\r\n\
             CSeq: 1 INVITE\r\nDiversion: <sip:041066110@pbx>;reason=no-answer;counter=1\r\n\
             Privacy: id\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let input = call_input(&r);
        assert_eq!(input.request_user, "04101115");
        assert_eq!(input.diversion.as_deref(), Some("041066110"));
        assert!(input.anonymous);
        assert_eq!(input.caller, None);
        let open = Request::try_from(
            "INVITE sip:115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:05617870123@h>;tag=1\r\nTo: <sip:115@h>\r\nCall-ID: x\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(call_input(&open).caller.as_deref(), Some("05617870123"));
        // Header names in any case; P-Asserted-Identity wins over From.
        let lower = Request::try_from(
            "INVITE sip:04101115@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:trunk@h>;tag=1\r\nTo: <sip:04101115@h>\r\nCall-ID: x\r\n\
             CSeq: 1 INVITE\r\nhistory-info: <sip:041066110@pbx>;index=1\r\n\
             history-info: <sip:04101115@h>;index=1.1\r\n\
             p-asserted-identity: <sip:+494106123456@carrier>\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let input = call_input(&lower);
        assert_eq!(input.history_info, ["041066110", "04101115"]);
        assert_eq!(input.caller.as_deref(), Some("+494106123456"));
        assert!(!input.anonymous);
    }
}
