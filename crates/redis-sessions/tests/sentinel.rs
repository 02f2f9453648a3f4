//! Redis Sentinel: a master, a replica and three sentinels on loopback. Two stores (one
//! with durable writes, one without) find the master through the sentinels and carry a
//! steady load of creates and sets while the master is SIGKILLed, the replica promoted,
//! and the old master brought back as a replica — [`FAILOVERS`] times, with no restart
//! of the stores. Every acknowledged create and set is checked against a model at the
//! end; with durable writes none may be lost. A Node process (npm redis-sessions@4.0.0)
//! pointed at the final master reads what the stores wrote.
//!
//! The test prints, per failover, the failed calls and the seconds until calls succeeded
//! again, and the writes lost without durable writes (the README quotes these figures).

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::node::NodePeer;
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const APP: &str = "failover";
const FAILOVERS: usize = 5;
const WORKERS: usize = 3;

/// What one store's callers did: the model of acknowledged writes and every call's
/// outcome in time.
#[derive(Default)]
struct Record {
    /// token → (id, values its `n` may hold: the last acknowledged one, and any tried
    /// after it whose outcome is unknown).
    sessions: BTreeMap<String, (String, BTreeSet<i64>)>,
    /// (started, ok) of every call.
    calls: Vec<(Instant, bool)>,
}

struct Load {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(rs: &RedisSessions, prefix: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let tasks = (0..WORKERS)
            .map(|w| {
                let (rs, stop, record) = (rs.clone(), stop.clone(), record.clone());
                tokio::spawn(async move {
                    let mut mine: Vec<String> = Vec::new();
                    let mut i: i64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let started = Instant::now();
                        let ok = if i % 2 == 1 || mine.is_empty() {
                            let id = format!("{prefix}{w}-{i}");
                            let created = rs
                                .create(
                                    APP,
                                    &id,
                                    "10.0.0.1",
                                    CreateOptions::default().data(json!({ "n": i })),
                                )
                                .await;
                            match created {
                                Ok(token) => {
                                    mine.push(token.clone());
                                    let values = BTreeSet::from([i]);
                                    record.lock().unwrap().sessions.insert(token, (id, values));
                                    true
                                }
                                Err(_) => false,
                            }
                        } else {
                            let token = mine[(i as usize / 2) % mine.len()].clone();
                            let result = rs.set(APP, &token, &json!({ "n": i })).await;
                            let mut rec = record.lock().unwrap();
                            let values = &mut rec.sessions.get_mut(&token).expect("mine").1;
                            match result {
                                Ok(Some(_)) => {
                                    values.clear();
                                    values.insert(i);
                                    true
                                }
                                // Unknown outcome: the value may or may not be there.
                                _ => {
                                    values.insert(i);
                                    false
                                }
                            }
                        };
                        record.lock().unwrap().calls.push((started, ok));
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            record,
            tasks,
        }
    }

    /// Failed calls started at or after `since`, and how long after `since` the first
    /// call that succeeded was started — None while none has.
    fn since(&self, since: Instant) -> (usize, Option<Duration>) {
        let rec = self.record.lock().unwrap();
        let after: Vec<&(Instant, bool)> = rec.calls.iter().filter(|(t, _)| *t >= since).collect();
        let failed = after.iter().filter(|(_, ok)| !ok).count();
        let first_ok = after
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(t, _)| *t - since)
            .min();
        (failed, first_ok)
    }

    /// Waits until a call started after `since` succeeded (at most `limit`).
    async fn recovered(&self, since: Instant, limit: Duration) -> (usize, Duration) {
        let started = Instant::now();
        loop {
            if let (_, Some(took)) = self.since(since) {
                // Count the failures up to the recovery, not those of later moments.
                let rec = self.record.lock().unwrap();
                let failed = rec
                    .calls
                    .iter()
                    .filter(|(t, ok)| *t >= since && *t <= since + took && !ok)
                    .count();
                return (failed, took);
            }
            assert!(
                started.elapsed() < limit,
                "no call succeeded within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("worker");
        }
        Arc::try_unwrap(self.record)
            .ok()
            .expect("workers ended")
            .into_inner()
            .unwrap()
    }
}

/// Acknowledged sessions missing, or whose `n` is none of the values it may hold.
async fn lost(rs: &RedisSessions, record: &Record) -> (usize, usize) {
    let (mut sessions, mut values) = (0, 0);
    for (token, (id, allowed)) in &record.sessions {
        match rs.get(APP, token).await.expect("get after the failovers") {
            None => sessions += 1,
            Some(s) => {
                assert_eq!(&s.id, id);
                if !allowed.contains(&s.get::<i64>("n").unwrap_or(-1)) {
                    values += 1;
                }
            }
        }
    }
    (sessions, values)
}

fn options(set: &SentinelSet) -> Options {
    Options::default()
        .sentinel(set.addrs(), MASTER_NAME)
        .wipe(0)
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
    let cached = RedisSessions::connect(options(&set).cache(60, 100))
        .await
        .expect("connect cached");
    let watched = plain
        .create(APP, "watched", "10.0.0.1", CreateOptions::default())
        .await
        .expect("create");
    let plain_load = Load::start(&plain, "p");
    let durable_load = Load::start(&durable, "d");

    for round in 1..=FAILOVERS {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let killed_at = Instant::now();
        let (old, promotion) =
            tokio::task::block_in_place(|| set.kill_master(Duration::from_secs(20)));
        let old = 1 - old;
        let (plain_failed, plain_took) = plain_load
            .recovered(killed_at, Duration::from_secs(15))
            .await;
        // Durable writes need a replica again: the old master comes back as one.
        tokio::task::block_in_place(|| set.bring_back(old, Duration::from_secs(20)));
        let (durable_failed, durable_took) = durable_load
            .recovered(killed_at, Duration::from_secs(15))
            .await;
        // A write by another process after the failover reaches the cached process.
        plain
            .set(APP, &watched, &json!({ "round": round }))
            .await
            .expect("set after recovery")
            .expect("live");
        let asked = Instant::now();
        loop {
            let seen = cached.get(APP, &watched).await.ok().flatten();
            if seen.and_then(|s| s.get::<i64>("round")) == Some(round as i64) {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "the cache kept a stale session"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "failover {round}: promoted after {:.1} s; without durable writes {plain_failed} failed calls, \
             calls succeed again after {:.1} s; with durable writes {durable_failed} failed calls, {:.1} s \
             (including the old master's return as replica)",
            promotion.as_secs_f64(),
            plain_took.as_secs_f64(),
            durable_took.as_secs_f64()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plain_record = plain_load.finish().await;
    let durable_record = durable_load.finish().await;

    let (lost_sessions, lost_values) = lost(&durable, &durable_record).await;
    let (plain_lost_sessions, plain_lost_values) = lost(&plain, &plain_record).await;
    println!(
        "after {FAILOVERS} failovers: with durable writes {} acknowledged sessions, {lost_sessions} lost, \
         {lost_values} sets lost; without: {} sessions, {plain_lost_sessions} lost, {plain_lost_values} sets lost",
        durable_record.sessions.len(),
        plain_record.sessions.len()
    );
    assert!(durable_record.sessions.len() > 50, "the load ran");
    let stats = cached.cache_stats().expect("cache on");
    assert!(
        stats.flushes >= FAILOVERS as u64,
        "the subscription was lost and renewed: {stats:?}"
    );
    assert!(stats.invalidations > 0, "invalidations arrived: {stats:?}");
    assert_eq!((lost_sessions, lost_values), (0, 0), "durable writes lost");

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
