//! IVR menus: a prompt, digits that lead to targets, a timeout and a limit
//! on invalid input. Sans-IO: the daemon feeds key presses (RFC 4733 or
//! SIP INFO alike), the end of prompt playback and timer expiries, with the
//! time; the menu answers with what to play and, at the end, where the call
//! goes.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use zentrale::dialplan::{QueueRef, Target};
//! use zentrale::dialplan::{Menu, MenuAction, MenuChoice, MenuSpec};
//!
//! let queue = |q: &str| Target::Queue(QueueRef { tenant: "krefeld".into(), queue: q.into() });
//! let spec = Arc::new(MenuSpec {
//!     prompt: "menu-krefeld".into(),
//!     digits: BTreeMap::from([('1', queue("kfz")), ('2', queue("meldewesen"))]),
//!     timeout: Duration::from_secs(5),
//!     retries: 1,
//!     invalid_prompt: "invalid-input".into(),
//!     repeat_on_timeout: false,
//!     default: queue("serviceportal"),
//! });
//! let t0 = Instant::now();
//! let mut menu = Menu::new(spec);
//! assert_eq!(menu.start(t0), [MenuAction::Play(vec!["menu-krefeld".into()])]);
//! menu.prompt_finished(t0 + Duration::from_secs(6));
//! assert_eq!(menu.poll_timeout(), Some(t0 + Duration::from_secs(11)));
//! assert_eq!(
//!     menu.on_digit('1', t0 + Duration::from_secs(7)),
//!     [MenuAction::Done { target: queue("kfz"), choice: MenuChoice::Digit('1') }]
//! );
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Target;

/// A menu as configured (`menu:` of a hotline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuSpec {
    /// Played first and after each invalid input.
    pub prompt: String,
    /// Key (`0`-`9`, `*`, `#`) → where the call goes.
    pub digits: BTreeMap<char, Target>,
    /// How long to wait for a key after the prompt has played.
    pub timeout: Duration,
    /// How often the menu is played again after invalid input (and after a
    /// timeout, with `repeat_on_timeout`) before the call goes to `default`.
    pub retries: u32,
    /// Played before the menu is repeated after an invalid key.
    pub invalid_prompt: String,
    /// `false` (the default): no key means "stay on the line" and the call
    /// goes to `default` at the first timeout. `true`: a timeout repeats the
    /// menu like invalid input.
    pub repeat_on_timeout: bool,
    /// Where the call goes without a valid choice.
    pub default: Target,
}

/// What the daemon does for the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Stop what is playing and play these prompts in order; call
    /// [`Menu::prompt_finished`] when they are done.
    Play(Vec<String>),
    /// The menu is over: send the call to `target`.
    Done { target: Target, choice: MenuChoice },
}

/// How a menu ended, for call records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MenuChoice {
    /// The caller pressed this key.
    Digit(char),
    /// The caller pressed nothing (the default target).
    Timeout,
    /// Too many invalid keys (the default target).
    TooManyInvalid,
}

impl MenuChoice {
    /// A label for metrics: the digit, `timeout` or `invalid`.
    pub fn label(self) -> String {
        match self {
            MenuChoice::Digit(d) => d.to_string(),
            MenuChoice::Timeout => "timeout".to_string(),
            MenuChoice::TooManyInvalid => "invalid".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started.
    Idle,
    /// A prompt is playing; no timer runs.
    Playing,
    /// Waiting for a key until the deadline.
    Waiting(Instant),
    Done,
}

/// One caller's run through a menu.
#[derive(Debug, Clone)]
pub struct Menu {
    spec: Arc<MenuSpec>,
    state: State,
    /// Invalid inputs (and, with `repeat_on_timeout`, timeouts) so far.
    misses: u32,
    result: Option<(Target, MenuChoice)>,
}

impl Menu {
    pub fn new(spec: Arc<MenuSpec>) -> Menu {
        Menu {
            spec,
            state: State::Idle,
            misses: 0,
            result: None,
        }
    }

    pub fn spec(&self) -> &MenuSpec {
        &self.spec
    }

    /// Plays the menu prompt.
    pub fn start(&mut self, _now: Instant) -> Vec<MenuAction> {
        if self.state != State::Idle {
            return Vec::new();
        }
        self.state = State::Playing;
        vec![MenuAction::Play(vec![self.spec.prompt.clone()])]
    }

    /// The prompts of the last [`MenuAction::Play`] have been played out:
    /// the wait for a key starts.
    pub fn prompt_finished(&mut self, now: Instant) {
        if self.state == State::Playing {
            self.state = State::Waiting(now + self.spec.timeout);
        }
    }

    /// A key press, from RFC 4733 events or SIP INFO. Keys interrupt a
    /// prompt that is still playing. Keys after the end are ignored.
    pub fn on_digit(&mut self, digit: char, _now: Instant) -> Vec<MenuAction> {
        if matches!(self.state, State::Idle | State::Done) {
            return Vec::new();
        }
        let digit = digit.to_ascii_uppercase();
        match self.spec.digits.get(&digit) {
            Some(target) => self.finish(target.clone(), MenuChoice::Digit(digit)),
            None => self.miss(true),
        }
    }

    /// When [`handle_timeout`](Menu::handle_timeout) is due, if a timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            _ => None,
        }
    }

