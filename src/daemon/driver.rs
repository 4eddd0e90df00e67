//! The core thread: one thread, one epoll, driving the [`Core`].
//!
//! The thread sleeps in `epoll_wait` on the SIP UDP sockets and a
//! [`Doorbell`], with the core's next deadline (on a 10 ms grid) as the
//! timeout. A datagram therefore costs one wake-up and one `recvmmsg`, and
//! a timer costs nothing but that timeout: no runtime, no future polling,
//! no timer wheel. This loop replaced a tokio task that did the same with
//! `select!` and a `Sleep`, whose turns and timer were 5 % of the daemon's
//! instructions per call (BENCHMARKS.md's git history, session 6).
//!
//! Everything else reaches the thread through [`CoreHandle`]: framed TCP
//! messages (bounded: a full channel makes the TCP readers wait), media
//! events (the media worker rings the doorbell itself), agent commands
//! from the HTTP API (answered on a one-shot), reloaded configs and the
//! order to stop. The tokio runtime keeps what is naturally async: TCP
//! connections, HTTP, signals and reading config files.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::cdr_writer::CdrWriter;
use super::core::{Core, Outputs};
use super::reload;
use super::rtp::RtpSockets;
use super::transport::{Inbound, Transports};
use crate::acd::{AgentCommand, AgentError, AgentSnapshot};
use crate::api::ReloadRequest;
use crate::doorbell::Doorbell;
use crate::media::engine::{MediaEvent, MediaHandle};
use crate::udp::Inbox;

/// Framed TCP messages waiting for the core; a full channel makes the TCP
/// readers wait (back-pressure).
const INBOUND_CAPACITY: usize = 4096;

/// The doorbell's token; UDP socket `i` is `Token(i)`.
const DOORBELL: Token = Token(usize::MAX);

/// Reads (of up to a batch each) of one UDP socket per turn. A socket
/// with more waiting is read again next turn, after the rest of the
/// turn's work, so a flood on one socket cannot starve the timers.
const READS_PER_TURN: usize = 16;

/// Framed TCP messages taken per turn: a client pipelining requests as
/// fast as its connection allows must not keep the core from its UDP
/// sockets and timers.
const INBOUND_PER_TURN: usize = 256;

/// Agent commands waiting for the core; a full channel makes the API
/// handlers wait.
const COMMAND_CAPACITY: usize = 64;

/// How long calls get to answer their BYEs when zentrale stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A config read for a reload, who asked (`api` or `SIGHUP`, for the log)
/// and where the outcome goes.
pub struct Reload {
    pub loaded: reload::Loaded,
    pub trigger: &'static str,
    pub reply: Option<ReloadRequest>,
}

/// An agent command and where its outcome goes.
struct CommandRequest {
    command: AgentCommand,
    reply: oneshot::Sender<Result<AgentSnapshot, AgentError>>,
}

/// What the core thread shares with everyone who hands it work.
#[derive(Debug)]
struct Shared {
    bell: Arc<Doorbell>,
    stop: AtomicBool,
}

/// Hands work to the core thread from other threads and tasks. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub struct CoreHandle {
    inbound: mpsc::Sender<Inbound>,
    commands: mpsc::Sender<CommandRequest>,
    reloads: mpsc::Sender<Reload>,
    shared: Arc<Shared>,
}

/// The channel a closed core thread leaves behind: it has stopped.
#[derive(Debug)]
pub struct Stopped;

impl CoreHandle {
    /// Hands a framed stream message to the core; waits while the core is
    /// behind (back-pressure on the connection).
    pub async fn deliver(&self, message: Inbound) -> Result<(), Stopped> {
        self.inbound.send(message).await.map_err(|_| Stopped)?;
        self.shared.bell.ring();
        Ok(())
    }

