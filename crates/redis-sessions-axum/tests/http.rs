//! The middleware through its real layer, on a real redis-server: requests go through
//! `tower::ServiceExt::oneshot` on an axum `Router`. The contract it checks:
//! docs/spec/middleware.md.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{
    redis_sessions, Carry, CookieSecure, SameSite, Session, SessionError, SessionLayer,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::RedisServer;
use tower::ServiceExt;

const APP: &str = "myapp";

async fn store(server: &RedisServer) -> RedisSessions {
    RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect to the test redis-server")
}

async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    s.insert("via", "login")?; // visitor data, carried into the new session
    s.upgrade(&user).await
}

async fn me(s: Session) -> Result<String, SessionError> {
    Ok(match s.id() {
        Some(id) => format!(
            "{id} visits={} via={} w={}",
            s.get::<u64>("visits")?.unwrap_or(0),
            s.get::<String>("via")?.unwrap_or_default(),
            s.w().unwrap_or(0)
        ),
        None => "anonymous".into(),
    })
}

async fn inc(s: Session) -> Result<String, SessionError> {
    let visits = s.get::<u64>("visits")?.unwrap_or(0) + 1;
    s.insert("visits", visits)?;
    Ok(visits.to_string())
}

async fn same(s: Session) -> Result<&'static str, SessionError> {
    if let Some(visits) = s.get::<u64>("visits")? {
        s.insert("visits", visits)?;
    }
    Ok("same")
}

async fn remove(s: Session) -> String {
    s.remove("visits").to_string()
}

async fn unencodable(s: Session) -> Result<&'static str, SessionError> {
    // JSON maps need string keys: serde cannot write this one.
    let map = std::collections::BTreeMap::from([((1, 2), "pair key")]);
    s.insert("map", map)?;
    Ok("stored")
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

/// The devices, one line each: handle, this device?, created ms, user agent, ip.
async fn device_list(s: Session) -> Result<String, SessionError> {
    let mut out = String::new();
    for d in s.devices().await? {
        let created = d.created_ms.map_or("-".into(), |c| c.to_string());
        let agent = d.user_agent.unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{} {} {created} {agent} {}\n",
            d.handle, d.current, d.ip
        ));
    }
    Ok(out)
}

/// Stores the request's user agent where `devices()` reads it.
async fn remember_agent(s: Session, headers: HeaderMap) -> Result<&'static str, SessionError> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    s.insert(redis_sessions_axum::USER_AGENT_KEY, agent)?;
    Ok("ok")
}

async fn kill_device(s: Session, Path(handle): Path<String>) -> Result<String, SessionError> {
    Ok(s.kill_device(&handle).await?.to_string())
}

async fn logout_others(s: Session) -> Result<String, SessionError> {
    Ok(s.destroy_others().await?.to_string())
}

