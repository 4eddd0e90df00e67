//! What a stream plays: a playlist turned into 20 ms frames of pre-encoded
//! G.711, copied straight into the packet buffer.

use super::Playlist;
use crate::media::codec::Codec;
use crate::media::prompt::Prompt;

/// Playback position in a playlist.
pub(super) struct Player {
    items: std::vec::IntoIter<Prompt>,
    then_loop: Option<Prompt>,
    current: Option<Prompt>,
    pos: usize,
    /// True while `current` comes from `items` (for the "done" event).
    in_items: bool,
}

/// What one frame did to the playlist.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    Playing,
    /// The last of the playlist's items has just been written.
    ItemsDone,
}

impl Player {
    pub(super) fn new(playlist: Playlist) -> Player {
        // Empty prompts would make `fill` spin; drop them here once.
        let items: Vec<Prompt> = playlist
            .items
            .into_iter()
            .filter(|p| p.samples() > 0)
            .collect();
        let then_loop = playlist.then_loop.filter(|p| p.samples() > 0);
        let mut items = items.into_iter();
        let current = items.next();
        let in_items = current.is_some();
        Player {
            current: current.or_else(|| then_loop.clone()),
            items,
            then_loop,
            pos: 0,
            in_items,
        }
    }

    pub(super) fn silence() -> Player {
        Player::new(Playlist::default())
    }

    /// Fills `out` with the next frame. A prompt's last partial frame is
    /// padded with silence; the next prompt starts on a fresh frame.
    #[inline]
    pub(super) fn fill(&mut self, codec: Codec, out: &mut [u8]) -> Progress {
        let Some(prompt) = &self.current else {
            out.fill(codec.silence());
            return Progress::Playing;
        };
        let bytes = prompt.encoded(codec);
        let n = out.len().min(bytes.len() - self.pos);
        out[..n].copy_from_slice(&bytes[self.pos..self.pos + n]);
        out[n..].fill(codec.silence());
        self.pos += n;
        if self.pos < bytes.len() {
            return Progress::Playing;
        }
        self.pos = 0;
        let was_item = self.in_items;
        self.current = self.items.next();
        self.in_items = self.current.is_some();
        if !self.in_items {
            // An Arc clone per loop round, not per packet.
            self.current = self.then_loop.clone();
        }
        if was_item && !self.in_items {
            Progress::ItemsDone
        } else {
            Progress::Playing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(player: &mut Player, n: usize) -> Vec<(Vec<u8>, Progress)> {
        (0..n)
            .map(|_| {
                let mut f = vec![0u8; 4];
                let p = player.fill(Codec::Pcmu, &mut f);
                (f, p)
            })
            .collect()
    }

    #[test]
    fn items_then_loop_then_padding() {
        // Four-sample frames keep the expectations readable.
        let a = Prompt::from_samples("a", &[1000; 6]);
        let l = Prompt::from_samples("l", &[-1000; 4]);
        let e = Prompt::from_samples("empty", &[]);
        let mut p = Player::new(Playlist {
            items: vec![a.clone(), e],
            then_loop: Some(l.clone()),
        });
        let x = a.encoded(Codec::Pcmu)[0];
        let y = l.encoded(Codec::Pcmu)[0];
        let got = frames(&mut p, 4);
        assert_eq!(got[0], (vec![x; 4], Progress::Playing));
        assert_eq!(got[1], (vec![x, x, 0xFF, 0xFF], Progress::ItemsDone));
        assert_eq!(got[2], (vec![y; 4], Progress::Playing));
        assert_eq!(got[3], (vec![y; 4], Progress::Playing));

        let mut s = Player::silence();
        assert_eq!(frames(&mut s, 1)[0], (vec![0xFF; 4], Progress::Playing));
        let mut once = Player::new(Playlist::once(a));
        let got = frames(&mut once, 3);
        assert_eq!(got[1].1, Progress::ItemsDone);
        assert_eq!(got[2], (vec![0xFF; 4], Progress::Playing));
    }
}
