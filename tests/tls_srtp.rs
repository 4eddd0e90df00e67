//! SIP over TLS and SRTP (issue 16 item 9) against the real binary, with
//! real TLS peers on loopback: a rustls client as an agent's phone
//! (registration and calls over its TLS connection) and baresip as a
//! carrier calling over TLS with SDES-SRTP, whose audio is checked after
//! decryption on both sides (baresip's own SRTP, libre's, is the
//! independent implementation).
//!
//! The certificates are made for each test with the `openssl` command
//! (a CA and a leaf for 127.0.0.1), outside the source tree.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::pem::PemObject;

/// A CA and a leaf certificate for 127.0.0.1 signed by it, in `dir`.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (install the `openssl` package): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=zentrale test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// The demo config with a TLS listener on `port` and the test certificate;
/// `more` are further edits.
fn start_tls(certs: &Certs, port: u16, more: &[(&str, &str)]) -> Daemon {
    let mut edits = vec![
        (
            "    tcp: [127.0.0.1:5060]\n".to_string(),
            format!("    tcp: [127.0.0.1:5060]\n    tls: [127.0.0.1:{port}]\n"),
        ),
        (
            "  realm: zentrale ".to_string(),
            format!(
                "  tls: {{ cert: {}, key: {}, ca: {} }}\n  realm: zentrale ",
                certs.cert.display(),
                certs.key.display(),
                certs.ca.display()
            ),
        ),
    ];
    edits.extend(more.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    Daemon::start_with(Options {
        edits,
        ..Options::default()
    })
}

/// A SIP peer on a TLS connection to zentrale (rustls, blocking).
struct TlsPeer {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    local: SocketAddr,
    buf: Vec<u8>,
}

impl TlsPeer {
    fn connect(to: SocketAddr, ca: &Path) -> Result<TlsPeer, String> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = fs::read(ca).map_err(|e| e.to_string())?;
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::IpAddress(to.ip().into());
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(to).map_err(|e| e.to_string())?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // Finish the handshake now, so a refused certificate shows here.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(TlsPeer {
            tls,
            local,
            buf: Vec::new(),
        })
    }

    fn send(&mut self, text: &str) {
        self.tls
            .write_all(text.as_bytes())
            .expect("writing over TLS");
        self.tls.flush().expect("flushing TLS");
    }

    /// The next message within `limit`, framed by Content-Length.
    fn recv(&mut self, limit: Duration) -> Option<SipMsg> {
        let until = Instant::now() + limit;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let msg: Vec<u8> = self.buf.drain(..end + 4 + len).collect();
                    if let Some(m) = SipMsg::parse(&msg) {
                        return Some(m);
                    }
                    continue;
                }
            }
            let left = until.checked_duration_since(Instant::now())?;
            self.tls
                .sock
                .set_read_timeout(Some(left.max(Duration::from_millis(5))))
                .ok()?;
            let mut chunk = [0u8; 8192];
            match self.tls.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= until {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The next message that is a request `method` (skipping others).
    fn expect_request(&mut self, d: &Daemon, method: &str, limit: Duration) -> SipMsg {
        let until = Instant::now() + limit;
        loop {
            let left = until
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| d.fail(format!("no {method} over TLS within {limit:?}")));
            match self.recv(left) {
                Some(m) if m.method() == Some(method) => return m,
                Some(_) => {}
                None => d.fail(format!("no {method} over TLS within {limit:?}")),
            }
        }
    }

    /// The final response to our `method`.
    fn expect_final(&mut self, d: &Daemon, method: &str) -> SipMsg {
        let until = Instant::now() + SIP_WAIT;
        loop {
            let left = until
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| d.fail(format!("no final response to {method} over TLS")));
            match self.recv(left) {
                Some(m)
                    if m.cseq_method() == Some(method) && m.status().is_some_and(|c| c >= 200) =>
                {
                    return m;
                }
                Some(_) => {}
                None => d.fail(format!("no final response to {method} over TLS")),
            }
        }
    }

    /// A response to `req` with our To tag and Contact.
    fn reply(&mut self, req: &SipMsg, code: u16, reason: &str, contact: &str, sdp: Option<&str>) {
        let mut s = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.headers_named("via") {
            let _ = write!(s, "Via: {v}\r\n");
        }
        let to = req.header("to").unwrap_or_default();
        let to = if to.contains(";tag=") {
            to.to_owned()
        } else {
            format!("{to};tag=tlsphone")
        };
        let _ = write!(
            s,
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {contact}\r\n",
            req.header("from").unwrap_or_default(),
            req.header("call-id").unwrap_or_default(),
            req.header("cseq").unwrap_or_default(),
        );
        match sdp {
            Some(b) => {
                let _ = write!(
                    s,
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
            None => s.push_str("Content-Length: 0\r\n\r\n"),
        }
        self.send(&s);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// REGISTER over the TLS connection with MD5 digest; the final response.
fn register_over_tls(d: &Daemon, phone: &mut TlsPeer, tls: SocketAddr, user: &str) -> SipMsg {
    let uri = format!("sip:{tls};transport=tls");
    let call_id = format!("{}@tls-test", SipUdp::token());
    let local = phone.local;
    let req = |cseq: u32, auth: &str| {
        format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{tls}>;tag=reg{user}\r\n\
             To: <sip:{user}@{tls}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local};transport=tls>\r\n\
             Expires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            b = SipUdp::token()
        )
    };
    phone.send(&req(1, ""));
    let challenge = phone.expect_final(d, "REGISTER");
    d.check(challenge.status() == Some(401), || {
        format!("REGISTER over TLS: {}", challenge.start)
    });
    let challenges = challenge.headers_named("www-authenticate");
    let auth = digest_md5(&challenges, user, "REGISTER", &uri)
        .unwrap_or_else(|| d.fail(format!("no MD5 challenge: {challenges:?}")));
    phone.send(&req(2, &format!("Authorization: {auth}\r\n")));
    phone.expect_final(d, "REGISTER")
}

#[test]
fn registration_and_a_queued_call_over_the_agents_tls_connection() {
    let certs_dir = TempDir::new("tls-certs");
    let certs = make_certs(certs_dir.path());
    let port = free_tcp_port();
    let d = start_tls(&certs, port, &[]);
    let tls: SocketAddr = ([127, 0, 0, 1], port).into();

    let mut phone = TlsPeer::connect(tls, &certs.ca)
        .unwrap_or_else(|e| d.fail(format!("TLS connection to zentrale: {e}")));
    let ok = register_over_tls(&d, &mut phone, tls, "1001");
    d.check(ok.status() == Some(200), || {
        format!("authenticated REGISTER over TLS: {}", ok.start)
    });
    d.check(
        ok.header("contact")
            .is_some_and(|c| c.contains("transport=tls")),
        || {
            format!(
                "the binding keeps transport=tls: {:?}",
                ok.header("contact")
            )
        },
    );

    // A plain UDP caller of 115 is queued and offered to 1001 over TLS.
    let mut caller = Caller::new(&d, "115");
    caller.connect(&d);
    let invite = phone.expect_request(&d, "INVITE", Duration::from_secs(30));
    let via = invite.header("via").unwrap_or_default().to_owned();
    d.check(via.starts_with("SIP/2.0/TLS 127.0.0.1:"), || {
        format!("INVITE over TLS has Via {via}")
    });
    d.check(
        invite
            .header("contact")
            .is_some_and(|c| c.contains("transport=tls")),
        || format!("zentrale's Contact on TLS: {:?}", invite.header("contact")),
    );
    let offer = invite.body_str();
    // Agent 1001 has the default `srtp: offer`: best-effort SRTP on RTP/AVP.
    d.check(
        offer.contains("RTP/AVP") && offer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        || format!("the offer to the agent:\n{offer}"),
    );
    // The phone answers plain RTP (no crypto line): zentrale takes it.
    let (media, pts) = sdp_media(&d, &offer);
    let rtp = RtpPeer::new(0xa6e0_1001);
    let sdp = format!(
        "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP {pt}\r\na=ptime:20\r\na=sendrecv\r\n",
        rtp.addr.port(),
        pt = pts[0]
    );
    let contact = format!("<sip:1001@{};transport=tls>", phone.local);
    phone.reply(&invite, 200, "OK", &contact, Some(&sdp));
    let ack = phone.expect_request(&d, "ACK", SIP_WAIT);
    d.check(ack.header("call-id") == invite.header("call-id"), || {
        format!("ACK {ack:?}")
    });
    rtp.talk(Some(media), pts[0], AGENT_FILL);

    // Audio both ways through the bridge.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && !(rtp.got().iter().any(|p| p.fill == Some(CALLER_FILL))
            && caller.rtp.got().iter().any(|p| p.fill == Some(AGENT_FILL)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    d.check(
        rtp.got().iter().any(|p| p.fill == Some(CALLER_FILL)),
        || "the agent hears the caller".into(),
    );
    d.check(
        caller.rtp.got().iter().any(|p| p.fill == Some(AGENT_FILL)),
        || "the caller hears the agent".into(),
    );

    // The caller hangs up: the BYE reaches the agent over its TLS connection.
    caller.hang_up(&d);
    let bye = phone.expect_request(&d, "BYE", SIP_WAIT);
    d.check(bye.header("call-id") == invite.header("call-id"), || {
        format!("BYE {bye:?}")
    });
    d.check(
        bye.header("via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TLS")),
        || format!("BYE Via {:?}", bye.header("via")),
    );
    phone.reply(&bye, 200, "OK", &contact, None);

    // A client that does not trust zentrale's certificate fails the handshake.
    let other_dir = TempDir::new("tls-other-ca");
    let other = make_certs(other_dir.path());
    let refused = TlsPeer::connect(tls, &other.ca);
    d.check(refused.is_err(), || {
        "a client with another CA must refuse the certificate".into()
    });
}

#[test]
fn the_certificate_is_reloaded_on_sighup_and_connections_stay() {
    let certs_dir = TempDir::new("tls-certs");
    let certs = make_certs(certs_dir.path());
    let port = free_tcp_port();
    let d = start_tls(&certs, port, &[]);
    let tls: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut phone = TlsPeer::connect(tls, &certs.ca).unwrap_or_else(|e| d.fail(e));
    let ok = register_over_tls(&d, &mut phone, tls, "1002");
    d.check(ok.status() == Some(200), || ok.start.clone());

    // A new CA and leaf in the same files, then SIGHUP.
    let fresh_dir = TempDir::new("tls-fresh");
    let fresh = make_certs(fresh_dir.path());
    fs::copy(&fresh.cert, &certs.cert).unwrap();
    fs::copy(&fresh.key, &certs.key).unwrap();
    let before = d.metric_sum("zentrale_config_reloads_total");
    let _ = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status();
    d.wait_metric(
        "zentrale_config_reloads_total",
        Duration::from_secs(10),
        |v| v > before,
    );
    // New handshakes get the new certificate: the new CA accepts, the old refuses.
    d.check(TlsPeer::connect(tls, &fresh.ca).is_ok(), || {
        "handshake with the new CA after reload".into()
    });
    d.check(TlsPeer::connect(tls, &certs.ca).is_err(), || {
        "the old certificate is gone".into()
    });
    // The established connection is still served.
    let ok = register_over_tls(&d, &mut phone, tls, "1002");
    d.check(ok.status() == Some(200), || {
        format!("REGISTER on the old connection: {}", ok.start)
    });

    // A broken key file is refused on reload; the running certificate stays.
    fs::write(
        &certs.key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = d.metric_sum("zentrale_config_reloads_total");
    let _ = Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status();
    d.wait_metric(
        "zentrale_config_reloads_total",
        Duration::from_secs(10),
        |v| v > before,
    );
    d.check(d.log_tail(40).contains("key.pem"), || {
        format!("the refusal names the file:\n{}", d.log_tail(40))
    });
    d.check(TlsPeer::connect(tls, &fresh.ca).is_ok(), || {
        "the last good certificate stays".into()
    });
}

// ---- baresip: TLS and SDES-SRTP from a real phone -------------------------

/// A 16-bit mono 8 kHz WAV of a 440 Hz tone, `secs` long.
fn tone_wav(path: &Path, secs: u32) {
    let n = 8000 * secs;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let s =
            (12000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16;
        wav.extend_from_slice(&s.to_le_bytes());
    }
    fs::write(path, wav).unwrap();
}

/// G.711 mu-law to linear (ITU-T G.711).
fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

/// The samples of a 16-bit PCM WAV file (its `data` chunk).
fn wav_samples(path: &Path) -> Vec<i16> {
    let bytes = fs::read(path).unwrap_or_default();
    let Some(at) = find(&bytes, b"data") else {
        return Vec::new();
    };
    bytes[(at + 8).min(bytes.len())..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt()
}

/// baresip calls `target` with `mediaenc=srtp-mand` (RTP/SAVP and SDES),
/// its microphone a tone file, what it hears written by its `sndfile`
/// module into `dir`; quits after `secs`.
fn baresip_call(dir: &Path, ca: &Path, target: &str, secs: u32) -> std::process::Child {
    let modules = Path::new("/usr/lib/baresip/modules");
    assert!(
        modules.join("srtp.so").exists(),
        "baresip's srtp module is missing (apt-get install baresip)"
    );
    tone_wav(&dir.join("tone.wav"), 30);
    let sip_port = free_tcp_port();
    fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\n\
             net_interface 127.0.0.1\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             sip_cafile {ca}\n\
             audio_source aufile,{tone}\n\
             audio_player alsa,null\n\
             audio_alert alsa,null\n\
             ausrc_srate 8000\nauplay_srate 8000\nausrc_channels 1\nauplay_channels 1\n\
             rtp_ports 40000-40999\n\
             snd_path {dir}\n\
             module_path {modules}\n\
             module g711.so\nmodule aufile.so\nmodule alsa.so\nmodule sndfile.so\n\
             module srtp.so\nmodule menu.so\nmodule account.so\n",
            ca = ca.display(),
            tone = dir.join("tone.wav").display(),
            dir = dir.display(),
            modules = modules.display(),
        ),
    )
    .unwrap();
    fs::write(
        dir.join("accounts"),
        "<sip:0301234567@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU\n",
    )
    .unwrap();
    let log = fs::File::create(dir.join("baresip.log")).unwrap();
    // -4 and `net_interface 127.0.0.1`: baresip would otherwise write the host's
    // first interface into its SDP; -s logs the SIP it sends (checked below).
    Command::new("baresip")
        .args(["-4", "-s"])
        .arg("-f")
        .arg(dir)
        .arg("-e")
        .arg(format!("/dial {target}"))
        .arg("-t")
        .arg(secs.to_string())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting baresip (apt-get install baresip)")
}

#[test]
fn baresip_calls_over_tls_with_srtp_and_both_directions_decrypt() {
    let certs_dir = TempDir::new("tls-certs");
    let certs = make_certs(certs_dir.path());
    let port = free_tcp_port();
    // The carrier must use TLS and SRTP.
    let d = start_tls(
        &certs,
        port,
        &[(
            "    sources: [127.0.0.0/8]   # the carrier's signalling addresses\n",
            "    sources: [127.0.0.0/8]   # the carrier's signalling addresses\n    transport: tls\n    srtp: require\n",
        )],
    );
    // Over UDP the same trunk is refused now.
    let mut plain = Caller::new(&d, "115");
    let refused = plain.call(&d);
    d.check(refused.status() == Some(403), || {
        format!("a UDP call from a TLS-only trunk: {}", refused.start)
    });

    // Agent 1001 on a plain UDP phone.
    let mut agent = Phone::registered(&d, "1001");
    let bare = TempDir::new("baresip");
    let mut baresip = baresip_call(
        bare.path(),
        &certs.ca,
        &format!("sip:115@127.0.0.1:{port};transport=tls"),
        22,
    );
    let mut guard = scopeguard(&mut baresip);
    let invite = agent.offer(Duration::from_secs(25)).unwrap_or_else(|| {
        d.fail(format!(
            "no offer to the agent; baresip said:\n{}",
            fs::read_to_string(bare.path().join("baresip.log")).unwrap_or_default()
        ))
    });
    agent.answer(&d, &invite);
    // baresip's tone, decrypted by zentrale, reaches the plain agent.
    std::thread::sleep(Duration::from_secs(3));
    let heard: Vec<u8> = agent
        .rtp
        .heard()
        .into_iter()
        .filter(|(p, _)| p.pt == 0)
        .flat_map(|(_, payload)| payload)
        .collect();
    let distinct = {
        let mut v = heard.clone();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    // The 440 Hz tone crosses zero 880 times a second (0.11 per sample);
    // undecrypted bytes would look like noise (about 0.5).
    let linear: Vec<i16> = heard.iter().map(|&b| ulaw_to_linear(b)).collect();
    let crossings = linear
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let rate = crossings as f64 / linear.len().max(1) as f64;
    d.check(
        heard.len() >= 160 * 50
            && distinct > 20
            && (0.08..0.14).contains(&rate)
            && rms(&linear) > 3000.0,
        || {
            format!(
                "the agent should hear baresip's tone: {} bytes, {distinct} distinct values, \
             zero crossings {rate:.3} per sample, RMS {:.0}; baresip:\n{}",
                heard.len(),
                rms(&linear),
                fs::read_to_string(bare.path().join("baresip.log")).unwrap_or_default()
            )
        },
    );
    // baresip ends the call when its time is up.
    let status = guard.wait(Duration::from_secs(30));
    let log = fs::read_to_string(bare.path().join("baresip.log")).unwrap_or_default();
    d.check(status, || format!("baresip did not finish:\n{log}"));
    // Loopback only, inside the SDP too.
    for line in log
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("c=") || l.starts_with("o="))
    {
        d.check(line.contains("127.0.0.1"), || {
            format!("baresip's SDP left loopback: {line}")
        });
    }
    d.check(log.contains("c=IN IP4 127.0.0.1"), || {
        format!("baresip's SDP is in its log:\n{log}")
    });
    d.check(
        log.contains("SRTP is Enabled") || log.to_ascii_lowercase().contains("srtp"),
        || format!("baresip used SRTP:\n{log}"),
    );
    d.check(!log.contains("failed to decrypt RTP"), || {
        format!("baresip could not decrypt zentrale's SRTP:\n{log}")
    });
    // What baresip decoded from zentrale's SRTP: greeting, music and the
    // agent's fill, not silence.
    let dumps: Vec<PathBuf> = fs::read_dir(bare.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.to_string_lossy().contains("dec") && p.extension().is_some_and(|x| x == "wav")
        })
        .collect();
    d.check(!dumps.is_empty(), || {
        format!("baresip's sndfile wrote no -dec.wav:\n{log}")
    });
    let samples: Vec<i16> = dumps.iter().flat_map(|p| wav_samples(p)).collect();
    let level = rms(&samples);
    d.check(samples.len() > 8000 * 3 && level > 300.0, || {
        format!(
            "baresip heard {} samples at RMS {level:.0}; want seconds of audio\n{log}",
            samples.len()
        )
    });
}

