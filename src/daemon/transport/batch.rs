//! SIP over UDP in batches: reads through [`crate::udp::Inbox`] (one
//! `recvmmsg` empties the socket), and one `sendmmsg` sends what a turn of
//! the core produced.
//!
//! Why: at 200 calls/s each datagram used to cost a `recvfrom` that returned
//! it and a second one that found the socket empty (tokio clears a socket's
//! readiness only when a read says `WouldBlock`; here a short `recvmmsg`
//! clears it), and each response its own `sendto`. On loopback every
//! `sendto` wakes the peer, which then preempts the sender before its next
//! `sendto`; the 100 Trying and 180 Ringing of an INVITE cost two such round
//! trips. `sendmmsg` hands a turn's datagrams to the kernel together.
//!
//! The core thread ([`super::super::driver`]) waits for the sockets in
//! its own epoll, for reading only: a UDP socket also turns writable each
//! time the peer reads one of its datagrams, and watching that made
//! `epoll_wait` return once more per call for nothing.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};

use crate::sip::transaction::Transmit;
use crate::udp::Inbox;

/// Binds a non-blocking SIP UDP socket on `addr`.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Datagrams read or sent per system call.
const BATCH: usize = crate::udp::MAX_SLOTS;

/// Room for the largest UDP payload, so no SIP datagram is ever truncated.
const DATAGRAM: usize = 65_535;

/// An [`Inbox`] sized for SIP: a full batch of the largest datagrams.
pub fn inbox() -> Inbox {
    Inbox::new(BATCH, DATAGRAM)
}

/// Sends `datagrams` from `socket`, up to `BATCH` to a system call,
/// without waiting. A datagram the kernel refuses is logged and skipped;
/// when the socket's buffer is full the rest are dropped, as a lost UDP
/// datagram would be (the transaction layer retransmits).
pub fn send_all(socket: &std::net::UdpSocket, datagrams: &[Transmit]) {
    let mut headers = None;
    let mut rest = datagrams;
    while let Some(first) = rest.first() {
        let sent = if rest.len() == 1 {
            socket.send_to(&first.bytes, first.peer.addr).map(|_| 1)
        } else {
            let chunk = &rest[..rest.len().min(BATCH)];
            let slices: Vec<[IoSlice; 1]> =
                chunk.iter().map(|t| [IoSlice::new(&t.bytes)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|t| Some(SockaddrStorage::from(t.peer.addr)))
                .collect();
            let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
            sendmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter(),
                &addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|results| results.count())
            .map_err(io::Error::from)
        };
        match sent {
            Ok(n) => rest = &rest[n.max(1)..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tracing::debug!(dropped = rest.len(), "UDP send buffer full");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, to = %first.peer.addr, "UDP send failed");
                rest = &rest[1..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    use bytes::Bytes;

    use super::*;
    use crate::sip::Transport;
    use crate::sip::transaction::Peer;

    fn socket() -> UdpSocket {
        bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn datagrams(from: &UdpSocket, to: &UdpSocket, texts: &[String]) -> Vec<Transmit> {
        let peer = Peer {
            transport: Transport::Udp,
            addr: to.local_addr().unwrap(),
            local: from.local_addr().unwrap(),
        };
        texts
            .iter()
            .map(|t| Transmit {
                peer,
                bytes: Bytes::from(t.clone()),
            })
            .collect()
    }

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("datagram {i}")).collect()
    }

    fn read_all(inbox: &Inbox) -> Vec<(String, SocketAddr)> {
        inbox
            .datagrams()
            .map(|(d, from)| (String::from_utf8(d.to_vec()).unwrap(), from))
            .collect()
    }

    /// One `Inbox::read` that finds datagrams (loopback delivers them at
    /// once, but the test does not rely on it). Whether it emptied the
    /// socket.
    fn read_within(inbox: &mut Inbox, socket: &UdpSocket) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match inbox.read(socket) {
                Ok(empty) => return empty,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("no datagrams: {e}"),
            }
        }
    }

    #[test]
    fn one_read_takes_every_queued_datagram_in_order() {
        let (a, b) = (socket(), socket());
        let sent = texts(3);
        send_all(&a, &datagrams(&a, &b, &sent));
        let mut inbox = inbox();
        assert!(read_within(&mut inbox, &b), "three datagrams fit one read");
        let from = a.local_addr().unwrap();
        let want: Vec<_> = sent.into_iter().map(|t| (t, from)).collect();
        assert_eq!(read_all(&inbox), want);
    }

    #[test]
    fn more_than_a_batch_is_sent_and_read_in_several_turns() {
        let (a, b) = (socket(), socket());
        let sent = texts(BATCH + 3);
        send_all(&a, &datagrams(&a, &b, &sent));
        let mut inbox = inbox();
        assert!(!read_within(&mut inbox, &b), "a full batch leaves the rest");
        assert_eq!(read_all(&inbox).len(), BATCH);
        let mut got: Vec<_> = read_all(&inbox).into_iter().map(|(t, _)| t).collect();
        assert!(read_within(&mut inbox, &b));
        got.extend(read_all(&inbox).into_iter().map(|(t, _)| t));
        assert_eq!(got, sent);
    }
}
