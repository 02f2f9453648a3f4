//! Webhooks: each app's lifecycle events POSTed to a receiver URL, signed, retried, at
//! least once, by a fleet of servers sharing the work.
//!
//! Delivery rides on the library's consumer group ([`redis_sessions::EventGroup`]): the
//! group's position in Redis is the delivery position, so a restarted server neither
//! starts over (floods) nor skips; an event is acknowledged only after the receiver
//! answered 2xx, so a server killed mid-delivery leaves it pending and it is delivered
//! again (once) by whichever member claims it after `RS_WEBHOOK_CLAIM_AFTER`; every
//! server of a fleet joins the same group, so each event is POSTed by one of them.
//!
//! Each app is delivered by its own task, so delivery never holds a request: a receiver
//! that is down costs the task its retries (exponential backoff with jitter, capped), and
//! the task keeps its events claimed meanwhile ([`redis_sessions::EventGroup::keep`]), so
//! no other member delivers them too. A member takes one batch per shard at a time
//! (`RS_WEBHOOK_BATCH`), so the fleet shares the work and no member holds events it is not
//! posting; memory is bounded by that take and one batch's body.

use crate::webhook_client::{PostError, Target};
use crate::webhook_sign;
use hyper::body::Bytes;
use redis_sessions::{EndReason, Event, EventGroup, EventType, RedisSessions};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

/// The consumer group every server's webhook deliveries share.
pub(crate) const GROUP: &str = "rest-sessions-webhooks";

/// Events delivered, by `app`.
pub(crate) const DELIVERED: &str = "rest_sessions_webhook_events_delivered_total";
/// Failed delivery attempts, by `app` and `reason` (`status`, `connect`, `tls`, `http`,
/// `timeout`).
pub(crate) const FAILED: &str = "rest_sessions_webhook_attempts_failed_total";
/// Seconds since the oldest event not yet delivered was written, by `app` (0 when caught
/// up).
pub(crate) const LAG: &str = "rest_sessions_webhook_lag_seconds";

/// The webhook settings (`RS_WEBHOOK_*`).
#[derive(Clone, Default, clap::Args)]
pub(crate) struct WebhookSettings {
    /// Receiver of the events of every app: each app is delivered from the first create
    /// this server serves for it (and those in RS_WEBHOOK_APPS from the start).
    #[arg(long = "webhook-url", env = "RS_WEBHOOK_URL", hide_env_values = true)]
    pub url: Option<String>,

    /// Receivers of single apps, `app=url` comma-separated; they win over RS_WEBHOOK_URL.
    #[arg(
        long = "webhook-urls",
        env = "RS_WEBHOOK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub urls: Vec<String>,

    /// Apps RS_WEBHOOK_URL delivers from the start, before a create for them reaches this
    /// server (apps written only by other writers: the library, the middleware).
    #[arg(long = "webhook-apps", env = "RS_WEBHOOK_APPS", value_delimiter = ',')]
    pub apps: Vec<String>,

    /// The secret deliveries are signed with (HMAC-SHA256, header `RS-Signature`).
    #[arg(
        long = "webhook-secret",
        env = "RS_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub secret: Option<String>,

    /// Most events in one POST.
    #[arg(long = "webhook-batch", env = "RS_WEBHOOK_BATCH", default_value_t = 20,
        value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch: u16,

    /// Seconds a receiver has to answer one POST.
    #[arg(long = "webhook-timeout", env = "RS_WEBHOOK_TIMEOUT", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout_s: u64,

    /// First retry delay in milliseconds; it doubles per failed attempt, with jitter.
    #[arg(long = "webhook-backoff-ms", env = "RS_WEBHOOK_BACKOFF_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub backoff_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long = "webhook-backoff-max-ms", env = "RS_WEBHOOK_BACKOFF_MAX_MS",
        default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub backoff_max_ms: u64,

    /// Seconds an event taken by a server that died stays with it before another server
    /// (or the same one restarted) delivers it.
    #[arg(long = "webhook-claim-after", env = "RS_WEBHOOK_CLAIM_AFTER", default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub claim_after_s: u64,

    /// This server's name in the group: unique in the fleet, stable across restarts
    /// [default: the host name and port].
    #[arg(long = "webhook-consumer", env = "RS_WEBHOOK_CONSUMER")]
    pub consumer: Option<String>,

