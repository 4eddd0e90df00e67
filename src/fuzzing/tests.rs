//! The bounded fuzz run of the test suite: each target replays its seed
//! corpus (`fuzz/seeds/<target>/`, committed) and then seeded mutations
//! of it, at most [`MUTATIONS`] inputs or [`BUDGET`] of time per target.
//! `ZENTRALE_FUZZ_SEED=n` picks another mutation seed (default: fixed, so
//! a failure replays). A failing input is written to
//! `target/fuzz-failures/` and its path is in the panic message:
//! replay it with `cargo +nightly fuzz run TARGET FILE`.
//!
//! Longer runs: `benches/fuzz.sh`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Input, Rng, mutate};

/// Mutated inputs per target, and the time each target may take.
const MUTATIONS: usize = 3000;
const BUDGET: Duration = Duration::from_secs(4);

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a seed file").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Runs `run` on `data`; on a panic keeps the input and fails with where.
fn run_one(target: &str, run: fn(&[u8]), data: &[u8], what: &str) {
    let outcome = std::panic::catch_unwind(|| run(data));
    if outcome.is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{target}-{}", what.replace(['/', ' '], "_")));
        let _ = std::fs::write(&file, data);
        panic!(
            "fuzz target {target} failed on {what}; input kept in {}",
            file.display()
        );
    }
}

