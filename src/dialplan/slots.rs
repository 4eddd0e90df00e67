//! Fair shares of the call slots among tenants.
//!
//! A call slot is one answered caller with its RTP port, whatever the caller
//! hears: the greeting, the queue's music or the busy prompt of a tenant
//! past its surge limits. Slots are finite (the RTP port range and
//! `sip.max_calls`), so a surge on one tenant must not take them all: each
//! tenant has a **guaranteed** number of slots nobody else can take, and the
//! rest of the slots are **shared**, first come first served, up to each
//! tenant's **max**. A tenant past its share gets a clean refusal (486 with
//! `Retry-After`, see the README), never the other tenants' slots.
//!
//! Agent legs and agents' own calls (feature codes) are not callers: their
//! ports are kept aside before the callers' slots are counted
//! ([`caller_slots`]), so a surge never stops an agent from taking a call.
//!
//! Sans-IO: the core counts calls in and out, this decides.

use std::collections::HashMap;

/// A tenant's configured share (`limits.slots` in its dialplan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotShare {
    /// Slots kept for this tenant whatever the others do; `None`: an even
    /// part of half the slots ([`CallSlots::new`]).
    pub guaranteed: Option<u32>,
    /// At most this many slots at once; `None`: the guarantee plus every
    /// shared slot.
    pub max: Option<u32>,
}

/// Why a new call of a tenant gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotRefusal {
    /// The tenant holds its `max`.
    TenantMax,
    /// The tenant is past its guarantee and the shared slots are taken.
    SharedFull,
}

impl SlotRefusal {
    /// The `reason` label of `zentrale_calls_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotRefusal::TenantMax => "tenant_max",
            SlotRefusal::SharedFull => "shared_full",
        }
    }
}

