//! Interop with the real npm `redis-sessions@4.0.0` on the same Redis and namespace:
//! sessions written by either side are read, changed and ended by the other
//! (docs/spec/redis-sessions.md#key-layout).

mod common;

use redis::Commands;
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use test_support::node::NodePeer;
use test_support::RedisServer;

const APP: &str = "mixedapp";

/// Fields drop in order: the Node peer goes before its Redis (it would log the lost
/// connection otherwise).
struct Fleet {
    node: NodePeer,
    rs: RedisSessions,
    server: RedisServer,
}

async fn fleet() -> Fleet {
    let server = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        server.port()
    ));
    Fleet { server, rs, node }
}

impl Fleet {
    fn node(&mut self, method: &str, args: Value) -> Value {
        let reply = self
            .node
            .call(method, &args.to_string())
            .expect("node call");
        serde_json::from_str(&reply).expect("node reply is JSON")
    }
    fn raw(&self) -> redis::Connection {
        redis::Client::open(self.server.url())
            .and_then(|c| c.get_connection())
            .expect("raw connection")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn node_creates_rust_reads_and_writes() {
    let mut f = fleet().await;
    let created = f.node("create", json!({"app": APP, "id": "node@user.com", "ip": "10.1.2.3", "ttl": 3600, "d": {"lang": "de", "n": 5, "gone": null}}));
    let token = created["token"].as_str().expect("token").to_owned();
    let s = f.rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(
        (s.id.as_str(), s.ip.as_str(), s.ttl, s.r, s.w),
        ("node@user.com", "10.1.2.3", 3600, 1, 1)
    );
    assert_eq!(
        Value::Object(s.d.clone().expect("d")),
        json!({"lang": "de", "n": 5})
    );
    // Node sets → Rust sees the merge
    f.node(
        "set",
        json!({"app": APP, "token": token, "d": {"n": 6, "x": true}}),
    );
    let s = f.rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(
        Value::Object(s.d.expect("d")),
        json!({"lang": "de", "n": 6, "x": true})
    );
    assert_eq!((s.r, s.w), (2, 2));
    // Rust sets → Node sees the merge
    f.rs.set(APP, &token, &json!({"lang": null, "y": "ü"}))
        .await
        .expect("set")
        .expect("live");
    let from_node = f.node("get", json!({"app": APP, "token": token}));
    assert_eq!(from_node["d"], json!({"n": 6, "x": true, "y": "ü"}));
    assert_eq!(from_node["w"], json!(3));
    assert_eq!(from_node["r"], json!(3));
    // Node kills → Rust sees nothing
    assert_eq!(
        f.node("kill", json!({"app": APP, "token": token})),
        json!({"kill": 1})
    );
    assert!(f.rs.get(APP, &token).await.expect("get").is_none());
    common::assert_consistent(&mut f.raw(), "rs");
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_creates_node_reads_and_kills_follow() {
    let mut f = fleet().await;
    let opts = CreateOptions::default()
        .ttl(Duration::from_secs(600))
        .data(json!({"cart": 3, "name": "김철수"}));
    let token =
        f.rs.create(APP, "rustuser", "::1", opts)
            .await
            .expect("create");
    let mut s = f.node("get", json!({"app": APP, "token": token}));
    // A second boundary may pass between the create and the read.
    let idle = s
        .as_object_mut()
        .and_then(|o| o.remove("idle"))
        .and_then(|v| v.as_i64());
    assert!(matches!(idle, Some(0 | 1)), "idle {idle:?}");
    assert_eq!(
        s,
        json!({"id": "rustuser", "r": 1, "w": 1, "ttl": 600, "ip": "::1", "d": {"cart": 3, "name": "김철수"}})
    );
    let s = f.rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(s.r, 2, "Node's read was counted");
    assert!(f.rs.kill(APP, &token).await.expect("kill"));
    assert_eq!(
        f.node("get", json!({"app": APP, "token": token})),
        Value::Null
    );
    common::assert_consistent(&mut f.raw(), "rs");
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_soid_soapp_agree() {
    let mut f = fleet().await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        let t = f.node(
            "create",
            json!({"app": APP, "id": format!("u{i}"), "ip": "1.1.1.1"}),
        );
        tokens.push(t["token"].as_str().expect("token").to_owned());
    }
    for _ in 0..2 {
        tokens.push(
            f.rs.create(APP, "u0", "2.2.2.2", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    assert_eq!(
        f.rs.activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        3
    );
    assert_eq!(
        f.node("activity", json!({"app": APP, "deltaTime": 600})),
        json!({"activity": 3})
    );
    let ours = f.rs.soid(APP, "u0").await.expect("soid");
    let theirs = f.node("soid", json!({"app": APP, "id": "u0"}));
    assert_eq!(ours.len(), 3);
    assert_eq!(theirs["sessions"].as_array().map(Vec::len), Some(3));
    let theirs_app = f.node("soapp", json!({"app": APP, "deltaTime": 600}));
    assert_eq!(theirs_app["sessions"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        f.rs.soapp(APP, Duration::from_secs(600))
            .await
            .expect("soapp")
            .len(),
        5
    );
    // Rust's killsoid → Node sees the id gone; Node's killall → Rust sees the app empty.
    assert_eq!(f.rs.killsoid(APP, "u0").await.expect("killsoid"), 3);
    assert_eq!(
        f.node("soid", json!({"app": APP, "id": "u0"})),
        json!({"sessions": []})
    );
    assert_eq!(
        f.node("activity", json!({"app": APP, "deltaTime": 600})),
        json!({"activity": 2})
    );
    assert_eq!(f.node("killall", json!({"app": APP})), json!({"kill": 2}));
    assert_eq!(
        f.rs.activity(APP, Duration::from_secs(600))
            .await
            .expect("activity"),
        0
    );
    common::assert_consistent(&mut f.raw(), "rs");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_resave_sessions_cross_over() {
    let mut f = fleet().await;
    let t = f.node(
        "create",
        json!({"app": APP, "id": "nr", "ip": "1", "ttl": 100, "no_resave": true}),
    );
    let token = t["token"].as_str().expect("token").to_owned();
    let s = f.rs.get(APP, &token).await.expect("get").expect("live");
    assert!(s.no_resave);
    assert!(s.ttl <= 100 && s.ttl >= 99);
    let theirs = f.node("get", json!({"app": APP, "token": token}));
    assert_eq!(theirs["no_resave"], json!(true));
}

/// After a create from each side, Redis holds exactly the keys and fields of the contract's
/// layout (docs/spec/redis-sessions.md#key-layout), and the same ones whichever side wrote them.
#[tokio::test(flavor = "multi_thread")]
async fn the_layout_is_byte_compatible() {
    let mut f = fleet().await;
    let d = json!({"a": 1, "b": "two"});
    let ours =
        f.rs.create(
            APP,
            "same:id",
            "127.0.0.1",
            CreateOptions::default()
                .ttl(Duration::from_secs(300))
                .data(d.clone()),
        )
        .await
        .expect("create");
    let theirs = f.node(
        "create",
        json!({"app": APP, "id": "other", "ip": "127.0.0.1", "ttl": 300, "d": d}),
    );
    let theirs = theirs["token"].as_str().expect("token").to_owned();
    let mut con = f.raw();
    let mut keys: Vec<String> = con.keys("*").expect("KEYS");
    keys.sort();
    let mut expected = vec![
        format!("rs:{APP}:{ours}"),
        format!("rs:{APP}:{theirs}"),
        format!("rs:{APP}:_sessions"),
        format!("rs:{APP}:_users"),
        format!("rs:{APP}:us:same:id"),
        format!("rs:{APP}:us:other"),
        "rs:SESSIONS".to_owned(),
        // The layout record: ours alone, Node processes never read it.
        "rs:{layout}".to_owned(),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    let record: BTreeMap<String, String> = con.hgetall("rs:{layout}").expect("HGETALL");
    assert_eq!(
        record,
        [("kind", "node"), ("shards", "1"), ("version", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<_, _>>()
    );
    let hash: BTreeMap<String, String> = con.hgetall(format!("rs:{APP}:{ours}")).expect("HGETALL");
    let la = hash.get("la").cloned().expect("la");
    let now: i64 = la.parse().expect("la is an integer");
    let want: BTreeMap<String, String> = [
        ("id", "same:id"),
        ("r", "1"),
        ("w", "1"),
        ("ip", "127.0.0.1"),
        ("la", la.as_str()),
        ("ttl", "300"),
        ("d", r#"{"a":1,"b":"two"}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(hash, want);
    let node_hash: BTreeMap<String, String> =
        con.hgetall(format!("rs:{APP}:{theirs}")).expect("HGETALL");
    assert_eq!(
        node_hash.keys().collect::<Vec<_>>(),
        hash.keys().collect::<Vec<_>>(),
        "same fields as Node writes"
    );
    assert_eq!(node_hash["d"], hash["d"], "same JSON text as Node writes");
    let score: f64 = con
        .zscore(format!("rs:{APP}:_sessions"), format!("{ours}:same:id"))
        .expect("ZSCORE");
    assert_eq!(score as i64, now);
    let score: f64 = con
        .zscore(format!("rs:{APP}:_users"), "same:id")
        .expect("ZSCORE");
    assert_eq!(score as i64, now);
    let score: f64 = con
        .zscore("rs:SESSIONS", format!("{APP}:{ours}:same:id"))
        .expect("ZSCORE");
    assert_eq!(score as i64, now + 300);
    let members: Vec<String> = con
        .smembers(format!("rs:{APP}:us:same:id"))
        .expect("SMEMBERS");
    assert_eq!(members, vec![ours.clone()]);
    // Node's sessions wear the same score shapes.
    let score: f64 = con
        .zscore("rs:SESSIONS", format!("{APP}:{theirs}:other"))
        .expect("ZSCORE");
    assert!((score as i64 - (now + 300)).abs() <= 1);
}

/// Node processes run none of our scripts, so what they do writes no event; the sweep of a
/// Rust process with events on reports the expiry of a session Node created (an `ended`
/// `expired` event with Node's id and ip, never a `created` one).
#[tokio::test(flavor = "multi_thread")]
async fn node_writes_no_events_and_the_rust_sweep_reports_node_sessions() {
    use redis_sessions::{EndReason, EventOptions, EventType, EventsFrom, ManualClock};
    let mut f = fleet().await;
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(
        Options::default()
            .url(f.server.url())
            .wipe(std::time::Duration::ZERO)
            .clock(clock.clone())
            .events(EventOptions::default()),
    )
    .await
    .expect("connect");
    let short = f.node(
        "create",
        json!({"app": APP, "id": "n1", "ip": "10.9.9.9", "ttl": 10}),
    );
    let long = f.node(
        "create",
        json!({"app": APP, "id": "n2", "ip": "10.9.9.8", "ttl": 3600}),
    );
    let long = long["token"].as_str().expect("token").to_owned();
    assert_eq!(
        f.node("kill", json!({"app": APP, "token": long}))["kill"],
        1
    );
    let page = rs
        .events_page(APP, &EventsFrom::Start, 100)
        .await
        .expect("page");
    assert!(
        page.events.is_empty(),
        "Node's create and kill wrote no event"
    );
    clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(rs.sweep().await.expect("sweep"), 1);
    let page = rs
        .events_page(APP, &EventsFrom::Start, 100)
        .await
        .expect("page");
    let short = short["token"].as_str().expect("token");
    let got: Vec<_> = page
        .events
        .iter()
        .map(|e| {
            (
                e.kind,
                e.reason,
                e.id.as_str(),
                e.ip.as_str(),
                e.device.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(
            EventType::Ended,
            Some(EndReason::Expired),
            "n1",
            "10.9.9.9",
            redis_sessions::device_handle(short)
        )]
    );
}
