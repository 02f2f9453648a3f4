//! Consuming lifecycle events (see events.rs): from a saved position, as a page, as an
//! endless [`Stream`], or shared by a fleet as a consumer group.
//!
//! The reads never block in Redis (see redis_store/events.rs): a consumer asks every
//! stream of the app for what follows its position, and when none had anything waits
//! [`POLL`] before it asks again. Each ask is an XRANGE per shard: one on one Redis, one
//! per shard on a cluster (60 by default), so a consumer costs Redis that many small
//! reads per [`POLL`] while idle.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::events::{event_from_fields, Cursor, Entry, Event, EventsFrom};
use crate::store::RedisSessions;
use crate::validate;
use futures_util::Stream;
use std::collections::VecDeque;
use std::time::Duration;

/// How long an idle consumer waits before it asks the streams again.
pub const POLL: Duration = Duration::from_millis(100);

/// Most events one read asks each stream for.
const PAGE: usize = 256;

/// A page of events and the position after it (the position given when it is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventPage {
    /// The events, oldest first (on a cluster, by time across shards; a session's events
    /// are always in their order).
    pub events: Vec<Event>,
    /// Where to resume: [`EventsFrom::After`] this.
    pub cursor: String,
}

/// Orders the entries read from every shard by time and turns them into events, moving
/// `cursor` past each (also past an entry that is no event, so it is not read again).
fn advance(app: &str, cursor: &mut Cursor, mut entries: Vec<Entry>, count: usize) -> Vec<Event> {
    entries.sort_by_key(|(shard, id, _)| (*id, *shard));
    entries.truncate(count);
    let mut out = Vec::with_capacity(entries.len());
    for (shard, id, fields) in entries {
        if let Some(slot) = cursor.ids.get_mut(shard) {
            *slot = id;
        }
        if let Some(mut event) = event_from_fields(app, id, &fields) {
            event.entry = (shard, id);
            event.cursor = cursor.to_string();
            out.push(event);
        }
    }
    out
}

/// Where `from` is, as a cursor over every stream of `app`.
async fn resolve(backend: &Backend, app: &str, from: &EventsFrom) -> Result<Cursor> {
    let shards = backend.event_shards();
    match from {
        EventsFrom::Start => Ok(Cursor::start(shards)),
        EventsFrom::After(text) => Cursor::parse(text, shards),
        EventsFrom::Now => Ok(Cursor {
            ids: backend.events_tail(app).await?,
        }),
    }
}

impl RedisSessions {
    /// Up to `count` (1..=1000) of the lifecycle events of `app` that follow `from`, and
    /// the position after them: the page-by-page form (REST's JSON page).
    pub async fn events_page(
        &self,
        app: &str,
        from: &EventsFrom,
        count: usize,
    ) -> Result<EventPage> {
        validate::app(app)?;
        let count = count.clamp(1, 1000);
        let backend = self.backend()?;
        let mut cursor = resolve(backend, app, from).await?;
        let entries = backend.read_events(app, &cursor, count).await?;
        let events = advance(app, &mut cursor, entries, count);
        Ok(EventPage {
            events,
            cursor: cursor.to_string(),
        })
    }

    /// The lifecycle events of `app` from `from`, without end: a new event arrives within
    /// about [`POLL`] of its write. Save each [`Event::cursor`] the handler is done with,
    /// and resume after a restart with [`EventsFrom::After`]: nothing is missed (as long
    /// as the streams' retention still holds it). A failed read yields its error, then the
    /// stream goes on from the same position after [`POLL`]; drop the stream to stop.
    /// Events are only written when [`Options::events`](crate::Options::events) is on.
    pub fn events(&self, app: &str, from: EventsFrom) -> impl Stream<Item = Result<Event>> + Send {
        struct State {
            rs: RedisSessions,
            app: String,
            from: EventsFrom,
            cursor: Option<Cursor>,
            ready: VecDeque<Event>,
            /// Set after an error no retry can mend (a bad app name or position).
            done: bool,
        }
        let state = State {
            rs: self.clone(),
            app: app.to_owned(),
            from,
            cursor: None,
            ready: VecDeque::new(),
            done: false,
        };
        futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(event) = st.ready.pop_front() {
                    return Some((Ok(event), st));
                }
                if st.done {
                    return None;
                }
                let read = async {
                    validate::app(&st.app)?;
                    let backend = st.rs.backend()?;
                    let mut cursor = match st.cursor.take() {
                        Some(cursor) => cursor,
                        None => resolve(backend, &st.app, &st.from).await?,
                    };
                    // The cursor is kept even when the read fails, so the next try
                    // resumes where this one was.
                    let entries = backend.read_events(&st.app, &cursor, PAGE).await;
                    let events = entries.map(|e| advance(&st.app, &mut cursor, e, usize::MAX));
                    st.cursor = Some(cursor);
                    events
                };
                match read.await {
                    Ok(events) if events.is_empty() => tokio::time::sleep(POLL).await,
                    Ok(events) => st.ready.extend(events),
                    Err(Error::Closed) => return None,
                    Err(err @ (Error::InvalidFormat(_) | Error::InvalidValue(_))) => {
                        st.done = true;
                        return Some((Err(err), st));
                    }
                    Err(err) => {
                        tokio::time::sleep(POLL).await;
                        return Some((Err(err), st));
                    }
                }
            }
        })
    }
}
