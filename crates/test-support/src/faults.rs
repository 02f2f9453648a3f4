//! Faults an operator or the network inflicts on a running Redis, for tests that check
//! the store rides them out: slot moves between masters and killed client connections.
//! (A silent network path is [`crate::proxy::TcpProxy`].)

use crate::RedisServer;
use std::process::{Command, Stdio};

/// The node's cluster id (CLUSTER MYID).
pub fn node_id(node: &RedisServer) -> String {
    let reply = node.command(&["CLUSTER", "MYID"]).unwrap_or_default();
    reply.lines().nth(1).unwrap_or_default().trim().to_owned()
}

/// Moves `slots` hash slots from master `from` to master `to` with
/// `redis-cli --cluster reshard` (through the node `seed`), as an operator would; true
/// when redis-cli reports success. Blocks until the move is done.
pub fn reshard(seed: &RedisServer, from: &RedisServer, to: &RedisServer, slots: u32) -> bool {
    Command::new("redis-cli")
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

/// CLIENT KILL TYPE normal: closes every ordinary client connection of the node (what a
/// proxy restart, a `timeout` setting or an operator does); returns how many it closed.
pub fn kill_clients(node: &RedisServer) -> u64 {
    node.command(&["CLIENT", "KILL", "TYPE", "normal"])
        .ok()
        .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}
