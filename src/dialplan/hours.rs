//! Service hours: weekly opening hours in a time zone, public holidays of a
//! federal state, and closure days.
//!
//! Everything is evaluated in local civil time of the configured zone
//! (`Europe/Berlin` by default), so "07:00-18:00" means 07:00 on the wall
//! clock on both sides of a DST change.
//!
//! Time is `jiff` (rather than `chrono` + `chrono-tz`): one crate for civil
//! dates, zone conversion with explicit DST disambiguation, and a bundled
//! copy of the tz database for machines without tzdata.
//!
//! ```
//! use jiff::Timestamp;
//! use zentrale::dialplan::{FederalState, Openness, Schedule};
//!
//! let mut s = Schedule::new("Europe/Berlin").unwrap();
//! s.add_weekly(&"mon-fri 07:00-18:00".parse().unwrap()).unwrap();
//! s.add_weekly(&"sat 9-13".parse().unwrap()).unwrap();
//! s.set_state(Some(FederalState::Hessen));
//! s.add_closure("12-24 from 12:00".parse().unwrap());
//!
//! // Monday 2026-03-30, 07:30 CEST (05:30 UTC): open.
//! assert_eq!(s.is_open("2026-03-30T05:30:00Z".parse::<Timestamp>().unwrap()), Openness::Open);
//! // Easter Monday: closed, reopening Tuesday 07:00.
//! match s.is_open("2026-04-06T09:00:00Z".parse().unwrap()) {
//!     Openness::Closed { reopens_at, .. } => {
//!         assert_eq!(reopens_at, Some("2026-04-07T05:00:00Z".parse().unwrap()));
//!     }
//!     Openness::Open => panic!("open on Easter Monday"),
//! }
//! ```

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;

use super::SyntaxError;
use super::holidays::{FederalState, holiday_on};

/// How far ahead [`Schedule::is_open`] looks for the next opening.
const LOOKAHEAD_DAYS: i64 = 400;
const DAY_MINUTES: u16 = 24 * 60;

/// Minutes of a day, `from` inclusive, `to` exclusive; `to` may be 24:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeRange {
    /// Minutes after midnight, 0..1440.
    pub from: u16,
    /// Minutes after midnight, `from + 1`..=1440.
    pub to: u16,
}

impl TimeRange {
    /// The whole day, 00:00-24:00.
    pub const WHOLE_DAY: TimeRange = TimeRange {
        from: 0,
        to: DAY_MINUTES,
    };

    fn overlaps(self, other: TimeRange) -> bool {
        self.from < other.to && other.from < self.to
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", Clock(self.from), Clock(self.to))
    }
}

/// A minute of the day shown as `HH:MM`.
struct Clock(u16);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for TimeRange {
    type Err = SyntaxError;

    /// `07:00-18:00`, `7-18` or `8:30-12`; the end may be `24:00`, and must
    /// be after the start (ranges do not run past midnight).
    fn from_str(s: &str) -> Result<TimeRange, SyntaxError> {
        let (a, b) = s.split_once('-').ok_or_else(|| SyntaxError {
            message: format!("`{s}` is not a time range"),
            hint: "write FROM-TO in 24-hour time, e.g. 07:00-18:00 or 9-13".to_string(),
        })?;
        let from = clock(a, s)?;
        let to = clock(b, s)?;
        if from == DAY_MINUTES {
            return Err(SyntaxError {
                message: format!("time range `{s}` starts at 24:00"),
                hint: "start at 00:00 of the next day instead".to_string(),
            });
        }
        if to < from {
            return Err(SyntaxError {
                message: format!(
                    "time range `{s}` ends before it starts ({} is earlier than {})",
                    Clock(to),
                    Clock(from)
                ),
                hint: format!(
                    "write the earlier time first; for hours past midnight write two ranges, \
                     {}-24:00 on one day and 00:00-{} on the next",
                    Clock(from),
                    Clock(to)
                ),
            });
        }
        if to == from {
            return Err(SyntaxError {
                message: format!("time range `{s}` is empty"),
                hint: "give an end after the start, e.g. 08:00-12:00".to_string(),
            });
        }
        Ok(TimeRange { from, to })
    }
}

