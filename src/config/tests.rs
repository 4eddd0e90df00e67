//! Tests for config loading: the demo deployment, every validation rule with
//! its position, overrides and the demo-password rule.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A scratch directory with a config tree in it, removed on drop.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "zentrale-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sounds")).expect("create temp dir");
        Fixture { dir }
    }

    fn file(&self, name: &str, text: &str) -> &Self {
        let p = self.dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(p, text).expect("write file");
        self
    }

    fn sounds(&self, names: &[&str]) -> &Self {
        for n in names {
            self.file(&format!("sounds/{n}.wav"), "");
        }
        self
    }

    /// The fixed ACD prompts and the default music, which every config needs.
    fn acd_sounds(&self) -> &Self {
        for n in acd_prompts() {
            self.file(&format!("sounds/{n}.wav"), "");
        }
        self.sounds(&["moh"])
    }

    fn main(&self) -> PathBuf {
        self.dir.join("zentrale.yaml")
    }

    fn load(&self, ov: &Overrides) -> Result<Config, ConfigErrors> {
        Config::load(&self.main(), ov)
    }

    fn errors(&self) -> Vec<ConfigError> {
        match self.load(&Overrides::default()) {
            Ok(_) => panic!("expected errors, config loaded"),
            Err(e) => e.0,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one error whose message contains `needle`; fails listing all errors.
fn find<'a>(errs: &'a [ConfigError], needle: &str) -> &'a ConfigError {
    let hits: Vec<&ConfigError> = errs.iter().filter(|e| e.message.contains(needle)).collect();
    assert_eq!(
        hits.len(),
        1,
        "want exactly one error containing {needle:?}, got:\n{}",
        ConfigErrors(errs.to_vec())
    );
    hits[0]
}

fn at(e: &ConfigError, file: &Path, line: usize, column: usize) {
    assert_eq!(
        (e.file.as_path(), e.line, e.column),
        (file, line, column),
        "wrong place for: {e}"
    );
}

const DEMO_SOUNDS: &[&str] = &[
    "greeting-kassel",
    "greeting-kassel-buergeramt",
    "greeting-krefeld",
    "greeting-kreis-pinneberg",
    "greeting-quickborn",
    "waiting",
];

fn demo() -> Fixture {
    let f = Fixture::new();
    f.file("zentrale.yaml", include_str!("../../zentrale.yaml"))
        .file(
            "dialplans/kassel.yaml",
            include_str!("../../dialplans/kassel.yaml"),
        )
        .file(
            "dialplans/krefeld.yaml",
            include_str!("../../dialplans/krefeld.yaml"),
        )
        .file(
            "dialplans/kreis-pinneberg.yaml",
            include_str!("../../dialplans/kreis-pinneberg.yaml"),
        )
        .file(
            "dialplans/quickborn.yaml",
            include_str!("../../dialplans/quickborn.yaml"),
        )
        .sounds(DEMO_SOUNDS)
        .acd_sounds();
    f
}

/// A small valid tree; tests replace one file to break one thing.
const MAIN: &str = "\
sip:
  listen:
    udp: [127.0.0.1:5060]
agents:
  - extension: \"1001\"
    name: A 1001
    password: secret
    tenant: a
    skills: { general: 5 }
tenants:
  - id: a
    name: A
    dialplan: a.yaml
";

const DIALPLAN_A: &str = "\
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\"]
    greeting: hello
";

