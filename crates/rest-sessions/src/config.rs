//! The server's settings: command-line flags, each with the environment variable of the
//! original `rest-sessions` (`RS_PORT`, `RS_REDISHOST`, …) so that existing deployments
//! start it unchanged.

pub(crate) use crate::redact::redact_url;
use clap::{Parser, ValueEnum};
use redis_sessions::cli_args::StoreArgs;
use redis_sessions::Options;
use std::time::Duration;

/// One megabyte: the default limit of a request body, as the spec asks.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Default of `RS_HEADER_TIMEOUT`, in seconds.
pub(crate) const DEFAULT_HEADER_TIMEOUT: &str = "10";
/// Default of `RS_IDLE_TIMEOUT`, in seconds: above the 60 s idle timeout of common reverse
/// proxies' upstream pools would race them; at it, the proxy and the server agree.
pub(crate) const DEFAULT_IDLE_TIMEOUT: &str = "60";
/// Default of `RS_BODY_TIMEOUT`, in seconds.
pub(crate) const DEFAULT_BODY_TIMEOUT: &str = "10";
/// Default of `RS_EVENTS_MAX_STREAMS`: 100 idle streams cost one Redis about 1000 small
/// XRANGEs a second.
pub(crate) const DEFAULT_EVENTS_MAX_STREAMS: usize = 100;
/// Default of `RS_MAX_CONNECTIONS`.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The default memory budget for request bytes in flight, in bodies of the largest size:
/// 32 MiB with the default 1 MB limit. Requests of this API are small (a session's data);
/// 32 requests at the limit at once is far beyond normal use. A body held costs about 1.6
/// times its size (hyper's read buffers, the collected chunks), so RSS stays within the
/// budget plus 64 MB (measured: 2000 unfinished 1 MB bodies with a 64 MiB budget peaked at
/// 107-130 MB, too close to that line).
pub(crate) const BUDGET_BODIES: usize = 32;

/// The smallest default memory budget (with a small body limit), room for many heads.
pub(crate) const MIN_DEFAULT_BUDGET: usize = 16 * 1024 * 1024;

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum StoreKind {
    /// A Redis server shared by every process (the default, and what the original did).
    Redis,
    /// This process's memory: zero set-up, but single-process and lost at exit.
    Memory,
}

impl StoreKind {
    /// The name used in logs, `/health` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Redis => "redis",
            StoreKind::Memory => "memory",
        }
    }
}

/// How request logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Every setting of the server. Each flag can also be given by its environment variable;
/// a flag wins over the variable.
#[derive(Clone, Parser)]
#[command(
    name = "rest-sessions",
    version,
    about = "REST server for redis-sessions: user sessions shared by services in any language."
)]
#[non_exhaustive]
pub struct Config {
    /// Port to listen on.
    #[arg(long, env = "RS_PORT", default_value_t = 3000)]
    pub port: u16,

    /// Address to listen on; loopback by default, so the server is not exposed by accident.
    #[arg(long, env = "RS_HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Where sessions are kept: `redis` or `memory` (single process, lost at exit).
    #[arg(long, env = "RS_STORE", value_enum, default_value_t = StoreKind::Redis)]
    pub store: StoreKind,

    /// Where Redis is and the namespace (`RS_REDISURL`, `RS_REDISHOST`, `RS_REDISPORT`,
    /// `RS_REDIS_CLUSTER`, `RS_SENTINELS`, `RS_SENTINEL_MASTER`, `RS_SENTINEL_PASSWORD`,
    /// `RS_SHARDS`, `RS_NAMESPACE`): declared once in the library, so sessions-admin and
    /// other programs read them alike.
    #[command(flatten)]
    pub redis: StoreArgs,

