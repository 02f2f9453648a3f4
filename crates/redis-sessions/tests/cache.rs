//! The in-process cache: served from memory, coherent across processes (ours and Node's).

mod common;

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use test_support::node::NodePeer;
use test_support::RedisServer;

const APP: &str = "cacheapp";

async fn cached_store(server: &RedisServer, cachetime: u64, cachemax: u64) -> RedisSessions {
    RedisSessions::connect(
        Options::default()
            .url(server.url())
            .wipe(Duration::ZERO)
            .cache(Duration::from_secs(cachetime), cachemax),
    )
    .await
    .expect("connect")
}

/// Polls until `check` holds; returns how long it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_reply_is_frozen_until_cachetime() {
    let server = RedisServer::start();
    let rs = cached_store(&server, 1, 100).await;
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    assert_eq!(rs.get(APP, &token).await.expect("get").expect("live").r, 1);
    assert_eq!(
        rs.get(APP, &token).await.expect("get").expect("live").r,
        1,
        "served from cache"
    );
    assert_eq!(rs.get(APP, &token).await.expect("get").expect("live").r, 1);
    let stats = rs.cache_stats().expect("cache on");
    assert_eq!((stats.hits, stats.misses), (2, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        rs.get(APP, &token).await.expect("get").expect("live").r,
        2,
        "fetched again after cachetime"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn own_writes_are_read_back() {
    let server = RedisServer::start();
    let rs = cached_store(&server, 60, 100).await;
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    rs.get(APP, &token).await.expect("get");
    rs.set(APP, &token, &json!({"a": 1})).await.expect("set");
    let s = rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(s.w, 2, "set flushed the entry");
    assert_eq!(s.get::<i64>("a").expect("a typed read"), Some(1));
    rs.kill(APP, &token).await.expect("kill");
    assert!(
        rs.get(APP, &token).await.expect("get").is_none(),
        "kill flushed the entry"
    );
    let t2 = rs
        .create(APP, "v", "1", CreateOptions::default())
        .await
        .expect("create");
    rs.get(APP, &t2).await.expect("get");
    rs.killsoid(APP, "v").await.expect("killsoid");
    assert!(
        rs.get(APP, &t2).await.expect("get").is_none(),
        "killsoid flushed the entry"
    );
    let t3 = rs
        .create(APP, "w", "1", CreateOptions::default())
        .await
        .expect("create");
    rs.get(APP, &t3).await.expect("get");
    rs.killall(APP).await.expect("killall");
    assert!(
        rs.get(APP, &t3).await.expect("get").is_none(),
        "killall flushed the entry"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cachemax_bounds_the_cache_least_recently_used_first() {
    let server = RedisServer::start();
    let rs = cached_store(&server, 60, 5).await;
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(
            rs.create(APP, &format!("u{i}"), "1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    for t in &tokens {
        rs.get(APP, t).await.expect("get");
    }
    assert!(rs.cache_len() <= 5, "cache holds {}", rs.cache_len());
    // The last five read are the ones kept: reading them again hits.
    let before = rs.cache_stats().expect("on").hits;
    for t in &tokens[5..] {
        rs.get(APP, t).await.expect("get");
    }
    assert_eq!(rs.cache_stats().expect("on").hits - before, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_in_another_process_invalidates() {
    let server = RedisServer::start();
    let reader = cached_store(&server, 60, 100).await;
    // The writer has no cache of its own: it publishes all the same (a fix over Node).
    let writer = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = writer
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    reader.get(APP, &token).await.expect("get");
    writer
        .set(APP, &token, &json!({"x": "new"}))
        .await
        .expect("set");
    let took = within(Duration::from_secs(2), async || {
        reader
            .get(APP, &token)
            .await
            .expect("get")
            .and_then(|s| s.get::<String>("x").expect("a typed read"))
            .as_deref()
            == Some("new")
    })
    .await;
    println!("invalidation after a set arrived within {took:?}");
    writer.kill(APP, &token).await.expect("kill");
    let took = within(Duration::from_secs(2), async || {
        reader.get(APP, &token).await.expect("get").is_none()
    })
    .await;
    println!("invalidation after a kill arrived within {took:?}");
    assert!(reader.cache_stats().expect("on").invalidations >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_and_rust_caches_invalidate_each_other() {
    let server = RedisServer::start();
    let rs = cached_store(&server, 60, 100).await;
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0,"cachetime":60}}"#,
        server.port()
    ));
    let node_get = |node: &mut NodePeer, token: &str| -> Value {
        serde_json::from_str(
            &node
                .call("get", &json!({"app": APP, "token": token}).to_string())
                .expect("node get"),
        )
        .expect("json")
    };
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    // Both cache the session.
    rs.get(APP, &token).await.expect("get");
    assert_eq!(node_get(&mut node, &token)["r"], json!(2));
    assert_eq!(
        node_get(&mut node, &token)["r"],
        json!(2),
        "node serves from its cache"
    );
    // A Node set invalidates our cache.
    node.call(
        "set",
        &json!({"app": APP, "token": token, "d": {"by": "node"}}).to_string(),
    )
    .expect("node set");
    within(Duration::from_secs(2), async || {
        rs.get(APP, &token)
            .await
            .expect("get")
            .and_then(|s| s.get::<String>("by").expect("a typed read"))
            .as_deref()
            == Some("node")
    })
    .await;
    // Our set invalidates Node's cache.
    node_get(&mut node, &token);
    rs.set(APP, &token, &json!({"by": "rust"}))
        .await
        .expect("set");
    let started = Instant::now();
    loop {
        if node_get(&mut node, &token)["d"]["by"] == json!("rust") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "node cache still stale"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_subscription_drops_the_cache_and_resubscribes() {
    let server = RedisServer::start();
    let rs = cached_store(&server, 60, 100).await;
    let writer = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let token = rs
        .create(APP, "u", "1", CreateOptions::default())
        .await
        .expect("create");
    rs.get(APP, &token).await.expect("get");
    assert_eq!(rs.cache_len(), 1);
    let flushes = rs.cache_stats().expect("on").flushes;
    let reply = server
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .expect("CLIENT KILL");
    assert!(reply.starts_with(":1"), "one subscriber killed: {reply}");
    within(Duration::from_secs(3), async || {
        rs.cache_stats().expect("on").flushes >= flushes + 2
    })
    .await;
    assert_eq!(rs.cache_len(), 0, "the whole cache was dropped");
    // Resubscribed: a later write elsewhere still invalidates.
    rs.get(APP, &token).await.expect("get");
    within(Duration::from_secs(3), async || {
        rs.cache_len() == 1 || {
            rs.get(APP, &token).await.expect("get");
            false
        }
    })
    .await;
    writer
        .set(APP, &token, &json!({"after": true}))
        .await
        .expect("set");
    within(Duration::from_secs(2), async || {
        rs.get(APP, &token)
            .await
            .expect("get")
            .and_then(|s| s.get::<bool>("after").expect("a typed read"))
            == Some(true)
    })
    .await;
}
