//! The example app (`examples/demo.rs`) in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) by fantoccini. Three browser profiles are three devices (each
//! with its own cookies). Screenshots are saved in `target/browser-test/`.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`chromedriver` and
//! `chromium` on PATH, or the `CHROMEDRIVER` / `CHROMIUM` variables). Without them the test
//! fails, on purpose: CI installs them, and a skipped browser test would hide breakage.

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

use fantoccini::{Client, ClientBuilder, Locator};
use redis_sessions_axum::redis_sessions::{Options, RedisSessions};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_support::browser::{chrome_capabilities, require_chromium, ChromeDriver};
use test_support::RedisServer;

/// chromedriver and the browsers it starts (test_support::browser).
struct Driver(ChromeDriver);

impl Driver {
    fn start() -> Driver {
        Driver(ChromeDriver::start())
    }

    /// A new browser with a fresh profile: a device of its own, with its own cookies.
    async fn browser(&self, profile: &Path) -> Client {
        self.device(profile, None, (1000, 700)).await
    }

    /// A browser that presents itself with `agent` (None: Chromium's own) in a window of
    /// `size` pixels (a phone's screen emulated below 500 px).
    async fn device(&self, profile: &Path, agent: Option<&str>, size: (u32, u32)) -> Client {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(chrome_capabilities(profile, size, agent))
            .connect(&self.0.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

/// Prints each request (method, path, status, the first characters of its cookie) to the
/// test's output, so a failure shows what the browsers sent.
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let cookie = req
        .headers()
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.chars().take(16).collect::<String>())
        .unwrap_or_default();
    let line = format!("{} {} [{cookie}]", req.method(), req.uri());
    let response = next.run(req).await;
    eprintln!("{line} -> {}", response.status());
    response
}

/// The laptop's user agent: Chrome on Windows.
const WINDOWS_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// The phone's: Safari on an iPhone (its window is a phone's, 390 px wide).
const IPHONE_SAFARI: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) \
     AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

/// True when the page is no wider than the window (nothing cut off at phone width).
async fn fits_the_window(browser: &Client) -> (bool, String) {
    let sizes = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let page = sizes[0].as_u64().unwrap();
    let window = sizes[1].as_u64().unwrap();
    (
        page <= window,
        format!("page {page} px in a {window} px window"),
    )
}

