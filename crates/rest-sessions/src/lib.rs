//! `rest-sessions`: the REST server over [`redis_sessions`], a drop-in replacement for the
//! Node.js `rest-sessions`. PHP, Python, Ruby, .NET or Java services behind one reverse
//! proxy share a single set of user sessions through it: same routes, same environment
//! variables, same reply shapes, plus defined errors, limits and outage behaviour.
//!
//! The binary is a thin shell around [`run`]: the library exports what `main.rs` needs
//! ([`Config`], [`init_tracing`], [`run`]) and nothing else; the tests drive the binary
//! over HTTP, as clients do.
//!
//! ```no_run
//! use clap::Parser;
//!
//! # async fn serve() -> Result<(), rest_sessions::StartError> {
//! let config = rest_sessions::Config::parse(); // flags, then the RS_* variables
//! rest_sessions::init_tracing(config.log_format);
//! rest_sessions::run(config).await // until SIGTERM or SIGINT
//! # }
//! ```
//!
//! ```
//! use clap::Parser;
//! let config = rest_sessions::Config::try_parse_from(["rest-sessions", "--store", "memory"])
//!     .expect("valid flags");
//! assert_eq!(config.store, rest_sessions::StoreKind::Memory);
//! assert_eq!(config.host, "127.0.0.1", "loopback unless told otherwise");
//! ```

#![warn(missing_docs)]
// `pub` only for what the crate exports: an item visible only inside says so
// (`pub(crate)`), so the public API is what the code declares public.
#![warn(unreachable_pub)]

mod auth;
mod config;
mod conn;
mod console;
mod deadline;
mod error;
mod events;
mod extract;
mod metrics;
mod migrate;
mod node_reply;
mod observe;
mod openapi;
mod overload;
mod redact;
mod replies;
mod routes;
mod schemas;
mod server;
mod state;
mod webhook;
mod webhook_client;
mod webhook_sign;

pub use config::{Config, LogFormat, StoreKind};

use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::Router;
use redis_sessions::RedisSessions;
use state::AppState;
use std::sync::Arc;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

/// How long in-flight requests may take to finish after a shutdown signal before the
/// server stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The longest the first connection to Redis may take at start.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// The whole HTTP API: the contract's routes, `/health`, `/metrics`, `/openapi.json`,
/// JSON 404/405 replies, the optional secret, logs and metrics. (The body limit and
/// timeout are applied where a handler reads its body, the store deadline around each
/// store call.)
fn router(state: AppState) -> Router {
    let mut routes = Router::new();
    if let Some(console) = state.console.clone() {
        let apps = console.clone();
        routes = routes
            .route("/console", get(move || async move { console.page() }))
            .route("/console/apps", get(move || async move { apps.apps() }));
    }
    routes
        .route("/ping", get(routes::ping))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/{app}/create/{id}", put(routes::create))
        .route("/{app}/get/{token}", get(routes::get))
        .route("/{app}/set/{token}", post(routes::set))
        .route("/{app}/activity", get(routes::activity))
        .route("/{app}/stats", get(routes::stats))
        .route("/{app}/soapp", get(routes::soapp))
        .route("/{app}/soid/{id}", get(routes::soid))
        .route("/{app}/kill/{token}", delete(routes::kill))
        .route("/{app}/killsoid/{id}", delete(routes::killsoid))
        .route(
            "/{app}/killdevice/{id}/{handle}",
            delete(routes::killdevice),
        )
        .route("/{app}/killall", delete(routes::killall))
        .route("/{app}/events", get(events::events))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // Innermost first: a panic becomes a JSON 500 that the outer layers still log.
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send + 'static>| error::ApiError::Internal.into_response(),
        ))
        .layer(from_fn_with_state(state.clone(), auth::require_token))
        .layer(from_fn(observe::observe))
        .with_state(state)
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The settings contradict themselves or are empty where a value is required.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Redis could not be reached at start; the message says what to do.
    #[error("{0}")]
    Redis(String),
    /// The listen address could not be bound (in use, no permission, bad host).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `host:port` as configured.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server failed while serving.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Sets up logging: `text` or `json` lines, level from `RUST_LOG` (default `info`).
