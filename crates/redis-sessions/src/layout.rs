//! Where sessions live in Redis: every key name the store uses is made here.
//!
//! The default layout is the Node module's, byte for byte, so that Node and Rust processes
//! pointed at the same Redis and namespace share sessions:
//!
//! | key | type | content |
//! |---|---|---|
//! | `{ns}:{app}:{token}` | hash | `id r w ip la ttl d no_resave` |
//! | `{ns}:{app}:_sessions` | zset | `{token}:{id}` by last activity |
//! | `{ns}:{app}:us:{id}` | set | the tokens of one id |
//! | `{ns}:{app}:_users` | zset | `{id}` by last activity |
//! | `{ns}:SESSIONS` | zset | `{app}:{token}:{id}` by time of death |
//!
//! Keeping every name in one place lets a second layout (for Redis Cluster) be added
//! without touching the operations.

/// The key names of one namespace.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `{ns}:`
    prefix: String,
}

impl Layout {
    /// The Node-compatible layout under namespace `ns`.
    pub fn node(namespace: &str) -> Self {
        Layout {
            prefix: format!("{namespace}:"),
        }
    }

    /// `{ns}:{app}:` — prefix of an app's session hashes.
    pub fn app_prefix(&self, app: &str) -> String {
        format!("{}{app}:", self.prefix)
    }

    /// `{ns}:{app}:{token}`
    pub fn session(&self, app: &str, token: &str) -> String {
        format!("{}{app}:{token}", self.prefix)
    }

    /// `{ns}:{app}:_sessions`
    pub fn app_sessions(&self, app: &str) -> String {
        format!("{}{app}:_sessions", self.prefix)
    }

    /// `{ns}:{app}:_users`
    pub fn app_users(&self, app: &str) -> String {
        format!("{}{app}:_users", self.prefix)
    }

    /// `{ns}:{app}:us:` — prefix of the per-id token sets.
    pub fn user_sessions_prefix(&self, app: &str) -> String {
        format!("{}{app}:us:", self.prefix)
    }

    /// `{ns}:{app}:us:{id}`
    pub fn user_sessions(&self, app: &str, id: &str) -> String {
        format!("{}{app}:us:{id}", self.prefix)
    }

    /// `{ns}:SESSIONS` — every session of every app, by time of death.
    pub fn expiries(&self) -> String {
        format!("{}SESSIONS", self.prefix)
    }

    /// `{ns}:` — scripts that walk `SESSIONS` rebuild per-app keys from it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{ns}:cache` — the pub/sub channel of cache invalidations.
    pub fn cache_channel(&self) -> String {
        format!("{}cache", self.prefix)
    }

    /// `{ns}:SESSIONS:sweeper` — a short lease so that one process of a fleet sweeps at a time.
    /// Not part of the Node layout; Node processes never read it.
    pub fn sweep_lease(&self) -> String {
        format!("{}SESSIONS:sweeper", self.prefix)
    }

    /// `{token}:{id}` — member of `_sessions`.
    pub fn session_member(token: &str, id: &str) -> String {
        format!("{token}:{id}")
    }

    /// `{app}:{token}:{id}` — member of `SESSIONS`.
    pub fn expiry_member(app: &str, token: &str, id: &str) -> String {
        format!("{app}:{token}:{id}")
    }

    /// `{app}:{token}` — cache key and invalidation message.
    pub fn cache_message(app: &str, token: &str) -> String {
        format!("{app}:{token}")
    }
}
