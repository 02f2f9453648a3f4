//! Webhooks through the real binary on a real Redis, to receivers that are real HTTP
//! servers: one in the test (axum) that checks every signature, and the Python receiver
//! example. A receiver down for a while then back gets every event; a server killed with
//! SIGKILL mid-delivery and restarted loses nothing and repeats at most the batch it was
//! posting; two servers share the work, each event posted by one of them.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{client, create, free_port, metric_sum, RedisServer, Server};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "whsec-test";

/// How long the receiver stays down in the outage test: the issue's 30 s, shortened for
/// CI (`RS_TEST_WEBHOOK_DOWN_S`); the server's backoff is shortened to match.
fn down_for() -> Duration {
    let seconds = std::env::var("RS_TEST_WEBHOOK_DOWN_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    Duration::from_secs(seconds)
}

/// True when `header` (`t=…,v1=…`) signs `body` with [`SECRET`] within five minutes of
/// now: what a receiver checks.
fn verify(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

/// A delivery as received: its signature header and its body.
type Delivery = (String, Vec<u8>);

/// What a test receiver got: each verified delivery (signature header, body), and how
/// many failed verification.
#[derive(Clone, Default)]
struct Got {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    bad: Arc<AtomicUsize>,
    delay: Duration,
}

impl Got {
    /// Every event received, in order of arrival (duplicates included).
    fn events(&self) -> Vec<Value> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| {
                let delivery: Value = serde_json::from_slice(body).expect("JSON body");
                delivery["events"].as_array().expect("events").clone()
            })
            .collect()
    }

    /// How often each event id was received.
    fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for event in self.events() {
            *counts
                .entry(event["event_id"].as_str().expect("id").to_owned())
                .or_default() += 1;
        }
        counts
    }

    /// `type/reason/id` of every distinct event.
    fn kinds(&self) -> HashSet<String> {
        self.events()
            .iter()
            .map(|e| format!("{}/{}/{}", e["type"], e["reason"], e["id"]))
            .collect()
    }
}

