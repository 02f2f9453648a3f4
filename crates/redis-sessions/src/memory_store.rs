//! The embedded store: the Redis layout mirrored in process memory, for a zero-setup start
//! (tests, demos, a single-process REST server). It follows the Redis store's semantics
//! exactly — the same behaviour suite runs against both — but is not shared between
//! processes and does not survive a restart.

use crate::app_stats::AppStats;
use crate::data::Data;
use crate::error::Result;
use crate::events::{entry_fields, Cursor, EndReason, Entry, EntryId};
use crate::session::NewSession;
use crate::session::Record;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A sorted set: members by score, ordered by (score, member) as Redis orders them.
#[derive(Debug, Default)]
struct SortedSet<M: Ord + Clone + std::hash::Hash> {
    scores: HashMap<M, i64>,
    order: BTreeSet<(i64, M)>,
}

impl<M: Ord + Clone + std::hash::Hash> SortedSet<M> {
    fn add(&mut self, member: M, score: i64) {
        if let Some(old) = self.scores.insert(member.clone(), score) {
            self.order.remove(&(old, member.clone()));
        }
        self.order.insert((score, member));
    }

    fn remove(&mut self, member: &M) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(score, member.clone()));
                true
            }
            None => false,
        }
    }

    /// Members with a score of at least `since`, highest first. The default member sorts
    /// before every other, so it bounds the range from below.
    fn since(&self, since: i64) -> impl DoubleEndedIterator<Item = &(i64, M)>
    where
        M: Default,
    {
        self.order.range((since, M::default())..)
    }

    fn len(&self) -> usize {
        self.scores.len()
    }
}

/// The indexes of one app.
#[derive(Debug, Default)]
struct AppIndex {
    /// `{token}:{id}` by last activity, kept as (token, id).
    sessions: SortedSet<(String, String)>,
    /// ids by last activity.
    users: SortedSet<String>,
    /// `us:{id}`: the tokens of one id.
    user_tokens: HashMap<String, HashSet<String>>,
}

#[derive(Debug, Default)]
struct State {
    /// `(app, token)` → hash.
    hashes: HashMap<(String, String), Record>,
    apps: HashMap<String, AppIndex>,
    /// `SESSIONS`: (app, token, id) by time of death.
    expiries: SortedSet<(String, String, String)>,
    sweep_lease_until: Option<std::time::Instant>,
    /// Lifecycle events, when on: the Redis store's streams mirrored.
    events: Option<Events>,
}

/// An event entry's fields, as the scripts write them.
type Fields = Vec<(String, String)>;

/// The event streams of the embedded store: per app, the entries in order, trimmed to
/// `max_len` and, with an age, to `max_age_ms` (exactly; Redis keeps about that).
#[derive(Debug, Default)]
struct Events {
    max_len: u64,
    /// 0: by count only.
    max_age_ms: u64,
    streams: HashMap<String, VecDeque<(EntryId, Fields)>>,
    /// The last id given: ids grow as Redis's do (ms of the clock, then a sequence).
    last: EntryId,
}

impl Events {
    fn append(&mut self, app: &str, fields: Vec<(String, String)>) {
        let ms = crate::clock::now_millis();
        self.last = if ms > self.last.0 {
            (ms, 0)
        } else {
            (self.last.0, self.last.1 + 1)
        };
        let stream = self.streams.entry(app.to_owned()).or_default();
        stream.push_back((self.last, fields));
        while stream.len() as u64 > self.max_len {
            stream.pop_front();
        }
        if self.max_age_ms > 0 {
            let oldest = ms.saturating_sub(self.max_age_ms);
            while stream.front().is_some_and(|(id, _)| id.0 < oldest) {
                stream.pop_front();
            }
        }
    }
}

