//! SIP over UDP, TCP and TLS: the sockets, stream framing and connection
//! reuse.
//!
//! Every TCP socket gets `TCP_NODELAY` (SIP messages are small and
//! latency-bound). A connection is known by its remote address; responses
//! and in-dialog requests for that address reuse it, and a request to an
//! address with no connection opens one. UDP goes through [`batch`]:
//! several datagrams per system call in both directions; the core thread
//! ([`super::driver`]) reads the UDP sockets itself, the tokio runtime
//! runs the TCP connections.
//!
//! TLS (rustls) is TCP with a handshake in front: the same framing, the
//! same writer per remote address, the same caps and deadlines,
//! `Transport::Tls` on what it delivers. Each handshake takes the
//! certificate that is current then, so a reload swaps it for new
//! connections and established ones keep their session.

pub mod batch;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::connections::{Gate, Permit, WARN_EVERY, accept_failed};
use super::core::TcpFlows;
use super::driver::CoreHandle;
use crate::admission::connections::StreamClock;
use crate::config::{Config, TlsConfig};
use crate::sip::Transport;
use crate::sip::framing::{Frame, StreamFramer};
use crate::sip::transaction::{Peer, Transmit};

/// How long a connection stays writable after its read side ended.
/// How long a TLS handshake may take.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a connection stays writable after its read side ended.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A framed message for the core.
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
}

type Writers = Arc<DashMap<SocketAddr, mpsc::Sender<Bytes>>>;

/// The certificate and trust in force, swapped by a reload.
type TlsSlot = Arc<ArcSwapOption<TlsConfig>>;

/// The listening sockets and the live TCP connections. Owned by the core
/// thread; the TCP side runs on the tokio runtime it was bound on.
pub struct Transports {
    /// Each UDP socket with its bound address, kept so that choosing the
    /// socket of a reply costs no `getsockname` call.
    udp: Vec<(std::net::UdpSocket, SocketAddr)>,
    tcp_local: Vec<SocketAddr>,
    tls_local: Vec<SocketAddr>,
    tls: TlsSlot,
    writers: Writers,
    runtime: Handle,
    link: Link,
}

/// What every connection task needs besides its socket.
#[derive(Clone)]
struct Link {
    writers: Writers,
    core: CoreHandle,
    gate: Gate,
    flows: TcpFlows,
}

impl Transports {
    /// Binds every configured listener and starts the TCP accept loops on
    /// the current tokio runtime; their messages go to `core`. The UDP
    /// sockets are for the core thread to read ([`Transports::udp_sockets`]).
    /// `gate` admits the TCP connections; `flows` says which of them carry
    /// a live registration.
    pub async fn bind(
        config: &Config,
        core: CoreHandle,
        gate: Gate,
        flows: TcpFlows,
    ) -> anyhow::Result<Transports> {
        let mut udp = Vec::new();
        for addr in &config.sip.udp {
            let s = batch::bind(*addr)
                .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
            let local = s.local_addr()?;
            udp.push((s, local));
        }
        let writers: Writers = Arc::new(DashMap::new());
        let link = Link {
            writers: writers.clone(),
            core: core.clone(),
            gate,
            flows,
        };
        let mut tcp_local = Vec::new();
        for addr in &config.sip.tcp {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP {addr}: {e}"))?;
            let local = l.local_addr()?;
            tcp_local.push(local);
            tokio::spawn(accept_loop(l, local, link.clone(), None));
        }
        let tls: TlsSlot = Arc::new(ArcSwapOption::new(config.tls.clone().map(Arc::new)));
        let mut tls_local = Vec::new();
        for addr in &config.sip.tls {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP TLS {addr}: {e}"))?;
            let local = l.local_addr()?;
            tls_local.push(local);
            tokio::spawn(accept_loop(l, local, link.clone(), Some(tls.clone())));
        }
        Ok(Transports {
            udp,
            tcp_local,
            tls_local,
            tls,
            writers,
            runtime: Handle::current(),
            link,
        })
    }

    /// Puts a reloaded certificate (and trust) in force for the handshakes
    /// that follow; established connections are not touched.
    pub fn set_tls(&self, tls: Option<TlsConfig>) {
        if let Some(tls) = tls {
            self.tls.store(Some(Arc::new(tls)));
        }
    }

    /// The UDP sockets (non-blocking) and their bound addresses; index `i`
    /// here is the `index` of [`Transports::udp_peer`].
    pub fn udp_sockets(&self) -> impl Iterator<Item = &(std::net::UdpSocket, SocketAddr)> {
        self.udp.iter()
    }

