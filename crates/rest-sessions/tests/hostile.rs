//! A hostile client against the real binary on a real Redis: thousands of seeded, generated
//! requests across every route — mutated paths, invalid percent-encodings, every JSON type
//! and JSON punctuation as bodies, huge headers, chunked and malformed chunked bodies,
//! wrong methods — interleaved with real sessions being created, read, changed and killed.
//! No request may get a 5xx; afterwards every session hash in Redis has its index entries
//! (`_sessions`, `_users`, `us:{id}`, `SESSIONS`) and every index entry its session, and
//! every stored `d` is a JSON object.

mod common;

use common::{RedisServer, Rng, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Generated requests (the loop also stops at [`BUDGET`]).
const CASES: usize = 3000;
/// Wall-clock bound of the generation loop.
const BUDGET: Duration = Duration::from_secs(45);

const APPS: [&str; 3] = ["fzapp1", "fz_app-2", "FZAPP3"];
/// Ids as path segments (percent-encoded) and as stored.
const IDS: [(&str, &str); 6] = [
    ("u1", "u1"),
    ("a%40b.com", "a@b.com"),
    ("%EA%B9%80", "김"),
    ("x:y:z", "x:y:z"),
    ("a%2Fb", "a/b"),
    ("sp%20ace", "sp ace"),
];

/// A session the fuzz created: (app, token).
type Live = Vec<(String, String)>;

fn app(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=5 => rng.pick(&APPS).to_string(),
        6 => rng
            .pick(&[
                "",
                "ab",
                "a",
                &"x".repeat(21),
                "f%7Aapp1",
                "fz.app",
                "%20fzapp1",
            ])
            .to_string(),
        7 => rng
            .pick(&["fz%ZZ", "fz%", "fz%E0%A4", "%FF%FE", "fz%C3%28"])
            .to_string(),
        8 => "김김김".to_string(),
        _ => {
            let n = rng.below(8);
            rng.bytes(n).iter().map(|b| format!("%{b:02X}")).collect()
        }
    }
}

fn token(rng: &mut Rng, live: &Live) -> String {
    match rng.below(10) {
        0..=4 if !live.is_empty() => live[rng.below(live.len())].1.clone(),
        5 => "A".repeat(64),
        6 => "A".repeat(rng.below(3) + 62),
        7 => "%41".repeat(64),
        8 => rng
            .pick(&["%ZZ", "%", "%E0%A4", "%ED%A0%80", "%00", "..", "."])
            .to_string(),
        _ => {
            let n = rng.below(80);
            rng.bytes(n).iter().map(|b| format!("%{b:02X}")).collect()
        }
    }
}

fn id(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=5 => rng.pick(&IDS).0.to_string(),
        6 => rng
            .pick(&[
                "%0A",
                "u%0D",
                "%E2%80%A8",
                "%ZZ",
                "%FF",
                "u%",
                "%E0%A4",
                ".",
                "..",
            ])
            .to_string(),
        7 => "i".repeat(rng.below(4) + 127),
        8 => "%EA%B9%80".repeat(rng.below(4) + 127),
        _ => {
            let n = rng.below(30);
            rng.bytes(n).iter().map(|b| format!("%{b:02X}")).collect()
        }
    }
}

