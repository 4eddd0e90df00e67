//! The RTP port pool: even ports only (RTP even, RTCP = RTP + 1, RFC 3550
//! §11), handed out round-robin so a port just freed is reused last, after
//! the old call's late packets have long stopped.
//!
//! A socket whose stream ended comes back from the media worker through a
//! [`Recycler`] and is kept bound ("parked") for the next call, once it has
//! rested [`QUARANTINE`]: binding a fresh socket per call (`socket`, `bind`,
//! two `ioctl`s, `close`, and the kernel's allocations behind them) was a
//! tenth of the CPU per call under signalling load.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::error::MediaError;

/// How long a returned socket rests before another call gets it. Late
/// packets of the old call that arrive meanwhile are discarded when it is
/// handed out again; after this long a well-behaved peer has stopped.
pub const QUARANTINE: Duration = Duration::from_secs(2);

/// At most this many sockets stay parked; more are closed. At 200 new calls
/// a second, two seconds of quarantine need about 400.
pub const MAX_PARKED: usize = 512;

/// Late datagrams read (and dropped) from a parked socket before reuse.
const MAX_STALE_READS: usize = 64;

/// Even UDP ports in `first..=last`.
///
/// ```
/// use std::time::Instant;
/// use zentrale::media::PortPool;
/// let mut pool = PortPool::new(40000, 40009).unwrap();
/// let (port, socket) = pool.allocate("127.0.0.1".parse().unwrap(), Instant::now()).unwrap();
/// assert_eq!(port % 2, 0);
/// // When the call ends, the media worker gives the socket back (it
/// // rests, then serves a later call) and the call releases the port.
/// pool.recycler().give_back(socket);
/// pool.release(port);
/// assert_eq!(pool.in_use(), 0);
/// ```
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    /// Where the next search starts.
    next: u16,
    /// Ports handed out and not released.
    in_use: HashSet<u16>,
    /// Ports of the parked sockets.
    parked_ports: HashSet<u16>,
    /// The address of every socket handed out, by descriptor, so a socket
    /// coming back is known without asking the kernel.
    lent: HashMap<RawFd, SocketAddr>,
    /// Returned sockets, oldest first.
    parked: VecDeque<Parked>,
    returns: mpsc::Receiver<UdpSocket>,
    recycler: Recycler,
    /// Ports whose socket came back since [`PortPool::take_returned`].
    came_back: Vec<u16>,
}

#[derive(Debug)]
struct Parked {
    addr: SocketAddr,
    socket: UdpSocket,
    since: Instant,
}

/// Hands sockets whose stream ended back to their [`PortPool`]; cheap to
/// clone, usable from any thread, never blocks. A socket given back after
/// the pool is gone is closed.
#[derive(Debug, Clone)]
pub struct Recycler(mpsc::Sender<UdpSocket>);

impl Recycler {
    /// Returns `socket` to the pool it came from.
    pub fn give_back(&self, socket: UdpSocket) {
        // A closed pool drops the socket, which closes it: nothing is lost.
        let _ = self.0.send(socket);
    }
}

impl PortPool {
    /// A pool of the even ports in `first..=last` (odd bounds are rounded inwards).
    pub fn new(first: u16, last: u16) -> Result<PortPool, MediaError> {
        let lo = first.checked_add(first & 1);
        let hi = last & !1;
        let (tx, returns) = mpsc::channel();
        match lo {
            Some(lo) if lo != 0 && lo <= hi => Ok(PortPool {
                first: lo,
                last: hi,
                next: lo,
                in_use: HashSet::new(),
                parked_ports: HashSet::new(),
                lent: HashMap::new(),
                parked: VecDeque::new(),
                returns,
                recycler: Recycler(tx),
                came_back: Vec::new(),
            }),
            _ => Err(MediaError::PortRange { first, last }),
        }
    }

