//! The shell's side of the RTP ports: the sockets behind the numbers the
//! core hands out.
//!
//! The core keeps the ledger of port numbers and asks for binds by value
//! ([`PortRequest`]); this binds them (reusing the socket a finished
//! stream gave back, see [`PortPool`]), keeps each socket until the
//! core's [`MediaCommand::Add`] for that port hands it to the media
//! worker, and reports a bind that failed back to the core
//! ([`Core::on_port_failed`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, UdpSocket};
use std::time::Instant;

use tracing::warn;

use super::core::{Core, Outputs, PortRequest};
use crate::media::engine::MediaHandle;
use crate::media::ports::PortPool;

/// Rounds of "carry out, report the failed binds" per turn: each failure
/// sets a port aside, so this ends long before; the bound only guards
/// against a bug looping.
const MAX_ROUNDS: usize = 8;

/// The sockets bound for the core's port numbers. See the module docs.
#[derive(Debug)]
pub struct RtpSockets {
    /// `None`: [`RtpSockets::ephemeral`].
    pool: Option<PortPool>,
    /// Bound for a stream the core has not added yet.
    bound: HashMap<u16, UdpSocket>,
    failed: Vec<u16>,
}

impl RtpSockets {
    /// Sockets from `pool` (the media worker gives them back to it).
    pub fn new(pool: PortPool) -> RtpSockets {
        RtpSockets {
            pool: Some(pool),
            bound: HashMap::new(),
            failed: Vec::new(),
        }
    }

    /// For harnesses that carry no RTP (the fuzz harness, tests of the
    /// core): each port the core asks for is stood in for by a socket on a
    /// port the system picks, so harnesses running side by side never
    /// fail each other's binds.
    pub fn ephemeral() -> RtpSockets {
        RtpSockets {
            pool: None,
            bound: HashMap::new(),
            failed: Vec::new(),
        }
    }

    fn bind(&mut self, ip: IpAddr, port: u16, now: Instant) -> io::Result<UdpSocket> {
        match &mut self.pool {
            Some(pool) => pool.bind(ip, port, now),
            None => UdpSocket::bind((ip, 0)),
        }
    }

    /// Carries out `out.ports` and `out.media` (ports first: the streams
    /// use them); a failed bind goes back to `core`, whose answer is
    /// carried out in turn. The transmits and records are left in `out`.
    pub fn carry_out(
        &mut self,
        core: &mut Core,
        out: &mut Outputs,
        media: &MediaHandle,
        now: Instant,
    ) {
        if let Some(pool) = &mut self.pool {
            for port in pool.take_returned(now) {
                core.on_port_returned(port, now);
            }
        }
        for _ in 0..MAX_ROUNDS {
            for request in out.ports.drain(..) {
                match request {
                    PortRequest::Bind { ip, port } => match self.bind(ip, port, now) {
                        Ok(socket) => {
                            self.bound.insert(port, socket);
                        }
                        Err(e) => {
                            warn!(%ip, port, error = %e, "cannot bind an RTP port");
                            self.failed.push(port);
                        }
                    },
                    PortRequest::Release(port) => {
                        let socket = self.bound.remove(&port);
                        if let Some(pool) = &mut self.pool {
                            pool.release(port);
                            // Never handed to the worker: it rests like the rest.
                            if let Some(socket) = socket {
                                pool.recycler().give_back(socket);
                            }
                        } else {
                            // No pool: the socket is closed, the port free.
                            core.on_port_returned(port, now);
                        }
                    }
                }
            }
            for command in out.media.drain(..) {
                command.apply(media, |port| self.bound.remove(&port));
            }
            if self.failed.is_empty() {
                return;
            }
            for port in std::mem::take(&mut self.failed) {
                core.on_port_failed(port, now, out);
            }
        }
    }
}
