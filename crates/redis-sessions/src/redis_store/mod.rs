//! The Redis store: each operation is one round trip and atomic — a Lua script (EVALSHA)
//! where it must read before it writes, a MULTI/EXEC where it only writes (create, which
//! Redis runs faster than a script).

pub(crate) mod commands;
mod scripts;

use crate::error::Result;
use crate::layout::Layout;
use crate::session::{Data, Record};
use crate::store::NewSession;
use commands::Commands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Script};
use std::time::Duration;

/// Fields as HMGET returns them, or nil for a missing/dead session.
type Fields = Option<Vec<Option<String>>>;

/// Sessions in one Redis server, in the Node-compatible layout.
#[derive(Clone)]
pub(crate) struct RedisStore {
    con: ConnectionManager,
    commands: Commands,
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
            commands: Commands::new(layout, expire_keys),
        })
    }

    /// Sends an EVALSHA; on NOSCRIPT (Redis restarted, SCRIPT FLUSH, a failover) loads the
    /// script and sends it once more.
    async fn eval<T: FromRedisValue>(&self, script: &Script, cmd: Cmd) -> Result<T> {
        let mut con = self.con.clone();
        match cmd.query_async(&mut con).await {
            Err(err) if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut con).await?;
                Ok(cmd.query_async(&mut con).await?)
            }
            other => Ok(other?),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> Result<T> {
        Ok(cmd.query_async(&mut self.con.clone()).await?)
    }

    pub async fn create(&self, s: &NewSession<'_>, token: &str, now: i64) -> Result<()> {
        let pipe = self.commands.create(s, token, now);
        pipe.query_async::<()>(&mut self.con.clone()).await?;
        Ok(())
    }

    pub async fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        let cmd = self.commands.get(app, token, now);
        let fields: Fields = self.eval(&self.commands.scripts().get, cmd).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn set(&self, app: &str, token: &str, d: &Data, now: i64) -> Result<Option<Record>> {
        let cmd = self.commands.set(app, token, d, now);
        let fields: Fields = self.eval(&self.commands.scripts().set, cmd).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn kill(&self, app: &str, token: &str, now: i64) -> Result<bool> {
        let cmd = self.commands.kill(app, token, now);
        let killed: i64 = self.eval(&self.commands.scripts().kill, cmd).await?;
        Ok(killed == 1)
    }

    pub async fn killsoid(&self, app: &str, id: &str) -> Result<u64> {
        let cmd = self.commands.killsoid(app, id);
        self.eval(&self.commands.scripts().killsoid, cmd).await
    }

    /// One bounded batch of killall: (removed, left).
    pub async fn killall_batch(&self, app: &str, batch: usize) -> Result<(u64, u64)> {
        let cmd = self.commands.killall_batch(app, batch);
        self.eval(&self.commands.scripts().killall, cmd).await
    }

    pub async fn activity(&self, app: &str, since: i64) -> Result<u64> {
        self.query(self.commands.activity(app, since)).await
    }

    pub async fn soid(&self, app: &str, id: &str) -> Result<Vec<Record>> {
        let cmd = self.commands.soid(app, id);
        records(self.eval(&self.commands.scripts().soid, cmd).await?)
    }

    pub async fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        let cmd = self.commands.soapp(app, since);
        records(self.eval(&self.commands.scripts().soapp, cmd).await?)
    }

    /// One bounded batch of the expiry sweep: how many sessions it killed.
    pub async fn sweep_batch(&self, now: i64, batch: usize) -> Result<u64> {
        let cmd = self.commands.sweep_batch(now, batch);
        self.eval(&self.commands.scripts().sweep, cmd).await
    }

    /// Takes the fleet-wide sweep lease for `ttl`; false when another process holds it.
    pub async fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        let cmd = self.commands.sweep_lease(ttl.as_millis() as u64);
        let taken: Option<String> = self.query(cmd).await?;
        Ok(taken.is_some())
    }

    pub async fn ping(&self) -> Result<String> {
        self.query(redis::cmd("PING")).await
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
