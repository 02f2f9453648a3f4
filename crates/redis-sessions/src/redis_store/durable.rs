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

use super::connection::Connection;
use crate::error::{Error, Result};
use crate::options::MinReplicas;
use redis::aio::ConnectionManagerConfig;
use redis::{Cmd, Pipeline};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// Connections of the durable-write pool: durable writes in flight at once. Each waits a
/// replication round trip (about 0.1–0.5 ms on a LAN) on top of the write.
pub(crate) const CONNECTIONS: usize = 4;

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
    pub(super) fn with_pool(min: MinReplicas, pool: Vec<Connection>) -> Self {
        Durable {
            wanted: AtomicU32::new(min.replicas.max(1)),
            uncovered: AtomicU32::new(0),
            min,
            pool,
            next: AtomicUsize::new(0),
        }
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

    /// `cmd` followed by its WAIT, as one request.
    pub(super) fn with_wait(&self, cmd: &Cmd) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(self.wanted.load(Ordering::Acquire))
            .arg(self.min.timeout.as_millis().max(1) as u64);
        pipe
    }

    /// Fails the call unless enough replicas confirmed.
    pub(super) fn confirmed(&self, acked: u64) -> Result<()> {
        let wanted = self.wanted.load(Ordering::Acquire);
        if acked >= u64::from(wanted) {
            return Ok(());
        }
        metrics::counter!(crate::metric_names::NOT_REPLICATED).increment(1);
        Err(Error::NotReplicated { acked, wanted })
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