/// `HH`, `H`, `HH:MM` or `H:MM`, up to 24:00, as minutes after midnight.
fn clock(text: &str, whole: &str) -> Result<u16, SyntaxError> {
    let bad = || SyntaxError {
        message: format!("`{}` in `{whole}` is not a time of day", text.trim()),
        hint: "write 24-hour times as HH:MM or whole hours, e.g. 07:00, 7 or 18:30; \
               the day ends at 24:00"
            .to_string(),
    };
    let t = text.trim();
    let number = |x: &str, lens: &[usize]| {
        (lens.contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit()))
            .then(|| x.parse::<u16>().ok())
            .flatten()
    };
    let (h, m) = match t.split_once(':') {
        Some((h, m)) => (number(h, &[1, 2]), number(m, &[2])),
        None => (number(t, &[1, 2]), Some(0)),
    };
    let (Some(h), Some(m)) = (h, m) else {
        return Err(bad());
    };
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// One line of `weekly:`: days and the ranges they are open, e.g.
/// `mon-fri 07:00-18:00` or `mon,wed 08:00-12:00 13:00-16:00`.
///
/// Days are `mon tue wed thu fri sat sun` or the German `mo di mi do fr sa
/// so`, single, as ranges (`mon-fri`) or comma-separated lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyEntry {
    /// The days, Monday first, each once.
    pub days: Vec<Weekday>,
    /// The open ranges of each of those days, in order.
    pub ranges: Vec<TimeRange>,
}

const DAY_NAMES: [(&str, &str, Weekday); 7] = [
    ("mon", "mo", Weekday::Monday),
    ("tue", "di", Weekday::Tuesday),
    ("wed", "mi", Weekday::Wednesday),
    ("thu", "do", Weekday::Thursday),
    ("fri", "fr", Weekday::Friday),
    ("sat", "sa", Weekday::Saturday),
    ("sun", "so", Weekday::Sunday),
];

fn weekday(name: &str, whole: &str) -> Result<Weekday, SyntaxError> {
    let n = name.trim().to_lowercase();
    DAY_NAMES
        .iter()
        .find(|(en, de, _)| n == *en || n == *de)
        .map(|(_, _, d)| *d)
        .ok_or_else(|| SyntaxError {
            message: format!("`{}` in `{whole}` is not a day of the week", name.trim()),
            hint: "use mon, tue, wed, thu, fri, sat, sun (or mo, di, mi, do, fr, sa, so), \
                   ranges such as mon-fri, or lists such as mon,wed"
                .to_string(),
        })
}

/// English name of a weekday, for messages.
pub(crate) fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

impl FromStr for WeeklyEntry {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<WeeklyEntry, SyntaxError> {
        let mut words = s.split_whitespace();
        let (Some(days_text), ranges_text) = (words.next(), words.collect::<Vec<_>>()) else {
            return Err(SyntaxError {
                message: "empty opening-hours line".to_string(),
                hint: "write days and hours, e.g. \"mon-fri 07:00-18:00\"".to_string(),
            });
        };
        let mut days: Vec<Weekday> = Vec::new();
        for part in days_text.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (weekday(a, s)?, weekday(b, s)?);
                    let (ia, ib) = (a.to_monday_zero_offset(), b.to_monday_zero_offset());
                    if ib < ia {
                        return Err(SyntaxError {
                            message: format!("day range `{part}` in `{s}` runs backwards"),
                            hint: "write days from Monday towards Sunday, e.g. mon-fri; \
                                   for a range over the weekend list the days: fri,sat,sun,mon"
                                .to_string(),
                        });
                    }
                    let mut d = a;
                    loop {
                        days.push(d);
                        if d == b {
                            break;
                        }
                        d = d.next();
                    }
                }
                None => days.push(weekday(part, s)?),
            }
        }
        if days.is_empty() {
            return Err(SyntaxError {
                message: format!("`{s}` names no day"),
                hint: "start with the days, e.g. \"mon-fri 07:00-18:00\"".to_string(),
            });
        }
        days.sort_by_key(|d| d.to_monday_zero_offset());
        days.dedup();
        if ranges_text.is_empty() {
            return Err(SyntaxError {
                message: format!("`{s}` gives days but no hours"),
                hint: format!("add the hours after the days, e.g. \"{days_text} 08:00-18:00\""),
            });
        }
        let mut ranges: Vec<TimeRange> = Vec::new();
        for r in ranges_text
            .iter()
            .flat_map(|r| r.split(','))
            .filter(|r| !r.is_empty())
        {
            let r: TimeRange = r.parse()?;
            if let Some(other) = ranges.iter().find(|o| o.overlaps(r)) {
                return Err(SyntaxError {
                    message: format!("in `{s}`, {r} overlaps {other}"),
                    hint: "merge the two ranges into one".to_string(),
                });
            }
            ranges.push(r);
        }
        ranges.sort();
        Ok(WeeklyEntry { days, ranges })
    }
}

