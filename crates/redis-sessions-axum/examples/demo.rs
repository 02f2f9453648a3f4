//! A small shop with logins kept by redis-sessions-axum: a cart that works before login
//! and comes along at login, a visit counter, and a "my devices" page that signs out this
//! device, one other device (by its handle, never its token), or all the others. Every
//! page of a signed-in user listens to the store's lifecycle events (Server-Sent Events
//! from `/events/me`) and says "a new device signed in" when the same user signs in
//! elsewhere, and "this device was signed out" when another device signs it out.
//!
//! ```text
//! cargo run -p redis-sessions-axum --example demo                  # embedded store
//! cargo run -p redis-sessions-axum --example demo -- --redis redis://127.0.0.1:6379/
//! REDIS_URL=redis://127.0.0.1:6379/ PORT=8080 cargo run -p redis-sessions-axum --example demo
//! ```
//!
//! Then open http://127.0.0.1:3000/ in two browsers (or a normal and a private window).
//! The page uses no external assets: styles are inline.

use axum::extract::{Extension, Form};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use redis_sessions_axum::redis_sessions::{
    device_handle, EndReason, EventOptions, EventType, EventsFrom, Options, RedisSessions,
};
use redis_sessions_axum::{Session, SessionError, SessionLayer, USER_AGENT_KEY};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;

/// The app name: the sessions' namespace in the store and the cookie's name.
pub const APP: &str = "demo";

/// What the shop sells: (sku, name, price in cents).
pub const PRODUCTS: [(&str, &str, u32); 4] = [
    ("tea", "Green tea", 450),
    ("mug", "Stoneware mug", 1200),
    ("honey", "Forest honey", 890),
    ("pot", "Cast-iron teapot", 3900),
];

/// One line of the cart, kept in the session as a list of these (a structured value).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    sku: String,
    qty: u32,
}

/// The data key of the sign-in time (Unix seconds), shown for the other devices, whose
/// creation time the middleware knows only for the current one.
const SIGNED_IN: &str = "signed_in";

/// The whole site, over `store`. Visitor sessions are on, so the cart works before login.
/// The store should write lifecycle events ([`options`]) for the sign-in notices.
pub fn app(store: RedisSessions) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/cart/add", post(add_to_cart))
        .route("/cart/clear", post(clear_cart))
        .route("/login", post(login))
        .route("/devices", get(devices))
        .route("/logout", post(logout))
        .route("/logout-device", post(logout_device))
        .route("/logout-others", post(logout_others))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/events/me", get(my_events))
        .layer(Extension(store.clone()))
        .layer(SessionLayer::new(store, APP).visitors(true))
}

