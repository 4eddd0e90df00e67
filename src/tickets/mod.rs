//! Tickets (Vormerkung): what a caller asked for that could not be settled
//! on the call, with the promise of feedback within 24 service hours.
//!
//! Sans-IO like the dialplan: a [`Book`] holds the tickets, checks a
//! [`Draft`] against the tenants ([`Tenants`]), works out the due time on
//! the tenant's service-hours calendar ([`due_time`], the dialplan's
//! [`Schedule`]) and allows only the legal state changes ([`State::can_become`]),
//! each with a [`HistoryEntry`]. Every operation takes `now`; nothing here
//! reads a clock, writes a file or knows SQL. The shell keeps the book,
//! hands every change to the store first and applies it to the book once
//! the store has taken it ([`Book::prepare`] / [`Book::insert`],
//! [`Book::plan_change`] / [`Book::apply_change`]), so a change the store
//! refuses leaves the book as it was.
//!
//! ```
//! use jiff::Timestamp;
//! use zentrale::dialplan::Schedule;
//! use zentrale::tickets::{Book, Channel, Draft, State, TenantInfo, Tenants};
//!
//! let mut krefeld = Schedule::new("Europe/Berlin").unwrap();
//! krefeld.add_weekly(&"mon-thu 08:00-17:00".parse().unwrap()).unwrap();
//! krefeld.add_weekly(&"fri 08:00-13:00".parse().unwrap()).unwrap();
//! let mut tenants = Tenants::default();
//! tenants.insert("krefeld", TenantInfo {
//!     municipality: "Krefeld".into(),
//!     queues: vec!["115".into()],
//!     schedule: Some(krefeld),
//! });
//! let mut book = Book::default();
//! let draft = Draft {
//!     tenant: "krefeld".into(),
//!     queue: Some("115".into()),
//!     callback_number: Some("02151860".into()),
//!     channel: Channel::Callback,
//!     topic: "Wohnsitz ummelden".into(),
//!     created_by: "1001".into(),
//!     ..Draft::default()
//! };
//! // Friday 2026-11-27, 12:00 in Krefeld.
//! let ticket = book.prepare(draft, &tenants, "2026-11-27T11:00:00Z".parse().unwrap()).unwrap();
//! // 1 h Friday, 9 h Monday, 9 h Tuesday, 5 h Wednesday: 13:00.
//! assert_eq!(ticket.due_at, "2026-12-02T12:00:00Z".parse::<Timestamp>().unwrap());
//! assert_eq!(ticket.state, State::Open);
//! book.insert(ticket);
//! ```

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::dialplan::{Origin, QueueRef, Schedule, mask_number};

/// The promise: feedback within this much service time.
pub const SERVICE_TIME: SignedDuration = SignedDuration::from_hours(24);

/// Longest topic, note or name kept, in characters: a ticket is a note for
/// a person, not a document store.
pub const MAX_TEXT: usize = 2000;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Taken, nobody works on it yet.
    Open,
    /// Someone works on it.
    InProgress,
    /// The caller was called back (or mailed); closing it is the last step.
    CalledBack,
    /// Callback attempts failed; a person has to follow up.
    Failed,
    /// Done. Nothing changes a closed ticket.
    Closed,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Open,
        State::InProgress,
        State::CalledBack,
        State::Failed,
        State::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::InProgress => "in_progress",
            State::CalledBack => "called_back",
            State::Failed => "failed",
            State::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the promise still runs: the caller is still owed feedback
    /// (a failed ticket too, until a person has followed it up).
    pub fn is_pending(self) -> bool {
        matches!(self, State::Open | State::InProgress | State::Failed)
    }

    /// The legal changes. A closed ticket stays closed (a new question is a
    /// new ticket); `called_back` only closes, or goes back to work when
    /// the callback did not settle it.
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Open, InProgress | CalledBack | Failed | Closed)
                | (InProgress, Open | CalledBack | Failed | Closed)
                | (Failed, Open | InProgress | CalledBack | Closed)
                | (CalledBack, InProgress | Closed)
        )
    }

    /// The states `self` may become, for messages.
    pub fn next_states(self) -> Vec<State> {
        State::ALL
            .into_iter()
            .filter(|&to| self.can_become(to))
            .collect()
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the caller wants the answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Channel {
    /// A call back to the ticket's number.
    #[default]
    Callback,
    /// An e-mail to this address.
    Email(String),
}

impl Channel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Callback => "callback",
            Channel::Email(_) => "email",
        }
    }

    pub fn email(&self) -> Option<&str> {
        match self {
            Channel::Email(a) => Some(a),
            Channel::Callback => None,
        }
    }
}

