//! baresip (Debian's 1.0) as a real agent softphone: started from a config
//! directory of its own under a temp dir, bound to 127.0.0.1 only (SIP,
//! RTP and the SDP it writes: `net_interface 127.0.0.1`), sending a WAV
//! file (`aufile`), recording what it hears and what it sends (`sndfile`,
//! `dump-*-dec.wav` and `dump-*-enc.wav` in its directory) and driven
//! through its `ctrl_tcp` module: netstring-framed JSON commands
//! (`{"command": "hold", "params": "", "token": "1"}`) answered by a
//! `{"response": true, "ok": ..., "data": ..., "token": "1"}` among the
//! events it sends on the same connection.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Daemon, LOCALHOST, TempDir, free_port, free_tcp_port};

/// baresip's audio source: a tone mix (440 Hz and 1013 Hz), 8 kHz mono
/// 16-bit, long enough for a test call. Its G.711 frames are unlike any
/// prompt and unlike the constant fill of the test peers.
pub fn baresip_tone(seconds: u32) -> Vec<i16> {
    (0..8000 * seconds)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            let v = 6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1013.0 * t).sin();
            v as i16
        })
        .collect()
}

/// A RIFF WAV file of 8 kHz mono 16-bit `samples`.
pub fn wav_bytes(samples: &[i16]) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    for v in [2u16, 16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    out
}

/// The 16-bit samples of a WAV file (the `data` chunk), whatever its size
/// field says (baresip's recordings are read while it still writes them).
pub fn wav_file_samples(path: &std::path::Path) -> Vec<i16> {
    let bytes = fs::read(path).unwrap_or_default();
    let mut i = 12;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len =
            u32::from_le_bytes([bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]]) as usize;
        if id == b"data" {
            let end = bytes.len();
            return bytes[i + 8..end]
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
        }
        i += 8 + len + (len & 1);
    }
    Vec::new()
}

/// A running baresip registered (or registering) as one agent.
pub struct Baresip {
    child: Child,
    pub dir: TempDir,
    /// Where its SIP listens (UDP and TCP; it also takes the next port for TLS).
    pub sip: SocketAddr,
    ctrl: SocketAddr,
    /// What it sends: the samples of its source WAV.
    pub source: Vec<i16>,
    log: PathBuf,
    token: u32,
}

