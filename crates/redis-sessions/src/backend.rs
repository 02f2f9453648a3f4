//! The backends behind [`RedisSessions`](crate::store::RedisSessions): one Redis server, or the
//! embedded in-process store. Both take validated input and implement the same semantics,
//! and the same behaviour suite runs against both.

use crate::app_stats::AppStats;
use crate::data::Data;
use crate::error::Result;
use crate::events::{Cursor, EndReason, Entry, EntryId};
use crate::memory_store::MemoryStore;
use crate::redis_store::RedisStore;
use crate::session::{NewSession, Record};
use std::time::Duration;

/// The store a [`RedisSessions`](crate::RedisSessions) talks to.
#[derive(Clone)]
pub(crate) enum Backend {
    Redis(RedisStore),
    Memory(MemoryStore),
}

/// Calls the same method on whichever backend is in use.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Backend::Redis(store) => store.$method($($arg),*).await,
            Backend::Memory(store) => store.$method($($arg),*),
        }
    };
}

impl Backend {
    /// Creates the session; returns its token.
    pub(crate) async fn create(&self, s: &NewSession<'_>, now: i64) -> Result<String> {
        dispatch!(self.create(s, now))
    }
    pub(crate) async fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        dispatch!(self.get(app, token, now))
    }
    pub(crate) async fn set(
        &self,
        app: &str,
        token: &str,
        d: &Data,
        now: i64,
    ) -> Result<Option<Record>> {
        dispatch!(self.set(app, token, d, now))
    }
    /// Kills the session; `reason` is what its ended event says (events on).
    pub(crate) async fn kill(
        &self,
        app: &str,
        token: &str,
        now: i64,
        reason: EndReason,
    ) -> Result<bool> {
        dispatch!(self.kill(app, token, now, reason))
    }
    pub(crate) async fn killsoid(&self, app: &str, id: &str, keep: Option<&str>) -> Result<u64> {
        dispatch!(self.killsoid(app, id, keep))
    }
    pub(crate) async fn killall(&self, app: &str) -> Result<u64> {
        dispatch!(self.killall(app))
    }
    pub(crate) async fn activity(&self, app: &str, since: i64) -> Result<u64> {
        dispatch!(self.activity(app, since))
    }
    /// An app's counts, each window starting at one of `since`.
    pub(crate) async fn app_stats(&self, app: &str, since: &[i64]) -> Result<AppStats> {
        dispatch!(self.app_stats(app, since))
    }
    pub(crate) async fn soid(&self, app: &str, id: &str) -> Result<Vec<(String, Record)>> {
        dispatch!(self.soid(app, id))
    }
    pub(crate) async fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        dispatch!(self.soapp(app, since))
    }
    pub(crate) async fn sweep(&self, now: i64) -> Result<u64> {
        dispatch!(self.sweep(now))
    }
    pub(crate) async fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        dispatch!(self.try_sweep_lease(ttl))
    }
    pub(crate) async fn ping(&self) -> Result<String> {
        dispatch!(self.ping())
    }
    /// How many event streams an app has (one per shard).
    pub(crate) fn event_shards(&self) -> usize {
        match self {
            Backend::Redis(store) => store.event_shards(),
            Backend::Memory(_) => 1,
        }
    }
    /// The last event id of each shard's stream of `app` (see events.rs).
    pub(crate) async fn events_tail(&self, app: &str) -> Result<Vec<EntryId>> {
        dispatch!(self.events_tail(app))
    }
    /// Up to `count` events per shard after `cursor`.
    pub(crate) async fn read_events(
        &self,
        app: &str,
        cursor: &Cursor,
        count: usize,
    ) -> Result<Vec<Entry>> {
        dispatch!(self.read_events(app, cursor, count))
    }
}
