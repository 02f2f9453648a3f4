//! The behaviour suite of the contract (docs/spec/redis-sessions.md), run against the Redis
//! store on a fresh redis-server and against the embedded store. Each test cites the section
//! of the contract it checks.

mod common;

use common::Env;
use redis_sessions::{device_handle, CreateOptions, Error, Session};
use serde_json::{json, Value};
use std::time::Duration;

const APP: &str = "testapp";

async fn create(env: &Env, id: &str) -> String {
    env.rs
        .create(APP, id, "127.0.0.1", CreateOptions::default())
        .await
        .expect("create")
}

async fn get(env: &Env, token: &str) -> Option<Session> {
    env.rs.get(APP, token).await.expect("get")
}

fn expect_err<T: std::fmt::Debug>(result: redis_sessions::Result<T>, name: &str, message: &str) {
    match result {
        Err(err) => {
            assert_eq!(err.name(), name, "name of {err:?}");
            assert_eq!(err.to_string(), message);
        }
        Ok(v) => panic!("expected {name} / {message}, got {v:?}"),
    }
}

/// Contract: docs/spec/redis-sessions.md#inputs-and-errors
async fn validation_errors(env: &Env) {
    let rs = &env.rs;
    let token = "a".repeat(64);
    let no = CreateOptions::default;
    expect_err(
        rs.create("", "u", "1.1.1.1", no()).await,
        "missingParameter",
        "No app supplied",
    );
    expect_err(
        rs.create("ab", "u", "1.1.1.1", no()).await,
        "invalidFormat",
        "Invalid app format",
    );
    expect_err(
        rs.create("a".repeat(21).as_str(), "u", "1", no()).await,
        "invalidFormat",
        "Invalid app format",
    );
    expect_err(
        rs.create("app!", "u", "1", no()).await,
        "invalidFormat",
        "Invalid app format",
    );
    expect_err(
        rs.create(APP, "", "1", no()).await,
        "missingParameter",
        "No id supplied",
    );
    expect_err(
        rs.create(APP, "a\nb", "1", no()).await,
        "invalidFormat",
        "Invalid id format",
    );
    expect_err(
        rs.create(APP, &"x".repeat(129), "1", no()).await,
        "invalidFormat",
        "Invalid id format",
    );
    expect_err(
        rs.create(APP, "u", "", no()).await,
        "missingParameter",
        "No ip supplied",
    );
    expect_err(
        rs.create(APP, "u", &"1".repeat(40), no()).await,
        "invalidFormat",
        "Invalid ip format",
    );
    expect_err(
        rs.create(APP, "u", "1", no().ttl(Duration::from_secs(9)))
            .await,
        "invalidValue",
        "ttl must be a positive integer >= 10",
    );
    expect_err(
        rs.create(APP, "u", "1", no().data(json!([1]))).await,
        "invalidValue",
        "d must be an object",
    );
    expect_err(
        rs.create(APP, "u", "1", no().data(json!({}))).await,
        "invalidValue",
        "d must containt at least one key.",
    );
    expect_err(
        rs.create(APP, "u", "1", no().data(json!({"a": [1]}))).await,
        "invalidValue",
        "d.a has a forbidden type. Only strings, numbers, boolean and null are allowed.",
    );
    // The order of the checks: app before id before ip before ttl.
    expect_err(
        rs.create("x", "", "", no().ttl(Duration::from_secs(1)))
            .await,
        "invalidFormat",
        "Invalid app format",
    );
    expect_err(
        rs.create(APP, "", "", no().ttl(Duration::from_secs(1)))
            .await,
        "missingParameter",
        "No id supplied",
    );
    expect_err(
        rs.create(APP, "u", "", no().ttl(Duration::from_secs(1)))
            .await,
        "missingParameter",
        "No ip supplied",
    );

    expect_err(
        rs.get(APP, "").await,
        "missingParameter",
        "No token supplied",
    );
    expect_err(
        rs.get(APP, "short").await,
        "invalidFormat",
        "Invalid token format",
    );
    expect_err(
        rs.get(APP, &"-".repeat(64)).await,
        "invalidFormat",
        "Invalid token format",
    );
    expect_err(
        rs.get("", &token).await,
        "missingParameter",
        "No app supplied",
    );
    expect_err(
        rs.kill(APP, "x").await,
        "invalidFormat",
        "Invalid token format",
    );
    expect_err(
        rs.set(APP, &token, &Value::Null).await,
        "missingParameter",
        "No d supplied",
    );
    expect_err(
        rs.set(APP, &token, &json!("text")).await,
        "invalidValue",
        "d must be an object",
    );
    expect_err(
        rs.set(APP, &token, &json!({})).await,
        "invalidValue",
        "d must containt at least one key.",
    );
    expect_err(
        rs.set(APP, &token, &json!({"ok": 1, "bad": {"x": 1}}))
            .await,
        "invalidValue",
        "d.bad has a forbidden type. Only strings, numbers, boolean and null are allowed.",
    );
    expect_err(
        rs.set(APP, "bad", &json!({})).await,
        "invalidFormat",
        "Invalid token format",
    );
    expect_err(
        rs.activity(APP, Duration::from_secs(9)).await,
        "invalidValue",
        "deltaTime must be a positive integer >= 10",
    );
    expect_err(
        rs.soapp(APP, Duration::from_millis(9_999)).await,
        "invalidValue",
        "deltaTime must be a positive integer >= 10",
    );
    expect_err(
        rs.soapp("a b", Duration::from_secs(100)).await,
        "invalidFormat",
        "Invalid app format",
    );
    expect_err(rs.soid(APP, "").await, "missingParameter", "No id supplied");
    expect_err(
        rs.killsoid(APP, "\r").await,
        "invalidFormat",
        "Invalid id format",
    );
    expect_err(rs.killall("").await, "missingParameter", "No app supplied");
    // Input errors are typed as such.
    assert!(matches!(
        rs.killall("").await,
        Err(Error::MissingParameter(_))
    ));
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn create_get_counts_reads(env: &Env) {
    let token = create(env, "user1").await;
    assert_eq!(token.len(), 64);
    let s = get(env, &token).await.expect("live");
    assert_eq!(
        (s.id.as_str(), s.r, s.w, s.ttl, s.idle),
        ("user1", 1, 1, 7200, 0)
    );
    assert_eq!(s.ip, "127.0.0.1");
    assert!(s.d.is_none() && !s.no_resave);
    let s = get(env, &token).await.expect("live");
    assert_eq!(s.r, 2, "r is the count before this read");
    env.clock.advance(Duration::from_secs(5));
    let s = get(env, &token).await.expect("live");
    assert_eq!((s.r, s.idle), (3, 5));
    let s = get(env, &token).await.expect("live");
    assert_eq!(s.idle, 0, "a read with idle > 1 moves la");
    env.clock.advance(Duration::from_secs(1));
    assert_eq!(get(env, &token).await.map(|s| s.idle), Some(1));
    env.clock.advance(Duration::from_secs(1));
    assert_eq!(
        get(env, &token).await.map(|s| s.idle),
        Some(2),
        "idle 1 does not move la"
    );
    // The JSON shape: exactly the contract's keys.
    let v = serde_json::to_value(get(env, &token).await.expect("live")).expect("json");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "r", "w", "ttl", "idle", "ip"]);
}

