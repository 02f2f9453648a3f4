//! The JSON replies of the routes: each is serialized as the contract's reply and derives
//! its OpenAPI schema, so the document describes exactly what is served.

use redis_sessions::Session;
use serde::Serialize;
use utoipa::ToSchema;

/// The reply of `create`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenReply {
    /// The new session's token: 64 characters.
    pub token: String,
}

/// A session, or `{}` when none is live (what the original replied): the reply of `get`
/// and `set`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum MaybeSession {
    /// The live session.
    Live(Session),
    /// No live session: serialized as `{}`.
    None(Empty),
}

/// `{}`: no live session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // for the schema: `{}` has no keys at all
#[schema(as = NoSession)]
pub(crate) struct Empty {}

impl From<Option<Session>> for MaybeSession {
    fn from(session: Option<Session>) -> Self {
        match session {
            Some(s) => MaybeSession::Live(s),
            None => MaybeSession::None(Empty {}),
        }
    }
}

/// The reply of `activity`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActivityReply {
    /// Distinct ids active in the window.
    pub activity: u64,
}

/// The reply of `stats`: an app's figures from its indexes (see
/// [`redis_sessions::AppStats`]), with the windows they were counted over.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsReply {
    /// Live sessions (a session past its end counts until the sweep removes it).
    pub sessions: u64,
    /// Distinct ids with at least one session.
    pub users: u64,
    /// The windows counted, in seconds, in the order asked.
    pub windows: Vec<u64>,
    /// Sessions active within each window.
    pub sessions_active: Vec<u64>,
    /// Ids active within each window (what `activity` answers).
    pub users_active: Vec<u64>,
    /// Per shard of the layout (one in the Node layout), with the master that holds it
    /// on a Redis Cluster.
    pub shards: Vec<ShardReply>,
}

/// One shard's part of an app.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShardReply {
    /// The shard's number in the layout.
    pub shard: usize,
    /// `host:port` of the master holding it (Redis Cluster), else null.
    pub node: Option<String>,
    /// Its sessions of the app.
    pub sessions: u64,
    /// Its ids of the app.
    pub users: u64,
}

impl StatsReply {
    /// The library's figures, counted over `windows` (seconds).
    pub(crate) fn new(windows: Vec<u64>, stats: redis_sessions::AppStats) -> Self {
        StatsReply {
            sessions: stats.sessions,
            users: stats.users,
            windows,
            sessions_active: stats.sessions_active,
            users_active: stats.users_active,
            shards: stats
                .shards
                .into_iter()
                .map(|s| ShardReply {
                    shard: s.shard,
                    node: s.node,
                    sessions: s.sessions,
                    users: s.users,
                })
                .collect(),
        }
    }
}

/// The reply of `soapp` and `soid`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // for the schema: `sessions` is the only key
#[schema(as = Sessions)]
pub(crate) struct SessionsReply {
    /// Live sessions, most recently active first.
    pub sessions: Vec<Session>,
}

/// The reply of `kill`, `killsoid` and `killall`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KillReply {
    /// How many sessions were removed.
    pub kill: u64,
}

/// The contract's `{"kill": 0 or 1}` of a single kill, which the library answers yes/no.
impl From<bool> for KillReply {
    fn from(killed: bool) -> Self {
        KillReply {
            kill: u64::from(killed),
        }
    }
}

/// The reply of `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthReply {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// `redis` or `memory`.
    pub store: &'static str,
    /// Why the store is unavailable (or, with `status` `ok`, which replicas do not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Redis nodes that did not answer (the server, or masters serving slots, and with
    /// replica reads the replicas); left out when every node answered.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<UnreachableNode>,
    /// Every Redis node asked (the server, or on a cluster each master, and with replica
    /// reads the replicas) and whether it answered: where the data lives, which the
    /// console shows. Only for callers with the secret (or all with `RS_HEALTH_DETAIL`),
    /// like `unreachable`; left out for the in-memory store.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<HealthNode>,
    /// A migration in progress (`RS_MIGRATE_*`: the nodes above are those of both
    /// stores); left out when the server runs one store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationState>,
}

/// What `/health` says of a migration in progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MigrationState {
    /// The cut-over instant (`RS_MIGRATE_CUTOVER`), RFC 3339 in UTC.
    pub cutover: String,
    /// The same instant in ms since the epoch.
    #[serde(rename = "cutoverMs")]
    pub cutover_ms: u64,
    /// True once the cut-over has passed: new sessions go to the main store.
    #[serde(rename = "cutOver")]
    pub cut_over: bool,
}

/// A Redis node `/health` asked.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthNode {
    /// `host:port`.
    pub node: String,
    /// True for a replica (listed on a cluster with replica reads).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// Whether it answered the PING.
    pub ok: bool,
}

/// A Redis node that did not answer `/health`'s PING.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnreachableNode {
    /// `host:port`.
    pub node: String,
    /// What the client said.
    pub error: String,
    /// True for a replica (listed on a cluster with replica reads): its reads go to the
    /// master meanwhile, so it does not make `/health` unavailable.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
}
