//! Callers entering, moving between and leaving queues.

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;

use super::queue::{Caller, CallerKind, CallerWord, Key, LANES, QueueRt};
use super::service_level::{Outcome, Segment, bump, expected_wait};
use super::timers::Timer;
use super::topology::QueueConf;
use super::{Acd, Admission, CallError, CallKey, Cancel, Event, OfferId, RejectReason, nanos};

impl Acd {
    /// A caller reaches `queue` with its own `priority` (higher first; the
    /// queue's base priority is added). Admission checks max queue length,
    /// max expected wait and the empty-queue rule.
    pub fn enqueue(
        &self,
        call: CallKey,
        queue: &str,
        priority: i32,
        now: Instant,
    ) -> Result<Admission, CallError> {
        self.enqueue_since(call, queue, priority, now, now)
    }

    /// Like [`enqueue`](Acd::enqueue) for a caller who has been in line since
    /// `arrival` elsewhere (e.g. after [`Event::WaitTimeout`] routed it to
    /// this queue): it is ordered by `arrival`, so it does not start behind
    /// callers who came later. Its wait in this queue counts from `now`.
    pub fn enqueue_since(
        &self,
        call: CallKey,
        queue: &str,
        priority: i32,
        arrival: Instant,
        now: Instant,
    ) -> Result<Admission, CallError> {
        self.enqueue_segment(call, queue, priority, arrival, None, now)
    }

    /// Like [`enqueue_since`](Acd::enqueue_since) for a caller that every
    /// queue it passes through also counts in `segment` (see [`Segment`]).
    pub fn enqueue_segment(
        &self,
        call: CallKey,
        queue: &str,
        priority: i32,
        arrival: Instant,
        segment: Option<Segment>,
        now: Instant,
    ) -> Result<Admission, CallError> {
        let topology = self.topology.load();
        let queue = topology
            .queue(queue)
            .ok_or_else(|| CallError::UnknownQueue(queue.to_owned()))?
            .clone();
        let conf = queue.conf.load_full();
        let tick = self.clock.tick(now);
        let arrival = self.clock.tick(arrival).min(tick);
        let effective = i64::from(priority) + i64::from(conf.base_priority);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let key: Key = (0, (Reverse(effective), arrival, seq));
        if self.calls.contains_key(&call) {
            return Err(CallError::AlreadyQueued(call));
        }
        let (position, expected) = match self.admit(&queue, &conf, &key) {
            Ok(admitted) => admitted,
            Err(reason) => return Ok(Admission::Rejected(reason)),
        };
        let caller = Arc::new(Caller::new(
            call,
            seq,
            arrival,
            (priority, effective),
            tick,
            queue.clone(),
            segment,
        ));
        match self.calls.entry(call) {
            Entry::Occupied(_) => return Err(CallError::AlreadyQueued(call)),
            Entry::Vacant(v) => {
                v.insert(caller.clone());
            }
        }
        self.schedule_caller(&caller, &conf, tick);
        queue.insert(key, caller.clone());
        if queue.retired.load(Ordering::SeqCst) {
            // A reload is removing this queue right now.
            self.drop_claimed(&caller);
            return Err(CallError::UnknownQueue(queue.name.to_string()));
        }
        bump(&queue.stats.counters.entered);
        if let Some(segment) = &caller.segment {
            bump(&queue.segment(segment).counters.entered);
        }
        self.release_claim(&caller, tick);
        Ok(Admission::Queued {
            position,
            expected_wait: expected,
        })
    }