async fn unknown_token_is_none(env: &Env) {
    let token = "b".repeat(64);
    assert!(get(env, &token).await.is_none());
    assert!(env
        .rs
        .set(APP, &token, &json!({"a": 1}))
        .await
        .expect("set")
        .is_none());
    assert!(!env.rs.kill(APP, &token).await.expect("kill"));
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn ttl_expiry(env: &Env) {
    let token = env
        .rs
        .create(
            APP,
            "u",
            "1.2.3.4",
            CreateOptions::default().ttl(Duration::from_secs(30)),
        )
        .await
        .expect("create");
    env.clock.advance(Duration::from_secs(30));
    let s = get(env, &token).await.expect("idle == ttl is still live");
    assert_eq!(s.ttl, 30);
    env.clock.advance(Duration::from_secs(31));
    assert!(get(env, &token).await.is_none(), "idle > ttl is dead");
    assert!(env
        .rs
        .set(APP, &token, &json!({"a": 1}))
        .await
        .expect("set")
        .is_none());
    assert_eq!(env.rs.sweep().await.expect("sweep"), 1);
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(1000))
            .await
            .expect("activity"),
        0
    );
    if let Some(mut con) = env.raw() {
        let size: u64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
        assert_eq!(
            size, 1,
            "the sweep leaves nothing behind but the layout record"
        );
    }
}

