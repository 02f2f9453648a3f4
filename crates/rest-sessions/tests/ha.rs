//! High availability through the REST server: durable writes (`RS_MIN_REPLICAS`) succeed
//! while the replica confirms them and answer `503 notReplicated` when it does not, while
//! reads go on; with `RS_SENTINELS` the server follows a failover without a restart.

mod common;

use common::{client, create, json, RedisServer, Server};

#[tokio::test(flavor = "multi_thread")]
async fn unconfirmed_writes_answer_503_not_replicated() {
    let master = RedisServer::start();
    let mut replica = RedisServer::start_replica_of(&master);
    let server = Server::with_redis(
        &master,
        &[
            ("RS_MIN_REPLICAS", "1"),
            ("RS_MIN_REPLICAS_TIMEOUT_MS", "300"),
        ],
    );
    let http = client();
    let token = create(&http, &server, "app", "alice").await;
    let hash = format!("rs:app:{token}");
    assert!(
        replica
            .command(&["EXISTS", &hash])
            .unwrap_or_default()
            .starts_with(":1"),
        "acknowledged, so on the replica"
    );

    replica.stop();
    let (status, body) = json(
        http.post(server.url(&format!("/app/set/{token}")))
            .json(&serde_json::json!({ "a": 1 }))
            .send()
            .await
            .expect("set"),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "notReplicated", "{body}");
    // Reads need no replica.
    let (status, body) = json(
        http.get(server.url(&format!("/app/get/{token}")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], "alice");
}

/// The server follows a Sentinel failover without a restart: sessions written before it
/// are read after it, and calls succeed again once the replica is promoted.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_follows_a_sentinel_failover() {
    use std::time::{Duration, Instant};
    let mut set = tokio::task::spawn_blocking(test_support::sentinel::SentinelSet::start)
        .await
        .expect("sentinels");
    let sentinels = set.addrs().join(",");
    let server = Server::start(
        &[
            ("RS_SENTINELS", sentinels.as_str()),
            ("RS_SENTINEL_MASTER", test_support::sentinel::MASTER_NAME),
        ],
        &[],
    );
    let http = client();
    let token = create(&http, &server, "app", "alice").await;
    let master = set.master_index();
    set.servers[1 - master].wait_link_up(Duration::from_secs(5));
    // The create reached the replica before the master dies (no durable writes here).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_at = Instant::now();
    tokio::task::block_in_place(|| set.kill_master(Duration::from_secs(20)));
    let mut failed = 0;
    let recovered = loop {
        let reply = http
            .get(server.url(&format!("/app/get/{token}")))
            .send()
            .await;
        match reply {
            Ok(r) if r.status() == 200 => {
                let (_, body) = json(r).await;
                assert_eq!(body["id"], "alice", "{body}");
                break killed_at.elapsed();
            }
            _ => failed += 1,
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "not recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "REST failover: {failed} failed gets, answering again {:.1} s after the kill",
        recovered.as_secs_f64()
    );
    // Writes go to the new master too.
    create(&http, &server, "app", "bob").await;
}
