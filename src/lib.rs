//! zentrale: a SIP call router and ACD daemon for public-service hotlines
//! (the German authority number 115 and town-hall numbers).
//!
//! The crate is split by concern; see `DESIGN.md` in the shared folder and the
//! README for the picture. The protocol cores (`sip::transaction`, `call`,
//! `dialplan`) are sans-IO state machines driven by events and an explicit
//! clock; `daemon` owns the sockets and executes their actions.

pub mod acd;
pub mod admission;
pub mod api;
pub(crate) mod ascii;
pub mod call;
pub mod cdr;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod dialplan;
pub mod doorbell;
pub mod events;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(any(test, feature = "fuzzing"))]
pub mod harness;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod offer;
pub mod rng;
pub mod sip;
pub mod store;
pub mod tickets;
pub mod udp;
pub mod wallclock;
