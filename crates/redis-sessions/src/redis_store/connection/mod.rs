//! One connection type for both deployments: a single Redis server (a multiplexed
//! connection that reconnects by itself) or a Redis Cluster (the `redis` crate's cluster
//! client, which follows MOVED/ASK redirections and failovers and retries the call) —
//! plus a watchdog that replaces a connection that has stopped answering.
//!
//! This file is the handle: the connection in use (single server or cluster), how to open
//! another like it, and sending commands, pipelines and scripts within the call bound (on
//! a cluster, again while a slot moves). The connection's other jobs are child modules,
//! each adding methods to [`Connection`]:
//! - [`watchdog`]: counts timeouts and dropped connections, and replaces a connection
//!   that has stopped answering (why it is needed: see there);
//! - [`follow`]: under Sentinel, moves the connection to the master the sentinels name;
//! - [`nodes`]: the nodes behind the connection one by one (which answer a PING, the
//!   cluster's topology, a SCAN of every master) and the CLUSTER NODES parsers.
//!
//! They use this module's items (the shared state [`Inner`], [`Handle`], [`within_time`],
//! [`lock`]); this module imports nothing of theirs and only calls their methods through
//! `self`, so every import points down (scripts/import-cycles.py).

mod follow;
pub(super) mod nodes;
pub(super) mod watchdog;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::target::Target;
use crate::metric_names::REDIRECT_RETRIES;

/// Where the store's commands go; clones share the connection and its watchdog.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

/// The connection in use, cheap to clone out of the lock for one call. It is itself a
/// [`ConnectionLike`], so every command, pipeline and SCRIPT LOAD is sent one way, whichever
/// the deployment.
#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(con) => con.req_packed_command(cmd),
            Handle::Cluster(con) => con.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(con) => con.req_packed_commands(pipeline, offset, count),
            Handle::Cluster(con) => con.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(con) => con.get_db(),
            Handle::Cluster(con) => con.get_db(),
        }
    }
}

/// How to open a fresh connection of the same kind.
enum Opener {
    Single {
        target: Target,
        config: ConnectionManagerConfig,
    },
    Cluster(Box<ClusterClient>),
}

struct Inner {
    current: RwLock<Handle>,
    opener: Opener,
    /// `host:port` of the server, or the cluster's seeds: what `/health` names when it
    /// cannot learn more. Under Sentinel, the master in use.
    seeds: RwLock<Vec<String>>,
    /// A question to the sentinels is running.
    following: AtomicBool,
    /// Numbers the questions to the sentinels in the order they start.
    follows_started: AtomicU64,
    /// The number of the question whose answer is in use: an older question that ends
    /// later (it may have asked before a failover) must not undo a newer one's switch.
    follow_installed: Mutex<u64>,
    /// When a call last failed (Sentinel: the watcher re-confirms the master for a while).
    last_failure: Mutex<Option<Instant>>,
    /// When the last question to the sentinels started.
    last_follow: Mutex<Option<Instant>>,
    /// The longest one call may take, whatever the client does: connect + respond.
    bound: Duration,
    /// Timed-out calls since the last check.
    timeouts: AtomicU32,
    /// A check is running.
    checking: AtomicBool,
    /// When the last check ended.
    last_check: Mutex<Option<Instant>>,
    stats: Counters,
}

/// [`ConnectionStats`](watchdog::ConnectionStats) as they are counted.
#[derive(Default)]
struct Counters {
    timeouts: AtomicU64,
    disconnects: AtomicU64,
    checks: AtomicU64,
    replacements: AtomicU64,
}

impl Connection {
    /// A connection to one Redis server (or the master Sentinel names): reconnects by
    /// itself when the socket closes.
    pub(crate) async fn single(
        target: Target,
        config: ConnectionManagerConfig,
        bound: Duration,
    ) -> RedisResult<Self> {
        let client = within_time(bound, target.client()).await?;
        let con = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        let seeds = vec![client.get_connection_info().addr().to_string()];
        Ok(Self::new(
            Handle::Single(con),
            Opener::Single { target, config },
            seeds,
            bound,
        ))
    }

    /// A connection to a Redis Cluster through `client`, whose seeds are `seeds`.
    pub(crate) async fn cluster(
        client: ClusterClient,
        seeds: Vec<String>,
        bound: Duration,
    ) -> RedisResult<Self> {
        let con = client.get_async_connection().await?;
        Ok(Self::new(
            Handle::Cluster(con),
            Opener::Cluster(Box::new(client)),
            seeds,
            bound,
        ))
    }

    fn new(handle: Handle, opener: Opener, seeds: Vec<String>, bound: Duration) -> Self {
        Self::register_counters(&opener);
        Connection {
            inner: Arc::new(Inner {
                current: RwLock::new(handle),
                opener,
                seeds: RwLock::new(seeds),
                following: AtomicBool::new(false),
                follows_started: AtomicU64::new(0),
                follow_installed: Mutex::new(0),
                last_failure: Mutex::new(None),
                last_follow: Mutex::new(None),
                bound,
                timeouts: AtomicU32::new(0),
                checking: AtomicBool::new(false),
                last_check: Mutex::new(None),
                stats: Counters::default(),
            }),
        }
    }

