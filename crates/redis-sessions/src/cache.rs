//! The optional in-process cache of `get` replies, kept coherent across a fleet through
//! invalidation messages (`{app}:{token}`).
//!
//! Every write script announces the sessions it touched. In the Node layout it PUBLISHes
//! on the Node module's channel (`{ns}:cache`), so Node processes with a cache and ours
//! drop entries whichever side wrote. In the cluster layout it SPUBLISHes on its shard's
//! channel (`{ns}:{tag}:cache`, in the shard's slot): a plain PUBLISH on a cluster is copied
//! to every node over the cluster bus, whether anybody listens or not, while a shard
//! channel's message stays on the shard's master and replicas. The cache then SSUBSCRIBEs
//! every shard's channel through a cluster connection, which follows the slots; when a
//! slot moves, Redis drops the subscriptions of its channel (`sunsubscribe`), the cache
//! is dropped and serves nothing until that channel is subscribed again on its new node. This process also
//! drops its own entries before a write returns (read your own writes). The cache only
//! serves while its subscription is up: when the subscription drops, the whole cache is
//! dropped and nothing is cached until it is back, so no stale entry survives an outage.

use crate::session::Session;
use futures_util::StreamExt;
use moka::policy::EvictionPolicy;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the cache was useful: for dashboards (the REST server's /metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// `get` calls answered from memory.
    pub hits: u64,
    /// `get` calls that went to Redis.
    pub misses: u64,
    /// Invalidation messages received (from any process, this one included).
    pub invalidations: u64,
    /// Times the whole cache was dropped because the subscription was interrupted.
    pub flushes: u64,
}

pub(crate) struct Cache {
    entries: moka::sync::Cache<String, Session>,
    /// False while the subscription is down: nothing is served or stored then.
    subscribed: AtomicBool,
    /// Moves on every invalidation, so a `get` that raced with one does not store what it
    /// read (it may be older than the write that was announced).
    epoch: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

/// What a `get` needs to store its reply afterwards.
pub(crate) struct Lookup {
    key: String,
    epoch: u64,
}

impl Cache {
    pub(crate) fn new(ttl: Duration, max: u64) -> Arc<Self> {
        Arc::new(Cache {
            entries: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_live(ttl)
                .eviction_policy(EvictionPolicy::lru())
                .support_invalidation_closures()
                .build(),
            subscribed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        })
    }

    /// The cached reply, or what is needed to store the reply about to be fetched.
    pub(crate) fn lookup(&self, app: &str, token: &str) -> Result<Session, Lookup> {
        let key = crate::layout::Layout::cache_message(app, token);
        let epoch = self.epoch.load(Ordering::SeqCst);
        if self.subscribed.load(Ordering::SeqCst) {
            if let Some(session) = self.entries.get(&key) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(session);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(Lookup { key, epoch })
    }

    /// Stores a fetched reply unless an invalidation (or outage) happened meanwhile.
    pub(crate) fn store(&self, lookup: Lookup, session: &Session) {
        if self.subscribed.load(Ordering::SeqCst)
            && self.epoch.load(Ordering::SeqCst) == lookup.epoch
        {
            self.entries.insert(lookup.key, session.clone());
        }
    }

    /// Drops one entry (`{app}:{token}`).
    pub(crate) fn invalidate(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(key);
    }

    /// Drops every entry of one id in an app (killsoid: the tokens are not known here).
    pub(crate) fn invalidate_id(&self, app: &str, id: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{app}:");
        let id = id.to_owned();
        // The closure only fails when closures are not enabled, which the builder does.
        let _ = self.entries.invalidate_entries_if(move |key, session| {
            key.starts_with(&prefix) && session.id == id
        });
    }

    /// Drops every entry of an app (killall).
    pub(crate) fn invalidate_app(&self, app: &str) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{app}:");
        let _ = self
            .entries
            .invalidate_entries_if(move |key, _| key.starts_with(&prefix));
    }

    /// The subscription was interrupted: serve nothing until it is whole again.
    fn interrupted(&self, why: &str) {
        if self.subscribed.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                why,
                "cache subscription interrupted; cache dropped, resubscribing"
            );
        }
        self.flush();
    }

    /// [`interrupted`](Self::interrupted) for the ordinary case of a slot move: logged
    /// at debug level only.
    fn flush_quietly(&self, why: &str) {
        if self.subscribed.swap(false, Ordering::SeqCst) {
            tracing::debug!(
                why,
                "cache subscription interrupted; cache dropped, resubscribing"
            );
        }
        self.flush();
    }

    fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }

    /// True while invalidations are being received.
    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    /// Number of cached sessions (after pending maintenance).
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Starts the subscriber task: subscribe, apply invalidations, and on any interruption
    /// drop everything and subscribe again — under Sentinel, on the master named then.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        target: crate::redis_store::Target,
        channel: String,
        connect_timeout: Duration,
    ) -> JoinHandle<()> {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            loop {
                match tokio::time::timeout(connect_timeout, subscribed(&target, &channel)).await {
                    Ok(Ok(pubsub)) => {
                        backoff = Duration::from_millis(50);
                        // Writes may have been announced while we were not listening.
                        cache.flush();
                        cache.subscribed.store(true, Ordering::SeqCst);
                        let mut messages = pubsub.into_on_message();
                        while let Some(message) = messages.next().await {
                            if let Ok(key) = message.get_payload::<String>() {
                                cache.invalidations.fetch_add(1, Ordering::Relaxed);
                                cache.invalidate(&key);
                            }
                        }
                        cache.subscribed.store(false, Ordering::SeqCst);
                        cache.flush();
                        tracing::warn!("cache subscription lost; cache dropped, resubscribing");
                    }
                    Ok(Err(err)) => tracing::debug!(error = %err, "cache subscription failed"),
                    Err(_) => tracing::debug!("cache subscription timed out"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        })
    }
}

