//! The flags and environment variables that say where a store is (`clap` feature, off by
//! default).
//!
//! Every program of a deployment must reach the same sessions: the REST server, the
//! operator's CLI, a service of your own. [`StoreArgs`] declares the settings once, with the
//! names the original `rest-sessions` gave them (`RS_REDISURL`, `RS_REDISHOST`,
//! `RS_REDISPORT`, `RS_REDIS_CLUSTER`, `RS_SENTINELS`, `RS_SENTINEL_MASTER`,
//! `RS_SENTINEL_PASSWORD`, `RS_SHARDS`, `RS_NAMESPACE`), and maps them to [`Options`] in one
//! place, so each program flattens it into its own flags and an operator sets one
//! environment for all of them.
//!
//! ```
//! use clap::Parser;
//! use redis_sessions::cli_args::StoreArgs;
//! use std::time::Duration;
//!
//! /// A program's flags: where the store is, and its own.
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     store: StoreArgs,
//!     /// Seconds between sweeps of expired sessions.
//!     #[arg(long, default_value_t = 600)]
//!     wipe: u64,
//! }
//!
//! let cli = Cli::try_parse_from([
//!     "my-service",
//!     "--redis-cluster",
//!     "redis://10.0.0.1:7000,redis://10.0.0.2:7000",
//!     "--namespace",
//!     "shop",
//! ])
//! .expect("valid flags");
//! let options = cli.store.options().wipe(Duration::from_secs(cli.wipe));
//! assert_eq!(options.get_cluster().len(), 2);
//! assert_eq!(options.get_wipe(), Duration::from_secs(600));
//! ```
//!
//! The flags are `global`: a program with subcommands takes them before or after its
//! subcommand (`sessions-admin stats --namespace shop`); one without takes them as usual.

use crate::options::{redact_url, KeyLayout, Options, DEFAULT_SHARDS};

/// Where the store is and which namespace: one Redis (URL, or host and port), the master
/// a set of Sentinels names, or a Redis Cluster (sharded layout), each flag also read from
/// its `RS_*` environment variable (a flag wins over the variable).
///
/// Flatten it into a program's flags (`#[command(flatten)]`) and build the store's options
/// with [`StoreArgs::options`]; what only one program sets (the sweep, the cache, durable
/// writes) it adds to those options itself. `Debug` shows no password (URLs lose their
/// user info, the sentinels' password is redacted), so a logged configuration leaks none.
#[derive(Clone, PartialEq, Eq, clap::Args)]
#[non_exhaustive]
pub struct StoreArgs {
    /// Redis host [default: 127.0.0.1].
    #[arg(
        long = "redis-host",
        alias = "redishost",
        env = "RS_REDISHOST",
        global = true
    )]
    pub redis_host: Option<String>,

    /// Redis port [default: 6379].
    #[arg(
        long = "redis-port",
        alias = "redisport",
        env = "RS_REDISPORT",
        global = true
    )]
    pub redis_port: Option<u16>,

    /// Redis URL (`redis://[:password@]host:port/db`); wins over host and port.
    #[arg(
        long = "redis-url",
        alias = "redisurl",
        env = "RS_REDISURL",
        hide_env_values = true,
        global = true
    )]
    pub redis_url: Option<String>,

    /// Seed nodes of a Redis Cluster, comma-separated (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`).
    /// Sessions then use the sharded layout, spread over every master (not readable by
    /// Node processes, which cannot run on a cluster).
    #[arg(
        long = "redis-cluster",
        env = "RS_REDIS_CLUSTER",
        value_delimiter = ',',
        hide_env_values = true,
        global = true
    )]
    pub redis_cluster: Vec<String>,

    /// Redis Sentinels, comma-separated `host:port` (`10.0.0.1:26379,10.0.0.2:26379`): the
    /// store is the master they name for `RS_SENTINEL_MASTER`, followed across failovers
    /// without a restart. The master's password, database and TLS come from `RS_REDISURL`
    /// when set (its host is not used).
    #[arg(
        long,
        env = "RS_SENTINELS",
        value_delimiter = ',',
        conflicts_with = "redis_cluster",
        // A sentinel may be given as a URL with a password: not shown by `--help`.
        hide_env_values = true,
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

    /// Shards of the sharded (cluster) layout. Recorded in Redis on first use: a process
    /// opening the namespace with another count is refused (changing it is a migration,
    /// see crates/redis-sessions/CLUSTER.md).
    #[arg(long, env = "RS_SHARDS", default_value_t = DEFAULT_SHARDS, global = true)]
    pub shards: u16,

    /// Prefix of every Redis key; processes that share sessions use the same one.
    #[arg(long, env = "RS_NAMESPACE", default_value = "rs", global = true)]
    pub namespace: String,
}

