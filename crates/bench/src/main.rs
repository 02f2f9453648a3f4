//! `rs-bench`: the original module's headline workload, run through our library and the
//! npm `redis-sessions@4.0.0` on the same fresh redis-server in the same run, with what
//! Redis itself can do as the ceiling. Prints one table and writes it as JSON.
//!
//! Run: `cargo run --release -p rs-bench` (see `--help`).

mod ceiling;
mod realistic;
mod redis_info;
mod stats;
mod workload;

use clap::Parser;
use redis_info::Cost;
use redis_sessions::{CreateOptions, KeyLayout, Options, RedisSessions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use std::time::Instant;
use test_support::node::NodePeer;
use test_support::RedisServer;
use workload::{Op, Runner, APP};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks redis-sessions (Rust) against the npm module and the Redis ceiling")]
struct Args {
    /// Numbers of concurrent calls per phase.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sizes: Vec<usize>,
    /// Repetitions of each size (median and spread are reported).
    #[arg(long, default_value_t = 7)]
    reps: usize,
    /// Calls of the sequential (one at a time) latency run.
    #[arg(long, default_value_t = 2000)]
    sequential: usize,
    /// Cached gets to time.
    #[arg(long, default_value_t = 2_000_000)]
    cached_gets: usize,
    /// Sessions of the realistic workload (each read again after a pause of 1–6 s, one
    /// access in ten a set); default: the largest of `sizes`, so a tiny run stays tiny.
    #[arg(long)]
    realistic_sessions: Option<usize>,
    /// Seconds of each realistic run (0: no realistic workload). Runs `reps` times per
    /// runner.
    #[arg(long, default_value_t = 10)]
    realistic_seconds: u64,
    /// Our runner uses the sharded layout (what a fleet without Node processes runs: the
    /// expiry index kept by the sweep, key TTLs) on the same one server; the Node module
    /// keeps its layout. The ceiling stays the Node layout's.
    #[arg(long)]
    sharded: bool,
    /// Run our workload on a 3-master Redis Cluster (sharded layout) instead; the npm
    /// module cannot run on a cluster, so only our figures are printed.
    #[arg(long)]
    cluster: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results/bench.json")]
    json: String,
}

impl Args {
    /// The realistic workload's sessions: as given, else the largest size.
    fn realistic_sessions(&self) -> usize {
        self.realistic_sessions
            .unwrap_or_else(|| self.sizes.iter().copied().max().unwrap_or(10_000))
    }
}

#[derive(Debug, Default, Serialize)]
struct Report {
    /// Throughput: runner → N → op → ops/s summary.
    throughput: BTreeMap<String, BTreeMap<usize, BTreeMap<String, stats::Summary>>>,
    /// Sequential latency: runner → op → (p50 µs, p99 µs).
    sequential: BTreeMap<String, BTreeMap<String, (f64, f64)>>,
    /// Redis' cost per operation: runner → op.
    cost: BTreeMap<String, BTreeMap<String, Cost>>,
    /// The realistic workload: runner → the median run (by Redis CPU per op).
    realistic: BTreeMap<String, realistic::Outcome>,
    /// Median of the per-rep ratios ours/Node of the realistic workload's Redis CPU per op
    /// (idle housekeeping subtracted).
    realistic_cpu_ours_vs_node: f64,
    /// Redis memory per session, bytes, by runner.
    memory_per_session: BTreeMap<String, f64>,
    /// Cached gets per second in one process
    cached_gets_per_sec: f64,
    /// Other ceilings measured alongside (redis-benchmark), ops/s per repetition.
    cross_checks: BTreeMap<String, Vec<f64>>,
    /// Medians of the per-repetition ratios: N → "op/ours_vs_node" or "op/ours_vs_ceiling".
    ratios: BTreeMap<usize, BTreeMap<String, f64>>,
}

/// The store's options for a run: no sweep, and a call deadline long enough for a burst of
/// 10,000 calls queued on a busy machine (the default 1 s is for outages, not queues; the
/// Node module has no deadline at all).
fn bench_options(options: Options) -> Options {
    options
        .response_timeout(std::time::Duration::from_secs(30))
        .wipe(Duration::ZERO)
}

// One client thread, as the Node module has: on a 2-core machine the other core is Redis'.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    if args.cluster {
        return cluster_run(&args).await;
    }
    let server = RedisServer::start();
    println!(
        "redis-server on port {} (fresh, no persistence)",
        server.port()
    );
    let mut options = Options::default().url(server.url());
    if args.sharded {
        println!("ours: the sharded layout (60 shards) on this one server; Node: its own layout");
        options = options.key_layout(KeyLayout::Sharded { shards: 60 });
    }
    let rs = RedisSessions::connect(bench_options(options))
        .await
        .expect("connect to the benchmark's redis-server");
    let peer = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        server.port()
    ));
    let mut runners = [
        Runner::Ours {
            rs: rs.clone(),
            tokens: Vec::new(),
        },
        Runner::Node {
            peer,
            tokens: Vec::new(),
        },
    ];
    let mut report = Report::default();

    // 1 + 2 + 3. Concurrent throughput, several repetitions: ours, Node's (alternately
    // first) and the ceiling in every repetition, so each ratio is taken between figures
    // measured moments apart (this machine's speed drifts over a run) and then the median.
    for &n in &args.sizes {
        let mut rates: BTreeMap<(&str, Op), Vec<f64>> = BTreeMap::new();
        for rep in 0..args.reps {
            for k in 0..runners.len() {
                let runner = &mut runners[(k + rep) % 2];
                let _ = server.command(&["FLUSHALL"]);
                for op in Op::ALL {
                    op.align().await;
                    let phase = runner.run(op, n, false).await;
                    rates
                        .entry((runner.label(), op))
                        .or_default()
                        .push(stats::rate(n, phase.elapsed));
                }
            }
            let _ = server.command(&["FLUSHALL"]);
            // The ceiling runs at least 30000 operations: at its speed fewer would take
            // too short a time to measure steadily on this machine.
            for (op, rate) in ceiling::measure_on_all_cores(&server, n.max(30_000)) {
                match Op::ALL.into_iter().find(|o| o.name() == op) {
                    Some(op) => rates.entry(("ceiling", op)).or_default().push(rate),
                    None => {
                        report.cross_checks.entry(op).or_default().push(rate);
                    }
                }
            }
        }
        for op in Op::ALL {
            let paired = |a: &str, b: &str| -> Vec<f64> {
                let (xs, ys) = (&rates[&(a, op)], &rates[&(b, op)]);
                xs.iter().zip(ys).map(|(x, y)| x / y.max(1e-9)).collect()
            };
            let entry = report.ratios.entry(n).or_default();
            entry.insert(
                format!("{}/ours_vs_node", op.name()),
                stats::summarize(&paired("ours", "node")).median,
            );
            entry.insert(
                format!("{}/ours_vs_ceiling", op.name()),
                stats::summarize(&paired("ours", "ceiling")).median,
            );
        }
        for ((label, op), values) in rates {
            report
                .throughput
                .entry(label.into())
                .or_default()
                .entry(n)
                .or_default()
                .insert(op.name().into(), stats::summarize(&values));
        }
    }

    // 4. What each operation costs Redis: commands and CPU, at the largest size, ours and
    // Node's alternately in each repetition, the median of the repetitions (Redis' CPU
    // accounting is noisy on a shared machine, and its speed drifts over a run).
    let n = args.sizes.iter().copied().max().unwrap_or(10_000);
    let mut costs: BTreeMap<(&str, Op), Vec<Cost>> = BTreeMap::new();
    for rep in 0..args.reps.max(1) {
        for k in 0..runners.len() {
            let runner = &mut runners[(k + rep) % 2];
            let _ = server.command(&["FLUSHALL"]);
            for op in Op::ALL {
                op.align().await;
                let top_level = runner.top_level_commands();
                let cost = redis_info::measure(&server, n, top_level, async {
                    runner.run(op, n, false).await;
                })
                .await;
                costs.entry((runner.label(), op)).or_default().push(cost);
            }
        }
    }
    for ((label, op), mut all) in costs {
        all.sort_by(|a, b| a.cpu_us_per_op.total_cmp(&b.cpu_us_per_op));
        let median = all.swap_remove(all.len() / 2);
        report
            .cost
            .entry(label.into())
            .or_default()
            .insert(op.name().into(), median);
    }

    // 5. The realistic workload, ours and Node's alternately in each repetition.
    if args.realistic_seconds > 0 {
        let _ = server.command(&["FLUSHALL"]);
        let idle = realistic::idle_cpu_us_per_s(&server).await;
        let mut runs: BTreeMap<&str, Vec<realistic::Outcome>> = BTreeMap::new();
        for rep in 0..args.reps.max(1) {
            for k in 0..runners.len() {
                let runner = &mut runners[(k + rep) % 2];
                let outcome = realistic::run(
                    &server,
                    runner,
                    args.realistic_sessions(),
                    args.realistic_seconds,
                    idle,
                )
                .await;
                runs.entry(runner.label()).or_default().push(outcome);
            }
        }
        if let (Some(ours), Some(node)) = (runs.get("ours"), runs.get("node")) {
            let ratios: Vec<f64> = ours
                .iter()
                .zip(node)
                .map(|(o, n)| o.cpu_us_per_op_less_idle / n.cpu_us_per_op_less_idle.max(1e-9))
                .collect();
            report.realistic_cpu_ours_vs_node = stats::summarize(&ratios).median;
        }
        for (label, mut all) in runs {
            all.sort_by(|a, b| {
                a.cpu_us_per_op_less_idle
                    .total_cmp(&b.cpu_us_per_op_less_idle)
            });
            let median = all.swap_remove(all.len() / 2);
            report.realistic.insert(label.into(), median);
        }
    }

    // Sequential latency: one call at a time.
    for runner in runners.iter_mut() {
        let _ = server.command(&["FLUSHALL"]);
        for op in Op::ALL {
            let phase = runner.run(op, args.sequential, true).await;
            report
                .sequential
                .entry(runner.label().into())
                .or_default()
                .insert(
                    op.name().into(),
                    (phase.p50_ns as f64 / 1e3, phase.p99_ns as f64 / 1e3),
                );
        }
    }

    // Memory per session in Redis: every key's MEMORY USAGE after 10000 creates, the median
    // of three (sorted-set nodes get random skiplist levels, so bytes vary a little).
    for runner in runners.iter_mut() {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let _ = server.command(&["FLUSHALL"]);
            runner.run(Op::Create, 10_000, false).await;
            // Let Redis finish rehashing its dictionaries (a table mid-resize counts twice).
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            samples.push(redis_info::keys_memory(&server) as f64 / 10_000.0);
        }
        report
            .memory_per_session
            .insert(runner.label().into(), stats::summarize(&samples).median);
    }

    // Cached gets in one process.
    report.cached_gets_per_sec = cached_gets(&server, args.cached_gets).await;

    print_table(&report, &args);
    if let Some(dir) = std::path::Path::new(&args.json).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match serde_json::to_string_pretty(&report) {
        Ok(text) => match std::fs::write(&args.json, text) {
            Ok(()) => println!("\nJSON written to {}", args.json),
            Err(err) => eprintln!("could not write {}: {err}", args.json),
        },
        Err(err) => eprintln!("could not serialize the report: {err}"),
    }
}

