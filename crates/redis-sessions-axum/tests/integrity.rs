//! Values come back exactly or are refused, and a session whose stored data is corrupt
//! never locks its user out: on a real redis-server and on the embedded store.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{Session, SessionError, SessionLayer};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use test_support::RedisServer;
use tower::ServiceExt;

const APP: &str = "myapp";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Ids {
    signed: i64,
    unsigned: u64,
    uid: u64,
}

const IDS: Ids = Ids {
    signed: i64::MIN,
    unsigned: u64::MAX,
    uid: 1234567890123456789,
};

/// Inserts the extremes and reads them back in the same request.
async fn put(s: Session) -> Result<String, SessionError> {
    s.insert("uid", 1234567890123456789u64)?;
    s.insert("max_u64", u64::MAX)?;
    s.insert("max_i64", i64::MAX)?;
    s.insert("min_i64", i64::MIN)?;
    s.insert("safe", 9007199254740991u64)?;
    s.insert("neg_zero", -0.0f64)?;
    s.insert("ids", IDS)?;
    read(s).await
}

/// Reads them back (a later request).
async fn read(s: Session) -> Result<String, SessionError> {
    let ids: Ids = s.get("ids")?.unwrap_or(Ids {
        signed: 0,
        unsigned: 0,
        uid: 0,
    });
    Ok(format!(
        "{} {} {} {} {} {} {}",
        s.get::<u64>("uid")?.unwrap_or(0),
        s.get::<u64>("max_u64")?.unwrap_or(0),
        s.get::<i64>("max_i64")?.unwrap_or(0),
        s.get::<i64>("min_i64")?.unwrap_or(0),
        s.get::<u64>("safe")?.unwrap_or(0),
        s.get::<f64>("neg_zero")?.map_or(0, |f| f.to_bits()),
        ids == IDS,
    ))
}

async fn nan(s: Session, Path(which): Path<String>) -> Result<&'static str, SessionError> {
    let bad = match which.as_str() {
        "nan" => f64::NAN,
        "inf" => f64::INFINITY,
        _ => f64::NEG_INFINITY,
    };
    s.insert("keep", vec![1.0, bad])?;
    Ok("stored")
}

async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    s.upgrade(&user).await
}

async fn me(s: Session) -> Result<String, SessionError> {
    Ok(match s.id() {
        Some(id) => format!("{id} keep={}", s.get::<u64>("keep")?.unwrap_or(0)),
        None => "anonymous".into(),
    })
}

async fn logout(s: Session) -> Result<&'static str, SessionError> {
    s.destroy().await?;
    Ok("bye")
}

async fn clear(s: Session) -> &'static str {
    s.clear();
    "cleared"
}

async fn clear_and_add(s: Session) -> Result<&'static str, SessionError> {
    s.clear();
    s.insert("cart", vec!["tea"])?;
    Ok("added")
}

fn routes() -> Router {
    Router::new()
        .route("/put", post(put))
        .route("/read", get(read))
        .route("/bad/{which}", post(nan))
        .route("/login/{user}", post(login))
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route("/clear", post(clear))
        .route("/clear-and-add", post(clear_and_add))
}

struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

async fn send(app: &Router, method: &str, uri: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::COOKIE, format!("{APP}={token}"));
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        set_cookie,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn log_in(app: &Router, user: &str, token: Option<&str>) -> String {
    let r = send(app, "POST", &format!("/login/{user}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn expected() -> String {
    format!(
        "1234567890123456789 {} {} {} 9007199254740991 {} true",
        u64::MAX,
        i64::MAX,
        i64::MIN,
        (-0.0f64).to_bits()
    )
}

/// The extremes, in the same request and across requests; NaN and infinities refused at
/// `insert` without touching the stored data.
async fn values_are_exact_or_refused(store: &RedisSessions) {
    let app = routes().layer(SessionLayer::new(store.clone(), APP).secure(false));
    let token = log_in(&app, "alice", None).await;
    let r = send(&app, "POST", "/put", Some(&token)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, &*expected()));
    let r = send(&app, "GET", "/read", Some(&token)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, &*expected()));
    // Stored so that Node and REST read them: a number Node keeps, or marked decimal text.
    let d = store.get(APP, &token).await.unwrap().unwrap().d.unwrap();
    assert_eq!(d["uid"], serde_json::json!("$json:1234567890123456789"));
    assert_eq!(
        d["max_u64"],
        serde_json::json!("$json:18446744073709551615")
    );
    assert_eq!(
        d["min_i64"],
        serde_json::json!("$json:-9223372036854775808")
    );
    assert_eq!(d["safe"], serde_json::json!(9007199254740991u64));

    // One encoding for both crates: the library reads what the middleware stored, the
    // middleware reads what the library's set_typed stored, and a mismatch is the same
    // error in both.
    let session = store.get(APP, &token).await.unwrap().unwrap();
    assert_eq!(session.get::<Ids>("ids").unwrap(), Some(IDS));
    assert_eq!(session.get::<u64>("max_u64").unwrap(), Some(u64::MAX));
    assert_eq!(session.get::<i64>("min_i64").unwrap(), Some(i64::MIN));
    assert!(matches!(
        session.get::<String>("ids"),
        Err(redis_sessions::Error::WrongType { .. })
    ));
    store
        .set_typed(
            APP,
            &token,
            &std::collections::BTreeMap::from([("ids", &IDS)]),
        )
        .await
        .unwrap();
    store
        .set_typed(APP, &token, &serde_json::json!({"uid": u64::MAX - 1}))
        .await
        .unwrap();
    let r = send(&app, "GET", "/read", Some(&token)).await;
    assert!(
        r.body.starts_with(&format!("{} ", u64::MAX - 1)) && r.body.ends_with(" true"),
        "{}",
        r.body
    );

    let before = store.get(APP, &token).await.unwrap().unwrap();
    for which in ["nan", "inf", "-inf"] {
        let r = send(&app, "POST", &format!("/bad/{which}"), Some(&token)).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{which}");
        assert_ne!(r.body, "stored");
    }
    let after = store.get(APP, &token).await.unwrap().unwrap();
    assert_eq!(after.w, before.w, "nothing written");
    assert!(!after.d.unwrap().contains_key("keep"));
}

