//! Slot moves at volume. CI runs one 2000-slot reshard at 100k sessions (about a minute);
//! the nightly-sized run (`#[ignore]`, minutes) adds a baseline and a move back. Run it with
//!
//! ```sh
//! cargo test -p redis-sessions --test cluster_volume -- --ignored --nocapture
//! RS_VOLUME_SESSIONS=1000000 RS_VOLUME_SHARDS=240 cargo test … # other sizes
//! ```
//!
//! A 3-master cluster holds `RS_VOLUME_SESSIONS` sessions (default 100 000) in
//! `RS_VOLUME_SHARDS` shards (default 60); a model-checked load of creates, gets and sets
//! runs while `redis-cli --cluster reshard` moves 2000 slots with its default pipeline
//! (10 keys per MIGRATE), then 2000 slots back with `--cluster-pipeline 1000`. A prober per
//! shard creates a session and reads one, in turn, every 20 ms (× shards / 60): the longest a read waited for an
//! answer (through failed reads, or one slow one) is how long that shard was out while
//! its slot moved. Printed per
//! move: time taken, calls and failed calls of the load, the longest outage of any shard
//! (and how many shards were out more than 1 s); at the end, every acknowledged write is
//! read back (asserted: none lost).

use futures_util::StreamExt;
use redis_sessions::{CreateOptions, KeyLayout, Options, RedisSessions};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::failover::{Load, SessionClient};
use test_support::faults::node_id;

const APP: &str = "volume";
const LOAD_APP: &str = "live";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
struct Library(RedisSessions);

impl SessionClient for Library {
    async fn create(&self, id: String, n: i64) -> Option<String> {
        let options = CreateOptions::default().data(json!({ "n": n }));
        self.0.create(LOAD_APP, &id, "10.0.0.1", options).await.ok()
    }

    async fn set(&self, token: String, n: i64) -> bool {
        matches!(
            self.0.set(LOAD_APP, &token, &json!({ "n": n })).await,
            Ok(Some(_))
        )
    }

    async fn get(&self, token: String) -> Result<Option<(String, Option<i64>)>, ()> {
        match self.0.get(LOAD_APP, &token).await {
            Ok(session) => {
                Ok(session.map(|s| (s.id.clone(), s.get::<i64>("n").expect("a typed read"))))
            }
            Err(_) => Err(()),
        }
    }
}

/// Per shard: since when its probe has failed (None while it answers), and the longest
/// time a read waited for a successful answer (from the first read of a failed run, or
/// the read's own send time) since the last reset.
#[derive(Default, Clone)]
struct Probe {
    failing_since: Option<Instant>,
    longest: Duration,
    reads: u64,
    failed: u64,
    /// The error of the first failed read of the longest outage.
    error: Option<String>,
    current_error: Option<String>,
}

async fn reshard(seed: u16, from: String, to: String, slots: u32, pipeline: Option<u32>) {
    let status = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(test_support::cli_binary());
        cmd.args(["--cluster", "reshard", &format!("127.0.0.1:{seed}")])
            .args(["--cluster-from", &from, "--cluster-to", &to])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"]);
        if let Some(pipeline) = pipeline {
            cmd.args(["--cluster-pipeline", &pipeline.to_string()]);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    })
    .await
    .expect("join")
    .expect("redis-cli");
    assert!(status.success(), "redis-cli --cluster reshard failed");
}