/// The store's options: lifecycle events on (a sign-in elsewhere is an event to show).
pub fn options() -> Options {
    Options::default().events(EventOptions::default())
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
        Some(url) => match RedisSessions::connect(options().url(url)).await {
            Ok(store) => store,
            Err(err) => {
                eprintln!("cannot connect to {url}: {err}");
                std::process::exit(1);
            }
        },
        None => RedisSessions::in_memory(options()),
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
    // With connect info, sessions record the client's address (else "unknown").
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

const STYLE: &str = "\
:root{--ink:#1d2433;--muted:#5b6477;--line:#e3e6ee;--bg:#f6f7fb;--accent:#2f6fed;--danger:#c23a3a}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:var(--bg)}\
header{background:#fff;border-bottom:1px solid var(--line)}\
header .bar{max-width:60rem;margin:0 auto;padding:.8rem 1.2rem;display:flex;gap:1rem;align-items:center}\
header .brand{font-weight:700;letter-spacing:.02em;margin-right:auto}\
header a{color:var(--ink);text-decoration:none}\
header .who{color:var(--muted);font-size:.9rem}\
main{max-width:60rem;margin:1.5rem auto;padding:0 1.2rem;display:grid;gap:1.2rem;grid-template-columns:2fr 1fr}\
main.single{grid-template-columns:1fr}\
.card{background:#fff;border:1px solid var(--line);border-radius:12px;padding:1.1rem 1.3rem}\
h1{font-size:1.3rem;margin:0 0 .6rem}h2{font-size:1.05rem;margin:0 0 .6rem}\
.products{display:grid;grid-template-columns:repeat(auto-fill,minmax(12rem,1fr));gap:.8rem}\
.product{border:1px solid var(--line);border-radius:10px;padding:.8rem;display:flex;flex-direction:column;gap:.4rem}\
.price{color:var(--muted)}\
ul{list-style:none;padding:0;margin:0}li{padding:.45rem 0;border-bottom:1px solid var(--line)}li:last-child{border:0}\
button{font:inherit;border:0;border-radius:8px;padding:.45rem .9rem;background:var(--accent);color:#fff;cursor:pointer}\
button.quiet{background:#eef1f7;color:var(--ink)}button.danger{background:var(--danger)}\
form{display:inline}input{font:inherit;padding:.45rem .6rem;border:1px solid var(--line);border-radius:8px}\
.flash{background:#e9f7ef;border:1px solid #bfe5cd;border-radius:10px;padding:.6rem 1rem;grid-column:1/-1}\
.error{background:#fdecec;border-color:#f3c2c2}\
.stat{font-size:2rem;font-weight:700}.muted{color:var(--muted);font-size:.9rem}\
.device{display:flex;flex-wrap:wrap;align-items:center;gap:.2rem .5rem}.device form{margin-left:auto}\
.device.me{background:#f1f6ff;border-radius:8px;padding-left:.5rem}\
.tag{display:inline-block;font-size:.75rem;background:var(--accent);color:#fff;border-radius:99px;padding:0 .5rem;margin-left:.4rem}\
#notices{max-width:60rem;margin:1rem auto 0;padding:0 1.2rem;display:grid;gap:.5rem}#notices:empty{display:none}\
.actions{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:.8rem}\
header .bar{flex-wrap:wrap}main>*{min-width:0}input{max-width:100%}\
@media (max-width:40rem){main{grid-template-columns:1fr;margin-top:1rem}.device form{margin-left:0}}";

/// A cup, inline (the page loads nothing from elsewhere).
const LOGO: &str = "<svg width=\"20\" height=\"20\" viewBox=\"0 0 24 24\" aria-hidden=\"true\" \
     style=\"vertical-align:-4px\"><path fill=\"#2f6fed\" d=\"M3 8h14v5a6 6 0 0 1-6 6H9a6 6 0 0 1-6-6z\"/>\
     <path fill=\"none\" stroke=\"#2f6fed\" stroke-width=\"2\" d=\"M17 10h1.5a2.5 2.5 0 0 1 0 5H16\"/></svg>";

/// A signed-in page's listener of `/events/me`: each event becomes a notice at the top.
/// An EventSource reconnects by itself; it stops when this device is signed out.
const NOTICES: &str = "<script>\
     const notices = new EventSource('/events/me');\
     function notice(text, id) {\
       const n = document.createElement('div');\
       n.className = 'flash notice'; n.id = id; n.textContent = text;\
       document.getElementById('notices').append(n);\
     }\
     notices.addEventListener('signin', e => {\
       const d = JSON.parse(e.data);\
       notice('A new device signed in' + (d.ip ? ' from ' + d.ip : '') + '.', 'new-device');\
     });\
     notices.addEventListener('signedout', () => {\
       notice('This device was signed out.', 'signed-out'); notices.close();\
     });\
     </script>";

/// A whole page: the header (with the user, if any) and `body` in the main area.
fn page(title: &str, user: Option<&str>, single: bool, body: &str) -> Html<String> {
    let nav = match user {
        Some(user) => format!(
            "<span class=\"who\">signed in as <b id=\"user\">{}</b></span>\
             <a id=\"devices-link\" href=\"/devices\">My devices</a>",
            escape(user)
        ),
        None => "<span class=\"who\">not signed in</span>".to_owned(),
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Teashop sessions demo</title><style>{STYLE}</style></head><body>\
         <header><div class=\"bar\"><a class=\"brand\" href=\"/\">{LOGO} Teashop</a>{nav}</div></header>\
         <div id=\"notices\" aria-live=\"polite\">{notices}</div>\
         <main class=\"{cls}\">{body}</main></body></html>",
        title = escape(title),
        cls = if single { "single" } else { "" },
        notices = if user.is_some() { NOTICES } else { "" },
    ))
}

fn money(cents: u32) -> String {
    format!("€{}.{:02}", cents / 100, cents % 100)
}

