use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::rng::SeededRng;

const LOCAL: &str = "127.0.0.17";

fn offer_sdp(media: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=caller 123 456 IN IP4 127.0.0.21\r\ns=call\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\n{media}"
    )
    .into_bytes()
}

fn answer_to(media: &str) -> Result<Answer, SdpError> {
    let mut session = SdpSession::with_id(42, 1, &mut SeededRng::from_u64(1));
    answer(
        &offer_sdp(media),
        LOCAL.parse().unwrap(),
        30000,
        &mut session,
    )
}

fn text(a: &Answer) -> String {
    String::from_utf8(a.sdp.clone()).unwrap()
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn pcma_only_offer() {
    let a = answer_to("m=audio 4000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n").unwrap();
    assert_eq!((a.codec, a.payload_type), (Codec::Pcma, 8));
    assert_eq!(a.dtmf_payload_type, None);
    assert_eq!(a.remote, addr("127.0.0.21:4000"));
    assert_eq!(a.direction, Direction::SendRecv);
    assert_eq!(
        text(&a),
        "v=0\r\no=zentrale 42 1 IN IP4 127.0.0.17\r\ns=zentrale\r\nc=IN IP4 127.0.0.17\r\n\
         t=0 0\r\nm=audio 30000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    // What we write, rtc-sdp reads back.
    assert!(parse::parse(&a.sdp).is_ok());
}

#[test]
fn callers_preference_order_wins() {
    let a = answer_to("m=audio 4000 RTP/AVP 0 8\r\n").unwrap();
    assert_eq!(a.codec, Codec::Pcmu);
    let a = answer_to("m=audio 4000 RTP/AVP 9 8 0\r\na=rtpmap:9 G722/8000\r\n").unwrap();
    assert_eq!((a.codec, a.payload_type), (Codec::Pcma, 8));
    assert!(text(&a).contains("m=audio 30000 RTP/AVP 8\r\n"));
}

#[test]
fn dynamic_payload_type_by_rtpmap() {
    let a = answer_to("m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:96 pcma/8000/1\r\n").unwrap();
    assert_eq!((a.codec, a.payload_type), (Codec::Pcma, 96));
    assert!(text(&a).contains("a=rtpmap:96 PCMA/8000\r\n"));
    // An rtpmap that redefines a static number is believed.
    let a = answer_to("m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 opus/48000/2\r\n").unwrap();
    assert_eq!(a.codec, Codec::Pcma);
}

#[test]
fn telephone_event_only_when_offered() {
    let a = answer_to(
        "m=audio 4000 RTP/AVP 8 0 100\r\na=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-16\r\n",
    )
    .unwrap();
    assert_eq!(a.dtmf_payload_type, Some(100));
    let t = text(&a);
    assert!(t.contains("m=audio 30000 RTP/AVP 8 100\r\n"), "{t}");
    assert!(
        t.contains("a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-16\r\n"),
        "{t}"
    );

    // No fmtp means 0-15 (RFC 4733 §2.4.1); wider sets are cut to what we know.
    let a =
        answer_to("m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n").unwrap();
    assert!(text(&a).contains("a=fmtp:101 0-15\r\n"));
    let a = answer_to(
        "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15,32-40\r\n",
    )
    .unwrap();
    assert!(text(&a).contains("a=fmtp:101 0-15\r\n"));

    // A 48 kHz telephone-event is not ours; no rtpmap, no telephone-event.
    let a = answer_to("m=audio 4000 RTP/AVP 0 110 101\r\na=rtpmap:110 telephone-event/48000\r\n")
        .unwrap();
    assert_eq!(a.dtmf_payload_type, None);
    assert!(!text(&a).contains("telephone-event"));
}

#[test]
fn video_is_rejected_in_place() {
    let a = answer_to(
        "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         m=audio 4000 RTP/AVP 8\r\n\
         m=image 6000 udptl t38\r\n",
    )
    .unwrap();
    let t = text(&a);
    let mlines: Vec<&str> = t.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        mlines,
        [
            "m=video 0 RTP/AVP 96",
            "m=audio 30000 RTP/AVP 8",
            "m=image 0 udptl t38"
        ]
    );
    assert!(!t.contains("H264"));
    assert_eq!(a.remote, addr("127.0.0.21:4000"));
}

#[test]
fn directions_are_mirrored() {
    for (offered, ours) in [
        ("sendonly", Direction::RecvOnly),
        ("recvonly", Direction::SendOnly),
        ("inactive", Direction::Inactive),
        ("sendrecv", Direction::SendRecv),
    ] {
        // Media level.
        let a = answer_to(&format!("m=audio 4000 RTP/AVP 8\r\na={offered}\r\n")).unwrap();
        assert_eq!(a.direction, ours, "{offered}");
        assert!(text(&a).ends_with(&format!("a={ours}\r\n")));
        // Session level.
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\na={offered}\r\nm=audio 4000 RTP/AVP 8\r\n"
        );
        let a = answer(
            body.as_bytes(),
            LOCAL.parse().unwrap(),
            30000,
            &mut SdpSession::new(&mut SeededRng::from_u64(1)),
        )
        .unwrap();
        assert_eq!(a.direction, ours, "session-level {offered}");
    }
    // Media level overrides session level.
    let body = "v=0\r\no=- 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 8\r\na=sendrecv\r\n";
    let a = answer(
        body.as_bytes(),
        LOCAL.parse().unwrap(),
        30000,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.direction, Direction::SendRecv);
}

