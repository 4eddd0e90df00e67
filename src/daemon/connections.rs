//! Stream connections on the runtime: admission against the caps of a
//! listener ([`Gate`]), the file-descriptor limit at start
//! ([`raise_fd_limit`]), and the HTTP listener that enforces the caps and
//! deadlines of `http.connections` ([`GuardedListener`]). The decisions
//! are [`crate::admission`]'s; this module owns the sockets and timers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tracing::warn;

use crate::admission::connections::ConnectionLimits;
use crate::admission::connections::{ConnectionTable, Expiry, StreamClock};
use crate::api::access::ClientAddr;
use crate::logging::limit::LogLimit;
use crate::metrics::{ListenerLabel, ListenerReasonLabels, Metrics};

/// A repeated warning is logged at most this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// The caps of one listener and its metrics. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    listener: &'static str,
    table: Arc<Mutex<ConnectionTable>>,
    warned: Arc<LogLimit>,
    pub limits: ConnectionLimits,
    open: Gauge,
    metrics_refused: prometheus_client::metrics::family::Family<ListenerReasonLabels, Counter>,
    metrics_closed: prometheus_client::metrics::family::Family<ListenerReasonLabels, Counter>,
}

/// An admitted connection; dropping it gives its slot back.
pub struct Permit {
    gate: Gate,
    source: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Ok(mut t) = self.gate.table.lock() {
            t.release(self.source);
        }
        self.gate.open.dec();
    }
}

impl Gate {
    /// The gate of `listener` (`sip_tcp`, `http`) with `limits`, whose
    /// total may have been lowered to `max` by the descriptor budget.
    pub fn new(
        listener: &'static str,
        limits: ConnectionLimits,
        max: usize,
        metrics: &Metrics,
    ) -> Gate {
        Gate {
            listener,
            table: Arc::new(Mutex::new(ConnectionTable::new(
                max,
                limits.per_source.min(max.max(1)),
            ))),
            warned: Arc::new(LogLimit::new(WARN_EVERY, 1)),
            limits,
            open: metrics
                .connections
                .get_or_create(&ListenerLabel { listener })
                .clone(),
            metrics_refused: metrics.connections_refused.clone(),
            metrics_closed: metrics.connections_closed.clone(),
        }
    }

    /// Admits a connection from `source`, or counts and logs the refusal.
    pub fn admit(&self, source: SocketAddr) -> Option<Permit> {
        let verdict = match self.table.lock() {
            Ok(mut t) => t.admit(source.ip()),
            Err(_) => return None,
        };
        match verdict {
            Ok(()) => {
                self.open.inc();
                Some(Permit {
                    gate: self.clone(),
                    source: source.ip(),
                })
            }
            Err(refusal) => {
                let reason = refusal.as_str();
                self.metrics_refused
                    .get_or_create(&ListenerReasonLabels {
                        listener: self.listener,
                        reason,
                    })
                    .inc();
                let due = self.warned.admit(Instant::now()).map(|a| a.suppressed);
                if let Some(suppressed) = due {
                    warn!(listener = self.listener, %source, reason, suppressed, "connection refused: at the connection cap");
                }
                None
            }
        }
    }

    /// Counts a connection zentrale closed, by `reason`.
    pub fn closed(&self, reason: &'static str) {
        self.metrics_closed
            .get_or_create(&ListenerReasonLabels {
                listener: self.listener,
                reason,
            })
            .inc();
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the
/// limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Sleeps after a failed `accept`, logging at most once per interval: at
/// the descriptor limit (`EMFILE`) accept fails at once, and retrying in
/// a loop would spin.
pub async fn accept_failed(listener: &'static str, e: &io::Error, warned: &LogLimit) {
    if let Some(admit) = warned.admit(Instant::now()) {
        warn!(listener, error = %e, suppressed = admit.suppressed, "accept failed");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// The HTTP listener with `http.connections` enforced: connections past
/// the caps get a 503 and are closed, each admitted one is a
/// [`GuardedStream`].
pub struct GuardedListener {
    listener: TcpListener,
    gate: Gate,
    warned: LogLimit,
}

impl GuardedListener {
    pub fn new(listener: TcpListener, gate: Gate) -> GuardedListener {
        GuardedListener {
            listener,
            gate,
            warned: LogLimit::new(WARN_EVERY, 1),
        }
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Written to an HTTP connection refused at the cap before it is closed.
const HTTP_BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

impl axum::serve::Listener for GuardedListener {
    type Io = GuardedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, remote) = match self.listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    accept_failed("http", &e, &self.warned).await;
                    continue;
                }
            };
            match self.gate.admit(remote) {
                Some(permit) => return (GuardedStream::new(stream, permit), remote),
                None => {
                    // Best effort, never waiting: the socket closes on drop.
                    let _ = stream.try_write(HTTP_BUSY);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An admitted HTTP connection: reads fail (and hyper closes the
/// connection) when a request head does not complete within the header
/// timeout, grows past `max_message_bytes`, or no request comes for the
/// idle timeout.
pub struct GuardedStream {
    stream: TcpStream,
    permit: Permit,
    clock: StreamClock,
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
    /// Octets of the request head read so far (0: between requests).
    head: usize,
    /// The last four octets read, to find the head's blank line.
    tail: u32,
}

impl GuardedStream {
    fn new(stream: TcpStream, permit: Permit) -> GuardedStream {
        let now = Instant::now();
        let mut clock = StreamClock::new(&permit.gate.limits, now);
        clock.expect_message(now);
        let (at, _) = clock.deadline(None);
        GuardedStream {
            stream,
            permit,
            clock,
            sleep: Box::pin(tokio::time::sleep_until(at.into())),
            armed: at,
            head: 0,
            tail: 0,
        }
    }

    /// `written` octets of a response left: see [`StreamClock::on_sent`].
    fn sent(&mut self, written: usize) {
        if written > 0 {
            self.clock.on_sent(Instant::now());
        }
    }

    /// Follows the request heads in `data`; `Err` when one is too large.
    fn scan(&mut self, data: &[u8], now: Instant) -> Result<(), Expiry> {
        let max = self.permit.gate.limits.max_message_bytes;
        let mut ended = false;
        for &b in data {
            if ended {
                // The body of the request just headed, in the same read.
                continue;
            }
            self.head += 1;
            self.tail = (self.tail << 8) | u32::from(b);
            if self.tail == u32::from_be_bytes(*b"\r\n\r\n") {
                self.head = 0;
                self.tail = 0;
                self.clock.on_message(now);
                ended = true;
            }
        }
        self.clock.on_buffered(self.head, now);
        if self.head > max {
            return Err(Expiry::HeaderTimeout);
        }
        Ok(())
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let (at, why) = this.clock.deadline(None);
        if at != this.armed {
            this.sleep.as_mut().reset(at.into());
            this.armed = at;
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.permit.gate.closed(why.as_str());
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why.as_str())));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        let now = Instant::now();
        if this.scan(&buf.filled()[before..], now).is_err() {
            this.permit.gate.closed("too_large");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            )));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, data))?;
        self.sent(written);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.sent(written);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
