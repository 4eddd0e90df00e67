//! Matching free agents to waiting callers, and the life of an offer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_skiplist::map::Range;

use super::agent::{AgentRt, Current, Kind, PauseReason};
use super::offer::OfferRec;
use super::queue::{Caller, CallerKind, CallerWord, FIRST, Key, QueueRt, ServiceKey};
use super::service_level::{Outcome, bump};
use super::strategy::{Candidate, Rank, Strategy, rank};
use super::timers::Timer;
use super::topology::{QueueConf, Tier};
use super::{Acd, Event, Offer, OfferError, OfferFailure, OfferId, nanos};

/// A claim whose agent was taken between scan and CAS is retried with a
/// fresh scan this often before the caller is left for the next dispatch.
const CLAIM_RETRIES: usize = 16;

/// The next candidate caller of one lane in a dispatch pass.
struct Head {
    service: ServiceKey,
    caller: Arc<Caller>,
    /// The waiting word seen: the claim fails if the caller moved since.
    word: CallerWord,
}

type LaneIter<'a> = Range<'a, Key, std::ops::Range<Key>, Key, Arc<Caller>>;

/// One widening lane of a queue in a dispatch pass.
struct Lane<'a> {
    /// The tier its callers accept (lanes beyond the tiers use the last).
    tier: usize,
    iter: LaneIter<'a>,
    head: Option<Head>,
}

impl Lane<'_> {
    fn advance(&mut self) {
        self.head = None;
        for entry in self.iter.by_ref() {
            let caller = entry.value();
            let word = caller.word();
            if word.kind() == CallerKind::Waiting {
                self.head = Some(Head {
                    service: entry.key().1,
                    caller: caller.clone(),
                    word,
                });
                return;
            }
        }
    }
}

/// One queue's lanes in a dispatch pass.
struct Cursor<'a> {
    queue: &'a Arc<QueueRt>,
    conf: Arc<QueueConf>,
    lanes: Vec<Lane<'a>>,
    /// Highest tier for which no agent was free: callers of that tier or a
    /// narrower one cannot be served in this pass either (tiers only grow).
    failed_tier: Option<usize>,
}

impl<'a> Cursor<'a> {
    fn new(queue: &'a Arc<QueueRt>) -> Cursor<'a> {
        let conf = queue.conf.load_full();
        let last_tier = conf.tiers.len() - 1;
        let lanes = queue
            .lanes()
            .map(|lane| {
                let mut l = Lane {
                    tier: usize::from(lane).min(last_tier),
                    iter: queue.callers.range((lane, FIRST)..(lane + 1, FIRST)),
                    head: None,
                };
                l.advance();
                l
            })
            .collect();
        Cursor {
            queue,
            conf,
            lanes,
            failed_tier: None,
        }
    }

    /// The lane whose head comes first in service order.
    fn best(&self) -> Option<(ServiceKey, usize)> {
        self.lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| self.failed_tier.is_none_or(|f| l.tier > f))
            .filter_map(|(i, l)| l.head.as_ref().map(|h| (h.service, i)))
            .min()
    }
}

enum Attempt {
    Offered(Offer),
    /// No eligible agent was free.
    NoAgent,
    /// Somebody else acted on the caller first.
    Taken,
}

impl Acd {
    /// Matches free agents to waiting callers and returns the offers to ring.
    ///
    /// Callers are considered in global service order (priority descending,
    /// arrival ascending) across all queues, each served by its queue's
    /// strategy from the agents of its current widening tier. Each agent and
    /// caller is claimed by compare-and-swap, so concurrent calls never
    /// produce two offers for one agent or one caller.
    pub fn dispatch(&self, now: Instant) -> Vec<Offer> {
        let mut offers = Vec::new();
        if self.offerable.load(Ordering::Acquire) <= 0 {
            return offers;
        }
        let tick = self.clock.tick(now);
        let topology = self.topology.load_full();
        let mut cursors: Vec<Cursor<'_>> = topology
            .queues
            .iter()
            .filter(|q| !q.callers.is_empty())
            .map(Cursor::new)
            .collect();
        while self.offerable.load(Ordering::Acquire) > 0 {
            let best = cursors
                .iter()
                .enumerate()
                .filter_map(|(q, c)| c.best().map(|(key, lane)| (key, q, lane)))
                .min();
            let Some((_, q, l)) = best else { break };
            let cursor = &mut cursors[q];
            let lane = &mut cursor.lanes[l];
            let Some(head) = lane.head.take() else { break };
            let tier = lane.tier;
            match self.try_offer(cursor.queue, &cursor.conf, &head, tier, tick) {
                Attempt::Offered(offer) => offers.push(offer),
                Attempt::NoAgent => {
                    cursor.failed_tier = Some(cursor.failed_tier.map_or(tier, |f| f.max(tier)));
                }
                Attempt::Taken => {}
            }
            cursor.lanes[l].advance();
        }
        offers
    }

