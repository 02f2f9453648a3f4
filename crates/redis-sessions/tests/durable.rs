//! Durable writes (`Options::min_replicas`) on a real master and replica: a write is
//! acknowledged only once the replica has it; without the replica's confirmation the call
//! fails with `NotReplicated` after the timeout, the write still on the master; and a
//! waiting write does not hold up other calls of the same store.

use redis_sessions::{CreateOptions, Error, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::RedisServer;

const APP: &str = "app";

async fn store(master: &RedisServer, replicas: u32, timeout: Duration) -> RedisSessions {
    RedisSessions::connect(
        Options::default()
            .url(master.url())
            .wipe(Duration::ZERO)
            .min_replicas(replicas, timeout),
    )
    .await
    .expect("connect")
}

/// True when the server holds `key` now.
fn has_key(server: &RedisServer, key: &str) -> bool {
    server
        .command(&["EXISTS", key])
        .unwrap_or_default()
        .starts_with(":1")
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_are_on_the_replica_when_acknowledged() {
    let master = RedisServer::start();
    let replica = RedisServer::start_replica_of(&master);
    let rs = store(&master, 1, Duration::from_secs(2)).await;
    for i in 0..50 {
        let id = format!("user{i}");
        let token = rs
            .create(APP, &id, "127.0.0.1", CreateOptions::default())
            .await
            .expect("create");
        // Read on the replica at once: the acknowledgement means it is there already.
        assert!(
            has_key(&replica, &format!("rs:{APP}:{token}")),
            "create {i}"
        );
        rs.set(APP, &token, &json!({ "n": i }))
            .await
            .expect("set")
            .expect("live");
        let d = replica
            .strings(&["HGET", &format!("rs:{APP}:{token}"), "d"])
            .expect("hget");
        assert_eq!(d, vec![format!("{{\"n\":{i}}}")], "set {i}");
        if i % 2 == 0 {
            assert!(rs.kill(APP, &token).await.expect("kill"));
            assert!(!has_key(&replica, &format!("rs:{APP}:{token}")), "kill {i}");
        }
    }
    assert_eq!(rs.killsoid(APP, "user1").await.expect("killsoid"), 1);
    assert!(!has_key(&replica, &format!("rs:{APP}:us:user1")));
    assert_eq!(rs.killall(APP).await.expect("killall"), 24);
    assert!(!has_key(&replica, &format!("rs:{APP}:_sessions")));
}

#[tokio::test(flavor = "multi_thread")]
async fn scripts_flushed_on_the_master_are_loaded_again() {
    let master = RedisServer::start();
    let _replica = RedisServer::start_replica_of(&master);
    let rs = store(&master, 1, Duration::from_secs(2)).await;
    let token = rs
        .create(APP, "u", "127.0.0.1", CreateOptions::default())
        .await
        .expect("create");
    master.command(&["SCRIPT", "FLUSH"]).expect("flush");
    let session = rs
        .set(APP, &token, &json!({ "a": 1 }))
        .await
        .expect("set after SCRIPT FLUSH")
        .expect("live");
    assert_eq!(session.get::<i64>("a").expect("a typed read"), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn unconfirmed_writes_fail_distinctly_and_do_not_stall_other_calls() {
    let master = RedisServer::start();
    let mut replica = RedisServer::start_replica_of(&master);
    let rs = store(&master, 1, Duration::from_millis(800)).await;
    let token = rs
        .create(APP, "u", "127.0.0.1", CreateOptions::default())
        .await
        .expect("create while the replica runs");
    replica.stop();

    // A write nobody confirms: fails after the timeout, with its own error.
    let writer = {
        let rs = rs.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = rs
                .create(APP, "w", "127.0.0.1", CreateOptions::default())
                .await;
            (result, started.elapsed())
        })
    };
    // Meanwhile reads on the same store answer at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        rs.get(APP, &token).await.expect("get").expect("live");
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(300),
        "gets waited behind the durable write: {slowest:?}"
    );
    let (result, took) = writer.await.expect("join");
    match result {
        Err(
            err @ Error::NotReplicated {
                acked: 0,
                wanted: 1,
            },
        ) => {
            assert_eq!(err.name(), "notReplicated");
            assert_eq!(err.kind(), redis_sessions::ErrorKind::Unconfirmed);
        }
        other => panic!("expected NotReplicated, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(700),
        "waited the timeout: {took:?}"
    );
    // The write was made on the master all the same, as the docs say.
    let users = master
        .strings(&["ZRANGE", &format!("rs:{APP}:_users"), "0", "-1"])
        .expect("zrange");
    assert!(users.contains(&"w".to_string()), "{users:?}");

    // Two replicas asked of one: every write fails the same way, after its timeout.
    replica.restart();
    replica.wait_link_up(Duration::from_secs(10));
    let two = store(&master, 2, Duration::from_millis(200)).await;
    let err = two
        .set(APP, &token, &json!({ "b": 1 }))
        .await
        .expect_err("only one replica");
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 1,
                wanted: 2
            }
        ),
        "{err:?}"
    );
}