    /// Most apps RS_WEBHOOK_URL delivers (each polls Redis while idle).
    #[arg(
        long = "webhook-max-apps",
        env = "RS_WEBHOOK_MAX_APPS",
        default_value_t = 100
    )]
    pub max_apps: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Receiver URLs may carry credentials; the secret is one.
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_deref().map(crate::redact::redact_url))
            .field("urls", &self.urls.len())
            .field("apps", &self.apps)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("batch", &self.batch)
            .field("timeout_s", &self.timeout_s)
            .field("backoff_ms", &(self.backoff_ms, self.backoff_max_ms))
            .field("claim_after_s", &self.claim_after_s)
            .field("consumer", &self.consumer)
            .field("max_apps", &self.max_apps)
            .finish()
    }
}

impl WebhookSettings {
    /// True when some receiver is configured.
    pub(crate) fn enabled(&self) -> bool {
        self.url.is_some() || !self.urls.is_empty()
    }
}

/// One event as a delivery carries it: the fields of `GET /{app}/events`'s events, with
/// `event_id` (unique in the app, the same on a redelivery: drop what you have seen) in
/// place of the cursor.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookEvent {
    /// The event's name, `shard:ms-seq`: the same each time it is delivered again.
    pub event_id: String,
    /// `created` or `ended`.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Why the session ended (null for `created`).
    pub reason: Option<EndReason>,
    /// The app.
    pub app: String,
    /// The session's user id.
    pub id: String,
    /// The session's device handle (never its token).
    pub device: String,
    /// The client address given at create.
    pub ip: String,
    /// The session's ttl in seconds, for `created`.
    pub ttl: Option<i64>,
    /// When it happened, ms since the epoch (Redis's clock).
    pub at_ms: u64,
}

/// The body of each webhook POST: one app's events, oldest first per stream (per shard
/// on a cluster), at most `RS_WEBHOOK_BATCH` of them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookDelivery {
    /// The app of every event in it.
    pub app: String,
    /// The events (1 to `RS_WEBHOOK_BATCH`).
    pub events: Vec<WebhookEvent>,
}

fn delivery(app: &str, events: &[Event]) -> WebhookDelivery {
    WebhookDelivery {
        app: app.to_owned(),
        events: events
            .iter()
            .map(|e| WebhookEvent {
                event_id: e.entry_id(),
                kind: e.kind,
                reason: e.reason,
                app: e.app.clone(),
                id: e.id.clone(),
                device: e.device.clone(),
                ip: e.ip.clone(),
                ttl: e.ttl,
                at_ms: e.at_ms,
            })
            .collect(),
    }
}

/// What every delivery task shares.
struct Shared {
    store: RedisSessions,
    settings: WebhookSettings,
    secret: Vec<u8>,
    consumer: String,
    all: Option<Arc<Target>>,
    stop: watch::Receiver<bool>,
    started: Mutex<(HashSet<String>, Vec<JoinHandle<()>>)>,
}

/// The running webhook deliveries: one task per app.
#[derive(Clone)]
pub(crate) struct Webhooks {
    shared: Arc<Shared>,
}

