//! Session lifecycle events (issue 25): every acknowledged change appears exactly once in
//! its app's stream, in the order of its session's changes, on one Redis, on a cluster and
//! in the embedded store; consumers resume from a saved position and share the work as a
//! group; retention trims; a store without events writes no stream.

use futures_util::StreamExt;
use redis_sessions::{
    device_handle, CreateOptions, EndReason, Event, EventOptions, EventType, EventsFrom,
    ManualClock, Options, RedisSessions,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use test_support::RedisServer;

/// A store with events on, its clock, and the Redis it runs on (None in memory).
struct Env {
    rs: RedisSessions,
    clock: ManualClock,
    server: Option<RedisServer>,
}

fn events_on(clock: &ManualClock, max_len: u64) -> Options {
    Options::default()
        .wipe(std::time::Duration::ZERO)
        .clock(clock.clone())
        .events(EventOptions::max_len(max_len))
}

async fn redis(max_len: u64) -> Env {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(events_on(&clock, max_len).url(server.url()))
        .await
        .expect("connect");
    Env {
        rs,
        clock,
        server: Some(server),
    }
}

fn memory(max_len: u64) -> Env {
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::in_memory(events_on(&clock, max_len));
    Env {
        rs,
        clock,
        server: None,
    }
}

async fn cluster(max_len: u64) -> Env {
    static CLUSTER: std::sync::OnceLock<test_support::cluster::RedisCluster> =
        std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let cluster = CLUSTER.get_or_init(|| test_support::cluster::RedisCluster::start(3, 0));
    let ns = format!(
        "ev{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(
        events_on(&clock, max_len)
            .cluster(cluster.urls())
            .namespace(ns),
    )
    .await
    .expect("connect to the cluster");
    Env {
        rs,
        clock,
        server: None,
    }
}

/// Reads `n` events from `from` through the stream API (fails after 10 s).
async fn take(rs: &RedisSessions, app: &str, from: EventsFrom, n: usize) -> Vec<Event> {
    let stream = rs.events(app, from);
    futures_util::pin_mut!(stream);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(event))) => out.push(event),
            Ok(Some(Err(err))) => panic!("read failed: {err}"),
            Ok(None) => panic!("the stream ended"),
            Err(_) => panic!("only {} of {n} events came", out.len()),
        }
    }
    out
}

/// Every event retained, by pages.
async fn all(rs: &RedisSessions, app: &str) -> Vec<Event> {
    let mut out = Vec::new();
    let mut from = EventsFrom::Start;
    loop {
        let page = rs.events_page(app, &from, 1000).await.expect("page");
        if page.events.is_empty() {
            return out;
        }
        out.extend(page.events);
        from = EventsFrom::After(page.cursor);
    }
}