impl Baresip {
    /// Starts baresip as extension `ext` with `password` at `d`, auto-answering
    /// calls, re-registering every `regint` seconds. Waits until its control
    /// port answers (registration goes on in the background).
    pub fn start(d: &Daemon, ext: &str, password: &str, regint: u32) -> Baresip {
        let dir = TempDir::new("baresip");
        let source = baresip_tone(30);
        let wav = dir.path().join("source.wav");
        fs::write(&wav, wav_bytes(&source)).expect("writing baresip's source WAV");
        let mut last = String::new();
        for _ in 0..3 {
            let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let ctrl = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
            if ctrl.port() == sip.port() + 1 {
                continue; // baresip's TLS listener takes the port after SIP's
            }
            let config = format!(
                "poll_method\t\tepoll\n\
                 sip_listen\t\t{sip}\n\
                 net_interface\t\t{LOCALHOST}\n\
                 audio_player\t\taubridge,sink\n\
                 audio_source\t\taufile,{wav}\n\
                 audio_alert\t\taubridge,alert\n\
                 module_path\t\t/usr/lib/baresip/modules\n\
                 module\t\t\tg711.so\n\
                 module\t\t\taufile.so\n\
                 module\t\t\taubridge.so\n\
                 module\t\t\tsndfile.so\n\
                 snd_path\t\t{rec}\n\
                 module_app\t\taccount.so\n\
                 module_app\t\tmenu.so\n\
                 module_app\t\tctrl_tcp.so\n\
                 ctrl_tcp_listen\t\t{ctrl}\n",
                wav = wav.display(),
                rec = dir.path().display(),
            );
            fs::write(dir.path().join("config"), config).expect("writing baresip's config");
            fs::write(
                dir.path().join("accounts"),
                format!(
                    "<sip:{ext}@{}>;auth_pass={password};regint={regint};answermode=auto\n",
                    d.sip
                ),
            )
            .expect("writing baresip's accounts");
            let log = dir.path().join("baresip.log");
            let out = fs::File::create(&log).expect("creating baresip's log");
            let err = out.try_clone().expect("cloning the log handle");
            let mut child = Command::new("baresip")
                .arg("-f")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("spawning baresip (apt-get install baresip): {e}"));
            let until = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < until {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!("baresip exited with {status}");
                    break;
                }
                if TcpStream::connect_timeout(&ctrl, Duration::from_millis(200)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Baresip {
                    child,
                    dir,
                    sip,
                    ctrl,
                    source,
                    log,
                    token: 0,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last = format!(
                "{last}; baresip's control port {ctrl} did not open\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        d.fail(format!("baresip did not start: {last}"));
    }

    /// baresip's log so far (stdout and stderr), without colour codes.
    pub fn log(&self) -> String {
        let text = fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        text.replace("\x1b[31m", "")
            .replace("\x1b[;m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "")
    }

    /// Waits until baresip's log contains `needle`.
    pub fn wait_log(&self, d: &Daemon, needle: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d.fail(format!(
            "baresip did not log {needle:?} within {limit:?}; its log:\n{}",
            self.log()
        ));
    }

    /// Runs a ctrl_tcp command (`accept`, `hangup`, `hold`, `resume`,
    /// `dial` with the number as `params`, `quit`, ...) and returns its
    /// response's `data`; fails the test if baresip says it did not work.
    pub fn command(&mut self, d: &Daemon, command: &str, params: &str) -> String {
        self.token += 1;
        let token = format!("t{}", self.token);
        let body =
            serde_json::json!({"command": command, "params": params, "token": token}).to_string();
        let mut conn = TcpStream::connect_timeout(&self.ctrl, Duration::from_secs(2))
            .unwrap_or_else(|e| d.fail(format!("baresip control port {}: {e}", self.ctrl)));
        conn.set_read_timeout(Some(Duration::from_millis(200))).ok();
        conn.write_all(format!("{}:{body},", body.len()).as_bytes())
            .unwrap_or_else(|e| d.fail(format!("sending {command} to baresip: {e}")));
        let until = Instant::now() + Duration::from_secs(5);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = conn.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            while let Some((msg, rest)) = netstring(&buf) {
                let v: serde_json::Value = serde_json::from_slice(&msg).unwrap_or_default();
                buf = rest;
                if v["response"] == true && v["token"] == token.as_str() {
                    if v["ok"] != true {
                        d.fail(format!("baresip refused {command} {params}: {v}"));
                    }
                    return v["data"].as_str().unwrap_or_default().to_owned();
                }
            }
        }
        d.fail(format!(
            "baresip did not answer {command} within 5 s; its log:\n{}",
            self.log()
        ))
    }

    /// The samples baresip recorded of what it heard (`dec`) or sent
    /// (`enc`) in its calls so far, in call order.
    pub fn recorded(&self, which: &str) -> Vec<i16> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dump-") && n.ends_with(&format!("-{which}.wav")))
        });
        files.sort();
        files.iter().flat_map(|p| wav_file_samples(p)).collect()
    }

    /// Quits baresip (it un-registers on the way out); kills it after 5 s.
    pub fn quit(&mut self, _d: &Daemon) {
        // baresip may close the connection before it answers `quit`.
        let body = r#"{"command":"quit","params":"","token":"quit"}"#;
        if let Ok(mut conn) = TcpStream::connect_timeout(&self.ctrl, Duration::from_secs(2)) {
            let _ = conn.write_all(format!("{}:{body},", body.len()).as_bytes());
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// The first netstring of `buf` (`len:data,`) and what follows it.
fn netstring(buf: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let colon = buf.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    let end = colon + 1 + len;
    (buf.len() > end).then(|| (buf[colon + 1..end].to_vec(), buf[end + 1..].to_vec()))
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("baresip log:\n{}", self.log());
        }
    }
}