fn small(main: &str, dialplan: &str) -> Fixture {
    let f = Fixture::new();
    f.file("zentrale.yaml", main)
        .file("a.yaml", dialplan)
        .sounds(&["hello", "waiting"])
        .acd_sounds();
    f
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

// ---- the demo deployment -------------------------------------------------

#[test]
fn demo_config_loads() {
    let f = demo();
    let cfg = match f.load(&Overrides::default()) {
        Ok(c) => c,
        Err(e) => panic!("demo config has errors:\n{e}"),
    };
    assert_eq!(cfg.path, f.main());
    assert_eq!(cfg.sip.udp, vec![addr("127.0.0.1:5060")]);
    assert_eq!(cfg.sip.tcp, vec![addr("127.0.0.1:5060")]);
    assert_eq!(cfg.sip.realm, "zentrale");
    assert_eq!(cfg.sip.max_calls, 2000);
    assert_eq!(
        cfg.sip.register,
        RegisterLimits {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600
        }
    );
    assert_eq!(cfg.sip.nonce_ttl, Duration::from_secs(300));
    assert_eq!((cfg.sip.min_se, cfg.sip.session_expires), (90, 1800));
    assert_eq!(
        cfg.rtp,
        RtpConfig {
            first_port: 30000,
            last_port: 30999,
            timeout: Some(Duration::from_secs(60))
        }
    );
    assert_eq!(cfg.http.listen, addr("127.0.0.1:8080"));
    assert_eq!(cfg.sounds_dir, f.dir.join("sounds"));

    assert_eq!(cfg.trunks.len(), 1);
    let trunk = &cfg.trunks[0];
    assert_eq!(trunk.name, "demo-carrier");
    assert!(trunk.sources[0].contains("127.0.0.1".parse().expect("ip")));
    assert!(trunk.credentials.is_none());

    let exts: Vec<&str> = cfg.agents.iter().map(|a| a.extension.as_str()).collect();
    assert_eq!(exts.len(), 22);
    for (tenant, first, last) in [
        ("kassel", 1001, 1010),
        ("krefeld", 2001, 2005),
        ("kreis-pinneberg", 3001, 3005),
        ("quickborn", 4001, 4002),
    ] {
        for e in first..=last {
            let a = cfg
                .agents
                .iter()
                .find(|a| a.extension == e.to_string())
                .unwrap_or_else(|| panic!("agent {e} missing"));
            assert_eq!(a.tenant, tenant);
            assert_eq!(a.password, "demo");
            assert!(a.name.ends_with(&e.to_string()), "{}", a.name);
            assert!(a.skills.contains_key("general"));
        }
    }
    let krefeld = |skill: &str| {
        cfg.agents
            .iter()
            .filter(|a| a.tenant == "krefeld" && a.skills.contains_key(skill))
            .count()
    };
    assert!(krefeld("kfz") > 0 && krefeld("meldewesen") > 0);

    let ids: Vec<&str> = cfg.tenants.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["kassel", "krefeld", "kreis-pinneberg", "quickborn"]);
    assert_eq!(
        cfg.tenants[0].dialplan_path,
        f.dir.join("dialplans/kassel.yaml")
    );

    // number -> (tenant, hotline greeting)
    let route = |n: &str| {
        cfg.tenants
            .iter()
            .flat_map(|t| t.dialplan.hotlines.iter().map(move |h| (t, h)))
            .find(|(_, h)| h.numbers.iter().any(|x| x == n))
            .map(|(t, h)| (t.id.as_str(), h.greeting.as_str(), h.waiting.as_str()))
    };
    assert_eq!(route("115"), Some(("kassel", "greeting-kassel", "waiting")));
    assert_eq!(
        route("0561115"),
        Some(("kassel", "greeting-kassel", "waiting"))
    );
    assert_eq!(
        route("05617870"),
        Some(("kassel", "greeting-kassel-buergeramt", "waiting"))
    );
    assert_eq!(
        route("02151860"),
        Some(("krefeld", "greeting-krefeld", "waiting"))
    );
    assert_eq!(
        route("04101115"),
        Some(("kreis-pinneberg", "greeting-kreis-pinneberg", "waiting"))
    );
    assert_eq!(
        route("041066110"),
        Some(("quickborn", "greeting-quickborn", "waiting"))
    );

    // Sounds: every referenced one plus the fixed ACD set, each once.
    let names = cfg.sound_names();
    let mut want: BTreeSet<String> = DEMO_SOUNDS.iter().map(|s| s.to_string()).collect();
    want.extend(acd_prompts());
    want.insert("moh".to_string());
    assert_eq!(names, want);
    assert!(names.contains("call-later") && names.contains("num-60"));
    assert_eq!(
        cfg.sound_path("waiting"),
        f.dir.join("sounds").join("waiting.wav")
    );

    // ACD: the demo logs agents in on register, the rest are defaults.
    let acd = &cfg.acd;
    assert!(acd.login_on_register);
    assert_eq!(
        AcdConfig {
            login_on_register: false,
            ..acd.clone()
        },
        AcdConfig::default()
    );
    assert_eq!(
        acd.feature("*422"),
        Some(Feature::Pause {
            reason: "back-office".into()
        })
    );

    let agent = |e: &str| {
        cfg.agents
            .iter()
            .find(|a| a.extension == e)
            .unwrap_or_else(|| panic!("agent {e}"))
    };
    assert_eq!(agent("1010").wrap_up, Some(Duration::from_secs(60)));
    assert_eq!(agent("1001").wrap_up, None);
    assert_eq!(agent("1001").max_missed_offers, Some(3));

    // Every hotline waits in a queue, and every queue can be served by
    // some demo agent at its level (the loader checks that; spot-check here).
    let hotline_queues: Vec<String> = cfg
        .tenants
        .iter()
        .flat_map(|t| &t.dialplan.hotlines)
        .map(|h| {
            h.queue
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        hotline_queues,
        [
            "kassel/115",
            "kassel/buergeramt",
            "krefeld/serviceportal",
            "kreis-pinneberg/115",
            "quickborn/rathaus"
        ]
    );
    for q in cfg.queues() {
        assert!(
            cfg.agents.iter().any(|a| q.agents_from.contains(&a.tenant)
                && a.skills.get(&q.skill).is_some_and(|l| *l >= q.min_level)),
            "queue {} has no agent",
            q.reference()
        );
    }
    let kassel_115 = cfg
        .queue(&QueueRef::parse("kassel/115", "").expect("ref"))
        .expect("kassel 115 queue");
    assert_eq!(kassel_115.strategy, Strategy::LongestIdle);
    assert_eq!(kassel_115.agents_from, ["kassel"]);
    assert_eq!(kassel_115.wrap_up, Duration::from_secs(30));
    assert_eq!(kassel_115.on_full, Target::call_later());
    let buergeramt = cfg
        .queue(&QueueRef::parse("kassel/buergeramt", "").expect("ref"))
        .expect("buergeramt queue");
    assert_eq!(
        (buergeramt.skill.as_str(), buergeramt.min_level),
        ("buergeramt", 3)
    );
    assert_eq!(
        buergeramt.requirement(Duration::from_secs(100)),
        ("general", 4)
    );
    let rathaus = cfg
        .queue(&QueueRef::parse("quickborn/rathaus", "").expect("ref"))
        .expect("rathaus queue");
    assert_eq!(rathaus.strategy, Strategy::RingAll);
    assert_eq!(rathaus.max_wait, Some(Duration::from_secs(20)));
    let overflow = Target::Queue(QueueRef::parse("kreis-pinneberg/115", "").expect("ref"));
    assert_eq!(rathaus.on_timeout, overflow);
    assert_eq!(rathaus.on_no_agents, overflow);
    assert!(!rathaus.join_empty);
    assert_eq!(rathaus.announce_every, None);
}

/// The real files in the tree, loaded in place, sounds included (they are
/// committed). Catches a demo config that only works as a temp copy.
#[test]
fn demo_config_in_tree_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zentrale.yaml");
    let cfg = match Config::load(&path, &Overrides::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    for name in cfg.sound_names() {
        assert!(cfg.sound_path(&name).is_file(), "{name}");
    }
}

#[test]
fn demo_sound_names_are_the_acd_prompts_of_prompts_tsv() {
    // The fixed ACD set must name files make-sounds.sh really makes.
    let tsv = include_str!("../../sounds/prompts.tsv");
    let made: BTreeSet<&str> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split('\t').next())
        .collect();
    for p in acd_prompts() {
        assert!(
            made.contains(p.as_str()),
            "{p} is not in sounds/prompts.tsv"
        );
    }
}

