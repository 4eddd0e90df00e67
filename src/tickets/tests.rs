//! Due times on real calendars, and the ticket rules.

use jiff::Timestamp;
use jiff::civil::DateTime;

use super::*;
use crate::dialplan::{FederalState, Schedule};

/// Krefeld as the issue describes it: Mon–Thu 8–17, Fri 8–13, the public
/// holidays of North Rhine-Westphalia.
fn krefeld() -> Schedule {
    let mut s = Schedule::new("Europe/Berlin").unwrap();
    s.add_weekly(&"mon-thu 08:00-17:00".parse().unwrap())
        .unwrap();
    s.add_weekly(&"fri 08:00-13:00".parse().unwrap()).unwrap();
    s.set_state(Some(FederalState::NordrheinWestfalen));
    s
}

/// A civil time in Berlin as an instant.
fn berlin(civil: &str) -> Timestamp {
    civil
        .parse::<DateTime>()
        .unwrap()
        .in_tz("Europe/Berlin")
        .unwrap()
        .timestamp()
}

/// The due time as civil time in Berlin, for readable assertions.
fn due_in_berlin(schedule: Option<&Schedule>, created: &str) -> String {
    due_time(schedule, berlin(created))
        .in_tz("Europe/Berlin")
        .unwrap()
        .datetime()
        .to_string()
}

#[test]
fn the_issue_example_friday_noon_is_due_wednesday_13_00() {
    // Friday 2026-11-20 12:00: 1 h Friday, 9 h Monday, 9 h Tuesday, 5 h Wednesday.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-20T12:00"),
        "2026-11-25T13:00:00"
    );
}

#[test]
fn a_weekend_ticket_starts_counting_on_monday_morning() {
    // Saturday: nothing counts until Monday 08:00; 9 + 9 + 6 h.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-21T10:00"),
        "2026-11-25T14:00:00"
    );
    // Sunday evening, the same.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-22T23:30"),
        "2026-11-25T14:00:00"
    );
}

#[test]
fn tickets_created_outside_hours_count_from_the_next_opening() {
    // Monday 06:00, before opening: as if created at 08:00.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-23T06:00"),
        "2026-11-25T14:00:00"
    );
    // Thursday 18:00, after closing: 5 h Friday, 9 h Monday, 9 h Tuesday, 1 h Wednesday.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-19T18:00"),
        "2026-11-25T09:00:00"
    );
    // Friday 13:00 sharp is closing time: the weekend and then three days.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-11-20T13:00"),
        "2026-11-25T14:00:00"
    );
}

#[test]
fn easter_skips_good_friday_and_easter_monday() {
    // Maundy Thursday 2026-04-02 16:00: 1 h Thursday; Good Friday (04-03)
    // and Easter Monday (04-06) closed; 9 h Tuesday, 9 h Wednesday, 5 h Thursday.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2026-04-02T16:00"),
        "2026-04-09T13:00:00"
    );
}

#[test]
fn german_unity_day_is_not_counted() {
    // Wednesday 2024-10-02 12:00; Thursday 3 October is closed: 5 h
    // Wednesday, 5 h Friday, 9 h Monday, 5 h Tuesday. Without the holiday
    // (checked with a calendar without holidays) it would be 5 + 9 + 5 h
    // and 5 h on Monday.
    assert_eq!(
        due_in_berlin(Some(&krefeld()), "2024-10-02T12:00"),
        "2024-10-08T13:00:00"
    );
    let mut no_holidays = krefeld();
    no_holidays.set_state(None);
    assert_eq!(
        due_in_berlin(Some(&no_holidays), "2024-10-02T12:00"),
        "2024-10-07T13:00:00"
    );
}

#[test]
fn closures_are_not_counted() {
    let mut s = krefeld();
    // The whole Monday after the example Friday, and Tuesday afternoon.
    s.add_closure("2026-11-23".parse().unwrap());
    s.add_closure("2026-11-24 from 12:00".parse().unwrap());
    // 1 h Friday, 4 h Tuesday, 9 h Wednesday, 9 h Thursday, 1 h Friday.
    assert_eq!(
        due_in_berlin(Some(&s), "2026-11-20T12:00"),
        "2026-11-27T09:00:00"
    );
}

#[test]
fn daylight_saving_changes_keep_office_hours_in_local_time() {
    // Friday 2026-03-27 12:00 CET; clocks go forward on Sunday 03-29.
    // Office hours are wall-clock hours: due Wednesday 13:00 CEST, which
    // is 11:00 UTC (it would be 12:00 UTC without the change).
    let due = due_time(Some(&krefeld()), berlin("2026-03-27T12:00"));
    assert_eq!(due, "2026-04-01T11:00:00Z".parse::<Timestamp>().unwrap());
    // Friday 2026-10-23 12:00 CEST; clocks go back on Sunday 10-25.
    let due = due_time(Some(&krefeld()), berlin("2026-10-23T12:00"));
    assert_eq!(due, "2026-10-28T12:00:00Z".parse::<Timestamp>().unwrap());
}