async fn hook(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> StatusCode {
    tokio::time::sleep(got.delay).await;
    let signature = headers
        .get("rs-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !verify(&signature, &body) {
        got.bad.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST;
    }
    got.deliveries
        .lock()
        .unwrap()
        .push((signature, body.to_vec()));
    StatusCode::NO_CONTENT
}

/// A receiver on `port` until stopped (its listener closed: connections refused).
struct Receiver {
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(port: u16, got: &Got) -> Receiver {
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the receiver");
        Receiver {
            task: tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        }
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn webhook_env(url_var: &'static str, url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("RS_EVENTS", "true".into()),
        (url_var, url.to_owned()),
        ("RS_WEBHOOK_SECRET", SECRET.into()),
        ("RS_WEBHOOK_BACKOFF_MS", "200".into()),
        ("RS_WEBHOOK_BACKOFF_MAX_MS", "1000".into()),
    ]
}

fn start(redis: &RedisServer, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::with_redis(redis, &env)
}

/// Waits (at most `limit`) until `done` holds.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

async fn metrics(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

async fn kill(http: &reqwest::Client, server: &Server, app: &str, token: &str) {
    let status = http
        .delete(server.url(&format!("/{app}/kill/{token}")))
        .send()
        .await
        .expect("kill")
        .status();
    assert_eq!(status, 200);
}

/// The receiver is down for a while (connections refused) while sessions are created and
/// killed, then comes back: it gets every event, each signature verifies, a tampered body
/// or time does not, and the metrics showed the failures and the lag meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_then_back_gets_every_event() {
    let redis = RedisServer::start();
    let port = free_port();
    let got = Got::default();
    let receiver = Receiver::start(port, &got).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let server = start(&redis, &webhook_env("RS_WEBHOOK_URL", &url));
    let http = client();

    let mut expected = HashSet::new();
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(create(&http, &server, "shop", &format!("u{i}")).await);
        expected.insert(format!("\"created\"/null/\"u{i}\""));
    }
    assert!(
        until(Duration::from_secs(10), || got
            .kinds()
            .is_superset(&expected))
        .await,
        "delivered while the receiver is up"
    );

    receiver.stop().await;
    let outage = Instant::now();
    for i in 0..30 {
        create(&http, &server, "shop", &format!("d{i}")).await;
        expected.insert(format!("\"created\"/null/\"d{i}\""));
    }
    for (i, token) in tokens.iter().enumerate().take(10) {
        kill(&http, &server, "shop", token).await;
        expected.insert(format!("\"ended\"/\"killed\"/\"u{i}\""));
    }
    tokio::time::sleep(down_for().saturating_sub(outage.elapsed())).await;
    let during = metrics(&server).await;
    let failed = metric_sum(
        &during,
        "rest_sessions_webhook_attempts_failed_total",
        &["app=\"shop\"", "reason=\"connect\""],
    );
    assert!(failed >= 2.0, "failed attempts counted: {failed}");
    let lag = metric_sum(
        &during,
        "rest_sessions_webhook_lag_seconds",
        &["app=\"shop\""],
    );
    assert!(
        lag >= 1.0,
        "the lag grows while the receiver is down: {lag}"
    );

    let back = Instant::now();
    let receiver = Receiver::start(port, &got).await;
    assert!(
        until(Duration::from_secs(15), || got
            .kinds()
            .is_superset(&expected))
        .await,
        "every event delivered after the outage: missing {:?}",
        expected.difference(&got.kinds()).collect::<Vec<_>>()
    );
    let caught_up = back.elapsed();
    assert_eq!(
        got.bad.load(Ordering::SeqCst),
        0,
        "every signature verifies"
    );
    let counts = got.counts();
    assert_eq!(counts.len(), expected.len(), "no other event");
    assert!(counts.values().all(|&n| n == 1), "no duplicate: {counts:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = metrics(&server).await;
    assert_eq!(
        metric_sum(
            &after,
            "rest_sessions_webhook_events_delivered_total",
            &["app=\"shop\""]
        ),
        60.0
    );
    assert_eq!(
        metric_sum(
            &after,
            "rest_sessions_webhook_lag_seconds",
            &["app=\"shop\""]
        ),
        0.0,
        "caught up"
    );

    // Tampering is caught: another body, another time, another secret.
    let (signature, body) = got.deliveries.lock().unwrap()[0].clone();
    assert!(verify(&signature, &body));
    let mut tampered = body.clone();
    let at = tampered.iter().position(|&b| b == b'u').expect("an id");
    tampered[at] = b'x';
    assert!(!verify(&signature, &tampered), "a changed body fails");
    let later = signature.replacen("t=", "t=1", 1);
    assert!(!verify(&later, &body), "a changed time fails");
    println!(
        "webhooks: receiver down {:.1} s, {failed} failed attempts, caught up {:.2} s after it \
         came back; 60 events, none lost or repeated",
        down_for().as_secs_f64(),
        caught_up.as_secs_f64()
    );
    receiver.stop().await;
}

/// A server SIGKILLed while it posts to a slow receiver, restarted under the same consumer
/// name: every event is delivered, and only the batch in flight at the kill may come twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_delivery_loses_nothing() {
    let redis = RedisServer::start();
    let port = free_port();
    let got = Got {
        delay: Duration::from_millis(150),
        ..Got::default()
    };
    let receiver = Receiver::start(port, &got).await;
    let mut env = webhook_env(
        "RS_WEBHOOK_URLS",
        &format!("shop=http://127.0.0.1:{port}/hook"),
    );
    env.extend([
        ("RS_WEBHOOK_BATCH", "5".to_owned()),
        ("RS_WEBHOOK_CLAIM_AFTER", "2".to_owned()),
        ("RS_WEBHOOK_CONSUMER", "only".to_owned()),
    ]);
    let server = start(&redis, &env);
    let http = client();
    for i in 0..100 {
        create(&http, &server, "shop", &format!("k{i}")).await;
    }
    assert!(until(Duration::from_secs(20), || got.events().len() >= 25).await);
    drop(server); // SIGKILL: a batch is on its way, the rest of the take pending.
    let at_kill = got.events().len();
    assert!(at_kill < 100, "killed mid-delivery ({at_kill} delivered)");

    let server = start(&redis, &env);
    let all = || got.counts().len() == 100;
    assert!(
        until(Duration::from_secs(30), all).await,
        "every event after the restart: {} of 100",
        got.counts().len()
    );
    assert_eq!(got.bad.load(Ordering::SeqCst), 0);
    let twice: usize = got.counts().values().map(|n| n - 1).sum();
    assert!(twice <= 5, "at most the batch in flight repeats: {twice}");
    println!("webhooks SIGKILL: {at_kill} delivered at the kill, {twice} delivered twice");
    drop(server);
    receiver.stop().await;
}

/// Two servers with the same receiver share the consumer group: each event is posted
/// once, and both post some.
#[tokio::test(flavor = "multi_thread")]
async fn two_servers_deliver_each_event_once() {
    let redis = RedisServer::start();
    let port = free_port();
    let got = Got::default();
    let receiver = Receiver::start(port, &got).await;
    let base = webhook_env("RS_WEBHOOK_URL", &format!("http://127.0.0.1:{port}/hook"));
    let with = |name: &str| {
        let mut env = base.clone();
        env.push(("RS_WEBHOOK_CONSUMER", name.to_owned()));
        env
    };
    let servers = [start(&redis, &with("a")), start(&redis, &with("b"))];
    let http = client();
    for i in 0..120 {
        create(&http, &servers[i % 2], "shop", &format!("f{i}")).await;
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    }
    assert!(until(Duration::from_secs(20), || got.counts().len() == 120).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = got.counts();
    assert!(counts.values().all(|&n| n == 1), "each event once");
    let mut shares = Vec::new();
    for server in &servers {
        let text = metrics(server).await;
        shares.push(metric_sum(
            &text,
            "rest_sessions_webhook_events_delivered_total",
            &[],
        ));
    }
    assert_eq!(shares.iter().sum::<f64>(), 120.0, "{shares:?}");
    assert!(shares.iter().all(|&n| n > 0.0), "both deliver: {shares:?}");
    println!("webhooks fleet: shares {shares:?}");
    receiver.stop().await;
}

/// How many events `consumer` of the webhooks' group holds unacknowledged on the `shop`
/// stream (XPENDING's extended form: one entry per event; the reply's raw text starts
/// with `*<count>`).
fn pending(redis: &RedisServer, consumer: &str) -> usize {
    redis
        .command(&[
            "XPENDING",
            "rs:shop:_events",
            "rest-sessions-webhooks",
            "-",
            "+",
            "1000",
            consumer,
        ])
        .ok()
        .and_then(|reply| reply.strip_prefix('*')?.lines().next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// A fleet of three servers sharing the consumer group, one SIGKILLed mid-delivery and not
/// restarted: the two left take over its unacknowledged events once they have been pending
/// `RS_WEBHOOK_CLAIM_AFTER`, so every event is delivered at least once; only the batch the
/// dead server had in flight may come twice.
#[tokio::test(flavor = "multi_thread")]
async fn three_servers_one_killed_deliver_every_event() {
    let redis = RedisServer::start();
    let port = free_port();
    // A slow receiver: each server holds its batch unacknowledged for 300 ms per POST.
    let got = Got {
        delay: Duration::from_millis(300),
        ..Got::default()
    };
    let receiver = Receiver::start(port, &got).await;
    let mut base = webhook_env("RS_WEBHOOK_URL", &format!("http://127.0.0.1:{port}/hook"));
    base.extend([
        ("RS_WEBHOOK_BATCH", "5".to_owned()),
        ("RS_WEBHOOK_CLAIM_AFTER", "2".to_owned()),
    ]);
    let with = |name: &str| {
        let mut env = base.clone();
        env.push(("RS_WEBHOOK_CONSUMER", name.to_owned()));
        env
    };
    let mut servers = vec![
        start(&redis, &with("a")),
        start(&redis, &with("b")),
        start(&redis, &with("c")),
    ];
    let http = client();
    const EVENTS: usize = 150;
    for i in 0..EVENTS {
        create(&http, &servers[i % 3], "shop", &format!("g{i}")).await;
    }
    assert!(until(Duration::from_secs(20), || got.events().len() >= 30).await);
    // The kill lands while server c holds events it read but has not acknowledged.
    let pending_of_c = || pending(&redis, "c");
    assert!(
        until(Duration::from_secs(10), || pending_of_c() > 0).await,
        "server c never held a batch"
    );
    let killed = servers.pop().expect("three servers");
    let delivered_by_killed = metric_sum(
        &metrics(&killed).await,
        "rest_sessions_webhook_events_delivered_total",
        &[],
    );
    drop(killed); // SIGKILL, not restarted: its pending events must be claimed by a or b.
    let held_at_kill = pending_of_c();
    let at_kill = got.events().len();
    assert!(
        at_kill < EVENTS,
        "killed mid-delivery ({at_kill} delivered)"
    );
    assert!(
        until(Duration::from_secs(40), || got.counts().len() == EVENTS).await,
        "every event after the kill: {} of {EVENTS}",
        got.counts().len()
    );
    assert_eq!(got.bad.load(Ordering::SeqCst), 0);
    let twice: usize = got.counts().values().map(|n| n - 1).sum();
    assert!(
        twice <= 5,
        "at most the dead server's batch in flight repeats: {twice}"
    );
    assert!(
        until(Duration::from_secs(5), || pending_of_c() == 0).await,
        "the dead server's events were claimed and acknowledged"
    );
    println!(
        "webhooks fleet of 3, one SIGKILLed holding {held_at_kill} events: {at_kill} delivered \
         at the kill ({delivered_by_killed} by the killed server before), all {EVENTS} \
         delivered after, {twice} twice"
    );
    drop(servers);
    receiver.stop().await;
}

/// The Python receiver example (examples/webhook_receiver.py) as the receiver: it
/// verifies and handles every event, and refuses a delivery whose body was changed.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_receiver_example_verifies_deliveries() {
    let redis = RedisServer::start();
    let port = free_port();
    let output = std::env::temp_dir().join(format!("rs-webhook-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&output);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/webhook_receiver.py");
    let mut python = std::process::Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .arg(&output)
        .env("RS_WEBHOOK_SECRET", SECRET)
        .spawn()
        .expect("python3 runs the receiver");
    let url = format!("http://127.0.0.1:{port}/");
    let server = start(&redis, &webhook_env("RS_WEBHOOK_URL", &url));
    let http = client();
    for i in 0..10 {
        create(&http, &server, "shop", &format!("p{i}")).await;
    }
    let lines = || {
        std::fs::read_to_string(&output)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
            .collect::<Vec<_>>()
    };
    assert!(
        until(Duration::from_secs(15), || lines().len() >= 10).await,
        "the Python receiver handled {} events",
        lines().len()
    );
    let ids: HashSet<String> = lines().iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 10);

    // A genuine signature over another body is refused; the genuine body is accepted.
    let body = br#"{"app":"shop","events":[]}"#;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = format!("t={t},v1={hex}");
    let send = |body: &'static [u8], signature: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.post(url)
                .header("rs-signature", signature)
                .body(body)
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        send(br#"{"app":"shop","events":[{}]}"#, signature.clone()).await,
        400
    );
    assert_eq!(send(body, signature.replacen("t=", "t=9", 1)).await, 400);
    assert_eq!(send(body, signature).await, 204);
    // The OpenAPI document describes the delivery a receiver gets.
    let doc: Value = http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("JSON");
    let hook = &doc["webhooks"]["sessionEvents"]["post"];
    assert_eq!(
        hook["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/WebhookDelivery"
    );
    assert_eq!(hook["parameters"][0]["name"], "RS-Signature");
    let event = &doc["components"]["schemas"]["WebhookEvent"]["properties"];
    assert!(
        event["event_id"].is_object() && event["at_ms"].is_object(),
        "{event}"
    );
    let _ = python.kill();
    let _ = python.wait();
    let _ = std::fs::remove_file(&output);
}

/// An `https://` receiver that does not speak TLS: attempts fail as `tls` and nothing is
/// acknowledged; and settings that cannot work are refused at start.
#[tokio::test(flavor = "multi_thread")]
async fn https_failures_and_refused_settings() {
    let redis = RedisServer::start();
    let port = free_port();
    let got = Got::default();
    let receiver = Receiver::start(port, &got).await;
    let url = format!("https://127.0.0.1:{port}/hook");
    let server = start(&redis, &webhook_env("RS_WEBHOOK_URL", &url));
    create(&client(), &server, "shop", "t0").await;
    let failed_tls = || async {
        let text = metrics(&server).await;
        metric_sum(
            &text,
            "rest_sessions_webhook_attempts_failed_total",
            &["reason=\"tls\""],
        )
    };
    let started = Instant::now();
    while failed_tls().await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a TLS failure counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.events().is_empty(), "nothing delivered in clear");
    receiver.stop().await;

    let port = redis.port().to_string();
    for (env, why) in [
        (vec![("RS_WEBHOOK_URL", "http://127.0.0.1:1/")], "no events"),
        (
            vec![
                ("RS_EVENTS", "true"),
                ("RS_WEBHOOK_URL", "http://127.0.0.1:1/"),
            ],
            "no secret",
        ),
        (
            vec![
                ("RS_EVENTS", "true"),
                ("RS_WEBHOOK_SECRET", "s"),
                ("RS_WEBHOOK_URLS", "shop"),
            ],
            "no url",
        ),
        (
            vec![
                ("RS_EVENTS", "true"),
                ("RS_WEBHOOK_SECRET", "s"),
                ("RS_WEBHOOK_URL", "ftp://x/"),
            ],
            "a scheme",
        ),
    ] {
        let mut cmd = common::command(free_port());
        cmd.env("RS_REDISPORT", &port).envs(env);
        let status = cmd.status().expect("run");
        assert_eq!(status.code(), Some(1), "refused at start: {why}");
    }
}
