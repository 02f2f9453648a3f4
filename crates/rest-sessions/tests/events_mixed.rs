//! The done-when check of issue 25: with events on, every acknowledged change of a mixed
//! load appears exactly once in the stream, in the order of its session's changes. Three
//! kinds of writers share one namespace and one app on one Redis at once — the real
//! `rest-sessions` binary, a library `RedisSessions` (with a `ManualClock`, so its sweeps
//! expire what is due without waiting) and the axum middleware served over HTTP in this
//! process — while a library consumer reads the stream and is crashed (aborted between
//! handling an event and saving its position) and restarted from its saved cursor. Then a
//! model checks what was read against what the writers were told.
//!
//! The other faults are checked writer by writer, not mixed: a cluster reshard and a
//! Sentinel failover under REST writers in `tests/events.rs`, the library's calls and
//! sweeps on a cluster in redis-sessions' `tests/events.rs`. The middleware and the sweep
//! write through those same library calls; this mix under a reshard or failover is not
//! run (a failed call there leaves its outcome open, which the model below allows for
//! creates and counted ends, but not yet for a rotation whose mark was written).

mod common;

use axum::extract::Path;
use axum::routing::post;
use axum::Router;
use common::{client, json, RedisServer, Server};
use futures_util::StreamExt;
use redis_sessions::{
    device_handle, CreateOptions, EndReason, Event, EventOptions, EventType, EventsFrom,
    ManualClock, Options, RedisSessions,
};
use redis_sessions_axum::{Session, SessionError, SessionLayer, ROTATED_PREFIX};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APP: &str = "mix";

/// What one writer was told: the changes acknowledged, and how many calls failed (their
/// outcome unknown: the model allows them to have happened or not).
#[derive(Default)]
struct Log {
    /// Device handle → (writer, user id, ip, ttl) of each acknowledged create.
    created: HashMap<String, (&'static str, String, String, i64)>,
    /// (device, reason) of each acknowledged end of one named session.
    ended: Vec<(String, EndReason)>,
    /// Sessions ended as counted by the call (killsoid, sweep, killall), per reason.
    counted: HashMap<EndReason, u64>,
    /// Device handles of the tokens replaced by an acknowledged login or rotation: each
    /// leaves one rotation mark (a session of `visitor:rotated:` + the handle).
    rotated: Vec<String>,
    /// Calls that failed.
    failed: u64,
    /// Every token handed out, to look for in the events.
    tokens: Vec<String>,
}

impl Log {
    fn merge(&mut self, other: Log) {
        self.created.extend(other.created);
        self.ended.extend(other.ended);
        for (reason, n) in other.counted {
            *self.counted.entry(reason).or_default() += n;
        }
        self.rotated.extend(other.rotated);
        self.failed += other.failed;
        self.tokens.extend(other.tokens);
    }

