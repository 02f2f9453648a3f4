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
            Ok(session) => {
                Ok(session.map(|s| (s.id.clone(), s.get::<i64>("n").expect("a typed read"))))
            }
            Err(_) => Err(()),
        }
    }
}

/// The value of one character of a token's shard marker (the token alphabet's order).
fn marker_digit(c: u8) -> usize {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789";
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .unwrap_or(usize::MAX / 2)
}

fn options(cluster: &RedisCluster, namespace: &str) -> Options {
    Options::default()
        .cluster(cluster.urls())
        .namespace(namespace)
        .wipe(Duration::ZERO)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_master_loses_no_durable_write() {
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = RedisCluster::start_with_node_timeout(3, 1, NODE_TIMEOUT_MS);
        cluster.wait_replicas_linked(Duration::from_secs(30));
        cluster
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
    // Without durable writes, and with a response timeout longer than the stall: every
    // write that waits on the stalled master is answered when it resumes (the widest loss
    // window; CLUSTER.md explains it).
    let patient = RedisSessions::connect(
        options(&cluster, "patient").response_timeout(STALL + Duration::from_secs(1)),
    )
    .await
    .expect("connect patient");
    // A process with the cache on, and a session of the master about to stall (shards
    // 0..20 of 60 live in its slots 0..5460), read once so that it is cached.
    let cached =
        RedisSessions::connect(options(&cluster, "plain").cache(Duration::from_secs(60), 1000))
            .await
            .expect("connect cached");
    let mut watched = None;
    for i in 0..100 {
        let token = plain
            .create(APP, &format!("watched{i}"), "1", CreateOptions::default())
            .await
            .expect("create");
        let shard = 61 * marker_digit(token.as_bytes()[0]) + marker_digit(token.as_bytes()[1]);
        if shard < 20 {
            watched = Some(token);
            break;
        }
    }
    let watched = watched.expect("a session on the first master");
    plain
        .set(APP, &watched, &json!({"n": 1}))
        .await
        .expect("set")
        .expect("live");
    let seen = cached.get(APP, &watched).await.expect("get").expect("live");
    assert_eq!(seen.get::<i64>("n").expect("a typed read"), Some(1));
    let (plain, durable, patient) = (Library(plain), Library(durable), Library(patient));
    let plain_load = Load::start(&plain, "p", WORKERS, Duration::from_millis(2));
    let durable_load = Load::start(&durable, "d", WORKERS, Duration::from_millis(2));
    let patient_load = Load::start(&patient, "q", WORKERS, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let victim = &cluster.nodes[0];
    assert_eq!(role(victim), "master");
    let mut stall = Stall::start(victim);
    let stalled_at = Instant::now();
    // The replica takes over while the old master is still frozen (the stall lasts STALL,
    // longer only when the failover, a write through the new master and the cache check
    // take longer).
    let promoted = tokio::task::block_in_place(|| {
        while !cluster.nodes[3..].iter().any(|n| role(n) == "master") {
            assert!(
                stalled_at.elapsed() < Duration::from_secs(15),
                "no failover within 15 s of the stall; roles {:?}",
                cluster.nodes.iter().map(role).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stalled_at.elapsed()
    });
    // A write to the watched session through the new master: the cached process must
    // stop serving the old value (its subscription to the frozen master is silent).
    let written = loop {
        if let Ok(Some(_)) = plain.0.set(APP, &watched, &json!({"n": 2})).await {
            break Instant::now();
        }
        assert!(
            stalled_at.elapsed() < Duration::from_secs(20),
            "no write through the new master"
        );
    };
    let write_back = written - stalled_at;
    // For 1.5 s after that write, the old master still frozen, the cached process must not
    // serve the old value (it may fail meanwhile: its own connection may not have left the
    // frozen master yet); then the stall ends (at STALL at the earliest), and it must read
    // the new value.
    let mut stale_until = None;
    let mut fresh_after = None;
    while written.elapsed() < Duration::from_millis(1500) && fresh_after.is_none() {
        match cached.get(APP, &watched).await {
            Ok(Some(s)) if s.get::<i64>("n").expect("a typed read") == Some(2) => {
                fresh_after = Some(written.elapsed())
            }
            Ok(Some(_)) => stale_until = Some(written.elapsed()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(STALL.saturating_sub(stalled_at.elapsed())).await;
    stall.resume();
    let stalled_for = stalled_at.elapsed();
    let fresh_after = match fresh_after {
        Some(after) => after,
        None => loop {
            if let Ok(Some(s)) = cached.get(APP, &watched).await {
                if s.get::<i64>("n").expect("a typed read") == Some(2) {
                    break written.elapsed();
                }
            }
            assert!(
                written.elapsed() < Duration::from_secs(15),
                "the cached process did not read the new value within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        },
    };
    println!(
        "failover {:.1} s into the stall; a write to the stalled master's shard succeeded \
         {:.1} s into the stall; the cached process read the new value {:.2} s after it was \
         written, and served the old one until {stale_until:.2?} after",
        promoted.as_secs_f64(),
        write_back.as_secs_f64(),
        fresh_after.as_secs_f64()
    );
    assert!(
        stale_until.is_none_or(|d| d < Duration::from_millis(1400)),
        "the cache served the value from before the failover for {stale_until:?}"
    );
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
    let patient_record = patient_load.finish().await;
    let calls = |r: &failover::Record| {
        let failed = r.calls.iter().filter(|c| !c.ok).count();
        (r.calls.len(), failed)
    };
    let losses = failover::losses((&plain_record, &plain), (&durable_record, &durable)).await;
    println!(
        "stall of a master {:.1} s, node-timeout {NODE_TIMEOUT_MS} ms: old master a replica \
         again {:.1} s after the stall began; without durable writes {:?} calls (total, \
         failed), {plain_failed} failed before calls succeeded again after {:.1} s; with \
         durable writes {:?} calls, {durable_failed} failed before writes were acknowledged \
         again after {:.1} s; {losses}",
        stalled_for.as_secs_f64(),
        demoted.as_secs_f64(),
        calls(&plain_record),
        plain_back.as_secs_f64(),
        calls(&durable_record),
        durable_back.as_secs_f64(),
    );
    let (patient_sessions, patient_values) = patient_record.lost(&patient).await;
    println!(
        "with a response timeout of {:?} (longer than the stall), no durable writes: {} \
         acknowledged sessions, {patient_sessions} lost, {patient_values} sets lost",
        STALL + Duration::from_secs(1),
        patient_record.sessions.len()
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
