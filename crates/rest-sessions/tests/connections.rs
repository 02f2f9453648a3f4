//! Stalled, idle and slow clients against the real binary: they are closed by their
//! deadlines, cannot starve other clients even past the open-files limit, and a slow body
//! is the client's 408, never a Redis outage. Timeouts are set small so this runs in
//! seconds; the README gives the defaults.

mod common;

use common::{client, command_with_open_files, create, free_port, metric_sum, RedisServer, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One request on a fresh connection, `Connection: close`: the status and body, and how
/// long the answer took (None: no answer within `wait`, or the connection was refused).
fn request(port: u16, raw: &str, wait: Duration) -> (Option<(u16, String)>, Duration) {
    let started = Instant::now();
    let answer = (|| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(wait)).ok()?;
        stream.write_all(raw.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        parse(&reply)
    })();
    (answer, started.elapsed())
}

/// Status and body of a whole HTTP/1.1 reply.
fn parse(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

const PING: &str = "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Lets this test process hold more than the usual 1024 sockets.
fn raise_own_open_files_limit(needed: u64) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
    assert!(
        limit >= needed,
        "this test needs {needed} open files, the hard limit allows {limit}"
    );
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

#[tokio::test(flavor = "multi_thread")]
async fn stalled_clients_past_the_open_files_limit_do_not_starve_new_ones() {
    const STALLED: usize = 1100;
    raise_own_open_files_limit(STALLED as u64 + 200);
    let redis = RedisServer::start();
    let port = free_port();
    let mut cmd = command_with_open_files(port, 1024);
    // Every client here has one address, as behind a proxy: the per-address caps (which
    // would refuse all but 112 of these, and the new client with them) are off, so the
    // bound itself is what is tested. tests/overload.rs tests the caps.
    cmd.env("RS_REDISPORT", redis.port().to_string())
        .env("RS_HEADER_TIMEOUT", "2")
        .env("RS_IDLE_TIMEOUT", "2")
        .env("RS_BEHIND_PROXY", "true");
    let server = Server::spawn(cmd, port);

    // 1100 clients send the start of a request line and stop.
    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = stream.write_all(b"GET /pi");
        stalled.push(stream);
    }
    let all_open = opened.elapsed();

    // A new client, meanwhile: every attempt is answered at once — a 503 with Retry-After
    // while the bound is reached by heads younger than 500 ms — and it is served once the
    // oldest stalled head may be closed to admit it.
    let mut busy_replies = 0;
    let mut slowest_answer = Duration::ZERO;
    let served_after = loop {
        let (answer, took) = request(port, PING, Duration::from_secs(3));
        slowest_answer = slowest_answer.max(took);
        assert!(
            took < Duration::from_secs(1),
            "an attempt took {took:?}: {answer:?}"
        );
        match answer {
            Some((200, body)) => {
                assert_eq!(body, "PONG");
                break opened.elapsed();
            }
            Some((503, body)) => {
                let body: serde_json::Value = serde_json::from_str(&body).expect("JSON 503");
                assert_eq!(body["error"], "tooManyConnections");
                busy_replies += 1;
            }
            // Closed at once when even the refusal slots were taken: a clean refusal.
            None => {}
            Some(other) => panic!("unexpected reply {other:?}"),
        }
        assert!(
            opened.elapsed() < Duration::from_secs(3),
            "not served within 3 s of the stalled connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "stalled clients: {STALLED} opened in {all_open:?}; new client served after \
         {served_after:?}, {busy_replies} fast 503s before, slowest answer {slowest_answer:?}"
    );

    // The server closed the stalled connections: each reads EOF (or a reset) by now.
    let mut closed = 0;
    for stream in stalled.iter_mut() {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        match stream.read(&mut [0u8; 512]) {
            Ok(_) => closed += 1, // EOF, or the 503 of a refused one followed by EOF
            Err(err) if err.kind() == ErrorKind::ConnectionReset => closed += 1,
            Err(_) => {}
        }
    }
    assert!(
        closed > STALLED * 9 / 10,
        "only {closed} of {STALLED} closed"
    );

    let text = metrics(&server).await;
    let expired = metric_sum(
        &text,
        "rest_sessions_connections_expired_total",
        &["reason=\"header_timeout\""],
    );
    let refused = metric_sum(&text, "rest_sessions_connections_refused_total", &[]);
    let evicted = metric_sum(&text, "rest_sessions_connections_evicted_total", &[]);
    // 1024 open files less the reserve: at most 896 served at once, the rest refused; the
    // served ones closed by their header timeout, or to admit a newcomer.
    assert!(
        expired + evicted >= 800.0,
        "header timeouts counted: {expired}, evictions {evicted}, refusals {refused}"
    );
    assert!(
        refused >= (STALLED - 896) as f64,
        "refusals counted: {refused}"
    );
    eprintln!("header timeouts: {expired}, evictions: {evicted}, refusals: {refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let server = Server::in_memory(&[("RS_IDLE_TIMEOUT", "1"), ("RS_HEADER_TIMEOUT", "5")]);
    let keep_alive = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";
    let read_reply = |stream: &mut TcpStream| {
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).expect("reply");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            text.starts_with("HTTP/1.1 200") && text.ends_with("PONG"),
            "{text}"
        );
    };

    // A connection in use stays open past the idle timeout.
    let mut busy = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..4 {
        busy.write_all(keep_alive.as_bytes()).unwrap();
        read_reply(&mut busy);
        std::thread::sleep(Duration::from_millis(500));
    }

    // 200 idle ones are closed once idle for 1 s.
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            stream.write_all(keep_alive.as_bytes()).unwrap();
            read_reply(&mut stream);
            stream
        })
        .collect();
    let idle_since = Instant::now();
    for stream in idle.iter_mut() {
        let n = stream.read(&mut [0u8; 64]).unwrap_or(0);
        assert_eq!(n, 0, "the server closes an idle connection");
    }
    let all_closed = idle_since.elapsed();
    assert!(
        all_closed >= Duration::from_millis(900) && all_closed < Duration::from_secs(3),
        "closed after {all_closed:?}"
    );
    eprintln!("200 idle keep-alive connections all closed {all_closed:?} after their last reply");

    let text = metrics(&server).await;
    let expired = metric_sum(
        &text,
        "rest_sessions_connections_expired_total",
        &["reason=\"idle_timeout\""],
    );
    assert!(expired >= 200.0, "idle timeouts counted: {expired}");
}