/// A mixed concurrent load (creates, kills, device kills, killsoid, killsoid_keep,
/// killall of another app, sweeps), then the model: read back, every acknowledged
/// session has exactly one `created` then exactly one `ended`, with the reason of the
/// call that ended it, and nothing else is in the streams.
async fn mixed_load_appears_exactly_once_in_order(env: &Env) {
    let rs = &env.rs;
    let users: Vec<String> = (0..12).map(|u| format!("user:{u}")).collect();
    // Created concurrently: every acknowledged token is a session the model expects.
    let creates = (0..240).map(|i| {
        let rs = rs.clone();
        let id = users[i % users.len()].clone();
        let app = if i % 5 == 0 { "other" } else { "app" };
        async move {
            let ttl = if i % 7 == 0 { 10 } else { 3600 };
            let token = rs
                .create(
                    app,
                    &id,
                    "10.0.0.1",
                    CreateOptions::default().ttl(std::time::Duration::from_secs(ttl as u64)),
                )
                .await
                .expect("create");
            (app, id, token, ttl)
        }
    });
    let sessions: Vec<(&str, String, String, i64)> = futures_util::future::join_all(creates).await;
    let mut expected: HashMap<String, (&str, String, Option<EndReason>)> = sessions
        .iter()
        .map(|(app, id, token, _)| (device_handle(token), (*app, id.clone(), None)))
        .collect();
    // Ends, concurrently: kill and kill_device of some, killsoid of two users (one
    // keeping a session), killall of "other"; the reason each acknowledged end implies.
    let app_sessions: Vec<&(&str, String, String, i64)> =
        sessions.iter().filter(|s| s.0 == "app").collect();
    let mut ends = Vec::new();
    for (k, (_, id, token, _)) in app_sessions.iter().enumerate() {
        if id == &users[0] || id == &users[1] {
            continue; // their sessions go by killsoid
        }
        let (rs, token, id) = (rs.clone(), token.clone(), id.clone());
        match k % 6 {
            0 => ends.push(tokio::spawn(async move {
                rs.kill("app", &token)
                    .await
                    .expect("kill")
                    .then_some((token, EndReason::Killed))
            })),
            1 => ends.push(tokio::spawn(async move {
                rs.kill_device("app", &id, &device_handle(&token))
                    .await
                    .expect("kill_device")
                    .then_some((token, EndReason::Device))
            })),
            _ => {}
        }
    }
    let keep = app_sessions
        .iter()
        .find(|s| s.1 == users[1])
        .map(|s| s.2.clone())
        .expect("a session of user 1");
    let (rs0, rs1, rs2) = (rs.clone(), rs.clone(), rs.clone());
    let (u0, u1, keep2) = (users[0].clone(), users[1].clone(), keep.clone());
    let soid0 = tokio::spawn(async move { rs0.killsoid("app", &u0).await.expect("killsoid") });
    let soid1 =
        tokio::spawn(async move { rs1.killsoid_keep("app", &u1, &keep2).await.expect("keep") });
    let all_other = tokio::spawn(async move { rs2.killall("other").await.expect("killall") });
    for end in ends {
        if let Some((token, reason)) = end.await.expect("task") {
            expected.get_mut(&device_handle(&token)).expect("known").2 = Some(reason);
        }
    }
    let signed_out = soid0.await.expect("task") + soid1.await.expect("task");
    for (app, id, token, _) in &sessions {
        let entry = expected.get_mut(&device_handle(token)).expect("known");
        if *app == "other" {
            entry.2 = Some(EndReason::All);
        } else if (id == &users[0] || id == &users[1]) && token != &keep {
            entry.2 = Some(EndReason::SignedOutElsewhere);
        }
    }
    assert_eq!(
        all_other.await.expect("task"),
        48,
        "killall ends every `other` session"
    );
    assert_eq!(
        signed_out as usize,
        expected
            .values()
            .filter(|e| e.2 == Some(EndReason::SignedOutElsewhere))
            .count()
    );
    // The short-lived sessions still alive die and are swept.
    env.clock.advance(std::time::Duration::from_secs(20));
    let swept = rs.sweep().await.expect("sweep");
    for (app, _, token, ttl) in &sessions {
        let entry = expected.get_mut(&device_handle(token)).expect("known");
        if *app == "app" && *ttl == 10 && entry.2.is_none() {
            entry.2 = Some(EndReason::Expired);
        }
    }
    assert_eq!(
        swept as usize,
        expected
            .values()
            .filter(|e| e.2 == Some(EndReason::Expired))
            .count()
    );

    // The model, read back through the stream API (app) and pages (other).
    let mut events = Vec::new();
    for app in ["app", "other"] {
        let in_model = expected.values().filter(|e| e.0 == app);
        let n = in_model.map(|e| 1 + usize::from(e.2.is_some())).sum();
        let read = take(rs, app, EventsFrom::Start, n).await;
        assert_eq!(all(rs, app).await, read, "pages and the stream agree");
        events.extend(read);
    }
    let mut seen: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for event in &events {
        seen.entry(event.device.clone()).or_default().push(event);
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "one device per acknowledged create"
    );
    for (device, (app, id, end)) in &expected {
        let got = &seen[device];
        assert_eq!(got[0].kind, EventType::Created, "created first: {got:?}");
        assert_eq!((got[0].app.as_str(), &got[0].id), (*app, id));
        assert_eq!(got[0].ip, "10.0.0.1");
        assert!(got[0].ttl.is_some());
        match end {
            None => assert_eq!(got.len(), 1, "a live session has only its start: {got:?}"),
            Some(reason) => {
                assert_eq!(got.len(), 2, "exactly one end: {got:?}");
                assert_eq!(got[1].kind, EventType::Ended);
                assert_eq!(got[1].reason, Some(*reason), "{got:?}");
                assert_eq!(&got[1].id, id);
                assert_eq!(got[1].ip, "10.0.0.1", "the end carries the session's ip");
            }
        }
    }
    // No event carries a token.
    let tokens: BTreeSet<&str> = sessions.iter().map(|s| s.2.as_str()).collect();
    for event in &events {
        let text = serde_json::to_string(event).expect("json");
        assert!(tokens.iter().all(|t| !text.contains(t)), "{text}");
    }
}