#[test]
fn overrides_replace_listen_addresses_and_ports() {
    let f = demo();
    let ov = Overrides {
        sip_listen: Some(addr("127.0.0.2:5070")),
        http_listen: Some(addr("127.0.0.1:9090")),
        rtp_ports: Some((40000, 40099)),
    };
    let cfg = match f.load(&ov) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(cfg.sip.udp, vec![addr("127.0.0.2:5070")]);
    assert_eq!(cfg.sip.tcp, vec![addr("127.0.0.2:5070")]);
    assert_eq!(cfg.http.listen, addr("127.0.0.1:9090"));
    assert_eq!((cfg.rtp.first_port, cfg.rtp.last_port), (40000, 40099));
}

#[test]
fn overrides_are_validated() {
    let f = demo();
    let ov = Overrides {
        rtp_ports: Some((40001, 40099)),
        ..Overrides::default()
    };
    let errs = f.load(&ov).expect_err("odd port");
    let e = find(&errs.0, "first RTP port 40001 (from --rtp-ports) is odd");
    // Not in the file: the `ports:` value the override replaced.
    assert_eq!(e.file, f.main());
    assert!(e.line > 1);
}

#[test]
fn demo_passwords_refused_on_wildcard_override() {
    let f = demo();
    let ov = Overrides {
        sip_listen: Some(addr("0.0.0.0:5060")),
        ..Overrides::default()
    };
    let errs = f.load(&ov).expect_err("demo passwords on 0.0.0.0").0;
    // UDP and TCP share the override: one error, not two.
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = &errs[0];
    assert!(
        e.message
            .contains("listens on 0.0.0.0:5060 (set by --sip-listen)"),
        "{e}"
    );
    assert!(e.message.contains("agent 1001"), "{e}");
    assert_eq!(e.hint, "change those passwords or listen on 127.0.0.1");
    // The first `password: demo` in the file, the thing to change.
    let (line, col) = include_str!("../../zentrale.yaml")
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("password: demo").map(|c| (i + 1, c + 11)))
        .expect("demo password in zentrale.yaml");
    at(e, &f.main(), line, col);

    let ov = Overrides {
        http_listen: Some(addr("0.0.0.0:8080")),
        ..Overrides::default()
    };
    let errs = f.load(&ov).expect_err("demo passwords on 0.0.0.0").0;
    find(&errs, "HTTP listens on 0.0.0.0:8080");
}