/// Where the call came from that led to the ticket: the municipality the
/// caller meant and whether they came via 115 (the two parts of a
/// [`dialplan::Origin`](Origin) statistics are split by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketOrigin {
    pub municipality: String,
    pub via_115: bool,
}

impl TicketOrigin {
    /// `115` or `local`, as in call records and metrics.
    pub fn via_label(&self) -> &'static str {
        crate::dialplan::via_label(self.via_115)
    }
}

impl From<&Origin> for TicketOrigin {
    fn from(o: &Origin) -> TicketOrigin {
        TicketOrigin {
            municipality: o.municipality.to_string(),
            via_115: o.via_115,
        }
    }
}

/// Who is to answer: one of the tenant's queues, or a department named in
/// words (the town hall's Bürgeramt, which has no queue in zentrale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Queue(QueueRef),
    Department(String),
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    StateChanged { from: State, to: State },
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::StateChanged { .. } => "state",
        }
    }
}

/// One line of a ticket's history: who did what when, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Position in the ticket's history, from 0 (the creation).
    pub seq: u32,
    pub at: Timestamp,
    pub who: String,
    pub action: Action,
    pub note: Option<String>,
}

/// A ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: u64,
    pub tenant: String,
    pub origin: TicketOrigin,
    pub destination: Destination,
    /// The number to call back; `None` only for an e-mail ticket without one.
    pub callback_number: Option<String>,
    pub channel: Channel,
    pub topic: String,
    /// The LeiKa service key (Leistungskatalog), digits only.
    pub leika: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    /// [`SERVICE_TIME`] after `created_at` on the tenant's calendar.
    pub due_at: Timestamp,
    pub state: State,
    /// Oldest first; the first entry is the creation.
    pub history: Vec<HistoryEntry>,
}

impl Ticket {
    /// Past its due time and still owed.
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        self.state.is_pending() && self.due_at <= now
    }

    /// The callback number with its last digits masked, for logs.
    pub fn masked_number(&self) -> Option<String> {
        self.callback_number.as_deref().map(mask_number)
    }
}

/// What a tenant is, as far as tickets go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantInfo {
    /// The municipality of tickets without another origin.
    pub municipality: String,
    /// The ids of the tenant's queues.
    pub queues: Vec<String>,
    /// The service-hours calendar due times count on; `None`: around the clock.
    pub schedule: Option<Schedule>,
}

/// The tenants tickets may be for, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tenants {
    by_id: BTreeMap<String, TenantInfo>,
}

impl Tenants {
    pub fn insert(&mut self, id: &str, info: TenantInfo) {
        self.by_id.insert(id.to_owned(), info);
    }

    pub fn get(&self, id: &str) -> Option<&TenantInfo> {
        self.by_id.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Whether `queue` (a `tenant/queue` reference) exists.
    fn has_queue(&self, queue: &QueueRef) -> bool {
        self.get(&queue.tenant)
            .is_some_and(|t| t.queues.contains(&queue.queue))
    }
}

/// The due time of a ticket created at `created` for a tenant with
/// `schedule`: [`SERVICE_TIME`] of open time later. Around the clock (no
/// schedule) that is 24 clock hours; a schedule that never opens within a
/// year (a configuration that closes for good) falls back to that too,
/// rather than promising nothing.
pub fn due_time(schedule: Option<&Schedule>, created: Timestamp) -> Timestamp {
    let clock = created.checked_add(SERVICE_TIME).unwrap_or(Timestamp::MAX);
    schedule
        .and_then(|s| s.after_open_time(created, SERVICE_TIME))
        .unwrap_or(clock)
}

/// A ticket as asked for (the API's body, a feature code's data), before
/// it is checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Draft {
    pub tenant: String,
    /// The tenant's municipality when not given.
    pub municipality: Option<String>,
    pub via_115: bool,
    /// A queue id of the tenant, or `tenant/queue`.
    pub queue: Option<String>,
    /// A department in words, when there is no queue for it.
    pub department: Option<String>,
    pub callback_number: Option<String>,
    pub channel: Channel,
    pub topic: String,
    pub leika: Option<String>,
    pub created_by: String,
    /// Why the ticket was taken, into the first history entry.
    pub note: Option<String>,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeError {
    UnknownTicket(u64),
    /// Not a legal change from the ticket's state.
    Illegal {
        id: u64,
        from: State,
        to: State,
    },
    /// The name or note is not usable.
    Invalid(String),
}

impl fmt::Display for ChangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeError::UnknownTicket(id) => {
                write!(f, "no ticket {id}; list them with GET /api/v1/tickets")
            }
            ChangeError::Illegal { id, from, to } => {
                let next: Vec<&str> = from.next_states().iter().map(|s| s.as_str()).collect();
                if next.is_empty() {
                    write!(
                        f,
                        "ticket {id} is {from} and cannot become {to}: a closed ticket stays closed; take a new ticket for a new question"
                    )
                } else {
                    write!(
                        f,
                        "ticket {id} is {from} and cannot become {to}; from {from} it can become {}",
                        next.join(", ")
                    )
                }
            }
            ChangeError::Invalid(why) => f.write_str(why),
        }
    }
}