#[test]
fn around_the_clock_counts_elapsed_hours_across_a_dst_change() {
    // Open every day all day: 24 service hours are 24 real hours, so over
    // the 23-hour day in March the wall clock reads one hour later, over
    // the 25-hour day in October one hour earlier.
    let mut always = Schedule::new("Europe/Berlin").unwrap();
    always
        .add_weekly(&"mon-sun 00:00-24:00".parse().unwrap())
        .unwrap();
    assert_eq!(
        due_in_berlin(Some(&always), "2026-03-28T12:00"),
        "2026-03-29T13:00:00"
    );
    assert_eq!(
        due_in_berlin(Some(&always), "2026-10-24T12:00"),
        "2026-10-25T11:00:00"
    );
    // No calendar at all is the same as around the clock.
    assert_eq!(
        due_in_berlin(None, "2026-10-24T12:00"),
        "2026-10-25T11:00:00"
    );
}

#[test]
fn a_calendar_that_never_opens_falls_back_to_clock_hours() {
    let mut never = Schedule::new("Europe/Berlin").unwrap();
    never
        .add_weekly(&"mon 08:00-09:00".parse().unwrap())
        .unwrap();
    never.add_closure("2026-01-01..2028-12-31".parse().unwrap());
    assert_eq!(
        due_in_berlin(Some(&never), "2026-11-20T12:00"),
        "2026-11-21T12:00:00"
    );
}

fn tenants() -> Tenants {
    let mut t = Tenants::default();
    t.insert(
        "krefeld",
        TenantInfo {
            municipality: "Krefeld".into(),
            queues: vec!["115".into(), "buergeramt".into()],
            schedule: Some(krefeld()),
        },
    );
    t
}

fn draft() -> Draft {
    Draft {
        tenant: "krefeld".into(),
        queue: Some("buergeramt".into()),
        callback_number: Some("02151 86-1234".into()),
        topic: "Termin für den Personalausweis".into(),
        created_by: "1001".into(),
        note: Some("Ruft aus dem Ausland zurück".into()),
        ..Draft::default()
    }
}

#[test]
fn a_valid_draft_becomes_an_open_ticket_with_its_first_history_entry() {
    let mut book = Book::default();
    let now = berlin("2026-11-20T12:00");
    let t = book.prepare(draft(), &tenants(), now).unwrap();
    assert_eq!(t.id, 1);
    assert_eq!(t.callback_number.as_deref(), Some("02151861234"));
    assert_eq!(
        t.destination,
        Destination::Queue(QueueRef {
            tenant: "krefeld".into(),
            queue: "buergeramt".into()
        })
    );
    assert_eq!(t.origin.municipality, "Krefeld");
    assert_eq!(t.due_at, berlin("2026-11-25T13:00"));
    assert_eq!(t.history.len(), 1);
    assert_eq!(t.history[0].action, Action::Created);
    assert_eq!(t.history[0].who, "1001");
    assert_eq!(t.masked_number().as_deref(), Some("02151861xxx"));
    // Prepared is not kept: the next prepare gets the same id until insert.
    assert_eq!(book.prepare(draft(), &tenants(), now).unwrap().id, 1);
    book.insert(t);
    assert_eq!(book.prepare(draft(), &tenants(), now).unwrap().id, 2);
}

#[test]
fn bad_drafts_name_every_problem() {
    let book = Book::default();
    let now = berlin("2026-11-20T12:00");
    let bad = Draft {
        tenant: "krefeld".into(),
        queue: Some("nope".into()),
        callback_number: Some("call me".into()),
        topic: " ".into(),
        leika: Some("123".into()),
        created_by: String::new(),
        ..Draft::default()
    };
    let problems = book.prepare(bad, &tenants(), now).unwrap_err();
    let all = problems.join("\n");
    for needle in [
        "unknown queue `nope`",
        "not a phone number",
        "topic is missing",
        "LeiKa",
        "created_by",
    ] {
        assert!(all.contains(needle), "{needle} missing in:\n{all}");
    }
    let email = Draft {
        channel: Channel::Email("nobody".into()),
        ..draft()
    };
    let problems = book.prepare(email, &tenants(), now).unwrap_err();
    assert!(
        problems[0].contains("not an e-mail address"),
        "{problems:?}"
    );
    let unknown = Draft {
        tenant: "atlantis".into(),
        ..draft()
    };
    let problems = book.prepare(unknown, &tenants(), now).unwrap_err();
    assert!(
        problems[0].contains("unknown tenant `atlantis`; use one of: krefeld"),
        "{problems:?}"
    );
    let no_number = Draft {
        callback_number: None,
        ..draft()
    };
    let problems = book.prepare(no_number, &tenants(), now).unwrap_err();
    assert!(
        problems[0].contains("needs `callback_number`"),
        "{problems:?}"
    );
    // An e-mail ticket needs no number.
    let mail = Draft {
        callback_number: None,
        channel: Channel::Email("buerger@example.org".into()),
        ..draft()
    };
    assert!(book.prepare(mail, &tenants(), now).is_ok());
}

