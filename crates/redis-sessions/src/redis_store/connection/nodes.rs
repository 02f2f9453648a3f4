//! The nodes behind a connection, one by one: which of them answer a PING (for
//! `/health`), the cluster's CLUSTER NODES answer (for operators' figures), a SCAN of
//! every master (is a namespace in use), and the parsers of CLUSTER NODES.
//!
//! Separate from the handle (the parent module) because these calls go to chosen nodes
//! (by address, or a random master) rather than where the client routes a key, each
//! within a limit of its caller's, and the watchdog does not count them: they serve
//! operators and the layout check, not the store's operations.

use super::{within_time, Connection, Handle};
use crate::redis_store::cluster_nodes;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, RedisResult, Value};
use std::time::Duration;

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

impl Connection {
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
            Box::pin(within_time(within, ask_cluster_nodes(con.clone(), routing)))
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
        let Handle::Cluster(con) = self.handle() else {
            return None;
        };
        let ask = ask_cluster_nodes(
            con,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        );
        within_time(within, ask).await.ok()
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
                Handle::Cluster(con) => {
                    let text = ask_cluster_nodes(
                        con,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
                    )
                    .await?;
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
}

/// The `CLUSTER NODES` answer of the node `routing` names.
async fn ask_cluster_nodes(
    mut con: ClusterConnection,
    routing: RoutingInfo,
) -> RedisResult<String> {
    let answer = con
        .route_command(redis::cmd("CLUSTER").arg("NODES").clone(), routing)
        .await?;
    redis::from_redis_value(answer).map_err(RedisError::from)
}

/// `(host, port)` of every master that serves slots in a CLUSTER NODES reply. A failed
/// master that still serves slots is listed (it is what makes them unreachable); one
/// whose slots went to its replica is not.
pub(crate) fn masters(cluster_nodes: &str) -> Vec<(String, u16)> {
    with_flag(cluster_nodes, "master", true)
}

/// `(host, port)` of every replica in a CLUSTER NODES reply (failing ones included: they
/// are the ones to report).
fn replicas(cluster_nodes: &str) -> Vec<(String, u16)> {
    with_flag(cluster_nodes, "slave", false)
}

/// `(host, port)` of every node with an address in a CLUSTER NODES reply whose flags
/// include `flag` (`master`, `slave`); with `serving_slots`, only those that serve slots.
fn with_flag(cluster_nodes: &str, flag: &str, serving_slots: bool) -> Vec<(String, u16)> {
    cluster_nodes::lines(cluster_nodes)
        .filter(|n| n.has(flag) && (!serving_slots || n.serves_slots()))
        .filter_map(|n| n.host_port())
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