    /// Moves a waiting caller to another queue (overflow), keeping its
    /// original arrival so it does not start behind callers who came later;
    /// `priority` replaces its own priority if given. The target's admission
    /// rules apply: if it rejects, the caller stays where it was.
    pub fn move_caller(
        &self,
        call: CallKey,
        to: &str,
        priority: Option<i32>,
        now: Instant,
    ) -> Result<Admission, CallError> {
        let caller = self.caller(call)?;
        let topology = self.topology.load();
        let target = topology
            .queue(to)
            .ok_or_else(|| CallError::UnknownQueue(to.to_owned()))?
            .clone();
        let word = caller.word();
        let claimed = match word.kind() {
            CallerKind::Waiting => caller.cas(word, CallerWord::CLAIMED),
            _ => Err(word),
        };
        if let Err(actual) = claimed {
            return Err(match actual.kind() {
                // A waiting word here means it moved between look and claim.
                CallerKind::Claimed | CallerKind::Offered | CallerKind::Waiting => {
                    CallError::BeingOffered(call)
                }
                CallerKind::Connected => CallError::Connected(call),
                CallerKind::Gone => CallError::UnknownCall(call),
            });
        }
        let tick = self.clock.tick(now);
        // Ours now: its queue cannot change under us.
        let source = caller.queue.load_full();
        if Arc::ptr_eq(&source, &target) {
            self.release_claim(&caller, tick);
            return Err(CallError::SameQueue(call, to.to_owned()));
        }
        let conf = target.conf.load_full();
        let own = priority.unwrap_or_else(|| caller.own_priority.load(Ordering::Relaxed));
        let effective = i64::from(own) + i64::from(conf.base_priority);
        let new_key: Key = (0, (Reverse(effective), caller.arrival, caller.seq));
        let (position, expected) = match self.admit(&target, &conf, &new_key) {
            Ok(admitted) => admitted,
            Err(reason) => {
                self.release_claim(&caller, tick);
                return Ok(Admission::Rejected(reason));
            }
        };
        target.insert(new_key, caller.clone());
        if target.retired.load(Ordering::SeqCst) {
            target.remove(&new_key);
            self.release_claim(&caller, tick);
            return Err(CallError::UnknownQueue(to.to_owned()));
        }
        let old_key = caller.key();
        for key in caller.take_timers() {
            self.timers.remove(&key);
        }
        caller.generation.fetch_add(1, Ordering::AcqRel);
        caller.own_priority.store(own, Ordering::Relaxed);
        caller.priority.store(effective, Ordering::Release);
        caller.step.store(0, Ordering::Release);
        caller.entered.store(tick, Ordering::Release);
        caller.last_announced.store(0, Ordering::Relaxed);
        caller.last_failed.store(u32::MAX, Ordering::Relaxed);
        caller.queue.store(target.clone());
        source.remove(&old_key);
        bump(&source.stats.counters.moved_out);
        bump(&target.stats.counters.entered);
        if let Some(segment) = &caller.segment {
            bump(&source.segment(segment).counters.moved_out);
            bump(&target.segment(segment).counters.entered);
        }
        self.schedule_caller(&caller, &conf, tick);
        self.release_claim(&caller, tick);
        Ok(Admission::Queued {
            position,
            expected_wait: expected,
        })
    }

    /// The caller hung up before being answered. Counts as abandoned;
    /// returns the legs to cancel if it was being offered.
    pub fn abandon(&self, call: CallKey, now: Instant) -> Result<Option<Cancel>, CallError> {
        let caller = self.caller(call)?;
        let tick = self.clock.tick(now);
        loop {
            let word = caller.word();
            match word.kind() {
                CallerKind::Waiting => {
                    if caller.cas(word, CallerWord::GONE).is_ok() {
                        let waited = caller.waited(tick);
                        self.finish(&caller, tick, Some(Outcome::Abandoned { waited }));
                        return Ok(None);
                    }
                }
                CallerKind::Claimed => {
                    if word.abandon_requested() {
                        // Reported already; it ends once.
                        return Err(CallError::UnknownCall(call));
                    }
                    // Its claimer finishes it when releasing the claim.
                    if caller.cas(word, word.with_abandon()).is_ok() {
                        return Ok(None);
                    }
                }
                CallerKind::Offered => {
                    if caller.cas(word, CallerWord::GONE).is_ok() {
                        let offer = word.offer();
                        let agents = self.withdraw_offer(&caller, offer, tick);
                        let waited = caller.waited(tick);
                        self.finish(&caller, tick, Some(Outcome::Abandoned { waited }));
                        return Ok(Some(Cancel {
                            offer: OfferId(offer),
                            agents,
                        }));
                    }
                }
                CallerKind::Connected => return Err(CallError::Connected(call)),
                CallerKind::Gone => return Err(CallError::UnknownCall(call)),
            }
        }
    }

    /// An answered call ended (either side hung up): the agent goes into
    /// wrap-up (or straight back when its wrap-up is zero).
    pub fn call_ended(&self, call: CallKey, now: Instant) -> Result<Vec<Event>, CallError> {
        let caller = self.caller(call)?;
        let word = caller.word();
        if word.kind() != CallerKind::Connected {
            return Err(CallError::NotConnected(call));
        }
        if caller.cas(word, CallerWord::GONE).is_err() {
            // Only one report of the end wins.
            return Err(CallError::UnknownCall(call));
        }
        let tick = self.clock.tick(now);
        let rec = caller.offer.swap(None);
        self.calls.remove_if(&call, |_, c| Arc::ptr_eq(c, &caller));
        let Some(rec) = rec else {
            return Ok(Vec::new());
        };
        let answered_by = rec.answered_by.load(Ordering::Acquire);
        let Some(agent) = rec.agents.iter().find(|a| a.ord == answered_by) else {
            return Ok(Vec::new());
        };
        let talk =
            Duration::from_nanos(tick.saturating_sub(rec.answered_at.load(Ordering::Acquire)));
        let queue_conf = rec.queue.conf.load();
        let wrap_up = agent.conf.load().wrap_up.unwrap_or(queue_conf.wrap_up);
        let offer = rec.id.0;
        let ended = self.agent_cas(agent, |w| {
            w.end_call(offer, !wrap_up.is_zero()).map(|n| (n, ()))
        });
        agent.talk_today.fetch_add(nanos(talk), Ordering::Relaxed);
        if let Ok((_, new, ())) = ended {
            if wrap_up.is_zero() {
                self.agent_released(agent, offer, new, tick, true);
            } else {
                agent.since.store(tick, Ordering::Release);
                self.timers.add(
                    tick.saturating_add(nanos(wrap_up)),
                    Timer::WrapUp {
                        agent: agent.clone(),
                        offer,
                    },
                );
            }
        }
        rec.queue
            .stats
            .record_handle_time(talk + wrap_up, queue_conf.handle_time_samples);
        Ok(vec![Event::CallEnded {
            call,
            queue: rec.queue.name.clone(),
            agent: agent.id.clone(),
            talk,
        }])
    }