impl Webhooks {
    /// Checks the settings and starts a task for each app known now (RS_WEBHOOK_URLS,
    /// RS_WEBHOOK_APPS). `port` names this server in the group when RS_WEBHOOK_CONSUMER
    /// does not.
    pub(crate) fn start(
        store: RedisSessions,
        settings: &WebhookSettings,
        events: bool,
        port: u16,
        stop: watch::Receiver<bool>,
    ) -> Result<Option<Self>, String> {
        if !settings.enabled() {
            return Ok(None);
        }
        if !events {
            return Err("webhooks deliver lifecycle events: set RS_EVENTS=true".into());
        }
        if store.is_in_memory() {
            return Err("webhooks need the Redis store (their position is kept there)".into());
        }
        let secret = match settings.secret.as_deref() {
            Some(s) if !s.is_empty() => s.as_bytes().to_vec(),
            _ => return Err("webhooks are signed: set RS_WEBHOOK_SECRET".into()),
        };
        let all = settings
            .url
            .as_deref()
            .map(Target::parse)
            .transpose()?
            .map(Arc::new);
        let mut per_app = BTreeMap::new();
        for pair in &settings.urls {
            let (app, url) = pair
                .split_once('=')
                .ok_or("RS_WEBHOOK_URLS takes app=url pairs")?;
            redis_sessions::validate::app(app).map_err(|e| format!("RS_WEBHOOK_URLS: {e}"))?;
            per_app.insert(app.to_owned(), Arc::new(Target::parse(url)?));
        }
        if all.is_none() && !settings.apps.is_empty() {
            return Err("RS_WEBHOOK_APPS names apps for RS_WEBHOOK_URL, which is unset".into());
        }
        let consumer = settings.consumer.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "rest-sessions".into());
            format!("{host}:{port}")
        });
        let webhooks = Webhooks {
            shared: Arc::new(Shared {
                store,
                settings: settings.clone(),
                secret,
                consumer,
                all,
                stop,
                started: Mutex::new((HashSet::new(), Vec::new())),
            }),
        };
        for (app, target) in per_app {
            webhooks.spawn(app, target);
        }
        for app in &settings.apps {
            redis_sessions::validate::app(app).map_err(|e| format!("RS_WEBHOOK_APPS: {e}"))?;
            webhooks.saw(app);
        }
        tracing::info!(
            consumer = %webhooks.shared.consumer,
            every_app = webhooks.shared.all.is_some(),
            "webhooks: delivering"
        );
        Ok(Some(webhooks))
    }

    /// Notes that `app` has sessions (a create was served): with RS_WEBHOOK_URL its
    /// delivery starts now, if it has not and the app bound allows.
    pub(crate) fn saw(&self, app: &str) {
        let Some(target) = self.shared.all.clone() else {
            return;
        };
        {
            let started = self.lock();
            if started.0.contains(app) {
                return;
            }
            if started.0.len() >= self.shared.settings.max_apps {
                return;
            }
        }
        self.spawn(app.to_owned(), target);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<String>, Vec<JoinHandle<()>>)> {
        // A panic while holding this lock leaves plain data: keep using it.
        self.shared
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn spawn(&self, app: String, target: Arc<Target>) {
        let mut started = self.lock();
        if !started.0.insert(app.clone()) {
            return;
        }
        let shared = self.shared.clone();
        started
            .1
            .push(tokio::spawn(deliver_app(shared, app, target)));
    }

    /// Waits for the tasks to end after the stop signal: a POST in flight finishes (within
    /// RS_WEBHOOK_TIMEOUT) and is acknowledged; nothing new is taken.
    pub(crate) async fn finish(&self, within: Duration) {
        let tasks = std::mem::take(&mut self.lock().1);
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("webhooks: deliveries still running at shutdown; they are left pending");
        }
    }
}

/// Resolves when the stop signal has been given.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The delay before retry `attempt` (1-based): `backoff_ms` doubled per attempt, capped at
/// `backoff_max_ms`, then a random part of its upper half dropped, so a fleet that failed
/// together does not retry together.
fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    let base = settings
        .backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
        .min(settings.backoff_max_ms);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = base / 2;
    Duration::from_millis(base - random % (half + 1))
}

/// The oldest event's age in seconds, for the lag gauge.
fn age_s(events: &[Event]) -> f64 {
    let oldest = events.iter().map(|e| e.at_ms).min().unwrap_or(0);
    if oldest == 0 {
        return 0.0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(oldest) as f64 / 1000.0
}

/// The delivery loop of one app: join the group, then take, POST, acknowledge, until the
/// stop signal.
async fn deliver_app(shared: Arc<Shared>, app: String, target: Arc<Target>) {
    let mut stop = shared.stop.clone();
    let settings = &shared.settings;
    let claim_after = Duration::from_secs(settings.claim_after_s);
    let mut attempt = 0;
    let mut group = loop {
        let joined = shared
            .store
            .event_group(&app, GROUP, &shared.consumer, claim_after);
        let failed = tokio::select! {
            joined = joined => match joined {
                Ok(group) => break group,
                Err(err) => err,
            },
            _ = stopped(&mut stop) => return,
        };
        attempt += 1;
        tracing::warn!(app = %app, error = %failed, "webhooks: cannot join the consumer group");
        tokio::select! {
            _ = tokio::time::sleep(backoff(settings, attempt)) => {}
            _ = stopped(&mut stop) => return,
        }
    };
    metrics::gauge!(LAG, "app" => app.clone()).set(0.0);
    loop {
        let taken = tokio::select! {
            // One batch per shard at a time: the fleet's members share the work, and a
            // member holds no more events than it is posting.
            taken = group.next_up_to(usize::from(settings.batch)) => taken,
            _ = stopped(&mut stop) => return,
        };
        let taken = match taken {
            Ok(taken) => taken,
            Err(err) => {
                tracing::warn!(app = %app, error = %err, "webhooks: cannot read the events");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped(&mut stop) => return,
                }
            }
        };
        let mut rest: &[Event] = &taken;
        // A take is delivered batch by batch; against a slow receiver that can outlast
        // RS_WEBHOOK_CLAIM_AFTER, and another member would then claim (and post again) the
        // events still waiting here. So what is left of the take is kept claimed.
        let mut kept_at = tokio::time::Instant::now();
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(rest.len().min(usize::from(settings.batch)));
            metrics::gauge!(LAG, "app" => app.clone()).set(age_s(rest));
            keep_if_due(&group, &app, rest, keep_every(settings), &mut kept_at).await;
            if !deliver_batch(
                &shared,
                &group,
                &app,
                &target,
                batch,
                rest,
                &mut kept_at,
                &mut stop,
            )
            .await
            {
                return;
            }
            if let Err(err) = group.ack_all(batch).await {
                // Left pending: delivered once more after RS_WEBHOOK_CLAIM_AFTER.
                tracing::warn!(app = %app, error = %err, "webhooks: cannot acknowledge");
            }
            metrics::counter!(DELIVERED, "app" => app.clone()).increment(batch.len() as u64);
            rest = after;
        }
        metrics::gauge!(LAG, "app" => app.clone()).set(0.0);
    }
}

