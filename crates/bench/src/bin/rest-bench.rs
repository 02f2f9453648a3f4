//! `rest-bench`: loads the `rest-sessions` server and a minimal Express server over the npm
//! `redis-sessions@4.0.0` (interop/express-server.js) with `wrk`, from a separate process,
//! on the same fresh redis-server in the same run: requests/s, p50, p99 of
//! `PUT /:app/create/:id` and `GET /:app/get/:token`, the ratios, and each server's peak
//! memory (RSS) under the load.
//!
//! Run: `cargo run --release -p rs-bench --bin rest-bench` (needs wrk, redis-server, node
//! and `npm ci` in interop/; scripts/bench.sh installs them).

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::node::interop_dir;
use test_support::{free_port, RedisServer};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the rest-sessions server against Express + the npm module")]
struct Args {
    /// Seconds of load per phase.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Open connections of the load generator.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Repetitions (servers alternate; medians are reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Sessions the get phase reads (the same number for both servers).
    #[arg(long, default_value_t = 20_000)]
    get_sessions: usize,
}

/// One phase's figures, as wrk reports them.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

struct Peer {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CREATE_LUA: &str = r#"
local n = 0
request = function()
  n = n + 1
  return wrk.format("PUT", "/benchapp/create/user" .. (n % 5000) .. "?ip=127.0.0.1")
end
"#;

const GET_LUA: &str = r#"
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/benchapp/get/" .. tokens[(n % #tokens) + 1])
end
"#;

fn main() {
    let args = Args::parse();
    let work = std::env::temp_dir().join(format!("rest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let create_lua = work.join("create.lua");
    let get_lua = work.join("get.lua");
    std::fs::write(&create_lua, CREATE_LUA).expect("write lua");
    std::fs::write(&get_lua, GET_LUA).expect("write lua");
    let rest_binary = rest_sessions_binary();
    let redis = RedisServer::start();
    println!(
        "redis-server on port {}; {} s per phase, {} connections",
        redis.port(),
        args.seconds,
        args.connections
    );

    let mut peers = [
        start_peer("rest-sessions (Rust)", || {
            let port = free_port();
            let child = Command::new(&rest_binary)
                .env("RS_PORT", port.to_string())
                .env("RS_REDISPORT", redis.port().to_string())
                .env("RS_WIPE", "0")
                // One worker, as Node runs its JavaScript on one thread: on this 2-core
                // machine Redis and the load generator need the other core.
                .env("RS_WORKERS", "1")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start rest-sessions");
            (child, port)
        }),
        start_peer("Express + redis-sessions (Node)", || {
            let port = free_port();
            let child = Command::new("node")
                .arg(interop_dir().join("express-server.js"))
                .arg(port.to_string())
                .arg(redis.port().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start node");
            (child, port)
        }),
    ];
    let mut creates: Vec<Vec<Figures>> = vec![Vec::new(); peers.len()];
    let mut gets: Vec<Vec<Figures>> = vec![Vec::new(); peers.len()];
    let tokens_file = work.join("tokens.txt");
    for rep in 0..args.reps {
        for k in 0..peers.len() {
            let i = (k + rep) % peers.len();
            let _ = redis.command(&["FLUSHALL"]);
            let base = format!("http://127.0.0.1:{}", peers[i].port);
            creates[i].push(wrk(&base, &create_lua, &args, None));
            let mut tokens = tokens_from_redis(&redis);
            tokens.truncate(args.get_sessions);
            std::fs::write(&tokens_file, tokens.join("\n")).expect("write tokens");
            gets[i].push(wrk(&base, &get_lua, &args, Some(&tokens_file)));
        }
    }
    let mut rows = Vec::new();
    for (i, peer) in peers.iter_mut().enumerate() {
        let rss = peak_rss_kib(peer.child.id());
        rows.push((peer.name, median(&creates[i]), median(&gets[i]), rss));
    }

    println!("\n| server | create req/s | create p50 ms | create p99 ms | get req/s | get p50 ms | get p99 ms | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, c, g, rss) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.1} |",
            c.rps,
            c.p50_ms,
            c.p99_ms,
            g.rps,
            g.p50_ms,
            g.p99_ms,
            *rss as f64 / 1024.0
        );
        if c.errors + g.errors > 0 {
            println!("  ({} non-2xx or socket errors)", c.errors + g.errors);
        }
    }
    if let [(_, oc, og, _), (_, nc, ng, _)] = rows.as_slice() {
        println!(
            "\nours/Express: create {:.2}x req/s (p99 {:.2} vs {:.2} ms), get {:.2}x req/s (p99 {:.2} vs {:.2} ms)",
            oc.rps / nc.rps.max(1e-9),
            oc.p99_ms,
            nc.p99_ms,
            og.rps / ng.rps.max(1e-9),
            og.p99_ms,
            ng.p99_ms
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Starts a server and waits until it answers /ping.
fn start_peer(name: &'static str, spawn: impl FnOnce() -> (Child, u16)) -> Peer {
    let (child, port) = spawn();
    let mut peer = Peer { name, child, port };
    wait_for_ping(&mut peer);
    peer
}

/// The median of each figure over repetitions.
fn median(runs: &[Figures]) -> Figures {
    let mid = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Figures {
        rps: mid(|f| f.rps),
        p50_ms: mid(|f| f.p50_ms),
        p99_ms: mid(|f| f.p99_ms),
        errors: runs.iter().map(|f| f.errors).sum(),
    }
}

/// The release `rest-sessions` next to this binary, built first when missing.
fn rest_sessions_binary() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let binary = dir.join("rest-sessions");
    if !binary.exists() {
        let status = Command::new("cargo")
            .args(["build", "--release", "-p", "rest-sessions"])
            .status()
            .expect("cargo");
        assert!(status.success(), "building rest-sessions failed");
    }
    binary
}

fn wait_for_ping(peer: &mut Peer) {
    let started = Instant::now();
    loop {
        let reply = std::net::TcpStream::connect(("127.0.0.1", peer.port))
            .ok()
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .ok()?;
                let mut out = String::new();
                s.read_to_string(&mut out).ok()?;
                Some(out)
            });
        if reply.is_some_and(|r| r.contains("PONG")) {
            return;
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            panic!("{} exited at start: {status}", peer.name);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} did not start",
            peer.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wrk(base: &str, script: &Path, args: &Args, tokens: Option<&Path>) -> Figures {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        "1",
        "-c",
        &args.connections.to_string(),
        "-d",
        &format!("{}s", args.seconds),
    ])
    .arg("--latency")
    .arg("-s")
    .arg(script)
    .arg(base);
    if let Some(file) = tokens {
        cmd.env("TOKENS_FILE", file);
    }
    let output = cmd.output().expect("wrk not found: apt-get install wrk");
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// Reads `Requests/sec`, the 50% and 99% latency lines, and error counts from wrk's report.
fn parse_wrk(text: &str) -> Figures {
    let mut f = Figures::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => f.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => f.p50_ms = millis(v),
            ["99%", v] => f.p99_ms = millis(v),
            ["Non-2xx", "or", "3xx", "responses:", v] => f.errors += v.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                f.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    f
}

fn millis(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let value: f64 = text[..split].parse().unwrap_or(0.0);
    match &text[split..] {
        "us" => value / 1000.0,
        "s" => value * 1000.0,
        _ => value,
    }
}

/// Every token the create phase made, read back from Redis.
fn tokens_from_redis(redis: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(redis.url()).expect("client");
    let mut con = client.get_connection().expect("connection");
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("rs:benchapp:_sessions")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap_or_default();
    members
        .into_iter()
        .filter_map(|m| m.split_once(':').map(|(t, _)| t.to_owned()))
        .collect()
}

/// Peak resident memory of a process (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
