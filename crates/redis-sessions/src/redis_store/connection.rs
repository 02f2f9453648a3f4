//! One connection type for both deployments: a single Redis server (a multiplexed
//! connection that reconnects by itself) or a Redis Cluster (the `redis` crate's cluster
//! client, which follows MOVED/ASK redirections and failovers and retries the call) —
//! plus a watchdog that replaces a connection that has stopped answering.
//!
//! Why the watchdog: both clients reconnect when a socket closes, but not when it stays
//! open and silent (a half-dead TCP path, a proxy that stopped forwarding, or the cluster
//! client's own state stuck after a reshard — seen with `redis` 1.8.1 and `fred` 10, see
//! docs/cluster-client-comparison.md). Then every call times out for good. So after
//! [`STUCK_AFTER`] timed-out calls the store checks: if the current connection fails a
//! PING while a freshly opened one answers, the current one is stuck and the fresh one
//! takes its place. A Redis that is down fails both, and the connection is left alone to
//! reconnect by itself.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, RedisResult, Script, Value};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Timed-out calls (since the last check) that make the store check its connection: a
/// few, so one slow moment does not, while a stuck connection — on which every call
/// times out — is found within a second or two of load.
pub(crate) const STUCK_AFTER: u32 = 3;

/// Least time between two checks, so a burst of timeouts costs one check, not many.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two questions to the sentinels started by failed calls: during a
/// failover every call fails, and one question per interval finds the new master as soon
/// as it is named. A sentinel's announcement does not wait for it.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

use super::target::Target;
use crate::metric_names::{
    CHECKS, DISCONNECTS, MASTER_SWITCHES, REDIRECT_RETRIES, REPLACEMENTS, TIMEOUTS,
};

/// A Redis node and whether it answered a PING just now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// `host:port` of the node (a master, in a cluster).
    pub node: String,
    /// Why it did not answer; None when it did.
    pub error: Option<String>,
    /// A replica (listed only on a cluster with replica reads on): a replica that does not
    /// answer costs reads time, not answers (they fall back to the master).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
}

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

/// What the watchdog has seen on one store's connection (the same counts as the
/// metrics, readable without a metrics recorder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls that failed on a dropped or refused connection (each is followed by a
    /// reconnect).
    pub disconnects: u64,
    /// Checks made after repeated timeouts.
    pub checks: u64,
    /// Stuck connections replaced by a fresh one.
    pub replacements: u64,
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

