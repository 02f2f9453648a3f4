//! High availability through the REST server: durable writes (`RS_MIN_REPLICAS`) succeed
//! while the replica confirms them and answer `503 notReplicated` when it does not, while
//! reads go on; with `RS_SENTINELS` the server follows failovers without a restart.

mod common;

use common::{client, create, json, RedisServer, Server};
use std::time::Duration;
use test_support::failover::{self, Load, SessionClient};
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const APP: &str = "app";
/// Failovers through the REST servers (the library's test does five).
const FAILOVERS: usize = 3;

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

/// The REST server as the failover load's client.
#[derive(Clone)]
struct Rest {
    http: reqwest::Client,
    base: String,
}

impl Rest {
    fn new(server: &Server) -> Rest {
        // A short deadline: a call stuck on a dead master counts as failed, as a user's would.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("client");
        Rest {
            http,
            base: server.base(),
        }
    }
}

impl SessionClient for Rest {
    async fn create(&self, id: String, n: i64) -> Option<String> {
        let url = format!("{}/{APP}/create/{id}?ip=127.0.0.1&ttl=3600", self.base);
        let reply = self
            .http
            .put(url)
            .json(&serde_json::json!({ "n": n }))
            .send()
            .await;
        let (status, body) = json(reply.ok()?).await;
        (status == 200).then(|| body["token"].as_str().map(str::to_string))?
    }

    async fn set(&self, token: String, n: i64) -> bool {
        let url = format!("{}/{APP}/set/{token}", self.base);
        let reply = self
            .http
            .post(url)
            .json(&serde_json::json!({ "n": n }))
            .send()
            .await;
        match reply {
            Ok(reply) => json(reply).await.0 == 200,
            Err(_) => false,
        }
    }

    async fn get(&self, token: String) -> Result<Option<(String, Option<i64>)>, ()> {
        let url = format!("{}/{APP}/get/{token}", self.base);
        let (status, body) = json(self.http.get(url).send().await.map_err(|_| ())?).await;
        match status {
            200 if body == serde_json::json!({}) => Ok(None),
            200 => Ok(Some((
                body["id"].as_str().unwrap_or_default().to_string(),
                body["d"]["n"].as_i64(),
            ))),
            _ => Err(()),
        }
    }
}

/// Two REST servers (one with durable writes) follow Sentinel failovers without a
/// restart while a steady mix of creates, gets and sets goes through each: per failover
/// the failed calls and the time until calls succeed again are printed; no write the
/// durable server acknowledged is lost.
#[tokio::test(flavor = "multi_thread")]
async fn the_server_follows_sentinel_failovers_under_load() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let sentinels = set.addrs().join(",");
    let sentinel_env = [
        ("RS_SENTINELS", sentinels.as_str()),
        ("RS_SENTINEL_MASTER", MASTER_NAME),
    ];
    let plain = Server::start(&sentinel_env, &[]);
    let durable_env = [
        sentinel_env[0],
        sentinel_env[1],
        ("RS_MIN_REPLICAS", "1"),
        ("RS_MIN_REPLICAS_TIMEOUT_MS", "500"),
    ];
    let durable = Server::start(&durable_env, &[]);
    let (plain, durable) = (Rest::new(&plain), Rest::new(&durable));
    let pause = Duration::from_millis(10);
    let plain_load = Load::start(&plain, "p", 2, pause);
    let durable_load = Load::start(&durable, "d", 2, pause);

    for round in 1..=FAILOVERS {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let figures = failover::fail_over(&mut set, &plain_load, &durable_load).await;
        println!("REST failover {round}: {figures}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (plain_record, durable_record) = (plain_load.finish().await, durable_load.finish().await);
    let losses = failover::losses((&plain_record, &plain), (&durable_record, &durable)).await;
    println!("REST, after {FAILOVERS} failovers: {losses}");
    assert!(losses.durable.0 > 20, "the load ran");
    assert!(losses.plain.0 > 20, "the load ran");
    assert_eq!(
        (losses.durable.1, losses.durable.2),
        (0, 0),
        "durable writes lost"
    );
}
