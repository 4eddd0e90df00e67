//! Errors of the media module that are not SDP negotiation errors.

use std::net::IpAddr;
use std::path::PathBuf;

/// What to tell the operator when a prompt file is unusable.
pub const WAV_HINT: &str = "need 8000 Hz mono 16-bit PCM, regenerate with sounds/make-sounds.sh";

/// Errors from loading prompts and allocating RTP ports.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a RIFF/WAVE file or is cut short.
    #[error("{}: {reason}; {WAV_HINT}", path.display())]
    NotWav { path: PathBuf, reason: String },
    /// A WAVE file in a format we do not play, e.g. "44100 Hz stereo 16-bit PCM".
    #[error("{}: {found}; {WAV_HINT}", path.display())]
    WavFormat { path: PathBuf, found: String },
    /// Several prompts failed; each error is on its own line.
    #[error("{}", join_lines(.0))]
    Several(Vec<MediaError>),
    /// The configured RTP port range holds no even port.
    #[error("RTP port range {first}-{last} holds no even port; set a range like 10000-20000")]
    PortRange { first: u16, last: u16 },
    /// Every even port in the range is in use or failed to bind.
    #[error(
        "no free RTP port in {first}-{last} on {ip}: all {in_use} in use by calls, the rest failed to bind{}; widen the range or lower the call limit",
        last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    )]
    PortsExhausted {
        ip: IpAddr,
        first: u16,
        last: u16,
        in_use: usize,
        last_error: Option<std::io::Error>,
    },
}

fn join_lines(errors: &[MediaError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
