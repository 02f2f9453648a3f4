//! A small site with logins kept by redis-sessions-axum: log in with a user name, a page
//! that counts your visits, the list of your devices, log out, log out everywhere.
//!
//! ```text
//! cargo run -p redis-sessions-axum --example demo                  # embedded store
//! cargo run -p redis-sessions-axum --example demo -- --redis redis://127.0.0.1:6379/
//! REDIS_URL=redis://127.0.0.1:6379/ PORT=8080 cargo run -p redis-sessions-axum --example demo
//! ```
//!
//! Then open http://127.0.0.1:3000/ in two browsers (or a normal and a private window).

use axum::extract::Form;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
use redis_sessions_axum::{Session, SessionError, SessionLayer};
use serde::Deserialize;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The app name: the sessions' namespace in the store and the cookie's name.
pub const APP: &str = "demo";

/// The whole site, over `store`.
pub fn app(store: RedisSessions) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/devices", get(devices))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .layer(SessionLayer::new(store, APP))
}

#[tokio::main]
async fn main() {
    let mut redis = std::env::var("REDIS_URL").ok();
    let mut port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--redis" => redis = args.next(),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(port),
            _ => {
                eprintln!("usage: demo [--redis redis://127.0.0.1:6379/] [--port 3000]");
                std::process::exit(2);
            }
        }
    }
    let store = match &redis {
        Some(url) => match RedisSessions::connect(Options::default().url(url)).await {
            Ok(store) => store,
            Err(err) => {
                eprintln!("cannot connect to {url}: {err}");
                std::process::exit(1);
            }
        },
        None => RedisSessions::in_memory(Options::default()),
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {err}");
            std::process::exit(1);
        }
    };
    let store_name = redis.as_deref().unwrap_or("embedded (in memory)");
    println!("demo on http://127.0.0.1:{port}/ — sessions in {store_name}");
    let service = app(store).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(err) = axum::serve(listener, service).await {
        eprintln!("server error: {err}");
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} · sessions demo</title>\
         <style>body{{font-family:sans-serif;max-width:42em;margin:2em auto;line-height:1.5}}\
         li{{margin:.5em 0}} form{{display:inline}} .me{{font-weight:bold}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    ))
}

const LOGOUT_FORMS: &str = "<p><form method=\"post\" action=\"/logout\">\
     <button id=\"logout\">Log out</button></form> \
     <form method=\"post\" action=\"/logout-everywhere\">\
     <button id=\"logout-everywhere\">Log out everywhere</button></form></p>";

/// The visit counter for a logged-in user, the login form for a visitor.
async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let Some(user) = session.id() else {
        return Ok(login_page(None));
    };
    let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.insert("visits", visits)?;
    let active = session.activity(600).await?;
    Ok(page(
        "Welcome",
        &format!(
            "<p>Signed in as <b id=\"user\">{user}</b>.</p>\
             <p>You have seen this page <b id=\"visits\">{visits}</b> time(s) in this session.</p>\
             <p>{active} user(s) active in the last 10 minutes.</p>\
             <p><a id=\"devices-link\" href=\"/devices\">My devices</a></p>{LOGOUT_FORMS}",
            user = escape(&user)
        ),
    ))
}

fn login_page(error: Option<&str>) -> Html<String> {
    let error = error
        .map(|e| format!("<p id=\"error\" style=\"color:#b00\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "{error}<form method=\"post\" action=\"/login\">\
             <label>User name <input id=\"name\" name=\"name\" autofocus required></label> \
             <button id=\"login\">Log in</button></form>\
             <p>No password: this demo shows sessions, not authentication.</p>"
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
}

/// Logs in as the user name given: a new session (new token, cookie set) that remembers
/// which device it is, for the devices page.
async fn login(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.contains(['\r', '\n']) {
        let html = login_page(Some("A user name has 1 to 128 characters on one line."));
        return Ok((StatusCode::BAD_REQUEST, html).into_response());
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    session.insert("device", device_label())?;
    session.insert("browser", browser_name(agent))?;
    session.insert("since", unix_now())?;
    session.upgrade(name).await?;
    Ok(Redirect::to("/").into_response())
}

/// The devices (sessions) of the user, with "log out this device" on the current one.
async fn devices(session: Session) -> Result<Response, SessionError> {
    if !session.is_authenticated() {
        return Ok(Redirect::to("/").into_response());
    }
    let current: Option<String> = session.get("device");
    let sessions = session.soid().await?;
    let now = unix_now();
    let mut list = String::new();
    for s in &sessions {
        let device: String = s.get("device").unwrap_or_default();
        let browser: String = s.get("browser").unwrap_or_else(|| "unknown browser".into());
        let since = s.get::<i64>("since").map_or(0, |t| (now - t).max(0));
        let me = current.as_deref() == Some(device.as_str());
        let _ = write!(
            list,
            "<li class=\"device{cls}\" data-device=\"{device}\">{browser} from {ip}, \
             logged in {since} s ago, last active {idle} s ago, {r} request(s){this}</li>",
            cls = if me { " me" } else { "" },
            device = escape(&device),
            browser = escape(&browser),
            ip = escape(&s.ip),
            idle = s.idle,
            r = s.r,
            this = if me {
                " — this device <form method=\"post\" action=\"/logout\">\
                 <button id=\"logout-this\">Log out this device</button></form>"
            } else {
                ""
            },
        );
    }
    let user = escape(&session.id().unwrap_or_default());
    Ok(page(
        "My devices",
        &format!(
            "<p><b id=\"user\">{user}</b> is signed in on <b id=\"device-count\">{n}</b> device(s):</p>\
             <ul>{list}</ul><p><a href=\"/\">Back</a></p>{LOGOUT_FORMS}",
            n = sessions.len()
        ),
    )
    .into_response())
}

/// Logs this device out.
async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.destroy().await?;
    Ok(Redirect::to("/"))
}

/// Logs the user out on every device.
async fn logout_everywhere(session: Session) -> Result<Redirect, SessionError> {
    if session.is_authenticated() {
        session.destroyall().await?;
    }
    Ok(Redirect::to("/"))
}

/// A label that tells this login apart from the user's others (not a secret).
fn device_label() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}", (nanos << 16) ^ n)
}

fn browser_name(agent: &str) -> &'static str {
    let a = agent.to_ascii_lowercase();
    if a.contains("headlesschrome") {
        "Headless Chrome"
    } else if a.contains("edg/") {
        "Edge"
    } else if a.contains("chrome") || a.contains("chromium") {
        "Chrome"
    } else if a.contains("firefox") {
        "Firefox"
    } else if a.contains("safari") {
        "Safari"
    } else if a.contains("curl") {
        "curl"
    } else {
        "another browser"
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