    /// Hands an agent command to the core, which applies it in order with
    /// every other input, and waits for the outcome: the agent as the
    /// command left it, or why it was refused.
    pub async fn agent_command(
        &self,
        command: AgentCommand,
    ) -> Result<Result<AgentSnapshot, AgentError>, Stopped> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(CommandRequest { command, reply })
            .await
            .map_err(|_| Stopped)?;
        self.shared.bell.ring();
        outcome.await.map_err(|_| Stopped)
    }

    /// Hands a reloaded config to the core.
    pub async fn reload(&self, reload: Reload) -> Result<(), Stopped> {
        self.reloads.send(reload).await.map_err(|_| Stopped)?;
        self.shared.bell.ring();
        Ok(())
    }

    /// Tells the core thread to hang up every call and end.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.bell.ring();
    }

    /// The doorbell, for a thread that hands over through a channel of its
    /// own (the media worker's events).
    pub fn doorbell(&self) -> Arc<Doorbell> {
        self.shared.bell.clone()
    }
}

/// The core thread's side: its epoll and what the [`CoreHandle`]s send.
/// Build it with [`Driver::new`], then move it to the thread and
/// [`run`](Driver::run) it.
pub struct Driver {
    poll: Poll,
    events: Events,
    inbound: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<CommandRequest>,
    reloads: mpsc::Receiver<Reload>,
    media: Option<mpsc::Receiver<MediaEvent>>,
    shared: Arc<Shared>,
    inbox: Inbox,
    /// UDP sockets with datagrams left after their turn's reads.
    unread: Vec<usize>,
    /// The UDP sockets to read this turn.
    ready: Vec<usize>,
    /// TCP messages were left in the mailbox at the end of a turn.
    inbound_left: bool,
    /// What the core's turns asked for; carried out by [`Driver::carry_out`].
    out: Outputs,
    /// Where the core's call records go (`cdr:`), if anywhere.
    cdr: Option<CdrWriter>,
    /// The store, which keeps a row per call and per leg (`store:`).
    store: Option<Arc<crate::store::Store>>,
    /// The media worker, which carries out the core's media commands, and
    /// the RTP sockets behind the core's port numbers.
    media_worker: Option<(MediaHandle, RtpSockets)>,
}

impl Driver {
    /// The driver and its handle.
    pub fn new() -> io::Result<(Driver, CoreHandle)> {
        let poll = Poll::new()?;
        let bell = Arc::new(Doorbell::new(poll.registry(), DOORBELL)?);
        let shared = Arc::new(Shared {
            bell,
            stop: AtomicBool::new(false),
        });
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let (commands_tx, commands) = mpsc::channel(COMMAND_CAPACITY);
        let (reloads_tx, reloads) = mpsc::channel(4);
        let driver = Driver {
            poll,
            events: Events::with_capacity(64),
            inbound,
            commands,
            reloads,
            media: None,
            shared: shared.clone(),
            inbox: super::transport::batch::inbox(),
            unread: Vec::new(),
            ready: Vec::new(),
            inbound_left: false,
            out: Outputs::default(),
            cdr: None,
            store: None,
            media_worker: None,
        };
        let handle = CoreHandle {
            inbound: inbound_tx,
            commands: commands_tx,
            reloads: reloads_tx,
            shared,
        };
        Ok((driver, handle))
    }

    /// Takes the media worker's handle (for the core's media commands)
    /// and its events; it rings the doorbell after each
    /// (`EngineConfig::wake`).
    pub fn media(
        &mut self,
        worker: MediaHandle,
        events: mpsc::Receiver<MediaEvent>,
        sockets: RtpSockets,
    ) {
        self.media_worker = Some((worker, sockets));
        self.media = Some(events);
    }

    /// Replaces the call record writer (start, reload). The old writer
    /// finishes its queue on a thread of its own, so a slow disk does not
    /// hold up the core thread while it is dropped.
    pub fn set_cdr(&mut self, writer: Option<CdrWriter>) {
        if let Some(old) = std::mem::replace(&mut self.cdr, writer) {
            let _ = std::thread::Builder::new()
                .name("zentrale-cdr-close".into())
                .spawn(move || drop(old));
        }
    }

    /// Call records go to `store` too (`store:`).
    pub fn set_store(&mut self, store: Option<Arc<crate::store::Store>>) {
        self.store = store;
    }