    fn create(&mut self, writer: &'static str, token: &str, id: &str, ip: &str, ttl: i64) {
        self.created.insert(
            device_handle(token),
            (writer, id.to_owned(), ip.to_owned(), ttl),
        );
        self.tokens.push(token.to_owned());
    }
}

/// The REST writer: creates (some short-lived), kills by token and by device, and signs
/// out the shared users everywhere (their sessions were made by the library too).
async fn rest_writer(base: String) -> Log {
    let http = client();
    let mut log = Log::default();
    for i in 0..240u32 {
        let id = if i % 4 == 0 {
            format!("shared{}", i % 3)
        } else {
            format!("rest{}", i % 10)
        };
        let ttl = if i % 5 == 0 { 10 } else { 3600 };
        let url = format!("{base}/{APP}/create/{id}?ip=10.0.1.1&ttl={ttl}");
        let token = match http.put(url).send().await {
            Ok(r) if r.status() == 200 => {
                let (_, body) = json(r).await;
                body["token"].as_str().unwrap_or_default().to_owned()
            }
            _ => {
                log.failed += 1;
                continue;
            }
        };
        log.create("rest", &token, &id, "10.0.1.1", ttl);
        let end = match i % 6 {
            1 => Some((format!("{base}/{APP}/kill/{token}"), EndReason::Killed)),
            3 => Some((
                format!("{base}/{APP}/killdevice/{id}/{}", device_handle(&token)),
                EndReason::Device,
            )),
            _ => None,
        };
        if let Some((url, reason)) = end {
            match http.delete(url).send().await {
                // 0: a sweep or a killsoid of another writer ended it first.
                Ok(r) if r.status() == 200 => {
                    if json(r).await.1["kill"] == 1 {
                        log.ended.push((device_handle(&token), reason));
                    }
                }
                _ => log.failed += 1,
            }
        }
        if i % 30 == 29 {
            let url = format!("{base}/{APP}/killsoid/shared{}", (i / 30) % 3);
            match http.delete(url).send().await {
                Ok(r) if r.status() == 200 => {
                    let n = json(r).await.1["kill"].as_u64().unwrap_or_default();
                    *log.counted
                        .entry(EndReason::SignedOutElsewhere)
                        .or_default() += n;
                }
                _ => log.failed += 1,
            }
        }
    }
    log
}

/// The library writer: the same calls through the API, a sweep half-way (its clock moved
/// two minutes on: every short-lived session of every writer so far is due) and sign-outs
/// everywhere of the shared users (their sessions were made by REST too).
async fn library_writer(rs: RedisSessions, clock: ManualClock) -> Log {
    let mut log = Log::default();
    for i in 0..240u32 {
        let id = if i % 4 == 2 {
            format!("shared{}", i % 3)
        } else {
            format!("lib{}", i % 10)
        };
        let ttl = if i % 5 == 0 { 10 } else { 3600 };
        let options = CreateOptions::default().ttl(Duration::from_secs(ttl as u64));
        let Ok(token) = rs.create(APP, &id, "10.0.2.2", options).await else {
            log.failed += 1;
            continue;
        };
        log.create("library", &token, &id, "10.0.2.2", ttl);
        let ended = match i % 6 {
            1 => rs.kill(APP, &token).await.map(|k| (k, EndReason::Killed)),
            3 => rs
                .kill_device(APP, &id, &device_handle(&token))
                .await
                .map(|k| (k, EndReason::Device)),
            _ => Ok((false, EndReason::Killed)),
        };
        match ended {
            Ok((true, reason)) => log.ended.push((device_handle(&token), reason)),
            Ok((false, _)) => {}
            Err(_) => log.failed += 1,
        }
        if i % 30 == 14 {
            match rs.killsoid(APP, &format!("shared{}", (i / 30) % 3)).await {
                Ok(n) => {
                    *log.counted
                        .entry(EndReason::SignedOutElsewhere)
                        .or_default() += n
                }
                Err(_) => log.failed += 1,
            }
        }
        if i == 120 {
            clock.advance(Duration::from_secs(120));
            match rs.sweep().await {
                Ok(n) => *log.counted.entry(EndReason::Expired).or_default() += n,
                Err(_) => log.failed += 1,
            }
        }
        // Lets the other writers' calls interleave with this one's.
        tokio::task::yield_now().await;
    }
    log
}

async fn login(s: Session, Path(user): Path<String>) -> Result<String, SessionError> {
    s.upgrade(&user).await
}

async fn rotate(s: Session) -> Result<String, SessionError> {
    s.rotate().await
}

async fn logout(s: Session) -> Result<&'static str, SessionError> {
    s.destroy().await?;
    Ok("out")
}

/// Serves the middleware on its own store (the real clock, as an app has) on a free port.
async fn serve_middleware(store: RedisSessions) -> String {
    let app = Router::new()
        .route("/login/{user}", post(login))
        .route("/rotate", post(rotate))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(store, APP));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// One browser of the middleware writer: rounds of log in (with the cookie of the last