    pub(super) fn caller(&self, call: CallKey) -> Result<Arc<Caller>, CallError> {
        self.calls
            .get(&call)
            .map(|c| c.value().clone())
            .ok_or(CallError::UnknownCall(call))
    }

    /// Admission rules of a queue for a caller with `key`; the position and
    /// estimate if admitted. Counts rejections.
    fn admit(
        &self,
        queue: &QueueRt,
        conf: &QueueConf,
        key: &Key,
    ) -> Result<(u32, Duration), RejectReason> {
        let counters = &queue.stats.counters;
        let (logged_in, free) = staffing(conf);
        if logged_in == 0 && !conf.join_empty {
            bump(&counters.rejected_no_agents);
            return Err(RejectReason::NoAgents);
        }
        if conf
            .max_waiting
            .is_some_and(|max| queue.callers.len() >= max)
        {
            bump(&counters.rejected_full);
            return Err(RejectReason::QueueFull);
        }
        let position = queue.position_of(&key.1);
        let expected = estimate_with(queue, conf, position, (logged_in, free));
        if conf.max_expected_wait.is_some_and(|max| expected > max) {
            bump(&counters.rejected_wait_too_long);
            return Err(RejectReason::WaitTooLong);
        }
        Ok((position, expected))
    }

    /// Sets the caller's deadlines in its (new) queue, counted from `entered`.
    fn schedule_caller(&self, caller: &Arc<Caller>, conf: &QueueConf, entered: u64) {
        let generation = caller.generation.load(Ordering::Acquire);
        if let Some(max_wait) = conf.max_wait {
            let key = self.timers.add(
                entered.saturating_add(nanos(max_wait)),
                Timer::MaxWait {
                    caller: caller.clone(),
                    generation,
                },
            );
            caller.add_timer(key);
        }
        if !conf.announce_every.is_zero() {
            let key = self.timers.add(
                entered.saturating_add(nanos(conf.announce_every)),
                Timer::Announce {
                    caller: caller.clone(),
                    generation,
                },
            );
            caller.add_timer(key);
        }
        for after in &conf.steps {
            let key = self.timers.add(
                entered.saturating_add(nanos(*after)),
                Timer::Widen {
                    caller: caller.clone(),
                    generation,
                },
            );
            caller.add_timer(key);
        }
    }

    /// Puts a caller its owner holds (claimed) into the lane of the widening
    /// step it has reached.
    pub(super) fn restep(&self, caller: &Arc<Caller>, tick: u64) {
        let queue = caller.queue.load_full();
        let step = queue
            .conf
            .load()
            .step_at(caller.waited(tick))
            .min(LANES - 1) as u8;
        let old = caller.key();
        if step != old.0 {
            queue.insert((step, old.1), caller.clone());
            caller.step.store(step, Ordering::Release);
            queue.remove(&old);
        }
    }

    /// Undoes an enqueue that has not been released yet (no figures).
    fn drop_claimed(&self, caller: &Arc<Caller>) {
        let word = caller.word();
        let _ = caller.cas(word, CallerWord::GONE);
        self.finish(caller, 0, None);
    }
}

/// Logged-in and currently offerable members of a queue.
fn staffing(conf: &QueueConf) -> (usize, u32) {
    conf.members.iter().fold((0, 0), |(logged_in, free), a| {
        let w = a.word();
        (
            logged_in + usize::from(w.logged_in()),
            free + u32::from(w.offerable()),
        )
    })
}

/// Expected wait of the caller at `position`: the callers up to it that
/// free agents cannot take at once, times the queue's recent handle time
/// (talk + wrap-up), spread over the logged-in eligible agents.
pub(super) fn estimate(queue: &QueueRt, conf: &QueueConf, position: u32) -> Duration {
    estimate_with(queue, conf, position, staffing(conf))
}

fn estimate_with(
    queue: &QueueRt,
    conf: &QueueConf,
    position: u32,
    (logged_in, free): (usize, u32),
) -> Duration {
    let ahead = position.saturating_sub(free);
    if ahead == 0 {
        return Duration::ZERO;
    }
    expected_wait(ahead, queue.stats.handle_time(conf.handle_time), logged_in)
}
