//! Reading UDP in batches: one `recvmmsg` takes everything a socket holds.
//!
//! Why: with edge-triggered readiness (tokio, mio) a socket must be read
//! until it says `WouldBlock`, so one datagram used to cost two reads, the
//! second finding nothing. `recvmmsg` returns every queued datagram in one
//! call, and when it returns fewer than it had room for, the kernel stopped
//! at an empty socket: no read comes back empty. The core thread
//! (`daemon::driver`, its SIP sockets) and the media worker both read this
//! way.

use std::io;
use std::mem::{MaybeUninit, size_of};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

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
        // The message headers live on the stack and are filled in anew for
        // every read, so nothing is allocated per read, and each address
        // length starts at the full size again: the kernel shortens it to
        // the source it wrote (an IPv4 source after an IPv6 one would
        // otherwise cut the next IPv6 source short). nix's `recvmmsg` keeps
        // its headers between calls without that reset, so a read through
        // it needed freshly allocated ones each time.
        let mut names = [MaybeUninit::<libc::sockaddr_storage>::uninit(); MAX_SLOTS];
        let mut iovecs = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_SLOTS];
        // SAFETY: `mmsghdr` is plain old data; all zeroes is a valid value.
        let mut headers: [libc::mmsghdr; MAX_SLOTS] = unsafe { std::mem::zeroed() };
        for (i, chunk) in self.buffers.chunks_mut(self.slot_len).enumerate() {
            iovecs[i] = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            };
            let h = &mut headers[i].msg_hdr;
            h.msg_name = names[i].as_mut_ptr().cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovecs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live slot of `self.buffers` and
        // of `names`, all sized as declared; the kernel writes only there,
        // and at most `self.slots` headers (that many were filled in).
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                self.slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let Ok(used) = usize::try_from(n) else {
            return Err(io::Error::last_os_error());
        };
        for (slot, header) in headers[..used].iter().enumerate() {
            // Truncated, or without a source to answer: not usable.
            if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                continue;
            }
            // SAFETY: the kernel wrote `msg_namelen` bytes of this name.
            let from = unsafe { std_addr(&names[slot], header.msg_hdr.msg_namelen) };
            if let Some(from) = from {
                self.received.push((slot, header.msg_len as usize, from));
            }
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

/// The source address the kernel wrote into `name`, `len` bytes long.
///
/// # Safety
/// The first `len` bytes of `name` must have been written (by `recvmmsg`).
unsafe fn std_addr(
    name: &MaybeUninit<libc::sockaddr_storage>,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    // SAFETY (all three reads): the caller vouches for `len` written bytes,
    // and each read is of a type no longer than the `len` checked first;
    // `sockaddr_storage` is aligned for all of them.
    let family = if len >= size_of::<libc::sa_family_t>() {
        unsafe { (*name.as_ptr()).ss_family }
    } else {
        return None;
    };
    match family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            let a = unsafe { &*name.as_ptr().cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            let a = unsafe { &*name.as_ptr().cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                // Passed on as it is, as std's own conversion does.
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
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
