//! `events-cost`: what lifecycle events cost Redis — CPU per create, kill and swept session
//! with events off and on, side by side in one run, and the memory of a retained event.
//!
//! Events are appended inside the script (or MULTI) of the change itself, so their whole
//! cost is Redis time: an XADD per changed session, plus its trimming. With events off the
//! scripts are the ones that ran before events existed (the `--E` lines are comments), so
//! the "off" column is also the cost of the store without the feature.
//!
//! Redis time is read from `INFO commandstats` (only the calls the client sends: EVALSHA,
//! MULTI, EXEC — a script's inner commands are counted inside its own time). Each figure is
//! the median of `--reps` runs, each on a fresh redis-server.
//!
//! Run: `cargo run --release -p rs-bench --bin events-cost` (see `--help`).

use clap::Parser;
use redis_sessions::{CreateOptions, EventOptions, ManualClock, Options, RedisSessions};
use test_support::RedisServer;

#[derive(Parser, Debug)]
#[command(about = "Redis CPU per create/kill/sweep with lifecycle events off and on")]
struct Args {
    /// Sessions created per run (half are killed, half swept).
    #[arg(long, default_value_t = 20_000)]
    sessions: usize,
    /// Runs per column (each on a fresh redis-server); the median is printed.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

const APP: &str = "app";

/// Redis µs spent in the client's own calls since the last reset.
fn client_usec(server: &RedisServer) -> f64 {
    let stats = server
        .command(&["INFO", "commandstats"])
        .unwrap_or_default();
    stats
        .lines()
        .filter(|l| {
            ["cmdstat_evalsha:", "cmdstat_exec:", "cmdstat_multi:"]
                .iter()
                .any(|c| l.starts_with(c))
        })
        .filter_map(|l| l.split("usec=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<f64>().ok())
        .sum()
}

fn reset(server: &RedisServer) {
    let _ = server.command(&["CONFIG", "RESETSTAT"]);
}

/// What one run measured.
#[derive(Clone, Copy)]
struct Run {
    /// Redis µs per create.
    create: f64,
    /// Redis µs per kill.
    kill: f64,
    /// Redis µs per swept session.
    sweep: f64,
    /// Bytes per retained event (0 with events off).
    per_event: f64,
}

/// One run on a fresh redis-server.
async fn run(sessions: usize, events: bool) -> Run {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let mut options = Options::default()
        .url(server.url())
        .wipe(std::time::Duration::ZERO)
        .clock(clock.clone());
    if events {
        options = options.events(EventOptions::max_len(10 * sessions as u64));
    }
    let rs = RedisSessions::connect(options).await.expect("connect");
    let mut tokens = Vec::with_capacity(sessions);
    reset(&server);
    for i in 0..sessions {
        // Half live an hour (killed below), half 10 s (swept once the clock moves on).
        let ttl = if i % 2 == 0 { 10 } else { 3600 };
        let token = rs
            .create(
                APP,
                &format!("user{}@example.com", i % 2000),
                "192.168.10.20",
                CreateOptions::default().ttl(std::time::Duration::from_secs(ttl as u64)),
            )
            .await
            .expect("create");
        tokens.push((token, ttl));
    }
    let create = client_usec(&server) / sessions as f64;
    reset(&server);
    let mut killed = 0;
    for (token, ttl) in &tokens {
        if *ttl == 3600 {
            rs.kill(APP, token).await.expect("kill");
            killed += 1;
        }
    }
    let kill = client_usec(&server) / f64::from(killed.max(1));
    clock.advance(std::time::Duration::from_secs(20));
    reset(&server);
    let swept = rs.sweep().await.expect("sweep");
    let sweep = client_usec(&server) / swept.max(1) as f64;
    assert_eq!(swept as usize, sessions - killed as usize, "sweep count");
    let per_event = if !events {
        0.0
    } else {
        let stream = format!("rs:{APP}:_events");
        let bytes: f64 = server
            .command(&["MEMORY", "USAGE", &stream, "SAMPLES", "0"])
            .ok()
            .and_then(|b| b.trim().trim_start_matches(':').parse().ok())
            .unwrap_or(0.0);
        let len: f64 = server
            .command(&["XLEN", &stream])
            .ok()
            .and_then(|n| n.trim().trim_start_matches(':').parse().ok())
            .unwrap_or(1.0);
        bytes / len.max(1.0)
    };
    rs.quit();
    Run {
        create,
        kill,
        sweep,
        per_event,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let reps = args.reps.max(1);
    let mut columns = Vec::new();
    for events in [false, true] {
        let mut runs = Vec::new();
        for _ in 0..reps {
            runs.push(run(args.sessions, events).await);
        }
        let pick = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        columns.push(Run {
            create: pick(|r| r.create),
            kill: pick(|r| r.kill),
            sweep: pick(|r| r.sweep),
            per_event: pick(|r| r.per_event),
        });
    }
    let (off, on) = (columns[0], columns[1]);
    println!(
        "Redis CPU, µs per session (INFO commandstats; median of {reps} runs of {} sessions)",
        args.sessions
    );
    println!(
        "{:<14} {:>10} {:>10} {:>8}",
        "", "events off", "events on", "on/off"
    );
    for (name, a, b) in [
        ("create", off.create, on.create),
        ("kill", off.kill, on.kill),
        ("swept session", off.sweep, on.sweep),
    ] {
        println!(
            "{name:<14} {a:>10.2} {b:>10.2} {:>7.2}x",
            b / a.max(f64::EPSILON)
        );
    }
    println!(
        "memory per retained event: {:.1} bytes (MEMORY USAGE of the stream / XLEN)",
        on.per_event
    );
}
