//! Talking to a running zentrale through its HTTP API.

pub mod http;
