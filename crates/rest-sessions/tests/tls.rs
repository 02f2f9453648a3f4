//! TLS to Redis and to the sentinels (the `tls` feature, on by default): the server talks to
//! a Redis that listens for TLS (`RS_REDISURL=rediss://…`), and finds the master through
//! sentinels it reaches over TLS only (`RS_SENTINELS=rediss://…`), following a failover.
//! Certificates are verified: the test's self-signed one is trusted through `SSL_CERT_FILE`
//! (what an operator does for a private CA), and without it the server refuses the Redis.
//!
//! Needs a server built with TLS (Debian's redis-server is; the PyPI Valkey is not, so
//! scripts/test.sh runs this file on Redis only).

mod common;

use common::{client, command, create, json, raw_request, Server};
use std::time::{Duration, Instant};
use test_support::sentinel::{SentinelSet, MASTER_NAME};
use test_support::tls::{self_signed, server_args, Certificate};
use test_support::{free_port, RedisServer};

fn certificate(name: &str) -> Certificate {
    let dir = std::env::temp_dir().join(format!("rs-test-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    self_signed(&dir)
}

/// A Redis with a TLS listener beside its plain one (the test reads through the plain one).
fn tls_redis(certificate: &Certificate) -> (RedisServer, u16) {
    let tls_port = free_port();
    let args = server_args(certificate, tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (RedisServer::start_with(free_port(), &args), tls_port)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_talks_tls_to_redis_and_checks_its_certificate() {
    let certificate = certificate("redis");
    let (redis, tls_port) = tls_redis(&certificate);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let cert_file = certificate.cert.display().to_string();
    let server = Server::start(
        &[
            ("RS_REDISURL", url.as_str()),
            ("SSL_CERT_FILE", cert_file.as_str()),
        ],
        &[],
    );
    let http = client();
    let token = create(&http, &server, "app", "alice").await;
    let (status, body) = json(
        http.get(server.url(&format!("/app/get/{token}")))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(
        (status, &body["id"]),
        (200, &serde_json::json!("alice")),
        "{body}"
    );
    // It went to this Redis, through its TLS port.
    let exists = redis.command(&["EXISTS", &format!("rs:app:{token}")]);
    assert!(exists.is_ok_and(|r| r.starts_with(":1")));

    // The same server without the certificate trusted: no store, no PONG.
    let port = free_port();
    let mut cmd = command(port);
    cmd.env("RS_REDISURL", &url)
        .env("SSL_CERT_FILE", "/nonexistent");
    let mut untrusting = cmd.spawn().expect("spawn rest-sessions");
    let started = Instant::now();
    let mut refused = false;
    while started.elapsed() < Duration::from_secs(5) {
        if untrusting.try_wait().expect("wait").is_some() {
            refused = true;
            break;
        }
        let reply = raw_request(
            port,
            b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            !reply.as_deref().is_some_and(|r| r.ends_with("PONG")),
            "served a Redis whose certificate it cannot check"
        );
        if reply.is_some_and(|r| r.starts_with("HTTP/1.1 503")) {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = untrusting.kill();
    let _ = untrusting.wait();
    assert!(refused, "neither exited nor answered 503 to /ping");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_follows_sentinels_it_reaches_over_tls() {
    let certificate = certificate("sentinel");
    let for_sentinels = certificate.clone();
    let mut set = tokio::task::spawn_blocking(move || SentinelSet::start_with_tls(&for_sentinels))
        .await
        .expect("sentinels");
    // Only the sentinels' TLS listeners are given.
    let sentinels: Vec<String> = set.sentinels.iter().filter_map(|s| s.tls_url()).collect();
    assert_eq!(sentinels.len(), 3);
    let sentinels = sentinels.join(",");
    let cert_file = certificate.cert.display().to_string();
    let server = Server::start(
        &[
            ("RS_SENTINELS", sentinels.as_str()),
            ("RS_SENTINEL_MASTER", MASTER_NAME),
            ("SSL_CERT_FILE", cert_file.as_str()),
        ],
        &[],
    );
    let http = client();
    let token = create(&http, &server, "app", "alice").await;
    let master = set.master_index();
    set.servers[1 - master].wait_link_up(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failover = tokio::task::block_in_place(|| set.kill_master(Duration::from_secs(20)));
    loop {
        let reply = http
            .get(server.url(&format!("/app/get/{token}")))
            .send()
            .await;
        if let Ok(reply) = reply {
            let (status, body) = json(reply).await;
            if status == 200 {
                assert_eq!(body["id"], "alice", "{body}");
                break;
            }
        }
        assert!(
            failover.killed_at.elapsed() < Duration::from_secs(20),
            "the new master was not found through the TLS sentinels"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Writes reach the promoted master.
    let token = create(&http, &server, "app", "bob").await;
    let promoted = &set.servers[failover.new_master];
    let exists = promoted.command(&["EXISTS", &format!("rs:app:{token}")]);
    assert!(exists.is_ok_and(|r| r.starts_with(":1")));
}
