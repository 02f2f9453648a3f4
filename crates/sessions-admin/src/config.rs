//! The CLI's flags: the Redis and namespace settings take the environment variables of
//! `rest-sessions` (`RS_REDISURL`, `RS_REDISHOST`, `RS_REDISPORT`, `RS_REDIS_CLUSTER`,
//! `RS_SENTINELS`, `RS_SENTINEL_MASTER`, `RS_SENTINEL_PASSWORD`, `RS_SHARDS`,
//! `RS_NAMESPACE`), so an operator points the tool at a deployment with the settings it
//! already has.

use clap::{Parser, Subcommand};
use redis_sessions::{KeyLayout, Options};

/// Every setting and subcommand of `sessions-admin`.
#[derive(Debug, Parser)]
#[command(
    name = "sessions-admin",
    version,
    about = "Inspect, check and repair a redis-sessions namespace (one Redis, Sentinel or a cluster).",
    after_help = "Exit codes: 0 done (check: consistent), 1 check found inconsistencies \
                  (mended with --repair), 2 error."
)]
#[non_exhaustive]
pub struct Cli {
    /// Where Redis is and which namespace.
    #[command(flatten)]
    pub target: Target,

    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where the namespace lives; the same variables as rest-sessions.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct Target {
    /// Redis URL (`redis://[:password@]host:port/db`); wins over host and port.
    #[arg(
        long = "redis-url",
        env = "RS_REDISURL",
        hide_env_values = true,
        global = true
    )]
    pub redis_url: Option<String>,

    /// Redis host [default: 127.0.0.1].
    #[arg(long = "redis-host", env = "RS_REDISHOST", global = true)]
    pub redis_host: Option<String>,

    /// Redis port [default: 6379].
    #[arg(long = "redis-port", env = "RS_REDISPORT", global = true)]
    pub redis_port: Option<u16>,

    /// Seed nodes of a Redis Cluster, comma-separated: the namespace then has the sharded
    /// layout, each shard checked on the master that owns it.
    #[arg(
        long = "redis-cluster",
        env = "RS_REDIS_CLUSTER",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub redis_cluster: Vec<String>,

    /// Redis Sentinels, comma-separated `host:port`: the tool works on the master they
    /// name (its password, database and TLS from RS_REDISURL when set).
    #[arg(
        long,
        env = "RS_SENTINELS",
        value_delimiter = ',',
        conflicts_with = "redis_cluster",
        global = true
    )]
    pub sentinels: Vec<String>,

    /// The master's name in the sentinels' configuration.
    #[arg(
        long = "sentinel-master",
        env = "RS_SENTINEL_MASTER",
        default_value = "mymaster",
        global = true
    )]
    pub sentinel_master: String,

    /// The sentinels' own password, when they have one.
    #[arg(
        long = "sentinel-password",
        env = "RS_SENTINEL_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub sentinel_password: Option<String>,

    /// Shards of the sharded (cluster) layout, as rest-sessions was started with.
    #[arg(long, env = "RS_SHARDS", default_value_t = redis_sessions::DEFAULT_SHARDS, global = true)]
    pub shards: u16,

    /// Prefix of every key of the namespace.
    #[arg(long, env = "RS_NAMESPACE", default_value = "rs", global = true)]
    pub namespace: String,
}

impl Target {
    /// The URL of the one Redis server these settings name.
    pub fn url(&self) -> String {
        if let Some(url) = &self.redis_url {
            return url.clone();
        }
        let defaults = Options::default();
        let (host, port) = defaults.get_host_port();
        format!(
            "redis://{}:{}/",
            self.redis_host.as_deref().unwrap_or(host),
            self.redis_port.unwrap_or(port)
        )
    }

    /// Store options for the commands that go through the library (so the indexes stay
    /// right), for the deployment rest-sessions would use with these settings: no sweep
    /// and no cache, since a one-shot tool must not sweep a fleet's namespace or serve
    /// stale reads.
    pub fn store_options(&self) -> Options {
        let options = Options::default()
            .namespace(self.namespace.clone())
            .wipe(std::time::Duration::ZERO)
            .cache(std::time::Duration::ZERO, 0);
        if !self.redis_cluster.is_empty() {
            options
                .cluster(self.redis_cluster.clone())
                .key_layout(KeyLayout::Sharded {
                    shards: self.shards,
                })
        } else if !self.sentinels.is_empty() {
            let mut options =
                options.sentinel(self.sentinels.clone(), self.sentinel_master.clone());
            if let Some(url) = &self.redis_url {
                options = options.url(url.clone());
            }
            if let Some(password) = &self.sentinel_password {
                options = options.sentinel_password(password.clone());
            }
            options
        } else {
            options.url(self.url())
        }
    }
}

/// When `check` shows its progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[non_exhaustive]
pub enum Progress {
    /// When stderr is a terminal (not in scripts and pipes).
    Auto,
    /// Always (a line per second, then a final one).
    Always,
    /// Never.
    Never,
}

impl Progress {
    /// Whether to show it here.
    pub fn enabled(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Progress::Auto => std::io::stderr().is_terminal(),
            Progress::Always => true,
            Progress::Never => false,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Check the indexes of one app (or every app) against the session hashes.
    Check {
        /// Only this app.
        app: Option<String>,
        /// Mend each finding, one atomic script per session that re-checks it first.
        #[arg(long)]
        repair: bool,
        /// Seconds a session may stay past its end before it is a finding (the sweep
        /// removes it meanwhile; RS_WIPE defaults to 600).
        #[arg(long, default_value_t = 900)]
        grace: i64,
        /// Examples shown per kind of finding.
        #[arg(long, default_value_t = 5)]
        examples: usize,
        /// A progress line on stderr: `auto` when stderr is a terminal, `always`, `never`.
        #[arg(long, value_enum, default_value_t = Progress::Auto)]
        progress: Progress,
    },
    /// Counts per app: sessions, users, users active lately, approximate memory.
    Stats {
        /// Only this app.
        app: Option<String>,
    },
    /// The devices (sessions) of one user.
    User {
        /// The app.
        app: String,
        /// The user's id.
        id: String,
    },
    /// Sign out one session by its token (one a user or an app reported). Give `-` to read
    /// the token from stdin, which keeps it out of the process list and shell history.
    Kill {
        /// The app.
        app: String,
        /// The session's token, or `-` to read it from stdin.
        token: String,
    },
    /// Sign out one device of a user, named by its handle (from `user`).
    KillDevice {
        /// The app.
        app: String,
        /// The user's id.
        id: String,
        /// The device's handle.
        handle: String,
    },
    /// Sign out every device of a user, or all but one with --keep.
    Killsoid {
        /// The app.
        app: String,
        /// The user's id.
        id: String,
        /// The handle of the device to keep signed in.
        #[arg(long)]
        keep: Option<String>,
    },
    /// Sign out every session of an app.
    Killall {
        /// The app.
        app: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// The namespace's layout record.
    Layout,
}
