//! The names of the counters the store sends to the [`metrics`] facade. Nothing is
//! recorded until the application installs a recorder (rest-sessions installs the
//! Prometheus one), so the library pays next to nothing without one. Operators alert on
//! these: a stuck or flapping connection shows here before it shows as errors.
//!
//! The `redis` crate counts no redirections (MOVED/ASK) or retries that callers can read;
//! its log lines (target `redis`, e.g. `RUST_LOG=redis=debug`) tell of slot refreshes
//! and reconnects instead.

/// Calls to Redis that timed out (the client's response timeout or the store's own
/// bound of connect + response timeout).
pub const TIMEOUTS: &str = "redis_sessions_redis_timeouts_total";
/// Calls that failed because the connection was dropped or refused; the client opens a
/// new connection after each, so this counts reconnects.
pub const DISCONNECTS: &str = "redis_sessions_redis_disconnects_total";
/// Connection checks made after repeated timeouts, by `result`: `healthy` (the
/// connection answered a PING), `replaced` (it did not while a fresh one did),
/// `unreachable` (no fresh connection answered either: Redis itself is away),
/// `superseded` (under Sentinel: the store switched masters while the check ran, and the
/// fresh connection, to the master named before, was dropped).
pub const CHECKS: &str = "redis_sessions_connection_checks_total";
/// Stuck connections replaced by a fresh one, by `kind` (`single`, `cluster`).
pub const REPLACEMENTS: &str = "redis_sessions_connection_replacements_total";
/// Durable writes (see `Options::min_replicas`) that fewer replicas than asked confirmed
/// in time: each was answered with `notReplicated`. A rising count means replicas lag or
/// are down, and acknowledged writes are not protected against a failover meanwhile.
pub const NOT_REPLICATED: &str = "redis_sessions_not_replicated_total";
/// Times a store switched to another master because the sentinels named it (Sentinel
/// only): one per failover and connection (calls, each durable-write connection).
pub const MASTER_SWITCHES: &str = "redis_sessions_master_switches_total";
/// Cluster calls the store sent again because their slot was moving or their shard
/// failing over (ASK, MOVED, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, READONLY after the
/// client's own retries): high during a reshard or failover, zero otherwise.
pub const REDIRECT_RETRIES: &str = "redis_sessions_redirect_retries_total";
/// Times a running process put back its namespace's layout record after it vanished
/// (eviction, FLUSH, an operator): each is an incident worth a look.
pub const LAYOUT_RESTORED: &str = "redis_sessions_layout_record_restored_total";
/// Checks that found the layout record saying another layout than the process serves:
/// processes of two layouts share a namespace.
pub const LAYOUT_CONFLICTS: &str = "redis_sessions_layout_record_conflicts_total";
/// Replica reads (soid, soapp, activity with `read_from_replicas`) sent to the master
/// because the replica did not answer within half the response timeout or could not be
/// reached: a stalled, dead or lagging replica shows here.
pub const REPLICA_FALLBACKS: &str = "redis_sessions_replica_fallbacks_total";
/// Replicas Sentinel could promote beyond those durable writes wait for (gauge; Sentinel
/// only): above 0, an acknowledged durable write can be lost when one of those is
/// promoted. Set the minimum to `all` (`RS_MIN_REPLICAS=all`) to bring it to 0.
pub const UNCOVERED_REPLICAS: &str = "redis_sessions_durable_uncovered_replicas";
/// Times a store found its namespace's data gone from the master (the layout record it
/// wrote at start vanished: a master restarted in place without persistence, or a flush).
/// Every session written before is lost; see the README, "Bringing a failed master back".
pub const WIPES_DETECTED: &str = "redis_sessions_wipes_detected_total";