#[tokio::test]
async fn values_are_exact_or_refused_on_redis() {
    let server = RedisServer::start();
    let store = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .unwrap();
    values_are_exact_or_refused(&store).await;

    // The Node.js module reads the big integers as marked decimal text, and BigInt of the
    // text after the marker is the exact value; a Node write of the same text reads back.
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let token = log_in(&app, "bob", None).await;
    send(&app, "POST", "/put", Some(&token)).await;
    let mut node = test_support::node::NodePeer::start(&format!(
        r#"{{"port":{},"cachetime":0}}"#,
        server.port()
    ));
    let reply = node
        .call("get", &format!(r#"{{"app":"{APP}","token":"{token}"}}"#))
        .expect("node reads the session");
    let session: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let uid = session["d"]["uid"].as_str().expect("a string for Node");
    let digits = uid
        .strip_prefix(redis_sessions::value::JSON_MARKER)
        .unwrap();
    assert_eq!(digits.parse::<u64>().unwrap(), 1234567890123456789);
    assert_eq!(session["d"]["max_u64"], "$json:18446744073709551615");
    let set = format!(
        r#"{{"app":"{APP}","token":"{token}","d":{{"uid":"$json:{}"}}}}"#,
        u64::MAX - 1
    );
    node.call("set", &set).expect("node writes");
    let r = send(&app, "GET", "/read", Some(&token)).await;
    assert!(
        r.body.starts_with(&format!("{} ", u64::MAX - 1)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn values_are_exact_or_refused_in_memory() {
    let store = RedisSessions::in_memory(Options::default().wipe(Duration::ZERO));
    values_are_exact_or_refused(&store).await;
}

/// Overwrites the session's stored data with text that is not JSON, as a broken writer
/// (or a hand edit gone wrong) leaves it.
fn corrupt(server: &RedisServer, token: &str) {
    let key = format!("rs:{APP}:{token}");
    server.command(&["HSET", &key, "d", "{\"a\":xyz"]).unwrap();
}

/// True when the session's key is gone from Redis.
fn gone(server: &RedisServer, token: &str) -> bool {
    let key = format!("rs:{APP}:{token}");
    server.strings(&["EXISTS", &key]).unwrap() == ["0"]
}

#[tokio::test]
async fn a_corrupt_session_never_locks_its_user_out() {
    let server = RedisServer::start();
    let store = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .unwrap();
    let app = routes().layer(
        SessionLayer::new(store.clone(), APP)
            .secure(false)
            .visitors(true),
    );
    let token = log_in(&app, "alice", None).await;
    corrupt(&server, &token);
    let err = store.get(APP, &token).await.unwrap_err();
    assert_eq!(
        err.kind(),
        redis_sessions_axum::redis_sessions::ErrorKind::Corrupt
    );

    // A read: no usable session, not a 500; the cookie is kept (an operator may repair it).
    let r = send(&app, "GET", "/me", Some(&token)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "anonymous"));
    assert_eq!(r.set_cookie, None);

    // Login replaces it: a new token, the corrupt session killed.
    let r = send(&app, "POST", "/login/alice", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let fresh = r.body;
    assert_ne!(fresh, token);
    assert!(r
        .set_cookie
        .unwrap()
        .starts_with(&format!("{APP}={fresh};")));
    assert!(gone(&server, &token), "killed in the store");
    assert_eq!(
        send(&app, "GET", "/me", Some(&fresh)).await.body,
        "alice keep=0"
    );

    // Logout kills it and clears the cookie.
    corrupt(&server, &fresh);
    let r = send(&app, "POST", "/logout", Some(&fresh)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "bye"));
    assert!(r.set_cookie.unwrap().contains("Max-Age=0"));
    assert!(gone(&server, &fresh), "killed in the store");

    // clear() kills it and clears the cookie.
    let third = log_in(&app, "alice", None).await;
    corrupt(&server, &third);
    let r = send(&app, "POST", "/clear", Some(&third)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "cleared"));
    assert!(r.set_cookie.unwrap().contains("Max-Age=0"));
    assert!(gone(&server, &third), "killed in the store");

    // clear() then a write: a new visitor session replaces it.
    let fourth = log_in(&app, "alice", None).await;
    corrupt(&server, &fourth);
    let r = send(&app, "POST", "/clear-and-add", Some(&fourth)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "added"));
    let cookie = r.set_cookie.unwrap();
    let visitor = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(visitor.len(), 64, "{cookie}");
    assert_ne!(visitor, fourth);
    let session = store.get(APP, visitor).await.unwrap().unwrap();
    assert!(redis_sessions_axum::is_visitor_id(&session.id));
    assert!(gone(&server, &fourth), "killed in the store");
}
