//! `durable-bench`: the cost of durable writes (`Options::min_replicas`). Starts a master
//! and one replica on loopback, and runs the same mixed load (create, set, get per round)
//! with durable writes off and on, in turns, printing ops/s and per-operation p50/p99.
//!
//! Run: `cargo run --release -p rs-bench --bin durable-bench` (see `--help`).

use clap::Parser;
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use test_support::RedisServer;

#[derive(Parser, Debug)]
#[command(about = "Measures ops/s and p99 of redis-sessions with durable writes off and on")]
struct Args {
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Runs of each mode (off and on alternate); the median run is printed.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Milliseconds a durable write waits for its replica.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
}

/// One run: calls per second over all operations, and latencies (ns) per operation.
struct Run {
    ops_per_sec: f64,
    latencies: BTreeMap<&'static str, Vec<u64>>,
    failures: u64,
}

async fn run(rs: &RedisSessions, concurrency: usize, seconds: u64) -> Run {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = (0..concurrency).map(|w| {
        let rs = rs.clone();
        tokio::spawn(async move {
            let mut latencies: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
            let mut failures = 0u64;
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let id = format!("u{w}-{i}");
                let started = Instant::now();
                let token = match rs
                    .create("bench", &id, "10.0.0.1", CreateOptions::default())
                    .await
                {
                    Ok(token) => token,
                    Err(_) => {
                        failures += 1;
                        continue;
                    }
                };
                latencies
                    .entry("create")
                    .or_default()
                    .push(started.elapsed().as_nanos() as u64);
                let started = Instant::now();
                match rs.set("bench", &token, &json!({ "n": i })).await {
                    Ok(_) => latencies
                        .entry("set")
                        .or_default()
                        .push(started.elapsed().as_nanos() as u64),
                    Err(_) => failures += 1,
                }
                let started = Instant::now();
                match rs.get("bench", &token).await {
                    Ok(_) => latencies
                        .entry("get")
                        .or_default()
                        .push(started.elapsed().as_nanos() as u64),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        })
    });
    let started = Instant::now();
    let mut all: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut failures = 0;
    for worker in workers.collect::<Vec<_>>() {
        let (latencies, failed) = worker.await.expect("worker");
        failures += failed;
        for (op, mut values) in latencies {
            all.entry(op).or_default().append(&mut values);
        }
    }
    let elapsed = started.elapsed();
    let calls: usize = all.values().map(Vec::len).sum();
    for values in all.values_mut() {
        values.sort_unstable();
    }
    Run {
        ops_per_sec: calls as f64 / elapsed.as_secs_f64(),
        latencies: all,
        failures,
    }
}

fn percentile_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_ns.len() - 1) as f64).round() as usize;
    sorted_ns[rank] as f64 / 1000.0
}

// One client thread, as rs-bench: the other core is the master's and the replica's.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    println!(
        "master :{} + replica :{}, {} callers, {} s per run, {} runs per mode",
        master.port(),
        replica.port(),
        args.concurrency,
        args.seconds,
        args.reps
    );
    let base = || {
        Options::default()
            .url(master.url())
            .wipe(Duration::ZERO)
            .response_timeout(Duration::from_secs(10))
    };
    let off = RedisSessions::connect(base()).await.expect("connect");
    let on = RedisSessions::connect(base().min_replicas(1, Duration::from_millis(args.timeout_ms)))
        .await
        .expect("connect");
    let mut runs: BTreeMap<&'static str, Vec<Run>> = BTreeMap::new();
    for _ in 0..args.reps {
        for (mode, rs) in [("off", &off), ("on", &on)] {
            master.command(&["FLUSHALL"]).expect("flushall");
            let run = run(rs, args.concurrency, args.seconds).await;
            println!("  durable {mode:>3}: {:>8.0} ops/s", run.ops_per_sec);
            runs.entry(mode).or_default().push(run);
        }
    }
    println!("\nmedian run per mode (latencies in µs):");
    println!("durable   ops/s  failures  create p50/p99   set p50/p99   get p50/p99");
    for (mode, mut list) in runs {
        list.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        let median = &list[list.len() / 2];
        let cell = |op: &str| {
            let values = median.latencies.get(op).map(Vec::as_slice).unwrap_or(&[]);
            format!(
                "{:>6.0}/{:<6.0}",
                percentile_us(values, 50.0),
                percentile_us(values, 99.0)
            )
        };
        println!(
            "{mode:>7} {:>7.0} {:>9}  {}  {}  {}",
            median.ops_per_sec,
            median.failures,
            cell("create"),
            cell("set"),
            cell("get")
        );
    }
}
