//! German public holidays (gesetzliche Feiertage) per federal state.
//!
//! Fixed-date holidays, the Easter-based ones (Karfreitag, Ostermontag,
//! Christi Himmelfahrt, Pfingstmontag, Fronleichnam, ...) and Buß- und
//! Bettag, each for the states whose holiday law names it, with the year it
//! was introduced where that is recent (Reformationstag in the north since
//! 2018, Frauentag in Berlin since 2019, ...).
//!
//! Holidays that only some municipalities of a state keep (Mariä
//! Himmelfahrt in Bavaria, Fronleichnam in parts of Saxony and Thuringia,
//! the Augsburger Friedensfest) are left out: configure them as closure
//! days of the tenants concerned.
//!
//! ```
//! use jiff::civil::date;
//! use zentrale::dialplan::{FederalState, easter_sunday, holiday_on};
//!
//! assert_eq!(easter_sunday(2026), date(2026, 4, 5));
//! assert_eq!(holiday_on(date(2026, 4, 6), FederalState::Hessen), Some("Ostermontag"));
//! // Fronleichnam: Hessen and NRW, not Schleswig-Holstein.
//! assert_eq!(holiday_on(date(2026, 6, 4), FederalState::NordrheinWestfalen), Some("Fronleichnam"));
//! assert_eq!(holiday_on(date(2026, 6, 4), FederalState::SchleswigHolstein), None);
//! ```

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Weekday, date};

use super::SyntaxError;

/// A German federal state (Bundesland), the unit of holiday law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FederalState {
    BadenWuerttemberg,
    Bayern,
    Berlin,
    Brandenburg,
    Bremen,
    Hamburg,
    Hessen,
    MecklenburgVorpommern,
    Niedersachsen,
    NordrheinWestfalen,
    RheinlandPfalz,
    Saarland,
    Sachsen,
    SachsenAnhalt,
    SchleswigHolstein,
    Thueringen,
}

use FederalState::*;

impl FederalState {
    /// Every state, in the order of their codes' usual listing.
    pub const ALL: [FederalState; 16] = [
        BadenWuerttemberg,
        Bayern,
        Berlin,
        Brandenburg,
        Bremen,
        Hamburg,
        Hessen,
        MecklenburgVorpommern,
        Niedersachsen,
        NordrheinWestfalen,
        RheinlandPfalz,
        Saarland,
        Sachsen,
        SachsenAnhalt,
        SchleswigHolstein,
        Thueringen,
    ];

    /// The two-letter code (ISO 3166-2:DE without `DE-`), e.g. `HE`.
    pub fn code(self) -> &'static str {
        match self {
            BadenWuerttemberg => "BW",
            Bayern => "BY",
            Berlin => "BE",
            Brandenburg => "BB",
            Bremen => "HB",
            Hamburg => "HH",
            Hessen => "HE",
            MecklenburgVorpommern => "MV",
            Niedersachsen => "NI",
            NordrheinWestfalen => "NW",
            RheinlandPfalz => "RP",
            Saarland => "SL",
            Sachsen => "SN",
            SachsenAnhalt => "ST",
            SchleswigHolstein => "SH",
            Thueringen => "TH",
        }
    }

    /// The German name, e.g. `Nordrhein-Westfalen`.
    pub fn name(self) -> &'static str {
        match self {
            BadenWuerttemberg => "Baden-Württemberg",
            Bayern => "Bayern",
            Berlin => "Berlin",
            Brandenburg => "Brandenburg",
            Bremen => "Bremen",
            Hamburg => "Hamburg",
            Hessen => "Hessen",
            MecklenburgVorpommern => "Mecklenburg-Vorpommern",
            Niedersachsen => "Niedersachsen",
            NordrheinWestfalen => "Nordrhein-Westfalen",
            RheinlandPfalz => "Rheinland-Pfalz",
            Saarland => "Saarland",
            Sachsen => "Sachsen",
            SachsenAnhalt => "Sachsen-Anhalt",
            SchleswigHolstein => "Schleswig-Holstein",
            Thueringen => "Thüringen",
        }
    }
}

impl fmt::Display for FederalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for FederalState {
    type Err = SyntaxError;

