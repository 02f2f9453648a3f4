//! The CLI against a 3-master Redis Cluster (the sharded layout: each master checks, mends
//! and counts the shards it owns) and through Sentinel (the master the sentinels name),
//! with the settings rest-sessions reads.

mod common;

use common::{counts, map, run};
use redis_sessions::{CreateOptions, KeyLayout, Options, RedisSessions};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use test_support::cluster::RedisCluster;
use test_support::sentinel::{SentinelSet, MASTER_NAME};
use test_support::RedisServer;

const NS: &str = "rs";
const SHARDS: u16 = 12;

/// The master holding the session `token` of `app`, and the session's key prefix
/// (`rs:{tag}:`).
fn locate<'a>(masters: &'a [RedisServer], app: &str, token: &str) -> (&'a RedisServer, String) {
    let suffix = format!("{app}:{token}");
    for node in masters {
        let keys = node.strings(&["KEYS", &format!("{NS}:*")]).expect("KEYS");
        if let Some(key) = keys.iter().find(|k| k.ends_with(&suffix)) {
            return (node, key[..key.len() - suffix.len()].to_owned());
        }
    }
    panic!("no master holds the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_cluster_namespace_is_found_and_mended_per_shard() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster");
    let env = vec![
        ("RS_REDIS_CLUSTER", cluster.urls().join(",")),
        ("RS_SHARDS", SHARDS.to_string()),
        ("RS_NAMESPACE", NS.to_owned()),
    ];
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .key_layout(KeyLayout::Sharded { shards: SHARDS })
            .namespace(NS)
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect");
    let mut sessions = Vec::new();
    for n in 0..30 {
        let id = format!("u{n}");
        let token = rs
            .create("shop", &id, "10.0.0.1", CreateOptions::default())
            .await
            .expect("create");
        sessions.push(("shop", id, token));
    }
    for n in 0..10 {
        let id = format!("b{n}");
        let token = rs
            .create("blog", &id, "10.0.0.2", CreateOptions::default())
            .await
            .expect("create");
        sessions.push(("blog", id, token));
    }

    // stats by app, master and shard.
    let stats = run(&env, &["--json", "stats"], "");
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let stats = stats.json();
    assert_eq!(stats["deployment"], "cluster");
    let apps: BTreeMap<String, (u64, u64)> = stats["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            (
                a["app"].as_str().expect("app").to_owned(),
                (
                    a["sessions"].as_u64().expect("n"),
                    a["users"].as_u64().expect("n"),
                ),
            )
        })
        .collect();
    assert_eq!(
        apps,
        BTreeMap::from([("blog".to_owned(), (10, 10)), ("shop".to_owned(), (30, 30))])
    );
    let masters = stats["masters"].as_array().expect("masters");
    assert_eq!(masters.len(), 3, "{stats}");
    let shard_sum: u64 = masters.iter().filter_map(|m| m["shards"].as_u64()).sum();
    assert_eq!(shard_sum, u64::from(SHARDS));
    let session_sum: u64 = masters.iter().filter_map(|m| m["sessions"].as_u64()).sum();
    assert_eq!(session_sum, 40);
    assert!(
        masters.iter().all(|m| m["sessions"].as_u64() > Some(0)),
        "{stats}"
    );
    assert_eq!(
        stats["shards"].as_array().map(Vec::len),
        Some(usize::from(SHARDS))
    );
    let table = run(&env, &["stats"], "").stdout;
    assert!(
        table.contains("MASTER") && table.contains("SHARDS"),
        "{table}"
    );

    // One break of each kind below, each on the first shop session of another master,
    // so that every master has something to find.
    let masters = cluster.masters();
    let mut by_master: Vec<Vec<usize>> = vec![Vec::new(); masters.len()];
    for (i, (app, _, token)) in sessions.iter().enumerate() {
        if *app == "shop" {
            let (node, _) = locate(masters, app, token);
            let m = masters
                .iter()
                .position(|n| n.port() == node.port())
                .expect("a master");
            by_master[m].push(i);
        }
    }
    assert!(by_master.iter().all(|v| v.len() >= 2), "{by_master:?}");
    let broken = [
        by_master[0][0],
        by_master[1][0],
        by_master[2][0],
        by_master[0][1],
    ];
    let key_of = |i: usize| {
        let (app, id, token) = &sessions[i];
        let (node, prefix) = locate(masters, app, token);
        (node, prefix, *app, id.clone(), token.clone())
    };
    // 1: the hash DELeted, its index entries left behind.
    let (node, prefix, app, _, token) = key_of(broken[0]);
    node.strings(&["DEL", &format!("{prefix}{app}:{token}")])
        .expect("del");
    // 2: the id missing from _users.
    let (node, prefix, app, id, _) = key_of(broken[1]);
    node.strings(&["ZREM", &format!("{prefix}{app}:_users"), &id])
        .expect("zrem");
    // 3: a SESSIONS score far from la + ttl.
    let (node, prefix, app, id, token) = key_of(broken[2]);
    node.strings(&[
        "ZINCRBY",
        &format!("{prefix}SESSIONS"),
        "500",
        &format!("{app}:{token}:{id}"),
    ])
    .expect("zincrby");
    // 4: d that is not JSON.
    let (node, prefix, app, _, token) = key_of(broken[3]);
    node.strings(&["HSET", &format!("{prefix}{app}:{token}"), "d", "{\"a\":"])
        .expect("hset");

    let healthy: Vec<usize> = (0..sessions.len())
        .filter(|i| !broken.contains(i))
        .collect();
    let snapshot = |i: usize| {
        let (node, prefix, app, _, token) = key_of(i);
        node.strings(&["HGETALL", &format!("{prefix}{app}:{token}")])
            .expect("hgetall")
    };
    let before: Vec<Vec<String>> = healthy.iter().map(|&i| snapshot(i)).collect();

    let check = run(&env, &["--json", "check"], "");
    assert_eq!(check.code, 1, "{} {}", check.stdout, check.stderr);
    let report = check.json();
    assert_eq!(report["deployment"], "cluster");
    assert_eq!(
        counts(&report["findings"]),
        map(&[
            ("corrupt_data", 1),
            ("expiry_mismatch", 1),
            ("missing_from_users", 1),
            ("orphan_expiry_member", 1),
            ("orphan_sessions_member", 1),
            ("stale_user_set_member", 1),
        ]),
        "{report}"
    );
    assert_eq!(report["sessions"], 39, "{report}");
    let per_master: Vec<u64> = report["masters"]
        .as_array()
        .expect("masters")
        .iter()
        .filter_map(|m| m["findings"].as_u64())
        .collect();
    assert_eq!(per_master.len(), 3);
    assert!(per_master.iter().all(|&n| n > 0), "{report}");

    let repaired = run(&env, &["--json", "check", "--repair"], "");
    assert_eq!(repaired.code, 1, "{}", repaired.stderr);
    assert_eq!(
        counts(&repaired.json()["repairs"]),
        map(&[
            ("added_to_users", 1),
            ("fixed_expiry", 1),
            ("removed_corrupt_data", 1),
            ("removed_expiry_member", 1),
            ("removed_from_user_set", 1),
            ("removed_from_users", 1),
            ("removed_sessions_member", 1),
        ]),
        "{}",
        repaired.stdout
    );
    let again = run(&env, &["--json", "check"], "");
    assert_eq!(
        (again.code, again.json()["consistent"].clone()),
        (0, json!(true))
    );
    let after: Vec<Vec<String>> = healthy.iter().map(|&i| snapshot(i)).collect();
    assert_eq!(before, after, "a healthy session was changed");
    for i in [broken[1], broken[2]] {
        let (app, _, token) = &sessions[i];
        assert!(rs.get(app, token).await.expect("get").is_some());
    }

    // layout, user and kill-device through the cluster.
    let layout = run(&env, &["--json", "layout"], "").json();
    assert_eq!(
        (&layout["kind"], &layout["shards"]),
        (&json!("sharded"), &json!(SHARDS)),
        "{layout}"
    );
    let (app, id, token) = &sessions[healthy[0]];
    let user = run(&env, &["--json", "user", app, id], "").json();
    assert_eq!(user["devices"].as_array().map(Vec::len), Some(1), "{user}");
    let handle = redis_sessions::device_handle(token);
    let killed = run(&env, &["--json", "kill-device", app, id, &handle], "");
    assert_eq!(killed.json(), json!({"ended": 1}));
    assert!(rs.get(app, token).await.expect("get").is_none());
    let last = run(&env, &["check"], "");
    assert_eq!(last.code, 0, "{}", last.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_stats_through_sentinels() {
    let set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let env = vec![
        ("RS_SENTINELS", set.addrs().join(",")),
        ("RS_SENTINEL_MASTER", MASTER_NAME.to_owned()),
        ("RS_NAMESPACE", NS.to_owned()),
    ];
    let rs = RedisSessions::connect(
        Options::default()
            .sentinel(set.addrs(), MASTER_NAME)
            .namespace(NS)
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect");
    let mut tokens = Vec::new();
    for id in ["alice", "bob", "carol"] {
        tokens.push(
            rs.create("shop", id, "10.0.0.1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    let master = &set.servers[set.master_index()];
    master
        .strings(&["DEL", &format!("{NS}:shop:{}", tokens[0])])
        .expect("del");
    let stats = run(&env, &["--json", "stats"], "");
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let stats = stats.json();
    assert_eq!(stats["deployment"], "sentinel");
    assert_eq!(
        stats["apps"][0]["sessions"], 3,
        "_sessions still lists the deleted one"
    );
    assert_eq!(
        stats["masters"][0]["address"],
        format!("127.0.0.1:{}", master.port())
    );
    let check = run(&env, &["--json", "check"], "");
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert_eq!(
        counts(&check.json()["findings"]),
        map(&[
            ("orphan_expiry_member", 1),
            ("orphan_sessions_member", 1),
            ("stale_user_set_member", 1),
        ])
    );
    // Repairs write: they would fail with READONLY on the replica.
    let repaired = run(&env, &["check", "--repair"], "");
    assert_eq!(repaired.code, 1, "{}", repaired.stderr);
    let again = run(&env, &["--json", "check"], "");
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert_eq!(again.json()["sessions"], 2);
    let wrong = run(
        &[
            ("RS_SENTINELS", set.addrs().join(",")),
            ("RS_SENTINEL_MASTER", "nosuchmaster".to_owned()),
        ],
        &["stats"],
        "",
    );
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("no sentinel named a master"),
        "{}",
        wrong.stderr
    );
}
