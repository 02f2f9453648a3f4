//! Durable writes: a write acknowledged only once enough replicas have it.
//!
//! Each durable write is sent together with `WAIT n timeout` in one pipeline, on a
//! connection of its own small pool. Redis answers a client's commands in order, and WAIT
//! holds that client's later replies until the replicas confirmed (or the time is up): sent
//! on the store's shared multiplexed connection, one waiting write would stall every call
//! behind it. On the pool only durable writes wait behind each other, at most
//! [`CONNECTIONS`] at a time.
//!
//! Why in one pipeline: WAIT covers the writes its own connection made before it. Sent
//! alone after the write's reply, a reconnect in between would put it on a fresh
//! connection that made no write, and it would confirm at once. Replication is ordered, so
//! a WAIT that covers a call's last write covers its earlier ones too (killall's batches).
//!
//! With `all` on a Redis Cluster, each write waits for the replicas of the master of its
//! key's slot (replica_counts.rs), read from `CLUSTER NODES` at start and every
//! [`TOPOLOGY_REFRESH`] after.

use super::cluster_nodes::key_slot;
use super::connection::Connection;
use super::replica_counts::SlotReplicas;
use super::tasks::AbortOnDrop;
use crate::error::{Error, Result};
use crate::options::MinReplicas;
use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, Pipeline};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Connections of the durable-write pool: durable writes in flight at once. Each waits a
/// replication round trip (about 0.1–0.5 ms on a LAN) on top of the write.
pub(crate) const CONNECTIONS: usize = 4;

/// How often a cluster store with `all` reads the replicas of each master again: a replica
/// added or forgotten, a failover, a moved slot change the count within this time.
pub(crate) const TOPOLOGY_REFRESH: Duration = Duration::from_secs(1);

/// The pool and what to wait for.
pub(crate) struct Durable {
    min: MinReplicas,
    /// Replicas each write waits for: `min.replicas`, or with `all` the replicas that
    /// could be promoted (at least 1), updated by [`Durable::promotable`].
    wanted: AtomicU32,
    pool: Vec<Connection>,
    next: AtomicUsize,
    /// Promotable replicas beyond `min.replicas` last seen (to warn once per change).
    uncovered: AtomicU32,
    /// With `all` on a cluster: the replicas of each slot's master, in place of `wanted`.
    slots: Option<std::sync::Arc<SlotReplicas>>,
    /// The task that keeps `slots` up to date, ended with the pool.
    _refresh: Option<AbortOnDrop>,
}

