//! `stats`: per app, sessions and users (ZCARD), users and sessions active in the last
//! 5 min / 1 h / 24 h (ZCOUNT on the last-activity indexes), and memory estimated from a
//! sample of session hashes (MEMORY USAGE): a few small commands per app, whatever its size.

use crate::error::Result;
use crate::scan;
use redis::aio::MultiplexedConnection;
use redis_sessions::keys::ShardKeys;
use serde::Serialize;
use std::collections::BTreeSet;

/// The windows of recent activity, in seconds.
pub const WINDOWS: [(&str, i64); 3] = [("5m", 300), ("1h", 3600), ("24h", 86_400)];

/// Session hashes sampled for the memory estimate.
const SAMPLE: usize = 20;

/// One app's figures (of one shard, or summed over every shard).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppStats {
    /// The app.
    pub app: String,
    /// Sessions in `_sessions`.
    pub sessions: u64,
    /// Ids in `_users`.
    pub users: u64,
    /// Sessions active in each window (5m, 1h, 24h).
    pub sessions_active: Vec<u64>,
    /// Users active in each window (5m, 1h, 24h).
    pub users_active: Vec<u64>,
    /// Approximate bytes: sampled hashes scaled to the count, plus the two indexes.
    pub memory_bytes: u64,
}

/// The apps of the shards `shards` of one server: those with a `_sessions` index (one
/// SCAN walk of the server, `namespace_prefix` being what every key of the namespace
/// starts with).
pub async fn apps(
    con: &mut MultiplexedConnection,
    shards: &[ShardKeys],
    namespace_prefix: &str,
) -> Result<BTreeSet<String>> {
    let pattern = format!("{}*:_sessions", scan::glob_escape(namespace_prefix));
    let mut apps = BTreeSet::new();
    let mut cursor = 0;
    loop {
        let (next, keys) = scan::scan_keys(con, cursor, &pattern).await?;
        for key in keys {
            for shard in shards.iter().filter(|s| key.starts_with(s.prefix())) {
                if let scan::KeyKind::AppSessions { app } = scan::classify(shard.prefix(), &key) {
                    apps.insert(app);
                }
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(apps)
}

/// The figures of `app` at `now`.
pub async fn of_app(
    con: &mut MultiplexedConnection,
    shard: &ShardKeys,
    app: &str,
    now: i64,
) -> Result<AppStats> {
    let sessions_key = shard.app_sessions(app);
    let users_key = shard.app_users(app);
    let mut pipe = redis::pipe();
    pipe.zcard(&sessions_key).zcard(&users_key);
    for (_, window) in WINDOWS {
        pipe.zcount(&sessions_key, now - window, "+inf");
    }
    for (_, window) in WINDOWS {
        pipe.zcount(&users_key, now - window, "+inf");
    }
    let counts: Vec<u64> = pipe.query_async(con).await?;
    let sample: Vec<String> = redis::cmd("ZRANDMEMBER")
        .arg(&sessions_key)
        .arg(SAMPLE)
        .query_async(con)
        .await?;
    let mut sampled = 0u64;
    let mut bytes = 0u64;
    for member in &sample {
        let token = member
            .get(..redis_sessions::keys::TOKEN_LEN)
            .unwrap_or(member);
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(shard.session(app, token))
            .query_async(con)
            .await?;
        if let Some(usage) = usage {
            sampled += 1;
            bytes += usage;
        }
    }
    let mut memory = 0u64;
    for key in [&sessions_key, &users_key] {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(5)
            .query_async(con)
            .await?;
        memory += usage.unwrap_or(0);
    }
    let count = |i: usize| counts.get(i).copied().unwrap_or(0);
    if let Some(per_session) = bytes.checked_div(sampled) {
        memory += per_session * count(0);
    }
    Ok(AppStats {
        app: app.to_owned(),
        sessions: count(0),
        users: count(1),
        sessions_active: (2..5).map(count).collect(),
        users_active: (5..8).map(count).collect(),
        memory_bytes: memory,
    })
}

impl AppStats {
    /// Adds `other`'s figures (another shard's of the same app): a user's sessions all
    /// live in one shard, so the sums of users are exact too.
    pub fn add(&mut self, other: &AppStats) {
        self.sessions += other.sessions;
        self.users += other.users;
        for (mine, theirs) in [
            (&mut self.sessions_active, &other.sessions_active),
            (&mut self.users_active, &other.users_active),
        ] {
            mine.resize(theirs.len().max(mine.len()), 0);
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.memory_bytes += other.memory_bytes;
    }
}
