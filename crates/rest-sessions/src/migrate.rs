//! The `RS_MIGRATE_*` settings: the store sessions move out of, and the cut-over instant.
//! With them the server runs a migrating store (`RedisSessions::migrating`): sessions are
//! created in the old store until the cut-over and in the main store (`RS_REDIS*`) from
//! then on, and each token is served by the store of its creation time until it expires,
//! so a deployment moves from one Redis to a cluster, or to another shard count, without
//! logging anybody out (crates/redis-sessions/CLUSTER.md has the runbook).

use crate::redact::redact_url;
use redis_sessions::{Options, RedisSessions};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Where the sessions move out of. Unset (no `RS_MIGRATE_CUTOVER`): no migration.
#[derive(Clone, Default, clap::Args)]
pub(crate) struct MigrateFrom {
    /// The cut-over instant, as ms since the epoch or RFC 3339 (`2026-12-01T00:00:00Z`):
    /// sessions are created in the old store before it and in the main store from it on.
    /// The same for every process of the fleet, a little in the future when they start.
    #[arg(long = "migrate-cutover", env = "RS_MIGRATE_CUTOVER", value_parser = parse_cutover)]
    pub(crate) cutover: Option<SystemTime>,

    /// The old store on one Redis (`redis://[:password@]host:port/db`), in the
    /// Node-compatible layout.
    #[arg(
        long = "migrate-from-url",
        env = "RS_MIGRATE_FROM_URL",
        hide_env_values = true
    )]
    pub(crate) from_url: Option<String>,

    /// The old store on a Redis Cluster: its seed nodes, comma-separated (sharded layout,
    /// `RS_MIGRATE_FROM_SHARDS` shards).
    #[arg(
        long = "migrate-from-cluster",
        env = "RS_MIGRATE_FROM_CLUSTER",
        value_delimiter = ',',
        hide_env_values = true,
        conflicts_with = "from_url"
    )]
    pub(crate) from_cluster: Vec<String>,

    /// The old store under Sentinel: the sentinels, comma-separated `host:port` (the
    /// master's password and TLS from `RS_MIGRATE_FROM_URL` when set).
    #[arg(
        long = "migrate-from-sentinels",
        env = "RS_MIGRATE_FROM_SENTINELS",
        value_delimiter = ',',
        conflicts_with = "from_cluster"
    )]
    pub(crate) from_sentinels: Vec<String>,

    /// The old store's master name in the sentinels' configuration.
    #[arg(
        long = "migrate-from-sentinel-master",
        env = "RS_MIGRATE_FROM_SENTINEL_MASTER",
        default_value = "mymaster"
    )]
    pub(crate) from_sentinel_master: String,

    /// The old store's sentinels' own password, when they have one.
    #[arg(
        long = "migrate-from-sentinel-password",
        env = "RS_MIGRATE_FROM_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) from_sentinel_password: Option<String>,

    /// The old store's namespace [default: RS_NAMESPACE]. A shard-count change on one
    /// cluster moves between two namespaces of it.
    #[arg(long = "migrate-from-namespace", env = "RS_MIGRATE_FROM_NAMESPACE")]
    pub(crate) from_namespace: Option<String>,

    /// The old store's shard count, on a cluster.
    #[arg(
        long = "migrate-from-shards",
        env = "RS_MIGRATE_FROM_SHARDS",
        default_value_t = redis_sessions::DEFAULT_SHARDS
    )]
    pub(crate) from_shards: u16,
}

impl std::fmt::Debug for MigrateFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrateFrom")
            .field("cutover", &self.cutover.map(rfc3339))
            .field("url", &self.from_url.as_deref().map(redact_url))
            .field(
                "cluster",
                &self
                    .from_cluster
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("sentinels", &self.from_sentinels)
            .field("sentinel_master", &self.from_sentinel_master)
            .field(
                "sentinel_password",
                &self.from_sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("namespace", &self.from_namespace)
            .field("shards", &self.from_shards)
            .finish()
    }
}

