//! The middleware through its real layer, on a real redis-server: requests go through
//! `tower::ServiceExt::oneshot` on an axum `Router`.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{redis_sessions, SameSite, Session, SessionError, SessionLayer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::RedisServer;
use tower::ServiceExt;

const APP: &str = "myapp";

async fn store(server: &RedisServer) -> RedisSessions {
    RedisSessions::connect(Options::default().url(server.url()).wipe(0))
        .await
        .expect("connect to the test redis-server")
}

async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    s.insert("via", "login")?; // visitor data, carried into the new session
    s.upgrade(&user).await
}

async fn me(s: Session) -> String {
    match s.id() {
        Some(id) => format!(
            "{id} visits={} via={} w={}",
            s.get::<u64>("visits").unwrap_or(0),
            s.get::<String>("via").unwrap_or_default(),
            s.w().unwrap_or(0)
        ),
        None => "anonymous".into(),
    }
}

async fn inc(s: Session) -> Result<String, SessionError> {
    let visits = s.get::<u64>("visits").unwrap_or(0) + 1;
    s.insert("visits", visits)?;
    Ok(visits.to_string())
}

async fn same(s: Session) -> Result<&'static str, SessionError> {
    if let Some(visits) = s.get::<u64>("visits") {
        s.insert("visits", visits)?;
    }
    Ok("same")
}

async fn remove(s: Session) -> String {
    s.remove("visits").to_string()
}

async fn not_scalar(s: Session) -> Result<&'static str, SessionError> {
    s.insert("list", vec![1, 2])?;
    Ok("stored a list")
}

async fn logout(s: Session) -> Result<&'static str, SessionError> {
    s.destroy().await?;
    Ok("bye")
}

async fn logout_all(s: Session) -> Result<String, SessionError> {
    Ok(s.destroyall().await?.to_string())
}

async fn devices(s: Session) -> Result<String, SessionError> {
    Ok(s.soid().await?.len().to_string())
}

fn routes() -> Router {
    Router::new()
        .route("/login/{user}", post(login))
        .route("/me", get(me))
        .route("/inc", post(inc))
        .route("/same", post(same))
        .route("/remove", post(remove))
        .route("/not-scalar", post(not_scalar))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/devices", get(devices))
        .route("/static", get(|| async { "static" }))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// The `Set-Cookie` header, if any.
    fn set_cookie(&self) -> Option<String> {
        let value = self.headers.get(header::SET_COOKIE)?;
        Some(value.to_str().unwrap().to_owned())
    }
}

/// One request through the whole router; `auth` is a token sent as the cookie `myapp`,
/// or, prefixed with "Bearer ", as the Authorization header.
async fn send(app: &Router, method: &str, uri: &str, auth: Option<&str>) -> Reply {
    send_with(app, method, uri, auth, &[]).await
}

