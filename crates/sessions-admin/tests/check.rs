//! `check` and `check --repair` against a namespace broken on purpose in every way the
//! check knows, by raw commands as an operator's wrong DEL or a foreign writer would: the
//! check finds each kind, the repair leaves the namespace consistent (a second check finds
//! nothing) and leaves every healthy session exactly as it was. The CLI runs as a process.

mod common;

use redis::Commands;
use redis_sessions::{CreateOptions, RedisSessions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use test_support::RedisServer;

const NS: &str = "rs";

/// Runs the CLI against `server`; returns its exit code and stdout.
fn cli(server: &RedisServer, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessions-admin"))
        .args(args)
        .env("RS_REDISURL", server.url())
        .env("RS_NAMESPACE", NS)
        .env_remove("RS_REDISHOST")
        .env_remove("RS_REDISPORT")
        .output()
        .expect("run sessions-admin");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.stderr.is_empty() || out.status.code() == Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn cli_json(server: &RedisServer, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out) = cli(server, &all);
    (code, serde_json::from_str(&out).expect("JSON output"))
}

/// Count of each kind of finding (or change) in a report's list.
fn counts(list: &Value) -> BTreeMap<String, u64> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().expect("kind").to_owned(),
                t["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// Everything the store keeps about one session: its hash and its four index entries.
fn snapshot(con: &mut redis::Connection, app: &str, token: &str) -> Vec<String> {
    let hash: BTreeMap<String, String> = con.hgetall(format!("{NS}:{app}:{token}")).expect("hash");
    let id = hash
        .get("id")
        .cloned()
        .expect("a healthy session has an id");
    let s: Option<f64> = con
        .zscore(format!("{NS}:{app}:_sessions"), format!("{token}:{id}"))
        .expect("zscore");
    let u: Option<f64> = con
        .zscore(format!("{NS}:{app}:_users"), &id)
        .expect("zscore");
    let m: bool = con
        .sismember(format!("{NS}:{app}:us:{id}"), token)
        .expect("sismember");
    let e: Option<f64> = con
        .zscore(format!("{NS}:SESSIONS"), format!("{app}:{token}:{id}"))
        .expect("zscore");
    vec![
        format!("{hash:?}"),
        format!("{s:?}"),
        format!("{u:?}"),
        format!("{m}"),
        format!("{e:?}"),
    ]
}

async fn create(rs: &RedisSessions, app: &str, id: &str) -> String {
    rs.create(app, id, "10.0.0.1", CreateOptions::default())
        .await
        .expect("create")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_every_kind_and_repair_mends_only_them() {
    let server = RedisServer::start();
    let (rs, mut con) = common::store_and_raw(&server.url(), NS).await;

    // Healthy sessions in two apps, some of users that also own broken ones.
    let mut healthy = Vec::new();
    for (app, id) in [
        ("shop", "alice"),
        ("shop", "alice"),
        ("shop", "bob"),
        ("blog", "carol"),
        ("brk", "dave"),
        ("brk", "erin"),
        ("brk", "frank"),
    ] {
        healthy.push((app, create(&rs, app, id).await));
    }
    rs.set("shop", &healthy[0].1, &json!({"theme": "dark"}))
        .await
        .expect("set");
    let before: Vec<_> = healthy
        .iter()
        .map(|(app, t)| snapshot(&mut con, app, t))
        .collect();

    // An operator's DEL of a hash: its _sessions, SESSIONS and us:{id} entries are left.
    let deleted = create(&rs, "brk", "gina").await;
    let _: () = con.del(format!("{NS}:brk:{deleted}")).expect("del");
    // A _users id without a session.
    let _: () = con
        .zadd(format!("{NS}:brk:_users"), "ghost", now())
        .expect("zadd");
    // Sessions missing from each index.
    let t = create(&rs, "brk", "dave").await;
    let _: () = con
        .zrem(format!("{NS}:brk:_sessions"), format!("{t}:dave"))
        .expect("zrem");
    let t = create(&rs, "brk", "solo").await;
    let _: () = con.zrem(format!("{NS}:brk:_users"), "solo").expect("zrem");
    let t2 = create(&rs, "brk", "erin").await;
    let _: () = con.srem(format!("{NS}:brk:us:erin"), &t2).expect("srem");
    let t3 = create(&rs, "brk", "frank").await;
    let _: () = con
        .zrem(format!("{NS}:SESSIONS"), format!("brk:{t3}:frank"))
        .expect("zrem");
    // A SESSIONS score far from la + ttl.
    let t4 = create(&rs, "brk", "hank").await;
    let _: () = con
        .zincr(format!("{NS}:SESSIONS"), format!("brk:{t4}:hank"), 500)
        .expect("zincrby");
    // A session long past its end, its indexes agreeing (never swept: wipe off).
    let t5 = create(&rs, "brk", "ivy").await;
    let la = now() - 20_000;
    let _: () = con.hset(format!("{NS}:brk:{t5}"), "la", la).expect("hset");
    let _: () = con
        .zadd(format!("{NS}:SESSIONS"), format!("brk:{t5}:ivy"), la + 7200)
        .expect("zadd");
    // Data that is not a JSON object.
    let t6 = create(&rs, "brk", "jack").await;
    let _: () = con
        .hset(format!("{NS}:brk:{t6}"), "d", "[1,2")
        .expect("hset");
    // A hash without an id, as Node v4's get racing a kill leaves.
    let stray = format!("{}Z{}", "S".repeat(55), "lz0abcde");
    let _: () = con.hset(format!("{NS}:brk:{stray}"), "r", 1).expect("hset");

    let (code, report) = cli_json(&server, &["check"]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["consistent"], false);
    let found = counts(&report["findings"]);
    let expected: BTreeMap<String, u64> = [
        ("orphan_sessions_member", 1),
        ("orphan_expiry_member", 1),
        ("stale_user_set_member", 1),
        ("orphan_user", 1),
        ("missing_from_sessions", 1),
        ("missing_from_users", 1),
        ("missing_from_user_set", 1),
        ("missing_from_expiries", 1),
        ("expiry_mismatch", 1),
        ("expired", 1),
        ("corrupt_data", 1),
        ("corrupt_hash", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(found, expected, "{report}");
    // Examples name devices by handle, never by token.
    let text = report.to_string();
    for token in [&deleted, &t, &t2, &t3, &t4, &t5, &t6, &stray] {
        assert!(!text.contains(token.as_str()), "a token in the report");
    }
    assert!(text.contains(&redis_sessions::device_handle(&t6)), "{text}");
    // One app only: the healthy apps are consistent.
    let (code, shop) = cli_json(&server, &["check", "shop"]);
    assert_eq!((code, &shop["consistent"]), (0, &json!(true)), "{shop}");

    let (code, repaired) = cli_json(&server, &["check", "--repair"]);
    assert_eq!(code, 1, "{repaired}");
    let changes = counts(&repaired["repairs"]);
    let expected: BTreeMap<String, u64> = [
        ("added_to_expiries", 1),
        ("added_to_sessions", 1),
        ("added_to_user_set", 1),
        ("added_to_users", 1),
        ("fixed_expiry", 1),
        ("removed_corrupt_data", 1),
        ("removed_corrupt_hash", 1),
        ("removed_expired", 1),
        ("removed_expiry_member", 1),
        ("removed_from_user_set", 1),
        // ghost, and gina once her last token left us:gina.
        ("removed_from_users", 2),
        ("removed_sessions_member", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(changes, expected, "{repaired}");

    let (code, again) = cli_json(&server, &["check"]);
    assert_eq!((code, &again["consistent"]), (0, &json!(true)), "{again}");
    let after: Vec<_> = healthy
        .iter()
        .map(|(app, t)| snapshot(&mut con, app, t))
        .collect();
    assert_eq!(before, after, "a healthy session was changed");
    // The mended sessions work; the removed ones are gone.
    for token in [&t, &t2, &t3, &t4] {
        assert!(rs.get("brk", token).await.expect("get").is_some());
    }
    assert!(rs.get("brk", &t5).await.expect("get").is_none());
    let exists: bool = con.exists(format!("{NS}:brk:{t6}")).expect("exists");
    assert!(!exists);
    // A second repair has nothing to do.
    let (code, text) = cli(&server, &["check", "--repair"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("consistent: no findings"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_2_when_redis_is_unreachable() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessions-admin"))
        .args(["check"])
        .env(
            "RS_REDISURL",
            format!("redis://127.0.0.1:{}/", test_support::free_port()),
        )
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sessions-admin: redis"));
}
