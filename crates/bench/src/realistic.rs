//! A workload shaped like real traffic (issue #15): every session is read again after a
//! random pause of 1 to 6 seconds — so most reads come in a later second and move `la` and
//! the indexes — one access in ten is a set instead of a get, and the calls arrive spread
//! over the run in small groups (one every few milliseconds) rather than in one burst that
//! a client would pipeline. The same seeded schedule runs through our library and through
//! the npm module, one after the other on the same Redis, and Redis' CPU per operation is
//! read from INFO cpu.

use crate::redis_info::{self, Cost};
use crate::workload::{Op, Runner, APP};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::RedisServer;

/// The pause between two accesses of one session, milliseconds.
const PAUSE_MS: std::ops::Range<u64> = 1000..6000;

/// Accesses due within one tick go out together (concurrently): real servers' requests
/// also overlap a little, but not by thousands.
const TICK_MS: u64 = 5;

/// One access of the schedule.
#[derive(Debug, Clone, Copy)]
struct Access {
    /// When, in milliseconds from the start of the run.
    at_ms: u64,
    /// Which session (index into the runner's tokens).
    session: usize,
    /// A set (one in ten) rather than a get.
    set: bool,
}

/// The accesses of `sessions` sessions over `seconds`, in time order; the same for the same
/// seed, so ours and Node's runs do the very same calls.
fn schedule(sessions: usize, seconds: u64, seed: u64) -> Vec<Access> {
    let mut rng = StdRng::seed_from_u64(seed);
    let end = seconds * 1000;
    let mut out = Vec::new();
    for session in 0..sessions {
        let mut at_ms = rng.random_range(PAUSE_MS);
        while at_ms < end {
            out.push(Access {
                at_ms,
                session,
                set: rng.random_ratio(1, 10),
            });
            at_ms += rng.random_range(PAUSE_MS);
        }
    }
    out.sort_by_key(|a| a.at_ms);
    out
}

/// What one run cost Redis, and how late the runner fell behind the schedule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub cost: Cost,
    /// Redis CPU µs/op less Redis' own idle housekeeping over the run's time.
    pub cpu_us_per_op_less_idle: f64,
    pub operations: usize,
    /// How much longer than the schedule the run took, ms (a runner that cannot keep up
    /// batches more, which would flatter it).
    pub behind_ms: u64,
}

/// Redis' CPU while idle (serverCron, the INFO calls), µs per second.
pub async fn idle_cpu_us_per_s(server: &RedisServer) -> f64 {
    let before = redis_info::cpu_us(server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    (redis_info::cpu_us(server) - before) / 2.0
}

/// Creates `sessions` sessions (not measured), then runs the schedule and measures it.
pub async fn run(
    server: &RedisServer,
    runner: &mut Runner,
    sessions: usize,
    seconds: u64,
    idle_us_per_s: f64,
) -> Outcome {
    let _ = server.command(&["FLUSHALL"]);
    runner.run(Op::Create, sessions, false).await;
    let plan = schedule(sessions, seconds, 15);
    let operations = plan.len();
    let top_level = runner.top_level_commands();
    let started = Instant::now();
    let cost = redis_info::measure(server, operations, top_level, async {
        let mut i = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while i < plan.len() {
            tick.tick().await;
            let now_ms = started.elapsed().as_millis() as u64;
            let due = plan[i..].partition_point(|a| a.at_ms <= now_ms);
            if due > 0 {
                access(runner, &plan[i..i + due]).await;
                i += due;
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    let idle = idle_us_per_s * elapsed.as_secs_f64() / operations.max(1) as f64;
    Outcome {
        cpu_us_per_op_less_idle: cost.cpu_us_per_op - idle,
        cost,
        operations,
        behind_ms: (elapsed.as_millis() as u64).saturating_sub(seconds * 1000),
    }
}

/// The accesses of one tick, concurrently. A set writes `{"k{i % 10}": i}` (i: its place
/// among the tick's sets), as the npm module's driver does.
async fn access(runner: &mut Runner, due: &[Access]) {
    match runner {
        Runner::Ours { rs, tokens } => {
            let (rs, tokens) = (&*rs, &*tokens);
            let mut sets = 0..;
            let calls = due.iter().map(|a| {
                let token = &tokens[a.session % tokens.len().max(1)];
                let i = if a.set { sets.next().unwrap_or(0) } else { 0 };
                async move {
                    let found = if a.set {
                        rs.set(APP, token, &json!({ format!("k{}", i % 10): i }))
                            .await
                            .map(|s| s.is_some())
                    } else {
                        rs.get(APP, token).await.map(|s| s.is_some())
                    };
                    assert!(
                        matches!(found, Ok(true)),
                        "every scheduled session is live: {found:?}"
                    );
                }
            });
            join_all(calls).await;
        }
        Runner::Node { peer, tokens } => {
            for set in [false, true] {
                let chosen: Vec<&str> = due
                    .iter()
                    .filter(|a| a.set == set)
                    .map(|a| tokens[a.session % tokens.len().max(1)].as_str())
                    .collect();
                if chosen.is_empty() {
                    continue;
                }
                let op = if set { "set" } else { "get" };
                let args =
                    json!({"op": op, "n": chosen.len(), "app": APP, "tokens": chosen}).to_string();
                peer.call("bench", &args).expect("node bench call");
            }
        }
    }
}
