//! Called numbers: normalisation of national and international forms, and
//! the three ways a hotline names its numbers (exact, prefix, pattern).

use std::fmt;

use super::SyntaxError;

/// Brings German numbers into national form: `+49 561 115`, `0049561115`
/// and `49561115` (international without the plus, 7 digits or more) all
/// become `0561115`; other countries get `00` instead of `+`. Visual
/// separators and a `;phone-context`/parameters are dropped. Short codes
/// (`115`) stay as they are.
///
/// ```
/// # use zentrale::dialplan::normalise;
/// assert_eq!(normalise("+49561115"), "0561115");
/// assert_eq!(normalise("0049561115"), "0561115");
/// assert_eq!(normalise("49561115"), "0561115");
/// assert_eq!(normalise("+43 1 234567"), "00431234567");
/// assert_eq!(normalise("115"), "115");
/// ```
pub fn normalise(number: &str) -> String {
    let number = number.split(';').next().unwrap_or("");
    let kept: String = number
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
        .collect();
    normalise_prefix(&kept, kept.len())
}

/// The normalisation rules on the leading characters of `s`; `len` is the
/// length of the whole number (for patterns, the number of positions).
fn normalise_prefix(s: &str, len: usize) -> String {
    if let Some(rest) = s.strip_prefix("+49") {
        return format!("0{rest}");
    }
    if let Some(rest) = s.strip_prefix('+') {
        return format!("00{rest}");
    }
    if let Some(rest) = s.strip_prefix("0049") {
        return format!("0{rest}");
    }
    // German national numbers start with 0, so a long number starting with
    // 49 is the international form without its plus.
    if len >= 7
        && let Some(rest) = s.strip_prefix("49")
    {
        return format!("0{rest}");
    }
    s.to_string()
}

/// A set of digits one position of a pattern accepts (bit n: digit n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Digits(u16);

impl Digits {
    const ANY: Digits = Digits(0x3ff);

    fn one(d: u8) -> Digits {
        Digits(1 << (d - b'0'))
    }

    fn contains(self, c: u8) -> bool {
        c.is_ascii_digit() && self.0 & (1 << (c - b'0')) != 0
    }

    fn single(self) -> Option<u8> {
        (self.0.count_ones() == 1).then(|| b'0' + self.0.trailing_zeros() as u8)
    }
}

/// How a hotline's number matches a called number.
///
/// Written in a dialplan's `numbers:` as
/// - `"0561115"` or `"+49561115"`: exactly this number;
/// - `"0561*"` or `"prefix:0561"`: every number starting with it;
/// - `"04106611X"`: a pattern of the same length, where `X` is any digit,
///   `Z` 1-9, `N` 2-9 and `[1-5]` / `[135]` a choice.
///
/// Numbers are compared in national form (see [`normalise`]). When several
/// hotlines match, an exact number beats a pattern, and a pattern beats a
/// prefix; of two prefixes the longer wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NumberPattern {
    Exact(String),
    Prefix(String),
    Pattern(Vec<PatternDigit>),
}

/// One position of a [`NumberPattern::Pattern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PatternDigit(Digits);

/// Which kind of rule matched, for logs and call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    Exact,
    Pattern,
    Prefix,
}

const FORMS: &str = "write only digits, optionally with a leading `+`, 2 to 20 digits, no spaces \
                     or dashes, e.g. \"0561115\" or \"+49561115\"; for many numbers write a \
                     prefix (\"0561*\") or a pattern (\"04106611X\": X any digit, Z 1-9, N 2-9, \
                     [1-5] a choice)";

fn bad(text: &str, why: &str) -> SyntaxError {
    SyntaxError {
        message: format!("bad number `{text}`{why}"),
        hint: FORMS.to_string(),
    }
}

