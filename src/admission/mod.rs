//! Admission control: what keeps a flood or an abusive peer from taking the
//! daemon's memory, CPU or file descriptors. Sans-IO: the daemon feeds in
//! sources, counts and the time, and acts on the answers.
//!
//! - [`rate`]: per-source message rates (in the spirit of Kamailio's pike).
//! - [`connections`]: open stream connections in total and per source, and
//!   the deadlines of one connection (header completion, idle).
//! - [`fds`]: the file-descriptor budget that keeps RTP's sockets free of
//!   TCP and HTTP connections.

pub mod connections;
pub mod fds;
pub mod rate;
