//! The engine's deadlines in one lock-free ordered map.
//!
//! Entries are keyed `(tick, seq)`, so they fire in deadline order and, for
//! equal deadlines, in the order they were set: the events of
//! `handle_timeout` are deterministic for a given clock. Popping is a
//! `remove` on the entry, which exactly one thread wins. An entry whose
//! subject moved on (caller moved or gone, offer answered, wrap-up ended
//! early) is checked when it fires and ignored; entries of finished callers
//! and answered offers are removed eagerly so `poll_timeout` stays exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_skiplist::SkipMap;

use super::agent::AgentRt;
use super::offer::OfferRec;
use super::queue::{Caller, CallerKind, CallerWord, QueueRt, ServiceKey, TimerKey};
use super::service_level::announced_minutes;
use super::{Acd, Event, nanos};

/// How often a caller whose max wait passed while it rang is looked at
/// again if the daemon does not report the offer's end.
const RECHECK: Duration = Duration::from_secs(1);

/// What to do at a deadline.
#[derive(Debug, Clone)]
pub(crate) enum Timer {
    /// The caller reaches the queue's max wait.
    MaxWait {
        caller: Arc<Caller>,
        generation: u64,
    },
    /// Next periodic announcement.
    Announce {
        caller: Arc<Caller>,
        generation: u64,
    },
    /// The caller reaches a widening step: it changes lane, and the daemon
    /// wakes to dispatch with the wider tier.
    Widen {
        caller: Arc<Caller>,
        generation: u64,
    },
    /// Ring timeout of an offer.
    Ring { offer: Arc<OfferRec> },
    /// End of an agent's wrap-up after the call of `offer`.
    WrapUp { agent: Arc<AgentRt>, offer: u64 },
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    map: SkipMap<TimerKey, Timer>,
    seq: AtomicU64,
}

impl Timers {
    /// Reserves a key for a deadline (to record it before inserting).
    pub fn key(&self, at: u64) -> TimerKey {
        (at, self.seq.fetch_add(1, Ordering::Relaxed))
    }

    pub fn insert(&self, key: TimerKey, timer: Timer) {
        self.map.insert(key, timer);
    }

    pub fn add(&self, at: u64, timer: Timer) -> TimerKey {
        let key = self.key(at);
        self.insert(key, timer);
        key
    }

    pub fn remove(&self, key: &TimerKey) {
        self.map.remove(key);
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<u64> {
        self.map.front().map(|e| e.key().0)
    }

    /// Takes the earliest entry due at `now`, if any.
    pub fn pop_due(&self, now: u64) -> Option<(TimerKey, Timer)> {
        loop {
            let entry = self.map.front()?;
            if entry.key().0 > now {
                return None;
            }
            if entry.remove() {
                return Some((*entry.key(), entry.value().clone()));
            }
            // Another thread took it; look again.
        }
    }

    pub fn clear(&self) {
        self.map.clear();
    }
}

impl Acd {
    /// Fires every deadline up to `now`, in deadline order, and returns what
    /// the daemon must do. Afterwards call [`dispatch`](Acd::dispatch):
    /// widening steps and ended wrap-ups may allow new offers.
    pub fn handle_timeout(&self, now: Instant) -> Vec<Event> {
        let tick = self.clock.tick(now);
        // Announcements get their slot now and their position at the end,
        // counted for all of a queue's callers in one walk.
        let mut events: Vec<Option<Event>> = Vec::new();
        let mut announcements: Vec<Announcement> = Vec::new();
        while let Some((key, timer)) = self.timers.pop_due(tick) {
            match timer {
                Timer::MaxWait { caller, generation } => {
                    caller.forget_timer(&key);
                    if caller.generation.load(Ordering::Acquire) == generation {
                        events.push(self.max_wait_reached(&caller, tick));
                    }
                }
                Timer::Announce { caller, generation } => {
                    caller.forget_timer(&key);
                    if caller.generation.load(Ordering::Acquire) == generation
                        && let Some(queue) = self.announce_due(&caller, generation, key.0, tick)
                    {
                        announcements.push(Announcement {
                            slot: events.len(),
                            caller,
                            queue,
                        });
                        events.push(None);
                    }
                }
                Timer::Widen { caller, generation } => {
                    caller.forget_timer(&key);
                    if caller.generation.load(Ordering::Acquire) == generation {
                        self.widen(&caller, tick);
                    }
                }
                Timer::Ring { offer } => {
                    let o = offer.id.0;
                    if offer.caller.word() != CallerWord::offered(o) {
                        continue;
                    }
                    let agents: Vec<Arc<str>> = offer
                        .agents
                        .iter()
                        .filter(|a| a.word().on_offer(o))
                        .map(|a| a.id.clone())
                        .collect();
                    if !agents.is_empty() {
                        events.push(Some(Event::OfferTimeout {
                            offer: offer.id,
                            call: offer.caller.call,
                            queue: offer.queue.name.clone(),
                            agents,
                        }));
                    }
                }
                Timer::WrapUp { agent, offer } => {
                    if let Ok((_, new, ())) =
                        self.agent_cas(&agent, |w| w.wrap_up_over(offer).map(|n| (n, ())))
                    {
                        self.agent_released(&agent, offer, new, tick, true);
                        events.push(Some(Event::WrapUpEnded {
                            agent: agent.id.clone(),
                        }));
                    }
                }
            }
        }
        self.announce(&mut events, announcements);
        events.into_iter().flatten().collect()
    }