/// A move: its name, the masters it moves slots from and to, and redis-cli's pipeline
/// (`None`: redis-cli's default of 10 keys per MIGRATE). `from == to` is a 10 s pause: the
/// baseline of failures and outages with nothing moving.
type Move = (&'static str, usize, usize, Option<u32>);

/// The nightly-sized run: a baseline, 2000 slots there with the default pipeline, 2000
/// back with a large one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "volume run: minutes; see the file's header for the command"]
async fn slot_moves_at_volume() {
    let sessions = env_or("RS_VOLUME_SESSIONS", 100_000);
    let shards = env_or("RS_VOLUME_SHARDS", 60) as u16;
    volume_run(
        sessions,
        shards,
        &[
            ("no move (10 s baseline)", 0, 0, None),
            ("reshard 2000 slots 0→1, default pipeline (10)", 0, 1, None),
            (
                "reshard 2000 slots 1→0, --cluster-pipeline 1000",
                1,
                0,
                Some(1000),
            ),
        ],
    )
    .await;
}

/// CI's share of the volume run (about a minute): 100k sessions in 60 shards, one
/// 2000-slot reshard with redis-cli's defaults under the model-checked load; every
/// acknowledged write is read back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_at_100k_sessions_loses_nothing() {
    volume_run(
        100_000,
        60,
        &[("reshard 2000 slots 0→1, default pipeline (10)", 0, 1, None)],
    )
    .await;
}