#[test]
fn demo_passwords_refused_on_wildcard_in_file() {
    let main = MAIN.replace("password: secret", "password: demo").replace(
        "udp: [127.0.0.1:5060]",
        "udp: [127.0.0.1:5060, 0.0.0.0:5060]",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "SIP UDP listens on 0.0.0.0:5060");
    at(e, &f.main(), 3, 27);
}

#[test]
fn demo_passwords_allowed_on_loopback() {
    let main = MAIN.replace("password: secret", "password: demo");
    let f = small(&main, DIALPLAN_A);
    let ov = Overrides {
        sip_listen: Some(addr("127.0.0.1:5060")),
        http_listen: Some(addr("[::1]:8080")),
        rtp_ports: None,
    };
    if let Err(e) = f.load(&ov) {
        panic!("{e}");
    }
}

#[test]
fn trunk_demo_password_counts_too() {
    let main = format!(
        "{MAIN}trunks:\n  - name: t\n    sources: [192.0.2.0/24]\n    credentials: {{ username: u, password: demo }}\nhttp:\n  listen: 192.0.2.1:8080\n"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "HTTP listens on 192.0.2.1:8080");
    assert!(e.message.contains("trunk t"), "{e}");
    at(e, &f.main(), 19, 11);
}

#[test]
fn public_listen_with_real_passwords_is_fine() {
    let main = MAIN.replace("udp: [127.0.0.1:5060]", "udp: [0.0.0.0:5060]");
    let f = small(&main, DIALPLAN_A);
    if let Err(e) = f.load(&Overrides::default()) {
        panic!("{e}");
    }
}

// ---- validation rules, each with its place -------------------------------