fn query(rng: &mut Rng) -> String {
    let mut pairs: Vec<String> = Vec::new();
    if rng.below(5) > 0 {
        let long = "9".repeat(40);
        let ip = rng
            .pick(&["1.2.3.4", "::1", "", "%0A", &long, "%ZZ", "a+b"])
            .to_string();
        pairs.push(format!("ip={ip}"));
    }
    if rng.below(2) == 0 {
        let ttl = rng.pick(&["3600", "10", "9", "-5", "x", "1e3", "99999999999999999999"]);
        pairs.push(format!("ttl={ttl}"));
    }
    if rng.below(2) == 0 {
        let dt = rng.pick(&["600", "10", "0", "abc", "%FF", "86400000"]);
        pairs.push(format!("dt={dt}"));
    }
    if rng.below(4) == 0 {
        pairs.push(format!(
            "no_resave={}",
            rng.pick(&["true", "false", "1", ""])
        ));
    }
    if rng.below(6) == 0 {
        pairs.push(
            rng.pick(&["ip=5.6.7.8", "%ZZ=%ZZ", "&&", "ttl"])
                .to_string(),
        );
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn body(rng: &mut Rng) -> Vec<u8> {
    let text: String = match rng.below(16) {
        0 => String::new(),
        1 => rng
            .pick(&[
                "null", "true", "false", "0", "-1.5e300", "\"s\"", "[]", "[1,{}]", "{}",
            ])
            .to_string(),
        2 => r#"{"a":1,"b":"x","c":true,"d":null}"#.to_string(),
        3 => r#"{"a":{"b":1}}"#.to_string(),
        4 => r#"{"a":[1,2]}"#.to_string(),
        // JSON punctuation and escapes in keys and values.
        5 => rng
            .pick(&[
                r#"{":":1}"#,
                r#"{"a":":xyz","b":"c"}"#,
                r#"{",":0.1,"\"":"\\"}"#,
                r#"{"{}":"[]","k\u0000":"\n"}"#,
                r#"{"a":null}"#,
                r#"{"é":"김","😀":"\ud83d\ude00"}"#,
            ])
            .to_string(),
        6 => r#"{"n":12345678901234567890,"f":3.7998950481414795,"e":1E-7}"#.to_string(),
        7 => "{\"a\":".repeat(2_000),
        8 => format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
        9 => format!(r#"{{"k":"{}"}}"#, "v".repeat(rng.below(100_000))),
        10 => format!(r#"{{"k":"{}"}}"#, "v".repeat(1_100_000)),
        11 => "{oops".to_string(),
        12 => {
            let n = rng.below(300);
            return rng.bytes(n);
        }
        13 => return vec![b'{', b'"', 0xff, b'"', b':', b'1', b'}'],
        _ => format!(r#"{{"k{}":{}}}"#, rng.below(1000), rng.below(1000)),
    };
    text.into_bytes()
}

/// A device handle: of a live session, or malformed.
fn handle(rng: &mut Rng, live: &Live) -> String {
    match rng.below(3) {
        0 => redis_sessions::device_handle(&token(rng, live)),
        1 => "0123456789abcdef0123456789abcdef".to_owned(),
        _ => token(rng, live),
    }
}

/// One generated request as bytes on the wire; true when the server may close it without
/// a reply (a body it does not read, sent after it answered).
fn request(rng: &mut Rng, live: &Live) -> (Vec<u8>, bool) {
    let routes: [(&str, &str); 15] = [
        ("PUT", "/{app}/create/{id}"),
        ("GET", "/{app}/get/{token}"),
        ("POST", "/{app}/set/{token}"),
        ("GET", "/{app}/activity"),
        ("GET", "/{app}/soapp"),
        ("GET", "/{app}/soid/{id}"),
        ("DELETE", "/{app}/kill/{token}"),
        ("DELETE", "/{app}/killsoid/{id}"),
        ("DELETE", "/{app}/killsoid/{id}?keep={token}"),
        ("DELETE", "/{app}/killdevice/{id}/{handle}"),
        ("DELETE", "/{app}/killall"),
        ("GET", "/ping"),
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("GET", "/metrics"),
    ];
    let (right_method, template) = *rng.pick(&routes);
    // killall rarely, so sessions live long enough to be read and changed.
    if template.ends_with("killall") && rng.below(8) > 0 {
        return request(rng, live);
    }
    let method = if rng.below(5) > 0 {
        right_method
    } else {
        rng.pick(&[
            "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO",
        ])
    };
    let mut path = template
        .replace("{app}", &app(rng))
        .replace("{token}", &token(rng, live))
        .replace("{id}", &id(rng))
        .replace("{handle}", &handle(rng, live));
    match rng.below(12) {
        0 => path.push('/'),
        1 => path = path.replacen('/', "//", 1),
        2 => path.push_str("/extra"),
        3 => path = path.replace("/create/", "/%63reate/"),
        _ => {}
    }
    path.push_str(&query(rng));
    let body = body(rng);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n");
    match rng.below(14) {
        0 => head.push_str(&format!("X-Big: {}\r\n", "h".repeat(rng.below(200_000)))),
        1 => {
            for i in 0..rng.below(300) {
                head.push_str(&format!("X-H{i}: v\r\n"));
            }
        }
        2 => head.push_str("Content-Type: text/plain\r\n"),
        3 => head.push_str("Content-Type: application/json; charset=latin1\r\n"),
        _ => head.push_str("Content-Type: application/json\r\n"),
    }
    let mut wire = Vec::new();
    match rng.below(6) {
        // Chunked, in pieces of random size.
        0 => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            wire.extend_from_slice(head.as_bytes());
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = (rng.below(64) + 1).min(rest.len());
                wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
        // Chunked, malformed: a size that is not hex, or a chunk longer than it says.
        1 => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            wire.extend_from_slice(head.as_bytes());
            let bad: [&[u8]; 2] = [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{\"a\":1}\r\n0\r\n\r\n"];
            let chosen = *rng.pick(&bad);
            wire.extend_from_slice(chosen);
        }
        // A shorter Content-Length than the body: the rest is a second, garbled request.
        2 if body.len() > 2 => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len() / 2));
            wire.extend_from_slice(head.as_bytes());
            wire.extend_from_slice(&body);
        }
        _ => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            wire.extend_from_slice(head.as_bytes());
            wire.extend_from_slice(&body);
        }
    }
    let may_drop = body.len() > 16 * 1024 || head.len() > 16 * 1024;
    (wire, may_drop)
}

/// Sends `wire` on a fresh connection; the status and body of the reply, if any.
fn send(port: u16, wire: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let _ = stream.write_all(wire);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

#[test]
fn a_hostile_client_gets_no_5xx_and_leaves_the_indexes_consistent() {
    let redis = RedisServer::start();
    // A short body timeout: a Content-Length longer than what is sent costs 1 s, not 10.
    let server = Server::with_redis(&redis, &[("RS_BODY_TIMEOUT", "1")]);
    let port = server.port();
    let mut rng = Rng(0xF00D_5EED_0000_0010);
    let mut live: Live = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut dropped = 0;
    let started = Instant::now();
    let mut cases = 0;
    while cases < CASES && started.elapsed() < BUDGET {
        cases += 1;
        // Every fifth case a well-formed create, so there are sessions to hit.
        let (wire, may_drop) = if rng.below(5) == 0 {
            let app = rng.pick(&APPS).to_string();
            let id = rng.pick(&IDS).0;
            let body = body(&mut rng);
            let head = format!(
                "PUT /{app}/create/{id}?ip=10.0.0.1&ttl={} HTTP/1.1\r\nHost: fuzz\r\n\
                 Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                rng.pick(&["3600", "60", "10"]),
                body.len()
            );
            ([head.as_bytes(), &body].concat(), body.len() > 16 * 1024)
        } else {
            request(&mut rng, &live)
        };
        match send(port, &wire) {
            Some((status, reply)) => {
                *statuses.entry(status).or_default() += 1;
                let line = String::from_utf8_lossy(&wire[..wire.len().min(160)]).into_owned();
                assert!(status < 500, "case {cases}: {status} {reply}\n{line}");
                if status == 200 && wire.starts_with(b"PUT ") {
                    if let Ok(created) = serde_json::from_str::<serde_json::Value>(&reply) {
                        if let Some(token) = created["token"].as_str() {
                            let app = line[5..].split('/').next().unwrap_or("").to_string();
                            live.push((app, token.to_string()));
                        }
                    }
                }
            }
            None => {
                let line = String::from_utf8_lossy(&wire[..wire.len().min(160)]).into_owned();
                assert!(may_drop, "case {cases}: no reply\n{line}");
                dropped += 1;
            }
        }
    }
    let took = started.elapsed();
    eprintln!("{cases} requests in {took:?}: statuses {statuses:?}, {dropped} closed unanswered");
    assert!(cases >= 1500, "only {cases} requests within {BUDGET:?}");
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 300,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 300,
        "{statuses:?}"
    );

    check_indexes(&redis);
    // Every app still answers: no session the fuzz left is unreadable.
    for app in APPS {
        let reply = send(
            port,
            format!("GET /{app}/soapp?dt=100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(reply.map(|r| r.0), Some(200), "{app}");
    }
}

/// (app, token, id)
type Entry = (String, String, String);

/// Every session hash has its four index entries and every index entry its hash, except
/// entries of sessions past their end that no sweep removed yet (Redis expires the hash
/// itself; the sweeper, off here, removes the rest). Every `d` is a JSON object.
fn check_indexes(redis: &RedisServer) {
    let now: i64 = redis.strings(&["TIME"]).unwrap()[0].parse().unwrap();
    let keys = redis.strings(&["KEYS", "rs:*"]).unwrap();
    let mut hashes: BTreeSet<Entry> = BTreeSet::new();
    let mut sessions: BTreeSet<Entry> = BTreeSet::new();
    let mut tokens_of: BTreeSet<Entry> = BTreeSet::new();
    let mut users: BTreeSet<(String, String)> = BTreeSet::new();
    let mut user_sets: BTreeSet<(String, String)> = BTreeSet::new();
    let mut unknown = Vec::new();
    for key in &keys {
        // The expiry index, and the layout record (redis-sessions' own, see CLUSTER.md).
        if key == "rs:SESSIONS" || key == "rs:{layout}" {
            continue;
        }
        let Some((app, rest)) = key.strip_prefix("rs:").and_then(|k| k.split_once(':')) else {
            unknown.push(key.clone());
            continue;
        };
        let app = app.to_string();
        if rest == "_sessions" {
            for member in redis.strings(&["ZRANGE", key, "0", "-1"]).unwrap() {
                let (token, id) = member.split_once(':').expect("token:id");
                sessions.insert((app.clone(), token.into(), id.into()));
            }
        } else if rest == "_users" {
            for id in redis.strings(&["ZRANGE", key, "0", "-1"]).unwrap() {
                users.insert((app.clone(), id));
            }
        } else if let Some(id) = rest.strip_prefix("us:") {
            user_sets.insert((app.clone(), id.to_string()));
            for token in redis.strings(&["SMEMBERS", key]).unwrap() {
                tokens_of.insert((app.clone(), token, id.to_string()));
            }
        } else if rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let fields = redis.strings(&["HGETALL", key]).unwrap();
            let fields: BTreeMap<&str, &str> = fields
                .chunks(2)
                .map(|pair| (pair[0].as_str(), pair[1].as_str()))
                .collect();
            for field in ["id", "r", "w", "ip", "la", "ttl"] {
                assert!(
                    fields.contains_key(field),
                    "{key} lacks {field}: {fields:?}"
                );
            }
            if let Some(d) = fields.get("d") {
                let parsed: serde_json::Value = serde_json::from_str(d)
                    .unwrap_or_else(|e| panic!("{key}: stored d is not JSON ({e}): {d}"));
                assert!(
                    parsed.is_object() && !parsed.as_object().unwrap().is_empty(),
                    "{key}: {d}"
                );
            }
            hashes.insert((app, rest.to_string(), fields["id"].to_string()));
        } else {
            unknown.push(key.clone());
        }
    }
    assert!(unknown.is_empty(), "keys outside the layout: {unknown:?}");
    let mut ends: BTreeMap<Entry, i64> = BTreeMap::new();
    let all = redis
        .strings(&["ZRANGE", "rs:SESSIONS", "0", "-1", "WITHSCORES"])
        .unwrap();
    for pair in all.chunks(2) {
        let (app, rest) = pair[0].split_once(':').expect("app:token:id");
        let (token, id) = (&rest[..64], &rest[65..]);
        let end: f64 = pair[1].parse().unwrap();
        ends.insert((app.into(), token.into(), id.into()), end as i64);
    }
    assert!(
        hashes.len() > 20,
        "the fuzz left only {} sessions",
        hashes.len()
    );
    for entry in &hashes {
        assert!(sessions.contains(entry), "{entry:?} not in _sessions");
        assert!(tokens_of.contains(entry), "{entry:?} not in us:{{id}}");
        assert!(ends.contains_key(entry), "{entry:?} not in SESSIONS");
        assert!(
            users.contains(&(entry.0.clone(), entry.2.clone())),
            "{entry:?} not in _users"
        );
    }
    let ended = |entry: &Entry| ends.get(entry).is_some_and(|end| *end <= now + 1);
    for entry in sessions.iter().chain(&tokens_of).chain(ends.keys()) {
        assert!(
            hashes.contains(entry) || ended(entry),
            "{entry:?} is indexed but has no session and has not ended"
        );
    }
    for user in &users {
        assert!(
            user_sets.contains(user),
            "{user:?} in _users without us:{{id}}"
        );
    }
    eprintln!(
        "indexes: {} sessions, {} ended ones not yet swept, {} users",
        hashes.len(),
        ends.keys().filter(|e| !hashes.contains(*e)).count(),
        users.len()
    );
}
