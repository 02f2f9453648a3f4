//! Redis going away and coming back; the background sweeper; key TTLs.

mod common;

use redis::Commands;
use redis_sessions::{CreateOptions, Error, ManualClock, Options, RedisSessions};
use std::time::{Duration, Instant};
use test_support::RedisServer;

const APP: &str = "robustapp";

#[tokio::test(flavor = "multi_thread")]
async fn fails_fast_while_redis_is_down_and_recovers_by_itself() {
    let mut server = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let result = rs.get(APP, &token).await;
        assert!(
            matches!(result, Err(Error::Unavailable(_))),
            "got {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "failed fast: {:?}",
            started.elapsed()
        );
    }
    // A fresh server on the same port: no data, no scripts loaded (NOSCRIPT is handled).
    server.restart();
    let started = Instant::now();
    loop {
        match rs.create(APP, "u", "1", CreateOptions::default()).await {
            Ok(token) => {
                assert!(rs.get(APP, &token).await.expect("get").is_some());
                break;
            }
            Err(err) => {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "not recovered: {err}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_fails_when_redis_is_unreachable() {
    let port = test_support::free_port();
    let started = Instant::now();
    let result = RedisSessions::connect(
        Options::default()
            .host_port("127.0.0.1", port)
            .wipe(Duration::ZERO),
    )
    .await;
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "got {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn script_flush_is_survived() {
    let server = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    server.command(&["SCRIPT", "FLUSH"]).expect("flush");
    assert!(rs
        .get(APP, &token)
        .await
        .expect("get after SCRIPT FLUSH")
        .is_some());
}

/// The background sweeper of the embedded store, on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn background_sweep_runs_every_wipe_seconds() {
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::in_memory(
        Options::default()
            .wipe(Duration::from_secs(3))
            .clock(clock.clone()),
    );
    rs.create(
        APP,
        "u",
        "1",
        CreateOptions::default().ttl(Duration::from_secs(10)),
    )
    .await
    .expect("create");
    rs.create(
        APP,
        "v",
        "1",
        CreateOptions::default().ttl(Duration::from_secs(100)),
    )
    .await
    .expect("create");
    clock.advance(Duration::from_secs(50));
    // wipe 3 becomes 10 seconds, as in the Node module.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(
        rs.killall(APP).await.expect("killall"),
        2,
        "not swept before 10 s"
    );
    rs.create(
        APP,
        "u",
        "1",
        CreateOptions::default().ttl(Duration::from_secs(10)),
    )
    .await
    .expect("create");
    rs.create(
        APP,
        "v",
        "1",
        CreateOptions::default().ttl(Duration::from_secs(100)),
    )
    .await
    .expect("create");
    clock.advance(Duration::from_secs(50));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rs.killall(APP).await.expect("killall"),
        1,
        "the dead one was swept"
    );
}

/// Two processes on one Redis: one sweeps per interval (the lease), and the sweep happens.
#[tokio::test(flavor = "multi_thread")]
async fn one_process_of_a_fleet_sweeps() {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let options = Options::default()
        .url(server.url())
        .wipe(Duration::from_secs(10))
        .clock(clock.clone());
    let a = RedisSessions::connect(options.clone())
        .await
        .expect("connect");
    let _b = RedisSessions::connect(options).await.expect("connect");
    for i in 0..20 {
        a.create(
            APP,
            &format!("u{i}"),
            "1",
            CreateOptions::default().ttl(Duration::from_secs(10)),
        )
        .await
        .expect("create");
    }
    clock.advance(Duration::from_secs(11));
    let mut con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("raw");
    let started = Instant::now();
    loop {
        let left: u64 = con.zcard("rs:SESSIONS").expect("ZCARD");
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no sweep happened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lease: Option<String> = con.get("rs:SESSIONS:sweeper").expect("GET");
    assert!(lease.is_some(), "the sweeping process holds the lease");
    common::assert_consistent(&mut con, "rs");
}

#[tokio::test(flavor = "multi_thread")]
async fn expire_keys_lets_redis_free_dead_sessions() {
    let server = RedisServer::start();
    let rs = RedisSessions::connect(
        Options::default()
            .url(server.url())
            .wipe(Duration::ZERO)
            .expire_keys(true),
    )
    .await
    .expect("connect");
    let token = rs
        .create(
            APP,
            "u",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(60)),
        )
        .await
        .expect("create");
    let mut con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("raw");
    let ttl: i64 = con.ttl(format!("rs:{APP}:{token}")).expect("TTL");
    assert!(
        (59..=61).contains(&ttl),
        "key TTL follows the session ttl: {ttl}"
    );
    // Off by default: no key TTL in the Node-compatible layout.
    let plain = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = plain
        .create(
            APP,
            "u",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(60)),
        )
        .await
        .expect("create");
    let ttl: i64 = con.ttl(format!("rs:{APP}:{token}")).expect("TTL");
    assert_eq!(ttl, -1);
}