    fn try_offer(
        &self,
        queue: &Arc<QueueRt>,
        conf: &QueueConf,
        head: &Head,
        tier: usize,
        tick: u64,
    ) -> Attempt {
        let caller = &head.caller;
        if caller.cas(head.word, CallerWord::CLAIMED).is_err() {
            return Attempt::Taken;
        }
        let tier = &conf.tiers[tier];
        let offer = self.next_offer.fetch_add(1, Ordering::Relaxed);
        let avoid = caller.avoid();
        let agents = if conf.strategy == Strategy::RingAll {
            self.claim_all(tier, offer, avoid)
        } else {
            self.claim_best(tier, conf.strategy, queue.rr_last(), avoid, offer)
                .into_iter()
                .collect()
        };
        if agents.is_empty() {
            self.release_claim(caller, tick);
            return Attempt::NoAgent;
        }
        let id = OfferId(offer);
        let rec = Arc::new(OfferRec {
            id,
            caller: caller.clone(),
            queue: queue.clone(),
            outstanding: AtomicU32::new(agents.len() as u32),
            agents,
            answered_by: AtomicU32::new(u32::MAX),
            answered_at: AtomicU64::new(0),
            ring_timer: self
                .timers
                .key(tick.saturating_add(nanos(conf.ring_timeout))),
        });
        // The agents are ours until the offer is published: describe them now.
        let current = Arc::new(Current {
            offer: id,
            call: caller.call,
            queue: queue.name.clone(),
        });
        for agent in &rec.agents {
            agent.since.store(tick, Ordering::Release);
            agent.current.store(Some(current.clone()));
        }
        self.offers.insert(offer, rec.clone());
        caller.offer.store(Some(rec.clone()));
        if caller
            .cas(CallerWord::CLAIMED, CallerWord::offered(offer))
            .is_err()
        {
            // The caller hung up while we chose.
            self.withdraw_offer(caller, offer, tick);
            self.release_claim(caller, tick);
            return Attempt::Taken;
        }
        if conf.strategy != Strategy::RingAll {
            queue.rr_last.store(rec.agents[0].ord, Ordering::Relaxed);
        }
        self.timers
            .insert(rec.ring_timer, Timer::Ring { offer: rec.clone() });
        Attempt::Offered(Offer {
            id,
            call: caller.call,
            queue: queue.name.clone(),
            agents: rec.agents.iter().map(|a| a.id.clone()).collect(),
            waited: caller.waited(tick),
            ring_timeout: conf.ring_timeout,
        })
    }

    /// The strategy's favourite free agent of a tier, claimed.
    fn claim_best(
        &self,
        tier: &Tier,
        strategy: Strategy,
        rr_last: Option<u32>,
        avoid: Option<u32>,
        offer: u64,
    ) -> Option<Arc<AgentRt>> {
        for _ in 0..CLAIM_RETRIES {
            let mut best: Option<(Rank, &Arc<AgentRt>)> = None;
            for_each_free(tier, |agent, level| {
                let r = rank(strategy, &candidate(agent, level), rr_last, avoid);
                if best.is_none_or(|(b, _)| r < b) {
                    best = Some((r, agent));
                }
            });
            let (_, agent) = best?;
            if self
                .agent_cas(agent, |w| w.claim(offer).map(|n| (n, ())))
                .is_ok()
            {
                return Some(agent.clone());
            }
        }
        None
    }

    /// Every free agent of a tier, claimed (ring-all), best first.
    fn claim_all(&self, tier: &Tier, offer: u64, avoid: Option<u32>) -> Vec<Arc<AgentRt>> {
        let mut free: Vec<(Rank, &Arc<AgentRt>)> = Vec::new();
        for_each_free(tier, |agent, level| {
            free.push((
                rank(Strategy::RingAll, &candidate(agent, level), None, avoid),
                agent,
            ));
        });
        free.sort_by_key(|(r, _)| *r);
        free.dedup_by_key(|(_, a)| a.ord);
        free.into_iter()
            .filter(|(_, agent)| {
                self.agent_cas(agent, |w| w.claim(offer).map(|n| (n, ())))
                    .is_ok()
            })
            .map(|(_, agent)| agent.clone())
            .collect()
    }

