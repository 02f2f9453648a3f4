//! What operators rely on, black-box: bad input never breaks the server, a Redis outage is
//! a fast 503 and heals by itself, the shared secret, start-up failures, graceful stop.

mod common;

use common::{client, command, create, free_port, json, raw_request, RedisServer, Rng, Server};
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A path segment: a word of the API, a plausible value, or random percent-encoded bytes.
fn segment(rng: &mut Rng, token: &str) -> String {
    match rng.below(8) {
        0 => rng
            .pick(&[
                "create", "get", "set", "kill", "killall", "killsoid", "soid", "soapp", "activity",
                "ping", "health", "metrics",
            ])
            .to_string(),
        1 => rng.pick(&["fuzzapp", "ab", "a_b-c", "x"]).to_string(),
        2 => token.to_string(),
        3 => "%0A".repeat(rng.below(3) + 1),
        4 => "z".repeat(rng.below(300)),
        5 => rng
            .pick(&["%FF", "%C3%28", "%ED%A0%80", "%00", "..", "%2F%2F"])
            .to_string(),
        _ => {
            let n = rng.below(20);
            rng.bytes(n).iter().map(|b| format!("%{b:02X}")).collect()
        }
    }
}

fn query(rng: &mut Rng) -> String {
    let keys = ["ip", "ttl", "dt", "no_resave", "d", "x", ""];
    let values = [
        "",
        "1",
        "5",
        "10",
        "30",
        "-1",
        "abc",
        "1e9",
        "99999999999999999999999",
        "%FF",
        "%00",
        "true",
        "127.0.0.1",
    ];
    let n = rng.below(5);
    let pairs: Vec<String> = (0..n)
        .map(|_| format!("{}={}", rng.pick(&keys), rng.pick(&values)))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => Vec::new(),
        1 => {
            let n = rng.below(2000);
            rng.bytes(n)
        }
        2 => format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        3 => "{\"a\":".repeat(5_000).into_bytes(),
        4 => format!(r#"{{"k":"{}"}}"#, "v".repeat(1_500_000)).into_bytes(),
        5 => br#"{"a":1,"b":"x","c":true,"d":null}"#.to_vec(),
        6 => br#"{"a":[1],"b":{"c":2}}"#.to_vec(),
        7 => vec![0xff, 0xfe, 0xfd, b'{', b'}'],
        8 => rng
            .pick(&["[]", "\"s\"", "null", "1", "{}", "{", "}", "tru"])
            .as_bytes()
            .to_vec(),
        _ => format!(r#"{{"{}":1}}"#, "k".repeat(rng.below(5000))).into_bytes(),
    }
}

#[tokio::test]
async fn bad_input_fuzz_never_breaks_the_server() {
    let redis = RedisServer::start();
    let mut server = Server::with_redis(&redis, &[]);
    let http = client();
    let token = create(&http, &server, "fuzzapp", "u1").await;
    // A fresh connection per case: the server closes a connection whose request body it
    // did not read (a 404 with a body, a 413), and a pooled client would race that close.
    let fuzz_http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let methods = [
        "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO",
    ];
    let mut answered = 0;
    for i in 0..400 {
        let depth = rng.below(5);
        let path: String = (0..depth)
            .map(|_| format!("/{}", segment(&mut rng, &token)))
            .collect();
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        let url = format!("{}{}", server.url(&path), query(&mut rng));
        let method = reqwest::Method::from_bytes(rng.pick(&methods).as_bytes()).unwrap();
        let body = body(&mut rng);
        let result = fuzz_http
            .request(method.clone(), &url)
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) => {
                answered += 1;
                let status = response.status().as_u16();
                assert!(
                    status < 500,
                    "case {i}: {method} {url} ({} body bytes) -> {status}",
                    body.len()
                );
                if method != reqwest::Method::HEAD && status >= 400 {
                    let (_, reply) = json(response).await;
                    assert!(
                        reply["error"].is_string(),
                        "case {i}: {method} {url}: {reply}"
                    );
                }
            }
            // Only a body the server does not read (over the limit, or sent to a route that
            // takes none) may see the connection closed before it is all sent.
            Err(err) => assert!(
                body.len() > 16 * 1024,
                "case {i}: {method} {url} ({} body bytes): {err:?}",
                body.len()
            ),
        }
    }
    assert!(answered > 300);

    // Raw garbage on the socket.
    for _ in 0..30 {
        let n = rng.below(300);
        let mut request = rng.bytes(n);
        if rng.below(2) == 0 {
            request = [b"GET /".as_slice(), &request, b" HTTP/1.1\r\n\r\n"].concat();
        }
        if let Some(reply) = raw_request(server.port(), &request) {
            assert!(!reply.starts_with("HTTP/1.1 500"), "{reply}");
        }
    }

    assert!(server.is_running());
    let ping = http.get(server.url("/ping")).send().await.unwrap();
    assert_eq!(ping.text().await.unwrap(), "PONG");
    let (status, s) = json(
        http.get(server.url(&format!("/fuzzapp/get/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(s["id"].is_string() || s == json!({}));
}

#[tokio::test]
async fn redis_outage_is_a_fast_503_and_heals_without_restart() {
    let mut redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let token = create(&http, &server, "outage", "u1").await;
    let get_url = server.url(&format!("/outage/get/{token}"));

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = json(http.get(&get_url).send().await.unwrap()).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "redisUnavailable");
        assert!(body["message"].is_string());
        assert!(elapsed < Duration::from_secs(2), "503 took {elapsed:?}");
    }
    // /ping asks the store, as the original's did: load balancers see the outage.
    let started = Instant::now();
    let (status, body) = json(http.get(server.url("/ping")).send().await.unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "redisUnavailable");
    let started = Instant::now();
    let (status, health) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 503);
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["store"], "redis");
    // Input errors are still answered without the store.
    let (status, _) = json(
        http.get(server.url("/outage/get/bad"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);

    redis.restart();
    let started = Instant::now();
    loop {
        let (status, body) = json(http.get(&get_url).send().await.unwrap()).await;
        if status == 200 {
            // The restarted Redis lost its data (no persistence): no session, but an answer.
            assert_eq!(body, json!({}));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not recovered within 5 s: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, health) = json(http.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!((status, health["status"].clone()), (200, json!("ok")));
    let ping = http.get(server.url("/ping")).send().await.unwrap();
    assert_eq!(ping.status().as_u16(), 200);
    assert_eq!(ping.text().await.unwrap(), "PONG");
    create(&http, &server, "outage", "u2").await;
}

#[tokio::test]
async fn a_hung_redis_is_a_503_within_2s_never_a_hang() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[]);
    let http = client();
    let token = create(&http, &server, "hungapp", "u1").await;
    // Redis runs a busy script: it accepts connections but answers nothing until the
    // script is killed (allowed once it has run for 1.5 s).
    let reply = redis
        .command(&["CONFIG", "SET", "busy-reply-threshold", "1500"])
        .unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    let port = redis.port();
    let busy = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let script = "local i = 0 while true do i = i + 1 end";
        let request = format!(
            "*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n",
            script.len()
        );
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read(&mut [0u8; 256]);
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let (status, body) = json(
        http.get(server.url(&format!("/hungapp/get/{token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(elapsed < Duration::from_secs(2), "503 took {elapsed:?}");
    let started = Instant::now();
    let (status, body) = json(http.get(server.url("/ping")).send().await.unwrap()).await;
    let elapsed = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        elapsed < Duration::from_secs(2),
        "/ping 503 took {elapsed:?}"
    );

    // Kill the script; the server serves again by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis
        .command(&["SCRIPT", "KILL"])
        .is_ok_and(|r| r.starts_with("+OK") || r.contains("NOTBUSY"))
    {
        assert!(Instant::now() < deadline, "script not killed");
        std::thread::sleep(Duration::from_millis(100));
    }
    busy.join().unwrap();
    let started = Instant::now();
    loop {
        let (status, body) = json(
            http.get(server.url(&format!("/hungapp/get/{token}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if status == 200 {
            assert_eq!(body["id"], "u1");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn shared_secret_guards_every_route_but_ping_and_health() {
    let server = Server::in_memory(&[("RS_AUTH_TOKEN", "s3cret-token")]);
    let http = client();
    let url = server.url(&format!("/authapp/get/{}", common::UNKNOWN_TOKEN));

    let (status, body) = json(http.get(&url).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    for wrong in [
        "Bearer wrong",
        "Bearer s3cret-toke",
        "Bearer s3cret-token2",
        "s3cret-token",
        "Basic s3cret-token",
    ] {
        let (status, _) = json(
            http.get(&url)
                .header("Authorization", wrong)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{wrong}");
    }
    let (status, body) = json(
        http.get(&url)
            .header("Authorization", "Bearer s3cret-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));

    let ping = http.get(server.url("/ping")).send().await.unwrap();
    assert_eq!(ping.status().as_u16(), 200);
    assert_eq!(ping.text().await.unwrap(), "PONG");
    let health = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 401);
    let create = http
        .put(server.url("/authapp/create/u1?ip=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(create.status().as_u16(), 401);
}

#[test]
fn unreachable_redis_fails_the_start_and_names_the_memory_store() {
    let nothing_there = free_port().to_string();
    let started = Instant::now();
    let output = command(free_port())
        .env("RS_REDISPORT", &nothing_there)
        .stderr(Stdio::piped())
        .output()
        .expect("run rest-sessions");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--store memory"), "{stderr}");
    assert!(stderr.contains("RS_STORE=memory"), "{stderr}");
    assert!(
        stderr.contains(&nothing_there),
        "names where it looked: {stderr}"
    );

    // The same through a URL with a password: the password is never printed.
    let output = command(free_port())
        .env(
            "RS_REDISURL",
            format!("redis://:hunter2@127.0.0.1:{nothing_there}/0"),
        )
        .stderr(Stdio::piped())
        .output()
        .expect("run rest-sessions");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("memory"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_gracefully() {
    let mut server = Server::in_memory(&[]);
    let http = client();
    create(&http, &server, "stopapp", "u1").await;
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("stopped within 5 s");
    assert!(status.success(), "{status}");
}

/// A request hyper's parser rejects (bad request line or header, a target or head over
/// the limits) still gets the JSON error shape of every other error.
#[test]
fn unparsable_requests_get_json_errors() {
    let server = Server::in_memory(&[]);
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let big_head = format!(
        "GET /ping HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..110)
            .map(|n| format!("X-F{n}: {}\r\n", "a".repeat(4000)))
            .collect::<String>()
    );
    let cases: [(&[u8], u16, &str); 5] = [
        (
            b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            400,
            "badRequest",
        ),
        (b"\x01\x02\x03 nonsense\r\n\r\n", 400, "badRequest"),
        (b"GET /ping HTTP/9.9\r\nHost: x\r\n\r\n", 400, "badRequest"),
        (long_target.as_bytes(), 414, "uriTooLong"),
        (big_head.as_bytes(), 431, "headersTooLarge"),
    ];
    for (request, status, name) in cases {
        let reply = raw_request(server.port(), request).expect("a reply");
        let (head, body) = reply.split_once("\r\n\r\n").expect("a whole reply");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(body["error"], name, "{body}");
        assert!(body["message"].is_string());
    }
    // The server goes on serving.
    let reply = raw_request(
        server.port(),
        b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.is_some_and(|r| r.ends_with("PONG")));
}

/// `/health`'s detail names where Redis is and how it fails: only callers with the secret
/// see it (or every caller, with RS_HEALTH_DETAIL).
#[tokio::test]
async fn health_detail_only_for_callers_with_the_secret_or_when_configured() {
    let mut redis = RedisServer::start();
    let guarded = Server::with_redis(&redis, &[("RS_AUTH_TOKEN", "s3cret-token")]);
    let open = Server::with_redis(&redis, &[]);
    let shown = Server::with_redis(&redis, &[("RS_HEALTH_DETAIL", "true")]);
    let http = client();
    redis.stop();
    let health = |server: &Server, secret: Option<&str>| {
        let mut request = http.get(server.url("/health"));
        if let Some(secret) = secret {
            request = request.header("Authorization", format!("Bearer {secret}"));
        }
        async move { json(request.send().await.unwrap()).await }
    };
    let status_only = json!({"status": "unavailable", "store": "redis"});
    assert_eq!(health(&guarded, None).await, (503, status_only.clone()));
    assert_eq!(
        health(&guarded, Some("wrong")).await,
        (503, status_only.clone())
    );
    assert_eq!(health(&open, None).await, (503, status_only));
    let node = format!("127.0.0.1:{}", redis.port());
    for (status, body) in [
        health(&guarded, Some("s3cret-token")).await,
        health(&shown, None).await,
    ] {
        assert_eq!(status, 503);
        assert!(body["message"].is_string(), "{body}");
        assert_eq!(body["unreachable"][0]["node"], node, "{body}");
    }
}