/// Ends a child process when the test ends, however it ends.
struct ChildGuard<'a>(&'a mut std::process::Child);

fn scopeguard(child: &mut std::process::Child) -> ChildGuard<'_> {
    ChildGuard(child)
}

impl ChildGuard<'_> {
    /// Waits up to `limit` for the process to exit by itself.
    fn wait(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for ChildGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An INVITE from the TLS peer to `ruri` with `media` as its m-line and
/// attributes.
fn tls_invite(phone: &TlsPeer, ruri: &str, call_id: &str, media: &str) -> String {
    let sdp = format!(
        "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n{media}"
    );
    format!(
        "INVITE {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {l};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sips:0301234567@127.0.0.1>;tag=carrier\r\n\
         To: <{ruri}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sips:carrier@{l}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len(),
        l = phone.local,
        b = SipUdp::token()
    )
}

#[test]
fn a_sips_call_gets_a_sips_contact_and_srtp_require_refuses_plain_rtp() {
    let certs_dir = TempDir::new("tls-certs");
    let certs = make_certs(certs_dir.path());
    let port = free_tcp_port();
    let d = start_tls(
        &certs,
        port,
        &[(
            "    sources: [127.0.0.0/8]   # the carrier's signalling addresses\n",
            "    sources: [127.0.0.0/8]   # the carrier's signalling addresses\n    srtp: require\n",
        )],
    );
    let tls: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut carrier = TlsPeer::connect(tls, &certs.ca).unwrap_or_else(|e| d.fail(e));
    let ruri = format!("sips:115@127.0.0.1:{port}");
    let rtp = RtpPeer::new(0xca11_5175);

    // Plain RTP to a trunk with `srtp: require`: 488.
    let plain = format!(
        "m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        rtp.addr.port()
    );
    carrier.send(&tls_invite(&carrier, &ruri, "plain@tls-test", &plain));
    let refused = carrier.expect_final(&d, "INVITE");
    d.check(refused.status() == Some(488), || {
        format!("plain RTP with srtp: require: {}", refused.start)
    });
    let warning = refused.header("warning").unwrap_or_default().to_owned();
    d.check(warning.contains("SRTP"), || {
        format!("the 488 says why: {warning:?}")
    });

    // RTP/SAVP with a crypto line: answered with our key, sips: Contact.
    let savp = format!(
        "m=audio {} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
        rtp.addr.port()
    );
    carrier.send(&tls_invite(&carrier, &ruri, "savp@tls-test", &savp));
    let ok = carrier.expect_final(&d, "INVITE");
    d.check(ok.status() == Some(200), || {
        format!("RTP/SAVP offer: {}", ok.start)
    });
    let contact = ok.header("contact").unwrap_or_default().to_owned();
    d.check(
        contact.starts_with(&format!("<sips:zentrale@127.0.0.1:{port}")),
        || format!("a sips: dialog gets a sips: Contact, not {contact}"),
    );
    let body = ok.body_str();
    d.check(
        body.contains("RTP/SAVP 0") && body.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        || format!("the answer:\n{body}"),
    );
    d.check(
        !body.contains("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"),
        || "zentrale answers with its own key".into(),
    );
    // SRTP from zentrale arrives at the carrier's port: 12 + 160 + 10 bytes.
    let ack = format!(
        "ACK sips:zentrale@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/TLS {l};branch=z9hG4bK{b};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sips:0301234567@127.0.0.1>;tag=carrier\r\nTo: {to}\r\n\
         Call-ID: savp@tls-test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        l = carrier.local,
        b = SipUdp::token(),
        to = ok.header("to").unwrap_or_default()
    );
    carrier.send(&ack);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until && rtp.heard().len() < 10 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let heard = rtp.heard();
    d.check(heard.len() >= 10, || {
        format!("{} packets from zentrale", heard.len())
    });
    d.check(heard.iter().all(|(_, p)| p.len() == 170), || {
        // 160 bytes of G.711 and the 10-byte tag after the 12-byte header.
        format!(
            "SRTP payload+tag lengths: {:?}",
            heard.iter().map(|(_, p)| p.len()).collect::<Vec<_>>()
        )
    });
}