    /// The code (`HE`, `de-he`) or the German name (`Hessen`,
    /// `Thüringen`/`Thueringen`), any case.
    fn from_str(s: &str) -> Result<FederalState, SyntaxError> {
        let t = s.trim();
        let code = t
            .strip_prefix("DE-")
            .or_else(|| t.strip_prefix("de-"))
            .unwrap_or(t);
        let folded = fold(t);
        FederalState::ALL
            .into_iter()
            .find(|st| st.code().eq_ignore_ascii_case(code) || fold(st.name()) == folded)
            .ok_or_else(|| SyntaxError {
                message: format!("unknown federal state `{s}`"),
                hint: format!(
                    "write the two-letter code of the state whose public holidays apply: {}",
                    FederalState::ALL
                        .iter()
                        .map(|st| format!("{} ({})", st.code(), st.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }
}

/// Lower case with umlauts spelt out, so `Thüringen` and `thueringen` match.
fn fold(s: &str) -> String {
    s.to_lowercase()
        .replace('ü', "ue")
        .replace('ä', "ae")
        .replace('ö', "oe")
        .replace('ß', "ss")
}

/// Easter Sunday of `year` in the Gregorian calendar (the anonymous
/// Gregorian algorithm, Meeus/Jones/Butcher). Valid for years 1583-9999.
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let n = h + l - 7 * m + 114;
    // n / 31 is 3 or 4 and n % 31 + 1 at most 31: both fit in i8.
    date(year, (n / 31) as i8, (n % 31 + 1) as i8)
}

/// When a holiday falls in a year.
#[derive(Debug, Clone, Copy)]
enum When {
    Fixed(i8, i8),
    /// Days after Easter Sunday (negative: before).
    Easter(i16),
    /// The last Wednesday before 23 November.
    BussUndBettag,
}

/// Which states keep a holiday, and in which years.
#[derive(Debug, Clone, Copy)]
struct Rule {
    name: &'static str,
    when: When,
    /// `None`: every state.
    states: Option<&'static [FederalState]>,
    first_year: i16,
    last_year: i16,
}

const ALWAYS: (i16, i16) = (i16::MIN, i16::MAX);

const fn rule(
    name: &'static str,
    when: When,
    states: Option<&'static [FederalState]>,
    (first_year, last_year): (i16, i16),
) -> Rule {
    Rule {
        name,
        when,
        states,
        first_year,
        last_year,
    }
}

/// The holiday laws of the states, as of 2026.
const RULES: &[Rule] = &[
    rule("Neujahr", When::Fixed(1, 1), None, ALWAYS),
    rule(
        "Heilige Drei Könige",
        When::Fixed(1, 6),
        Some(&[BadenWuerttemberg, Bayern, SachsenAnhalt]),
        ALWAYS,
    ),
    rule(
        "Internationaler Frauentag",
        When::Fixed(3, 8),
        Some(&[Berlin]),
        (2019, i16::MAX),
    ),
    rule(
        "Internationaler Frauentag",
        When::Fixed(3, 8),
        Some(&[MecklenburgVorpommern]),
        (2023, i16::MAX),
    ),
    rule("Karfreitag", When::Easter(-2), None, ALWAYS),
    rule(
        "Ostersonntag",
        When::Easter(0),
        Some(&[Brandenburg]),
        ALWAYS,
    ),
    rule("Ostermontag", When::Easter(1), None, ALWAYS),
    rule("Tag der Arbeit", When::Fixed(5, 1), None, ALWAYS),
    // One-off holidays of Berlin (75th and 80th anniversary of the end of the war).
    rule(
        "Tag der Befreiung",
        When::Fixed(5, 8),
        Some(&[Berlin]),
        (2020, 2020),
    ),
    rule(
        "Tag der Befreiung",
        When::Fixed(5, 8),
        Some(&[Berlin]),
        (2025, 2025),
    ),
    rule("Christi Himmelfahrt", When::Easter(39), None, ALWAYS),
    rule(
        "Pfingstsonntag",
        When::Easter(49),
        Some(&[Brandenburg]),
        ALWAYS,
    ),
    rule("Pfingstmontag", When::Easter(50), None, ALWAYS),
    rule(
        "Fronleichnam",
        When::Easter(60),
        Some(&[
            BadenWuerttemberg,
            Bayern,
            Hessen,
            NordrheinWestfalen,
            RheinlandPfalz,
            Saarland,
        ]),
        ALWAYS,
    ),
    rule(
        "Mariä Himmelfahrt",
        When::Fixed(8, 15),
        Some(&[Saarland]),
        ALWAYS,
    ),
    rule(
        "Weltkindertag",
        When::Fixed(9, 20),
        Some(&[Thueringen]),
        (2019, i16::MAX),
    ),
    rule(
        "Tag der Deutschen Einheit",
        When::Fixed(10, 3),
        None,
        (1990, i16::MAX),
    ),
    rule(
        "Reformationstag",
        When::Fixed(10, 31),
        Some(&[
            Brandenburg,
            MecklenburgVorpommern,
            Sachsen,
            SachsenAnhalt,
            Thueringen,
        ]),
        ALWAYS,
    ),
    rule(
        "Reformationstag",
        When::Fixed(10, 31),
        Some(&[Bremen, Hamburg, Niedersachsen, SchleswigHolstein]),
        (2018, i16::MAX),
    ),
    // The 500th anniversary was a holiday everywhere.
    rule("Reformationstag", When::Fixed(10, 31), None, (2017, 2017)),
    rule(
        "Allerheiligen",
        When::Fixed(11, 1),
        Some(&[
            BadenWuerttemberg,
            Bayern,
            NordrheinWestfalen,
            RheinlandPfalz,
            Saarland,
        ]),
        ALWAYS,
    ),
    rule(
        "Buß- und Bettag",
        When::BussUndBettag,
        Some(&[Sachsen]),
        ALWAYS,
    ),
    rule("1. Weihnachtstag", When::Fixed(12, 25), None, ALWAYS),
    rule("2. Weihnachtstag", When::Fixed(12, 26), None, ALWAYS),
];

/// A public holiday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    pub date: Date,
    /// The German name, e.g. `Ostermontag`.
    pub name: &'static str,
}

/// The public holidays of `state` in `year`, by date (one entry per date).
pub fn holidays(year: i16, state: FederalState) -> Vec<Holiday> {
    let easter = easter_sunday(year);
    let mut out: Vec<Holiday> = rules(year, state)
        .map(|r| Holiday {
            date: r.date(year, easter),
            name: r.name,
        })
        .collect();
    out.sort_by_key(|h| h.date);
    out.dedup_by_key(|h| h.date);
    out
}

/// The name of the public holiday on `day` in `state`, if it is one.
///
/// The one [`holidays`] would list: the first rule for that date (the
/// sort keeps the rules' order among equal dates, the dedup the first).
/// Asked for every call, so without building the year's list.
pub fn holiday_on(day: Date, state: FederalState) -> Option<&'static str> {
    let year = day.year();
    let easter = easter_sunday(year);
    rules(year, state)
        .find(|r| r.date(year, easter) == day)
        .map(|r| r.name)
}

/// The rules in force in `year` in `state`, in their order.
fn rules(year: i16, state: FederalState) -> impl Iterator<Item = &'static Rule> {
    RULES
        .iter()
        .filter(move |r| (r.first_year..=r.last_year).contains(&year))
        .filter(move |r| r.states.is_none_or(|s| s.contains(&state)))
}

impl Rule {
    /// The date in `year` (whose Easter Sunday is `easter`).
    fn date(&self, year: i16, easter: Date) -> Date {
        match self.when {
            When::Fixed(m, d) => date(year, m, d),
            // Offsets are at most 60 days; the sum stays inside the year.
            When::Easter(days) => easter
                .checked_add(jiff::Span::new().days(days))
                .unwrap_or(easter),
            When::BussUndBettag => buss_und_bettag(year),
        }
    }
}

/// The Wednesday before 23 November (16 to 22 November).
fn buss_und_bettag(year: i16) -> Date {
    let nov22 = date(year, 11, 22);
    let back = (nov22.weekday().to_monday_zero_offset()
        - Weekday::Wednesday.to_monday_zero_offset())
    .rem_euclid(7);
    nov22
        .checked_sub(jiff::Span::new().days(i64::from(back)))
        .unwrap_or(nov22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_dates() {
        for (year, m, d) in [
            (1943, 4, 25), // the latest possible
            (2008, 3, 23),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22), // the earliest possible
        ] {
            assert_eq!(easter_sunday(year), date(year, m, d), "{year}");
        }
    }

    fn dates(year: i16, state: FederalState) -> Vec<(i8, i8)> {
        holidays(year, state)
            .iter()
            .map(|h| (h.date.month(), h.date.day()))
            .collect()
    }

    #[test]
    fn hessen_nrw_and_schleswig_holstein_2026() {
        let common = [(1, 1), (4, 3), (4, 6), (5, 1), (5, 14), (5, 25)];
        let mut he = common.to_vec();
        he.extend([(6, 4), (10, 3), (12, 25), (12, 26)]);
        assert_eq!(dates(2026, Hessen), he);
        let mut nw = common.to_vec();
        nw.extend([(6, 4), (10, 3), (11, 1), (12, 25), (12, 26)]);
        assert_eq!(dates(2026, NordrheinWestfalen), nw);
        let mut sh = common.to_vec();
        sh.extend([(10, 3), (10, 31), (12, 25), (12, 26)]);
        assert_eq!(dates(2026, SchleswigHolstein), sh);
    }

    #[test]
    fn state_specific_days() {
        let on = |y, m, d, st| holiday_on(date(y, m, d), st);
        assert_eq!(on(2026, 1, 6, Bayern), Some("Heilige Drei Könige"));
        assert_eq!(on(2026, 1, 6, Hessen), None);
        assert_eq!(on(2026, 3, 8, Berlin), Some("Internationaler Frauentag"));
        assert_eq!(on(2018, 3, 8, Berlin), None);
        assert_eq!(on(2022, 3, 8, MecklenburgVorpommern), None);
        assert_eq!(
            on(2023, 3, 8, MecklenburgVorpommern),
            Some("Internationaler Frauentag")
        );
        assert_eq!(on(2026, 4, 5, Brandenburg), Some("Ostersonntag"));
        assert_eq!(on(2026, 5, 24, Brandenburg), Some("Pfingstsonntag"));
        assert_eq!(on(2026, 4, 5, Hessen), None);
        assert_eq!(on(2026, 8, 15, Saarland), Some("Mariä Himmelfahrt"));
        assert_eq!(on(2026, 8, 15, Bayern), None);
        assert_eq!(on(2026, 9, 20, Thueringen), Some("Weltkindertag"));
        assert_eq!(on(2025, 10, 31, SchleswigHolstein), Some("Reformationstag"));
        assert_eq!(on(2017, 10, 31, SchleswigHolstein), Some("Reformationstag"));
        assert_eq!(on(2016, 10, 31, SchleswigHolstein), None);
        assert_eq!(on(2017, 10, 31, Hessen), Some("Reformationstag"));
        assert_eq!(on(2025, 10, 31, Hessen), None);
        assert_eq!(on(2026, 11, 1, NordrheinWestfalen), Some("Allerheiligen"));
        assert_eq!(on(2026, 11, 1, Hessen), None);
        assert_eq!(on(2025, 5, 8, Berlin), Some("Tag der Befreiung"));
        assert_eq!(on(2026, 5, 8, Berlin), None);
        assert_eq!(on(1989, 10, 3, Hessen), None);
    }

    /// Christi Himmelfahrt fell on 1 May in 2008: one date, two rules.
    #[test]
    fn holiday_on_names_what_the_year_list_names() {
        for year in [2008, 2017, 2018, 2025, 2026] {
            for st in FederalState::ALL {
                let list = holidays(year, st);
                let mut day = date(year, 1, 1);
                while day.year() == year {
                    let listed = list.iter().find(|h| h.date == day).map(|h| h.name);
                    assert_eq!(holiday_on(day, st), listed, "{day} {st:?}");
                    day = day.tomorrow().expect("inside the calendar");
                }
            }
        }
    }

    #[test]
    fn buss_und_bettag_is_the_wednesday_before_the_23rd_of_november() {
        for (year, day) in [(2023, 22), (2024, 20), (2025, 19), (2026, 18), (2027, 17)] {
            let d = date(year, 11, day);
            assert_eq!(d.weekday(), Weekday::Wednesday, "{year}");
            assert_eq!(holiday_on(d, Sachsen), Some("Buß- und Bettag"), "{year}");
            assert_eq!(holiday_on(d, Hessen), None, "{year}");
        }
    }

    #[test]
    fn every_state_has_the_nationwide_days() {
        for st in FederalState::ALL {
            let names: Vec<&str> = holidays(2026, st).iter().map(|h| h.name).collect();
            for n in [
                "Neujahr",
                "Karfreitag",
                "Ostermontag",
                "Tag der Arbeit",
                "Christi Himmelfahrt",
                "Pfingstmontag",
                "Tag der Deutschen Einheit",
                "1. Weihnachtstag",
                "2. Weihnachtstag",
            ] {
                assert!(names.contains(&n), "{st}: {n} missing in {names:?}");
            }
        }
    }

    #[test]
    fn states_by_code_and_name() {
        for st in FederalState::ALL {
            assert_eq!(st.code().parse::<FederalState>(), Ok(st));
            assert_eq!(st.code().to_lowercase().parse::<FederalState>(), Ok(st));
            assert_eq!(st.name().parse::<FederalState>(), Ok(st));
            assert_eq!(format!("DE-{}", st.code()).parse::<FederalState>(), Ok(st));
        }
        assert_eq!("thueringen".parse::<FederalState>(), Ok(Thueringen));
        assert_eq!(
            "nordrhein-westfalen".parse::<FederalState>(),
            Ok(NordrheinWestfalen)
        );
        let e = "HS".parse::<FederalState>().expect_err("no such state");
        assert_eq!(e.message, "unknown federal state `HS`");
        assert!(e.hint.contains("HE (Hessen)"), "{}", e.hint);
        assert!("Bavaria".parse::<FederalState>().is_err());
    }
}