#[test]
fn small_fixture_is_valid() {
    let f = small(MAIN, DIALPLAN_A);
    let cfg = match f.load(&Overrides::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    // Defaults.
    assert_eq!(cfg.sip.tcp, Vec::<SocketAddr>::new());
    assert_eq!(cfg.sip.realm, "zentrale");
    assert_eq!(cfg.http.listen, addr("127.0.0.1:8080"));
    assert_eq!((cfg.rtp.first_port, cfg.rtp.last_port), (30000, 30999));
    assert_eq!(cfg.tenants[0].dialplan.hotlines[0].waiting, "waiting");
    assert_eq!(cfg.agents[0].skills.get("general"), Some(&5));
}

#[test]
fn yaml_syntax_error() {
    let f = small("sip:\n  listen: [127.0.0.1:5060\ntenants: []\n", DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].file, f.main());
    assert!(errs[0].line >= 2, "{}", errs[0]);
    assert!(errs[0].hint.contains("YAML syntax"), "{}", errs[0]);
}

#[test]
fn yaml_syntax_error_in_dialplan_names_that_file() {
    let f = small(MAIN, "hotlines:\n  - id: h\n   name: x\n");
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].file, f.dir.join("a.yaml"));
    assert_eq!(errs[0].line, 3, "{}", errs[0]);
}

#[test]
fn unknown_keys_with_suggestions() {
    let main = MAIN
        .replace("sip:\n", "tennants: []\nsip:\n")
        .replace("    udp:", "    udpp:");
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "unknown key `tennants`");
    at(e, &f.main(), 1, 1);
    assert!(e.hint.starts_with("did you mean `tenants`?"), "{e}");
    let e = find(&errs, "unknown key `udpp`");
    at(e, &f.main(), 4, 5);
    assert_eq!(e.hint, "did you mean `udp`? allowed keys here: udp, tcp");
}

#[test]
fn unknown_key_in_dialplan() {
    let f = small(MAIN, &DIALPLAN_A.replace("greeting:", "greting:"));
    let errs = f.errors();
    let e = find(&errs, "unknown key `greting`");
    at(e, &f.dir.join("a.yaml"), 5, 5);
    assert!(e.hint.contains("did you mean `greeting`?"), "{e}");
}

#[test]
fn wrong_types() {
    let main = MAIN.replace("sip:\n", "sip:\n  max_calls: many\n");
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "not a whole number");
    at(e, &f.main(), 2, 14);
    assert!(e.hint.contains("whole number"), "{e}");

    let f = small(
        MAIN,
        &DIALPLAN_A.replace("numbers: [\"0561115\"]", "numbers: \"0561115\""),
    );
    let errs = f.errors();
    let e = find(&errs, "expected");
    at(e, &f.dir.join("a.yaml"), 4, 14);
    assert!(e.hint.contains("list"), "{e}");
}

#[test]
fn missing_key() {
    let f = small(&MAIN.replace("    password: secret\n", ""), DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "missing key `password`");
    assert_eq!(e.file, f.main());
    assert!((5..=9).contains(&e.line), "{e}");
    assert!(e.hint.starts_with("add `password:"), "{e}");
}

#[test]
fn bad_numbers() {
    let dp = DIALPLAN_A.replace(
        "numbers: [\"0561115\"]",
        "numbers: [\"0561-115\", \"1\", \"+49561115\", \"1+2\", \"123456789012345678901\"]",
    );
    let f = small(MAIN, &dp);
    let errs = f.errors();
    let a = f.dir.join("a.yaml");
    at(find(&errs, "bad number `0561-115`"), &a, 4, 15);
    at(find(&errs, "bad number `1`"), &a, 4, 27);
    at(find(&errs, "bad number `1+2`"), &a, 4, 45);
    find(&errs, "bad number `123456789012345678901`");
    assert_eq!(
        errs.len(),
        4,
        "+49561115 is fine: {}",
        ConfigErrors(errs.clone())
    );
    assert!(errs[0].hint.contains("only digits"), "{}", errs[0]);
}

#[test]
fn number_used_twice_across_dialplans_names_both_places() {
    let main = format!("{MAIN}  - id: b\n    name: B\n    dialplan: b.yaml\n");
    let f = small(&main, DIALPLAN_A);
    f.file(
        "b.yaml",
        "hotlines:\n  - id: x\n    name: X\n    numbers: [\"0123\", \"0561115\"]\n    greeting: hello\n",
    );
    let errs = f.errors();
    let e = find(&errs, "number `0561115` is used twice");
    at(e, &f.dir.join("b.yaml"), 4, 23);
    let first = format!("{}:4:15", f.dir.join("a.yaml").display());
    assert!(e.message.contains(&first), "{e}");
    assert!(e.message.contains("tenant `a`, hotline `h`"), "{e}");
    assert!(e.message.contains("tenant `b`, hotline `x`"), "{e}");
}

