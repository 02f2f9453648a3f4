//! What Redis itself says about a phase: commands run, CPU used, memory held.

use std::collections::BTreeMap;
use test_support::RedisServer;

/// A field of an `INFO` section, e.g. `used_memory`.
pub fn info_field(server: &RedisServer, section: &str, field: &str) -> f64 {
    let text = server.command(&["INFO", section]).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Redis' own CPU time (user + system), in microseconds.
pub fn cpu_us(server: &RedisServer) -> f64 {
    (info_field(server, "cpu", "used_cpu_user") + info_field(server, "cpu", "used_cpu_sys")) * 1e6
}

/// Calls per command since the last `CONFIG RESETSTAT`.
pub fn command_calls(server: &RedisServer) -> BTreeMap<String, u64> {
    let text = server
        .command(&["INFO", "commandstats"])
        .unwrap_or_default();
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let n = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        calls.insert(name.to_owned(), n);
    }
    calls
}

/// What one phase cost Redis, per operation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cost {
    /// Commands Redis executed per operation (a script's inner commands included).
    pub commands_per_op: f64,
    /// Top-level requests per operation: EVALSHA/MULTI/EXEC and plain commands outside a
    /// transaction or script — what crossed the network.
    pub breakdown: String,
    /// Redis CPU time per operation, microseconds (from INFO cpu).
    pub cpu_us_per_op: f64,
}

/// Measures what `phase` costs Redis.
pub async fn measure<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    n: usize,
    phase: F,
) -> Cost {
    let _ = server.command(&["CONFIG", "RESETSTAT"]);
    let cpu_before = cpu_us(server);
    phase.await;
    let cpu = cpu_us(server) - cpu_before;
    let calls = command_calls(server);
    // The INFO calls of the measurement itself are not the workload's.
    let total: u64 = calls
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
        .map(|(_, n)| n)
        .sum();
    let breakdown = calls
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
        .map(|(name, c)| format!("{name}={:.2}", *c as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(" ");
    Cost {
        commands_per_op: total as f64 / n as f64,
        breakdown,
        cpu_us_per_op: cpu / n as f64,
    }
}

/// Bytes Redis holds for every key of the database (`MEMORY USAGE` of each, summed): the
/// data's own footprint, unaffected by client buffers or allocator slack.
pub fn keys_memory(server: &RedisServer) -> u64 {
    let Ok(client) = redis::Client::open(server.url()) else {
        return 0;
    };
    let Ok(mut con) = client.get_connection() else {
        return 0;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut con)
        .unwrap_or_default();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0);
    }
    let sizes: Vec<Option<u64>> = pipe.query(&mut con).unwrap_or_default();
    sizes.into_iter().flatten().sum()
}