/// Records of the `log` facade — the `redis` crate's cluster client logs its reconnects
/// and slot refreshes there — are turned into tracing events (tracing-subscriber's
/// `tracing-log`), so `RUST_LOG=redis=debug` shows them in the same stream.
/// Does nothing when a subscriber is already installed.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The cluster client logs every slot refresh at WARN ("beginning slot refresh"):
        // dozens of lines per ordinary slot move. Its errors still show.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,redis::cluster_handling=error")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Opens the configured store. Never falls back from Redis to memory by itself: a server
/// that silently kept sessions in one process would break every other process sharing them.
async fn open_store(config: &Config) -> Result<RedisSessions, StartError> {
    let options = config.store_options();
    if config.store == StoreKind::Memory {
        if config.migrate.cutover.is_some() {
            // Sessions in this process's memory cannot be moved anywhere: refuse rather
            // than ignore a migration the operator believes is running.
            return Err(StartError::Config(
                "RS_MIGRATE_CUTOVER needs the Redis store (RS_STORE=redis)".into(),
            ));
        }
        if config.redis_explicit() {
            tracing::warn!("RS_STORE=memory: the Redis settings are ignored");
        }
        tracing::warn!(
            "store: in memory — sessions live in this single process only and are lost at \
             exit; use the Redis store to share them between processes"
        );
        return Ok(RedisSessions::in_memory(options));
    }
    let old = config
        .migrate
        .options(
            &config.redis.namespace,
            config.wipe,
            (config.cachetime, config.cachemax),
        )
        .map_err(StartError::Config)?;
    let location = config.redis_location();
    let connected = tokio::time::timeout(CONNECT_DEADLINE, RedisSessions::connect(options)).await;
    let reason = match connected {
        Ok(Ok(store)) => {
            tracing::info!(redis = %location, namespace = %config.redis.namespace, "store: redis");
            return match (old, config.migrate.cutover) {
                (Some(old), Some(cutover)) => {
                    migrate::open(&config.migrate, old, store, cutover, CONNECT_DEADLINE)
                        .await
                        .map_err(StartError::Redis)
                }
                _ => Ok(store),
            };
        }
        // Redis answered, and the namespace does not fit these options (another layout,
        // a vanished layout record): the error says what it is and what to do; "cannot
        // connect" and `--store memory` would send the operator the wrong way.
        Ok(Err(err)) if err.kind() == redis_sessions::ErrorKind::Misconfigured => {
            return Err(StartError::Redis(err.to_string()));
        }
        Ok(Err(err)) => err.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_DEADLINE.as_secs()),
    };
    let message = if let Some(settings) = config.redis_settings_in_use() {
        format!(
            "cannot connect to Redis at {location} ({reason}), as configured by {settings}. \
             Check that Redis runs there and the settings are right, or run without Redis: \
             `--store memory` (RS_STORE=memory) keeps sessions in this process's memory \
             (single process, lost at exit)."
        )
    } else if config.redis_explicit() {
        format!(
            "cannot connect to Redis at {location} ({reason}), as configured by \
             RS_REDISHOST/RS_REDISPORT/RS_REDISURL (or --redis-host/--redis-port/--redis-url). \
             Check that Redis runs there and the settings are right, or run without Redis: \
             `--store memory` (RS_STORE=memory) keeps sessions in this process's memory \
             (single process, lost at exit)."
        )
    } else {
        format!(
            "cannot connect to Redis at {location} ({reason}); no Redis was configured, so \
             the default was tried. Start Redis there, point the server at one with \
             RS_REDISHOST/RS_REDISPORT or RS_REDISURL, or run without Redis: \
             `--store memory` (RS_STORE=memory) keeps sessions in this process's memory \
             (single process, lost at exit)."
        )
    };
    Err(StartError::Redis(message))
}

