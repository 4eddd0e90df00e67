//! SIP: message model, screening of raw input, transactions, digest auth and
//! the registrar. Nothing here decides where a call goes.

pub mod auth;
pub mod digest;
pub mod framing;
pub mod lockout;
pub mod message;
pub mod registrar;
pub mod screen;
pub(crate) mod text;
pub mod transaction;
pub mod via;

/// The transport a message came in on or goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The token used in Via headers and `transport=` URI parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