    /// The peer of a datagram received on UDP socket `index`.
    pub fn udp_peer(&self, index: usize, from: SocketAddr) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: from,
            local: self.udp[index].1,
        }
    }

    /// Sends a turn's messages without waiting: the UDP ones in batches
    /// (one `sendmmsg` per run of datagrams from the same socket), TCP ones
    /// through their connection's writer. Failures are logged and the
    /// message dropped; the transaction layer retransmits over UDP.
    pub fn send_all(&self, out: &mut Vec<Transmit>) {
        let mut rest = &out[..];
        while let Some(first) = rest.first() {
            if first.peer.transport.is_stream() {
                self.send_tcp(first.clone());
                rest = &rest[1..];
                continue;
            }
            let local = first.peer.local;
            let len = rest
                .iter()
                .take_while(|t| t.peer.transport == Transport::Udp && t.peer.local == local)
                .count();
            let socket = self
                .udp
                .iter()
                .find(|(_, l)| *l == local)
                .or_else(|| self.udp.first());
            if let Some((s, _)) = socket {
                batch::send_all(s, &rest[..len]);
            }
            rest = &rest[len..];
        }
        out.clear();
    }

    fn send_tcp(&self, t: Transmit) {
        if let Some(w) = self.writers.get(&t.peer.addr) {
            if w.try_send(t.bytes).is_err() {
                crate::limited!(warn, every = 10, to = %t.peer.addr, "TCP connection backlog full; message dropped");
            }
            return;
        }
        let (local, tls) = match t.peer.transport {
            Transport::Tls => {
                let Some(client) = self.tls.load().as_ref().and_then(|t| t.client.clone()) else {
                    crate::limited!(warn, every = 10, to = %t.peer.addr, "no TLS connection to this peer and no `sip.tls.ca` to open one; message dropped");
                    return;
                };
                (self.tls_local.first().copied(), Some(client))
            }
            _ => (self.tcp_local.first().copied(), None),
        };
        self.runtime
            .spawn(connect(t.peer.addr, local, t.bytes, self.link.clone(), tls));
    }
}

/// Connect failures logged per peer: once per 10 s, with a count (every
/// response and request to an unreachable phone tries again).
static CONNECT_FAILED: crate::logging::limit::KeyedLogLimit<SocketAddr> =
    crate::logging::limit::KeyedLogLimit::new(std::time::Duration::from_secs(10), 1);

async fn accept_loop(listener: TcpListener, local: SocketAddr, link: Link, tls: Option<TlsSlot>) {
    let warned = crate::logging::limit::LogLimit::new(WARN_EVERY, 1);
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                // Past a cap the stream is dropped here: closed at once.
                let Some(permit) = link.gate.admit(remote) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let link = link.clone();
                let Some(slot) = &tls else {
                    tokio::spawn(connection(
                        stream,
                        remote,
                        local,
                        Transport::Tcp,
                        link,
                        permit,
                    ));
                    continue;
                };
                let Some(config) = slot.load_full() else {
                    continue;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(config.server.clone());
                tokio::spawn(async move {
                    // A handshake that never finishes must not hold the
                    // socket (and its permit) for good.
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            connection(tls, remote, local, Transport::Tls, link, permit).await
                        }
                        Ok(Err(e)) => debug!(peer = %remote, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(peer = %remote, "TLS handshake timed out"),
                    }
                });
            }
            Err(e) => accept_failed("sip_tcp", &e, &warned).await,
        }
    }
}

