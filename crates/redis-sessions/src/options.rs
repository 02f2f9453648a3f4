//! Construction options, with the Node module's names and defaults.

use crate::clock::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

/// Shards of the sharded layout by default: divisible by 2, 3, 4, 5 and 6, so that the
/// shards divide evenly among that many masters.
pub const DEFAULT_SHARDS: u16 = 60;

/// How sessions are laid out in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// The Node module's keys, byte for byte: Node and Rust processes share sessions.
    /// For a single Redis server (its multi-key operations span hash slots).
    Node,
    /// Keys divided into `shards` hash-tagged shards, so every call touches one hash slot
    /// and one app spreads over every master of a cluster. Not readable by Node processes.
    Sharded {
        /// How many shards (1..=3721).
        shards: u16,
    },
}

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
    /// Seed nodes (`redis://host:port`) of a Redis Cluster; when given, the store runs on
    /// the cluster (and `url`/`host`/`port` are not used).
    pub cluster: Vec<String>,
    /// Redis Sentinels (`host:port`) that name the master of [`sentinel_master`]; when
    /// given, the store connects to that master, and follows the sentinels to the new one
    /// after a failover, without a restart. `url`'s user, password, database and TLS
    /// (`rediss://`) are used for the master; its host and port are not.
    ///
    /// [`sentinel_master`]: Self::sentinel_master
    pub sentinels: Vec<String>,
    /// The master's name in the sentinels' configuration (`sentinel monitor NAME …`).
    pub sentinel_master: String,
    /// The sentinels' own password (`requirepass` of the sentinels), when they have one.
    pub sentinel_password: Option<String>,
    /// The key layout; by default the Node-compatible one on a single Redis and the
    /// sharded one on a cluster (the Node layout cannot run on a cluster).
    pub key_layout: Option<KeyLayout>,
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
    /// None (default): on in the sharded layout, off in the Node-compatible one.
    pub expire_keys: Option<bool>,
    /// How long a connection attempt may take before the call fails.
    pub connect_timeout: Duration,
    /// How long a call may wait for Redis' answer before it fails.
    pub response_timeout: Duration,
    /// Send soid, soapp and activity to replicas (Redis Cluster only; ignored on one
    /// Redis). They then may miss the writes of the last moments (replication lag, usually
    /// below a millisecond), and take their load off the masters. Off by default. Writes,
    /// get, and the reads that come before a write always go to the masters.
    pub read_from_replicas: bool,
    /// Durable writes (off by default): create, set, kill, killsoid and killall answer
    /// success only once this many replicas confirmed the write (Redis `WAIT`), else
    /// [`Error::NotReplicated`](crate::Error::NotReplicated). One Redis server (or a
    /// Sentinel-managed master) only; a cluster refuses it at connect.
    pub min_replicas: Option<MinReplicas>,
    /// The source of "now"; tests use a [`ManualClock`](crate::ManualClock).
    pub clock: Arc<dyn Clock>,
}

/// How many replicas must confirm a write before it is acknowledged, and how long to wait
/// for them: what makes an acknowledged session survive the loss of the master (a
/// replica promoted by Sentinel has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinReplicas {
    /// Replicas that must have the write (at least 1).
    pub replicas: u32,
    /// Longest wait for them; past it the call fails with
    /// [`Error::NotReplicated`](crate::Error::NotReplicated) (the write may still exist).
    pub timeout: Duration,
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
            expire_keys: None,
            cluster: Vec::new(),
            sentinels: Vec::new(),
            sentinel_master: "mymaster".into(),
            sentinel_password: None,
            key_layout: None,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            read_from_replicas: false,
            min_replicas: None,
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
        self.expire_keys = Some(on);
        self
    }
    /// Runs on a Redis Cluster reached through these seed nodes.
    pub fn cluster<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.cluster = nodes.into_iter().map(Into::into).collect();
        self
    }
    /// Finds the master of `master` through these sentinels (`host:port`) and follows it
    /// across failovers (see the field's docs).
    pub fn sentinel<S: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        self.sentinels = sentinels.into_iter().map(Into::into).collect();
        self.sentinel_master = master.into();
        self
    }
    /// Sets the sentinels' own password.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }
    /// Sends soid, soapp and activity to replicas (see the field's docs).
    pub fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }
    /// Turns durable writes on: writes are acknowledged only once `replicas` replicas have
    /// them, waiting at most `timeout` (see [`MinReplicas`]). `replicas` 0 turns them off.
    pub fn min_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.min_replicas = (replicas > 0).then_some(MinReplicas { replicas, timeout });
        self
    }
    /// Chooses the key layout.
    pub fn key_layout(mut self, layout: KeyLayout) -> Self {
        self.key_layout = Some(layout);
        self
    }

    /// The key layout in force.
    pub(crate) fn layout(&self) -> crate::layout::Layout {
        let chosen = self.key_layout.unwrap_or(if self.cluster.is_empty() {
            KeyLayout::Node
        } else {
            KeyLayout::Sharded {
                shards: DEFAULT_SHARDS,
            }
        });
        match chosen {
            KeyLayout::Node => crate::layout::Layout::node(&self.namespace),
            KeyLayout::Sharded { shards } => {
                crate::layout::Layout::cluster(&self.namespace, shards)
            }
        }
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

    /// Where a single-server store connects: the master the sentinels name, when
    /// sentinels are given, else the server of `url` or `host` and `port`.
    pub(crate) fn redis_target(&self) -> redis::RedisResult<crate::redis_store::Target> {
        if self.sentinels.is_empty() {
            return Ok(crate::redis_store::Target::Server(Box::new(
                self.redis_client()?,
            )));
        }
        let auth = match &self.url {
            Some(url) => Some(redis::IntoConnectionInfo::into_connection_info(
                url.as_str(),
            )?),
            None => None,
        };
        crate::redis_store::Target::sentinel(
            &self.sentinels,
            &self.sentinel_master,
            auth.as_ref(),
            self.sentinel_password.as_deref(),
        )
    }

    /// The Redis connection info from `url`, or else from `host` and `port`.
    pub(crate) fn redis_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.url {
            Some(url) => redis::Client::open(url.as_str()),
            None => redis::Client::open((self.host.as_str(), self.port)),
        }
    }
}