/// round when it did not log out: a rotation), rotate, and every other round log out.
/// Its user is its own, so nothing else ends its sessions before the final killall.
async fn browser(base: String, user: String) -> Log {
    let http = client();
    let mut log = Log::default();
    let mut cookie: Option<String> = None;
    for round in 0..6 {
        for path in [format!("/login/{user}"), "/rotate".to_owned()] {
            let mut request = http.post(format!("{base}{path}"));
            if let Some(token) = &cookie {
                request = request.header("cookie", format!("{APP}={token}"));
            }
            match request.send().await {
                Ok(r) if r.status() == 200 => {
                    let token = r.text().await.unwrap_or_default();
                    // The middleware's default ttl (7200 s).
                    log.create("middleware", &token, &user, "", 7200);
                    if let Some(old) = cookie.replace(token) {
                        log.ended.push((device_handle(&old), EndReason::Rotated));
                        log.rotated.push(device_handle(&old));
                    }
                }
                _ => log.failed += 1,
            }
        }
        if round % 2 == 0 {
            let Some(token) = cookie.take() else { continue };
            let request = http
                .post(format!("{base}/logout"))
                .header("cookie", format!("{APP}={token}"));
            match request.send().await {
                Ok(r) if r.status() == 200 => {
                    log.ended.push((device_handle(&token), EndReason::Killed));
                }
                _ => log.failed += 1,
            }
        }
    }
    log
}

/// The consumer: reads from `from`, "handles" each event (appends it to `handled`), then
/// saves its cursor; the yield between the two is where a crash lands, so the event being
/// handled at a crash is handled again after the restart (at least once).
fn consumer(
    rs: RedisSessions,
    from: EventsFrom,
    handled: Arc<Mutex<Vec<Event>>>,
    saved: Arc<Mutex<Option<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let events = rs.events(APP, from);
        futures_util::pin_mut!(events);
        while let Some(event) = events.next().await {
            let Ok(event) = event else {
                // A failed read: the stream goes on polling.
                continue;
            };
            let cursor = event.cursor.clone();
            handled.lock().expect("lock").push(event);
            tokio::task::yield_now().await;
            *saved.lock().expect("lock") = Some(cursor);
        }
    })
}