/// Our concurrent workload on a fresh 3-master cluster: ops/s per phase and how the calls
/// divided over the masters.
async fn cluster_run(args: &Args) {
    let cluster = test_support::cluster::RedisCluster::start(3, 0);
    println!(
        "3-master Redis Cluster on ports {:?}",
        cluster
            .masters()
            .iter()
            .map(|m| m.port())
            .collect::<Vec<_>>()
    );
    let rs = RedisSessions::connect(bench_options(Options::default().cluster(cluster.urls())))
        .await
        .expect("connect to the benchmark's cluster");
    let mut runner = Runner::Ours {
        rs,
        tokens: Vec::new(),
    };
    println!("| N | op | ops/s (median [min..max]) |");
    println!("|---|---|---|");
    for &n in &args.sizes {
        let mut rates: BTreeMap<Op, Vec<f64>> = BTreeMap::new();
        for _ in 0..args.reps {
            for m in cluster.masters() {
                let _ = m.command(&["FLUSHALL"]);
            }
            for op in Op::ALL {
                let phase = runner.run(op, n, false).await;
                rates
                    .entry(op)
                    .or_default()
                    .push(stats::rate(n, phase.elapsed));
            }
        }
        for (op, values) in rates {
            let s = stats::summarize(&values);
            println!(
                "| {n} | {} | {:.0} [{:.0}..{:.0}] |",
                op.name(),
                s.median,
                s.min,
                s.max
            );
        }
    }
    let calls: Vec<String> = cluster
        .masters()
        .iter()
        .map(|m| {
            let stats = m.command(&["INFO", "commandstats"]).unwrap_or_default();
            stats
                .lines()
                .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
                .and_then(|v| v.split(',').next())
                .unwrap_or("0")
                .to_owned()
        })
        .collect();
    println!("\nEVALSHA calls per master: {}", calls.join(" / "));
}

