//! A REST deployment moves under load, with nobody logged out (`RS_MIGRATE_*`; CLUSTER.md,
//! "Changing the shard count" and "Moving from one Redis"): from one Redis (the
//! Node-compatible layout) onto a Redis Cluster, and from 60 to 120 shards on a cluster.
//! The old server and a migrating one serve side by side until the cut-over, then the
//! migrating one alone. Every answer is checked against what each writer was acknowledged.

mod common;

use common::{client, json, RedisServer, Server};
use redis_sessions::{device_handle, token_created_ms};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::cluster::RedisCluster;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// token -> (id, data, lives in the old Redis)
type Sessions = HashMap<String, (String, BTreeMap<String, Value>, bool)>;

fn expected_activity(sessions: &Sessions) -> u64 {
    let mut per_side: [BTreeSet<&str>; 2] = Default::default();
    for (id, _, old) in sessions.values() {
        per_side[usize::from(*old)].insert(id);
    }
    (per_side[0].len() + per_side[1].len()) as u64
}

fn data(session: &Value) -> BTreeMap<String, Value> {
    serde_json::from_value(session["d"].clone()).unwrap_or_default()
}

/// One writer with its own app over HTTP: `servers()` says which servers serve now (the
/// balancer's pool).
async fn writer(
    n: u64,
    servers: impl Fn() -> Vec<String>,
    old_base: String,
    cutover_ms: u64,
    until: Instant,
) -> (u64, Sessions) {
    let http = client();
    let app = format!("app{n}");
    let mut sessions = Sessions::new();
    let mut rng = common::Rng(n * 7919 + 1);
    let mut calls = 0;
    while Instant::now() < until {
        let pool = servers();
        let base = rng.pick(&pool).clone();
        let id = format!("u{}", rng.below(24));
        let token = (!sessions.is_empty()).then(|| {
            let at = rng.below(sessions.len());
            sessions.keys().nth(at).cloned().unwrap_or_default()
        });
        calls += 1;
        match (rng.below(100), token) {
            (0..=29, _) | (_, None) => {
                let (status, body) = json(
                    http.put(format!("{base}/{app}/create/{id}?ip=10.0.0.1&ttl=3600"))
                        .send()
                        .await
                        .expect("create"),
                )
                .await;
                assert_eq!(status, 200, "{app}: create {body}");
                let token = body["token"].as_str().expect("token").to_owned();
                // The old store holds the sessions created before the cut-over. Near it, ask
                // the old server (it serves the old store alone): a create picks its store a
                // moment before its token gets its time.
                let created = token_created_ms(&token).expect("time");
                let old = if created.abs_diff(cutover_ms) < 1000 {
                    let (_, listed) = json(
                        http.get(format!("{old_base}/{app}/soid/{id}"))
                            .send()
                            .await
                            .expect("soid"),
                    )
                    .await;
                    let handle = device_handle(&token);
                    listed["sessions"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|s| s["handle"] == json!(handle)))
                } else {
                    created < cutover_ms
                };
                sessions.insert(token, (id, BTreeMap::new(), old));
            }
            (30..=54, Some(token)) => {
                let key = format!("k{}", rng.below(3));
                let (status, body) = json(
                    http.post(format!("{base}/{app}/set/{token}"))
                        .json(&json!({ key.clone(): calls }))
                        .send()
                        .await
                        .expect("set"),
                )
                .await;
                assert_eq!(status, 200, "{app}: set {body}");
                let entry = sessions.get_mut(&token).expect("known");
                entry.1.insert(key, json!(calls));
                assert_eq!(data(&body), entry.1, "{app}: a user was logged out: {body}");
            }
            (55..=79, Some(token)) => {
                let (status, body) = json(
                    http.get(format!("{base}/{app}/get/{token}"))
                        .send()
                        .await
                        .expect("get"),
                )
                .await;
                assert_eq!(status, 200, "{app}: get {body}");
                assert!(body.get("id").is_some(), "{app}: a user was logged out");
                assert_eq!(data(&body), sessions[&token].1, "{app}: get");
            }
            (80..=83, Some(token)) => {
                let (status, body) = json(
                    http.delete(format!("{base}/{app}/kill/{token}"))
                        .send()
                        .await
                        .expect("kill"),
                )
                .await;
                assert_eq!((status, body), (200, json!({"kill": 1})), "{app}: kill");
                sessions.remove(&token);
            }
            (84..=88, _) => {
                let (status, body) = json(
                    http.get(format!("{base}/{app}/soid/{id}"))
                        .send()
                        .await
                        .expect("soid"),
                )
                .await;
                assert_eq!(status, 200);
                let want = sessions.values().filter(|(i, _, _)| *i == id).count();
                let listed = body["sessions"].as_array().map_or(0, Vec::len);
                assert_eq!(listed, want, "{app}: soid {id}");
            }
            (89..=89, _) => {
                let (status, body) = json(
                    http.delete(format!("{base}/{app}/killsoid/{id}"))
                        .send()
                        .await
                        .expect("killsoid"),
                )
                .await;
                let want = sessions.values().filter(|(i, _, _)| *i == id).count();
                assert_eq!((status, body), (200, json!({ "kill": want })), "{app}");
                sessions.retain(|_, (i, _, _)| *i != id);
            }
            (90..=95, _) => {
                let (status, body) = json(
                    http.get(format!("{base}/{app}/activity?dt=3600"))
                        .send()
                        .await
                        .expect("activity"),
                )
                .await;
                assert_eq!(status, 200);
                assert_eq!(
                    body["activity"],
                    json!(expected_activity(&sessions)),
                    "{app}: activity"
                );
            }
            _ => {
                let (status, body) = json(
                    http.get(format!("{base}/{app}/soapp?dt=3600"))
                        .send()
                        .await
                        .expect("soapp"),
                )
                .await;
                assert_eq!(status, 200);
                let listed = body["sessions"].as_array().map_or(0, Vec::len);
                assert_eq!(listed, sessions.len(), "{app}: soapp");
            }
        }
    }
    (calls, sessions)
}

