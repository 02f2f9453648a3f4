//! A cluster master stalled past `cluster-node-timeout` (SIGSTOP 5 s, node-timeout 2 s:
//! a GC-like pause, VM steal) under a steady load of creates, gets and sets, through two
//! stores: one with durable writes (`min_replicas(1, …)`), one without. Its replica takes
//! over; when the old master resumes it still runs the requests queued on its sockets and
//! answers them, then learns it was replaced and becomes a replica, discarding them.
//!
//! Every acknowledged create and set is read back afterwards. With durable writes none may
//! be lost: the old master's WAIT finds no replica (its replica is the new master), so
//! those writes are never acknowledged. Without them the test prints what was lost (the
//! window CLUSTER.md describes).

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::cluster::{role, RedisCluster, Stall};
use test_support::failover::{self, Kind, Load, SessionClient};

const APP: &str = "stall";
const WORKERS: usize = 6;
const NODE_TIMEOUT_MS: u64 = 2000;
const STALL: Duration = Duration::from_secs(5);

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
            Ok(session) => Ok(session.map(|s| (s.id.clone(), s.get::<i64>("n")))),
            Err(_) => Err(()),
        }
    }
}

fn options(cluster: &RedisCluster, namespace: &str) -> Options {
    Options::default()
        .cluster(cluster.urls())
        .namespace(namespace)
        .wipe(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_master_loses_no_durable_write() {
    let cluster = tokio::task::spawn_blocking(|| {
        RedisCluster::start_with_node_timeout(3, 1, NODE_TIMEOUT_MS)
    })
    .await
    .expect("cluster");
    let plain = RedisSessions::connect(options(&cluster, "plain"))
        .await
        .expect("connect");
    let durable = RedisSessions::connect(
        options(&cluster, "durable").min_replicas(1, Duration::from_millis(500)),
    )
    .await
    .expect("connect durable");
    let (plain, durable) = (Library(plain), Library(durable));
    let plain_load = Load::start(&plain, "p", WORKERS, Duration::from_millis(2));
    let durable_load = Load::start(&durable, "d", WORKERS, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let victim = &cluster.nodes[0];
    assert_eq!(role(victim), "master");
    let mut stall = Stall::start(victim);
    let stalled_at = Instant::now();
    tokio::time::sleep(STALL).await;
    stall.resume();
    // The old master learns it was replaced and follows its former replica.
    let demoted = tokio::task::block_in_place(|| {
        let waiting = Instant::now();
        while role(victim) != "slave" {
            assert!(
                waiting.elapsed() < Duration::from_secs(20),
                "the stalled master was not replaced (is the stall longer than node-timeout?)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster.wait_until_ok(Duration::from_secs(20));
        stalled_at.elapsed()
    });
    let limit = Duration::from_secs(15);
    let (plain_failed, plain_back) = plain_load.recovered(stalled_at, Kind::ALL, limit).await;
    let (durable_failed, durable_back) = durable_load
        .recovered(stalled_at, Kind::WRITES, limit)
        .await;
    // The load goes on a while on the new topology.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let plain_record = plain_load.finish().await;
    let durable_record = durable_load.finish().await;
    let calls = |r: &failover::Record| {
        let failed = r.calls.iter().filter(|c| !c.ok).count();
        (r.calls.len(), failed)
    };
    let losses = failover::losses((&plain_record, &plain), (&durable_record, &durable)).await;
    println!(
        "stall {STALL:?} of a master, node-timeout {NODE_TIMEOUT_MS} ms: old master a replica \
         again {:.1} s after the stall began; without durable writes {:?} calls (total, \
         failed), {plain_failed} failed before calls succeeded again after {:.1} s; with \
         durable writes {:?} calls, {durable_failed} failed before writes were acknowledged \
         again after {:.1} s; {losses}",
        demoted.as_secs_f64(),
        calls(&plain_record),
        plain_back.as_secs_f64(),
        calls(&durable_record),
        durable_back.as_secs_f64(),
    );
    assert!(
        durable_record.sessions.len() > 100 && plain_record.sessions.len() > 100,
        "the loads ran"
    );
    assert_eq!(
        (losses.durable.1, losses.durable.2),
        (0, 0),
        "an acknowledged durable write was lost: {losses}"
    );
}
