//! `GET /{app}/events` through the real binary on a real Redis: Server-Sent Events that
//! resume with `Last-Event-ID` without a gap or a duplicate, JSON pages that cover every
//! event once, the secret and the error shapes, a long-lived connection that is neither
//! closed as idle nor kept past shutdown, the Python consumer example killed with SIGKILL
//! and restarted, and events across a Sentinel failover with durable writes.

mod common;

use common::{client, create, json, RedisServer, Server};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const EVENTS_ON: (&str, &str) = ("RS_EVENTS", "true");

/// A Server-Sent Events reader over one reqwest response.
struct Sse {
    response: reqwest::Response,
    buf: String,
    /// The server ended the stream (or the connection broke).
    closed: bool,
}

impl Sse {
    /// Opens `/{app}/events` as a stream, resuming after `last_id` (Last-Event-ID) or
    /// from `query`.
    async fn open(server: &Server, app: &str, query: &str, last_id: Option<&str>) -> Sse {
        let (status, sse) = Sse::try_open(server, app, query, last_id, None).await;
        assert_eq!(status, 200, "open the event stream");
        sse.expect("a stream")
    }

    async fn try_open(
        server: &Server,
        app: &str,
        query: &str,
        last_id: Option<&str>,
        bearer: Option<&str>,
    ) -> (u16, Option<Sse>) {
        // No overall timeout: the body never ends. Each read is bounded in `next`.
        let http = reqwest::Client::new();
        let mut request = http
            .get(server.url(&format!("/{app}/events{query}")))
            .header("accept", "text/event-stream");
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret);
        }
        let response = tokio::time::timeout(Duration::from_secs(10), request.send())
            .await
            .expect("headers in time")
            .expect("connect");
        let status = response.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let content_type = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        (
            status,
            Some(Sse {
                response,
                buf: String::new(),
                closed: false,
            }),
        )
    }

    /// The next event (its id and its data as JSON) within `limit`; None when none came
    /// (or the stream ended: see `ended`).
    async fn next(&mut self, limit: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(v.trim_start().to_owned());
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    let data: Value = serde_json::from_str(&data).expect("data is JSON");
                    assert_eq!(data["cursor"], id.as_str(), "the id is the event's cursor");
                    return Some((id, data));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// True when the server ended the stream within `limit`.
    async fn ended(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
            }
        }
    }
}

