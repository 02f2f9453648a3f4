//! The original's workload (N concurrent creates, then gets, sets and kills of those
//! tokens), run through our library or through the npm module.

use crate::stats;
use futures_util::future::join_all;
use redis_sessions::{CreateOptions, RedisSessions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use test_support::node::NodePeer;

pub const APP: &str = "benchapp";

/// The operations of the workload, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    /// Gets within the second of the creates: sessions read again within the same second,
    /// whose indexes already hold `now` (the case the get target names).
    Get,
    /// The same gets in the next second: every index is rewritten, as the Node module
    /// does on every get.
    GetNextSecond,
    Set,
    /// The same gets seconds later (idle ≥ 2): `la` moves too — the common read of real
    /// traffic, where a user's next request comes seconds after the last.
    GetLater,
    Kill,
}

impl Op {
    pub const ALL: [Op; 6] = [
        Op::Create,
        Op::Get,
        Op::GetNextSecond,
        Op::Set,
        Op::GetLater,
        Op::Kill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get",
            Op::GetNextSecond => "get_next_second",
            Op::Set => "set",
            Op::GetLater => "get_later",
            Op::Kill => "kill",
        }
    }

    /// What the operation is, in words (issue #15's table).
    pub fn describe(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Get => "get, same second as the last access",
            Op::GetNextSecond => "get, a later second (the next: idle 1)",
            Op::Set => "set",
            Op::GetLater => "get, seconds later (idle ≥ 2: la moves too)",
            Op::Kill => "kill",
        }
    }

    /// The name of the operation the Node driver runs for it.
    fn node_name(self) -> &'static str {
        match self {
            Op::GetNextSecond | Op::GetLater => "get",
            other => other.name(),
        }
    }

    /// Waits for the second boundary this phase needs: creates start a second (so the
    /// gets that follow fall in it), the next-second gets start the following one, and the
    /// later gets start two seconds after the next boundary (idle ≥ 2 even when the sets
    /// before them ran into the next second and moved `la`).
    pub async fn align(self) {
        let extra = match self {
            Op::Create | Op::GetNextSecond => Duration::ZERO,
            Op::GetLater => Duration::from_secs(2),
            Op::Get | Op::Set | Op::Kill => return,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let to_next = Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos() as u64);
        tokio::time::sleep(to_next + extra + Duration::from_millis(5)).await;
    }
}

/// One phase's timing.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub elapsed: Duration,
    /// Per-call latency percentiles, nanoseconds.
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Who runs the workload.
pub enum Runner {
    Ours {
        rs: RedisSessions,
        tokens: Vec<String>,
    },
    Node {
        peer: NodePeer,
        tokens: Vec<String>,
    },
}

impl Runner {
    /// The commands this client sends itself, outside scripts and transactions (ours: the
    /// sharded layout's kill reads the id with an HGET first; the Node
    /// module's kill also sends a ZREM of `_users` outside its MULTI when a user's last
    /// session ends; left out, which only favours the Node module).
    pub fn top_level_commands(&self) -> &'static [&'static str] {
        match self {
            Runner::Ours { .. } => &["evalsha", "multi", "exec", "hget"],
            Runner::Node { .. } => &["hmget", "multi", "exec"],
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Runner::Ours { .. } => "ours",
            Runner::Node { .. } => "node",
        }
    }

    /// Runs `n` calls of `op`, all at once (`sequential` false) or one after another.
    pub async fn run(&mut self, op: Op, n: usize, sequential: bool) -> Phase {
        match self {
            Runner::Ours { rs, tokens } => run_ours(rs, tokens, op, n, sequential).await,
            // The Node peer is driven synchronously: nothing else runs meanwhile.
            Runner::Node { peer, tokens } => run_node(peer, tokens, op, n, sequential),
        }
    }
}

/// Reports the first failed call of the run, so a failing phase says why.
fn first_error(err: redis_sessions::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| eprintln!("first failed call: {err}"));
}

async fn one_call(rs: &RedisSessions, tokens: &[String], op: Op, i: usize) -> Option<String> {
    let token = || &tokens[i % tokens.len().max(1)];
    match op {
        Op::Create => rs
            .create(
                APP,
                &format!("user{}", i % 1000),
                "127.0.0.1",
                CreateOptions::default().ttl(Duration::from_secs(7200)),
            )
            .await
            .map_err(first_error)
            .ok(),
        Op::Get | Op::GetNextSecond | Op::GetLater => rs
            .get(APP, token())
            .await
            .map_err(first_error)
            .ok()
            .flatten()
            .map(|_| String::new()),
        Op::Set => rs
            .set(APP, token(), &json!({ format!("k{}", i % 10): i }))
            .await
            .map_err(first_error)
            .ok()
            .flatten()
            .map(|_| String::new()),
        Op::Kill => rs
            .kill(APP, token())
            .await
            .map_err(first_error)
            .ok()
            .map(|_| String::new()),
    }
}

async fn run_ours(
    rs: &RedisSessions,
    tokens: &mut Vec<String>,
    op: Op,
    n: usize,
    sequential: bool,
) -> Phase {
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    let results: Vec<Option<String>> = if sequential {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let t0 = Instant::now();
            out.push(one_call(rs, tokens, op, i).await);
            latencies.push(t0.elapsed().as_nanos() as u64);
        }
        out
    } else {
        let snapshot: &Vec<String> = tokens;
        join_all((0..n).map(|i| async move {
            let t0 = Instant::now();
            let r = one_call(rs, snapshot, op, i).await;
            (r, t0.elapsed().as_nanos() as u64)
        }))
        .await
        .into_iter()
        .map(|(r, ns)| {
            latencies.push(ns);
            r
        })
        .collect()
    };
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_none()).count();
    assert!(failed == 0, "{failed} of {n} {} calls failed", op.name());
    if op == Op::Create {
        *tokens = results.into_iter().flatten().collect();
    }
    latencies.sort_unstable();
    Phase {
        elapsed,
        p50_ns: stats::percentile(&latencies, 50.0),
        p99_ns: stats::percentile(&latencies, 99.0),
    }
}

fn run_node(
    peer: &mut NodePeer,
    tokens: &mut Vec<String>,
    op: Op,
    n: usize,
    sequential: bool,
) -> Phase {
    let mut args = json!({"op": op.node_name(), "n": n, "app": APP, "sequential": sequential});
    if op != Op::Create {
        args["tokens"] = json!(tokens);
    }
    let reply = peer
        .call("bench", &args.to_string())
        .expect("node bench call");
    let reply: Value = serde_json::from_str(&reply).expect("node bench reply");
    if op == Op::Create {
        *tokens = reply["tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
    }
    let ns = |k: &str| reply[k].as_u64().unwrap_or(0);
    Phase {
        elapsed: Duration::from_nanos(ns("elapsed_ns")),
        p50_ns: ns("p50_ns"),
        p99_ns: ns("p99_ns"),
    }
}
