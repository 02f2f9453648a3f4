//! The CLI's flags: the Redis and namespace settings are rest-sessions' own (`RS_REDISURL`,
//! `RS_REDISHOST`, `RS_REDISPORT`, `RS_REDIS_CLUSTER`, `RS_SENTINELS`, `RS_SENTINEL_MASTER`,
//! `RS_SENTINEL_PASSWORD`, `RS_SHARDS`, `RS_NAMESPACE`: the library's `StoreArgs`, which both
//! flatten), so an operator points the tool at a deployment with the settings it already has.

use clap::{Parser, Subcommand};
use redis_sessions::cli_args::StoreArgs;
use redis_sessions::Options;

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

/// Where the namespace lives: the settings rest-sessions reads, declared once in the
/// library (`redis_sessions::cli_args::StoreArgs`), so the tool and the servers cannot
/// drift apart. Its flags are global: they go before or after the subcommand.
#[derive(Debug, Clone, clap::Args)]
#[non_exhaustive]
pub struct Target {
    /// Where Redis is, and the namespace.
    #[command(flatten)]
    pub store: StoreArgs,
}

impl Target {
    /// The URL of the one Redis server these settings name (the tool's own connection to
    /// it, for the commands that read keys directly).
    pub fn url(&self) -> String {
        if let Some(url) = &self.store.redis_url {
            return url.clone();
        }
        let defaults = Options::default();
        let (host, port) = defaults.get_host_port();
        format!(
            "redis://{}:{}/",
            self.store.redis_host.as_deref().unwrap_or(host),
            self.store.redis_port.unwrap_or(port)
        )
    }

    /// Store options for the commands that go through the library (so the indexes stay
    /// right), for the deployment rest-sessions would use with these settings: no sweep
    /// and no cache, since a one-shot tool must not sweep a fleet's namespace or serve
    /// stale reads.
    pub fn store_options(&self) -> Options {
        self.store
            .options()
            .wipe(std::time::Duration::ZERO)
            .cache(std::time::Duration::ZERO, 0)
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
