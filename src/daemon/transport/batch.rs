//! Batched UDP: one `recvmmsg` empties a socket, one `sendmmsg` sends what
//! a turn of the core produced.
//!
//! Why: at 200 calls/s each datagram used to cost a `recvfrom` that returned
//! it and a second one that found the socket empty (tokio clears a socket's
//! readiness only when a read says `WouldBlock`), and each response its own
//! `sendto`. On loopback every `sendto` wakes the peer, which then preempts
//! the sender before its next `sendto`; the 100 Trying and 180 Ringing of an
//! INVITE cost two such round trips. `recvmmsg` reads everything queued,
//! and when it returns fewer datagrams than it had room for, the socket is
//! empty; `sendmmsg` hands a turn's datagrams to the kernel together.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::sip::transaction::Transmit;

/// Datagrams read or sent per system call.
const BATCH: usize = 16;

/// Room for the largest UDP payload, so no SIP datagram is ever truncated.
const DATAGRAM: usize = 65_535;

/// Receive buffers for one UDP socket, and what the last read put in them.
///
/// One `Inbox` per socket: the kernel shortens each header's address length
/// to the family it received, so headers are not shared between an IPv4 and
/// an IPv6 socket.
pub struct Inbox {
    buffers: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Slot, length and source of each datagram read.
    received: Vec<(usize, usize, SocketAddr)>,
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            buffers: vec![0; BATCH * DATAGRAM],
            headers: MultiHeaders::preallocate(BATCH, None),
            received: Vec::with_capacity(BATCH),
        }
    }
}

impl Inbox {
    /// Reads what is queued on `socket` without waiting; the datagrams are
    /// then in [`Inbox::datagrams`]. Call it when the socket is readable.
    ///
    /// When the read leaves the socket empty, the socket's readiness is
    /// cleared in the same call, so the caller's next `readable().await`
    /// sleeps instead of costing another, empty read.
    pub fn read(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let Inbox {
            buffers,
            headers,
            received,
        } = self;
        received.clear();
        let result = socket.try_io(Interest::READABLE, || {
            let mut chunks = buffers.chunks_mut(DATAGRAM);
            let mut slices: [[IoSliceMut; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(chunks.next().expect("BATCH chunks"))]
            });
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            let mut slots = 0;
            for msg in results {
                slots += 1;
                // A datagram without a usable source cannot be answered.
                if let Some(from) = msg.address.as_ref().and_then(std_addr) {
                    received.push((slots - 1, msg.bytes, from));
                }
            }
            // Fewer than asked for: the kernel stopped at an empty socket.
            if slots < BATCH {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }

    /// The datagrams of the last [`Inbox::read`], oldest first, with their
    /// sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.received
            .iter()
            .map(|&(slot, len, from)| (&self.buffers[slot * DATAGRAM..][..len], from))
    }
}

/// Sends `datagrams` from `socket`, up to `BATCH` to a system call,
/// without waiting. A datagram the kernel refuses is logged and skipped;
/// when the socket's buffer is full the rest are dropped, as a lost UDP
/// datagram would be (the transaction layer retransmits).
pub fn send_all(socket: &UdpSocket, datagrams: &[Transmit]) {
    let mut headers = None;
    let mut rest = datagrams;
    while let Some(first) = rest.first() {
        let sent = if rest.len() == 1 {
            socket.try_send_to(&first.bytes, first.peer.addr).map(|_| 1)
        } else {
            let chunk = &rest[..rest.len().min(BATCH)];
            let slices: Vec<[IoSlice; 1]> = chunk.iter().map(|t| [IoSlice::new(&t.bytes)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|t| Some(SockaddrStorage::from(t.peer.addr)))
                .collect();
            let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
            socket.try_io(Interest::WRITABLE, || {
                let results = sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    slices.iter(),
                    &addrs,
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )?;
                Ok(results.count())
            })
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

fn std_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::sip::Transport;
    use crate::sip::transaction::Peer;

    /// A bound socket whose write readiness tokio already knows, as the
    /// daemon's sockets do by the time it first answers.
    async fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.writable().await.unwrap();
        s
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

    #[tokio::test]
    async fn one_read_takes_every_queued_datagram_in_order() {
        let (a, b) = (socket().await, socket().await);
        let sent = texts(3);
        send_all(&a, &datagrams(&a, &b, &sent));
        b.readable().await.unwrap();
        let mut inbox = Inbox::default();
        inbox.read(&b).unwrap();
        let from = a.local_addr().unwrap();
        let want: Vec<_> = sent.into_iter().map(|t| (t, from)).collect();
        assert_eq!(read_all(&inbox), want);
    }

    #[tokio::test]
    async fn a_read_that_empties_the_socket_clears_its_readiness() {
        let (a, b) = (socket().await, socket().await);
        send_all(&a, &datagrams(&a, &b, &texts(1)));
        b.readable().await.unwrap();
        let mut inbox = Inbox::default();
        inbox.read(&b).unwrap();
        assert_eq!(read_all(&inbox).len(), 1);
        // Without the clearing, `readable` would return at once and the next
        // read would find nothing.
        let idle = tokio::time::timeout(Duration::from_millis(50), b.readable()).await;
        assert!(idle.is_err(), "an empty socket still counted as readable");
        // The next datagram wakes the reader again.
        send_all(&a, &datagrams(&a, &b, &texts(1)));
        tokio::time::timeout(Duration::from_secs(5), b.readable())
            .await
            .expect("a new datagram makes the socket readable")
            .unwrap();
        inbox.read(&b).unwrap();
        assert_eq!(read_all(&inbox).len(), 1);
    }

    #[tokio::test]
    async fn more_than_a_batch_is_read_in_several_turns() {
        let (a, b) = (socket().await, socket().await);
        let sent = texts(BATCH + 3);
        send_all(&a, &datagrams(&a, &b, &sent));
        let mut inbox = Inbox::default();
        let mut got = Vec::new();
        while got.len() < sent.len() {
            tokio::time::timeout(Duration::from_secs(5), b.readable())
                .await
                .expect("the rest of the datagrams keep the socket readable")
                .unwrap();
            inbox.read(&b).unwrap();
            got.extend(read_all(&inbox).into_iter().map(|(t, _)| t));
        }
        assert_eq!(got, sent);
    }
}