/// Written by hand so that printing the settings (a debug log, a panic message) shows no
/// secret: Redis URLs (the URL, the cluster's seeds, sentinels given as URLs) lose their
/// user info, the sentinels' password is redacted.
impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |urls: &[String]| urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>();
        f.debug_struct("StoreArgs")
            .field("redis_host", &self.redis_host)
            .field("redis_port", &self.redis_port)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_cluster", &redacted(&self.redis_cluster))
            .field("sentinels", &redacted(&self.sentinels))
            .field("sentinel_master", &self.sentinel_master)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("shards", &self.shards)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl StoreArgs {
    /// The store's options for these settings, every other option at its default: the
    /// namespace, and the one place the store is, by precedence a cluster (sharded layout
    /// of [`shards`](Self::shards)), the sentinels (with the URL's password, database and
    /// TLS for the master), the URL, then host and port (each defaulting to
    /// [`Options::default`]'s). A program adds its own options to the result.
    pub fn options(&self) -> Options {
        let options = Options::default().namespace(self.namespace.clone());
        if !self.redis_cluster.is_empty() {
            return options
                .cluster(self.redis_cluster.clone())
                .key_layout(KeyLayout::Sharded {
                    shards: self.shards,
                });
        }
        if !self.sentinels.is_empty() {
            let mut options =
                options.sentinel(self.sentinels.clone(), self.sentinel_master.clone());
            if let Some(url) = &self.redis_url {
                options = options.url(url.clone());
            }
            if let Some(password) = &self.sentinel_password {
                options = options.sentinel_password(password.clone());
            }
            return options;
        }
        if let Some(url) = &self.redis_url {
            return options.url(url.clone());
        }
        let (default_host, default_port) = options.get_host_port();
        let host = self
            .redis_host
            .clone()
            .unwrap_or_else(|| default_host.to_owned());
        let port = self.redis_port.unwrap_or(default_port);
        options.host_port(host, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    /// A program without subcommands (as rest-sessions is).
    #[derive(Debug, Parser)]
    struct Flat {
        #[command(flatten)]
        store: StoreArgs,
    }

    /// A program with subcommands (as sessions-admin is).
    #[derive(Debug, Parser)]
    struct WithSub {
        #[command(flatten)]
        store: StoreArgs,
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Stats { app: Option<String> },
    }

    fn flat(args: &[&str]) -> StoreArgs {
        Flat::try_parse_from(std::iter::once("flat").chain(args.iter().copied()))
            .expect("valid flags")
            .store
    }

    #[test]
    fn defaults_are_the_options_defaults() {
        let options = flat(&[]).options();
        let defaults = Options::default();
        assert_eq!(options.get_host_port(), defaults.get_host_port());
        assert_eq!(options.namespace, "rs");
        assert_eq!(options.url, None);
        assert!(options.cluster.is_empty() && options.sentinels.is_empty());
        assert_eq!(options.key_layout, None);
        assert_eq!(format!("{options:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn maps_each_setting() {
        let options = flat(&[
            "--redis-host",
            "db",
            "--redis-port",
            "7",
            "--namespace",
            "n",
        ])
        .options();
        assert_eq!(options.get_host_port(), ("db", 7));
        assert_eq!(options.namespace, "n");
        // The original's spellings still work.
        let options = flat(&["--redishost", "db2", "--redisport", "8"]).options();
        assert_eq!(options.get_host_port(), ("db2", 8));
        let options = flat(&["--redisurl", "redis://:pw@h:1/2", "--redis-host", "x"]).options();
        assert_eq!(options.url.as_deref(), Some("redis://:pw@h:1/2"));

        let options = flat(&[
            "--redis-cluster",
            "redis://a:1,redis://b:2",
            "--shards",
            "12",
            "--redis-url",
            "redis://ignored:1",
        ])
        .options();
        assert_eq!(options.get_cluster(), ["redis://a:1", "redis://b:2"]);
        assert_eq!(options.key_layout, Some(KeyLayout::Sharded { shards: 12 }));
        assert_eq!(options.url, None, "a cluster takes no URL");

        let options = flat(&[
            "--sentinels",
            "s1:26379,s2:26379",
            "--sentinel-master",
            "m",
            "--sentinel-password",
            "spw",
            "--redis-url",
            "rediss://:pw@unused:1/3",
        ])
        .options();
        assert_eq!(
            options.get_sentinel(),
            (&["s1:26379".to_owned(), "s2:26379".to_owned()][..], "m")
        );
        assert_eq!(options.sentinel_password.as_deref(), Some("spw"));
        assert_eq!(options.url.as_deref(), Some("rediss://:pw@unused:1/3"));
        assert_eq!(options.key_layout, None);
    }

    #[test]
    fn cluster_and_sentinels_conflict() {
        let err = Flat::try_parse_from([
            "flat",
            "--sentinels",
            "h:1",
            "--redis-cluster",
            "redis://h:2",
        ])
        .expect_err("both given");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn global_flags_go_before_or_after_a_subcommand() {
        let before =
            WithSub::try_parse_from(["w", "--namespace", "n", "--redis-port", "7", "stats"])
                .expect("before");
        let after =
            WithSub::try_parse_from(["w", "stats", "app", "--namespace", "n", "--redis-port", "7"])
                .expect("after");
        assert_eq!(before.store, after.store);
        assert_eq!(after.store.namespace, "n");
        assert!(matches!(after.command, Sub::Stats { app: Some(ref a) } if a == "app"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let store = flat(&[
            "--redis-url",
            "redis://user:urlsecret@h:1/0",
            "--sentinels",
            "redis://:sentinelurlsecret@s:26379",
            "--sentinel-password",
            "sentinelsecret",
        ]);
        let shown = format!("{store:?}");
        for secret in ["urlsecret", "sentinelurlsecret", "sentinelsecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("h:1/0") && shown.contains("s:26379"),
            "{shown}"
        );
        let store = flat(&["--redis-cluster", "redis://:seedsecret@n1:7000"]);
        let shown = format!("{store:?}");
        assert!(
            !shown.contains("seedsecret") && shown.contains("n1:7000"),
            "{shown}"
        );
    }
}