/// Contract: docs/spec/redis-sessions.md#expiry-sweep
async fn sweep_spares_live_sessions(env: &Env) {
    let short = env
        .rs
        .create(
            APP,
            "a",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(10)),
        )
        .await
        .expect("create");
    let long = env
        .rs
        .create(
            APP,
            "b",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(100)),
        )
        .await
        .expect("create");
    env.clock.advance(Duration::from_secs(20));
    assert_eq!(env.rs.sweep().await.expect("sweep"), 1);
    assert!(get(env, &short).await.is_none());
    assert!(get(env, &long).await.is_some());
    // Reading refreshes the time of death.
    env.clock.advance(Duration::from_secs(90));
    assert!(get(env, &long).await.is_some());
    env.clock.advance(Duration::from_secs(90));
    assert_eq!(env.rs.sweep().await.expect("sweep"), 0);
    assert!(get(env, &long).await.is_some());
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn no_resave_ends_at_a_fixed_time(env: &Env) {
    let opts = CreateOptions::default()
        .ttl(Duration::from_secs(60))
        .no_resave(true);
    let token = env.rs.create(APP, "nr", "1", opts).await.expect("create");
    let s = get(env, &token).await.expect("live");
    assert!(s.no_resave);
    assert_eq!(s.ttl, 60);
    // Reads at idle 1, 2, 1, 5 … the end stays create + 60.
    let mut elapsed: u64 = 0;
    for step in [1, 2, 1, 1, 5, 1, 10, 1, 2, 20] {
        env.clock.advance(Duration::from_secs(step));
        elapsed += step;
        let s = get(env, &token).await.expect("live");
        assert_eq!(s.ttl, 60 - elapsed as i64, "time left after {elapsed}s");
    }
    let v = serde_json::to_value(get(env, &token).await.expect("live")).expect("json");
    assert_eq!(v["no_resave"], json!(true));
    env.clock.advance(Duration::from_secs(60 - elapsed));
    assert!(
        get(env, &token).await.is_some(),
        "alive at exactly create + ttl"
    );
    env.clock.advance(Duration::from_secs(1));
    assert!(get(env, &token).await.is_none(), "dead one second later");
    assert_eq!(env.rs.sweep().await.expect("sweep"), 1);
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn no_resave_set_replies_stored_w(env: &Env) {
    let opts = CreateOptions::default()
        .ttl(Duration::from_secs(60))
        .no_resave(true);
    let token = env.rs.create(APP, "nr", "1", opts).await.expect("create");
    env.clock.advance(Duration::from_secs(3));
    let s = env
        .rs
        .set(APP, &token, &json!({"a": 1}))
        .await
        .expect("set")
        .expect("live");
    assert_eq!((s.w, s.ttl, s.no_resave), (2, 57, true));
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn data_merge_and_delete(env: &Env) {
    let opts = CreateOptions::default().data(json!({"a": "x", "n": null}));
    let token = env.rs.create(APP, "d", "1", opts).await.expect("create");
    let s = get(env, &token).await.expect("live");
    assert_eq!(
        s.d,
        json!({"a": "x"}).as_object().cloned(),
        "nulls dropped at create"
    );
    let s = env
        .rs
        .set(APP, &token, &json!({"b": 2, "c": true}))
        .await
        .expect("set")
        .expect("live");
    assert_eq!(s.w, 2);
    assert_eq!(s.r, 2, "set does not count a read");
    assert_eq!(
        Value::Object(s.d.clone().expect("d")),
        json!({"a": "x", "b": 2, "c": true})
    );
    let s = env
        .rs
        .set(
            APP,
            &token,
            &json!({"a": null, "b": 3.5, "e": "q\"uo\\te ☃"}),
        )
        .await
        .expect("set")
        .expect("live");
    assert_eq!(
        Value::Object(s.d.clone().expect("d")),
        json!({"b": 3.5, "c": true, "e": "q\"uo\\te ☃"})
    );
    let s = get(env, &token).await.expect("live");
    assert_eq!(
        Value::Object(s.d.expect("d")),
        json!({"b": 3.5, "c": true, "e": "q\"uo\\te ☃"})
    );
    let s = env
        .rs
        .set(APP, &token, &json!({"b": null, "c": null, "e": null}))
        .await
        .expect("set")
        .expect("live");
    assert!(s.d.is_none(), "no d when the data becomes empty");
    assert_eq!(s.w, 4);
    assert!(get(env, &token).await.expect("live").d.is_none());
    if let Some(mut con) = env.raw() {
        let d: Option<String> = redis::cmd("HGET")
            .arg(format!("rs:{APP}:{token}"))
            .arg("d")
            .query(&mut con)
            .expect("HGET");
        assert_eq!(d, None, "the d field is deleted");
    }
    // A set with only nulls on a session without data stays without data.
    let s = env
        .rs
        .set(APP, &token, &json!({"zz": null}))
        .await
        .expect("set")
        .expect("live");
    assert!(s.d.is_none());
}

async fn deletes_anywhere_in_the_data(env: &Env) {
    let token = create(env, "del").await;
    let d = |s: &Session| Value::Object(s.d.clone().unwrap_or_default());
    let set = |v: Value| {
        let token = token.clone();
        async move {
            env.rs
                .set(APP, &token, &v)
                .await
                .expect("set")
                .expect("live")
        }
    };
    set(json!({"k1": 1, "k10": "ten", "k100": true, "x": "a,b}c"})).await;
    assert_eq!(
        d(&set(json!({"k10": null})).await),
        json!({"k1": 1, "k100": true, "x": "a,b}c"}),
        "middle"
    );
    assert_eq!(
        d(&set(json!({"k1": null})).await),
        json!({"k100": true, "x": "a,b}c"}),
        "first"
    );
    assert_eq!(
        d(&set(json!({"x": null})).await),
        json!({"k100": true}),
        "last"
    );
    assert_eq!(
        d(&set(json!({"k100": "now a string", "k1": 2})).await),
        json!({"k100": "now a string", "k1": 2})
    );
    assert_eq!(
        d(&set(json!({"k100": "with \"quotes\""})).await),
        json!({"k100": "with \"quotes\"", "k1": 2})
    );
    assert_eq!(
        d(&set(json!({"k1": 3})).await),
        json!({"k100": "with \"quotes\"", "k1": 3}),
        "escaped text is merged too"
    );
    assert!(
        set(json!({"k100": null, "k1": null})).await.d.is_none(),
        "only key deleted"
    );
}

async fn numbers_keep_their_precision(env: &Env) {
    let token = create(env, "n").await;
    let big =
        json!({"big": 12345678901234567u64, "neg": -9007199254740993i64, "f": 0.1, "e": 1e300});
    env.rs.set(APP, &token, &big).await.expect("set");
    env.rs
        .set(APP, &token, &json!({"other": 1}))
        .await
        .expect("set");
    let s = get(env, &token).await.expect("live");
    assert_eq!(s.get::<String>("missing").expect("a typed read"), None);
    let d = s.d.expect("d");
    // Numbers are doubles, as in the Node module: integers past 2^53 round as in JavaScript.
    assert_eq!(d["big"], json!(12345678901234568u64));
    assert_eq!(d["neg"], json!(-9007199254740992i64));
    assert_eq!(d["f"], json!(0.1));
    assert_eq!(d["e"], json!(1e300));
}

/// Contract: docs/spec/redis-sessions.md#key-layout
async fn kill_and_indexes(env: &Env) {
    let t1 = create(env, "alice").await;
    let t2 = create(env, "alice").await;
    let t3 = create(env, "bob").await;
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        2
    );
    assert_eq!(env.rs.soid(APP, "alice").await.expect("soid").len(), 2);
    assert!(env.rs.kill(APP, &t1).await.expect("kill"));
    assert!(!env.rs.kill(APP, &t1).await.expect("kill"));
    assert!(get(env, &t1).await.is_none());
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        2,
        "alice still has a session"
    );
    assert_eq!(env.rs.soid(APP, "alice").await.expect("soid").len(), 1);
    // kill does not count a read
    let before = get(env, &t3).await.expect("live").r;
    assert!(env.rs.kill(APP, &t2).await.expect("kill"));
    assert_eq!(get(env, &t3).await.expect("live").r, before + 1);
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        1,
        "alice left _users"
    );
    assert!(env.rs.kill(APP, &t3).await.expect("kill"));
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
}

