//! Lifecycle events shared by a fleet: a Redis consumer group over every stream of an app,
//! so each event is handled by one process, at least once.
//!
//! A process takes events ([`EventGroup::next`]), handles them, then acknowledges each
//! ([`EventGroup::ack`]). An event taken but never acknowledged (its process died or
//! hangs) stays pending in Redis, and after `claim_after` another member's `next` takes it
//! over (XAUTOCLAIM) before it takes new ones: nothing taken is lost, and an event may be
//! handled twice when its first handler died after the work but before the ack.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::event_stream::POLL;
use crate::events::{event_from_fields, Entry, EntryId, Event};
use crate::redis_store::RedisStore;
use crate::store::RedisSessions;
use crate::validate;
use std::time::Duration;

/// Most events one [`EventGroup::next`] takes from each stream.
const TAKE: usize = 128;

/// One member of a consumer group of an app's lifecycle events (Redis only).
#[derive(Debug, Clone)]
pub struct EventGroup {
    rs: RedisSessions,
    app: String,
    group: String,
    consumer: String,
    claim_after: Duration,
}

/// The entries read as events, each keeping its entry for the ack.
fn events(app: &str, entries: Vec<Entry>) -> Vec<Event> {
    entries
        .into_iter()
        .filter_map(|(shard, id, fields)| {
            let mut event = event_from_fields(app, id, &fields)?;
            event.entry = (shard, id);
            Some(event)
        })
        .collect()
}

impl RedisSessions {
    /// Joins (creating it when absent, at the start of what the streams retain) the
    /// consumer group `group` of the events of `app`, as member `consumer` (a name unique
    /// in the fleet and stable across restarts, e.g. the host name, so a restarted process
    /// takes its own pending events back first). Events pending with another member for
    /// longer than `claim_after` are taken over. Needs the Redis store.
    pub async fn event_group(
        &self,
        app: &str,
        group: &str,
        consumer: &str,
        claim_after: Duration,
    ) -> Result<EventGroup> {
        validate::app(app)?;
        for (name, what) in [(group, "group"), (consumer, "consumer")] {
            if name.is_empty() || name.len() > 200 {
                return Err(Error::InvalidValue(
                    format!("the {what} name must have 1 to 200 characters").into(),
                ));
            }
        }
        let store = redis_store(self)?;
        store.create_group(app, group, true).await?;
        Ok(EventGroup {
            rs: self.clone(),
            app: app.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            claim_after,
        })
    }
}

/// The Redis store behind `rs`: consumer groups are Redis's.
fn redis_store(rs: &RedisSessions) -> Result<&RedisStore> {
    match rs.backend()? {
        Backend::Redis(store) => Ok(store),
        Backend::Memory(_) => Err(Error::InvalidValue(
            "event consumer groups need the Redis store".into(),
        )),
    }
}

impl EventGroup {
    /// The next events to handle, waiting (polling every [`POLL`]) until there are some:
    /// first those left pending (taken and never acknowledged, by any member, this one
    /// before a restart too) for longer than `claim_after`, else new ones. Acknowledge
    /// each with [`ack`](Self::ack) once handled. A handler that takes longer than
    /// `claim_after` may see its events handled a second time by another member.
    pub async fn next(&mut self) -> Result<Vec<Event>> {
        self.next_up_to(TAKE).await
    }

    /// [`next`](Self::next), taking at most `count` events per shard (at least 1): a member
    /// whose handler is slow takes no more than it can handle within `claim_after`, and
    /// leaves the rest to the other members instead of holding them.
    pub async fn next_up_to(&mut self, count: usize) -> Result<Vec<Event>> {
        let count = count.max(1);
        let min_idle = self.claim_after.as_millis() as u64;
        loop {
            let store = redis_store(&self.rs)?;
            let mut taken = store
                .claim_stale(&self.app, &self.group, &self.consumer, min_idle, count)
                .await?;
            if taken.is_empty() {
                taken = store
                    .read_group(&self.app, &self.group, &self.consumer, count)
                    .await?;
            }
            if !taken.is_empty() {
                return Ok(events(&self.app, taken));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Tells the group that `events` are still being handled: their time pending starts
    /// again (XCLAIM … JUSTID to this member, one call per shard they lie in), so no other
    /// member takes them over while a slow handler (a webhook retrying against a receiver
    /// that is down) still works on them. Call it well within `claim_after`.
    pub async fn keep(&self, events: &[Event]) -> Result<()> {
        let store = redis_store(&self.rs)?;
        for (shard, ids) in by_shard(events) {
            store
                .keep(&self.app, &self.group, &self.consumer, shard, &ids)
                .await?;
        }
        Ok(())
    }

    /// Marks `event` handled: it leaves the group's pending list and no member gets it
    /// again.
    pub async fn ack(&self, event: &Event) -> Result<()> {
        self.ack_all(std::slice::from_ref(event)).await
    }

    /// Marks every one of `events` handled, with one XACK per shard they lie in rather
    /// than one per event (a webhook batch is acknowledged at once).
    pub async fn ack_all(&self, events: &[Event]) -> Result<()> {
        let store = redis_store(&self.rs)?;
        for (shard, ids) in by_shard(events) {
            store.ack(&self.app, &self.group, shard, &ids).await?;
        }
        Ok(())
    }
}

/// The stream entries of `events`, grouped by the shard whose stream holds them.
fn by_shard(events: &[Event]) -> std::collections::BTreeMap<usize, Vec<EntryId>> {
    let mut by_shard: std::collections::BTreeMap<usize, Vec<EntryId>> = Default::default();
    for event in events {
        by_shard
            .entry(event.entry.0)
            .or_default()
            .push(event.entry.1);
    }
    by_shard
}
