//! The rate of `check` on a large namespace, and how long its longest single step held
//! Redis: fills N sessions in the Node layout (pipelined raw writes, two sessions per
//! user, as the Node module writes them), then runs the check as `sessions-admin check`
//! does, with Redis' slow log recording every command of at least `--slowlog-us`
//! microseconds.
//!
//! `cargo run --release -p sessions-admin --example check-rate -- --sessions 1000000`
//! (its own redis-server on a free port; `--redis-url URL` uses another, writing under
//! the namespace `checkrate`, which it empties first).

use clap::Parser;
use redis::aio::MultiplexedConnection;
use sessions_admin::check::{self, Scope};
use sessions_admin::{deploy, Cli};
use std::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// Sessions to fill.
    #[arg(long, default_value_t = 1_000_000)]
    sessions: u64,
    /// A Redis of your own (else one is started).
    #[arg(long)]
    redis_url: Option<String>,
    /// Commands slower than this (µs) go to the slow log, whose longest entry is the
    /// longest step. 0 logs every command (the log then keeps only the newest entries).
    #[arg(long, default_value_t = 100)]
    slowlog_us: u64,
}

const NS: &str = "checkrate";
const APP: &str = "bench";
/// Sessions per pipelined round trip of the fill.
const FILL_BATCH: u64 = 2000;

/// A token as the store makes them: 55 characters of [A-Ya-z0-9], `Z`, the time in base 36.
fn token(state: &mut u64, stamp: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(64);
    for _ in 0..55 {
        // xorshift64: reproducible and fast; these tokens guard nothing.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        out.push(ALPHABET[(*state % ALPHABET.len() as u64) as usize] as char);
    }
    out.push('Z');
    out.push_str(stamp);
    out
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    while n > 0 {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

async fn fill(con: &mut MultiplexedConnection, n: u64, now: i64) -> redis::RedisResult<()> {
    let stamp = format!("{:0>8}", base36(now as u64 * 1000));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let prefix = format!("{NS}:{APP}:");
    let mut done = 0;
    while done < n {
        let mut pipe = redis::pipe();
        for i in done..(done + FILL_BATCH).min(n) {
            let token = token(&mut state, &stamp);
            let id = format!("user{}", i / 2);
            let la = now - (i % 3600) as i64;
            pipe.cmd("HSET")
                .arg(format!("{prefix}{token}"))
                .arg(&[("id", id.as_str()), ("ip", "10.0.0.1")])
                .arg(&[("r", 1), ("w", 1), ("la", la), ("ttl", 7200)])
                .ignore();
            pipe.zadd(format!("{prefix}_sessions"), format!("{token}:{id}"), la)
                .ignore();
            pipe.zadd(format!("{prefix}_users"), &id, la).ignore();
            pipe.sadd(format!("{prefix}us:{id}"), &token).ignore();
            pipe.zadd(
                format!("{NS}:SESSIONS"),
                format!("{APP}:{token}:{id}"),
                la + 7200,
            )
            .ignore();
        }
        pipe.query_async::<()>(con).await?;
        done = (done + FILL_BATCH).min(n);
    }
    Ok(())
}

/// A slow-log entry's command as it reads: the script's batch kind for EVALSHA (the first
/// key's app or the index letter), the key for the SCAN family. A session key is shown
/// without its token.
fn describe(words: &[String]) -> String {
    let short = |w: &String| match w.rsplit_once(':') {
        Some((head, tail)) if tail.len() == redis_sessions::keys::TOKEN_LEN => format!("{head}:…"),
        _ => w.chars().take(40).collect::<String>(),
    };
    match words.first().map(String::as_str) {
        Some("EVALSHA") | Some("evalsha") => {
            let keys: usize = words.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
            if keys > 0 {
                format!(
                    "EVALSHA check_sessions, {keys} keys, first {}",
                    words.get(3).map(short).unwrap_or_default()
                )
            } else {
                format!(
                    "EVALSHA check_members, index '{}'",
                    words.get(4).map(short).unwrap_or_default()
                )
            }
        }
        _ => words
            .iter()
            .take(3)
            .map(short)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let own = args
        .redis_url
        .is_none()
        .then(|| test_support::RedisServer::start_with(test_support::free_port(), &["--save", ""]));
    let url = match (&args.redis_url, &own) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url(),
        (None, None) => return Err("no Redis".into()),
    };
    let cli = Cli::try_parse_from([
        "sessions-admin",
        "--redis-url",
        &url,
        "--namespace",
        NS,
        "check",
    ])?;
    let deployment = deploy::resolve(&cli.target).await?;
    let mut con = deployment
        .masters
        .first()
        .map(|m| m.con.clone())
        .ok_or("no master")?;
    // Empty the namespace first (a previous run's), in bounded steps.
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{NS}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut con)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut con)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let now = now();
    let started = Instant::now();
    fill(&mut con, args.sessions, now).await?;
    let filled = started.elapsed();
    let memory: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut con)
        .await?;
    let used = memory
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    println!(
        "filled {} sessions ({} users) in {:.1} s; Redis uses {used}",
        args.sessions,
        args.sessions.div_ceil(2),
        filled.as_secs_f64()
    );

    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(args.slowlog_us)
        .arg("slowlog-max-len")
        .arg(1_000_000)
        .query_async::<()>(&mut con)
        .await?;
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async::<()>(&mut con)
        .await?;
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut con)
        .await?;

    let scope = Scope {
        shards: deployment.keys.shards(),
        namespace_prefix: format!("{NS}:"),
        app: None,
        now,
        grace: 900,
        progress: None,
    };
    let started = Instant::now();
    let outcome = check::run(&mut con, &scope).await?;
    let took = started.elapsed().as_secs_f64();

    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(&mut con)
        .await?;
    // Each entry: id, time, duration (µs), arguments, ...
    let mut logged: Vec<(i64, String)> = slow
        .iter()
        .filter_map(|entry| {
            let redis::Value::Array(fields) = entry else {
                return None;
            };
            let Some(redis::Value::Int(us)) = fields.get(2) else {
                return None;
            };
            let words: Vec<String> = match fields.get(3) {
                Some(redis::Value::Array(a)) => a
                    .iter()
                    .filter_map(|w| match w {
                        redis::Value::BulkString(b) => {
                            Some(String::from_utf8_lossy(b).into_owned())
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some((*us, describe(&words)))
        })
        .collect();
    logged.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let over = |ms: i64| logged.iter().filter(|(us, _)| *us > ms * 1000).count();
    let longest = logged.first().cloned().unwrap_or((0, "none logged".into()));
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await?;
    println!(
        "check: {} sessions, {} index entries, {} steps in {took:.1} s: {:.0} sessions/s, {} findings",
        outcome.sessions,
        outcome.index_entries,
        outcome.steps,
        outcome.sessions as f64 / took,
        outcome.findings.len()
    );
    println!(
        "longest single command: {:.2} ms ({}); of {} steps {} took >= {} µs, {} over 1 ms, \
         {} over 5 ms, {} over 20 ms",
        longest.0 as f64 / 1000.0,
        longest.1,
        outcome.steps,
        logged.len(),
        args.slowlog_us,
        over(1),
        over(5),
        over(20),
    );
    for (us, what) in logged.iter().take(5) {
        println!("  {:.2} ms  {what}", *us as f64 / 1000.0);
    }
    for line in stats.lines().filter(|l| {
        [
            "cmdstat_scan:",
            "cmdstat_zscan:",
            "cmdstat_sscan:",
            "cmdstat_evalsha:",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        println!("  {line}");
    }
    Ok(())
}
