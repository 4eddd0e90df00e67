//! SIP: message model, screening of raw input, transactions, digest auth and
//! the registrar. Nothing here decides where a call goes.

pub mod message;