/// [`ConnectionStats`] as they are counted.
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
        register_counters(&opener);
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
        let deadline = Instant::now() + self.inner.bound;
        let mut attempt = 0;
        loop {
            let mut con = self.handle();
            let left = deadline.saturating_duration_since(Instant::now());
            let result = within_time(left, cmd.query_async(&mut con)).await;
            if let Some(result) = self.settle(result, deadline, &mut attempt).await {
                return result;
            }
        }
    }

    /// Sends a pipeline (a MULTI/EXEC, or a write and its WAIT), within the call bound (on
    /// a cluster, again while its slot moves: see [`moving`]).
    pub(crate) async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> RedisResult<T> {
        let deadline = Instant::now() + self.inner.bound;
        let mut attempt = 0;
        loop {
            let mut con = self.handle();
            let left = deadline.saturating_duration_since(Instant::now());
            let result = within_time(left, pipe.query_async(&mut con)).await;
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

    /// Each node the store depends on (the server, or every master that serves slots)
    /// and whether it answers a PING through this connection within `within`.
    pub(crate) async fn nodes(&self, within: Duration, with_replicas: bool) -> Vec<NodeStatus> {
        match self.handle() {
            Handle::Single(mut con) => {
                let ping = redis::cmd("PING");
                let answer = within_time(within, ping.query_async::<String>(&mut con)).await;
                let error = answer.err().map(|e| e.to_string());
                self.inner
                    .seeds()
                    .iter()
                    .map(|node| NodeStatus {
                        node: node.clone(),
                        error: error.clone(),
                        replica: false,
                    })
                    .collect()
            }
            Handle::Cluster(con) => self.cluster_nodes(con, within, with_replicas).await,
        }
    }

    /// The masters serving slots (and with `with_replicas` every replica), from CLUSTER
    /// NODES, each pinged by address in parallel. The topology is asked of random masters
    /// and of every seed at once, the first answer taken: during a failover a frozen or
    /// dead master does not answer, and naming the seeds instead (healthy nodes among them)
    /// would point the operator at the wrong nodes. Only when no node answers is every seed
    /// reported with that error.
    async fn cluster_nodes(
        &self,
        con: ClusterConnection,
        within: Duration,
        with_replicas: bool,
    ) -> Vec<NodeStatus> {
        let ask = |routing: RoutingInfo| {
            let mut con = con.clone();
            Box::pin(async move {
                let ask = con.route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing);
                within_time(within, ask)
                    .await
                    .and_then(|v| redis::from_redis_value::<String>(v).map_err(RedisError::from))
            })
        };
        let mut asks = Vec::new();
        for _ in 0..2 {
            asks.push(ask(RoutingInfo::SingleNode(
                SingleNodeRoutingInfo::RandomPrimary,
            )));
        }
        for seed in self.inner.seeds() {
            if let Some((host, port)) = seed.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    asks.push(ask(RoutingInfo::SingleNode(
                        SingleNodeRoutingInfo::ByAddress {
                            host: host.to_string(),
                            port,
                        },
                    )));
                }
            }
        }
        let topology = futures_util::future::select_ok(asks)
            .await
            .map(|(text, _)| text);
        let text = match topology {
            Ok(text) => text,
            Err(err) => {
                return self
                    .inner
                    .seeds()
                    .iter()
                    .map(|seed| NodeStatus {
                        node: seed.clone(),
                        error: Some(err.to_string()),
                        replica: false,
                    })
                    .collect()
            }
        };
        let mut nodes: Vec<(String, u16, bool)> = masters(&text)
            .into_iter()
            .map(|(host, port)| (host, port, false))
            .collect();
        if with_replicas {
            nodes.extend(
                replicas(&text)
                    .into_iter()
                    .map(|(host, port)| (host, port, true)),
            );
        }
        let pings = nodes.into_iter().map(|(host, port, replica)| {
            let mut con = con.clone();
            async move {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port,
                });
                let ping = within_time(within, con.route_command(redis::cmd("PING"), routing));
                NodeStatus {
                    node: format!("{host}:{port}"),
                    error: ping.await.err().map(|e| e.to_string()),
                    replica,
                }
            }
        });
        futures_util::future::join_all(pings).await
    }

    /// The cluster's `CLUSTER NODES` answer, from a random master within `within`; None on
    /// one server (or Sentinel), or when no master answered in time. For operators'
    /// figures (which master holds which shard), never for routing: the client routes.
    pub(crate) async fn cluster_topology(&self, within: Duration) -> Option<String> {
        let Handle::Cluster(mut con) = self.handle() else {
            return None;
        };
        let ask = con.route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        );
        let answer = within_time(within, ask).await.ok()?;
        redis::from_redis_value::<String>(answer).ok()
    }

    /// One key matching `pattern` other than those in `skip`, on the server or on any
    /// master of the cluster (SCAN, a batch at a time), or None when there is none; fails
    /// when the scan does not end within `within`. Used only when a namespace has no layout
    /// record (first use, or a record that vanished), to tell whether it holds sessions.
    pub(crate) async fn first_key(
        &self,
        pattern: &str,
        skip: &[String],
        within: Duration,
    ) -> RedisResult<Option<String>> {
        let scan = async {
            let nodes: Vec<Option<(String, u16)>> = match self.handle() {
                Handle::Single(_) => vec![None],
                Handle::Cluster(mut con) => {
                    let text: String = con
                        .route_command(
                            redis::cmd("CLUSTER").arg("NODES").clone(),
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                        )
                        .await
                        .and_then(|v| redis::from_redis_value(v).map_err(RedisError::from))?;
                    masters(&text).into_iter().map(Some).collect()
                }
            };
            for node in nodes {
                let mut cursor = 0u64;
                loop {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(10_000);
                    let reply: Value = match (&node, self.handle()) {
                        (Some((host, port)), Handle::Cluster(mut con)) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host: host.clone(),
                                    port: *port,
                                });
                            con.route_command(cmd, routing).await?
                        }
                        (_, mut con) => cmd.query_async(&mut con).await?,
                    };
                    let (next, keys): (u64, Vec<String>) =
                        redis::from_redis_value(reply).map_err(RedisError::from)?;
                    if let Some(key) = keys.into_iter().find(|k| !skip.contains(k)) {
                        return Ok(Some(key));
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(None)
        };
        within_time(within, scan).await
    }

    /// Runs one call within the store's bound, so no call waits forever whatever state
    /// the client is in.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        within_time(self.inner.bound, call).await
    }

    /// Counts timeouts and dropped connections, and starts a check after
    /// [`STUCK_AFTER`] timeouts.
    fn observe<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result {
            if self.inner.follows() && not_the_master(err) {
                *lock(&self.inner.last_failure) = Some(Instant::now());
                self.start_follow(false);
            }
            if err.is_timeout() {
                self.inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(TIMEOUTS).increment(1);
                let seen = self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if seen >= STUCK_AFTER {
                    self.start_check();
                }
            } else if err.is_connection_dropped() || err.is_connection_refusal() {
                self.inner.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DISCONNECTS).increment(1);
            }
        }
        result
    }

    /// Starts [`Inner::check`] in the background unless one runs or ran within
    /// [`CHECK_INTERVAL`].
    fn start_check(&self) {
        let recent = self
            .inner
            .last_check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < CHECK_INTERVAL);
        if recent || self.inner.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = inner.check().await;
            inner.stats.checks.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(CHECKS, "result" => result).increment(1);
            inner.timeouts.store(0, Ordering::Relaxed);
            *inner.last_check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            inner.checking.store(false, Ordering::Release);
        });
    }

    /// Asks the sentinels who the master is now (a sentinel announced a switch): at once,
    /// even while an earlier question runs — its answer may predate the announcement, and
    /// being older it cannot undo this one's switch.
    pub(crate) fn follow_now(&self) {
        self.start_follow(true);
    }

    /// Asks the sentinels who the master is, unless a question runs or started within
    /// [`FOLLOW_INTERVAL`] (the watcher's re-confirmation while calls fail and after).
    pub(crate) fn follow_soon(&self) {
        self.start_follow(false);
    }

    /// True when a call failed within `within` (Sentinel only).
    pub(crate) fn failed_within(&self, within: Duration) -> bool {
        lock(&self.inner.last_failure).is_some_and(|at| at.elapsed() < within)
    }

    /// `host:port` of the server in use (under Sentinel, the master followed).
    pub(crate) fn master(&self) -> Option<String> {
        self.inner.seeds().first().cloned()
    }

    /// Starts [`Inner::follow`] in the background. Unless `forced` (an announcement,
    /// which must not wait for a question that may be stuck on the old master), not while
    /// one runs or within [`FOLLOW_INTERVAL`] of the last start.
    fn start_follow(&self, forced: bool) {
        if !forced {
            let mut last = lock(&self.inner.last_follow);
            if last.is_some_and(|at| at.elapsed() < FOLLOW_INTERVAL)
                || self.inner.following.swap(true, Ordering::AcqRel)
            {
                return;
            }
            *last = Some(Instant::now());
        }
        let number = self.inner.follows_started.fetch_add(1, Ordering::AcqRel) + 1;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.follow(number).await;
            if !forced {
                inner.following.store(false, Ordering::Release);
            }
        });
    }

    /// What the watchdog has counted so far.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let s = &self.inner.stats;
        ConnectionStats {
            timeouts: s.timeouts.load(Ordering::Relaxed),
            disconnects: s.disconnects.load(Ordering::Relaxed),
            checks: s.checks.load(Ordering::Relaxed),
            replacements: s.replacements.load(Ordering::Relaxed),
        }
    }
}

