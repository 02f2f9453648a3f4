//! Redis Sentinel: a master, a replica and three sentinels on loopback. Two stores (one
//! with durable writes, one without) find the master through the sentinels and carry a
//! steady load of creates, gets and sets while the master is SIGKILLed, the replica promoted,
//! and the old master brought back as a replica — [`FAILOVERS`] times, with no restart
//! of the stores. Every acknowledged create and set is checked against a model at the
//! end; with durable writes none may be lost. A Node process (npm redis-sessions@4.0.0)
//! pointed at the final master reads what the stores wrote.
//!
//! The test prints, per failover, the failed calls and the seconds until calls succeeded
//! again, and the writes lost without durable writes (the README quotes these figures).

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::failover::{self, Load, SessionClient};
use test_support::node::NodePeer;
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const APP: &str = "failover";
const FAILOVERS: usize = 5;
const WORKERS: usize = 3;

/// The library as the load's client.
#[derive(Clone)]
struct Library(RedisSessions);

impl SessionClient for Library {
    async fn create(&self, id: String, n: i64) -> Option<String> {
        let options = CreateOptions::default().data(json!({ "n": n }));
        self.0.create(APP, &id, "10.0.0.1", options).await.ok()
    }

    async fn set(&self, token: String, n: i64) -> bool {
        matches!(
            self.0.set(APP, &token, &json!({ "n": n })).await,
            Ok(Some(_))
        )
    }

    async fn get(&self, token: String) -> Result<Option<(String, Option<i64>)>, ()> {
        match self.0.get(APP, &token).await {
            Ok(session) => {
                Ok(session.map(|s| (s.id.clone(), s.get::<i64>("n").expect("a typed read"))))
            }
            Err(_) => Err(()),
        }
    }
}

fn options(set: &SentinelSet) -> Options {
    Options::default()
        .sentinel(set.addrs(), MASTER_NAME)
        .wipe(Duration::ZERO)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failovers_are_followed_and_durable_writes_survive_them() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let plain = RedisSessions::connect(options(&set))
        .await
        .expect("connect");
    let durable = RedisSessions::connect(options(&set).min_replicas(1, Duration::from_millis(500)))
        .await
        .expect("connect durable");
    // A third process with the cache on: its subscription must follow the master too,
    // or it would go on serving what it cached before a failover.
    let cached = RedisSessions::connect(options(&set).cache(Duration::from_secs(60), 100))
        .await
        .expect("connect cached");
    let watched = plain
        .create(APP, "watched", "10.0.0.1", CreateOptions::default())
        .await
        .expect("create");
    let pause = Duration::from_millis(5);
    let plain_load = Load::start(&Library(plain.clone()), "p", WORKERS, pause);
    let durable_load = Load::start(&Library(durable.clone()), "d", WORKERS, pause);

    for round in 1..=FAILOVERS {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let figures = failover::fail_over(&mut set, &plain_load, &durable_load).await;
        // A write by another process after the failover reaches the cached process.
        plain
            .set(APP, &watched, &json!({ "round": round }))
            .await
            .expect("set after recovery")
            .expect("live");
        let asked = Instant::now();
        loop {
            let seen = cached.get(APP, &watched).await.ok().flatten();
            if seen.and_then(|s| s.get::<i64>("round").expect("a typed read")) == Some(round as i64)
            {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "the cache kept a stale session"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("failover {round}: {figures}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (plain, durable) = (Library(plain), Library(durable));
    let (plain_record, durable_record) = (plain_load.finish().await, durable_load.finish().await);
    let losses = failover::losses((&plain_record, &plain), (&durable_record, &durable)).await;
    println!("after {FAILOVERS} failovers: {losses}");
    assert!(losses.durable.0 > 50, "the load ran");
    let stats = cached.cache_stats().expect("cache on");
    assert!(
        stats.flushes >= FAILOVERS as u64,
        "the subscription was lost and renewed: {stats:?}"
    );
    assert!(stats.invalidations > 0, "invalidations arrived: {stats:?}");
    assert_eq!(
        (losses.durable.1, losses.durable.2),
        (0, 0),
        "durable writes lost"
    );

    // A Node process on the master the sentinels name now reads our sessions.
    let master = &set.servers[set.master_index()];
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        master.port()
    ));
    let mut checked = 0;
    for (token, (id, allowed)) in durable_record.sessions.iter().take(20) {
        let reply = node
            .call("get", &json!({ "app": APP, "token": token }).to_string())
            .expect("node get");
        let session: serde_json::Value = serde_json::from_str(&reply).expect("json");
        assert_eq!(session["id"], json!(id), "{reply}");
        assert!(
            allowed.contains(&session["d"]["n"].as_i64().unwrap_or(-1)),
            "{reply}"
        );
        checked += 1;
    }
    assert_eq!(checked, 20);
}