/// Which tickets to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub state: Option<State>,
    pub tenant: Option<String>,
    /// `Some(true)`: only overdue ones; `Some(false)`: only those that are not.
    pub overdue: Option<bool>,
}

/// Open and overdue tickets of one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Still owed (open, in progress, failed).
    pub open: u64,
    /// Of those, past their due time.
    pub overdue: u64,
}

/// The tickets, by id.
#[derive(Debug, Clone, Default)]
pub struct Book {
    tickets: BTreeMap<u64, Ticket>,
    last_id: u64,
}

impl Book {
    /// A book of tickets read back from the store.
    pub fn from_tickets(tickets: impl IntoIterator<Item = Ticket>) -> Book {
        let mut book = Book::default();
        for t in tickets {
            book.insert(t);
        }
        book
    }

    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    pub fn get(&self, id: u64) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    /// Checks `draft` and makes the ticket it asks for, with the next id,
    /// its due time and its first history entry; the book is unchanged
    /// until [`Book::insert`]. `Err`: every problem, each saying what to
    /// write instead.
    pub fn prepare(
        &self,
        draft: Draft,
        tenants: &Tenants,
        now: Timestamp,
    ) -> Result<Ticket, Vec<String>> {
        let mut problems = Vec::new();
        let tenant = tenants.get(&draft.tenant);
        if tenant.is_none() {
            let known: Vec<&str> = tenants.ids().collect();
            problems.push(format!(
                "unknown tenant `{}`; use one of: {}",
                draft.tenant,
                known.join(", ")
            ));
        }
        let destination = match (&draft.queue, &draft.department) {
            (Some(q), None) => match QueueRef::parse(q.trim(), &draft.tenant) {
                Some(r) if tenants.has_queue(&r) => Some(Destination::Queue(r)),
                _ => {
                    if tenant.is_some() {
                        problems.push(format!(
                            "unknown queue `{q}`; name one of the tenant's queues ({}) or give `department` instead",
                            tenant.map(|t| t.queues.join(", ")).unwrap_or_default()
                        ));
                    }
                    None
                }
            },
            (None, Some(d)) if !d.trim().is_empty() => {
                text("department", d, &mut problems);
                Some(Destination::Department(d.trim().to_owned()))
            }
            (Some(_), Some(_)) => {
                problems.push(
                    "give either `queue` or `department`, not both: who is to answer the ticket"
                        .into(),
                );
                None
            }
            _ => {
                problems.push(
                    "who is to answer is missing: give `queue` (one of the tenant's queues) or `department`"
                        .into(),
                );
                None
            }
        };
        let number = match draft.callback_number.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => match phone_number(n) {
                Some(n) => Some(n),
                None => {
                    problems.push(format!(
                        "`{}` is not a phone number; write digits, optionally with a leading +, e.g. 02151861234",
                        mask_number(n)
                    ));
                    None
                }
            },
            _ => None,
        };
        let number_given = draft
            .callback_number
            .as_deref()
            .is_some_and(|n| !n.trim().is_empty());
        match &draft.channel {
            Channel::Callback if !number_given => problems
                .push(
                    "a callback ticket needs `callback_number`; or choose `channel: email` with `email`"
                        .into(),
                ),
            Channel::Email(address) if !email_address(address) => problems.push(format!(
                "`{address}` is not an e-mail address; write one like name@example.org"
            )),
            _ => {}
        }
        if draft.topic.trim().is_empty() {
            problems.push("the topic is missing: say in a few words what the caller asked".into());
        }
        text("topic", &draft.topic, &mut problems);
        let leika = match draft.leika.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() => {
                if k.len() == 14 && k.bytes().all(|b| b.is_ascii_digit()) {
                    Some(k.to_owned())
                } else {
                    problems.push(format!(
                        "`{k}` is not a LeiKa service key; write its 14 digits, e.g. 99115001000000"
                    ));
                    None
                }
            }
            _ => None,
        };
        if draft.created_by.trim().is_empty() {
            problems.push("who takes the ticket is missing (`created_by`)".into());
        }
        text("created_by", &draft.created_by, &mut problems);
        if let Some(n) = &draft.note {
            text("note", n, &mut problems);
        }
        let (Some(tenant), Some(destination), true) = (tenant, destination, problems.is_empty())
        else {
            return Err(problems);
        };
        let id = self.last_id + 1;
        Ok(Ticket {
            id,
            tenant: draft.tenant.clone(),
            origin: TicketOrigin {
                municipality: draft
                    .municipality
                    .filter(|m| !m.trim().is_empty())
                    .unwrap_or_else(|| tenant.municipality.clone()),
                via_115: draft.via_115,
            },
            destination,
            callback_number: number,
            channel: draft.channel,
            topic: draft.topic.trim().to_owned(),
            leika,
            created_by: draft.created_by.trim().to_owned(),
            created_at: now,
            due_at: due_time(tenant.schedule.as_ref(), now),
            state: State::Open,
            history: vec![HistoryEntry {
                seq: 0,
                at: now,
                who: draft.created_by.trim().to_owned(),
                action: Action::Created,
                note: draft.note.filter(|n| !n.trim().is_empty()),
            }],
        })
    }

    /// Adds a ticket ([`Book::prepare`]'s, or one read back).
    pub fn insert(&mut self, ticket: Ticket) {
        self.last_id = self.last_id.max(ticket.id);
        self.tickets.insert(ticket.id, ticket);
    }

    /// Checks that ticket `id` may become `to` and makes the history entry
    /// for it; the book is unchanged until [`Book::apply_change`].
    pub fn plan_change(
        &self,
        id: u64,
        to: State,
        who: &str,
        note: Option<String>,
        now: Timestamp,
    ) -> Result<HistoryEntry, ChangeError> {
        let ticket = self
            .tickets
            .get(&id)
            .ok_or(ChangeError::UnknownTicket(id))?;
        let from = ticket.state;
        if !from.can_become(to) {
            return Err(ChangeError::Illegal { id, from, to });
        }
        if who.trim().is_empty() {
            return Err(ChangeError::Invalid(
                "who changes the ticket is missing (`by`)".into(),
            ));
        }
        let mut problems = Vec::new();
        text("by", who, &mut problems);
        if let Some(n) = &note {
            text("note", n, &mut problems);
        }
        if let Some(p) = problems.into_iter().next() {
            return Err(ChangeError::Invalid(p));
        }
        Ok(HistoryEntry {
            seq: ticket.history.len() as u32,
            at: now,
            who: who.trim().to_owned(),
            action: Action::StateChanged { from, to },
            note: note.filter(|n| !n.trim().is_empty()),
        })
    }

    /// Applies a change [`Book::plan_change`] made.
    pub fn apply_change(&mut self, id: u64, entry: HistoryEntry) {
        if let Some(t) = self.tickets.get_mut(&id) {
            if let Action::StateChanged { to, .. } = entry.action {
                t.state = to;
            }
            t.history.push(entry);
        }
    }

    /// The tickets `filter` lets through, oldest first.
    pub fn list<'a>(
        &'a self,
        filter: &'a Filter,
        now: Timestamp,
    ) -> impl Iterator<Item = &'a Ticket> + 'a {
        self.tickets.values().filter(move |t| {
            filter.state.is_none_or(|s| t.state == s)
                && filter.tenant.as_ref().is_none_or(|x| t.tenant == *x)
                && filter.overdue.is_none_or(|o| t.is_overdue(now) == o)
        })
    }

    /// Open and overdue tickets per tenant (tenants without any are absent).
    pub fn counts(&self, now: Timestamp) -> BTreeMap<&str, Counts> {
        let mut out: BTreeMap<&str, Counts> = BTreeMap::new();
        for t in self.tickets.values().filter(|t| t.state.is_pending()) {
            let c = out.entry(t.tenant.as_str()).or_default();
            c.open += 1;
            if t.is_overdue(now) {
                c.overdue += 1;
            }
        }
        out
    }
}

/// Refuses text longer than [`MAX_TEXT`] or with control characters.
fn text(what: &str, value: &str, problems: &mut Vec<String>) {
    if value.chars().count() > MAX_TEXT {
        problems.push(format!(
            "`{what}` is longer than {MAX_TEXT} characters; shorten it"
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        problems.push(format!("`{what}` has control characters; write plain text"));
    }
}

/// A dialable number: digits, an optional leading `+`, and the spaces,
/// dashes, slashes and parentheses people write between them (dropped).
/// Between 3 and 20 digits.
pub fn phone_number(text: &str) -> Option<String> {
    let (plus, rest) = match text.strip_prefix('+') {
        Some(r) => ("+", r),
        None => ("", text),
    };
    if !rest
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '/' | '(' | ')'))
    {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    (3..=20)
        .contains(&digits.len())
        .then(|| format!("{plus}{digits}"))
}

/// A plausible address: one `@`, something before it, a dotted domain
/// after it, no spaces.
pub fn email_address(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && text.len() <= 254
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}