/// An SSE client of `app` from the start that reconnects after its last id whenever its
/// stream breaks (the server keeps it open through failovers and reshards; this only
/// guards); once `stop` is set and nothing came for 2 s, returns what it read.
fn follow(
    base: String,
    app: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut seen: Vec<Value> = Vec::new();
        let mut last: Option<String> = None;
        let mut idle_since = None::<Instant>;
        loop {
            let mut request = http
                .get(format!("{base}/{app}/events?after="))
                .header("accept", "text/event-stream");
            if let Some(id) = &last {
                request = request.header("last-event-id", id);
            }
            let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(5), request.send()).await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if response.status() != 200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut sse = Sse {
                response,
                buf: String::new(),
                closed: false,
            };
            loop {
                match sse.next(Duration::from_millis(500)).await {
                    Some((id, event)) => {
                        last = Some(id);
                        seen.push(event);
                        idle_since = None;
                    }
                    None => {
                        if stop.load(Ordering::Relaxed) {
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_secs(2) {
                                return seen;
                            }
                        }
                        if sse.closed {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// Every event retained, read page by page with pages of `count`.
async fn all_pages(http: &reqwest::Client, server: &Server, app: &str, count: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let url = server.url(&format!("/{app}/events?after={after}&count={count}"));
        let (status, body) = json(http.get(url).send().await.expect("page")).await;
        assert_eq!(status, 200, "{body}");
        let page = body["events"].as_array().expect("events").clone();
        assert!(page.len() <= count, "a page holds at most count");
        let next = body["next"].as_str().expect("next").to_owned();
        if page.is_empty() {
            // (The start, given as "", is written `0-0`.)
            let kept = next == after || (after.is_empty() && next == "0-0");
            assert!(
                kept,
                "an empty page keeps the position: {after:?} -> {next:?}"
            );
            return events;
        }
        assert_eq!(page.last().unwrap()["cursor"], next.as_str());
        events.extend(page);
        after = next;
    }
}

/// The device handle of a token, as events name sessions.
fn device(token: &str) -> String {
    redis_sessions::device_handle(token)
}

/// `(type, reason, device)` of an event, to compare with what was done.
fn what(event: &Value) -> (String, String, String) {
    (
        event["type"].as_str().unwrap_or_default().to_owned(),
        event["reason"].as_str().unwrap_or_default().to_owned(),
        event["device"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Creates `n` sessions of `app` (ids `u0..`) and kills every other one: returns the
/// events this must have written, in order.
async fn changes(
    http: &reqwest::Client,
    server: &Server,
    app: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut expected = Vec::new();
    for i in 0..n {
        let token = create(http, server, app, &format!("u{i}")).await;
        expected.push(("created".to_owned(), String::new(), device(&token)));
        if i % 2 == 1 {
            let url = server.url(&format!("/{app}/kill/{token}"));
            let (status, body) = json(http.delete(url).send().await.expect("kill")).await;
            assert_eq!((status, &body["kill"]), (200, &Value::from(1)));
            expected.push(("ended".to_owned(), "killed".to_owned(), device(&token)));
        }
    }
    expected
}

/// An SSE client reads some events, disconnects, more happen, and it reconnects with
/// `Last-Event-ID`: it gets every event once, in the order written, with the fields the
/// JSON pages give.
#[tokio::test]
async fn sse_resumes_with_last_event_id_without_gap_or_duplicate() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[EVENTS_ON]);
    let http = client();
    let mut expected = changes(&http, &server, "app1", 6).await;

    let mut seen = Vec::new();
    let mut sse = Sse::open(&server, "app1", "?after=", None).await;
    for _ in 0..4 {
        let (id, event) = sse.next(Duration::from_secs(5)).await.expect("an event");
        seen.push((id, event));
    }
    drop(sse);
    expected.extend(changes(&http, &server, "app1", 4).await);
    let last = seen.last().unwrap().0.clone();
    let mut sse = Sse::open(&server, "app1", "", Some(&last)).await;
    while seen.len() < expected.len() {
        let (id, event) = sse
            .next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("event {} of {}", seen.len() + 1, expected.len()));
        seen.push((id, event));
    }
    assert!(
        sse.next(Duration::from_millis(400)).await.is_none(),
        "no event beyond the changes"
    );
    let got: Vec<_> = seen.iter().map(|(_, e)| what(e)).collect();
    assert_eq!(got, expected);
    for (_, event) in &seen {
        assert_eq!(event["app"], "app1");
        assert!(event["id"].as_str().unwrap().starts_with('u'));
        let text = event.to_string();
        assert!(!text.contains("token"), "no token in an event: {text}");
    }
    // A created event carries the ip and ttl given.
    assert_eq!(seen[0].1["ip"], "127.0.0.1");
    assert_eq!(seen[0].1["ttl"], 3600);
    // The pages give the same events with the same cursors.
    let pages = all_pages(&http, &server, "app1", 1000).await;
    let page_ids: Vec<_> = pages.iter().map(|e| e["cursor"].clone()).collect();
    let sse_ids: Vec<_> = seen
        .iter()
        .map(|(id, _)| Value::from(id.as_str()))
        .collect();
    assert_eq!(page_ids, sse_ids);

    // Without a position, a stream starts with what is written from now on.
    let mut sse = Sse::open(&server, "app1", "", None).await;
    assert!(sse.next(Duration::from_millis(300)).await.is_none());
    let token = create(&http, &server, "app1", "late").await;
    let (_, event) = sse.next(Duration::from_secs(5)).await.expect("the new one");
    assert_eq!(
        what(&event),
        ("created".into(), String::new(), device(&token))
    );
}

/// Pages of every size cover every event exactly once, in order; count and position are
/// checked.
#[tokio::test]
async fn json_pages_cover_every_event_once() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[EVENTS_ON]);
    let http = client();
    let expected = changes(&http, &server, "app2", 25).await;
    changes(&http, &server, "other", 3).await;
    for count in [1, 7, 100] {
        let events = all_pages(&http, &server, "app2", count).await;
        let got: Vec<_> = events.iter().map(what).collect();
        assert_eq!(got, expected, "pages of {count}");
        let cursors: HashSet<_> = events.iter().map(|e| e["cursor"].to_string()).collect();
        assert_eq!(cursors.len(), events.len(), "every cursor once");
    }
    // Without `after`: from the oldest retained; `count` defaults to 100.
    let (status, body) = json(
        http.get(server.url("/app2/events"))
            .send()
            .await
            .expect("page"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), expected.len());
    for (query, error) in [
        ("?count=0", "invalidValue"),
        ("?count=1001", "invalidValue"),
        ("?count=x", "invalidValue"),
        ("?after=nonsense", "invalidFormat"),
        ("?after=7:1-0", "invalidFormat"),
    ] {
        let (status, body) = json(
            http.get(server.url(&format!("/app2/events{query}")))
                .send()
                .await
                .expect("page"),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{query}"
        );
        assert!(body["message"].is_string());
    }
    let (status, body) = json(http.get(server.url("/a/events")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalidFormat"))
    );
    // A bad Last-Event-ID is refused before the stream starts.
    let (status, _) = Sse::try_open(&server, "app2", "", Some("x-y"), None).await;
    assert_eq!(status, 400);
}

/// With a secret, both forms require it; with events off the route is a JSON 404.
#[tokio::test]
async fn the_secret_is_required_and_events_off_is_404() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[EVENTS_ON, ("RS_AUTH_TOKEN", "s3cret")]);
    let http = client();
    let (status, body) = json(http.get(server.url("/app3/events")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = Sse::try_open(&server, "app3", "", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = Sse::try_open(&server, "app3", "", None, Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, sse) = Sse::try_open(&server, "app3", "?after=", None, Some("s3cret")).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    let token = http
        .put(server.url("/app3/create/u1?ip=1.2.3.4"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    let (status, body) = json(token).await;
    assert_eq!(status, 200);
    let (_, event) = sse.next(Duration::from_secs(5)).await.expect("event");
    assert_eq!(
        event["device"],
        device(body["token"].as_str().unwrap()).as_str()
    );
    let (status, body) = json(
        http.get(server.url("/app3/events"))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["events"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    let off = Server::with_redis(&redis, &[]);
    let (status, body) = json(http.get(off.url("/app3/events")).send().await.unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("eventsOff")));
    let (status, _) = Sse::try_open(&off, "app3", "", None, None).await;
    assert_eq!(status, 404);
    // And that server writes none.
    create(&http, &off, "app4", "u1").await;
    let on = Server::with_redis(&redis, &[EVENTS_ON]);
    assert!(all_pages(&http, &on, "app4", 10).await.is_empty());
}

/// An event stream is a long-lived reply: it outlives the idle timeout (1 s here) without
/// a byte, is bounded in number (RS_EVENTS_MAX_STREAMS), and ends at SIGTERM so the
/// server stops at once instead of after its 10 s grace.
#[tokio::test]
async fn a_stream_outlives_the_idle_timeout_and_ends_at_shutdown() {
    let redis = RedisServer::start();
    let mut server = Server::with_redis(
        &redis,
        &[
            EVENTS_ON,
            ("RS_IDLE_TIMEOUT", "1"),
            ("RS_EVENTS_MAX_STREAMS", "2"),
        ],
    );
    let http = client();
    let mut sse = Sse::open(&server, "app5", "", None).await;
    let _second = Sse::open(&server, "app5", "", None).await;
    let (status, third) = Sse::try_open(&server, "app5", "", None, None).await;
    assert_eq!(status, 503, "over RS_EVENTS_MAX_STREAMS");
    assert!(third.is_none());
    let (status, _) = json(http.get(server.url("/app5/events")).send().await.unwrap()).await;
    assert_eq!(status, 200, "pages are not streams");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let token = create(&http, &server, "app5", "u1").await;
    let (_, event) = sse
        .next(Duration::from_secs(5))
        .await
        .expect("the stream is still open after 2.5 s of silence");
    assert_eq!(event["device"], device(&token).as_str());
    drop(_second);
    // The slot of a closed stream is given back.
    let started = Instant::now();
    loop {
        let (status, _) = Sse::try_open(&server, "app5", "", None, None).await;
        if status == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "slot returned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let server_pid = server.pid();
    let stopped = tokio::task::spawn_blocking(move || {
        let status = server.terminate(Duration::from_secs(8));
        (status, server)
    });
    assert!(
        sse.ended(Duration::from_secs(5)).await,
        "stream ends at SIGTERM"
    );
    let (status, _server) = stopped.await.unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "pid {server_pid} exits"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the server did not wait for the grace period: {:?}",
        started.elapsed()
    );
}

/// The Python consumer example (examples/events_consumer.py), killed with SIGKILL while
/// events keep coming and restarted from its saved position: it has handled every event,
/// and at most the one it was handling twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_consumer_killed_mid_stream_misses_nothing() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[EVENTS_ON]);
    let dir = std::env::temp_dir().join(format!("rs-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (position, output) = (dir.join("position"), dir.join("events.jsonl"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/events_consumer.py");
    let start = || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(server.base())
            .arg("app6")
            .arg(&position)
            .arg(&output)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs the consumer")
    };
    let lines = |path: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };

    let mut consumer = start();
    let http = client();
    let writer = {
        let http = http.clone();
        let base = server.base();
        tokio::spawn(async move {
            for i in 0..300 {
                let url = format!("{base}/app6/create/u{i}?ip=10.0.0.1");
                let response = http.put(url).send().await.expect("create");
                assert_eq!(response.status(), 200);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let started = Instant::now();
    while lines(&output).len() < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "consumer reads"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    consumer.wait().unwrap();
    let at_kill = lines(&output).len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut consumer = start();
    writer.await.unwrap();
    let all = all_pages(&http, &server, "app6", 1000).await;
    assert_eq!(all.len(), 300);
    let started = Instant::now();
    let mut handled = lines(&output);
    let distinct = |handled: &[Value]| {
        handled
            .iter()
            .map(|e| e["cursor"].as_str().unwrap().to_owned())
            .collect::<HashSet<_>>()
            .len()
    };
    while distinct(&handled) < all.len() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "consumer caught up: {} of {}",
            distinct(&handled),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        handled = lines(&output);
    }
    let _ = consumer.kill();
    let _ = consumer.wait();
    let _ = std::fs::remove_dir_all(&dir);
    // In order, with at most the event being handled at the kill handled twice.
    let mut deduped: Vec<&Value> = Vec::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for event in &handled {
        let cursor = event["cursor"].as_str().unwrap().to_owned();
        *counts.entry(cursor.clone()).or_default() += 1;
        if deduped
            .last()
            .is_none_or(|last| last["cursor"] != cursor.as_str())
        {
            deduped.push(event);
        }
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1 && twice.iter().all(|(_, n)| **n == 2),
        "{twice:?}"
    );
    let expected: Vec<_> = all.iter().collect();
    assert_eq!(deduped, expected, "every event, in order");
    println!(
        "python consumer: {} events, killed after {at_kill}, {} handled twice",
        all.len(),
        twice.len()
    );
}

/// Durable writes (RS_MIN_REPLICAS=1) through a Sentinel failover while an SSE client
/// reads: every create the server acknowledged has its event, once, and the stream goes
/// on from the promoted replica.
#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_create_has_its_event_across_a_sentinel_failover() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let sentinels = set.addrs().join(",");
    let server = Server::start(
        &[
            EVENTS_ON,
            ("RS_SENTINELS", sentinels.as_str()),
            ("RS_SENTINEL_MASTER", MASTER_NAME),
            ("RS_MIN_REPLICAS", "1"),
            ("RS_MIN_REPLICAS_TIMEOUT_MS", "500"),
        ],
        &[],
    );
    let http = client();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (http, base, stop) = (http.clone(), server.base(), stop.clone());
        tokio::spawn(async move {
            let (mut acknowledged, mut failed) = (Vec::new(), 0);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let url = format!("{base}/app7/create/u{i}?ip=10.0.0.1");
                match http.put(url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.expect("json");
                        acknowledged.push(device(body["token"].as_str().unwrap()));
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acknowledged, failed)
        })
    };
    let reader = follow(server.base(), "app7", stop.clone());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failover = tokio::task::spawn_blocking(move || {
        let f = set.kill_master(Duration::from_secs(30));
        (f, set)
    })
    .await
    .unwrap();
    let (failover, _set) = failover;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = writer.await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the reader finishes")
        .unwrap();
    let mut created: HashMap<String, usize> = HashMap::new();
    for event in &seen {
        assert_eq!(event["type"], "created");
        *created
            .entry(event["device"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|d| !created.contains_key(*d))
        .collect();
    let repeated = created.values().filter(|n| **n > 1).count();
    println!(
        "failover after {:?}: {} creates acknowledged, {failed} failed, {} events read, {} \
         acknowledged without an event, {repeated} repeated",
        failover.promoted_after,
        acknowledged.len(),
        seen.len(),
        missing.len()
    );
    assert!(acknowledged.len() > 100, "the load ran");
    assert!(
        missing.is_empty(),
        "acknowledged without an event: {missing:?}"
    );
    assert_eq!(repeated, 0, "no event twice");
}

/// Slots move (a reshard, then a rebalance) under creates and kills through the REST
/// server on a three-master cluster while an SSE client reads: every acknowledged change
/// has its event exactly once, each session's events in the order of its changes, and
/// the JSON pages hold the same events.
#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_change_has_its_event_across_a_reshard() {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .expect("cluster");
    let seeds = cluster.urls().join(",");
    let server = Server::start(&[EVENTS_ON, ("RS_REDIS_CLUSTER", seeds.as_str())], &[]);
    let http = client();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (http, base, stop) = (http.clone(), server.base(), stop.clone());
            tokio::spawn(async move {
                // (device, what) of every acknowledged change, in order; failed calls.
                let (mut done, mut failed) = (Vec::new(), 0);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let url = format!("{base}/app8/create/w{w}u{i}?ip=10.0.0.2");
                    let token = match http.put(url).send().await {
                        Ok(r) if r.status() == 200 => {
                            let body: Value = r.json().await.expect("json");
                            body["token"].as_str().unwrap().to_owned()
                        }
                        _ => {
                            failed += 1;
                            continue;
                        }
                    };
                    done.push((device(&token), "created"));
                    if i % 3 == 0 {
                        let url = format!("{base}/app8/kill/{token}");
                        match http.delete(url).send().await {
                            Ok(r) if r.status() == 200 => {
                                let body: Value = r.json().await.expect("json");
                                assert_eq!(body["kill"], 1);
                                done.push((device(&token), "ended"));
                            }
                            _ => failed += 1,
                        }
                    }
                }
                (done, failed)
            })
        })
        .collect();
    let reader = follow(server.base(), "app8", stop.clone());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        let masters = cluster.masters();
        let seed = &cluster.nodes[0];
        assert!(
            test_support::faults::reshard(seed, &masters[0], &masters[1], 3000),
            "reshard"
        );
        cluster.wait_until_ok(Duration::from_secs(30));
        assert!(test_support::faults::rebalance(seed), "rebalance");
        cluster.wait_until_ok(Duration::from_secs(30));
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut done, mut failed) = (Vec::new(), 0);
    for writer in writers {
        let (d, f) = writer.await.unwrap();
        done.extend(d);
        failed += f;
    }
    let seen = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the reader finishes")
        .unwrap();
    // Per session, the events in the order read.
    let mut by_device: HashMap<String, Vec<String>> = HashMap::new();
    for event in &seen {
        by_device
            .entry(event["device"].as_str().unwrap().to_owned())
            .or_default()
            .push(event["type"].as_str().unwrap().to_owned());
    }
    let mut wrong = Vec::new();
    for (device, kinds) in &by_device {
        if kinds.len() > 2 || kinds[0] != "created" || kinds.get(1).is_some_and(|k| k != "ended") {
            wrong.push(format!("{device}: {kinds:?}"));
        }
    }
    let missing: Vec<_> = done
        .iter()
        .filter(|(device, what)| {
            !by_device
                .get(device)
                .is_some_and(|kinds| kinds.iter().any(|k| k == what))
        })
        .collect();
    let pages = all_pages(&http, &server, "app8", 1000).await;
    let mut page_cursors: Vec<_> = pages
        .iter()
        .map(|e| (e["device"].clone(), e["type"].clone()))
        .collect();
    let mut seen_cursors: Vec<_> = seen
        .iter()
        .map(|e| (e["device"].clone(), e["type"].clone()))
        .collect();
    page_cursors.sort_by_key(|v| v.0.to_string() + v.1.as_str().unwrap_or(""));
    seen_cursors.sort_by_key(|v| v.0.to_string() + v.1.as_str().unwrap_or(""));
    println!(
        "reshard: {} changes acknowledged, {failed} failed, {} events read, {} missing, {} \
         out of order or repeated",
        done.len(),
        seen.len(),
        missing.len(),
        wrong.len()
    );
    drop(cluster);
    assert!(done.len() > 100, "the load ran");
    assert!(
        missing.is_empty(),
        "acknowledged without an event: {missing:?}"
    );
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!(
        seen_cursors, page_cursors,
        "the pages hold what the stream gave"
    );
}
