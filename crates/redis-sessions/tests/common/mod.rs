//! Shared set-up of the integration tests: a store on a fresh redis-server (or in memory)
//! with a manual clock, and a check that Redis holds no orphan keys or index entries.
#![allow(dead_code)]

use redis::Commands;
use redis_sessions::{ManualClock, Options, RedisSessions};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use test_support::RedisServer;

pub const NS: &str = "rs";

/// A store under test, its clock, and (for the Redis store) its server.
pub struct Env {
    pub rs: RedisSessions,
    pub clock: ManualClock,
    pub server: Option<RedisServer>,
}

impl Env {
    pub async fn redis() -> Env {
        let server = RedisServer::start();
        let clock = ManualClock::starting_now();
        let rs = RedisSessions::connect(options(&server, &clock))
            .await
            .expect("connect");
        Env {
            rs,
            clock,
            server: Some(server),
        }
    }

    /// A store in the sharded layout on a 3-master cluster shared by the tests of this
    /// binary; each store gets a namespace of its own.
    pub async fn cluster() -> Env {
        static CLUSTER: std::sync::OnceLock<test_support::cluster::RedisCluster> =
            std::sync::OnceLock::new();
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let cluster = CLUSTER.get_or_init(|| test_support::cluster::RedisCluster::start(3, 0));
        let ns = format!(
            "c{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let clock = ManualClock::starting_now();
        let rs = RedisSessions::connect(
            Options::default()
                .cluster(cluster.urls())
                .namespace(ns)
                .wipe(Duration::ZERO)
                .clock(clock.clone()),
        )
        .await
        .expect("connect to the cluster");
        Env {
            rs,
            clock,
            server: None,
        }
    }

    pub fn memory() -> Env {
        let clock = ManualClock::starting_now();
        let rs =
            RedisSessions::in_memory(Options::default().wipe(Duration::ZERO).clock(clock.clone()));
        Env {
            rs,
            clock,
            server: None,
        }
    }

    /// A second store on the same Redis (another "process" of the fleet).
    pub async fn another_store(&self) -> RedisSessions {
        let server = self.server.as_ref().expect("redis env");
        RedisSessions::connect(options(server, &self.clock))
            .await
            .expect("connect")
    }

    /// A plain synchronous Redis connection for assertions on the raw data.
    pub fn raw(&self) -> Option<redis::Connection> {
        let server = self.server.as_ref()?;
        let client = redis::Client::open(server.url()).ok()?;
        client.get_connection().ok()
    }

    /// Asserts that the indexes and the hashes agree (Redis store only).
    pub fn assert_consistent(&self) {
        if let Some(mut con) = self.raw() {
            assert_consistent(&mut con, NS);
        }
    }
}

pub fn options(server: &RedisServer, clock: &ManualClock) -> Options {
    Options::default()
        .url(server.url())
        .wipe(Duration::ZERO)
        .clock(clock.clone())
}

/// Every hash has exactly its index entries and every index entry its hash: no orphans.
pub fn assert_consistent(con: &mut redis::Connection, ns: &str) {
    let keys: Vec<String> = con.keys(format!("{ns}:*")).expect("KEYS");
    let mut hashes = BTreeMap::new(); // (app, token) -> id
    let mut apps = BTreeSet::new();
    for key in &keys {
        let rest = &key[ns.len() + 1..];
        if rest == "SESSIONS"
            || rest == "SESSIONS:sweeper"
            || rest == "{layout}"
            || rest == "{wiped}"
        {
            continue;
        }
        let (app, tail) = rest.split_once(':').expect("app key");
        apps.insert(app.to_owned());
        if tail.len() == 64 && !tail.contains(':') {
            let id: String = con.hget(key, "id").expect("HGET id");
            hashes.insert((app.to_owned(), tail.to_owned()), id);
        }
    }
    let expiries: BTreeSet<String> = con
        .zrange::<_, Vec<String>>(format!("{ns}:SESSIONS"), 0, -1)
        .expect("SESSIONS")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = hashes
        .iter()
        .map(|((app, token), id)| format!("{app}:{token}:{id}"))
        .collect();
    assert_eq!(expiries, expected, "SESSIONS disagrees with the hashes");
    for app in &apps {
        let members: BTreeSet<String> = con
            .zrange::<_, Vec<String>>(format!("{ns}:{app}:_sessions"), 0, -1)
            .expect("_sessions")
            .into_iter()
            .collect();
        let expected: BTreeSet<String> = hashes
            .iter()
            .filter(|((a, _), _)| a == app)
            .map(|((_, token), id)| format!("{token}:{id}"))
            .collect();
        assert_eq!(
            members, expected,
            "{app}:_sessions disagrees with the hashes"
        );
        let users: BTreeSet<String> = con
            .zrange::<_, Vec<String>>(format!("{ns}:{app}:_users"), 0, -1)
            .expect("_users")
            .into_iter()
            .collect();
        let ids: BTreeSet<String> = hashes
            .iter()
            .filter(|((a, _), _)| a == app)
            .map(|(_, id)| id.clone())
            .collect();
        assert_eq!(users, ids, "{app}:_users disagrees with the hashes");
        for id in &ids {
            let tokens: BTreeSet<String> = con
                .smembers::<_, Vec<String>>(format!("{ns}:{app}:us:{id}"))
                .expect("us")
                .into_iter()
                .collect();
            let expected: BTreeSet<String> = hashes
                .iter()
                .filter(|((a, _), i)| a == app && *i == id)
                .map(|((_, t), _)| t.clone())
                .collect();
            assert_eq!(tokens, expected, "{app}:us:{id} disagrees with the hashes");
        }
        let us_keys: Vec<String> = con.keys(format!("{ns}:{app}:us:*")).expect("KEYS us");
        assert_eq!(us_keys.len(), ids.len(), "orphan us: sets in {app}");
    }
}

/// Runs one async behaviour test against both stores.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn redis() {
                    let env = $crate::common::Env::redis().await;
                    super::$name(&env).await;
                    env.assert_consistent();
                }
                #[tokio::test]
                async fn cluster() {
                    let env = $crate::common::Env::cluster().await;
                    super::$name(&env).await;
                }
                #[tokio::test]
                async fn memory() {
                    let env = $crate::common::Env::memory();
                    super::$name(&env).await;
                }
            }
        )*
    };
}
