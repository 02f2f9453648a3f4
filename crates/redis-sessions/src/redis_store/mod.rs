//! The Redis store: each operation is one round trip and atomic — a Lua script where it
//! must read before it writes, a MULTI/EXEC where it only writes (create, which Redis runs
//! faster than a script).

mod scripts;

use crate::error::Result;
use crate::layout::Layout;
use crate::session::{Data, Record};
use crate::store::NewSession;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ScriptInvocation};
use scripts::Scripts;
use serde_json::Value;
use std::time::Duration;

/// Fields as HMGET returns them, or nil for a missing/dead session.
type Fields = Option<Vec<Option<String>>>;

/// Sessions in one Redis server, in the Node-compatible layout.
#[derive(Clone)]
pub(crate) struct RedisStore {
    con: ConnectionManager,
    layout: Layout,
    scripts: std::sync::Arc<Scripts>,
    expire_keys: bool,
}

/// How long a call may wait for Redis before it fails: a request must fail fast while
/// Redis is away rather than queue without bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl RedisStore {
    pub async fn connect(
        client: redis::Client,
        layout: Layout,
        expire_keys: bool,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            // Reconnect attempts are cheap and frequent, so Redis coming back is noticed fast.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let con = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisStore {
            con,
            layout,
            scripts: std::sync::Arc::new(Scripts::new()),
            expire_keys,
        })
    }

    /// The scripts' common arguments for one session (see lua/prelude.lua).
    fn session_call<'a>(
        &self,
        invocation: &mut ScriptInvocation<'a>,
        app: &str,
        token: &str,
        now: i64,
    ) {
        let l = &self.layout;
        invocation
            .key(l.session(app, token))
            .key(l.app_sessions(app))
            .key(l.app_users(app))
            .key(l.expiries())
            .arg(now)
            .arg(app)
            .arg(token)
            .arg(l.user_sessions_prefix(app))
            .arg(l.cache_channel())
            .arg(if self.expire_keys { "1" } else { "0" });
    }

    pub async fn create(&self, s: &NewSession<'_>, token: &str, now: i64) -> Result<()> {
        let l = &self.layout;
        let hash = l.session(s.app, token);
        let mut fields: Vec<(&str, String)> = vec![
            ("id", s.id.to_owned()),
            ("r", "1".into()),
            ("w", "1".into()),
            ("ip", s.ip.to_owned()),
            ("la", now.to_string()),
            ("ttl", s.ttl.to_string()),
        ];
        if let Some(d) = &s.d {
            fields.push(("d", Value::Object(d.clone()).to_string()));
        }
        if s.no_resave {
            fields.push(("no_resave", "1".into()));
        }
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
        pipe.query_async::<()>(&mut self.con.clone()).await?;
        Ok(())
    }

    pub async fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        let mut call = self.scripts.get.prepare_invoke();
        self.session_call(&mut call, app, token, now);
        let fields: Fields = call.invoke_async(&mut self.con.clone()).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn set(&self, app: &str, token: &str, d: &Data, now: i64) -> Result<Option<Record>> {
        let mut call = self.scripts.set.prepare_invoke();
        self.session_call(&mut call, app, token, now);
        for (key, value) in d {
            // Keys and values go as JSON text: the script splices them into the stored
            // object without parsing numbers, so no precision is lost.
            call.arg(Value::String(key.clone()).to_string())
                .arg(value.to_string());
        }
        let fields: Fields = call.invoke_async(&mut self.con.clone()).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn kill(&self, app: &str, token: &str, now: i64) -> Result<bool> {
        let mut call = self.scripts.kill.prepare_invoke();
        self.session_call(&mut call, app, token, now);
        let killed: i64 = call.invoke_async(&mut self.con.clone()).await?;
        Ok(killed == 1)
    }

    pub async fn killsoid(&self, app: &str, id: &str) -> Result<u64> {
        let l = &self.layout;
        let killed: u64 = self
            .scripts
            .killsoid
            .key(l.user_sessions(app, id))
            .key(l.app_sessions(app))
            .key(l.app_users(app))
            .key(l.expiries())
            .arg(app)
            .arg(id)
            .arg(l.app_prefix(app))
            .arg(l.cache_channel())
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(killed)
    }

    /// One bounded batch of killall: (removed, left).
    pub async fn killall_batch(&self, app: &str, batch: usize) -> Result<(u64, u64)> {
        let l = &self.layout;
        let (removed, left): (u64, u64) = self
            .scripts
            .killall
            .key(l.app_sessions(app))
            .key(l.app_users(app))
            .key(l.expiries())
            .arg(batch)
            .arg(app)
            .arg(l.app_prefix(app))
            .arg(l.user_sessions_prefix(app))
            .arg(l.cache_channel())
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok((removed, left))
    }

    pub async fn activity(&self, app: &str, since: i64) -> Result<u64> {
        let count: u64 = self
            .con
            .clone()
            .zcount(self.layout.app_users(app), since, "+inf")
            .await?;
        Ok(count)
    }

    pub async fn soid(&self, app: &str, id: &str) -> Result<Vec<Record>> {
        let l = &self.layout;
        let rows: Vec<Vec<Option<String>>> = self
            .scripts
            .soid
            .key(l.user_sessions(app, id))
            .arg(l.app_prefix(app))
            .invoke_async(&mut self.con.clone())
            .await?;
        records(rows)
    }

    pub async fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        let l = &self.layout;
        let rows: Vec<Vec<Option<String>>> = self
            .scripts
            .soapp
            .key(l.app_sessions(app))
            .arg(since)
            .arg(l.app_prefix(app))
            .invoke_async(&mut self.con.clone())
            .await?;
        records(rows)
    }

    /// One bounded batch of the expiry sweep: how many sessions it killed.
    pub async fn sweep_batch(&self, now: i64, batch: usize) -> Result<u64> {
        let l = &self.layout;
        let killed: u64 = self
            .scripts
            .sweep
            .key(l.expiries())
            .arg(now)
            .arg(batch)
            .arg(l.prefix())
            .arg(l.cache_channel())
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(killed)
    }

    /// Takes the fleet-wide sweep lease for `ttl`; false when another process holds it.
    pub async fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.layout.sweep_lease())
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(taken.is_some())
    }

    pub async fn ping(&self) -> Result<String> {
        let pong: String = redis::cmd("PING")
            .query_async(&mut self.con.clone())
            .await?;
        Ok(pong)
    }
}

fn records(rows: Vec<Vec<Option<String>>>) -> Result<Vec<Record>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(record) = Record::from_fields(row)? {
            out.push(record);
        }
    }
    Ok(out)
}
