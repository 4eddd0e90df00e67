//! Prompts: audio encoded to both G.711 laws once, at start-up, and shared
//! by every stream that plays them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::codec::{Codec, SAMPLE_RATE};
use super::error::MediaError;
use super::wav::load_wav;

/// A playable prompt. Cloning is cheap (an `Arc`); the bytes are never
/// re-encoded, so playback is a copy out of [`Prompt::encoded`].
///
/// ```
/// use zentrale::media::{Codec, Prompt};
/// let beep = Prompt::from_samples("beep", &[0i16; 800]);
/// assert_eq!(beep.encoded(Codec::Pcma).len(), 800);
/// assert_eq!(beep.duration().as_millis(), 100);
/// ```
#[derive(Clone)]
pub struct Prompt(Arc<Inner>);

/// Prompts are told apart by name: a library holds one prompt per name,
/// so what a call plays can be checked without comparing audio.
impl PartialEq for Prompt {
    fn eq(&self, other: &Prompt) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.name == other.0.name
    }
}

struct Inner {
    name: String,
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
}

impl Prompt {
    /// Encodes 8 kHz linear samples into both laws.
    pub fn from_samples(name: impl Into<String>, samples: &[i16]) -> Prompt {
        Prompt(Arc::new(Inner {
            name: name.into(),
            pcmu: samples.iter().map(|&s| Codec::Pcmu.encode(s)).collect(),
            pcma: samples.iter().map(|&s| Codec::Pcma.encode(s)).collect(),
        }))
    }

    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The prompt in `codec`, one byte per sample.
    #[inline]
    pub fn encoded(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.0.pcmu,
            Codec::Pcma => &self.0.pcma,
        }
    }

    /// Number of 8 kHz samples.
    pub fn samples(&self) -> usize {
        self.0.pcmu.len()
    }

    /// Playing time.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples() as u64 * 1_000_000 / u64::from(SAMPLE_RATE))
    }

    /// True if both handles share the same encoded audio.
    pub fn ptr_eq(&self, other: &Prompt) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.0.name)
            .field("samples", &self.samples())
            .finish()
    }
}

/// The prompts of a deployment, by name.
#[derive(Clone, Debug, Default)]
pub struct PromptLibrary {
    prompts: HashMap<String, Prompt>,
}

impl PromptLibrary {
    /// Loads `<dir>/<name>.wav` for every name (a name that already ends in
    /// `.wav` is used as the file name and stored without the extension).
    /// Every file is tried, and all failures are reported together, so one
    /// start-up shows everything that is wrong with the sounds directory.
    ///
    /// ```no_run
    /// use zentrale::media::PromptLibrary;
    /// let lib = PromptLibrary::load("sounds/de".as_ref(), ["begruessung", "warteschleife"])?;
    /// assert!(lib.get("begruessung").is_some());
    /// # Ok::<(), zentrale::media::MediaError>(())
    /// ```
    pub fn load(
        dir: &Path,
        names: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<PromptLibrary, MediaError> {
        let mut lib = PromptLibrary::default();
        let mut errors = Vec::new();
        for name in names {
            let name = name.as_ref();
            let key = name.strip_suffix(".wav").unwrap_or(name);
            if lib.prompts.contains_key(key) {
                continue;
            }
            match load_wav(&dir.join(format!("{key}.wav"))) {
                Ok(samples) => lib.insert(Prompt::from_samples(key, &samples)),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(lib),
            1 => Err(errors.remove(0)),
            _ => Err(MediaError::Several(errors)),
        }
    }

    /// Builds a library from in-memory samples (tests, generated tones).
    pub fn from_samples<N, S>(prompts: impl IntoIterator<Item = (N, S)>) -> PromptLibrary
    where
        N: Into<String>,
        S: AsRef<[i16]>,
    {
        let mut lib = PromptLibrary::default();
        for (name, samples) in prompts {
            lib.insert(Prompt::from_samples(name, samples.as_ref()));
        }
        lib
    }

    /// Adds or replaces a prompt under its own name.
    pub fn insert(&mut self, prompt: Prompt) {
        self.prompts.insert(prompt.name().to_owned(), prompt);
    }

    /// The prompt called `name`.
    pub fn get(&self, name: &str) -> Option<Prompt> {
        self.prompts.get(name).cloned()
    }

    /// Number of prompts.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// True if no prompt is loaded.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wav::{pcm_bytes, wav_bytes};

    #[test]
    fn encodes_both_laws_once() {
        let p = Prompt::from_samples("t", &[0, 1000, -1000]);
        assert_eq!(
            p.encoded(Codec::Pcmu),
            [0xFF, Codec::Pcmu.encode(1000), Codec::Pcmu.encode(-1000)]
        );
        assert_eq!(p.encoded(Codec::Pcma)[0], 0xD5);
        assert!(p.ptr_eq(&p.clone()));
    }

    #[test]
    fn load_reports_every_bad_file() {
        let dir = std::env::temp_dir().join(format!("zentrale-prompts-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("hallo.wav"),
            wav_bytes(8000, 1, 16, 1, &[], &pcm_bytes(&[1, 2])),
        )
        .unwrap();
        std::fs::write(dir.join("laut.wav"), wav_bytes(16000, 1, 16, 1, &[], &[])).unwrap();

        let lib = PromptLibrary::load(&dir, ["hallo", "hallo.wav"]).unwrap();
        assert_eq!(lib.len(), 1);
        assert_eq!(lib.get("hallo").unwrap().samples(), 2);
        assert!(lib.get("nope").is_none());

        let err = PromptLibrary::load(&dir, ["hallo", "laut", "fehlt"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("laut.wav: 16000 Hz mono 16-bit PCM"), "{err}");
        assert!(err.contains("fehlt.wav"), "{err}");
        assert_eq!(err.lines().count(), 2, "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