async fn volume_run(sessions: u64, shards: u16, moves: &[Move]) {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster");
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .key_layout(KeyLayout::Sharded { shards })
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect");
    let filled = Instant::now();
    // One token per shard (a token's first two characters name its shard), for the probes.
    let per_shard: Arc<Mutex<std::collections::BTreeMap<String, (String, String)>>> =
        Arc::default();
    futures_util::stream::iter(0..sessions)
        .for_each_concurrent(128, |i| {
            let (rs, per_shard) = (rs.clone(), per_shard.clone());
            async move {
                // A create that times out (a busy machine) is tried again: the fill only
                // needs about `sessions` sessions.
                let mut tries = 0;
                let token = loop {
                    let id = format!("user{i}");
                    match rs
                        .create(APP, &id, "10.0.0.1", CreateOptions::default())
                        .await
                    {
                        Ok(token) => break token,
                        Err(err) => {
                            tries += 1;
                            assert!(tries < 5, "fill: {err}");
                        }
                    }
                };
                let marker = token[..2].to_owned();
                per_shard
                    .lock()
                    .expect("lock")
                    .entry(marker)
                    .or_insert((token, format!("user{i}")));
            }
        })
        .await;
    let probes_tokens: Vec<(String, String)> =
        per_shard.lock().expect("lock").values().cloned().collect();
    println!(
        "{sessions} sessions in {shards} shards ({} probed) in {:.0?}; keys per master: {:?}",
        probes_tokens.len(),
        filled.elapsed(),
        cluster
            .masters()
            .iter()
            .map(|n| n.command(&["DBSIZE"]).unwrap_or_default().trim().to_owned())
            .collect::<Vec<_>>()
    );

    // The price of more shards: an app-wide call asks every shard.
    let timed = Instant::now();
    for _ in 0..20 {
        rs.activity(APP, Duration::from_secs(3600))
            .await
            .expect("activity");
    }
    let activity_ms = timed.elapsed().as_secs_f64() * 1000.0 / 20.0;
    println!("app-wide calls over {shards} shards: activity {activity_ms:.1} ms");

    let stop = Arc::new(AtomicBool::new(false));
    let probes: Arc<Mutex<Vec<Probe>>> =
        Arc::new(Mutex::new(vec![Probe::default(); probes_tokens.len()]));
    let mut probers = Vec::new();
    // The probes together make about 3000 calls a second, whatever the shard count (a
    // prober per shard every 20 ms at 60 shards), so that they measure the slots, not a
    // client they saturate.
    let probe_pause = Duration::from_millis(20 * (u64::from(shards) / 60).max(1));
    for (i, (token, id)) in probes_tokens.into_iter().enumerate() {
        let (rs, stop, probes) = (rs.clone(), stop.clone(), probes.clone());
        probers.push(tokio::spawn(async move {
            let mut probe_round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A create (a new key beside the shard's indexes: what a slot on the move
                // refuses longest) and a get of an existing session, in turn.
                let sent = Instant::now();
                let create = probe_round.is_multiple_of(2);
                probe_round += 1;
                let answer = tokio::time::timeout(Duration::from_secs(5), async {
                    if create {
                        rs.create(APP, &id, "10.0.0.1", CreateOptions::default())
                            .await
                            .map(|_| true)
                    } else {
                        rs.get(APP, &token).await.map(|s| s.is_some())
                    }
                })
                .await;
                let error = match answer {
                    Ok(Ok(true)) => None,
                    Ok(Ok(false)) => Some("session not found".to_owned()),
                    Ok(Err(err)) => Some(err.to_string()),
                    Err(_) => Some("no answer within 5 s".to_owned()),
                };
                {
                    let mut all = probes.lock().expect("lock");
                    let p = &mut all[i];
                    p.reads += 1;
                    match error {
                        // The shard was out from the first read that got no answer (or
                        // this one, when it was slow) until this answer.
                        None => {
                            let out = p.failing_since.take().unwrap_or(sent).elapsed();
                            if out > p.longest {
                                p.longest = out;
                                p.error = p.current_error.take();
                            }
                        }
                        Some(err) => {
                            p.failed += 1;
                            if p.failing_since.is_none() {
                                p.failing_since = Some(sent);
                                p.current_error = Some(err);
                            }
                        }
                    }
                }
                tokio::time::sleep(probe_pause).await;
            }
        }));
    }
    let client = Library(rs.clone());
    let load = Load::start(&client, "v", 16, Duration::from_millis(1));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ids: Vec<String> = cluster.masters().iter().map(node_id).collect();
    let seed = cluster.nodes[0].port();
    for &(name, from, to, pipeline) in moves {
        for p in probes.lock().expect("lock").iter_mut() {
            *p = Probe::default();
        }
        let (calls_before, failed_before) = load.calls_so_far();
        let started = Instant::now();
        if from == to {
            tokio::time::sleep(Duration::from_secs(10)).await;
        } else {
            reshard(seed, ids[from].clone(), ids[to].clone(), 2000, pipeline).await;
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (calls, failed) = load.calls_so_far();
        let snapshot: Vec<Probe> = probes.lock().expect("lock").clone();
        let (reads, failed_reads) = snapshot
            .iter()
            .fold((0, 0), |(r, f), p| (r + p.reads, f + p.failed));
        let worst_error = snapshot
            .iter()
            .max_by_key(|p| p.longest)
            .and_then(|p| p.error.clone());
        let outages: Vec<Duration> = snapshot
            .iter()
            .map(|p| {
                p.longest
                    .max(p.failing_since.map_or(Duration::ZERO, |s| s.elapsed()))
            })
            .collect();
        let longest = outages.iter().max().copied().unwrap_or_default();
        let over_1s = outages
            .iter()
            .filter(|d| **d > Duration::from_secs(1))
            .count();
        let (calls, failed) = (calls - calls_before, failed - failed_before);
        println!(
            "{name}: {took:.1?}, {calls} calls, {failed} failed ({:.3}%), longest shard \
             outage {longest:.2?}, {over_1s} of {} shards out > 1 s",
            100.0 * failed as f64 / calls.max(1) as f64,
            outages.len()
        );
        println!(
            "  probes: {reads} reads, {failed_reads} failed; the longest outage's first \
             error: {worst_error:?}; store's connection so far: {:?}",
            rs.connection_stats()
        );
    }
    // After the moves the cluster is settled: no call of the load may fail any more.
    let (calls_before, failed_before) = load.calls_so_far();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (calls, failed) = load.calls_so_far();
    println!(
        "after the moves: {} calls in 2 s, {} failed",
        calls - calls_before,
        failed - failed_before
    );
    assert_eq!(failed, failed_before, "calls failed after the moves");
    stop.store(true, Ordering::Relaxed);
    for p in probers {
        let _ = p.await;
    }
    let record = load.finish().await;
    let (lost_sessions, lost_values) = record.lost(&client).await;
    println!(
        "load: {} acknowledged sessions, {lost_sessions} lost, {lost_values} sets lost",
        record.sessions.len()
    );
    assert_eq!(
        (lost_sessions, lost_values),
        (0, 0),
        "acknowledged writes lost"
    );
}