/// Sessions in this process's memory.
#[derive(Clone, Default)]
pub(crate) struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An embedded store that writes lifecycle events (kept per app as `events` say).
    pub(crate) fn with_events(events: Option<crate::options::EventOptions>) -> Self {
        let store = Self::default();
        store.lock().events = events.map(|events| Events {
            max_len: events.max_len,
            max_age_ms: events.max_age_ms(),
            ..Events::default()
        });
        store
    }

    /// The id of the last event of `app` ((0, 0) when none): the position "now".
    pub(crate) fn events_tail(&self, app: &str) -> Result<Vec<EntryId>> {
        let st = self.lock();
        let last = st
            .events
            .as_ref()
            .and_then(|e| e.streams.get(app))
            .and_then(|s| s.back())
            .map_or((0, 0), |(id, _)| *id);
        Ok(vec![last])
    }

    /// Up to `count` events of `app` after `cursor`.
    pub(crate) fn read_events(
        &self,
        app: &str,
        cursor: &Cursor,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let st = self.lock();
        let after = cursor.ids.first().copied().unwrap_or((0, 0));
        let Some(stream) = st.events.as_ref().and_then(|e| e.streams.get(app)) else {
            return Ok(Vec::new());
        };
        Ok(stream
            .iter()
            .filter(|(id, _)| *id > after)
            .take(count)
            .map(|(id, fields)| (0, *id, fields.clone()))
            .collect())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied operation behind
        // (each one mutates after all checks), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn create(&self, s: &NewSession<'_>, now: i64) -> Result<String> {
        let token = crate::token::generate(crate::clock::now_millis(), None);
        let token = token.as_str();
        let mut st = self.lock();
        let app = st.apps.entry(s.app.to_owned()).or_default();
        app.sessions.add((token.to_owned(), s.id.to_owned()), now);
        app.users.add(s.id.to_owned(), now);
        app.user_tokens
            .entry(s.id.to_owned())
            .or_default()
            .insert(token.to_owned());
        st.expiries.add(
            (s.app.to_owned(), token.to_owned(), s.id.to_owned()),
            now.saturating_add(s.ttl),
        );
        if let Some(events) = &mut st.events {
            let ttl = s.ttl.to_string();
            events.append(s.app, entry_fields("created", "", s.id, token, s.ip, &ttl));
        }
        st.hashes.insert(
            (s.app.to_owned(), token.to_owned()),
            Record {
                id: s.id.to_owned(),
                r: crate::session::CREATED_COUNT,
                w: crate::session::CREATED_COUNT,
                ttl: s.ttl,
                la: now,
                ip: s.ip.to_owned(),
                d: s.d.clone(),
                no_resave: s.no_resave,
                corrupt: false,
            },
        );
        Ok(token.to_owned())
    }

    pub(crate) fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        let mut st = self.lock();
        let key = (app.to_owned(), token.to_owned());
        let Some(record) = st.hashes.get_mut(&key).filter(|r| r.is_live(now)) else {
            return Ok(None);
        };
        let before = record.clone();
        record.r += 1;
        touch(&mut st, app, token, &before, now);
        Ok(Some(before))
    }

    pub(crate) fn set(&self, app: &str, token: &str, d: &Data, now: i64) -> Result<Option<Record>> {
        let mut st = self.lock();
        let key = (app.to_owned(), token.to_owned());
        let Some(record) = st.hashes.get_mut(&key).filter(|r| r.is_live(now)) else {
            return Ok(None);
        };
        let mut data = record.d.clone().unwrap_or_default();
        crate::node_json::merge(&mut data, d);
        // The bounds of the Redis store's merge, so both stores refuse the same calls.
        crate::limits::check(&data)?;
        record.d = (!data.is_empty()).then_some(data);
        record.w += 1;
        // The reply carries the new w and d with the times as they were before this call.
        let reply = record.clone();
        touch(&mut st, app, token, &reply, now);
        Ok(Some(reply))
    }

    pub(crate) fn kill(&self, app: &str, token: &str, now: i64, reason: EndReason) -> Result<bool> {
        let mut st = self.lock();
        let Some(record) = st.hashes.get(&(app.to_owned(), token.to_owned())) else {
            return Ok(false);
        };
        let live = record.is_live(now);
        let id = record.id.clone();
        kill_session(&mut st, app, token, &id, reason);
        Ok(live)
    }

    pub(crate) fn killsoid(&self, app: &str, id: &str, keep: Option<&str>) -> Result<u64> {
        let mut st = self.lock();
        let tokens: Vec<String> = st
            .apps
            .get(app)
            .and_then(|a| a.user_tokens.get(id))
            .map(|t| {
                t.iter()
                    .filter(|t| Some(t.as_str()) != keep)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut killed = 0;
        for token in tokens {
            killed += u64::from(kill_session(
                &mut st,
                app,
                &token,
                id,
                EndReason::SignedOutElsewhere,
            ));
        }
        Ok(killed)
    }

    /// Every session of an app (in memory there is no server to hold up: no batches).
    pub(crate) fn killall(&self, app: &str) -> Result<u64> {
        let mut st = self.lock();
        let members: Vec<(String, String)> = match st.apps.get(app) {
            Some(a) => a.sessions.order.iter().map(|(_, m)| m.clone()).collect(),
            None => return Ok(0),
        };
        for (token, id) in &members {
            kill_session(&mut st, app, token, id, EndReason::All);
        }
        st.apps.remove(app);
        Ok(members.len() as u64)
    }

    pub(crate) fn activity(&self, app: &str, since: i64) -> Result<u64> {
        let st = self.lock();
        Ok(st.apps.get(app).map_or(0, |a| a.users.since(since).count()) as u64)
    }

    /// The Redis store's counts, read from the same indexes (one shard, no node).
    pub(crate) fn app_stats(&self, app: &str, since: &[i64]) -> Result<AppStats> {
        let st = self.lock();
        let mut counts = vec![0u64; 2 + 2 * since.len()];
        if let Some(index) = st.apps.get(app) {
            counts[0] = index.sessions.len() as u64;
            counts[1] = index.users.len() as u64;
            for (w, start) in since.iter().enumerate() {
                counts[2 + w] = index.sessions.since(*start).count() as u64;
                counts[2 + since.len() + w] = index.users.since(*start).count() as u64;
            }
        }
        Ok(AppStats::of_shard(0, None, &counts, since.len()))
    }

    pub(crate) fn soid(&self, app: &str, id: &str) -> Result<Vec<(String, Record)>> {
        let st = self.lock();
        let Some(tokens) = st.apps.get(app).and_then(|a| a.user_tokens.get(id)) else {
            return Ok(Vec::new());
        };
        Ok(tokens
            .iter()
            .filter_map(|t| {
                let record = st.hashes.get(&(app.to_owned(), t.clone()))?;
                Some((t.clone(), record.clone()))
            })
            .collect())
    }

    pub(crate) fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        let st = self.lock();
        let Some(index) = st.apps.get(app) else {
            return Ok(Vec::new());
        };
        Ok(index
            .sessions
            .since(since)
            .rev()
            .filter_map(|(_, (token, _))| st.hashes.get(&(app.to_owned(), token.clone())).cloned())
            .collect())
    }

    pub(crate) fn sweep(&self, now: i64) -> Result<u64> {
        let mut st = self.lock();
        let due: Vec<(String, String, String)> = st
            .expiries
            .order
            .iter()
            .take_while(|(score, _)| *score <= now)
            .map(|(_, m)| m.clone())
            .collect();
        for (app, token, id) in &due {
            kill_session(&mut st, app, token, id, EndReason::Expired);
        }
        Ok(due.len() as u64)
    }

    pub(crate) fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        let mut st = self.lock();
        let now = std::time::Instant::now();
        if st.sweep_lease_until.is_some_and(|until| until > now) {
            return Ok(false);
        }
        st.sweep_lease_until = Some(now + ttl);
        Ok(true)
    }

    pub(crate) fn ping(&self) -> Result<String> {
        Ok("PONG".to_owned())
    }

    /// Every stored item, for tests that check nothing is left behind.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        let st = self.lock();
        st.hashes.is_empty() && st.apps.is_empty() && st.expiries.len() == 0
    }
}

