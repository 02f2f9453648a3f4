//! One connection type for both deployments: a single Redis server (a multiplexed
//! connection that reconnects by itself) or a Redis Cluster (the `redis` crate's cluster
//! client, which follows MOVED/ASK redirections and failovers and retries the call).

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Script};

/// Where the store's commands go.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Connection::Single(con) => cmd.query_async(&mut con.clone()).await,
            Connection::Cluster(con) => cmd.query_async(&mut con.clone()).await,
        }
    }

    pub async fn query_pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Connection::Single(con) => pipe.query_async(&mut con.clone()).await,
            Connection::Cluster(con) => pipe.query_async(&mut con.clone()).await,
        }
    }

    /// SCRIPT LOAD (on every master, in a cluster).
    pub async fn load(&self, script: &Script) -> RedisResult<String> {
        match self {
            Connection::Single(con) => script.load_async(&mut con.clone()).await,
            Connection::Cluster(con) => script.load_async(&mut con.clone()).await,
        }
    }
}