/// The cart of the session (a visitor's or a user's).
fn cart_of(session: &Session) -> Result<Vec<Line>, SessionError> {
    Ok(session.get("cart")?.unwrap_or_default())
}

/// Takes the one-time message left by the previous request (a "flash").
fn take_flash(session: &Session) -> Result<Option<String>, SessionError> {
    let flash = session.get::<String>("flash")?;
    if flash.is_some() {
        session.remove("flash");
    }
    Ok(flash)
}

/// The shop: products, the cart, and the visit counter or the login form.
async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let user = session.id();
    let flash = take_flash(&session)?;
    let cart = cart_of(&session)?;
    let mut body = String::new();
    if let Some(flash) = flash {
        let _ = write!(
            body,
            "<div class=\"flash\" id=\"flash\">{}</div>",
            escape(&flash)
        );
    }
    body.push_str("<section class=\"card\"><h1>Shop</h1><div class=\"products\">");
    for (sku, name, price) in PRODUCTS {
        let _ = write!(
            body,
            "<div class=\"product\"><b>{name}</b><span class=\"price\">{price}</span>\
             <form method=\"post\" action=\"/cart/add\"><input type=\"hidden\" name=\"sku\" value=\"{sku}\">\
             <button id=\"add-{sku}\">Add to cart</button></form></div>",
            price = money(price)
        );
    }
    body.push_str("</div></section><aside style=\"display:grid;gap:1.2rem;align-content:start\">");
    body.push_str(&cart_card(&cart));
    match &user {
        Some(_) => {
            let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
            session.insert("visits", visits)?;
            let _ = write!(
                body,
                "<section class=\"card\"><h2>Your visits</h2><div class=\"stat\" id=\"visits\">{visits}</div>\
                 <p class=\"muted\">page views in this session (kept in Redis)</p>{SIGN_OUT}</section>"
            );
        }
        None => body.push_str(&login_card(None)),
    }
    body.push_str("</aside>");
    Ok(page("Shop", user.as_deref(), false, &body))
}

/// Sign out, and signing in as someone else in the same browser (whose session then
/// starts without this user's data).
const SIGN_OUT: &str = "<div class=\"actions\"><form method=\"post\" action=\"/logout\">\
     <button class=\"quiet\" id=\"logout\">Sign out</button></form></div>\
     <form method=\"post\" action=\"/login\" style=\"display:flex;gap:.5rem;margin-top:.8rem\">\
     <input id=\"switch-name\" name=\"name\" placeholder=\"switch user\" required>\
     <button class=\"quiet\" id=\"switch\">Switch</button></form>";

fn cart_card(cart: &[Line]) -> String {
    let count: u32 = cart.iter().map(|l| l.qty).sum();
    let mut out = format!(
        "<section class=\"card\"><h2>Cart <span class=\"tag\" id=\"cart-count\">{count}</span></h2><ul id=\"cart\">"
    );
    let mut total = 0;
    for line in cart {
        let Some((_, name, price)) = PRODUCTS.iter().find(|p| p.0 == line.sku) else {
            continue;
        };
        total += price * line.qty;
        let _ = write!(
            out,
            "<li class=\"cart-item\" data-sku=\"{sku}\">{qty} × {name} <span class=\"price\">{sum}</span></li>",
            sku = escape(&line.sku),
            qty = line.qty,
            sum = money(price * line.qty)
        );
    }
    if cart.is_empty() {
        out.push_str("<li class=\"muted\">empty — add something, no login needed</li>");
    }
    let _ = write!(
        out,
        "</ul><p>Total <b id=\"cart-total\">{}</b></p>",
        money(total)
    );
    if !cart.is_empty() {
        out.push_str(
            "<form method=\"post\" action=\"/cart/clear\"><button class=\"quiet\" id=\"clear-cart\">Empty cart</button></form>",
        );
    }
    out.push_str("</section>");
    out
}

fn login_card(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p id=\"error\" class=\"flash error\">{}</p>", escape(e)))
        .unwrap_or_default();
    format!(
        "<section class=\"card\"><h2>Sign in</h2>{error}<form method=\"post\" action=\"/login\">\
         <p><input id=\"name\" name=\"name\" placeholder=\"user name\" autocomplete=\"username\" required></p>\
         <button id=\"login\">Sign in</button></form>\
         <p class=\"muted\">No password: this demo shows sessions, not authentication. \
         Your cart comes along.</p></section>"
    )
}