#[tokio::test]
async fn mixed_load_redis() {
    mixed_load_appears_exactly_once_in_order(&redis(100_000).await).await;
}

#[tokio::test]
async fn mixed_load_memory() {
    mixed_load_appears_exactly_once_in_order(&memory(100_000)).await;
}

#[tokio::test]
async fn mixed_load_cluster() {
    mixed_load_appears_exactly_once_in_order(&cluster(100_000).await).await;
}

/// A consumer stopped mid-stream and started again from its saved position gets the
/// rest, exactly: nothing missed, nothing twice.
async fn resume_misses_nothing(env: &Env) {
    let rs = &env.rs;
    let mut tokens = Vec::new();
    for i in 0..60 {
        let token = rs
            .create(
                "app",
                &format!("u{}", i % 7),
                "::1",
                CreateOptions::default(),
            )
            .await
            .expect("create");
        tokens.push(token);
    }
    let first = take(rs, "app", EventsFrom::Start, 25).await;
    let saved = first.last().expect("some").cursor.clone();
    // Written while the consumer is away.
    for token in &tokens[..20] {
        rs.kill("app", token).await.expect("kill");
    }
    let rest = take(rs, "app", EventsFrom::After(saved), 55).await;
    let mut whole = first;
    whole.extend(rest);
    assert_eq!(
        whole,
        all(rs, "app").await,
        "the two runs read every event once"
    );
    // "Now" starts after everything written so far.
    let page = rs
        .events_page("app", &EventsFrom::Now, 10)
        .await
        .expect("now");
    assert!(page.events.is_empty());
    rs.kill("app", &tokens[30]).await.expect("kill");
    let next = take(rs, "app", EventsFrom::After(page.cursor), 1).await;
    assert_eq!(next[0].reason, Some(EndReason::Killed));
    assert_eq!(next[0].device, device_handle(&tokens[30]));
    assert!(rs
        .events_page("app", &EventsFrom::After("garbage".into()), 10)
        .await
        .is_err());
}

#[tokio::test]
async fn resume_redis() {
    resume_misses_nothing(&redis(100_000).await).await;
}

#[tokio::test]
async fn resume_memory() {
    resume_misses_nothing(&memory(100_000)).await;
}

#[tokio::test]
async fn resume_cluster() {
    resume_misses_nothing(&cluster(100_000).await).await;
}

