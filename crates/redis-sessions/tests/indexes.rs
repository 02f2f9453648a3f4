//! How reads move the indexes, seen in Redis itself: in the Node layout every index on
//! every read in a later second (a Node process sweeps by `SESSIONS` without looking at the
//! hash), in the sharded layout `SESSIONS` only by the sweep, which re-checks the hash.

mod common;

use redis::Commands;
use redis_sessions::{CreateOptions, KeyLayout, ManualClock, RedisSessions};
use std::time::Duration;
use test_support::RedisServer;

const APP: &str = "idxapp";

fn score(con: &mut redis::Connection, key: &str, member: &str) -> Option<i64> {
    let score: Option<f64> = con.zscore(key, member).expect("ZSCORE");
    score.map(|s| s as i64)
}

fn la(con: &mut redis::Connection, hash: &str) -> i64 {
    let la: String = con.hget(hash, "la").expect("HGET la");
    la.parse().expect("la is a number")
}

/// A store of `layout` on a fresh server with a manual clock, one session of "u1" with ttl
/// 100 in it (its token), and a raw connection for the assertions.
struct Setup {
    rs: RedisSessions,
    clock: ManualClock,
    token: String,
    con: redis::Connection,
    _server: RedisServer,
}

async fn setup(layout: KeyLayout) -> Setup {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let rs = RedisSessions::connect(common::options(&server, &clock).key_layout(layout))
        .await
        .expect("connect");
    let token = rs
        .create(
            APP,
            "u1",
            "1",
            CreateOptions::default().ttl(Duration::from_secs(100)),
        )
        .await
        .expect("create");
    let con = redis::Client::open(server.url())
        .and_then(|c| c.get_connection())
        .expect("raw");
    Setup {
        rs,
        clock,
        token,
        con,
        _server: server,
    }
}

#[tokio::test]
async fn node_layout_moves_every_index_on_each_later_second() {
    let mut t = setup(KeyLayout::Node).await;
    let (rs, clock, token) = (&t.rs, &t.clock, t.token.clone());
    let con = &mut t.con;
    let hash = format!("rs:{APP}:{token}");
    let (sessions, users, expiries) = (
        format!("rs:{APP}:_sessions"),
        format!("rs:{APP}:_users"),
        "rs:SESSIONS".to_owned(),
    );
    let (member, expiry) = (format!("{token}:u1"), format!("{APP}:{token}:u1"));
    let t0 = la(con, &hash);
    let indexes = |con: &mut redis::Connection| {
        (
            score(con, &sessions, &member),
            score(con, &users, "u1"),
            score(con, &expiries, &expiry),
        )
    };

    // Idle 1: the indexes move, `la` does not (as in the Node module); twice in that
    // second counts two reads and moves nothing more.
    clock.advance(Duration::from_secs(1));
    for r in [1, 2] {
        let s = rs.get(APP, &token).await.expect("get").expect("live");
        assert_eq!((s.r, s.idle), (r, 1));
        assert_eq!(la(con, &hash), t0);
        assert_eq!(indexes(con), (Some(t0 + 1), Some(t0 + 1), Some(t0 + 101)));
    }
    // Idle > 1: `la` and every index move.
    clock.advance(Duration::from_secs(4));
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    assert_eq!(la(con, &hash), t0 + 5);
    assert_eq!(indexes(con), (Some(t0 + 5), Some(t0 + 5), Some(t0 + 105)));
    // A set moves them as a get does.
    clock.advance(Duration::from_secs(3));
    assert!(rs
        .set(APP, &token, &serde_json::json!({"a": 1}))
        .await
        .expect("set")
        .is_some());
    assert_eq!(indexes(con), (Some(t0 + 8), Some(t0 + 8), Some(t0 + 108)));
}

#[tokio::test]
async fn sharded_layout_leaves_the_expiry_index_to_the_sweep() {
    let mut t = setup(KeyLayout::Sharded { shards: 1 }).await;
    let (rs, clock, token) = (&t.rs, &t.clock, t.token.clone());
    let con = &mut t.con;
    let keys: Vec<String> = con.keys("rs:*SESSIONS").expect("KEYS");
    let expiries = keys.first().expect("the shard's SESSIONS").clone();
    let prefix = expiries.trim_end_matches("SESSIONS").to_owned();
    let hash = format!("{prefix}{APP}:{token}");
    let sessions = format!("{prefix}{APP}:_sessions");
    let expiry = format!("{APP}:{token}:u1");
    let t0 = la(con, &hash);
    assert_eq!(score(con, &expiries, &expiry), Some(t0 + 100));

    // A read in a later second moves `la` and `_sessions`, not SESSIONS.
    clock.advance(Duration::from_secs(50));
    assert!(rs.get(APP, &token).await.expect("get").is_some());
    assert_eq!(la(con, &hash), t0 + 50);
    assert_eq!(score(con, &sessions, &format!("{token}:u1")), Some(t0 + 50));
    assert_eq!(score(con, &expiries, &expiry), Some(t0 + 100));

    // Due by the index, alive by its hash: the sweep spares it and moves its member to
    // the second it dies (la + ttl + 1).
    clock.advance(Duration::from_secs(60));
    assert_eq!(rs.sweep().await.expect("sweep"), 0);
    assert_eq!(score(con, &expiries, &expiry), Some(t0 + 151));
    let s = rs.get(APP, &token).await.expect("get").expect("still live");
    assert_eq!(s.idle, 60);

    // Unread since that read (la = t0 + 110): dead at la + ttl + 1, then swept with every
    // index entry.
    clock.advance(Duration::from_secs(101));
    assert!(rs.get(APP, &token).await.expect("get").is_none());
    assert_eq!(rs.sweep().await.expect("sweep"), 1);
    assert_eq!(score(con, &expiries, &expiry), None);
    assert_eq!(score(con, &sessions, &format!("{token}:u1")), None);
    let left: Vec<String> = con.keys(format!("{prefix}*")).expect("KEYS");
    assert!(left.is_empty(), "nothing left of the session: {left:?}");
}
