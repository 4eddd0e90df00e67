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
//! same writer per remote address, `Transport::Tls` on what it delivers.
//! Each handshake takes the certificate that is current then, so a reload
//! swaps it for new connections and established ones keep their session.

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

use super::driver::CoreHandle;
use crate::config::{Config, TlsConfig};
use crate::sip::Transport;
use crate::sip::framing::{Frame, StreamFramer};
use crate::sip::transaction::{Peer, Transmit};

/// Largest SIP message accepted on a stream (the 64 KiB).
pub const MAX_STREAM_MESSAGE: usize = 64 * 1024;

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
            tokio::spawn(accept_loop(l, local, writers.clone(), core.clone(), None));
        }
        let tls: TlsSlot = Arc::new(ArcSwapOption::new(config.tls.clone().map(Arc::new)));
        let mut tls_local = Vec::new();
        for addr in &config.sip.tls {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP TLS {addr}: {e}"))?;
            let local = l.local_addr()?;
            tls_local.push(local);
            tokio::spawn(accept_loop(
                l,
                local,
                writers.clone(),
                core.clone(),
                Some(tls.clone()),
            ));
        }
        Ok(Transports {
            udp,
            tcp_local,
            tls_local,
            tls,
            writers,
            core,
            runtime: Handle::current(),
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
                warn!(to = %t.peer.addr, "TCP connection backlog full; message dropped");
            }
            return;
        }
        let (local, tls) = match t.peer.transport {
            Transport::Tls => {
                let Some(client) = self.tls.load().as_ref().and_then(|t| t.client.clone()) else {
                    warn!(to = %t.peer.addr, "no TLS connection to this peer and no `sip.tls.ca` to open one; message dropped");
                    return;
                };
                (self.tls_local.first().copied(), Some(client))
            }
            _ => (self.tcp_local.first().copied(), None),
        };
        self.runtime.spawn(connect(
            t.peer.addr,
            local,
            t.bytes,
            self.writers.clone(),
            self.core.clone(),
            tls,
        ));
    }
}

async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    writers: Writers,
    core: CoreHandle,
    tls: Option<TlsSlot>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let (writers, core) = (writers.clone(), core.clone());
                match &tls {
                    None => {
                        tokio::spawn(connection(
                            stream,
                            remote,
                            local,
                            Transport::Tcp,
                            writers,
                            core,
                        ));
                    }
                    Some(slot) => {
                        let Some(config) = slot.load_full() else {
                            continue;
                        };
                        let acceptor = tokio_rustls::TlsAcceptor::from(config.server.clone());
                        tokio::spawn(async move {
                            // A handshake that never finishes must not hold the
                            // socket for good.
                            let handshake =
                                tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await;
                            match handshake {
                                Ok(Ok(tls)) => {
                                    connection(tls, remote, local, Transport::Tls, writers, core)
                                        .await
                                }
                                Ok(Err(e)) => {
                                    debug!(peer = %remote, error = %e, "TLS handshake failed")
                                }
                                Err(_) => debug!(peer = %remote, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
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
    tls: Option<Arc<rustls::ClientConfig>>,
) {
    let stream = match TcpStream::connect(remote).await {
        Ok(stream) => stream,
        Err(e) => return warn!(to = %remote, error = %e, "TCP connect failed"),
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok().or(local).unwrap_or(remote);
    let (tx, rx) = mpsc::channel(256);
    let _ = tx.try_send(first);
    let Some(client) = tls else {
        return run_connection(stream, remote, local, Transport::Tcp, tx, rx, writers, core).await;
    };
    // zentrale does no DNS on the call path: the peer's certificate must
    // name its IP address.
    let name = rustls::pki_types::ServerName::IpAddress(remote.ip().into());
    let connector = tokio_rustls::TlsConnector::from(client);
    match tokio::time::timeout(TLS_HANDSHAKE, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => {
            run_connection(tls, remote, local, Transport::Tls, tx, rx, writers, core).await
        }
        Ok(Err(e)) => warn!(to = %remote, error = %e, "TLS connect failed"),
        Err(_) => warn!(to = %remote, "TLS handshake timed out"),
    }
}

async fn connection<S>(
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    writers: Writers,
    core: CoreHandle,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, rx) = mpsc::channel(256);
    run_connection(stream, remote, local, transport, tx, rx, writers, core).await;
}

#[allow(clippy::too_many_arguments)]
async fn run_connection<S>(
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    writers: Writers,
    core: CoreHandle,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
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
