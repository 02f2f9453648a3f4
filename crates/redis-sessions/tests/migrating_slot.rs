//! Calls on a slot caught half way through a migration: some of a user's keys already on
//! the new node, the rest still on the old one. Every script declares the keys it touches,
//! so Redis refuses it before it starts (TRYAGAIN) rather than stopping it half way: a
//! killsoid or killall then fails without changing anything, and succeeds once the slot
//! has moved.

use redis_sessions::{CreateOptions, Options, RedisSessions};
use std::time::Duration;
use test_support::cluster::RedisCluster;
use test_support::faults::node_id;
use test_support::RedisServer;

const APP: &str = "halfway";

fn reply_int(reply: &str) -> u64 {
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or(u64::MAX)
}

fn ok(node: &RedisServer, args: &[&str]) {
    let reply = node.command(args).expect("command");
    assert!(
        reply.starts_with("+OK") || reply.starts_with("+NOKEY"),
        "{args:?}: {reply}"
    );
}

/// Keys of a slot on a node (at most 1000: the test's slot holds a few).
fn keys_in_slot(node: &RedisServer, slot: u64) -> Vec<String> {
    let reply = node
        .command(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "1000"])
        .unwrap_or_default();
    reply
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('$'))
        .map(str::to_owned)
        .collect()
}

/// The prefix of the victim's shard (`rs:{tag}:`), read from the name of its token set as
/// Redis holds it: the key layout is the library's own business, and Redis tells it.
fn shard_prefix(masters: &[RedisServer], user_set_suffix: &str) -> String {
    for node in masters {
        let reply = node
            .command(&["KEYS", &format!("*{user_set_suffix}")])
            .unwrap_or_default();
        if let Some(key) = reply.lines().find(|l| l.ends_with(user_set_suffix)) {
            return key.trim_end_matches(user_set_suffix).to_owned();
        }
    }
    panic!("no node holds a key ending in {user_set_suffix}");
}

fn migrate(from: &RedisServer, to: &RedisServer, keys: &[String]) {
    let port = to.port().to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    args.extend(keys.iter().map(String::as_str));
    ok(from, &args);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killsoid_on_a_half_moved_slot_changes_nothing_then_succeeds() {
    let cluster = RedisCluster::start(3, 0);
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect");
    let victim = "victim";
    let mut tokens = Vec::new();
    for ip in ["1", "2", "3"] {
        tokens.push(
            rs.create(APP, victim, ip, CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    let prefix = shard_prefix(cluster.masters(), &format!("{APP}:us:{victim}"));
    let us = format!("{prefix}{APP}:us:{victim}");
    let session_key = |token: &str| format!("{prefix}{APP}:{token}");
    let slot = reply_int(
        &cluster.nodes[0]
            .command(&["CLUSTER", "KEYSLOT", &us])
            .expect("KEYSLOT"),
    );
    let masters = cluster.masters();
    let src = masters
        .iter()
        .find(|n| !keys_in_slot(n, slot).is_empty())
        .expect("the slot's node");
    let dst = masters
        .iter()
        .find(|n| n.port() != src.port())
        .expect("another master");
    let slot_arg = slot.to_string();
    ok(
        dst,
        &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &node_id(src)],
    );
    ok(
        src,
        &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &node_id(dst)],
    );
    // One of the victim's session hashes moves first.
    migrate(src, dst, &[session_key(&tokens[0])]);

    let killed = tokio::time::timeout(Duration::from_secs(60), rs.killsoid(APP, victim))
        .await
        .expect("killsoid answers");
    println!("killsoid on the half-moved slot: {killed:?}");
    assert!(
        killed.is_err(),
        "Redis refuses the script while keys are split"
    );
    let killall = tokio::time::timeout(Duration::from_secs(60), rs.killall(APP))
        .await
        .expect("killall answers");
    println!("killall on the half-moved slot: {killall:?}");
    assert!(killall.is_err());
    // Nothing changed on the old node: the set and the other two hashes are all there.
    let members = src.command(&["SCARD", &us]).expect("SCARD");
    assert_eq!(reply_int(&members), 3, "the user's set is whole");
    let indexed = src
        .command(&["ZCARD", &format!("{prefix}{APP}:_sessions")])
        .expect("ZCARD");
    assert_eq!(reply_int(&indexed), 3, "the app's index is whole");
    for t in &tokens[1..] {
        let exists = src.command(&["EXISTS", &session_key(t)]).expect("EXISTS");
        assert_eq!(reply_int(&exists), 1, "a session hash was deleted");
    }

    // The slot finishes moving: the user is still fully logged in, and killsoid works.
    migrate(src, dst, &keys_in_slot(src, slot));
    for node in masters {
        ok(
            node,
            &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &node_id(dst)],
        );
    }
    tokio::task::block_in_place(|| cluster.wait_until_ok(Duration::from_secs(20)));
    assert_eq!(rs.soid(APP, victim).await.expect("soid").len(), 3);
    for t in &tokens {
        assert!(rs.get(APP, t).await.expect("get").is_some());
    }
    assert_eq!(rs.killsoid(APP, victim).await.expect("killsoid"), 3);
    assert!(rs.soid(APP, victim).await.expect("soid").is_empty());
    for t in &tokens {
        assert!(rs.get(APP, t).await.expect("get").is_none());
    }
    assert_eq!(
        rs.activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
}
