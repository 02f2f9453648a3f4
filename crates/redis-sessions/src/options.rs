//! Construction options, with the Node module's names and defaults.

use crate::clock::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

/// How to reach Redis and how the store behaves. Start from `Options::default()` and
/// change what you need:
///
/// ```
/// let options = redis_sessions::Options::default()
///     .url("redis://:secret@127.0.0.1:6379/0")
///     .namespace("rs")
///     .wipe(600);
/// assert_eq!(options.namespace, "rs");
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    /// A `redis://` (or, with the `tls` feature, `rediss://`) URL; when set it wins over
    /// `host` and `port`, and carries the password and database.
    pub url: Option<String>,
    /// Redis host, default `127.0.0.1`.
    pub host: String,
    /// Redis port, default 6379.
    pub port: u16,
    /// Prefix of every key, default `rs`; Node and Rust processes that share sessions use
    /// the same one.
    pub namespace: String,
    /// Seconds between sweeps of expired sessions; 0 disables, 1..9 become 10. Default 600.
    pub wipe: u64,
    /// Seconds a `get` reply may be served from the in-process cache; 0 (default) = no cache.
    pub cachetime: u64,
    /// Most sessions held in the cache, default 5000.
    pub cachemax: u64,
    /// Give each session hash a Redis key TTL at its end of life, so Redis frees dead
    /// sessions even when no process sweeps. Off by default in the Node-compatible layout:
    /// a Node process refreshes a session without refreshing that TTL, so in a fleet that
    /// mixes Node and Rust, Redis would delete sessions still in use. Turn it on when no
    /// Node process shares the namespace.
    pub expire_keys: bool,
    /// How long a connection attempt may take before the call fails.
    pub connect_timeout: Duration,
    /// How long a call may wait for Redis' answer before it fails.
    pub response_timeout: Duration,
    /// The source of "now"; tests use a [`ManualClock`](crate::ManualClock).
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            host: "127.0.0.1".into(),
            port: 6379,
            namespace: "rs".into(),
            wipe: 600,
            cachetime: 0,
            cachemax: 5000,
            expire_keys: false,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    /// Sets the Redis URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
    /// Sets host and port.
    pub fn host_port(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = host.into();
        self.port = port;
        self
    }
    /// Sets the key namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
    /// Sets the sweep interval in seconds (0 = no sweep).
    pub fn wipe(mut self, seconds: u64) -> Self {
        self.wipe = seconds;
        self
    }
    /// Turns the in-process cache on for `seconds`, holding at most `max` sessions.
    pub fn cache(mut self, seconds: u64, max: u64) -> Self {
        self.cachetime = seconds;
        self.cachemax = max;
        self
    }
    /// Sets whether session hashes get a key TTL (see the field's docs).
    pub fn expire_keys(mut self, on: bool) -> Self {
        self.expire_keys = on;
        self
    }
    /// Sets the clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The sweep interval after the Node module's rules, or None when sweeping is off.
    pub fn wipe_interval(&self) -> Option<Duration> {
        match self.wipe {
            0 => None,
            w => Some(Duration::from_secs(w.max(10))),
        }
    }

    /// The Redis connection info from `url`, or else from `host` and `port`.
    pub(crate) fn redis_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.url {
            Some(url) => redis::Client::open(url.as_str()),
            None => redis::Client::open((self.host.as_str(), self.port)),
        }
    }
}
