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

/// Calls and microseconds per command since the last `CONFIG RESETSTAT`.
pub fn command_stats(server: &RedisServer) -> BTreeMap<String, (u64, u64)> {
    let text = server
        .command(&["INFO", "commandstats"])
        .unwrap_or_default();
    let mut stats = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let field = |key: &str| -> u64 {
            fields
                .split(',')
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        stats.insert(name.to_owned(), (field("calls="), field("usec=")));
    }
    stats
}

/// What one phase cost Redis, per operation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Cost {
    /// Commands Redis executed per operation (a script's inner commands included).
    pub commands_per_op: f64,
    /// Top-level requests per operation: EVALSHA/MULTI/EXEC and plain commands outside a
    /// transaction or script — what crossed the network.
    pub breakdown: String,
    /// Redis CPU time per operation, microseconds (from INFO cpu: the whole process,
    /// network reads and writes included).
    pub cpu_us_per_op: f64,
    /// Redis' time per operation in the commands the client sent, microseconds (from INFO
    /// commandstats: a script's or a MULTI/EXEC's time includes the commands inside it, so
    /// only the requests the client sent are summed).
    pub commandstats_us_per_op: f64,
}

/// Measures what `phase` costs Redis.
/// Measures what `phase` costs Redis; `top_level` names the commands the client sends
/// itself (outside scripts and transactions), whose time commandstats reports in full.
pub async fn measure<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    n: usize,
    top_level: &[&str],
    phase: F,
) -> Cost {
    let _ = server.command(&["CONFIG", "RESETSTAT"]);
    let cpu_before = cpu_us(server);
    phase.await;
    let cpu = cpu_us(server) - cpu_before;
    let stats = command_stats(server);
    // The INFO calls of the measurement itself are not the workload's.
    let workload = || {
        stats
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "config|resetstat"))
    };
    let total: u64 = workload().map(|(_, (calls, _))| calls).sum();
    let breakdown = workload()
        .map(|(name, (calls, _))| format!("{name}={:.2}", *calls as f64 / n as f64))
        .collect::<Vec<_>>()
        .join(" ");
    let top_usec: u64 = workload()
        .filter(|(name, _)| top_level.contains(&name.as_str()))
        .map(|(_, (_, usec))| usec)
        .sum();
    Cost {
        commands_per_op: total as f64 / n as f64,
        breakdown,
        cpu_us_per_op: cpu / n as f64,
        commandstats_us_per_op: top_usec as f64 / n as f64,
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