/// Two weekly lines that both open the same day at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub day: Weekday,
    /// The range already there.
    pub existing: TimeRange,
    /// The range that was to be added.
    pub new: TimeRange,
}

/// Open ranges per weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours {
    /// Monday first; each sorted, without overlaps.
    days: [Vec<TimeRange>; 7],
}

impl WeeklyHours {
    /// Adds a line; refuses one that overlaps a range already there (a
    /// `mon-fri 08:00-18:00` plus `fri 08:00-13:00` usually means "Friday
    /// until 13:00", which a union would silently get wrong).
    pub fn add(&mut self, entry: &WeeklyEntry) -> Result<(), Overlap> {
        for &day in &entry.days {
            let have = &self.days[day.to_monday_zero_offset() as usize];
            for &new in &entry.ranges {
                if let Some(&existing) = have.iter().find(|r| r.overlaps(new)) {
                    return Err(Overlap { day, existing, new });
                }
            }
        }
        for &day in &entry.days {
            let have = &mut self.days[day.to_monday_zero_offset() as usize];
            have.extend(&entry.ranges);
            have.sort();
        }
        Ok(())
    }

    /// The open ranges of a weekday, in order.
    pub fn on(&self, day: Weekday) -> &[TimeRange] {
        &self.days[day.to_monday_zero_offset() as usize]
    }
}

/// Which days a closure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosureDays {
    /// One date.
    On(Date),
    /// The same day every year (`12-24`).
    Yearly { month: i8, day: i8 },
    /// Every day from the first to the last date, both included.
    Between(Date, Date),
}

/// A day (or days) the service is closed on in addition to holidays, all
/// day or for part of it.
///
/// Written as `DATE [TIMES]`: `2026-12-24` (one day), `12-24` (every year),
/// `2026-12-28..2026-12-30` (several days); then nothing (all day),
/// `from 12:00` (`ab`), `until 10:00` (`bis`) or `13:00-16:00`.
///
/// ```
/// use zentrale::dialplan::{Closure, ClosureDays, TimeRange};
/// let c: Closure = "12-24 from 12:00".parse().unwrap();
/// assert_eq!(c.days, ClosureDays::Yearly { month: 12, day: 24 });
/// assert_eq!(c.hours, TimeRange { from: 12 * 60, to: 24 * 60 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closure {
    pub days: ClosureDays,
    /// The closed part of each of those days.
    pub hours: TimeRange,
}

impl Closure {
    /// Whether the closure applies to `day` (at some time of it).
    pub fn applies_to(&self, day: Date) -> bool {
        match self.days {
            ClosureDays::On(d) => d == day,
            ClosureDays::Yearly { month, day: d } => day.month() == month && day.day() == d,
            ClosureDays::Between(a, b) => a <= day && day <= b,
        }
    }
}

/// ` in `whole`` when `part` is only a part of it, for messages.
fn within(part: &str, whole: &str) -> String {
    if part.trim() == whole.trim() {
        String::new()
    } else {
        format!(" in `{whole}`")
    }
}

fn parse_date(text: &str, whole: &str) -> Result<ClosureDays, SyntaxError> {
    let bad = |why: String| SyntaxError {
        message: format!("`{text}`{} is not a date{why}", within(text, whole)),
        hint: "write YYYY-MM-DD for one date (2026-12-24), MM-DD for the same day every year \
               (12-24), or FIRST..LAST for several days (2026-12-28..2026-12-30)"
            .to_string(),
    };
    let nums: Vec<&str> = text.split('-').collect();
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i16>().ok())
            .flatten()
    };
    match nums.as_slice() {
        [y, m, d] => {
            let (Some(y), Some(m), Some(d)) = (num(y, 4), num(m, 2), num(d, 2)) else {
                return Err(bad(String::new()));
            };
            Date::new(y, m as i8, d as i8)
                .map(ClosureDays::On)
                .map_err(|_| bad(" of the calendar".to_string()))
        }
        [m, d] => {
            let (Some(m), Some(d)) = (num(m, 2), num(d, 2)) else {
                return Err(bad(String::new()));
            };
            // 2024 is a leap year, so 02-29 is accepted (and applies in leap years).
            Date::new(2024, m as i8, d as i8)
                .map(|_| ClosureDays::Yearly {
                    month: m as i8,
                    day: d as i8,
                })
                .map_err(|_| bad(" of the calendar".to_string()))
        }
        _ => Err(bad(String::new())),
    }
}

