//! The sharded layout on a real Redis Cluster: spread over masters, failover, resharding.
//! (The behaviour suite runs on a cluster too: see behaviour.rs.)

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::RedisServer;

const APP: &str = "bigapp";

async fn store(cluster: &RedisCluster) -> RedisSessions {
    RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect to the cluster")
}

fn info_field(node: &RedisServer, section: &str, field: &str) -> u64 {
    let text = node.command(&["INFO", section]).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().trim_start_matches("calls=").parse().ok())
        .unwrap_or(0)
}

fn dbsize(node: &RedisServer) -> u64 {
    node.command(&["DBSIZE"])
        .ok()
        .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
        .unwrap_or(0)
}

fn assert_even(label: &str, counts: &[u64]) {
    let total: u64 = counts.iter().sum();
    let share = total as f64 / counts.len() as f64;
    println!("{label}: {counts:?} (even share {share:.0})");
    for &c in counts {
        let off = (c as f64 - share).abs() / share;
        assert!(
            off <= 0.10,
            "{label}: {counts:?} is not within ±10% of {share:.0}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_app_spreads_over_every_master() {
    let cluster = RedisCluster::start(3, 0);
    let rs = store(&cluster).await;
    let mut tokens = Vec::new();
    for chunk in 0..10 {
        let creates = (chunk * 1000..(chunk + 1) * 1000).map(|i| {
            let rs = rs.clone();
            async move {
                rs.create(
                    APP,
                    &format!("user{i}"),
                    "10.0.0.1",
                    CreateOptions::default(),
                )
                .await
                .expect("create")
            }
        });
        tokens.extend(futures_util::future::join_all(creates).await);
    }
    // Session hashes per master (the keys of the per-shard indexes are a few hundred).
    let keys: Vec<u64> = cluster.masters().iter().map(dbsize).collect();
    assert_even("keys per master after 10000 sessions of one app", &keys);

    for node in cluster.masters() {
        let _ = node.command(&["CONFIG", "RESETSTAT"]);
    }
    for (i, t) in tokens.iter().enumerate() {
        match i % 3 {
            0 => assert!(rs.get(APP, t).await.expect("get").is_some()),
            1 => assert!(rs
                .set(APP, t, &json!({"n": i}))
                .await
                .expect("set")
                .is_some()),
            _ => assert!(rs.kill(APP, t).await.expect("kill")),
        }
    }
    let calls: Vec<u64> = cluster
        .masters()
        .iter()
        .map(|n| info_field(n, "commandstats", "cmdstat_evalsha"))
        .collect();
    assert_eq!(
        calls.iter().sum::<u64>(),
        10_000,
        "one EVALSHA per operation"
    );
    assert_even("EVALSHA calls per master of a mixed workload", &calls);
    // Fan-out operations combine the shards.
    assert_eq!(
        rs.activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        6_667
    );
    assert_eq!(
        rs.soapp(APP, Duration::from_secs(600))
            .await
            .expect("soapp")
            .len(),
        6_667
    );
    assert_eq!(rs.killall(APP).await.expect("killall"), 6_667);
    assert_eq!(
        rs.activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
}

/// A bounded load of creates and gets that records what was acknowledged.
struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<String>>>,
    failures: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(rs: &RedisSessions, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|w| {
                let (rs, stop, acked, failures, ok) = (
                    rs.clone(),
                    stop.clone(),
                    acknowledged.clone(),
                    failures.clone(),
                    ok.clone(),
                );
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) && i < 200_000 {
                        i += 1;
                        match rs
                            .create(APP, &format!("w{w}u{i}"), "1", CreateOptions::default())
                            .await
                        {
                            Ok(token) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                                if rs
                                    .get(APP, &token)
                                    .await
                                    .map(|s| s.is_some())
                                    .unwrap_or(false)
                                {
                                    ok.fetch_add(1, Ordering::SeqCst);
                                } else {
                                    failures.fetch_add(1, Ordering::SeqCst);
                                }
                                acked.lock().expect("lock").push(token);
                            }
                            Err(err) => {
                                eprintln!("create failed: {err:?}");
                                failures.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            acknowledged,
            failures,
            ok,
            tasks,
        }
    }

    async fn finish(self) -> (Vec<String>, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        let acked = self.acknowledged.lock().expect("lock").clone();
        (
            acked,
            self.ok.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }
}

async fn assert_all_readable(rs: &RedisSessions, tokens: &[String]) {
    let mut missing = 0;
    for t in tokens {
        if rs.get(APP, t).await.expect("get after the event").is_none() {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged sessions lost",
        tokens.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_fails_over_and_no_acknowledged_session_is_lost() {
    let mut cluster = RedisCluster::start(3, 1);
    let rs = store(&cluster).await;
    let load = Load::start(&rs, 4);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.nodes[0].terminate();
    let killed_at = Instant::now();
    // Wait for a replica to take over, then for every running node to agree.
    tokio::task::block_in_place(|| {
        while !cluster.nodes[3..].iter().any(|n| {
            n.command(&["INFO", "replication"])
                .map(|r| r.contains("role:master"))
                .unwrap_or(false)
        }) {
            assert!(killed_at.elapsed() < Duration::from_secs(30), "no failover");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster.wait_until_ok(Duration::from_secs(30))
    });
    println!(
        "cluster ok again {:?} after the master was killed",
        killed_at.elapsed()
    );
    // Operations succeed again after the failover.
    let started = Instant::now();
    loop {
        if let Ok(token) = rs.create(APP, "after", "1", CreateOptions::default()).await {
            assert!(rs.get(APP, &token).await.expect("get").is_some());
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no recovery after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, ok, failures) = load.finish().await;
    println!("failover load: {ok} calls succeeded, {failures} failed while the master was away");
    assert!(acked.len() > 100, "the load ran: {} sessions", acked.len());
    assert_all_readable(&rs, &acked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resharding_under_load_loses_nothing() {
    let cluster = RedisCluster::start(3, 0);
    let rs = store(&cluster).await;
    let load = Load::start(&rs, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // redis-cli blocks; the load goes on on the runtime's other workers.
    let moved = tokio::task::block_in_place(|| {
        test_support::faults::reshard(
            &cluster.nodes[0],
            &cluster.nodes[0],
            &cluster.nodes[1],
            1500,
        )
    });
    assert!(moved, "reshard failed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (acked, ok, failures) = load.finish().await;
    println!("reshard load: {ok} calls succeeded, {failures} failed");
    assert_eq!(
        failures, 0,
        "no operation failed beyond the client's retries"
    );
    assert!(acked.len() > 100, "the load ran: {} sessions", acked.len());
    assert_all_readable(&rs, &acked).await;
}

/// Moving from one Redis onto the cluster: old tokens keep working, new ones go to the
/// cluster, "log out everywhere" reaches both.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_moves_onto_the_cluster_without_logging_anybody_out() {
    let single = RedisServer::start();
    let old = RedisSessions::connect(Options::default().url(single.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let before = old
        .create(APP, "alice", "1", CreateOptions::default())
        .await
        .expect("create");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutover_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .expect("clock");
    let cluster = RedisCluster::start(3, 0);
    let new = store(&cluster).await;
    let cutover = std::time::UNIX_EPOCH + Duration::from_millis(cutover_ms);
    let sessions = RedisSessions::migrating(old.clone(), new.clone(), cutover);
    let after = sessions
        .create(APP, "alice", "2", CreateOptions::default())
        .await
        .expect("create");
    assert!(
        sessions.get(APP, &before).await.expect("get").is_some(),
        "old token still served"
    );
    assert!(sessions.get(APP, &after).await.expect("get").is_some());
    assert!(
        new.get(APP, &after).await.expect("get").is_some(),
        "new sessions live in the cluster"
    );
    assert!(old.get(APP, &after).await.expect("get").is_none());
    sessions
        .set(APP, &before, &json!({"kept": true}))
        .await
        .expect("set")
        .expect("live");
    assert_eq!(sessions.soid(APP, "alice").await.expect("soid").len(), 2);
    assert_eq!(sessions.killsoid(APP, "alice").await.expect("killsoid"), 2);
    assert!(sessions.get(APP, &before).await.expect("get").is_none());
    assert!(sessions.get(APP, &after).await.expect("get").is_none());
}