/// Exports the watchdog's counters at zero from the start, so that dashboards and alerts
/// (`rate()`, `increase()`) see a series before the first event rather than none.
fn register_counters(opener: &Opener) {
    for name in [TIMEOUTS, DISCONNECTS, REDIRECT_RETRIES] {
        metrics::counter!(name).increment(0);
    }
    for result in ["healthy", "replaced", "unreachable"] {
        metrics::counter!(CHECKS, "result" => result).increment(0);
    }
    let kind = match opener {
        Opener::Single { .. } => "single",
        Opener::Cluster(_) => "cluster",
    };
    metrics::counter!(REPLACEMENTS, "kind" => kind).increment(0);
    metrics::counter!(crate::metric_names::NOT_REPLICATED).increment(0);
    metrics::counter!(crate::metric_names::REPLICA_FALLBACKS).increment(0);
}

/// An error after which the sentinels may name another master: any but NOSCRIPT (which
/// the store answers by loading the script). A demoted master answers READONLY, or
/// refuses WAIT (durable writes), or cannot be reached; asking costs one question to a
/// sentinel, at most every [`FOLLOW_INTERVAL`], and only while calls fail.
fn not_the_master(err: &RedisError) -> bool {
    err.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

impl Inner {
    fn seeds(&self) -> Vec<String> {
        self.seeds.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn follows(&self) -> bool {
        matches!(&self.opener, Opener::Single { target, .. } if target.follows())
    }

    /// Asks the sentinels for the master; when it is another server than the one in use,
    /// connects to it and puts that connection in place.
    async fn follow(&self, number: u64) {
        let Opener::Single { target, config } = &self.opener else {
            return;
        };
        let client = match within_time(self.bound, target.client()).await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(%err, "sentinels name no reachable master yet");
                return;
            }
        };
        let master = client.get_connection_info().addr().to_string();
        if self.seeds().first() == Some(&master) {
            // Confirmed: an older question that ends later does not undo it.
            let mut installed = lock(&self.follow_installed);
            *installed = (*installed).max(number);
            return;
        }
        let opened = within_time(
            self.bound,
            ConnectionManager::new_with_config(client, config.clone()),
        )
        .await;
        match opened {
            Ok(con) => {
                let mut installed = lock(&self.follow_installed);
                if *installed > number || self.seeds().first() == Some(&master) {
                    return;
                }
                *installed = number;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Handle::Single(con);
                let old = std::mem::replace(
                    &mut *self.seeds.write().unwrap_or_else(|e| e.into_inner()),
                    vec![master.clone()],
                );
                metrics::counter!(MASTER_SWITCHES).increment(1);
                tracing::warn!(from = ?old, to = %master, "following the master Sentinel names");
            }
            Err(err) => tracing::debug!(%err, %master, "the new master does not answer yet"),
        }
    }

    /// PINGs through the current connection; when that fails, opens a fresh connection
    /// and PINGs through it; when that answers, puts it in place of the current one.
    /// Returns the check's result label.
    async fn check(&self) -> &'static str {
        // Under Sentinel a fresh connection asks the sentinels too: numbered like a
        // follow's question, so an answer older than a switch made meanwhile is dropped.
        let number = self.follows_started.fetch_add(1, Ordering::AcqRel) + 1;
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // On a cluster the fresh connection is opened while the current one is pinged: a
        // PING through a connection that still routes to a frozen master waits the whole
        // bound, and after a failover the fresh one (which learns the new topology) is
        // what the calls need, so the swap comes one bound sooner.
        let (pinged, opened) = match self.opener {
            Opener::Cluster(_) => {
                let fresh = async {
                    let fresh = tokio::time::timeout(self.bound, self.open()).await;
                    match fresh {
                        Ok(Ok(fresh)) => self.ping(fresh.clone()).await.map(|()| fresh),
                        Ok(Err(err)) => Err(err),
                        Err(_) => Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no fresh connection in time",
                        ))),
                    }
                };
                // Half the bound for the current one: a wedged cluster client (seen with
                // `redis` 2.0.0-rc.2 under hundreds of calls while slots move) stalls every
                // call until it is replaced, so the sooner the better.
                let current = async {
                    let mut con = current;
                    within_time(
                        self.bound / 2,
                        redis::cmd("PING").query_async::<()>(&mut con),
                    )
                    .await
                };
                let (pinged, opened) = tokio::join!(current, fresh);
                (pinged, Some(opened))
            }
            Opener::Single { .. } => (self.ping(current).await, None),
        };
        let stuck = match pinged {
            Ok(()) => return "healthy",
            Err(err) => err,
        };
        // On a cluster, a PING that fails with an answer (a node refused, CLUSTERDOWN, a
        // redirection) is a failover or a move under way, which the client follows by
        // itself: only silence (a timeout) is a stuck connection worth replacing.
        if matches!(self.opener, Opener::Cluster(_)) && !stuck.is_timeout() {
            tracing::debug!(error = %stuck, "redis connection check: the cluster answers with errors (failover or move under way); not replaced");
            return "unreachable";
        }
        if let Some(opened) = opened {
            return match opened {
                Ok(fresh) => self.replace(fresh, &stuck, number),
                Err(err) => {
                    tracing::debug!(%err, "redis connection check: no fresh cluster connection answers either; waiting for redis");
                    "unreachable"
                }
            };
        }
        let fresh = match tokio::time::timeout(self.bound, self.open()).await {
            Ok(Ok(fresh)) => fresh,
            Ok(Err(err)) => {
                tracing::debug!(%err, "redis connection check: no fresh connection either; waiting for redis");
                return "unreachable";
            }
            Err(_) => {
                tracing::debug!(
                    "redis connection check: no fresh connection in time; waiting for redis"
                );
                return "unreachable";
            }
        };
        if let Err(err) = self.ping(fresh.clone()).await {
            tracing::debug!(%err, "redis connection check: the fresh connection does not answer either");
            return "unreachable";
        }
        self.replace(fresh, &stuck, number)
    }

    /// Puts `fresh` in place of the stuck connection, and counts and logs it; under
    /// Sentinel only when no newer follow (`number`) has installed a master since.
    fn replace(&self, fresh: Handle, stuck: &RedisError, number: u64) -> &'static str {
        let kind = match fresh {
            Handle::Single(_) => "single",
            Handle::Cluster(_) => "cluster",
        };
        if self.follows() {
            let mut installed = lock(&self.follow_installed);
            if *installed > number {
                return "superseded";
            }
            *installed = number;
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.stats.replacements.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(REPLACEMENTS, "kind" => kind).increment(1);
        tracing::warn!(
            kind,
            error = %stuck,
            "redis connection stopped answering while a fresh one answers: replaced"
        );
        "replaced"
    }

    /// PING (every node, through a cluster connection), within the call bound.
    async fn ping(&self, handle: Handle) -> RedisResult<()> {
        let mut con = handle;
        within_time(self.bound, redis::cmd("PING").query_async::<()>(&mut con)).await
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

/// `(host, port)` of every master that serves slots in a CLUSTER NODES reply. A failed
/// master that still serves slots is listed (it is what makes them unreachable); one
/// whose slots went to its replica is not.
pub(crate) fn masters(cluster_nodes: &str) -> Vec<(String, u16)> {
    cluster_nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("noaddr") {
                return None;
            }
            // Fields 8.. are the slot ranges; a master without any serves nothing.
            fields.get(8)?;
            let addr = fields.get(1)?.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

/// `(host, port)` of every replica in a CLUSTER NODES reply (failing ones included: they
/// are the ones to report).
fn replicas(cluster_nodes: &str) -> Vec<(String, u16)> {
    cluster_nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "slave") || flags.contains("noaddr") {
                return None;
            }
            let addr = fields.get(1)?.split('@').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{masters, replicas};

    #[test]
    fn masters_with_slots_only() {
        let text = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7003@17003 slave a 0 0 1 connected
c 127.0.0.1:7001@17001 master,fail - 0 0 2 disconnected
d 127.0.0.1:7002@17002 master - 0 0 3 connected 5461-16383
e :0@0 master,noaddr - 0 0 4 disconnected 100
";
        assert_eq!(
            masters(text),
            vec![
                ("127.0.0.1".to_string(), 7000),
                ("127.0.0.1".to_string(), 7002)
            ]
        );
        assert_eq!(replicas(text), vec![("127.0.0.1".to_string(), 7003)]);
    }
}
