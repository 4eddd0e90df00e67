//! Loading prompt files: RIFF/WAVE, 16-bit PCM, mono, 8000 Hz.
//!
//! Anything else is refused with a message naming the file, what was found
//! and how to fix it, because resampling at start-up would hide a broken
//! sounds directory until a caller hears it.

use std::path::Path;
use std::time::Duration;

use super::error::MediaError;

const FORMAT_PCM: u16 = 1;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Reads a WAVE file and returns its samples.
///
/// Extra chunks (`LIST`, `fact`, ...) before or after `data` are skipped. A
/// `data` chunk whose size runs past the end of the file (written by a
/// streaming tool) is read up to the end.
///
/// ```no_run
/// let samples = zentrale::media::wav::load_wav("sounds/de/begruessung.wav".as_ref())?;
/// # Ok::<(), zentrale::media::MediaError>(())
/// ```
pub fn load_wav(path: &Path) -> Result<Vec<i16>, MediaError> {
    let bytes = std::fs::read(path).map_err(|source| MediaError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_wav(&bytes).map_err(|e| match e {
        WavProblem::NotWav(reason) => MediaError::NotWav {
            path: path.to_owned(),
            reason,
        },
        WavProblem::Format(found) => MediaError::WavFormat {
            path: path.to_owned(),
            found,
        },
    })
}

enum WavProblem {
    NotWav(String),
    Format(String),
}

struct Fmt {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
}

/// The shortest prompt accepted by [`check_prompt`]: anything shorter is a
/// cut or empty file, not a greeting.
pub const MIN_PROMPT: Duration = Duration::from_millis(200);

/// Checks a prompt file as the config check does (`zentrale check`, start,
/// reload): 8 kHz mono 16-bit PCM, at least [`MIN_PROMPT`] long, and not
/// cut short (a `data` chunk that says it holds more than the file has).
/// `Ok`: its playing time; `Err`: what is wrong, without the path.
///
/// ```no_run
/// match zentrale::media::wav::check_prompt("sounds/greeting-kassel.wav".as_ref()) {
///     Ok(length) => println!("{} ms", length.as_millis()),
///     Err(reason) => eprintln!("greeting-kassel.wav: {reason}"),
/// }
/// ```
pub fn check_prompt(path: &Path) -> Result<Duration, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let data = locate_data(&bytes).map_err(|e| match e {
        WavProblem::NotWav(reason) => reason,
        WavProblem::Format(found) => format!("it is {found}"),
    })?;
    let ms = |octets: usize| octets as u64 / 2 * 1000 / 8000;
    // Streaming writers put 0 or a huge placeholder in the size they could
    // not know; only a plausible size that the file does not hold means
    // the file was cut.
    if data.declared > data.present.len() && data.declared != 0 && data.declared < 0x7FFF_0000 {
        return Err(format!(
            "it is cut short: its data chunk says {} ms, the file holds {} ms",
            ms(data.declared),
            ms(data.present.len())
        ));
    }
    let length = Duration::from_millis(ms(data.present.len()));
    if length < MIN_PROMPT {
        return Err(format!(
            "it holds {} ms of audio, less than the {} ms a prompt needs",
            length.as_millis(),
            MIN_PROMPT.as_millis()
        ));
    }
    Ok(length)
}

/// The `data` chunk of a usable WAVE file: what its header says it holds
/// and what the file holds of it.
struct Data<'a> {
    declared: usize,
    present: &'a [u8],
}

fn parse_wav(bytes: &[u8]) -> Result<Vec<i16>, WavProblem> {
    Ok(locate_data(bytes)?
        .present
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect())
}