#[test]
fn state_changes_follow_the_rules_and_leave_history() {
    let mut book = Book::default();
    let t0 = berlin("2026-11-20T12:00");
    let t = book.prepare(draft(), &tenants(), t0).unwrap();
    book.insert(t);
    let t1 = berlin("2026-11-23T09:00");
    let e = book
        .plan_change(1, State::InProgress, "1002", Some("übernommen".into()), t1)
        .unwrap();
    book.apply_change(1, e);
    let e = book
        .plan_change(1, State::CalledBack, "1002", None, t1)
        .unwrap();
    book.apply_change(1, e);
    // called_back may not go back to open.
    assert_eq!(
        book.plan_change(1, State::Open, "1002", None, t1),
        Err(ChangeError::Illegal {
            id: 1,
            from: State::CalledBack,
            to: State::Open
        })
    );
    let e = book
        .plan_change(1, State::Closed, "1002", None, t1)
        .unwrap();
    book.apply_change(1, e);
    let closed = book.plan_change(1, State::InProgress, "1002", None, t1);
    assert!(
        closed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("a closed ticket stays closed")),
        "{closed:?}"
    );
    assert_eq!(
        book.plan_change(9, State::Closed, "x", None, t1),
        Err(ChangeError::UnknownTicket(9))
    );
    let t = book.get(1).unwrap();
    assert_eq!(t.state, State::Closed);
    let actions: Vec<Action> = t.history.iter().map(|h| h.action).collect();
    assert_eq!(
        actions,
        [
            Action::Created,
            Action::StateChanged {
                from: State::Open,
                to: State::InProgress
            },
            Action::StateChanged {
                from: State::InProgress,
                to: State::CalledBack
            },
            Action::StateChanged {
                from: State::CalledBack,
                to: State::Closed
            },
        ]
    );
    assert_eq!(t.history[1].note.as_deref(), Some("übernommen"));
    assert_eq!(
        t.history.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    // No state becomes itself.
    for s in State::ALL {
        assert!(!s.can_become(s), "{s}");
    }
}

#[test]
fn counts_and_filters_see_overdue_tickets() {
    let mut book = Book::default();
    let created = berlin("2026-11-20T12:00");
    for _ in 0..3 {
        let t = book.prepare(draft(), &tenants(), created).unwrap();
        book.insert(t);
    }
    let e = book
        .plan_change(3, State::Closed, "1001", None, created)
        .unwrap();
    book.apply_change(3, e);
    let before = berlin("2026-11-25T12:59");
    let after = berlin("2026-11-25T13:00");
    assert_eq!(
        book.counts(before).get("krefeld"),
        Some(&Counts {
            open: 2,
            overdue: 0
        })
    );
    assert_eq!(
        book.counts(after).get("krefeld"),
        Some(&Counts {
            open: 2,
            overdue: 2
        })
    );
    let overdue = Filter {
        overdue: Some(true),
        ..Filter::default()
    };
    let ids: Vec<u64> = book.list(&overdue, after).map(|t| t.id).collect();
    assert_eq!(ids, [1, 2]);
    let closed = Filter {
        state: Some(State::Closed),
        tenant: Some("krefeld".into()),
        overdue: None,
    };
    let ids: Vec<u64> = book.list(&closed, after).map(|t| t.id).collect();
    assert_eq!(ids, [3]);
}

#[test]
fn phone_numbers_and_addresses() {
    assert_eq!(
        phone_number("+49 (2151) 86-1234").as_deref(),
        Some("+492151861234")
    );
    assert_eq!(phone_number("12"), None);
    assert_eq!(phone_number("0800 abc"), None);
    assert_eq!(phone_number("+"), None);
    assert!(email_address("a.b@krefeld.de"));
    assert!(!email_address("a b@krefeld.de"));
    assert!(!email_address("ab@localhost"));
    assert!(!email_address("@krefeld.de"));
}