    /// Carries out what the core asked for: binds RTP ports, hands media
    /// commands to the media worker, sends the SIP messages, publishes the
    /// call events to the event stream, and hands call records to the writer.
    fn carry_out(&mut self, core: &mut Core, transports: &Transports) {
        if let Some((worker, sockets)) = &mut self.media_worker {
            sockets.carry_out(core, &mut self.out, worker, Instant::now());
        }
        transports.send_all(&mut self.out.transmits);
        for event in self.out.events.drain(..) {
            event.publish(&core.metrics.events);
        }
        for record in self.out.records.drain(..) {
            // Never blocks: a full store queue refuses the row (counted as
            // `queue_full`); the JSON line below is still written.
            if let Some(store) = &self.store
                && store
                    .submit(crate::store::Write::Call(Box::new(record.clone())))
                    .is_err()
            {
                crate::limited!(
                    warn,
                    every = 10,
                    "the store's queue is full; a call record is in the JSON Lines file only"
                );
            }
            if let Some(writer) = &mut self.cdr {
                writer.write(record);
            }
        }
    }

    /// Drives `core` until [`CoreHandle::stop`]: then hangs up every call,
    /// gives the BYEs [`SHUTDOWN_GRACE`] to be answered and records what
    /// is still up. `origin` anchors the timer grid.
    pub fn run(
        mut self,
        mut core: Core,
        transports: Transports,
        origin: Instant,
    ) -> io::Result<()> {
        for (i, (socket, _)) in transports.udp_sockets().enumerate() {
            let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)?;
        }
        while !self.turn(&mut core, &transports, origin, None) {}

