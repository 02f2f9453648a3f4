//! One file per operation: each holds the commands it sends (built without sending them,
//! so the benchmark can drive the same bytes at Redis), the store method that sends them
//! and turns the reply into a typed value, and its Lua script beside it (`<op>.lua`, with
//! the helpers the scripts share in `lib/`, see lib/README.md). What several operations
//! share is here: the keys and arguments of a call on one session, how a script gets the
//! members of an index, and the verbs.

mod activity;
mod app_stats;
mod create;
mod get;
mod kill;
mod killall;
mod killsoid;
mod set;
mod soapp;
mod soid;
mod sweep;

use super::RedisStore;
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::{evalsha, Commands};
use crate::redis_store::scripts::{LuaScript, ScriptCall};
use redis::Cmd;

/// How a script that acts on an index's members gets them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Members<'a> {
    /// The script reads them itself and names their keys in Lua: one round trip, for the
    /// Node layout on one Redis (where undeclared keys are allowed).
    Read,
    /// The caller read them first and the script gets them with every key declared: the
    /// cluster layout, whose scripts may touch only declared keys (checked by Redis before
    /// the script runs, so that a slot migration stops it before it starts, never half way).
    Given(&'a [String]),
}

impl<'a> Members<'a> {
    /// What [`RedisStore::members_first`] read: None (Node layout) → `Read`.
    pub(crate) fn of(read: &'a Option<Vec<String>>) -> Self {
        match read {
            None => Members::Read,
            Some(members) => Members::Given(members),
        }
    }

    /// True when the caller read the members and found none: nothing to act on.
    pub(crate) fn is_none_given(&self) -> bool {
        matches!(self, Members::Given(members) if members.is_empty())
    }
}

/// Where [`RedisStore::members_first`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadFrom {
    /// The master: the read comes before a write (kill, killsoid, killall, the sweep) and
    /// must see the master's index.
    Master,
    /// A replica when replica reads are on (soid, soapp): the answer may be a moment old.
    Replica,
}

impl RedisStore {
    /// "Read the members, then act", the first half: in the cluster layout, the members
    /// the script will act on, read with `read` before it (so that it can declare every
    /// key it touches); None in the Node layout, where the script reads them itself in
    /// the same round trip. Every operation over an index's members starts here, so the
    /// two layouts differ in this one place.
    pub(crate) async fn members_first<T: redis::FromRedisValue>(
        &self,
        read: impl FnOnce() -> Cmd,
        from: ReadFrom,
    ) -> Result<Option<T>> {
        if !self.layout().is_clustered() {
            return Ok(None);
        }
        let cmd = read();
        let members = match from {
            ReadFrom::Master => self.con.query(&cmd).await,
            ReadFrom::Replica => self.read_query(&cmd).await,
        };
        members.map(Some).map_err(Error::from_redis)
    }
}

/// Ends a script call with `read`, or `given` and the members (see each script's header).
fn with_members<'a>(mut cmd: ScriptCall<'a>, members: Members<'_>) -> ScriptCall<'a> {
    match members {
        Members::Read => {
            cmd.arg("read");
        }
        Members::Given(members) => {
            cmd.arg("given");
            for m in members {
                cmd.arg(m);
            }
        }
    }
    cmd
}

impl Commands {
    /// The scripts' common keys and arguments for one session (see ops/lib/README.md),
    /// with the id's `us:` set declared as KEYS[5] when it is given.
    fn session_call<'a>(
        &'a self,
        script: &'a LuaScript,
        l: &Shard,
        app: &str,
        token: &str,
        now: i64,
        declared: &[&str],
    ) -> ScriptCall<'a> {
        let (session, sessions, users, expiries) = (
            l.session(app, token),
            l.app_sessions(app),
            l.app_users(app),
            l.expiries(),
        );
        let mut keys = vec![session.as_str(), &sessions, &users, &expiries];
        keys.extend(declared);
        let mut cmd = evalsha(script, &keys);
        cmd.arg(now).arg(app).arg(token).arg(self.index_mode());
        cmd
    }

    /// How touches keep the indexes (see ops/lib/touch.lua): `e` the expiry index moved by
    /// every touch, as the Node layout needs (a Node process sweeps by it without looking
    /// at the hash), or `l` left to the sweep, which moves a member that is due but alive
    /// (the sharded layout: only our sweep reads it); then `t` when hashes have a key TTL.
    fn index_mode(&self) -> &'static str {
        match (self.layout.is_clustered(), self.expire_keys) {
            (false, false) => "e",
            (false, true) => "et",
            (true, false) => "l",
            (true, true) => "lt",
        }
    }

    /// The verb of the read-only scripts (soid, soapp).
    fn read_verb(&self) -> &'static str {
        if self.layout.is_clustered() {
            "EVALSHA_RO"
        } else {
            "EVALSHA"
        }
    }

    /// The event stream of `app` in shard `l`, when events are on and the layout
    /// declares every key (cluster): the key a script must declare to write it.
    fn declared_events(&self, l: &Shard, app: &str) -> Option<String> {
        (self.events.is_some() && self.layout.is_clustered()).then(|| l.app_events(app))
    }

    /// `SMEMBERS us:{id}` — the first read of killsoid and soid in the cluster layout.
    pub(crate) fn user_tokens(&self, l: &Shard, app: &str, id: &str) -> Cmd {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(l.user_sessions(app, id));
        cmd
    }
}
