//! Agents: the atomic state word and its compare-and-swap transitions.
//!
//! Everything that decides whether an agent may take a call lives in one
//! `AtomicU64` per agent. A dispatcher claims an agent with a single CAS
//! `Available -> Reserved(offer)`, so two dispatchers on two threads can never
//! offer the same agent two calls. Every other transition (answer, hang-up,
//! pause, ...) is a pure function `Word -> Result<Word, Refusal>` applied in a
//! CAS loop; the other per-agent fields (idle time, counters, pause text) are
//! descriptive and written after the transition that changes them.
//!
//! Word layout (bits):
//!
//! ```text
//!  0-7   kind: LoggedOut, Available, Reserved, Ringing, Talking, WrapUp, Paused
//!        (a byte: room for 256 states, so new ones such as consulting or
//!        on a callback need no new layout)
//!  8     registered (a softphone binding exists)
//!  9-11  pause reason code (of the pause, or of the pending pause)
//! 12-13  pending change: none, pause, logout (applied when the call and wrap-up end)
//! 14-15  unused
//! 16-63  offer id of the current offer or call
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::{CallKey, OfferFailure, OfferId};

/// Why an agent is paused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// Pause.
    Break,
    /// Back-office work (Sachbearbeitung).
    BackOffice,
    Training,
    /// Set by the engine after too many missed offers in a row.
    NoAnswer,
    /// Anything else, as the agent's client names it.
    Other(String),
}

impl PauseReason {
    /// The reason as the config, the feature codes and the API spell it
    /// (`break`, `back-office`, `training`, `no-answer`, or any other text).
    ///
    /// ```
    /// use zentrale::acd::PauseReason;
    /// assert_eq!(PauseReason::from_name("back-office"), PauseReason::BackOffice);
    /// assert_eq!(PauseReason::from_name("lunch").name(), "lunch");
    /// ```
    pub fn from_name(name: &str) -> PauseReason {
        match name {
            "break" => PauseReason::Break,
            "back-office" => PauseReason::BackOffice,
            "training" => PauseReason::Training,
            "no-answer" => PauseReason::NoAnswer,
            other => PauseReason::Other(other.to_owned()),
        }
    }

    /// The name [`PauseReason::from_name`] reads.
    pub fn name(&self) -> &str {
        match self {
            PauseReason::Break => "break",
            PauseReason::BackOffice => "back-office",
            PauseReason::Training => "training",
            PauseReason::NoAnswer => "no-answer",
            PauseReason::Other(s) => s,
        }
    }

    fn code(&self) -> u64 {
        match self {
            PauseReason::Break => 0,
            PauseReason::BackOffice => 1,
            PauseReason::Training => 2,
            PauseReason::NoAnswer => 3,
            PauseReason::Other(_) => 4,
        }
    }

    fn from_code(code: u64, text: Option<&str>) -> PauseReason {
        match code {
            0 => PauseReason::Break,
            1 => PauseReason::BackOffice,
            2 => PauseReason::Training,
            3 => PauseReason::NoAnswer,
            _ => PauseReason::Other(text.unwrap_or_default().to_owned()),
        }
    }
}

/// An agent's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    /// Logged in and idle; offered calls while registered.
    Available,
    /// Chosen for an offer; the daemon is setting up the leg.
    Reserved,
    /// The agent's phone rings.
    Ringing,
    Talking,
    /// Nachbearbeitung after a call.
    WrapUp,
    Paused(PauseReason),
}

/// A change the agent asked for that waits for the current call and its
/// wrap-up to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingChange {
    Pause(PauseReason),
    Logout,
}

/// Whether a pause or logout took effect now or waits for the current call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Now,
    /// The agent is on an offer, a call or in wrap-up; the change applies
    /// when that is over.
    AfterCall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Kind {
    LoggedOut = 0,
    Available = 1,
    Reserved = 2,
    Ringing = 3,
    Talking = 4,
    WrapUp = 5,
    Paused = 6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Pending {
    None = 0,
    Pause = 1,
    Logout = 2,
}

/// Why a transition was refused; the facade maps it to a public error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    AlreadyLoggedIn,
    NotLoggedIn,
    NotPaused,
    NotInWrapUp,
    /// Not offerable (claim) or not on this offer/call.
    WrongState,
}

