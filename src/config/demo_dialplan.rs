//! The demo dialplan, table-driven with a fixed clock: each demo number on
//! a weekday, around closing time, on holidays, on a Saturday morning,
//! across both DST changes and on closure days; number forms, forwarded
//! calls, the Krefeld menu and number precedence. Here rather than in
//! `dialplan`, which knows nothing of the config it is built from.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::config::{Config, Overrides};
use crate::dialplan::*;

fn demo_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml");
        Config::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn demo() -> Dialplan {
    demo_config().dialplan()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn queue(r: &str) -> Target {
    Target::Queue(QueueRef::parse(r, "").expect("tenant/queue"))
}

/// What a decision should be, in short.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// Open, waiting in this queue.
    Open(String),
    /// Closed for this reason with this target, reopening then.
    Closed(ClosedReason, Target, Option<Timestamp>),
    /// Overflow when closed, to this target.
    Overflow(Target),
    Unknown,
}

fn short(d: &Decision) -> Want {
    match d {
        Decision::Hotline(r) => Want::Open(r.route.queue.clone().unwrap_or_default()),
        Decision::Closed {
            reason,
            target,
            reopens_at,
            ..
        } => Want::Closed(*reason, target.clone(), *reopens_at),
        Decision::Overflow { target, cause, .. } => {
            assert_eq!(*cause, OverflowCause::Closed);
            Want::Overflow(target.clone())
        }
        Decision::Unknown => Want::Unknown,
    }
}

const KASSEL: &str = "0561115";
const BUERGERAMT: &str = "05617870";
const KREFELD: &str = "02151860";
const PINNEBERG: &str = "04101115";
const QUICKBORN: &str = "041066110";

/// Reopening at this time.
fn at(s: &str) -> Option<Timestamp> {
    Some(ts(s))
}

fn open(q: &str) -> Want {
    Want::Open(q.to_string())
}

fn prompt(p: &str) -> Target {
    Target::Prompt(p.into())
}

