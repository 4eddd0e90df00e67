//! What the dialplan knows about a new call, and how to get it out of the
//! INVITE's header values (pure string functions; the `sip` module hands
//! over the raw values).

use crate::ascii::{find, rfind};

/// The facts of a new call the dialplan decides on.
///
/// `caller` is `None` for anonymous callers, so their number is never
/// stored anywhere downstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInput {
    /// User part of the Request-URI (the number the call was sent to).
    pub request_user: String,
    /// User part of the `To` URI (after retargeting, often the number the
    /// caller dialled).
    pub to_user: String,
    /// The originally called number from `Diversion` (RFC 5806): the entry
    /// of the first diversion, i.e. the last entry.
    pub diversion: Option<String>,
    /// User parts of the `History-Info` entries (RFC 7044), in index order;
    /// the first is the number originally called.
    pub history_info: Vec<String>,
    /// The caller's number (P-Asserted-Identity, else From), `None` when
    /// anonymous or not a number.
    pub caller: Option<String>,
    /// The caller asked for privacy (`Privacy: id`, `user` or `header`) or
    /// sent `anonymous` as its identity.
    pub anonymous: bool,
}

/// Raw header values of an INVITE, as received; a header that appears
/// several times gives several values, each may hold several entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct SipHeaders<'a> {
    pub request_uri: &'a str,
    pub to: &'a str,
    pub from: &'a str,
    pub diversion: &'a [&'a str],
    pub history_info: &'a [&'a str],
    pub privacy: &'a [&'a str],
    pub p_asserted_identity: &'a [&'a str],
}

/// Where the number that matched came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberSource {
    RequestUri,
    To,
    Diversion,
    HistoryInfo,
}

impl NumberSource {
    /// A label for logs and call records.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberSource::RequestUri => "request-uri",
            NumberSource::To => "to",
            NumberSource::Diversion => "diversion",
            NumberSource::HistoryInfo => "history-info",
        }
    }
}

impl CallInput {
    /// A call to `number` with nothing else known (tests, feature codes).
    pub fn to_number(number: &str) -> CallInput {
        CallInput {
            request_user: number.to_string(),
            to_user: number.to_string(),
            ..CallInput::default()
        }
    }

    /// Reads the call's facts from its header values.
    ///
    /// ```
    /// use zentrale::dialplan::{CallInput, SipHeaders};
    /// let input = CallInput::from_sip(&SipHeaders {
    ///     request_uri: "sip:04101115@zentrale.example",
    ///     to: "<sip:04101115@zentrale.example>",
    ///     from: "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1",
    ///     diversion: &["<sip:+4941066110@carrier.example>;reason=no-answer;counter=1"],
    ///     privacy: &["id"],
    ///     p_asserted_identity: &["<sip:+4930123456@carrier.example>"],
    ///     ..SipHeaders::default()
    /// });
    /// assert_eq!(input.request_user, "04101115");
    /// assert_eq!(input.diversion.as_deref(), Some("+4941066110"));
    /// assert!(input.anonymous);
    /// assert_eq!(input.caller, None); // the asserted number is not kept
    /// ```
    pub fn from_sip(h: &SipHeaders) -> CallInput {
        let from_user = uri_user(h.from);
        let from_host = uri_host(h.from);
        let privacy = h
            .privacy
            .iter()
            .flat_map(|v| v.split([';', ',']))
            .map(|t| t.trim().to_ascii_lowercase())
            .any(|t| matches!(t.as_str(), "id" | "user" | "header"));
        let anonymous = privacy
            || from_user
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
            || from_host
                .as_deref()
                .is_some_and(|host| host.eq_ignore_ascii_case("anonymous.invalid"));
        let caller = if anonymous {
            None
        } else {
            h.p_asserted_identity
                .iter()
                .flat_map(|v| entries(v))
                .filter_map(uri_user)
                .find(|u| is_number(u))
                .or(from_user.filter(|u| is_number(u)))
        };
        CallInput {
            request_user: uri_user(h.request_uri).unwrap_or_default(),
            to_user: uri_user(h.to).unwrap_or_default(),
            diversion: diversion_original(h.diversion),
            history_info: history_info_users(h.history_info),
            caller,
            anonymous,
        }
    }

    /// The number originally called when the call was forwarded to us:
    /// from `Diversion`, else the first `History-Info` entry if it differs
    /// from the Request-URI.
    pub fn original_called(&self) -> Option<(&str, NumberSource)> {
        if let Some(d) = &self.diversion {
            return Some((d, NumberSource::Diversion));
        }
        self.history_info
            .first()
            .filter(|h| super::normalise(h) != super::normalise(&self.request_user))
            .map(|h| (h.as_str(), NumberSource::HistoryInfo))
    }

    /// The numbers to look up, in order: Request-URI, To, original.
    pub fn candidates(&self) -> impl Iterator<Item = (&str, NumberSource)> {
        [
            Some((self.request_user.as_str(), NumberSource::RequestUri)),
            Some((self.to_user.as_str(), NumberSource::To)),
            self.original_called(),
        ]
        .into_iter()
        .flatten()
        .filter(|(n, _)| !n.is_empty())
    }

