//! Construction options, with the Node module's names and defaults.

use crate::clock::{Clock, SystemClock};
use std::sync::Arc;
use std::time::Duration;

/// Shards of the sharded layout by default: divisible by 2, 3, 4, 5 and 6, so that the
/// shards divide evenly among that many masters.
pub const DEFAULT_SHARDS: u16 = 60;

/// Events retained per stream by default (`MAXLEN ~`): about 100 bytes each (see the
/// README's memory figures), so about 10 MB per app and shard at most.
pub const DEFAULT_MAX_EVENTS: u64 = 100_000;

/// How lifecycle events are kept: what [`Options::events`](crate::Options::events) takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventOptions {
    /// Events kept per stream, about (`XADD … MAXLEN ~ n`: Redis trims whole stream nodes,
    /// which costs almost nothing per write, so a stream holds up to a node more).
    pub max_len: u64,
    /// Events older than this are dropped too, about (`XTRIM … MINID ~`, whole nodes
    /// again): retention by age beside retention by count. None: by count only.
    pub max_age: Option<Duration>,
}

impl EventOptions {
    /// Keep about `max_len` events per stream (at least 1), whatever their age.
    #[must_use]
    pub fn max_len(max_len: u64) -> Self {
        EventOptions {
            max_len: max_len.max(1),
            max_age: None,
        }
    }