/// The kind field: a whole byte. It held 3 bits (8 kinds, 7 used) until
/// agents needed more states than that.
const KIND_MASK: u64 = 0xff;
const REGISTERED: u64 = 1 << 8;
const REASON_SHIFT: u32 = 9;
const REASON_MASK: u64 = 0b111 << REASON_SHIFT;
const PENDING_SHIFT: u32 = 12;
const PENDING_MASK: u64 = 0b11 << PENDING_SHIFT;
const OFFER_SHIFT: u32 = 16;

// The fields must not overlap, must stay below the offer id, and the kind
// field must keep room for at least 16 states.
const _: () = {
    let fields = [KIND_MASK, REGISTERED, REASON_MASK, PENDING_MASK];
    let mut seen = 0;
    let mut i = 0;
    while i < fields.len() {
        assert!(seen & fields[i] == 0, "agent word fields overlap");
        seen |= fields[i];
        i += 1;
    }
    assert!(
        seen >> OFFER_SHIFT == 0,
        "agent word fields reach into the offer id"
    );
    assert!(
        KIND_MASK + 1 >= 16,
        "the kind field holds fewer than 16 states"
    );
    assert!(Kind::Paused as u64 <= KIND_MASK);
};

/// One agent's packed state; see the module docs for the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub u64);

impl Word {
    pub const LOGGED_OUT: Word = Word(0);

    pub fn kind(self) -> Kind {
        match self.kind_code() {
            0 => Kind::LoggedOut,
            1 => Kind::Available,
            2 => Kind::Reserved,
            3 => Kind::Ringing,
            4 => Kind::Talking,
            5 => Kind::WrapUp,
            6 => Kind::Paused,
            // Words are only written with a `Kind`'s code; should another
            // code ever show up, the agent counts as paused: logged in,
            // offered nothing.
            _ => Kind::Paused,
        }
    }

    /// The raw kind field.
    fn kind_code(self) -> u64 {
        self.0 & KIND_MASK
    }

    /// The same word with another kind; every other field stays.
    fn with_kind(self, kind: Kind) -> Word {
        self.with_kind_code(kind as u64)
    }

    fn with_kind_code(self, code: u64) -> Word {
        debug_assert!(code <= KIND_MASK, "kind code {code} does not fit");
        Word((self.0 & !KIND_MASK) | (code & KIND_MASK))
    }

    pub fn registered(self) -> bool {
        self.0 & REGISTERED != 0
    }

    pub fn reason_code(self) -> u64 {
        (self.0 & REASON_MASK) >> REASON_SHIFT
    }

    pub fn pending(self) -> Pending {
        match (self.0 & PENDING_MASK) >> PENDING_SHIFT {
            1 => Pending::Pause,
            2 => Pending::Logout,
            _ => Pending::None,
        }
    }

    /// The offer this word is bound to (Reserved, Ringing, Talking, WrapUp).
    pub fn offer(self) -> u64 {
        self.0 >> OFFER_SHIFT
    }

    /// Offered calls only when idle and reachable.
    pub fn offerable(self) -> bool {
        self.kind() == Kind::Available && self.registered()
    }

    pub fn logged_in(self) -> bool {
        self.kind() != Kind::LoggedOut
    }

    pub fn on_offer(self, offer: u64) -> bool {
        matches!(self.kind(), Kind::Reserved | Kind::Ringing) && self.offer() == offer
    }

    /// Same registration, new kind, reason and offer, nothing pending.
    fn to(self, kind: Kind, reason: u64, offer: u64) -> Word {
        Word((self.0 & REGISTERED) | (reason << REASON_SHIFT) | (offer << OFFER_SHIFT))
            .with_kind(kind)
    }

    fn with_pending(self, pending: Pending, reason: u64) -> Word {
        Word(
            (self.0 & !(PENDING_MASK | REASON_MASK))
                | ((pending as u64) << PENDING_SHIFT)
                | (reason << REASON_SHIFT),
        )
    }

    /// Where an agent goes when an offer, call or wrap-up is over: a pending
    /// logout or pause, else Available.
    fn settle(self) -> Word {
        match self.pending() {
            Pending::Logout => self.to(Kind::LoggedOut, 0, 0),
            Pending::Pause => self.to(Kind::Paused, self.reason_code(), 0),
            Pending::None => self.to(Kind::Available, 0, 0),
        }
    }

