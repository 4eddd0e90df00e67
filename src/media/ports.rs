//! The RTP port pool: even ports only (RTP even, RTCP = RTP + 1, RFC 3550
//! §11), handed out round-robin so a port just freed is reused last, after
//! the old call's late packets have long stopped.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use super::error::MediaError;

/// Even UDP ports in `first..=last`.
///
/// ```
/// use zentrale::media::PortPool;
/// let mut pool = PortPool::new(40000, 40009).unwrap();
/// let (port, socket) = pool.allocate("127.0.0.1".parse().unwrap()).unwrap();
/// assert_eq!(port % 2, 0);
/// drop(socket);
/// pool.release(port);
/// ```
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    /// Where the next search starts.
    next: u16,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// A pool of the even ports in `first..=last` (odd bounds are rounded inwards).
    pub fn new(first: u16, last: u16) -> Result<PortPool, MediaError> {
        let lo = first.checked_add(first & 1);
        let hi = last & !1;
        match lo {
            Some(lo) if lo != 0 && lo <= hi => Ok(PortPool {
                first: lo,
                last: hi,
                next: lo,
                in_use: HashSet::new(),
            }),
            _ => Err(MediaError::PortRange { first, last }),
        }
    }

    /// Number of even ports in the range.
    pub fn capacity(&self) -> usize {
        usize::from((self.last - self.first) / 2) + 1
    }

    /// Number of ports handed out and not yet released.
    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    /// Binds the next free even port on `ip`, non-blocking. Ports another
    /// process holds are skipped; the error comes only when a full round
    /// found nothing.
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(u16, UdpSocket), MediaError> {
        let mut last_error = None;
        let mut port = self.next;
        for _ in 0..self.capacity() {
            let candidate = port;
            port = if port >= self.last {
                self.first
            } else {
                port + 2
            };
            if self.in_use.contains(&candidate) {
                continue;
            }
            match bind(SocketAddr::new(ip, candidate)) {
                Ok(socket) => {
                    self.in_use.insert(candidate);
                    self.next = port;
                    return Ok((candidate, socket));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(MediaError::PortsExhausted {
            ip,
            first: self.first,
            last: self.last,
            in_use: self.in_use.len(),
            last_error,
        })
    }

    /// Gives a port back (after its socket was dropped). Unknown ports are ignored.
    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
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
            let (port, socket) = pool.allocate(ip).unwrap();
            assert_eq!(port % 2, 0);
            assert!((first..=last).contains(&port));
            assert_eq!(socket.local_addr().unwrap().port(), port);
            held.push((port, socket));
        }
        let mut ports: Vec<u16> = held.iter().map(|(p, _)| *p).collect();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        let err = pool.allocate(ip).unwrap_err();
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
        assert_eq!(pool.allocate(ip).unwrap().0, a_port);
        assert_eq!(pool.allocate(ip).unwrap().0, b_port);
    }

    #[test]
    fn just_freed_port_is_not_reused_at_once() {
        let (first, last) = free_range(3);
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        let (a, sa) = pool.allocate(ip).unwrap();
        let (_b, _sb) = pool.allocate(ip).unwrap();
        drop(sa);
        pool.release(a);
        let (c, _sc) = pool.allocate(ip).unwrap();
        assert_eq!(c, a + 4);
        assert_eq!(pool.allocate(ip).unwrap().0, a);
    }

    #[test]
    fn ports_held_elsewhere_are_skipped() {
        let (first, last) = free_range(2);
        let _squatter = UdpSocket::bind((LO, first)).unwrap();
        let mut pool = PortPool::new(first, last).unwrap();
        let ip = LO.parse().unwrap();
        assert_eq!(pool.allocate(ip).unwrap().0, first + 2);
        let err = pool.allocate(ip).unwrap_err();
        let MediaError::PortsExhausted { last_error, .. } = &err else {
            panic!("{err}");
        };
        assert!(last_error.is_some());
        assert!(err.to_string().contains("widen the range"));
    }
}
