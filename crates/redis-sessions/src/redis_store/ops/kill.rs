//! kill: ends one session whether live or dead (tidying its index entries). Node layout:
//! one round trip, kill.lua names the id's `us:` set itself. Cluster layout: the hash's id
//! is read first so the script can declare that set; the script refuses (`Stale`) when the
//! id changed since, and the read is made again.

use super::super::{RedisStore, RETRIES};
use super::ReadFrom;
use crate::error::{Error, Result};
use crate::events::EndReason;
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use crate::redis_store::scripts::ScriptCall;
use redis::Cmd;

impl Commands {
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
        cmd.arg(l.session(app, token)).arg(crate::session::ID);
        cmd
    }
}

impl RedisStore {
    /// Node layout: one round trip. Cluster layout: the hash's id is read first, so the
    /// script can declare the id's `us:` set. `reason`: what its ended event says.
    pub(crate) async fn kill(
        &self,
        app: &str,
        token: &str,
        now: i64,
        reason: EndReason,
    ) -> Result<bool> {
        let reason = reason.as_str();
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(false);
        };
        for _ in 0..RETRIES {
            let read: Option<Option<String>> = self
                .members_first(
                    || self.commands.session_id(shard, app, token),
                    ReadFrom::Master,
                )
                .await?;
            let cmd = match &read {
                None => self.commands.kill(shard, app, token, now, reason),
                Some(None) => return Ok(false),
                Some(Some(id)) => self
                    .commands
                    .kill_declared(shard, app, token, id, now, reason),
            };
            match Killed::from_reply(self.eval_write(cmd).await?) {
                Killed::StaleId => continue,
                outcome => return Ok(outcome == Killed::Live),
            }
        }
        Err(Error::Contended("a token".into()))
    }
}

/// What kill.lua answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    /// A live session ended.
    Live,
    /// Nothing live: a dead session tidied away, or none at all.
    NotLive,
    /// The `us:` set the caller declared is not the hash's id's (the id read first has
    /// changed since: a token reused by another session). Nothing was changed.
    StaleId,
}

impl Killed {
    /// The script's integer: 1, 0, or -1 (see kill.lua).
    fn from_reply(reply: i64) -> Self {
        match reply {
            1 => Killed::Live,
            -1 => Killed::StaleId,
            _ => Killed::NotLive,
        }
    }
}
