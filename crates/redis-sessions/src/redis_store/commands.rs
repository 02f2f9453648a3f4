//! The exact commands each operation sends to Redis, built without sending them: the
//! store sends them, and the benchmark drives the same bytes straight at Redis to measure
//! the ceiling.

use super::scripts::{LuaScript, ScriptCall, Scripts};
use crate::data::Data;
use crate::layout::{Layout, Shard};
use crate::session::NewSession;
use redis::{Cmd, Pipeline};
use std::sync::Arc;

/// Builds the commands of one namespace's operations.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    layout: Layout,
    scripts: Arc<Scripts>,
    expire_keys: bool,
    /// The event streams' retention (`MAXLEN ~`) when lifecycle events are on.
    events: Option<crate::options::EventOptions>,
}

/// `EVALSHA sha numkeys keys…` of `script` — arguments follow.
fn evalsha<'a>(script: &'a LuaScript, keys: &[&str]) -> ScriptCall<'a> {
    script.call("EVALSHA", keys)
}

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

/// A session of an index member `{token}:{id}` (`_sessions`) or `{app}:{token}:{id}`
/// (`SESSIONS`), or None for a member of another shape.
pub(crate) fn split_session_member(member: &str) -> Option<(&str, &str)> {
    member.split_once(':')
}

/// `{app}:{token}:{id}` → (app, token, id), as sweep.lua cuts it (a token is 64 characters).
pub(crate) fn split_expiry_member(member: &str) -> Option<(&str, &str, &str)> {
    let (app, rest) = member.split_once(':')?;
    let token = rest.get(..64)?;
    let id = rest.get(64..)?.strip_prefix(':')?;
    Some((app, token, id))
}

impl Commands {
    pub(crate) fn new(layout: Layout, expire_keys: bool) -> Self {
        Commands {
            layout,
            scripts: Arc::new(Scripts::new(None)),
            expire_keys,
            events: None,
        }
    }

    /// The same commands with lifecycle events on (`Some(max_len)`) or off: the scripts
    /// are built again with their event lines in or out (see scripts.rs).
    pub(crate) fn with_events(mut self, events: Option<crate::options::EventOptions>) -> Self {
        self.events = events;
        self.scripts = Arc::new(Scripts::new(events));
        self
    }

    /// The event stream of `app` in shard `l`, when events are on and the layout
    /// declares every key (cluster): the key a script must declare to write it.
    fn declared_events(&self, l: &Shard, app: &str) -> Option<String> {
        (self.events.is_some() && self.layout.is_clustered()).then(|| l.app_events(app))
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The scripts' common keys and arguments for one session (see lua/lib/README.md),
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

    /// How touches keep the indexes (see lua/lib/touch.lua): `e` the expiry index moved by
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

    /// The fields of a new session's hash, in the order the Node module writes them.
    fn new_fields(s: &NewSession<'_>, now: i64) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", s.id.to_owned()),
            ("r", "1".to_owned()),
            ("w", "1".to_owned()),
            ("ip", s.ip.to_owned()),
            ("la", now.to_string()),
            ("ttl", s.ttl.to_string()),
        ];
        if let Some(d) = &s.d {
            fields.push(("d", crate::node_json::to_string(d)));
        }
        if s.no_resave {
            fields.push(("no_resave", "1".to_owned()));
        }
        fields
    }

