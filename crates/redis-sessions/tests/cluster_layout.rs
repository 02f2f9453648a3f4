//! What the cluster layout records and announces: the layout record checked at connect,
//! reads sent to replicas, and cache invalidations on shard channels that follow their
//! slots through a reshard.

use redis_sessions::{CreateOptions, Error, KeyLayout, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::cluster::{RedisCluster, Stall};
use test_support::RedisServer;

const APP: &str = "layoutapp";

fn sharded(cluster: &RedisCluster, shards: u16) -> Options {
    Options::default()
        .cluster(cluster.urls())
        .key_layout(KeyLayout::Sharded { shards })
        .wipe(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_shard_count_refuses_to_start() {
    let cluster = RedisCluster::start(3, 0);
    let first = RedisSessions::connect(sharded(&cluster, 60))
        .await
        .expect("first use records the layout");
    let token = first
        .create(APP, "alice", "1", CreateOptions::default())
        .await
        .expect("create");
    let err = RedisSessions::connect(sharded(&cluster, 61))
        .await
        .expect_err("61 shards on a namespace written with 60");
    let text = err.to_string();
    println!("{text}");
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err:?}");
    assert_eq!(err.name(), "layoutMismatch");
    assert!(
        text.contains("sharded layout, 60 shards, version 1")
            && text.contains("sharded layout, 61 shards, version 1"),
        "the message says what is stored and what was asked: {text}"
    );
    // The same count is accepted, and another namespace is another record.
    let again = RedisSessions::connect(sharded(&cluster, 60))
        .await
        .expect("same layout");
    assert!(again.get(APP, &token).await.expect("get").is_some());
    RedisSessions::connect(sharded(&cluster, 61).namespace("other"))
        .await
        .expect("a fresh namespace takes any count");
}

/// The layout record `{ns}:{layout}` read from whichever master holds it: its `shards`
/// field, or None when no master has it.
fn recorded_shards(cluster: &RedisCluster, namespace: &str) -> Option<u16> {
    let key = format!("{namespace}:{{layout}}");
    cluster.nodes.iter().find_map(|n| {
        let reply = n.command(&["HGET", &key, "shards"]).ok()?;
        reply.lines().nth(1).and_then(|l| l.trim().parse().ok())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_layout_record_is_never_overwritten_and_comes_back() {
    let cluster = RedisCluster::start(3, 0);
    let running = RedisSessions::connect(sharded(&cluster, 60))
        .await
        .expect("first use records the layout");
    let mut tokens = Vec::new();
    for i in 0..200 {
        tokens.push(
            running
                .create(APP, &format!("user{i}"), "1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    assert_eq!(recorded_shards(&cluster, "rs"), Some(60));
    // The record vanishes (eviction, FLUSH of one key, an operator) under the running
    // process: DEL on every master (the one that holds it deletes it).
    let deleted_at = Instant::now();
    for node in &cluster.nodes {
        let _ = node.command(&["DEL", "rs:{layout}"]);
    }
    assert_eq!(recorded_shards(&cluster, "rs"), None, "deleted");
    // A process with another shard count starts meanwhile: it finds the namespace's keys
    // and refuses, with a message that says what happened.
    let err = RedisSessions::connect(sharded(&cluster, 61))
        .await
        .expect_err("61 shards over a 60-shard namespace whose record vanished");
    let text = err.to_string();
    println!("{text}");
    assert_eq!(err.name(), "layoutMissing", "{err:?}");
    assert_eq!(err.kind(), redis_sessions::ErrorKind::Misconfigured);
    assert!(
        text.contains("rs:{layout}") && text.contains("is missing") && !text.contains("memory"),
        "{text}"
    );
    assert_eq!(
        recorded_shards(&cluster, "rs"),
        None,
        "the refusing process wrote no record"
    );
    // The running process puts it back within its check interval.
    loop {
        if recorded_shards(&cluster, "rs") == Some(60) {
            break;
        }
        assert!(
            deleted_at.elapsed() < Duration::from_secs(12),
            "the running process did not restore the record"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "record restored by the running process {:.1?} after it was deleted",
        deleted_at.elapsed()
    );
    let err = RedisSessions::connect(sharded(&cluster, 61))
        .await
        .expect_err("61 shards against the restored record");
    assert_eq!(err.name(), "layoutMismatch");
    for token in &tokens {
        assert!(running.get(APP, token).await.expect("get").is_some());
    }
    assert_eq!(
        running
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        200
    );
    // An empty namespace still takes its record at first use.
    RedisSessions::connect(sharded(&cluster, 61).namespace("fresh"))
        .await
        .expect("a fresh namespace");
    assert_eq!(recorded_shards(&cluster, "fresh"), Some(61));
}

#[tokio::test]
async fn one_redis_refuses_a_layout_other_than_the_recorded_one() {
    let server = RedisServer::start();
    let node = Options::default().url(server.url()).wipe(Duration::ZERO);
    RedisSessions::connect(node.clone())
        .await
        .expect("node layout recorded");
    let err = RedisSessions::connect(node.clone().key_layout(KeyLayout::Sharded { shards: 4 }))
        .await
        .expect_err("the sharded layout on a namespace written with the Node one");
    assert!(
        err.to_string()
            .contains("holds the node layout, 1 shard, version 1"),
        "{err}"
    );
    RedisSessions::connect(node).await.expect("node again");
}

/// commandstats `calls=` of one command on one node.
fn calls(node: &RedisServer, command: &str) -> u64 {
    stat(node, command, "calls")
}

/// One field (`calls`, `usec`) of a command's commandstats line on one node.
fn stat(node: &RedisServer, command: &str, field: &str) -> u64 {
    let text = node.command(&["INFO", "commandstats"]).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:")))
        .and_then(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_master(node: &RedisServer) -> bool {
    node.command(&["INFO", "replication"])
        .map(|r| r.contains("role:master"))
        .unwrap_or(false)
}

/// Read commands and their Redis time (µs) of `rounds` × (soid, soapp, activity), as
/// ((calls, µs) on masters, (calls, µs) on replicas).
async fn reads_per_role(
    cluster: &RedisCluster,
    rs: &RedisSessions,
    rounds: usize,
) -> ((u64, u64), (u64, u64)) {
    for node in &cluster.nodes {
        let _ = node.command(&["CONFIG", "RESETSTAT"]);
    }
    for i in 0..rounds {
        let id = format!("user{}", i % 50);
        assert_eq!(rs.soid(APP, &id).await.expect("soid").len(), 2);
        assert_eq!(
            rs.soapp(APP, Duration::from_secs(3600))
                .await
                .expect("soapp")
                .len(),
            100
        );
        assert_eq!(
            rs.activity(APP, Duration::from_secs(3600))
                .await
                .expect("activity"),
            50
        );
    }
    let mut on = ((0, 0), (0, 0));
    for node in &cluster.nodes {
        let commands = [
            "evalsha_ro",
            "eval_ro",
            "smembers",
            "zrevrangebyscore",
            "zcount",
        ];
        let n: u64 = commands.iter().map(|c| calls(node, c)).sum();
        let usec: u64 = commands.iter().map(|c| stat(node, c, "usec")).sum();
        let role = if is_master(node) {
            &mut on.0
        } else {
            &mut on.1
        };
        role.0 += n;
        role.1 += usec;
    }
    on
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_from_replicas_take_soid_soapp_and_activity_off_the_masters() {
    let cluster = RedisCluster::start(3, 1);
    let writer = RedisSessions::connect(sharded(&cluster, 60))
        .await
        .expect("connect");
    for i in 0..100 {
        writer
            .create(
                APP,
                &format!("user{}", i % 50),
                "1",
                CreateOptions::default(),
            )
            .await
            .expect("create");
    }
    // The client learns the replicas from CLUSTER SLOTS when it connects: wait until every
    // replica is listed (Redis leaves a replica out of CLUSTER SLOTS until it has received
    // data, and tells the others of its offset by gossip).
    let started = Instant::now();
    while !cluster.nodes[3..].iter().all(|n| {
        n.command(&["INFO", "replication"])
            .map(|r| r.contains("master_link_status:up"))
            .unwrap_or(false)
    }) || !cluster.nodes.iter().all(|n| {
        n.command(&["CLUSTER", "SHARDS"])
            .map(|r| r.matches("online").count() == 6)
            .unwrap_or(false)
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "replicas not linked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replicas = RedisSessions::connect(sharded(&cluster, 60).read_from_replicas(true))
        .await
        .expect("connect with replica reads");
    let rounds = 20;
    let ((masters_off, masters_off_us), (replicas_off, _)) =
        reads_per_role(&cluster, &writer, rounds).await;
    let ((masters_on, _), (replicas_on, replicas_on_us)) =
        reads_per_role(&cluster, &replicas, rounds).await;
    println!(
        "{rounds} × (soid, soapp, activity) on 60 shards: read commands on masters / replicas: \
         {masters_off} ({masters_off_us} µs of Redis time) / {replicas_off} without replica \
         reads, {masters_on} / {replicas_on} ({replicas_on_us} µs) with"
    );
    assert_eq!(replicas_off, 0, "by default every read goes to a master");
    assert!(masters_off >= rounds as u64 * (2 + 60 + 60));
    assert_eq!(masters_on, 0, "with replica reads the masters answer none");
    // The first call of a script on each replica finds no script there (NOSCRIPT) and is
    // sent again with its source (EVAL_RO).
    assert!(
        (masters_off..=masters_off + 12).contains(&replicas_on),
        "the replicas answer the same reads"
    );
    // Writes still go to the masters.
    let token = replicas
        .create(APP, "late", "1", CreateOptions::default())
        .await
        .expect("create");
    assert!(replicas.get(APP, &token).await.expect("get").is_some());

    // Every replica stalls (SIGSTOP): replica reads wait half the response timeout, then
    // ask the master; they answer, right, instead of failing for the whole stall. (A
    // stalled replica causes no failover.)
    let stalls: Vec<Stall> = cluster.nodes[3..].iter().map(Stall::start).collect();
    let stalled = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let asked = Instant::now();
        let found = replicas
            .soid(APP, &format!("user{i}"))
            .await
            .expect("soid while the replicas are stalled");
        slowest = slowest.max(asked.elapsed());
        assert_eq!(found.len(), 2, "user{i}'s two sessions, from the master");
    }
    let asked = Instant::now();
    let active = replicas
        .activity(APP, Duration::from_secs(600))
        .await
        .expect("activity while the replicas are stalled");
    let activity_took = asked.elapsed();
    println!(
        "replicas stalled: soid answered from the masters within {slowest:.2?} each, activity \
         over 60 shards in {activity_took:.2?}; stalled for {:.1?}",
        stalled.elapsed()
    );
    // What /health shows: every master answering, every replica not.
    let nodes = replicas.nodes(Duration::from_millis(300)).await;
    let masters_ok = nodes
        .iter()
        .filter(|n| !n.replica && n.error.is_none())
        .count();
    let replicas_out = nodes
        .iter()
        .filter(|n| n.replica && n.error.is_some())
        .count();
    drop(stalls);
    assert_eq!(
        (nodes.len(), masters_ok, replicas_out),
        (6, 3, 3),
        "the store reports what it sees: {nodes:?}"
    );
    assert_eq!(active, 51, "50 users and `late`");
    assert!(
        slowest < Duration::from_millis(1500),
        "a replica read fell back within half the response timeout: {slowest:?}"
    );
}

async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn shard_channels_invalidate_caches_and_follow_their_slots() {
    let cluster = RedisCluster::start(3, 0);
    let cached = |cluster: &RedisCluster| sharded(cluster, 60).cache(Duration::from_secs(60), 1000);
    let a = RedisSessions::connect(cached(&cluster)).await.expect("a");
    let b = RedisSessions::connect(cached(&cluster)).await.expect("b");
    let mut tokens = Vec::new();
    for i in 0..30 {
        tokens.push(
            a.create(APP, &format!("u{i}"), "1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    let seen = |n: i64| {
        move |s: Option<redis_sessions::Session>| {
            s.and_then(|s| s.get::<i64>("n").expect("a typed read")) == Some(n)
        }
    };
    for t in &tokens {
        assert!(b.get(APP, t).await.expect("get").is_some(), "cached in b");
    }
    for t in &tokens {
        a.set(APP, t, &json!({"n": 1})).await.expect("set");
    }
    let took = within(Duration::from_secs(2), async || {
        let mut all = true;
        for t in &tokens {
            all &= seen(1)(b.get(APP, t).await.expect("get"));
        }
        all
    })
    .await;
    println!("b saw a's 30 sets after {took:?}");
    // No plain PUBLISH on the cluster bus: only SPUBLISH on the shards' channels.
    let publishes: u64 = cluster.masters().iter().map(|n| calls(n, "publish")).sum();
    assert_eq!(publishes, 0, "nothing is broadcast to every node");

    // Move a third of the slots: the channels of the moved shards are dropped by Redis and
    // subscribed again on their new node; meanwhile the cache serves nothing stale.
    let flushes = b.cache_stats().map(|s| s.flushes).unwrap_or(0);
    let masters = cluster.masters();
    // redis-cli blocks; the caches go on on the runtime's other workers.
    let moved = tokio::task::block_in_place(|| {
        test_support::faults::reshard(&cluster.nodes[0], &masters[0], &masters[1], 3000)
    });
    assert!(moved);
    let resubscribed = within(Duration::from_secs(5), async || {
        b.get(APP, &tokens[0]).await.expect("get");
        b.get(APP, &tokens[0]).await.expect("get");
        b.cache_stats().map(|s| s.hits).unwrap_or(0) > 0 && b.cache_len() > 0
    })
    .await;
    println!("b's cache serves again {resubscribed:?} after the reshard");
    assert!(
        b.cache_stats().map(|s| s.flushes).unwrap_or(0) > flushes,
        "the moved channels dropped the cache"
    );
    for t in &tokens {
        b.get(APP, t).await.expect("get");
    }
    for t in &tokens {
        a.set(APP, t, &json!({"n": 2})).await.expect("set");
    }
    within(Duration::from_secs(2), async || {
        let mut all = true;
        for t in &tokens {
            all &= seen(2)(b.get(APP, t).await.expect("get"));
        }
        all
    })
    .await;
    a.killsoid(APP, "u3").await.expect("killsoid");
    within(Duration::from_secs(2), async || {
        b.get(APP, &tokens[3]).await.expect("get").is_none()
    })
    .await;
}
