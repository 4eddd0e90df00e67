//! Reading UDP in batches: one `recvmmsg` takes everything a socket holds.
//!
//! Why: with edge-triggered readiness (tokio, mio) a socket must be read
//! until it says `WouldBlock`, so one datagram used to cost two reads, the
//! second finding nothing. `recvmmsg` returns every queued datagram in one
//! call, and when it returns fewer than it had room for, the kernel stopped
//! at an empty socket: no read comes back empty. The SIP transport
//! (`daemon::transport::batch`) and the media worker both read this way.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};

/// The most datagrams one read takes.
pub const MAX_SLOTS: usize = 16;

/// Receive buffers, and what the last read put in them. One `Inbox` can
/// serve many sockets in turn, IPv4 and IPv6 alike.
///
/// ```
/// use zentrale::udp::Inbox;
///
/// let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// b.set_nonblocking(true).unwrap();
/// a.send_to(b"one", b.local_addr().unwrap()).unwrap();
/// a.send_to(b"two", b.local_addr().unwrap()).unwrap();
///
/// let mut inbox = Inbox::new(4, 1500);
/// let empty = inbox.read(&b).unwrap();
/// assert!(empty, "two datagrams fit in four slots");
/// let got: Vec<&[u8]> = inbox.datagrams().map(|(d, _)| d).collect();
/// assert_eq!(got, [&b"one"[..], &b"two"[..]]);
/// ```
pub struct Inbox {
    buffers: Vec<u8>,
    slots: usize,
    slot_len: usize,
    /// Slot, length and source of each datagram read.
    received: Vec<(usize, usize, SocketAddr)>,
}

impl Inbox {
    /// Room for `slots` datagrams (at most [`MAX_SLOTS`]) of up to
    /// `slot_len` bytes; longer datagrams are dropped.
    pub fn new(slots: usize, slot_len: usize) -> Inbox {
        let slots = slots.clamp(1, MAX_SLOTS);
        Inbox {
            buffers: vec![0; slots * slot_len],
            slots,
            slot_len,
            received: Vec::with_capacity(slots),
        }
    }

    /// Reads what is queued on `socket` without waiting; the datagrams are
    /// then in [`Inbox::datagrams`]. `Ok(true)` when the socket is empty
    /// now, `Ok(false)` when every slot was filled and more may wait.
    /// `WouldBlock` when nothing was queued; other errors are the socket's
    /// (on Linux also a queued ICMP error of an earlier send).
    pub fn read(&mut self, socket: &impl AsRawFd) -> io::Result<bool> {
        self.received.clear();
        let mut chunks = self.buffers.chunks_mut(self.slot_len);
        let mut slices: [[IoSliceMut; 1]; MAX_SLOTS] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
        // Fresh headers each time: the kernel shortens a header's address
        // length to what it received, and nix does not reset it, so a header
        // used for IPv4 would cut the next IPv6 source short.
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(self.slots, None);
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers,
            slices[..self.slots].iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )?;
        let mut used = 0;
        for msg in results {
            // Truncated, or without a source to answer: not usable.
            if !msg.flags.contains(MsgFlags::MSG_TRUNC)
                && let Some(from) = msg.address.as_ref().and_then(std_addr)
            {
                self.received.push((used, msg.bytes, from));
            }
            used += 1;
        }
        Ok(used < self.slots)
    }

    /// How many datagrams the last [`Inbox::read`] kept.
    pub fn len(&self) -> usize {
        self.received.len()
    }

    /// Whether the last [`Inbox::read`] kept nothing.
    pub fn is_empty(&self) -> bool {
        self.received.is_empty()
    }

    /// The datagrams of the last [`Inbox::read`], oldest first, with their
    /// sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received
            .iter()
            .map(|&(slot, len, from)| (&self.buffers[slot * self.slot_len..][..len], from))
    }

    /// Datagram `i` of the last read, writable (the media relay rewrites
    /// RTP headers in place).
    pub fn datagram_mut(&mut self, i: usize) -> (&mut [u8], SocketAddr) {
        let (slot, len, from) = self.received[i];
        (&mut self.buffers[slot * self.slot_len..][..len], from)
    }
}

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_full_inbox_says_more_may_wait_and_the_next_read_takes_it() {
        let (a, b) = pair();
        for i in 0..5u8 {
            a.send_to(&[i], b.local_addr().unwrap()).unwrap();
        }
        let mut inbox = Inbox::new(3, 64);
        assert!(!inbox.read(&b).unwrap(), "three slots, five datagrams");
        assert_eq!(inbox.len(), 3);
        assert!(inbox.read(&b).unwrap());
        let rest: Vec<u8> = inbox.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(rest, [3, 4]);
        let nothing = inbox.read(&b).unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
        assert!(inbox.is_empty());
    }

    #[test]
    fn datagrams_longer_than_a_slot_are_dropped_not_cut() {
        let (a, b) = pair();
        a.send_to(&[7; 100], b.local_addr().unwrap()).unwrap();
        a.send_to(&[8; 10], b.local_addr().unwrap()).unwrap();
        let mut inbox = Inbox::new(4, 50);
        assert!(inbox.read(&b).unwrap());
        let kept: Vec<Vec<u8>> = inbox.datagrams().map(|(d, _)| d.to_vec()).collect();
        assert_eq!(kept, [vec![8; 10]]);
    }

    #[test]
    fn one_inbox_reads_ipv4_and_ipv6_sockets_in_turn() {
        let (a, b) = pair();
        let Ok(c) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let d = UdpSocket::bind("[::1]:0").unwrap();
        d.set_nonblocking(true).unwrap();
        let mut inbox = Inbox::new(2, 64);
        a.send_to(b"v4", b.local_addr().unwrap()).unwrap();
        inbox.read(&b).unwrap();
        assert_eq!(inbox.datagrams().next().unwrap().1, a.local_addr().unwrap());
        c.send_to(b"v6", d.local_addr().unwrap()).unwrap();
        inbox.read(&d).unwrap();
        assert_eq!(inbox.datagrams().next().unwrap().1, c.local_addr().unwrap());
    }

    #[test]
    fn sources_and_writable_datagrams() {
        let (a, b) = pair();
        a.send_to(b"rtp", b.local_addr().unwrap()).unwrap();
        let mut inbox = Inbox::new(2, 64);
        inbox.read(&b).unwrap();
        let (data, from) = inbox.datagram_mut(0);
        assert_eq!(from, a.local_addr().unwrap());
        data[0] = b'R';
        assert_eq!(inbox.datagrams().next().unwrap().0, b"Rtp");
    }
}