    /// The caller's number with its last three digits masked, for logs and
    /// statistics (`0561787xxx`); `None` when anonymous.
    pub fn caller_masked(&self) -> Option<String> {
        self.caller.as_deref().map(mask_number)
    }
}

/// Masks the last three digits: `05617870123` → `05617870xxx`.
pub fn mask_number(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let keep = digits.saturating_sub(3);
    let mut seen = 0;
    number
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen > keep {
                    return 'x';
                }
            }
            c
        })
        .collect()
}

fn is_number(s: &str) -> bool {
    let d = s.strip_prefix('+').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

/// Splits a header value into its comma-separated entries, leaving commas
/// inside quotes and `<...>` alone.
pub fn entries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|e| !e.is_empty());
    out
}

/// The URI of a name-addr (`"Name" <sip:...>;tag=x`) or addr-spec.
fn uri_of(entry: &str) -> &str {
    let e = entry.trim();
    // A display name may contain `<` only inside quotes; skip it.
    let after_name = match e.strip_prefix('"') {
        Some(rest) => {
            let mut escaped = false;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(rest.len(), |(i, _)| i + 1);
            &rest[end.min(rest.len())..]
        }
        None => e,
    };
    match find(after_name, b'<') {
        Some(open) => {
            let inner = &after_name[open + 1..];
            &inner[..find(inner, b'>').unwrap_or(inner.len())]
        }
        // addr-spec: its own parameters end at the first `;` after the host,
        // but a user part may have `;` too; keep it whole, callers cut.
        None => after_name,
    }
}

/// The user part of a SIP/SIPS/TEL URI in a header value or Request-URI,
/// percent-decoded, without user parameters (`;isub=`, `;phone-context=`).
///
/// ```
/// # use zentrale::dialplan::uri_user;
/// assert_eq!(uri_user("\"Stadt\" <sip:0561115@host;user=phone>;tag=9").as_deref(), Some("0561115"));
/// assert_eq!(uri_user("tel:+49561115;phone-context=x").as_deref(), Some("+49561115"));
/// assert_eq!(uri_user("sip:%2B49561115@host").as_deref(), Some("+49561115"));
/// assert_eq!(uri_user("sip:host.example"), None);
/// ```
pub fn uri_user(value: &str) -> Option<String> {
    let uri = uri_of(value);
    let tel = uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("tel:"));
    let (user, sip) = if tel {
        (&uri[4..], false)
    } else {
        let rest = strip_scheme(uri)?;
        // The host starts after the last `@` before any `?` headers.
        let before_headers = &rest[..find(rest, b'?').unwrap_or(rest.len())];
        let at = rfind(before_headers, b'@')?;
        (&before_headers[..at], true)
    };
    let user = &user[..find(user, b';').unwrap_or(user.len())];
    // `user:password@` in SIP URIs.
    let user = if sip {
        &user[..find(user, b':').unwrap_or(user.len())]
    } else {
        user
    };
    let user = percent_decode(user);
    (!user.is_empty()).then_some(user)
}

fn strip_scheme(uri: &str) -> Option<&str> {
    let starts = |scheme: &str| {
        uri.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    };
    if starts("sips:") {
        Some(&uri[5..])
    } else if starts("sip:") {
        Some(&uri[4..])
    } else {
        None
    }
}

fn uri_host(value: &str) -> Option<String> {
    let rest = strip_scheme(uri_of(value))?;
    let rest = &rest[..rest.find('?').unwrap_or(rest.len())];
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host_part.split([';', ':']).next().unwrap_or("");
    (!host.is_empty()).then(|| host.to_string())
}

fn percent_decode(s: &str) -> String {
    if find(s, b'%').is_none() {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The originally called number of a chain of `Diversion` values: each new
/// diversion is added on top, so the original is the last entry.
pub fn diversion_original(values: &[&str]) -> Option<String> {
    values
        .iter()
        .flat_map(|v| entries(v))
        .filter_map(uri_user)
        .next_back()
}

/// The user parts of `History-Info` entries, ordered by their `index`
/// parameter (`1`, `1.1`, `1.1.1`, ...; entries without one keep their
/// place after the indexed ones). Entries without a user part are skipped.
pub fn history_info_users(values: &[&str]) -> Vec<String> {
    let mut indexed: Vec<(Vec<u32>, usize, String)> = values
        .iter()
        .flat_map(|v| entries(v))
        .enumerate()
        .filter_map(|(pos, e)| {
            let user = uri_user(e)?;
            let index = params_after_uri(e)
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("index").then(|| {
                        v.trim()
                            .split('.')
                            .map(|n| n.parse::<u32>().unwrap_or(u32::MAX))
                            .collect()
                    })
                })
                .unwrap_or_else(|| vec![u32::MAX]);
            Some((index, pos, user))
        })
        .collect();
    indexed.sort();
    indexed.into_iter().map(|(_, _, u)| u).collect()
}