/// A group of three where one member takes events and dies without acknowledging them:
/// the other two take them over after `claim_after`, and every event is handled.
#[tokio::test]
async fn consumer_group_of_three_with_one_dropped() {
    let env = redis(100_000).await;
    let rs = &env.rs;
    let claim_after = Duration::from_millis(300);
    let mut dead = rs
        .event_group("app", "mailer", "dies", claim_after)
        .await
        .expect("join");
    for i in 0..150 {
        rs.create("app", &format!("u{i}"), "::1", CreateOptions::default())
            .await
            .expect("create");
    }
    let lost = dead.next().await.expect("take");
    assert!(!lost.is_empty());
    drop(dead); // dies with its events unacknowledged
    for i in 0..150 {
        rs.create("app", &format!("v{i}"), "::1", CreateOptions::default())
            .await
            .expect("create");
    }
    let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let members = ["a", "b"].map(|name| {
        let (rs, handled) = (rs.clone(), handled.clone());
        tokio::spawn(async move {
            let mut group = rs
                .event_group("app", "mailer", name, claim_after)
                .await
                .expect("join");
            loop {
                let events = group.next().await.expect("next");
                for event in events {
                    handled.lock().expect("lock").push(event.device.clone());
                    group.ack(&event).await.expect("ack");
                }
            }
        })
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let everything: BTreeSet<String> = all(rs, "app").await.into_iter().map(|e| e.device).collect();
    assert_eq!(everything.len(), 300);
    loop {
        let got: BTreeSet<String> = handled.lock().expect("lock").iter().cloned().collect();
        if got == everything {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of 300 handled",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for member in members {
        member.abort();
    }
    // Nothing left pending.
    let mut con = raw(&env);
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("rs:app:_events")
        .arg("mailer")
        .query(&mut con)
        .expect("XPENDING");
    let redis::Value::Array(summary) = pending else {
        panic!("XPENDING: {pending:?}");
    };
    assert_eq!(summary[0], redis::Value::Int(0), "every event acknowledged");
}

/// A member that keeps its events (`keep`, as a webhook retrying does) holds them past
/// `claim_after`: another member takes none; once it stops keeping them (it died), the
/// other takes them over, each with the same `entry_id` (unique among them).
async fn a_kept_event_is_not_taken_over(env: &Env) {
    let rs = &env.rs;
    // A keep every 250 ms against a claim_after of 1 s: a loaded machine (CI runs the
    // tests in parallel) may delay a keep by a few hundred ms without the test failing.
    let claim_after = Duration::from_millis(1000);
    let mut slow = rs
        .event_group("app", "hooks", "slow", claim_after)
        .await
        .expect("join");
    let mut other = rs
        .event_group("app", "hooks", "other", claim_after)
        .await
        .expect("join");
    for i in 0..40 {
        rs.create("app", &format!("k{i}"), "::1", CreateOptions::default())
            .await
            .expect("create");
    }
    let mut held = Vec::new();
    while held.len() < 40 {
        held.extend(slow.next().await.expect("take"));
    }
    let ids: BTreeSet<String> = held.iter().map(|e| e.entry_id()).collect();
    assert_eq!(ids.len(), 40, "entry ids are unique");
    // Kept for three times claim_after: the other member gets nothing meanwhile.
    let keeping = async {
        for _ in 0..12 {
            slow.keep(&held).await.expect("keep");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let taken = tokio::time::timeout(Duration::from_millis(3000), other.next());
    let (_, taken) = tokio::join!(keeping, taken);
    assert!(taken.is_err(), "taken over while kept: {taken:?}");
    // No longer kept: taken over after claim_after, the same events by the same ids.
    let mut over = BTreeSet::new();
    while over.len() < 40 {
        let events = tokio::time::timeout(Duration::from_secs(10), other.next())
            .await
            .expect("taken over in time")
            .expect("next");
        over.extend(events.iter().map(|e| e.entry_id()));
    }
    assert_eq!(over, ids);
}

#[tokio::test]
async fn kept_events_redis() {
    a_kept_event_is_not_taken_over(&redis(100_000).await).await;
}

#[tokio::test]
async fn kept_events_cluster() {
    a_kept_event_is_not_taken_over(&cluster(100_000).await).await;
}

fn raw(env: &Env) -> redis::Connection {
    let server = env.server.as_ref().expect("redis env");
    redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("raw connection")
}

/// Retention by age: events older than `max_age` go at the next event (exactly in memory;
/// on Redis whole stream nodes, so at most the node holding the new event is left), whether
/// it is written by a script (kill) or by create's MULTI; what is left reads from the start.
#[tokio::test]
async fn retention_by_age_drops_old_events() {
    let server = RedisServer::start();
    let on = |clock: &ManualClock| {
        Options::default()
            .wipe(Duration::ZERO)
            .clock(clock.clone())
            .events(EventOptions::max_len(100_000).max_age(Duration::from_millis(1500)))
    };
    let clock = ManualClock::starting_now();
    let redis = RedisSessions::connect(on(&clock).url(server.url()))
        .await
        .expect("connect");
    let memory = RedisSessions::in_memory(on(&clock));
    const OLD: usize = 250;
    for (name, rs, node_slack) in [("redis", &redis, 100), ("memory", &memory, 0)] {
        for (app, by_create) in [("bykill", false), ("bycreate", true)] {
            let mut old = Vec::new();
            for i in 0..OLD {
                let token = rs
                    .create(
                        app,
                        &format!("old{i}"),
                        "10.0.0.1",
                        CreateOptions::default(),
                    )
                    .await
                    .expect("create");
                old.push(token);
            }
            tokio::time::sleep(Duration::from_millis(2000)).await;
            if by_create {
                rs.create(app, "new", "10.0.0.1", CreateOptions::default())
                    .await
                    .expect("create");
            } else {
                assert!(rs.kill(app, &old[0]).await.expect("kill"));
            }
            let kept = rs
                .events_page(app, &EventsFrom::Start, 1000)
                .await
                .expect("page")
                .events;
            assert!(
                !kept.is_empty() && kept.len() <= 1 + node_slack && kept.len() < OLD,
                "{name}/{app}: events older than the age are gone ({} of {} kept)",
                kept.len(),
                OLD + 1
            );
            let newest = kept.last().expect("the new event");
            if by_create {
                assert_eq!(newest.id, "new", "{name}/{app}");
            } else {
                assert_eq!(newest.reason, Some(EndReason::Killed), "{name}/{app}");
            }
            println!("{name}/{app}: {} of {} events kept", kept.len(), OLD + 1);
        }
    }
}

/// `MAXLEN ~` keeps the stream near its retention; and the memory per event.
#[tokio::test]
async fn retention_trims_and_memory_per_event() {
    let env = redis(1000).await;
    for i in 0..5000 {
        env.rs
            .create(
                "app",
                &format!("user{}@example.com", i % 100),
                "192.168.10.20",
                CreateOptions::default(),
            )
            .await
            .expect("create");
    }
    let mut con = raw(&env);
    let len: u64 = redis::cmd("XLEN")
        .arg("rs:app:_events")
        .query(&mut con)
        .expect("XLEN");
    // Redis trims whole nodes (100 entries by default): up to a node more is kept.
    assert!((1000..=1100).contains(&len), "kept {len}");
    let page = env
        .rs
        .events_page("app", &EventsFrom::Start, 10)
        .await
        .expect("page");
    assert_eq!(page.events.len(), 10, "what is retained is readable");

    let env = redis(100_000).await;
    for i in 0..10_000 {
        let token = env
            .rs
            .create(
                "app",
                &format!("user{}@example.com", i % 1000),
                "192.168.10.20",
                CreateOptions::default(),
            )
            .await
            .expect("create");
        env.rs.kill("app", &token).await.expect("kill");
    }
    let mut con = raw(&env);
    let bytes: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("rs:app:_events")
        .arg("SAMPLES")
        .arg(0)
        .query(&mut con)
        .expect("MEMORY USAGE");
    let per_event = bytes as f64 / 20_000.0;
    eprintln!("MEMORY USAGE of 20000 events (10000 created + 10000 ended): {bytes} bytes, {per_event:.1} bytes per event");
    assert!(per_event < 200.0, "{per_event} bytes per event");
}

/// Without `Options::events` no stream key is ever written, whatever the calls.
#[tokio::test]
async fn events_off_write_no_stream() {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(
        Options::default()
            .url(server.url())
            .wipe(std::time::Duration::ZERO)
            .clock(clock.clone()),
    )
    .await
    .expect("connect");
    let a = rs
        .create(
            "app",
            "bob",
            "::1",
            CreateOptions::default().ttl(std::time::Duration::from_secs(10)),
        )
        .await
        .expect("create");
    let b = rs
        .create("app", "bob", "::1", CreateOptions::default())
        .await
        .expect("create");
    rs.create("app", "eve", "::1", CreateOptions::default())
        .await
        .expect("create");
    rs.kill_device("app", "bob", &device_handle(&b))
        .await
        .expect("device");
    rs.killsoid("app", "eve").await.expect("killsoid");
    clock.advance(std::time::Duration::from_secs(20));
    rs.sweep().await.expect("sweep");
    rs.create("app", "zed", "::1", CreateOptions::default())
        .await
        .expect("create");
    rs.killall("app").await.expect("killall");
    let _ = a;
    let keys = server.strings(&["KEYS", "*_events"]).expect("KEYS");
    assert!(keys.is_empty(), "{keys:?}");
    let page = rs
        .events_page("app", &EventsFrom::Start, 10)
        .await
        .expect("page");
    assert!(page.events.is_empty());
    let memory = RedisSessions::in_memory(Options::default().wipe(std::time::Duration::ZERO));
    memory
        .create("app", "bob", "::1", CreateOptions::default())
        .await
        .expect("create");
    let page = memory
        .events_page("app", &EventsFrom::Start, 10)
        .await
        .expect("page");
    assert!(page.events.is_empty());
}
