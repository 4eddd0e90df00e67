//! Queues and waiting callers.
//!
//! Each queue keeps its callers in a lock-free ordered map
//! (`crossbeam_skiplist::SkipMap`) keyed by `(step, (Reverse(priority),
//! arrival, seq))`: one lane per widening step, each in service order. A
//! dispatch merges the lanes' heads; when no agent is free for the head of
//! lane `s`, nobody in lanes `0..=s` can be served either (tiers only grow),
//! so a pass costs O(lanes) failures per queue instead of a scan of every
//! waiting caller. A caller changes lane when its widening timer fires.
//!
//! A caller stays in the map while it is offered, so it keeps its place if
//! the offer fails; the caller's own atomic state word decides who may act
//! on it (claim for an offer, answer, abandon, time out, move, change lane),
//! so a caller visible to two dispatchers, or in two queues during a move,
//! is taken at most once.
//!
//! Caller word layout (bits): `0-2` kind (Waiting, Claimed, Offered,
//! Connected, Gone), `3` abandon requested while claimed, `16-63` the offer
//! id while offered or connected, the caller's generation while waiting. The
//! generation (bumped by every move) makes a CAS from an observed `Waiting`
//! word fail if the caller moved to another queue and back to waiting in
//! between, so nobody acts on it with the old queue's settings.

use std::cmp::Reverse;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use crossbeam_skiplist::SkipMap;
use dashmap::DashMap;

use super::CallKey;
use super::offer::OfferRec;
use super::service_level::{QueueStats, Segment};
use super::topology::QueueConf;

/// Service order: higher priority first, then earlier arrival, then seq.
pub(crate) type ServiceKey = (Reverse<i64>, u64, u64);

/// Place in a queue's map: widening step (lane), then service order.
pub(crate) type Key = (u8, ServiceKey);

/// The smallest service key (for lane bounds).
pub(crate) const FIRST: ServiceKey = (Reverse(i64::MAX), 0, 0);

/// Lanes per queue: the base tier plus at most this many widening steps - 1.
pub(crate) const LANES: usize = 8;