    /// The agent's phone rings.
    pub fn offer_ringing(
        &self,
        offer: OfferId,
        agent: &str,
        now: Instant,
    ) -> Result<(), OfferError> {
        let rec = self.offer_rec(offer)?;
        let agent_rt = on_offer(&rec, offer, agent)?;
        self.agent_cas(agent_rt, |w| w.ring(offer.0).map(|n| (n, ())))
            .map_err(|_| not_on_offer(offer, agent))?;
        agent_rt
            .since
            .store(self.clock.tick(now), Ordering::Release);
        Ok(())
    }

    /// The agent answered: bridge the legs. Returns `Answered` and, for
    /// ring-all, a `CancelOffer` for every other agent's leg. An error means
    /// the answer came too late: hang up this agent's leg.
    pub fn offer_answered(
        &self,
        offer: OfferId,
        agent: &str,
        now: Instant,
    ) -> Result<Vec<Event>, OfferError> {
        let rec = self.offer_rec(offer)?;
        let agent_rt = on_offer(&rec, offer, agent)?;
        let o = offer.0;
        let tick = self.clock.tick(now);
        self.agent_cas(agent_rt, |w| w.answer(o).map(|n| (n, ())))
            .map_err(|_| not_on_offer(offer, agent))?;
        if let Err(actual) = rec
            .caller
            .cas(CallerWord::offered(o), CallerWord::connected(o))
        {
            if let Ok((_, new, ())) = self.agent_cas(agent_rt, |w| w.unanswer(o).map(|n| (n, ()))) {
                self.agent_released(agent_rt, o, new, tick, false);
            }
            return Err(if actual == CallerWord::connected(o) {
                OfferError::AnsweredElsewhere(offer)
            } else {
                OfferError::CallerGone(offer)
            });
        }
        rec.answered_by.store(agent_rt.ord, Ordering::Release);
        rec.answered_at.store(tick, Ordering::Release);
        self.offers.remove(&o);
        self.timers.remove(&rec.ring_timer);
        let waited = rec.caller.waited(tick);
        self.finish(&rec.caller, tick, Some(Outcome::Answered { waited }));
        agent_rt.missed_in_row.store(0, Ordering::Relaxed);
        agent_rt.answered_today.fetch_add(1, Ordering::Relaxed);
        agent_rt.since.store(tick, Ordering::Release);

        let mut events = vec![Event::Answered {
            call: rec.caller.call,
            queue: rec.queue.name.clone(),
            agent: agent_rt.id.clone(),
            waited,
        }];
        for other in rec.agents.iter().filter(|a| a.ord != agent_rt.ord) {
            if let Ok((_, new, ())) = self.agent_cas(other, |w| w.cancel(o).map(|n| (n, ()))) {
                self.agent_released(other, o, new, tick, false);
                events.push(Event::CancelOffer {
                    offer,
                    call: rec.caller.call,
                    agent: other.id.clone(),
                });
            }
        }
        Ok(events)
    }

