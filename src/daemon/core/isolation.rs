//! An internal error in one call ends that call, never the daemon.
//!
//! Every input is handled inside [`Core::isolated`]: a panic while
//! handling it (a bug: an index out of range, an `unwrap` on what "cannot
//! happen") is caught at that boundary. The call the handling was in
//! ([`Core::enter`] notes it as handling moves into a call) is then ended
//! the ordinary way, with a BYE if it was answered or a 500 to its INVITE
//! if not, releasing its port, slot, ACD entry and agent legs; the error
//! is logged with the call's id and counted in
//! `zentrale_internal_errors_total`. Every other call carries on. A panic
//! outside any call (a REGISTER, an OPTIONS, the ACD's dispatch) drops
//! that input and is logged and counted the same way.
//!
//! Why `AssertUnwindSafe` is sound here: the state a panic can leave
//! half-updated is the call's own (its `Session`, its legs, its entries
//! in the core's maps), and that call is ended and its whole state
//! dropped. The shared parts (transactions, registrar, digest server,
//! ACD) are changed by their own methods, which call back into no call
//! code, so a panic in a call's handling never interrupts one of them
//! halfway; the core's lookups all tolerate an index that names a call
//! which is gone. If ending the call panics too, its entry is removed
//! without ceremony ([`Core::forget_call`]): no message goes out to the
//! caller, whose timers end its side; its queue place and agent legs are
//! released as a normal end releases them, if that does not fail too.
//!
//! This needs `panic = "unwind"` (Rust's default; `Cargo.toml` sets no
//! other): with `abort`, a bug ends the process as before.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use tracing::error;

use super::Core;
use super::index::SessionId;
use crate::call::{Action, EndReason};
use crate::sip::message::{StatusCode, response, with_to_tag};
use crate::sip::transaction::Transmit;

impl Core {
    /// Runs `handle` (one input, or one call's share of a timer turn) so
    /// that a panic in it ends only the call it was in. See the module
    /// docs.
    pub(super) fn isolated(
        &mut self,
        now: Instant,
        out: &mut Vec<Transmit>,
        handle: impl FnOnce(&mut Core, &mut Vec<Transmit>),
    ) {
        self.handling = None;
        let result = catch_unwind(AssertUnwindSafe(|| handle(self, out)));
        if let Err(panic) = result {
            self.contain(panic.as_ref(), now, out);
        }
        self.handling = None;
    }

    /// A test hook: handling an input for the call armed with
    /// [`Core::fail_call`] panics here, after the call's state began to
    /// change. Compiled into tests only.
    #[cfg(test)]
    pub(super) fn fault_point(&self, sid: SessionId) {
        let call_id = self.caller(sid).map(|c| &*c.call.dialog.call_id);
        if call_id.is_some() && self.fault.as_deref() == call_id {
            panic!("injected fault in call {}", call_id.unwrap_or_default());
        }
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(super) fn fault_point(&self, _sid: SessionId) {}

    /// Makes the handling of the next in-dialog request of call `call_id`
    /// panic (tests of this module).
    #[cfg(test)]
    pub(super) fn fail_call(&mut self, call_id: &str) {
        self.fault = Some(call_id.to_owned());
    }

    fn contain(&mut self, panic: &(dyn Any + Send), now: Instant, out: &mut Vec<Transmit>) {
        let what = panic_message(panic);
        self.metrics.internal_errors.inc();
        let handling = self.handling.take();
        let Some((sid, call_id)) = handling.and_then(|sid| {
            self.caller(sid)
                .map(|c| (sid, c.call.dialog.call_id.clone()))
        }) else {
            error!(
                error = what,
                "internal error while handling an input; the input is dropped"
            );
            return;
        };
        error!(%call_id, error = what, "internal error in a call; the call is ended, the others go on");
        #[cfg(test)]
        {
            self.fault = None;
        }
        let ended = catch_unwind(AssertUnwindSafe(|| self.end_after_error(sid, now, out)));
        if ended.is_err() {
            error!(%call_id, "ending the call failed as well; its state is dropped");
            self.forget_call(sid, now, out);
        }
    }

    /// Ends a call after an internal error: BYE when answered, 500 to the
    /// INVITE when not; released like any other ended call.
    fn end_after_error(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.as_mut()) else {
            return;
        };
        let mut actions = c.call.hang_up(EndReason::InternalError);
        if let Some(i) = actions.iter().position(|a| *a == Action::Terminate487) {
            // Not answered yet: say what happened (500), not "terminated".
            actions.remove(i);
            let resp = with_to_tag(
                response(&c.invite, StatusCode::ServerInternalError),
                &c.call.dialog.local_tag,
            );
            let key = c.call.invite_key.clone();
            self.respond(&key, &resp, now, out);
        }
        self.execute(sid, actions, now, out);
    }

    /// Drops a call's caller leg without a word to its caller: the last
    /// resort when even ending it failed.
    pub(super) fn forget_call(&mut self, sid: SessionId, now: Instant, out: &mut Vec<Transmit>) {
        let Some(c) = self.sessions.get_mut(&sid).and_then(|s| s.caller.take()) else {
            return;
        };
        self.callers -= 1;
        self.release_slot(sid);
        // Its place in the queue and its agent legs go too, as far as that
        // works: a caller the ACD kept would be offered to agents for nobody.
        let gone = catch_unwind(AssertUnwindSafe(|| self.caller_gone(sid, now, out)));
        if gone.is_err() {
            error!(call_id = %c.call.dialog.call_id, "releasing its queue place and agent legs failed as well");
        }
        self.end_session(sid, now);
        self.drop_caller(sid, &c, now);
        self.metrics.calls_active.set(self.callers as i64);
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}
