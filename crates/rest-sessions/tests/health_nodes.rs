//! `/health` names the Redis nodes that do not answer (503 while any master is away), the
//! `redis` crate's own log records reach the server's log, and the store's connection
//! counters reach `/metrics` — against the real binary and real redis-servers.

mod common;

use common::{client, command, json, raw_request, Server};
use serde_json::json;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::{free_port, RedisServer};

/// The binary against a cluster, its log (text, `RUST_LOG=redis=debug,info`) in `log`.
fn start_on_cluster(cluster: &RedisCluster, log: &std::path::Path) -> (Child, u16) {
    let port = free_port();
    let file = std::fs::File::create(log).expect("log file");
    let mut child = command(port)
        .env("RS_REDIS_CLUSTER", cluster.urls().join(","))
        .env("RS_HEALTH_DETAIL", "true")
        .env("RUST_LOG", "info,redis=debug")
        .stdout(Stdio::from(file))
        .spawn()
        .expect("spawn rest-sessions");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        let ping = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if raw_request(port, ping).is_some_and(|reply| reply.ends_with("PONG")) {
            return (child, port);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("rest-sessions did not answer /ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_names_the_master_that_is_away_and_redis_logs_reach_the_log() {
    let mut cluster = RedisCluster::start(3, 0);
    let log = std::env::temp_dir().join(format!("rs-health-{}.log", std::process::id()));
    let (mut child, port) = start_on_cluster(&cluster, &log);
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    let (status, h) = json(http.get(format!("{base}/health")).send().await.unwrap()).await;
    assert_eq!(
        (status, &h["status"], &h["store"]),
        (200, &json!("ok"), &json!("redis"))
    );
    assert!(h.get("unreachable").is_none(), "{h}");
    // Every master the sessions are spread over, each answering (what the console shows).
    let mut listed: Vec<String> = h["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            assert_eq!(n["ok"], json!(true), "{n}");
            n["node"].as_str().unwrap().to_owned()
        })
        .collect();
    listed.sort();
    let masters = cluster.master_addresses();
    assert_eq!(listed, masters);

    let away = format!("127.0.0.1:{}", cluster.nodes[1].port());
    cluster.nodes[1].stop();
    // Calls on the dead master's slots fail (no replica takes over): counted.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..30 {
        let create = http
            .put(format!("{base}/app/create/user{i}?ip=127.0.0.1&ttl=3600"))
            .send();
        creates.spawn(create);
    }
    creates.join_all().await;
    let started = Instant::now();
    let health = loop {
        let (status, h) = json(http.get(format!("{base}/health")).send().await.unwrap()).await;
        if status == 503 {
            break h;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/health still {status} {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("health with a master away: {health}");
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["store"], "redis");
    assert!(health["message"].is_string());
    let unreachable = health["unreachable"].as_array().expect("unreachable list");
    let names: Vec<&str> = unreachable
        .iter()
        .map(|n| n["node"].as_str().expect("node name"))
        .collect();
    assert_eq!(names, vec![away.as_str()], "only the stopped master");
    assert!(unreachable[0]["error"].is_string());
    let down: Vec<&str> = health["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["ok"] == json!(false))
        .map(|n| n["node"].as_str().expect("node name"))
        .collect();
    assert_eq!(down, vec![away.as_str()], "the node list marks it too");

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("redis_sessions_redis_disconnects_total")
            || metrics.contains("redis_sessions_redis_timeouts_total"),
        "the store's connection counters in /metrics"
    );

    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(
        text.lines().any(|l| l.contains(" redis::")),
        "a record of the redis crate in the log:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_names_the_single_server_when_it_is_away() {
    let mut redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[("RS_HEALTH_DETAIL", "true")]);
    let http = client();
    redis.stop();
    let (status, h) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, 503, "{h}");
    assert_eq!(
        h["unreachable"][0]["node"],
        format!("127.0.0.1:{}", redis.port())
    );
    redis.restart();
    let started = Instant::now();
    loop {
        let (status, h) = json(http.get(server.url("/health")).send().await.unwrap()).await;
        if status == 200 {
            assert!(h.get("unreachable").is_none(), "{h}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/{app}/stats` on a cluster: the counts of the app, and each of the 60 shards with the
/// master that holds it (the console's spread over masters).
#[tokio::test(flavor = "multi_thread")]
async fn stats_spread_an_app_over_the_masters() {
    let cluster = RedisCluster::start(3, 0);
    let log = std::env::temp_dir().join(format!("rs-stats-{}.log", std::process::id()));
    let (mut child, port) = start_on_cluster(&cluster, &log);
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    for i in 0..90 {
        let url = format!("{base}/app/create/user{}?ip=127.0.0.1&ttl=3600", i % 45);
        assert_eq!(http.put(url).send().await.unwrap().status(), 200);
    }
    let (status, s) = json(http.get(format!("{base}/app/stats")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (&s["sessions"], &s["users"]),
        (&json!(90), &json!(45)),
        "{s}"
    );
    assert_eq!(s["windows"], json!([300, 3600, 86400]));
    assert_eq!(s["sessions_active"], json!([90, 90, 90]));
    assert_eq!(s["users_active"], json!([45, 45, 45]));
    let shards = s["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 60, "the sharded layout's 60 shards");
    let masters = cluster.master_addresses();
    let mut per_master = std::collections::BTreeMap::<String, u64>::new();
    for shard in shards {
        let node = shard["node"]
            .as_str()
            .expect("every shard names its master");
        assert!(masters.iter().any(|m| m == node), "{node} is no master");
        *per_master.entry(node.to_owned()).or_default() += shard["sessions"].as_u64().unwrap();
    }
    assert_eq!(per_master.len(), 3, "{per_master:?}");
    assert_eq!(per_master.values().sum::<u64>(), 90);
    let (status, s) = json(
        http.get(format!("{base}/app/stats?windows=60"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &s["sessions_active"]), (200, &json!([90])), "{s}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&log);
}
