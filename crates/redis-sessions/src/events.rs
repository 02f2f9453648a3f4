//! Session lifecycle events: what a consumer learns when a session starts or ends.
//!
//! With events on ([`Options::events`](crate::Options::events), off by default) every
//! create, kill, kill of a device, killsoid, killall and expiry by the sweep appends one
//! event to a Redis Stream in the same script or MULTI/EXEC as the change itself, so an
//! event exists if and only if the change happened, and a consumer that was away reads
//! what it missed from its saved position (unlike keyspace notifications, which pub/sub
//! loses while no one listens). One stream per app (`{ns}:{app}:_events`); in the sharded
//! layout one per app and shard, in the slot of the sessions it tells of, so a session's
//! events are in one stream in the order of its changes.
//!
//! An event names the session by its device handle ([`device_handle`](crate::device_handle)),
//! never by its token. Node processes run none of these scripts: what they create or kill
//! writes no event (the sweep of a Rust process reports the expiry of sessions Node created).

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;

/// A session started or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum EventType {
    /// A session was created.
    Created,
    /// A session ended; [`Event::reason`] says how.
    Ended,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum EndReason {
    /// `kill` of its token.
    Killed,
    /// `killsoid` (log out everywhere) or `killsoid_keep` (every other device).
    SignedOutElsewhere,
    /// `kill_device` of its handle.
    Device,
    /// `killall` of its app.
    All,
    /// Its time of death came and the sweep removed it.
    Expired,
    /// Its token was replaced by a new one ([`RedisSessions::kill_rotated`](crate::RedisSessions::kill_rotated),
    /// which redis-sessions-axum's login and rotation call).
    Rotated,
}

impl EndReason {
    /// The name the stream and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Killed => "killed",
            EndReason::SignedOutElsewhere => "signedOutElsewhere",
            EndReason::Device => "device",
            EndReason::All => "all",
            EndReason::Expired => "expired",
            EndReason::Rotated => "rotated",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "killed" => EndReason::Killed,
            "signedOutElsewhere" => EndReason::SignedOutElsewhere,
            "device" => EndReason::Device,
            "all" => EndReason::All,
            "expired" => EndReason::Expired,
            "rotated" => EndReason::Rotated,
            _ => return None,
        })
    }
}

/// One lifecycle event, as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Event {
    /// The position just after this event: save it, and resume with
    /// [`EventsFrom::After`] to get what follows (SSE: the event's `id`).
    pub cursor: String,
    /// Started or ended.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Why it ended (None for `created`).
    pub reason: Option<EndReason>,
    /// The app.
    pub app: String,
    /// The user id of the session.
    pub id: String,
    /// The session's device handle (as `soid` lists it): never its token.
    pub device: String,
    /// The client address given at create ("" when the session was gone before its end
    /// was written: a hash expired by its key TTL).
    pub ip: String,
    /// The session's ttl, for `created`.
    pub ttl: Option<i64>,
    /// When it happened: ms since the epoch, by the Redis server's clock (the stream
    /// entry's id).
    pub at_ms: u64,
    /// The entry it was read from (shard, id): what a consumer group acknowledges.
    #[serde(skip)]
    #[cfg_attr(feature = "utoipa", schema(ignore))]
    pub(crate) entry: (usize, EntryId),
}

impl Event {
    /// The event's own name, `shard:ms-seq` (its stream entry): unique among the events of
    /// its app, and the same each time the event is read again. A consumer that may get an
    /// event twice (a consumer group's redelivery, a webhook's retry) drops what it has
    /// seen by it. Not a position to resume from: that is [`cursor`](Self::cursor).
    pub fn entry_id(&self) -> String {
        let (shard, (ms, seq)) = self.entry;
        format!("{shard}:{ms}-{seq}")
    }
}

/// A stream entry id: (ms, sequence), as Redis orders them.
pub(crate) type EntryId = (u64, u64);

/// An entry as a backend reads it: its shard, its id, its fields.
pub(crate) type Entry = (usize, EntryId, Vec<(String, String)>);

/// The fields of an event entry, in the order the scripts write them (ops/lib/emit.lua):
/// the embedded store keeps the same, so both stores' events are read by the same code.
pub(crate) fn entry_fields(
    kind: &str,
    reason: &str,
    id: &str,
    token: &str,
    ip: &str,
    ttl: &str,
) -> Vec<(String, String)> {
    [
        ("type", kind.to_owned()),
        ("reason", reason.to_owned()),
        ("id", id.to_owned()),
        ("device", crate::device::device_handle(token)),
        ("ip", ip.to_owned()),
        ("ttl", ttl.to_owned()),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_owned(), v))
    .collect()
}

