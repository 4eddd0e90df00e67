//! Waking a thread that sleeps in `epoll_wait` (a [`mio::Poll`]) from
//! other threads, with at most one `eventfd` write per sleep.
//!
//! Why: the core thread sleeps in its own epoll so that a datagram costs
//! one wake-up and no runtime in between. Everything else that reaches it
//! (TCP messages, media events, API changes, reloads) is put in a channel
//! first and then rings the [`Doorbell`]. A burst of rings while the owner
//! is busy costs one `eventfd` write, not one per ring: the owner answers
//! the door before it empties its channels, and only the first ring after
//! that writes.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use zentrale::doorbell::Doorbell;
//!
//! let mut poll = mio::Poll::new().unwrap();
//! let bell = Arc::new(Doorbell::new(poll.registry(), mio::Token(7)).unwrap());
//! let (tx, rx) = std::sync::mpsc::channel();
//!
//! let ringer = bell.clone();
//! std::thread::spawn(move || {
//!     tx.send("hello").unwrap(); // first the message,
//!     ringer.ring(); //             then the ring
//! });
//!
//! let mut events = mio::Events::with_capacity(4);
//! poll.poll(&mut events, Some(Duration::from_secs(5))).unwrap();
//! assert_eq!(events.iter().next().map(|e| e.token()), Some(mio::Token(7)));
//! bell.answer(); //                  first answer,
//! assert_eq!(rx.try_recv(), Ok("hello")); // then look
//! ```

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// A [`mio::Waker`] that writes only when the owner has answered since
/// the last write. Ring after handing over; answer before looking.
#[derive(Debug)]
pub struct Doorbell {
    waker: mio::Waker,
    /// Rung since the owner last answered: a wake-up is on its way.
    rung: AtomicBool,
}

impl Doorbell {
    /// A doorbell that makes `registry`'s poll return `token`.
    pub fn new(registry: &mio::Registry, token: mio::Token) -> io::Result<Doorbell> {
        Ok(Doorbell {
            waker: mio::Waker::new(registry, token)?,
            rung: AtomicBool::new(false),
        })
    }

    /// Wakes the owner, unless a ring since its last [`answer`](Self::answer)
    /// already does. Call it after whatever the owner should find is in
    /// place.
    pub fn ring(&self) {
        // AcqRel: what the ringer handed over before this is visible to the
        // owner's `answer`, which reads this write or a later one.
        if !self.rung.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            // Only when the eventfd is broken. Let the next ring try again
            // rather than stay silent for good.
            self.rung.store(false, Ordering::Release);
            tracing::warn!(error = %e, "doorbell: wake-up failed");
        }
    }

    /// Called by the owner when its poll returned the doorbell's token,
    /// before it looks at what was handed over: a ring from then on wakes
    /// it again.
    pub fn answer(&self) {
        // A read-modify-write, not a store: it orders the owner's later
        // reads of the handover after every ring it answers.
        self.rung.swap(false, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn woken(poll: &mut mio::Poll, within: Duration) -> bool {
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(within)).unwrap();
        !events.is_empty()
    }

    #[test]
    fn rings_before_an_answer_wake_once() {
        let mut poll = mio::Poll::new().unwrap();
        let bell = Doorbell::new(poll.registry(), mio::Token(1)).unwrap();
        bell.ring();
        bell.ring();
        bell.ring();
        assert!(woken(&mut poll, Duration::from_secs(5)));
        // The second and third ring wrote nothing: no second wake-up.
        assert!(!woken(&mut poll, Duration::from_millis(50)));
    }

    #[test]
    fn a_ring_after_the_answer_wakes_again() {
        let mut poll = mio::Poll::new().unwrap();
        let bell = Doorbell::new(poll.registry(), mio::Token(1)).unwrap();
        bell.ring();
        assert!(woken(&mut poll, Duration::from_secs(5)));
        bell.answer();
        bell.ring();
        assert!(woken(&mut poll, Duration::from_secs(5)));
        // Without an answer the bell stays quiet: the owner has not looked.
        bell.ring();
        assert!(!woken(&mut poll, Duration::from_millis(50)));
    }

    #[test]
    fn no_handover_is_missed_across_threads() {
        // A ringer hands over numbers as fast as it can; the owner answers,
        // then drains, then sleeps. Every number must be seen, and the owner
        // must never sleep through a handover (the poll would time out).
        let mut poll = mio::Poll::new().unwrap();
        let bell = Arc::new(Doorbell::new(poll.registry(), mio::Token(1)).unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<u32>();
        const N: u32 = 20_000;
        let ringer = bell.clone();
        let producer = std::thread::spawn(move || {
            for i in 0..N {
                tx.send(i).unwrap();
                ringer.ring();
            }
        });
        let mut events = mio::Events::with_capacity(4);
        let mut next = 0;
        while next < N {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(!events.is_empty(), "slept through a ring at {next}");
            bell.answer();
            while let Ok(i) = rx.try_recv() {
                assert_eq!(i, next);
                next += 1;
            }
        }
        producer.join().unwrap();
    }
}
