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
//! The sockets are watched for reading only ([`SipUdp`]). tokio's own
//! `UdpSocket` also asks epoll for write readiness, and a UDP socket turns
//! writable again each time the peer reads one of its datagrams: in the
//! signalling load that made `epoll_wait` return once more per call for
//! nothing.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sip::transaction::Transmit;
use crate::udp::Inbox;

/// A SIP UDP socket, registered with the runtime for read readiness only.
/// Sends never wait: they go straight to the (non-blocking) socket.
pub type SipUdp = AsyncFd<std::net::UdpSocket>;

/// Binds a SIP UDP socket on `addr`.
pub fn bind(addr: SocketAddr) -> io::Result<SipUdp> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    // SAFETY: the `UdpSocket` owns its descriptor, keeps it open until the
    // `AsyncFd` drops it, and always returns that same descriptor.
    let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
    Ok(registered?)
}

/// Datagrams read or sent per system call.
const BATCH: usize = crate::udp::MAX_SLOTS;

/// Room for the largest UDP payload, so no SIP datagram is ever truncated.
const DATAGRAM: usize = 65_535;

/// An [`Inbox`] sized for SIP: a full batch of the largest datagrams.
pub fn inbox() -> Inbox {
    Inbox::new(BATCH, DATAGRAM)
}

/// Waits until `socket` has datagrams and reads every one queued (up to a
/// batch); they are then in [`Inbox::datagrams`].
///
/// When the read leaves the socket empty, its readiness is cleared, so the
/// next call sleeps instead of costing another, empty read.
///
/// Cancel-safe (the core loop uses it in `select!`): nothing is read before
/// the last `.await`, so a dropped call loses no datagram.
pub async fn read(inbox: &mut Inbox, socket: &SipUdp) -> io::Result<()> {
    let mut ready = socket.readable().await?;
    match inbox.read(socket) {
        Ok(false) => Ok(()),
        Ok(true) => {
            ready.clear_ready();
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            ready.clear_ready();
            Ok(())
        }
        Err(e) => Err(e),
    }
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
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::sip::Transport;
    use crate::sip::transaction::Peer;

    fn socket() -> SipUdp {
        bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn datagrams(from: &SipUdp, to: &SipUdp, texts: &[String]) -> Vec<Transmit> {
        let peer = Peer {
            transport: Transport::Udp,
            addr: to.get_ref().local_addr().unwrap(),
            local: from.get_ref().local_addr().unwrap(),
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

    /// One `Inbox::read`, which must not wait long: datagrams are queued.
    async fn read_within(inbox: &mut Inbox, socket: &SipUdp) {
        tokio::time::timeout(Duration::from_secs(5), read(inbox, socket))
            .await
            .expect("queued datagrams make the socket readable")
            .unwrap();
    }

    #[tokio::test]
    async fn one_read_takes_every_queued_datagram_in_order() {
        let (a, b) = (socket(), socket());
        let sent = texts(3);
        send_all(a.get_ref(), &datagrams(&a, &b, &sent));
        let mut inbox = inbox();
        read_within(&mut inbox, &b).await;
        let from = a.get_ref().local_addr().unwrap();
        let want: Vec<_> = sent.into_iter().map(|t| (t, from)).collect();
        assert_eq!(read_all(&inbox), want);
    }

    #[tokio::test]
    async fn a_read_that_empties_the_socket_clears_its_readiness() {
        let (a, b) = (socket(), socket());
        send_all(a.get_ref(), &datagrams(&a, &b, &texts(1)));
        let mut inbox = inbox();
        read_within(&mut inbox, &b).await;
        assert_eq!(read_all(&inbox).len(), 1);
        // Without the clearing, `readable` would return at once and the next
        // read would find nothing.
        let idle = tokio::time::timeout(Duration::from_millis(50), b.readable()).await;
        assert!(idle.is_err(), "an empty socket still counted as readable");
        // The next datagram wakes the reader again.
        send_all(a.get_ref(), &datagrams(&a, &b, &texts(1)));
        read_within(&mut inbox, &b).await;
        assert_eq!(read_all(&inbox).len(), 1);
    }

    #[tokio::test]
    async fn more_than_a_batch_is_read_in_several_turns() {
        let (a, b) = (socket(), socket());
        let sent = texts(BATCH + 3);
        send_all(a.get_ref(), &datagrams(&a, &b, &sent));
        let mut inbox = inbox();
        read_within(&mut inbox, &b).await;
        assert_eq!(read_all(&inbox).len(), BATCH);
        let mut got: Vec<_> = read_all(&inbox).into_iter().map(|(t, _)| t).collect();
        read_within(&mut inbox, &b).await;
        got.extend(read_all(&inbox).into_iter().map(|(t, _)| t));
        assert_eq!(got, sent);
    }
}
