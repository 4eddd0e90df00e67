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

    /// Playable prompts (`zentrale check` reads them): 250 ms of silence.
    fn sounds(&self, names: &[&str]) -> &Self {
        for n in names {
            self.wav(&format!("sounds/{n}.wav"));
        }
        self
    }

    fn wav(&self, name: &str) -> &Self {
        let bytes = crate::media::wav::wav_bytes(
            8000,
            1,
            16,
            1,
            &[],
            &crate::media::wav::pcm_bytes(&[0; 2000]),
        );
        std::fs::write(self.dir.join(name), bytes).expect("write wav");
        self
    }

    /// The fixed ACD prompts and the default music, which every config needs.
    fn acd_sounds(&self) -> &Self {
        for n in acd_prompts() {
            self.wav(&format!("sounds/{n}.wav"));
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
    "closed",
    "closed-kassel",
    "closed-krefeld",
    "closed-115",
    "closed-quickborn",
    "menu-krefeld",
    "invalid-input",
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
    assert_eq!(
        e.hint,
        "did you mean `udp`? allowed keys here: udp, tcp, tls"
    );
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
fn cdr_is_off_by_default_and_a_relative_path_is_next_to_the_config() {
    let f = small(MAIN, DIALPLAN_A);
    assert_eq!(f.load(&Overrides::default()).unwrap().cdr, None);
    let f = small(
        &format!("{MAIN}cdr: {{ path: records/cdr.jsonl, caller_number: full }}\n"),
        DIALPLAN_A,
    );
    std::fs::create_dir_all(f.dir.join("records")).unwrap();
    let cfg = f.load(&Overrides::default()).unwrap();
    let cdr = cfg.cdr.expect("cdr configured");
    assert_eq!(cdr.path, f.dir.join("records/cdr.jsonl"));
    assert_eq!(cdr.caller_number, crate::cdr::CallerNumbers::Full);
    assert!(!cdr.path.exists(), "loading a config creates no file");
    // An existing file is never truncated by the check.
    std::fs::write(&cdr.path, "{}\n").unwrap();
    f.load(&Overrides::default()).unwrap();
    assert_eq!(std::fs::read(&cdr.path).unwrap(), b"{}\n");
}

#[test]
fn cdr_errors_point_at_the_path_and_say_what_to_do() {
    let main = format!("{MAIN}cdr:\n  path: missing-dir/cdr.jsonl\n");
    let line = main.lines().count();
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "cannot open the call record file");
    at(e, &f.main(), line, 9);
    assert!(e.message.contains("missing-dir/cdr.jsonl"), "{e}");
    assert!(e.hint.contains("create the directory"), "{e}");
    assert!(!f.dir.join("missing-dir").exists(), "no directory is made");
    // A file where the directory should be is refused as opening would.
    f.file("missing-dir", "");
    let e = find(&f.errors(), "cannot open the call record file").clone();
    assert!(e.message.contains("Not a directory"), "{e}");
    assert!(e.hint.contains("name a regular file"), "{e}");

    let f2 = small(&format!("{MAIN}cdr: {{ path: \"\" }}\n"), DIALPLAN_A);
    find(&f2.errors(), "the call record path is empty");
    let f3 = small(
        &format!("{MAIN}cdr:\n  path: cdr.jsonl\n  caller_number: plain\n"),
        DIALPLAN_A,
    );
    let errs = f3.errors();
    let e = find(&errs, "unknown caller_number `plain`");
    at(e, &f3.main(), line + 1, 18);
    assert!(e.hint.contains("`masked`"), "{e}");
    let f4 = small(&format!("{MAIN}cdr:\n  file: cdr.jsonl\n"), DIALPLAN_A);
    assert!(
        f4.errors().iter().any(|e| e.message.contains("file")),
        "an unknown key under cdr: is an error"
    );
}

#[test]
fn store_is_checked_without_creating_anything() {
    let f = small(MAIN, DIALPLAN_A);
    assert_eq!(f.load(&Overrides::default()).unwrap().store, None);
    // A directory that does not exist yet is fine: the daemon makes it.
    let db = f.dir.join("state/zentrale.db");
    let main = format!("{MAIN}store:\n  path: {}\n", db.display());
    let f = small(&main, DIALPLAN_A);
    let cfg = f.load(&Overrides::default()).unwrap();
    assert_eq!(cfg.store.expect("store configured").path, db);
    assert!(
        !f.dir.join("state").exists(),
        "loading a config creates nothing"
    );
    // A relative path stays relative: it starts where zentrale runs.
    let f = small(
        &format!("{MAIN}store: {{ path: target/z.db }}\n"),
        DIALPLAN_A,
    );
    let cfg = f.load(&Overrides::default()).unwrap();
    assert_eq!(
        cfg.store.unwrap().path,
        std::path::PathBuf::from("target/z.db")
    );
}

#[test]
fn store_errors_point_at_the_path_and_say_what_to_do() {
    let f = small(MAIN, DIALPLAN_A);
    let main = format!("{MAIN}store:\n  path: {}\n", f.dir.display());
    let line = main.lines().count();
    f.file("zentrale.yaml", &main);
    let errs = f.errors();
    let e = find(&errs, "as the store: it is a directory");
    at(e, &f.main(), line, 9);
    assert!(e.hint.contains("store.path"), "{e}");
    // A file where a directory of the path should be.
    f.file("plain", "");
    let main = format!(
        "{MAIN}store:\n  path: {}\n",
        f.dir.join("plain/z.db").display()
    );
    f.file("zentrale.yaml", &main);
    let e = find(&f.errors(), "as the store").clone();
    assert!(e.message.contains("Not a directory"), "{e}");
    let f = small(&format!("{MAIN}store: {{ path: \" \" }}\n"), DIALPLAN_A);
    find(&f.errors(), "the store path is empty");
    let f = small(&format!("{MAIN}store: {{ file: x.db }}\n"), DIALPLAN_A);
    assert!(
        f.errors().iter().any(|e| e.message.contains("file")),
        "an unknown key under store: is an error"
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

// ---- ACD: the acd: section, queues, targets ------------------------------

/// DIALPLAN_A with a queue the hotline waits in; tests append queue keys
/// (line 11 on, four spaces in).
const DIALPLAN_Q: &str = "\
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\"]
    greeting: hello
    queue: q
queues:
  - id: q
    name: Q
    skill: general
";

fn queue_plan(extra: &str) -> String {
    format!("{DIALPLAN_Q}{extra}")
}

fn a_yaml(f: &Fixture) -> PathBuf {
    f.dir.join("a.yaml")
}

fn loaded(f: &Fixture) -> Config {
    match f.load(&Overrides::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn acd_defaults_without_section() {
    let cfg = loaded(&small(MAIN, DIALPLAN_A));
    assert_eq!(cfg.acd, AcdConfig::default());
    let acd = &cfg.acd;
    assert!(!acd.login_on_register);
    assert_eq!(acd.max_missed_offers, Some(3));
    assert_eq!(acd.wrap_up, Duration::from_secs(30));
    let c = &acd.feature_codes;
    assert_eq!(
        [&c.login, &c.logout, &c.pause, &c.unpause],
        ["*40", "*41", "*42", "*43"]
    );
    assert_eq!(acd.pause_reasons, ["break", "back-office", "training"]);
    let codes: Vec<(&str, &str)> = acd
        .pause_codes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        codes,
        [("1", "break"), ("2", "back-office"), ("3", "training")]
    );
    assert_eq!(cfg.agents[0].max_missed_offers, Some(3));
    assert_eq!(cfg.agents[0].wrap_up, None);
    assert!(cfg.tenants[0].dialplan.queues.is_empty());
    assert_eq!(cfg.tenants[0].dialplan.hotlines[0].queue, None);
}

#[test]
fn acd_keys_parsed() {
    let main = format!(
        "{MAIN}acd:
  login_on_register: true
  max_missed_offers: 0
  wrap_up_secs: 10
  feature_codes: {{ login: \"#7\", logout: \"#8\", pause: \"*5\", unpause: \"*6\" }}
  pause_reasons: [lunch, meeting]
  pause_codes: {{ 1: meeting, \"22\": lunch }}
"
    );
    let cfg = loaded(&small(&main, DIALPLAN_A));
    let acd = &cfg.acd;
    assert!(acd.login_on_register);
    assert_eq!(acd.max_missed_offers, None, "0 = never");
    assert_eq!(acd.wrap_up, Duration::from_secs(10));
    assert_eq!(acd.pause_reasons, ["lunch", "meeting"]);
    assert_eq!(acd.feature("#7"), Some(Feature::Login));
    assert_eq!(acd.feature("#8"), Some(Feature::Logout));
    assert_eq!(acd.feature("*6"), Some(Feature::Unpause));
    let pause = |r: &str| Some(Feature::Pause { reason: r.into() });
    assert_eq!(acd.feature("*5"), pause("lunch"), "bare code: first reason");
    assert_eq!(acd.feature("*51"), pause("meeting"));
    assert_eq!(acd.feature("*522"), pause("lunch"));
    assert_eq!(acd.feature("*52"), None);
    assert_eq!(acd.feature("*40"), None, "defaults replaced");
    // The agent inherits "never".
    assert_eq!(cfg.agents[0].max_missed_offers, None);
}

#[test]
fn pause_codes_default_to_the_reasons_in_order() {
    let main = format!("{MAIN}acd:\n  pause_reasons: [lunch, meeting]\n");
    let cfg = loaded(&small(&main, DIALPLAN_A));
    assert_eq!(
        cfg.acd.feature("*422"),
        Some(Feature::Pause {
            reason: "meeting".into()
        })
    );
    assert_eq!(cfg.acd.feature("*423"), None);
}

#[test]
fn agent_acd_keys_parsed() {
    let main = MAIN
        .replace(
            "    skills: { general: 5 }\n",
            "    skills: { general: 5 }\n    wrap_up_secs: 90\n    max_missed_offers: 7\n",
        )
        .replace(
            "tenants:\n",
            "  - { extension: \"1002\", name: B, password: x, tenant: a, max_missed_offers: 0 }\ntenants:\n",
        );
    let f = small(&main, &queue_plan("    wrap_up_secs: 20\n"));
    let cfg = loaded(&f);
    let (a, b) = (&cfg.agents[0], &cfg.agents[1]);
    assert_eq!(a.wrap_up, Some(Duration::from_secs(90)));
    assert_eq!(a.max_missed_offers, Some(7));
    assert_eq!(b.wrap_up, None);
    assert_eq!(b.max_missed_offers, None, "0 = never");
    let q = &cfg.tenants[0].dialplan.queues[0];
    assert_eq!(q.wrap_up, Duration::from_secs(20));
    assert_eq!(a.wrap_up_for(q), Duration::from_secs(90));
    assert_eq!(b.wrap_up_for(q), Duration::from_secs(20));
}

#[test]
fn queue_defaults() {
    let main = format!("{MAIN}acd:\n  wrap_up_secs: 12\n");
    let cfg = loaded(&small(&main, DIALPLAN_Q));
    let h = &cfg.tenants[0].dialplan.hotlines[0];
    assert_eq!(
        h.queue,
        Some(QueueRef {
            tenant: "a".into(),
            queue: "q".into()
        })
    );
    assert_eq!(h.priority, 0);
    let q = &cfg.tenants[0].dialplan.queues[0];
    assert_eq!(
        *q,
        Queue {
            tenant: "a".into(),
            id: "q".into(),
            name: "Q".into(),
            skill: "general".into(),
            min_level: 1,
            agents_from: vec!["a".into()],
            strategy: Strategy::LongestIdle,
            priority: 0,
            wrap_up: Duration::from_secs(12),
            ring_timeout: Duration::from_secs(15),
            max_waiting: None,
            max_expected_wait: None,
            max_wait: None,
            join_empty: true,
            announce_every: Some(Duration::from_secs(45)),
            music: "moh".into(),
            service_level: ServiceLevel {
                threshold: Duration::from_secs(30),
                target_percent: 75,
                window: Duration::from_secs(3600),
            },
            widen: vec![],
            on_timeout: Target::Prompt("call-later".into()),
            on_no_agents: Target::Prompt("call-later".into()),
            on_full: Target::Prompt("call-later".into()),
        }
    );
    assert_eq!(cfg.queue(&q.reference()), Some(q));
    assert_eq!(cfg.queues().count(), 1);
}

#[test]
fn queue_keys_parsed() {
    let main = MAIN.replace("{ general: 5 }", "{ general: 5, kfz: 8 }")
        + "  - id: b\n    name: B\n    dialplan: b.yaml\n";
    let f = small(
        &main,
        &queue_plan(
            "    min_level: 2
    agents_from: [a, b]
    strategy: skills-first
    priority: -3
    wrap_up_secs: 5
    ring_timeout_secs: 25
    max_waiting: 10
    max_expected_wait_secs: 240
    max_wait_secs: 300
    join_empty: false
    announce_every_secs: 60
    music: waiting
    service_level: { seconds: 20, target_percent: 80, window_secs: 1800 }
    widen:
      - { after_secs: 30, min_level: 1 }
      - { after_secs: 60, skill: kfz }
      - { after_secs: 90, skill: general, min_level: 1 }
    on_timeout: { queue: b/overflow }
    on_no_agents: { uri: \"sip:zentrale@192.0.2.10:5070;transport=tcp\" }
    on_full: hangup
  - { id: other, name: O, skill: general, on_full: { queue: q }, on_timeout: { prompt: hello } }
",
        )
        .replace("    queue: q\n", "    queue: b/overflow\n    priority: 4\n"),
    );
    f.file(
        "b.yaml",
        "hotlines: []\nqueues:\n  - { id: overflow, name: O, skill: general, agents_from: [a] }\n",
    );
    let cfg = loaded(&f);
    let h = &cfg.tenants[0].dialplan.hotlines[0];
    assert_eq!(
        h.queue.as_ref().map(ToString::to_string).as_deref(),
        Some("b/overflow")
    );
    assert_eq!(h.priority, 4);
    let q = &cfg.tenants[0].dialplan.queues[0];
    assert_eq!(q.min_level, 2);
    assert_eq!(q.agents_from, ["a", "b"]);
    assert_eq!(q.strategy, Strategy::SkillsFirst);
    assert_eq!(q.priority, -3);
    assert_eq!(q.wrap_up, Duration::from_secs(5));
    assert_eq!(q.ring_timeout, Duration::from_secs(25));
    assert_eq!(q.max_waiting, Some(10));
    assert_eq!(q.max_expected_wait, Some(Duration::from_secs(240)));
    assert_eq!(q.max_wait, Some(Duration::from_secs(300)));
    assert!(!q.join_empty);
    assert_eq!(q.announce_every, Some(Duration::from_secs(60)));
    assert_eq!(q.music, "waiting");
    assert_eq!(
        q.service_level,
        ServiceLevel {
            threshold: Duration::from_secs(20),
            target_percent: 80,
            window: Duration::from_secs(1800)
        }
    );
    // Steps are resolved: each carries the full requirement.
    let steps: Vec<(u64, &str, u8)> = q
        .widen
        .iter()
        .map(|s| (s.after.as_secs(), s.skill.as_str(), s.min_level))
        .collect();
    assert_eq!(
        steps,
        [(30, "general", 1), (60, "kfz", 1), (90, "general", 1)]
    );
    assert_eq!(q.requirement(Duration::from_secs(29)), ("general", 2));
    assert_eq!(q.requirement(Duration::from_secs(30)), ("general", 1));
    assert_eq!(q.requirement(Duration::from_secs(75)), ("kfz", 1));
    assert_eq!(q.requirement(Duration::from_secs(3600)), ("general", 1));
    assert_eq!(
        q.on_timeout,
        Target::Queue(QueueRef {
            tenant: "b".into(),
            queue: "overflow".into()
        })
    );
    assert_eq!(
        q.on_no_agents,
        Target::Uri("sip:zentrale@192.0.2.10:5070;transport=tcp".into())
    );
    assert_eq!(q.on_full, Target::Hangup);
    let other = &cfg.tenants[0].dialplan.queues[1];
    assert_eq!(other.on_full, Target::Queue(q.reference()));
    assert_eq!(other.on_timeout, Target::Prompt("hello".into()));
    // Prompt targets and music are preloaded.
    let names = cfg.sound_names();
    assert!(names.contains("hello") && names.contains("waiting"));
    assert!(
        names.contains("moh"),
        "music of the second queue, by default"
    );
}

#[test]
fn unknown_strategy_suggests_the_name() {
    let f = small(MAIN, &queue_plan("    strategy: longest_idle\n"));
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "unknown strategy `longest_idle`");
    at(e, &a_yaml(&f), 11, 15);
    assert!(e.hint.starts_with("did you mean `longest-idle`?"), "{e}");
    assert!(e.hint.contains("ring-all"), "{e}");

    let f = small(MAIN, &queue_plan("    strategy: random\n"));
    let e = find(&f.errors(), "unknown strategy `random`").clone();
    assert!(
        e.hint.starts_with("use one of: longest-idle, round-robin"),
        "{e}"
    );
}

#[test]
fn min_level_outside_range() {
    let f = small(MAIN, &queue_plan("    min_level: 11\n"));
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "min_level 11 is outside 1..=10");
    at(e, &a_yaml(&f), 11, 16);
    assert!(e.hint.contains("1 (basic) to 10 (expert)"), "{e}");

    let f = small(
        MAIN,
        &queue_plan("    widen: [{ after_secs: 10, min_level: 0 }]\n"),
    );
    let e = find(&f.errors(), "min_level 0 is outside 1..=10").clone();
    at(&e, &a_yaml(&f), 11, 42);
}

#[test]
fn duplicate_queue_id() {
    let f = small(
        MAIN,
        &queue_plan("  - id: q\n    name: Q2\n    skill: general\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(
        &errs,
        "queue id `q` is used twice in this file (first at line 8)",
    );
    at(e, &a_yaml(&f), 11, 9);
    assert_eq!(e.hint, "give each queue of a tenant its own id");
}

#[test]
fn unknown_queue_in_targets_and_hotline() {
    let main = format!("{MAIN}  - id: b\n    name: B\n    dialplan: b.yaml\n");
    let f = small(
        &main,
        &queue_plan(
            "    on_timeout: { queue: qq }
    on_full: { queue: b/nope }
    on_no_agents: { queue: c/q }
",
        )
        .replace("    queue: q\n", "    queue: b/q2\n"),
    );
    f.file(
        "b.yaml",
        "hotlines: []\nqueues:\n  - { id: q1, name: Q, skill: general, agents_from: [a] }\n",
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 4, "{}", ConfigErrors(errs.clone()));
    let a = a_yaml(&f);
    let e = find(&errs, "hotline `h`: queue `b/q2` does not exist");
    at(e, &a, 6, 12);
    assert!(
        e.hint
            .starts_with("did you mean `q1`? queues of tenant `b`: q1"),
        "{e}"
    );
    let e = find(
        &errs,
        "on_timeout of queue `q`: queue `a/qq` does not exist",
    );
    at(e, &a, 11, 26);
    assert!(e.hint.contains("this tenant"), "{e}");
    let e = find(&errs, "on_full of queue `q`: queue `b/nope` does not exist");
    at(e, &a, 12, 23);
    assert!(
        e.hint
            .starts_with("use one of the queues of tenant `b` (q1)"),
        "{e}"
    );
    let e = find(
        &errs,
        "on_no_agents of queue `q`: tenant `c` is not defined",
    );
    at(e, &a, 13, 28);
    assert_eq!(e.hint, "write tenant/queue with one of the tenants: a, b");
}

#[test]
fn queue_reference_syntax() {
    let f = small(
        MAIN,
        &DIALPLAN_Q.replace("    queue: q\n", "    queue: a/b/c\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "`a/b/c` is not a queue reference");
    at(e, &a_yaml(&f), 6, 12);
    assert!(e.hint.contains("tenant/queue"), "{e}");
}

#[test]
fn targets_must_not_point_at_their_own_queue() {
    let f = small(
        MAIN,
        &queue_plan("    on_timeout: { queue: q }\n    on_full: { queue: a/q }\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "on_timeout of queue `q` points at the queue itself");
    at(e, &a_yaml(&f), 11, 26);
    assert!(
        e.hint
            .contains("another queue, { prompt: call-later } or hangup"),
        "{e}"
    );
    at(
        find(&errs, "on_full of queue `q` points at the queue itself"),
        &a_yaml(&f),
        12,
        23,
    );
}

#[test]
fn target_loops_between_queues() {
    let f = small(
        MAIN,
        &queue_plan(
            "    on_timeout: { queue: r }
  - { id: r, name: R, skill: general, on_timeout: { queue: s } }
  - { id: s, name: S, skill: general, on_timeout: { queue: q }, on_full: { queue: q } }
",
        ),
    );
    let errs = f.errors();
    // One loop of timeouts; the on_full edge s -> q alone is no loop.
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "leads round in a loop (a/q → a/r → a/s → a/q)");
    at(e, &a_yaml(&f), 11, 26);
    assert!(e.message.starts_with("on_timeout of queue `q`"), "{e}");
    assert!(e.hint.starts_with("end the chain"), "{e}");
}

#[test]
fn missing_music_and_prompt_files() {
    let f = small(
        MAIN,
        &queue_plan("    music: jazz\n    on_full: { prompt: sorry }\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    at(find(&errs, "sound `jazz` not found"), &a_yaml(&f), 11, 12);
    at(find(&errs, "sound `sorry` not found"), &a_yaml(&f), 12, 24);

    // Defaults point at their queue when their files are missing.
    let f = small(MAIN, DIALPLAN_Q);
    std::fs::remove_file(f.dir.join("sounds/moh.wav")).expect("rm");
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    at(find(&errs, "sound `moh` not found"), &a_yaml(&f), 8, 5);

    // The default target prompt is one of the fixed ACD set: reported once,
    // at the top of the main file (no `acd:` here), not at every queue.
    let f = small(MAIN, DIALPLAN_Q);
    std::fs::remove_file(f.dir.join("sounds/call-later.wav")).expect("rm");
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "1 ACD prompt is missing from");
    assert!(e.message.ends_with(": call-later"), "{e}");
    at(e, &f.main(), 1, 1);
}

#[test]
fn missing_acd_prompts_are_one_error_at_the_acd_section() {
    let main = format!("{MAIN}acd:\n  wrap_up_secs: 30\n");
    let f = small(&main, DIALPLAN_A);
    for n in ["num-7", "agent-paused"] {
        std::fs::remove_file(f.dir.join(format!("sounds/{n}.wav"))).expect("rm");
    }
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "2 ACD prompts are missing from");
    at(e, &f.main(), 14, 1);
    assert!(e.message.ends_with(": agent-paused, num-7"), "{e}");
    assert!(e.hint.contains("make-sounds.sh"), "{e}");

    // Without an `acd:` section: the top of the main file. A sounds
    // directory holding only a few files lists them for other sounds.
    let f = Fixture::new();
    f.file("zentrale.yaml", MAIN)
        .file(
            "a.yaml",
            &DIALPLAN_A.replace("greeting: hello", "greeting: hallo-welt"),
        )
        .sounds(&["hello", "waiting"]);
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "ACD prompts are missing from");
    at(e, &f.main(), 1, 1);
    assert!(e.message.contains("and 64 more"), "{e}");
    let e = find(&errs, "sound `hallo-welt` not found");
    assert!(e.hint.contains("available: hello, waiting"), "{e}");
}

#[test]
fn feature_code_rules() {
    let main = format!(
        "{MAIN}acd:
  feature_codes:
    login: \"*40\"
    logout: \"*40\"
    pause: \"42\"
    unpause: \"*4x\"
"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    let e = find(
        &errs,
        "feature code *40 is used for both `login` and `logout`",
    );
    at(e, &f.main(), 17, 13);
    assert!(e.hint.starts_with("give each feature its own code"), "{e}");
    let e = find(&errs, "feature code `pause: 42` is not usable");
    at(e, &f.main(), 18, 12);
    assert!(
        e.hint.contains("`*` or `#` followed by 1 to 8 digits"),
        "{e}"
    );
    at(
        find(&errs, "feature code `unpause: *4x` is not usable"),
        &f.main(),
        19,
        14,
    );

    // Unquoted, `*40` is a YAML alias: the hint says to quote it.
    let f = small(
        &format!("{MAIN}acd:\n  feature_codes: {{ login: *40 }}\n"),
        DIALPLAN_A,
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].line, 15, "{}", errs[0]);
    assert!(errs[0].hint.contains("quote"), "{}", errs[0]);
}

#[test]
fn pause_code_rules() {
    let main = format!(
        "{MAIN}acd:
  feature_codes: {{ login: \"*421\" }}
  pause_reasons: [break, no-answer, break, \"bad reason\"]
  pause_codes: {{ \"1\": break, \"2\": lunch, \"x\": break, \"3\": no-answer }}
"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "pause reason `no-answer` is built in");
    at(e, &f.main(), 16, 26);
    at(
        find(&errs, "pause reason `break` is listed twice"),
        &f.main(),
        16,
        37,
    );
    at(
        find(&errs, "pause reason `bad reason` is not usable"),
        &f.main(),
        16,
        44,
    );
    let e = find(&errs, "pause code 1 makes *421, which is already `login`");
    at(e, &f.main(), 17, 23);
    let e = find(&errs, "pause code 2: `lunch` is not a pause reason");
    at(e, &f.main(), 17, 35);
    assert_eq!(
        e.hint,
        "use one of the pause reasons (break) or add it to `pause_reasons`"
    );
    at(
        find(&errs, "pause code `x` is not 1 to 3 digits"),
        &f.main(),
        17,
        47,
    );
    let e = find(&errs, "pause code 3: `no-answer` is not a pause reason");
    assert!(e.hint.contains("agents cannot choose it"), "{e}");
    assert_eq!(errs.len(), 7, "{}", ConfigErrors(errs.clone()));

    let f = small(&format!("{MAIN}acd:\n  pause_reasons: []\n"), DIALPLAN_A);
    at(
        find(&f.errors(), "pause_reasons is empty"),
        &f.main(),
        15,
        18,
    );
}

#[test]
fn widen_step_rules() {
    let main = MAIN.replace("{ general: 5 }", "{ general: 5, kfz: 5 }");
    let f = small(
        &main,
        &queue_plan(
            "    min_level: 3
    max_wait_secs: 100
    widen:
      - { after_secs: 0, min_level: 2 }
      - { after_secs: 60, min_level: 1 }
      - { after_secs: 60, skill: kfz }
      - { after_secs: 50, skill: general }
      - { after_secs: 70 }
      - { after_secs: 80, min_level: 1 }
      - { after_secs: 90, min_level: 4 }
      - { after_secs: 100, skill: kfz }
",
        ),
    );
    let errs = f.errors();
    let a = a_yaml(&f);
    at(
        find(&errs, "after_secs 0 applies from the start"),
        &a,
        14,
        23,
    );
    let e = find(
        &errs,
        "widen step after_secs 60 is not later than the step before (60)",
    );
    at(e, &a, 16, 23);
    assert!(e.hint.contains("in order"), "{e}");
    at(
        find(
            &errs,
            "widen step after_secs 50 is not later than the step before (60)",
        ),
        &a,
        17,
        23,
    );
    let e = find(&errs, "widen step after 70 s changes nothing");
    at(e, &a, 18, 9);
    assert!(e.hint.contains("`min_level:` and/or `skill:`"), "{e}");
    let e = find(
        &errs,
        "widen step after 80 s changes nothing: it asks for `general` at level 1",
    );
    at(e, &a, 19, 9);
    let e = find(&errs, "raises min_level from 1 to 4, which narrows");
    at(e, &a, 20, 38);
    let e = find(&errs, "widen step after_secs 100 is never reached");
    at(e, &a, 21, 23);
    assert!(e.hint.contains("below 100"), "{e}");
    assert_eq!(errs.len(), 7, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn bad_uri_target() {
    let f = small(
        MAIN,
        &queue_plan(
            "    on_full: { uri: \"sip:zentrale@host:99999\" }\n    on_timeout: { uri: \"tel:+49561115\" }\n",
        ),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    let e = find(
        &errs,
        "`sip:zentrale@host:99999` is not a SIP URI: `99999` is not a port number",
    );
    at(e, &a_yaml(&f), 11, 21);
    assert!(e.hint.contains("sip:user@host[:port]"), "{e}");
    at(
        find(
            &errs,
            "`tel:+49561115` is not a SIP URI: it does not start with `sip:`",
        ),
        &a_yaml(&f),
        12,
        24,
    );
}

#[test]
fn malformed_targets() {
    let f = small(
        MAIN,
        &queue_plan(
            "    on_full: hangpu
    on_timeout: { queu: q2 }
    on_no_agents: { queue: q2, prompt: x }
  - { id: q2, name: Q2, skill: general, on_full: queue, on_timeout: { hangup: now } }
",
        ),
    );
    let errs = f.errors();
    let a = a_yaml(&f);
    let e = find(&errs, "`hangpu` is not a target");
    at(e, &a, 11, 14);
    assert_eq!(e.hint, "did you mean `hangup`?");
    let e = find(&errs, "unknown target kind `queu`");
    at(e, &a, 12, 19);
    assert!(e.hint.starts_with("did you mean `queue`?"), "{e}");
    let e = find(&errs, "a target names one place to go; this one has 2 keys");
    at(e, &a, 13, 19);
    let e = find(&errs, "`queue` is not a target");
    assert_eq!(
        e.hint,
        "a queue target needs a value: write `{ queue: ... }`"
    );
    find(&errs, "hangup takes no value");
    assert_eq!(errs.len(), 5, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn queue_number_rules() {
    let f = small(
        MAIN,
        &queue_plan(
            "    ring_timeout_secs: 0
    max_waiting: 0
    max_expected_wait_secs: 0
    max_wait_secs: 0
    announce_every_secs: 5
    service_level: { seconds: 0, target_percent: 101, window_secs: 10 }
",
        ),
    );
    let errs = f.errors();
    let a = a_yaml(&f);
    at(find(&errs, "ring_timeout_secs is 0"), &a, 11, 24);
    at(find(&errs, "max_waiting is 0"), &a, 12, 18);
    at(find(&errs, "max_expected_wait_secs is 0"), &a, 13, 29);
    at(find(&errs, "max_wait_secs is 0"), &a, 14, 20);
    let e = find(&errs, "announce_every_secs 5 leaves no time");
    at(e, &a, 15, 26);
    assert!(e.hint.starts_with("use 0 (off) or 15 and more"), "{e}");
    at(find(&errs, "service_level seconds is 0"), &a, 16, 31);
    at(
        find(&errs, "target_percent 101 is outside 1..=100"),
        &a,
        16,
        50,
    );
    assert_eq!(errs.len(), 7, "{}", ConfigErrors(errs.clone()));

    let f = small(
        MAIN,
        &queue_plan("    service_level: { window_secs: 10 }\n    announce_every_secs: 0\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "window_secs 10 is shorter than seconds 30");
    at(e, &a_yaml(&f), 11, 35);
}

#[test]
fn queue_must_be_servable_by_some_agent() {
    let main = format!(
        "{MAIN}  - id: b\n    name: B\n    dialplan: b.yaml\n"
    )
    .replace(
        "tenants:",
        "  - { extension: \"2001\", name: B, password: x, tenant: b, skills: { kfz: 9 } }\ntenants:",
    );
    let f = small(
        &main,
        &queue_plan(
            "    min_level: 6
  - { id: k, name: K, skill: kfz }
  - { id: g, name: G, skill: generel }
  - { id: w, name: W, skill: general, widen: [{ after_secs: 30, skill: kfz }] }
  - { id: x, name: X, skill: kfz, agents_from: [a, b] }
  - { id: v, name: V, skill: nope, min_level: 4, widen: [{ after_secs: 30, min_level: 2 }] }
",
        ),
    );
    f.file("b.yaml", "hotlines: []\n");
    let errs = f.errors();
    let a = a_yaml(&f);
    let e = find(
        &errs,
        "queue `q`: no agent of tenant `a` has skill `general` at level 6 or more (the best has 5)",
    );
    at(e, &a, 10, 12);
    assert!(e.hint.starts_with("lower min_level to 5"), "{e}");
    let e = find(
        &errs,
        "queue `k`: no agent of tenant `a` has skill `kfz`, so nobody could answer",
    );
    at(e, &a, 12, 30);
    assert_eq!(
        e.hint,
        "agents of `b` have it: add `b` to the queue's `agents_from`, or give agents of `a` \
         the skill in zentrale.yaml (`skills: { kfz: 5 }`)"
    );
    let e = find(
        &errs,
        "queue `g`: no agent of tenant `a` has skill `generel`",
    );
    assert!(e.hint.starts_with("did you mean `general`?"), "{e}");
    let e = find(
        &errs,
        "widen step after 30 s of queue `w`: no agent of tenant `a` has skill `kfz`",
    );
    at(e, &a, 14, 72);
    // A step that keeps the skill is not reported again.
    find(&errs, "queue `v`: no agent of tenant `a` has skill `nope`");
    assert_eq!(errs.len(), 5, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn agents_from_rules() {
    let f = small(
        MAIN,
        &queue_plan(
            "    agents_from: [a, a, zz]\n  - { id: e, name: E, skill: general, agents_from: [] }\n",
        ),
    );
    let errs = f.errors();
    let a = a_yaml(&f);
    at(
        find(&errs, "tenant `a` is listed twice in agents_from"),
        &a,
        11,
        22,
    );
    let e = find(&errs, "agents_from: tenant `zz` is not defined");
    at(e, &a, 11, 25);
    let e = find(&errs, "agents_from is empty");
    at(e, &a, 12, 52);
    // The empty queue cannot be served either.
    find(&errs, "queue `e`: no agent of tenants");
    assert_eq!(errs.len(), 4, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn queue_errors_do_not_echo_as_unknown_references() {
    // A queue that fails to parse is not reported again as missing where the
    // hotline refers to it.
    let f = small(MAIN, &queue_plan("    bogus: 1\n"));
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "unknown key `bogus`");
    at(e, &a_yaml(&f), 11, 5);
}

#[test]
fn unreadable_dialplan_is_not_echoed_by_references() {
    // Tenant b's file is missing: references to its queues and its agents
    // are not reported again, only the file.
    let main = format!("{MAIN}  - id: b\n    name: B\n    dialplan: nope.yaml\n").replace(
        "tenants:",
        "  - { extension: \"2001\", name: B, password: x, tenant: b }\ntenants:",
    );
    let f = small(
        &main,
        &queue_plan("    on_timeout: { queue: b/overflow }\n"),
    );
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    find(&errs, "cannot read dialplan file");
}

#[test]
fn broken_acd_section_is_one_error() {
    let main = format!("{MAIN}acd:\n  wrap_up_secs: soon\n");
    let f = small(&main, DIALPLAN_Q);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    at(find(&errs, "not a whole number"), &f.main(), 15, 17);

    let f = small(&format!("{MAIN}acd:\n  wrapup_secs: 30\n"), DIALPLAN_A);
    let e = find(&f.errors(), "unknown key `wrapup_secs`").clone();
    at(&e, &f.main(), 15, 3);
    assert!(e.hint.starts_with("did you mean `wrap_up_secs`?"), "{e}");
}

// ---- dialplan: hours, limits, menus, overflow, number forms -----------------

/// Line and column (1-based) where `marker` first appears in `text`; with a
/// `|` in the marker, the place of the `|` (`"retries: |9"` is the 9).
fn place(text: &str, marker: &str) -> (usize, usize) {
    let (before, after) = marker.split_once('|').unwrap_or(("", marker));
    let whole = format!("{before}{after}");
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(&whole))
        .unwrap_or_else(|| panic!("{whole:?} not in the text"));
    let byte = line.find(&whole).unwrap_or(0) + before.len();
    (i + 1, line[..byte].chars().count() + 1)
}

/// The one error containing `needle`, which must point at `marker` in `text`.
fn found_at<'a>(
    errs: &'a [ConfigError],
    needle: &str,
    file: &Path,
    text: &str,
    marker: &str,
) -> &'a ConfigError {
    let e = find(errs, needle);
    let (line, column) = place(text, marker);
    at(e, file, line, column);
    e
}

/// `small` plus tenant `b` (file b.yaml) and the prompts hours and menus
/// default to.
fn two_tenants(a: &str, b: &str) -> Fixture {
    let main = format!("{MAIN}  - id: b\n    name: B\n    dialplan: b.yaml\n");
    let f = small(&main, a);
    f.file("b.yaml", b).sounds(&["closed", "invalid-input"]);
    f
}

const B_QUEUE: &str = "\
hours: { state: SH, weekly: [\"mon-fri 08:00-18:00\"] }
hotlines: []
queues:
  - { id: p, name: P, skill: general, agents_from: [a] }
";

#[test]
fn dialplan_keys_parsed() {
    let a = "\
municipality: Stadt A
hours:
  time_zone: Europe/Berlin
  state: HE
  weekly: [\"mon-fri 08:00-18:00\", \"sat 09:00-13:00\"]
  closures: [\"12-24 from 12:00\", \"2026-03-18 13:00-16:00\"]
  closed: { prompt: hello }
limits: { max_calls: 50, max_waiting: 20, busy: hangup }
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\", \"0561*\", \"056111X\"]
    greeting: hello
    queue: q
    via_115: true
    municipality: Dorf
    hours:
      weekly: [\"mon-thu 8-12\"]
      state: none
    menu:
      prompt: hello
      digits: { 1: { queue: r }, \"#\": hangup, \"2\": { uri: \"sip:x@127.0.0.1\" } }
      timeout_secs: 3
      retries: 2
      invalid: hello
      repeat_on_timeout: true
    overflow:
      after_secs: 20
      when_closed: true
      when_no_agents: true
      when_expected_wait_over_secs: 120
      target: { queue: b/p }
  - id: i
    name: I
    numbers: [\"0561116\"]
    greeting: hello
queues:
  - { id: q, name: Q, skill: general }
  - { id: r, name: R, skill: general }
";
    let cfg = loaded(&two_tenants(a, B_QUEUE));
    let dp = &cfg.tenants[0].dialplan;
    let (h, i) = (&dp.hotlines[0], &dp.hotlines[1]);
    assert_eq!(dp.municipality, "Stadt A");
    assert_eq!(
        (h.municipality.as_str(), i.municipality.as_str()),
        ("Dorf", "Stadt A")
    );
    assert_eq!((h.via_115, i.via_115), (Some(true), None));
    let s = dp.schedule.as_ref().expect("tenant hours");
    assert_eq!(s.zone_name(), "Europe/Berlin");
    assert_eq!(s.state(), Some(crate::dialplan::FederalState::Hessen));
    let weekly = s.weekly().expect("weekly");
    assert_eq!(weekly.on(jiff::civil::Weekday::Saturday).len(), 1);
    assert_eq!(weekly.on(jiff::civil::Weekday::Sunday).len(), 0);
    assert_eq!(s.closures().len(), 2);
    assert_eq!(dp.closed, Target::Prompt("hello".into()));
    assert_eq!(
        i.schedule.as_ref(),
        Some(s),
        "i inherits the tenant's hours"
    );
    let hs = h.schedule.as_ref().expect("h hours");
    assert_eq!(hs.state(), None, "state: none");
    assert_eq!(hs.closures(), s.closures(), "closures inherited");
    assert_eq!(
        hs.weekly()
            .expect("own weekly")
            .on(jiff::civil::Weekday::Friday),
        &[]
    );
    assert_eq!(h.closed, Target::Prompt("hello".into()));
    assert_eq!(
        (dp.limits.max_calls, dp.limits.max_waiting, &dp.limits.busy),
        (Some(50), Some(20), &Target::Hangup)
    );
    let q = |r: &str| Target::Queue(QueueRef::parse(r, "a").expect("ref"));
    let m = h.menu.as_ref().expect("menu");
    assert_eq!(m.digits.get(&'1'), Some(&q("r")));
    assert_eq!(m.digits.get(&'#'), Some(&Target::Hangup));
    assert_eq!(
        m.digits.get(&'2'),
        Some(&Target::Uri("sip:x@127.0.0.1".into()))
    );
    assert_eq!(
        (
            m.timeout,
            m.retries,
            m.invalid_prompt.as_str(),
            m.repeat_on_timeout
        ),
        (Duration::from_secs(3), 2, "hello", true)
    );
    assert_eq!(m.default, q("q"), "the hotline's queue by default");
    let o = h.overflow.as_ref().expect("overflow");
    assert_eq!(
        (
            o.after,
            o.when_closed,
            o.when_no_agents,
            o.when_expected_wait_over
        ),
        (
            Some(Duration::from_secs(20)),
            true,
            true,
            Some(Duration::from_secs(120))
        )
    );
    assert_eq!(o.target, q("b/p"));
    // The queue triggers are now the rules of the hotline's queue.
    let queue = cfg
        .queue(&QueueRef::parse("a/q", "").expect("ref"))
        .expect("q");
    assert_eq!(
        (queue.max_wait, queue.max_expected_wait, queue.join_empty),
        (
            Some(Duration::from_secs(20)),
            Some(Duration::from_secs(120)),
            false
        )
    );
    assert_eq!(
        [&queue.on_timeout, &queue.on_no_agents, &queue.on_full],
        [&q("b/p"), &q("b/p"), &q("b/p")]
    );
    assert!(
        cfg.sound_names().contains("closed"),
        "b's default closed prompt"
    );
    assert!(cfg.sound_names().contains("hello"));

    // Tuesday 2026-11-24 13:00 CET: h (Mon-Thu 8-12) is closed, b is open.
    let d = cfg.dialplan();
    let at: jiff::Timestamp = "2026-11-24T12:00:00Z".parse().expect("ts");
    let decide = |n: &str| d.decide(&crate::dialplan::CallInput::to_number(n), at);
    assert!(
        matches!(&decide("0561115"), crate::dialplan::Decision::Overflow { target, .. } if *target == q("b/p")),
        "{:?}",
        decide("0561115")
    );
    assert!(matches!(
        decide("0561116"),
        crate::dialplan::Decision::Hotline(_)
    ));
    assert_eq!(
        decide("0561117").route().map(|r| r.route.hotline.clone()),
        Some("h".to_string()),
        "pattern"
    );
    assert_eq!(
        decide("0561999").route().map(|r| r.route.hotline.clone()),
        Some("h".to_string()),
        "prefix"
    );
}

#[test]
fn hours_errors_point_at_the_value() {
    let a = "\
hours:
  time_zone: Europe/Berln
  state: HS
  weekly: [\"mon-fri 18-8\", \"mon-fri 08:00-18:00\", \"fri 08:00-13:00\", \"mo-xx 8-9\"]
  closures: [\"2026-02-30\", \"12-24 ab 12:00\", \"12-24 from 12:00\", \"2026-12-24 12:00\"]
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\"]
    greeting: hello
";
    let f = small(MAIN, a);
    f.sounds(&["closed"]);
    let errs = f.errors();
    let file = a_yaml(&f);
    assert_eq!(errs.len(), 8, "{}", ConfigErrors(errs.clone()));
    let e = found_at(
        &errs,
        "unknown time zone `Europe/Berln`",
        &file,
        a,
        "Europe/Berln",
    );
    assert!(e.hint.starts_with("did you mean `Europe/Berlin`?"), "{e}");
    let e = found_at(&errs, "unknown federal state `HS`", &file, a, "HS");
    assert!(
        e.hint.contains("HE (Hessen)") && e.hint.contains("SH (Schleswig-Holstein)"),
        "{e}"
    );
    let e = found_at(
        &errs,
        "time range `18-8` ends before it starts",
        &file,
        a,
        "\"mon-fri 18-8\"",
    );
    assert!(e.hint.contains("two ranges"), "{e}");
    let e = found_at(
        &errs,
        "Friday 08:00-13:00 overlaps 08:00-18:00 of `mon-fri 08:00-18:00` (line 4)",
        &file,
        a,
        "\"fri 08:00-13:00\"",
    );
    assert!(e.hint.contains("\"mon-thu"), "{e}");
    found_at(
        &errs,
        "`xx` in `mo-xx 8-9` is not a day",
        &file,
        a,
        "\"mo-xx",
    );
    found_at(
        &errs,
        "`2026-02-30` is not a date of the calendar",
        &file,
        a,
        "\"2026-02-30\"",
    );
    found_at(
        &errs,
        "closure `12-24 from 12:00` is listed twice (first at line 5)",
        &file,
        a,
        "\"12-24 from",
    );
    found_at(
        &errs,
        "is not a time of the closure",
        &file,
        a,
        "\"2026-12-24 12:00\"",
    );
}

#[test]
fn closed_targets_must_be_reachable() {
    // The default closed prompt is missing: reported at `hours:`.
    let a = "hours: { weekly: [\"mon-fri 8-18\"] }\nhotlines:\n  - { id: h, name: H, numbers: [\"0561115\"], greeting: hello, hours: { closed: { queue: nope } } }\n";
    let f = small(MAIN, a);
    let errs = f.errors();
    let file = a_yaml(&f);
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    let e = found_at(&errs, "sound `closed` not found", &file, a, "{ weekly");
    assert!(e.hint.contains("make-sounds.sh"), "{e}");
    found_at(
        &errs,
        "closed target of hotline `h`: queue `a/nope` does not exist",
        &file,
        a,
        "nope",
    );
}

#[test]
fn limits_errors() {
    let a = "limits: { max_calls: 0, busy: { prompt: gone } }\nhotlines:\n  - { id: h, name: H, numbers: [\"0561115\"], greeting: hello }\n";
    let f = small(MAIN, a);
    let errs = f.errors();
    let file = a_yaml(&f);
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    found_at(&errs, "max_calls is 0", &file, a, "0,");
    found_at(&errs, "sound `gone` not found", &file, a, "gone");
}

#[test]
fn menu_errors() {
    let a = "\
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\"]
    greeting: hello
    menu:
      prompt: nope
      digits: { 1: { queue: q }, \"12\": hangup, \"3\": { queue: gone }, \"*\": hangup, \"1\": hangup }
      timeout_secs: 0
      retries: 9
queues:
  - { id: q, name: Q, skill: general }
";
    let f = small(MAIN, a);
    f.sounds(&["invalid-input"]);
    let errs = f.errors();
    let file = a_yaml(&f);
    assert_eq!(errs.len(), 7, "{}", ConfigErrors(errs.clone()));
    found_at(&errs, "sound `nope` not found", &file, a, "nope");
    let e = found_at(
        &errs,
        "menu key `1` is used twice (first at line 8)",
        &file,
        a,
        "\"1\"",
    );
    assert!(e.hint.starts_with("give each key one target"), "{e}");
    let e = found_at(
        &errs,
        "menu key `12` is not one phone key",
        &file,
        a,
        "\"12\"",
    );
    assert!(e.hint.contains("0-9, * or #"), "{e}");
    found_at(
        &errs,
        "menu key 3 of hotline `h`: queue `a/gone` does not exist",
        &file,
        a,
        "gone",
    );
    found_at(
        &errs,
        "menu timeout_secs 0 is outside 1..=30",
        &file,
        a,
        "timeout_secs: |0",
    );
    found_at(&errs, "menu retries 9", &file, a, "retries: |9");
    let e = find(
        &errs,
        "the menu of hotline `h` has no default and the hotline no queue",
    );
    assert_eq!((e.line, e.file.as_path()), (7, file.as_path()), "{e}");
    assert!(e.hint.contains("default:"), "{e}");
}

#[test]
fn menu_key_written_twice_the_same_way() {
    let a = "hotlines:\n  - id: h\n    name: H\n    numbers: [\"0561115\"]\n    greeting: hello\n    queue: q\n    menu: { prompt: hello, digits: { \"1\": hangup, \"1\": hangup } }\nqueues:\n  - { id: q, name: Q, skill: general }\n";
    let f = small(MAIN, a);
    f.sounds(&["invalid-input"]);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = &errs[0];
    assert!(
        e.message.contains("`1`") && e.message.contains("twice"),
        "{e}"
    );
    assert_eq!(e.line, 7, "{e}");
}

/// A hotline `h` with queue `q` and the given overflow; tenant `b` has queue `p`.
fn overflow_plan(overflow: &str, queue_extra: &str) -> String {
    format!(
        "\
hours: {{ weekly: [\"mon-fri 8-18\"] }}
hotlines:
  - id: h
    name: H
    numbers: [\"0561115\"]
    greeting: hello
    queue: q
    overflow: {overflow}
queues:
  - {{ id: q, name: Q, skill: general{queue_extra} }}
"
    )
}

#[test]
fn overflow_errors() {
    for (overflow, queue_extra, b, needle, marker) in [
        (
            "{ target: { queue: b/p } }",
            "",
            B_QUEUE,
            "the overflow of hotline `h` has no trigger, so it never happens",
            "{ target",
        ),
        (
            "{ after_secs: 20, target: { queue: q } }",
            "",
            B_QUEUE,
            "points at the hotline's own queue `a/q`",
            "q }",
        ),
        (
            "{ after_secs: 0, when_closed: true, target: { queue: b/p } }",
            "",
            B_QUEUE,
            "overflow after_secs is 0",
            "0,",
        ),
        (
            "{ after_secs: 20, target: { queue: b/p } }",
            ", max_wait_secs: 30",
            B_QUEUE,
            "the overflow of hotline `h` sets after_secs, and its queue `q` sets \
             max_wait_secs/on_timeout itself",
            "20,",
        ),
        (
            "{ when_no_agents: true, target: { queue: b/p } }",
            ", join_empty: false",
            B_QUEUE,
            "sets when_no_agents, and its queue `q` sets join_empty/on_no_agents",
            "true,",
        ),
        (
            "{ after_secs: 20, target: { queue: b/nope } }",
            "",
            B_QUEUE,
            "overflow of hotline `h`: queue `b/nope` does not exist",
            "b/nope",
        ),
        (
            "{ after_secs: 20, target: { queue: b/p } }",
            "",
            "hotlines: []\nqueues:\n  - { id: p, name: P, skill: general, agents_from: [a], on_timeout: { queue: a/q } }\n",
            "overflow of hotline `h` leads round in a loop (a/q → b/p → a/q)",
            "b/p",
        ),
    ] {
        let a = overflow_plan(overflow, queue_extra);
        let f = two_tenants(&a, b);
        let errs = f.errors();
        assert_eq!(errs.len(), 1, "{overflow}: {}", ConfigErrors(errs.clone()));
        found_at(&errs, needle, &a_yaml(&f), &a, marker);
    }
}

#[test]
fn overflow_needs_its_own_queue_and_hours() {
    // Two hotlines share the queue that would carry the overflow rules.
    let a = "\
hotlines:
  - { id: h, name: H, numbers: [\"0561115\"], greeting: hello, queue: q,
      overflow: { when_no_agents: true, target: { queue: b/p } } }
  - { id: i, name: I, numbers: [\"0561116\"], greeting: hello, queue: q }
  - { id: j, name: J, numbers: [\"0561117\"], greeting: hello,
      overflow: { after_secs: 20, target: { queue: b/p } } }
  - { id: k, name: K, numbers: [\"0561118\"], greeting: hello,
      overflow: { when_closed: true, target: { queue: b/p } } }
queues:
  - { id: q, name: Q, skill: general }
";
    let f = two_tenants(a, B_QUEUE);
    let errs = f.errors();
    let file = a_yaml(&f);
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    let e = found_at(
        &errs,
        "the overflow of hotline `h` becomes a rule of queue `a/q`, which hotline `i`",
        &file,
        a,
        "true,",
    );
    assert!(e.hint.contains("a queue of its own"), "{e}");
    found_at(
        &errs,
        "the overflow of hotline `j` waits for the hotline's queue, but it has none",
        &file,
        a,
        "20,",
    );
    let e = found_at(
        &errs,
        "the overflow of hotline `k` is for when it is closed, but it has no service hours",
        &file,
        a,
        "{ when_closed",
    );
    assert!(e.hint.contains("hours:"), "{e}");
}

#[test]
fn numbers_of_different_tenants_must_not_overlap() {
    let b = "\
hotlines:
  - id: x
    name: X
    numbers: [\"0561*\", \"+49561115\", \"04106611X\"]
    greeting: hello
  - id: y
    name: Y
    numbers: [\"0410661[1-3]5\", \"041066[0-4]\", \"04106619\"]
    greeting: hello
";
    let f = two_tenants(DIALPLAN_A, b);
    let errs = f.errors();
    let file = f.dir.join("b.yaml");
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    let e = found_at(
        &errs,
        "number `0561*` (tenant `b`, hotline `x`) overlaps `0561115` at ",
        &file,
        b,
        "\"0561*\"",
    );
    assert!(
        e.message.contains(&format!(
            "{}:4:15 (tenant `a`, hotline `h`)",
            a_yaml(&f).display()
        )),
        "{e}"
    );
    assert!(
        e.hint
            .starts_with("numbers of different tenants must not overlap"),
        "{e}"
    );
    let e = found_at(
        &errs,
        "number `+49561115` is used twice",
        &file,
        b,
        "\"+49561115\"",
    );
    assert!(e.message.ends_with("(written `0561115` there)"), "{e}");
    // Same tenant: an exact number inside a pattern or prefix is fine
    // (exact wins), two patterns of different hotlines are not.
    found_at(
        &errs,
        "pattern `0410661[1-3]5` (hotline `y`) matches some of the numbers of pattern `04106611X`",
        &file,
        b,
        "\"0410661[1-3]5\"",
    );
}

#[test]
fn a_broken_hours_section_is_one_error() {
    let a = "hours: { stat: HE }\nhotlines:\n  - { id: h, name: H, numbers: [\"0561115\"], greeting: hello,\n      overflow: { when_closed: true, target: hangup } }\n";
    let f = small(MAIN, a);
    f.sounds(&["closed"]);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = found_at(&errs, "unknown key `stat`", &a_yaml(&f), a, "stat");
    assert!(e.hint.contains("did you mean `state`?"), "{e}");
}

// ---- HTTP access: tokens, roles, hosts, origins ----------------------------

#[test]
fn api_tokens_inline_from_a_file_and_from_the_environment() {
    let var = format!("ZENTRALE_TEST_TOKEN_{}", std::process::id());
    // SAFETY: the name is unique to this test and std's own environment
    // access is locked; nothing in these tests reads it through libc.
    unsafe { std::env::set_var(&var, "env-secret-0123456789abcdef\n") };
    let main = format!(
        "{MAIN}http:\n  tokens:\n    - {{ name: board, token: inline-secret-0123456789, role: read }}\n    - {{ name: sup, token_file: sup.token, role: supervisor }}\n    - {{ name: ops, token_env: {var}, role: admin }}\n  open_reads: true\n  allowed_hosts: [Zentrale.Example, \"board.example:9000\"]\n  allowed_origins: [\"https://leitstand.example\"]\n"
    );
    let f = small(&main, DIALPLAN_A);
    f.file("sup.token", "file-secret-0123456789abcdef\n");
    let cfg = f
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(&str, &str, Role)> = cfg
        .http
        .tokens
        .iter()
        .map(|t| (t.name.as_str(), t.secret.as_str(), t.role))
        .collect();
    assert_eq!(
        got,
        [
            ("board", "inline-secret-0123456789", Role::Read),
            ("sup", "file-secret-0123456789abcdef", Role::Supervisor),
            ("ops", "env-secret-0123456789abcdef", Role::Admin),
        ]
    );
    assert!(cfg.http.open_reads && cfg.http.open_metrics);
    assert_eq!(
        cfg.http.allowed_hosts,
        ["zentrale.example", "board.example:9000"]
    );
    assert_eq!(cfg.http.allowed_origins, ["https://leitstand.example"]);
    // Secrets never show in a `{:?}` of the config.
    let debug = format!("{cfg:?}");
    assert!(debug.contains("\"board\"") && debug.contains("<redacted>"));
    for secret in ["inline-secret", "file-secret", "env-secret"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    // Defaults: no tokens, reads closed, metrics open.
    let cfg = small(MAIN, DIALPLAN_A)
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.http.tokens.is_empty() && !cfg.http.open_reads && cfg.http.open_metrics);
    unsafe { std::env::remove_var(&var) };
}

#[test]
fn bad_api_tokens_are_refused_at_their_place() {
    let main = format!(
        "{MAIN}http:
  tokens:
    - {{ name: short, token: abc123, role: read }}
    - {{ name: spaced, token: \"has spaces in it 0123456789\", role: read }}
    - {{ name: nofile, token_file: missing.token, role: read }}
    - {{ name: noenv, token_env: ZENTRALE_TEST_UNSET_VARIABLE, role: read }}
    - {{ name: both, token: both-secret-0123456789, token_file: x, role: read }}
    - {{ name: boss, token: boss-secret-0123456789, role: king }}
    - {{ name: twin, token: twin-secret-0123456789, role: read }}
    - {{ name: twin2, token: twin-secret-0123456789, role: read }}
  allowed_hosts: [\"http://zentrale.example/\"]
  allowed_origins: [\"leitstand.example\"]
"
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let base = MAIN.lines().count();
    let e = find(&errs, "API token `short`");
    assert!(
        e.message.contains("too short (6 characters, at least 16)"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("abc123"),
        "the secret is echoed: {e}"
    );
    at(e, &f.main(), base + 3, 29);
    let e = find(&errs, "API token `spaced`");
    assert!(
        e.message.contains("characters a bearer token cannot carry"),
        "{e}"
    );
    let e = find(&errs, "cannot read the API token file");
    at(e, &f.main(), base + 5, 35);
    let e = find(&errs, "ZENTRALE_TEST_UNSET_VARIABLE");
    assert!(e.hint.contains("token_file"), "{e}");
    find(&errs, "API token `both` needs exactly one of");
    let e = find(&errs, "unknown API role `king`");
    assert!(e.hint.contains("supervisor"), "{e}");
    let e = find(&errs, "same secret as token `twin`");
    assert!(!e.to_string().contains("twin-secret"), "{e}");
    find(&errs, "is not a host for `allowed_hosts`");
    find(&errs, "is not an origin for `allowed_origins`");
    assert_eq!(errs.len(), 9, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn http_off_loopback_needs_a_token_and_not_the_demo_one() {
    // No token at all.
    let main = format!("{MAIN}http:\n  listen: 0.0.0.0:8080\n");
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "no API token in `http.tokens`");
    assert!(e.message.contains("0.0.0.0:8080"), "{e}");
    at(e, &f.main(), MAIN.lines().count() + 2, 11);
    // The same by the command line, and fine on loopback.
    let f = small(MAIN, DIALPLAN_A);
    let ov = Overrides {
        http_listen: Some(addr("0.0.0.0:8080")),
        ..Overrides::default()
    };
    let errs = f.load(&ov).expect_err("no tokens on 0.0.0.0").0;
    find(&errs, "(set by --http-listen)");
    f.load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    // The demo token is refused off loopback, a real one is fine.
    let main = format!(
        "{MAIN}http:\n  listen: 0.0.0.0:8080\n  tokens:\n    - {{ name: demo, token: demo-token-change-me, role: admin }}\n"
    );
    let errs = small(&main, DIALPLAN_A).errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    find(&errs, "the demo API token");
    let main = main.replace("demo-token-change-me", "a0b1c2d3e4f5a6b7c8d9");
    small(&main, DIALPLAN_A)
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    // The demo config ships the demo token.
    let demo_cfg = demo()
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(demo_cfg.http.tokens.len(), 1);
    assert_eq!(demo_cfg.http.tokens[0].secret, crate::config::DEMO_TOKEN);
}

#[test]
fn unplayable_prompts_are_refused_where_they_are_named() {
    let f = small(MAIN, DIALPLAN_A);
    // A greeting cut to 100 ms: a copy that did not finish.
    let bytes = crate::media::wav::wav_bytes(
        8000,
        1,
        16,
        1,
        &[],
        &crate::media::wav::pcm_bytes(&[0; 800]),
    );
    std::fs::write(f.dir.join("sounds/hello.wav"), bytes).expect("write");
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let e = find(&errs, "sound `hello` cannot be played");
    assert!(
        e.message.contains("hello.wav") && e.message.contains("100 ms"),
        "{e}"
    );
    assert!(e.hint.contains("8000 Hz mono 16-bit"), "{e}");
    at(e, &f.dir.join("a.yaml"), 5, 15);
    // A stereo file.
    let bytes = crate::media::wav::wav_bytes(44100, 2, 16, 1, &[], &[0; 40000]);
    std::fs::write(f.dir.join("sounds/hello.wav"), bytes).expect("write");
    let e = find(&f.errors(), "sound `hello` cannot be played").clone();
    assert!(e.message.contains("44100 Hz stereo"), "{e}");
    // A fixed ACD prompt that is empty.
    f.wav("sounds/hello.wav");
    std::fs::write(f.dir.join("sounds/agent-paused.wav"), "").expect("write");
    let errs = f.errors();
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    find(&errs, "ACD prompt `agent-paused` cannot be played");
}

// ---- sip.limits, sip.connections, http.connections -----------------------

#[test]
fn limits_default_and_demo_values() {
    let f = small(MAIN, DIALPLAN_A);
    let cfg = f
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.sip.limits, crate::config::SipLimits::default());
    assert_eq!(
        cfg.sip.connections,
        crate::admission::connections::ConnectionLimits::SIP
    );
    assert_eq!(
        cfg.http.connections,
        crate::admission::connections::ConnectionLimits::HTTP
    );
    // The demo spells out every default.
    let f = demo();
    let cfg = f
        .load(&Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.sip.limits, crate::config::SipLimits::default());
    assert_eq!(
        cfg.sip.connections,
        crate::admission::connections::ConnectionLimits::SIP
    );
    assert_eq!(
        cfg.http.connections,
        crate::admission::connections::ConnectionLimits::HTTP
    );
}

#[test]
fn bad_limits_are_refused_at_their_place() {
    let main = MAIN.replace(
        "    udp: [127.0.0.1:5060]\n",
        "    udp: [127.0.0.1:5060]\n  limits:\n    transactions: 0\n    requests_per_sec: 100\n    requests_burst: 50\n    contacts_per_register: 5\n  connections:\n    max: 10\n    per_source: 20\n    max_message_bytes: 100\nhttp:\n  connections: { idle_timeout_secs: 0 }\n",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    at(find(&errs, "transactions is 0"), &f.main(), 5, 19);
    at(find(&errs, "requests_burst 50 is below"), &f.main(), 7, 21);
    at(
        find(&errs, "per_source 20 is above max 10"),
        &f.main(),
        11,
        17,
    );
    at(
        find(&errs, "max_message_bytes 100 is outside"),
        &f.main(),
        12,
        24,
    );
    at(find(&errs, "idle_timeout_secs is 0"), &f.main(), 14, 37);
    assert_eq!(errs.len(), 5, "{}", ConfigErrors(errs.clone()));
}

// ---- digest algorithms and brute-force limits ----------------------------

#[test]
fn digest_algorithms_default_to_md5_and_are_set_per_agent_and_trunk() {
    use crate::sip::digest::Algorithm::{Md5, Sha256};
    let f = small(MAIN, DIALPLAN_A);
    let cfg = f.load(&Overrides::default()).unwrap();
    assert_eq!(cfg.sip.digest_algorithms, vec![Md5]);
    assert_eq!(cfg.agents[0].digest_algorithms, None);
    assert_eq!(
        cfg.sip.auth_limits,
        crate::sip::lockout::LockoutSettings::default()
    );
    assert_eq!(cfg.sip.nonce_failures, 3);

    let main = MAIN
        .replace(
            "    udp: [127.0.0.1:5060]\n",
            "    udp: [127.0.0.1:5060]\n  digest_algorithms: [SHA-256, md5]\n  auth_limits: { per_source: 20, per_account: 0, lockout_secs: 5, nonce_failures: 2 }\n",
        )
        .replace(
            "    skills: { general: 5 }\n",
            "    skills: { general: 5 }\n    digest_algorithms: [SHA-256]\n",
        )
        + "trunks:\n  - name: t\n    sources: [127.0.0.1]\n    credentials: { username: u, password: p }\n    digest_algorithms: [MD5]\n";
    let f = small(&main, DIALPLAN_A);
    let cfg = match f.load(&Overrides::default()) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(cfg.sip.digest_algorithms, vec![Sha256, Md5]);
    assert_eq!(cfg.agents[0].digest_algorithms, Some(vec![Sha256]));
    assert_eq!(cfg.trunks[0].digest_algorithms, Some(vec![Md5]));
    let l = cfg.sip.auth_limits;
    assert_eq!((l.per_source, l.per_account), (20, 0));
    assert_eq!(l.lockout, Duration::from_secs(5));
    assert_eq!(cfg.sip.nonce_failures, 2);
}

#[test]
fn bad_digest_algorithms_are_refused_with_their_place() {
    let main =
        MAIN.replace(
            "    udp: [127.0.0.1:5060]\n",
            "    udp: [127.0.0.1:5060]\n  digest_algorithms: [MD5, SHA-512, MD5]\n",
        )
        .replace(
            "    skills: { general: 5 }\n",
            "    skills: { general: 5 }\n    digest_algorithms: []\n",
        ) + "trunks:\n  - name: t\n    sources: [127.0.0.1]\n    digest_algorithms: [MD5]\n";
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "`SHA-512` is not supported");
    at(e, &f.main(), 4, 28);
    assert!(e.hint.contains("MD5 and/or SHA-256"), "{e}");
    at(find(&errs, "MD5 is listed twice"), &f.main(), 4, 37);
    let e = find(&errs, "agent 1001: digest_algorithms is empty");
    at(e, &f.main(), 11, 24);
    let e = find(&errs, "trunk `t` has digest_algorithms but no credentials");
    at(e, &f.main(), 19, 24);
}

#[test]
fn bad_auth_limits_are_refused_with_their_place() {
    let main = MAIN.replace(
        "    udp: [127.0.0.1:5060]\n",
        "    udp: [127.0.0.1:5060]\n  auth_limits:\n    lockout_secs: 0\n    max_lockout_secs: 0\n    nonce_failures: 0\n    forget_secs: 0\n",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    at(find(&errs, "lockout_secs is 0"), &f.main(), 5, 19);
    at(find(&errs, "nonce_failures is 0"), &f.main(), 7, 21);
    at(find(&errs, "forget_secs is 0"), &f.main(), 8, 18);
    let f = small(
        &MAIN.replace(
            "    udp: [127.0.0.1:5060]\n",
            "    udp: [127.0.0.1:5060]\n  auth_limits: { lockout_secs: 600, max_lockout_secs: 60 }\n",
        ),
        DIALPLAN_A,
    );
    let errs = f.errors();
    at(
        find(&errs, "max_lockout_secs 60 is below lockout_secs 600"),
        &f.main(),
        4,
        55,
    );
}

#[test]
fn slots_and_media_networks_parsed() {
    let main = MAIN.replace(
        "    skills: { general: 5 }\n",
        "    skills: { general: 5 }\n    media_networks: [10.0.0.0/8, 127.0.0.1]\n\
         trunks:\n  - name: t\n    sources: [127.0.0.0/8]\n    media_networks: [192.0.2.0/24]\n",
    );
    let a = format!(
        "limits: {{ max_calls: 50, slots: {{ guaranteed: 100, max: 300 }} }}\n{DIALPLAN_A}"
    );
    let cfg = loaded(&small(&main, &a));
    let nets = |v: &[Cidr]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        nets(&cfg.agents[0].media_networks),
        ["10.0.0.0/8", "127.0.0.1/32"]
    );
    assert_eq!(nets(&cfg.trunks[0].media_networks), ["192.0.2.0/24"]);
    assert_eq!(
        cfg.tenants[0].dialplan.limits.slots,
        crate::dialplan::SlotShare {
            guaranteed: Some(100),
            max: Some(300)
        }
    );
    // Without the keys: media anywhere, default shares.
    let cfg = loaded(&small(MAIN, DIALPLAN_A));
    assert!(cfg.agents[0].media_networks.is_empty());
    assert_eq!(
        cfg.tenants[0].dialplan.limits.slots,
        crate::dialplan::SlotShare::default()
    );
}

#[test]
fn slots_and_media_networks_errors() {
    let main = MAIN.replace(
        "    skills: { general: 5 }\n",
        "    skills: { general: 5 }\n    media_networks: [lan]\n\
         trunks:\n  - name: t\n    sources: [127.0.0.0/8]\n    media_networks: []\n",
    );
    // The default range (30000-30999) has 500 legs: 499 caller slots
    // with one agent.
    let a = format!("limits: {{ slots: {{ guaranteed: 600, max: 0 }} }}\n{DIALPLAN_A}");
    let f = small(&main, &a);
    let errs = f.errors();
    assert_eq!(errs.len(), 4, "{}", ConfigErrors(errs.clone()));
    let file = a_yaml(&f);
    found_at(&errs, "slots.max is 0", &file, &a, "0 }");
    let e = found_at(&errs, "add up to 600", &file, &a, "600");
    assert!(e.to_string().contains("only 499 caller slots"), "{e}");
    let main_file = f.dir.join("zentrale.yaml");
    found_at(&errs, "bad media network", &main_file, &main, "lan");
    found_at(&errs, "media_networks is empty", &main_file, &main, "[]");
}

// ---- TLS and SRTP --------------------------------------------------------

#[test]
fn tls_files_are_checked_with_their_position() {
    let main = MAIN.replace(
        "    udp: [127.0.0.1:5060]\n",
        "    udp: [127.0.0.1:5060]\n    tls: [127.0.0.1:5061]\n  tls:\n    cert: missing.pem\n    key: key.pem\n",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "cannot read");
    at(e, &f.main(), 6, 11);
    assert!(e.message.contains("missing.pem"), "{e}");
    // A file that is there but holds no certificate.
    f.file("missing.pem", "not a certificate\n");
    let errs = f.errors();
    let e = find(&errs, "holds no certificate");
    at(e, &f.main(), 6, 11);
    assert!(e.hint.contains("BEGIN CERTIFICATE"), "{e}");
}

#[test]
fn a_tls_listener_needs_a_certificate() {
    let main = MAIN.replace(
        "    udp: [127.0.0.1:5060]\n",
        "    udp: [127.0.0.1:5060]\n    tls: [127.0.0.1:5061]\n",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "SIP listens on TLS but has no certificate");
    assert_eq!(e.line, 4, "at the TLS listener: {e}");
    assert!(e.hint.contains("cert:"), "{e}");
}

#[test]
fn srtp_and_trunk_transport_words() {
    let main = MAIN.replace(
        "    skills: { general: 5 }\n",
        "    skills: { general: 5 }\n    srtp: always\ntrunks:\n  - name: t\n    sources: [127.0.0.1]\n    transport: udp\n    srtp: require\n",
    );
    let f = small(&main, DIALPLAN_A);
    let errs = f.errors();
    let e = find(&errs, "unknown srtp setting `always`");
    at(e, &f.main(), 10, 11);
    assert!(e.hint.contains("`require`"), "{e}");
    let e = find(&errs, "unknown trunk transport `udp`");
    assert!(e.hint.contains("`tls`"), "{e}");
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
    let ok = small(
        &main
            .replace("always", "off")
            .replace("transport: udp", "transport: tls"),
        DIALPLAN_A,
    );
    let config = ok.load(&Overrides::default()).expect("valid");
    assert_eq!(config.agents[0].srtp, SrtpPolicy::Off);
    assert_eq!(config.trunks[0].srtp, SrtpPolicy::Require);
    assert!(config.trunks[0].tls_only);
}
