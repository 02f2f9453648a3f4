//! The ceiling: the very commands our library sends (the same scripts, the same MULTI/EXEC),
//! driven straight at Redis over raw pipelined connections, as `redis-benchmark -P` does —
//! with no client library in the way, so the figure is what Redis itself can do here.
//!
//! (`redis-benchmark` itself cannot be used: it cannot send a MULTI/EXEC block as one
//! request, and it draws each `__rand_int__` of a command independently, so the key and
//! the token argument of one EVALSHA would name different sessions.)

use redis_sessions::bench_support::{new_token, CommandSet};
use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use test_support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::workload::APP;

const CONNECTIONS: usize = 4;
const DEPTH: usize = 32;

/// [`measure`] on a runtime of its own with a thread per core: the driver must not be
/// what limits the figure.
pub fn measure_on_all_cores(server: &RedisServer, n: usize) -> BTreeMap<String, f64> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(measure(server, n)))
                    .unwrap_or_default()
            })
            .join()
            .unwrap_or_default()
    })
}

/// Ops per second of each operation's commands, at Redis' own limit.
pub async fn measure(server: &RedisServer, n: usize) -> BTreeMap<String, f64> {
    let commands = CommandSet::new("rs");
    for load in commands.script_loads() {
        let packed = load.get_packed_command();
        blast(server.port(), vec![(packed, 1)]).await;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let tokens: Vec<String> = (0..n).map(|_| new_token()).collect();
    let d = serde_json::json!({"k1": 1})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut rates = BTreeMap::new();

    let create: Vec<(Vec<u8>, usize)> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let pipe =
                commands.create(APP, &format!("user{}", i % 1000), "127.0.0.1", 7200, t, now);
            // MULTI, five commands, EXEC: seven replies.
            (pipe.get_packed_pipeline(), 7)
        })
        .collect();
    rates.insert(
        "create".to_owned(),
        rate(n, blast(server.port(), create).await),
    );
    // Every session's get at `at`, one request each.
    let gets_at = |at: i64| -> Vec<(Vec<u8>, usize)> {
        tokens
            .iter()
            .map(|t| (commands.get(APP, t, at).get_packed_command(), 1))
            .collect()
    };
    rates.insert(
        "get".to_owned(),
        rate(n, blast(server.port(), gets_at(now)).await),
    );
    // The same gets a second later: idle 1, every index rewritten.
    rates.insert(
        "get_next_second".to_owned(),
        rate(n, blast(server.port(), gets_at(now + 1)).await),
    );
    let set = tokens
        .iter()
        .map(|t| (commands.set(APP, t, &d, now).get_packed_command(), 1))
        .collect();
    rates.insert("set".to_owned(), rate(n, blast(server.port(), set).await));
    // Seconds later: idle 3, `la` moves too.
    rates.insert(
        "get_later".to_owned(),
        rate(n, blast(server.port(), gets_at(now + 3)).await),
    );
    let check = server
        .command(&["HGET", &format!("rs:{APP}:{}", tokens[0]), "r"])
        .unwrap_or_default();
    assert!(
        check.contains("\r\n4\r\n"),
        "the ceiling's three gets did their work: {check:?}"
    );
    if let Some(rate) = redis_benchmark_get(server, &commands, &tokens[0], now) {
        rates.insert("get (redis-benchmark, one session)".to_owned(), rate);
    }
    let kill = tokens
        .iter()
        .map(|t| (commands.kill(APP, t, now).get_packed_command(), 1))
        .collect();
    rates.insert("kill".to_owned(), rate(n, blast(server.port(), kill).await));
    let left = server.command(&["DBSIZE"]).unwrap_or_default();
    assert_eq!(
        left.trim(),
        ":0",
        "the ceiling's kills removed every session"
    );
    rates
}

/// Cross-check with `redis-benchmark` itself (when installed): get's EVALSHA of one
/// session, pipelined (-P 16, 50 clients). One session only, because redis-benchmark draws
/// each `__rand_int__` of a command separately and the key and the token argument would
/// name different sessions.
fn redis_benchmark_get(
    server: &RedisServer,
    commands: &CommandSet,
    token: &str,
    now: i64,
) -> Option<f64> {
    let cmd = commands.get(APP, token, now);
    let args: Vec<String> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect();
    let output = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &server.port().to_string(),
            "-n",
            "200000",
            "-c",
            "50",
            "-P",
            "16",
            "-q",
        ])
        .args(&args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "EVALSHA …: 123456.79 requests per second, p50=… msec"
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))?;
    let before = line.split(" requests per second").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

fn rate(n: usize, seconds: f64) -> f64 {
    n as f64 / seconds.max(1e-9)
}

/// Sends every request (packed bytes, replies expected) over a few connections, `DEPTH`
/// requests in flight on each; returns the seconds it took.
async fn blast(port: u16, requests: Vec<(Vec<u8>, usize)>) -> f64 {
    let per_connection = requests.len().div_ceil(CONNECTIONS).max(1);
    let mut chunks: Vec<Vec<(Vec<u8>, usize)>> = Vec::new();
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        chunks.push(requests.by_ref().take(per_connection).collect());
    }
    let mut streams = Vec::new();
    for _ in 0..chunks.len() {
        streams.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    let started = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .zip(streams)
        .map(|(chunk, stream)| tokio::spawn(drive(stream, chunk)))
        .collect();
    for task in tasks {
        task.await.expect("driver task");
    }
    started.elapsed().as_secs_f64()
}

async fn drive(mut stream: TcpStream, requests: Vec<(Vec<u8>, usize)>) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut read = vec![0u8; 1 << 16];
    for window in requests.chunks(DEPTH) {
        let bytes: Vec<u8> = window.iter().flat_map(|(b, _)| b.iter().copied()).collect();
        stream.write_all(&bytes).await.expect("write");
        let mut expected: usize = window.iter().map(|(_, r)| r).sum();
        let mut pos = 0;
        while expected > 0 {
            match test_support::resp_value_end(&buf, pos) {
                Some(end) => {
                    assert!(
                        buf[pos] != b'-',
                        "Redis error: {}",
                        String::from_utf8_lossy(&buf[pos..end])
                    );
                    pos = end;
                    expected -= 1;
                }
                None => {
                    let n = stream.read(&mut read).await.expect("read");
                    assert!(n > 0, "connection closed");
                    buf.extend_from_slice(&read[..n]);
                }
            }
        }
        buf.drain(..pos);
    }
}