async fn kill_of_a_dead_session_tidies_and_says_zero(env: &Env) {
    let token = env
        .rs
        .create(
            APP,
            "x",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(10)),
        )
        .await
        .expect("create");
    env.clock.advance(Duration::from_secs(11));
    assert!(!env.rs.kill(APP, &token).await.expect("kill"));
    assert_eq!(
        env.rs.sweep().await.expect("sweep"),
        0,
        "nothing left to sweep"
    );
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn killsoid_logs_out_everywhere(env: &Env) {
    let a1 = create(env, "alice").await;
    let a2 = create(env, "alice").await;
    let b = create(env, "bob").await;
    assert_eq!(env.rs.killsoid(APP, "alice").await.expect("killsoid"), 2);
    assert!(get(env, &a1).await.is_none() && get(env, &a2).await.is_none());
    assert!(get(env, &b).await.is_some());
    assert_eq!(env.rs.killsoid(APP, "alice").await.expect("killsoid"), 0);
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        1
    );
    assert!(env.rs.soid(APP, "alice").await.expect("soid").is_empty());
}

/// Devices: soid names each session by a handle (not its token); one device can be ended
/// by its handle, and every other device of a user by keeping one's own token.
async fn devices_by_handle(env: &Env) {
    let a1 = create(env, "alice").await;
    let a2 = create(env, "alice").await;
    let a3 = create(env, "alice").await;
    let b = create(env, "bob").await;
    let listed = env.rs.soid(APP, "alice").await.expect("soid");
    let mut handles: Vec<String> = listed.iter().filter_map(|s| s.handle.clone()).collect();
    handles.sort();
    let mut expected: Vec<String> = [&a1, &a2, &a3].iter().map(|t| device_handle(t)).collect();
    expected.sort();
    assert_eq!(
        handles, expected,
        "one handle per session, the hash of its token"
    );
    for s in &listed {
        let token = [&a1, &a2, &a3]
            .into_iter()
            .find(|t| s.handle.as_deref() == Some(device_handle(t).as_str()))
            .expect("listed");
        assert_eq!(s.created_ms, redis_sessions::token_created_ms(token));
        assert!(s.created_ms.is_some());
    }
    for t in [&a1, &a2, &a3] {
        assert!(handles.iter().all(|h| !h.contains(t.as_str())));
    }
    // Sign out that device: only a2 ends.
    let kill = |id: &'static str, handle: String| {
        let rs = env.rs.clone();
        async move { rs.kill_device(APP, id, &handle).await }
    };
    assert!(kill("alice", device_handle(&a2))
        .await
        .expect("kill_device"));
    assert!(get(env, &a2).await.is_none());
    assert!(get(env, &a1).await.is_some() && get(env, &a3).await.is_some());
    assert!(!kill("alice", device_handle(&a2)).await.expect("again"));
    // Another user's handle ends nothing.
    assert!(!kill("alice", device_handle(&b)).await.expect("bob's"));
    assert!(get(env, &b).await.is_some());
    expect_err(
        kill("alice", "xyz".into()).await,
        "invalidFormat",
        "Invalid handle format",
    );
    // Sign out all other devices: a1 stays, a3 ends, bob is untouched.
    assert_eq!(
        env.rs.killsoid_keep(APP, "alice", &a1).await.expect("keep"),
        1
    );
    assert!(get(env, &a1).await.is_some() && get(env, &a3).await.is_none());
    let left = env.rs.soid(APP, "alice").await.expect("soid");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].handle.as_deref(), Some(device_handle(&a1).as_str()));
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        2
    );
    // Keeping a token that is not alice's keeps nothing of hers.
    assert_eq!(
        env.rs.killsoid_keep(APP, "alice", &b).await.expect("keep"),
        1
    );
    assert!(get(env, &a1).await.is_none() && get(env, &b).await.is_some());
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        1
    );
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn killall_ends_an_app(env: &Env) {
    for i in 0..5 {
        create(env, &format!("user{i}")).await;
    }
    let other = env
        .rs
        .create("otherapp", "user0", "1", CreateOptions::default())
        .await
        .expect("create");
    assert_eq!(env.rs.killall(APP).await.expect("killall"), 5);
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
    assert!(env
        .rs
        .soapp(APP, Duration::from_secs(600))
        .await
        .expect("soapp")
        .is_empty());
    assert_eq!(env.rs.killall(APP).await.expect("killall"), 0);
    assert!(
        env.rs.get("otherapp", &other).await.expect("get").is_some(),
        "other apps untouched"
    );
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn soapp_most_recent_first(env: &Env) {
    let t1 = create(env, "u1").await;
    env.clock.advance(Duration::from_secs(5));
    let _t2 = create(env, "u2").await;
    env.clock.advance(Duration::from_secs(5));
    let _t3 = create(env, "u3").await;
    let ids: Vec<String> = env
        .rs
        .soapp(APP, Duration::from_secs(100))
        .await
        .expect("soapp")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["u3", "u2", "u1"]);
    env.clock.advance(Duration::from_secs(5));
    get(env, &t1).await.expect("live");
    let ids: Vec<String> = env
        .rs
        .soapp(APP, Duration::from_secs(100))
        .await
        .expect("soapp")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["u1", "u3", "u2"]);
    let ids: Vec<String> = env
        .rs
        .soapp(APP, Duration::from_secs(10))
        .await
        .expect("soapp")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["u1", "u3", "u2"], "the window's start is inclusive");
    env.clock.advance(Duration::from_secs(1));
    let ids: Vec<String> = env
        .rs
        .soapp(APP, Duration::from_secs(10))
        .await
        .expect("soapp")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["u1", "u3"], "only sessions active in the window");
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(10))
            .await
            .expect("activity"),
        2
    );
}

