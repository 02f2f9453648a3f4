//! Every command but `check` as a process against one Redis: `stats`, `user`, `kill`,
//! `kill-device`, `killsoid --keep`, `killall` (its prompt), `layout`; exit codes and the
//! `--json` shapes, checked against what Redis holds afterwards, and a `check` after the
//! sign-outs finds the indexes consistent.

mod common;

use common::{now, run, single};
use redis::Commands;
use redis_sessions::{CreateOptions, RedisSessions};
use serde_json::json;
use test_support::RedisServer;

const NS: &str = "rs";

async fn create(rs: &RedisSessions, app: &str, id: &str, ip: &str) -> String {
    rs.create(app, id, ip, CreateOptions::default())
        .await
        .expect("create")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_as_a_process() {
    let server = RedisServer::start();
    let env = single(server.url(), NS);
    let (rs, mut con) = common::store_and_raw(&server.url(), NS).await;

    let a1 = create(&rs, "shop", "alice", "10.0.0.1").await;
    let a2 = create(&rs, "shop", "alice", "10.0.0.2").await;
    let a3 = create(&rs, "shop", "alice", "10.0.0.3").await;
    let b1 = create(&rs, "shop", "bob", "10.0.0.4").await;
    let c1 = create(&rs, "blog", "carol", "10.0.0.5").await;
    // bob was last active 2000 s ago, every index moved with him as a get would have.
    let la = now() - 2000;
    let _: () = con.hset(format!("{NS}:shop:{b1}"), "la", la).expect("hset");
    let _: () = con
        .zadd(format!("{NS}:shop:_sessions"), format!("{b1}:bob"), la)
        .expect("zadd");
    let _: () = con
        .zadd(format!("{NS}:shop:_users"), "bob", la)
        .expect("zadd");
    let _: () = con
        .zadd(
            format!("{NS}:SESSIONS"),
            format!("shop:{b1}:bob"),
            la + 7200,
        )
        .expect("zadd");

    // stats: every app, then one.
    let stats = run(&env, &["--json", "stats"], "");
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let apps = stats.json()["apps"].clone();
    assert_eq!(apps.as_array().map(Vec::len), Some(2), "{apps}");
    let shop = apps
        .as_array()
        .and_then(|a| a.iter().find(|s| s["app"] == "shop"))
        .expect("shop in stats")
        .clone();
    assert_eq!(shop["sessions"], 4);
    assert_eq!(shop["users"], 2);
    assert_eq!(shop["sessions_active"], json!([3, 4, 4]), "{shop}");
    assert_eq!(shop["users_active"], json!([1, 2, 2]), "{shop}");
    assert!(shop["memory_bytes"].as_u64().unwrap_or(0) > 0, "{shop}");
    let blog = run(&env, &["--json", "stats", "blog"], "").json();
    assert_eq!(blog["apps"][0]["sessions"], 1, "{blog}");
    assert_eq!(blog["apps"].as_array().map(Vec::len), Some(1));
    let table = run(&env, &["stats"], "");
    assert_eq!(table.code, 0);
    assert!(table.stdout.starts_with("APP"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.split_whitespace().take(3).eq(["shop", "4", "2"])),
        "{}",
        table.stdout
    );

    // user: three devices by handle, never a token.
    let user = run(&env, &["--json", "user", "shop", "alice"], "");
    assert_eq!(user.code, 0, "{}", user.stderr);
    let devices = user.json()["devices"].clone();
    let handles: Vec<String> = devices
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["handle"].as_str().expect("handle").to_owned())
        .collect();
    let mut expected: Vec<String> = [&a1, &a2, &a3]
        .iter()
        .map(|t| redis_sessions::device_handle(t))
        .collect();
    let mut sorted = handles.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    let mut ips: Vec<&str> = devices
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["ip"].as_str())
        .collect();
    ips.sort_unstable();
    assert_eq!(ips, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    let text = run(&env, &["user", "shop", "alice"], "").stdout;
    assert!(text.starts_with("3 device(s) of alice in shop"), "{text}");
    for token in [&a1, &a2, &a3, &b1, &c1] {
        assert!(!text.contains(token.as_str()) && !user.stdout.contains(token.as_str()));
    }
    // A user agent the app keeps in the session's data: shown, with the escape sequence a
    // hostile client put in it made harmless in the table (the JSON has it as stored).
    let agent = "Firefox\u{1b}[2J on Linux";
    let erin = rs
        .create(
            "shop",
            "erin",
            "10.0.0.9",
            CreateOptions::default().data(json!({ "ua": agent })),
        )
        .await
        .expect("create");
    let shown = run(&env, &["user", "shop", "erin"], "").stdout;
    assert!(shown.contains("Firefox?[2J on Linux"), "{shown}");
    assert!(!shown.contains('\u{1b}'), "no escape reaches the terminal");
    let erin_json = run(&env, &["--json", "user", "shop", "erin"], "").json();
    assert_eq!(erin_json["devices"][0]["user_agent"], json!(agent));
    assert!(rs.kill("shop", &erin).await.expect("kill"));
    let nobody = run(&env, &["--json", "user", "shop", "nobody"], "").json();
    assert_eq!(nobody["devices"], json!([]));

    // kill-device: the first device, by its handle; an unknown handle ends nothing.
    let h1 = redis_sessions::device_handle(&a1);
    let killed = run(&env, &["--json", "kill-device", "shop", "alice", &h1], "");
    assert_eq!((killed.code, killed.json()), (0, json!({"ended": 1})));
    let exists: bool = con.exists(format!("{NS}:shop:{a1}")).expect("exists");
    assert!(!exists, "the device's session is gone");
    let again = run(&env, &["kill-device", "shop", "alice", &h1], "");
    assert_eq!(again.code, 0);
    assert!(again.stdout.contains("no device"), "{}", again.stdout);

    // kill: one session by its token, given as an argument or on stdin (`-`); the token
    // is never printed, and an unknown one ends nothing.
    let d1 = create(&rs, "shop", "dave", "10.0.0.6").await;
    let d2 = create(&rs, "shop", "dave", "10.0.0.7").await;
    let by_arg = run(&env, &["--json", "kill", "shop", &d1], "");
    assert_eq!((by_arg.code, by_arg.json()), (0, json!({"ended": 1})));
    let by_stdin = run(&env, &["kill", "shop", "-"], &format!("{d2}\n"));
    assert_eq!(by_stdin.code, 0);
    assert_eq!(by_stdin.stdout, "signed out 1 session\n");
    for token in [&d1, &d2] {
        let exists: bool = con.exists(format!("{NS}:shop:{token}")).expect("exists");
        assert!(!exists, "the session is gone");
    }
    let dave: Vec<String> = con
        .smembers(format!("{NS}:shop:us:dave"))
        .expect("smembers");
    assert!(dave.is_empty(), "and out of the user's index");
    let gone = run(&env, &["kill", "shop", &d1], "");
    assert_eq!(gone.code, 0);
    assert_eq!(gone.stdout, "no live session has that token\n");
    let bad = run(&env, &["kill", "shop", "not-a-token"], "");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(!bad.stderr.contains("not-a-token"), "{}", bad.stderr);

    // killsoid --keep: every other device of alice, the kept one untouched.
    let h3 = redis_sessions::device_handle(&a3);
    let kept_before: Vec<(String, String)> = con.hgetall(format!("{NS}:shop:{a3}")).expect("hash");
    let soid = run(
        &env,
        &["--json", "killsoid", "shop", "alice", "--keep", &h3],
        "",
    );
    assert_eq!((soid.code, soid.json()), (0, json!({"ended": 1})));
    let members: Vec<String> = con
        .smembers(format!("{NS}:shop:us:alice"))
        .expect("smembers");
    assert_eq!(members, vec![a3.clone()]);
    let kept_after: Vec<(String, String)> = con.hgetall(format!("{NS}:shop:{a3}")).expect("hash");
    assert_eq!(kept_before, kept_after);

    // killall: refused when stdin is not the app's name, then confirmed by it, or --yes.
    let refused = run(&env, &["killall", "shop"], "shopp\n");
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("not confirmed"),
        "{}",
        refused.stderr
    );
    let left: u64 = con.zcard(format!("{NS}:shop:_sessions")).expect("zcard");
    assert_eq!(left, 2, "a refused killall changed nothing");
    let empty_stdin = run(&env, &["killall", "shop"], "");
    assert_eq!(empty_stdin.code, 2);
    let confirmed = run(&env, &["--json", "killall", "shop"], "shop\n");
    assert_eq!((confirmed.code, confirmed.json()), (0, json!({"ended": 2})));
    let yes = run(&env, &["killall", "blog", "--yes"], "");
    assert_eq!(yes.code, 0);
    assert_eq!(yes.stdout, "signed out 1 session(s) of blog\n");
    for app in ["shop", "blog"] {
        let left: u64 = con.zcard(format!("{NS}:{app}:_sessions")).expect("zcard");
        assert_eq!(left, 0, "{app}");
    }
    let keys: Vec<String> = con.keys(format!("{NS}:*")).expect("keys");
    let leftovers: Vec<&String> = keys
        .iter()
        .filter(|k| !k.contains("{layout}") && !k.ends_with(":SESSIONS"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // After every sign-out the indexes agree.
    let check = run(&env, &["--json", "check"], "");
    assert_eq!(check.code, 0, "{}", check.stdout);
    assert_eq!(check.json()["consistent"], true);
    // Progress goes to stderr only (never in a pipe unless asked), the report to stdout.
    assert!(check.stderr.is_empty(), "{}", check.stderr);
    let shown = run(&env, &["--json", "check", "--progress", "always"], "");
    assert_eq!(shown.code, 0);
    assert_eq!(shown.json()["consistent"], true);
    assert!(
        shown.stderr.starts_with('\r') && shown.stderr.ends_with("s\n"),
        "{:?}",
        shown.stderr
    );
    assert!(
        shown
            .stderr
            .contains(&format!("127.0.0.1:{}: ", server.port())),
        "{:?}",
        shown.stderr
    );

    // layout: the record the library wrote, and none in an unused namespace.
    let layout = run(&env, &["--json", "layout"], "");
    assert_eq!(layout.code, 0, "{}", layout.stderr);
    let record = layout.json();
    assert_eq!(record["kind"], "node", "{record}");
    assert_eq!(record["shards"], 1);
    assert_eq!(record["record_key"], "rs:{layout}");
    let fresh = run(&single(server.url(), "fresh"), &["--json", "layout"], "").json();
    assert_eq!(fresh["kind"], serde_json::Value::Null, "{fresh}");
    let text = run(&single(server.url(), "fresh"), &["layout"], "").stdout;
    assert!(text.contains("no layout record"), "{text}");
}

#[test]
fn bad_arguments_exit_2_and_help_exits_0() {
    let env = single("redis://127.0.0.1:1/".into(), NS);
    let bad = run(&env, &["kill-device", "shop"], "");
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("required"), "{}", bad.stderr);
    let help = run(&env, &["--help"], "");
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);
}