/// Sends a `set` whose 20-byte body trickles in one byte per `gap`; returns the reply and
/// how long it took.
fn trickled_set(port: u16, token: &str, gap: Duration) -> (Option<(u16, String)>, Duration) {
    let body = br#"{"k":"0123456789ab"}"#;
    assert_eq!(body.len(), 20);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let head = format!(
        "POST /slowapp/set/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 20\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in body {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(gap);
        }
    });
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let took = started.elapsed();
    let _ = trickle.join();
    (parse(&reply), took)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_body_is_a_408_and_never_counted_as_an_outage() {
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[("RS_BODY_TIMEOUT", "3")]);
    let http = client();
    let token = create(&http, &server, "slowapp", "u1").await;
    let unavailable = |text: &str| {
        metric_sum(
            text,
            "rest_sessions_http_errors_total",
            &["error=\"redisUnavailable\""],
        )
    };
    let before = unavailable(&metrics(&server).await);

    // 20 bytes over 2 s: within the 3 s body timeout, the set is applied — even though it
    // is longer than the store's 1.8 s deadline, which no longer covers the body.
    let (reply, took) = trickled_set(server.port(), &token, Duration::from_millis(100));
    let (status, body) = reply.expect("a reply");
    assert_eq!(status, 200, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["d"]["k"], "0123456789ab");
    assert!(took >= Duration::from_millis(1900), "{took:?}");

    // 20 bytes over 4 s: a 408 when the body timeout passes, not a 503.
    let (reply, took) = trickled_set(server.port(), &token, Duration::from_millis(200));
    let (status, body) = reply.expect("a reply");
    assert_eq!(status, 408, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"], "requestTimeout");
    assert!(error["message"].is_string());
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(3900),
        "408 after {took:?}"
    );

    let text = metrics(&server).await;
    assert_eq!(unavailable(&text), before, "no redisUnavailable counted");
    let timeouts = metric_sum(
        &text,
        "rest_sessions_http_errors_total",
        &["status=\"408\"", "error=\"requestTimeout\""],
    );
    assert_eq!(timeouts, 1.0);
}

#[test]
fn no_connections_at_all_is_refused_at_start() {
    let output = common::command(free_port())
        .env("RS_STORE", "memory")
        .env("RS_MAX_CONNECTIONS", "0")
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run rest-sessions");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RS_MAX_CONNECTIONS"), "{stderr}");
}

#[test]
fn a_timeout_of_zero_is_refused_at_start() {
    let output = common::command(free_port())
        .env("RS_STORE", "memory")
        .env("RS_HEADER_TIMEOUT", "0")
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run rest-sessions");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("header-timeout") || stderr.contains("RS_HEADER_TIMEOUT"),
        "{stderr}"
    );
}
