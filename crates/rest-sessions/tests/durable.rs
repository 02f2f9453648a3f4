//! Durable writes through the REST server (`RS_MIN_REPLICAS`): writes succeed while the
//! replica confirms them, and answer `503 notReplicated` when it does not, while reads go on.

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