/// Contract: docs/spec/redis-sessions.md#key-layout
async fn special_ids(env: &Env) {
    for id in [
        "a:b:c",
        "user@example.com",
        "김철수",
        ":",
        "x:",
        "with space",
    ] {
        let token = create(env, id).await;
        let s = get(env, &token).await.expect("live");
        assert_eq!(s.id, id);
        let devices = env.rs.soid(APP, id).await.expect("soid");
        assert_eq!(devices.len(), 1, "soid of {id}");
        env.rs
            .set(APP, &token, &json!({"k": id}))
            .await
            .expect("set");
    }
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        6
    );
    assert_eq!(env.rs.killsoid(APP, "a:b:c").await.expect("killsoid"), 1);
    env.clock.advance(Duration::from_secs(7201));
    assert_eq!(
        env.rs.sweep().await.expect("sweep"),
        5,
        "the sweep splits ids with ':' right"
    );
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(10_000))
            .await
            .expect("activity"),
        0
    );
}

async fn bulk_1000_sessions(env: &Env) {
    let creates = (0..1000).map(|i| {
        let rs = env.rs.clone();
        async move {
            rs.create(
                APP,
                &format!("user{}", i % 250),
                "10.0.0.1",
                CreateOptions::default(),
            )
            .await
            .expect("create")
        }
    });
    let tokens = futures_util::future::join_all(creates).await;
    let gets = tokens.iter().map(|t| env.rs.get(APP, t));
    let sessions = futures_util::future::join_all(gets).await;
    assert!(sessions.iter().all(|s| matches!(s, Ok(Some(_)))));
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        250
    );
    assert_eq!(
        env.rs
            .soapp(APP, Duration::from_secs(600))
            .await
            .expect("soapp")
            .len(),
        1000
    );
    assert_eq!(env.rs.soid(APP, "user7").await.expect("soid").len(), 4);
    // killall works in batches of 1000: make it take two.
    for i in 0..500 {
        create(env, &format!("late{i}")).await;
    }
    assert_eq!(env.rs.killall(APP).await.expect("killall"), 1500);
    assert_eq!(
        env.rs
            .activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
}