impl FromStr for Closure {
    type Err = SyntaxError;

    fn from_str(s: &str) -> Result<Closure, SyntaxError> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let Some((&date_text, rest)) = words.split_first() else {
            return Err(SyntaxError {
                message: "empty closure".to_string(),
                hint: "write a date, e.g. \"2026-12-24 from 12:00\"".to_string(),
            });
        };
        let days = match date_text.split_once("..") {
            Some((a, b)) => {
                let (ClosureDays::On(a), ClosureDays::On(b)) =
                    (parse_date(a, s)?, parse_date(b, s)?)
                else {
                    return Err(SyntaxError {
                        message: format!("`{date_text}` in `{s}` is not a range of dates"),
                        hint: "write both ends with the year: 2026-12-28..2026-12-30".to_string(),
                    });
                };
                if b < a {
                    return Err(SyntaxError {
                        message: format!("date range `{date_text}` ends before it starts"),
                        hint: format!("write the earlier date first: {b}..{a}"),
                    });
                }
                ClosureDays::Between(a, b)
            }
            None => parse_date(date_text, s)?,
        };
        let times = |what: &str| SyntaxError {
            message: format!(
                "`{}` in `{s}` is not a time of the closure{what}",
                rest.join(" ")
            ),
            hint: "after the date write nothing (all day), `from HH:MM`, `until HH:MM` or \
                   HH:MM-HH:MM, e.g. \"2026-12-24 from 12:00\""
                .to_string(),
        };
        let hours = match rest {
            [] => TimeRange::WHOLE_DAY,
            [kw, t] if matches!(kw.to_lowercase().as_str(), "from" | "ab") => {
                let from = clock(t, s)?;
                if from == 0 || from >= DAY_MINUTES {
                    return Err(times(": from 00:00 is the whole day, leave the time out"));
                }
                TimeRange {
                    from,
                    to: DAY_MINUTES,
                }
            }
            [kw, t] if matches!(kw.to_lowercase().as_str(), "until" | "bis") => {
                let to = clock(t, s)?;
                if to == 0 || to >= DAY_MINUTES {
                    return Err(times(": give a time between 00:00 and 24:00"));
                }
                TimeRange { from: 0, to }
            }
            [r] if r.contains('-') => r.parse()?,
            _ => return Err(times("")),
        };
        Ok(Closure { days, hours })
    }
}

/// Why a hotline is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedReason {
    /// Outside the weekly hours.
    OutsideHours,
    /// A public holiday of the configured state (its German name).
    Holiday(&'static str),
    /// A configured closure.
    Closure,
}

/// The answer of [`Schedule::is_open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Openness {
    Open,
    Closed {
        reason: ClosedReason,
        /// The next moment the hotline opens, if within about a year.
        reopens_at: Option<Timestamp>,
    },
}

/// When a hotline is open: weekly hours in a time zone, minus public
/// holidays and closures. Without weekly hours it is open around the clock
/// except on those days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    zone_name: String,
    zone: TimeZone,
    weekly: Option<WeeklyHours>,
    state: Option<FederalState>,
    closures: Vec<Closure>,
}

/// The time zone `name` from the IANA database: the system's copy (kept up
/// to date by the OS), else the copy bundled into the binary, so a container
/// without tzdata still works.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .ok()
}

/// Every zone name known, for suggestions.
pub(crate) fn time_zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
    if names.is_empty() {
        names = jiff::tz::TimeZoneDatabase::bundled()
            .available()
            .map(|n| n.to_string())
            .collect();
    }
    names
}

impl Schedule {
    /// A schedule in the IANA zone `zone` (e.g. `Europe/Berlin`), open
    /// around the clock until weekly hours, a state or closures are added.
    pub fn new(zone: &str) -> Result<Schedule, SyntaxError> {
        let tz = time_zone(zone).ok_or_else(|| SyntaxError {
            message: format!("unknown time zone `{zone}`"),
            hint: "write an IANA time zone name such as Europe/Berlin".to_string(),
        })?;
        Ok(Schedule {
            zone_name: zone.to_string(),
            zone: tz,
            weekly: None,
            state: None,
            closures: Vec::new(),
        })
    }

