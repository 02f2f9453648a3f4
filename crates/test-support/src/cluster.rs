//! Throwaway Redis Clusters: several `redis-server` processes in cluster mode on free
//! loopback ports, joined with `redis-cli --cluster create`.

use crate::{free_port, RedisServer};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster, stopped when dropped.
pub struct RedisCluster {
    /// Masters first, then replicas.
    pub nodes: Vec<RedisServer>,
    masters: usize,
}

/// A free port whose cluster bus port (port + 10000) exists and is free too: redis-server
/// refuses to start in cluster mode above 55535 (loopback's free ports go up to 60999), and
/// exits when the bus port is taken.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A cluster-mode node on a free port pair; another pair when a port was taken between
/// the check and the start (tests of one binary pick ports in parallel).
fn start_node() -> RedisServer {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        "1000",
        "--cluster-config-file",
        "nodes.conf",
    ];
    for _ in 0..4 {
        if let Some(node) = RedisServer::try_start_with(free_cluster_port(), &args) {
            return node;
        }
    }
    RedisServer::start_with(free_cluster_port(), &args)
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each, and waits until the cluster
    /// reports `cluster_state:ok` on every node.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count).map(|_| start_node()).collect();
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        args.extend([
            "--cluster-replicas".into(),
            replicas.to_string(),
            "--cluster-yes".into(),
        ]);
        let status = Command::new(crate::cli_binary())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli not found: install redis-tools");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes, masters };
        cluster.wait_until_ok(Duration::from_secs(20));
        cluster
    }

    /// Waits until every running node says the cluster is ok.
    pub fn wait_until_ok(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .map(|info| info.contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return;
            }
            assert!(started.elapsed() < limit, "cluster not ok within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:{port}/` of every node, as seeds for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The master nodes as created (a failover may change roles later).
    pub fn masters(&self) -> &[RedisServer] {
        &self.nodes[..self.masters]
    }
}