#[test]
fn duplicate_agent_extension() {
    let main = MAIN.replace(
        "tenants:",
        "  - { extension: \"1001\", name: B, password: x, tenant: a }\ntenants:",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "extension `1001` is used twice (first at line 5)");
    at(e, &f.main(), 10, 18);
}

#[test]
fn duplicate_trunk_name() {
    let main = format!(
        "{MAIN}trunks:\n  - name: c\n    sources: [10.0.0.0/8]\n  - name: c\n    sources: [10.0.0.1]\n"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "trunk name `c` is used twice (first at line 15)");
    at(e, &f.main(), 17, 11);
}

#[test]
fn agent_tenant_not_defined() {
    let f = small(&MAIN.replace("tenant: a", "tenant: b"), DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "tenant `b` is not defined");
    at(e, &f.main(), 8, 13);
    assert!(e.hint.contains("a"), "{e}");
}

#[test]
fn skill_levels_outside_range() {
    let f = small(
        &MAIN.replace("{ general: 5 }", "{ general: 0, kfz: 11, meldewesen: 10 }"),
        DIALPLAN_A,
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    at(find(&errs, "skill level 0 for `general`"), &f.main(), 9, 24);
    let e = find(&errs, "skill level 11 for `kfz`");
    at(e, &f.main(), 9, 32);
    assert!(e.hint.contains("1 (basic) to 10 (expert)"), "{e}");
}

#[test]
fn missing_sound_file() {
    let f = small(
        MAIN,
        &DIALPLAN_A.replace("greeting: hello", "greeting: hallo-welt"),
    );
    let errs = f.errors();
    let e = find(&errs, "sound `hallo-welt` not found");
    at(e, &f.dir.join("a.yaml"), 5, 15);
    assert!(e.hint.contains("sounds/make-sounds.sh"), "{e}");

    // A default (`waiting`) that is missing points at its hotline.
    std::fs::remove_file(f.dir.join("sounds/waiting.wav")).expect("rm");
    let errs = f.errors();
    let e = find(&errs, "sound `waiting` not found");
    at(e, &f.dir.join("a.yaml"), 2, 5);
}

#[test]
fn typo_in_sound_name_suggests_the_file() {
    let f = small(
        MAIN,
        &DIALPLAN_A.replace("greeting: hello", "greeting: helo"),
    );
    let errs = f.errors();
    let e = find(&errs, "sound `helo` not found");
    assert!(e.hint.starts_with("did you mean `hello`?"), "{e}");
}

#[test]
fn missing_sounds_dir_is_named() {
    let f = small(&format!("{MAIN}sounds: /nonexistent/prompts\n"), DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "sound `hello` not found");
    assert!(
        e.hint.contains("/nonexistent/prompts does not exist"),
        "{e}"
    );
}

#[test]
fn bad_cidr() {
    let main = format!(
        "{MAIN}trunks:\n  - name: c\n    sources: [10.0.0.0/33, 10.1.2.3/8, carrier.example]\n"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "prefix `33`");
    at(e, &f.main(), 16, 15);
    let e = find(&errs, "host bits");
    at(e, &f.main(), 16, 28);
    assert!(e.hint.contains("10.0.0.0/8"), "{e}");
    at(
        find(&errs, "`carrier.example` is not an IP address"),
        &f.main(),
        16,
        40,
    );
}

#[test]
fn rtp_port_rules() {
    for (ports, needle) in [
        ("30001-30999", "first RTP port 30001 is odd"),
        ("31000-30000", "is reversed"),
        ("30000-30000", "holds only 1 port"),
        ("30000", "is not a port range"),
        ("30000-70000", "is not a port range"),
    ] {
        let f = small(&format!("{MAIN}rtp:\n  ports: {ports}\n"), DIALPLAN_A);
        let errs = f.errors();
        at(find(&errs, needle), &f.main(), 15, 10);
    }
    let f = small(
        &format!("{MAIN}rtp:\n  ports: 30000-30001\n  timeout_secs: 0\n"),
        DIALPLAN_A,
    );
    let cfg = f.load(&Overrides::default()).expect("two ports are enough");
    assert_eq!(cfg.rtp.timeout, None);
}

#[test]
fn dialplan_file_missing_points_at_main_file() {
    let f = small(&MAIN.replace("a.yaml", "nope.yaml"), DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "cannot read dialplan file");
    at(e, &f.main(), 13, 15);
    assert!(e.message.contains("nope.yaml"), "{e}");
    assert!(e.hint.contains("create the file or fix the path"), "{e}");
}

#[test]
fn listen_address_parse_errors() {
    let main = MAIN.replace(
        "udp: [127.0.0.1:5060]",
        "udp: [localhost:5060]\n    tcp: [127.0.0.1]",
    ) + "http:\n  listen: \"[::1]8080\"\n";
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    let e = find(
        &errs,
        "`localhost:5060` is not a valid SIP UDP listen address",
    );
    at(e, &f.main(), 3, 11);
    assert!(e.hint.contains("IP:PORT"), "{e}");
    at(
        find(&errs, "`127.0.0.1` is not a valid SIP TCP"),
        &f.main(),
        4,
        11,
    );
    at(
        find(&errs, "`[::1]8080` is not a valid HTTP"),
        &f.main(),
        16,
        11,
    );
}

#[test]
fn all_problems_are_collected() {
    // One run shows problems from several sections, several agents and the
    // dialplan, not just the first.
    let main = "\
sip:
  realm: zentrale
  max_calls: lots
rtp:
  ports: 30001-30999
agents:
  - { extension: \"1\", name: A, password: x, tenant: a, skills: { s: 99 } }
  - { extension: \"2\", name: B, password: x, tenant: a, bogus: 1 }
  - { extension: \"3\", name: C, password: x, tenant: zz }
tenants:
  - id: a
    name: A
    dialplan: a.yaml
";
    let f = small(
        main,
        "hotlines:\n  - { id: h, name: H, numbers: [\"5\"], greeting: gone }\n",
    );
    let errs = f.errors();
    let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 7, "{}", msgs.join("\n"));
    find(&errs, "not a whole number");
    find(&errs, "first RTP port 30001 is odd");
    find(&errs, "skill level 99");
    find(&errs, "unknown key `bogus`");
    find(&errs, "tenant `zz` is not defined");
    find(&errs, "bad number `5`");
    find(&errs, "sound `gone` not found");
    // Main file first, in line order, then the dialplan.
    let lines: Vec<usize> = errs.iter().take(5).map(|e| e.line).collect();
    assert_eq!(lines, [3, 5, 7, 8, 9]);
    assert_eq!(errs[5].file, f.dir.join("a.yaml"));
}

#[test]
fn unreadable_main_file() {
    let f = Fixture::new();
    let errs = f.errors();
    assert_eq!(errs.len(), 1);
    at(&errs[0], &f.main(), 1, 1);
    assert!(
        errs[0].message.starts_with("cannot read the config file"),
        "{}",
        errs[0]
    );
}

#[test]
fn empty_and_non_mapping_files() {
    let f = small("", DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    at(&errs[0], &f.main(), 1, 1);

    let f = small("- a\n- b\n", DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    at(&errs[0], &f.main(), 1, 1);
}

#[test]
fn error_display_format() {
    let e = ConfigError {
        file: PathBuf::from("dialplans/kassel.yaml"),
        line: 5,
        column: 16,
        message: "bad number `05-61`".into(),
        hint: "write only digits".into(),
    };
    assert_eq!(
        e.to_string(),
        "dialplans/kassel.yaml:5:16: bad number `05-61`; write only digits"
    );
    let two = ConfigErrors(vec![e.clone(), e]);
    assert_eq!(two.to_string().lines().count(), 2);
}

#[test]
fn secrets_are_not_debug_printed() {
    let f = small(MAIN, DIALPLAN_A);
    let cfg = f.load(&Overrides::default()).expect("valid");
    assert!(!format!("{cfg:?}").contains("secret"));
}