/// Runs the move under load: `old` serves the old store alone, `migrating` the migrating
/// settings (cut-over `cutover_ms`). Until 1 s before the cut-over both serve (a rolling
/// deploy behind one balancer), then the migrating one alone. Returns the calls made and
/// the live sessions at the end in the old and the new store, each read back.
async fn move_under_load(old: &Server, migrating: &Server, cutover_ms: u64) -> (u64, u64, u64) {
    let (health_status, health) = json(
        client()
            .get(migrating.url("/health"))
            .send()
            .await
            .expect("health"),
    )
    .await;
    assert_eq!(health_status, 200, "{health}");
    assert_eq!(health["migration"]["cutoverMs"], json!(cutover_ms));
    assert_eq!(health["migration"]["cutOver"], json!(false));

    let both = vec![old.base(), migrating.base()];
    let only_new = vec![migrating.base()];
    let switch = Instant::now() + Duration::from_millis(cutover_ms.saturating_sub(now_ms() + 1000));
    let until = Instant::now() + Duration::from_millis(cutover_ms.saturating_sub(now_ms()) + 4000);
    let writers = (0..6).map(|n| {
        let (both, only_new) = (both.clone(), only_new.clone());
        let old_base = old.base();
        tokio::spawn(async move {
            let pool = move || {
                if Instant::now() < switch {
                    both.clone()
                } else {
                    only_new.clone()
                }
            };
            writer(n, pool, old_base, cutover_ms, until).await
        })
    });
    let mut results = Vec::new();
    for w in writers {
        results.push(w.await.expect("writer"));
    }

    // Every acknowledged session is still there, with its data.
    let http = client();
    let (mut calls, mut on_old, mut on_new) = (0, 0, 0);
    for (n, (c, sessions)) in results.iter().enumerate() {
        calls += c;
        let app = format!("app{n}");
        for (token, (_, d, old)) in sessions {
            let (status, body) = json(
                http.get(migrating.url(&format!("/{app}/get/{token}")))
                    .send()
                    .await
                    .expect("get"),
            )
            .await;
            assert_eq!(status, 200);
            assert!(body.get("id").is_some(), "{app}: a user was logged out");
            assert_eq!(&data(&body), d);
            *(if *old { &mut on_old } else { &mut on_new }) += 1;
        }
    }
    assert!(on_old > 0 && on_new > 0, "both stores were in use");
    let (_, health) = json(
        http.get(migrating.url("/health"))
            .send()
            .await
            .expect("health"),
    )
    .await;
    assert_eq!(health["status"], json!("ok"));
    assert_eq!(health["migration"]["cutOver"], json!(true));
    (calls, on_old, on_new)
}

