//! Faults an operator or the network inflicts on a running Redis, for tests that check
//! the store rides them out: slot moves between masters (reshard, rebalance) and killed
//! client connections.
//! (A silent network path is [`crate::proxy::TcpProxy`]; [`proxy_cluster`] puts one in
//! front of every node of a cluster.)

use crate::cluster::RedisCluster;
use crate::proxy::TcpProxy;
use crate::RedisServer;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The node's cluster id (CLUSTER MYID).
pub fn node_id(node: &RedisServer) -> String {
    let reply = node.command(&["CLUSTER", "MYID"]).unwrap_or_default();
    reply.lines().nth(1).unwrap_or_default().trim().to_owned()
}

/// Moves `slots` hash slots from master `from` to master `to` with
/// `redis-cli --cluster reshard` (through the node `seed`), as an operator would; true
/// when redis-cli reports success. Blocks until the move is done.
pub fn reshard(seed: &RedisServer, from: &RedisServer, to: &RedisServer, slots: u32) -> bool {
    Command::new(crate::cli_binary())
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", seed.port()),
        ])
        .args([
            "--cluster-from",
            &node_id(from),
            "--cluster-to",
            &node_id(to),
        ])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Evens out the slots among the masters with `redis-cli --cluster rebalance` (through the
/// node `seed`); true when redis-cli reports success. Blocks until the moves are done.
pub fn rebalance(seed: &RedisServer) -> bool {
    Command::new(crate::cli_binary())
        .args([
            "--cluster",
            "rebalance",
            &format!("127.0.0.1:{}", seed.port()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// CLIENT KILL TYPE normal: closes every ordinary client connection of the node (what a
/// proxy restart, a `timeout` setting or an operator does); returns how many it closed.
pub fn kill_clients(node: &RedisServer) -> u64 {
    node.command(&["CLIENT", "KILL", "TYPE", "normal"])
        .ok()
        .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}

/// Puts a [`TcpProxy`] in front of every node of `cluster` and makes the nodes announce
/// the proxies' ports (`cluster-announce-port`; the bus keeps its real port), so a
/// cluster client that starts from the returned seeds reaches every node through a
/// proxy. Waits until every node's view shows the proxies.
pub fn proxy_cluster(cluster: &RedisCluster) -> (Vec<TcpProxy>, Vec<String>) {
    let proxies: Vec<TcpProxy> = cluster
        .nodes
        .iter()
        .map(|n| TcpProxy::start(n.port()))
        .collect();
    for (node, proxy) in cluster.nodes.iter().zip(&proxies) {
        let bus = (node.port() + 10000).to_string();
        let port = proxy.port().to_string();
        for (key, value) in [
            ("cluster-announce-bus-port", &bus),
            ("cluster-announce-port", &port),
        ] {
            let reply = node
                .command(&["CONFIG", "SET", key, value])
                .unwrap_or_default();
            assert!(reply.starts_with("+OK"), "CONFIG SET {key}: {reply}");
        }
    }
    let started = Instant::now();
    let announced = |node: &RedisServer| {
        let view = node.command(&["CLUSTER", "NODES"]).unwrap_or_default();
        proxies
            .iter()
            .all(|p| view.contains(&format!("127.0.0.1:{}@", p.port())))
    };
    while !cluster.nodes.iter().all(announced) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the nodes did not learn the proxies' ports"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seeds = proxies.iter().map(TcpProxy::url).collect();
    (proxies, seeds)
}