impl MigrateFrom {
    /// The old store's options (its own place, namespace and layout; the main store's
    /// namespace when none is given, and its sweep and cache settings), or an error naming
    /// what is missing; None without a cut-over.
    /// Durable writes and replica reads stay with the main store: the old one only
    /// serves its sessions until they expire.
    pub(crate) fn options(
        &self,
        main_namespace: &str,
        wipe: u64,
        (cachetime, cachemax): (u64, u64),
    ) -> Result<Option<Options>, String> {
        let given = self.from_url.is_some()
            || !self.from_cluster.is_empty()
            || !self.from_sentinels.is_empty();
        if self.cutover.is_none() {
            return match given {
                true => Err("RS_MIGRATE_FROM_* is set without RS_MIGRATE_CUTOVER".into()),
                false => Ok(None),
            };
        }
        if !given {
            return Err(
                "RS_MIGRATE_CUTOVER needs the old store: RS_MIGRATE_FROM_URL, \
                        RS_MIGRATE_FROM_CLUSTER or RS_MIGRATE_FROM_SENTINELS"
                    .into(),
            );
        }
        let mut options = Options::default()
            .namespace(
                self.from_namespace
                    .clone()
                    .unwrap_or_else(|| main_namespace.to_owned()),
            )
            .wipe(std::time::Duration::from_secs(wipe))
            .cache(std::time::Duration::from_secs(cachetime), cachemax);
        if !self.from_cluster.is_empty() {
            options = options.cluster(self.from_cluster.clone()).key_layout(
                redis_sessions::KeyLayout::Sharded {
                    shards: self.from_shards,
                },
            );
        } else if !self.from_sentinels.is_empty() {
            options = options.sentinel(
                self.from_sentinels.clone(),
                self.from_sentinel_master.clone(),
            );
            if let Some(url) = &self.from_url {
                options = options.url(url.clone());
            }
            if let Some(password) = &self.from_sentinel_password {
                options = options.sentinel_password(password.clone());
            }
        } else if let Some(url) = &self.from_url {
            options = options.url(url.clone());
        }
        Ok(Some(options))
    }

    /// Where the old store is, for messages: no password.
    pub(crate) fn location(&self) -> String {
        if !self.from_cluster.is_empty() {
            let seeds: Vec<String> = self.from_cluster.iter().map(|u| redact_url(u)).collect();
            return format!("the cluster {}", seeds.join(","));
        }
        if !self.from_sentinels.is_empty() {
            return format!(
                "the master {:?} of the sentinels {}",
                self.from_sentinel_master,
                self.from_sentinels.join(",")
            );
        }
        self.from_url.as_deref().map(redact_url).unwrap_or_default()
    }
}

/// Connects the old store and joins it to the main one (`new`) as a migrating store.
/// A failure names the old store: the main one is already up, so the operator must not be
/// sent to look at it.
pub(crate) async fn open(
    from: &MigrateFrom,
    old: Options,
    new: RedisSessions,
    cutover: SystemTime,
    deadline: Duration,
) -> Result<RedisSessions, String> {
    let location = from.location();
    let connected = tokio::time::timeout(deadline, RedisSessions::connect(old)).await;
    let old = match connected {
        Ok(Ok(old)) => old,
        Ok(Err(err)) => {
            return Err(format!(
                "cannot open the store sessions move out of, at {location} \
                 (RS_MIGRATE_FROM_*): {err}"
            ))
        }
        Err(_) => {
            return Err(format!(
                "cannot open the store sessions move out of, at {location} \
                 (RS_MIGRATE_FROM_*): no answer within {} s",
                deadline.as_secs()
            ))
        }
    };
    let now = SystemTime::now();
    tracing::info!(
        from = %location,
        cutover = %rfc3339(cutover),
        "store: migrating — sessions are created in the old store until the cut-over and \
         in the main store from then on; tokens are served by the store of their creation"
    );
    if cutover <= now {
        tracing::warn!(
            cutover = %rfc3339(cutover),
            "RS_MIGRATE_CUTOVER has passed: a process of the fleet still without the \
             migrating settings creates sessions that this one looks for in the main store"
        );
    }
    Ok(RedisSessions::migrating(old, new, cutover))
}

/// `RS_MIGRATE_CUTOVER`: ms since the epoch, or an RFC 3339 date-time.
pub(crate) fn parse_cutover(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("`{text}` is neither ms since the epoch nor an RFC 3339 date-time (2026-12-01T00:00:00Z)")
    })
}

/// An RFC 3339 date-time (`2026-12-01T00:00:00Z`, any offset, any fraction), at or after
/// 1970.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(at.unix_timestamp_nanos()).ok()?);
    Some(at)
}

