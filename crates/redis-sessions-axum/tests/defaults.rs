//! The middleware's defaults (issue 23): logins safe under concurrency, Secure by default,
//! nothing saved from a failed request, the absolute timeout across rotations, proxies,
//! rolling cookies and per-session expiry. Real redis-server and the embedded store.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Request, StatusCode, Uri};
use axum::routing::{get, post};
use axum::{Extension, Router};
use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{Session, SessionError, SessionLayer};
use std::sync::Arc;
use std::time::Duration;
use test_support::RedisServer;
use tokio::sync::Notify;
use tower::ServiceExt;

const APP: &str = "myapp";

/// Lets a test hold a request inside its handler: `entered` is told when it is in,
/// `release` lets it finish.
#[derive(Clone, Default)]
struct Gate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    s.upgrade(&user).await
}

async fn rotate(s: Session) -> Result<String, SessionError> {
    s.rotate().await
}

async fn me(s: Session) -> Result<String, SessionError> {
    let keys: Vec<String> = s.data().keys().cloned().collect();
    Ok(match s.id() {
        Some(id) => format!("{id} {}", keys.join(",")),
        None if s.is_visitor() => format!("visitor {}", keys.join(",")),
        None => "anonymous".into(),
    })
}

/// Writes `key`, and with `?wait=1` waits at the gate before answering.
async fn write(
    s: Session,
    Path(key): Path<String>,
    uri: Uri,
    Extension(gate): Extension<Gate>,
) -> Result<&'static str, SessionError> {
    s.insert(&key, 1)?;
    if uri.query() == Some("wait=1") {
        let released = gate.release.notified();
        gate.entered.notify_one();
        released.await;
    }
    Ok("written")
}

