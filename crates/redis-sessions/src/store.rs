//! [`RedisSessions`], the store users hold: validates every input in the contract's order,
//! then calls the backend (Redis or in memory), keeps the optional cache in step, and runs
//! the sweeper. A migrating store (two stores and a cut-over, see migration.rs) sends each
//! call to one or both of its stores, each a `RedisSessions` of its own.

use crate::app_stats::AppStats;
use crate::backend::Backend;
use crate::cache::{self, CacheStats};
use crate::clock::Clock;
use crate::data::initial_data;
use crate::device::{self, device_handle};
use crate::error::{Error, Result};
use crate::events::EndReason;
use crate::layout::Layout;
use crate::memory_store;
use crate::migration::{merge_by_activity, Migrating};
use crate::node_json;
use crate::options::{whole_seconds, CreateOptions, Options};
use crate::redis_store::{ConnectionStats, NodeStatus, RedisStore, Target, Timeouts};
use crate::session::{NewSession, Session};
use crate::sweeper;
use crate::token::token_created_ms;
use crate::validate;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A session store: cheap to clone (all clones share connections, cache and sweeper).
#[derive(Clone)]
pub struct RedisSessions {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
    cache: Option<Arc<cache::Cache>>,
    /// The sweeper and the cache's subscriber: stopped on quit and drop.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
    /// The two stores of a move, when this store is migrating: then every call goes to
    /// them (and `backend` is the new store's, unused by the calls).
    migrating: Option<Migrating<RedisSessions>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_tasks(&self.tasks);
    }
}

fn stop_tasks(tasks: &Mutex<Vec<JoinHandle<()>>>) {
    for task in tasks.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        task.abort();
    }
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match (&self.inner.migrating, &self.inner.backend) {
            (Some(_), _) => "migrating",
            (None, Backend::Redis(_)) => "redis",
            (None, Backend::Memory(_)) => "memory",
        };
        f.debug_struct("RedisSessions")
            .field("backend", &kind)
            .finish()
    }
}

impl RedisSessions {
    /// Connects to Redis. Fails when Redis cannot be reached now; once connected, a lost
    /// connection is re-established by itself, and calls made meanwhile fail fast with
    /// [`Error::Unavailable`]. Must be called inside a tokio runtime (the sweeper is a task).
    pub async fn connect(options: Options) -> Result<Self> {
        let layout = Layout::of(&options);
        let expire_keys = options.expire_keys.unwrap_or(layout.is_clustered());
        let timeouts = Timeouts {
            connect: options.connect_timeout,
            response: options.response_timeout,
        };
        if !options.cluster.is_empty() && !options.sentinels.is_empty() {
            return Err(Error::InvalidValue(
                "give either cluster nodes or sentinels, not both".into(),
            ));
        }
        let store = if options.cluster.is_empty() {
            let target = Target::of(&options).map_err(Error::from_redis)?;
            RedisStore::connect(
                target,
                layout.clone(),
                expire_keys,
                timeouts,
                options.min_replicas,
                options.refuse_writes_after_wipe,
                options.events,
            )
            .await?
        } else {
            RedisStore::connect_cluster(
                &options.cluster,
                layout.clone(),
                expire_keys,
                timeouts,
                options.read_from_replicas,
                options.min_replicas,
                options.events,
            )
            .await?
        };
        let cache = match options.cachetime {
            Duration::ZERO => None,
            ttl => Some(Self::start_cache(&options, ttl, &layout).await?),
        };
        Ok(Self::with_backend(Backend::Redis(store), &options, cache))
    }