impl NumberPattern {
    /// Reads one entry of `numbers:`.
    ///
    /// ```
    /// use zentrale::dialplan::NumberPattern;
    /// let p: NumberPattern = NumberPattern::parse("+494106611X").unwrap();
    /// assert!(p.matches("041066113"));
    /// assert!(!p.matches("0410661130"));
    /// assert!(NumberPattern::parse("prefix:0561").unwrap().matches("05617870"));
    /// assert!(NumberPattern::parse("0561-115").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<NumberPattern, SyntaxError> {
        let t = text.trim();
        if let Some(body) = t.strip_prefix("prefix:").or_else(|| t.strip_suffix('*')) {
            let body = body.trim();
            let digits = body.strip_prefix('+').unwrap_or(body);
            if !(1..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(text, ": a prefix is 1 to 19 digits"));
            }
            let n = normalise_prefix(body, usize::MAX);
            if n.len() < 2 {
                return Err(bad(
                    text,
                    ": a prefix this short would catch almost every call",
                ));
            }
            return Ok(NumberPattern::Prefix(n));
        }
        let body = t.strip_prefix('+').unwrap_or(t);
        if body.bytes().all(|b| b.is_ascii_digit()) {
            if !(2..=20).contains(&body.len()) {
                return Err(bad(text, ""));
            }
            return Ok(NumberPattern::Exact(normalise(t)));
        }
        // A pattern: literal digits, letters and [..] choices.
        let mut positions: Vec<Digits> = Vec::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let d = match c {
                '0'..='9' => Digits::one(c as u8),
                'X' | 'x' => Digits::ANY,
                'Z' | 'z' => Digits(0x3fe),
                'N' | 'n' => Digits(0x3fc),
                '[' => {
                    let mut set = 0u16;
                    let mut inner: Vec<char> = Vec::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(bad(text, ": a choice `[` has no closing `]`"));
                    }
                    let mut i = 0;
                    while i < inner.len() {
                        let (a, b) = match (inner.get(i), inner.get(i + 1), inner.get(i + 2)) {
                            (Some(&a), Some('-'), Some(&b)) => {
                                i += 3;
                                (a, b)
                            }
                            (Some(&a), _, _) => {
                                i += 1;
                                (a, a)
                            }
                            _ => break,
                        };
                        if !a.is_ascii_digit() || !b.is_ascii_digit() || b < a {
                            return Err(bad(
                                text,
                                ": a choice is digits or ranges, e.g. [1-5] or [135]",
                            ));
                        }
                        for d in a..=b {
                            set |= 1 << (d as u8 - b'0');
                        }
                    }
                    if set == 0 {
                        return Err(bad(text, ": an empty choice [] matches nothing"));
                    }
                    Digits(set)
                }
                _ => return Err(bad(text, "")),
            };
            positions.push(d);
        }
        if !(2..=20).contains(&positions.len()) {
            return Err(bad(text, ""));
        }
        // Normalise the literal head the way dialled numbers are normalised.
        let head: String = positions
            .iter()
            .map_while(|d| d.single().map(char::from))
            .collect();
        let plus = if t.starts_with('+') { "+" } else { "" };
        let normal_head = normalise_prefix(&format!("{plus}{head}"), positions.len() + plus.len());
        let rest = &positions[head.len()..];
        let mut out: Vec<PatternDigit> = normal_head
            .bytes()
            .map(|b| PatternDigit(Digits::one(b)))
            .collect();
        out.extend(rest.iter().map(|&d| PatternDigit(d)));
        if out.iter().all(|d| d.0.single().is_some()) {
            // Only literal digits after all (e.g. `[5]`): an exact number.
            return Ok(NumberPattern::Exact(
                out.iter()
                    .filter_map(|d| d.0.single())
                    .map(char::from)
                    .collect(),
            ));
        }
        Ok(NumberPattern::Pattern(out))
    }

    pub fn kind(&self) -> MatchKind {
        match self {
            NumberPattern::Exact(_) => MatchKind::Exact,
            NumberPattern::Prefix(_) => MatchKind::Prefix,
            NumberPattern::Pattern(_) => MatchKind::Pattern,
        }
    }

    /// Whether a called number, already [`normalise`]d, matches.
    pub fn matches(&self, normalised: &str) -> bool {
        match self {
            NumberPattern::Exact(n) => n == normalised,
            NumberPattern::Prefix(p) => normalised.starts_with(p.as_str()),
            NumberPattern::Pattern(ds) => {
                ds.len() == normalised.len()
                    && ds
                        .iter()
                        .zip(normalised.bytes())
                        .all(|(d, c)| d.0.contains(c))
            }
        }
    }

    /// Whether some number matches both.
    pub fn overlaps(&self, other: &NumberPattern) -> bool {
        use NumberPattern::*;
        match (self, other) {
            (Exact(a), b) | (b, Exact(a)) => b.matches(a),
            (Prefix(a), Prefix(b)) => a.starts_with(b.as_str()) || b.starts_with(a.as_str()),
            (Prefix(p), Pattern(ds)) | (Pattern(ds), Prefix(p)) => {
                ds.len() >= p.len() && ds.iter().zip(p.bytes()).all(|(d, c)| d.0.contains(c))
            }
            (Pattern(a), Pattern(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0.0 & y.0.0 != 0)
            }
        }
    }

    /// For `Exact`, the number; else `None`.
    pub fn exact(&self) -> Option<&str> {
        match self {
            NumberPattern::Exact(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Display for NumberPattern {
    /// The normalised form: `0561115`, `0561*`, `04106611X`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberPattern::Exact(n) => f.write_str(n),
            NumberPattern::Prefix(p) => write!(f, "{p}*"),
            NumberPattern::Pattern(ds) => {
                for d in ds {
                    match d.0 {
                        Digits::ANY => f.write_str("X")?,
                        Digits(0x3fe) => f.write_str("Z")?,
                        Digits(0x3fc) => f.write_str("N")?,
                        x => match x.single() {
                            Some(c) => write!(f, "{}", char::from(c))?,
                            None => {
                                f.write_str("[")?;
                                for c in b'0'..=b'9' {
                                    if x.contains(c) {
                                        write!(f, "{}", char::from(c))?;
                                    }
                                }
                                f.write_str("]")?;
                            }
                        },
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether a called number reached a hotline via 115: the short code
/// itself, or 115 behind a German area code (`0561115`: 0, two to five
/// digits of area code, 115), which is how carriers deliver it.
pub fn is_115(normalised: &str) -> bool {
    normalised == "115"
        || (normalised.starts_with('0')
            && !normalised.starts_with("00")
            && normalised.ends_with("115")
            && (6..=9).contains(&normalised.len())
            && normalised.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NumberPattern {
        NumberPattern::parse(s).unwrap_or_else(|e| panic!("{s}: {}", e.message))
    }

    #[test]
    fn normalisation() {
        for (dialled, national) in [
            ("115", "115"),
            ("0561115", "0561115"),
            ("+49561115", "0561115"),
            ("49561115", "0561115"),
            ("0049561115", "0561115"),
            ("+49 (561) 78-70", "05617870"),
            ("0561115;phone-context=+49", "0561115"),
            ("+4312345", "004312345"),
            ("4900", "4900"),
            ("*40", "*40"),
            ("", ""),
        ] {
            assert_eq!(normalise(dialled), national, "{dialled}");
        }
    }

    #[test]
    fn parsing_the_three_forms() {
        assert_eq!(p("+49561115"), NumberPattern::Exact("0561115".into()));
        assert_eq!(p("0561*"), NumberPattern::Prefix("0561".into()));
        assert_eq!(p("prefix:+49561"), NumberPattern::Prefix("0561".into()));
        assert_eq!(p("04106611X").to_string(), "04106611X");
        assert_eq!(p("+494106611X").to_string(), "04106611X");
        assert_eq!(p("0561[1-3]1[05]").to_string(), "0561[123]1[05]");
        assert_eq!(p("0561ZN").to_string(), "0561ZN");
        assert_eq!(p("0561[5]"), NumberPattern::Exact("05615".into()));
        for bad in [
            "0561-115",
            "1",
            "1+2",
            "0561 115",
            "0*",
            "*",
            "prefix:",
            "0561[]",
            "0561[5-1]",
            "0561[a]",
            "0561[1-3",
            "123456789012345678901",
            "X",
        ] {
            assert!(NumberPattern::parse(bad).is_err(), "{bad}");
        }
        let e = NumberPattern::parse("0561-115").expect_err("dash");
        assert_eq!(e.message, "bad number `0561-115`");
        assert!(e.hint.contains("only digits"));
    }

    #[test]
    fn matching() {
        assert!(p("04106611X").matches("041066110"));
        assert!(!p("04106611X").matches("04106611"));
        assert!(!p("04106611X").matches("0410661101"));
        assert!(p("0561*").matches("0561"));
        assert!(p("0561*").matches("05617870"));
        assert!(!p("0561*").matches("0562"));
        assert!(p("0561Z").matches("05611"));
        assert!(!p("0561Z").matches("05610"));
        assert!(!p("0561N").matches("05611"));
    }

    #[test]
    fn overlaps() {
        let o = |a: &str, b: &str| p(a).overlaps(&p(b)) && p(b).overlaps(&p(a));
        assert!(o("05617870", "0561*"));
        assert!(!o("05617870", "0562*"));
        assert!(o("0561*", "05617*"));
        assert!(!o("0561*", "0562*"));
        assert!(o("04106611X", "041066110"));
        assert!(o("04106611X", "0410661*"));
        assert!(!o("04106611X", "04106612*"));
        assert!(o("04106611X", "041066110*"));
        assert!(
            !o("04106611X", "0410661100*"),
            "longer prefix than the pattern"
        );
        assert!(o("0410661[1-3]X", "04106612[05]"));
        assert!(!o("0410661[1-3]X", "04106614X"));
        assert!(!o("0561X", "0561XX"));
    }

    #[test]
    fn numbers_via_115() {
        for (n, yes) in [
            ("115", true),
            ("0561115", true),
            ("04101115", true),
            ("030115", true),
            ("05617870", false),
            ("041066110", false),
            ("0561234115", false),
            ("0043115", false),
            ("1151", false),
        ] {
            assert_eq!(is_115(n), yes, "{n}");
        }
    }
}
