//! The store under connection faults, against real processes: a connection that goes
//! silent (a proxy that stops forwarding), connections killed by the server (CLIENT
//! KILL), Redis stopped and started, and slot moves on a cluster under 50 concurrent
//! tasks. Each test asserts the store serves again by itself within seconds, and that
//! the watchdog counted what it did. Every wait is bounded.

use redis_sessions::{ConnectionStats, CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::faults::{kill_clients, proxy_cluster, rebalance, reshard};
use test_support::proxy::TcpProxy;
use test_support::RedisServer;

const APP: &str = "faults";

fn stats(rs: &RedisSessions) -> ConnectionStats {
    rs.connection_stats()
        .expect("a Redis store has connection stats")
}

/// Calls `get` from `tasks` tasks until one returns the session; returns how long that
/// took and how many calls failed meanwhile. Fails the test past `limit`.
async fn until_served(
    rs: &RedisSessions,
    token: &str,
    tasks: usize,
    limit: Duration,
) -> (Duration, u64) {
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (rs, token) = (rs.clone(), token.to_string());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) && started.elapsed() < limit {
                    match tokio::time::timeout(Duration::from_secs(3), rs.get(APP, &token)).await {
                        Ok(Ok(Some(_))) => done.store(true, Ordering::SeqCst),
                        _ => {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let took = started.elapsed();
    assert!(
        done.load(Ordering::SeqCst),
        "the store did not serve again within {limit:?}"
    );
    (took, failed.load(Ordering::SeqCst))
}

async fn session(rs: &RedisSessions, id: &str) -> String {
    rs.create(APP, id, "10.0.0.1", CreateOptions::default())
        .await
        .expect("create")
}

/// A connection that stops answering (the proxy forwards nothing more on it, nothing is
/// closed) is found by the watchdog and replaced by a fresh one within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_replaced() {
    let redis = RedisServer::start();
    let proxy = TcpProxy::start(redis.port());
    let rs = RedisSessions::connect(Options::default().url(proxy.url()).wipe(Duration::ZERO))
        .await
        .expect("connect through the proxy");
    let token = session(&rs, "u1").await;
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    let before = stats(&rs);
    assert_eq!(before.replacements, 0);

    proxy.freeze();
    let (took, failed) = until_served(&rs, &token, 4, Duration::from_secs(20)).await;
    let after = stats(&rs);
    println!("silent connection: served again after {took:?}, {failed} calls failed, {after:?}");
    assert!(failed >= 1, "the freeze made calls fail");
    assert!(after.timeouts >= 3, "timeouts counted: {after:?}");
    assert_eq!(after.replacements, 1, "one replacement: {after:?}");
    assert!(took < Duration::from_secs(8), "recovered in {took:?}");
    // The replacement is a connection through the proxy that works for every call.
    let data = rs
        .set(APP, &token, &json!({"after": "freeze"}))
        .await
        .expect("set after the replacement");
    let data = data.expect("live session").d.expect("data");
    assert_eq!(data.get("after"), Some(&json!("freeze")));
    assert!(proxy.accepted() >= 2, "a new connection was opened");
}

/// The same on a cluster: every node behind a proxy, every open connection frozen; the
/// watchdog replaces the whole cluster connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_cluster_connection_is_replaced() {
    let cluster = RedisCluster::start(3, 0);
    let (proxies, seeds) = proxy_cluster(&cluster);
    let rs = RedisSessions::connect(Options::default().cluster(seeds).wipe(Duration::ZERO))
        .await
        .expect("connect through the proxies");
    let token = session(&rs, "u1").await;
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    let opened: usize = proxies.iter().map(TcpProxy::accepted).sum();

    for proxy in &proxies {
        proxy.freeze();
    }
    let (took, failed) = until_served(&rs, &token, 4, Duration::from_secs(20)).await;
    let after = stats(&rs);
    println!(
        "silent cluster connection: served again after {took:?}, {failed} calls failed, {after:?}"
    );
    assert!(failed >= 1, "the freeze made calls fail");
    assert!(after.replacements >= 1, "replaced: {after:?}");
    assert!(took < Duration::from_secs(8), "recovered in {took:?}");
    let reopened: usize = proxies.iter().map(TcpProxy::accepted).sum();
    assert!(reopened > opened, "new connections through the proxies");
    // Every shard answers through the new connection (soapp asks all of them).
    assert_eq!(
        rs.soapp(APP, Duration::from_secs(600))
            .await
            .expect("soapp")
            .len(),
        1
    );
}

/// A Redis that is down is not "stuck": the checks find no fresh connection either,
/// replace nothing, and the store serves again once Redis is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_redis_is_waited_for_not_replaced() {
    let mut redis = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(redis.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = session(&rs, "u1").await;
    redis.stop();
    for _ in 0..6 {
        assert!(rs.get(APP, &token).await.is_err(), "Redis is down");
    }
    // The data is gone with the process (no persistence); a new session shows service.
    redis.restart();
    let started = Instant::now();
    let token = loop {
        if let Ok(Ok(token)) = tokio::time::timeout(
            Duration::from_secs(3),
            rs.create(APP, "u2", "10.0.0.1", CreateOptions::default()),
        )
        .await
        {
            break token;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not served again after the restart"
        );
    };
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    let after = stats(&rs);
    println!("stopped redis: {after:?}");
    assert_eq!(after.replacements, 0, "nothing replaced: {after:?}");
    assert!(
        after.disconnects + after.timeouts >= 6,
        "failures counted: {after:?}"
    );
}

/// A Redis that answers nobody for a while (CLIENT PAUSE: a long script, a slow disk)
/// is not a stuck connection: the check finds a fresh connection no better, replaces
/// nothing, and the same connection serves once Redis answers again.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_redis_is_waited_for_not_replaced() {
    let redis = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(redis.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = session(&rs, "u1").await;
    let paused = redis
        .command(&["CLIENT", "PAUSE", "4000", "ALL"])
        .expect("pause");
    assert!(paused.starts_with("+OK"), "{paused}");
    let (took, failed) = until_served(&rs, &token, 4, Duration::from_secs(15)).await;
    let after = stats(&rs);
    println!("paused redis: served again after {took:?}, {failed} calls failed, {after:?}");
    assert!(
        took >= Duration::from_secs(3),
        "the pause held calls: {took:?}"
    );
    assert!(after.checks >= 1, "timeouts led to a check: {after:?}");
    assert_eq!(after.replacements, 0, "nothing replaced: {after:?}");
}

/// CLIENT KILL TYPE normal closes the store's connection: it reconnects by itself.
#[tokio::test(flavor = "multi_thread")]
async fn killed_connections_reconnect() {
    let redis = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(redis.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = session(&rs, "u1").await;
    for _ in 0..3 {
        assert!(
            kill_clients(&redis) >= 1,
            "the store's connection was killed"
        );
        let (took, failed) = until_served(&rs, &token, 4, Duration::from_secs(10)).await;
        println!("client kill: served again after {took:?}, {failed} calls failed");
        assert!(took < Duration::from_secs(3), "recovered in {took:?}");
    }
    assert_eq!(stats(&rs).replacements, 0);
}

/// Calls of the cluster load, per outcome.
#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

/// 50 tasks through one store, each creating sessions for 5000 users in turn (so every
/// shard, and so every slot that moves, is busy) and setting and getting the last one.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(rs: &RedisSessions, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut handles = Vec::new();
        for t in 0..tasks {
            let mut token = session(rs, &format!("user{t}")).await;
            let (rs, stop, counts) = (rs.clone(), stop.clone(), counts.clone());
            handles.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let user = format!("user{}", (t as u64 * 7919 + i) % 5000);
                    let call = async {
                        match i % 4 {
                            0 => rs
                                .create(APP, &user, "10.0.0.1", CreateOptions::default())
                                .await
                                .map(|new| token = new),
                            2 => rs.set(APP, &token, &json!({ "n": i })).await.map(|_| ()),
                            _ => rs.get(APP, &token).await.map(|_| ()),
                        }
                    };
                    let outcome = tokio::time::timeout(Duration::from_secs(3), call).await;
                    if matches!(outcome, Ok(Ok(()))) {
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Load {
            stop,
            counts,
            tasks: handles,
        }
    }

    fn snapshot(&self) -> (u64, u64) {
        (
            self.counts.ok.load(Ordering::Relaxed),
            self.counts.failed.load(Ordering::Relaxed),
        )
    }

    /// Waits for a whole second with successes and no failure; returns when it began.
    async fn until_clean_second(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let at = started.elapsed();
            let (ok0, failed0) = self.snapshot();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (ok1, failed1) = self.snapshot();
            if ok1 > ok0 && failed1 == failed0 {
                return at;
            }
            assert!(
                started.elapsed() < limit,
                "no clean second within {limit:?}: the store is wedged"
            );
        }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// Three moves of 2000 slots under 50 concurrent tasks, a rebalance, then CLIENT KILL on
/// every master: after each the store serves again within seconds (no wedge). The 60 shards'
/// slots are spread evenly, so each move of 2000 slots carries about 7 busy shards.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_serves_again_after_each_reshard_rebalance_and_client_kill() {
    let test_started = Instant::now();
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect to the cluster");
    let load = Load::start(&rs, 50).await;
    load.until_clean_second(Duration::from_secs(10)).await;
    for round in 0..3 {
        let (ok0, failed0) = load.snapshot();
        let moving = cluster.clone();
        let moved = tokio::task::spawn_blocking(move || {
            let m = moving.masters();
            let (from, to) = [(0, 1), (0, 2), (1, 2)][round];
            reshard(&m[0], &m[from], &m[to], 2000)
        })
        .await
        .expect("join");
        assert!(moved, "reshard {round} failed");
        let recovery = load.until_clean_second(Duration::from_secs(20)).await;
        let (ok1, failed1) = load.snapshot();
        println!(
            "reshard {round}: {} calls ok, {} failed during the move; clean again {recovery:?} after it",
            ok1 - ok0,
            failed1 - failed0
        );
        assert!(
            recovery < Duration::from_secs(10),
            "served again {recovery:?} after the move"
        );
    }
    // The three moves took 4000 slots from the first master to the third: even them out.
    let (ok0, failed0) = load.snapshot();
    let moving = cluster.clone();
    let balanced = tokio::task::spawn_blocking(move || rebalance(&moving.masters()[0]))
        .await
        .expect("join");
    assert!(balanced, "rebalance failed");
    let recovery = load.until_clean_second(Duration::from_secs(20)).await;
    let (ok1, failed1) = load.snapshot();
    println!(
        "rebalance: {} calls ok, {} failed during the moves; clean again {recovery:?} after them",
        ok1 - ok0,
        failed1 - failed0
    );
    assert!(recovery < Duration::from_secs(10));

    let (_, failed0) = load.snapshot();
    for master in cluster.masters() {
        kill_clients(master);
    }
    let recovery = load.until_clean_second(Duration::from_secs(20)).await;
    println!(
        "client kill: {} failed; clean again after {recovery:?}",
        load.snapshot().1 - failed0
    );
    assert!(recovery < Duration::from_secs(10));
    load.finish().await;
    println!("cluster connection: {:?}", stats(&rs));
    assert!(
        test_started.elapsed() < Duration::from_secs(150),
        "bounded: took {:?}",
        test_started.elapsed()
    );
}