    pub fn login(self) -> Result<Word, Refusal> {
        match self.kind() {
            Kind::LoggedOut => Ok(self.to(Kind::Available, 0, 0)),
            // Logging in again cancels a logout that waits for the call.
            _ if self.pending() == Pending::Logout => Ok(self.with_pending(Pending::None, 0)),
            _ => Err(Refusal::AlreadyLoggedIn),
        }
    }

    pub fn logout(self) -> Result<(Word, Applied), Refusal> {
        match self.kind() {
            Kind::LoggedOut => Err(Refusal::NotLoggedIn),
            Kind::Available | Kind::Paused | Kind::WrapUp => {
                Ok((self.to(Kind::LoggedOut, 0, 0), Applied::Now))
            }
            Kind::Reserved | Kind::Ringing | Kind::Talking => {
                Ok((self.with_pending(Pending::Logout, 0), Applied::AfterCall))
            }
        }
    }

    pub fn pause(self, reason: &PauseReason) -> Result<(Word, Applied), Refusal> {
        let code = reason.code();
        match self.kind() {
            Kind::LoggedOut => Err(Refusal::NotLoggedIn),
            Kind::Available | Kind::Paused => Ok((self.to(Kind::Paused, code, 0), Applied::Now)),
            Kind::Reserved | Kind::Ringing | Kind::Talking | Kind::WrapUp => {
                Ok((self.with_pending(Pending::Pause, code), Applied::AfterCall))
            }
        }
    }

    pub fn unpause(self) -> Result<Word, Refusal> {
        match self.kind() {
            Kind::Paused => Ok(self.to(Kind::Available, 0, 0)),
            _ if self.pending() == Pending::Pause => Ok(self.with_pending(Pending::None, 0)),
            Kind::LoggedOut => Err(Refusal::NotLoggedIn),
            _ => Err(Refusal::NotPaused),
        }
    }

    /// Ends wrap-up early.
    pub fn ready(self) -> Result<Word, Refusal> {
        match self.kind() {
            Kind::WrapUp => Ok(self.settle()),
            Kind::LoggedOut => Err(Refusal::NotLoggedIn),
            _ => Err(Refusal::NotInWrapUp),
        }
    }

    pub fn register(self, registered: bool, login_on_register: bool) -> Word {
        let w = if registered {
            Word(self.0 | REGISTERED)
        } else {
            Word(self.0 & !REGISTERED)
        };
        if registered && login_on_register && w.kind() == Kind::LoggedOut {
            w.to(Kind::Available, 0, 0)
        } else {
            w
        }
    }

    pub fn claim(self, offer: u64) -> Result<Word, Refusal> {
        if self.offerable() {
            Ok(self.to(Kind::Reserved, 0, offer))
        } else {
            Err(Refusal::WrongState)
        }
    }

    pub fn ring(self, offer: u64) -> Result<Word, Refusal> {
        if self.on_offer(offer) {
            Ok(self.with_kind(Kind::Ringing))
        } else {
            Err(Refusal::WrongState)
        }
    }

    pub fn answer(self, offer: u64) -> Result<Word, Refusal> {
        if self.on_offer(offer) {
            Ok(self.with_kind(Kind::Talking))
        } else {
            Err(Refusal::WrongState)
        }
    }

    /// Takes back an answer whose caller was gone already.
    pub fn unanswer(self, offer: u64) -> Result<Word, Refusal> {
        if self.kind() == Kind::Talking && self.offer() == offer {
            Ok(self.settle())
        } else {
            Err(Refusal::WrongState)
        }
    }

    /// The agent did not take the offer; `no_answer_pause` after too many misses.
    pub fn fail(self, offer: u64, no_answer_pause: bool) -> Result<Word, Refusal> {
        if !self.on_offer(offer) {
            return Err(Refusal::WrongState);
        }
        if no_answer_pause && self.pending() != Pending::Logout {
            Ok(self.to(Kind::Paused, PauseReason::NoAnswer.code(), 0))
        } else {
            Ok(self.settle())
        }
    }

    /// The engine withdrew the offer (caller left, or another agent answered).
    pub fn cancel(self, offer: u64) -> Result<Word, Refusal> {
        if self.on_offer(offer) {
            Ok(self.settle())
        } else {
            Err(Refusal::WrongState)
        }
    }

    /// The call ended: wrap-up, or straight on when there is none.
    pub fn end_call(self, offer: u64, wrap_up: bool) -> Result<Word, Refusal> {
        if self.kind() != Kind::Talking || self.offer() != offer {
            return Err(Refusal::WrongState);
        }
        if wrap_up {
            Ok(self.with_kind(Kind::WrapUp))
        } else {
            Ok(self.settle())
        }
    }

