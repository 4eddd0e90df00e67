//! The `acd:` section: feature codes, pause reasons and codes, and the
//! fixed ACD prompts every deployment needs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::{Loader, Sounds, valid_id};
use crate::config::acd::numbered;
use crate::config::error::{Pos, closest};
use crate::config::raw::RawAcd;
use crate::config::{AcdConfig, FeatureCodes, NO_ANSWER_REASON, acd_prompts};

impl Loader<'_> {
    pub(super) fn acd(&mut self, raw: Spanned<RawAcd>, key: Pos) -> AcdConfig {
        let file = self.path;
        let apos = Pos::or(&raw, key);
        let raw = raw.value;
        let defaults = AcdConfig::default();

        let (cpos, codes) = raw
            .feature_codes
            .map(|c| (Pos::or(&c, apos), c.value))
            .unwrap_or_else(|| (apos, Default::default()));
        // A default code has no place of its own; its errors point at `feature_codes:`.
        let code = |v: Option<Spanned<String>>, default: &str| match v {
            Some(v) => (Pos::or(&v, cpos), v.value),
            None => (cpos, default.to_string()),
        };
        let d = &defaults.feature_codes;
        let entries = [
            ("login", code(codes.login, &d.login)),
            ("logout", code(codes.logout, &d.logout)),
            ("pause", code(codes.pause, &d.pause)),
            ("unpause", code(codes.unpause, &d.unpause)),
        ];
        // Every dialled string must mean one thing: the four codes, and the
        // pause code followed by each pause-code key.
        let mut dialled: HashMap<String, (String, Pos)> = HashMap::new();
        for (name, (pos, value)) in &entries {
            if !valid_feature_code(value) {
                self.d.at(
                    file,
                    *pos,
                    format!("feature code `{name}: {value}` is not usable"),
                    "write `*` or `#` followed by 1 to 8 digits, quoted: \"*40\" \
                     (an unquoted * starts a YAML alias, an unquoted # a comment)",
                );
                continue;
            }
            if let Some((other, _)) = dialled.get(value) {
                self.d.at(
                    file,
                    *pos,
                    format!("feature code {value} is used for both `{other}` and `{name}`"),
                    "give each feature its own code, e.g. login \"*40\", logout \"*41\", \
                     pause \"*42\", unpause \"*43\"",
                );
                continue;
            }
            dialled.insert(value.clone(), (name.to_string(), *pos));
        }
        let [login, logout, pause, unpause] = entries.map(|(_, (_, v))| v);

        let pause_reasons = match raw.pause_reasons {
            None => defaults.pause_reasons.clone(),
            Some(list) => self.pause_reasons(list, apos),
        };
        let pause_codes = match raw.pause_codes {
            None => numbered(&pause_reasons),
            Some(map) => {
                let mpos = Pos::or(&map, apos);
                let mut out = BTreeMap::new();
                for (digits, reason) in map.value {
                    // Keys have no span of their own; the reason is on the same line.
                    let pos = Pos::or(&reason, mpos);
                    if digits.is_empty()
                        || digits.len() > 3
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        self.d.at(
                            file,
                            pos,
                            format!("pause code `{digits}` is not 1 to 3 digits"),
                            format!(
                                "write the digits dialled after the pause code, quoted: \
                                 \"1\": break means {pause}1 pauses for a break"
                            ),
                        );
                        continue;
                    }
                    if !pause_reasons.contains(&reason.value) {
                        let hint = if reason.value == NO_ANSWER_REASON {
                            format!(
                                "`{NO_ANSWER_REASON}` is set by zentrale after max_missed_offers, \
                                 agents cannot choose it; remove this code"
                            )
                        } else {
                            let known: Vec<&str> =
                                pause_reasons.iter().map(String::as_str).collect();
                            match closest(&reason.value, &known) {
                                Some(c) => format!(
                                    "did you mean `{c}`? pause reasons are: {}",
                                    known.join(", ")
                                ),
                                None => format!(
                                    "use one of the pause reasons ({}) or add it to `pause_reasons`",
                                    known.join(", ")
                                ),
                            }
                        };
                        self.d.at(
                            file,
                            pos,
                            format!(
                                "pause code {digits}: `{}` is not a pause reason",
                                reason.value
                            ),
                            hint,
                        );
                    }
                    let full = format!("{pause}{digits}");
                    if let Some((other, _)) = dialled.get(&full) {
                        self.d.at(
                            file,
                            pos,
                            format!("pause code {digits} makes {full}, which is already `{other}`"),
                            "choose other digits or another feature code",
                        );
                    } else {
                        dialled.insert(full, (format!("pause {}", reason.value), pos));
                    }
                    out.insert(digits, reason.value);
                }
                out
            }
        };

        AcdConfig {
            login_on_register: raw
                .login_on_register
                .map_or(defaults.login_on_register, |v| v.value),
            max_missed_offers: match raw.max_missed_offers {
                Some(m) if m.value == 0 => None,
                Some(m) => Some(m.value),
                None => defaults.max_missed_offers,
            },
            wrap_up: raw
                .wrap_up_secs
                .map_or(defaults.wrap_up, |w| Duration::from_secs(w.value)),
            feature_codes: FeatureCodes {
                login,
                logout,
                pause,
                unpause,
            },
            pause_reasons,
            pause_codes,
        }
    }

    fn pause_reasons(&mut self, list: Spanned<Vec<Spanned<String>>>, apos: Pos) -> Vec<String> {
        let file = self.path;
        let lpos = Pos::or(&list, apos);
        if list.value.is_empty() {
            self.d.at(
                file,
                lpos,
                "pause_reasons is empty, so agents could not pause",
                "list at least one reason, e.g. [break, back-office, training]",
            );
        }
        let mut out: Vec<String> = Vec::new();
        for r in list.value {
            let pos = Pos::or(&r, lpos);
            if r.value == NO_ANSWER_REASON {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{NO_ANSWER_REASON}` is built in"),
                    "remove it: zentrale sets it itself after max_missed_offers unanswered offers",
                );
            } else if !valid_id(&r.value) {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{}` is not usable", r.value),
                    "use letters, digits, `-` and `_`, e.g. back-office",
                );
            } else if out.contains(&r.value) {
                self.d.at(
                    file,
                    pos,
                    format!("pause reason `{}` is listed twice", r.value),
                    "remove the second entry",
                );
            } else {
                out.push(r.value);
            }
        }
        out
    }

    /// The fixed ACD prompts must all be there; one error lists those missing.
    pub(super) fn acd_prompts(&mut self, sounds: &Sounds, pos: Pos) {
        let (present, missing): (Vec<String>, Vec<String>) = acd_prompts()
            .into_iter()
            .partition(|n| sounds.names.contains(n));
        for name in present {
            if let Err(reason) = sounds.check(&name) {
                self.d.at(
                    self.path,
                    pos,
                    format!(
                        "ACD prompt `{name}` cannot be played: {} {reason}",
                        sounds.dir.join(format!("{name}.wav")).display()
                    ),
                    super::PROMPT_HINT,
                );
            }
        }
        if missing.is_empty() {
            return;
        }
        let shown = if missing.len() > 8 {
            format!("{} and {} more", missing[..8].join(", "), missing.len() - 8)
        } else {
            missing.join(", ")
        };
        let mut hint = "the ACD plays them to callers and agents; run sounds/make-sounds.sh \
                        (it makes every prompt of sounds/prompts.tsv) or copy them from \
                        zentrale's sounds/ directory"
            .to_string();
        if !sounds.dir_exists {
            hint.push_str(&format!(
                "; the sounds directory {} does not exist (set `sounds:` in {})",
                sounds.dir.display(),
                self.path.display()
            ));
        }
        self.d.at(
            self.path,
            pos,
            format!(
                "{} ACD prompt{} missing from {}: {shown}",
                missing.len(),
                if missing.len() == 1 { " is" } else { "s are" },
                sounds.dir.display()
            ),
            hint,
        );
    }
}

/// `*` or `#` followed by 1 to 8 digits.
fn valid_feature_code(s: &str) -> bool {
    let digits = s.strip_prefix(['*', '#']).unwrap_or("");
    (1..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}
