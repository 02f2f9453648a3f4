//! The REST server in a mixed fleet: sessions shared with the npm `redis-sessions@4.0.0`
//! module on the same Redis; and the server on a Redis Cluster.

mod common;

use common::{client, create, json, RedisServer, Server};
use serde_json::{json, Value};
use test_support::cluster::RedisCluster;
use test_support::node::NodePeer;

const APP: &str = "fleetapp";

#[tokio::test(flavor = "multi_thread")]
async fn sessions_cross_between_rest_and_the_node_module() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        redis.port()
    ));
    let http = client();

    // REST creates and sets → Node reads.
    let token = create(&http, &server, APP, "php%40user.com").await;
    let (status, _) = json(
        http.post(server.url(&format!("/{APP}/set/{token}")))
            .json(&json!({"cart": 2, "lang": "fr"}))
            .send()
            .await
            .expect("set"),
    )
    .await;
    assert_eq!(status, 200);
    let reply = node
        .call("get", &json!({"app": APP, "token": token}).to_string())
        .expect("node get");
    let theirs: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(theirs["id"], json!("php@user.com"));
    assert_eq!(theirs["d"], json!({"cart": 2, "lang": "fr"}));

    // Node creates → REST reads; Node kills → REST sees nothing.
    let reply = node
        .call(
            "create",
            &json!({"app": APP, "id": "node-user", "ip": "10.0.0.9", "d": {"x": true}}).to_string(),
        )
        .expect("node create");
    let created: Value = serde_json::from_str(&reply).expect("json");
    let node_token = created["token"].as_str().expect("token").to_owned();
    let (status, body) = json(
        http.get(server.url(&format!("/{APP}/get/{node_token}")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!("node-user"));
    assert_eq!(body["ip"], json!("10.0.0.9"));
    assert_eq!(body["d"], json!({"x": true}));
    node.call(
        "kill",
        &json!({"app": APP, "token": node_token}).to_string(),
    )
    .expect("node kill");
    let (_, body) = json(
        http.get(server.url(&format!("/{APP}/get/{node_token}")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(body, json!({}));
    // Both count the same users.
    let (_, activity) = json(
        http.get(server.url(&format!("/{APP}/activity?dt=600")))
            .send()
            .await
            .expect("activity"),
    )
    .await;
    let theirs = node
        .call(
            "activity",
            &json!({"app": APP, "deltaTime": 600}).to_string(),
        )
        .expect("node activity");
    assert_eq!(
        activity,
        serde_json::from_str::<Value>(&theirs).expect("json")
    );
    assert_eq!(activity, json!({"activity": 1}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_runs_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = cluster.urls().join(",");
    let server = Server::start(&[("RS_REDIS_CLUSTER", seeds.as_str())], &[]);
    let http = client();
    let mut tokens = Vec::new();
    for i in 0..30 {
        tokens.push(create(&http, &server, APP, &format!("user{}", i % 10)).await);
    }
    let (status, body) = json(
        http.get(server.url(&format!("/{APP}/get/{}", tokens[0])))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!("user0"));
    let (_, soid) = json(
        http.get(server.url(&format!("/{APP}/soid/user3")))
            .send()
            .await
            .expect("soid"),
    )
    .await;
    assert_eq!(soid["sessions"].as_array().map(Vec::len), Some(3));
    let (_, activity) = json(
        http.get(server.url(&format!("/{APP}/activity?dt=600")))
            .send()
            .await
            .expect("activity"),
    )
    .await;
    assert_eq!(activity, json!({"activity": 10}));
    let (_, killed) = json(
        http.delete(server.url(&format!("/{APP}/killall")))
            .send()
            .await
            .expect("killall"),
    )
    .await;
    assert_eq!(killed, json!({"kill": 30}));
    // The sessions had spread over the masters: each served part of the killall.
    for node in cluster.masters() {
        let stats = node.command(&["INFO", "commandstats"]).unwrap_or_default();
        assert!(stats.contains("cmdstat_evalsha"), "a master got no calls");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_is_served_and_counted_in_metrics() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[("RS_CACHETIME", "60")]);
    let http = client();
    let token = create(&http, &server, APP, "cached").await;
    for expected_r in [1, 1, 1] {
        let (_, body) = json(
            http.get(server.url(&format!("/{APP}/get/{token}")))
                .send()
                .await
                .expect("get"),
        )
        .await;
        assert_eq!(
            body["r"],
            json!(expected_r),
            "served from the cache: r stays"
        );
    }
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let hits = text
        .lines()
        .find(|l| l.starts_with("rest_sessions_cache_events_total") && l.contains("kind=\"hits\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(hits, Some(2), "metrics:\n{text}");
}
