//! The hotlines' `numbers:`: each entry's syntax, numbers used twice, and
//! numbers of different tenants (or patterns of different hotlines) that
//! would both match one call.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::Loader;
use crate::config::error::Pos;
use crate::dialplan::NumberPattern;

/// One entry of some hotline's `numbers:`.
pub(super) struct NumberUse {
    file: PathBuf,
    pos: Pos,
    tenant: String,
    hotline: String,
    written: String,
    pattern: NumberPattern,
}

impl NumberUse {
    fn place(&self) -> String {
        format!(
            "{}:{} (tenant `{}`, hotline `{}`)",
            self.file.display(),
            self.pos,
            self.tenant,
            self.hotline
        )
    }
}

/// Every number entry read so far, in file order.
#[derive(Default)]
pub(super) struct Numbers(Vec<NumberUse>);

impl Loader<'_> {
    /// Reads one entry of a hotline's `numbers:`; a number already used
    /// (after normalisation: `+49561115` is `0561115`) is an error here.
    pub(super) fn number(
        &mut self,
        file: &Path,
        n: &Spanned<String>,
        pos: Pos,
        (tenant, hotline): (&str, &str),
        numbers: &mut Numbers,
    ) {
        let pattern = match NumberPattern::parse(&n.value) {
            Ok(p) => p,
            Err(e) => {
                self.d.at(file, pos, e.message, e.hint);
                return;
            }
        };
        if let Some(first) = numbers.0.iter().find(|u| u.pattern == pattern) {
            let same = if first.written == n.value {
                String::new()
            } else {
                format!(" (written `{}` there)", first.written)
            };
            self.d.at(
                file,
                pos,
                format!(
                    "number `{}` is used twice: here (tenant `{tenant}`, hotline `{hotline}`) and at {}:{} (tenant `{}`, hotline `{}`){same}",
                    n.value,
                    first.file.display(),
                    first.pos,
                    first.tenant,
                    first.hotline
                ),
                "a number routes to one hotline only: remove it from one of the two",
            );
            return;
        }
        numbers.0.push(NumberUse {
            file: file.to_path_buf(),
            pos,
            tenant: tenant.to_string(),
            hotline: hotline.to_string(),
            written: n.value.clone(),
            pattern,
        });
    }

    /// Entries that would both match some call. Within one tenant an exact
    /// number beats a pattern beats a prefix, and a longer prefix beats a
    /// shorter one, so only two patterns of different hotlines are
    /// ambiguous there; across tenants every overlap is an error, since a
    /// number must belong to one body.
    pub(super) fn number_overlaps(&mut self, numbers: &Numbers) {
        let all = &numbers.0;
        for (j, b) in all.iter().enumerate() {
            let Some(a) = all[..j].iter().find(|a| {
                let ambiguous = if a.tenant != b.tenant {
                    true
                } else {
                    a.hotline != b.hotline
                        && matches!(
                            (&a.pattern, &b.pattern),
                            (NumberPattern::Pattern(_), NumberPattern::Pattern(_))
                        )
                };
                ambiguous && a.pattern.overlaps(&b.pattern)
            }) else {
                continue;
            };
            let (message, hint) = if a.tenant != b.tenant {
                (
                    format!(
                        "number `{}` (tenant `{}`, hotline `{}`) overlaps `{}` at {}: some calls \
                         would match both tenants",
                        b.written,
                        b.tenant,
                        b.hotline,
                        a.written,
                        a.place()
                    ),
                    "numbers of different tenants must not overlap: narrow the prefix or \
                     pattern, or list the numbers one by one",
                )
            } else {
                (
                    format!(
                        "pattern `{}` (hotline `{}`) matches some of the numbers of pattern `{}` \
                         at {}",
                        b.written,
                        b.hotline,
                        a.written,
                        a.place()
                    ),
                    "two patterns of different hotlines must not match the same number: narrow \
                     one of them, e.g. with a choice such as [0-4]",
                )
            };
            self.d.at(&b.file, b.pos, message, hint);
        }
    }
}