fn locate_data(bytes: &[u8]) -> Result<Data<'_>, WavProblem> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavProblem::NotWav("not a RIFF/WAVE file".into()));
    }
    let mut fmt: Option<Fmt> = None;
    let mut rest = &bytes[12..];
    while rest.len() >= 8 {
        let id = &rest[0..4];
        let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let body = &rest[8..];
        let len = size.min(body.len());
        match id {
            b"fmt " => fmt = Some(parse_fmt(&body[..len])?),
            b"data" => {
                let fmt = fmt.ok_or_else(|| {
                    WavProblem::NotWav("\"data\" chunk before \"fmt \" chunk".into())
                })?;
                check_format(&fmt)?;
                return Ok(Data {
                    declared: size,
                    present: &body[..len],
                });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        let skip = size.saturating_add(size & 1);
        rest = body.get(skip..).unwrap_or(&[]);
    }
    match fmt {
        None => Err(WavProblem::NotWav("no \"fmt \" chunk".into())),
        Some(fmt) => {
            check_format(&fmt)?;
            Err(WavProblem::NotWav("no \"data\" chunk".into()))
        }
    }
}

fn parse_fmt(b: &[u8]) -> Result<Fmt, WavProblem> {
    if b.len() < 16 {
        return Err(WavProblem::NotWav("\"fmt \" chunk too short".into()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let mut tag = u16_at(0);
    // WAVE_FORMAT_EXTENSIBLE carries the real format in the first two bytes
    // of its sub-format GUID (offset 24); sox writes it for some inputs.
    if tag == FORMAT_EXTENSIBLE && b.len() >= 26 {
        tag = u16_at(24);
    }
    Ok(Fmt {
        tag,
        channels: u16_at(2),
        rate: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        bits: u16_at(14),
    })
}

fn check_format(f: &Fmt) -> Result<(), WavProblem> {
    if f.tag == FORMAT_PCM && f.channels == 1 && f.rate == 8000 && f.bits == 16 {
        return Ok(());
    }
    let channels = match f.channels {
        1 => "mono".to_string(),
        2 => "stereo".to_string(),
        n => format!("{n} channels"),
    };
    let encoding = match f.tag {
        FORMAT_PCM => format!("{}-bit PCM", f.bits),
        3 => format!("{}-bit float", f.bits),
        6 => "A-law".to_string(),
        7 => "µ-law".to_string(),
        t => format!("format tag {t:#06x}"),
    };
    Err(WavProblem::Format(format!(
        "{} Hz {channels} {encoding}",
        f.rate
    )))
}

/// Builds a WAVE file in memory (tests and tools).
#[cfg(test)]
pub(crate) fn wav_bytes(
    rate: u32,
    channels: u16,
    bits: u16,
    tag: u16,
    extra: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    let align = channels * bits / 8;
    out.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(extra);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

#[cfg(test)]
pub(crate) fn pcm_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zentrale-wav-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn loads_pcm_with_list_chunk_before_data() {
        let dir = temp_dir("ok");
        let samples = [0i16, 1, -1, 1000, -32768, 32767];
        // An odd-sized LIST chunk checks the pad byte handling.
        let mut list = b"LIST".to_vec();
        list.extend_from_slice(&5u32.to_le_bytes());
        list.extend_from_slice(b"INFOx\0");
        let path = dir.join("ok.wav");
        std::fs::write(
            &path,
            wav_bytes(8000, 1, 16, 1, &list, &pcm_bytes(&samples)),
        )
        .unwrap();
        assert_eq!(load_wav(&path).unwrap(), samples);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_wrong_formats_with_a_useful_message() {
        let dir = temp_dir("bad");
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "cd.wav",
                wav_bytes(44100, 2, 16, 1, &[], &[0; 8]),
                "44100 Hz stereo 16-bit PCM",
            ),
            (
                "u8.wav",
                wav_bytes(8000, 1, 8, 1, &[], &[0; 8]),
                "8000 Hz mono 8-bit PCM",
            ),
            (
                "alaw.wav",
                wav_bytes(8000, 1, 8, 6, &[], &[0; 8]),
                "8000 Hz mono A-law",
            ),
            (
                "text.wav",
                b"hello, not a wav file".to_vec(),
                "not a RIFF/WAVE file",
            ),
        ];
        for (name, bytes, found) in cases {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            let msg = load_wav(&path).unwrap_err().to_string();
            assert!(msg.starts_with(&path.display().to_string()), "{msg}");
            assert!(msg.contains(found), "{msg}");
            assert!(msg.contains("need 8000 Hz mono 16-bit PCM"), "{msg}");
            assert!(msg.contains("sounds/make-sounds.sh"), "{msg}");
        }
        let missing = load_wav(&dir.join("missing.wav")).unwrap_err();
        assert!(matches!(missing, MediaError::Io { .. }));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn prompt_check_wants_200_ms_whole_and_the_right_format() {
        let dir = temp_dir("check");
        let write = |name: &str, bytes: Vec<u8>| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let ok = write(
            "ok.wav",
            wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[0; 1600])),
        );
        assert_eq!(check_prompt(&ok), Ok(Duration::from_millis(200)));
        let short = write(
            "short.wav",
            wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[0; 1599])),
        );
        let err = check_prompt(&short).unwrap_err();
        assert!(err.contains("199 ms") && err.contains("200 ms"), "{err}");
        // 2 s announced, 0.5 s there: cut by a copy that did not finish.
        let mut cut = wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[0; 16000]));
        cut.truncate(44 + 8000);
        let cut = write("cut.wav", cut);
        let err = check_prompt(&cut).unwrap_err();
        assert!(
            err.contains("cut short") && err.contains("2000 ms") && err.contains("500 ms"),
            "{err}"
        );
        // A streaming writer's placeholder size is not a cut.
        let mut streamed = wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[0; 4000]));
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let streamed = write("streamed.wav", streamed);
        assert_eq!(check_prompt(&streamed), Ok(Duration::from_millis(500)));
        let stereo = write("stereo.wav", wav_bytes(8000, 2, 16, 1, &[], &[0; 6400]));
        assert!(
            check_prompt(&stereo)
                .unwrap_err()
                .contains("8000 Hz stereo 16-bit PCM")
        );
        let header_only = write("header.wav", b"RIFF\0\0\0\0WAVEfmt ".to_vec());
        assert!(check_prompt(&header_only).is_err());
        assert!(
            check_prompt(&dir.join("missing.wav"))
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn truncated_data_chunk_is_read_to_the_end() {
        let mut bytes = wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[5, 6, 7]));
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(parse_wav(&bytes), Ok(s) if s == [5, 6]));
        assert!(parse_wav(b"RIFF\0\0\0\0WAVE").is_err());
    }
}
