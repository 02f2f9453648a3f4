//! `set-cost`: the time one `set` holds Redis, by the size of the stored data, beside the
//! npm module's set on the same server — and whether a `PING` from another client waits
//! behind it.
//!
//! Redis runs one script at a time: every microsecond a set's merge takes is a
//! microsecond every other client of that Redis waits. The library bounds a session's data
//! (`redis_sessions::limits`) so that a set at the bound holds Redis about a millisecond;
//! this prints the figures that choice rests on (docs/limits.md).
//!
//! Per size: Redis µs per set from SLOWLOG (every call logged: median and max of ours), for
//! a set that changes one key (the splice), one that adds an array-index key (it goes in
//! numeric place), and one on foreign text (whitespace: the rebuild); and the npm module's
//! set (INFO commandstats: the time of all its commands, per set).
//!
//! Run: `cargo run --release -p rs-bench --bin set-cost` (see `--help`).

use clap::Parser;
use redis_sessions::limits::{MAX_DATA_BYTES, MAX_KEYS};
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use test_support::node::NodePeer;
use test_support::RedisServer;

#[derive(Parser, Debug)]
#[command(about = "Redis time per set by stored keys, ours beside the npm module's")]
struct Args {
    /// Stored keys to measure at (the largest is clamped to the library's bound).
    #[arg(long, value_delimiter = ',', default_values_t = vec![10, 100, 1000])]
    keys: Vec<usize>,
    /// Sets per measurement.
    #[arg(long, default_value_t = 31)]
    reps: usize,
}

const APP: &str = "setcost";

/// `n` keys as an app stores them: short names, small numbers and words.
fn data(n: usize) -> Map<String, Value> {
    (0..n)
        .map(|i| {
            let v = if i % 2 == 0 {
                json!(i)
            } else {
                json!(format!("v{i}"))
            };
            (format!("key{i}"), v)
        })
        .collect()
}

/// The SLOWLOG durations (µs) of the EVALSHA calls since the last reset, sorted.
fn script_durations(server: &RedisServer) -> Vec<u64> {
    let mut con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("connect");
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(100_000)
        .query(&mut con)
        .unwrap_or_default();
    let mut out: Vec<u64> = entries
        .into_iter()
        .filter_map(|e| {
            let redis::Value::Array(fields) = e else {
                return None;
            };
            let micros: u64 = redis::from_redis_value(fields.get(2)?.clone()).ok()?;
            let args: Vec<String> = redis::from_redis_value(fields.get(3)?.clone()).ok()?;
            args.first()
                .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
                .then_some(micros)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Redis µs per call of all commands since the last RESETSTAT (INFO commandstats).
fn commandstats_us(server: &RedisServer) -> u64 {
    let text = server
        .command(&["INFO", "commandstats"])
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info")
                && !l.starts_with("cmdstat_config")
        })
        .filter_map(|l| {
            l.split("usec=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn reset(server: &RedisServer) {
    let _ = server.command(&["SLOWLOG", "RESET"]);
    let _ = server.command(&["CONFIG", "RESETSTAT"]);
}

fn summary(d: &[u64]) -> String {
    if d.is_empty() {
        return "-".into();
    }
    format!("{} / {}", d[d.len() / 2], d[d.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let server = RedisServer::start();
    let _ = server.command(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _ = server.command(&["CONFIG", "SET", "slowlog-max-len", "100000"]);
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        server.port()
    ));
    let mut raw = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("connect");
    println!(
        "Redis time per set, µs (ours: median / max of {} calls; Node: mean)",
        args.reps
    );
    println!(
        "{:>6} {:>8} | {:>16} {:>16} {:>16} | {:>10} | {:>8}",
        "keys", "bytes", "ours change", "ours add index", "ours foreign", "node set", "ratio"
    );
    for &asked in &args.keys {
        // Room for the index key the second measurement adds.
        let n = asked.min(MAX_KEYS - 1);
        let d = data(n);
        let bytes = redis_sessions::node_json::to_vec(&d).len();
        let token = rs
            .create(
                APP,
                "u",
                "127.0.0.1",
                CreateOptions::default()
                    .ttl(Duration::from_secs(3600))
                    .data(Value::Object(d.clone())),
            )
            .await
            .expect("create");
        reset(&server);
        for i in 0..args.reps {
            rs.set(APP, &token, &json!({"key5": i})).await.expect("set");
        }
        let change = script_durations(&server);
        let mut add = Vec::new();
        for i in 0..args.reps {
            reset(&server);
            rs.set(APP, &token, &json!({"7": i})).await.expect("set");
            add.extend(script_durations(&server));
            rs.set(APP, &token, &json!({"7": null})).await.expect("set");
        }
        add.sort_unstable();
        // The same data as another JSON writer stores it: pretty-printed.
        let foreign = serde_json::to_string_pretty(&Value::Object(d.clone())).expect("json");
        let mut rebuilt = Vec::new();
        for i in 0..args.reps {
            redis::cmd("HSET")
                .arg(format!("rs:{APP}:{token}"))
                .arg("d")
                .arg(&foreign)
                .exec(&mut raw)
                .expect("HSET");
            reset(&server);
            rs.set(APP, &token, &json!({"key5": i})).await.expect("set");
            rebuilt.extend(script_durations(&server));
        }
        rebuilt.sort_unstable();
        // The npm module: its own session of the same data, the same change.
        let created = node
            .call(
                "create",
                &json!({"app": APP, "id": "n", "ip": "127.0.0.1", "ttl": 3600, "d": d}).to_string(),
            )
            .expect("node create");
        let node_token = serde_json::from_str::<Value>(&created).expect("reply")["token"]
            .as_str()
            .expect("token")
            .to_owned();
        reset(&server);
        for i in 0..args.reps {
            node.call(
                "set",
                &json!({"app": APP, "token": node_token, "d": {"key5": i}}).to_string(),
            )
            .expect("node set");
        }
        let node_us = commandstats_us(&server) as f64 / args.reps as f64;
        let ours_median = change.get(change.len() / 2).copied().unwrap_or(0) as f64;
        println!(
            "{:>6} {:>8} | {:>16} {:>16} {:>16} | {:>10.1} | {:>7.1}x",
            n,
            bytes,
            summary(&change),
            summary(&add),
            summary(&rebuilt),
            node_us,
            ours_median / node_us.max(0.1)
        );
    }

    // A client of the same Redis during sets at the bound: how long its PINGs wait.
    let n = MAX_KEYS - 1;
    let token = rs
        .create(
            APP,
            "u",
            "127.0.0.1",
            CreateOptions::default()
                .ttl(Duration::from_secs(3600))
                .data(Value::Object(data(n))),
        )
        .await
        .expect("create");
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let pinger = {
        let (stop, worst, url) = (stop.clone(), worst.clone(), server.url());
        std::thread::spawn(move || {
            let mut con = redis::Client::open(url)
                .and_then(|c| c.get_connection())
                .expect("connect");
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let _: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
                worst.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        })
    };
    for i in 0..args.reps * 10 {
        rs.set(APP, &token, &json!({"key5": i})).await.expect("set");
    }
    stop.store(true, Ordering::Relaxed);
    let _ = pinger.join();
    println!(
        "bounds: {MAX_KEYS} keys, {MAX_DATA_BYTES} bytes; slowest PING during {} sets at {n} keys: {} µs (round trip)",
        args.reps * 10,
        worst.load(Ordering::Relaxed)
    );
}