async fn cached_gets(server: &RedisServer, total: usize) -> f64 {
    let rs = RedisSessions::connect(
        Options::default()
            .url(server.url())
            .wipe(Duration::ZERO)
            .cache(Duration::from_secs(600), 100_000),
    )
    .await
    .expect("connect");
    let mut tokens = Vec::new();
    for i in 0..1000 {
        tokens.push(
            rs.create(APP, &format!("c{i}"), "1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    for t in &tokens {
        rs.get(APP, t).await.expect("warm");
    }
    let tokens = std::sync::Arc::new(tokens);
    let workers = 1;
    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let rs = rs.clone();
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let mut hits = 0usize;
                for i in 0..total / workers {
                    if let Ok(Some(_)) = rs.get(APP, &tokens[(i + w * 7) % tokens.len()]).await {
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    let mut hits = 0;
    for t in tasks {
        hits += t.await.unwrap_or(0);
    }
    let rate = stats::rate(hits, started.elapsed());
    let served_from_cache = rs.cache_stats().map_or(0, |s| s.hits);
    assert!(
        served_from_cache as usize >= hits,
        "cached gets must not reach Redis"
    );
    rate
}

/// Issue #15's table: per operation, what Redis spends for ours and for Node's, and the
/// throughput ratio, at the largest size.
fn print_issue_table(r: &Report, n: usize) {
    println!("\n## Per operation, ours vs the Node module (N = {n}; medians of paired reps)");
    println!("| op | Redis µs/op ours (commandstats) | Node | Redis CPU µs/op ours (INFO cpu) | Node | ours/Node ops/s |");
    println!("|---|---|---|---|---|---|");
    for op in Op::ALL {
        let cost = |runner: &str| r.cost.get(runner).and_then(|m| m.get(op.name()));
        let (Some(o), Some(nd)) = (cost("ours"), cost("node")) else {
            continue;
        };
        let ratio = r
            .ratios
            .get(&n)
            .and_then(|m| m.get(&format!("{}/ours_vs_node", op.name())))
            .map_or("—".to_owned(), |x| format!("{x:.2}x"));
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {ratio} |",
            op.describe(),
            o.commandstats_us_per_op,
            nd.commandstats_us_per_op,
            o.cpu_us_per_op,
            nd.cpu_us_per_op
        );
    }
    if let (Some(o), Some(nd)) = (r.realistic.get("ours"), r.realistic.get("node")) {
        println!(
            "| realistic workload (idle housekeeping subtracted from CPU) | {:.2} | {:.2} | {:.2} | {:.2} | — |",
            o.cost.commandstats_us_per_op,
            nd.cost.commandstats_us_per_op,
            o.cpu_us_per_op_less_idle,
            nd.cpu_us_per_op_less_idle
        );
    }
}

fn print_table(r: &Report, args: &Args) {
    let sizes = &args.sizes;
    let get = |runner: &str, n: usize, op: &str| {
        r.throughput
            .get(runner)
            .and_then(|m| m.get(&n))
            .and_then(|m| m.get(op))
            .copied()
    };
    println!("\n## Concurrent throughput (ops/s, median of reps [min..max]; ratios: median of the per-rep ratios)");
    println!("| N | op | ours | node | ceiling | ours/node | ours/ceiling |");
    println!("|---|---|---|---|---|---|---|");
    for &n in sizes {
        for op in Op::ALL {
            let (Some(o), Some(nd), Some(c)) = (
                get("ours", n, op.name()),
                get("node", n, op.name()),
                get("ceiling", n, op.name()),
            ) else {
                continue;
            };
            let ratio = |kind: &str| {
                r.ratios
                    .get(&n)
                    .and_then(|m| m.get(&format!("{}/{kind}", op.name())))
                    .copied()
                    .unwrap_or(0.0)
            };
            println!(
                "| {n} | {} | {:.0} [{:.0}..{:.0}] | {:.0} [{:.0}..{:.0}] | {:.0} [{:.0}..{:.0}] | {:.2}x | {:.0}% |",
                op.name(),
                o.median,
                o.min,
                o.max,
                nd.median,
                nd.min,
                nd.max,
                c.median,
                c.min,
                c.max,
                ratio("ours_vs_node"),
                100.0 * ratio("ours_vs_ceiling")
            );
        }
    }
    for (what, values) in &r.cross_checks {
        let s = stats::summarize(values);
        println!(
            "\nCeiling cross-check, {what}: {:.0} ops/s [{:.0}..{:.0}]",
            s.median, s.min, s.max
        );
    }
    println!("\n## Sequential latency (one call at a time, µs)");
    println!("| op | ours p50 | ours p99 | node p50 | node p99 | p50 ours/node |");
    println!("|---|---|---|---|---|---|");
    for op in Op::ALL {
        let s = |runner: &str| {
            r.sequential
                .get(runner)
                .and_then(|m| m.get(op.name()))
                .copied()
                .unwrap_or_default()
        };
        let (o, nd) = (s("ours"), s("node"));
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} |",
            op.name(),
            o.0,
            o.1,
            nd.0,
            nd.1,
            o.0 / nd.0.max(1e-9)
        );
    }
    println!(
        "\n## What Redis does per operation (N = {})",
        sizes.iter().max().unwrap_or(&0)
    );
    println!("| op | runner | commands/op | Redis µs/op (commandstats) | Redis CPU µs/op (INFO cpu) | commands (per op) |");
    println!("|---|---|---|---|---|---|");
    for op in Op::ALL {
        for runner in ["ours", "node"] {
            if let Some(c) = r.cost.get(runner).and_then(|m| m.get(op.name())) {
                println!(
                    "| {} | {runner} | {:.2} | {:.2} | {:.2} | {} |",
                    op.name(),
                    c.commands_per_op,
                    c.commandstats_us_per_op,
                    c.cpu_us_per_op,
                    c.breakdown
                );
            }
        }
    }
    if !r.realistic.is_empty() {
        println!(
            "\n## Realistic workload ({} sessions, each read again after 1–6 s, one access in ten a set, {} s per run; the median run)",
            args.realistic_sessions(),
            args.realistic_seconds
        );
        println!("| runner | operations | Redis CPU µs/op (INFO cpu) | less Redis' idle housekeeping | Redis µs/op (commandstats) | commands/op | behind schedule (ms) | commands (per op) |");
        println!("|---|---|---|---|---|---|---|---|");
        for (runner, o) in &r.realistic {
            println!(
                "| {runner} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
                o.operations,
                o.cost.cpu_us_per_op,
                o.cpu_us_per_op_less_idle,
                o.cost.commandstats_us_per_op,
                o.cost.commands_per_op,
                o.behind_ms,
                o.cost.breakdown
            );
        }
        println!(
            "\nRealistic workload, Redis CPU per op ours/Node (median of the per-rep ratios): {:.2}",
            r.realistic_cpu_ours_vs_node
        );
    }
    print_issue_table(r, sizes.iter().copied().max().unwrap_or(0));
    println!("\n## Memory per session in Redis (bytes)");
    for (runner, bytes) in &r.memory_per_session {
        println!("- {runner}: {bytes:.1}");
    }
    println!(
        "\n## Cached get (one process, one thread): {:.0} per second",
        r.cached_gets_per_sec
    );
}