async fn send_with(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    match auth {
        Some(a) if a.starts_with("Bearer ") => req = req.header(header::AUTHORIZATION, a),
        Some(token) => req = req.header(header::COOKIE, format!("theme=x; {APP}={token}")),
        None => {}
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Logs `user` in and returns the token (also checked against the cookie).
async fn log_in(app: &Router, user: &str, auth: Option<&str>) -> String {
    let r = send(app, "POST", &format!("/login/{user}"), auth).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let cookie = r.set_cookie().expect("login sets the cookie");
    assert!(
        cookie.starts_with(&format!("{APP}={};", r.body)),
        "{cookie}"
    );
    r.body
}

/// Calls per command since the server started (INFO commandstats), INFO itself excluded.
fn command_calls(server: &RedisServer) -> HashMap<String, u64> {
    let info = server.command(&["INFO", "commandstats"]).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse().ok()?;
            (name != "info").then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// The commands run (with counts) while `f` runs.
async fn commands_during<F: std::future::Future>(
    server: &RedisServer,
    f: F,
) -> HashMap<String, u64> {
    let before = command_calls(server);
    f.await;
    let after = command_calls(server);
    after
        .into_iter()
        .filter_map(|(name, calls)| {
            let delta = calls - before.get(&name).copied().unwrap_or(0);
            (delta > 0).then_some((name, delta))
        })
        .collect()
}

/// One script call (the `get`, whose inner commands count too: HMGET, HINCRBY r, …) and
/// no write of data: a `set` publishes its cache invalidation, a `create` is a MULTI/EXEC.
fn assert_read_only(calls: &HashMap<String, u64>) {
    assert_eq!(calls.get("evalsha"), Some(&1), "{calls:?}");
    for write in ["publish", "exec", "hdel", "del"] {
        assert!(!calls.contains_key(write), "{write} in {calls:?}");
    }
}

#[tokio::test]
async fn upgrade_sets_a_cookie_with_the_configured_attributes() {
    let server = RedisServer::start();
    let store = store(&server).await;

    // Defaults: named after the app, Path=/, HttpOnly, SameSite=Lax, no Secure on plain
    // HTTP, a browser-session cookie (no Max-Age).
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let r = send(&app, "POST", "/login/alice", None).await;
    let cookie = r.set_cookie().unwrap();
    assert_eq!(
        cookie,
        format!("{APP}={}; Path=/; HttpOnly; SameSite=Lax", r.body)
    );

    // Everything configured.
    let layer = SessionLayer::new(store.clone(), APP)
        .cookie_name("sid")
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(Duration::from_secs(3600))
        .cookie_domain("example.com");
    let app = routes().layer(layer);
    let r = send(&app, "POST", "/login/alice", None).await;
    assert_eq!(
        r.set_cookie().unwrap(),
        format!(
            "sid={}; Path=/; Domain=example.com; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
            r.body
        )
    );

    // Secure follows X-Forwarded-Proto only when the proxy is trusted, and so does the ip.
    let https = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
    ];
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let r = send_with(&app, "POST", "/login/bob", None, &https).await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
    let session = store.get(APP, &r.body).await.unwrap().unwrap();
    assert_eq!(session.ip, "unknown"); // oneshot has no peer address, and XFF is ignored
    let app = routes().layer(SessionLayer::new(store.clone(), APP).trust_proxy(true));
    let r = send_with(&app, "POST", "/login/bob", None, &https).await;
    assert!(r.set_cookie().unwrap().contains("; Secure"));
    let session = store.get(APP, &r.body).await.unwrap().unwrap();
    assert_eq!(session.ip, "203.0.113.7");
    assert_eq!(session.ttl, 7200);

    // The session ttl reaches the store.
    let app = routes().layer(SessionLayer::new(store.clone(), APP).ttl(60));
    let token = log_in(&app, "carol", None).await;
    assert_eq!(store.get(APP, &token).await.unwrap().unwrap().ttl, 60);
}

#[tokio::test]
async fn data_survives_and_unchanged_requests_write_nothing() {
    let server = RedisServer::start();
    let app = routes().layer(SessionLayer::new(store(&server).await, APP));
    let token = log_in(&app, "alice", None).await;

    for expected in 1..=3 {
        let r = send(&app, "POST", "/inc", Some(&token)).await;
        assert_eq!(r.body, expected.to_string());
        assert!(r.set_cookie().is_none(), "the cookie is set on login only");
    }
    // create wrote once (w=1), each of the three changes once more.
    assert_eq!(
        send(&app, "GET", "/me", Some(&token)).await.body,
        "alice visits=3 via=login w=4"
    );

    // A request that reads the session: one script call (the get), no write.
    let calls = commands_during(&server, async {
        assert_eq!(
            send(&app, "GET", "/me", Some(&token)).await.body,
            "alice visits=3 via=login w=4"
        );
    })
    .await;
    assert_read_only(&calls);

    // Setting a value to what it already is, is no change.
    let calls = commands_during(&server, async {
        assert_eq!(
            send(&app, "POST", "/same", Some(&token)).await.status,
            StatusCode::OK
        );
    })
    .await;
    assert_read_only(&calls);

    // A change: the get, and one set (which publishes the cache invalidation).
    let calls = commands_during(&server, async {
        send(&app, "POST", "/inc", Some(&token)).await;
    })
    .await;
    assert_eq!(calls.get("evalsha"), Some(&2), "{calls:?}");
    assert_eq!(calls.get("publish"), Some(&1), "{calls:?}");

    // Visitors, malformed tokens and routes that do not use the session cost nothing.
    let calls = commands_during(&server, async {
        assert_eq!(send(&app, "GET", "/me", None).await.body, "anonymous");
        assert_eq!(
            send(&app, "GET", "/me", Some("too-short")).await.body,
            "anonymous"
        );
        assert_eq!(send(&app, "POST", "/inc", None).await.body, "1"); // kept for the request only
        assert_eq!(
            send(&app, "GET", "/static", Some(&token)).await.body,
            "static"
        );
    })
    .await;
    assert!(calls.is_empty(), "{calls:?}");

    // Removing a key writes a null for it.
    assert_eq!(
        send(&app, "POST", "/remove", Some(&token)).await.body,
        "true"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&token)).await.body,
        "alice visits=0 via=login w=6"
    );
    assert_eq!(
        send(&app, "POST", "/remove", Some(&token)).await.body,
        "false"
    );

    // Only scalar values can be stored: a proper 500, not a panic.
    let r = send(&app, "POST", "/not-scalar", Some(&token)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn upgrade_rotates_the_token_and_kills_the_old_one() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let first = log_in(&app, "alice", None).await;
    send(&app, "POST", "/inc", Some(&first)).await;

    // Logging in again from a live session: a new token with the data; the old one is dead.
    let second = log_in(&app, "alice", Some(&first)).await;
    assert_ne!(first, second);
    assert_eq!(
        send(&app, "GET", "/me", Some(&second)).await.body,
        "alice visits=1 via=login w=1"
    );
    let r = send(&app, "GET", "/me", Some(&first)).await;
    assert_eq!(r.body, "anonymous");
    assert!(store.get(APP, &first).await.unwrap().is_none());
    // The browser that still sends the dead token is told to drop it.
    assert!(r
        .set_cookie()
        .unwrap()
        .starts_with(&format!("{APP}=; Path=/; Max-Age=0")));
    assert_eq!(send(&app, "GET", "/devices", Some(&second)).await.body, "1");

    // A token planted by an attacker (well-formed, unknown) is never adopted.
    let planted = "A".repeat(64);
    let third = log_in(&app, "bob", Some(&planted)).await;
    assert_ne!(third, planted);
}

#[tokio::test]
async fn destroy_clears_the_cookie_and_destroyall_logs_out_every_device() {
    let server = RedisServer::start();
    let app = routes().layer(SessionLayer::new(store(&server).await, APP));
    let laptop = log_in(&app, "alice", None).await;
    let phone = log_in(&app, "alice", None).await;
    let tablet = log_in(&app, "alice", None).await;
    let bob = log_in(&app, "bob", None).await;
    assert_eq!(send(&app, "GET", "/devices", Some(&phone)).await.body, "3");

    // Log out this device.
    let r = send(&app, "POST", "/logout", Some(&tablet)).await;
    assert_eq!(r.body, "bye");
    assert_eq!(
        r.set_cookie().unwrap(),
        format!("{APP}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax")
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&tablet)).await.body,
        "anonymous"
    );
    assert_eq!(send(&app, "GET", "/devices", Some(&phone)).await.body, "2");

    // Log out everywhere from the laptop: the phone is logged out too, bob is not.
    let r = send(&app, "POST", "/logout-all", Some(&laptop)).await;
    assert_eq!(r.body, "2");
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(
        send(&app, "GET", "/me", Some(&phone)).await.body,
        "anonymous"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&laptop)).await.body,
        "anonymous"
    );
    assert!(send(&app, "GET", "/me", Some(&bob))
        .await
        .body
        .starts_with("bob "));

    // Operations that need a logged-in user answer 401 to a visitor.
    let r = send(&app, "POST", "/logout-all", Some(&laptop)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_tokens_work_like_the_cookie() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let token = log_in(&app, "api-client", None).await;
    let bearer = format!("Bearer {token}");
    assert_eq!(send(&app, "POST", "/inc", Some(&bearer)).await.body, "1");
    assert_eq!(send(&app, "POST", "/inc", Some(&bearer)).await.body, "2");
    assert_eq!(
        send(&app, "GET", "/me", Some(&bearer)).await.body,
        "api-client visits=2 via=login w=3"
    );
    // A dead bearer token does not clear anybody's cookie.
    let dead = format!("Bearer {}", "B".repeat(64));
    let r = send(&app, "GET", "/me", Some(&dead)).await;
    assert_eq!(r.body, "anonymous");
    assert!(r.set_cookie().is_none());

    // Turned off, the header is ignored.
    let app = routes().layer(SessionLayer::new(store, APP).bearer(false));
    assert_eq!(
        send(&app, "GET", "/me", Some(&bearer)).await.body,
        "anonymous"
    );
}