    /// Starts the cache and its subscriber, and gives the subscription a moment so the
    /// cache serves from the first call. On one Redis it SUBSCRIBEs the Node module's
    /// channel; on a cluster it SSUBSCRIBEs every shard's channel (see cache.rs).
    async fn start_cache(
        options: &Options,
        ttl: Duration,
        layout: &Layout,
    ) -> Result<(Arc<cache::Cache>, JoinHandle<()>)> {
        let cache = cache::Cache::new(ttl, options.cachemax);
        let subscriber = if options.cluster.is_empty() {
            let target = Target::of(options).map_err(Error::from_redis)?;
            cache.subscribe(target, layout.cache_channel(), options.connect_timeout)
        } else {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let client = redis::cluster::ClusterClientBuilder::new(
                options.cluster.iter().map(String::as_str),
            )
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(tx)
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            .build()
            .map_err(Error::from_redis)?;
            let channels = layout.shards().iter().map(|s| s.cache_channel()).collect();
            cache::subscribe_sharded(&cache, client, channels, rx, options.connect_timeout)
        };
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        while !cache.is_subscribed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok((cache, subscriber))
    }

    /// The embedded store: the same behaviour in this process's memory, for tests, demos
    /// and single-process servers. Sessions are lost when the process ends. Must be called
    /// inside a tokio runtime when `wipe` is on. `cachetime` is ignored: the store is
    /// already in memory.
    #[must_use]
    pub fn in_memory(options: Options) -> Self {
        Self::with_backend(
            Backend::Memory(memory_store::MemoryStore::with_events(options.events)),
            &options,
            None,
        )
    }

    fn with_backend(
        backend: Backend,
        options: &Options,
        cache: Option<(Arc<cache::Cache>, JoinHandle<()>)>,
    ) -> Self {
        let sweeper = options
            .wipe_interval()
            .map(|every| sweeper::spawn(backend.clone(), options.clock.clone(), every));
        let (cache, subscriber) = cache.unzip();
        RedisSessions {
            inner: Arc::new(Inner {
                backend,
                clock: options.clock.clone(),
                cache,
                tasks: Mutex::new(sweeper.into_iter().chain(subscriber).collect()),
                closed: std::sync::atomic::AtomicBool::new(false),
                migrating: None,
            }),
        }
    }

    /// A store that moves sessions from `old` to `new` without logging anybody out (one
    /// Redis onto a cluster, a namespace onto another shard count; see CLUSTER.md's
    /// runbook). Sessions are created in `old` until `cutover`, in `new` from then on; a
    /// token is served by the store of its creation time until it expires; killsoid,
    /// killsoid_keep, kill_device, soid, soapp, activity, killall, the sweep, ping and
    /// `nodes` reach both. Each store keeps its own cache, sweeper and settings. Give every
    /// process of a fleet the same `cutover`, a little in the future, so that all of them
    /// switch at once; once the longest ttl has passed since it, drop `old`.
    ///
    /// `activity` adds the two stores' counts: a user active in both within the window
    /// (an old session still in use beside a new one) counts twice. A call that reaches
    /// both runs on both and fails when either fails (killsoid, killall and the sweep are
    /// safe to retry); get, set and kill fail only with the store they ask.
    pub fn migrating(
        old: RedisSessions,
        new: RedisSessions,
        cutover: std::time::SystemTime,
    ) -> Self {
        let cutover_ms = cutover
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        RedisSessions {
            inner: Arc::new(Inner {
                backend: new.inner.backend.clone(),
                clock: new.inner.clock.clone(),
                cache: None,
                tasks: Mutex::new(Vec::new()),
                closed: std::sync::atomic::AtomicBool::new(false),
                migrating: Some(Migrating::new(old, new, cutover_ms)),
            }),
        }
    }

    /// The cut-over instant of a migrating store (ms since the epoch), or None for a
    /// store that is not moving: `/health` shows it.
    pub fn migration_cutover_ms(&self) -> Option<u64> {
        self.inner.migrating.as_ref().map(|m| m.cutover_ms())
    }

    /// The two stores of a migrating store (after the closed check), or None.
    fn migration(&self) -> Result<Option<&Migrating<RedisSessions>>> {
        if self.inner.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        Ok(self.inner.migrating.as_ref())
    }