fn routes() -> Router {
    Router::new()
        .route("/login/{user}", post(login))
        .route("/me", get(me))
        .route("/inc", post(inc))
        .route("/same", post(same))
        .route("/remove", post(remove))
        .route("/unencodable", post(unencodable))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/devices", get(devices))
        .route("/device-list", get(device_list))
        .route("/agent", post(remember_agent))
        .route("/kill-device/{handle}", post(kill_device))
        .route("/logout-others", post(logout_others))
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

    // Defaults: named after the app, Path=/, HttpOnly, Secure (even on plain HTTP: the
    // layer cannot tell a TLS proxy's requests from plain ones), SameSite=Lax, a
    // browser-session cookie (no Max-Age).
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    let r = send(&app, "POST", "/login/alice", None).await;
    let cookie = r.set_cookie().unwrap();
    assert_eq!(
        cookie,
        format!("{APP}={}; Path=/; HttpOnly; Secure; SameSite=Lax", r.body)
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
    let auto = || SessionLayer::new(store.clone(), APP).secure(CookieSecure::Auto);
    let app = routes().layer(auto());
    let r = send_with(&app, "POST", "/login/bob", None, &https).await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
    let session = store.get(APP, &r.body).await.unwrap().unwrap();
    assert_eq!(session.ip, "unknown"); // oneshot has no peer address, and XFF is ignored
    let app = routes().layer(auto().trusted_proxy_hops(2));
    let r = send_with(&app, "POST", "/login/bob", None, &https).await;
    assert!(r.set_cookie().unwrap().contains("; Secure"));
    let session = store.get(APP, &r.body).await.unwrap().unwrap();
    assert_eq!(session.ip, "203.0.113.7");
    // One trusted proxy: the address it appended, never the client's own words on the left.
    let app = routes().layer(auto().trust_proxy(true));
    let r = send_with(&app, "POST", "/login/bob", None, &https).await;
    let session = store.get(APP, &r.body).await.unwrap().unwrap();
    assert_eq!(session.ip, "10.0.0.1");
    assert_eq!(session.ttl, 7200);

    // The session ttl reaches the store.
    let app = routes().layer(SessionLayer::new(store.clone(), APP).ttl(Duration::from_secs(60)));
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

    // A value serde cannot write as JSON: a proper 500, not a panic.
    let r = send(&app, "POST", "/unencodable", Some(&token)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.body, "session error");
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
    // Within the rotation grace a request with the replaced token is refused (409) and
    // leaves the cookie alone: it was sent before the browser had the new one.
    let r = send(&app, "GET", "/me", Some(&first)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.set_cookie(), None);
    assert!(store.get(APP, &first).await.unwrap().is_none());
    // Without the grace (or after it), the browser that still sends the dead token is
    // told to drop it.
    let no_grace = routes().layer(SessionLayer::new(store.clone(), APP).rotation_grace(None));
    let r = send(&no_grace, "GET", "/me", Some(&first)).await;
    assert_eq!(r.body, "anonymous");
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

/// The app over `server`, alice logged in on three devices and bob on one: their tokens.
async fn alice_on_three_devices_and_bob(server: &RedisServer) -> (Router, [String; 4]) {
    let app = routes().layer(SessionLayer::new(store(server).await, APP));
    let mut tokens = Vec::new();
    for user in ["alice", "alice", "alice", "bob"] {
        tokens.push(log_in(&app, user, None).await);
    }
    let tokens = tokens.try_into().expect("four logins");
    (app, tokens)
}

#[tokio::test]
async fn destroy_clears_the_cookie_and_destroyall_logs_out_every_device() {
    let server = RedisServer::start();
    let (app, [laptop, phone, tablet, bob]) = alice_on_three_devices_and_bob(&server).await;
    assert_eq!(send(&app, "GET", "/devices", Some(&phone)).await.body, "3");

    // Log out this device.
    let r = send(&app, "POST", "/logout", Some(&tablet)).await;
    assert_eq!(r.body, "bye");
    assert_eq!(
        r.set_cookie().unwrap(),
        format!("{APP}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; SameSite=Lax")
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

/// The parsed lines of `/device-list`: (handle, current, created, agent, ip).
async fn device_list_of(app: &Router, token: &str) -> Vec<Vec<String>> {
    let r = send(app, "GET", "/device-list", Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains(token), "no token in the device list");
    r.body
        .lines()
        .map(|l| l.split(' ').map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn devices_are_named_by_handle_and_only_the_users_own_can_be_signed_out() {
    let server = RedisServer::start();
    let app = routes().layer(SessionLayer::new(store(&server).await, APP));
    let laptop = log_in(&app, "alice", None).await;
    let phone = log_in(&app, "alice", None).await;
    let bob = log_in(&app, "bob", None).await;
    let r = send_with(
        &app,
        "POST",
        "/agent",
        Some(&laptop),
        &[("user-agent", "LaptopBrowser/1")],
    )
    .await;
    assert_eq!(r.body, "ok");

    // The laptop sees both of alice's devices, itself marked, with its creation time
    // (from its token) and the user agent it stored; no tokens anywhere.
    let list = device_list_of(&app, &laptop).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let own = redis_sessions::device_handle(&laptop);
    let phone_handle = redis_sessions::device_handle(&phone);
    let me = list
        .iter()
        .find(|d| d[0] == own)
        .expect("this device listed");
    assert_eq!(me[1], "true");
    let created = redis_sessions::token_created_ms(&laptop).unwrap();
    assert_eq!(me[2], created.to_string());
    assert_eq!(me[3], "LaptopBrowser/1");
    let other = list
        .iter()
        .find(|d| d[0] == phone_handle)
        .expect("phone listed");
    assert_eq!((other[1].as_str(), other[3].as_str()), ("false", "-"));
    assert_eq!(me[4], other[4], "both record the same (unknown) address");

    // Another user's handle ends nothing: bob stays signed in.
    let bob_handle = device_list_of(&app, &bob).await[0][0].clone();
    assert_eq!(bob_handle, redis_sessions::device_handle(&bob));
    let r = send(
        &app,
        "POST",
        &format!("/kill-device/{bob_handle}"),
        Some(&laptop),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "false"));
    assert!(send(&app, "GET", "/me", Some(&bob))
        .await
        .body
        .starts_with("bob "));

    // A text that is not a handle is refused; a visitor may not sign out devices.
    let r = send(&app, "POST", "/kill-device/nothandle", Some(&laptop)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(&app, "POST", &format!("/kill-device/{phone_handle}"), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The phone's handle signs the phone out, and the laptop stays signed in.
    let r = send(
        &app,
        "POST",
        &format!("/kill-device/{phone_handle}"),
        Some(&laptop),
    )
    .await;
    assert_eq!(r.body, "true");
    assert!(r.set_cookie().is_none(), "the laptop's cookie is untouched");
    assert_eq!(
        send(&app, "GET", "/me", Some(&phone)).await.body,
        "anonymous"
    );
    assert!(send(&app, "GET", "/me", Some(&laptop))
        .await
        .body
        .starts_with("alice "));
    let r = send(
        &app,
        "POST",
        &format!("/kill-device/{phone_handle}"),
        Some(&laptop),
    )
    .await;
    assert_eq!(r.body, "false", "already signed out");
    assert_eq!(device_list_of(&app, &laptop).await.len(), 1);

    // Its own handle signs this device out and clears the cookie.
    let r = send(&app, "POST", &format!("/kill-device/{own}"), Some(&laptop)).await;
    assert_eq!(r.body, "true");
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    assert_eq!(
        send(&app, "GET", "/me", Some(&laptop)).await.body,
        "anonymous"
    );
}

#[tokio::test]
async fn destroy_others_keeps_this_session_and_its_token() {
    let server = RedisServer::start();
    let (app, [laptop, phone, tablet, bob]) = alice_on_three_devices_and_bob(&server).await;
    assert_eq!(send(&app, "POST", "/inc", Some(&laptop)).await.body, "1");

    let r = send(&app, "POST", "/logout-others", Some(&laptop)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "2"));
    assert!(r.set_cookie().is_none(), "same token, so no new cookie");
    for other in [&phone, &tablet] {
        assert_eq!(
            send(&app, "GET", "/me", Some(other)).await.body,
            "anonymous"
        );
    }
    // The laptop keeps its token (sent as before) and its data.
    assert_eq!(
        send(&app, "GET", "/me", Some(&laptop)).await.body,
        "alice visits=1 via=login w=2"
    );
    let list = device_list_of(&app, &laptop).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0][0], redis_sessions::device_handle(&laptop));
    assert!(send(&app, "GET", "/me", Some(&bob))
        .await
        .body
        .starts_with("bob "));
    // Nothing left to sign out; a visitor may not.
    assert_eq!(
        send(&app, "POST", "/logout-others", Some(&laptop))
            .await
            .body,
        "0"
    );
    let r = send(&app, "POST", "/logout-others", Some(&phone)).await;
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
}

#[tokio::test]
async fn an_app_name_that_cannot_be_derived_is_reported_once_and_spares_other_routes() {
    let logs = Logs::capture();
    let server = RedisServer::start();
    let layer = SessionLayer::per_request_app(store(&server).await, |parts| {
        let host = parts.headers.get("host").and_then(|h| h.to_str().ok());
        host.unwrap_or("default-site").replace('.', "_")
    });
    let app = routes().layer(layer);
    let long = [("host", "a-very-long-host-name.example.com")];
    for _ in 0..3 {
        // Routes that do not use the session are served as usual.
        let r = send_with(&app, "GET", "/static", None, &long).await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "static"));
        // Routes that do answer 500, without running the handler.
        let r = send_with(&app, "GET", "/me", None, &long).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let text = logs.text();
    assert_eq!(
        text.matches("per_request_app computed an invalid session app name")
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("a-very-long-host-name_example_com"), "{text}");
    // Valid hosts keep working.
    let r = send_with(&app, "POST", "/login/alice", None, &[("host", "site.a")]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_broken_redis_gives_503_not_a_panic() {
    let server = Arc::new(Mutex::new(RedisServer::start()));
    let url = server.lock().unwrap().url();
    let store = RedisSessions::connect(Options::default().url(url).wipe(Duration::ZERO))
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
        assert_eq!(
            r.headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            Some(
                redis_sessions_axum::RETRY_AFTER_SECONDS
                    .to_string()
                    .as_str()
            )
        );
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
async fn the_extractor_without_the_layer_says_what_to_do() {
    let logs = Logs::capture();
    let app = routes(); // no layer
    let r = send(&app, "GET", "/me", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.body.contains("without SessionLayer") && r.body.contains(".layer(SessionLayer::new("),
        "{}",
        r.body
    );
    assert!(
        logs.text().contains("without SessionLayer"),
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn the_embedded_store_behaves_the_same() {
    let store = RedisSessions::in_memory(Options::default().wipe(Duration::ZERO));
    let app = routes().layer(SessionLayer::new(store, APP));
    let token = log_in(&app, "alice", None).await;
    assert_eq!(send(&app, "POST", "/inc", Some(&token)).await.body, "1");
    assert_eq!(
        send(&app, "GET", "/me", Some(&token)).await.body,
        "alice visits=1 via=login w=2"
    );
    let _ = redis_sessions::DEFAULT_TTL;
}

/// Captures what the code under test logs through `tracing` on this thread (the tests run
/// on tokio's current-thread runtime, so every task of a test logs on its thread).
///
/// One global subscriber writes each event to the buffer of the thread that logs it: with a
/// subscriber per test (`set_default`), tracing's cache of which call sites are enabled,
/// shared by all threads, can drop events of tests that run in parallel.
struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
}

thread_local! {
    static SINK: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(buffer) = &*sink.borrow() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> Logs {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadSink)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        });
        let buffer = Arc::new(Mutex::new(Vec::new()));
        SINK.with(|sink| *sink.borrow_mut() = Some(buffer.clone()));
        Logs { buffer }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    sku: String,
    n: u32,
}

fn cart_routes() -> Router {
    async fn add(s: Session, Path(sku): Path<String>) -> Result<String, SessionError> {
        let mut cart: Vec<Item> = s.get("cart")?.unwrap_or_default();
        match cart.iter_mut().find(|i| i.sku == sku) {
            Some(item) => item.n += 1,
            None => cart.push(Item { sku, n: 1 }),
        }
        s.insert("cart", &cart)?;
        Ok(cart.len().to_string())
    }
    async fn cart(s: Session) -> Result<String, SessionError> {
        let cart: Vec<Item> = s.get("cart")?.unwrap_or_default();
        let items: Vec<String> = cart.iter().map(|i| format!("{}x{}", i.sku, i.n)).collect();
        let who = match (s.id(), s.is_visitor()) {
            (Some(id), _) => id,
            (None, true) => "visitor".into(),
            (None, false) => "nobody".into(),
        };
        Ok(format!("{who}: {}", items.join(",")))
    }
    async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
        s.upgrade(&user).await
    }
    async fn login_clear(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
        s.upgrade_clear(&user).await
    }
    async fn login_keep(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
        s.upgrade_with(&user, Carry::Everything).await
    }
    async fn login_keys(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
        s.upgrade_with(&user, Carry::Keys(vec!["cart".into()]))
            .await
    }
    async fn clear(s: Session) -> &'static str {
        s.clear();
        "cleared"
    }
    async fn rotate(s: Session) -> Result<String, SessionError> {
        s.rotate().await
    }
    async fn wrong(s: Session) -> Result<String, SessionError> {
        let n: Option<u64> = s.get("cart")?;
        Ok(format!("{n:?}"))
    }
    async fn flag(s: Session) -> Result<&'static str, SessionError> {
        s.insert("flag", "$json:looks marked")?;
        s.insert("none", Option::<u8>::None)?; // null: nothing stored
        Ok("set")
    }
    async fn read_flag(s: Session) -> Result<String, SessionError> {
        Ok(s.get::<String>("flag")?.unwrap_or_default())
    }
    Router::new()
        .route("/add/{sku}", post(add))
        .route("/cart", get(cart))
        .route("/login/{user}", post(login))
        .route("/login-clear/{user}", post(login_clear))
        .route("/login-keep/{user}", post(login_keep))
        .route("/login-keys/{user}", post(login_keys))
        .route("/clear", post(clear))
        .route("/rotate", post(rotate))
        .route("/wrong", get(wrong))
        .route("/flag", post(flag))
        .route("/read-flag", get(read_flag))
        .route("/inc", post(inc))
        .route("/me", get(me))
}

/// The token a response set in the cookie.
fn cookie_token(r: &Reply) -> String {
    let cookie = r.set_cookie().expect("a Set-Cookie header");
    let value = cookie.split(';').next().unwrap();
    value.split_once('=').unwrap().1.to_owned()
}

#[tokio::test]
async fn structured_values_round_trip_and_node_reads_the_session() {
    let logs = Logs::capture();
    let server = RedisServer::start();
    let store = store(&server).await;
    let app = cart_routes().layer(SessionLayer::new(store.clone(), APP));
    let token = log_in(&app, "alice", None).await;
    for sku in ["apple", "pear", "apple"] {
        assert_eq!(
            send(&app, "POST", &format!("/add/{sku}"), Some(&token))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        send(&app, "GET", "/cart", Some(&token)).await.body,
        "alice: applex2,pearx1"
    );

    // Stored as a flat object of scalars: the list is marked JSON text in a string.
    let d = store.get(APP, &token).await.unwrap().unwrap().d.unwrap();
    assert_eq!(
        d.get("cart"),
        Some(&serde_json::json!(
            "$json:[{\"sku\":\"apple\",\"n\":2},{\"sku\":\"pear\",\"n\":1}]"
        ))
    );

    // A string that looks marked reads back as itself; a null stores nothing.
    send(&app, "POST", "/flag", Some(&token)).await;
    assert_eq!(
        send(&app, "GET", "/read-flag", Some(&token)).await.body,
        "$json:looks marked"
    );
    let d = store.get(APP, &token).await.unwrap().unwrap().d.unwrap();
    assert!(!d.contains_key("none"));

    // The Node.js module reads the session: `d` is a flat object, the cart a string whose
    // text after the marker is the list's JSON.
    let mut node = test_support::node::NodePeer::start(&format!(
        r#"{{"port":{},"cachetime":0}}"#,
        server.port()
    ));
    let reply = node
        .call("get", &format!(r#"{{"app":"{APP}","token":"{token}"}}"#))
        .expect("node reads the session");
    let session: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let stored = session["d"]["cart"].as_str().expect("a string for Node");
    let list: Vec<Item> = serde_json::from_str(
        stored
            .strip_prefix(redis_sessions::value::JSON_MARKER)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        list,
        vec![
            Item {
                sku: "apple".into(),
                n: 2
            },
            Item {
                sku: "pear".into(),
                n: 1
            }
        ]
    );
    assert_eq!(
        session["d"]["flag"],
        serde_json::json!("$json:\"$json:looks marked\"")
    );
    // And a marked value that Node writes is a structured value for Rust.
    let set = format!(
        r#"{{"app":"{APP}","token":"{token}","d":{{"cart":"$json:[{{\"sku\":\"kiwi\",\"n\":5}}]"}}}}"#
    );
    node.call("set", &set).expect("node writes");
    assert_eq!(
        send(&app, "GET", "/cart", Some(&token)).await.body,
        "alice: kiwix5"
    );

    // A read of another type is an error: 500, logged with its cause, not the data.
    let r = send(&app, "GET", "/wrong", Some(&token)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = logs.text();
    assert!(
        text.contains("session value `cart` is a list, which does not read as"),
        "{text}"
    );
    assert!(!text.contains("kiwi"), "session data in the log: {text}");
}

#[tokio::test]
async fn visitor_sessions_keep_a_cart_through_login() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let app = cart_routes().layer(SessionLayer::new(store.clone(), APP).visitors(true));

    // A visitor who only reads gets no session and costs no store call.
    let calls = commands_during(&server, async {
        let r = send(&app, "GET", "/cart", None).await;
        assert_eq!(r.body, "nobody: ");
        assert!(r.set_cookie().is_none());
    })
    .await;
    assert!(calls.is_empty(), "{calls:?}");

    // The first write creates the visitor's session and sets the cookie.
    let r = send(&app, "POST", "/add/apple", None).await;
    let visitor = cookie_token(&r);
    assert!(r.set_cookie().unwrap().contains("HttpOnly"));
    send(&app, "POST", "/add/pear", Some(&visitor)).await;
    assert_eq!(
        send(&app, "GET", "/cart", Some(&visitor)).await.body,
        "visitor: applex1,pearx1"
    );
    let record = store.get(APP, &visitor).await.unwrap().unwrap();
    assert!(
        redis_sessions_axum::is_visitor_id(&record.id),
        "{}",
        record.id
    );
    assert!(record.id.starts_with(redis_sessions_axum::VISITOR_PREFIX));
    // Visitor sessions are sessions of the app: listed by soapp, where they can be left out.
    let mut listed = store.soapp(APP, Duration::from_secs(60)).await.unwrap();
    assert_eq!(listed.len(), 1);
    listed.retain(|s| !redis_sessions_axum::is_visitor_id(&s.id));
    assert!(listed.is_empty());

    // Login: a new token with the cart; the visitor's token is dead.
    let r = send(&app, "POST", "/login/alice", Some(&visitor)).await;
    let alice = r.body.clone();
    assert_eq!(cookie_token(&r), alice);
    assert_ne!(alice, visitor);
    assert_eq!(
        send(&app, "GET", "/cart", Some(&alice)).await.body,
        "alice: applex1,pearx1"
    );
    assert!(store.get(APP, &visitor).await.unwrap().is_none());
    // A second visitor is another session with an id of its own.
    let other = cookie_token(&send(&app, "POST", "/add/kiwi", None).await);
    let other_id = store.get(APP, &other).await.unwrap().unwrap().id;
    assert!(redis_sessions_axum::is_visitor_id(&other_id) && other_id != record.id);

    // Without the setting, a visitor's data lasts for the request only.
    let off = cart_routes().layer(SessionLayer::new(store.clone(), APP));
    let r = send(&off, "POST", "/add/apple", None).await;
    assert_eq!(r.body, "1");
    assert!(r.set_cookie().is_none());
}

#[tokio::test]
async fn logging_in_as_another_user_never_inherits_their_data() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let app = cart_routes().layer(SessionLayer::new(store.clone(), APP).visitors(true));
    let dave = cookie_token(&send(&app, "POST", "/login/dave", None).await);
    for _ in 0..5 {
        send(&app, "POST", "/inc", Some(&dave)).await;
    }
    send(&app, "POST", "/add/secret-gift", Some(&dave)).await;
    assert_eq!(
        send(&app, "GET", "/me", Some(&dave)).await.body,
        "dave visits=5 via= w=7"
    );

    // eve logs in in the same browser (dave's cookie): her session starts empty.
    let eve = cookie_token(&send(&app, "POST", "/login/eve", Some(&dave)).await);
    assert_eq!(
        send(&app, "GET", "/me", Some(&eve)).await.body,
        "eve visits=0 via= w=1"
    );
    assert_eq!(send(&app, "GET", "/cart", Some(&eve)).await.body, "eve: ");
    assert_eq!(send(&app, "POST", "/inc", Some(&eve)).await.body, "1");
    assert!(
        store.get(APP, &dave).await.unwrap().is_none(),
        "dave's session ends"
    );

    // The same user logging in again keeps the data (with a new token).
    let eve2 = cookie_token(&send(&app, "POST", "/login/eve", Some(&eve)).await);
    assert_ne!(eve2, eve);
    assert_eq!(
        send(&app, "GET", "/me", Some(&eve2)).await.body,
        "eve visits=1 via= w=1"
    );

    // upgrade_clear drops even a visitor's data; Carry::Everything keeps another user's
    // when the app asks for it; Carry::Keys keeps what it names.
    let visitor = cookie_token(&send(&app, "POST", "/add/apple", None).await);
    let fresh = cookie_token(&send(&app, "POST", "/login-clear/frank", Some(&visitor)).await);
    assert_eq!(
        send(&app, "GET", "/cart", Some(&fresh)).await.body,
        "frank: "
    );
    send(&app, "POST", "/add/pear", Some(&fresh)).await;
    send(&app, "POST", "/inc", Some(&fresh)).await;
    let kept = cookie_token(&send(&app, "POST", "/login-keep/gina", Some(&fresh)).await);
    assert_eq!(
        send(&app, "GET", "/me", Some(&kept)).await.body,
        "gina visits=1 via= w=1"
    );
    let keys = cookie_token(&send(&app, "POST", "/login-keys/hank", Some(&kept)).await);
    assert_eq!(
        send(&app, "GET", "/me", Some(&keys)).await.body,
        "hank visits=0 via= w=1"
    );
    assert_eq!(
        send(&app, "GET", "/cart", Some(&keys)).await.body,
        "hank: pearx1"
    );

    // clear() empties the data and keeps the login; rotate() changes the token only.
    assert_eq!(
        send(&app, "POST", "/clear", Some(&keys)).await.body,
        "cleared"
    );
    assert_eq!(send(&app, "GET", "/cart", Some(&keys)).await.body, "hank: ");
    assert!(store.get(APP, &keys).await.unwrap().unwrap().d.is_none());
    send(&app, "POST", "/inc", Some(&keys)).await;
    let rotated = send(&app, "POST", "/rotate", Some(&keys)).await;
    assert_eq!(cookie_token(&rotated), rotated.body);
    assert_eq!(
        send(&app, "GET", "/me", Some(&rotated.body)).await.body,
        "hank visits=1 via= w=1"
    );
    assert!(store.get(APP, &keys).await.unwrap().is_none());
    // A visitor cannot rotate, and no user id may pose as a visitor.
    assert_eq!(
        send(&app, "POST", "/rotate", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(&app, "POST", "/login/visitor:abc", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_absolute_timeout_ends_busy_sessions() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let layer = SessionLayer::new(store.clone(), APP).absolute_timeout(Duration::from_secs(10));
    let app = routes().layer(layer);
    let token = log_in(&app, "alice", None).await;
    // Busy all along: the idle timeout (7200 s) never strikes, the absolute one does.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        assert_eq!(
            send(&app, "POST", "/inc", Some(&token)).await.status,
            StatusCode::OK
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = send(&app, "GET", "/me", Some(&token)).await;
    assert_eq!(r.body, "anonymous");
    assert!(r.set_cookie().unwrap().contains("Max-Age=0"));
    assert!(
        store.get(APP, &token).await.unwrap().is_none(),
        "killed in the store"
    );
}

#[tokio::test]
async fn secure_follows_the_tls_extension_and_trusted_proxy_headers() {
    let server = RedisServer::start();
    let store = store(&server).await;
    // HTTP/1.1 over the app's own TLS: the listener marks its requests with `Tls`.
    let auto = || SessionLayer::new(store.clone(), APP).secure(CookieSecure::Auto);
    let app = routes()
        .layer(auto())
        .layer(axum::Extension(redis_sessions_axum::Tls));
    let r = send(&app, "POST", "/login/alice", None).await;
    assert!(r.set_cookie().unwrap().contains("; Secure"));
    // RFC 7239 Forwarded, from a trusted proxy only.
    let fwd = [("forwarded", "for=203.0.113.9;proto=https")];
    let app = routes().layer(auto());
    let r = send_with(&app, "POST", "/login/alice", None, &fwd).await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
    let app = routes().layer(
        auto()
            .trust_proxy(true)
            .proxy_header(redis_sessions_axum::ProxyHeader::Forwarded),
    );
    let r = send_with(&app, "POST", "/login/alice", None, &fwd).await;
    assert!(r.set_cookie().unwrap().contains("; Secure"));
    // Never is never, even over TLS.
    let app = routes()
        .layer(SessionLayer::new(store, APP).secure(false))
        .layer(axum::Extension(redis_sessions_axum::Tls));
    let r = send(&app, "POST", "/login/alice", None).await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
}

#[tokio::test]
async fn a_missing_peer_address_is_explained_once() {
    let logs = Logs::capture();
    let server = RedisServer::start();
    let store = store(&server).await;
    // Through a trusted proxy the address is known: nothing to say.
    let app = routes().layer(SessionLayer::new(store.clone(), APP).trust_proxy(true));
    let r = send_with(
        &app,
        "POST",
        "/login/alice",
        None,
        &[("x-forwarded-for", "198.51.100.4")],
    )
    .await;
    assert_eq!(
        store.get(APP, &r.body).await.unwrap().unwrap().ip,
        "198.51.100.4"
    );
    assert!(!logs.text().contains("into_make_service_with_connect_info"));
    // oneshot, like a server without connect info: "unknown", and the log says why, once.
    let app = routes().layer(SessionLayer::new(store.clone(), APP));
    for _ in 0..2 {
        let token = log_in(&app, "alice", None).await;
        assert_eq!(store.get(APP, &token).await.unwrap().unwrap().ip, "unknown");
    }
    let text = logs.text();
    assert_eq!(
        text.matches("into_make_service_with_connect_info::<SocketAddr>()")
            .count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn opting_out_of_secure_is_logged_when_the_layer_is_built() {
    let logs = Logs::capture();
    let store = RedisSessions::in_memory(Options::default().wipe(Duration::ZERO));
    let app = routes().layer(SessionLayer::new(store, APP).secure(false));
    let r = send(&app, "POST", "/login/alice", None).await;
    assert!(!r.set_cookie().unwrap().contains("Secure"));
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert_eq!(
        text.matches("without Secure (.secure(false))").count(),
        1,
        "{text}"
    );
}

/// A migrating store (`RedisSessions::migrating`) behind the middleware: a user logged in
/// on the old Redis stays logged in and their writes land there, a new login goes to the
/// new Redis, the devices list shows both, and "log out everywhere" ends both.
#[tokio::test(flavor = "multi_thread")]
async fn the_middleware_serves_a_migrating_store() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let (old, new) = (store(&a).await, store(&b).await);
    let before = log_in(
        &routes().layer(SessionLayer::new(old.clone(), APP)),
        "dana",
        None,
    )
    .await;
    let cutover = std::time::SystemTime::now();
    let moving = RedisSessions::migrating(old.clone(), new.clone(), cutover);
    let app = routes().layer(SessionLayer::new(moving, APP));

    let r = send(&app, "POST", "/inc", Some(&before)).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    let stored = old
        .get(APP, &before)
        .await
        .unwrap()
        .expect("in the old store");
    assert_eq!(
        stored.get::<u64>("visits").expect("typed read"),
        Some(1),
        "the write went to the old Redis"
    );

    // A login now (another device) is created in the new store.
    let other = log_in(&app, "dana", None).await;
    assert!(new.get(APP, &other).await.unwrap().is_some());
    let r = send(&app, "GET", "/devices", Some(&other)).await;
    assert_eq!(r.body, "2", "soid sees both stores");
    let r = send(&app, "POST", "/logout-all", Some(&other)).await;
    assert_eq!(r.body, "2");
    assert_eq!(
        send(&app, "GET", "/me", Some(&before)).await.body,
        "anonymous"
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&other)).await.body,
        "anonymous"
    );
    assert!(old.get(APP, &before).await.unwrap().is_none());
}