    /// Send soid, soapp and activity to replicas (Redis Cluster only): takes their load
    /// off the masters, at the price of answers that may miss the last moments' writes.
    #[arg(
        long = "read-from-replicas",
        env = "RS_READ_FROM_REPLICAS",
        default_value_t = false
    )]
    pub read_from_replicas: bool,

    /// Durable writes: create, set, kill, killsoid and killall answer success only once this
    /// many replicas have the write (Redis WAIT), else `503 notReplicated` (the write may
    /// still exist). 0 (default) = off; `all` = every replica Sentinel could promote, or on
    /// a cluster every replica of the master that ran the write (the only setting that
    /// makes an acknowledged write survive any promotion).
    #[arg(
        long = "min-replicas",
        env = "RS_MIN_REPLICAS",
        default_value = "0",
        value_parser = parse_min_replicas
    )]
    pub min_replicas: MinReplicasSetting,

    /// Milliseconds a durable write waits for its replicas (1..=1000: with the write itself
    /// it stays within the 1.8 s deadline of a request).
    #[arg(
        long = "min-replicas-timeout-ms",
        env = "RS_MIN_REPLICAS_TIMEOUT_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..=1000)
    )]
    pub min_replicas_timeout_ms: u64,

    /// After the namespace's data vanished from the master (restarted in place without
    /// persistence), refuse writes (503) until an operator deletes the key
    /// `{namespace}:{wiped}`; off: the wipe is reported (log, metric, /health 503) for a
    /// minute and writes go on. One Redis server or Sentinel.
    #[arg(
        long = "refuse-writes-after-wipe",
        env = "RS_REFUSE_WRITES_AFTER_WIPE",
        default_value_t = false
    )]
    pub refuse_writes_after_wipe: bool,

    /// Seconds between sweeps of expired sessions (0 = off, 1..9 become 10).
    #[arg(long, env = "RS_WIPE", default_value_t = 600)]
    pub wipe: u64,

    /// Seconds a `get` reply may be served from the in-process cache (0 = no cache).
    #[arg(long, env = "RS_CACHETIME", default_value_t = 0)]
    pub cachetime: u64,

    /// Most sessions held in the cache.
    #[arg(long, env = "RS_CACHEMAX", default_value_t = 5000)]
    pub cachemax: u64,

    /// Largest accepted request body, in bytes; larger ones get 413.
    #[arg(long = "body-limit", env = "RS_BODY_LIMIT", default_value_t = DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,

    /// Seconds a client has to send a whole request head (request line and headers), from
    /// the connection's opening or from the first byte of a later request; past it the
    /// connection is closed.
    #[arg(long = "header-timeout", env = "RS_HEADER_TIMEOUT", default_value = DEFAULT_HEADER_TIMEOUT, value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// Seconds a keep-alive connection may wait for its next request, and a reply for its
    /// client to read it; past it the connection is closed.
    #[arg(long = "idle-timeout", env = "RS_IDLE_TIMEOUT", default_value = DEFAULT_IDLE_TIMEOUT, value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Seconds a client has to send a whole request body once its head arrived; past it the
    /// reply is `408 requestTimeout`.
    #[arg(long = "body-timeout", env = "RS_BODY_TIMEOUT", default_value = DEFAULT_BODY_TIMEOUT, value_parser = parse_seconds)]
    pub body_timeout: Duration,

    /// Most connections served at once (capped to fit the open-files limit); connections
    /// over it get `503 tooManyConnections` with `Retry-After: 1`.
    #[arg(long = "max-connections", env = "RS_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Bytes of requests in flight (unparsed heads and the declared bodies of requests
    /// being served) held at once [default: 32 x the body limit, at least 16 MiB]; over
    /// it new requests get `503 overloaded` before their bytes are read.
    #[arg(long = "memory-budget", env = "RS_MEMORY_BUDGET")]
    pub memory_budget: Option<usize>,

    /// The server is reached through a reverse proxy or load balancer, so every client has
    /// the proxy's address: the per-address caps are then off unless set explicitly.
    #[arg(
        long = "behind-proxy",
        env = "RS_BEHIND_PROXY",
        default_value_t = false
    )]
    pub behind_proxy: bool,

    /// Most connections of one client address; 0 = no cap [default: half the connection
    /// bound; off with RS_BEHIND_PROXY].
    #[arg(
        long = "max-connections-per-address",
        env = "RS_MAX_CONNECTIONS_PER_ADDRESS"
    )]
    pub max_connections_per_address: Option<usize>,

    /// Most connections of one client address with a request under way (head pending or
    /// being served); 0 = no cap [default: an eighth of the connection bound, at least 16;
    /// off with RS_BEHIND_PROXY].
    #[arg(
        long = "max-unfinished-per-address",
        env = "RS_MAX_UNFINISHED_PER_ADDRESS"
    )]
    pub max_unfinished_per_address: Option<usize>,

    /// Show `/health`'s detail (Redis host:port, error text) to every caller. Without it
    /// the detail goes only to callers presenting RS_AUTH_TOKEN; others get the status.
    #[arg(
        long = "health-detail",
        env = "RS_HEALTH_DETAIL",
        default_value_t = false
    )]
    pub health_detail: bool,

    /// Shared secret: when set, every route but /ping, /health and /openapi.json requires
    /// `Authorization: Bearer <secret>`.
    #[arg(long = "auth-token", env = "RS_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Session lifecycle events: every create and end of a session is written to the
    /// app's event stream in the same atomic step (off by default; set it alike on every
    /// process of a namespace), and `GET /{app}/events` serves them (404 `eventsOff`
    /// without it).
    #[arg(long, env = "RS_EVENTS", default_value_t = false)]
    pub events: bool,

    /// Events kept per stream, about (`XADD … MAXLEN ~`; ~100 bytes of Redis memory each).
    #[arg(
        long = "events-maxlen",
        env = "RS_EVENTS_MAXLEN",
        default_value_t = redis_sessions::DEFAULT_MAX_EVENTS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub events_maxlen: u64,

    /// Events older than this many seconds are dropped too (`XTRIM … MINID ~`, one more
    /// command per event); 0: kept by count only.
    #[arg(
        long = "events-max-age",
        env = "RS_EVENTS_MAX_AGE",
        default_value_t = 0
    )]
    pub events_max_age: u64,

    /// Most `GET /{app}/events` Server-Sent Events streams served at once: each asks Redis
    /// for new events every 100 ms (once per shard on a cluster), so they are bounded by
    /// Redis CPU, not by connections. Over it: `503 tooManyStreams`.
    #[arg(
        long = "events-max-streams",
        env = "RS_EVENTS_MAX_STREAMS",
        default_value_t = DEFAULT_EVENTS_MAX_STREAMS
    )]
    pub events_max_streams: usize,

    /// The operator console at `GET /console`: apps and their counts, a user's devices
    /// and signing them out, the live event feed. Needs `RS_AUTH_TOKEN` (the page signs
    /// users out, so it is never open without the secret); the server refuses to start
    /// otherwise.
    #[arg(long, env = "RS_CONSOLE", default_value_t = false)]
    pub console: bool,

    /// Apps the console lists, comma-separated (others can be opened by name). A list
    /// from the settings, not a SCAN of Redis: listing apps then costs Redis nothing.
    #[arg(long = "console-apps", env = "RS_CONSOLE_APPS", value_delimiter = ',')]
    pub console_apps: Vec<String>,

    /// Worker threads [default: one per core]. On a small machine that also runs Redis,
    /// fewer workers than cores leave Redis its core (the benchmark uses 1 on 2 cores).
    #[arg(long, env = "RS_WORKERS")]
    pub workers: Option<usize>,

    /// Log format: `text` or `json`. The level is set with RUST_LOG (default `info`).
    #[arg(long = "log-format", env = "RS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// A migration in progress: the store sessions move out of (`RS_MIGRATE_*`).
    #[command(flatten)]
    pub(crate) migrate: crate::migrate::MigrateFrom,

    /// Webhooks: the lifecycle events POSTed to receivers (`RS_WEBHOOK_*`).
    #[command(flatten)]
    pub(crate) webhook: crate::webhook::WebhookSettings,
}

