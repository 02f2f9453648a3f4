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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections of the durable-write pool: durable writes in flight at once. Each waits a
/// replication round trip (about 0.1–0.5 ms on a LAN) on top of the write.
pub(crate) const CONNECTIONS: usize = 4;

/// The pool and what to wait for.
pub(crate) struct Durable {
    min: MinReplicas,
    pool: Vec<Connection>,
    next: AtomicUsize,
}

impl Durable {
    /// Opens the pool's connections. Their call bound has room for the WAIT on top of the
    /// write, so a slow replica ends in [`Error::NotReplicated`], not in a timeout.
    pub async fn open(
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
                Connection::single(target.clone(), config.clone(), bound + min.timeout).await?,
            );
        }
        Ok(Durable {
            min,
            pool,
            next: AtomicUsize::new(0),
        })
    }

    /// A pool of connections already open: on a Redis Cluster, cluster connections of
    /// their own (each with its own socket to every node). A write and its WAIT go as one
    /// pipeline, which the cluster client routes to the slot of the write (WAIT has no
    /// key) and sends again whole, ASKING included, when the slot has moved: the WAIT
    /// always runs on the node that ran the write.
    pub fn with_pool(min: MinReplicas, pool: Vec<Connection>) -> Self {
        Durable {
            min,
            pool,
            next: AtomicUsize::new(0),
        }
    }

    /// The next connection of the pool, in turn.
    pub fn connection(&self) -> &Connection {
        let at = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        &self.pool[at]
    }

    /// The pool's connections (for the Sentinel watcher).
    pub fn connections(&self) -> &[Connection] {
        &self.pool
    }

    /// `cmd` followed by its WAIT, as one request.
    pub fn with_wait(&self, cmd: &Cmd) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(self.min.replicas)
            .arg(self.min.timeout.as_millis().max(1) as u64);
        pipe
    }

    /// Fails the call unless enough replicas confirmed.
    pub fn confirmed(&self, acked: u64) -> Result<()> {
        if acked >= u64::from(self.min.replicas) {
            return Ok(());
        }
        metrics::counter!(crate::metric_names::NOT_REPLICATED).increment(1);
        Err(Error::NotReplicated {
            acked,
            wanted: self.min.replicas,
        })
    }
}
