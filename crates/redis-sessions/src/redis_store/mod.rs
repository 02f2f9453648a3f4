//! The Redis store: each operation is atomic — a Lua script (EVALSHA) where it must read
//! before it writes, a MULTI/EXEC where it only writes (create, which Redis runs faster
//! than a script). In the cluster layout every call touches one hash slot; the operations
//! over a whole app (activity, soapp, killall, the sweep) ask every shard in parallel and
//! combine the answers.
//!
//! Round trips. In the Node layout (one Redis) every operation is one round trip: the
//! scripts of kill, killsoid, killall, soid, soapp and the sweep read an index and name the
//! keys of its members in Lua. A cluster allows a script only the keys it declares (while
//! a slot migrates, an undeclared key that has moved stops the script half way, its first
//! writes done), so in the cluster layout those operations take two: a plain read of the
//! index (HGET id, SMEMBERS, ZRANGE, ZRANGEBYSCORE), then the script with every key
//! declared. The script checks the index again: killsoid and soid get a "retry" answer,
//! without any change, when a session was added since the read, and read again (at most
//! [`RETRIES`] times); killall, soapp and the sweep act on the members still there. create,
//! get, set and activity stay one round trip in both layouts.

mod cluster_nodes;
pub(crate) mod commands;
mod connection;
mod durable;
mod events;
mod guard;
mod ops;
mod replica_counts;
mod scripts;
mod sentinel;
mod sentinel_watch;
mod target;
mod tasks;
mod tls;
mod wipe;

use crate::error::{Error, Result};
use crate::layout::Layout;
use commands::Commands;
pub(crate) use connection::{nodes::masters, Connection};
pub use connection::{nodes::NodeStatus, watchdog::ConnectionStats};
use futures_util::{StreamExt, TryStreamExt};
use redis::aio::ConnectionManagerConfig;
use redis::FromRedisValue;
use scripts::ScriptCall;
use std::time::Duration;
pub(crate) use target::Target;

/// Fields as HMGET returns them, or nil for a missing/dead session.
type Fields = Option<Vec<Option<crate::session::FieldText>>>;

/// Most sessions one killall, killsoid or sweep script handles: bounds how long it holds
/// Redis.
pub(crate) const BATCH: usize = 1000;

/// Reads of an index a killsoid or soid makes before it gives up with
/// [`Error::Contended`](Error::Contended): each retry means a session of that very
/// user was created between the read and the script, a rare race.
pub(crate) const RETRIES: usize = 5;

/// The share of the response timeout a replica read may take before the store asks the
/// master instead: half, so that a read that falls back still ends within the call's
/// bound (connect + response timeout) on a healthy master.
const REPLICA_DEADLINE: f64 = 0.5;

/// Most shards an app-wide operation (activity, soapp, killall, the sweep) asks at once.
/// Asking all 60 at once multiplies a few callers into hundreds of requests in flight,
/// which is what wedges the `redis` 1.8 cluster client during a reshard (see
/// shared/repro/cluster-reshard-hang); a few at a time costs little more on a LAN.
const FANOUT: usize = 8;

/// Runs the calls of every shard, at most [`FANOUT`] at a time; the answers in shard order.
async fn each_shard<T, Fut>(per_shard: impl Iterator<Item = Fut>) -> Result<Vec<T>>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    // Collected first: a stream over the lazy iterator would borrow its closure in a way
    // that keeps the future from being Send.
    let calls: Vec<Fut> = per_shard.collect();
    futures_util::stream::iter(calls)
        .buffered(FANOUT)
        .try_collect()
        .await
}

/// Most scripts one killsoid runs (BATCH sessions each).
const MAX_ROUNDS: usize = 1000;