        let calls = core.hang_up_all(Instant::now(), &mut self.out);
        info!(calls, "shutting down: hanging up calls");
        self.carry_out(&mut core, &transports);
        // Give the BYEs a moment to be answered, without waiting for stragglers.
        let until = Instant::now() + SHUTDOWN_GRACE;
        while core.active_calls() > 0 && Instant::now() < until {
            self.turn(&mut core, &transports, origin, Some(until));
        }
        if core.active_calls() > 0 {
            warn!(calls = core.active_calls(), "calls still up at exit");
            core.record_remaining(Instant::now(), &mut self.out);
            self.carry_out(&mut core, &transports);
        }
        Ok(())
    }

    /// One wait and what it brought. `true` when told to stop. `until`
    /// bounds the wait besides the core's own deadline.
    fn turn(
        &mut self,
        core: &mut Core,
        transports: &Transports,
        origin: Instant,
        until: Option<Instant>,
    ) -> bool {
        let now = Instant::now();
        let deadline = core.poll_timeout().map(|d| on_grid(d, origin, now));
        let wake = match (deadline, until) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        };
        let timeout = if self.unread.is_empty() && !self.inbound_left {
            wake.map(|w| w.saturating_duration_since(now))
        } else {
            Some(Duration::ZERO)
        };
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                // Not expected from epoll_wait with valid arguments; do not
                // spin on it.
                error!(error = %e, "core poll failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            return false;
        }
        let mut rung = false;
        self.ready.clear();
        self.ready.append(&mut self.unread);
        for event in self.events.iter() {
            match event.token() {
                DOORBELL => rung = true,
                Token(i) => self.ready.push(i),
            }
        }
        for k in 0..self.ready.len() {
            self.read_udp(self.ready[k], core, transports);
        }
        if rung {
            self.shared.bell.answer();
        }
        // Every turn, not only when rung: a few empty `try_recv`s cost less
        // than depending on each ring (and on TCP messages left over from
        // the last turn, which no ring announces again).
        let stop = self.open_mailbox(core, transports);
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            core.handle_timeout(now, &mut self.out);
        }
        self.carry_out(core, transports);
        stop
    }

    /// Reads UDP socket `i` until it is empty (edge-triggered readiness
    /// says nothing more until it was) or its reads for this turn are used.
    fn read_udp(&mut self, i: usize, core: &mut Core, transports: &Transports) {
        let Some((socket, _)) = transports.udp_sockets().nth(i) else {
            return;
        };
        let mut more = false;
        for _ in 0..READS_PER_TURN {
            match self.inbox.read(socket) {
                Ok(empty) => {
                    for (data, from) in self.inbox.datagrams() {
                        let peer = transports.udp_peer(i, from);
                        core.on_message(data, peer, Instant::now(), &mut self.out);
                    }
                    if empty {
                        return;
                    }
                    // What this batch produced leaves before the next is read.
                    self.carry_out(core, transports);
                    more = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // An ICMP error of an earlier send surfaces here on Linux;
                // reading takes it off the socket, and datagrams may wait
                // behind it.
                Err(e) => {
                    debug!(error = %e, "UDP receive error");
                    more = true;
                }
            }
        }
        if more {
            self.unread.push(i);
        }
    }

    /// What the handles left: TCP messages, media events, agent commands,
    /// reloads. `true` when told to stop.
    fn open_mailbox(&mut self, core: &mut Core, transports: &Transports) -> bool {
        let mut taken = 0;
        while taken < INBOUND_PER_TURN
            && let Ok(msg) = self.inbound.try_recv()
        {
            core.on_message(&msg.data, msg.peer, Instant::now(), &mut self.out);
            taken += 1;
        }
        self.inbound_left = taken == INBOUND_PER_TURN;
        if let Some(media) = &mut self.media {
            while let Ok(event) = media.try_recv() {
                core.on_media_event(event, Instant::now(), &mut self.out);
            }
        }
        while let Ok(CommandRequest { command, reply }) = self.commands.try_recv() {
            let outcome = core.on_agent_command(command, Instant::now(), &mut self.out);
            // The asker may have gone (client disconnected); the command
            // stands all the same.
            let _ = reply.send(outcome);
        }
        while let Ok(Reload {
            loaded,
            trigger,
            reply,
        }) = self.reloads.try_recv()
        {
            // The certificate files were read again with the config.
            let tls = loaded.as_ref().ok().and_then(|(c, _, _)| c.tls.clone());
            let result = reload::apply(loaded, core, trigger).map(|(restart, cdr)| {
                self.set_cdr(cdr);
                restart
            });
            if result.is_ok() {
                transports.set_tls(tls);
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
            core.acd_changed(Instant::now(), &mut self.out);
        }
        self.shared.stop.load(Ordering::Acquire)
    }
}

/// Timers fire on this grid. At 200 calls/s the transaction and call
/// timers of different calls lie a few milliseconds apart; rounding each
/// deadline up to the grid lets one wake-up serve several of them. Nothing
/// zentrale times needs better than 10 ms (the shortest are RFC 3261's
/// T1 = 500 ms retransmissions and the 20 ms media ticks, which run on the
/// media thread).
const TIMER_GRID: Duration = Duration::from_millis(10);

/// `deadline` rounded up to the next point of the [`TIMER_GRID`] counted
/// from `origin`; a deadline already due stays as it is.
fn on_grid(deadline: Instant, origin: Instant, now: Instant) -> Instant {
    if deadline <= now {
        return deadline;
    }
    let since = deadline.saturating_duration_since(origin).as_nanos();
    let grid = TIMER_GRID.as_nanos();
    let late = (grid - since % grid) % grid;
    deadline + Duration::from_nanos(late as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_rounded_up_to_the_timer_grid() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(origin + ms(301), origin, origin), origin + ms(310));
        assert_eq!(on_grid(origin + ms(310), origin, origin), origin + ms(310));
        assert_eq!(
            on_grid(
                origin + ms(32_000) + Duration::from_micros(1),
                origin,
                origin
            ),
            origin + ms(32_010)
        );
    }

    #[test]
    fn a_deadline_already_due_is_not_delayed() {
        let origin = Instant::now();
        let ms = Duration::from_millis;
        let now = origin + ms(505);
        assert_eq!(on_grid(origin + ms(503), origin, now), origin + ms(503));
    }
}