    /// The timer fired; early or stale calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<MenuAction> {
        match self.state {
            State::Waiting(at) if now >= at => {
                if self.spec.repeat_on_timeout {
                    self.miss(false)
                } else {
                    self.finish(self.spec.default.clone(), MenuChoice::Timeout)
                }
            }
            _ => Vec::new(),
        }
    }

    /// Where the call goes, once the menu is done.
    pub fn result(&self) -> Option<&(Target, MenuChoice)> {
        self.result.as_ref()
    }

    fn miss(&mut self, invalid: bool) -> Vec<MenuAction> {
        self.misses += 1;
        if self.misses > self.spec.retries {
            let choice = if invalid {
                MenuChoice::TooManyInvalid
            } else {
                MenuChoice::Timeout
            };
            return self.finish(self.spec.default.clone(), choice);
        }
        self.state = State::Playing;
        let mut prompts = Vec::with_capacity(2);
        if invalid {
            prompts.push(self.spec.invalid_prompt.clone());
        }
        prompts.push(self.spec.prompt.clone());
        vec![MenuAction::Play(prompts)]
    }

    fn finish(&mut self, target: Target, choice: MenuChoice) -> Vec<MenuAction> {
        self.state = State::Done;
        self.result = Some((target.clone(), choice));
        vec![MenuAction::Done { target, choice }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialplan::QueueRef;

    fn queue(q: &str) -> Target {
        Target::Queue(QueueRef {
            tenant: "krefeld".into(),
            queue: q.into(),
        })
    }

    fn krefeld(retries: u32, repeat_on_timeout: bool) -> Arc<MenuSpec> {
        Arc::new(MenuSpec {
            prompt: "menu-krefeld".into(),
            digits: BTreeMap::from([('1', queue("kfz")), ('2', queue("meldewesen"))]),
            timeout: Duration::from_secs(5),
            retries,
            invalid_prompt: "invalid-input".into(),
            repeat_on_timeout,
            default: queue("serviceportal"),
        })
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn play(p: &[&str]) -> Vec<MenuAction> {
        vec![MenuAction::Play(p.iter().map(|s| s.to_string()).collect())]
    }

    fn done(target: Target, choice: MenuChoice) -> Vec<MenuAction> {
        vec![MenuAction::Done { target, choice }]
    }

    /// Each row: events in order, with the expected actions of the last one.
    #[derive(Debug)]
    enum Ev {
        Start,
        PromptDone,
        Key(char),
        Timer,
    }

    fn run(spec: Arc<MenuSpec>, events: &[(u64, Ev)]) -> (Menu, Vec<Vec<MenuAction>>) {
        let t0 = Instant::now();
        let mut m = Menu::new(spec);
        let mut out = Vec::new();
        for (at, ev) in events {
            let now = secs(t0, *at);
            out.push(match ev {
                Ev::Start => m.start(now),
                Ev::PromptDone => {
                    m.prompt_finished(now);
                    Vec::new()
                }
                Ev::Key(d) => m.on_digit(*d, now),
                Ev::Timer => m.handle_timeout(now),
            });
        }
        (m, out)
    }

    #[test]
    fn table() {
        use Ev::*;
        use MenuChoice as C;
        // Name, menu, events, what the last event yields.
        type Case = (&'static str, Arc<MenuSpec>, Vec<(u64, Ev)>, Vec<MenuAction>);
        let cases: Vec<Case> = vec![
            (
                "digit 1 → kfz",
                krefeld(1, false),
                vec![(0, Start), (6, PromptDone), (8, Key('1'))],
                done(queue("kfz"), C::Digit('1')),
            ),
            (
                "digit 2 while the prompt plays → meldewesen",
                krefeld(1, false),
                vec![(0, Start), (3, Key('2'))],
                done(queue("meldewesen"), C::Digit('2')),
            ),
            (
                "no key → default after the timeout",
                krefeld(1, false),
                vec![(0, Start), (6, PromptDone), (11, Timer)],
                done(queue("serviceportal"), C::Timeout),
            ),
            (
                "an early timer does nothing",
                krefeld(1, false),
                vec![(0, Start), (6, PromptDone), (10, Timer)],
                vec![],
            ),
            (
                "no timer while the prompt plays",
                krefeld(1, false),
                vec![(0, Start), (30, Timer)],
                vec![],
            ),
            (
                "invalid key → invalid-input and the menu again",
                krefeld(1, false),
                vec![(0, Start), (6, PromptDone), (7, Key('9'))],
                play(&["invalid-input", "menu-krefeld"]),
            ),
            (
                "invalid key twice → default",
                krefeld(1, false),
                vec![
                    (0, Start),
                    (6, PromptDone),
                    (7, Key('9')),
                    (15, PromptDone),
                    (16, Key('#')),
                ],
                done(queue("serviceportal"), C::TooManyInvalid),
            ),
            (
                "a valid key after one invalid one",
                krefeld(1, false),
                vec![
                    (0, Start),
                    (6, PromptDone),
                    (7, Key('7')),
                    (15, PromptDone),
                    (16, Key('1')),
                ],
                done(queue("kfz"), C::Digit('1')),
            ),
            (
                "retries 0: the first invalid key ends the menu",
                krefeld(0, false),
                vec![(0, Start), (6, PromptDone), (7, Key('5'))],
                done(queue("serviceportal"), C::TooManyInvalid),
            ),
            (
                "repeat_on_timeout: the first timeout repeats without invalid-input",
                krefeld(1, true),
                vec![(0, Start), (6, PromptDone), (11, Timer)],
                play(&["menu-krefeld"]),
            ),
            (
                "repeat_on_timeout: the second timeout goes to default",
                krefeld(1, true),
                vec![
                    (0, Start),
                    (6, PromptDone),
                    (11, Timer),
                    (17, PromptDone),
                    (22, Timer),
                ],
                done(queue("serviceportal"), C::Timeout),
            ),
            (
                "keys after the end are ignored",
                krefeld(1, false),
                vec![(0, Start), (1, Key('1')), (2, Key('2'))],
                vec![],
            ),
            (
                "keys before the start are ignored",
                krefeld(1, false),
                vec![(0, Key('1'))],
                vec![],
            ),
        ];
        for (name, spec, events, want) in cases {
            let (_, out) = run(spec, &events);
            assert_eq!(out.last(), Some(&want), "{name}: {out:?}");
        }
    }

    #[test]
    fn timers_follow_the_prompts() {
        let (m, _) = run(krefeld(1, false), &[(0, Ev::Start)]);
        assert_eq!(m.poll_timeout(), None);
        let t0 = Instant::now();
        let mut m = Menu::new(krefeld(1, false));
        m.start(t0);
        m.prompt_finished(secs(t0, 6));
        assert_eq!(m.poll_timeout(), Some(secs(t0, 11)));
        m.on_digit('0', secs(t0, 7));
        assert_eq!(m.poll_timeout(), None, "the menu plays again");
        m.prompt_finished(secs(t0, 14));
        assert_eq!(m.poll_timeout(), Some(secs(t0, 19)));
        let out = m.handle_timeout(secs(t0, 19));
        assert_eq!(out, done(queue("serviceportal"), MenuChoice::Timeout));
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(
            m.result(),
            Some(&(queue("serviceportal"), MenuChoice::Timeout))
        );
        assert_eq!(m.start(secs(t0, 20)), vec![], "no restart");
    }

    #[test]
    fn choice_labels() {
        assert_eq!(MenuChoice::Digit('1').label(), "1");
        assert_eq!(MenuChoice::Timeout.label(), "timeout");
        assert_eq!(MenuChoice::TooManyInvalid.label(), "invalid");
    }
}