/// Sessions in one Redis server or one Redis Cluster.
#[derive(Clone)]
pub(crate) struct RedisStore {
    con: Connection,
    /// Where soid, soapp and activity go: `con`, or a connection that reads from replicas
    /// when the caller accepts slightly stale answers (cluster only).
    reads: Connection,
    commands: Commands,
    /// Durable writes' own connections, when they are on.
    durable: Option<std::sync::Arc<durable::Durable>>,
    /// The `+switch-master` listener under Sentinel, ended with the last clone.
    _switches: Option<std::sync::Arc<tasks::AbortOnDrop>>,
    /// How long a replica read may take before it is sent to the master instead; None
    /// without replica reads.
    replica_deadline: Option<Duration>,
    /// Whether the namespace's data vanished under the store (one Redis server only).
    wipe: std::sync::Arc<wipe::WipeState>,
    /// Refuse writes while a wipe is not acknowledged.
    refuse_writes_after_wipe: bool,
    /// The guard of the layout record: on a cluster the layout guard (guard.rs), on one
    /// server the wipe guard (wipe.rs), which restores the record too and reports why it
    /// vanished. Ended with the last clone.
    _guard: Option<std::sync::Arc<tasks::AbortOnDrop>>,
}

/// How long a store started under Sentinel waits for the sentinels to name a master that
/// answers (a process started during a failover waits out the promotion, ~2–3 s after the
/// master's loss with `down-after-milliseconds 1000`); the REST server's own start deadline
/// (5 s) leaves room for it.
pub(crate) const SENTINEL_STARTUP_WAIT: Duration = Duration::from_millis(4000);

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
    /// A store on one Redis server (or the master Sentinel names); with `min_replicas`,
    /// writes wait for replicas.
    pub(crate) async fn connect(
        target: Target,
        layout: Layout,
        expire_keys: bool,
        timeouts: Timeouts,
        min_replicas: Option<crate::options::MinReplicas>,
        refuse_writes_after_wipe: bool,
        events: Option<crate::options::EventOptions>,
    ) -> Result<Self> {
        tls::install_crypto_provider();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeouts.connect))
            .set_response_timeout(Some(timeouts.response))
            // Reconnect attempts are cheap and frequent, so Redis coming back is noticed fast.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        if let Target::Sentinel(sentinels) = &target {
            sentinels
                .wait_for_master(SENTINEL_STARTUP_WAIT)
                .await
                .map_err(Error::from_redis)?;
        }
        let durable = match min_replicas {
            Some(min) => Some(std::sync::Arc::new(
                durable::Durable::open(
                    target.clone(),
                    config.clone(),
                    timeouts.response,
                    timeouts.bound(),
                    min,
                )
                .await?,
            )),
            None => None,
        };
        let con = Connection::single(target.clone(), config, timeouts.bound())
            .await
            .map_err(Error::from_redis)?;
        let mut store = Self::with_connection(con, None, layout, expire_keys, events);
        if let Target::Sentinel(sentinels) = &target {
            let mut connections = vec![store.con.clone()];
            if let Some(durable) = &durable {
                connections.extend(durable.connections().iter().cloned());
                if let Some(n) = sentinels.promotable_replicas().await {
                    durable.promotable(n, true);
                }
            }
            store._switches = Some(std::sync::Arc::new(sentinel_watch::watch(
                sentinels.clone(),
                connections,
                durable.clone(),
            )));
        }
        store.durable = durable;
        store.refuse_writes_after_wipe = refuse_writes_after_wipe;
        let mut store = store.load_scripts().await?.check_layout().await?;
        // On one server the wipe guard takes the layout guard's place: it restores a
        // vanished record too, and reports the wipe that made it vanish.
        store._guard = Some(std::sync::Arc::new(wipe::guard(
            store.con.clone(),
            store.commands.clone(),
            store.wipe.clone(),
            refuse_writes_after_wipe,
        )));
        Ok(store)
    }

    /// A store on a Redis Cluster, from a list of seed nodes.
    /// With `read_from_replicas`, soid, soapp and activity go to replicas; with
    /// `min_replicas`, writes wait for the replicas of the master that ran them.
    pub(crate) async fn connect_cluster(
        nodes: &[String],
        layout: Layout,
        expire_keys: bool,
        timeouts: Timeouts,
        read_from_replicas: bool,
        min_replicas: Option<crate::options::MinReplicas>,
        events: Option<crate::options::EventOptions>,
    ) -> Result<Self> {
        tls::install_crypto_provider();
        let builder = || {
            redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .connection_timeout(timeouts.connect)
                // Per attempt; the whole call (retries, redirections) is bounded by the same
                // time, the client's default since 2.0.
                .response_timeout(timeouts.response)
                // A slot migration answers ASK/TRYAGAIN for some hundred ms, a failover takes
                // a few seconds: retry through what fits in the call's time (and the store
                // sends a call again while its slot moves, past this budget: see
                // connection/mod.rs).
                .retries(10)
                .min_retry_wait(50)
                .max_retry_wait(200)
        };
        // Seeds by address only: a URL may carry a password, and these names reach /health.
        let seeds: Vec<String> = nodes
            .iter()
            .map(|node| {
                redis::IntoConnectionInfo::into_connection_info(node.as_str())
                    .map(|info| info.addr().to_string())
                    .unwrap_or_else(|_| "(invalid seed)".to_string())
            })
            .collect();
        let con = Connection::cluster(
            builder().build().map_err(Error::from_redis)?,
            seeds.clone(),
            timeouts.bound(),
        )
        .await
        .map_err(Error::from_redis)?;
        // A second connection, so that only the calls that accept stale answers read from
        // replicas: the reads that come before a write (kill, killsoid, killall, the sweep)
        // must see the master's index.
        let reads = match read_from_replicas {
            true => Some(
                Connection::cluster(
                    builder()
                        .read_routing_strategy(replica_reads())
                        .build()
                        .map_err(Error::from_redis)?,
                    seeds.clone(),
                    timeouts.bound(),
                )
                .await
                .map_err(Error::from_redis)?,
            ),
            false => None,
        };
        // Durable writes on cluster connections of their own, as on one Redis (see
        // durable.rs): a WAIT holds its connection's later replies, here those of the
        // socket to one master.
        let durable = match min_replicas {
            Some(min) => {
                let mut pool = Vec::with_capacity(durable::CONNECTIONS);
                for _ in 0..durable::CONNECTIONS {
                    let client = builder()
                        .response_timeout(timeouts.response + min.timeout)
                        .build()
                        .map_err(Error::from_redis)?;
                    pool.push(
                        Connection::cluster(client, seeds.clone(), timeouts.bound() + min.timeout)
                            .await
                            .map_err(Error::from_redis)?,
                    );
                }
                Some(std::sync::Arc::new(
                    durable::Durable::with_pool(min, pool).await?,
                ))
            }
            None => None,
        };
        let mut store = Self::with_connection(con, reads, layout, expire_keys, events);
        if read_from_replicas {
            store.replica_deadline = Some(timeouts.response.mul_f64(REPLICA_DEADLINE));
        }
        store.durable = durable;
        store.load_scripts().await?.check_layout().await
    }

    fn with_connection(
        con: Connection,
        reads: Option<Connection>,
        layout: Layout,
        expire_keys: bool,
        events: Option<crate::options::EventOptions>,
    ) -> Self {
        RedisStore {
            reads: reads.unwrap_or_else(|| con.clone()),
            con,
            commands: Commands::new(layout, expire_keys).with_events(events),
            durable: None,
            _switches: None,
            replica_deadline: None,
            wipe: Default::default(),
            refuse_writes_after_wipe: false,
            _guard: None,
        }
    }

    /// Records the layout in the namespace on first use; refuses a namespace written with
    /// another one (a shard count changed by a restart would lose every session silently),
    /// and, in the sharded layout, a namespace that holds keys but no record (the record
    /// vanished: writing ours could give the namespace another shard count). Then starts
    /// the guard that checks the record while the store runs.
    async fn check_layout(mut self) -> Result<Self> {
        let stored = match self.read_layout().await? {
            Some(stored) => stored,
            None => {
                if self.layout().is_clustered() {
                    self.refuse_if_in_use().await?;
                }
                self.write_layout().await?
            }
        };
        let asked = self.layout().record();
        if stored != asked {
            return Err(Error::LayoutMismatch {
                namespace: self.layout().namespace().to_owned(),
                stored,
                asked,
            });
        }
        self._guard = Some(std::sync::Arc::new(guard::start(
            self.con.clone(),
            self.commands.clone(),
        )));
        Ok(self)
    }

    /// The record as stored, or None when there is none.
    async fn read_layout(&self) -> Result<Option<crate::layout::LayoutRecord>> {
        guard::read(&self.con, &self.commands).await
    }

    /// Writes the record unless one exists (atomically); what is recorded then.
    async fn write_layout(&self) -> Result<crate::layout::LayoutRecord> {
        let (kind, shards, version): (String, Option<u16>, Option<u32>) =
            self.eval(self.commands.layout_record()).await?;
        Ok(crate::layout::LayoutRecord {
            kind,
            shards: shards.unwrap_or(0),
            version: version.unwrap_or(0),
        })
    }

    /// Fails with [`Error::LayoutLost`] when the namespace holds any key (of any shard
    /// count) besides the record and the sweep lease.
    async fn refuse_if_in_use(&self) -> Result<()> {
        let layout = self.layout();
        let record = layout.record_key();
        let pattern = format!("{}:*", glob_escape(layout.namespace()));
        let skip = [record.clone(), layout.sweep_lease()];
        let found = self
            .con
            .first_key(&pattern, &skip, guard::SCAN_LIMIT)
            .await
            .map_err(Error::from_redis)?;
        match found {
            None => Ok(()),
            Some(found) => Err(Error::LayoutLost {
                namespace: layout.namespace().to_owned(),
                record,
                found: key_without_token(&found),
            }),
        }
    }

    /// Loads every script now (on every master of a cluster), so the first calls need no
    /// NOSCRIPT round trip.
    async fn load_scripts(self) -> Result<Self> {
        for script in self.commands.scripts().each() {
            self.con
                .load(script.script())
                .await
                .map_err(Error::from_redis)?;
        }
        Ok(self)
    }

    fn layout(&self) -> &Layout {
        self.commands.layout()
    }

    /// Sends a script call. NOSCRIPT is handled here and in the two methods below, and
    /// nowhere else: Redis forgets its scripts when it restarts, on SCRIPT FLUSH, or when a
    /// replica that never loaded them is promoted; the call then loads its own script and
    /// is sent once more.
    async fn eval<T: FromRedisValue>(&self, call: ScriptCall<'_>) -> Result<T> {
        match self.con.query(call.cmd()).await {
            Err(err) if is_noscript(&err) => {
                self.con
                    .load(call.script().script())
                    .await
                    .map_err(Error::from_redis)?;
                Ok(self
                    .con
                    .query(call.cmd())
                    .await
                    .map_err(Error::from_redis)?)
            }
            other => Ok(other.map_err(Error::from_redis)?),
        }
    }

    /// [`eval`](Self::eval) for the writes a caller is told succeeded (create, set, kill,
    /// killsoid, killall): with durable writes on, sent with its WAIT on the durable pool,
    /// and failed with `NotReplicated` unless enough replicas confirmed.
    async fn eval_write<T: FromRedisValue>(&self, call: ScriptCall<'_>) -> Result<T> {
        self.writable()?;
        let Some(durable) = &self.durable else {
            return self.eval(call).await;
        };
        let con = durable.connection();
        let (pipe, wanted) = durable.with_wait(call.cmd());
        let (value, acked): (T, u64) = match con.query_pipeline(&pipe).await {
            Err(err) if is_noscript(&err) => {
                con.load(call.script().script())
                    .await
                    .map_err(Error::from_redis)?;
                con.query_pipeline(&pipe).await.map_err(Error::from_redis)?
            }
            other => other.map_err(Error::from_redis)?,
        };
        durable.confirmed(acked, wanted)?;
        Ok(value)
    }

    /// Sends a read-only script call on the reads connection; on NOSCRIPT sends it once
    /// more as EVAL_RO with the script's source, which also caches the script on the node
    /// that answered (SCRIPT LOAD reaches only masters, and a replica may be the one asked).
    async fn eval_read<T: FromRedisValue>(&self, call: ScriptCall<'_>) -> Result<T> {
        match self.read_query(call.cmd()).await {
            Err(err) if is_noscript(&err) => Ok(self
                .read_query(&call.with_source())
                .await
                .map_err(Error::from_redis)?),
            other => Ok(other.map_err(Error::from_redis)?),
        }
    }

    /// Sends a read that accepts a slightly stale answer (soid, soapp, activity): to a
    /// replica when replica reads are on, and to the master when the replica does not
    /// answer within [`REPLICA_DEADLINE`] of the response timeout or cannot be reached —
    /// a stalled or dead replica then costs its reads that much time, not their answer.
    async fn read_query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let Some(deadline) = self.replica_deadline else {
            return self.reads.query(cmd).await;
        };
        let err = match tokio::time::timeout(deadline, self.reads.query(cmd)).await {
            Ok(Ok(answer)) => return Ok(answer),
            // The replica answered with an error (NOSCRIPT, a bad argument): the master
            // would say the same.
            Ok(Err(err)) if !(err.is_timeout() || err.is_io_error()) => return Err(err),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no answer in time".to_owned(),
        };
        metrics::counter!(crate::metric_names::REPLICA_FALLBACKS).increment(1);
        tracing::debug!(%err, "replica read failed; reading from the master");
        self.con.query(cmd).await
    }

    pub(crate) async fn ping(&self) -> Result<String> {
        self.con
            .query(&redis::cmd("PING"))
            .await
            .map_err(Error::from_redis)
    }

    /// Each node the store depends on and whether it answers within `within`; on a
    /// cluster with replica reads, the replicas too (marked `replica`); a master whose data
    /// vanished (not acknowledged yet) is reported with that reason.
    pub(crate) async fn nodes(&self, within: Duration) -> Vec<NodeStatus> {
        let mut nodes = self
            .con
            .nodes(within, self.replica_deadline.is_some())
            .await;
        if let Some(reason) = self.wipe.reason() {
            for node in nodes.iter_mut().filter(|n| n.error.is_none()) {
                node.error = Some(reason.clone());
            }
        }
        nodes
    }

    /// Fails a write while a wipe is not acknowledged, when writes are refused then.
    fn writable(&self) -> Result<()> {
        if !self.refuse_writes_after_wipe {
            return Ok(());
        }
        match self.wipe.reason() {
            None => Ok(()),
            Some(reason) => Err(Error::Unavailable(crate::error::BackendError(
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "writes refused until an operator acknowledges the wipe (deletes the key",
                    format!("{}): {reason}", wipe::marker_key(self.layout().namespace())),
                )),
            ))),
        }
    }

    /// What the connection watchdog has counted.
    pub(crate) fn connection_stats(&self) -> ConnectionStats {
        self.con.stats()
    }
}

/// The routing of replica reads: a random replica of the slot's master. Built by
/// `default()`, because redis 2 makes the struct non-exhaustive.
#[allow(clippy::default_constructed_unit_structs)]
fn replica_reads() -> redis::cluster_read_routing::RandomReplicaStrategy {
    redis::cluster_read_routing::RandomReplicaStrategy::default()
}

/// A key cut after its namespace, hash tag and app (`rs:{7.3}:app:…`): what an error
/// may show of a key without showing a token or a user's id.
fn key_without_token(key: &str) -> String {
    let mut parts = key.splitn(4, ':');
    let head: Vec<&str> = parts.by_ref().take(3).collect();
    match parts.next() {
        Some(_) => format!("{}:…", head.join(":")),
        None => head.join(":"),
    }
}

/// `text` with the glob characters of SCAN MATCH escaped, so a namespace matches itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_noscript(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}