/// Runs the server until SIGTERM or SIGINT: opens the store, binds, serves, then drains
/// in-flight requests and closes the store.
pub async fn run(config: Config) -> Result<(), StartError> {
    let auth_token = match config.auth_token.as_deref() {
        Some("") => {
            return Err(StartError::Config(
                "RS_AUTH_TOKEN / --auth-token is empty; unset it or give a secret".into(),
            ))
        }
        Some(secret) => Some(Arc::<str>::from(secret)),
        None => None,
    };
    if config.console && auth_token.is_none() {
        return Err(StartError::Config(
            "RS_CONSOLE=true needs RS_AUTH_TOKEN: the console lists users' devices and signs \
             them out, so it is served only behind the shared secret; set RS_AUTH_TOKEN or \
             turn the console off"
                .into(),
        ));
    }
    if config.body_limit == 0 {
        return Err(StartError::Config(
            "RS_BODY_LIMIT must be at least 1".into(),
        ));
    }
    if config.max_connections == 0 {
        return Err(StartError::Config(
            "RS_MAX_CONNECTIONS must be at least 1".into(),
        ));
    }

    let open_files = server::raise_open_files_limit();
    let max_connections = server::effective_max_connections(config.max_connections, open_files);
    if max_connections < config.max_connections {
        tracing::warn!(
            configured = config.max_connections,
            open_files = open_files.unwrap_or(0),
            max_connections,
            "RS_MAX_CONNECTIONS does not fit the open-files limit; serving at most \
             max_connections connections (raise `ulimit -n` to serve more)"
        );
    }
    let memory_budget = config.memory_budget();
    if memory_budget < config.body_limit {
        return Err(StartError::Config(
            "RS_MEMORY_BUDGET is smaller than RS_BODY_LIMIT: no body at the limit could be \
             read"
                .into(),
        ));
    }
    let (per_address_connections, per_address_unfinished) =
        config.per_address_caps(max_connections);
    let overload = overload::Overload::new(overload::Settings {
        max_connections,
        per_address_connections,
        per_address_unfinished,
        memory_budget,
        timeouts: overload::Timeouts {
            header: config.header_timeout,
            idle: config.idle_timeout,
        },
    });

    let store = open_store(&config).await?;
    let memory_return = overload.clone().spawn_memory_return();
    let metrics = metrics::install();
    let upkeep = metrics.clone().map(metrics::spawn_upkeep);

    let addr = format!("{}:{}", config.host, config.port);
    let listener = server::bind(&config.host, config.port)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local_port = listener.local_addr().map_or(config.port, |a| a.port());
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    tracing::info!(
        addr = %local,
        store = config.store.as_str(),
        auth = auth_token.is_some(),
        body_limit = config.body_limit,
        max_connections,
        per_address_connections,
        per_address_unfinished,
        memory_budget,
        header_timeout_s = config.header_timeout.as_secs_f64(),
        idle_timeout_s = config.idle_timeout.as_secs_f64(),
        body_timeout_s = config.body_timeout.as_secs_f64(),
        events = config.events,
        events_maxlen = config.events.then_some(config.events_maxlen),
        events_max_streams = config.events.then_some(config.events_max_streams),
        console = config.console,
        "rest-sessions listening"
    );

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let webhooks = webhook::Webhooks::start(
        store.clone(),
        &config.webhook,
        config.events,
        local_port,
        stop_rx.clone(),
    )
    .map_err(StartError::Config)?;
    let state = AppState {
        store: store.clone(),
        store_kind: config.store,
        auth_token,
        metrics,
        body_limit: config.body_limit,
        body_timeout: config.body_timeout,
        health_detail: config.health_detail,
        overload: overload.clone(),
        events: config.events,
        event_shards: if config.redis.redis_cluster.is_empty() {
            1
        } else {
            config.redis.shards
        },
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.events_max_streams)),
        shutdown: stop_rx.clone(),
        webhooks: webhooks.clone(),
        console: config
            .console
            .then(|| Arc::new(console::Console::new(&config.console_apps))),
    };
    let signal = async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; finishing in-flight requests");
        let _ = stop_tx.send(true);
    };
    let serve = server::serve(
        listener,
        router(state),
        overload,
        (config.body_limit, config.body_timeout),
        signal,
    );
    let grace = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let result = tokio::select! {
        result = serve => result.map_err(StartError::Serve),
        _ = grace => {
            tracing::warn!("requests still running after the grace period; stopping anyway");
            Ok(())
        }
    };

    if let Some(webhooks) = webhooks {
        // A POST under way ends within its timeout; then its events are acknowledged.
        webhooks
            .finish(Duration::from_secs(config.webhook.timeout_s + 1))
            .await;
    }
    if let Some(task) = upkeep {
        task.abort();
    }
    memory_return.abort();
    store.quit();
    tracing::info!("rest-sessions stopped");
    result
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what orchestrators send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