    /// The agent's leg failed. The agent is free again (or paused with
    /// `NoAnswer` after too many misses in a row: `AgentPaused`); once every
    /// leg of the offer failed, the caller is back in its old place (or
    /// times out now if its max wait passed while it rang: `WaitTimeout`).
    pub fn offer_failed(
        &self,
        offer: OfferId,
        agent: &str,
        reason: OfferFailure,
        now: Instant,
    ) -> Result<Vec<Event>, OfferError> {
        let rec = self.offer_rec(offer)?;
        let agent_rt = on_offer(&rec, offer, agent)?;
        let o = offer.0;
        let tick = self.clock.tick(now);
        let max_missed = agent_rt
            .conf
            .load()
            .max_missed_offers
            .unwrap_or(self.topology.load().defaults.max_missed_offers);
        // Only the report whose CAS wins below touches the streak: the
        // agent is on one offer at a time.
        // zentrale's own failure is no miss of the agent's.
        let ours = reason == OfferFailure::NotPlaced;
        let missed = agent_rt.missed_in_row.load(Ordering::Acquire);
        let missed = if ours {
            missed
        } else {
            missed.saturating_add(1)
        };
        let pause = !ours && max_missed > 0 && missed >= max_missed;
        let (_, new, ()) = self
            .agent_cas(agent_rt, |w| w.fail(o, pause).map(|n| (n, ())))
            .map_err(|_| not_on_offer(offer, agent))?;
        agent_rt.note_failure(reason);
        let mut events = Vec::new();
        if pause && new.kind() == Kind::Paused {
            agent_rt.missed_in_row.store(0, Ordering::Release);
            events.push(Event::AgentPaused {
                agent: agent_rt.id.clone(),
                reason: PauseReason::NoAnswer,
            });
        } else {
            agent_rt.missed_in_row.store(missed, Ordering::Release);
        }
        // Back of the longest-idle line, so the next caller tries someone
        // else; unless the agent did nothing wrong.
        self.agent_released(agent_rt, o, new, tick, !ours);
        if !ours {
            bump(&rec.queue.stats.counters.offers_unanswered);
        }
        rec.caller
            .last_failed
            .store(agent_rt.ord, Ordering::Relaxed);

        if rec.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Forget the offer before the caller is visible as waiting: a
            // dispatcher may offer it again right after the release.
            rec.caller.offer.store(None);
            if rec
                .caller
                .cas(CallerWord::offered(o), CallerWord::CLAIMED)
                .is_ok()
            {
                self.offers.remove(&o);
                self.timers.remove(&rec.ring_timer);
                // Widening steps reached while it rang apply now.
                self.restep(&rec.caller, tick);
                self.release_claim(&rec.caller, tick);
                events.extend(self.time_out_if_due(&rec.caller, tick));
            }
        }
        Ok(events)
    }

    /// Takes an offer back from its agents (the caller left); returns the
    /// agents whose legs to cancel.
    pub(super) fn withdraw_offer(&self, caller: &Caller, offer: u64, tick: u64) -> Vec<Arc<str>> {
        let rec = self
            .offers
            .remove(&offer)
            .map(|(_, r)| r)
            .or_else(|| caller.offer.load_full().filter(|r| r.id.0 == offer));
        caller.offer.store(None);
        let Some(rec) = rec else {
            return Vec::new();
        };
        self.timers.remove(&rec.ring_timer);
        let mut cancelled = Vec::new();
        for agent in &rec.agents {
            if let Ok((_, new, ())) = self.agent_cas(agent, |w| w.cancel(offer).map(|n| (n, ()))) {
                self.agent_released(agent, offer, new, tick, false);
                cancelled.push(agent.id.clone());
            }
        }
        cancelled
    }

    /// Times a waiting caller out if its max wait has passed.
    pub(super) fn time_out_if_due(&self, caller: &Arc<Caller>, tick: u64) -> Option<Event> {
        // Word first: if the CAS from it wins, the queue read after it is
        // still the caller's (a move would have changed the word).
        let word = caller.word();
        if word.kind() != CallerKind::Waiting {
            return None;
        }
        let queue = caller.queue.load_full();
        let max_wait = queue.conf.load().max_wait?;
        if caller.waited(tick) < max_wait || caller.cas(word, CallerWord::GONE).is_err() {
            return None;
        }
        self.finish(caller, tick, Some(Outcome::TimedOut));
        Some(Event::WaitTimeout {
            call: caller.call,
            queue: queue.name.clone(),
            arrival: self.clock.instant(caller.arrival),
            priority: caller.own_priority.load(Ordering::Relaxed),
        })
    }

    fn offer_rec(&self, offer: OfferId) -> Result<Arc<OfferRec>, OfferError> {
        self.offers
            .get(&offer.0)
            .map(|r| r.value().clone())
            .ok_or(OfferError::UnknownOffer(offer))
    }
}

/// Calls `f` for every offerable agent of a tier with its level there;
/// stops in each group at the first member below the tier's minimum.
fn for_each_free<'t>(tier: &'t Tier, mut f: impl FnMut(&'t Arc<AgentRt>, u8)) {
    for (group, min_level) in &tier.groups {
        for member in group.iter() {
            if member.level < *min_level {
                break;
            }
            if member.agent.word().offerable() {
                f(&member.agent, member.level);
            }
        }
    }
}

fn candidate(agent: &AgentRt, level: u8) -> Candidate {
    Candidate {
        ord: agent.ord,
        level,
        idle_since: agent.idle_since.load(Ordering::Acquire),
        answered_today: agent.answered_today.load(Ordering::Relaxed),
        talk_today: agent.talk_today.load(Ordering::Relaxed),
    }
}

fn on_offer<'r>(
    rec: &'r OfferRec,
    offer: OfferId,
    agent: &str,
) -> Result<&'r Arc<AgentRt>, OfferError> {
    rec.agent(agent).ok_or_else(|| not_on_offer(offer, agent))
}

fn not_on_offer(offer: OfferId, agent: &str) -> OfferError {
    OfferError::NotOnOffer {
        offer,
        agent: agent.to_owned(),
    }
}