/// Written by hand so that printing the configuration (a debug log, a panic message) shows
/// no secret: the bearer secret is redacted, and so are the sentinels' password and the
/// Redis URLs' user info (by `StoreArgs`'s own `Debug`).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("host", &self.host)
            .field("store", &self.store)
            .field("redis", &self.redis)
            .field("read_from_replicas", &self.read_from_replicas)
            .field("min_replicas", &self.min_replicas)
            .field("min_replicas_timeout_ms", &self.min_replicas_timeout_ms)
            .field("wipe", &self.wipe)
            .field("cachetime", &self.cachetime)
            .field("cachemax", &self.cachemax)
            .field("body_limit", &self.body_limit)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .field("memory_budget", &self.memory_budget)
            .field("behind_proxy", &self.behind_proxy)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field(
                "max_unfinished_per_address",
                &self.max_unfinished_per_address,
            )
            .field("health_detail", &self.health_detail)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("events", &self.events)
            .field("events_maxlen", &self.events_maxlen)
            .field("events_max_age", &self.events_max_age)
            .field("events_max_streams", &self.events_max_streams)
            .field("console", &self.console)
            .field("console_apps", &self.console_apps)
            .field("workers", &self.workers)
            .field("log_format", &self.log_format)
            .field("migrate", &self.migrate)
            .field("webhook", &self.webhook)
            .finish()
    }
}

