//! Redis Sentinel, a master paused just past its replacement: a master, a replica and
//! three sentinels on loopback; the master is SIGSTOPped until the sentinels have promoted
//! the replica, then let go a moment later. It comes back answering as a master (the
//! sentinels demote it only some seconds later), so a store that missed the switch would
//! write to it — acknowledged writes that vanish when it is demoted. Two stores (one with
//! durable writes) carry a steady load throughout; the test asserts that both move to the
//! promoted master within 1 s of the promotion, and reads back every acknowledged write at
//! the end: at most a handful lost without durable writes, none with them.
//!
//! Each round prints the time from the promotion to each store's switch and what was lost
//! (the README quotes these figures).

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::failover::{self, Load, SessionClient};
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const APP: &str = "pause";
const WORKERS: usize = 3;

/// How long after the promotion the paused master is let go, per round.
const PAUSES_PAST_PROMOTION: [Duration; 2] =
    [Duration::from_millis(200), Duration::from_millis(1000)];

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

/// Waits (at most 10 s) until `store` uses the server on `port`; how long that took
/// after `since` (zero when it already did).
async fn switched(store: &RedisSessions, port: u16, since: Instant) -> Duration {
    let want = format!("127.0.0.1:{port}");
    loop {
        let nodes = store.nodes(Duration::from_millis(200)).await;
        if nodes.first().is_some_and(|n| n.node == want) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "the store still uses {nodes:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_paused_past_its_promotion_is_left_at_once() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let plain = RedisSessions::connect(options(&set))
        .await
        .expect("connect");
    let durable = RedisSessions::connect(options(&set).min_replicas(1, Duration::from_millis(500)))
        .await
        .expect("connect durable");
    let pause = Duration::from_millis(5);
    let plain_load = Load::start(&Library(plain.clone()), "p", WORKERS, pause);
    let durable_load = Load::start(&Library(durable.clone()), "d", WORKERS, pause);

    for (round, past) in PAUSES_PAST_PROMOTION.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let failover = tokio::task::block_in_place(|| set.pause_master(Duration::from_secs(20)));
        let promoted = Instant::now();
        let old = 1 - failover.new_master;
        let new_port = set.servers[failover.new_master].port();
        let watch = |store: &RedisSessions| {
            let store = store.clone();
            tokio::spawn(async move { switched(&store, new_port, promoted).await })
        };
        let (plain_switch, durable_switch) = (watch(&plain), watch(&durable));
        tokio::time::sleep(*past).await;
        set.resume(old);
        let plain_switch = plain_switch.await.expect("the store switched");
        let durable_switch = durable_switch.await.expect("the store switched");
        println!(
            "round {}: master paused, promoted after {:.1} s, let go {:.1} s later; stores on \
             the new master {:.2} s (plain) and {:.2} s (durable) after the promotion was \
             seen",
            round + 1,
            failover.promoted_after.as_secs_f64(),
            past.as_secs_f64(),
            plain_switch.as_secs_f64(),
            durable_switch.as_secs_f64()
        );
        assert!(
            plain_switch <= Duration::from_secs(1) && durable_switch <= Duration::from_secs(1),
            "a store went on with the old master after the promotion"
        );
        // The sentinels demote the old master and it syncs from the new one: what it
        // acknowledged meanwhile is gone from then on.
        let port = new_port;
        tokio::task::block_in_place(|| set.wait_until_settled(port, Duration::from_secs(40)));
        assert!(set.is_replica(old), "the old master was demoted");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (plain, durable) = (Library(plain), Library(durable));
    let (plain_record, durable_record) = (plain_load.finish().await, durable_load.finish().await);
    let losses = failover::losses((&plain_record, &plain), (&durable_record, &durable)).await;
    println!("after {} pauses: {losses}", PAUSES_PAST_PROMOTION.len());
    assert!(losses.durable.0 > 50 && losses.plain.0 > 50, "the load ran");
    assert_eq!(
        (losses.durable.1, losses.durable.2),
        (0, 0),
        "durable writes lost"
    );
    assert!(
        losses.plain.1 + losses.plain.2 <= 5,
        "more than a handful of acknowledged writes lost without durable writes: {losses}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_started_during_a_failover_waits_for_the_promotion() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let old = set.master_index();
    set.servers[old].stop();
    let started = Instant::now();
    let store = RedisSessions::connect(options(&set)).await;
    let waited = started.elapsed();
    let store = store.expect("the store waited for the promotion instead of failing");
    let token = store
        .create(APP, "started", "10.0.0.1", CreateOptions::default())
        .await
        .expect("create on the promoted master");
    assert!(store.get(APP, &token).await.expect("get").is_some());
    let nodes = store.nodes(Duration::from_millis(500)).await;
    let promoted = format!("127.0.0.1:{}", set.servers[1 - old].port());
    assert_eq!(
        nodes.first().map(|n| n.node.as_str()),
        Some(promoted.as_str())
    );
    println!(
        "a store started just after the master's death connected after {:.1} s (the promotion)",
        waited.as_secs_f64()
    );
}