    /// create as a script: for the sharded layout, whose calls the cluster client retries
    /// while a slot migrates (a MULTI/EXEC would abort).
    pub(crate) fn create_script(
        &self,
        l: &Shard,
        s: &NewSession<'_>,
        token: &str,
        now: i64,
    ) -> ScriptCall<'_> {
        let events = l.app_events(s.app);
        let mut keys = vec![
            l.session(s.app, token),
            l.app_sessions(s.app),
            l.app_users(s.app),
            l.expiries(),
            l.user_sessions(s.app, s.id),
        ];
        if self.events.is_some() {
            keys.push(events);
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.create, &keys);
        cmd.arg(now)
            .arg(s.app)
            .arg(token)
            .arg(s.id)
            .arg(s.ttl)
            .arg(if self.expire_keys { "1" } else { "0" });
        for (field, value) in Self::new_fields(s, now) {
            cmd.arg(field).arg(value);
        }
        cmd
    }

    /// create: a MULTI/EXEC of writes only (Redis runs it faster than a script).
    pub(crate) fn create(&self, l: &Shard, s: &NewSession<'_>, token: &str, now: i64) -> Pipeline {
        let hash = l.session(s.app, token);
        let fields = Self::new_fields(s, now);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(
                l.app_sessions(s.app),
                Layout::session_member(token, s.id),
                now,
            )
            .ignore()
            .zadd(l.app_users(s.app), s.id, now)
            .ignore()
            .zadd(
                l.expiries(),
                Layout::expiry_member(s.app, token, s.id),
                now.saturating_add(s.ttl),
            )
            .ignore()
            .sadd(l.user_sessions(s.app, s.id), token)
            .ignore()
            .hset_multiple(&hash, &fields)
            .ignore();
        if self.expire_keys {
            pipe.expire(&hash, s.ttl.saturating_add(1)).ignore();
        }
        if let Some(events) = self.events {
            // The event in the same MULTI as the change (see lua/lib/emit.lua for the fields).
            pipe.cmd("XADD")
                .arg(l.app_events(s.app))
                .arg("MAXLEN")
                .arg("~")
                .arg(events.max_len)
                .arg("*")
                .arg("type")
                .arg("created")
                .arg("reason")
                .arg("")
                .arg("id")
                .arg(s.id)
                .arg("device")
                .arg(crate::device::device_handle(token))
                .arg("ip")
                .arg(s.ip)
                .arg("ttl")
                .arg(s.ttl)
                .ignore();
            if events.max_age.is_some() {
                // Entry ids are Redis's clock; a MULTI cannot read it (the scripts use
                // TIME), so the cut-off comes from this machine's clock: a skew of seconds
                // against a retention of hours or days.
                let oldest = crate::clock::now_millis().saturating_sub(events.max_age_ms());
                pipe.cmd("XTRIM")
                    .arg(l.app_events(s.app))
                    .arg("MINID")
                    .arg("~")
                    .arg(oldest)
                    .ignore();
            }
        }
        pipe
    }

    pub(crate) fn get(&self, l: &Shard, app: &str, token: &str, now: i64) -> ScriptCall<'_> {
        self.session_call(&self.scripts.get, l, app, token, now, &[])
    }

    pub(crate) fn set(
        &self,
        l: &Shard,
        app: &str,
        token: &str,
        d: &Data,
        now: i64,
    ) -> ScriptCall<'_> {
        let mut cmd = self.session_call(&self.scripts.set, l, app, token, now, &[]);
        cmd.arg(self.layout.invalidation_spec(l));
        for (key, value) in d {
            // Keys and values go as the JSON text Node writes: the script compares keys as
            // text and splices values in without reading numbers, so none loses a digit. A
            // null deletes its key and goes as the empty text (`null` is a value Node can
            // store: JSON.stringify writes Infinity as null).
            cmd.arg(crate::node_json::to_vec(key));
            if value.is_null() {
                cmd.arg(&b""[..]);
            } else {
                cmd.arg(crate::node_json::to_vec(value));
            }
        }
        cmd
    }

    /// kill in one round trip: the script names the id's `us:` set itself (Node layout).
    /// `reason`: what the ended event says, with events on (`killed`, `device`).
    pub(crate) fn kill(
        &self,
        l: &Shard,
        app: &str,
        token: &str,
        now: i64,
        reason: &str,
    ) -> ScriptCall<'_> {
        let cmd = self.session_call(&self.scripts.kill, l, app, token, now, &[]);
        self.kill_args(cmd, l, app, reason)
    }

    /// kill's arguments after the session call's: the channel spec, the `us:` prefix, and
    /// with events on the reason.
    fn kill_args<'a>(
        &self,
        mut cmd: ScriptCall<'a>,
        l: &Shard,
        app: &str,
        reason: &str,
    ) -> ScriptCall<'a> {
        cmd.arg(self.layout.invalidation_spec(l))
            .arg(l.user_sessions_prefix(app));
        if self.events.is_some() {
            cmd.arg(reason);
        }
        cmd
    }

    /// kill with every key declared: `id` was read from the hash first (cluster layout).
    pub(crate) fn kill_declared(
        &self,
        l: &Shard,
        app: &str,
        token: &str,
        id: &str,
        now: i64,
        reason: &str,
    ) -> ScriptCall<'_> {
        let user_sessions = l.user_sessions(app, id);
        let events = self.declared_events(l, app);
        let mut declared = vec![user_sessions.as_str()];
        declared.extend(events.as_deref());
        let cmd = self.session_call(&self.scripts.kill, l, app, token, now, &declared);
        self.kill_args(cmd, l, app, reason)
    }

    /// `HGET hash id` — kill's first read in the cluster layout.
    pub(crate) fn session_id(&self, l: &Shard, app: &str, token: &str) -> Cmd {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(l.session(app, token)).arg("id");
        cmd
    }

    /// `SMEMBERS us:{id}` — the first read of killsoid and soid in the cluster layout.
    pub(crate) fn user_tokens(&self, l: &Shard, app: &str, id: &str) -> Cmd {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(l.user_sessions(app, id));
        cmd
    }

    /// killsoid: with `Members::Given`, `whole` says the tokens are the whole set as read
    /// (but `keep`, the token of a session that stays).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn killsoid(
        &self,
        l: &Shard,
        app: &str,
        id: &str,
        tokens: Members<'_>,
        keep: Option<&str>,
        whole: bool,
        batch: usize,
    ) -> ScriptCall<'_> {
        let us = l.user_sessions(app, id);
        let mut keys = vec![us, l.app_sessions(app), l.app_users(app), l.expiries()];
        if let Members::Given(tokens) = tokens {
            keys.extend(tokens.iter().map(|t| l.session(app, t)));
            keys.extend(self.declared_events(l, app));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.killsoid, &keys);
        cmd.arg(app)
            .arg(id)
            .arg(l.app_prefix(app))
            .arg(self.layout.invalidation_spec(l));
        match tokens {
            Members::Read => {
                cmd.arg("read").arg(keep.unwrap_or("")).arg(batch);
            }
            Members::Given(tokens) => {
                cmd.arg(if whole { "whole" } else { "part" })
                    .arg(keep.unwrap_or(""));
                for t in tokens {
                    cmd.arg(t);
                }
            }
        }
        cmd
    }

    /// `ZRANGE _sessions 0 batch-1` — killall's first read in the cluster layout.
    pub(crate) fn app_members(&self, l: &Shard, app: &str, batch: usize) -> Cmd {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(l.app_sessions(app))
            .arg(0)
            .arg(batch.saturating_sub(1));
        cmd
    }

    pub(crate) fn killall_batch(
        &self,
        l: &Shard,
        app: &str,
        members: Members<'_>,
        batch: usize,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.app_sessions(app), l.app_users(app), l.expiries()];
        if let Members::Given(members) = members {
            let mut ids = std::collections::BTreeSet::new();
            for (token, id) in members.iter().filter_map(|m| split_session_member(m)) {
                keys.push(l.session(app, token));
                ids.insert(id);
            }
            keys.extend(ids.into_iter().map(|id| l.user_sessions(app, id)));
            keys.extend(self.declared_events(l, app));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.killall, &keys);
        cmd.arg(app)
            .arg(l.app_prefix(app))
            .arg(l.user_sessions_prefix(app))
            .arg(self.layout.invalidation_spec(l));
        cmd.arg(batch);
        with_members(cmd, members)
    }

    /// `ZCOUNT _users since +inf`.
    pub(crate) fn activity(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(l.app_users(app)).arg(since).arg("+inf");
        cmd
    }

    /// soid: EVALSHA in the Node layout (Redis < 7 stays supported), EVALSHA_RO with every
    /// key declared in the cluster layout.
    pub(crate) fn soid(
        &self,
        l: &Shard,
        app: &str,
        id: &str,
        tokens: Members<'_>,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.user_sessions(app, id)];
        if let Members::Given(tokens) = tokens {
            keys.extend(tokens.iter().map(|t| l.session(app, t)));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = self.scripts.soid.call(self.read_verb(), &keys);
        cmd.arg(l.app_prefix(app));
        with_members(cmd, tokens)
    }

    /// An app's counts in one shard: sessions, users, and each active since each of `since`.
    pub(crate) fn app_stats(&self, l: &Shard, app: &str, since: &[i64]) -> ScriptCall<'_> {
        let (sessions, users) = (l.app_sessions(app), l.app_users(app));
        let mut cmd = self
            .scripts
            .app_stats
            .call(self.read_verb(), &[&sessions, &users]);
        for start in since {
            cmd.arg(*start);
        }
        cmd
    }

    /// `ZREVRANGEBYSCORE _sessions +inf since` — soapp's first read in the cluster layout.
    pub(crate) fn active_members(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
        cmd.arg(l.app_sessions(app)).arg("+inf").arg(since);
        cmd
    }

    pub(crate) fn soapp(
        &self,
        l: &Shard,
        app: &str,
        since: i64,
        members: Members<'_>,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.app_sessions(app)];
        if let Members::Given(members) = members {
            keys.extend(
                members
                    .iter()
                    .map(|m| l.session(app, split_session_member(m).map_or(m.as_str(), |p| p.0))),
            );
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = self.scripts.soapp.call(self.read_verb(), &keys);
        cmd.arg(since).arg(l.app_prefix(app));
        with_members(cmd, members)
    }

    /// `ZRANGEBYSCORE SESSIONS -inf now LIMIT 0 batch` — the sweep's first read in the
    /// cluster layout.
    pub(crate) fn due_members(&self, l: &Shard, now: i64, batch: usize) -> Cmd {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(l.expiries())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(batch);
        cmd
    }

    pub(crate) fn sweep_batch(
        &self,
        l: &Shard,
        now: i64,
        members: Members<'_>,
        batch: usize,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.expiries()];
        if let Members::Given(members) = members {
            let mut per_app = std::collections::BTreeSet::new();
            for (app, token, id) in members.iter().filter_map(|m| split_expiry_member(m)) {
                keys.push(l.session(app, token));
                per_app.insert((app, None));
                per_app.insert((app, Some(id)));
            }
            for (app, id) in per_app {
                match id {
                    None => {
                        keys.extend([l.app_sessions(app), l.app_users(app)]);
                        keys.extend(self.declared_events(l, app));
                    }
                    Some(id) => keys.push(l.user_sessions(app, id)),
                }
            }
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.sweep, &keys);
        cmd.arg(now)
            .arg(batch)
            .arg(l.prefix())
            .arg(self.layout.invalidation_spec(l))
            .arg(&self.index_mode()[..1]);
        with_members(cmd, members)
    }

    /// The verb of the read-only scripts (soid, soapp).
    fn read_verb(&self) -> &'static str {
        if self.layout.is_clustered() {
            "EVALSHA_RO"
        } else {
            "EVALSHA"
        }
    }

    /// Records the layout on first use, and returns what is recorded (see layout.lua).
    pub(crate) fn layout_record(&self) -> ScriptCall<'_> {
        let record = self.layout.record();
        let mut cmd = evalsha(&self.scripts.layout, &[&self.layout.record_key()]);
        cmd.arg(record.kind).arg(record.shards).arg(record.version);
        cmd
    }

    pub(crate) fn sweep_lease(&self, ttl_ms: u64) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.layout.sweep_lease())
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_members_are_cut_as_the_sweep_script_cuts_them() {
        let token = "a".repeat(64);
        let member = format!("app:{token}:id:with:colons");
        assert_eq!(
            split_expiry_member(&member),
            Some(("app", token.as_str(), "id:with:colons"))
        );
        assert_eq!(split_expiry_member("app:short:id"), None);
        assert_eq!(split_expiry_member(&format!("app:{token}")), None);
        assert_eq!(split_expiry_member("no-colon"), None);
    }

    #[test]
    fn cluster_calls_declare_every_key_they_touch() {
        let commands = Commands::new(Layout::cluster("rs", 60), true);
        let shard = &commands.layout().shards()[commands.layout().shard_for_id("bob")];
        let token = "t".repeat(64);
        let members = [format!("app:{token}:bob")];
        let call = commands.sweep_batch(shard, 100, Members::Given(&members), 1000);
        let args: Vec<String> = call
            .cmd()
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        let numkeys: usize = args[2].parse().expect("numkeys");
        let keys = &args[3..3 + numkeys];
        for key in [
            shard.expiries(),
            shard.session("app", &token),
            shard.app_sessions("app"),
            shard.app_users("app"),
            shard.user_sessions("app", "bob"),
        ] {
            assert!(keys.contains(&key), "{key} is declared: {keys:?}");
        }
        assert_eq!(keys.len(), 5, "nothing else: {keys:?}");
    }
}