    fn handle(&self) -> Handle {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends one command, within the call bound (on a cluster, again while its slot
    /// moves: see [`moving`]).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.send(|mut con| async move { cmd.query_async(&mut con).await })
            .await
    }

    /// Sends a pipeline (a MULTI/EXEC, or a write and its WAIT), within the call bound (on
    /// a cluster, again while its slot moves: see [`moving`]).
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> RedisResult<T> {
        self.send(|mut con| async move { pipe.query_async(&mut con).await })
            .await
    }

    /// Sends one call (`call` sends it on the connection it is given) within the call
    /// bound, on the connection in use at each attempt, until [`Self::settle`] takes its
    /// result.
    async fn send<T, F: Future<Output = RedisResult<T>>>(
        &self,
        call: impl Fn(Handle) -> F,
    ) -> RedisResult<T> {
        let deadline = Instant::now() + self.inner.bound;
        let mut attempt = 0;
        loop {
            let con = self.handle();
            let left = deadline.saturating_duration_since(Instant::now());
            let result = within_time(left, call(con)).await;
            if let Some(result) = self.settle(result, deadline, &mut attempt).await {
                return result;
            }
        }
    }

    /// What one attempt of a call comes to: its result (observed by the watchdog), or None
    /// when it is to be sent again — a cluster call that met a slot on the move or a
    /// failover (see [`moving`]) and still has time. The cluster client retries those
    /// itself, but counts ASK and MOVED against a budget of a few attempts, so a slot that
    /// moves for longer than that would reach the caller as "Ask"/"TryAgain": the store
    /// sends the call again, after a short pause, until the call's deadline. The command
    /// did not run on any node (Redis checks the slot before it runs anything), so sending
    /// it again is safe for writes too. A call that runs out of time this way fails as a
    /// timeout ("unknown outcome", 503), which the watchdog does not count: the connection
    /// is not stuck, the slot is busy.
    async fn settle<T>(
        &self,
        result: RedisResult<T>,
        deadline: Instant,
        attempt: &mut u32,
    ) -> Option<RedisResult<T>> {
        let Err(err) = &result else {
            return Some(self.observe(result));
        };
        if !matches!(self.inner.opener, Opener::Cluster(_)) {
            return Some(self.observe(result));
        }
        if moving(err) {
            let pause = retry_pause(*attempt);
            *attempt += 1;
            metrics::counter!(REDIRECT_RETRIES).increment(1);
            if Instant::now() + pause < deadline {
                tracing::debug!(%err, attempt = *attempt, "slot moving or failing over: sending again");
                tokio::time::sleep(pause).await;
                return None;
            }
            return Some(Err(moving_too_long(err)));
        }
        if *attempt > 0 && err.is_timeout() {
            // Cut by the deadline after redirections: the slot is busy, not the connection.
            return Some(result);
        }
        Some(self.observe(result))
    }

    /// SCRIPT LOAD (on every master, in a cluster).
    pub(crate) async fn load(&self, script: &Script) -> RedisResult<String> {
        let mut con = self.handle();
        let result = self.bounded(script.load_async(&mut con)).await;
        self.observe(result)
    }

    /// Runs one call within the store's bound, so no call waits forever whatever state
    /// the client is in.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        within_time(self.inner.bound, call).await
    }

    /// `host:port` of the server in use (under Sentinel, the master followed).
    pub(crate) fn master(&self) -> Option<String> {
        self.inner.seeds().first().cloned()
    }
}

impl Inner {
    fn seeds(&self) -> Vec<String> {
        self.seeds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A new connection of the same kind, opened now.
    async fn open(&self) -> RedisResult<Handle> {
        match &self.opener {
            Opener::Single { target, config } => Ok(Handle::Single(
                ConnectionManager::new_with_config(target.client().await?, config.clone()).await?,
            )),
            Opener::Cluster(client) => Ok(Handle::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// A cluster error that means "not here, not now" rather than "failed": the slot moved
/// (MOVED) or is moving (ASK; TRYAGAIN while a multi-key call's keys are split between
/// the two nodes), the cluster is electing a new master (CLUSTERDOWN, MASTERDOWN), the
/// node was demoted (READONLY) or is loading. Redis answers these before running the
/// command.
fn moving(err: &RedisError) -> bool {
    use redis::ServerErrorKind as K;
    matches!(
        err.kind(),
        redis::ErrorKind::Server(
            K::Moved
                | K::Ask
                | K::TryAgain
                | K::ClusterDown
                | K::MasterDown
                | K::ReadOnly
                | K::BusyLoading
        )
    )
}

/// The pause before sending a moving call again: short at first (an ASK or MOVED is
/// followed at once by the client; a TRYAGAIN clears when the slot's last keys move), then
/// up to 100 ms (a failover takes seconds; no need to ask more often).
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis((5u64 << attempt.min(5)).min(100))
}

/// The error of a call whose slot was still moving (or whose shard still failing over) at
/// its deadline: a timeout, whose outcome is unknown like any other (the command never
/// ran, but the caller cannot tell it apart from a lost answer), named for what it was.
fn moving_too_long(last: &RedisError) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no answer from redis in time: the slot was moving or failing over ({})",
            last.code().unwrap_or("redirect")
        ),
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `call`'s result, or a timeout error (one that `is_timeout()`) when it takes longer
/// than `limit`.
async fn within_time<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer from redis in time",
        ))),
    }
}