/// `ms-seq` → (ms, seq).
pub(crate) fn parse_entry_id(text: &str) -> Option<EntryId> {
    let (ms, seq) = text.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// The fields of a stream entry (see ops/lib/emit.lua) → the event, or None for an entry
/// of another shape (written by something else: skipped, not fatal).
pub(crate) fn event_from_fields(
    app: &str,
    id: EntryId,
    fields: &[(String, String)],
) -> Option<Event> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.as_str())
    };
    let kind = match field("type")? {
        "created" => EventType::Created,
        "ended" => EventType::Ended,
        _ => return None,
    };
    let reason = match kind {
        EventType::Created => None,
        EventType::Ended => Some(EndReason::parse(field("reason")?)?),
    };
    Some(Event {
        cursor: String::new(),
        kind,
        reason,
        app: app.to_owned(),
        id: field("id")?.to_owned(),
        device: field("device")?.to_owned(),
        ip: field("ip").unwrap_or_default().to_owned(),
        ttl: field("ttl").and_then(|t| t.parse().ok()),
        at_ms: id.0,
        entry: (0, id),
    })
}

/// Where a consumer starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsFrom {
    /// Every event still retained.
    Start,
    /// Only events written after the call.
    Now,
    /// After a saved position: an [`Event::cursor`] (or an SSE `Last-Event-ID`).
    After(String),
}

/// A position in an app's events: the last entry read in each stream (one per shard).
/// Its text is the entry id (`ms-seq`) with one stream, else `shard:ms-seq` for each
/// shard past the start, joined by `,` (shards at the start are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) ids: Vec<EntryId>,
}

impl Cursor {
    /// The start of every stream.
    pub(crate) fn start(shards: usize) -> Self {
        Cursor {
            ids: vec![(0, 0); shards],
        }
    }

    /// Parses a saved position of a namespace of `shards` shards.
    pub(crate) fn parse(text: &str, shards: usize) -> Result<Self> {
        let invalid = || Error::InvalidFormat("Invalid event position".into());
        let mut cursor = Cursor::start(shards);
        if text.is_empty() {
            return Ok(cursor);
        }
        if shards == 1 && !text.contains(':') {
            cursor.ids[0] = parse_entry_id(text).ok_or_else(invalid)?;
            return Ok(cursor);
        }
        for part in text.split(',') {
            let (shard, id) = part.split_once(':').ok_or_else(invalid)?;
            let shard: usize = shard.parse().map_err(|_| invalid())?;
            let slot = cursor.ids.get_mut(shard).ok_or_else(invalid)?;
            *slot = parse_entry_id(id).ok_or_else(invalid)?;
        }
        Ok(cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(ms, seq)] = self.ids[..] {
            return write!(f, "{ms}-{seq}");
        }
        let mut first = true;
        for (shard, (ms, seq)) in self.ids.iter().enumerate() {
            if (*ms, *seq) == (0, 0) {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{shard}:{ms}-{seq}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        let one = Cursor::parse("1700000000000-3", 1).expect("one shard");
        assert_eq!(one.ids, vec![(1_700_000_000_000, 3)]);
        assert_eq!(one.to_string(), "1700000000000-3");
        let mut many = Cursor::start(60);
        many.ids[7] = (5, 1);
        many.ids[59] = (9, 0);
        let text = many.to_string();
        assert_eq!(text, "7:5-1,59:9-0");
        assert_eq!(Cursor::parse(&text, 60).expect("many"), many);
        assert_eq!(Cursor::parse("", 60).expect("start"), Cursor::start(60));
        for bad in ["x", "1-", "60:1-0", "7:5", "-1-0"] {
            assert!(Cursor::parse(bad, 60).is_err(), "{bad}");
        }
        assert!(Cursor::parse("nope", 1).is_err());
    }

    #[test]
    fn entries_of_another_shape_are_no_events() {
        let fields = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let created = fields(&[
            ("type", "created"),
            ("reason", ""),
            ("id", "bob"),
            ("device", "d"),
            ("ip", "1.2.3.4"),
            ("ttl", "60"),
        ]);
        let event = event_from_fields("app", (42, 0), &created).expect("created");
        assert_eq!(event.kind, EventType::Created);
        assert_eq!((event.ttl, event.at_ms, event.reason), (Some(60), 42, None));
        let ended = fields(&[
            ("type", "ended"),
            ("reason", "device"),
            ("id", "b"),
            ("device", "d"),
        ]);
        let event = event_from_fields("app", (1, 0), &ended).expect("ended");
        assert_eq!(event.reason, Some(EndReason::Device));
        assert!(event_from_fields("app", (1, 0), &fields(&[("type", "other")])).is_none());
        let unknown = fields(&[
            ("type", "ended"),
            ("reason", "?"),
            ("id", "b"),
            ("device", "d"),
        ]);
        assert!(event_from_fields("app", (1, 0), &unknown).is_none());
    }
}