/// An instant as RFC 3339 in UTC with ms (`2026-12-01T00:00:00.000Z`), for `/health` and
/// logs; past year 9999 (a cut-over given in ms can be anything), its ms since the epoch.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    i128::try_from(ms)
        .ok()
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
        .and_then(|at| at.format(format).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis()
    }

    #[test]
    fn cutovers_parse_as_ms_or_rfc3339() {
        assert_eq!(
            parse_cutover("1796083200000").map(ms),
            Ok(1_796_083_200_000)
        );
        assert_eq!(
            parse_cutover("2026-12-01T00:00:00Z").map(ms),
            Ok(1_796_083_200_000)
        );
        assert_eq!(
            parse_cutover("2026-12-01T01:30:00.250+01:30").map(ms),
            Ok(1_796_083_200_250)
        );
        assert_eq!(parse_cutover("1970-01-01T00:00:00Z").map(ms), Ok(0));
        assert_eq!(
            parse_cutover("2024-02-29T12:00:00-00:00").map(ms),
            Ok(1_709_208_000_000)
        );
        for bad in [
            "",
            "tomorrow",
            "2026-12-01",
            "2026-12-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00:00+0100",
            "1969-12-31T23:59:59Z",
            "2026-12-01T00:00:00.Z",
        ] {
            assert!(parse_cutover(bad).is_err(), "{bad:?}");
        }
    }

    fn parse(args: &[&str]) -> crate::config::Config {
        use clap::Parser;
        let mut all = vec!["rest-sessions"];
        all.extend_from_slice(args);
        crate::config::Config::try_parse_from(all).expect("valid flags")
    }

    #[test]
    fn the_old_store_is_built_from_its_own_settings() {
        let c = parse(&["--redis-cluster", "redis://n1:7000", "--namespace", "rs2"]);
        assert!(
            matches!(c.migrate.options("rs2", 600, (0, 0)), Ok(None)),
            "no migration"
        );
        let c = parse(&[
            "--migrate-cutover",
            "2026-12-01T00:00:00Z",
            "--migrate-from-url",
            "redis://:oldsecret@old:6379/0",
        ]);
        let old = c
            .migrate
            .options("rs", 600, (0, 0))
            .expect("valid")
            .expect("on");
        assert!(old.get_cluster().is_empty());
        assert!(format!("{old:?}").contains("old:6379"), "{old:?}");
        let c = parse(&[
            "--migrate-cutover",
            "1796083200000",
            "--migrate-from-cluster",
            "redis://n1:7000,redis://n2:7000",
            "--migrate-from-shards",
            "60",
            "--migrate-from-namespace",
            "rs",
        ]);
        let old = c
            .migrate
            .options("rs2", 600, (0, 0))
            .expect("valid")
            .expect("on");
        assert_eq!(old.get_cluster().len(), 2);
        assert!(
            old.get_min_replicas().is_none(),
            "durable writes stay with the new store"
        );
        // Half a migration is a configuration error, both ways round.
        let c = parse(&["--migrate-from-url", "redis://old:6379"]);
        assert!(c.migrate.options("rs", 600, (0, 0)).is_err());
        let c = parse(&["--migrate-cutover", "1796083200000"]);
        assert!(c.migrate.options("rs", 600, (0, 0)).is_err());
        let shown = format!(
            "{:?}",
            parse(&[
                "--migrate-from-url",
                "redis://:oldsecret@old:6379/0",
                "--migrate-from-sentinel-password",
                "oldsentinelsecret",
            ])
        );
        assert!(
            !shown.contains("oldsecret") && !shown.contains("oldsentinelsecret"),
            "{shown}"
        );
        assert!(shown.contains("old:6379/0"), "{shown}");
    }

    #[test]
    fn instants_print_as_rfc3339_and_read_back() {
        for ms_since in [0u64, 1_796_083_200_000, 1_709_208_000_123, 951_782_400_000] {
            let at = UNIX_EPOCH + Duration::from_millis(ms_since);
            assert_eq!(parse_cutover(&rfc3339(at)), Ok(at), "{}", rfc3339(at));
        }
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_083_200_000)),
            "2026-12-01T00:00:00.000Z"
        );
    }
}