    /// Also drop events older than `max_age` (at least 1 ms): an audit trail kept for,
    /// say, 30 days however busy the app. Each event then costs Redis one XTRIM more.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.max(Duration::from_millis(1)));
        self
    }

    /// `max_age` in ms, or 0 when events are kept by count only.
    pub(crate) fn max_age_ms(&self) -> u64 {
        self.max_age
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Default for EventOptions {
    fn default() -> Self {
        Self::max_len(DEFAULT_MAX_EVENTS)
    }
}

/// How sessions are laid out in Redis. Non-exhaustive: a later release may add a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
/// change what you need with its setters (the fields are private, so that a new option is
/// not a breaking change):
///
/// ```
/// use std::time::Duration;
/// let options = redis_sessions::Options::default()
///     .url("redis://:secret@127.0.0.1:6379/0")
///     .namespace("rs")
///     .wipe(Duration::from_secs(600))
///     .response_timeout(Duration::from_millis(500));
/// assert_eq!(options.get_host_port(), ("127.0.0.1", 6379), "the URL, when given, wins");
/// ```
#[derive(Clone)]
#[non_exhaustive]
#[must_use]
pub struct Options {
    /// A `redis://` (or, with the `tls` feature, `rediss://`) URL; when set it wins over
    /// `host` and `port`, and carries the password and database.
    pub(crate) url: Option<String>,
    /// Redis host, default `127.0.0.1`.
    pub(crate) host: String,
    /// Redis port, default 6379.
    pub(crate) port: u16,
    /// Seed nodes (`redis://host:port`) of a Redis Cluster; when given, the store runs on
    /// the cluster (and `url`/`host`/`port` are not used).
    pub(crate) cluster: Vec<String>,
    /// Redis Sentinels (`host:port`) that name the master of [`sentinel_master`]; when
    /// given, the store connects to that master, and follows the sentinels to the new one
    /// after a failover, without a restart. `url`'s user, password, database and TLS
    /// (`rediss://`) are used for the master; its host and port are not.
    ///
    /// [`sentinel_master`]: Self::sentinel_master
    pub(crate) sentinels: Vec<String>,
    /// The master's name in the sentinels' configuration (`sentinel monitor NAME …`).
    pub(crate) sentinel_master: String,
    /// The sentinels' own password (`requirepass` of the sentinels), when they have one.
    pub(crate) sentinel_password: Option<String>,
    /// The key layout; by default the Node-compatible one on a single Redis and the
    /// sharded one on a cluster (the Node layout cannot run on a cluster).
    pub(crate) key_layout: Option<KeyLayout>,
    /// Prefix of every key, default `rs`; Node and Rust processes that share sessions use
    /// the same one.
    pub(crate) namespace: String,
    /// Time between sweeps of expired sessions; zero disables, less than 10 s becomes
    /// 10 s. Default 600 s.
    pub(crate) wipe: Duration,
    /// How long a `get` reply may be served from the in-process cache; zero (default) = no
    /// cache.
    pub(crate) cachetime: Duration,
    /// Most sessions held in the cache, default 5000.
    pub(crate) cachemax: u64,
    /// Give each session hash a Redis key TTL at its end of life, so Redis frees dead
    /// sessions even when no process sweeps. Off by default in the Node-compatible layout:
    /// a Node process refreshes a session without refreshing that TTL, so in a fleet that
    /// mixes Node and Rust, Redis would delete sessions still in use. Turn it on when no
    /// Node process shares the namespace.
    /// None (default): on in the sharded layout, off in the Node-compatible one.
    pub(crate) expire_keys: Option<bool>,
    /// How long a connection attempt may take before the call fails.
    pub(crate) connect_timeout: Duration,
    /// How long a call may wait for Redis' answer before it fails.
    pub(crate) response_timeout: Duration,
    /// Send soid, soapp and activity to replicas (Redis Cluster only; ignored on one
    /// Redis). They then may miss the writes of the last moments (replication lag, usually
    /// below a millisecond), and take their load off the masters. Off by default. Writes,
    /// get, and the reads that come before a write always go to the masters.
    pub(crate) read_from_replicas: bool,
    /// Durable writes (off by default): create, set, kill, killsoid and killall answer
    /// success only once this many replicas confirmed the write (Redis `WAIT`), else
    /// [`Error::NotReplicated`](crate::Error::NotReplicated). On a cluster the WAIT runs
    /// on the master that ran the write (see CLUSTER.md: durable writes).
    pub(crate) min_replicas: Option<MinReplicas>,
    /// Refuse writes once the namespace's data vanished from the master, until an
    /// operator acknowledges (one Redis server or Sentinel).
    pub(crate) refuse_writes_after_wipe: bool,
    /// The source of "now"; tests use a [`ManualClock`](crate::ManualClock).
    pub(crate) clock: Arc<dyn Clock>,
    /// Session lifecycle events (see events.rs), off by default.
    pub(crate) events: Option<EventOptions>,
}

/// Written by hand so that no password reaches a log that prints the options: URLs
/// lose their user info, the sentinels' password shows as redacted.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cluster: Vec<String> = self.cluster.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("Options")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("cluster", &cluster)
            .field("sentinels", &self.sentinels)
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("key_layout", &self.key_layout)
            .field("namespace", &self.namespace)
            .field("wipe", &self.wipe)
            .field("cachetime", &self.cachetime)
            .field("cachemax", &self.cachemax)
            .field("expire_keys", &self.expire_keys)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("read_from_replicas", &self.read_from_replicas)
            .field("min_replicas", &self.min_replicas)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// A Redis URL without its user info (`redis://:secret@host/0` → `redis://<redacted>@host/0`).
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The whole seconds of `d`, as the contract counts ttls and time windows (a fraction
/// dropped; past `i64::MAX` seconds, `i64::MAX`): the one place a Rust `Duration` becomes
/// the seconds the session hash and the Node module use.
pub(crate) fn whole_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// How many replicas must confirm a write before it is acknowledged, and how long to wait
/// for them: what makes an acknowledged session survive the loss of the master — as long
/// as the replica promoted has it. Sentinel may promote any replica it lists, so only a
/// count that covers every one of them ([`MinReplicas::all`]) makes that sure: with two
/// replicas and `n = 1`, the one on the master's side of a partition confirms the writes
/// and the other is promoted (measured: hundreds of acknowledged writes lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinReplicas {
    /// Replicas that must have the write (at least 1); with `all`, the least (see
    /// [`MinReplicas::all`]).
    pub replicas: u32,
    /// Every replica Sentinel could promote (those it lists for the master with a
    /// priority above 0, up or down), asked again after each failover and every few
    /// seconds; on a Redis Cluster, every replica of the master that ran the write as
    /// `CLUSTER NODES` lists it (up or down, but not `nofailover`), read every second;
    /// without either, the replicas the master reports connected at start. At least 1.
    pub all: bool,
    /// Longest wait for them; past it the call fails with
    /// [`Error::NotReplicated`](crate::Error::NotReplicated) (the write may still exist).
    pub timeout: Duration,
}

impl MinReplicas {
    /// `replicas` replicas within `timeout`; what [`Options::min_replicas`] sets.
    #[must_use]
    pub fn new(replicas: u32, timeout: Duration) -> Self {
        MinReplicas {
            replicas,
            all: false,
            timeout,
        }
    }

    /// Every replica Sentinel could promote, within `timeout` (REST: `RS_MIN_REPLICAS=all`).
    /// Sentinel's list rather than the replicas the master reports: a master drops a
    /// replica from its report once the link has been down for `repl-timeout` (60 s by
    /// default), and in a longer partition it would then acknowledge writes that the
    /// replica about to be promoted on the other side never got. A replica Sentinel lists
    /// but that is gone for good makes every durable write fail until an operator runs
    /// `SENTINEL RESET` — the price of writes that survive any promotion. On a cluster
    /// the same holds of a replica gone for good until it is removed with
    /// `CLUSTER FORGET` (`redis-cli --cluster del-node`).
    #[must_use]
    pub fn all(timeout: Duration) -> Self {
        MinReplicas {
            replicas: 1,
            all: true,
            timeout,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: None,
            host: "127.0.0.1".into(),
            port: 6379,
            namespace: "rs".into(),
            wipe: Duration::from_secs(600),
            cachetime: Duration::ZERO,
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
            refuse_writes_after_wipe: false,
            clock: Arc::new(SystemClock),
            events: None,
        }
    }
}

impl Options {
    /// Sets the Redis URL: `redis://` (or, with the `tls` feature, `rediss://`); it wins
    /// over host and port, and carries the password and database.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
    /// Sets the Redis host and port (default `127.0.0.1:6379`), when no URL is given.
    pub fn host_port(mut self, host: impl Into<String>, port: u16) -> Self {
        self.host = host.into();
        self.port = port;
        self
    }
    /// Sets the prefix of every key (default `rs`); Node and Rust processes that share
    /// sessions use the same one.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }
    /// Sets the time between sweeps of expired sessions (default 600 s); zero disables,
    /// less than 10 s becomes 10 s, as in the Node module (whose `wipe` is in seconds).
    pub fn wipe(mut self, every: Duration) -> Self {
        self.wipe = every;
        self
    }
    /// Turns the in-process cache on: a `get` reply may be served for `ttl`, at most
    /// `max` sessions held (default: off, a zero `ttl`; 5000 sessions).
    pub fn cache(mut self, ttl: Duration, max: u64) -> Self {
        self.cachetime = ttl;
        self.cachemax = max;
        self
    }
    /// Gives each session hash a Redis key TTL at its end of life, so Redis frees dead
    /// sessions even when no process sweeps. By default on in the sharded layout, off in
    /// the Node-compatible one: a Node process refreshes a session without refreshing that
    /// TTL, so in a fleet that mixes Node and Rust, Redis would delete sessions still in
    /// use. Turn it on when no Node process shares the namespace.
    pub fn expire_keys(mut self, on: bool) -> Self {
        self.expire_keys = Some(on);
        self
    }
    /// Runs on a Redis Cluster reached through these seed nodes (`redis://host:port`);
    /// url, host and port are then not used.
    pub fn cluster<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.cluster = nodes.into_iter().map(Into::into).collect();
        self
    }
    /// Finds the master named `master` (`sentinel monitor NAME …`) through these
    /// sentinels (`host:port`), and follows the sentinels to the new one after a failover,
    /// without a restart. The URL's user, password, database and TLS (`rediss://`) are used
    /// for the master; its host and port are not.
    pub fn sentinel<S: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        self.sentinels = sentinels.into_iter().map(Into::into).collect();
        self.sentinel_master = master.into();
        self
    }
    /// Sets the sentinels' own password (`requirepass` of the sentinels), when they have one.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> Self {
        self.sentinel_password = Some(password.into());
        self
    }
    /// Sends soid, soapp and activity to replicas (Redis Cluster only; ignored on one
    /// Redis). They then may miss the writes of the last moments (replication lag, usually
    /// below a millisecond), and take their load off the masters. Off by default. Writes,
    /// get, and the reads that come before a write always go to the masters.
    pub fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }
    /// Turns durable writes on: create, set, kill, killsoid and killall succeed only once
    /// `replicas` replicas confirmed the write (Redis `WAIT`), waiting at most `timeout`,
    /// else [`Error::NotReplicated`](crate::Error::NotReplicated) (see [`MinReplicas`]).
    /// On a cluster, the replicas of the master that ran the write (see CLUSTER.md).
    /// `replicas` 0 turns them off (the default).
    pub fn min_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.min_replicas = (replicas > 0).then_some(MinReplicas::new(replicas, timeout));
        self
    }
    /// Durable writes that every replica that could be promoted confirmed (Sentinel's, or
    /// on a cluster the writing master's; see [`MinReplicas::all`]), waiting at most
    /// `timeout`.
    pub fn min_replicas_all(mut self, timeout: Duration) -> Self {
        self.min_replicas = Some(MinReplicas::all(timeout));
        self
    }
    /// After the namespace's data vanished from the master (a master restarted in place
    /// without persistence: its replicas resync from it, empty), refuse every write with
    /// [`Error::Unavailable`](crate::Error::Unavailable) until an operator acknowledges by
    /// deleting the key `{namespace}:{wiped}` (e.g. `DEL rs:{wiped}`), so nothing builds on
    /// the loss unnoticed. Off by default: the wipe is then reported (log, metric,
    /// [`nodes`](crate::RedisSessions::nodes)) for a minute and writes go on. One Redis
    /// server or Sentinel; set it alike on every process of a namespace.
    pub fn refuse_writes_after_wipe(mut self, on: bool) -> Self {
        self.refuse_writes_after_wipe = on;
        self
    }
    /// Chooses the key layout; by default the Node-compatible one on a single Redis and
    /// the sharded one on a cluster (the Node layout cannot run on a cluster).
    pub fn key_layout(mut self, layout: KeyLayout) -> Self {
        self.key_layout = Some(layout);
        self
    }
    /// How long a connection attempt may take before the call fails (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
    /// How long a call may wait for Redis' answer before it fails (default 1 s). A call
    /// fails within `connect_timeout + response_timeout` whatever the connection does.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    // The getters are named `get_` + their setter's name (as sqlx's connect options do):
    // Rust has no overloading, and a reader looks a value up by the setter that set it.

    /// The Redis host and port set by [`host_port`](Self::host_port), in use when no `url`
    /// is given (default `127.0.0.1:6379`): what a server names in its messages.
    #[must_use]
    pub fn get_host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
    /// The cluster's seed nodes set by [`cluster`](Self::cluster); empty without a cluster.
    #[must_use]
    pub fn get_cluster(&self) -> &[String] {
        &self.cluster
    }
    /// The sentinels and the master's name set by [`sentinel`](Self::sentinel): no
    /// sentinels without Sentinel, master `mymaster` by default.
    #[must_use]
    pub fn get_sentinel(&self) -> (&[String], &str) {
        (&self.sentinels, &self.sentinel_master)
    }
    /// The durable-write requirement set by [`min_replicas`](Self::min_replicas) or
    /// [`min_replicas_all`](Self::min_replicas_all), or None when writes do not wait for
    /// replicas (the default).
    #[must_use]
    pub fn get_min_replicas(&self) -> Option<MinReplicas> {
        self.min_replicas
    }
    /// The time between sweeps set by [`wipe`](Self::wipe) (default 600 s), as given:
    /// zero when sweeping is off.
    #[must_use]
    pub fn get_wipe(&self) -> Duration {
        self.wipe
    }
    /// The cache's lifetime and size set by [`cache`](Self::cache): a zero lifetime when
    /// the cache is off (the default).
    #[must_use]
    pub fn get_cache(&self) -> (Duration, u64) {
        (self.cachetime, self.cachemax)
    }

    /// Turns session lifecycle events on (off by default): every create and every end of a
    /// session (kill, kill_device, killsoid, killall, the sweep) appends an event to its
    /// app's Redis Stream in the same atomic step as the change, kept as `events` says
    /// (see [`RedisSessions::events`](crate::RedisSessions::events)). Set it alike on
    /// every process of a namespace: a process without it writes no events.
    pub fn events(mut self, events: EventOptions) -> Self {
        self.events = Some(events);
        self
    }

    /// Sets the source of "now" (default the system clock); tests use a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The sweep interval after the Node module's rules, or None when sweeping is off.
    pub(crate) fn wipe_interval(&self) -> Option<Duration> {
        (!self.wipe.is_zero()).then(|| self.wipe.max(Duration::from_secs(10)))
    }
}