impl Config {
    /// The memory budget in force: the configured one, or 32 x the body limit (at least
    /// [`MIN_DEFAULT_BUDGET`]).
    pub(crate) fn memory_budget(&self) -> usize {
        self.memory_budget.unwrap_or_else(|| {
            self.body_limit
                .saturating_mul(BUDGET_BODIES)
                .max(MIN_DEFAULT_BUDGET)
        })
    }

    /// The per-address caps in force for a connection bound of `bound` (connections,
    /// unfinished requests; 0 = no cap): the configured ones, else off behind a proxy and
    /// half / an eighth of the bound otherwise.
    pub(crate) fn per_address_caps(&self, bound: usize) -> (usize, usize) {
        let connections = self
            .max_connections_per_address
            .unwrap_or(if self.behind_proxy {
                0
            } else {
                (bound / 2).max(1)
            });
        let unfinished = self
            .max_unfinished_per_address
            .unwrap_or(if self.behind_proxy {
                0
            } else {
                (bound / 8).max(16)
            });
        (connections, unfinished)
    }

    /// True when the operator pointed the server at a Redis of their own choosing: then a
    /// failed connection is their configuration problem, not a missing local Redis.
    pub(crate) fn redis_explicit(&self) -> bool {
        self.redis.redis_host.is_some()
            || self.redis.redis_port.is_some()
            || self.redis.redis_url.is_some()
            || !self.redis.redis_cluster.is_empty()
            || !self.redis.sentinels.is_empty()
    }

    /// The library options these settings stand for: the store's place and namespace
    /// (`StoreArgs`, as every program reads them) with this server's sweep, cache, wipe
    /// guard, events, durable writes and replica reads.
    pub(crate) fn store_options(&self) -> Options {
        let mut options = self
            .redis
            .options()
            .wipe(Duration::from_secs(self.wipe))
            .cache(Duration::from_secs(self.cachetime), self.cachemax)
            .refuse_writes_after_wipe(self.refuse_writes_after_wipe);
        if self.events {
            let mut events = redis_sessions::EventOptions::max_len(self.events_maxlen);
            if self.events_max_age > 0 {
                events = events.max_age(Duration::from_secs(self.events_max_age));
            }
            options = options.events(events);
        }
        let timeout = Duration::from_millis(self.min_replicas_timeout_ms);
        options = match self.min_replicas {
            MinReplicasSetting::Count(n) => options.min_replicas(n, timeout),
            MinReplicasSetting::All => options.min_replicas_all(timeout),
        };
        if !self.redis.redis_cluster.is_empty() {
            options = options.read_from_replicas(self.read_from_replicas);
        }
        options
    }

    /// The settings that chose a cluster or the sentinels, for messages (None for one
    /// server: RS_REDISHOST/RS_REDISPORT/RS_REDISURL name it).
    pub(crate) fn redis_settings_in_use(&self) -> Option<&'static str> {
        if !self.redis.redis_cluster.is_empty() {
            Some("RS_REDIS_CLUSTER (--redis-cluster)")
        } else if !self.redis.sentinels.is_empty() {
            Some(
                "RS_SENTINELS/RS_SENTINEL_MASTER (--sentinels/--sentinel-master; the master's \
                 password and TLS from RS_REDISURL)",
            )
        } else {
            None
        }
    }

    /// Where Redis is, for messages: the URL without its password, or `host:port`.
    pub(crate) fn redis_location(&self) -> String {
        if !self.redis.redis_cluster.is_empty() {
            let seeds: Vec<String> = self
                .redis
                .redis_cluster
                .iter()
                .map(|u| redact_url(u))
                .collect();
            return format!("the cluster {}", seeds.join(","));
        }
        if !self.redis.sentinels.is_empty() {
            return format!(
                "the master {:?} of the sentinels {}",
                self.redis.sentinel_master,
                self.redis.sentinels.join(",")
            );
        }
        match &self.redis.redis_url {
            Some(url) => redact_url(url),
            None => {
                let defaults = Options::default();
                let (host, port) = defaults.get_host_port();
                format!(
                    "{}:{}",
                    self.redis.redis_host.as_deref().unwrap_or(host),
                    self.redis.redis_port.unwrap_or(port)
                )
            }
        }
    }
}

