//! The middleware's settings, as the [`SessionLayer`](crate::layer::SessionLayer) builds
//! them and every request reads them.

use http::request::Parts;
use redis_sessions::RedisSessions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The cookie's `SameSite` attribute: how the browser sends it on cross-site requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Sent only to the same site: the strongest CSRF defence, but a link from another
    /// site arrives logged out.
    Strict,
    /// Sent to the same site and on top-level navigations from elsewhere (the default):
    /// links work, cross-site form posts do not carry the session.
    #[default]
    Lax,
    /// Sent everywhere; browsers require `Secure` with it (embedded, cross-site apps).
    None,
}

impl SameSite {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// When the cookie gets the `Secure` attribute (sent over HTTPS only).
///
/// The default is [`Always`](Self::Always), as in tower-sessions: production behind a TLS
/// proxy, or with its own TLS over HTTP/1.1, gets `Secure` with no setting to forget.
/// Browsers accept `Secure` cookies from `http://localhost` too; a plain-HTTP setup on
/// another host opts out with `.secure(false)` (logged at warn when the layer is built) or
/// uses [`Auto`](Self::Auto).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieSecure {
    /// Always (the default).
    #[default]
    Always,
    /// Never: plain-HTTP development setups only (logged at warn when the layer is built).
    Never,
    /// When the request came over HTTPS. A request counts as HTTPS when
    /// - its URI has the `https` scheme (HTTP/2 and HTTP/3 always carry it), or
    /// - it carries the [`Tls`](crate::Tls) extension: HTTP/1.1 requests do not name their
    ///   scheme, so an app that terminates TLS itself (axum-server with rustls, a
    ///   tokio-rustls acceptor) marks the requests of its TLS listener, or
    /// - with trusted proxies ([`SessionLayer::trusted_proxy_hops`](crate::SessionLayer::trusted_proxy_hops),
    ///   [`SessionLayer::trusted_proxies`](crate::SessionLayer::trusted_proxies)), the TLS-terminating one said so:
    ///   `X-Forwarded-Proto: https` or `Forwarded: proto=https`.
    ///
    /// For a server that serves both plain HTTP and HTTPS; the layer cannot see the
    /// connection of an HTTP/1.1 request, so a TLS listener of the app's own must add the
    /// [`Tls`](crate::Tls) extension, or its cookies go without `Secure`.
    Auto,
}

impl From<bool> for CookieSecure {
    fn from(on: bool) -> Self {
        if on {
            CookieSecure::Always
        } else {
            CookieSecure::Never
        }
    }
}

/// The cookie's attributes (its name aside, which defaults to the app name).
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub name: Option<String>,
    pub path: String,
    pub domain: Option<String>,
    pub http_only: bool,
    pub secure: CookieSecure,
    pub same_site: SameSite,
    pub max_age: Option<Duration>,
}

/// Things the layer reports once per layer rather than on every request, so a
/// misconfiguration is seen without flooding the log.
#[derive(Debug, Default)]
pub(crate) struct ReportedOnce {
    pub invalid_app: AtomicBool,
    pub insecure: AtomicBool,
    pub no_peer_address: AtomicBool,
}

impl ReportedOnce {
    /// True the first time it is called for `flag`.
    pub(crate) fn first(flag: &AtomicBool) -> bool {
        !flag.swap(true, Ordering::Relaxed)
    }
}

/// Computes the app name of a request, e.g. from its `Host` header (multi-tenant setups).
pub(crate) type AppFn = Arc<dyn Fn(&Parts) -> String + Send + Sync>;

/// Where a request's app name comes from.
#[derive(Clone)]
pub(crate) enum AppSource {
    Fixed(String),
    PerRequest(AppFn),
}

/// Everything the middleware needs, shared by every request.
#[derive(Clone)]
pub(crate) struct Config {
    pub store: RedisSessions,
    pub app: AppSource,
    pub cookie: CookieSettings,
    pub ttl: Option<Duration>,
    pub no_resave: bool,
    pub proxies: crate::proxy::Proxies,
    pub proxy_header: crate::proxy::ProxyHeader,
    pub bearer: bool,
    pub visitors: bool,
    pub absolute_timeout: Option<Duration>,
    /// Refresh the cookie's Max-Age on every request that uses a live session.
    pub rolling: bool,
    /// Save pending changes after a 5xx response too.
    pub save_on_server_error: bool,
    /// How long a replaced token is remembered as "rotated" (None: not remembered).
    pub rotation_grace: Option<Duration>,
    pub reported: Arc<ReportedOnce>,
    /// Tokens (by device handle) this process replaced lately, for the free check before
    /// a rolling refresh.
    pub rotated: Arc<RecentRotations>,
}

/// The device handles of the tokens this process replaced in the last grace period: a
/// rolling refresh checks them at no cost before sending an old token's cookie again.
#[derive(Debug, Default)]
pub(crate) struct RecentRotations {
    handles: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// More recent rotations than this are not remembered in memory (the store's mark still
/// is): bounded memory under a login storm.
const MAX_REMEMBERED_ROTATIONS: usize = 100_000;

impl RecentRotations {
    /// Remembers that `token` was replaced, for `grace`.
    pub(crate) fn insert(&self, token: &str, grace: Duration) {
        let now = std::time::Instant::now();
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if handles.len() >= MAX_REMEMBERED_ROTATIONS {
            handles.retain(|_, at| now.duration_since(*at) < grace);
        }
        if handles.len() < MAX_REMEMBERED_ROTATIONS {
            handles.insert(redis_sessions::device_handle(token), now);
        }
    }

    /// True when this process replaced `token` within `grace`.
    pub(crate) fn contains(&self, token: &str, grace: Duration) -> bool {
        let handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        handles
            .get(&redis_sessions::device_handle(token))
            .is_some_and(|at| at.elapsed() < grace)
    }
}

/// True for an app name the store accepts (the library's rule: `^[A-Za-z0-9_-]{3,20}$`).
pub(crate) fn is_app(app: &str) -> bool {
    redis_sessions::validate::app(app).is_ok()
}