#[tokio::test]
async fn the_app_can_be_computed_per_request() {
    let server = RedisServer::start();
    let layer = SessionLayer::per_request_app(store(&server).await, |parts| {
        let host = parts.headers.get("host").and_then(|h| h.to_str().ok());
        host.unwrap_or("default-site").replace('.', "_")
    });
    let app = routes().layer(layer);
    let a = [("host", "site.a")];
    let b = [("host", "site.b")];
    let r = send_with(&app, "POST", "/login/alice", None, &a).await;
    assert!(
        r.set_cookie().unwrap().starts_with("site_a="),
        "the cookie is named after the app"
    );
    let token = r.body;
    let cookie = format!("site_a={token}");
    let me = |site: &'static [(&'static str, &'static str); 1]| {
        let app = app.clone();
        let cookie = cookie.clone();
        async move {
            let mut headers = site.to_vec();
            headers.push(("cookie", cookie.as_str()));
            send_with(&app, "GET", "/me", None, &headers).await.body
        }
    };
    static A: [(&str, &str); 1] = [("host", "site.a")];
    static B: [(&str, &str); 1] = [("host", "site.b")];
    assert!(me(&A).await.starts_with("alice "));
    assert_eq!(me(&B).await, "anonymous");
    let bearer = format!("Bearer {token}");
    assert_eq!(
        send_with(&app, "GET", "/me", Some(&bearer), &b).await.body,
        "anonymous"
    );
    // A name the store would refuse is a server error, answered before the handler.
    let r = send_with(&app, "GET", "/me", None, &[("host", "x")]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_broken_redis_gives_503_not_a_panic() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let url = server.lock().unwrap().url();
    let store = RedisSessions::connect(Options::default().url(url).wipe(0))
        .await
        .unwrap();
    // A handler that changes data and then breaks Redis: the write after it fails.
    let breaker = server.clone();
    let app = routes()
        .route(
            "/inc-and-break",
            post(move |s: Session| async move {
                s.insert("visits", 99).unwrap();
                breaker.lock().unwrap().stop();
                "the handler ran"
            }),
        )
        .layer(SessionLayer::new(store, APP));
    let token = log_in(&app, "alice", None).await;
    let r = send(&app, "POST", "/inc-and-break", Some(&token)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);

    // Redis is down: loading a session, logging in, logging out all answer 503.
    for (method, uri) in [("GET", "/me"), ("POST", "/logout"), ("POST", "/login/bob")] {
        let r = send(&app, method, uri, Some(&token)).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {uri}: {}",
            r.body
        );
        assert_eq!(r.body, "session store unavailable, try again later");
    }
    let r = send(&app, "POST", "/login/bob", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    // Visitors do not need Redis at all.
    assert_eq!(send(&app, "GET", "/me", None).await.body, "anonymous");

    // Back up (empty, as it keeps nothing on disk): the old token is simply unknown.
    server.lock().unwrap().restart();
    let mut answer = String::new();
    for _ in 0..100 {
        let r = send(&app, "GET", "/me", Some(&token)).await;
        if r.status == StatusCode::OK {
            answer = r.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer, "anonymous");
    log_in(&app, "alice", None).await;
}

#[tokio::test]
async fn the_extractor_without_the_layer_is_a_500_response() {
    let app = routes(); // no layer
    let r = send(&app, "GET", "/me", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "session error");
}

#[tokio::test]
async fn the_embedded_store_behaves_the_same() {
    let store = RedisSessions::in_memory(Options::default().wipe(0));
    let app = routes().layer(SessionLayer::new(store, APP));
    let token = log_in(&app, "alice", None).await;
    assert_eq!(send(&app, "POST", "/inc", Some(&token)).await.body, "1");
    assert_eq!(
        send(&app, "GET", "/me", Some(&token)).await.body,
        "alice visits=1 via=login w=2"
    );
    let _ = redis_sessions::DEFAULT_TTL;
}