    pub fn wrap_up_over(self, offer: u64) -> Result<Word, Refusal> {
        if self.kind() == Kind::WrapUp && self.offer() == offer {
            Ok(self.settle())
        } else {
            Err(Refusal::WrongState)
        }
    }
}

/// Settings of an agent that a spec reload may change.
#[derive(Debug, Clone)]
pub(crate) struct AgentConf {
    pub tenant: Arc<str>,
    pub wrap_up: Option<Duration>,
    pub max_missed_offers: Option<u32>,
}

/// What an agent is busy with, for snapshots.
#[derive(Debug, Clone)]
pub(crate) struct Current {
    pub offer: OfferId,
    pub call: CallKey,
    pub queue: Arc<str>,
}

/// One agent's runtime state. Shared by `Arc` between the topology, skill
/// groups, offers and timers; survives spec reloads.
#[derive(Debug)]
pub(crate) struct AgentRt {
    pub id: Arc<str>,
    /// Stable across reloads; orders round robin and breaks ties.
    pub ord: u32,
    pub conf: ArcSwap<AgentConf>,
    word: AtomicU64,
    /// Tick of the last state change.
    pub since: AtomicU64,
    /// Tick since which the agent is idle (longest-idle ranking).
    pub idle_since: AtomicU64,
    pub answered_today: AtomicU32,
    /// Nanoseconds.
    pub talk_today: AtomicU64,
    pub missed_in_row: AtomicU32,
    /// Why the agent's last failed offer failed (0: none).
    last_failure: AtomicU8,
    /// Text of an `Other` pause reason, current or pending.
    pub pause_text: ArcSwapOption<String>,
    pub current: ArcSwapOption<Current>,
    /// Set while a reload removes the agent, so a racing login is undone.
    pub retired: AtomicBool,
}

impl AgentRt {
    pub fn new(id: Arc<str>, ord: u32, conf: AgentConf) -> AgentRt {
        AgentRt {
            id,
            ord,
            conf: ArcSwap::from_pointee(conf),
            word: AtomicU64::new(Word::LOGGED_OUT.0),
            since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            answered_today: AtomicU32::new(0),
            talk_today: AtomicU64::new(0),
            missed_in_row: AtomicU32::new(0),
            last_failure: AtomicU8::new(0),
            pause_text: ArcSwapOption::empty(),
            current: ArcSwapOption::empty(),
            retired: AtomicBool::new(false),
        }
    }