    /// The backend, or [`Error::Closed`] after [`quit`](Self::quit).
    pub(crate) fn backend(&self) -> Result<&Backend> {
        if self.inner.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        Ok(&self.inner.backend)
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Creates a session of user `id` in `app` and returns its token (64 characters).
    pub async fn create(
        &self,
        app: &str,
        id: &str,
        ip: &str,
        options: CreateOptions,
    ) -> Result<String> {
        if let Some(m) = self.migration()? {
            let side = m.for_create(crate::clock::now_millis());
            return Box::pin(side.create(app, id, ip, options)).await;
        }
        validate::app(app)?;
        validate::id(id)?;
        validate::ip(ip)?;
        let ttl = validate::ttl(options.ttl)?;
        let d = match &options.data {
            None | Some(Value::Null) => None,
            Some(d) => initial_data(validate::data(Some(d))?),
        };
        if let Some(d) = &d {
            crate::limits::check(d)?;
        }
        let new = NewSession {
            app,
            id,
            ip,
            ttl,
            d,
            no_resave: options.no_resave,
        };
        self.backend()?.create(&new, self.now()).await
    }

    /// The live session of `token`, counted as a read (its `r` is the count before this
    /// read), or None when there is none.
    pub async fn get(&self, app: &str, token: &str) -> Result<Option<Session>> {
        if let Some(m) = self.migration()? {
            let (own, other) = m.for_token(token);
            let session = Box::pin(own.get(app, token)).await?;
            return match (session, other) {
                (None, Some(other)) => Box::pin(other.get(app, token)).await,
                (session, _) => Ok(session),
            };
        }
        validate::app(app)?;
        validate::token(token)?;
        let backend = self.backend()?;
        let lookup = match &self.inner.cache {
            Some(cache) => match cache.lookup(app, token) {
                Ok(cached) => return Ok(Some(cached)),
                Err(lookup) => Some((cache, lookup)),
            },
            None => None,
        };
        let now = self.now();
        let session = backend
            .get(app, token, now)
            .await?
            .and_then(|r| r.into_session(now));
        if let (Some((cache, lookup)), Some(session)) = (lookup, &session) {
            cache.store(lookup, session);
        }
        Ok(session)
    }

    /// Merges `d` into the session's data (a null value deletes its key) and returns the
    /// updated session, or None when there is no live session. Atomic: concurrent sets
    /// never lose each other's keys.
    pub async fn set(&self, app: &str, token: &str, d: &Value) -> Result<Option<Session>> {
        if let Some(m) = self.migration()? {
            let (own, other) = m.for_token(token);
            let session = Box::pin(own.set(app, token, d)).await?;
            return match (session, other) {
                (None, Some(other)) => Box::pin(other.set(app, token, d)).await,
                (session, _) => Ok(session),
            };
        }
        validate::app(app)?;
        validate::token(token)?;
        let d = node_json::normalize(validate::data(Some(d))?);
        crate::limits::check(&d)?;
        let now = self.now();
        let record = self.backend()?.set(app, token, &d, now).await;
        self.forget(app, token);
        Ok(record?.and_then(|r| r.into_session(now)))
    }

    /// [`set`](Self::set) of a serializable struct or map, each field stored by the
    /// library's one value encoding (see [`value`](crate::value)): scalars as themselves,
    /// lists, maps, structs and integers past ±(2⁵³−1) as
    /// [`JSON_MARKER`](crate::value::JSON_MARKER) text, so they read back exactly with
    /// [`Session::get`]; a `None` field removes its key.
    ///
    /// # Errors
    /// `invalidValue` when `d` is not a struct or map, or holds NaN or an infinity.
    pub async fn set_typed<T: Serialize + ?Sized>(
        &self,
        app: &str,
        token: &str,
        d: &T,
    ) -> Result<Option<Session>> {
        let d = crate::value::encode_fields(d)?;
        self.set(app, token, &d).await
    }

    /// Ends a session. Returns true when a live session was removed, else false (a dead
    /// one not yet swept is removed too). Does not count as a read.
    pub async fn kill(&self, app: &str, token: &str) -> Result<bool> {
        self.kill_for(app, token, EndReason::Killed).await
    }

    /// [`kill`](Self::kill) of a session whose token was just replaced by a new one (a
    /// login or privilege change that rotates the token, as redis-sessions-axum does):
    /// the same one atomic call, its `ended` event saying `rotated` rather than `killed`,
    /// so a consumer tells "replaced" from "logged out".
    pub async fn kill_rotated(&self, app: &str, token: &str) -> Result<bool> {
        self.kill_for(app, token, EndReason::Rotated).await
    }

    /// kill, with the reason its ended event gives (events on).
    async fn kill_for(&self, app: &str, token: &str, reason: EndReason) -> Result<bool> {
        if let Some(m) = self.migration()? {
            let (own, other) = m.for_token(token);
            let live = Box::pin(own.kill_for(app, token, reason)).await?;
            return match (live, other) {
                (false, Some(other)) => Box::pin(other.kill_for(app, token, reason)).await,
                (live, _) => Ok(live),
            };
        }
        validate::app(app)?;
        validate::token(token)?;
        let live = self.backend()?.kill(app, token, self.now(), reason).await;
        self.forget(app, token);
        live
    }

    /// Ends every session of an app; returns how many. Works in bounded batches, so a huge
    /// app never blocks Redis for long (each batch is atomic, the whole is not).
    pub async fn killall(&self, app: &str) -> Result<u64> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(Box::pin(new.killall(app)), Box::pin(old.killall(app)));
            return Ok(a? + b?);
        }
        validate::app(app)?;
        let killed = self.backend()?.killall(app).await;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_app(app);
        }
        killed
    }

    /// Ends every session of one id ("log out everywhere"); returns how many.
    pub async fn killsoid(&self, app: &str, id: &str) -> Result<u64> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(
                Box::pin(new.killsoid(app, id)),
                Box::pin(old.killsoid(app, id))
            );
            return Ok(a? + b?);
        }
        validate::app(app)?;
        validate::id(id)?;
        let killed = self.backend()?.killsoid(app, id, None).await;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_id(app, id);
        }
        killed
    }

    /// Ends every session of one id but the one of `keep` ("sign out all other devices"),
    /// in the same atomic steps as [`killsoid`](Self::killsoid); returns how many ended.
    /// `keep` is the caller's own token, so only a holder of a session can spare it.
    pub async fn killsoid_keep(&self, app: &str, id: &str, keep: &str) -> Result<u64> {
        if let Some(m) = self.migration()? {
            // `keep` lives in one of the two; in the other it spares nothing.
            let [new, old] = m.both();
            let (a, b) = tokio::join!(
                Box::pin(new.killsoid_keep(app, id, keep)),
                Box::pin(old.killsoid_keep(app, id, keep))
            );
            return Ok(a? + b?);
        }
        validate::app(app)?;
        validate::id(id)?;
        validate::token(keep)?;
        let killed = self.backend()?.killsoid(app, id, Some(keep)).await;
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_id(app, id);
        }
        killed
    }

    /// Ends the session of `id` whose device handle (from [`soid`](Self::soid)) is
    /// `handle` ("sign out that laptop"). Returns true when a session ended, false when no
    /// session of this id has that handle (already ended, or the handle of another user's
    /// session).
    pub async fn kill_device(&self, app: &str, id: &str, handle: &str) -> Result<bool> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            if Box::pin(new.kill_device(app, id, handle)).await? {
                return Ok(true);
            }
            return Box::pin(old.kill_device(app, id, handle)).await;
        }
        validate::app(app)?;
        validate::id(id)?;
        if !device::is_handle(handle) {
            return Err(Error::InvalidFormat("Invalid handle format".into()));
        }
        let sessions = self.backend()?.soid(app, id).await?;
        let Some((token, _)) = sessions
            .into_iter()
            .find(|(token, _)| device_handle(token) == handle)
        else {
            return Ok(false);
        };
        self.kill_for(app, &token, EndReason::Device).await
    }

    /// How many distinct ids were active in the last `delta_time` (at least 10 s; whole
    /// seconds count).
    ///
    /// A migrating store adds its two stores' counts: a user active in both within the
    /// window counts twice (see [`migrating`](Self::migrating)).
    pub async fn activity(&self, app: &str, delta_time: Duration) -> Result<u64> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(
                Box::pin(new.activity(app, delta_time)),
                Box::pin(old.activity(app, delta_time))
            );
            return Ok(a? + b?);
        }
        validate::app(app)?;
        let dt = validate::delta_time(whole_seconds(delta_time))?;
        let since = self.now().saturating_sub(dt);
        self.backend()?.activity(app, since).await
    }

    /// The app's figures: sessions, users, how many of each were active within each of
    /// `windows` (whole seconds count; any length, a zero window counts nothing but this
    /// second's activity), and per shard, with the master that holds it on a cluster. Read
    /// from the indexes alone (a few O(log n) counts per shard, see
    /// [`AppStats`]): cheap at any app size, unlike counting
    /// [`soapp`](Self::soapp). For consoles and dashboards.
    ///
    /// A migrating store adds its two stores' counts (a user with sessions on both sides
    /// counts twice) and lists the new store's shards, then the old one's.
    pub async fn app_stats(&self, app: &str, windows: &[Duration]) -> Result<AppStats> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(
                Box::pin(new.app_stats(app, windows)),
                Box::pin(old.app_stats(app, windows))
            );
            return Ok(a?.add(b?));
        }
        validate::app(app)?;
        let now = self.now();
        let since: Vec<i64> = windows
            .iter()
            .map(|w| now.saturating_sub(i64::try_from(w.as_secs()).unwrap_or(i64::MAX)))
            .collect();
        self.backend()?.app_stats(app, &since).await
    }

    /// The live sessions active in the last `delta_time` (at least 10 s; whole seconds
    /// count), most recent first.
    pub async fn soapp(&self, app: &str, delta_time: Duration) -> Result<Vec<Session>> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(
                Box::pin(new.soapp(app, delta_time)),
                Box::pin(old.soapp(app, delta_time))
            );
            return Ok(merge_by_activity(a?, b?));
        }
        validate::app(app)?;
        let dt = validate::delta_time(whole_seconds(delta_time))?;
        let now = self.now();
        let records = self.backend()?.soapp(app, now.saturating_sub(dt)).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| r.into_session(now))
            .collect())
    }

    /// The live sessions of one id (its devices), most recently active first, each with
    /// its device handle (for [`kill_device`](Self::kill_device); never its token).
    pub async fn soid(&self, app: &str, id: &str) -> Result<Vec<Session>> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(Box::pin(new.soid(app, id)), Box::pin(old.soid(app, id)));
            return Ok(merge_by_activity(a?, b?));
        }
        validate::app(app)?;
        validate::id(id)?;
        let now = self.now();
        let mut records = self.backend()?.soid(app, id).await?;
        records.sort_by_key(|(_, r)| std::cmp::Reverse(r.la));
        Ok(records
            .into_iter()
            .filter_map(|(token, r)| {
                let mut session = r.into_session(now)?;
                session.handle = Some(device_handle(&token));
                session.created_ms = token_created_ms(&token);
                Some(session)
            })
            .collect())
    }

    /// Kills every session whose time has come, now; returns how many. The background
    /// sweeper calls this every `wipe` interval; tests and cron-like setups may call it.
    pub async fn sweep(&self) -> Result<u64> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(Box::pin(new.sweep()), Box::pin(old.sweep()));
            return Ok(a? + b?);
        }
        self.backend()?.sweep(self.now()).await
    }

    /// Drops this process's cached reply of a session it just wrote (read your own
    /// writes); other processes learn of the write through the invalidation channel.
    /// Done even when the write failed: it may have reached Redis before the failure.
    fn forget(&self, app: &str, token: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&Layout::cache_message(app, token));
        }
    }

    /// The cache's counters, or None when the cache is off.
    ///
    /// A migrating store adds its two stores' counters.
    #[must_use]
    pub fn cache_stats(&self) -> Option<CacheStats> {
        if let Some(m) = &self.inner.migrating {
            let [new, old] = m.both();
            return match (new.cache_stats(), old.cache_stats()) {
                (Some(a), Some(b)) => Some(CacheStats {
                    hits: a.hits + b.hits,
                    misses: a.misses + b.misses,
                    invalidations: a.invalidations + b.invalidations,
                    flushes: a.flushes + b.flushes,
                }),
                (a, b) => a.or(b),
            };
        }
        self.inner.cache.as_ref().map(|c| c.stats())
    }

    /// How many sessions the cache holds now (0 when it is off).
    #[must_use]
    pub fn cache_len(&self) -> u64 {
        if let Some(m) = &self.inner.migrating {
            return m.both().iter().map(|s| s.cache_len()).sum();
        }
        self.inner.cache.as_ref().map_or(0, |c| c.len())
    }

    /// `PONG` when the store answers.
    pub async fn ping(&self) -> Result<String> {
        if let Some(m) = self.migration()? {
            let [new, old] = m.both();
            let (a, b) = tokio::join!(Box::pin(new.ping()), Box::pin(old.ping()));
            b?;
            return a;
        }
        self.backend()?.ping().await
    }

    /// Each Redis node the store depends on (the server, or every master that serves
    /// slots in a cluster, and with replica reads every replica, marked
    /// [`NodeStatus::replica`]) and whether it answers a PING within `within` (each step: a
    /// cluster's topology, then the PINGs in parallel); empty for the in-memory store.
    /// For readiness checks that must say *which* node is away.
    ///
    /// A migrating store lists the nodes of both stores (each once).
    pub async fn nodes(&self, within: Duration) -> Vec<NodeStatus> {
        if let Some(m) = &self.inner.migrating {
            let [new, old] = m.both();
            let (mut a, b) = tokio::join!(Box::pin(new.nodes(within)), Box::pin(old.nodes(within)));
            for node in b {
                if !a
                    .iter()
                    .any(|n| n.node == node.node && n.replica == node.replica)
                {
                    a.push(node);
                }
            }
            return a;
        }
        match &self.inner.backend {
            Backend::Redis(store) => store.nodes(within).await,
            Backend::Memory(_) => Vec::new(),
        }
    }

    /// What the connection watchdog counted (timeouts, dropped connections, checks and
    /// stuck connections replaced), or None for the in-memory store. The same counts go
    /// to the `metrics` facade under the names in [`metric_names`](crate::metric_names).
    ///
    /// A migrating store adds its two stores' counts.
    #[must_use]
    pub fn connection_stats(&self) -> Option<ConnectionStats> {
        if let Some(m) = &self.inner.migrating {
            let [new, old] = m.both();
            return match (new.connection_stats(), old.connection_stats()) {
                (Some(a), Some(b)) => Some(ConnectionStats {
                    timeouts: a.timeouts + b.timeouts,
                    disconnects: a.disconnects + b.disconnects,
                    checks: a.checks + b.checks,
                    replacements: a.replacements + b.replacements,
                }),
                (a, b) => a.or(b),
            };
        }
        match &self.inner.backend {
            Backend::Redis(store) => Some(store.connection_stats()),
            Backend::Memory(_) => None,
        }
    }

    /// Stops the sweeper and the cache's subscriber; later calls on this store (and its clones) fail with
    /// [`Error::Closed`]. Connections close when the last clone is dropped.
    /// Synchronous: it only flips a flag and aborts the tasks, nothing to wait for.
    ///
    /// A migrating store quits both of its stores.
    pub fn quit(&self) {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        stop_tasks(&self.inner.tasks);
        if let Some(m) = &self.inner.migrating {
            m.both().iter().for_each(|s| s.quit());
        }
    }

    /// True when this store keeps sessions in process memory rather than Redis.
    ///
    /// (For a migrating store: whether its new store does.)
    #[must_use]
    pub fn is_in_memory(&self) -> bool {
        matches!(self.inner.backend, Backend::Memory(_))
    }
}
