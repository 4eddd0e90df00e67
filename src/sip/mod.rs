//! SIP: message model, screening of raw input, transactions, digest auth and
//! the registrar. Nothing here decides where a call goes.

pub mod auth;
pub mod digest;
pub mod framing;
pub mod headers;
pub mod lockout;
pub mod message;
pub mod registrar;
pub mod screen;
pub mod transaction;
pub mod uri;
pub mod via;

/// The transport a message came in on or goes out on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2): TCP framing inside a TLS session.
    Tls,
}

impl Transport {
    /// The token used in Via headers and `transport=` URI parameters.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// True for the stream transports (TCP, TLS): reliable, Content-Length
    /// framed, one connection per peer.
    pub fn is_stream(self) -> bool {
        self != Transport::Udp
    }

    /// The `;transport=` URI parameter zentrale writes in its Contact for
    /// this transport (empty for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// The transport a SIP URI asks for: `sips:` or `transport=tls` is TLS,
    /// `transport=tcp` TCP; `None` when the URI says nothing.
    pub fn of_uri(uri: &str) -> Option<Transport> {
        let lower = uri.trim_start_matches('<').to_ascii_lowercase();
        if lower.starts_with("sips:") || lower.contains("transport=tls") {
            Some(Transport::Tls)
        } else if lower.contains("transport=tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