/// Waits until the element `#id` shows `expected` (pages load after clicks).
async fn wait_text(browser: &Client, id: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Id(id)).await {
            if let Ok(text) = element.text().await {
                if text == expected {
                    return;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = browser.current_url().await.map(|u| u.to_string());
    panic!("#{id} shows {last:?}, not {expected:?} (page {url:?})");
}

/// Waits for the sign-in form, i.e. for being signed out.
async fn wait_logged_out(browser: &Client) {
    let form = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("name"))
        .await;
    assert!(form.is_ok(), "expected the sign-in form");
}

async fn click(browser: &Client, id: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click #{id}: {e}"));
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Signs in from the shop page's form; the visit counter then shows 1.
async fn log_in(browser: &Client, base: &str, name: &str) {
    browser.goto(base).await.unwrap();
    wait_logged_out(browser).await;
    type_into(browser, "name", name).await;
    click(browser, "login").await;
    wait_text(browser, "user", name).await;
    wait_text(browser, "visits", "1").await;
}

/// The skus in the cart, as shown.
async fn cart(browser: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for item in browser
        .find_all(Locator::Css("li.cart-item"))
        .await
        .unwrap()
    {
        out.push(item.attr("data-sku").await.unwrap().unwrap_or_default());
    }
    out
}

/// The browser's session token (its cookie).
async fn token_of(browser: &Client) -> String {
    let cookie = browser.get_named_cookie(demo::APP).await.unwrap();
    cookie.value().to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Saves a screenshot as `target/browser-test/{name}.png`.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = target_dir().join("browser-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_in_a_real_browser() {
    // Check for the browser first, so a machine without it fails with the install hint.
    require_chromium();
    let driver = Driver::start();

    // The demo app on a free port, its sessions in a real redis-server.
    let redis = RedisServer::start();
    let store = RedisSessions::connect(Options::default().url(redis.url()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let service = demo::app(store.clone())
        .layer(axum::middleware::from_fn(log_request))
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let profiles = std::env::temp_dir().join(format!("rsa-browser-{}", std::process::id()));
    let laptop = driver.browser(&profiles.join("laptop")).await;
    let phone = driver
        .device(&profiles.join("phone"), Some(IPHONE_SAFARI), (390, 844))
        .await;
    let tablet = driver
        .device(&profiles.join("tablet"), Some(WINDOWS_CHROME), (1000, 700))
        .await;
    let result = tokio::time::timeout(
        Duration::from_secs(90),
        scenario(&laptop, &phone, &tablet, &base, &store),
    )
    .await;
    for browser in [laptop, phone, tablet] {
        let _ = browser.close().await;
    }
    drop(driver);
    server.abort();
    let _ = std::fs::remove_dir_all(&profiles);
    result.expect("the browser scenario took longer than 90 s");
}

async fn scenario(
    laptop: &Client,
    phone: &Client,
    tablet: &Client,
    base: &str,
    store: &RedisSessions,
) {
    // 1. A visitor fills a cart before signing in: reading the shop sets no cookie, the
    //    first add creates a visitor session.
    laptop.goto(base).await.unwrap();
    wait_logged_out(laptop).await;
    assert!(
        laptop.get_named_cookie(demo::APP).await.is_err(),
        "no cookie for reading"
    );
    click(laptop, "add-tea").await;
    wait_text(laptop, "cart-count", "1").await;
    click(laptop, "add-mug").await;
    wait_text(laptop, "cart-count", "2").await;
    click(laptop, "add-tea").await;
    wait_text(laptop, "cart-count", "3").await;
    assert_eq!(cart(laptop).await, ["tea", "mug"]);
    let visitor = laptop.get_named_cookie(demo::APP).await.unwrap();
    let visitor_token = visitor.value().to_owned();
    assert_eq!(visitor_token.len(), 64);
    let record = store.get(demo::APP, &visitor_token).await.unwrap().unwrap();
    assert!(redis_sessions_axum::is_visitor_id(&record.id));
    screenshot(laptop, "1-visitor-cart").await;

    // 2. Signing in keeps the cart, with a new token (the visitor's is dead).
    type_into(laptop, "name", "alice").await;
    click(laptop, "login").await;
    wait_text(laptop, "user", "alice").await;
    wait_text(laptop, "cart-count", "3").await;
    wait_text(
        laptop,
        "flash",
        "Welcome, alice! Your cart (3 item(s)) came along.",
    )
    .await;
    assert_eq!(cart(laptop).await, ["tea", "mug"]);
    let cookie = laptop.get_named_cookie(demo::APP).await.unwrap();
    assert_ne!(cookie.value(), visitor_token, "the token changes at login");
    assert!(store
        .get(demo::APP, &visitor_token)
        .await
        .unwrap()
        .is_none());
    // The cookie as the browser keeps it: HttpOnly, SameSite=Lax, a browser-session cookie.
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    assert_eq!(cookie.path(), Some("/"));
    assert!(cookie.expires().is_none(), "a browser-session cookie");
    laptop.refresh().await.unwrap();
    wait_text(laptop, "visits", "2").await;
    laptop.goto(base).await.unwrap();
    wait_text(laptop, "visits", "3").await;
    screenshot(laptop, "2-signed-in").await;

    // 3. Another user signs in in the same browser: bob sees none of alice's data (her
    //    cart and counter), and alice, back, does not see bob's.
    type_into(laptop, "switch-name", "bob").await;
    click(laptop, "switch").await;
    wait_text(laptop, "user", "bob").await;
    wait_text(laptop, "visits", "1").await;
    wait_text(laptop, "cart-count", "0").await;
    assert!(cart(laptop).await.is_empty());
    click(laptop, "add-honey").await;
    wait_text(laptop, "cart-count", "1").await;
    type_into(laptop, "switch-name", "alice").await;
    click(laptop, "switch").await;
    wait_text(laptop, "user", "alice").await;
    wait_text(laptop, "visits", "1").await;
    wait_text(laptop, "cart-count", "0").await;

    // 4. Three browsers signed in as one user: each sees the three devices, itself marked.
    log_in(phone, base, "alice").await;
    log_in(tablet, base, "alice").await;
    for browser in [laptop, phone, tablet] {
        browser.goto(&format!("{base}devices")).await.unwrap();
        wait_text(browser, "device-count", "3").await;
        let mine = browser
            .find_all(Locator::Css("li.device.me"))
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        let text = mine[0].text().await.unwrap();
        assert!(text.contains("this device"), "{text}");
        // Served with connect info: the session recorded the browser's address.
        assert!(text.contains("from 127.0.0.1"), "{text}");
        assert_eq!(
            browser
                .find_all(Locator::Css("li.device"))
                .await
                .unwrap()
                .len(),
            3
        );
    }
    screenshot(laptop, "3-three-devices").await;
    // Devices named by browser and OS from their user agents: three distinct names.
    let mut names = Vec::new();
    for name in laptop.find_all(Locator::Css("li.device b")).await.unwrap() {
        names.push(name.text().await.unwrap());
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.iter().any(|n| n == "Chrome on Windows 10"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("Safari on iPhone")),
        "{names:?}"
    );
    // The phone's pages fit its 390 px screen.
    for page in ["devices", ""] {
        phone.goto(&format!("{base}{page}")).await.unwrap();
        wait_text(phone, "user", "alice").await;
        let (fits, sizes) = fits_the_window(phone).await;
        assert!(fits, "/{page} on the phone: {sizes}");
    }
    screenshot(phone, "3-phone-width").await;

    // 5. "Sign out that device" on the laptop, for the tablet: the button posts the
    //    tablet's handle (a hash of its token, never the token). Checked from the tablet
    //    (signed out) and the phone (still signed in, two devices listed).
    let tablet_token = token_of(tablet).await;
    let tablet_handle = redis_sessions_axum::redis_sessions::device_handle(&tablet_token);
    laptop.goto(&format!("{base}devices")).await.unwrap();
    wait_text(laptop, "device-count", "3").await;
    let source = laptop.source().await.unwrap();
    for browser in [phone, tablet] {
        let token = token_of(browser).await;
        assert!(
            !source.contains(&token),
            "no other device's token in the page"
        );
    }
    assert_eq!(
        laptop
            .find_all(Locator::Css("button.sign-out-device"))
            .await
            .unwrap()
            .len(),
        2,
        "one button per other device, none for this one"
    );
    let button = format!("li[data-handle=\"{tablet_handle}\"] button.sign-out-device");
    laptop
        .find(Locator::Css(&button))
        .await
        .unwrap_or_else(|e| panic!("no sign-out button for the tablet: {e}"))
        .click()
        .await
        .unwrap();
    wait_text(laptop, "flash", "Signed out that device.").await;
    wait_text(laptop, "device-count", "2").await;
    screenshot(laptop, "4-that-device-signed-out").await;
    tablet.goto(base).await.unwrap();
    wait_logged_out(tablet).await;
    tablet.goto(&format!("{base}devices")).await.unwrap();
    wait_logged_out(tablet).await;
    phone.goto(&format!("{base}devices")).await.unwrap();
    wait_text(phone, "user", "alice").await;
    wait_text(phone, "device-count", "2").await;
    let listed = phone.find_all(Locator::Css("li.device")).await.unwrap();
    for item in listed {
        let handle = item.attr("data-handle").await.unwrap().unwrap_or_default();
        assert_ne!(handle, tablet_handle, "the tablet is no longer listed");
    }
    laptop.goto(base).await.unwrap();
    wait_text(laptop, "user", "alice").await;

    // 6. "Sign out all other devices" on the phone (the tablet signed in again): the
    //    laptop and the tablet are signed out (checked from them), the phone stays signed
    //    in with the same token and its counter.
    log_in(tablet, base, "alice").await;
    let phone_token = token_of(phone).await;
    phone.goto(&format!("{base}devices")).await.unwrap();
    wait_text(phone, "device-count", "3").await;
    click(phone, "logout-others").await;
    wait_text(phone, "flash", "Signed out 2 other device(s).").await;
    wait_text(phone, "device-count", "1").await;
    assert_eq!(
        token_of(phone).await,
        phone_token,
        "this device keeps its token"
    );
    screenshot(phone, "5-other-devices-signed-out").await;
    for browser in [laptop, tablet] {
        browser.goto(base).await.unwrap();
        wait_logged_out(browser).await;
        browser.goto(&format!("{base}devices")).await.unwrap();
        wait_logged_out(browser).await; // the devices page sends visitors home
    }
    phone.goto(base).await.unwrap();
    wait_text(phone, "user", "alice").await;
    wait_text(phone, "visits", "3").await; // login, the phone-width check of step 4, now

    // 7. Sign out everywhere from the laptop, signed in again: the phone is signed out.
    log_in(laptop, base, "alice").await;
    laptop.goto(&format!("{base}devices")).await.unwrap();
    wait_text(laptop, "device-count", "2").await;
    click(laptop, "logout-everywhere").await;
    wait_logged_out(laptop).await;
    phone.refresh().await.unwrap();
    wait_logged_out(phone).await;

    // 8. User input is shown as text, never as markup; "sign out this device" signs out.
    let evil = "<img src=x onerror=alert(1)>&amp;";
    log_in(tablet, base, evil).await;
    tablet.goto(&format!("{base}devices")).await.unwrap();
    wait_text(tablet, "device-count", "1").await;
    click(tablet, "logout-this").await;
    wait_logged_out(tablet).await;
    tablet.refresh().await.unwrap();
    wait_logged_out(tablet).await;
}

/// Logins under concurrency, rolling cookies and "remember me", in a real browser: a
/// small app of the test's own, on a real redis-server.
mod defaults {
    use super::*;
    use axum::extract::Path as UrlPath;
    use axum::routing::{get, post};
    use axum::Router;
    use redis_sessions_axum::{Session, SessionError, SessionLayer};

    const APP: &str = "racing";

    async fn login(
        s: Session,
        UrlPath(user): UrlPath<String>,
    ) -> Result<&'static str, SessionError> {
        s.upgrade(&user).await?;
        Ok("in")
    }

    async fn remember(
        s: Session,
        UrlPath(user): UrlPath<String>,
    ) -> Result<&'static str, SessionError> {
        s.set_expiry(Some(Duration::from_secs(30 * 24 * 3600)))?;
        s.upgrade(&user).await?;
        Ok("in")
    }

    /// Writes `key`, then holds the request for 600 ms (a slow request in flight).
    async fn slow_write(s: Session, UrlPath(key): UrlPath<String>) -> Result<String, SessionError> {
        s.insert(&key, 1)?;
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(key)
    }

    async fn me(s: Session) -> Result<String, SessionError> {
        Ok(s.id().unwrap_or_else(|| "anonymous".into()))
    }

    fn app(store: RedisSessions) -> Router {
        Router::new()
            .route(
                "/",
                get(|| async { axum::response::Html("<p id=ok>ok</p>") }),
            )
            .route("/login/{user}", post(login))
            .route("/remember/{user}", post(remember))
            .route("/slow/{key}", post(slow_write))
            .route("/me", get(me))
            .layer(
                SessionLayer::new(store, APP)
                    .visitors(true)
                    .max_age(Duration::from_secs(3600)),
            )
    }

    /// Parallel slow writes, a login while they run, then every write retried on 409
    /// (what an SPA's fetch wrapper does): returns the keys acknowledged (200) and the
    /// statuses seen.
    const RACE: &str = r#"
        const done = arguments[arguments.length - 1];
        const write = async (key) => {
            const seen = [];
            for (let attempt = 0; attempt < 4; attempt++) {
                const r = await fetch('/slow/' + key, { method: 'POST' });
                seen.push(r.status);
                if (r.status !== 409) return { key, ok: r.status === 200, seen };
            }
            return { key, ok: false, seen };
        };
        (async () => {
            const writes = ['k0', 'k1', 'k2', 'k3', 'k4'].map(write);
            await new Promise((ok) => setTimeout(ok, 150));
            const login = await fetch('/login/alice', { method: 'POST' });
            const results = await Promise.all(writes);
            done({ login: login.status, results });
        })().catch((e) => done({ error: String(e) }));
    "#;

    /// The cookie's expiry in seconds since the epoch (None: a browser-session cookie).
    async fn expiry(browser: &Client) -> Option<i64> {
        let cookie = browser.get_named_cookie(APP).await.unwrap();
        cookie
            .expires()
            .and_then(|e| e.datetime())
            .map(|t| t.unix_timestamp())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn login_race_rolling_cookie_and_remember_me_in_a_real_browser() {
        require_chromium();
        let driver = Driver::start();
        let redis = RedisServer::start();
        let store = RedisSessions::connect(Options::default().url(redis.url()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "http://127.0.0.1:{}/",
            listener.local_addr().unwrap().port()
        );
        let service = app(store.clone())
            .layer(axum::middleware::from_fn(log_request))
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, service).await });
        let profiles = std::env::temp_dir().join(format!("rsa-race-{}", std::process::id()));
        let browser = driver.browser(&profiles.join("spa")).await;
        let result =
            tokio::time::timeout(Duration::from_secs(60), scenario(&browser, &base, &store)).await;
        let _ = browser.close().await;
        drop(driver);
        server.abort();
        let _ = std::fs::remove_dir_all(&profiles);
        result.expect("the browser scenario took longer than 60 s");
    }

    async fn scenario(browser: &Client, base: &str, store: &RedisSessions) {
        browser.goto(base).await.unwrap();
        wait_text(browser, "ok", "ok").await;
        // A visitor session first (its cookie is the "old token" of the first login).
        let first = browser
            .execute_async(
                "const d = arguments[0]; fetch('/slow/cart', {method: 'POST'}).then(r => d(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(first, 200);

        // 1. Parallel fetches during login (twice: from a visitor session, then a
        //    re-login that replaces alice's session): the user stays logged in, and every
        //    acknowledged write is in the new session.
        for round in 0..2 {
            let outcome = browser.execute_async(RACE, vec![]).await.unwrap();
            assert_eq!(outcome["login"], 200, "{outcome}");
            let results = outcome["results"].as_array().expect("results");
            let token = token_of_app(browser).await;
            let Some(session) = store.get(APP, &token).await.unwrap() else {
                panic!("round {round}: the browser holds a dead token {token}: {outcome}");
            };
            assert_eq!(session.id, "alice", "round {round}: {outcome}");
            let data = session.d.unwrap_or_default();
            for result in results {
                let key = result["key"].as_str().unwrap();
                assert_eq!(
                    result["ok"], true,
                    "round {round}: every write acknowledged: {outcome}"
                );
                assert!(
                    data.contains_key(key),
                    "round {round}: acknowledged {key} lost: {outcome}"
                );
            }
            let retried = results
                .iter()
                .filter(|r| r["seen"].as_array().unwrap().contains(&json!(409)))
                .count();
            eprintln!("login race round {round}: {retried} of 5 writes answered 409 once and were retried");
            let me = browser
                .execute_async(
                    "const d = arguments[0]; fetch('/me').then(r => r.text()).then(d);",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(me, "alice");
        }

        // 2. Rolling cookie: a later request pushes the expiry forward (Max-Age 3600 from
        //    the last request, not from login).
        let first = expiry(browser).await.expect("a persistent cookie");
        tokio::time::sleep(Duration::from_millis(2200)).await;
        browser.goto(&format!("{base}me")).await.unwrap();
        let later = expiry(browser).await.expect("a persistent cookie");
        assert!(
            later >= first + 2,
            "expiry {first} -> {later}: not refreshed"
        );
        let now = time_now();
        assert!(
            (later - now - 3600).abs() <= 5,
            "Max-Age 3600 from now: {later} vs {now}"
        );

        // 3. Remember me: this login's cookie lasts 30 days, and so does the session.
        browser.goto(base).await.unwrap();
        let status = browser
            .execute_async(
                "const d = arguments[0]; fetch('/remember/bob', {method: 'POST'}).then(r => d(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, 200);
        let days30 = 30 * 24 * 3600;
        let remembered = expiry(browser).await.expect("a persistent cookie");
        assert!(
            (remembered - time_now() - days30).abs() <= 5,
            "{remembered}"
        );
        let token = token_of_app(browser).await;
        let session = store.get(APP, &token).await.unwrap().unwrap();
        assert_eq!((session.id.as_str(), session.ttl), ("bob", days30));
    }

    async fn token_of_app(browser: &Client) -> String {
        browser
            .get_named_cookie(APP)
            .await
            .unwrap()
            .value()
            .to_owned()
    }

    fn time_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}

/// The demo's "a new device signed in": dana's page on the laptop, listening to
/// `/events/me`, shows a notice when dana signs in on the phone (erin's page on the
/// tablet does not), and "this device was signed out" when the phone signs it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_sign_in_shows_on_the_other_pages() {
    require_chromium();
    let driver = Driver::start();
    let redis = RedisServer::start();
    let store = RedisSessions::connect(demo::options().url(redis.url()))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let service = demo::app(store.clone())
        .layer(axum::middleware::from_fn(log_request))
        .into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });
    let profiles = std::env::temp_dir().join(format!("rsa-notice-{}", std::process::id()));
    let laptop = driver.browser(&profiles.join("laptop")).await;
    let phone = driver
        .device(&profiles.join("phone"), Some(IPHONE_SAFARI), (390, 844))
        .await;
    let tablet = driver.browser(&profiles.join("tablet")).await;
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        notices(&laptop, &phone, &tablet, &base),
    )
    .await;
    for browser in [laptop, phone, tablet] {
        let _ = browser.close().await;
    }
    drop(driver);
    server.abort();
    let _ = std::fs::remove_dir_all(&profiles);
    result.expect("the notice scenario took longer than 60 s");
}

/// Waits until the page's EventSource is open (its events from now on reach the page).
async fn listening(browser: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = browser
            .execute("return notices.readyState;", vec![])
            .await
            .unwrap();
        if state == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page's EventSource did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The texts of the notices shown on the page.
async fn notice_texts(browser: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for n in browser
        .find_all(Locator::Css("#notices .notice"))
        .await
        .unwrap()
    {
        out.push(n.text().await.unwrap());
    }
    out
}

async fn notices(laptop: &Client, phone: &Client, tablet: &Client, base: &str) {
    log_in(laptop, base, "dana").await;
    log_in(tablet, base, "erin").await;
    listening(laptop).await;
    listening(tablet).await;
    assert!(notice_texts(laptop).await.is_empty(), "no notice before");

    // dana signs in on the phone: the laptop's open page says so, within a second or so.
    let signed_in = Instant::now();
    log_in(phone, base, "dana").await;
    let new_device = laptop
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("new-device"))
        .await
        .expect("the laptop shows the new sign-in");
    let text = new_device.text().await.unwrap();
    assert_eq!(text, "A new device signed in from 127.0.0.1.");
    eprintln!(
        "notice on the laptop {} ms after the phone's sign-in began",
        signed_in.elapsed().as_millis()
    );
    screenshot(laptop, "notice-new-device").await;
    // Another user's page hears nothing of dana, nor does the phone of its own sign-in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(notice_texts(tablet).await.is_empty(), "erin sees no notice");
    listening(phone).await;
    assert!(
        notice_texts(phone).await.is_empty(),
        "no notice of its own sign-in"
    );

    // The phone signs the laptop out from "My devices": the laptop's page says so.
    click(phone, "devices-link").await;
    click_first(phone, "button.sign-out-device").await;
    wait_text(phone, "device-count", "1").await;
    let signed_out = laptop
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("signed-out"))
        .await
        .expect("the laptop shows it was signed out");
    assert_eq!(
        signed_out.text().await.unwrap(),
        "This device was signed out."
    );
    assert_eq!(
        notice_texts(laptop).await.len(),
        2,
        "{:?}",
        notice_texts(laptop).await
    );
}

async fn click_first(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
}
