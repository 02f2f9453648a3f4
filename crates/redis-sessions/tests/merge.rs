//! Differential property test of create and set: hostile data (see hostile/mod.rs) through
//! each store, checked after every call against a reference of what the Node module holds
//! (a JavaScript object: doubles, array-index keys first, null deletes). On Redis the stored
//! `d` text is checked too: valid JSON, no duplicate key, the reference's keys and values.

mod common;
mod hostile;

use hostile::JsObject;
use proptest::prelude::*;
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::{Map, Value};
use std::sync::OnceLock;
use std::time::Duration;
use test_support::RedisServer;

const APP: &str = "mergeapp";

fn redis_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// Creates a session with `create`, applies `sets` in turn, and checks each reply, each
/// read and (with `raw`) each stored text against the reference.
async fn run(
    rs: &RedisSessions,
    mut raw: Option<redis::Connection>,
    create: &Map<String, Value>,
    sets: &[Map<String, Value>],
) {
    let token = rs
        .create(
            APP,
            "user",
            "127.0.0.1",
            CreateOptions::default().data(Value::Object(create.clone())),
        )
        .await
        .expect("create");
    let mut model = JsObject::created(create);
    let check = |raw: &mut Option<redis::Connection>, model: &JsObject, what: &str| {
        if let Some(con) = raw.as_mut() {
            let key = format!("rs:{APP}:{token}");
            let stored: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("d")
                .query(con)
                .expect("HGET");
            assert_eq!(
                &JsObject::parse_stored(stored.as_deref()),
                model,
                "stored d after {what}: {stored:?}"
            );
        }
    };
    check(&mut raw, &model, "create");
    let s = rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(JsObject::of(s.d.as_ref()), model, "get after create");
    for (i, d) in sets.iter().enumerate() {
        for (k, v) in d {
            model.assign(k, v);
        }
        let s = rs
            .set(APP, &token, &Value::Object(d.clone()))
            .await
            .expect("set")
            .expect("live");
        assert_eq!(JsObject::of(s.d.as_ref()), model, "reply of set {i}: {d:?}");
        check(&mut raw, &model, &format!("set {i}: {d:?}"));
    }
    let s = rs.get(APP, &token).await.expect("get").expect("live");
    assert_eq!(JsObject::of(s.d.as_ref()), model, "get after the sets");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn redis_store_merges_as_node_does(
        create in hostile::data(true),
        sets in prop::collection::vec(hostile::data(true), 1..6),
    ) {
        let server = redis_server();
        runtime().block_on(async {
            let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
                .await
                .expect("connect");
            let raw = redis::Client::open(server.url()).and_then(|c| c.get_connection()).expect("raw");
            run(&rs, Some(raw), &create, &sets).await;
        });
    }

    #[test]
    fn memory_store_merges_as_node_does(
        create in hostile::data(true),
        sets in prop::collection::vec(hostile::data(true), 1..6),
    ) {
        runtime().block_on(async {
            let rs = RedisSessions::in_memory(Options::default().wipe(Duration::ZERO));
            run(&rs, None, &create, &sets).await;
        });
    }
}

/// The cases seen by a hostile client (issue 10), on both stores.
#[tokio::test]
async fn reported_cases() {
    let server = redis_server();
    let cases: &[(&str, &[&str])] = &[
        (r#"{"a":":xyz","b":"c"}"#, &[r#"{":":1}"#]),
        (r#"{"a":":"}"#, &[r#"{":":1}"#]),
        (r#"{"s":"x",":1,":true}"#, &[r#"{",":0.1}"#]),
        (r#"{"a":":xyz"}"#, &[r#"{":":null}"#]),
        (r#"{"x":1}"#, &[r#"{"x":3.7998950481414795}"#]),
        (
            r#"{"b":1,"a":2}"#,
            &[r#"{"1":3,"c":4}"#, r#"{"b":null,"0":5}"#],
        ),
    ];
    for (create, sets) in cases {
        let create: Map<String, Value> = serde_json::from_str(create).expect("case");
        let sets: Vec<Map<String, Value>> = sets
            .iter()
            .map(|s| serde_json::from_str(s).expect("case"))
            .collect();
        let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
            .await
            .expect("connect");
        let raw = redis::Client::open(server.url())
            .and_then(|c| c.get_connection())
            .expect("raw");
        run(&rs, Some(raw), &create, &sets).await;
        run(
            &RedisSessions::in_memory(Options::default().wipe(Duration::ZERO)),
            None,
            &create,
            &sets,
        )
        .await;
    }
}

/// Stored text that is not a JSON object is reported as corrupt and left as it was.
#[tokio::test]
async fn unreadable_stored_text_is_reported_and_kept() {
    let server = redis_server();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    let mut raw = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("raw");
    for text in [
        "not json",
        r#"{"a":1,"#,
        r#"{"a" 1}"#,
        r#"{"a":"x}"#,
        "[1,2]",
        r#"{"a":}"#,
    ] {
        let token = rs
            .create(APP, "user", "127.0.0.1", CreateOptions::default())
            .await
            .expect("create");
        let key = format!("rs:{APP}:{token}");
        redis::cmd("HSET")
            .arg(&key)
            .arg("d")
            .arg(text)
            .exec(&mut raw)
            .expect("HSET");
        let err = rs
            .set(APP, &token, &serde_json::json!({"b": 2}))
            .await
            .expect_err("corrupt");
        assert_eq!(err.name(), "corruptSession", "{text}: {err}");
        let kept: String = redis::cmd("HGET")
            .arg(&key)
            .arg("d")
            .query(&mut raw)
            .expect("HGET");
        assert_eq!(kept, text);
    }
}