/// Every event retained, through the REST JSON pages (what other languages read).
async fn all_pages(http: &reqwest::Client, server: &Server) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    loop {
        let url = server.url(&format!("/{APP}/events?after={after}&count=1000"));
        let (status, body) = json(http.get(url).send().await.expect("page")).await;
        assert_eq!(status, 200, "{body}");
        let page = body["events"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            return events;
        }
        after = body["next"].as_str().expect("next").to_owned();
        events.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_change_of_mixed_writers_appears_once_in_order() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let server = Server::with_redis(&redis, &[("RS_EVENTS", "true")]);
    let http = client();
    // The library writer and the consumer: a manual clock (its sweeps expire what is due
    // without waiting) and no background sweeper (the test calls `sweep`).
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(
        Options::default()
            .url(redis.url())
            .wipe(Duration::ZERO)
            .clock(clock.clone())
            .events(EventOptions::default()),
    )
    .await
    .expect("connect the library");
    let web_store = RedisSessions::connect(
        Options::default()
            .url(redis.url())
            .wipe(Duration::ZERO)
            .events(EventOptions::default()),
    )
    .await
    .expect("connect the middleware's store");
    let web = serve_middleware(web_store).await;

    let handled = Arc::new(Mutex::new(Vec::<Event>::new()));
    let saved = Arc::new(Mutex::new(None::<String>));
    let mut reader = consumer(
        rs.clone(),
        EventsFrom::Start,
        handled.clone(),
        saved.clone(),
    );

    let rest = tokio::spawn(rest_writer(server.base()));
    let library = tokio::spawn(library_writer(rs.clone(), clock.clone()));
    let browsers: Vec<_> = (0..8)
        .map(|b| tokio::spawn(browser(web.clone(), format!("web{b}"))))
        .collect();

    // The consumer crashes mid-load and is restarted from its saved position.
    let crash_deadline = Instant::now() + Duration::from_secs(20);
    while handled.lock().expect("lock").len() < 80 {
        assert!(Instant::now() < crash_deadline, "the consumer reads");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reader.abort();
    let _ = reader.await;
    let handled_at_crash = handled.lock().expect("lock").len();
    let writing_at_crash = !rest.is_finished() || !library.is_finished();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let from = saved
        .lock()
        .expect("lock")
        .clone()
        .map_or(EventsFrom::Start, EventsFrom::After);
    reader = consumer(rs.clone(), from, handled.clone(), saved.clone());

    let mut log = Log::default();
    log.merge(rest.await.expect("rest writer"));
    log.merge(library.await.expect("library writer"));
    for b in browsers {
        log.merge(b.await.expect("browser"));
    }
    // The end of the load: every short-lived session (and every rotation mark, 60 s) is
    // due ten minutes on; then REST's killall ends the rest, so every session in the
    // model has ended once.
    clock.advance(Duration::from_secs(600));
    let swept = rs.sweep().await.expect("final sweep");
    *log.counted.entry(EndReason::Expired).or_default() += swept;
    let (status, body) = json(
        http.delete(server.url(&format!("/{APP}/killall")))
            .send()
            .await
            .expect("killall"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    *log.counted.entry(EndReason::All).or_default() += body["kill"].as_u64().expect("kill");

    // What the stream holds, through the REST pages, and the consumer caught up with it.
    let pages = all_pages(&http, &server).await;
    let catch_up = Instant::now() + Duration::from_secs(15);
    loop {
        let distinct: HashSet<String> = handled
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.cursor.clone())
            .collect();
        if distinct.len() >= pages.len() {
            break;
        }
        assert!(
            Instant::now() < catch_up,
            "the restarted consumer caught up: {} of {}",
            distinct.len(),
            pages.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    reader.abort();
    let _ = reader.await;
    let handled = handled.lock().expect("lock").clone();

    // 1. The consumer: every event of the stream, in its order, with at most the one it
    //    was handling at the crash handled twice (at least once, as documented).
    let mut deduped: Vec<&Event> = Vec::new();
    let mut twice = 0;
    for event in &handled {
        if deduped
            .last()
            .is_some_and(|last| last.cursor == event.cursor)
        {
            twice += 1;
            continue;
        }
        deduped.push(event);
    }
    assert!(twice <= 1, "{twice} events handled twice");
    let read: Vec<&str> = deduped.iter().map(|e| e.cursor.as_str()).collect();
    let paged: Vec<&str> = pages
        .iter()
        .map(|e| e["cursor"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(read, paged, "the consumer read the stream, once, in order");
    let cursors: HashSet<&str> = paged.iter().copied().collect();
    assert_eq!(cursors.len(), pages.len(), "every cursor once");
    for (event, page) in deduped.iter().zip(&pages) {
        assert_eq!(
            serde_json::to_value(event).expect("json"),
            *page,
            "the library and REST give the same event"
        );
    }

    // 2. No token in any event.
    let text = serde_json::to_string(&pages).expect("json");
    for token in &log.tokens {
        assert!(!text.contains(token.as_str()), "a token in the events");
    }

    // 3. Per session, in stream order: exactly one `created`, then exactly one `ended`.
    let mut by_device: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for event in &deduped {
        assert_eq!(event.app, APP);
        by_device
            .entry(event.device.clone())
            .or_default()
            .push(event);
    }
    let mut wrong = Vec::new();
    for (device, events) in &by_device {
        let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
        if kinds != [EventType::Created, EventType::Ended] || events[0].id != events[1].id {
            wrong.push(format!("{device}: {events:?}"));
        }
    }
    assert!(wrong.is_empty(), "not created-then-ended once: {wrong:?}");

    // 4. Every acknowledged create has its `created` (user, ip, ttl as given); any other
    //    `created` is a rotation mark of an acknowledged rotation, or a failed call's.
    let mut missing = Vec::new();
    for (device, (writer, id, ip, ttl)) in &log.created {
        match by_device.get(device) {
            Some(events) => {
                let created = events[0];
                assert_eq!(&created.id, id, "{writer}");
                assert_eq!(created.ttl, Some(*ttl), "{writer}: {created:?}");
                if !ip.is_empty() {
                    assert_eq!(&created.ip, ip, "{writer}");
                }
            }
            None => missing.push(format!("{writer} {id} {device}")),
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged without an event: {missing:?}"
    );
    let marks: Vec<&str> = by_device
        .values()
        .filter(|events| !log.created.contains_key(&events[0].device))
        .filter_map(|events| events[0].id.strip_prefix(ROTATED_PREFIX))
        .collect();
    let mut expected_marks = log.rotated.clone();
    expected_marks.sort();
    let mut got_marks: Vec<String> = marks.iter().map(|m| (*m).to_owned()).collect();
    got_marks.sort();
    assert_eq!(
        got_marks, expected_marks,
        "one mark per acknowledged rotation"
    );
    let unexplained = by_device.len() - log.created.len() - marks.len();
    assert!(
        unexplained as u64 <= log.failed,
        "{unexplained} sessions nobody was told of, {} failed calls",
        log.failed
    );

    // 5. Every acknowledged end of a named session has its `ended` with that reason; none
    //    is claimed twice.
    let mut claimed: HashMap<&str, EndReason> = HashMap::new();
    for (device, reason) in &log.ended {
        assert!(
            claimed.insert(device.as_str(), *reason).is_none(),
            "two acknowledged ends of {device}"
        );
        let got = by_device
            .get(device)
            .and_then(|e| e.get(1))
            .and_then(|e| e.reason);
        assert_eq!(got, Some(*reason), "the end of {device}");
    }
    // Ends that name no session: as many as the calls counted, and only those reasons
    // (with no failed call: every killed/device/rotated end was acknowledged by name).
    let mut by_reason: HashMap<EndReason, u64> = HashMap::new();
    for events in by_device.values() {
        if let Some(reason) = events[1].reason {
            *by_reason.entry(reason).or_default() += 1;
        }
    }
    for reason in [
        EndReason::SignedOutElsewhere,
        EndReason::Expired,
        EndReason::All,
    ] {
        let counted = log.counted.get(&reason).copied().unwrap_or_default();
        let got = by_reason.get(&reason).copied().unwrap_or_default();
        if log.failed == 0 {
            assert_eq!(got, counted, "{reason:?} events and what the calls counted");
        } else {
            assert!(
                got >= counted,
                "{reason:?}: {got} events, {counted} counted"
            );
        }
    }
    if log.failed == 0 {
        for reason in [EndReason::Killed, EndReason::Device, EndReason::Rotated] {
            let acknowledged = log.ended.iter().filter(|(_, r)| *r == reason).count();
            assert_eq!(
                by_reason.get(&reason).copied().unwrap_or_default() as usize,
                acknowledged,
                "{reason:?}: every event acknowledged"
            );
        }
    }
    // Sign-outs everywhere only touched the shared users (whose sessions both the REST
    // and the library writer made, and both signed out).
    for events in by_device.values() {
        if events[1].reason == Some(EndReason::SignedOutElsewhere) {
            assert!(events[1].id.starts_with("shared"), "{:?}", events[1]);
        }
    }

    // The figures: per writer, created and each reason of their end.
    let mut table: BTreeMap<(&str, String), u64> = BTreeMap::new();
    for (device, events) in &by_device {
        let writer = log.created.get(device).map_or("mark", |c| c.0);
        *table.entry((writer, "created".into())).or_default() += 1;
        if let Some(reason) = events[1].reason {
            *table.entry((writer, format!("{reason:?}"))).or_default() += 1;
        }
    }
    let cross = |writer: &str, reason: EndReason| {
        by_device
            .iter()
            .filter(|(d, e)| {
                log.created.get(*d).is_some_and(|c| c.0 == writer) && e[1].reason == Some(reason)
            })
            .count()
    };
    println!(
        "mixed writers: {} events, {} sessions, {} failed calls; consumer crashed after {} \
         events (writers still running: {writing_at_crash}), {twice} handled twice; {:.1} s",
        pages.len(),
        by_device.len(),
        log.failed,
        handled_at_crash,
        started.elapsed().as_secs_f64()
    );
    for ((writer, what), n) in &table {
        println!("  {writer:<10} {what:<20} {n}");
    }
    assert!(writing_at_crash, "the crash happened under load");
    assert!(
        log.created.len() > 500,
        "the load ran: {}",
        log.created.len()
    );
    for writer in ["rest", "library"] {
        assert!(
            cross(writer, EndReason::Expired) > 0,
            "{writer}'s sessions swept"
        );
        assert!(
            cross(writer, EndReason::SignedOutElsewhere) > 0,
            "{writer}'s sessions signed out by killsoid"
        );
    }
    assert!(cross("middleware", EndReason::Rotated) > 0);
    assert!(by_reason.get(&EndReason::All).copied().unwrap_or_default() > 0);
    assert!(started.elapsed() < Duration::from_secs(60), "bounded");
}
