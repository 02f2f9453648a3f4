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
fn start_node(node_timeout_ms: u64) -> RedisServer {
    let timeout = node_timeout_ms.to_string();
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-node-timeout",
        &timeout,
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
        Self::start_with_node_timeout(masters, replicas, 1000)
    }

    /// [`start`](Self::start) with another `cluster-node-timeout` (ms): how long a master
    /// may be silent before its replica takes over (production clusters often run 2–15 s).
    pub fn start_with_node_timeout(masters: usize, replicas: usize, node_timeout_ms: u64) -> Self {
        let count = masters * (1 + replicas);
        let nodes: Vec<RedisServer> = (0..count).map(|_| start_node(node_timeout_ms)).collect();
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

    /// Waits until every running replica has its master's data (`master_link_status:up`):
    /// a replica that never synced cannot take over (Redis 7 delays the first sync by
    /// `repl-diskless-sync-delay`, 5 s), so fault tests start after this.
    pub fn wait_replicas_linked(&self, limit: Duration) {
        let started = Instant::now();
        let linked = |n: &RedisServer| {
            let info = n.command(&["INFO", "replication"]).unwrap_or_default();
            !info.contains("role:slave") || info.contains("master_link_status:up")
        };
        while !self.nodes.iter().filter(|n| n.is_running()).all(linked) {
            assert!(
                started.elapsed() < limit,
                "replicas not linked within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:{port}/` of every node, as seeds for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// `127.0.0.1:{port}` of the masters as created, sorted: how the servers under test
    /// name a node (in `/health`, in an app's spread over masters).
    pub fn master_addresses(&self) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .masters()
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        addresses.sort();
        addresses
    }

    /// The nodes that are masters now (by INFO replication), in `nodes` order.
    pub fn current_masters(&self) -> Vec<&RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && role(n) == "master")
            .collect()
    }

    /// The master nodes as created (a failover may change roles later).
    pub fn masters(&self) -> &[RedisServer] {
        &self.nodes[..self.masters]
    }

    /// Adds one more replica to the `master`-th master (`redis-cli --cluster add-node
    /// --cluster-slave`), so masters can have different replica counts; waits until it has
    /// synced and every node lists it. Returns its index in `nodes`.
    pub fn add_replica(&mut self, master: usize) -> usize {
        let master_node = &self.nodes[master];
        let id = master_node
            .command(&["CLUSTER", "MYID"])
            .expect("CLUSTER MYID")
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let replica = start_node(1000);
        let status = Command::new(crate::cli_binary())
            .args([
                "--cluster",
                "add-node",
                &format!("127.0.0.1:{}", replica.port()),
                &format!("127.0.0.1:{}", master_node.port()),
                "--cluster-slave",
                "--cluster-master-id",
                &id,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success(), "redis-cli --cluster add-node failed");
        self.nodes.push(replica);
        let started = Instant::now();
        let count = self.nodes.len();
        loop {
            let listed = self.nodes.iter().all(|n| {
                n.command(&["CLUSTER", "NODES"])
                    .map(|text| text.matches("slave").count() + self.masters == count)
                    .unwrap_or(false)
            });
            if listed {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the new replica is not listed everywhere"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_replicas_linked(Duration::from_secs(30));
        count - 1
    }

    /// The nodes (indexes in `nodes`) that `CLUSTER NODES` lists as replicas of the master
    /// `master` (an index in `nodes`).
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let id = self.nodes[master]
            .command(&["CLUSTER", "MYID"])
            .unwrap_or_default()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let text = self.nodes[master]
            .command(&["CLUSTER", "NODES"])
            .unwrap_or_default();
        let ports: Vec<u16> = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let replica = fields.get(2)?.contains("slave") && fields.get(3)? == &id.as_str();
                let port = fields
                    .get(1)?
                    .split(['@', ','])
                    .next()?
                    .rsplit(':')
                    .next()?;
                replica.then(|| port.parse().ok()).flatten()
            })
            .collect();
        (0..self.nodes.len())
            .filter(|&i| ports.contains(&self.nodes[i].port()))
            .collect()
    }
}

/// `master` or `slave` (INFO replication), or empty when the node does not answer.
pub fn role(node: &RedisServer) -> String {
    node.command(&["INFO", "replication"])
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("role:"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A node frozen by SIGSTOP (a GC-like stall, VM steal, a hung disk): its sockets stay
/// open and silent, requests queue on them. Resumed (SIGCONT) when dropped, if not before.
pub struct Stall {
    pid: String,
    resumed: bool,
}

impl Stall {
    /// Freezes `node` now.
    pub fn start(node: &RedisServer) -> Stall {
        let info = node.command(&["INFO", "server"]).unwrap_or_default();
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .map(|p| p.trim().to_owned())
            .expect("the node's process id");
        signal("-STOP", &pid);
        Stall {
            pid,
            resumed: false,
        }
    }

    /// Lets the node run again.
    pub fn resume(&mut self) {
        if !self.resumed {
            signal("-CONT", &self.pid);
            self.resumed = true;
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.resume();
    }
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill")
        .args([which, pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {which} {pid}");
}