    fn max_wait_reached(&self, caller: &Arc<Caller>, tick: u64) -> Option<Event> {
        let word = caller.word();
        match word.kind() {
            CallerKind::Waiting => {
                let event = self.time_out_if_due(caller, tick);
                if event.is_none() && caller.word().kind() == CallerKind::Claimed {
                    // A dispatcher took it between our look and our CAS.
                    self.rearm_max_wait(caller, tick.saturating_add(1));
                }
                event
            }
            // A dispatcher or a move holds it for a moment: look again next tick.
            CallerKind::Claimed => {
                self.rearm_max_wait(caller, tick.saturating_add(1));
                None
            }
            // Ringing: `offer_failed` times it out if the offer fails; look
            // again when the ring timeout passed, in case nobody reports.
            CallerKind::Offered => {
                let ring_deadline = caller
                    .offer
                    .load()
                    .as_ref()
                    .map_or(0, |rec| rec.ring_timer.0);
                let at = if ring_deadline > tick {
                    ring_deadline
                } else {
                    tick.saturating_add(RECHECK.as_nanos() as u64)
                };
                self.rearm_max_wait(caller, at);
                None
            }
            CallerKind::Connected | CallerKind::Gone => None,
        }
    }

    /// Moves a waiting caller to the lane of its widening step.
    fn widen(&self, caller: &Arc<Caller>, tick: u64) {
        let word = caller.word();
        let claimed =
            word.kind() == CallerKind::Waiting && caller.cas(word, CallerWord::CLAIMED).is_ok();
        if claimed {
            self.restep(caller, tick);
            self.release_claim(caller, tick);
            return;
        }
        match caller.word().kind() {
            // Held for a moment by someone else: try again next tick.
            CallerKind::Claimed | CallerKind::Waiting => {
                let generation = caller.generation.load(Ordering::Acquire);
                let key = self.timers.add(
                    tick.saturating_add(1),
                    Timer::Widen {
                        caller: caller.clone(),
                        generation,
                    },
                );
                caller.add_timer(key);
            }
            // Ringing: it changes lane if it comes back from the offer.
            CallerKind::Offered | CallerKind::Connected | CallerKind::Gone => {}
        }
    }

    fn rearm_max_wait(&self, caller: &Arc<Caller>, at: u64) {
        let generation = caller.generation.load(Ordering::Acquire);
        let key = self.timers.add(
            at,
            Timer::MaxWait {
                caller: caller.clone(),
                generation,
            },
        );
        caller.add_timer(key);
    }

    /// Re-arms a caller's announcement timer; the caller's queue if it is
    /// waiting (not ringing) and should hear one now.
    fn announce_due(
        &self,
        caller: &Arc<Caller>,
        generation: u64,
        scheduled: u64,
        tick: u64,
    ) -> Option<Arc<QueueRt>> {
        let queue = caller.queue.load_full();
        let period = nanos(queue.conf.load().announce_every);
        let kind = caller.word().kind();
        if period == 0 || matches!(kind, CallerKind::Connected | CallerKind::Gone) {
            return None;
        }
        // Keep the rhythm of the schedule even if the daemon woke late.
        let mut next = scheduled.saturating_add(period);
        while next <= tick {
            next = next.saturating_add(period);
        }
        let key = self.timers.add(
            next,
            Timer::Announce {
                caller: caller.clone(),
                generation,
            },
        );
        caller.add_timer(key);
        // Ringing at an agent right now: skip this one.
        (kind == CallerKind::Waiting).then_some(queue)
    }

    /// Fills the announcements' slots: positions per queue in one walk.
    fn announce(&self, events: &mut [Option<Event>], mut due: Vec<Announcement>) {
        due.sort_by(|a, b| {
            (&a.queue.name, a.caller.service_key()).cmp(&(&b.queue.name, b.caller.service_key()))
        });
        for group in due.chunk_by(|a, b| Arc::ptr_eq(&a.queue, &b.queue)) {
            let queue = &group[0].queue;
            let conf = queue.conf.load();
            let keys: Vec<ServiceKey> = group.iter().map(|a| a.caller.service_key()).collect();
            let positions = match keys[..] {
                [one] => vec![queue.position_of(&one)],
                _ => queue.positions_of(&keys),
            };
            for (a, position) in group.iter().zip(positions) {
                let expected = super::waiting::estimate(queue, &conf, position);
                let last = a.caller.last_announced.load(Ordering::Relaxed);
                let told = (last == 0 || position < last).then(|| {
                    a.caller.last_announced.store(position, Ordering::Relaxed);
                    position
                });
                events[a.slot] = Some(Event::Announce {
                    call: a.caller.call,
                    queue: queue.name.clone(),
                    position: told,
                    expected_wait_minutes: announced_minutes(expected),
                });
            }
        }
    }
}

/// An announcement due in this `handle_timeout`, waiting for its position.
struct Announcement {
    slot: usize,
    caller: Arc<Caller>,
    queue: Arc<QueueRt>,
}