/// Contract: docs/spec/redis-sessions.md#expiry-sweep
async fn bulk_sweep_in_batches(env: &Env) {
    for i in 0..2500 {
        env.rs
            .create(
                APP,
                &format!("u{i}"),
                "1",
                CreateOptions::default().ttl(Duration::from_secs(10)),
            )
            .await
            .expect("create");
    }
    env.clock.advance(Duration::from_secs(11));
    assert_eq!(env.rs.sweep().await.expect("sweep"), 2500);
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn concurrent_sets_lose_nothing(env: &Env) {
    let token = create(env, "racer").await;
    let sets = (0..50).map(|i| {
        let rs = env.rs.clone();
        let token = token.clone();
        async move {
            rs.set(APP, &token, &json!({ format!("k{i}"): i }))
                .await
                .expect("set")
        }
    });
    let handles: Vec<_> = sets.map(tokio::spawn).collect();
    for h in handles {
        h.await.expect("task").expect("live");
    }
    let s = get(env, &token).await.expect("live");
    let d = s.d.expect("d");
    assert_eq!(d.len(), 50, "every concurrent set kept its key");
    for i in 0..50 {
        assert_eq!(d[&format!("k{i}")], json!(i));
    }
    assert_eq!(s.w, 51);
}

/// Typed values go through the library's one encoding (redis_sessions::value), the one
/// the axum middleware uses: nested values and integers past 2^53 are stored as `$json:`
/// text and read back exactly; a mismatch is an error, not a `None`.
async fn typed_data(env: &Env) {
    #[derive(serde::Serialize)]
    struct Prefs {
        theme: &'static str,
        visits: u32,
        cart: Vec<&'static str>,
        uid: u64,
        gone: Option<u8>,
    }
    let token = create(env, "typed").await;
    env.rs
        .set(APP, &token, &json!({"gone": 1}))
        .await
        .expect("set");
    env.rs
        .set_typed(
            APP,
            &token,
            &Prefs {
                theme: "dark",
                visits: 3,
                cart: vec!["tea", "cup"],
                uid: u64::MAX,
                gone: None,
            },
        )
        .await
        .expect("set_typed");
    let s = get(env, &token).await.expect("live");
    // The stored form, as Node and REST clients read it: flat scalars and marked text.
    let d = s.d.clone().expect("data");
    assert_eq!(d["cart"], json!("$json:[\"tea\",\"cup\"]"));
    assert_eq!(d["uid"], json!("$json:18446744073709551615"));
    assert!(
        !d.contains_key("gone"),
        "a None field removes its key: {d:?}"
    );
    assert_eq!(
        s.get::<String>("theme").expect("a typed read").as_deref(),
        Some("dark")
    );
    assert_eq!(s.get::<u32>("visits").expect("a typed read"), Some(3));
    assert_eq!(
        s.get::<Vec<String>>("cart").expect("a typed read"),
        Some(vec!["tea".to_owned(), "cup".to_owned()])
    );
    assert_eq!(s.get::<u64>("uid").expect("a typed read"), Some(u64::MAX));
    assert_eq!(s.get::<u8>("gone").expect("absent"), None);
    match s.get::<u32>("theme") {
        Err(err @ Error::WrongType { .. }) => {
            assert_eq!(err.name(), "wrongType");
            assert!(!err.kind().is_retryable());
            assert!(
                !err.to_string().contains("dark"),
                "no data in errors: {err}"
            );
        }
        other => panic!("a string read as a number: {other:?}"),
    }
    // Refused before any store call: NaN would be written as null (a silent delete).
    expect_err(
        env.rs
            .set_typed(
                APP,
                &token,
                &std::collections::BTreeMap::from([("ratio", f64::NAN)]),
            )
            .await,
        "invalidValue",
        "NaN is not a number JSON can hold (NaN and infinities are refused)",
    );
    expect_err(
        env.rs.set_typed(APP, &token, &vec![1, 2]).await,
        "invalidValue",
        "d must be an object",
    );
}

/// An app's figures come from its indexes and follow every change; on a cluster each
/// shard names the master that holds it.
async fn app_stats_follow_the_indexes(env: &Env) {
    let windows = [Duration::from_secs(300), Duration::from_secs(3600)];
    let stats = |env: &Env| {
        let rs = env.rs.clone();
        async move { rs.app_stats(APP, &windows).await.expect("app_stats") }
    };
    let empty = stats(env).await;
    assert_eq!((empty.sessions, empty.users), (0, 0));
    assert_eq!(empty.sessions_active, [0, 0]);
    let a1 = create(env, "alice").await;
    create(env, "alice").await;
    let bob = create(env, "bob").await;
    env.clock.advance(Duration::from_secs(400));
    create(env, "carol").await;
    assert!(get(env, &bob).await.is_some(), "a get marks bob active now");
    let s = stats(env).await;
    assert_eq!((s.sessions, s.users), (4, 3));
    assert_eq!(
        s.sessions_active,
        [2, 4],
        "carol's and bob's in the last 5 min"
    );
    assert_eq!(s.users_active, [2, 3]);
    assert_eq!(
        s.users_active[0],
        env.rs.activity(APP, windows[0]).await.expect("activity"),
        "users active is what activity answers"
    );
    assert_eq!(s.shards.iter().map(|x| x.sessions).sum::<u64>(), 4);
    assert_eq!(s.shards.iter().map(|x| x.users).sum::<u64>(), 3);
    if env.server.is_some() || env.rs.is_in_memory() {
        assert_eq!(s.shards.len(), 1);
        assert_eq!(s.shards[0].node, None);
    } else {
        assert!(s.shards.len() > 1, "the sharded layout");
        let masters: std::collections::BTreeSet<&str> =
            s.shards.iter().filter_map(|x| x.node.as_deref()).collect();
        assert!(
            s.shards.iter().all(|x| x.node.is_some()),
            "every shard names its master: {:?}",
            s.shards
        );
        assert_eq!(masters.len(), 3, "60 shards spread over the 3 masters");
    }
    assert!(env.rs.kill(APP, &a1).await.expect("kill"));
    let s = stats(env).await;
    assert_eq!((s.sessions, s.users), (3, 3));
    assert_eq!(env.rs.killsoid(APP, "alice").await.expect("killsoid"), 1);
    let s = stats(env).await;
    assert_eq!((s.sessions, s.users), (2, 2));
    expect_err(
        env.rs.app_stats("ab", &windows).await,
        "invalidFormat",
        "Invalid app format",
    );
}

/// Contract: docs/spec/redis-sessions.md#operations
async fn ping_and_quit(env: &Env) {
    assert_eq!(env.rs.ping().await.expect("ping"), "PONG");
    let clone = env.rs.clone();
    clone.quit();
    assert!(matches!(env.rs.ping().await, Err(Error::Closed)));
}

both_stores!(
    validation_errors,
    create_get_counts_reads,
    unknown_token_is_none,
    ttl_expiry,
    sweep_spares_live_sessions,
    no_resave_ends_at_a_fixed_time,
    no_resave_set_replies_stored_w,
    data_merge_and_delete,
    numbers_keep_their_precision,
    deletes_anywhere_in_the_data,
    kill_and_indexes,
    kill_of_a_dead_session_tidies_and_says_zero,
    killsoid_logs_out_everywhere,
    devices_by_handle,
    killall_ends_an_app,
    soapp_most_recent_first,
    special_ids,
    bulk_1000_sessions,
    bulk_sweep_in_batches,
    concurrent_sets_lose_nothing,
    typed_data,
    app_stats_follow_the_indexes,
    ping_and_quit,
);
