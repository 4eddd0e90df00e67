//! Config errors that point at a place in a file and say how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

/// One problem in the configuration, located in a file.
///
/// Displays as `{file}:{line}:{column}: {message}; {hint}`, the form editors
/// and terminals turn into a jump target:
///
/// ```text
/// dialplans/kassel.yaml:5:16: bad number `0561-115`; write only digits ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in (as given or as resolved from the main file).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters, not bytes).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to change.
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}; {}",
            self.file.display(),
            self.line,
            self.column,
            self.message,
            self.hint
        )
    }
}

impl std::error::Error for ConfigError {}

/// All problems found while loading a configuration, in file order.
///
/// Displays one error per line, so the binary can print it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of a file: used only when nothing closer is known (an empty
    /// file, an unreadable file, a key missing at the top level).
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The position of a saphyr location, or `None` if it is unknown (values
    /// filled in by serde defaults have no location).
    pub fn of(loc: Location) -> Option<Pos> {
        (loc.line() > 0).then(|| Pos {
            line: usize::try_from(loc.line()).unwrap_or(usize::MAX),
            column: usize::try_from(loc.column()).unwrap_or(1).max(1),
        })
    }

    /// Where a spanned value is referenced, or `fallback` (the nearest enclosing
    /// key) when the value came from a default.
    pub fn or<T>(s: &Spanned<T>, fallback: Pos) -> Pos {
        Pos::of(s.referenced).unwrap_or(fallback)
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Collects errors while loading; the loader keeps going after each one.
#[derive(Debug, Default)]
pub(crate) struct Diag {
    pub errors: Vec<ConfigError>,
}

impl Diag {
    pub fn at(
        &mut self,
        file: &Path,
        pos: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub fn yaml(&mut self, file: &Path, err: &serde_saphyr::Error, fallback: Pos) {
        self.errors.push(from_yaml(file, err, fallback));
    }
}

/// Translates a serde-saphyr error into our message + hint form.
pub(crate) fn from_yaml(file: &Path, err: &serde_saphyr::Error, fallback: Pos) -> ConfigError {
    use serde_saphyr::Error as E;
    let err = err.without_snippet();
    let pos = err.location().and_then(Pos::of).unwrap_or(fallback);
    let (message, hint) = match err {
        E::SerdeUnknownField {
            field, expected, ..
        } => (
            format!("unknown key `{field}`"),
            unknown_key_hint(field, expected),
        ),
        E::SerdeMissingField { field, .. } => (
            format!("missing key `{field}`"),
            format!("add `{}`", example_for(field)),
        ),
        E::InvalidScalar { ty, .. } => {
            let (what, example) = scalar_type(ty);
            (format!("this is not {what}"), format!("write {example}"))
        }
        E::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | E::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => (
            format!("expected {expected}, found {unexpected}"),
            shape_hint(expected),
        ),
        E::DuplicateMappingKey { key, .. } => (
            match key {
                Some(k) => format!("key `{k}` appears twice in this mapping"),
                None => "a key appears twice in this mapping".to_string(),
            },
            "remove one of them; YAML mappings take each key once".to_string(),
        ),
        E::NullIntoString { .. } => (
            "the value is empty".to_string(),
            "write a value after the colon (quote it: \"\" for empty text)".to_string(),
        ),
        E::Eof { .. } => (
            "the file is empty".to_string(),
            "write the configuration as a YAML mapping; see zentrale.yaml in the source tree"
                .to_string(),
        ),
        other => {
            let msg = strip_location(&other.to_string(), pos);
            let hint = if msg.starts_with("expected string") {
                "write a single text value here, not a list or mapping".to_string()
            } else if msg.starts_with("expected mapping") {
                "write `key: value` lines here, indented under their parent key".to_string()
            } else if msg.starts_with("expected sequence") {
                "write a list here: `[a, b]` or one `- item` per line".to_string()
            } else {
                "fix the YAML syntax: indent with spaces only, close brackets and quotes, \
                 and quote values that contain `: ` or start with [ { * & ! | > @"
                    .to_string()
            };
            (msg, hint)
        }
    };
    ConfigError {
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        message,
        hint,
    }
}

/// saphyr appends " at line L, column C" to its messages; we print the
/// position in front instead, so drop it.
fn strip_location(msg: &str, pos: Pos) -> String {
    let suffix = format!(" at line {}, column {}", pos.line, pos.column);
    msg.strip_suffix(&suffix).unwrap_or(msg).to_string()
}

fn unknown_key_hint(field: &str, expected: &[&str]) -> String {
    if expected.is_empty() {
        return "remove it; this mapping takes no keys".to_string();
    }
    let allowed = expected.join(", ");
    match closest(field, expected) {
        Some(c) => format!("did you mean `{c}`? allowed keys here: {allowed}"),
        None => format!("remove it or use one of the allowed keys here: {allowed}"),
    }
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&word, c), *c))
        // Loose enough for a dropped or doubled letter, strict enough that
        // short names do not "match" anything.
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1) && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A human description and an example for the scalar types saphyr names.
fn scalar_type(ty: &str) -> (String, String) {
    let int = |max: &str| {
        (
            "a whole number".to_string(),
            format!("a whole number from 0 to {max}, without quotes or units"),
        )
    };
    match ty {
        "u8" => int("255"),
        "u16" => int("65535"),
        "u32" => int("4294967295"),
        "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => (
            "a whole number".to_string(),
            "a whole number without quotes or units".to_string(),
        ),
        "bool" => ("true or false".to_string(), "true or false".to_string()),
        other => (format!("a valid {other}"), format!("a valid {other}")),
    }
}

fn shape_hint(expected: &str) -> String {
    if expected.contains("sequence") {
        "write a list here: `[a, b]` or one `- item` per line".to_string()
    } else if expected.contains("struct") || expected.contains("map") {
        "write `key: value` lines here, indented under their parent key".to_string()
    } else if expected.contains("string") {
        "write a single text value here".to_string()
    } else {
        format!("write {expected} here")
    }
}

/// Example lines for keys that can be missing, so the hint can be pasted.
fn example_for(field: &str) -> String {
    let ex = match field {
        "tenants" => {
            "tenants:\n  - id: kassel\n    name: Stadt Kassel\n    dialplan: dialplans/kassel.yaml"
        }
        "hotlines" => {
            "hotlines:\n  - id: \"115\"\n    name: ...\n    numbers: [\"115\"]\n    greeting: greeting-kassel"
        }
        "id" => "id: kassel",
        "name" => "name: \"...\"",
        "numbers" => "numbers: [\"115\"]",
        "greeting" => "greeting: <sound name without .wav>",
        "dialplan" => "dialplan: dialplans/<tenant>.yaml",
        "extension" => "extension: \"1001\"",
        "password" => "password: <secret>",
        "tenant" => "tenant: <tenant id>",
        "sources" => "sources: [192.0.2.0/24]",
        "username" => "username: <user>",
        _ => return format!("{field}: ..."),
    };
    ex.to_string()
}
