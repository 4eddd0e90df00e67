//! SIP over UDP and TCP: the sockets, TCP framing and connection reuse.
//!
//! Every TCP socket gets `TCP_NODELAY` (SIP messages are small and
//! latency-bound). A connection is known by its remote address; responses
//! and in-dialog requests for that address reuse it, and a request to an
//! address with no connection opens one. UDP goes through [`batch`]:
//! several datagrams per system call in both directions; the core thread
//! ([`super::driver`]) reads the UDP sockets itself, the tokio runtime
//! runs the TCP connections.

pub mod batch;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::driver::CoreHandle;
use crate::config::Config;
use crate::sip::Transport;
use crate::sip::framing::{Frame, StreamFramer};
use crate::sip::transaction::{Peer, Transmit};

/// Largest SIP message accepted on a stream (the 64 KiB).
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024;

/// How long a connection stays writable after its read side ended.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// A framed message for the core.
pub struct Inbound {
    pub data: Bytes,
    pub peer: Peer,
}

type Writers = Arc<DashMap<SocketAddr, mpsc::Sender<Bytes>>>;

/// The listening sockets and the live TCP connections. Owned by the core
/// thread; the TCP side runs on the tokio runtime it was bound on.
pub struct Transports {
    /// Each UDP socket with its bound address, kept so that choosing the
    /// socket of a reply costs no `getsockname` call.
    udp: Vec<(std::net::UdpSocket, SocketAddr)>,
    tcp_local: Vec<SocketAddr>,
    writers: Writers,
    core: CoreHandle,
    runtime: Handle,
}

impl Transports {
    /// Binds every configured listener and starts the TCP accept loops on
    /// the current tokio runtime; their messages go to `core`. The UDP
    /// sockets are for the core thread to read ([`Transports::udp_sockets`]).
    pub async fn bind(config: &Config, core: CoreHandle) -> anyhow::Result<Transports> {
        let mut udp = Vec::new();
        for addr in &config.sip.udp {
            let s = batch::bind(*addr)
                .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
            let local = s.local_addr()?;
            udp.push((s, local));
        }
        let writers: Writers = Arc::new(DashMap::new());
        let mut tcp_local = Vec::new();
        for addr in &config.sip.tcp {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP {addr}: {e}"))?;
            let local = l.local_addr()?;
            tcp_local.push(local);
            tokio::spawn(accept_loop(l, local, writers.clone(), core.clone()));
        }
        Ok(Transports {
            udp,
            tcp_local,
            writers,
            core,
            runtime: Handle::current(),
        })
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
            if first.peer.transport == Transport::Tcp {
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
        let local = self.tcp_local.first().copied();
        self.runtime.spawn(connect(
            t.peer.addr,
            local,
            t.bytes,
            self.writers.clone(),
            self.core.clone(),
        ));
    }
}

/// Connect failures logged per peer: once per 10 s, with a count (every
/// response and request to an unreachable phone tries again).
static CONNECT_FAILED: crate::logging::limit::KeyedLogLimit<SocketAddr> =
    crate::logging::limit::KeyedLogLimit::new(std::time::Duration::from_secs(10), 1);

async fn accept_loop(listener: TcpListener, local: SocketAddr, writers: Writers, core: CoreHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                tokio::spawn(connection(
                    stream,
                    remote,
                    local,
                    writers.clone(),
                    core.clone(),
                ));
            }
            Err(e) => {
                // At the fd limit this fails for every connection attempt.
                crate::limited!(warn, every = 10, error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect(
    remote: SocketAddr,
    local: Option<SocketAddr>,
    first: Bytes,
    writers: Writers,
    core: CoreHandle,
) {
    match TcpStream::connect(remote).await {
        Ok(stream) => {
            let local = stream.local_addr().ok().or(local).unwrap_or(remote);
            let (tx, rx) = mpsc::channel(256);
            let _ = tx.try_send(first);
            run_connection(stream, remote, local, tx, rx, writers, core).await;
        }
        Err(e) => {
            if let Some(admit) = CONNECT_FAILED.admit(remote, std::time::Instant::now()) {
                warn!(to = %remote, error = %e, suppressed = admit.suppressed, "TCP connect failed");
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    writers: Writers,
    core: CoreHandle,
) {
    let (tx, rx) = mpsc::channel(256);
    run_connection(stream, remote, local, tx, rx, writers, core).await;
}

async fn run_connection(
    stream: TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    writers: Writers,
    core: CoreHandle,
) {
    let _ = stream.set_nodelay(true);
    writers.insert(remote, tx.clone());
    let (mut reader, mut writer) = stream.into_split();
    let write_task = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        transport: Transport::Tcp,
        addr: remote,
        local,
    };
    let mut framer = StreamFramer::new(MAX_STREAM_MESSAGE);
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        loop {
            match framer.next_message() {
                Ok(Some(Frame::Message(data))) => {
                    if core.deliver(Inbound { data, peer }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(peer = %remote, error = %e, "closing TCP connection after a framing error");
                    if let Some(resp) = crate::sip::screen::answer_framing_error(&e) {
                        let _ = tx.send(Bytes::from(resp)).await;
                    }
                    break 'read;
                }
            }
        }
    }
    // The peer may half-close after its last request: keep the write side
    // registered a little longer so the answers still find the connection
    // instead of a fresh connect to the peer's ephemeral port.
    tokio::time::sleep(LINGER).await;
    writers.remove_if(&remote, |_, w| w.same_channel(&tx));
    drop(tx);
    let _ = write_task.await;
}
