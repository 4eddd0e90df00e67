//! Distribution strategies: which free agent a waiting caller is offered to.
//!
//! A strategy only ranks candidates; finding them (per skill group) and
//! claiming the winner (a CAS on the agent's state word) is the engine's
//! job. Ranks are total orders ending in the agent's stable ordinal, so the
//! choice is deterministic for a given state.

/// How a queue picks among its free, eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// The agent idle the longest since their last call (or login/pause).
    #[default]
    LongestIdle,
    /// Agents in turn: continues after the agent this queue offered last.
    RoundRobin,
    /// The agent with the fewest answered calls today (see `Acd::reset_day`),
    /// then longest idle.
    FewestCalls,
    /// The agent with the least talk time today, then longest idle.
    LeastTalkTime,
    /// Every free eligible agent at once; the first to answer wins and the
    /// other legs are cancelled (one [`Offer`](super::Offer) with several agents).
    RingAll,
    /// The highest skill level for the queue, then longest idle.
    SkillsFirst,
}

impl Strategy {
    /// All strategies with their names in the config and the API.
    pub const ALL: [(Strategy, &'static str); 6] = [
        (Strategy::LongestIdle, "longest-idle"),
        (Strategy::RoundRobin, "round-robin"),
        (Strategy::FewestCalls, "fewest-calls"),
        (Strategy::LeastTalkTime, "least-talk-time"),
        (Strategy::RingAll, "ring-all"),
        (Strategy::SkillsFirst, "skills-first"),
    ];

    /// The name, e.g. `longest-idle`.
    pub fn name(self) -> &'static str {
        Strategy::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("", |(_, n)| n)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = ();
    /// Reads a name such as `ring-all`.
    fn from_str(s: &str) -> Result<Strategy, ()> {
        Strategy::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(st, _)| *st)
            .ok_or(())
    }
}

/// What a strategy looks at when ranking one free agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Stable ordinal of the agent (spec order, new agents appended).
    pub ord: u32,
    /// The agent's level in the skill group that made it eligible.
    pub level: u8,
    /// Engine tick since which the agent is idle.
    pub idle_since: u64,
    pub answered_today: u32,
    /// Talk time today in nanoseconds.
    pub talk_today: u64,
}

/// Lower ranks first. The leading flag puts the agent that just failed this
/// caller behind everybody else, so a caller is not bounced back to the
/// phone that did not answer while another agent is free.
pub(crate) type Rank = (bool, u64, u64, u32);

/// Ranks a candidate for a caller; `rr_last` is the ordinal the queue offered
/// to last (round robin), `avoid` the agent that just failed this caller.
pub(crate) fn rank(
    strategy: Strategy,
    c: &Candidate,
    rr_last: Option<u32>,
    avoid: Option<u32>,
) -> Rank {
    let avoided = avoid == Some(c.ord);
    let (a, b) = match strategy {
        Strategy::LongestIdle | Strategy::RingAll => (c.idle_since, 0),
        Strategy::RoundRobin => {
            // Agents after the last one come first, then wrap around.
            let wrapped = rr_last.is_some_and(|last| c.ord <= last);
            (u64::from(wrapped), 0)
        }
        Strategy::FewestCalls => (u64::from(c.answered_today), c.idle_since),
        Strategy::LeastTalkTime => (c.talk_today, c.idle_since),
        Strategy::SkillsFirst => (u64::from(u8::MAX - c.level), c.idle_since),
    };
    (avoided, a, b, c.ord)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(ord: u32, level: u8, idle_since: u64, answered: u32, talk: u64) -> Candidate {
        Candidate {
            ord,
            level,
            idle_since,
            answered_today: answered,
            talk_today: talk,
        }
    }

    fn best(strategy: Strategy, cs: &[Candidate], rr: Option<u32>, avoid: Option<u32>) -> u32 {
        cs.iter()
            .min_by_key(|c| rank(strategy, c, rr, avoid))
            .map(|c| c.ord)
            .unwrap()
    }

    /// The config and the API spell each strategy the same way, and a
    /// name reads back as its strategy.
    #[test]
    fn names_read_back() {
        for (strategy, name) in Strategy::ALL {
            assert_eq!(strategy.to_string(), name);
            assert_eq!(name.parse::<Strategy>(), Ok(strategy));
        }
        assert_eq!(Strategy::RingAll.name(), "ring-all");
        assert_eq!("ring_all".parse::<Strategy>(), Err(()));
    }

    #[test]
    fn each_strategy_picks_its_own_favourite() {
        let cs = [
            // ord, level, idle since, answered, talk
            cand(0, 5, 300, 4, 900),
            cand(1, 9, 200, 7, 100),
            cand(2, 3, 100, 9, 500),
            cand(3, 5, 400, 1, 800),
        ];
        assert_eq!(best(Strategy::LongestIdle, &cs, None, None), 2);
        assert_eq!(best(Strategy::FewestCalls, &cs, None, None), 3);
        assert_eq!(best(Strategy::LeastTalkTime, &cs, None, None), 1);
        assert_eq!(best(Strategy::SkillsFirst, &cs, None, None), 1);
        assert_eq!(best(Strategy::RoundRobin, &cs, None, None), 0);
        assert_eq!(best(Strategy::RoundRobin, &cs, Some(1), None), 2);
        assert_eq!(best(Strategy::RoundRobin, &cs, Some(3), None), 0);
    }

    #[test]
    fn ties_fall_back_to_idle_time_then_ordinal() {
        let cs = [
            cand(4, 7, 50, 2, 0),
            cand(2, 7, 10, 2, 0),
            cand(3, 7, 10, 2, 0),
        ];
        assert_eq!(best(Strategy::SkillsFirst, &cs, None, None), 2);
        assert_eq!(best(Strategy::FewestCalls, &cs, None, None), 2);
        assert_eq!(best(Strategy::LongestIdle, &cs, None, None), 2);
    }

    #[test]
    fn the_agent_that_just_failed_goes_last() {
        let cs = [cand(0, 5, 10, 0, 0), cand(1, 5, 20, 0, 0)];
        assert_eq!(best(Strategy::LongestIdle, &cs, None, Some(0)), 1);
        // Alone, it is still offered.
        assert_eq!(best(Strategy::LongestIdle, &cs[..1], None, Some(0)), 0);
    }
}
