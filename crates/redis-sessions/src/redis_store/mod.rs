//! The Redis store: each operation is one round trip and atomic — a Lua script (EVALSHA)
//! where it must read before it writes, a MULTI/EXEC where it only writes (create, which
//! Redis runs faster than a script). In the cluster layout every call touches one hash
//! slot; the operations over a whole app (activity, soapp, killall, the sweep) ask every
//! shard in parallel and combine the answers.

pub(crate) mod commands;
mod connection;
mod scripts;

use crate::error::Result;
use crate::layout::{Layout, Shard};
use crate::session::{Data, Record};
use crate::store::NewSession;
use commands::Commands;
pub(crate) use connection::Connection;
pub use connection::{ConnectionStats, NodeStatus};
use futures_util::future::try_join_all;
use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, FromRedisValue, Script};
use std::time::Duration;

/// Fields as HMGET returns them, or nil for a missing/dead session.
type Fields = Option<Vec<Option<String>>>;

/// Most sessions one killall or sweep script handles: bounds how long it holds Redis.
pub(crate) const BATCH: usize = 1000;

/// Sessions in one Redis server or one Redis Cluster.
#[derive(Clone)]
pub(crate) struct RedisStore {
    con: Connection,
    commands: Commands,
}

/// How long a call may wait for Redis before it fails: a request must fail fast while
/// Redis is away rather than queue without bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Timeouts {
    /// The longest one call may take whatever the client does: a reconnect, then the
    /// answer. The store enforces it itself, so a wedged client cannot hold a call.
    fn bound(&self) -> Duration {
        self.connect + self.response
    }
}