/// Issue 24's "the REST server runs a migration": one Redis (Node layout) onto a cluster.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_moves_from_one_redis_onto_a_cluster_and_nobody_is_logged_out() {
    let redis = RedisServer::start();
    let cluster = RedisCluster::start(3, 0);
    let old = Server::with_redis(&redis, &[]);
    let start = Instant::now();
    // Room for the migrating server to start (slow on a loaded machine) before the cut-over.
    let cutover_ms = now_ms() + 5000;
    let (seeds, cutover, from) = (
        cluster.urls().join(","),
        cutover_ms.to_string(),
        redis.url(),
    );
    let migrating = Server::start(
        &[
            ("RS_REDIS_CLUSTER", seeds.as_str()),
            ("RS_MIGRATE_FROM_URL", from.as_str()),
            ("RS_MIGRATE_CUTOVER", cutover.as_str()),
        ],
        &[],
    );
    let (calls, on_old, on_new) = move_under_load(&old, &migrating, cutover_ms).await;
    println!(
        "REST move from one Redis onto a 3-master cluster: {calls} calls in {:.1} s, 0 failed; \
         live at the end: {on_old} sessions in the old Redis, {on_new} in the cluster",
        start.elapsed().as_secs_f64()
    );
}

/// Issue 21 item 5: a REST deployment moves from 60 to 120 shards on the same cluster
/// (namespace `rs` to `rs2`): old tokens keep answering on the new deployment, soid and
/// killsoid see both namespaces.
#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_changes_its_shard_count_and_nobody_is_logged_out() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = cluster.urls().join(",");
    let old = Server::start(&[("RS_REDIS_CLUSTER", seeds.as_str())], &[]);
    let start = Instant::now();
    let cutover_ms = now_ms() + 5000;
    let cutover = cutover_ms.to_string();
    let migrating = Server::start(
        &[
            ("RS_REDIS_CLUSTER", seeds.as_str()),
            ("RS_NAMESPACE", "rs2"),
            ("RS_SHARDS", "120"),
            ("RS_MIGRATE_FROM_CLUSTER", seeds.as_str()),
            ("RS_MIGRATE_FROM_NAMESPACE", "rs"),
            ("RS_MIGRATE_FROM_SHARDS", "60"),
            ("RS_MIGRATE_CUTOVER", cutover.as_str()),
        ],
        &[],
    );
    let (calls, on_old, on_new) = move_under_load(&old, &migrating, cutover_ms).await;
    println!(
        "REST shard-count change 60 -> 120: {calls} calls in {:.1} s, 0 failed; live at the \
         end: {on_old} sessions in the old namespace, {on_new} in the new one",
        start.elapsed().as_secs_f64()
    );
}

/// Half a migration, or one on the in-memory store, is refused at start with a message
/// naming the setting; an old store that cannot be reached is named as such.
#[test]
fn incomplete_migrations_are_refused_at_start() {
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = common::command(test_support::free_port());
        cmd.envs(env.iter().copied())
            .args(args)
            .stderr(std::process::Stdio::piped());
        let out = cmd.output().expect("run rest-sessions");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let redis = RedisServer::start();
    let port = redis.port().to_string();
    let here = [("RS_REDISPORT", port.as_str())];
    let message = run(&[here[0], ("RS_MIGRATE_CUTOVER", "1796083200000")], &[]);
    assert!(message.contains("RS_MIGRATE_FROM_URL"), "{message}");
    let message = run(
        &[here[0], ("RS_MIGRATE_FROM_URL", "redis://127.0.0.1:1/")],
        &[],
    );
    assert!(message.contains("without RS_MIGRATE_CUTOVER"), "{message}");
    let message = run(
        &[("RS_MIGRATE_CUTOVER", "1796083200000")],
        &["--store", "memory"],
    );
    assert!(message.contains("needs the Redis store"), "{message}");
    let message = run(&[("RS_MIGRATE_CUTOVER", "next week")], &[]);
    assert!(message.contains("RFC 3339"), "{message}");
    let message = run(
        &[
            here[0],
            ("RS_MIGRATE_CUTOVER", "2026-12-01T00:00:00Z"),
            ("RS_MIGRATE_FROM_URL", "redis://:pw@127.0.0.1:1/"),
        ],
        &[],
    );
    assert!(
        message.contains("the store sessions move out of") && !message.contains(":pw@"),
        "{message}"
    );
}