/// The optional inputs of [`RedisSessions::create`](crate::store::RedisSessions::create), set
/// with its setters from `CreateOptions::default()` (no data, ttl 7200 s, resaved on use).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
#[must_use]
pub struct CreateOptions {
    /// Whole seconds, as the session hash stores them.
    pub(crate) ttl: Option<i64>,
    pub(crate) data: Option<serde_json::Value>,
    pub(crate) no_resave: bool,
}

impl CreateOptions {
    /// Sets the inactivity after which the session dies: at least 10 s, default
    /// [`DEFAULT_TTL`](crate::DEFAULT_TTL) seconds (create fails with `invalidValue` below
    /// 10 s). Whole seconds count (the stored ttl is in seconds): a fraction is dropped.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(whole_seconds(ttl));
        self
    }
    /// Sets the initial data: a JSON object of scalar values (null values are dropped).
    pub fn data(mut self, d: serde_json::Value) -> Self {
        self.data = Some(d);
        self
    }
    /// Makes the session end at create time + ttl, however often it is used.
    pub fn no_resave(mut self, on: bool) -> Self {
        self.no_resave = on;
        self
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_shows_no_password() {
        let options = Options::default()
            .url("redis://user:s3cret@db.example:6380/2")
            .cluster([
                "redis://:n0desecret@node1:7000",
                "rediss://u:p4ss@node2:7001/",
            ])
            .sentinel_password("t0psecret");
        let shown = format!("{options:?}");
        for secret in ["s3cret", "t0psecret", "n0desecret", "p4ss"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db.example:6380/2"), "{shown}");
        assert!(
            shown.contains("node1:7000") && shown.contains("node2:7001/"),
            "{shown}"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(redact_url("rediss://:p@h/0"), "rediss://<redacted>@h/0");
    }
}
