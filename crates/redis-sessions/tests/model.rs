//! Property test: random sequences of operations, checked against a simple model of the
//! contract (docs/spec/redis-sessions.md#operations), on Redis and on the embedded store; after each sequence Redis must hold no
//! orphan keys or index entries.

mod common;

use proptest::prelude::*;
use redis_sessions::{Clock, CreateOptions, ManualClock, Options, RedisSessions};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;
use test_support::RedisServer;

const APP: &str = "propapp";
const USERS: [&str; 4] = ["alice", "b:o:b", "김", "carol@x.org"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: usize,
        ttl: i64,
    },
    Get(usize),
    Set {
        session: usize,
        key: usize,
        value: Option<i64>,
    },
    Kill(usize),
    KillSoid(usize),
    KillAll,
    Advance(i64),
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS.len(), prop_oneof![Just(10i64), Just(30), Just(7200)])
            .prop_map(|(user, ttl)| Op::Create { user, ttl }),
        3 => (0..8usize).prop_map(Op::Get),
        3 => (0..8usize, 0..3usize, proptest::option::of(-5i64..5))
            .prop_map(|(session, key, value)| Op::Set { session, key, value }),
        1 => (0..8usize).prop_map(Op::Kill),
        1 => (0..USERS.len()).prop_map(Op::KillSoid),
        1 => Just(Op::KillAll),
        2 => prop_oneof![Just(0i64), Just(1), Just(2), Just(9), Just(25)].prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

/// The model's view of one session.
#[derive(Debug, Clone)]
struct M {
    id: String,
    r: u64,
    w: u64,
    ttl: i64,
    la: i64,
    /// Time of death as in SESSIONS.
    dies: i64,
    d: Map<String, Value>,
}

impl M {
    fn live(&self, now: i64) -> bool {
        self.ttl >= now - self.la
    }
    fn touch(&mut self, now: i64) {
        let idle = now - self.la;
        if idle > 1 {
            self.la = now;
        }
        if idle > 0 {
            self.dies = now + self.ttl;
        }
    }
}

async fn run(rs: &RedisSessions, clock: &ManualClock, ops: &[Op]) {
    let mut model: BTreeMap<String, M> = BTreeMap::new();
    let mut tokens: Vec<String> = Vec::new();
    // `_users`: an id's latest activity, kept while it has any session.
    let mut users: BTreeMap<String, i64> = BTreeMap::new();
    let pick = |tokens: &Vec<String>, i: usize| tokens.get(i % tokens.len().max(1)).cloned();
    for op in ops {
        let now = clock.now();
        match op {
            Op::Create { user, ttl } => {
                let token = rs
                    .create(
                        APP,
                        USERS[*user],
                        "1.2.3.4",
                        CreateOptions::default().ttl(Duration::from_secs(ttl.unsigned_abs())),
                    )
                    .await
                    .expect("create");
                users.insert(USERS[*user].into(), now);
                model.insert(
                    token.clone(),
                    M {
                        id: USERS[*user].into(),
                        r: 1,
                        w: 1,
                        ttl: *ttl,
                        la: now,
                        dies: now + ttl,
                        d: Map::new(),
                    },
                );
                tokens.push(token);
            }
            Op::Get(i) => {
                let Some(token) = pick(&tokens, *i) else {
                    continue;
                };
                let got = rs.get(APP, &token).await.expect("get");
                match model.get_mut(&token).filter(|m| m.live(now)) {
                    Some(m) => {
                        let s = got.expect("model says live");
                        assert_eq!(
                            (s.id.as_str(), s.r, s.w, s.idle),
                            (m.id.as_str(), m.r, m.w, now - m.la)
                        );
                        assert_eq!(s.d.unwrap_or_default(), m.d);
                        m.r += 1;
                        if now > m.la {
                            users.insert(m.id.clone(), now);
                        }
                        m.touch(now);
                    }
                    None => assert!(got.is_none(), "model says dead or gone"),
                }
            }
            Op::Set {
                session,
                key,
                value,
            } => {
                let Some(token) = pick(&tokens, *session) else {
                    continue;
                };
                let key = format!("k{key}");
                let got = rs
                    .set(APP, &token, &json!({ key.clone(): value }))
                    .await
                    .expect("set");
                match model.get_mut(&token).filter(|m| m.live(now)) {
                    Some(m) => {
                        match value {
                            Some(v) => m.d.insert(key, json!(v)),
                            None => m.d.remove(&key),
                        };
                        m.w += 1;
                        let s = got.expect("model says live");
                        assert_eq!((s.r, s.w), (m.r, m.w));
                        assert_eq!(s.d.unwrap_or_default(), m.d);
                        if now > m.la {
                            users.insert(m.id.clone(), now);
                        }
                        m.touch(now);
                    }
                    None => assert!(got.is_none()),
                }
            }
            Op::Kill(i) => {
                let Some(token) = pick(&tokens, *i) else {
                    continue;
                };
                let killed = rs.kill(APP, &token).await.expect("kill");
                let expected = model.remove(&token).is_some_and(|m| m.live(now));
                assert_eq!(killed, expected);
            }
            Op::KillSoid(user) => {
                let killed = rs.killsoid(APP, USERS[*user]).await.expect("killsoid");
                let before = model.len();
                model.retain(|_, m| m.id != USERS[*user]);
                assert_eq!(killed as usize, before - model.len());
            }
            Op::KillAll => {
                let killed = rs.killall(APP).await.expect("killall");
                assert_eq!(killed as usize, model.len());
                model.clear();
            }
            Op::Advance(seconds) => clock.advance(Duration::from_secs(seconds.unsigned_abs())),
            Op::Sweep => {
                let swept = rs.sweep().await.expect("sweep");
                let before = model.len();
                model.retain(|_, m| m.dies > now);
                assert_eq!(swept as usize, before - model.len());
            }
        }
        users.retain(|id, _| model.values().any(|m| &m.id == id));
        let since = clock.now() - 10;
        let expected = users.values().filter(|&&t| t >= since).count() as u64;
        assert_eq!(
            rs.activity(APP, Duration::from_secs(10))
                .await
                .expect("activity"),
            expected,
            "activity"
        );
    }
}

fn redis_server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn redis_store_follows_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let server = redis_server();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let clock = ManualClock::starting_now();
            let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO).clock(clock.clone()))
                .await
                .expect("connect");
            let _ = server.command(&["FLUSHALL"]);
            run(&rs, &clock, &ops).await;
            let mut con = redis::Client::open(server.url()).and_then(|c| c.get_connection()).expect("raw");
            common::assert_consistent(&mut con, "rs");
        });
    }

    #[test]
    fn memory_store_follows_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let clock = ManualClock::starting_now();
            let rs = RedisSessions::in_memory(Options::default().wipe(Duration::ZERO).clock(clock.clone()));
            run(&rs, &clock, &ops).await;
        });
    }
}