/// The callers' slots: at most `max_calls` calls and one RTP port (of
/// `legs`) per call, less what the agents need: one leg each, but at most
/// half the ports, so a tiny range still takes callers.
///
/// ```
/// # use zentrale::dialplan::caller_slots;
/// assert_eq!(caller_slots(2000, 500, 22), 478);
/// assert_eq!(caller_slots(100, 500, 22), 100);
/// assert_eq!(caller_slots(2000, 10, 22), 5);
/// ```
pub fn caller_slots(max_calls: usize, legs: usize, agents: usize) -> u32 {
    let agents = agents.min(legs / 2);
    let slots = (legs - agents).min(max_calls);
    u32::try_from(slots).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resolved {
    guaranteed: u32,
    max: u32,
}

/// Counts the slots each tenant holds and decides whether a new call of a
/// tenant gets one.
///
/// ```
/// # use zentrale::dialplan::{CallSlots, SlotRefusal, SlotShare};
/// // 100 slots, two tenants with 20 guaranteed each: 60 shared.
/// let share = SlotShare { guaranteed: Some(20), max: None };
/// let mut slots = CallSlots::new(100, &[("kassel".into(), share), ("krefeld".into(), share)]);
/// for _ in 0..80 {
///     assert_eq!(slots.take("kassel"), Ok(()));
/// }
/// // Kassel has its 20 and all 60 shared slots; Krefeld still has its 20.
/// assert_eq!(slots.take("kassel"), Err(SlotRefusal::TenantMax));
/// assert_eq!(slots.take("krefeld"), Ok(()));
/// ```
#[derive(Debug, Clone)]
pub struct CallSlots {
    total: u32,
    /// `total` less every guarantee.
    shared: u32,
    shares: HashMap<String, Resolved>,
    used: HashMap<String, u32>,
    /// Slots held beyond their tenant's guarantee, summed over tenants.
    shared_used: u32,
    /// Tenants whose configured guarantee did not fit and was cut.
    cut: Vec<String>,
}

impl CallSlots {
    /// `total` caller slots ([`caller_slots`]) shared among `tenants` in
    /// this order. A tenant without a guarantee gets an even part of half
    /// the slots; guarantees that would add up past `total` are cut, later
    /// tenants first (see [`CallSlots::cut`]; the config loader refuses
    /// explicit ones that do not fit).
    pub fn new(total: u32, tenants: &[(String, SlotShare)]) -> CallSlots {
        let mut slots = CallSlots {
            total,
            shared: 0,
            shares: HashMap::new(),
            used: HashMap::new(),
            shared_used: 0,
            cut: Vec::new(),
        };
        slots.configure(tenants);
        slots
    }

    /// Takes new shares (a reload). Calls in progress keep counting
    /// against their tenant; a tenant no longer configured has no
    /// guarantee and may use the shared slots.
    pub fn configure(&mut self, tenants: &[(String, SlotShare)]) {
        let even = self.total / 2 / (tenants.len().max(1) as u32);
        let mut left = self.total;
        self.cut.clear();
        self.shares.clear();
        for (tenant, share) in tenants {
            let wanted = share.guaranteed.unwrap_or(even);
            let guaranteed = wanted.min(left);
            if guaranteed < wanted {
                self.cut.push(tenant.clone());
            }
            left -= guaranteed;
            self.shares
                .insert(tenant.clone(), Resolved { guaranteed, max: 0 });
        }
        self.shared = left;
        for (tenant, share) in tenants {
            if let Some(r) = self.shares.get_mut(tenant) {
                let most = r.guaranteed + self.shared;
                r.max = share.max.map_or(most, |m| m.clamp(r.guaranteed, most));
            }
        }
        self.shared_used = self
            .used
            .iter()
            .map(|(t, &n)| n.saturating_sub(self.share(t).guaranteed))
            .sum();
    }

    fn share(&self, tenant: &str) -> Resolved {
        self.shares.get(tenant).copied().unwrap_or(Resolved {
            guaranteed: 0,
            max: self.shared,
        })
    }

    /// Whether a new call of `tenant` would get a slot now.
    pub fn admit(&self, tenant: &str) -> Result<(), SlotRefusal> {
        let share = self.share(tenant);
        let used = self.used(tenant);
        if used >= share.max {
            return Err(SlotRefusal::TenantMax);
        }
        if used < share.guaranteed || self.shared_used < self.shared {
            return Ok(());
        }
        Err(SlotRefusal::SharedFull)
    }

    /// Takes a slot for a new call of `tenant`, if [`admit`](Self::admit)
    /// allows it. Give it back with [`release`](Self::release) when the
    /// call ends.
    pub fn take(&mut self, tenant: &str) -> Result<(), SlotRefusal> {
        self.admit(tenant)?;
        let guaranteed = self.share(tenant).guaranteed;
        let used = match self.used.get_mut(tenant) {
            Some(n) => n,
            None => self.used.entry(tenant.to_owned()).or_insert(0),
        };
        *used += 1;
        if *used > guaranteed {
            self.shared_used += 1;
        }
        Ok(())
    }

    /// A call of `tenant` that held a slot ended.
    pub fn release(&mut self, tenant: &str) {
        let guaranteed = self.share(tenant).guaranteed;
        let Some(used) = self.used.get_mut(tenant) else {
            return;
        };
        if *used == 0 {
            return;
        }
        if *used > guaranteed {
            self.shared_used = self.shared_used.saturating_sub(1);
        }
        *used -= 1;
    }

    /// Slots `tenant` holds now.
    pub fn used(&self, tenant: &str) -> u32 {
        self.used.get(tenant).copied().unwrap_or(0)
    }

    /// `(guaranteed, max)` of `tenant` as resolved.
    pub fn limits(&self, tenant: &str) -> (u32, u32) {
        let r = self.share(tenant);
        (r.guaranteed, r.max)
    }

    /// Every caller slot, and those not guaranteed to anyone.
    pub fn totals(&self) -> (u32, u32) {
        (self.total, self.shared)
    }

    /// Tenants whose guarantee was cut to fit (log it).
    pub fn cut(&self) -> &[String] {
        &self.cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(guaranteed: Option<u32>, max: Option<u32>) -> SlotShare {
        SlotShare { guaranteed, max }
    }

    fn tenants(list: &[(&str, SlotShare)]) -> Vec<(String, SlotShare)> {
        list.iter().map(|(t, s)| (t.to_string(), *s)).collect()
    }

    #[test]
    fn defaults_split_half_evenly_and_share_the_rest() {
        let d = SlotShare::default();
        let s = CallSlots::new(400, &tenants(&[("a", d), ("b", d), ("c", d), ("e", d)]));
        assert_eq!(s.totals(), (400, 200));
        assert_eq!(s.limits("a"), (50, 250));
        assert!(s.cut().is_empty());
    }

    #[test]
    fn a_surge_takes_the_shared_slots_never_the_others_guarantees() {
        let d = SlotShare::default();
        let mut s = CallSlots::new(100, &tenants(&[("kassel", d), ("krefeld", d)]));
        // 25 guaranteed each, 50 shared.
        let mut kassel = 0;
        while s.take("kassel").is_ok() {
            kassel += 1;
        }
        assert_eq!(kassel, 75);
        assert_eq!(s.admit("kassel"), Err(SlotRefusal::TenantMax));
        for _ in 0..25 {
            assert_eq!(s.take("krefeld"), Ok(()));
        }
        // Krefeld past its guarantee: the shared slots are Kassel's now.
        assert_eq!(s.take("krefeld"), Err(SlotRefusal::SharedFull));
        // Kassel's surge ebbs: a shared slot is free again for either.
        s.release("kassel");
        assert_eq!(s.take("krefeld"), Ok(()));
        assert_eq!(s.take("kassel"), Err(SlotRefusal::SharedFull));
        assert_eq!((s.used("kassel"), s.used("krefeld")), (74, 26));
    }

    #[test]
    fn max_caps_a_tenant_below_the_shared_slots() {
        let s = tenants(&[
            ("kassel", share(Some(10), Some(30))),
            ("krefeld", share(Some(10), None)),
        ]);
        let mut s = CallSlots::new(100, &s);
        for _ in 0..30 {
            s.take("kassel").unwrap();
        }
        assert_eq!(s.take("kassel"), Err(SlotRefusal::TenantMax));
        // 80 shared, Kassel uses 20 of them: Krefeld may take 10 + 60.
        for _ in 0..70 {
            s.take("krefeld").unwrap();
        }
        assert_eq!(s.take("krefeld"), Err(SlotRefusal::SharedFull));
    }

    #[test]
    fn guarantees_past_the_total_are_cut_in_order() {
        let s = tenants(&[
            ("a", share(Some(60), None)),
            ("b", share(Some(60), None)),
            ("c", share(Some(10), None)),
        ]);
        let s = CallSlots::new(100, &s);
        assert_eq!(s.limits("a"), (60, 60));
        assert_eq!(s.limits("b"), (40, 40));
        assert_eq!(s.limits("c"), (0, 0));
        assert_eq!(s.cut(), ["b", "c"]);
    }

    #[test]
    fn a_max_below_the_guarantee_is_the_guarantee() {
        let s = CallSlots::new(100, &tenants(&[("a", share(Some(20), Some(5)))]));
        assert_eq!(s.limits("a"), (20, 20));
    }

    #[test]
    fn reload_keeps_the_calls_and_recounts_the_shared_use() {
        let d = SlotShare::default();
        let mut s = CallSlots::new(100, &tenants(&[("a", d), ("b", d)]));
        for _ in 0..40 {
            s.take("a").unwrap();
        }
        // a: 25 guaranteed + 15 shared of 50.
        s.configure(&tenants(&[("a", share(Some(40), None)), ("b", d)]));
        // a: 40 guaranteed, b: 25, shared 35 and none used.
        assert_eq!(s.limits("a"), (40, 75));
        for _ in 0..35 {
            s.take("a").unwrap();
        }
        assert_eq!(s.take("a"), Err(SlotRefusal::TenantMax));
        // A tenant gone from the config: no guarantee, shared slots only.
        s.configure(&tenants(&[("b", d)]));
        assert_eq!(s.limits("a"), (0, 50));
        assert_eq!(s.admit("a"), Err(SlotRefusal::TenantMax));
        for _ in 0..75 {
            s.release("a");
        }
        assert_eq!(s.used("a"), 0);
        assert_eq!(s.take("a"), Ok(()));
    }

    #[test]
    fn release_without_take_is_harmless() {
        let mut s = CallSlots::new(10, &tenants(&[("a", SlotShare::default())]));
        s.release("a");
        s.release("nobody");
        assert_eq!(s.used("a"), 0);
        assert_eq!(s.admit("a"), Ok(()));
    }
}