#[derive(Deserialize)]
struct AddForm {
    sku: String,
}

/// Adds one item to the cart; a visitor's first add creates their (visitor) session.
async fn add_to_cart(
    session: Session,
    Form(form): Form<AddForm>,
) -> Result<Response, SessionError> {
    if !PRODUCTS.iter().any(|p| p.0 == form.sku) {
        return Ok((StatusCode::BAD_REQUEST, "no such product").into_response());
    }
    let mut cart = cart_of(&session)?;
    match cart.iter_mut().find(|l| l.sku == form.sku) {
        Some(line) => line.qty += 1,
        None => cart.push(Line {
            sku: form.sku,
            qty: 1,
        }),
    }
    session.insert("cart", &cart)?;
    Ok(Redirect::to("/").into_response())
}

async fn clear_cart(session: Session) -> Result<Redirect, SessionError> {
    session.remove("cart");
    Ok(Redirect::to("/"))
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
}

/// Signs in as the user name given: a new session (new token, cookie set) that keeps a
/// visitor's cart, but never another user's data; then records which device this is.
async fn login(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, SessionError> {
    let name = form.name.trim();
    if name.is_empty()
        || name.chars().count() > 128
        || name.contains(['\r', '\n'])
        || redis_sessions_axum::is_visitor_id(name)
    {
        let body = login_card(Some("A user name has 1 to 128 characters on one line."));
        let html = page("Sign in", None, true, &body);
        return Ok((StatusCode::BAD_REQUEST, html).into_response());
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    session.upgrade(name).await?;
    // After upgrade: these belong to the new session whoever was signed in before; the
    // devices page shows them.
    session.insert(USER_AGENT_KEY, agent)?;
    session.insert(SIGNED_IN, unix_now())?;
    let items: u32 = cart_of(&session)?.iter().map(|l| l.qty).sum();
    let flash = if items > 0 {
        format!("Welcome, {name}! Your cart ({items} item(s)) came along.")
    } else {
        format!("Welcome, {name}!")
    };
    session.insert("flash", flash)?;
    Ok(Redirect::to("/").into_response())
}

/// The devices (sessions) of the user, with this one marked, each other one with a
/// "sign out that device" button that posts its handle (never its token).
async fn devices(session: Session) -> Result<Response, SessionError> {
    let Some(user) = session.id() else {
        return Ok(Redirect::to("/").into_response());
    };
    let flash = take_flash(&session)?;
    let devices = session.devices().await?;
    let now = unix_now();
    let mut list = String::new();
    for d in &devices {
        // A session signed in elsewhere (say by a Node.js service) may have no agent.
        let browser = d
            .user_agent
            .as_deref()
            .map_or_else(|| "unknown browser".to_owned(), device_name);
        let signed_in = match d.created_ms {
            Some(ms) => Some(i64::try_from(ms / 1000).unwrap_or(now)),
            None => d.info.get::<i64>(SIGNED_IN).ok().flatten(),
        };
        let since = signed_in.map_or_else(
            || "signed in at an unknown time".to_owned(),
            |t| format!("signed in {} s ago", (now - t).max(0)),
        );
        let action = if d.current {
            String::new()
        } else {
            format!(
                "<form method=\"post\" action=\"/logout-device\">\
                 <input type=\"hidden\" name=\"handle\" value=\"{handle}\">\
                 <button class=\"quiet sign-out-device\">Sign out that device</button></form>",
                handle = escape(&d.handle)
            )
        };
        let _ = write!(
            list,
            "<li class=\"device{cls}\" data-handle=\"{handle}\"><b>{browser}</b>{tag}\
             <span class=\"muted\">from {ip} · {since} · last active {idle} s ago · \
             {r} request(s)</span>{action}</li>",
            cls = if d.current { " me" } else { "" },
            tag = if d.current {
                "<span class=\"tag\">this device</span>"
            } else {
                ""
            },
            handle = escape(&d.handle),
            browser = escape(&browser),
            ip = escape(&d.ip),
            idle = d.idle,
            r = d.info.r,
        );
    }
    let flash = flash
        .map(|f| format!("<div class=\"flash\" id=\"flash\">{}</div>", escape(&f)))
        .unwrap_or_default();
    let body = format!(
        "{flash}<section class=\"card\"><h1>My devices</h1>\
         <p>Signed in on <b id=\"device-count\">{n}</b> device(s):</p><ul>{list}</ul>\
         <div class=\"actions\">\
         <form method=\"post\" action=\"/logout\"><button class=\"quiet\" id=\"logout-this\">Sign out this device</button></form>\
         <form method=\"post\" action=\"/logout-others\"><button id=\"logout-others\">Sign out all other devices</button></form>\
         <form method=\"post\" action=\"/logout-everywhere\"><button class=\"danger\" id=\"logout-everywhere\">Sign out everywhere</button></form>\
         </div><p><a href=\"/\">← Back to the shop</a></p></section>",
        n = devices.len()
    );
    Ok(page("My devices", Some(&user), true, &body).into_response())
}

#[derive(Deserialize)]
struct DeviceForm {
    handle: String,
}

/// Signs out one device of the user, named by its handle. A handle of another user's
/// session ends nothing (the store looks among this user's sessions only).
async fn logout_device(
    session: Session,
    Form(form): Form<DeviceForm>,
) -> Result<Redirect, SessionError> {
    if !session.is_authenticated() {
        return Ok(Redirect::to("/"));
    }
    let flash = if session.kill_device(&form.handle).await? {
        "Signed out that device."
    } else {
        "That device was already signed out."
    };
    if session.is_authenticated() {
        session.insert("flash", flash)?;
        return Ok(Redirect::to("/devices"));
    }
    Ok(Redirect::to("/")) // it was this device's handle
}

/// The events of the signed-in user that its open pages show, as Server-Sent Events:
/// `signin` when the same user signs in on another device (a new session: its `created`
/// event), `signedout` when this device's session ends other than by its own rotation.
/// Read from the store's event stream from now on, filtered by user id; events carry a
/// device handle, never a token.
async fn my_events(session: Session, Extension(store): Extension<RedisSessions>) -> Response {
    let (Some(user), Some(token)) = (session.id(), session.token()) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let own = device_handle(&token);
    let events = store.events(APP, EventsFrom::Now).filter_map(move |event| {
        // A read that failed (Redis restarting) is retried by the stream; skip it here.
        let notice = event
            .ok()
            .filter(|e| e.id == user)
            .and_then(|e| match (e.kind, e.reason) {
                (EventType::Created, _) if e.device != own => Some(
                    SseEvent::default()
                        .event("signin")
                        .data(serde_json::json!({ "ip": e.ip }).to_string()),
                ),
                (EventType::Ended, Some(reason))
                    if e.device == own && reason != EndReason::Rotated =>
                {
                    Some(SseEvent::default().event("signedout").data(reason.as_str()))
                }
                _ => None,
            });
        std::future::ready(notice.map(Ok::<_, Infallible>))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Signs this device out.
async fn logout(session: Session) -> Result<Redirect, SessionError> {
    session.destroy().await?;
    Ok(Redirect::to("/"))
}

/// Signs out every other device of the user; this one stays signed in.
async fn logout_others(session: Session) -> Result<Redirect, SessionError> {
    if session.is_authenticated() {
        let ended = session.destroy_others().await?;
        session.insert("flash", format!("Signed out {ended} other device(s)."))?;
        return Ok(Redirect::to("/devices"));
    }
    Ok(Redirect::to("/"))
}

/// Signs the user out on every device.
async fn logout_everywhere(session: Session) -> Result<Redirect, SessionError> {
    if session.is_authenticated() {
        session.destroyall().await?;
    }
    Ok(Redirect::to("/"))
}

/// "Chrome on Windows 10", "Safari on iPhone": the browser and OS parsed from the user
/// agent (woothee), so devices of one browser family can be told apart.
fn device_name(agent: &str) -> String {
    let known = |s: &str| !s.is_empty() && s != "UNKNOWN";
    match woothee::parser::Parser::new().parse(agent) {
        Some(ua) if known(ua.name) => {
            let headless = if agent.contains("HeadlessChrome") {
                "Headless "
            } else {
                ""
            };
            if known(ua.os) {
                format!("{headless}{} on {}", ua.name, ua.os)
            } else {
                format!("{headless}{}", ua.name)
            }
        }
        _ => browser_name(agent).to_owned(),
    }
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