    pub fn word(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    /// Applies `f` with compare-and-swap until it succeeds or refuses;
    /// returns the word before and after.
    pub fn update<T>(
        &self,
        mut f: impl FnMut(Word) -> Result<(Word, T), Refusal>,
    ) -> Result<(Word, Word, T), Refusal> {
        let mut old = self.word();
        loop {
            let (new, extra) = f(old)?;
            match self
                .word
                .compare_exchange_weak(old.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok((old, new, extra)),
                Err(actual) => old = Word(actual),
            }
        }
    }

    /// The state for snapshots, with the pause text resolved.
    pub fn state(&self, w: Word) -> AgentState {
        match w.kind() {
            Kind::LoggedOut => AgentState::LoggedOut,
            Kind::Available => AgentState::Available,
            Kind::Reserved => AgentState::Reserved,
            Kind::Ringing => AgentState::Ringing,
            Kind::Talking => AgentState::Talking,
            Kind::WrapUp => AgentState::WrapUp,
            Kind::Paused => AgentState::Paused(self.reason(w)),
        }
    }

    pub fn pending(&self, w: Word) -> Option<PendingChange> {
        match w.pending() {
            Pending::None => None,
            Pending::Logout => Some(PendingChange::Logout),
            Pending::Pause => Some(PendingChange::Pause(self.reason(w))),
        }
    }

    fn reason(&self, w: Word) -> PauseReason {
        let text = self.pause_text.load();
        PauseReason::from_code(w.reason_code(), text.as_deref().map(String::as_str))
    }

    pub fn note_failure(&self, failure: OfferFailure) {
        let code = match failure {
            OfferFailure::Timeout => 1,
            OfferFailure::Busy => 2,
            OfferFailure::Declined => 3,
            OfferFailure::Unreachable => 4,
            OfferFailure::NotPlaced => 5,
        };
        self.last_failure.store(code, Ordering::Relaxed);
    }

    pub fn last_failure(&self) -> Option<OfferFailure> {
        match self.last_failure.load(Ordering::Relaxed) {
            1 => Some(OfferFailure::Timeout),
            2 => Some(OfferFailure::Busy),
            3 => Some(OfferFailure::Declined),
            4 => Some(OfferFailure::Unreachable),
            5 => Some(OfferFailure::NotPlaced),
            _ => None,
        }
    }

    /// Forgets the current offer or call if it still is `offer`: by the time
    /// this runs, the agent may have been claimed for the next one.
    pub fn clear_current(&self, offer: u64) {
        let current = self.current.load();
        if current.as_ref().is_some_and(|c| c.offer.0 == offer) {
            self.current.compare_and_swap(&current, None);
        }
    }

    /// Remembers the text of an `Other` reason before the word names it.
    pub fn note_reason(&self, reason: &PauseReason) {
        if let PauseReason::Other(text) = reason {
            self.pause_text.store(Some(Arc::new(text.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available() -> Word {
        Word::LOGGED_OUT.register(true, false).login().unwrap()
    }

    #[test]
    fn only_a_registered_available_agent_can_be_claimed() {
        let w = Word::LOGGED_OUT;
        assert_eq!(w.claim(1), Err(Refusal::WrongState));
        let w = w.login().unwrap();
        assert_eq!(w.kind(), Kind::Available);
        assert!(!w.offerable(), "not registered yet");
        let w = w.register(true, false);
        let r = w.claim(7).unwrap();
        assert_eq!((r.kind(), r.offer()), (Kind::Reserved, 7));
        assert_eq!(r.claim(8), Err(Refusal::WrongState), "a claim is exclusive");
        assert!(r.registered());
    }

    #[test]
    fn login_on_register_logs_in_but_unregister_does_not_log_out() {
        let w = Word::LOGGED_OUT.register(true, true);
        assert_eq!(w.kind(), Kind::Available);
        assert!(w.offerable());
        let w = w.register(false, true);
        assert_eq!(w.kind(), Kind::Available);
        assert!(!w.offerable());
        let plain = Word::LOGGED_OUT.register(true, false);
        assert_eq!(plain.kind(), Kind::LoggedOut);
    }

    #[test]
    fn offer_lifecycle_binds_to_one_offer() {
        let w = available().claim(42).unwrap();
        assert_eq!(w.ring(41), Err(Refusal::WrongState));
        let w = w.ring(42).unwrap();
        assert_eq!(w.kind(), Kind::Ringing);
        let t = w.answer(42).unwrap();
        assert_eq!((t.kind(), t.offer()), (Kind::Talking, 42));
        assert_eq!(
            t.fail(42, false),
            Err(Refusal::WrongState),
            "answered already"
        );
        let wu = t.end_call(42, true).unwrap();
        assert_eq!(wu.kind(), Kind::WrapUp);
        assert_eq!(wu.wrap_up_over(41), Err(Refusal::WrongState), "stale timer");
        assert_eq!(wu.wrap_up_over(42).unwrap(), available());
        assert_eq!(t.end_call(42, false).unwrap(), available());
    }

    #[test]
    fn pause_and_logout_wait_for_the_call() {
        let talking = available().claim(3).unwrap().answer(3).unwrap();
        let (w, applied) = talking.pause(&PauseReason::Training).unwrap();
        assert_eq!(applied, Applied::AfterCall);
        assert_eq!(w.kind(), Kind::Talking);
        let wu = w.end_call(3, true).unwrap();
        assert_eq!(wu.pending(), Pending::Pause, "still pending during wrap-up");
        let after = wu.wrap_up_over(3).unwrap();
        assert_eq!(after.kind(), Kind::Paused);
        assert_eq!(after.reason_code(), PauseReason::Training.code());

        let (w, applied) = talking.logout().unwrap();
        assert_eq!(applied, Applied::AfterCall);
        assert_eq!(
            w.login().unwrap().pending(),
            Pending::None,
            "login cancels it"
        );
        assert_eq!(w.end_call(3, false).unwrap().kind(), Kind::LoggedOut);

        let (w, _) = talking.pause(&PauseReason::Break).unwrap();
        assert_eq!(w.unpause().unwrap().pending(), Pending::None);
    }

    #[test]
    fn missed_offer_can_pause_with_no_answer() {
        let reserved = available().claim(9).unwrap();
        assert_eq!(reserved.fail(9, false).unwrap(), available());
        let paused = reserved.fail(9, true).unwrap();
        assert_eq!(paused.kind(), Kind::Paused);
        assert_eq!(paused.reason_code(), PauseReason::NoAnswer.code());
        assert_eq!(paused.unpause().unwrap(), available());
    }

    #[test]
    fn refusals_name_the_problem() {
        assert_eq!(Word::LOGGED_OUT.logout(), Err(Refusal::NotLoggedIn));
        assert_eq!(available().login(), Err(Refusal::AlreadyLoggedIn));
        assert_eq!(available().unpause(), Err(Refusal::NotPaused));
        assert_eq!(available().ready(), Err(Refusal::NotInWrapUp));
        let (p, _) = available().pause(&PauseReason::Break).unwrap();
        assert!(!p.offerable());
        let (p2, _) = p.pause(&PauseReason::BackOffice).unwrap();
        assert_eq!(p2.reason_code(), PauseReason::BackOffice.code());
    }

    /// A word with every field other than the kind set, the reason and
    /// the offer id to all ones, so a kind that spilled over shows.
    fn busy_word() -> Word {
        let max_offer = u64::MAX >> OFFER_SHIFT;
        Word::LOGGED_OUT
            .register(true, false)
            .to(Kind::Talking, 0, max_offer)
            .with_pending(Pending::Logout, 0b111)
    }

    fn test_agent() -> AgentRt {
        AgentRt::new(
            "a".into(),
            0,
            AgentConf {
                tenant: "t".into(),
                wrap_up: None,
                max_missed_offers: None,
            },
        )
    }

    #[test]
    fn kind_codes_above_seven_round_trip_without_touching_the_other_fields() {
        let base = busy_word();
        for code in 0..=KIND_MASK {
            let w = base.with_kind_code(code);
            assert_eq!(w.kind_code(), code);
            assert!(w.registered(), "code {code} cleared the registration");
            assert_eq!(w.reason_code(), 0b111, "code {code} changed the reason");
            assert_eq!(w.pending(), Pending::Logout, "code {code} changed pending");
            assert_eq!(
                w.offer(),
                u64::MAX >> OFFER_SHIFT,
                "code {code} changed the offer"
            );
            assert_eq!(w.with_kind_code(base.kind_code()), base);
        }
        // The known kinds keep their codes and decode as before.
        for kind in [
            Kind::LoggedOut,
            Kind::Available,
            Kind::Reserved,
            Kind::Ringing,
            Kind::Talking,
            Kind::WrapUp,
            Kind::Paused,
        ] {
            assert_eq!(base.with_kind(kind).kind(), kind);
        }
    }

    #[test]
    fn a_state_above_seven_goes_through_the_compare_and_swap() {
        let agent = test_agent();
        agent.update(|w| w.login().map(|w| (w, ()))).unwrap();
        let (old, new, ()) = agent.update(|w| Ok((w.with_kind_code(12), ()))).unwrap();
        assert_eq!(old.kind(), Kind::Available);
        assert_eq!(new.kind_code(), 12);
        assert_eq!(agent.word().kind_code(), 12, "stored as written");
        // Eight threads race to move the agent out of state 12; the CAS lets
        // exactly one of them, as it does for a claim.
        let agent = Arc::new(agent);
        let winners: usize = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8u64)
                .map(|i| {
                    let agent = agent.clone();
                    s.spawn(move || {
                        agent
                            .update(|w| {
                                if w.kind_code() == 12 {
                                    Ok((w.with_kind_code(13 + i), ()))
                                } else {
                                    Err(Refusal::WrongState)
                                }
                            })
                            .is_ok()
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| usize::from(r.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1, "one thread takes the agent out of state 12");
        assert!((13..21).contains(&agent.word().kind_code()));
    }

    #[test]
    fn other_reason_text_is_kept_beside_the_word() {
        let agent = test_agent();
        let reason = PauseReason::Other("Teamrunde".into());
        agent.note_reason(&reason);
        agent.update(|w| w.login().map(|w| (w, ()))).unwrap();
        let (_, new, _) = agent.update(|w| w.pause(&reason)).unwrap();
        assert_eq!(agent.state(new), AgentState::Paused(reason));
    }
}