fn smoke(target: &str, run: fn(&[u8])) {
    let corpus = seeds(target);
    assert!(!corpus.is_empty(), "no seeds for {target}");
    for (path, data) in &corpus {
        run_one(target, run, data, &path.display().to_string());
    }
    let seed = std::env::var("ZENTRALE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x2026_1207);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut done = 0;
    while done < MUTATIONS && started.elapsed() < BUDGET {
        let mut data = corpus[rng.below(corpus.len())].1.clone();
        for _ in 0..1 + rng.below(8) {
            mutate(&mut data, &mut rng);
        }
        run_one(target, run, &data, &format!("seed {seed} mutation {done}"));
        done += 1;
    }
    eprintln!(
        "fuzz smoke {target}: {} seeds, {done} mutations in {:.1} s",
        corpus.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn screening_smoke() {
    smoke("screening", super::screening::run);
}

#[test]
fn dialogs_smoke() {
    smoke("dialogs", super::dialogs::run);
}

#[test]
fn core_smoke() {
    smoke("core", super::core::run);
}

/// The input of issue 16's crash, as the `core` target decodes it: a
/// trunk call whose Contact is `<sip:caller@>` (a dictionary token put in
/// place of the Contact header), answered, then shut down. Before the fix
/// the shutdown BYE panicked in `Dialog::request`.
pub(super) const EMPTY_HOST_CONTACT: &[u8] = &[
    0, 0, // INVITE to 115,
    1, 0, 1, 1, 6, // one mutation: dictionary token 1 as header 6 (Contact)
    12, 2, // one second later: answered
    2, 0, 0, 0,  // the caller's ACK
    15, // shutdown: BYE to every call
];

#[test]
fn core_survives_the_empty_host_contact() {
    // The decoding is what makes this input the crash: check it is still.
    let mut input = Input::new(EMPTY_HOST_CONTACT);
    assert_eq!(
        super::core::Op::decode(&mut input),
        super::core::Op::Invite { number: 0 }
    );
    assert_eq!(super::DICTIONARY[1], "<sip:caller@>");
    super::core::run(EMPTY_HOST_CONTACT);
}

/// The seeds lead where their comments say: the operations reach
/// answered calls, agent legs and zentrale's own BYEs.
#[test]
fn core_seeds_reach_dialogs() {
    let trace = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds/core")
            .join(name);
        super::core::run_traced(&std::fs::read(&path).expect("a seed"))
    };
    let has = |trace: &[String], line: &str| trace.iter().any(|l| l.starts_with(line));
    let call = trace("trunk-call");
    assert!(has(&call, "25070 SIP/2.0 200 OK"), "{call:#?}");
    let agent = trace("agent-answers");
    for line in [
        "25072 SIP/2.0 200 OK",
        "25072 INVITE sip:1001@127.0.0.1:25072",
        "25072 ACK ",
        "25070 SIP/2.0 200 OK",
    ] {
        assert!(has(&agent, line), "no {line:?} in {agent:#?}");
    }
    let timers = trace("timers");
    assert!(has(&timers, "25070 BYE "), "{timers:#?}");
    let crash = super::core::run_traced(EMPTY_HOST_CONTACT);
    assert!(has(&crash, "25070 SIP/2.0 400 "), "{crash:#?}");
}

#[test]
fn loopback_only_rewrites_every_other_address() {
    use super::loopback_only;
    let cases: &[(&str, &str)] = &[
        ("c=IN IP4 192.0.2.1", "c=IN IP4 127.0.0.1"),
        (
            "Via: SIP/2.0/UDP 10.0.0.1:5060",
            "Via: SIP/2.0/UDP 127.0.0.1:5060",
        ),
        ("sip:a@127.1.2.3:5070", "sip:a@127.1.2.3:5070"),
        ("c=IN IP6 ::1", "c=IN IP6 127.0.0.1"),
        ("c=IN IP6 fe80::1", "c=IN IP6 127.0.0.1"),
        ("1.2.3.4.5", "127.0.0.1"),
        (
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:101 telephone-event/8000",
        ),
        ("CSeq: 4294967296", "CSeq: 4294967296"),
        ("branch=z9hG4bKdeadbeef", "branch=z9hG4bKdeadbeef"),
    ];
    for (input, want) in cases {
        let got = loopback_only(input.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), *want, "{input}");
    }
}

/// Writes the seed corpus of `fuzz/seeds/` anew (run by hand when the
/// templates or the decoding change: `cargo test --lib write_seeds --
/// --ignored`).
#[test]
#[ignore]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("the seeds directory");
        std::fs::write(dir.join(name), data).expect("a seed file");
    };
    let invite = "INVITE sip:115@127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: \"Anrufer\" <sip:0301234567@127.0.0.1:25070>;tag=a1\r\n\
        To: <sip:115@127.0.0.1:5060>\r\n\
        Call-ID: c1@trunk\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:trunk@127.0.0.1:25070;transport=udp>\r\n\
        Record-Route: <sip:127.0.0.2;lr>, <sip:proxy@127.0.0.3:5062;lr>\r\n\
        Supported: timer\r\nSession-Expires: 1800\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 129\r\n\r\n\
        v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let options = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK-2\r\n\
        From: <sip:monitor@127.0.0.1>;tag=m\r\nTo: <sip:127.0.0.1:5060>\r\n\
        Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nAccept: text/plain\r\n\
        Content-Length: 0\r\n\r\n";
    let register = "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.1:25072;branch=z9hG4bK-3\r\n\
        From: <sip:1001@127.0.0.1>;tag=r\r\nTo: <sip:1001@127.0.0.1>\r\n\
        Call-ID: r1\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n\
        Contact: <sip:1001@127.0.0.1:25072>;expires=300, \"x\" <sip:1001@127.0.0.1:25074>;q=0.5\r\n\
        Authorization: Digest username=\"1001\", realm=\"zentrale\", nonce=\"n\", uri=\"sip:127.0.0.1:5060\", response=\"00\", algorithm=MD5\r\n\
        Content-Length: 0\r\n\r\n";
    let ok = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-4;rport\r\n\
        From: \"Kassel 115\" <sip:0301234567@127.0.0.1:5060>;tag=z\r\n\
        To: <sip:1001@127.0.0.1:5060>;tag=phone\r\n\
        Call-ID: leg1@zentrale\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:1001@127.0.0.1:25072>\r\n\
        Record-Route: <sip:127.0.0.4;lr>\r\n\
        Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n";
    write("screening", "invite", invite.as_bytes());
    write("screening", "options", options.as_bytes());
    let mut tcp = vec![7u8];
    tcp.extend_from_slice(register.as_bytes());
    tcp.extend_from_slice(b"\r\n\r\n");
    tcp.extend_from_slice(options.as_bytes());
    write("screening", "register-tcp", &tcp);
    write("screening", "response", ok.as_bytes());
    let mut caller = vec![0u8];
    caller.extend_from_slice(invite.as_bytes());
    write("dialogs", "caller-invite", &caller);
    let mut agent = vec![1u8];
    agent.extend_from_slice(ok.as_bytes());
    write("dialogs", "agent-200", &agent);
    // The core target's operations (see `core::Op::decode`).
    write(
        "core",
        "trunk-call",
        &[
            0, 0, 0, // INVITE to 115
            12, 2, // 1 s: answered
            2, 0, 0, 0, // ACK
            14, 0, 0, // greeting played out
            12, 3, // 4 s in the queue
            2, 0, 1, 0, // BYE from the caller
            4, 0, 0, 0, // (nothing to answer)
        ],
    );
    write(
        "core",
        "agent-answers",
        &[
            5, 0, 0, 0, // 1001 registers
            0, 0, 0, // INVITE to 115
            12, 2, // answered
            2, 0, 0, 0, // ACK
            14, 0, 0, // greeting played out: queued, 1001 offered
            7, 0, 0, 0, // 180 from the phone
            7, 0, 1, 0, // 200 from the phone
            12, 3, // talking
            9, 0, 0, // the agent hangs up
            12, 4, // wrap-up
        ],
    );
    write(
        "core",
        "timers",
        &[
            0, 2, 0, // INVITE to Krefeld
            0, 1, 0, // INVITE to 0561115
            12, 2, // answered, never ACKed
            12, 6, // timer H: BYE
            4, 0, 0, 0, // the trunk answers one BYE
            12, 8, // 200 s
            2, 1, 2, 0, // CANCEL after the answer
        ],
    );
    write(
        "core",
        "feature-code",
        &[
            5, 1, 0, 0, // 1002 registers
            6, 1, 2, 0, // 1002 dials *42
            12, 2, // the prompt
            14, 0, 0, // played out: BYE
            7, 0, 1, 0, // the phone answers the BYE
            10, 0,  // OPTIONS
            15, // shutdown
        ],
    );
    write(
        "core",
        "raw",
        &[
            11, 0, 20, b'O', b'P', b'T', b'I', b'O', b'N', b'S', b' ', b's', b'i', b'p', b':',
            b'a', b' ', b'S', b'I', b'P', b'/', b'2', b'.', b'0',
        ],
    );
}