/// `RS_MIN_REPLICAS`: a number of replicas, or every replica that could be promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinReplicasSetting {
    /// This many replicas (0: durable writes off).
    Count(u32),
    /// Every replica Sentinel could promote, or on a cluster every replica of the
    /// writing master (`all`).
    All,
}

/// `all` or a number of replicas.
pub(crate) fn parse_min_replicas(text: &str) -> Result<MinReplicasSetting, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(MinReplicasSetting::All);
    }
    text.parse()
        .map(MinReplicasSetting::Count)
        .map_err(|_| format!("`{text}` is neither a number of replicas nor `all`"))
}

/// Seconds, possibly fractional (`0.5`), more than zero and at most a day: a timeout of
/// zero would close every connection, and none is meant to be longer.
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "`{text}`: give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact_url("redis://:secret@example:6379/0"),
            "redis://***@example:6379/0"
        );
        assert_eq!(redact_url("redis://h:1/"), "redis://h:1/");
        assert_eq!(redact_url("nonsense"), "<redis url>");
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut c = Config::try_parse_from(["rest-sessions", "--store", "memory"]).expect("flags");
        c.redis.redis_url = Some("redis://:urlsecret@h:1/0".into());
        c.redis.sentinel_password = Some("sentinelsecret".into());
        c.auth_token = Some("bearersecret".into());
        let shown = format!("{c:?}");
        for secret in ["urlsecret", "sentinelsecret", "bearersecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("h:1/0"), "{shown}");
    }

    /// The location the start-up log lines and errors name (`store: redis`, "cannot
    /// connect to …") carries no password, for a URL or a cluster's seeds.
    #[test]
    fn logged_locations_show_no_password() {
        let mut c = Config::try_parse_from(["rest-sessions"]).expect("flags");
        c.redis.redis_url = Some("redis://user:urlsecret@h:1/0".into());
        assert_eq!(c.redis_location(), "redis://***@h:1/0");
        c.redis.redis_cluster = vec![
            "redis://:seedsecret@n1:7000".into(),
            "redis://n2:7001".into(),
        ];
        let location = c.redis_location();
        assert!(!location.contains("seedsecret"), "{location}");
        assert!(
            location.contains("n1:7000") && location.contains("n2:7001"),
            "{location}"
        );
    }

    /// sessions-admin's store options for `args` (given after its subcommand, as its
    /// global flags may be, and before it), beside this server's with the sweep and cache
    /// sessions-admin turns off: both flatten the library's `StoreArgs`, so the same
    /// settings reach the same store.
    fn both_binaries(args: &[&str]) -> (StoreArgs, Options, Options) {
        let server =
            Config::try_parse_from(std::iter::once("rest-sessions").chain(args.iter().copied()))
                .expect("rest-sessions flags");
        let after = sessions_admin::Cli::try_parse_from(
            ["sessions-admin", "layout"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .expect("sessions-admin flags after the subcommand");
        let before = sessions_admin::Cli::try_parse_from(
            std::iter::once("sessions-admin")
                .chain(args.iter().copied())
                .chain(["stats"]),
        )
        .expect("sessions-admin flags before the subcommand");
        assert_eq!(server.redis, after.target.store, "{args:?}");
        assert_eq!(server.redis, before.target.store, "{args:?}");
        let admin = after.target.store_options();
        let server_options = server
            .store_options()
            .wipe(Duration::ZERO)
            .cache(Duration::ZERO, 0);
        (server.redis, server_options, admin)
    }

    /// The cases of `same_settings_same_store_in_both_binaries`: every deployment kind,
    /// each Redis setting, the original's spellings.
    const SETTINGS: [&[&str]; 6] = [
        &[],
        &[
            "--redis-host",
            "db.internal",
            "--redis-port",
            "6380",
            "--namespace",
            "shop",
        ],
        &["--redishost", "db.internal", "--redisport", "6380"],
        &[
            "--redis-url",
            "redis://:secret@db.internal:6380/2",
            "--redis-host",
            "unused",
        ],
        &[
            "--redis-cluster",
            "redis://n1:7000,redis://n2:7001",
            "--shards",
            "12",
            "--namespace",
            "c",
        ],
        &[
            "--sentinels",
            "s1:26379,s2:26379",
            "--sentinel-master",
            "sessions",
            "--sentinel-password",
            "spw",
            "--redisurl",
            "redis://:secret@unused:1/3",
        ],
    ];

    #[test]
    fn same_settings_same_store_in_both_binaries() {
        for args in SETTINGS {
            let (_, server, admin) = both_binaries(args);
            // Options' Debug hides passwords: the getters and the parsed settings (compared
            // in `both_binaries`) cover them.
            assert_eq!(format!("{server:?}"), format!("{admin:?}"), "{args:?}");
            assert_eq!(server.get_host_port(), admin.get_host_port());
            assert_eq!(server.get_cluster(), admin.get_cluster());
            assert_eq!(server.get_sentinel(), admin.get_sentinel());
        }
        let (store, options, _) = both_binaries(SETTINGS[4]);
        assert_eq!(store.shards, 12);
        assert!(format!("{options:?}").contains("Sharded { shards: 12 }"));
        assert!(sessions_admin::Cli::try_parse_from([
            "sessions-admin",
            "layout",
            "--sentinels",
            "h:1",
            "--redis-cluster",
            "redis://h:2"
        ])
        .is_err());
    }

    /// The same through the environment: set in a child process of this test binary (the
    /// environment is the whole process's, and other tests parse flags meanwhile).
    #[test]
    fn same_environment_same_store_in_both_binaries() {
        const CHILD: &str = "REST_SESSIONS_CONFIG_TEST_CHILD";
        let vars = [
            ("RS_REDISURL", "redis://:secret@db.internal:6380/2"),
            ("RS_REDISHOST", "unused"),
            ("RS_REDISPORT", "1"),
            ("RS_SENTINELS", "s1:26379,s2:26379"),
            ("RS_SENTINEL_MASTER", "sessions"),
            ("RS_SENTINEL_PASSWORD", "spw"),
            ("RS_SHARDS", "12"),
            ("RS_NAMESPACE", "shop"),
        ];
        if std::env::var_os(CHILD).is_some() {
            let (store, server, admin) = both_binaries(&[]);
            assert_eq!(format!("{server:?}"), format!("{admin:?}"));
            for (var, value) in vars {
                assert_eq!(std::env::var(var).as_deref(), Ok(value), "{var}");
            }
            assert_eq!(store.redis_url.as_deref(), Some(vars[0].1));
            assert_eq!(store.sentinel_password.as_deref(), Some("spw"));
            assert_eq!((store.shards, store.namespace.as_str()), (12, "shop"));
            assert_eq!(server.get_sentinel().1, "sessions");
            return;
        }
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
        child
            .args([
                "--exact",
                "config::tests::same_environment_same_store_in_both_binaries",
                "--test-threads=1",
            ])
            .env(CHILD, "1");
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("RS_") {
                child.env_remove(var);
            }
        }
        child.envs(vars);
        let output = child.output().expect("run the child test");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn flags_parse() {
        let c = Config::try_parse_from(["rest-sessions", "--store", "memory", "--port", "1"])
            .expect("valid flags");
        assert_eq!(c.store, StoreKind::Memory);
        assert_eq!(c.port, 1);
        assert!(!c.redis_explicit());
        let c = Config::try_parse_from([
            "rest-sessions",
            "--redis-cluster",
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
        ])
        .expect("valid flags");
        assert_eq!(c.redis.redis_cluster.len(), 2);
        assert!(c.redis_explicit());
        assert_eq!(c.store_options().get_cluster().len(), 2);
    }

    #[test]
    fn sentinels_parse() {
        let c = Config::try_parse_from([
            "rest-sessions",
            "--sentinels",
            "127.0.0.1:26379,127.0.0.1:26380",
            "--sentinel-master",
            "sessions",
        ])
        .expect("valid flags");
        assert!(c.redis_explicit());
        let options = c.store_options();
        let (sentinels, master) = options.get_sentinel();
        assert_eq!((sentinels.len(), master), (2, "sessions"));
        assert!(Config::try_parse_from([
            "rest-sessions",
            "--sentinels",
            "h:1",
            "--redis-cluster",
            "redis://h:2"
        ])
        .is_err());
    }

    #[test]
    fn durable_writes_parse() {
        let c = Config::try_parse_from(["rest-sessions"]).expect("defaults");
        assert_eq!(c.store_options().get_min_replicas(), None);
        let c = Config::try_parse_from([
            "rest-sessions",
            "--min-replicas",
            "1",
            "--min-replicas-timeout-ms",
            "250",
        ])
        .expect("valid flags");
        assert_eq!(
            c.store_options().get_min_replicas(),
            Some(redis_sessions::MinReplicas::new(
                1,
                Duration::from_millis(250)
            ))
        );
        let c = Config::try_parse_from(["rest-sessions", "--min-replicas", "all"])
            .expect("valid flags");
        assert_eq!(
            c.store_options().get_min_replicas(),
            Some(redis_sessions::MinReplicas::all(Duration::from_millis(500)))
        );
        assert!(Config::try_parse_from(["rest-sessions", "--min-replicas", "most"]).is_err());
        for bad in ["0", "1001", "x"] {
            assert!(
                Config::try_parse_from(["rest-sessions", "--min-replicas-timeout-ms", bad])
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn overload_settings() {
        let c = Config::try_parse_from(["rest-sessions"]).expect("defaults");
        assert_eq!(c.memory_budget(), 32 * DEFAULT_BODY_LIMIT);
        assert_eq!(c.per_address_caps(896), (448, 112));
        assert_eq!(c.per_address_caps(10_000), (5000, 1250));
        assert_eq!(c.per_address_caps(40), (20, 16));
        assert!(!c.health_detail);
        let c = Config::try_parse_from(["rest-sessions", "--body-limit", "1000"]).unwrap();
        assert_eq!(c.memory_budget(), MIN_DEFAULT_BUDGET);
        let c = Config::try_parse_from(["rest-sessions", "--behind-proxy"]).unwrap();
        assert_eq!(c.per_address_caps(896), (0, 0));
        let c = Config::try_parse_from([
            "rest-sessions",
            "--behind-proxy",
            "--max-unfinished-per-address",
            "50",
            "--memory-budget",
            "1234567",
        ])
        .unwrap();
        assert_eq!(c.per_address_caps(896), (0, 50));
        assert_eq!(c.memory_budget(), 1_234_567);
    }

    #[test]
    fn events_parse() {
        let c = Config::try_parse_from(["rest-sessions"]).expect("defaults");
        assert!(!c.events);
        // Options has no getter for them: its Debug shows them.
        assert!(format!("{:?}", c.store_options()).contains("events: None"));
        let c = Config::try_parse_from(["rest-sessions", "--events", "--events-maxlen", "500"])
            .expect("valid flags");
        assert!(format!("{:?}", c.store_options()).contains("max_len: 500"));
        assert!(Config::try_parse_from(["rest-sessions", "--events-maxlen", "0"]).is_err());
        let c = Config::try_parse_from(["rest-sessions", "--events", "--events-max-age", "86400"])
            .expect("parse");
        assert!(format!("{:?}", c.store_options()).contains("max_age: Some(86400s)"));
    }

    #[test]
    fn timeouts_parse() {
        let c = Config::try_parse_from(["rest-sessions"]).expect("defaults");
        assert_eq!(c.header_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(60));
        assert_eq!(c.body_timeout, Duration::from_secs(10));
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        let c = Config::try_parse_from(["rest-sessions", "--body-timeout", "0.25"]).unwrap();
        assert_eq!(c.body_timeout, Duration::from_millis(250));
        for bad in ["0", "-1", "x", "NaN", "inf", "100000"] {
            assert!(
                Config::try_parse_from(["rest-sessions", "--idle-timeout", bad]).is_err(),
                "{bad}"
            );
        }
    }
}
