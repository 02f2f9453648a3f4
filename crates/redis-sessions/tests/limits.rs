//! The bounds on a session's data (`redis_sessions::limits`) hold Redis' time per call:
//! calls over them are refused before Redis runs anything (or, for text another writer
//! stored, by the script before it writes), and a set at the bounds leaves other clients
//! of the same Redis served.
//!
//! The figures (Redis µs per set by size, beside the npm module) come from the benchmark
//! `cargo run --release -p rs-bench --bin set-cost`; the bounds asserted here are ten
//! times looser, so that a busy CI machine does not fail them, and still catch a merge
//! that went back to costing in proportion to more than the bounds allow.

use redis_sessions::limits::{MAX_DATA_BYTES, MAX_KEYS};
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use test_support::node::NodePeer;
use test_support::RedisServer;

const APP: &str = "limitsapp";

fn data(n: usize) -> Map<String, Value> {
    (0..n).map(|i| (format!("key{i}"), json!(i))).collect()
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("connect")
}

/// Durations (µs) of the EVALSHA calls in the SLOWLOG, sorted.
fn script_micros(con: &mut redis::Connection) -> Vec<u64> {
    let entries: Vec<(u64, u64, u64, Vec<String>)> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10_000)
        .query(con)
        .map(|v: Vec<redis::Value>| {
            v.into_iter()
                .filter_map(|e| {
                    let redis::Value::Array(f) = e else {
                        return None;
                    };
                    let at = |i: usize| f.get(i).cloned().unwrap_or(redis::Value::Nil);
                    Some((
                        redis::from_redis_value(at(0)).ok()?,
                        redis::from_redis_value(at(1)).ok()?,
                        redis::from_redis_value(at(2)).ok()?,
                        redis::from_redis_value(at(3)).ok()?,
                    ))
                })
                .collect()
        })
        .expect("SLOWLOG");
    let mut out: Vec<u64> = entries
        .into_iter()
        .filter(|e| {
            e.3.first()
                .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
        })
        .map(|e| e.2)
        .collect();
    out.sort_unstable();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_at_the_bounds_holds_redis_briefly_and_others_are_served() {
    let server = RedisServer::start();
    let mut con = raw(&server);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .exec(&mut con)
        .expect("config");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-max-len")
        .arg(10_000)
        .exec(&mut con)
        .expect("config");
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = rs
        .create(
            APP,
            "u",
            "127.0.0.1",
            CreateOptions::default()
                .ttl(Duration::from_secs(3600))
                .data(Value::Object(data(MAX_KEYS - 1))),
        )
        .await
        .expect("create at the bound");
    let stop = Arc::new(AtomicBool::new(false));
    let (worst, pings) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let pinger = {
        let (stop, worst, pings, mut con) =
            (stop.clone(), worst.clone(), pings.clone(), raw(&server));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
                assert_eq!(pong, "PONG");
                worst.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                pings.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    redis::cmd("SLOWLOG")
        .arg("RESET")
        .exec(&mut con)
        .expect("reset");
    for i in 0..30 {
        let changed = if i % 2 == 0 {
            json!({"key5": i})
        } else {
            json!({"7": i})
        };
        rs.set(APP, &token, &changed)
            .await
            .expect("set at the bound");
        rs.set(APP, &token, &json!({"7": null}))
            .await
            .expect("delete");
    }
    stop.store(true, Ordering::Relaxed);
    pinger.join().expect("pinger");
    let micros = script_micros(&mut con);
    let (median, max) = (micros[micros.len() / 2], micros[micros.len() - 1]);
    eprintln!(
        "sets at {} keys: median {median} µs, max {max} µs; slowest of {} PINGs {} µs",
        MAX_KEYS - 1,
        pings.load(Ordering::Relaxed),
        worst.load(Ordering::Relaxed)
    );
    assert!(median < 10_000, "median set {median} µs at the bound");
    assert!(max < 50_000, "slowest set {max} µs at the bound");
    assert!(pings.load(Ordering::Relaxed) > 0);
    assert!(
        worst.load(Ordering::Relaxed) < 100_000,
        "a PING waited {} µs",
        worst.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_over_the_bounds_are_refused_before_redis_runs_anything() {
    let server = RedisServer::start();
    let mut con = raw(&server);
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .exec(&mut con)
        .expect("config");
    for rs in [
        RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
            .await
            .expect("connect"),
        RedisSessions::in_memory(Options::default().wipe(Duration::ZERO)),
    ] {
        let too_many = Value::Object(data(MAX_KEYS + 1));
        let too_long = json!({"a": "x".repeat(MAX_DATA_BYTES)});
        for d in [&too_many, &too_long] {
            let err = rs
                .create(
                    APP,
                    "u",
                    "127.0.0.1",
                    CreateOptions::default().data(d.clone()),
                )
                .await
                .expect_err("over the bounds");
            assert_eq!(err.name(), "dataTooLarge");
        }
        let token = rs
            .create(
                APP,
                "u",
                "127.0.0.1",
                CreateOptions::default().data(Value::Object(data(MAX_KEYS - 1))),
            )
            .await
            .expect("create");
        redis::cmd("SLOWLOG")
            .arg("RESET")
            .exec(&mut con)
            .expect("reset");
        for d in [&too_many, &too_long] {
            let err = rs.set(APP, &token, d).await.expect_err("over the bounds");
            assert_eq!(err.name(), "dataTooLarge");
            assert_eq!(err.kind().http_status(), 413);
        }
        assert!(
            script_micros(&mut con).is_empty(),
            "a refused call reached Redis"
        );
        // Under the bounds alone, over them once merged: refused whole, nothing written.
        let err = rs
            .set(APP, &token, &json!({"new1": 1, "new2": 2}))
            .await
            .expect_err("the merge passes the bound");
        assert_eq!(err.name(), "dataTooLarge", "{err}");
        let session = rs.get(APP, &token).await.expect("get").expect("live");
        assert_eq!(
            (session.w, session.d.map(|d| d.len())),
            (1, Some(MAX_KEYS - 1))
        );
        let err = rs
            .set(
                APP,
                &token,
                &json!({"big": "y".repeat(MAX_DATA_BYTES - 100)}),
            )
            .await
            .expect_err("the merge passes the byte bound");
        assert_eq!(err.name(), "dataTooLarge", "{err}");
    }
}

/// A session a Node process stored past the bounds stays readable; a set on it is refused
/// by the script before it writes (Node has no bounds, and its set is the way to shrink it).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_node_stored_past_the_bounds_is_read_but_not_merged() {
    let server = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        server.port()
    ));
    for d in [
        Value::Object(data(MAX_KEYS * 2)),
        json!({"a": "x".repeat(MAX_DATA_BYTES * 2)}),
    ] {
        let created = node
            .call(
                "create",
                &json!({"app": APP, "id": "n", "ip": "127.0.0.1", "ttl": 3600, "d": d}).to_string(),
            )
            .expect("node create");
        let token = serde_json::from_str::<Value>(&created).expect("reply")["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let mut con = raw(&server);
        let key = format!("rs:{APP}:{token}");
        let before: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query(&mut con)
            .expect("HGETALL");
        let session = rs.get(APP, &token).await.expect("get").expect("live");
        assert!(session.d.is_some());
        let err = rs
            .set(APP, &token, &json!({"x": 1}))
            .await
            .expect_err("past the bounds");
        assert_eq!(err.name(), "dataTooLarge", "{err}");
        assert!(!err.to_string().contains("user_script"), "{err}");
        let mut after: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&key)
            .query(&mut con)
            .expect("HGETALL");
        // The get counted a read; nothing else moved.
        let mut expected = before.clone();
        for (f, v) in expected.iter_mut() {
            if f == "r" {
                *v = (v.parse::<u64>().expect("r") + 1).to_string();
            }
        }
        after.retain(|(f, _)| f != "la");
        expected.retain(|(f, _)| f != "la");
        assert_eq!(after, expected);
    }
}