/// How often a member tells the group it still works on its events: three times per
/// `RS_WEBHOOK_CLAIM_AFTER`, so that one late call does not let another member claim them.
fn keep_every(settings: &WebhookSettings) -> Duration {
    Duration::from_secs(settings.claim_after_s) / 3
}

/// Keeps `pending` claimed when `kept_at` is [`keep_every`] old.
async fn keep_if_due(
    group: &EventGroup,
    app: &str,
    pending: &[Event],
    every: Duration,
    kept_at: &mut tokio::time::Instant,
) {
    if kept_at.elapsed() < every {
        return;
    }
    if let Err(err) = group.keep(pending).await {
        tracing::warn!(app, error = %err, "webhooks: cannot keep the events claimed");
    }
    *kept_at = tokio::time::Instant::now();
}

/// POSTs `batch` until the receiver answers 2xx (true), or the stop signal comes while
/// waiting to retry (false: the batch stays pending). `pending` (the batch and what
/// follows it in this take) is kept claimed while retrying.
#[allow(clippy::too_many_arguments)] // the delivery's state, passed down from its loop
async fn deliver_batch(
    shared: &Shared,
    group: &EventGroup,
    app: &str,
    target: &Target,
    batch: &[Event],
    pending: &[Event],
    kept_at: &mut tokio::time::Instant,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let settings = &shared.settings;
    let body = match serde_json::to_vec(&delivery(app, batch)) {
        Ok(body) => Bytes::from(body),
        // Plain strings and numbers always serialize; should it fail, skip nothing.
        Err(_) => return false,
    };
    let timeout = Duration::from_secs(settings.timeout_s);
    let mut attempt: u32 = 0;
    loop {
        if *stop.borrow() {
            return false;
        }
        attempt += 1;
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let headers = [
            (
                webhook_sign::HEADER,
                webhook_sign::signature(&shared.secret, t, &body),
            ),
            ("rs-delivery-attempt", attempt.to_string()),
        ];
        // Not raced with the stop signal: a POST under way finishes (bounded by the
        // timeout), so the receiver's answer is acknowledged rather than redelivered.
        let failure = match target.post(&headers, body.clone(), timeout).await {
            Ok(status) if status.is_success() => return true,
            Ok(status) => {
                tracing::warn!(
                    app,
                    status = status.as_u16(),
                    attempt,
                    "webhooks: receiver refused a delivery"
                );
                "status"
            }
            Err(err) => {
                log_failure(app, attempt, &err);
                err.label()
            }
        };
        metrics::counter!(FAILED, "app" => app.to_owned(), "reason" => failure).increment(1);
        metrics::gauge!(LAG, "app" => app.to_owned()).set(age_s(pending));
        keep_if_due(group, app, pending, keep_every(settings), kept_at).await;
        tokio::select! {
            _ = tokio::time::sleep(backoff(settings, attempt)) => {}
            _ = stopped(stop) => return false,
        }
    }
}

fn log_failure(app: &str, attempt: u32, err: &PostError) {
    tracing::warn!(app, attempt, error = %err, "webhooks: delivery failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let settings = WebhookSettings {
            backoff_ms: 100,
            backoff_max_ms: 1000,
            ..WebhookSettings::default()
        };
        for attempt in 1..40 {
            let base = (100u64 << (attempt - 1).min(30)).min(1000);
            let d = backoff(&settings, attempt).as_millis() as u64;
            assert!(
                d <= base && d >= base - base / 2,
                "{attempt}: {d} vs {base}"
            );
        }
        let spread: HashSet<_> = (0..50).map(|_| backoff(&settings, 5)).collect();
        assert!(spread.len() > 1, "jitter varies the delay");
    }
}