/// Writes, then fails with a 500.
async fn fail(s: Session) -> Result<&'static str, (StatusCode, &'static str)> {
    s.insert("failed", 1)
        .map_err(|_| (StatusCode::BAD_REQUEST, "insert"))?;
    Err((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
}

/// Logs in with "remember me" for 30 days (`?days=0`: a browser-session cookie).
async fn remember(s: Session, Path(user): Path<String>, uri: Uri) -> Result<String, SessionError> {
    let lifetime = match uri.query() {
        Some("days=0") => None,
        _ => Some(Duration::from_secs(30 * 24 * 3600)),
    };
    s.set_expiry(lifetime)?;
    s.upgrade(&user).await
}

/// Reads the session and waits at the gate.
async fn hold(s: Session, Extension(gate): Extension<Gate>) -> Result<String, SessionError> {
    let released = gate.release.notified();
    gate.entered.notify_one();
    released.await;
    Ok(s.id().unwrap_or_default())
}

async fn reserved(s: Session) -> Result<&'static str, SessionError> {
    s.insert("$rs:login", 1)?;
    Ok("inserted")
}

fn routes(gate: &Gate) -> Router {
    Router::new()
        .route("/remember/{user}", post(remember))
        .route("/reserved", post(reserved))
        .route("/hold", get(hold))
        .route("/login/{user}", post(login))
        .route("/rotate", post(rotate))
        .route("/me", get(me))
        .route("/write/{key}", post(write))
        .route("/fail", post(fail))
        .layer(Extension(gate.clone()))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn set_cookie(&self) -> Option<String> {
        let value = self.headers.get(header::SET_COOKIE)?;
        Some(value.to_str().unwrap().to_owned())
    }

    /// The token the response set in the cookie.
    fn cookie_token(&self) -> String {
        let cookie = self.set_cookie().expect("a Set-Cookie header");
        let pair = cookie.split(';').next().unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    }
}

async fn send(app: &Router, method: &str, uri: &str, token: Option<&str>) -> Reply {
    send_with(app, method, uri, token, &[]).await
}

async fn send_with(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::COOKIE, format!("{APP}={token}"));
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

async fn log_in(app: &Router, user: &str, token: Option<&str>) -> String {
    let r = send(app, "POST", &format!("/login/{user}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.cookie_token(), r.body);
    r.body
}

async fn redis_store(server: &RedisServer) -> RedisSessions {
    RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .unwrap()
}

fn memory_store() -> RedisSessions {
    RedisSessions::in_memory(Options::default().wipe(Duration::ZERO))
}

/// A request in flight during a rotation, and requests sent with the old token after it:
/// none clears or overwrites the new cookie, and none has its write silently lost (409,
/// retried with the new cookie).
async fn rotation_is_safe_under_concurrency(store: RedisSessions) {
    let gate = Gate::default();
    // A persistent, rolling cookie: a refresh must not resurrect the replaced token either.
    let layer = SessionLayer::new(store.clone(), APP)
        .visitors(true)
        .max_age(Duration::from_secs(3600));
    let app = routes(&gate).layer(layer);
    let old = log_in(&app, "alice", None).await;

    // A slow request starts with the old token and holds its session...
    let entered = gate.entered.notified();
    let slow = tokio::spawn({
        let app = app.clone();
        let old = old.clone();
        async move { send(&app, "POST", "/write/slow?wait=1", Some(&old)).await }
    });
    entered.await;
    // ...while another request rotates the token.
    let r = send(&app, "POST", "/rotate", Some(&old)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.cookie_token();
    assert_ne!(new, old);
    gate.release.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::CONFLICT, "{}", slow.body);
    assert!(slow.body.contains("retry"), "{}", slow.body);
    assert_eq!(slow.set_cookie(), None, "the new cookie is left alone");
    // Not saved anywhere, and said so; the retry (with the new cookie) saves it.
    assert_eq!(send(&app, "GET", "/me", Some(&new)).await.body, "alice ");
    let retry = send(&app, "POST", "/write/slow", Some(&new)).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(
        retry.cookie_token(),
        new,
        "the rolling refresh of the new cookie"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&new)).await.body,
        "alice slow"
    );

    // A request that only reads, in flight during a rotation: its rolling refresh would
    // send the replaced token's cookie again; it sends none.
    let entered = gate.entered.notified();
    let reader = tokio::spawn({
        let app = app.clone();
        let new = new.clone();
        async move { send(&app, "GET", "/hold", Some(&new)).await }
    });
    entered.await;
    let newer = send(&app, "POST", "/rotate", Some(&new))
        .await
        .cookie_token();
    gate.release.notify_one();
    let reader = reader.await.unwrap();
    assert_eq!((reader.status, reader.set_cookie()), (StatusCode::OK, None));
    assert_eq!(
        send(&app, "GET", "/me", Some(&newer)).await.body,
        "alice slow"
    );

    // Requests sent with the old token that arrive after the rotation: 409, no cookie.
    for (method, uri) in [("GET", "/me"), ("POST", "/write/late")] {
        let r = send(&app, method, uri, Some(&old)).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{uri}: {}", r.body);
        assert_eq!(r.set_cookie(), None, "{uri}");
    }
    assert_eq!(
        send(&app, "GET", "/me", Some(&newer)).await.body,
        "alice slow"
    );

    // Visitor to login: the same.
    let r = send(&app, "POST", "/write/cart", None).await;
    let visitor = r.cookie_token();
    let entered = gate.entered.notified();
    let slow = tokio::spawn({
        let app = app.clone();
        let visitor = visitor.clone();
        async move { send(&app, "POST", "/write/slow?wait=1", Some(&visitor)).await }
    });
    entered.await;
    let bob = log_in(&app, "bob", Some(&visitor)).await;
    gate.release.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(
        (slow.status, slow.set_cookie()),
        (StatusCode::CONFLICT, None)
    );
    assert_eq!(send(&app, "GET", "/me", Some(&bob)).await.body, "bob cart");
    let r = send(&app, "POST", "/write/x", Some(&visitor)).await;
    assert_eq!((r.status, r.set_cookie()), (StatusCode::CONFLICT, None));

    // The mark names no token and is a visitor id, left out of filtered listings.
    let marks: Vec<_> = store
        .soapp(APP, Duration::from_secs(60))
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.id.starts_with(redis_sessions_axum::ROTATED_PREFIX))
        .collect();
    assert_eq!(marks.len(), 3, "{marks:?}");
    for mark in &marks {
        assert!(redis_sessions_axum::is_visitor_id(&mark.id));
        assert!(!mark.id.contains(&old) && !mark.id.contains(&visitor));
    }

    // Logging out (no rotation) still tells a browser with the dead token to drop it.
    let carol = log_in(&app, "carol", None).await;
    store.kill(APP, &carol).await.unwrap();
    let r = send(&app, "GET", "/me", Some(&carol)).await;
    assert_eq!(r.body, "anonymous");
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn rotation_is_safe_under_concurrency_on_redis() {
    let server = RedisServer::start();
    rotation_is_safe_under_concurrency(redis_store(&server).await).await;
}

#[tokio::test]
async fn rotation_is_safe_under_concurrency_in_memory() {
    rotation_is_safe_under_concurrency(memory_store()).await;
}

/// Secure by default; `SameSite=None` without `Secure` refused when configured.
#[tokio::test]
async fn secure_by_default_and_same_site_none_needs_it() {
    use redis_sessions_axum::{CookieSecure, SameSite};
    let gate = Gate::default();
    let store = memory_store();
    let app = routes(&gate).layer(SessionLayer::new(store.clone(), APP));
    let r = send(&app, "POST", "/login/alice", None).await;
    assert!(r.set_cookie().unwrap().contains("; Secure;"));
    let layer = SessionLayer::new(store.clone(), APP).same_site(SameSite::None);
    let r = send(&routes(&gate).layer(layer), "POST", "/login/alice", None).await;
    assert!(r.set_cookie().unwrap().ends_with("; Secure; SameSite=None"));
    for secure in [CookieSecure::Never, CookieSecure::Auto] {
        let refused = std::panic::catch_unwind(|| {
            SessionLayer::new(memory_store(), APP)
                .secure(secure)
                .same_site(SameSite::None)
        });
        assert!(refused.is_err(), "{secure:?} then None");
        let refused = std::panic::catch_unwind(|| {
            SessionLayer::new(memory_store(), APP)
                .same_site(SameSite::None)
                .secure(secure)
        });
        assert!(refused.is_err(), "None then {secure:?}");
    }
}

/// A 5xx response saves nothing by default (the visitor's or the user's); configurable.
async fn server_errors_save_nothing(store: RedisSessions) {
    let gate = Gate::default();
    let app = routes(&gate).layer(SessionLayer::new(store.clone(), APP).visitors(true));
    // A visitor whose request fails gets no session.
    let r = send(&app, "POST", "/fail", None).await;
    assert_eq!(
        (r.status, r.set_cookie()),
        (StatusCode::INTERNAL_SERVER_ERROR, None)
    );
    // A user's failed request leaves the session as it was.
    let token = log_in(&app, "alice", None).await;
    let w = store.get(APP, &token).await.unwrap().unwrap().w;
    let r = send(&app, "POST", "/fail", Some(&token)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let session = store.get(APP, &token).await.unwrap().unwrap();
    assert_eq!(session.w, w, "nothing written");
    assert_eq!(session.d, None);
    // Opted in: saved.
    let app = routes(&gate).layer(
        SessionLayer::new(store.clone(), APP)
            .visitors(true)
            .save_on_server_error(true),
    );
    let r = send(&app, "POST", "/fail", Some(&token)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        send(&app, "GET", "/me", Some(&token)).await.body,
        "alice failed"
    );
    let r = send(&app, "POST", "/fail", None).await;
    assert!(r.set_cookie().is_some(), "a visitor session");
}

#[tokio::test]
async fn server_errors_save_nothing_on_redis() {
    let server = RedisServer::start();
    server_errors_save_nothing(redis_store(&server).await).await;
}

#[tokio::test]
async fn server_errors_save_nothing_in_memory() {
    server_errors_save_nothing(memory_store()).await;
}

/// The absolute timeout counts from the first login, however often the token rotates.
async fn absolute_timeout_survives_rotations(store: RedisSessions) {
    let gate = Gate::default();
    let layer = SessionLayer::new(store.clone(), APP).absolute_timeout(Duration::from_secs(10));
    let app = routes(&gate).layer(layer);
    let mut token = log_in(&app, "alice", None).await;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let r = send(&app, "POST", "/rotate", Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        token = r.cookie_token();
        // The first login time is the middleware's, hidden from the handler.
        assert_eq!(send(&app, "GET", "/me", Some(&token)).await.body, "alice ");
    }
    tokio::time::sleep(Duration::from_millis(10_500).saturating_sub(started.elapsed())).await;
    let r = send(&app, "GET", "/me", Some(&token)).await;
    assert_eq!(
        r.body, "anonymous",
        "ended 10 s after login, not after the last rotation"
    );
    assert!(
        store.get(APP, &token).await.unwrap().is_none(),
        "killed in the store"
    );
    // The key is the middleware's: not for handlers to write.
    let fresh = log_in(&app, "bob", None).await;
    let r = send(&app, "POST", "/reserved", Some(&fresh)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn absolute_timeout_survives_rotations_on_redis() {
    let server = RedisServer::start();
    absolute_timeout_survives_rotations(redis_store(&server).await).await;
}

#[tokio::test]
async fn absolute_timeout_survives_rotations_in_memory() {
    absolute_timeout_survives_rotations(memory_store()).await;
}

/// The max age of the cookie, from a Set-Cookie value.
fn max_age(cookie: &str) -> Option<u64> {
    cookie
        .split("; ")
        .find_map(|part| part.strip_prefix("Max-Age="))
        .map(|v| v.parse().unwrap())
}

/// Rolling cookies: a request that uses a live session gets its cookie again with a fresh
/// Max-Age, at no store cost; "remember me" gives one session its own lifetime.
async fn rolling_cookies_and_remember_me(store: RedisSessions) {
    let gate = Gate::default();
    let hour = Duration::from_secs(3600);
    let app = routes(&gate).layer(SessionLayer::new(store.clone(), APP).max_age(hour));
    let token = log_in(&app, "alice", None).await;
    let r = send(&app, "GET", "/me", Some(&token)).await;
    let cookie = r.set_cookie().expect("the cookie again");
    assert!(cookie.starts_with(&format!("{APP}={token};")), "{cookie}");
    assert_eq!(max_age(&cookie), Some(3600));
    let w = store.get(APP, &token).await.unwrap().unwrap().w;
    assert_eq!(w, 1, "refreshing the cookie writes nothing");
    // Off: no refresh. Without max age: nothing to refresh.
    let fixed = routes(&gate).layer(
        SessionLayer::new(store.clone(), APP)
            .max_age(hour)
            .rolling(false),
    );
    assert_eq!(
        send(&fixed, "GET", "/me", Some(&token)).await.set_cookie(),
        None
    );
    let plain = routes(&gate).layer(SessionLayer::new(store.clone(), APP));
    assert_eq!(
        send(&plain, "GET", "/me", Some(&token)).await.set_cookie(),
        None
    );

    // Remember me: 30 days for this session (cookie and store ttl), kept by rotate and
    // refreshed by later requests, on a layer whose cookies are browser-session ones.
    let days30 = 30 * 24 * 3600;
    let r = send(&plain, "POST", "/remember/bob", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bob = r.body.clone();
    assert_eq!(max_age(&r.set_cookie().unwrap()), Some(days30));
    assert_eq!(
        store.get(APP, &bob).await.unwrap().unwrap().ttl,
        days30 as i64
    );
    let r = send(&plain, "GET", "/me", Some(&bob)).await;
    assert_eq!(r.body, "bob ", "the lifetime is the middleware's, hidden");
    assert_eq!(max_age(&r.set_cookie().unwrap()), Some(days30));
    let r = send(&plain, "POST", "/rotate", Some(&bob)).await;
    let rotated = r.cookie_token();
    assert_eq!(max_age(&r.set_cookie().unwrap()), Some(days30));
    assert_eq!(
        store.get(APP, &rotated).await.unwrap().unwrap().ttl,
        days30 as i64
    );
    // A login without it: the layer's choice (browser-session cookie, ttl 7200).
    let r = send(&plain, "POST", "/login/carol", None).await;
    assert_eq!(max_age(&r.set_cookie().unwrap()), None);
    assert_eq!(store.get(APP, &r.body).await.unwrap().unwrap().ttl, 7200);
    // "Not remembered" on a layer with a max age: a browser-session cookie.
    let r = send(&app, "POST", "/remember/dave?days=0", None).await;
    assert_eq!(max_age(&r.set_cookie().unwrap()), None);
    let r = send(&app, "GET", "/me", Some(&r.body)).await;
    assert_eq!(r.set_cookie(), None, "nothing to roll");
}

#[tokio::test]
async fn rolling_cookies_and_remember_me_on_redis() {
    let server = RedisServer::start();
    rolling_cookies_and_remember_me(redis_store(&server).await).await;
}

#[tokio::test]
async fn rolling_cookies_and_remember_me_in_memory() {
    rolling_cookies_and_remember_me(memory_store()).await;
}

/// Logs in through `app` as if from `peer` with forwarding `headers`; returns the ip the
/// session stored and whether the cookie was Secure.
async fn login_via(
    app: &Router,
    store: &RedisSessions,
    peer: &str,
    headers: &[(&str, &str)],
) -> (String, bool) {
    let mut req = Request::builder().method("POST").uri("/login/alice");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let token = String::from_utf8(body.to_vec()).unwrap();
    let ip = store.get(APP, &token).await.unwrap().unwrap().ip;
    (ip, cookie.contains("; Secure"))
}

/// Behind one and two proxies, with spoofed headers, a proxy list, `Forwarded` and
/// `X-Forwarded-*`: the client address is the one the trusted proxies saw, validated as
/// an IP; `Secure` (Auto) follows the outermost trusted proxy's scheme.
#[tokio::test]
async fn proxies_done_right() {
    use redis_sessions_axum::CookieSecure;
    let gate = Gate::default();
    let store = memory_store();
    let layer = || SessionLayer::new(store.clone(), APP).secure(CookieSecure::Auto);
    let app = |layer: SessionLayer| routes(&gate).layer(layer);

    // No trusted proxy: the peer's address, the headers ignored.
    let spoofed = [
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
    ];
    let none = app(layer());
    assert_eq!(
        login_via(&none, &store, "198.51.100.9:5000", &spoofed).await,
        ("198.51.100.9".into(), false)
    );

    // One proxy: the address it appended, not the client's own on the left.
    let one = app(layer().trust_proxy(true));
    let via_one = [
        ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
        ("x-forwarded-proto", "https"),
    ];
    assert_eq!(
        login_via(&one, &store, "10.0.0.1:80", &via_one).await,
        ("203.0.113.7".into(), true)
    );
    // Markup or a name where an address belongs: no address stored.
    let evil = [("x-forwarded-for", "<script>alert(1)</script>")];
    assert_eq!(
        login_via(&one, &store, "10.0.0.1:80", &evil).await,
        ("unknown".into(), false)
    );

    // Two proxies: the outer one terminated TLS, the inner one talked plain HTTP.
    let two = app(layer().trusted_proxy_hops(2));
    let via_two = [
        ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2"),
        ("x-forwarded-proto", "https, http"),
    ];
    assert_eq!(
        login_via(&two, &store, "10.0.0.1:80", &via_two).await,
        ("203.0.113.7".into(), true)
    );
    // RFC 7239 Forwarded, with a quoted IPv6 address and port.
    let forwarded = [(
        "forwarded",
        "for=6.6.6.6;proto=http, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.2;proto=http",
    )];
    let two_fwd = app(layer()
        .trusted_proxy_hops(2)
        .proxy_header(redis_sessions_axum::ProxyHeader::Forwarded));
    assert_eq!(
        login_via(&two_fwd, &store, "10.0.0.1:80", &forwarded).await,
        ("2001:db8::7".into(), true)
    );
    // Proxies that write X-Forwarded-*: a Forwarded header is the client's own words.
    let spoofed_fwd = [
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"),
    ];
    assert_eq!(
        login_via(&two, &store, "10.0.0.1:80", &spoofed_fwd).await,
        ("203.0.113.7".into(), false)
    );

    // A proxy list: headers count only from a listed peer; listed hops are skipped.
    let list = app(layer().trusted_proxies(["10.0.0.0/8", "192.0.2.1"]));
    assert_eq!(
        login_via(&list, &store, "10.0.0.1:80", &via_two).await,
        ("203.0.113.7".into(), true)
    );
    assert_eq!(
        login_via(
            &list,
            &store,
            "192.0.2.1:80",
            &[("x-forwarded-for", "6.6.6.6, 203.0.113.8")]
        )
        .await,
        ("203.0.113.8".into(), false)
    );
    // The app reached directly, bypassing the proxies: the client's headers are ignored.
    assert_eq!(
        login_via(&list, &store, "198.51.100.9:5000", &via_two).await,
        ("198.51.100.9".into(), false)
    );
    let refused = std::panic::catch_unwind(|| {
        SessionLayer::new(memory_store(), APP).trusted_proxies(["10.0.0.0/33"])
    });
    assert!(refused.is_err());
}

/// With events on, a login from a visitor's session and a rotation each write the new
/// session's `created` and the replaced one's `ended` with reason `rotated` (not
/// `killed`: a consumer tells "replaced" from "logged out"); a logout is `killed`.
#[tokio::test]
async fn rotation_writes_ended_rotated_and_created() {
    use redis_sessions_axum::redis_sessions::{
        device_handle, EndReason, EventOptions, EventType, EventsFrom,
    };
    let server = RedisServer::start();
    let events = EventOptions::max_len(1000);
    let stores = [
        RedisSessions::connect(
            Options::default()
                .url(server.url())
                .wipe(std::time::Duration::ZERO)
                .events(events),
        )
        .await
        .unwrap(),
        RedisSessions::in_memory(
            Options::default()
                .wipe(std::time::Duration::ZERO)
                .events(events),
        ),
    ];
    for store in stores {
        let layer = SessionLayer::new(store.clone(), APP).visitors(true);
        let app = routes(&Gate::default()).layer(layer);
        let visitor = send(&app, "POST", "/write/cart", None).await.cookie_token();
        let first = log_in(&app, "carol", Some(&visitor)).await;
        let second = send(&app, "POST", "/rotate", Some(&first))
            .await
            .cookie_token();
        let page = store
            .events_page(APP, &EventsFrom::Start, 100)
            .await
            .unwrap();
        // The rotation marks (sessions of the middleware, ids under its prefix) aside.
        let seen: Vec<(EventType, Option<EndReason>, String)> = page
            .events
            .iter()
            .filter(|e| !e.id.starts_with(redis_sessions_axum::ROTATED_PREFIX))
            .map(|e| (e.kind, e.reason, e.device.clone()))
            .collect();
        let (v, f, s) = (
            device_handle(&visitor),
            device_handle(&first),
            device_handle(&second),
        );
        assert_eq!(
            seen,
            vec![
                (EventType::Created, None, v.clone()),
                (EventType::Created, None, f.clone()),
                (EventType::Ended, Some(EndReason::Rotated), v),
                (EventType::Created, None, s.clone()),
                (EventType::Ended, Some(EndReason::Rotated), f),
            ],
            "in memory: {}",
            store.is_in_memory()
        );
        let carol = page.events.iter().filter(|e| e.id == "carol").count();
        assert_eq!(
            carol, 3,
            "the user's events carry their id, the visitor's its own"
        );
    }
}
