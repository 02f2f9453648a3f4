//! create: a new session and its index entries. On one Redis without durable writes, a
//! MULTI/EXEC of writes only (Redis runs it faster than a script); in the cluster layout and
//! with durable writes, create.lua beside this file (the same writes: a script is retried
//! while a slot moves, and makes one pipeline with its WAIT).

use super::super::RedisStore;
use crate::error::{Error, Result};
use crate::layout::{Layout, Shard};
use crate::redis_store::commands::{evalsha, Commands};
use crate::redis_store::scripts::ScriptCall;
use crate::session::{self, NewSession};
use redis::Pipeline;

impl Commands {
    /// The fields of a new session's hash, in the order the Node module writes them.
    fn new_fields(s: &NewSession<'_>, now: i64) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            (session::ID, s.id.to_owned()),
            (session::R, session::CREATED_COUNT.to_string()),
            (session::W, session::CREATED_COUNT.to_string()),
            (session::IP, s.ip.to_owned()),
            (session::LA, now.to_string()),
            (session::TTL, s.ttl.to_string()),
        ];
        if let Some(d) = &s.d {
            fields.push((session::D, crate::node_json::to_string(d)));
        }
        if s.no_resave {
            fields.push((session::NO_RESAVE, "1".to_owned()));
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
            pipe.expire(&hash, s.ttl.saturating_add(session::KEY_TTL_MARGIN))
                .ignore();
        }
        if let Some(events) = self.events {
            // The event in the same MULTI as the change (see ops/lib/emit.lua for the fields).
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
}

impl RedisStore {
    /// Creates the session and returns its token (in the cluster layout the token names
    /// the shard of the id).
    pub(crate) async fn create(&self, s: &NewSession<'_>, now: i64) -> Result<String> {
        self.writable()?;
        let index = self.layout().shard_for_id(s.id);
        let token = crate::token::generate(
            crate::clock::now_millis(),
            self.layout().token_marker(index),
        );
        let shard = &self.layout().shards()[index];
        // Durable writes send create as its script (the same writes), so that it and its
        // WAIT make one pipeline.
        if self.layout().is_clustered() || self.durable.is_some() {
            let cmd = self.commands.create_script(shard, s, &token, now);
            self.eval_write::<i64>(cmd).await?;
        } else {
            let pipe = self.commands.create(shard, s, &token, now);
            self.con
                .query_pipeline::<()>(&pipe)
                .await
                .map_err(Error::from_redis)?;
        }
        Ok(token)
    }
}