    /// Where the media worker returns sockets to this pool.
    pub fn recycler(&self) -> Recycler {
        self.recycler.clone()
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.last - self.first) / 2) + 1
    }

    /// Number of ports handed out and not yet released.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// A socket on the next free even port on `ip`, non-blocking: a parked
    /// one that has rested, else a fresh bind, else a parked one still
    /// resting. Ports another process holds are skipped; the error comes
    /// only when a full round found nothing.
    pub fn allocate(&mut self, ip: IpAddr, now: Instant) -> Result<(u16, UdpSocket), MediaError> {
        self.take_returns(now);
        if let Some(found) = self.unpark(
            ip,
            |since| now.saturating_duration_since(since) >= QUARANTINE,
            None,
        ) {
            return Ok(found);
        }
        let mut last_error = None;
        let mut port = self.next;
        for _ in 0..self.capacity() {
            let candidate = port;
            port = if port >= self.last {
                self.first
            } else {
                port + 2
            };
            if self.in_use.contains(&candidate) || self.parked_ports.contains(&candidate) {
                continue;
            }
            let addr = SocketAddr::new(ip, candidate);
            match bind(addr) {
                Ok(socket) => {
                    self.in_use.insert(candidate);
                    self.lent.insert(socket.as_raw_fd(), addr);
                    self.next = port;
                    return Ok((candidate, socket));
                }
                Err(e) => last_error = Some(e),
            }
        }
        // Every port is taken or resting: a short rest beats refusing the
        // call (the old call's late packets are still dropped first).
        if let Some(found) = self.unpark(ip, |_| true, None) {
            return Ok(found);
        }
        Err(MediaError::PortsExhausted {
            ip,
            first: self.first,
            last: self.last,
            in_use: self.in_use(),
            last_error,
        })
    }

    /// A socket on `port` of `ip`, for a caller that keeps the ledger of
    /// port numbers itself (the daemon's core): the parked socket of that
    /// port if there is one (whatever its rest: the caller's ledger chose
    /// the port), else a fresh bind. Non-blocking.
    pub fn bind(&mut self, ip: IpAddr, port: u16, now: Instant) -> std::io::Result<UdpSocket> {
        self.take_returns(now);
        let addr = SocketAddr::new(ip, port);
        if let Some((_, socket)) = self.unpark(ip, |_| true, Some(port)) {
            return Ok(socket);
        }
        let socket = bind(addr)?;
        self.in_use.insert(port);
        self.lent.insert(socket.as_raw_fd(), addr);
        Ok(socket)
    }

    /// The call is done with `port`. Unknown ports are ignored. Its socket
    /// may still be with the media worker; it is parked when it comes back.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }

    /// The ports whose socket came back from the media worker since the
    /// last call, for the core's ledger (`Core::on_port_returned`).
    pub fn take_returned(&mut self, now: Instant) -> Vec<u16> {
        self.take_returns(now);
        std::mem::take(&mut self.came_back)
    }

    fn take_returns(&mut self, now: Instant) {
        while let Ok(socket) = self.returns.try_recv() {
            let Some(addr) = self.lent.remove(&socket.as_raw_fd()) else {
                // Not one of ours: closing it is all we can do.
                continue;
            };
            self.parked_ports.insert(addr.port());
            self.came_back.push(addr.port());
            self.parked.push_back(Parked {
                addr,
                socket,
                since: now,
            });
            if self.parked.len() > MAX_PARKED
                && let Some(oldest) = self.parked.pop_front()
            {
                self.parked_ports.remove(&oldest.addr.port());
            }
        }
    }

    /// The oldest parked socket on `ip` (and `port`, if given) whose rest
    /// `rested` accepts.
    fn unpark(
        &mut self,
        ip: IpAddr,
        rested: impl Fn(Instant) -> bool,
        port: Option<u16>,
    ) -> Option<(u16, UdpSocket)> {
        let i = self
            .parked
            .iter()
            .take_while(|p| rested(p.since))
            .position(|p| p.addr.ip() == ip && port.is_none_or(|port| p.addr.port() == port))?;
        let Parked { addr, socket, .. } = self.parked.remove(i)?;
        // What the old call's peer sent after the end must not reach the
        // new call (a stale DTMF packet would press a menu key).
        let mut buf = [0u8; 1];
        for _ in 0..MAX_STALE_READS {
            if socket.recv_from(&mut buf).is_err() {
                break;
            }
        }
        self.parked_ports.remove(&addr.port());
        self.in_use.insert(addr.port());
        self.lent.insert(socket.as_raw_fd(), addr);
        Some((addr.port(), socket))
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LO: &str = "127.0.0.1";

    fn now() -> Instant {
        Instant::now()
    }

    /// A free even port range of `n` ports, found by asking the OS.
    fn free_range(n: u16) -> (u16, u16) {
        loop {
            let probe = UdpSocket::bind((LO, 0)).unwrap();
            let base = probe.local_addr().unwrap().port() & !1;
            drop(probe);
            if let Some(end) = base.checked_add(2 * n - 1) {
                let all_free = (base..=end)
                    .step_by(2)
                    .all(|p| UdpSocket::bind((LO, p)).is_ok());
                if all_free {
                    return (base, end);
                }
            }
        }
    }

    #[test]
    fn range_validation() {
        let p = PortPool::new(10001, 10010).unwrap();
        assert_eq!((p.first, p.last, p.capacity()), (10002, 10010, 5));
        assert!(PortPool::new(10001, 10001).is_err());
        assert!(PortPool::new(0, 1).is_err());
        assert!(PortPool::new(65535, 65535).is_err());
        assert!(PortPool::new(20000, 10000).is_err());
    }

    #[test]
    fn even_ports_exhaustion_and_round_robin_release() {
        let (first, last) = free_range(3);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let (port, socket) = pool.allocate(ip, now()).unwrap();
            assert_eq!(port % 2, 0);
            assert!((first..=last).contains(&port));
            assert_eq!(socket.local_addr().unwrap().port(), port);
            held.push((port, socket));
        }
        let mut ports: Vec<u16> = held.iter().map(|(p, _)| *p).collect();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        let err = pool.allocate(ip, now()).unwrap_err();
        assert!(
            matches!(err, MediaError::PortsExhausted { in_use: 3, .. }),
            "{err}"
        );

        // A freed port waits for its turn: with ports A, B, C and B freed
        // then A freed, the search goes on after C and finds A, then B.
        let (b_port, b_sock) = held.remove(1);
        drop(b_sock);
        pool.release(b_port);
        let (a_port, a_sock) = held.remove(0);
        drop(a_sock);
        pool.release(a_port);
        assert_eq!(pool.allocate(ip, now()).unwrap().0, a_port);
        assert_eq!(pool.allocate(ip, now()).unwrap().0, b_port);
    }

    #[test]
    fn just_freed_port_is_not_reused_at_once() {
        let (first, last) = free_range(3);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let (a, sa) = pool.allocate(ip, now()).unwrap();
        let (_b, _sb) = pool.allocate(ip, now()).unwrap();
        drop(sa);
        pool.release(a);
        let (c, _sc) = pool.allocate(ip, now()).unwrap();
        assert_eq!(c, a + 4);
        assert_eq!(pool.allocate(ip, now()).unwrap().0, a);
    }

    #[test]
    fn ports_held_elsewhere_are_skipped() {
        let (first, last) = free_range(2);
        let _squatter = UdpSocket::bind((LO, first)).unwrap();
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        assert_eq!(pool.allocate(ip, now()).unwrap().0, first + 2);
        let err = pool.allocate(ip, now()).unwrap_err();
        let MediaError::PortsExhausted { last_error, .. } = &err else {
            panic!("{err}");
        };
        assert!(last_error.is_some());
        assert!(err.to_string().contains("widen the range"));
    }

    #[test]
    fn a_returned_socket_rests_then_serves_the_next_call() {
        let (first, last) = free_range(3);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let t0 = now();
        let (a, sa) = pool.allocate(ip, t0).unwrap();
        let fd = sa.as_raw_fd();
        pool.recycler().give_back(sa);
        pool.release(a);
        // Still resting: a fresh port, and not the parked one.
        let (b, _sb) = pool.allocate(ip, t0 + QUARANTINE / 2).unwrap();
        assert_ne!(b, a);
        assert_eq!(pool.in_use(), 1);
        // Rested: the same bound socket again, no new bind.
        let (again, socket) = pool.allocate(ip, t0 + QUARANTINE * 2).unwrap();
        assert_eq!((again, socket.as_raw_fd()), (a, fd));
        assert_eq!(pool.in_use(), 2);
    }

    #[test]
    fn late_packets_of_the_old_call_are_dropped_before_reuse() {
        let (first, last) = free_range(2);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let t0 = now();
        let (a, sa) = pool.allocate(ip, t0).unwrap();
        let old_peer = UdpSocket::bind((LO, 0)).unwrap();
        pool.recycler().give_back(sa);
        pool.release(a);
        pool.allocate(ip, t0).unwrap(); // takes the return in
        for _ in 0..3 {
            old_peer.send_to(b"stale", (LO, a)).unwrap();
        }
        let new_peer = UdpSocket::bind((LO, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (_, socket) = pool.allocate(ip, t0 + QUARANTINE).unwrap();
        new_peer.send_to(b"fresh", (LO, a)).unwrap();
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"fresh"[..], new_peer.local_addr().unwrap())
        );
    }

    #[test]
    fn a_foreign_socket_given_back_is_closed_not_parked() {
        let (first, last) = free_range(2);
        let mut pool = PortPool::new(first, last).unwrap();
        let foreign = UdpSocket::bind((LO, 0)).unwrap();
        pool.recycler().give_back(foreign);
        let t = now() + QUARANTINE * 2;
        let (port, _s) = pool.allocate(LO.parse().unwrap(), t).unwrap();
        assert!((first..=last).contains(&port));
        assert!(pool.parked.is_empty());
    }

    #[test]
    fn a_resting_socket_serves_when_the_range_is_full_rather_than_refusing() {
        let (first, last) = free_range(2);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let t0 = now();
        let (a, sa) = pool.allocate(ip, t0).unwrap();
        let (_b, _sb) = pool.allocate(ip, t0).unwrap();
        pool.recycler().give_back(sa);
        pool.release(a);
        // Both ports are bound (one in a call, one resting): the resting
        // one serves at once.
        assert_eq!(pool.allocate(ip, t0).unwrap().0, a);
        assert!(pool.allocate(ip, t0).is_err());
    }
}