/// The header parameters after the `>` of a name-addr.
fn params_after_uri(entry: &str) -> impl Iterator<Item = &str> {
    let tail = entry.rfind('>').map_or("", |i| &entry[i + 1..]);
    tail.split(';').map(str::trim).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_respect_quotes_and_brackets() {
        assert_eq!(
            entries("\"Doe, John\" <sip:1@h>;a=1, <sip:2@h?x=a,b>;index=1.1 ,"),
            ["\"Doe, John\" <sip:1@h>;a=1", "<sip:2@h?x=a,b>;index=1.1"]
        );
        assert_eq!(entries(""), Vec::<&str>::new());
    }

    #[test]
    fn uri_users() {
        for (v, want) in [
            ("sip:115@127.0.0.1:5060", Some("115")),
            ("SIP:115@host", Some("115")),
            ("sips:0561115@host;transport=tls", Some("0561115")),
            ("<sip:0561115;isub=12@host>", Some("0561115")),
            ("\"A <b>\" <sip:041066110@h>;tag=x", Some("041066110")),
            ("sip:user:secret@host", Some("user")),
            ("<tel:+49561115>", Some("+49561115")),
            ("<sip:host>", None),
            ("mailto:x@y", None),
            ("<sip:0561115@h?Reason=SIP%3Bcause%3D302>", Some("0561115")),
        ] {
            assert_eq!(uri_user(v).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn diversion_gives_the_first_diverting_number() {
        // Two diversions: 041066110 forwarded to 041066119, which forwarded to us.
        let v = [
            "<sip:041066119@pbx>;reason=no-answer;counter=1",
            "<sip:041066110@pbx>;reason=unconditional;counter=1",
        ];
        assert_eq!(diversion_original(&v).as_deref(), Some("041066110"));
        let one = ["<sip:+4941066110@pbx>;reason=no-answer, <sip:+4941066111@pbx>"];
        assert_eq!(diversion_original(&one).as_deref(), Some("+4941066111"));
        assert_eq!(diversion_original(&[]), None);
    }

    #[test]
    fn history_info_in_index_order() {
        let v = [
            "<sip:04101115@zentrale>;index=1.1;rc=1",
            "<sip:041066110@carrier?Reason=SIP%3Bcause%3D408>;index=1, <sip:x.example>;index=1.2",
        ];
        assert_eq!(history_info_users(&v), ["041066110", "04101115"]);
        // index 1.10 comes after 1.9.
        let v = ["<sip:3@h>;index=1.10, <sip:2@h>;index=1.9, <sip:1@h>;index=1"];
        assert_eq!(history_info_users(&v), ["1", "2", "3"]);
    }

    #[test]
    fn anonymous_callers_keep_no_number() {
        let base = SipHeaders {
            request_uri: "sip:115@z",
            to: "<sip:115@z>",
            from: "<sip:+4930123456@carrier>;tag=1",
            ..SipHeaders::default()
        };
        let plain = CallInput::from_sip(&base);
        assert_eq!(
            (plain.caller.as_deref(), plain.anonymous),
            (Some("+4930123456"), false)
        );
        assert_eq!(plain.caller_masked().as_deref(), Some("+4930123xxx"));
        for h in [
            SipHeaders {
                privacy: &["id"],
                ..base
            },
            SipHeaders {
                privacy: &["header;user"],
                ..base
            },
            SipHeaders {
                from: "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=2",
                p_asserted_identity: &["<sip:+4930123456@carrier>"],
                ..base
            },
            SipHeaders {
                from: "<sip:+4930123456@anonymous.invalid>;tag=2",
                ..base
            },
        ] {
            let input = CallInput::from_sip(&h);
            assert!(input.anonymous, "{h:?}");
            assert_eq!(input.caller, None, "{h:?}");
            assert_eq!(input.caller_masked(), None);
        }
        let none = CallInput::from_sip(&SipHeaders {
            privacy: &["none"],
            p_asserted_identity: &["\"X\" <sip:+4940999@carrier>"],
            ..base
        });
        assert_eq!(none.caller.as_deref(), Some("+4940999"), "PAI preferred");
        assert!(!none.anonymous);
    }

    #[test]
    fn original_called_number() {
        let mut input = CallInput::to_number("04101115");
        assert_eq!(input.original_called(), None);
        input.history_info = vec!["04101115".into()];
        assert_eq!(input.original_called(), None, "not forwarded");
        input.history_info = vec!["+4941066110".into(), "04101115".into()];
        assert_eq!(
            input.original_called(),
            Some(("+4941066110", NumberSource::HistoryInfo))
        );
        input.diversion = Some("041066110".into());
        assert_eq!(
            input.original_called(),
            Some(("041066110", NumberSource::Diversion))
        );
        let c: Vec<NumberSource> = input.candidates().map(|(_, s)| s).collect();
        assert_eq!(
            c,
            [
                NumberSource::RequestUri,
                NumberSource::To,
                NumberSource::Diversion
            ]
        );
    }

    #[test]
    fn masking() {
        assert_eq!(mask_number("05617870123"), "05617870xxx");
        assert_eq!(mask_number("+49 561 78"), "+49 56x xx");
        assert_eq!(mask_number("12"), "xx");
    }
}
