//! Moving a deployment from one Redis (Node-compatible layout) onto a Redis Cluster
//! (sharded layout) without logging anybody out.
//!
//! Every token carries its creation time (after its `Z`). From a cut-over instant on, new
//! sessions are created in the cluster, while a token created before the cut-over is still
//! served by the old Redis until it expires. Once the longest ttl has passed since the
//! cut-over, the old Redis holds no live session and can be retired: switch to the cluster
//! store alone.
//!
//! ```no_run
//! use redis_sessions::{CreateOptions, Migration, Options, RedisSessions};
//! # async fn demo() -> redis_sessions::Result<()> {
//! let old = RedisSessions::connect(Options::default().url("redis://old-redis:6379/")).await?;
//! let new = RedisSessions::connect(Options::default().cluster(["redis://node1:7000", "redis://node2:7000"])).await?;
//! // The cut-over instant must be the same for every process of the fleet: keep it in
//! // configuration (here: 2026-12-01T00:00:00Z).
//! let sessions = Migration::new(old, new, 1_796_083_200_000);
//! let token = sessions.create("myapp", "user42", "10.0.0.1", CreateOptions::default()).await?;
//! let session = sessions.get("myapp", &token).await?;
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::options::CreateOptions;
use crate::session::Session;
use crate::store::RedisSessions;
use crate::token::token_created_ms;
use serde_json::Value;

/// Two stores during a move: tokens created before `cutover_ms` live in `old`, the rest
/// (and every new session) in `new`.
#[derive(Debug, Clone)]
pub struct Migration {
    old: RedisSessions,
    new: RedisSessions,
    cutover_ms: u64,
}

impl Migration {
    /// Routes by creation time around `cutover_ms` (ms since the epoch).
    #[must_use]
    pub fn new(old: RedisSessions, new: RedisSessions, cutover_ms: u64) -> Self {
        Migration {
            old,
            new,
            cutover_ms,
        }
    }

    /// The store that holds `token`'s session.
    #[must_use]
    pub fn store_for(&self, token: &str) -> &RedisSessions {
        match token_created_ms(token) {
            Some(created) if created < self.cutover_ms => &self.old,
            _ => &self.new,
        }
    }

    /// Creates in the new store.
    pub async fn create(
        &self,
        app: &str,
        id: &str,
        ip: &str,
        options: CreateOptions,
    ) -> Result<String> {
        self.new.create(app, id, ip, options).await
    }

    /// Reads from the store that holds the token.
    pub async fn get(&self, app: &str, token: &str) -> Result<Option<Session>> {
        self.store_for(token).get(app, token).await
    }

    /// Writes to the store that holds the token.
    pub async fn set(&self, app: &str, token: &str, d: &Value) -> Result<Option<Session>> {
        self.store_for(token).set(app, token, d).await
    }

    /// Ends a session in the store that holds it.
    pub async fn kill(&self, app: &str, token: &str) -> Result<bool> {
        self.store_for(token).kill(app, token).await
    }

    /// Logs a user out everywhere: in both stores.
    pub async fn killsoid(&self, app: &str, id: &str) -> Result<u64> {
        Ok(self.old.killsoid(app, id).await? + self.new.killsoid(app, id).await?)
    }

    /// A user's sessions in both stores, most recently active first.
    pub async fn soid(&self, app: &str, id: &str) -> Result<Vec<Session>> {
        let mut all = self.new.soid(app, id).await?;
        all.extend(self.old.soid(app, id).await?);
        all.sort_by_key(|s| s.idle);
        Ok(all)
    }

    /// Ends every session of an app in both stores.
    pub async fn killall(&self, app: &str) -> Result<u64> {
        Ok(self.old.killall(app).await? + self.new.killall(app).await?)
    }
}
