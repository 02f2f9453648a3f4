//! Headless Chromium for the browser tests (the middleware's demo, the REST console):
//! chromedriver on a free port and the WebDriver capabilities of a fresh browser profile.
//! The tests drive it with fantoccini; this module only finds and starts the programs, so
//! that every browser test runs the same Chromium the same way.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`chromedriver` and
//! `chromium` on PATH, or the `CHROMEDRIVER` / `CHROMIUM` variables). Without them a test
//! fails, on purpose: CI installs them, and a skipped browser test would hide breakage.

use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A program on PATH (or in the environment variable `var`), or a failure that says what
/// to install.
pub fn program(var: &str, names: &[&str]) -> PathBuf {
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

/// Fails now, saying what to install, unless chromedriver and Chromium are there.
pub fn require_chromium() {
    program("CHROMEDRIVER", &["chromedriver"]);
    program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
}

/// chromedriver on a free port, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    /// Where fantoccini connects: `http://127.0.0.1:<port>`.
    pub url: String,
}

impl ChromeDriver {
    /// Starts chromedriver and waits (10 s at most) until it listens.
    pub fn start() -> ChromeDriver {
        let binary = program("CHROMEDRIVER", &["chromedriver"]);
        let port = crate::free_port();
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
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The capabilities of a headless Chromium with a fresh `profile` (a device of its own,
/// with its own cookies) in a window of `size` pixels, presenting itself as `agent` (None:
/// Chromium's own). Desktop windows have a minimum width (about 500 px), so below that a
/// phone's screen is emulated, as Chrome's device mode does (viewport, touch, pixel ratio).
pub fn chrome_capabilities(
    profile: &Path,
    size: (u32, u32),
    agent: Option<&str>,
) -> Map<String, Value> {
    let chromium = program(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--window-size={},{}", size.0, size.1));
    args.push(format!("--user-data-dir={}", profile.display()));
    if let Some(agent) = agent {
        args.push(format!("--user-agent={agent}"));
    }
    let mut options = json!({ "binary": chromium, "args": args });
    if size.0 < 500 {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": size.0, "height": size.1, "pixelRatio": 2.0, "touch": true },
        });
        if let Some(agent) = agent {
            options["mobileEmulation"]["userAgent"] = json!(agent);
        }
    }
    let mut capabilities = Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities
}