/// A connection zentrale opens to a phone or trunk: not counted against
/// the caps (the core decides to open it), but timed like any other.
async fn connect(
    remote: SocketAddr,
    local: Option<SocketAddr>,
    first: Bytes,
    link: Link,
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let stream = match TcpStream::connect(remote).await {
        Ok(stream) => stream,
        Err(e) => {
            if let Some(admit) = CONNECT_FAILED.admit(remote, std::time::Instant::now()) {
                warn!(to = %remote, error = %e, suppressed = admit.suppressed, "TCP connect failed");
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok().or(local).unwrap_or(remote);
    let (tx, rx) = mpsc::channel(256);
    let _ = tx.try_send(first);
    let Some(client) = tls else {
        return run_connection(stream, remote, local, Transport::Tcp, tx, rx, link, false).await;
    };
    // zentrale does no DNS on the call path: the peer's certificate must
    // name its IP address.
    let name = rustls::pki_types::ServerName::IpAddress(remote.ip().into());
    let connector = tokio_rustls::TlsConnector::from(client);
    match tokio::time::timeout(TLS_HANDSHAKE, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => {
            run_connection(tls, remote, local, Transport::Tls, tx, rx, link, false).await
        }
        Ok(Err(e)) => {
            if let Some(admit) = CONNECT_FAILED.admit(remote, std::time::Instant::now()) {
                warn!(to = %remote, error = %e, suppressed = admit.suppressed, "TLS connect failed");
            }
        }
        Err(_) => warn!(to = %remote, "TLS handshake timed out"),
    }
}

async fn connection<S>(
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    link: Link,
    permit: Permit,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    run_connection(stream, remote, local, transport, tx, rx, link, true).await;
    drop(permit);
}

#[allow(clippy::too_many_arguments)]
async fn run_connection<S>(
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    link: Link,
    accepted: bool,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Link {
        writers,
        core,
        gate,
        flows,
    } = link;
    writers.insert(remote, tx.clone());
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            // TLS holds what is written until flushed; for TCP it is free.
            if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        transport,
        addr: remote,
        local,
    };
    let limits = gate.limits;
    let mut framer = StreamFramer::new(limits.max_message_bytes);
    let mut clock = StreamClock::new(&limits, std::time::Instant::now());
    if accepted {
        // A client that connects sends its request (REGISTER, INVITE) at
        // once; one that sends nothing is not kept for the idle timeout.
        clock.expect_message(std::time::Instant::now());
    }
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let kept_until = flows.get(&remote).map(|e| *e.value());
        let (deadline, why) = clock.deadline(kept_until);
        let read = tokio::time::timeout_at(deadline.into(), reader.read(&mut buf)).await;
        let n = match read {
            Err(_) => {
                // The core may have recorded a registration since the
                // deadline was taken.
                let kept_until = flows.get(&remote).map(|e| *e.value());
                if clock.deadline(kept_until).0 > std::time::Instant::now() {
                    continue;
                }
                debug!(peer = %remote, reason = why.as_str(), "closing TCP connection");
                gate.closed(why.as_str());
                break;
            }
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => n,
        };
        framer.push(&buf[..n]);
        let now = std::time::Instant::now();
        loop {
            match framer.next_message() {
                Ok(Some(Frame::Message(data))) => {
                    clock.on_message(now);
                    if core.deliver(Inbound { data, peer }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                    let kept = flows.get(&remote).is_some_and(|e| *e.value() > now);
                    clock.on_ping(kept, now);
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(peer = %remote, error = %e, "closing TCP connection after a framing error");
                    if matches!(e, crate::sip::framing::FramingError::TooLarge { .. }) {
                        gate.closed("too_large");
                    }
                    let e = whole_lines(e);
                    let resp =
                        crate::sip::screen::answer_framing_error(&e).or_else(|| bare_answer(&e));
                    if let Some(resp) = resp {
                        let _ = tx.send(Bytes::from(resp)).await;
                    }
                    break 'read;
                }
            }
        }
        clock.on_buffered(framer.buffered(), now);
    }
    drop(reader);
    flows.remove(&remote);
    // The peer may half-close after its last request: keep the write side
    // registered a little longer so the answers still find the connection
    // instead of a fresh connect to the peer's ephemeral port.
    tokio::time::sleep(LINGER).await;
    writers.remove_if(&remote, |_, w| w.same_channel(&tx));
    drop(tx);
    let _ = write_task.await;
}

/// A too-large header section cut at the limit ends mid-line; cut back
/// to its last whole line, so that the request's Via, From, To, Call-ID
/// and CSeq (which come first in practice) can be answered.
fn whole_lines(e: crate::sip::framing::FramingError) -> crate::sip::framing::FramingError {
    use crate::sip::framing::FramingError;
    match e {
        FramingError::TooLarge { head } => {
            let end = head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            FramingError::TooLarge {
                head: head.slice(..end),
            }
        }
        other => other,
    }
}

/// The answer to a framing error whose header section cannot be answered
/// as a request (no Via, a head cut off mid-line): a response without the
/// request's headers is still better than a silent close, and a client
/// that sent 64 KiB without a blank line learns why it is cut off.
fn bare_answer(e: &crate::sip::framing::FramingError) -> Option<Vec<u8>> {
    let (code, reason) = match e {
        crate::sip::framing::FramingError::TooLarge { head } if !head.starts_with(b"SIP/") => {
            (413, "Request Entity Too Large")
        }
        _ => return None,
    };
    Some(
        format!(
            "SIP/2.0 {code} {reason}\r\nWarning: 399 zentrale \"message larger than the limit\"\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes(),
    )
}