    /// Adds a weekly line (the first one ends "open around the clock").
    pub fn add_weekly(&mut self, entry: &WeeklyEntry) -> Result<(), Overlap> {
        self.weekly
            .get_or_insert_with(WeeklyHours::default)
            .add(entry)
    }

    /// Replaces the weekly hours; `None` is around the clock.
    pub fn set_weekly(&mut self, weekly: Option<WeeklyHours>) {
        self.weekly = weekly;
    }

    /// The state whose public holidays close the hotline (`None`: no holidays).
    pub fn set_state(&mut self, state: Option<FederalState>) {
        self.state = state;
    }

    pub fn add_closure(&mut self, closure: Closure) {
        self.closures.push(closure);
    }

    /// The IANA name of the zone.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    pub fn state(&self) -> Option<FederalState> {
        self.state
    }

    pub fn weekly(&self) -> Option<&WeeklyHours> {
        self.weekly.as_ref()
    }

    pub fn closures(&self) -> &[Closure] {
        &self.closures
    }

    /// Whether the hotline is open at `at`; if not, why and when it opens
    /// next.
    pub fn is_open(&self, at: Timestamp) -> Openness {
        let local = at.to_zoned(self.zone.clone()).datetime();
        let today = local.date();
        let now = seconds(local.time());
        if self
            .open_ranges(today)
            .iter()
            .any(|&(from, to)| from <= now && now < to)
        {
            return Openness::Open;
        }
        let reason = if let Some(name) = self.state.and_then(|st| holiday_on(today, st)) {
            ClosedReason::Holiday(name)
        } else if self.closures.iter().any(|c| {
            c.applies_to(today)
                && u32::from(c.hours.from) * 60 <= now
                && now < u32::from(c.hours.to) * 60
        }) {
            ClosedReason::Closure
        } else {
            ClosedReason::OutsideHours
        };
        Openness::Closed {
            reason,
            reopens_at: self.next_opening(today, now),
        }
    }

    /// The moment `span` of open time has passed after `from`: time counts
    /// only while the schedule is open (weekly hours minus holidays and
    /// closures), as elapsed time, so a range on the day of a DST change
    /// counts the hours the clocks really ran. Tickets' "24 service hours"
    /// are this. `None` when the schedule does not open often enough
    /// within about a year.
    ///
    /// ```
    /// use jiff::{SignedDuration, Timestamp};
    /// use zentrale::dialplan::Schedule;
    ///
    /// let mut s = Schedule::new("Europe/Berlin").unwrap();
    /// s.add_weekly(&"mon-fri 08:00-17:00".parse().unwrap()).unwrap();
    /// // Friday 2026-11-27 16:00 CET: 1 h on Friday, 2 h on Monday.
    /// let due = s.after_open_time("2026-11-27T15:00:00Z".parse().unwrap(), SignedDuration::from_hours(3));
    /// assert_eq!(due, Some("2026-11-30T09:00:00Z".parse::<Timestamp>().unwrap()));
    /// ```
    pub fn after_open_time(
        &self,
        from: Timestamp,
        span: jiff::SignedDuration,
    ) -> Option<Timestamp> {
        let mut day = from.to_zoned(self.zone.clone()).date();
        let mut left = span;
        for _ in 0..LOOKAHEAD_DAYS {
            for (open, close) in self.open_ranges(day) {
                let start = self.instant(day, open)?.max(from);
                let end = self.instant(day, close)?;
                if end <= start {
                    continue;
                }
                let length = end.duration_since(start);
                if length >= left {
                    return start.checked_add(left).ok();
                }
                left -= length;
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The instant `secs` after local midnight of `day` (24:00 is the next
    /// midnight); a time inside a DST gap takes the later offset.
    fn instant(&self, day: Date, secs: u32) -> Option<Timestamp> {
        DateTime::from_parts(day, Time::midnight())
            .checked_add(jiff::SignedDuration::from_secs(i64::from(secs)))
            .ok()?
            .to_zoned(self.zone.clone())
            .ok()
            .map(|z| z.timestamp())
    }

    /// The first open second after `now` on `today`, or on a later day.
    fn next_opening(&self, today: Date, now: u32) -> Option<Timestamp> {
        let mut day = today;
        for offset in 0..LOOKAHEAD_DAYS {
            let start = self
                .open_ranges(day)
                .into_iter()
                .map(|(from, _)| from)
                .find(|&from| offset > 0 || from > now);
            if let Some(from) = start {
                let civil = DateTime::from_parts(day, Time::midnight())
                    .checked_add(jiff::SignedDuration::from_secs(i64::from(from)))
                    .ok()?;
                // A start inside a DST gap takes the later offset ("compatible").
                return civil
                    .to_zoned(self.zone.clone())
                    .ok()
                    .map(|z| z.timestamp());
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The open parts of `day` as seconds after midnight, in order:
    /// weekly ranges (or the whole day), none on a holiday, minus closures.
    fn open_ranges(&self, day: Date) -> Vec<(u32, u32)> {
        if self.state.is_some_and(|st| holiday_on(day, st).is_some()) {
            return Vec::new();
        }
        let mut open: Vec<(u32, u32)> = match &self.weekly {
            None => vec![(0, 24 * 3600)],
            Some(w) => w
                .on(day.weekday())
                .iter()
                .map(|r| (u32::from(r.from) * 60, u32::from(r.to) * 60))
                .collect(),
        };
        for c in self.closures.iter().filter(|c| c.applies_to(day)) {
            let (cf, ct) = (u32::from(c.hours.from) * 60, u32::from(c.hours.to) * 60);
            open = open
                .into_iter()
                .flat_map(|(f, t)| {
                    let before = (f < cf.min(t)).then_some((f, cf.min(t)));
                    let after = (ct.max(f) < t).then_some((ct.max(f), t));
                    before.into_iter().chain(after)
                })
                .collect();
        }
        open
    }
}

fn seconds(t: Time) -> u32 {
    // Hours, minutes and seconds of a civil time are small and non-negative.
    t.hour() as u32 * 3600 + t.minute() as u32 * 60 + t.second() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ranges() {
        let r = |s: &str| s.parse::<TimeRange>();
        assert_eq!(
            r("07:00-18:00"),
            Ok(TimeRange {
                from: 420,
                to: 1080
            })
        );
        assert_eq!(
            r("7-18"),
            Ok(TimeRange {
                from: 420,
                to: 1080
            })
        );
        assert_eq!(
            r("8:30-24:00"),
            Ok(TimeRange {
                from: 510,
                to: 1440
            })
        );
        assert_eq!(r("00:00-24"), Ok(TimeRange::WHOLE_DAY));
        let e = r("18-8").expect_err("backwards");
        assert_eq!(
            e.message,
            "time range `18-8` ends before it starts (08:00 is earlier than 18:00)"
        );
        assert!(
            e.hint.contains("18:00-24:00 on one day and 00:00-08:00"),
            "{}",
            e.hint
        );
        for bad in [
            "8-8", "24-24", "7", "7:60-8", "25-26", "24:30-1", "x-9", "7:5-9", "-9",
        ] {
            assert!(r(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TimeRange {
                from: 420,
                to: 1440
            }
            .to_string(),
            "07:00-24:00"
        );
    }

    #[test]
    fn weekly_lines() {
        let e: WeeklyEntry = "mon-fri 07:00-18:00".parse().expect("valid");
        assert_eq!(e.days.len(), 5);
        assert_eq!(e.ranges, ["07:00-18:00".parse().expect("valid")]);
        let e: WeeklyEntry = "Sa,mo 13-16 8-12".parse().expect("valid");
        assert_eq!(e.days, [Weekday::Monday, Weekday::Saturday]);
        assert_eq!(e.ranges[0].from, 480);
        assert_eq!(e.ranges[1].from, 780);
        let err = |s: &str| s.parse::<WeeklyEntry>().expect_err(s).message;
        assert!(err("fri-mon 8-12").contains("runs backwards"));
        assert!(err("mon-fri").contains("no hours"));
        assert!(err("monday 8-12").contains("not a day of the week"));
        assert!(err("mon 8-12 11-13").contains("overlaps"));
        assert!(err("mon-fri 18-8").contains("ends before it starts"));
    }

    #[test]
    fn weekly_overlaps_are_refused() {
        let mut w = WeeklyHours::default();
        w.add(&"mon-fri 08:00-18:00".parse().expect("valid"))
            .expect("first line");
        let o = w
            .add(&"fri 08:00-13:00".parse().expect("valid"))
            .expect_err("overlap");
        assert_eq!(o.day, Weekday::Friday);
        assert_eq!(o.existing.to_string(), "08:00-18:00");
        w.add(&"sat 9-13".parse().expect("valid"))
            .expect("no overlap");
        assert_eq!(w.on(Weekday::Friday).len(), 1);
        assert_eq!(w.on(Weekday::Saturday).len(), 1);
    }

    #[test]
    fn closures() {
        let c = |s: &str| s.parse::<Closure>();
        let d = |y, m, dd| jiff::civil::date(y, m, dd);
        assert_eq!(
            c("2026-12-24"),
            Ok(Closure {
                days: ClosureDays::On(d(2026, 12, 24)),
                hours: TimeRange::WHOLE_DAY
            })
        );
        assert_eq!(
            c("2026-03-18 13:00-16:00").map(|x| x.hours.to_string()),
            Ok("13:00-16:00".into())
        );
        assert_eq!(c("12-31 ab 12").map(|x| x.hours.from), Ok(720));
        assert_eq!(c("12-31 until 10:00").map(|x| x.hours.to), Ok(600));
        let range = c("2026-12-28..2026-12-30").expect("valid");
        assert!(range.applies_to(d(2026, 12, 29)));
        assert!(!range.applies_to(d(2026, 12, 31)));
        assert!(c("02-29").is_ok());
        for bad in [
            "2026-02-30",
            "13-01",
            "2026-12-30..2026-12-28",
            "12-28..12-30",
            "2026-12-24 from",
            "2026-12-24 from 00:00",
            "2026-12-24 at 12:00",
            "24.12.2026",
            "2026-12-24 18-8",
        ] {
            assert!(c(bad).is_err(), "{bad}");
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn open_ranges_subtract_closures_and_reopen_after_them() {
        let mut s = Schedule::new("Europe/Berlin").expect("zone");
        s.add_weekly(&"mon-fri 08:00-18:00".parse().expect("valid"))
            .expect("line");
        s.add_closure("2026-11-25 13:00-16:00".parse().expect("valid"));
        // Wednesday 2026-11-25 (CET, UTC+1).
        assert_eq!(s.is_open(ts("2026-11-25T11:59:59Z")), Openness::Open);
        assert_eq!(
            s.is_open(ts("2026-11-25T12:00:00Z")),
            Openness::Closed {
                reason: ClosedReason::Closure,
                reopens_at: Some(ts("2026-11-25T15:00:00Z"))
            }
        );
        assert_eq!(s.is_open(ts("2026-11-25T15:00:00Z")), Openness::Open);
        // After hours on a Friday: Monday 08:00.
        assert_eq!(
            s.is_open(ts("2026-11-27T17:00:00Z")),
            Openness::Closed {
                reason: ClosedReason::OutsideHours,
                reopens_at: Some(ts("2026-11-30T07:00:00Z"))
            }
        );
    }

    #[test]
    fn without_weekly_hours_open_except_holidays() {
        let mut s = Schedule::new("Europe/Berlin").expect("zone");
        s.set_state(Some(FederalState::Hessen));
        assert_eq!(s.is_open(ts("2026-04-05T03:00:00Z")), Openness::Open);
        assert_eq!(
            s.is_open(ts("2026-04-06T10:00:00Z")),
            Openness::Closed {
                reason: ClosedReason::Holiday("Ostermontag"),
                // Tuesday 00:00 CEST.
                reopens_at: Some(ts("2026-04-06T22:00:00Z"))
            }
        );
    }

    #[test]
    fn never_open_has_no_reopening() {
        let mut s = Schedule::new("Europe/Berlin").expect("zone");
        s.add_closure("2026-01-01..2027-12-31".parse().expect("valid"));
        assert_eq!(
            s.is_open(ts("2026-06-01T10:00:00Z")),
            Openness::Closed {
                reason: ClosedReason::Closure,
                reopens_at: None
            }
        );
    }

    #[test]
    fn other_zones_and_unknown_ones() {
        let mut s = Schedule::new("America/New_York").expect("zone");
        s.add_weekly(&"mon-fri 9-17".parse().expect("valid"))
            .expect("line");
        // 09:30 EST is 14:30 UTC.
        assert_eq!(s.is_open(ts("2026-01-05T14:30:00Z")), Openness::Open);
        assert!(matches!(
            s.is_open(ts("2026-01-05T13:30:00Z")),
            Openness::Closed { .. }
        ));
        let e = Schedule::new("Europe/Berln").expect_err("typo");
        assert_eq!(e.message, "unknown time zone `Europe/Berln`");
    }
}