#[test]
fn demo_numbers_through_the_week_and_the_year() {
    use ClosedReason::*;
    use Want::*;
    let d = demo();
    let hours = OutsideHours;
    let kassel_closed = || prompt("closed-kassel");
    let krefeld_closed = || prompt("closed-krefeld");
    let pinneberg_closed = || prompt("closed-115");
    let quickborn_closed = || prompt("closed-quickborn");
    let ba_closed = || prompt("closed");
    let to_pinneberg = || Overflow(queue("kreis-pinneberg/115"));
    let ostermontag = Holiday("Ostermontag");
    let einheit = Holiday("Tag der Deutschen Einheit");
    let fronleichnam = Holiday("Fronleichnam");
    #[rustfmt::skip]
    let table: Vec<(&str, &str, &str, Want)> = vec![
        // Tuesday 2026-11-24, CET (UTC+1).
        ("weekday 10:00", KASSEL, "2026-11-24T09:00:00Z", open("kassel/115")),
        ("weekday 10:00", "115", "2026-11-24T09:00:00Z", open("kassel/115")),
        ("weekday 10:00", BUERGERAMT, "2026-11-24T09:00:00Z", open("kassel/buergeramt")),
        ("weekday 10:00", KREFELD, "2026-11-24T09:00:00Z", open("krefeld/serviceportal")),
        ("weekday 10:00", PINNEBERG, "2026-11-24T09:00:00Z", open("kreis-pinneberg/115")),
        ("weekday 10:00", QUICKBORN, "2026-11-24T09:00:00Z", open("quickborn/rathaus")),
        ("weekday 10:00", "041066117", "2026-11-24T09:00:00Z", open("quickborn/rathaus")),
        ("weekday 10:00", "0561999", "2026-11-24T09:00:00Z", Unknown),
        // 17:59 and 18:01 on a Tuesday.
        ("17:59", KASSEL, "2026-11-24T16:59:00Z", open("kassel/115")),
        ("17:59", BUERGERAMT, "2026-11-24T16:59:00Z", Closed(hours, ba_closed(), at("2026-11-25T07:00:00Z"))),
        ("17:59", KREFELD, "2026-11-24T16:59:00Z", Closed(hours, krefeld_closed(), at("2026-11-25T07:00:00Z"))),
        ("17:59", PINNEBERG, "2026-11-24T16:59:00Z", open("kreis-pinneberg/115")),
        ("17:59", QUICKBORN, "2026-11-24T16:59:00Z", to_pinneberg()),
        ("18:01", KASSEL, "2026-11-24T17:01:00Z", Closed(hours, kassel_closed(), at("2026-11-25T06:00:00Z"))),
        ("18:01", PINNEBERG, "2026-11-24T17:01:00Z", Closed(hours, pinneberg_closed(), at("2026-11-25T07:00:00Z"))),
        ("18:01", QUICKBORN, "2026-11-24T17:01:00Z", Closed(hours, quickborn_closed(), at("2026-11-25T07:00:00Z"))),
        // Easter Monday 2026-04-06, 10:00 CEST (UTC+2): closed everywhere.
        ("Easter Monday", KASSEL, "2026-04-06T08:00:00Z", Closed(ostermontag, kassel_closed(), at("2026-04-07T05:00:00Z"))),
        ("Easter Monday", KREFELD, "2026-04-06T08:00:00Z", Closed(ostermontag, krefeld_closed(), at("2026-04-07T06:00:00Z"))),
        ("Easter Monday", PINNEBERG, "2026-04-06T08:00:00Z", Closed(ostermontag, pinneberg_closed(), at("2026-04-07T06:00:00Z"))),
        ("Easter Monday", QUICKBORN, "2026-04-06T08:00:00Z", Closed(ostermontag, quickborn_closed(), at("2026-04-07T06:00:00Z"))),
        // 3 October 2026 is a Saturday: Kassel would be open 9-13.
        ("3 October", KASSEL, "2026-10-03T08:00:00Z", Closed(einheit, kassel_closed(), at("2026-10-05T05:00:00Z"))),
        ("3 October", KREFELD, "2026-10-03T08:00:00Z", Closed(einheit, krefeld_closed(), at("2026-10-05T06:00:00Z"))),
        // Saturday morning 2026-11-28, 10:00 CET: Kassel open, Krefeld closed.
        ("Saturday", KASSEL, "2026-11-28T09:00:00Z", open("kassel/115")),
        ("Saturday 12:59", "115", "2026-11-28T11:59:00Z", open("kassel/115")),
        ("Saturday 13:00", KASSEL, "2026-11-28T12:00:00Z", Closed(hours, kassel_closed(), at("2026-11-30T06:00:00Z"))),
        ("Saturday", BUERGERAMT, "2026-11-28T09:00:00Z", Closed(hours, ba_closed(), at("2026-11-30T07:00:00Z"))),
        ("Saturday", KREFELD, "2026-11-28T09:00:00Z", Closed(hours, krefeld_closed(), at("2026-11-30T07:00:00Z"))),
        ("Saturday", QUICKBORN, "2026-11-28T09:00:00Z", Closed(hours, quickborn_closed(), at("2026-11-30T07:00:00Z"))),
        // DST starts Sunday 2026-03-29: Monday 07:30 CEST is 05:30 UTC.
        ("Monday after spring DST 07:30", KASSEL, "2026-03-30T05:30:00Z", open("kassel/115")),
        ("Monday after spring DST 06:59", KASSEL, "2026-03-30T04:59:00Z", Closed(hours, kassel_closed(), at("2026-03-30T05:00:00Z"))),
        ("Monday after spring DST 07:30", KREFELD, "2026-03-30T05:30:00Z", Closed(hours, krefeld_closed(), at("2026-03-30T06:00:00Z"))),
        ("Friday before spring DST 07:30", KASSEL, "2026-03-27T06:30:00Z", open("kassel/115")),
        ("Friday before spring DST 06:30", KASSEL, "2026-03-27T05:30:00Z", Closed(hours, kassel_closed(), at("2026-03-27T06:00:00Z"))),
        // Closed over the change: Saturday 13:00 CET to Monday 07:00 CEST.
        ("Saturday before spring DST", KASSEL, "2026-03-28T12:30:00Z", Closed(hours, kassel_closed(), at("2026-03-30T05:00:00Z"))),
        // DST ends Sunday 2026-10-25: Monday 07:30 CET is 06:30 UTC.
        ("Monday after autumn DST 07:30", KASSEL, "2026-10-26T06:30:00Z", open("kassel/115")),
        ("Monday after autumn DST 06:30", KASSEL, "2026-10-26T05:30:00Z", Closed(hours, kassel_closed(), at("2026-10-26T06:00:00Z"))),
        ("Friday before autumn DST 07:30", KASSEL, "2026-10-23T05:30:00Z", open("kassel/115")),
        ("Saturday before autumn DST", PINNEBERG, "2026-10-24T10:00:00Z", Closed(hours, pinneberg_closed(), at("2026-10-26T07:00:00Z"))),
        // 24 December 2026 (Thursday): Kassel closes at noon, then
        // Christmas and the weekend; Krefeld and Pinneberg are closed all day.
        ("24 December 11:59", KASSEL, "2026-12-24T10:59:00Z", open("kassel/115")),
        ("24 December 12:01", KASSEL, "2026-12-24T11:01:00Z", Closed(Closure, kassel_closed(), at("2026-12-28T06:00:00Z"))),
        ("24 December", KREFELD, "2026-12-24T09:00:00Z", Closed(Closure, krefeld_closed(), at("2026-12-28T07:00:00Z"))),
        ("24 December", PINNEBERG, "2026-12-24T09:00:00Z", Closed(Closure, pinneberg_closed(), at("2026-12-28T07:00:00Z"))),
        // The closures repeat every year: 2027-12-31 is a Friday.
        ("31 December 2027 12:30", KASSEL, "2027-12-31T11:30:00Z", Closed(Closure, kassel_closed(), at("2028-01-03T06:00:00Z"))),
        // Fronleichnam 2026-06-04: a holiday in Hessen and NRW, not in Schleswig-Holstein.
        ("Fronleichnam", KASSEL, "2026-06-04T08:00:00Z", Closed(fronleichnam, kassel_closed(), at("2026-06-05T05:00:00Z"))),
        ("Fronleichnam", KREFELD, "2026-06-04T08:00:00Z", Closed(fronleichnam, krefeld_closed(), at("2026-06-05T06:00:00Z"))),
        ("Fronleichnam", PINNEBERG, "2026-06-04T08:00:00Z", open("kreis-pinneberg/115")),
        ("Fronleichnam", QUICKBORN, "2026-06-04T08:00:00Z", open("quickborn/rathaus")),
        // Reformationstag 2025 (Friday): Schleswig-Holstein only.
        ("Reformationstag", PINNEBERG, "2025-10-31T09:00:00Z", Closed(Holiday("Reformationstag"), pinneberg_closed(), at("2025-11-03T07:00:00Z"))),
        ("Reformationstag", KASSEL, "2025-10-31T09:00:00Z", open("kassel/115")),
        // Krefeld's staff meeting, Wednesday 2027-03-10 13:00-17:00 CET.
        ("staff meeting 12:59", KREFELD, "2027-03-10T11:59:00Z", open("krefeld/serviceportal")),
        ("staff meeting 14:00", KREFELD, "2027-03-10T13:00:00Z", Closed(Closure, krefeld_closed(), at("2027-03-11T07:00:00Z"))),
        // Quickborn: Thursday afternoon open; Wednesday afternoon to the district.
        ("Thursday 15:00", QUICKBORN, "2026-11-26T14:00:00Z", open("quickborn/rathaus")),
        ("Wednesday 15:00", QUICKBORN, "2026-11-25T14:00:00Z", to_pinneberg()),
        // Krefeld on Friday: until 13:00.
        ("Friday 12:59", KREFELD, "2026-11-27T11:59:00Z", open("krefeld/serviceportal")),
        ("Friday 13:00", KREFELD, "2026-11-27T12:00:00Z", Closed(hours, krefeld_closed(), at("2026-11-30T07:00:00Z"))),
    ];
    let mut failures = Vec::new();
    for (label, number, at, want) in table {
        let got = short(&d.decide(&CallInput::to_number(number), ts(at)));
        if got != want {
            failures.push(format!(
                "{label}, {number} at {at}: got {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn national_and_international_forms() {
    let d = demo();
    let at = ts("2026-11-24T09:00:00Z");
    for dialled in [
        "0561115",
        "+49561115",
        "49561115",
        "0049561115",
        "+49 561 115",
        "0561115;phone-context=+49",
    ] {
        let Decision::Hotline(r) = d.decide(&CallInput::to_number(dialled), at) else {
            panic!("{dialled} not routed");
        };
        assert_eq!(r.route.hotline, "115", "{dialled}");
        assert_eq!(r.matched.number, "0561115", "{dialled}");
        assert_eq!(r.matched.kind, MatchKind::Exact);
        assert_eq!(r.origin.called, "0561115");
        assert!(r.origin.via_115, "{dialled}");
    }
    let Decision::Hotline(r) = d.decide(&CallInput::to_number("+494106611 3"), at) else {
        panic!("pattern not routed");
    };
    assert_eq!(
        (&*r.origin.tenant, r.matched.kind, r.route.number.as_str()),
        ("quickborn", MatchKind::Pattern, "04106611X")
    );
    assert_eq!(
        d.decide(&CallInput::to_number("+4941066110 9"), at),
        Decision::Unknown
    );
}

#[test]
fn origins_of_the_demo_hotlines() {
    let d = demo();
    let at = ts("2026-11-24T09:00:00Z");
    for (number, tenant, hotline, municipality, via_115, display) in [
        ("115", "kassel", "115", "Kassel", true, "Kassel 115"),
        (
            "05617870",
            "kassel",
            "buergeramt",
            "Kassel",
            false,
            "Kassel",
        ),
        (
            "02151860",
            "krefeld",
            "serviceportal",
            "Krefeld",
            false,
            "Krefeld",
        ),
        (
            "04101115",
            "kreis-pinneberg",
            "115",
            "Kreis Pinneberg",
            true,
            "Kreis Pinneberg 115",
        ),
        (
            "041066110",
            "quickborn",
            "rathaus",
            "Quickborn",
            false,
            "Quickborn",
        ),
    ] {
        let r = d
            .decide(&CallInput::to_number(number), at)
            .route()
            .cloned()
            .unwrap_or_else(|| panic!("{number} unknown"));
        let o = &r.origin;
        assert_eq!(
            (
                &*o.tenant,
                &*o.hotline,
                &*o.municipality,
                o.via_115,
                o.forwarded
            ),
            (tenant, hotline, municipality, via_115, false),
            "{number}"
        );
        assert_eq!(o.display(), display);
        assert_eq!(o.via_label(), if via_115 { "115" } else { "local" });
        assert_eq!(r.matched.source, NumberSource::RequestUri);
        // The 115 numbers have no menu; only Krefeld has one.
        assert_eq!(r.menu.is_some(), tenant == "krefeld", "{number}");
        assert_eq!(r.overflow.is_some(), tenant == "quickborn", "{number}");
    }
}

#[test]
fn forwarded_calls_keep_their_original_number() {
    let d = demo();
    let at = ts("2026-11-24T09:00:00Z");
    // Quickborn's PBX forwarded an unanswered call to the district's 115:
    // Pinneberg handles it, in Quickborn's name.
    let input = CallInput::from_sip(&SipHeaders {
        request_uri: "sip:04101115@127.0.0.1",
        to: "<sip:04101115@127.0.0.1>",
        from: "<sip:+4940555123@carrier>;tag=1",
        diversion: &["<sip:+4941066110@pbx.quickborn.example>;reason=no-answer;counter=1"],
        ..SipHeaders::default()
    });
    let Decision::Hotline(r) = d.decide(&input, at) else {
        panic!("not routed");
    };
    assert_eq!(r.route.queue.as_deref(), Some("kreis-pinneberg/115"));
    assert_eq!(r.matched.source, NumberSource::RequestUri);
    assert_eq!(
        (
            &*r.origin.tenant,
            &*r.origin.municipality,
            r.origin.called.as_str()
        ),
        ("quickborn", "Quickborn", "041066110")
    );
    assert!(r.origin.forwarded && !r.origin.via_115);

    // A carrier delivers to a pilot number we do not know and names the
    // dialled number in History-Info only.
    let input = CallInput::from_sip(&SipHeaders {
        request_uri: "sip:0800999000@127.0.0.1",
        to: "<sip:0800999000@127.0.0.1>",
        from: "<sip:anonymous@anonymous.invalid>;tag=1",
        history_info: &[
            "<sip:0800999000@127.0.0.1>;index=1.1;rc=1",
            "<sip:+4921518 60@carrier?Reason=SIP%3Bcause%3D302>;index=1",
        ],
        ..SipHeaders::default()
    });
    assert!(input.anonymous && input.caller.is_none());
    let Decision::Hotline(r) = d.decide(&input, at) else {
        panic!("not routed via History-Info");
    };
    assert_eq!(r.route.hotline, "serviceportal");
    assert_eq!(r.matched.source, NumberSource::HistoryInfo);
    assert_eq!(&*r.origin.municipality, "Krefeld");
    assert!(r.origin.forwarded);

    // Only To names a known number.
    let mut input = CallInput::to_number("0800999000");
    input.to_user = "+49561115".into();
    let Decision::Hotline(r) = d.decide(&input, at) else {
        panic!("not routed via To");
    };
    assert_eq!(r.matched.source, NumberSource::To);
    assert!(r.origin.via_115 && !r.origin.forwarded);

    // Forwarded from a number that is not ours: the routing hotline is the
    // origin, and 115 counts by the number that matched.
    let mut input = CallInput::to_number("115");
    input.diversion = Some("030 1234567".into());
    let Decision::Hotline(r) = d.decide(&input, at) else {
        panic!("not routed");
    };
    assert_eq!(
        (
            &*r.origin.municipality,
            r.origin.called.as_str(),
            r.origin.via_115,
            r.origin.forwarded
        ),
        ("Kassel", "0301234567", true, true)
    );
}

#[test]
fn the_krefeld_menu_sets_the_queue() {
    let d = demo();
    let at = ts("2026-11-24T09:00:00Z");
    let route = d
        .decide(&CallInput::to_number(KREFELD), at)
        .route()
        .cloned()
        .expect("krefeld");
    let spec = route.menu.clone().expect("krefeld has a menu");
    let t0 = Instant::now();
    for (keys, want, choice) in [
        (&['1'][..], "krefeld/kfz", MenuChoice::Digit('1')),
        (&['2'][..], "krefeld/meldewesen", MenuChoice::Digit('2')),
        (
            &['9', '9'][..],
            "krefeld/serviceportal",
            MenuChoice::TooManyInvalid,
        ),
        (&[][..], "krefeld/serviceportal", MenuChoice::Timeout),
    ] {
        let mut m = Menu::new(spec.clone());
        assert_eq!(
            m.start(t0),
            vec![MenuAction::Play(vec!["menu-krefeld".into()])]
        );
        let mut now = t0 + Duration::from_secs(9);
        let mut last = Vec::new();
        for &k in keys {
            m.prompt_finished(now);
            now += Duration::from_secs(2);
            last = m.on_digit(k, now);
        }
        if keys.is_empty() {
            m.prompt_finished(now);
            last = m.handle_timeout(m.poll_timeout().expect("a timer"));
        }
        assert_eq!(
            last,
            vec![MenuAction::Done {
                target: queue(want),
                choice
            }],
            "{keys:?}"
        );
    }
    // Every menu target is a queue that exists.
    for t in spec.digits.values().chain([&spec.default]) {
        let Target::Queue(q) = t else { panic!("{t}") };
        assert!(demo_config().queue(q).is_some(), "{q}");
    }
}

#[test]
fn surge_limits_per_tenant() {
    let d = demo();
    let at = ts("2026-11-24T09:00:00Z");
    let limits = |n: &str| {
        d.decide(&CallInput::to_number(n), at)
            .route()
            .expect("routed")
            .limits
            .clone()
    };
    let kassel = limits(KASSEL);
    assert_eq!(
        (kassel.max_calls, kassel.max_waiting),
        (Some(300), Some(200))
    );
    assert_eq!(kassel.admit(299, 0), Ok(()));
    assert_eq!(kassel.admit(300, 0), Err(BusyReason::MaxCalls));
    assert_eq!(kassel.busy, Target::call_later());
    assert!(
        Arc::ptr_eq(&kassel, &limits(BUERGERAMT)),
        "one set per tenant"
    );
    let quickborn = limits(QUICKBORN);
    assert_eq!(quickborn.admit(10_000, 10_000), Ok(()), "no limits set");
}

#[test]
fn quickborn_overflow_rules_are_in_its_queue() {
    let cfg = demo_config();
    let rathaus = cfg
        .queue(&QueueRef::parse("quickborn/rathaus", "").expect("ref"))
        .expect("rathaus");
    assert_eq!(rathaus.max_wait, Some(Duration::from_secs(20)));
    assert_eq!(rathaus.on_timeout, queue("kreis-pinneberg/115"));
    assert!(!rathaus.join_empty);
    assert_eq!(rathaus.on_no_agents, queue("kreis-pinneberg/115"));
    assert_eq!(
        rathaus.on_full,
        Target::call_later(),
        "no expected-wait rule"
    );
    let d = cfg.dialplan();
    let r = d
        .decide(&CallInput::to_number(QUICKBORN), ts("2026-11-24T09:00:00Z"))
        .route()
        .cloned()
        .expect("routed");
    let o = r.overflow.expect("overflow");
    assert_eq!(o.after, Some(Duration::from_secs(20)));
    assert_eq!(o.target_label(), "kreis-pinneberg/115");
    assert_eq!(
        o.cause_for(&rathaus.on_timeout, QueueExit::Timeout),
        Some(OverflowCause::NoAnswer)
    );
}

#[test]
fn exact_beats_pattern_beats_prefix() {
    let mut cfg = demo_config().clone();
    let kassel = &mut cfg.tenants[0].dialplan.hotlines;
    kassel[0].numbers.push("0561*".into());
    kassel[1]
        .numbers
        .extend(["0561787X".into(), "prefix:056178".into()]);
    let d = cfg.dialplan();
    for (n, hotline, kind) in [
        ("0561115", "115", MatchKind::Exact),
        ("05617870", "buergeramt", MatchKind::Exact),
        ("05617871", "buergeramt", MatchKind::Pattern),
        ("0561787", "buergeramt", MatchKind::Prefix),
        ("05617800", "buergeramt", MatchKind::Prefix),
        ("0561555", "115", MatchKind::Prefix),
        ("+49561555", "115", MatchKind::Prefix),
    ] {
        let r = d
            .decide(&CallInput::to_number(n), ts("2026-11-24T09:00:00Z"))
            .route()
            .cloned()
            .unwrap_or_else(|| panic!("{n} unknown"));
        assert_eq!(
            (r.route.hotline.as_str(), r.matched.kind),
            (hotline, kind),
            "{n}"
        );
        // The first version's lookup agrees.
        assert_eq!(
            d.route(n).map(|r| r.hotline.clone()).as_deref(),
            Some(hotline)
        );
    }
    assert_eq!(d.route("0562"), None);
}

#[test]
fn the_first_versions_route_is_unchanged() {
    let d = demo();
    let r = d.route("+49561115").expect("kassel");
    assert_eq!(
        (
            r.tenant.as_str(),
            r.tenant_name.as_str(),
            r.hotline.as_str(),
            r.number.as_str(),
            r.greeting.as_str(),
            r.queue.as_deref(),
            r.priority,
            r.answer_after
        ),
        (
            "kassel",
            "Stadt Kassel",
            "115",
            "0561115",
            "greeting-kassel",
            Some("kassel/115"),
            0,
            Duration::from_millis(300)
        )
    );
    let mut numbers: Vec<&str> = d.numbers().collect();
    numbers.sort();
    assert_eq!(
        numbers,
        [
            "02151860",
            "04101115",
            "041066110",
            "0561115",
            "05617870",
            "115"
        ]
    );
}

#[test]
fn building_is_pure_and_repeatable() {
    let cfg = demo_config();
    let (a, b) = (cfg.dialplan(), cfg.dialplan());
    let at = ts("2026-11-24T16:59:00Z");
    for n in [KASSEL, BUERGERAMT, KREFELD, PINNEBERG, QUICKBORN, "9"] {
        let input = CallInput::to_number(n);
        assert_eq!(a.decide(&input, at), b.decide(&input, at), "{n}");
    }
}
