//! The operator console (`RS_CONSOLE`) in headless Chromium, driven through chromedriver
//! (WebDriver) by fantoccini, against the real binary and a real Redis: enter the token,
//! see an app's counts, find a user's devices, sign out one device (and check through the
//! REST API that exactly that session ended), all the others, or everywhere, the live
//! event feed, one task done with the keyboard alone, and a phone's 375 px wide screen.
//!
//! Screenshots go to `target/browser-test/console-*.png`; with `UPDATE_SCREENSHOTS=1` also
//! to `docs/console/` (the ones the README shows).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`chromedriver` and
//! `chromium` on PATH, or the `CHROMEDRIVER` / `CHROMIUM` variables). Without them the test
//! fails, on purpose, as redis-sessions-axum's browser test does: CI installs them, and a
//! skipped browser test would hide breakage.

mod common;

use common::{RedisServer, Server};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_support::browser::{chrome_capabilities, require_chromium, ChromeDriver};

const SECRET: &str = "console-test-secret";

/// chromedriver and the browsers it starts (test_support::browser).
struct Driver(ChromeDriver);

impl Driver {
    fn start() -> Driver {
        Driver(ChromeDriver::start())
    }

    /// A browser with a fresh profile in a window of `size` pixels (a phone's screen
    /// emulated below 500 px wide).
    async fn browser(&self, profile: &Path, size: (u32, u32)) -> Client {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(chrome_capabilities(profile, size, None))
            .connect(&self.0.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

/// Clicks the element `css` selects.
async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Clicks the button of `action` on the `index`th device card.
async fn click_device(browser: &Client, index: usize, action: &str) {
    let cards = browser.find_all(Locator::Css("#devices li")).await.unwrap();
    cards[index]
        .find(Locator::Css(&format!("button[data-action=\"{action}\"]")))
        .await
        .unwrap_or_else(|e| panic!("{action} on device {index}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {action}: {e}"));
}

/// Types `text` into the field of id `id`.
async fn fill(browser: &Client, id: &str, text: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
}

/// A REST client that presents the secret.
fn rest() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {SECRET}")).unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Creates a session of `id` in `app` whose data names its browser (`ua`, as an app that
/// stores the user agent does), and returns its token.
async fn sign_in(http: &reqwest::Client, server: &Server, app: &str, id: &str, ua: &str) -> String {
    let url = server.url(&format!("/{app}/create/{id}?ip=192.0.2.7&ttl=86400"));
    let (status, body) = common::json(http.put(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/{app}/set/{token}"));
    let (status, body) = common::json(
        http.post(url)
            .body(json!({ "ua": ua }).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    token
}

/// The id of the user a token's session belongs to, or None once it has ended.
async fn owner(http: &reqwest::Client, server: &Server, app: &str, token: &str) -> Option<String> {
    let url = server.url(&format!("/{app}/get/{token}"));
    let (status, body) = common::json(http.get(url).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["id"].as_str().map(str::to_owned)
}

/// Waits until `script` (a function body returning a value) returns `expected`.
async fn wait_for(browser: &Client, script: &str, expected: Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(value) = browser.execute(script, vec![]).await {
            if value == expected {
                return;
            }
            last = value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{script}` is {last}, not {expected}");
}

/// The text of the `data-stat` value `stat` in app `app`'s card.
fn app_stat(app: &str, stat: &str) -> String {
    format!(
        "var li = document.querySelector('#apps li[data-app=\"{app}\"]'); \
         var dd = li && li.querySelector('[data-stat=\"{stat}\"]'); return dd ? dd.textContent : null;"
    )
}

const DEVICES: &str = "return document.querySelectorAll('#devices li').length;";

/// The `ua` of each device the console lists, in order.
async fn listed_agents(browser: &Client) -> Vec<String> {
    let value = browser
        .execute(
            "return Array.from(document.querySelectorAll('#devices li h4')).map(h => h.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(value).unwrap()
}

/// Sends keys to whatever has the focus, as a keyboard does.
async fn keys(browser: &Client, text: &str) {
    browser
        .active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// What has the focus: its id, else its aria-label, else its text.
async fn focused(browser: &Client) -> String {
    let value = browser
        .execute(
            "var e = document.activeElement; return e.id || e.getAttribute('aria-label') || e.textContent;",
            vec![],
        )
        .await
        .unwrap();
    value.as_str().unwrap_or_default().to_owned()
}

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

fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Saves a screenshot as `target/browser-test/console-{name}.png` (and in `docs/console/`
/// with `UPDATE_SCREENSHOTS=1`).
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_dir().join("target"))
        .join("browser-test");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(format!("console-{name}.png")), &png).unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let docs = repo_dir().join("docs/console");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    require_chromium();
    let redis = RedisServer::start();
    let server = Server::with_redis(
        &redis,
        &[
            ("RS_AUTH_TOKEN", SECRET),
            ("RS_CONSOLE", "true"),
            ("RS_CONSOLE_APPS", "shop,blog"),
            ("RS_EVENTS", "true"),
        ],
    );
    let http = rest();
    let alice = [
        (
            "Firefox on Linux",
            sign_in(&http, &server, "shop", "alice", "Firefox on Linux").await,
        ),
        (
            "Chrome on Windows",
            sign_in(&http, &server, "shop", "alice", "Chrome on Windows").await,
        ),
        (
            "Safari on iPhone",
            sign_in(&http, &server, "shop", "alice", "Safari on iPhone").await,
        ),
    ];
    let bob = sign_in(&http, &server, "shop", "bob", "Edge on Windows").await;
    let carol = [
        sign_in(&http, &server, "shop", "carol", "Chrome on Android").await,
        sign_in(&http, &server, "shop", "carol", "Firefox on macOS").await,
    ];
    sign_in(&http, &server, "blog", "dave", "Safari on macOS").await;

    let driver = Driver::start();
    let profiles = tempdir();
    let browser = driver
        .browser(&profiles.join("desktop"), (1280, 1200))
        .await;
    browser.goto(&server.url("/console")).await.unwrap();

    // A wrong token is refused and the form asks again.
    fill(&browser, "token", "wrong").await;
    click(&browser, "#login-form button").await;
    wait_for(
        &browser,
        "return document.getElementById('login-error').textContent;",
        json!("The server refused this token."),
    )
    .await;

    // The token: the apps and their counts.
    fill(&browser, "token", SECRET).await;
    click(&browser, "#login-form button").await;
    wait_for(&browser, &app_stat("shop", "sessions"), json!("6")).await;
    wait_for(&browser, &app_stat("shop", "users"), json!("3")).await;
    wait_for(&browser, &app_stat("shop", "active-300"), json!("3")).await;
    wait_for(&browser, &app_stat("shop", "active-86400"), json!("3")).await;
    wait_for(&browser, &app_stat("blog", "sessions"), json!("1")).await;
    // The store's node, from /health's list (the secret shows it).
    wait_for(
        &browser,
        "return Array.from(document.querySelectorAll('#nodes li')).map(li => li.textContent);",
        json!([format!("master 127.0.0.1:{} — answers", redis.port())]),
    )
    .await;
    let stored = browser
        .execute("return sessionStorage.getItem('rs-console-token');", vec![])
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!(SECRET),
        "the token is kept in the tab's sessionStorage"
    );

    // The app: its chart (six sessions active this hour: the rightmost bar is the tallest).
    click(&browser, "#apps li[data-app=\"shop\"] h3 button").await;
    wait_for(
        &browser,
        "return document.querySelectorAll('#chart rect').length;",
        json!(24),
    )
    .await;
    // One server: no spread over masters to show.
    wait_for(
        &browser,
        "return document.getElementById('spread').hidden && document.getElementById('spread-title').hidden;",
        json!(true),
    )
    .await;
    wait_for(
        &browser,
        "var r = document.querySelectorAll('#chart rect'); return r[23].getAttribute('height') !== '0' \
         && r[0].getAttribute('height') === '0';",
        json!(true),
    )
    .await;

    // Events are on: start the live feed before the sign-out, to see it arrive.
    wait_for(
        &browser,
        "return document.getElementById('events-toggle').hidden;",
        json!(false),
    )
    .await;
    click(&browser, "#events-toggle").await;
    wait_for(
        &browser,
        "return document.getElementById('events-toggle').textContent;",
        json!("Stop the live feed"),
    )
    .await;
    // The stream has started once the server answered (the page then says so): a create
    // from now on shows.
    wait_for(
        &browser,
        "return document.getElementById('events-status').textContent;",
        json!("Live: new events appear below."),
    )
    .await;
    let erin = sign_in(&http, &server, "shop", "erin", "Vivaldi on Linux").await;
    wait_for(
        &browser,
        "var li = document.querySelector('#events li'); return li ? /created.*user erin/.test(li.textContent) : false;",
        json!(true),
    )
    .await;

    // Search alice: her three devices, with their user agents.
    fill(&browser, "user-id", "alice").await;
    click(&browser, "#user-form button").await;
    wait_for(&browser, DEVICES, json!(3)).await;
    let agents = listed_agents(&browser).await;
    let mut sorted = agents.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["Chrome on Windows", "Firefox on Linux", "Safari on iPhone"]
    );

    // Sign out the Chrome laptop.
    let position = agents
        .iter()
        .position(|a| a == "Chrome on Windows")
        .unwrap();
    click_device(&browser, position, "kill-device").await;
    wait_for(&browser, DEVICES, json!(2)).await;
    let mut left = listed_agents(&browser).await;
    left.sort();
    assert_eq!(left, ["Firefox on Linux", "Safari on iPhone"]);
    // Through the REST API: exactly that session ended.
    for (agent, token) in &alice {
        let expected = (*agent != "Chrome on Windows").then(|| "alice".to_owned());
        assert_eq!(
            owner(&http, &server, "shop", token).await,
            expected,
            "{agent}"
        );
    }
    assert_eq!(
        owner(&http, &server, "shop", &bob).await.as_deref(),
        Some("bob")
    );
    for token in carol.iter().chain([&erin]) {
        assert!(owner(&http, &server, "shop", token).await.is_some());
    }
    let (_, soid) = common::json(
        http.get(server.url("/shop/soid/alice"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(soid["sessions"].as_array().map(Vec::len), Some(2), "{soid}");
    // The feed shows the end, by the kill.
    wait_for(
        &browser,
        "var li = document.querySelector('#events li'); return li ? /ended.*user alice/.test(li.textContent) : false;",
        json!(true),
    )
    .await;
    // The counts were refreshed after the sign-out: erin came, one session of alice went.
    wait_for(&browser, &app_stat("shop", "users"), json!("4")).await;
    wait_for(&browser, &app_stat("shop", "sessions"), json!("6")).await;
    browser
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    screenshot(&browser, "desktop").await;

    // "Sign out all others" on carol's Android phone: only it is left.
    let field = browser.find(Locator::Id("user-id")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("carol").await.unwrap();
    click(&browser, "#user-form button").await;
    wait_for(&browser, DEVICES, json!(2)).await;
    let agents = listed_agents(&browser).await;
    let keep = agents
        .iter()
        .position(|a| a == "Chrome on Android")
        .unwrap();
    click_device(&browser, keep, "kill-others").await;
    wait_for(&browser, DEVICES, json!(1)).await;
    assert_eq!(listed_agents(&browser).await, ["Chrome on Android"]);
    assert_eq!(
        owner(&http, &server, "shop", &carol[0]).await.as_deref(),
        Some("carol")
    );
    assert_eq!(owner(&http, &server, "shop", &carol[1]).await, None);

    // "Sign out everywhere" for alice: her two remaining sessions end, nobody else's.
    let field = browser.find(Locator::Id("user-id")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys("alice").await.unwrap();
    click(&browser, "#user-form button").await;
    wait_for(&browser, DEVICES, json!(2)).await;
    click(&browser, "#kill-everywhere").await;
    wait_for(&browser, DEVICES, json!(0)).await;
    wait_for(
        &browser,
        "return document.getElementById('user-status').textContent;",
        json!("Signed out 2 session(s) everywhere. 0 devices signed in."),
    )
    .await;
    for (agent, token) in &alice {
        assert_eq!(owner(&http, &server, "shop", token).await, None, "{agent}");
    }
    assert_eq!(
        owner(&http, &server, "shop", &bob).await.as_deref(),
        Some("bob")
    );
    assert_eq!(
        owner(&http, &server, "shop", &carol[0]).await.as_deref(),
        Some("carol")
    );
    browser.close().await.unwrap();

    // A phone, 375 px wide, keyboard only: the token, the first app, a user, sign out.
    let phone = driver.browser(&profiles.join("phone"), (375, 812)).await;
    phone.goto(&server.url("/console")).await.unwrap();
    wait_for(&phone, "return document.activeElement.id;", json!("token")).await;
    keys(&phone, &format!("{SECRET}{}", Key::Enter)).await;
    // The first app's button takes the focus once the apps are listed.
    wait_for(
        &phone,
        "return document.activeElement.getAttribute('aria-label');",
        json!("Open app shop"),
    )
    .await;
    keys(&phone, &Key::Enter.to_string()).await;
    wait_for(
        &phone,
        "return document.activeElement.id;",
        json!("app-title"),
    )
    .await;
    keys(&phone, &Key::Tab.to_string()).await;
    assert_eq!(focused(&phone).await, "user-id");
    keys(&phone, &format!("bob{}", Key::Enter)).await;
    wait_for(&phone, DEVICES, json!(1)).await;
    keys(&phone, &Key::Tab.to_string()).await;
    keys(&phone, &Key::Tab.to_string()).await;
    let label = focused(&phone).await;
    assert!(label.starts_with("Sign out device "), "focus on {label:?}");
    // The focus is visible where the keyboard put it.
    let outline = phone
        .execute(
            "var s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(outline, json!(["solid", "3px"]), "a visible focus ring");
    let (fits, sizes) = fits_the_window(&phone).await;
    assert!(fits, "the console fits a phone: {sizes}");
    assert_eq!(
        phone
            .execute("return window.innerWidth;", vec![])
            .await
            .unwrap(),
        json!(375)
    );
    screenshot(&phone, "phone").await;
    keys(&phone, &Key::Enter.to_string()).await;
    wait_for(&phone, DEVICES, json!(0)).await;
    assert_eq!(
        owner(&http, &server, "shop", &bob).await,
        None,
        "bob's session ended"
    );
    assert_eq!(
        owner(&http, &server, "shop", &carol[0]).await.as_deref(),
        Some("carol"),
        "nobody else's"
    );
    let (fits, sizes) = fits_the_window(&phone).await;
    assert!(fits, "still fits after the sign-out: {sizes}");
    phone.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profiles);
}

/// On a Redis Cluster the app's view shows how its sessions spread over the masters (its
/// shards grouped by the master that holds them), each master's share adding up to the
/// app's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_spread_over_a_clusters_masters() {
    require_chromium();
    let cluster = test_support::cluster::RedisCluster::start(3, 0);
    let seeds = cluster.urls().join(",");
    let server = Server::start(
        &[
            ("RS_AUTH_TOKEN", SECRET),
            ("RS_CONSOLE", "true"),
            ("RS_CONSOLE_APPS", "shop"),
            ("RS_REDIS_CLUSTER", &seeds),
        ],
        &[],
    );
    let http = rest();
    for i in 0..60 {
        sign_in(
            &http,
            &server,
            "shop",
            &format!("user{}", i % 40),
            "Firefox on Linux",
        )
        .await;
    }
    let driver = Driver::start();
    let profiles = tempdir();
    let browser = driver
        .browser(&profiles.join("cluster"), (1280, 1000))
        .await;
    browser.goto(&server.url("/console")).await.unwrap();
    fill(&browser, "token", SECRET).await;
    click(&browser, "#login-form button").await;
    wait_for(&browser, &app_stat("shop", "sessions"), json!("60")).await;
    wait_for(&browser, &app_stat("shop", "users"), json!("40")).await;
    click(&browser, "#apps li[data-app=\"shop\"] h3 button").await;
    wait_for(
        &browser,
        "return document.querySelectorAll('#spread li').length;",
        json!(3),
    )
    .await;
    let spread = browser
        .execute(
            "return Array.from(document.querySelectorAll('#spread li')).map(li => [li.dataset.node, Number(li.dataset.sessions)]);",
            vec![],
        )
        .await
        .unwrap();
    let spread: Vec<(String, u64)> = serde_json::from_value(spread).unwrap();
    let masters = cluster.master_addresses();
    let listed: Vec<String> = spread.iter().map(|(node, _)| node.clone()).collect();
    assert_eq!(listed, masters, "one line per master, in order");
    assert_eq!(spread.iter().map(|(_, n)| n).sum::<u64>(), 60);
    assert!(
        spread.iter().all(|(_, n)| *n > 0),
        "60 sessions over 60 shards reach every master: {spread:?}"
    );
    let visible = browser
        .execute(
            "return !document.getElementById('spread-title').hidden;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(visible, json!(true));
    screenshot(&browser, "cluster").await;
    browser.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profiles);
}

/// A fresh directory for the browser profiles (an absolute path: chromedriver reads the
/// browser's DevTools port from a file in it).
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("rest-sessions-console-profiles")
        .join(format!("{}-{}", std::process::id(), common::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
