//! Overload against the real binary: an idle keep-alive crowd at the connection bound, a
//! slowloris that reopens its stalled heads, and crowds of unfinished bodies and heads.
//! Each asserts that a well-behaved client (retrying on 503 after `Retry-After`) is served
//! within 2 s and that memory stays within the budget. The bound is set small with
//! `RS_MAX_CONNECTIONS`, as `ulimit -n` would, so no test needs thousands of descriptors;
//! the tests run one at a time and take about a minute together. The figures at the
//! issue's full size come from `python3 scripts/overload-bench.py`.

mod common;

use common::{client, metric_sum, Server};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// One test at a time: each measures timing and memory of its own server.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
const KEEP_ALIVE_PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
const MIB: u64 = 1024 * 1024;

/// Connects to the server from `source` (any 127.x.y.z works on Linux), as from another
/// host.
async fn connect_from(port: u16, source: Ipv4Addr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// The `i`-th address of a crowd: 127.`net`.x.y.
fn address(net: u8, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, net, (i / 250) as u8, (i % 250) as u8 + 1)
}

/// Reads one reply's head and body (at most `limit`); None on EOF, reset or timeout.
async fn read_reply(stream: &mut TcpStream, limit: Duration) -> Option<(u16, String)> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some((status, body.to_string()));
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
}