impl RedisStore {
    /// A store on one Redis server.
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
        let con = Connection::single(client, config, timeouts.bound()).await?;
        Self::with_connection(con, layout, expire_keys)
            .load_scripts()
            .await
    }

    /// A store on a Redis Cluster, from a list of seed nodes.
    pub async fn connect_cluster(
        nodes: &[String],
        layout: Layout,
        expire_keys: bool,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(timeouts.connect)
            // Per attempt; the whole call (retries, redirections) is bounded by the same
            // time, the client's default since 2.0.
            .response_timeout(timeouts.response)
            // A slot migration answers ASK/TRYAGAIN for some hundred ms, a failover takes
            // a few seconds: retry through what fits in the call's time.
            .retries(10)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .build()?;
        // Seeds by address only: a URL may carry a password, and these names reach /health.
        let seeds = nodes
            .iter()
            .map(|node| {
                redis::IntoConnectionInfo::into_connection_info(node.as_str())
                    .map(|info| info.addr().to_string())
                    .unwrap_or_else(|_| "(invalid seed)".to_string())
            })
            .collect();
        let con = Connection::cluster(client, seeds, timeouts.bound()).await?;
        Self::with_connection(con, layout, expire_keys)
            .load_scripts()
            .await
    }

    fn with_connection(con: Connection, layout: Layout, expire_keys: bool) -> Self {
        RedisStore {
            con,
            commands: Commands::new(layout, expire_keys),
        }
    }

    /// Loads every script now (on every master of a cluster), so the first calls need no
    /// NOSCRIPT round trip.
    async fn load_scripts(self) -> Result<Self> {
        for script in self.commands.scripts().each() {
            self.con.load(script).await?;
        }
        Ok(self)
    }

    fn layout(&self) -> &Layout {
        self.commands.layout()
    }

    /// Sends an EVALSHA; on NOSCRIPT (Redis restarted, SCRIPT FLUSH, a failover) loads the
    /// script and sends it once more.
    async fn eval<T: FromRedisValue>(&self, script: &Script, cmd: Cmd) -> Result<T> {
        match self.con.query(&cmd).await {
            Err(err)
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                self.con.load(script).await?;
                Ok(self.con.query(&cmd).await?)
            }
            other => Ok(other?),
        }
    }

    /// Creates the session and returns its token (in the cluster layout the token names
    /// the shard of the id).
    pub async fn create(&self, s: &NewSession<'_>, now: i64) -> Result<String> {
        let index = self.layout().shard_for_id(s.id);
        let token = crate::token::generate(
            crate::clock::now_millis(),
            self.layout().token_marker(index),
        );
        let shard = &self.layout().shards()[index];
        if self.layout().is_clustered() {
            let cmd = self.commands.create_script(shard, s, &token, now);
            self.eval::<i64>(&self.commands.scripts().create, cmd)
                .await?;
        } else {
            let pipe = self.commands.create(shard, s, &token, now);
            self.con.query_pipeline::<()>(&pipe).await?;
        }
        Ok(token)
    }

    pub async fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(None);
        };
        let cmd = self.commands.get(shard, app, token, now);
        let fields: Fields = self.eval(&self.commands.scripts().get, cmd).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn set(&self, app: &str, token: &str, d: &Data, now: i64) -> Result<Option<Record>> {
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(None);
        };
        let cmd = self.commands.set(shard, app, token, d, now);
        let fields: Fields = self.eval(&self.commands.scripts().set, cmd).await?;
        fields.map_or(Ok(None), Record::from_fields)
    }

    pub async fn kill(&self, app: &str, token: &str, now: i64) -> Result<bool> {
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(false);
        };
        let cmd = self.commands.kill(shard, app, token, now);
        let killed: i64 = self.eval(&self.commands.scripts().kill, cmd).await?;
        Ok(killed == 1)
    }

    pub async fn killsoid(&self, app: &str, id: &str) -> Result<u64> {
        let shard = &self.layout().shards()[self.layout().shard_for_id(id)];
        let cmd = self.commands.killsoid(shard, app, id);
        self.eval(&self.commands.scripts().killsoid, cmd).await
    }

    /// Every session of an app, shard by shard in parallel, in bounded batches.
    pub async fn killall(&self, app: &str) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut total = 0;
            loop {
                let cmd = self.commands.killall_batch(shard, app, BATCH);
                let (removed, left): (u64, u64) =
                    self.eval(&self.commands.scripts().killall, cmd).await?;
                total += removed;
                if left == 0 || removed == 0 {
                    return Ok::<u64, crate::Error>(total);
                }
            }
        });
        Ok(try_join_all(per_shard).await?.into_iter().sum())
    }

    /// Distinct ids active since `since`: each id lives in one shard, so shards add up.
    pub async fn activity(&self, app: &str, since: i64) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let count: u64 = self
                .con
                .query(&self.commands.activity(shard, app, since))
                .await?;
            Ok::<u64, crate::Error>(count)
        });
        Ok(try_join_all(per_shard).await?.into_iter().sum())
    }

    pub async fn soid(&self, app: &str, id: &str) -> Result<Vec<Record>> {
        let shard = &self.layout().shards()[self.layout().shard_for_id(id)];
        let cmd = self.commands.soid(shard, app, id);
        records(self.eval(&self.commands.scripts().soid, cmd).await?)
    }

    /// Sessions active since `since`, most recent first (merged across shards).
    pub async fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        let per_shard = self
            .layout()
            .shards()
            .iter()
            .map(|shard: &Shard| async move {
                let cmd = self.commands.soapp(shard, app, since);
                records(self.eval(&self.commands.scripts().soapp, cmd).await?)
            });
        let mut all: Vec<Record> = try_join_all(per_shard)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if self.layout().shards().len() > 1 {
            all.sort_by_key(|r| std::cmp::Reverse(r.la));
        }
        Ok(all)
    }

    /// Kills every session whose time has come, shard by shard, in bounded batches.
    pub async fn sweep(&self, now: i64) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut total = 0;
            loop {
                let cmd = self.commands.sweep_batch(shard, now, BATCH);
                let killed: u64 = self.eval(&self.commands.scripts().sweep, cmd).await?;
                total += killed;
                if (killed as usize) < BATCH {
                    return Ok::<u64, crate::Error>(total);
                }
            }
        });
        Ok(try_join_all(per_shard).await?.into_iter().sum())
    }

    /// Takes the fleet-wide sweep lease for `ttl`; false when another process holds it.
    pub async fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        let cmd = self.commands.sweep_lease(ttl.as_millis() as u64);
        let taken: Option<String> = self.con.query(&cmd).await?;
        Ok(taken.is_some())
    }

    pub async fn ping(&self) -> Result<String> {
        Ok(self.con.query(&redis::cmd("PING")).await?)
    }

    /// Each node the store depends on and whether it answers within `within`.
    pub async fn nodes(&self, within: Duration) -> Vec<NodeStatus> {
        self.con.nodes(within).await
    }

    /// What the connection watchdog has counted.
    pub fn connection_stats(&self) -> ConnectionStats {
        self.con.stats()
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