/// Which tick the timers key is (deadline, unique sequence).
pub(crate) type TimerKey = (u64, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerKind {
    /// In its queue, free to be offered.
    Waiting,
    /// Held for a moment by a dispatcher or a move.
    Claimed,
    /// Ringing at one agent (or several for ring-all).
    Offered,
    /// Answered; talking to an agent.
    Connected,
    /// Finished: the word never changes again.
    Gone,
}

const KIND_MASK: u64 = 0b111;
const ABANDON: u64 = 1 << 3;
const OFFER_SHIFT: u32 = 16;

/// A caller's packed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallerWord(pub u64);

impl CallerWord {
    pub const CLAIMED: CallerWord = CallerWord(1);
    pub const GONE: CallerWord = CallerWord(4);

    pub fn kind(self) -> CallerKind {
        match self.0 & KIND_MASK {
            0 => CallerKind::Waiting,
            1 => CallerKind::Claimed,
            2 => CallerKind::Offered,
            3 => CallerKind::Connected,
            _ => CallerKind::Gone,
        }
    }

    /// The offer id (offered, connected) or generation (waiting).
    pub fn offer(self) -> u64 {
        self.0 >> OFFER_SHIFT
    }

    pub fn abandon_requested(self) -> bool {
        self.0 & ABANDON != 0
    }

    /// Waiting in the queue of this generation.
    pub fn waiting(generation: u64) -> CallerWord {
        CallerWord(generation << OFFER_SHIFT)
    }

    pub fn offered(offer: u64) -> CallerWord {
        CallerWord(2 | (offer << OFFER_SHIFT))
    }

    pub fn connected(offer: u64) -> CallerWord {
        CallerWord(3 | (offer << OFFER_SHIFT))
    }

    pub fn with_abandon(self) -> CallerWord {
        CallerWord(self.0 | ABANDON)
    }
}

/// One caller known to the engine, from enqueue until it is answered and
/// the call ends, it abandons, or it times out.
#[derive(Debug)]
pub(crate) struct Caller {
    pub call: CallKey,
    /// Unique per caller; last part of the key.
    pub seq: u64,
    /// Tick of the first arrival; kept across failed offers and moves.
    pub arrival: u64,
    word: AtomicU64,
    /// The priority the daemon gave (reported back on timeout).
    pub own_priority: AtomicI32,
    /// Effective priority (own + queue base); part of the key.
    pub priority: AtomicI64,
    /// Widening step reached in the current queue: the lane it sits in.
    pub step: AtomicU8,
    /// Tick at which the caller entered its current queue (max wait,
    /// widening, announcements and waited time count from here).
    pub entered: AtomicU64,
    /// Bumped on every move so timers of the previous queue are ignored.
    pub generation: AtomicU64,
    pub queue: ArcSwap<QueueRt>,
    /// Last position announced; 0 before the first announcement.
    pub last_announced: AtomicU32,
    /// Ordinal of the agent that failed this caller last (`u32::MAX`: none).
    pub last_failed: AtomicU32,
    /// The current offer, or the answered one while connected.
    pub offer: ArcSwapOption<OfferRec>,
    /// This caller's entries in the timer map, removed when it leaves (a
    /// short per-caller lock, never held while taking another).
    pub timers: Mutex<Vec<TimerKey>>,
    /// Where the caller comes from; its queues count it in this segment too.
    pub segment: Option<Segment>,
}

impl Caller {
    /// A caller claimed by its creator, who releases it once it is queued.
    pub fn new(
        call: CallKey,
        seq: u64,
        arrival: u64,
        (own_priority, priority): (i32, i64),
        entered: u64,
        queue: Arc<QueueRt>,
        segment: Option<Segment>,
    ) -> Caller {
        Caller {
            call,
            seq,
            arrival,
            word: AtomicU64::new(CallerWord::CLAIMED.0),
            own_priority: AtomicI32::new(own_priority),
            priority: AtomicI64::new(priority),
            step: AtomicU8::new(0),
            entered: AtomicU64::new(entered),
            generation: AtomicU64::new(0),
            queue: ArcSwap::new(queue),
            last_announced: AtomicU32::new(0),
            last_failed: AtomicU32::new(u32::MAX),
            offer: ArcSwapOption::empty(),
            timers: Mutex::new(Vec::new()),
            segment,
        }
    }

    pub fn service_key(&self) -> ServiceKey {
        (
            Reverse(self.priority.load(Ordering::Acquire)),
            self.arrival,
            self.seq,
        )
    }

    pub fn key(&self) -> Key {
        (self.step.load(Ordering::Acquire), self.service_key())
    }

    pub fn word(&self) -> CallerWord {
        CallerWord(self.word.load(Ordering::Acquire))
    }

    /// One compare-and-swap; the winner owns the transition.
    pub fn cas(&self, from: CallerWord, to: CallerWord) -> Result<(), CallerWord> {
        self.word
            .compare_exchange(from.0, to.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(CallerWord)
    }

    /// The waiting word of the current generation (for the caller's owner).
    pub fn waiting_word(&self) -> CallerWord {
        CallerWord::waiting(self.generation.load(Ordering::Acquire))
    }

    pub fn waited(&self, now: u64) -> Duration {
        Duration::from_nanos(now.saturating_sub(self.entered.load(Ordering::Acquire)))
    }

    pub fn avoid(&self) -> Option<u32> {
        match self.last_failed.load(Ordering::Relaxed) {
            u32::MAX => None,
            ord => Some(ord),
        }
    }

    pub fn take_timers(&self) -> Vec<TimerKey> {
        std::mem::take(&mut *self.timers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn forget_timer(&self, key: &TimerKey) {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k| k != key);
    }

    pub fn add_timer(&self, key: TimerKey) {
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(key);
    }
}

/// One queue's runtime state; survives spec reloads.
#[derive(Debug)]
pub(crate) struct QueueRt {
    pub name: Arc<str>,
    pub conf: ArcSwap<QueueConf>,
    /// Waiting and offered callers, by lane and service order. Change it
    /// only through `insert` and `remove`, which keep `lane_len` right.
    pub callers: SkipMap<Key, Arc<Caller>>,
    lane_len: [AtomicUsize; LANES],
    pub stats: QueueStats,
    /// The same figures per caller segment. Segments come from the config
    /// (municipalities, 115 or not), so the map stays small.
    segments: DashMap<Segment, Arc<QueueStats>>,
    /// Ordinal of the agent offered last (round robin); `u32::MAX`: none yet.
    pub rr_last: AtomicU32,
    /// Set while a reload removes the queue, so a racing enqueue backs out.
    pub retired: AtomicBool,
}

impl QueueRt {
    pub fn new(conf: QueueConf) -> QueueRt {
        QueueRt {
            name: conf.name.clone(),
            conf: ArcSwap::from_pointee(conf),
            callers: SkipMap::new(),
            lane_len: Default::default(),
            stats: QueueStats::default(),
            segments: DashMap::new(),
            rr_last: AtomicU32::new(u32::MAX),
            retired: AtomicBool::new(false),
        }
    }

    pub fn insert(&self, key: Key, caller: Arc<Caller>) {
        self.callers.insert(key, caller);
        self.lane_len[usize::from(key.0)].fetch_add(1, Ordering::AcqRel);
    }

    pub fn remove(&self, key: &Key) {
        // Only the remover that wins the entry counts it.
        if self.callers.remove(key).is_some() {
            self.lane_len[usize::from(key.0)].fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The lanes that hold callers.
    pub fn lanes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..LANES as u8).filter(|&l| self.lane_len[usize::from(l)].load(Ordering::Acquire) > 0)
    }

    /// 1-based position in service order of a caller with `service` key
    /// (in the queue or about to join): the callers ahead in every lane.
    pub fn position_of(&self, service: &ServiceKey) -> u32 {
        let mut ahead = 0;
        for lane in self.lanes() {
            let end = (lane + 1, FIRST);
            let last = self.callers.upper_bound(std::ops::Bound::Excluded(&end));
            match last {
                // Usually the whole lane is ahead (older callers): O(log n).
                Some(last) if last.key().0 == lane && last.key().1 < *service => {
                    ahead += self.lane_len[usize::from(lane)].load(Ordering::Acquire);
                }
                _ => ahead += self.callers.range((lane, FIRST)..(lane, *service)).count(),
            }
        }
        u32::try_from(ahead).unwrap_or(u32::MAX - 1) + 1
    }

    /// Positions of several callers (service keys sorted ascending) with one
    /// walk over the lanes: O(callers in the queue + keys x lanes).
    pub fn positions_of(&self, sorted: &[ServiceKey]) -> Vec<u32> {
        let mut ahead = vec![0usize; sorted.len()];
        for lane in self.lanes() {
            let (mut next, mut count) = (0, 0);
            for entry in self.callers.range((lane, FIRST)..(lane + 1, FIRST)) {
                let key = entry.key().1;
                while next < sorted.len() && sorted[next] <= key {
                    ahead[next] += count;
                    next += 1;
                }
                count += 1;
            }
            for a in &mut ahead[next..] {
                *a += count;
            }
        }
        ahead
            .into_iter()
            .map(|a| u32::try_from(a).unwrap_or(u32::MAX - 1) + 1)
            .collect()
    }

    /// The figures of `segment` in this queue, created on first use. The
    /// map's guard is dropped before the caller touches the figures.
    pub fn segment(&self, segment: &Segment) -> Arc<QueueStats> {
        if let Some(stats) = self.segments.get(segment) {
            return stats.clone();
        }
        self.segments.entry(segment.clone()).or_default().clone()
    }

    /// Every segment's figures, sorted by segment.
    pub fn segments(&self) -> Vec<(Segment, Arc<QueueStats>)> {
        let mut all: Vec<(Segment, Arc<QueueStats>)> = self
            .segments
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub fn rr_last(&self) -> Option<u32> {
        match self.rr_last.load(Ordering::Relaxed) {
            u32::MAX => None,
            ord => Some(ord),
        }
    }
}
