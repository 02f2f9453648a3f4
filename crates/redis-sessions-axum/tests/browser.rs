//! The example app (`examples/demo.rs`) in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) by fantoccini. Two browser profiles are two devices of one user.
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
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::RedisServer;

/// A program on PATH (or in the environment variable `var`), or a failure that says what
/// to install.
fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var).map(PathBuf::from) {
        if path.is_file() {
            return path;
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the browser test needs {} on PATH (or {var} set): install the Debian packages \
         `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver)",
        names.join(" or ")
    );
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let binary = program("CHROMEDRIVER", &["chromedriver"]);
        let port = test_support::free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser with a fresh profile: a device of its own, with its own cookies.
    async fn browser(&self, profile: &Path) -> Client {
        let chromium = program(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,700",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

/// Waits for the login form, i.e. for being logged out.
async fn wait_logged_out(browser: &Client) {
    let form = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("name"))
        .await;
    assert!(form.is_ok(), "expected the login form");
}

async fn log_in(browser: &Client, base: &str, name: &str) {
    browser.goto(base).await.unwrap();
    wait_logged_out(browser).await;
    let field = browser.find(Locator::Id("name")).await.unwrap();
    field.send_keys(name).await.unwrap();
    browser
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(browser, "visits", "1").await;
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_in_a_real_browser() {
    // Check for the browser first, so a machine without it fails with the install hint.
    program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
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
    let service = demo::app(store).into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, service).await });

    let profiles = std::env::temp_dir().join(format!("rsa-browser-{}", std::process::id()));
    let laptop = driver.browser(&profiles.join("laptop")).await;
    let phone = driver.browser(&profiles.join("phone")).await;
    let result =
        tokio::time::timeout(Duration::from_secs(45), scenario(&laptop, &phone, &base)).await;
    let _ = laptop.close().await;
    let _ = phone.close().await;
    drop(driver);
    server.abort();
    let _ = std::fs::remove_dir_all(&profiles);
    result.expect("the browser scenario took longer than 45 s");
}

async fn scenario(laptop: &Client, phone: &Client, base: &str) {
    // Log in on the laptop; the counter moves on each visit.
    log_in(laptop, base, "alice").await;
    wait_text(laptop, "user", "alice").await;
    laptop.goto(base).await.unwrap();
    wait_text(laptop, "visits", "2").await;
    laptop.refresh().await.unwrap();
    wait_text(laptop, "visits", "3").await;

    // The cookie as the browser keeps it: HttpOnly, SameSite=Lax, a browser-session cookie.
    let cookie = laptop.get_named_cookie(demo::APP).await.unwrap();
    assert_eq!(cookie.value().len(), 64);
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Lax)");
    assert_eq!(cookie.path(), Some("/"));
    assert!(cookie.expires().is_none(), "a browser-session cookie");

    // The same user on a second device: its own session and counter.
    log_in(phone, base, "alice").await;
    assert_ne!(
        phone.get_named_cookie(demo::APP).await.unwrap().value(),
        cookie.value()
    );

    // The laptop sees both devices, this one marked.
    laptop.goto(&format!("{base}devices")).await.unwrap();
    wait_text(laptop, "device-count", "2").await;
    let devices = laptop.find_all(Locator::Css("li.device")).await.unwrap();
    assert_eq!(devices.len(), 2);
    let mine = laptop.find_all(Locator::Css("li.device.me")).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(mine[0].text().await.unwrap().contains("this device"));
    let png = laptop.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = target_dir().join("browser-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("devices.png"), png).unwrap();

    // Log out everywhere from the laptop: both devices are logged out.
    laptop
        .find(Locator::Id("logout-everywhere"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_logged_out(laptop).await;
    phone.refresh().await.unwrap();
    wait_logged_out(phone).await;
    laptop.goto(&format!("{base}devices")).await.unwrap();
    wait_logged_out(laptop).await; // the devices page sends visitors home

    // User input is shown as text, never as markup; "log out this device" logs out.
    let evil = "<img src=x onerror=alert(1)>&amp;";
    log_in(phone, base, evil).await;
    wait_text(phone, "user", evil).await;
    phone.goto(&format!("{base}devices")).await.unwrap();
    wait_text(phone, "device-count", "1").await;
    phone
        .find(Locator::Id("logout-this"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_logged_out(phone).await;
    phone.refresh().await.unwrap();
    wait_logged_out(phone).await;
}