/// On a cluster the WAIT runs on the master that ran the write: with one replica per
/// master a durable write is confirmed by 1 replica and refused when 2 are asked for.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_waits_for_the_replicas_of_the_writing_master() {
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = test_support::cluster::RedisCluster::start(3, 1);
        cluster.wait_replicas_linked(Duration::from_secs(30));
        cluster
    })
    .await
    .expect("cluster");
    let one = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO)
            // 2 s: a loaded CI machine may delay a replica's acknowledgement past 500 ms
            // (seen once with four builds running); the point is that one confirms.
            .min_replicas(1, Duration::from_secs(2)),
    )
    .await
    .expect("durable writes on a cluster");
    for i in 0..30 {
        let token = one
            .create("app", &format!("u{i}"), "1", CreateOptions::default())
            .await
            .expect("confirmed by the writing master's replica");
        one.set("app", &token, &json!({"n": i}))
            .await
            .expect("set confirmed")
            .expect("live");
    }
    let two = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO)
            .min_replicas(2, Duration::from_millis(200)),
    )
    .await
    .expect("connect");
    let err = two
        .create("app", "x", "1", CreateOptions::default())
        .await
        .expect_err("each master has one replica");
    assert!(
        matches!(
            err,
            Error::NotReplicated {
                acked: 1,
                wanted: 2
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn cluster_and_sentinels_together_are_refused() {
    let err = RedisSessions::connect(
        Options::default()
            .cluster(["redis://127.0.0.1:1"])
            .sentinel(["127.0.0.1:2"], "mymaster"),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.name(), "invalidValue");
}

/// The node of `nodes` that holds a key ending in `token` (its session hash), and the key.
fn holder(nodes: &[&RedisServer], token: &str) -> Option<(u16, String)> {
    nodes.iter().find_map(|node| {
        let keys = node
            .strings(&[
                "SCAN",
                "0",
                "MATCH",
                &format!("*{token}"),
                "COUNT",
                "100000",
            ])
            .ok()?;
        let key = keys.into_iter().find(|k| k.ends_with(token))?;
        Some((node.port(), key))
    })
}

/// True when the replica `node` holds `key`, read on the replica itself (READONLY).
fn replica_has(node: &RedisServer, key: &str) -> bool {
    let Ok(client) = redis::Client::open(node.url()) else {
        return false;
    };
    let Ok(mut con) = client.get_connection() else {
        return false;
    };
    let _: redis::RedisResult<()> = redis::cmd("READONLY").query(&mut con);
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(&mut con)
        .is_ok_and(|n| n == 1)
}

/// `min_replicas_all` on a cluster: each write waits for every replica of the master that
/// ran it. One master has 2 replicas, the others 1: an acknowledged write is on every
/// replica of its master; with one of the 2 replicas stopped, writes to that master fail
/// `NotReplicated { acked: 1, wanted: 2 }`, with a 1-replica master's replica stopped
/// `{ acked: 0, wanted: 1 }` — as under Sentinel, where a replica that is down still
/// counts — while writes to the third master go on.
#[tokio::test(flavor = "multi_thread")]
async fn all_on_a_cluster_waits_for_every_replica_of_the_writing_master() {
    let mut cluster = tokio::task::spawn_blocking(|| {
        let mut cluster = test_support::cluster::RedisCluster::start(3, 1);
        cluster.wait_replicas_linked(Duration::from_secs(30));
        cluster.add_replica(0);
        cluster
    })
    .await
    .expect("cluster");
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(std::time::Duration::ZERO)
            .min_replicas_all(Duration::from_millis(300)),
    )
    .await
    .expect("`all` on a cluster");
    let master_ports: Vec<u16> = cluster.masters().iter().map(|n| n.port()).collect();
    let mut per_master = [0usize; 3];
    for i in 0..60 {
        let token = rs
            .create(APP, &format!("u{i}"), "1", CreateOptions::default())
            .await
            .expect("confirmed by every replica of its master");
        let masters: Vec<&RedisServer> = cluster.masters().iter().collect();
        let (port, key) = holder(&masters, &token).expect("the session is on a master");
        let m = master_ports
            .iter()
            .position(|&p| p == port)
            .expect("master");
        per_master[m] += 1;
        let replicas = cluster.replicas_of(m);
        assert_eq!(replicas.len(), if m == 0 { 2 } else { 1 });
        for r in replicas {
            assert!(
                replica_has(&cluster.nodes[r], &key),
                "an acknowledged `all` write is missing on a replica of master {m}"
            );
        }
    }
    assert!(per_master.iter().all(|&n| n > 0), "{per_master:?}");

    // One replica of the 2-replica master down, and the only replica of master 1.
    let down: Vec<usize> = vec![cluster.replicas_of(0)[0], cluster.replicas_of(1)[0]];
    for &r in &down {
        cluster.nodes[r].stop();
    }
    let creates = (0..60).map(|i| {
        let rs = rs.clone();
        async move {
            rs.create(APP, &format!("v{i}"), "1", CreateOptions::default())
                .await
        }
    });
    // Four at a time, as many as the durable pool's connections: a refused write holds
    // its connection for the whole WAIT timeout.
    let results: Vec<_> = futures_util::StreamExt::collect(
        futures_util::StreamExt::buffer_unordered(futures_util::stream::iter(creates), 4),
    )
    .await;
    let (mut two, mut one, mut ok) = (0, 0, 0);
    let masters: Vec<&RedisServer> = cluster.masters().iter().collect();
    for result in results {
        match result {
            Ok(token) => {
                let (port, _) = holder(&masters, &token).expect("on a master");
                assert_eq!(
                    port,
                    masters[2].port(),
                    "only master 2 has all its replicas"
                );
                ok += 1;
            }
            Err(Error::NotReplicated {
                acked: 1,
                wanted: 2,
            }) => two += 1,
            Err(Error::NotReplicated {
                acked: 0,
                wanted: 1,
            }) => one += 1,
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    println!(
        "with replicas down: {two} refused (1 of 2), {one} refused (0 of 1), {ok} acknowledged"
    );
    assert!(two > 0 && one > 0 && ok > 0, "{two} {one} {ok}");
}