#[test]
fn old_style_hold_and_port_zero() {
    let body = "v=0\r\no=- 1 2 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
    let a = answer(
        body.as_bytes(),
        LOCAL.parse().unwrap(),
        30000,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.remote, None);
    assert_eq!(a.direction, Direction::RecvOnly);

    let a = answer_to("m=audio 0 RTP/AVP 8\r\n").unwrap();
    assert_eq!(a.remote, None);
    assert_eq!(a.direction, Direction::Inactive);
    assert!(text(&a).contains("m=audio 0 RTP/AVP 8\r\n"));
}

#[test]
fn media_level_connection_and_ipv6() {
    let body = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::2\r\na=ptime:30\r\n";
    let local: IpAddr = "2001:db8::7".parse().unwrap();
    let a = answer(
        body.as_bytes(),
        local,
        30000,
        &mut SdpSession::with_id(1, 1, &mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.remote, addr("[2001:db8::2]:4000"));
    assert_eq!(a.remote_ptime, Some(30));
    let t = text(&a);
    assert!(t.contains("o=zentrale 1 1 IN IP6 2001:db8::7\r\n"), "{t}");
    assert!(t.contains("c=IN IP6 2001:db8::7\r\n"), "{t}");

    let hold6 =
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let a = answer(
        hold6.as_bytes(),
        local,
        30000,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.remote, None);
}

#[test]
fn refusals() {
    assert_eq!(
        answer_to("m=audio 4000 RTP/AVP 9 18\r\n"),
        Err(SdpError::NoCommonCodec)
    );
    assert_eq!(
        answer_to("m=audio 4000 RTP/SAVP 8\r\n"),
        Err(SdpError::NoCommonCodec)
    );
    assert_eq!(
        answer_to("m=video 4000 RTP/AVP 96\r\n"),
        Err(SdpError::NoAudio)
    );
    for garbage in [
        &b""[..],
        b"hello",
        b"v=0\r\nthis is not sdp\r\n",
        b"v=0\r\no=- x y IN IP4 127.1.2.4\r\n",
        b"\xff\xfe\x00",
    ] {
        let err = answer(
            garbage,
            LOCAL.parse().unwrap(),
            1,
            &mut SdpSession::new(&mut SeededRng::from_u64(1)),
        )
        .unwrap_err();
        assert!(
            matches!(err, SdpError::Malformed(_)),
            "{garbage:?}: {err:?}"
        );
    }
    // A hostname in c= cannot be used for RTP without DNS: refuse clearly.
    let body = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 pbx.example\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
    let err = answer(
        body.as_bytes(),
        LOCAL.parse().unwrap(),
        1,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap_err();
    assert!(
        matches!(&err, SdpError::Malformed(m) if m.contains("pbx.example")),
        "{err:?}"
    );
}

#[test]
fn lf_only_offer_is_accepted() {
    let body =
        "v=0\no=- 1 1 IN IP4 127.0.0.21\ns=-\nc=IN IP4 127.0.0.21\nt=0 0\nm=audio 4000 RTP/AVP 8\n";
    let a = answer(
        body.as_bytes(),
        LOCAL.parse().unwrap(),
        1,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.codec, Codec::Pcma);
}

#[test]
fn version_moves_only_on_change() {
    let mut s = SdpSession::with_id(7, 100, &mut SeededRng::from_u64(1));
    let local: IpAddr = LOCAL.parse().unwrap();
    let o = offer_sdp("m=audio 4000 RTP/AVP 8\r\n");
    let first = answer(&o, local, 30000, &mut s).unwrap();
    assert!(text(&first).contains("o=zentrale 7 100 "));
    let same = answer(&o, local, 30000, &mut s).unwrap();
    assert_eq!(same.sdp, first.sdp);
    let hold = offer_sdp("m=audio 4000 RTP/AVP 8\r\na=sendonly\r\n");
    let changed = answer(&hold, local, 30000, &mut s).unwrap();
    assert!(text(&changed).contains("o=zentrale 7 101 "));
    assert_eq!(s.version(), 101);
}

#[test]
fn our_offer_and_its_answer() {
    let mut s = SdpSession::with_id(9, 9, &mut SeededRng::from_u64(1));
    let local: IpAddr = LOCAL.parse().unwrap();
    let o = offer(local, 30002, &mut s, &[Codec::Pcma, Codec::Pcmu], true);
    let t = String::from_utf8(o.clone()).unwrap();
    assert!(t.contains("m=audio 30002 RTP/AVP 8 0 101\r\n"), "{t}");
    assert!(
        t.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"),
        "{t}"
    );
    // Answering our own offer works and picks our first codec.
    let a = answer(
        &o,
        "127.0.0.29".parse().unwrap(),
        4000,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!((a.codec, a.dtmf_payload_type), (Codec::Pcma, Some(101)));

    let n = parse_answer(&a.sdp).unwrap();
    assert_eq!(n.codec, Codec::Pcma);
    assert_eq!(n.dtmf_payload_type, Some(101));
    assert_eq!(n.remote, addr("127.0.0.29:4000"));
    assert_eq!(n.direction, Direction::SendRecv);

    let held = offer_with_direction(
        local,
        30002,
        &mut s,
        &[Codec::Pcmu],
        false,
        Direction::SendOnly,
    );
    let a = answer(
        &held,
        "127.0.0.29".parse().unwrap(),
        4000,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap();
    assert_eq!(a.direction, Direction::RecvOnly);
    let n = parse_answer(&a.sdp).unwrap();
    assert_eq!((n.codec, n.direction), (Codec::Pcmu, Direction::SendOnly));

    let rejected = offer_sdp("m=audio 0 RTP/AVP 8\r\n");
    assert_eq!(parse_answer(&rejected), Err(SdpError::NoCommonCodec));
}

#[test]
fn mutated_offers_never_panic() {
    use rand::RngExt;
    let base = offer_sdp(
        "m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendonly\r\n",
    );
    let mut rng = rand::rng();
    let local: IpAddr = LOCAL.parse().unwrap();
    for _ in 0..3000 {
        let mut b = base.clone();
        for _ in 0..rng.random_range(1..4) {
            if b.is_empty() {
                break;
            }
            let i = rng.random_range(0..b.len());
            match rng.random_range(0..3) {
                0 => b[i] = rng.random(),
                1 => {
                    b.remove(i);
                }
                _ => b.truncate(i),
            }
        }
        let _ = answer(
            &b,
            local,
            1,
            &mut SdpSession::new(&mut SeededRng::from_u64(1)),
        );
        let _ = parse_answer(&b);
    }
}

/// The zero-copy reader accepts nothing `rtc-sdp` refuses and reads what
/// `rtc-sdp` reads, over mutations of bodies that use every line type.
#[test]
fn reader_agrees_with_rtc_sdp() {
    let bases: [&[u8]; 4] = [
        b"v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
          m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
          a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n",
        b"v=0\no=- 12 34 IN IP6 ::1\ns=x\ni=info\ne=a@b\np=+49\nc=IN IP6 ::1\nb=AS:64\n\
          t=0 0\nk=clear:x\na=sendonly\nm=video 0 RTP/AVP 96\ni=t\nc=IN IP6 ::2\nb=TIAS:1\n\
          k=prompt\na=rtpmap:96 H264/90000\nm=audio 4000/2 RTP/AVP 0\na=recvonly\n",
        b"v=0\r\no=a 1 2 IN IP4 h\r\ns= \r\np=1\r\nb=X-YZ:5\r\nt=1 2\r\nt=3 4\r\na=x:y:z\r\n\
          m=audio 9 UDP/TLS/RTP/SAVP 0 8\r\nc=IN IP4 224.2.1.1/127/3\r\nc=IN IP4 127.1.2.4\r\n\
          m=message 5 TCP/MSRP *\r\n",
        b"v=0\r\no=u 1 1 IN IP4 1.1.1.1\r\ns=s\r\nu=http://x\r\nt=0 0\r\nr=7d 1h 0 25h\r\n\
          z=2882844526 -1h\r\nm=audio 1 RTP/AVP 0\r\n",
    ];
    let mut x: u64 = 0x5d9_4a11;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n.max(1) as u64) as usize
    };
    let interesting = b"\r\n =:/0aIPmv\xff\t";
    let (mut read, mut total) = (0, 0);
    for i in 0..20_000 {
        let mut b = bases[i % bases.len()].to_vec();
        for _ in 0..rnd(4) {
            if b.is_empty() {
                break;
            }
            let at = rnd(b.len());
            match rnd(4) {
                0 => b[at] = interesting[rnd(interesting.len())],
                1 => {
                    b.remove(at);
                }
                2 => b.insert(at, interesting[rnd(interesting.len())]),
                _ => b.truncate(at),
            }
        }
        total += 1;
        let Some(view) = read::read(&b) else {
            continue;
        };
        read += 1;
        let sd = parse::parse(&b).unwrap_or_else(|e| {
            panic!(
                "{:?}: read, but rtc-sdp says {e}",
                String::from_utf8_lossy(&b)
            )
        });
        assert_eq!(
            view,
            parse::Sdp::from_rtc(&sd),
            "{:?}",
            String::from_utf8_lossy(&b)
        );
    }
    assert!(read * 4 > total, "only {read} of {total} read");
}

mod srtp {
    use super::*;
    use crate::media::srtp::{CryptoLine, SrtpPolicy, Suite};

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    fn secure(media: &str, policy: SrtpPolicy) -> Result<Answer, SdpError> {
        let mut session = SdpSession::with_id(42, 1, &mut SeededRng::from_u64(1));
        answer_with_srtp(
            &offer_sdp(media),
            LOCAL.parse().unwrap(),
            30000,
            &mut session,
            policy,
        )
    }

    fn crypto_of(body: &str) -> Option<CryptoLine> {
        body.lines()
            .find_map(|l| l.strip_prefix("a=crypto:"))
            .and_then(CryptoLine::parse)
    }

    #[test]
    fn a_savp_offer_is_answered_with_our_key_and_its_tag() {
        let media = format!(
            "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}{KEY}\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20\r\n"
        );
        for policy in [SrtpPolicy::Offer, SrtpPolicy::Require] {
            let a = secure(&media, policy).unwrap();
            let body = text(&a);
            assert!(body.contains("m=audio 30000 RTP/SAVP 0\r\n"), "{body}");
            let ours = crypto_of(&body).expect("a crypto line");
            assert_eq!((ours.tag, ours.suite), (2, Suite::AesCm128HmacSha1_80));
            let keys = a.srtp.expect("SRTP keys");
            assert_eq!(keys.local, ours.key);
            assert_eq!(keys.remote.inline(), KEY);
            assert_ne!(keys.local, keys.remote);
        }
        assert_eq!(
            secure(&media, SrtpPolicy::Off).unwrap_err(),
            SdpError::NoCommonCodec
        );
    }

    #[test]
    fn best_effort_and_plain_offers() {
        let avp_crypto = format!(
            "m=audio 4000 RTP/AVP 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY}\r\n"
        );
        let a = secure(&avp_crypto, SrtpPolicy::Offer).unwrap();
        assert!(text(&a).contains("RTP/AVP 8"));
        assert_eq!(a.srtp.unwrap().suite, Suite::AesCm128HmacSha1_32);
        // Off ignores the crypto line and answers plain.
        let a = secure(&avp_crypto, SrtpPolicy::Off).unwrap();
        assert!(a.srtp.is_none() && !text(&a).contains("crypto"));
        let plain = "m=audio 4000 RTP/AVP 0\r\n";
        assert!(secure(plain, SrtpPolicy::Offer).unwrap().srtp.is_none());
        let e = secure(plain, SrtpPolicy::Require).unwrap_err();
        assert_eq!(e, SdpError::SrtpRequired);
    }

    #[test]
    fn our_offer_and_the_answer_to_it() {
        let ip: IpAddr = LOCAL.parse().unwrap();
        let mut session = SdpSession::with_id(1, 1, &mut SeededRng::from_u64(1));
        let offer = offer_with_srtp(
            ip,
            30000,
            &mut session,
            &[Codec::Pcmu],
            true,
            SrtpPolicy::Require,
        );
        let offer = String::from_utf8(offer).unwrap();
        assert!(offer.contains("m=audio 30000 RTP/SAVP 0 101"), "{offer}");
        let ours = crypto_of(&offer).unwrap();
        let answer = offer_sdp(&format!(
            "m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\n"
        ));
        let n = parse_answer_with_srtp(&answer, &mut session, SrtpPolicy::Require).unwrap();
        let keys = n.srtp.unwrap();
        assert_eq!(
            (keys.local, keys.remote.inline()),
            (ours.key, KEY.to_string())
        );
        // A plain answer: fine for "offer", refused for "require".
        let plain = offer_sdp("m=audio 4000 RTP/AVP 0\r\n");
        assert!(
            parse_answer_with_srtp(&plain, &mut session, SrtpPolicy::Offer)
                .unwrap()
                .srtp
                .is_none()
        );
        assert_eq!(
            parse_answer_with_srtp(&plain, &mut session, SrtpPolicy::Require),
            Err(SdpError::SrtpRequired)
        );
        let best_effort = offer_with_srtp(
            ip,
            30000,
            &mut session,
            &[Codec::Pcmu],
            true,
            SrtpPolicy::Offer,
        );
        let best_effort = String::from_utf8(best_effort).unwrap();
        assert!(
            best_effort.contains("RTP/AVP")
                && best_effort.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:")
        );
        let off = offer_with_srtp(
            ip,
            30000,
            &mut session,
            &[Codec::Pcmu],
            true,
            SrtpPolicy::Off,
        );
        assert!(!String::from_utf8(off).unwrap().contains("crypto"));
    }
}

/// Unreadable SDP and SDP without a usable stream are different faults:
/// the signalling layer answers the one 400 and the other 488.
#[test]
fn errors_name_their_kind_of_fault() {
    use crate::offer::OfferFault;
    assert_eq!(
        SdpError::Malformed("x".into()).fault(),
        OfferFault::Unreadable
    );
    for e in [
        SdpError::NoAudio,
        SdpError::NoCommonCodec,
        SdpError::SrtpRequired,
    ] {
        assert_eq!(OfferFault::from(&e), OfferFault::Unusable, "{e}");
    }
    let garbage = b"not sdp at all";
    let err = answer(
        garbage,
        "127.0.0.1".parse().unwrap(),
        1,
        &mut SdpSession::new(&mut SeededRng::from_u64(1)),
    )
    .unwrap_err();
    assert_eq!(err.fault(), OfferFault::Unreadable);
}