impl Durable {
    /// Opens the pool's connections. Their call bound has room for the WAIT on top of the
    /// write, so a slow replica ends in [`Error::NotReplicated`], not in a timeout.
    pub(super) async fn open(
        target: super::target::Target,
        config: ConnectionManagerConfig,
        response: Duration,
        bound: Duration,
        min: MinReplicas,
    ) -> Result<Self> {
        let config = config.set_response_timeout(Some(response + min.timeout));
        let mut pool = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            pool.push(
                Connection::single(target.clone(), config.clone(), bound + min.timeout)
                    .await
                    .map_err(Error::from_redis)?,
            );
        }
        let durable = Durable {
            min,
            wanted: AtomicU32::new(min.replicas.max(1)),
            pool,
            next: AtomicUsize::new(0),
            uncovered: AtomicU32::new(0),
            slots: None,
            _refresh: None,
        };
        if min.all && !target.follows() {
            // No sentinels to ask: the replicas the master reports now.
            let info: String = durable.pool[0]
                .query(redis::cmd("INFO").arg("replication"))
                .await
                .map_err(Error::from_redis)?;
            durable.promotable(connected_replicas(&info), false);
        }
        Ok(durable)
    }

    /// Takes note of `n` replicas that could be promoted (after a failover when
    /// `switched`): with `all`, writes wait for all of them from now on; else, when `n` is
    /// more than asked for, warns (log + `durable_uncovered_replicas` gauge) that an
    /// acknowledged write may be lost if one that did not confirm it is promoted.
    pub(super) fn promotable(&self, n: u32, switched: bool) {
        if self.min.all {
            let old = self.wanted.swap(n.max(1), Ordering::AcqRel);
            if old != n.max(1) || switched {
                tracing::info!(
                    replicas = n.max(1),
                    "durable writes wait for every replica that could be promoted"
                );
            }
            metrics::gauge!(crate::metric_names::UNCOVERED_REPLICAS).set(0.0);
            return;
        }
        let uncovered = n.saturating_sub(self.min.replicas);
        metrics::gauge!(crate::metric_names::UNCOVERED_REPLICAS).set(f64::from(uncovered));
        let before = self.uncovered.swap(uncovered, Ordering::AcqRel);
        if uncovered > 0 && (before != uncovered || switched) {
            tracing::warn!(
                min_replicas = self.min.replicas,
                promotable = n,
                "durable writes wait for fewer replicas than Sentinel could promote: an \
                 acknowledged write can be lost when a replica that did not confirm it is \
                 promoted; set min replicas to `all`"
            );
        }
    }

    /// A pool of connections already open: on a Redis Cluster, cluster connections of
    /// their own (each with its own socket to every node). A write and its WAIT go as one
    /// pipeline, which the cluster client routes to the slot of the write (WAIT has no
    /// key) and sends again whole, ASKING included, when the slot has moved: the WAIT
    /// always runs on the node that ran the write.
    ///
    /// With `all`, each write waits for every replica of the master of its slot, as
    /// `CLUSTER NODES` lists them (read now, then every [`TOPOLOGY_REFRESH`]).
    pub(super) async fn with_pool(min: MinReplicas, pool: Vec<Connection>) -> Result<Self> {
        let mut durable = Durable {
            wanted: AtomicU32::new(min.replicas.max(1)),
            uncovered: AtomicU32::new(0),
            min,
            pool,
            next: AtomicUsize::new(0),
            slots: None,
            _refresh: None,
        };
        if min.all {
            let slots = std::sync::Arc::new(SlotReplicas::new());
            let nodes = cluster_nodes(&durable.pool[0]).await?;
            let counts = slots.update(&nodes);
            tracing::info!(
                ?counts,
                "durable writes wait for every replica of the master that ran them"
            );
            let refresh = tokio::spawn(keep_counting(
                durable.pool[0].clone(),
                slots.clone(),
                counts,
            ));
            durable.slots = Some(slots);
            durable._refresh = Some(AbortOnDrop(vec![refresh]));
        }
        Ok(durable)
    }

    /// The next connection of the pool, in turn.
    pub(super) fn connection(&self) -> &Connection {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        &self.pool[at]
    }

    /// The pool's connections (for the Sentinel watcher).
    pub(super) fn connections(&self) -> &[Connection] {
        &self.pool
    }

    /// `cmd` (a script call: its first key names its slot) followed by its WAIT, as one
    /// request, and the replicas that WAIT asks for.
    pub(super) fn with_wait(&self, cmd: &Cmd) -> (Pipeline, u32) {
        let wanted = match &self.slots {
            Some(slots) => slots.wanted(first_key(cmd).map_or(0, key_slot)),
            None => self.wanted.load(Ordering::Acquire),
        };
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(wanted)
            .arg(self.min.timeout.as_millis().max(1) as u64);
        (pipe, wanted)
    }

    /// Fails the call unless the `wanted` replicas its WAIT asked for confirmed.
    pub(super) fn confirmed(&self, acked: u64, wanted: u32) -> Result<()> {
        if acked >= u64::from(wanted) {
            return Ok(());
        }
        metrics::counter!(crate::metric_names::NOT_REPLICATED).increment(1);
        Err(Error::NotReplicated { acked, wanted })
    }
}

/// The first key of a script call (`EVALSHA sha numkeys key…`).
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    match cmd.args_iter().nth(3)? {
        redis::Arg::Simple(key) => Some(key),
        _ => None,
    }
}

/// `CLUSTER NODES` as some node of the cluster sees it.
async fn cluster_nodes(con: &Connection) -> Result<String> {
    con.query(redis::cmd("CLUSTER").arg("NODES"))
        .await
        .map_err(Error::from_redis)
}

/// Reads the replica counts again every [`TOPOLOGY_REFRESH`]; a failed read keeps the last
/// counts (the next read tries again). Logs when the least or most count changes.
async fn keep_counting(
    con: Connection,
    slots: std::sync::Arc<SlotReplicas>,
    mut last: Option<(u16, u16)>,
) {
    loop {
        tokio::time::sleep(TOPOLOGY_REFRESH).await;
        let Ok(nodes) = cluster_nodes(&con).await else {
            continue;
        };
        let counts = slots.update(&nodes);
        if counts.is_some() && counts != last {
            tracing::info!(
                ?counts,
                "durable writes: the replicas of the cluster's masters changed"
            );
            last = counts;
        }
    }
}

/// `connected_slaves` of an `INFO replication` answer.
fn connected_replicas(info: &str) -> u32 {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn connected_replicas_of_info() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=x\r\n";
        assert_eq!(super::connected_replicas(info), 2);
        assert_eq!(super::connected_replicas("role:master\r\n"), 0);
    }
}