/// The subscriber of the cluster layout: one shard channel per shard, through a cluster
/// connection in RESP3 whose pushes (messages, confirmations, disconnections) arrive on
/// one queue. The cache serves only while every channel is confirmed.
pub(crate) fn subscribe_sharded(
    cache: &Arc<Cache>,
    client: redis::cluster::ClusterClient,
    channels: Vec<String>,
    mut pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
    connect_timeout: Duration,
) -> JoinHandle<()> {
    let cache = Arc::clone(cache);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        let mut con = loop {
            match tokio::time::timeout(connect_timeout, client.get_async_connection()).await {
                Ok(Ok(con)) => break con,
                Ok(Err(err)) => tracing::debug!(error = %err, "cache subscription failed"),
                Err(_) => tracing::debug!("cache subscription timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        };
        let mut confirmed = std::collections::HashSet::new();
        // Channels not confirmed are asked for again on every tick, so a subscription
        // Redis dropped (slot moved) or one lost with a connection comes back by itself.
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A master replaced while its sockets stayed open (a stalled master): its
        // subscriptions go silent without any unsubscribe, and the new master announces
        // writes to nobody. So the masters serving slots are looked at every second; when
        // they change, the cache is dropped and every channel asked for again.
        let mut topology = tokio::time::interval(Duration::from_secs(1));
        topology.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut masters_seen: Option<Vec<(String, u16)>> = None;
        loop {
            tokio::select! {
                _ = topology.tick() => {
                    let asked = tokio::time::timeout(
                        connect_timeout,
                        con.route_command(
                            redis::cmd("CLUSTER").arg("NODES").clone(),
                            redis::cluster_routing::RoutingInfo::SingleNode(
                                redis::cluster_routing::SingleNodeRoutingInfo::RandomPrimary,
                            ),
                        ),
                    )
                    .await;
                    let text = match asked {
                        Ok(Ok(v)) => redis::from_redis_value::<String>(v).ok(),
                        _ => None,
                    };
                    if let Some(text) = text {
                        let mut now = crate::redis_store::masters(&text);
                        now.sort();
                        if masters_seen.as_ref().is_some_and(|seen| *seen != now) {
                            confirmed.clear();
                            cache.interrupted("the masters serving slots changed (failover)");
                        }
                        masters_seen = Some(now);
                    }
                }
                _ = tick.tick() => {
                    for channel in channels.iter().filter(|c| !confirmed.contains(*c)) {
                        let asked =
                            tokio::time::timeout(connect_timeout, con.ssubscribe(channel)).await;
                        if !matches!(asked, Ok(Ok(()))) {
                            tracing::debug!(channel, "cache shard subscription failed");
                        }
                    }
                }
                push = pushes.recv() => {
                    let Some(push) = push else { return };
                    let channel = push.data.first().and_then(|c| {
                        redis::from_redis_value_ref::<String>(c).ok()
                    });
                    match (push.kind, channel) {
                        (redis::PushKind::SMessage, _) => {
                            if let Some(Ok(key)) =
                                push.data.get(1).map(redis::from_redis_value_ref::<String>)
                            {
                                cache.invalidations.fetch_add(1, Ordering::Relaxed);
                                cache.invalidate(&key);
                            }
                        }
                        (redis::PushKind::SSubscribe, Some(channel)) => {
                            confirmed.insert(channel);
                            if confirmed.len() == channels.len() && !cache.is_subscribed() {
                                // Writes may have been announced while we were not listening.
                                cache.flush();
                                cache.subscribed.store(true, Ordering::SeqCst);
                            }
                        }
                        (redis::PushKind::SUnsubscribe, Some(channel)) => {
                            confirmed.remove(&channel);
                            // An ordinary slot move: no warning (one per moved shard).
                            cache.flush_quietly("a shard channel moved with its slot");
                        }
                        (redis::PushKind::Disconnection, _) => {
                            confirmed.clear();
                            cache.interrupted("a node connection was lost");
                        }
                        _ => {}
                    }
                }
            }
        }
    })
}

async fn subscribed(
    target: &crate::redis_store::Target,
    channel: &str,
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = target.client().await?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