/// A well-behaved client: `request` on a fresh connection from 127.0.0.1, retried after
/// `Retry-After` on a 503 (after 50 ms on a closed connection). True when a 200 arrived
/// within 2 s of the first try.
async fn well_behaved(port: u16, request: &[u8]) -> bool {
    let started = Instant::now();
    let limit = Duration::from_secs(2);
    while started.elapsed() < limit {
        let left = limit.saturating_sub(started.elapsed());
        let reply = async {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            stream.write_all(request).await.ok()?;
            read_reply(&mut stream, left).await
        };
        match tokio::time::timeout(left, reply).await {
            Ok(Some((200, _))) => return started.elapsed() <= limit,
            Ok(Some((503, body))) => {
                let body: serde_json::Value = serde_json::from_str(&body).expect("JSON 503");
                assert!(body["error"].is_string(), "{body}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(Some((status, body))) => panic!("unexpected {status} {body}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

/// `total` well-behaved clients, one started every `every`: how many were served in 2 s.
async fn probes(port: u16, request: &'static [u8], total: usize, every: Duration) -> usize {
    let mut tries = tokio::task::JoinSet::new();
    for _ in 0..total {
        tries.spawn(well_behaved(port, request));
        tokio::time::sleep(every).await;
    }
    let mut served = 0;
    while let Some(ok) = tries.join_next().await {
        served += usize::from(ok.expect("probe task"));
    }
    served
}

async fn metrics(server: &Server) -> String {
    client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("metrics text")
}

/// Samples the server's RSS every 20 ms until stopped; the peak.
fn watch_rss(server: &Server) -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let pid_path = format!("/proc/{}/status", server.pid());
    let flag = stop.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(rss_of(&pid_path));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    (stop, watcher)
}

fn rss_of(status_path: &str) -> u64 {
    std::fs::read_to_string(status_path)
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_crowd_at_the_bound_yields_to_new_clients() {
    let _serial = SERIAL.lock().await;
    const BOUND: usize = 100;
    // A pool of upstream proxies: every client has one address, so behind a proxy.
    let server = Server::in_memory(&[("RS_MAX_CONNECTIONS", "100"), ("RS_BEHIND_PROXY", "true")]);
    let baseline = server.rss();
    let mut crowd = Vec::new();
    for _ in 0..BOUND {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .unwrap();
        stream.write_all(KEEP_ALIVE_PING).await.unwrap();
        let reply = read_reply(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(reply.map(|r| r.0), Some(200));
        crowd.push(stream);
    }
    // Every slot is held by an idle connection (the idle timeout is 60 s): each new client
    // is served at once, an idle one closed (oldest first) to admit it.
    let started = Instant::now();
    let served = probes(server.port(), PING, 30, Duration::from_millis(50)).await;
    assert_eq!(served, 30, "served within 2 s");
    let text = metrics(&server).await;
    let evicted = metric_sum(
        &text,
        "rest_sessions_connections_evicted_total",
        &["rule=\"oldest_idle\""],
    );
    assert!(evicted >= 1.0, "idle connections evicted: {evicted}");
    // The evicted ones are the oldest: the first of the crowd reads EOF.
    let mut first = crowd.remove(0);
    let n = tokio::time::timeout(Duration::from_secs(1), first.read(&mut [0u8; 16]))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let rss = server.rss();
    assert!(rss < baseline + 64 * MIB, "RSS {rss} from {baseline}");
    eprintln!(
        "idle crowd of {BOUND} at the bound: 30 of 30 new clients served in {:?}, {evicted} \
         idle connections closed for them",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_slowloris_does_not_starve_new_clients() {
    let _serial = SERIAL.lock().await;
    const BOUND: usize = 100;
    let server = Server::in_memory(&[("RS_MAX_CONNECTIONS", "100")]);
    let port = server.port();
    let baseline = server.rss();

    // An attacker from 10 addresses (within the per-address caps: 50 connections, 16
    // unfinished) holds every slot with stalled heads and reopens each as soon as it is
    // closed, at most 100 reopenings a second in all.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let next_open = Arc::new(Mutex::new(tokio::time::Instant::now()));
    let mut attacker = tokio::task::JoinSet::new();
    for i in 0..BOUND {
        let (stop, opened, next_open) = (stop.clone(), opened.clone(), next_open.clone());
        attacker.spawn(async move {
            let mut first = true;
            while !stop.load(Ordering::Relaxed) {
                if !first {
                    let at = {
                        let mut next = next_open.lock().unwrap();
                        *next =
                            (*next + Duration::from_millis(10)).max(tokio::time::Instant::now());
                        *next
                    };
                    tokio::time::sleep_until(at).await;
                }
                first = false;
                let Ok(mut stream) = connect_from(port, address(9, i % 10)).await else {
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                let _ = stream.write_all(b"GET /pi").await;
                let mut sink = [0u8; 1024];
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut sink))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        _ => {}
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let served = probes(port, PING, 40, Duration::from_millis(100)).await;
    let text = metrics(&server).await;
    stop.store(true, Ordering::Relaxed);
    while attacker.join_next().await.is_some() {}
    let evicted = metric_sum(
        &text,
        "rest_sessions_connections_evicted_total",
        &["rule=\"oldest_unfinished\""],
    );
    eprintln!(
        "slowloris: {served} of 40 new clients served within 2 s; attacker opened {} \
         connections; {evicted} stalled heads closed for newcomers",
        opened.load(Ordering::Relaxed)
    );
    assert!(served >= 38, "only {served} of 40 served within 2 s");
    assert!(evicted >= 1.0, "stalled heads evicted: {evicted}");

    // One address alone cannot hold more than its share of unfinished requests.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut stream = connect_from(port, Ipv4Addr::new(127, 8, 0, 1))
            .await
            .unwrap();
        stream.write_all(b"GET /pi").await.unwrap();
        if let Some((503, body)) = read_reply(&mut stream, Duration::from_millis(200)).await {
            assert!(body.contains("tooManyConnections"), "{body}");
            refused += 1;
        }
        held.push(stream);
    }
    assert_eq!(refused, 4, "16 unfinished requests per address, then 503");
    let text = metrics(&server).await;
    assert!(
        metric_sum(
            &text,
            "rest_sessions_connections_refused_total",
            &["reason=\"address_unfinished\""]
        ) >= 4.0
    );
    assert!(server.rss() < baseline + 64 * MIB);
}

/// Opens `count` connections from a crowd of addresses and sends each `request` (which
/// the server never sees the end of); returns them with the replies that came within
/// 300 ms (refusals).
async fn unfinished_crowd(
    port: u16,
    count: usize,
    request: Arc<Vec<u8>>,
) -> (Vec<TcpStream>, Vec<(u16, String)>) {
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..count {
        let request = request.clone();
        opening.spawn(async move {
            let mut stream = connect_from(port, address(7, i)).await.ok()?;
            // The server may refuse and close before taking it all.
            let _ = tokio::time::timeout(Duration::from_secs(3), stream.write_all(&request)).await;
            let reply = read_reply(&mut stream, Duration::from_millis(300)).await;
            Some((stream, reply))
        });
    }
    let (mut streams, mut replies) = (Vec::new(), Vec::new());
    while let Some(done) = opening.join_next().await {
        if let Some((stream, reply)) = done.expect("client task") {
            streams.push(stream);
            replies.extend(reply);
        }
    }
    (streams, replies)
}

/// Runs a crowd of unfinished requests against a server with an 8 MiB budget: a
/// well-behaved client is served while they are held, RSS stays within the budget (plus
/// the connections' own overhead) and comes back down once they are gone.
async fn unfinished_requests_stay_within_the_budget(label: &str, count: usize, request: Vec<u8>) {
    const BUDGET: u64 = 8 * MIB;
    let server = Server::in_memory(&[
        ("RS_MEMORY_BUDGET", "8388608"),
        ("RS_BODY_TIMEOUT", "30"),
        ("RS_HEADER_TIMEOUT", "30"),
    ]);
    let port = server.port();
    let http = client();
    let created: serde_json::Value = http
        .put(server.url("/ovl/create/u1?ip=127.0.0.1&ttl=3600"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let request = String::from_utf8(request).unwrap().replace("TOKEN", &token);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = server.rss();
    let (stop, watcher) = watch_rss(&server);

    let (streams, replies) = unfinished_crowd(port, count, Arc::new(request.into_bytes())).await;
    let refused = replies
        .iter()
        .filter(|(status, body)| *status == 503 && body.contains("\"error\":\"overloaded\""))
        .count();
    // A well-behaved client with a small body is served while they are held.
    let set: &'static [u8] = Box::leak(
        format!(
            "POST /ovl/set/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: 9\r\nConnection: close\r\n\r\n{{\"k\":\"v\"}}"
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let served = probes(port, set, 10, Duration::from_millis(100)).await;
    let text = metrics(&server).await;
    stop.store(true, Ordering::Relaxed);
    let peak = watcher.join().unwrap();
    let memory_refusals = metric_sum(
        &text,
        "rest_sessions_requests_refused_total",
        &["reason=\"memory\""],
    );
    let held = metric_sum(&text, "rest_sessions_request_bytes_in_flight", &[]);
    drop(streams);

    // Once they are gone, the bytes are released and the memory returned to the system.
    let started = Instant::now();
    let (after, in_flight) = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let in_flight = metric_sum(
            &metrics(&server).await,
            "rest_sessions_request_bytes_in_flight",
            &[],
        );
        let rss = server.rss();
        if (in_flight == 0.0 && rss < baseline + 16 * MIB)
            || started.elapsed() > Duration::from_secs(8)
        {
            break (rss, in_flight);
        }
    };
    eprintln!(
        "{label}: {count} unfinished, {refused} answered 503 overloaded ({memory_refusals} \
         refusals counted), {held} bytes held; {served} of 10 new clients served; RSS \
         baseline {} MiB, peak {} MiB, {} MiB {:?} after they closed",
        baseline / MIB,
        peak / MIB,
        after / MIB,
        started.elapsed()
    );
    assert!(
        served >= 9,
        "{label}: only {served} of 10 well-behaved clients served"
    );
    assert!(
        memory_refusals >= 1.0,
        "{label}: refusals {memory_refusals}"
    );
    assert!(held <= BUDGET as f64, "{label}: {held} bytes held");
    assert!(
        peak < baseline + BUDGET + 32 * MIB,
        "{label}: RSS peak {peak} from {baseline}"
    );
    assert_eq!(in_flight, 0.0, "{label}: bytes released");
    assert!(
        after < baseline + 16 * MIB,
        "{label}: RSS {after} after, from {baseline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_bodies_stay_within_the_memory_budget() {
    let _serial = SERIAL.lock().await;
    // 150 bodies of 1 MiB, all but the last byte sent: 150 MiB without a budget.
    let mut request = format!(
        "POST /ovl/set/TOKEN HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{\"k\":\"",
        MIB
    )
    .into_bytes();
    request.resize(request.len() + MIB as usize - 7, b'v');
    unfinished_requests_stay_within_the_budget("bodies", 150, request).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_heads_stay_within_the_memory_budget() {
    let _serial = SERIAL.lock().await;
    // 150 heads of 380 KB without their final blank line: 57 MB without a budget.
    let mut request = b"GET /ping HTTP/1.1\r\nHost: x\r\n".to_vec();
    for n in 0..95 {
        request.extend_from_slice(format!("X-F{n}: {}\r\n", "a".repeat(3990)).as_bytes());
    }
    unfinished_requests_stay_within_the_budget("heads", 150, request).await;
}