/// The refresh of a read or write, as in ops/lib/touch.lua.
fn touch(st: &mut State, app: &str, token: &str, before: &Record, now: i64) {
    let idle = before.idle(now);
    if idle == 0 {
        return;
    }
    if idle > 1 {
        if let Some(record) = st.hashes.get_mut(&(app.to_owned(), token.to_owned())) {
            record.la = now;
            if record.no_resave {
                record.ttl = before.ttl - idle;
            }
        }
    }
    if let Some(index) = st.apps.get_mut(app) {
        index
            .sessions
            .add((token.to_owned(), before.id.clone()), now);
        index.users.add(before.id.clone(), now);
    }
    if !before.no_resave {
        st.expiries.add(
            (app.to_owned(), token.to_owned(), before.id.clone()),
            now.saturating_add(before.ttl),
        );
    }
}

/// Removes a session and its index entries, and with events on writes its end (as
/// ops/lib/kill_sessions.lua does, also when the hash was already gone); true when its
/// hash existed.
fn kill_session(st: &mut State, app: &str, token: &str, id: &str, reason: EndReason) -> bool {
    let removed = st.hashes.remove(&(app.to_owned(), token.to_owned()));
    if let Some(events) = &mut st.events {
        let ip = removed.as_ref().map_or("", |r| r.ip.as_str());
        events.append(
            app,
            entry_fields("ended", reason.as_str(), id, token, ip, ""),
        );
    }
    let existed = removed.is_some();
    st.expiries
        .remove(&(app.to_owned(), token.to_owned(), id.to_owned()));
    if let Some(index) = st.apps.get_mut(app) {
        index.sessions.remove(&(token.to_owned(), id.to_owned()));
        let now_empty = index.user_tokens.get_mut(id).is_some_and(|tokens| {
            tokens.remove(token);
            tokens.is_empty()
        });
        if now_empty || !index.user_tokens.contains_key(id) {
            index.user_tokens.remove(id);
            index.users.remove(&id.to_owned());
        }
        if index.sessions.len() == 0 && index.users.len() == 0 && index.user_tokens.is_empty() {
            st.apps.remove(app);
        }
    }
    existed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_removes_every_index_entry() {
        let store = MemoryStore::new();
        let new = NewSession {
            app: "app",
            id: "a:b",
            ip: "1",
            ttl: 60,
            d: None,
            no_resave: false,
        };
        let token = store.create(&new, 100).expect("create");
        store.get("app", &token, 105).expect("get");
        assert!(!store.is_empty());
        assert!(store
            .kill("app", &token, 106, EndReason::Killed)
            .expect("kill"));
        assert!(store.is_empty());
    }
}
