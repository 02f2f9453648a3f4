//! What a check finds, and the report it prints: counts by kind with a few examples.
//! Examples name a session by its device handle (a one-way hash of the token), never by
//! the token, which is a credential.

use redis_sessions::device_handle;
use serde::Serialize;
use std::collections::BTreeMap;

/// A kind of inconsistency between the session hashes and their indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A `_sessions` member whose session hash is gone (or has another id).
    OrphanSessionsMember,
    /// A `SESSIONS` member whose session hash is gone (or has another id).
    OrphanExpiryMember,
    /// A token in `us:{id}` whose session is gone (or belongs to another id).
    StaleUserSetMember,
    /// An id in `_users` with no `us:{id}` set, so no session.
    OrphanUser,
    /// A session missing from its app's `_sessions`.
    MissingFromSessions,
    /// A session whose id is missing from its app's `_users`.
    MissingFromUsers,
    /// A session missing from its id's `us:{id}` set.
    MissingFromUserSet,
    /// A session missing from `SESSIONS`: the sweep never removes it.
    MissingFromExpiries,
    /// A `SESSIONS` score that is not the session's `la + ttl`.
    ExpiryMismatch,
    /// A session past its end by more than the grace period.
    Expired,
    /// A session whose `d` is not a JSON object: unreadable by Node and by this library.
    CorruptData,
    /// A session hash without an id or with a non-numeric `la`/`ttl` (Node v4's get or set
    /// racing a kill leaves such a hash behind).
    CorruptHash,
}

impl Kind {
    /// Its name in reports (`orphan_sessions_member`, ...), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::OrphanSessionsMember => "orphan_sessions_member",
            Kind::OrphanExpiryMember => "orphan_expiry_member",
            Kind::StaleUserSetMember => "stale_user_set_member",
            Kind::OrphanUser => "orphan_user",
            Kind::MissingFromSessions => "missing_from_sessions",
            Kind::MissingFromUsers => "missing_from_users",
            Kind::MissingFromUserSet => "missing_from_user_set",
            Kind::MissingFromExpiries => "missing_from_expiries",
            Kind::ExpiryMismatch => "expiry_mismatch",
            Kind::Expired => "expired",
            Kind::CorruptData => "corrupt_data",
            Kind::CorruptHash => "corrupt_hash",
        }
    }

    /// What the kind means, for the table.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::OrphanSessionsMember => "_sessions member without a session",
            Kind::OrphanExpiryMember => "SESSIONS member without a session",
            Kind::StaleUserSetMember => "us:{id} token without a session",
            Kind::OrphanUser => "_users id without a session",
            Kind::MissingFromSessions => "session missing from _sessions",
            Kind::MissingFromUsers => "session's id missing from _users",
            Kind::MissingFromUserSet => "session missing from us:{id}",
            Kind::MissingFromExpiries => "session missing from SESSIONS",
            Kind::ExpiryMismatch => "SESSIONS score is not la + ttl",
            Kind::Expired => "session past its end",
            Kind::CorruptData => "d is not a JSON object",
            Kind::CorruptHash => "hash without id, la or ttl",
        }
    }

    /// True for the kinds mended by the session's own script (mend_session.lua).
    pub fn is_session_side(self) -> bool {
        !matches!(
            self,
            Kind::OrphanSessionsMember
                | Kind::OrphanExpiryMember
                | Kind::StaleUserSetMember
                | Kind::OrphanUser
        )
    }
}

/// One finding. The token and the raw member stay in memory for the repair; only the
/// handle is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    /// What is wrong.
    pub kind: Kind,
    /// The index of its shard among those checked on one server (see check::Scope).
    pub shard: usize,
    /// The app.
    pub app: String,
    /// The session's token (empty for an orphan `_users` id).
    pub token: String,
    /// The user id, when known.
    pub id: Option<String>,
    /// The index member as stored (orphan members: removed exactly as found).
    pub member: Option<String>,
    /// The corrupt `d` as found (removed only while it is unchanged).
    pub data: Option<String>,
}

impl Finding {
    /// The finding as shown: app, id and device handle.
    pub fn example(&self) -> Example {
        Example {
            app: self.app.clone(),
            id: self.id.clone(),
            device: (!self.token.is_empty()).then(|| device_handle(&self.token)),
        }
    }
}

/// A finding or change as shown to people and scripts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Example {
    /// The app.
    pub app: String,
    /// The user id, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The session's device handle (the hash of its token), when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl std::fmt::Display for Example {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "app={}", self.app)?;
        if let Some(id) = &self.id {
            write!(f, " id={id}")?;
        }
        if let Some(device) = &self.device {
            write!(f, " device={device}")?;
        }
        Ok(())
    }
}

/// Count and examples of one kind of finding or change.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// The kind of finding, or the change made (`added_to_sessions`, ...).
    pub kind: String,
    /// What it means.
    pub description: String,
    /// How many.
    pub count: u64,
    /// The first few.
    pub examples: Vec<Example>,
}

/// Tallies of items by name, keeping `limit` examples each, in name order.
#[derive(Debug, Default)]
pub struct Tallies {
    by_name: BTreeMap<String, Tally>,
}

impl Tallies {
    /// Counts one item named `kind`.
    pub fn add(&mut self, kind: &str, description: &str, example: Example, limit: usize) {
        let tally = self
            .by_name
            .entry(kind.to_owned())
            .or_insert_with(|| Tally {
                kind: kind.to_owned(),
                description: description.to_owned(),
                count: 0,
                examples: Vec::new(),
            });
        tally.count += 1;
        if tally.examples.len() < limit {
            tally.examples.push(example);
        }
    }

    /// Adds `other`'s counts and examples (another master's), keeping at most as many
    /// examples as either kept.
    pub fn merge(&mut self, other: Tallies) {
        for (name, theirs) in other.by_name {
            match self.by_name.get_mut(&name) {
                None => {
                    self.by_name.insert(name, theirs);
                }
                Some(mine) => {
                    let limit = mine.examples.len().max(theirs.examples.len());
                    mine.count += theirs.count;
                    mine.examples.extend(theirs.examples);
                    mine.examples.truncate(limit);
                }
            }
        }
    }

    /// The tallies, in name order.
    pub fn into_vec(self) -> Vec<Tally> {
        self.by_name.into_values().collect()
    }
}

/// What a check (and a repair) reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The namespace checked.
    pub namespace: String,
    /// `single`, `sentinel` or `cluster`.
    pub deployment: String,
    /// Per master: its address, shard count, sessions read and findings.
    pub masters: Vec<serde_json::Value>,
    /// The apps checked.
    pub apps: Vec<String>,
    /// Session hashes read.
    pub sessions: u64,
    /// Index entries read (`_sessions`, `_users`, `us:{id}`, `SESSIONS` members).
    pub index_entries: u64,
    /// Round trips to Redis the scan made (each a small bounded command or script).
    pub steps: u64,
    /// True when nothing was found.
    pub consistent: bool,
    /// The findings by kind.
    pub findings: Vec<Tally>,
    /// With `--repair`: what was changed, by change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repairs: Option<Vec<Tally>>,
    /// Milliseconds the check (and repair) took.
    pub elapsed_ms: u64,
}
