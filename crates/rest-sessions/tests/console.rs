//! The operator console (`RS_CONSOLE`) over plain HTTP: off by default, refused without
//! `RS_AUTH_TOKEN`, and its page served with a strict Content-Security-Policy and nothing
//! to load from elsewhere. The page at work in a browser: `console_browser.rs`.

mod common;

use common::{client, command, free_port, json, Server};
use std::process::Stdio;
use std::time::{Duration, Instant};

const SECRET: &str = "console-secret";

#[tokio::test]
async fn console_is_404_when_off() {
    let server = Server::in_memory(&[("RS_AUTH_TOKEN", SECRET)]);
    let http = client();
    // The page's path is public when the console is on: off, it is simply not found.
    let (status, body) = json(http.get(server.url("/console")).send().await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "notFound", "{body}");
    for path in ["/console", "/console/apps"] {
        let (status, body) = json(
            http.get(server.url(path))
                .bearer_auth(SECRET)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "{path} with the token: {body}");
        assert_eq!(body["error"], "notFound", "{path}: {body}");
    }
    // The apps' list stays behind the token like every other route.
    let (status, _) = json(http.get(server.url("/console/apps")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    // Nor without a token at all.
    let open = Server::in_memory(&[]);
    let (status, _) = json(http.get(open.url("/console")).send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[test]
fn console_without_auth_token_refuses_to_start() {
    let port = free_port();
    let mut cmd = command(port);
    cmd.env("RS_CONSOLE", "true")
        .args(["--store", "memory"])
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the server started with RS_CONSOLE=true and no RS_AUTH_TOKEN");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(!status.success(), "exit status {status}");
    assert!(
        stderr.contains("RS_CONSOLE=true needs RS_AUTH_TOKEN"),
        "the message says why: {stderr}"
    );
    // The same with an explicit empty token.
    let mut cmd = command(free_port());
    cmd.env("RS_CONSOLE", "true")
        .env("RS_AUTH_TOKEN", "")
        .args(["--store", "memory"]);
    let status = cmd.status().expect("run");
    assert!(!status.success());
}

#[tokio::test]
async fn console_page_has_a_strict_csp_and_loads_nothing_from_elsewhere() {
    let server = Server::in_memory(&[
        ("RS_AUTH_TOKEN", SECRET),
        ("RS_CONSOLE", "true"),
        ("RS_CONSOLE_APPS", "shop, blog,,shop"),
    ]);
    let http = client();
    // The page needs no token (a browser's navigation cannot send one) ...
    let reply = http.get(server.url("/console")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let header = |name: &str| {
        reply
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "no unsafe-inline/eval: {csp}");
    assert!(!csp.contains("http"), "no other origin allowed: {csp}");
    let page = reply.text().await.unwrap();
    assert!(page.contains("<script>") && page.contains("<style>"));
    // No external URL: nothing with a scheme or a protocol-relative address, no element
    // that loads a resource (the SVG namespace is a name, never fetched).
    let page = page.replace("\"http://www.w3.org/2000/svg\"", "");
    for needle in [
        "http://", "https://", "\"//", "'//", " src=", "<link", "@import", "url(", "<iframe",
    ] {
        assert!(!page.contains(needle), "the page contains {needle:?}");
    }
    assert!(!page.contains(SECRET), "the page never carries the secret");

    // ... and everything it shows is behind the token.
    let (status, _) = json(http.get(server.url("/console/apps")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    let (status, body) = json(
        http.get(server.url("/console/apps"))
            .bearer_auth(SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({ "apps": ["shop", "blog"] }));
    let (status, _) = json(
        http.get(server.url("/shop/soapp?dt=60"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "the routes the page uses still need the token");
}

#[tokio::test]
async fn health_lists_the_nodes_to_callers_with_the_secret() {
    // The console's store panel reads this list (on a cluster: every master).
    let redis = common::RedisServer::start();
    let server = Server::with_redis(&redis, &[("RS_AUTH_TOKEN", SECRET)]);
    let http = client();
    let (status, body) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (200, serde_json::json!({"status": "ok", "store": "redis"})),
        "no detail without the secret"
    );
    let (status, body) = json(
        http.get(server.url("/health"))
            .bearer_auth(SECRET)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["nodes"],
        serde_json::json!([{ "node": format!("127.0.0.1:{}", redis.port()), "ok": true }]),
        "{body}"
    );
}

/// `/{app}/stats` counts from the indexes and follows kills; a bad window list is a 400
/// with the contract's error shape.
#[tokio::test]
async fn stats_count_an_app_and_refuse_bad_windows() {
    let server = Server::in_memory(&[]);
    let http = client();
    let mut tokens = Vec::new();
    for id in ["ann", "ann", "bob"] {
        tokens.push(common::create(&http, &server, "shop", id).await);
    }
    let stats = |query: &'static str| {
        let request = http.get(server.url(&format!("/shop/stats{query}"))).send();
        async move { json(request.await.unwrap()).await }
    };
    let (status, s) = stats("").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        (s["sessions"].as_u64(), s["users"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["users_active"], serde_json::json!([2, 2, 2]));
    assert_eq!(s["shards"][0]["node"], serde_json::Value::Null);
    let kill = http
        .delete(server.url(&format!("/shop/kill/{}", tokens[2])))
        .send()
        .await
        .unwrap();
    assert_eq!(kill.status(), 200);
    let (_, s) = stats("?windows=10,20").await;
    assert_eq!(
        (s["sessions"].as_u64(), s["users"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(s["windows"], serde_json::json!([10, 20]));
    for bad in ["?windows=", "?windows=a", "?windows=-1", "?windows=1.5"] {
        let (status, body) = stats(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalidValue", "{bad}: {body}");
    }
    let (status, body) = json(http.get(server.url("/ab/stats")).send().await.unwrap()).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &serde_json::json!("invalidFormat"))
    );
}
