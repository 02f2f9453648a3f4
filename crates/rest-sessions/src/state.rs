//! What every handler shares.

use crate::config::StoreKind;
use metrics_exporter_prometheus::PrometheusHandle;
use redis_sessions::RedisSessions;
use std::sync::Arc;
use std::time::Duration;

/// What every handler needs; cheap to clone (the store and secrets are shared).
#[derive(Clone)]
pub(crate) struct AppState {
    /// The session store (Redis or in memory).
    pub store: RedisSessions,
    /// Which store it is, for `/health`.
    pub store_kind: StoreKind,
    /// The shared secret callers must present, when one is configured.
    pub auth_token: Option<Arc<str>>,
    /// The Prometheus recorder's handle, rendered at `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// How long a client may take to send a request body.
    pub body_timeout: Duration,
    /// Whether `/health` shows its detail to callers without the secret.
    pub health_detail: bool,
    /// The connection table and request-bytes budget, for `/metrics`.
    pub overload: Arc<crate::overload::Overload>,
    /// Whether lifecycle events are written (`RS_EVENTS`), so `/{app}/events` serves.
    pub events: bool,
    /// Event streams per app (the shards on a cluster, else 1): the positions `/{app}/events`
    /// accepts, which `/openapi.json` documents.
    pub event_shards: u16,
    /// One permit per event stream served (`RS_EVENTS_MAX_STREAMS`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Turns true at the shutdown signal: event streams end then, so the server drains.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The webhook deliveries (`RS_WEBHOOK_*`), told of each app a create names.
    pub webhooks: Option<crate::webhook::Webhooks>,
    /// The operator console (`RS_CONSOLE`): its routes exist only when it is on.
    pub console: Option<Arc<crate::console::Console>>,
}
