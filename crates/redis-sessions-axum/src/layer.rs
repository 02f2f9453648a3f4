//! [`SessionLayer`], the middleware's public face: built with safe defaults, changed with
//! its setters, and added to a router as a tower `Layer`.

use crate::config::{
    is_app, AppSource, Config, CookieSecure, CookieSettings, ReportedOnce, SameSite,
};
use crate::proxy::{Proxies, ProxyHeader};
use crate::service::SessionService;
use http::request::Parts;
use redis_sessions::RedisSessions;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How long a replaced token answers 409 rather than "no session" (see
/// [`SessionLayer::rotation_grace`]).
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(60);

/// The session middleware, as a [`tower::Layer`](tower_layer::Layer): add it to an axum
/// `Router` (or any tower stack) and handlers get a [`Session`](crate::Session).
///
/// It reads the token from the cookie (or `Authorization: Bearer`), lets the handler use
/// the session, then writes the changed data once and sets or clears the cookie. Built
/// with defaults that are safe for a browser app: cookie named after the app, `Path=/`,
/// `HttpOnly`, `SameSite=Lax`, `Secure` (opt out for plain-HTTP development), a
/// browser-session cookie, a
/// session ttl of 7200 s, and proxy headers ignored.
///
/// ```
/// use redis_sessions::{Options, RedisSessions};
/// use redis_sessions_axum::{SameSite, SessionLayer};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let layer = SessionLayer::new(RedisSessions::in_memory(Options::default()), "shop")
///     .secure(true)
///     .same_site(SameSite::Strict)
///     .max_age(std::time::Duration::from_secs(30 * 24 * 3600))
///     .ttl(std::time::Duration::from_secs(30 * 24 * 3600));
/// # let _ = layer; }
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionLayer {
    config: Arc<Config>,
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = match &self.config.app {
            AppSource::Fixed(app) => app.as_str(),
            AppSource::PerRequest(_) => "<per request>",
        };
        f.debug_struct("SessionLayer")
            .field("app", &app)
            .field("cookie", &self.config.cookie)
            .field("ttl", &self.config.ttl)
            .field("proxies", &self.config.proxies)
            .field("visitors", &self.config.visitors)
            .field("absolute_timeout", &self.config.absolute_timeout)
            .field("store", &self.config.store)
            .finish()
    }
}

impl SessionLayer {
    /// Sessions of the app `app` (its namespace in the store, and the cookie's name),
    /// kept in `store` — [`RedisSessions::connect`] for Redis, or
    /// [`RedisSessions::in_memory`] for one process.
    ///
    /// # Panics
    /// When `app` does not match `^[A-Za-z0-9_-]{3,20}$`: a configuration mistake is
    /// reported at start-up rather than as a 500 on every request.
    pub fn new(store: RedisSessions, app: impl Into<String>) -> Self {
        let app = app.into();
        assert!(
            is_app(&app),
            "session app name {app:?} must match ^[A-Za-z0-9_-]{{3,20}}$"
        );
        Self::build(store, AppSource::Fixed(app))
    }

    /// Sessions whose app is computed for each request, e.g. from the `Host` header,
    /// so one server keeps the sessions of several sites apart.
    ///
    /// A name the store would refuse (not `^[A-Za-z0-9_-]{3,20}$`, e.g. a host name of more
    /// than 20 characters) is a configuration error: it is logged once at error level, and
    /// only the routes that take a [`Session`](crate::Session) answer 500
    /// ([`SessionError::InvalidApp`](crate::SessionError::InvalidApp)); routes that do not
    /// use the session are served as usual. Map every host your server answers to a valid
    /// name, e.g. with a lookup table and a fallback.
    pub fn per_request_app<F>(store: RedisSessions, app: F) -> Self
    where
        F: Fn(&Parts) -> String + Send + Sync + 'static,
    {
        Self::build(store, AppSource::PerRequest(Arc::new(app)))
    }

    fn build(store: RedisSessions, app: AppSource) -> Self {
        SessionLayer {
            config: Arc::new(Config {
                store,
                app,
                cookie: CookieSettings {
                    name: None,
                    path: "/".into(),
                    domain: None,
                    http_only: true,
                    secure: CookieSecure::Always,
                    same_site: SameSite::Lax,
                    max_age: None,
                },
                ttl: None,
                no_resave: false,
                proxies: Proxies::None,
                proxy_header: ProxyHeader::XForwarded,
                bearer: true,
                visitors: false,
                absolute_timeout: None,
                rotation_grace: Some(DEFAULT_ROTATION_GRACE),
                save_on_server_error: false,
                rolling: true,
                reported: Arc::default(),
                rotated: Arc::default(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Names the cookie (default: the app name, as connect-redis-sessions did).
    ///
    /// # Panics
    /// When `name` is empty or has characters a cookie name may not have.
    pub fn cookie_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)),
            "invalid cookie name {name:?}"
        );
        self.edit(|c| c.cookie.name = Some(name))
    }

    /// Sets the cookie's `Path` (default `/`, so every page of the site sees the session).
    pub fn cookie_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.edit(|c| c.cookie.path = path)
    }

    /// Sets the cookie's `Domain`, to share the session with subdomains (default: none,
    /// the cookie stays on the exact host).
    pub fn cookie_domain(self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        self.edit(|c| c.cookie.domain = Some(domain))
    }

    /// Turns `HttpOnly` off or on (default on: page scripts, and so XSS, cannot read the
    /// token). Turn it off only when scripts must see the token.
    pub fn http_only(self, on: bool) -> Self {
        self.edit(|c| c.cookie.http_only = on)
    }

    /// When to mark the cookie `Secure`: `true` (the default), `false` for plain-HTTP
    /// development (logged at warn when the layer is built, so it is not forgotten in
    /// production), or [`CookieSecure::Auto`] (on HTTPS requests only).
    ///
    /// # Panics
    /// When the cookie is [`SameSite::None`] and `secure` is not `true`: browsers drop
    /// such a cookie.
    pub fn secure(self, secure: impl Into<CookieSecure>) -> Self {
        let secure = secure.into();
        check_same_site(self.config.cookie.same_site, secure);
        self.edit(|c| c.cookie.secure = secure)
    }

    /// Sets `SameSite` (default [`SameSite::Lax`]).
    ///
    /// # Panics
    /// [`SameSite::None`] unless `Secure` is always on (the default): browsers drop a
    /// `SameSite=None` cookie without `Secure`, so the session would silently not stick.
    pub fn same_site(self, same_site: SameSite) -> Self {
        check_same_site(same_site, self.config.cookie.secure);
        self.edit(|c| c.cookie.same_site = same_site)
    }

    /// Gives the cookie a `Max-Age`, so it outlives the browser (a "remember me" login).
    /// Without it (the default) the cookie is a browser-session cookie, forgotten when the
    /// browser closes. The session itself lives for its [`ttl`](Self::ttl) in the store.
    pub fn max_age(self, max_age: impl Into<Option<Duration>>) -> Self {
        let max_age = max_age.into();
        self.edit(|c| c.cookie.max_age = max_age)
    }

    /// The inactivity after which a session dies in the store (default 7200 s). Whole
    /// seconds count (the store keeps ttls in seconds).
    ///
    /// # Panics
    /// When `ttl` is shorter than 10 s, which the store refuses.
    pub fn ttl(self, ttl: Duration) -> Self {
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        if let Err(err) = redis_sessions::validate::ttl(Some(seconds)) {
            panic!("session ttl {ttl:?}: {err}");
        }
        self.edit(|c| c.ttl = Some(ttl))
    }

    /// Makes sessions end at login time + ttl however active they are: the ttl becomes
    /// an absolute timeout and there is no idle timeout. Default off: the ttl counts from
    /// the last request. To have both an idle and an absolute timeout (as OWASP
    /// recommends), keep this off and use [`absolute_timeout`](Self::absolute_timeout).
    pub fn no_resave(self, on: bool) -> Self {
        self.edit(|c| c.no_resave = on)
    }

    /// Ends every session `limit` after the user's **first** login, however active it is
    /// and however often its token changed since ([`rotate`](crate::Session::rotate), a
    /// new [`upgrade`](crate::Session::upgrade) of the same user): the absolute timeout of
    /// OWASP's session management guidance, on top of the idle timeout
    /// ([`ttl`](Self::ttl)). The login time is kept in the session (`$rs:login`, see
    /// [`RESERVED_PREFIX`](crate::RESERVED_PREFIX)); sessions without it (visitors', or
    /// created before) count from their token's creation time. A token older than the
    /// limit ends without a store read. A session past it is killed in the store and the
    /// request goes on as a visitor's. Default: none (sessions live while they are used);
    /// OWASP suggests 4 to 8 hours for most apps.
    ///
    /// # Panics
    /// When `limit` is shorter than 10 seconds.
    pub fn absolute_timeout(self, limit: impl Into<Option<Duration>>) -> Self {
        let limit = limit.into();
        assert!(
            limit.is_none_or(|l| l >= Duration::from_secs(10)),
            "absolute timeout must be >= 10 seconds"
        );
        self.edit(|c| c.absolute_timeout = limit)
    }

    /// Refreshes the cookie's `Max-Age` on every request that uses a live session (default
    /// on), so a persistent cookie ([`max_age`](Self::max_age) or a session's own
    /// [`set_expiry`](crate::Session::set_expiry)) ends that long after the **last**
    /// request, like the session's idle timeout in the store, not after login. Free: a
    /// `Set-Cookie` header on the response, no store call. It only concerns requests that
    /// take the [`Session`](crate::Session) and carry the cookie (not a Bearer token);
    /// browser-session cookies (no max age) have nothing to refresh.
    pub fn rolling(self, on: bool) -> Self {
        self.edit(|c| c.rolling = on)
    }

    /// Saves the changes of a request whose response is a server error (5xx). Default
    /// off, as in tower-sessions: a handler that fails half-way leaves the session as it
    /// was, and a visitor's failed request creates no session. What was already done by
    /// a store call during the request stays done: a login (`upgrade`, `rotate`) and its
    /// cookie, a logout, an explicit [`save`](crate::Session::save).
    pub fn save_on_server_error(self, on: bool) -> Self {
        self.edit(|c| c.save_on_server_error = on)
    }

    /// How long a token replaced by a login ([`upgrade`](crate::Session::upgrade)) or a
    /// [`rotate`](crate::Session::rotate) is remembered as replaced (default 60 s, at least
    /// 10 s; `None` turns it off).
    ///
    /// A browser that logs in while other requests are on their way (an SPA polling,
    /// parallel fetches, a second tab) sends those with the old token. Without this, the
    /// first of them to end would find no session, clear the cookie the login just set and
    /// drop its writes. With it, such a request — old token seen after the rotation, or
    /// the rotation seen at its save — answers **409**
    /// ([`SessionError::Rotated`](crate::SessionError::Rotated)): nothing it wrote is
    /// saved, its cookie is left alone, and a retry carries the new cookie.
    ///
    /// Why a retryable error rather than forwarding the old token to the new session: a
    /// forwarded token would let whoever planted a token before login (session fixation)
    /// write into the victim's new session during the grace period. The mark is a tiny
    /// session of the store (user id `visitor:rotated:` + the old token's device handle,
    /// never the token), one more store call per login that replaces a session and one
    /// per request with a dead token; being a `visitor:` id, `is_visitor_id` leaves it out
    /// of listings.
    ///
    /// # Panics
    /// When `grace` is shorter than 10 seconds (the store's smallest ttl).
    pub fn rotation_grace(self, grace: impl Into<Option<Duration>>) -> Self {
        let grace = grace.into();
        assert!(
            grace.is_none_or(|g| g >= Duration::from_secs(10)),
            "rotation grace must be >= 10 seconds"
        );
        self.edit(|c| c.rotation_grace = grace)
    }

    /// Gives visitors (requests without a logged-in session) a session of their own, for
    /// a cart, a flash message or the CSRF/OAuth state of a login form. Default off: a
    /// visitor's data lasts for the request only.
    ///
    /// On: the first request of a visitor that writes data creates a session (one store
    /// call, the cookie set); requests that only read create nothing. Its user id is
    /// [`VISITOR_PREFIX`](crate::VISITOR_PREFIX) followed by 24 random letters and digits
    /// (see [`is_visitor_id`](crate::is_visitor_id)); for the handler it is not
    /// authenticated ([`Session::id`](crate::Session::id) is None). At login,
    /// [`Session::upgrade`](crate::Session::upgrade) turns it into the user's session with
    /// a new token and kills the visitor's.
    ///
    /// Visitor sessions are sessions of the app for the store: they count in `activity`
    /// and are listed by `soapp`. See [`is_visitor_id`](crate::is_visitor_id) to leave
    /// them out.
    pub fn visitors(self, on: bool) -> Self {
        self.edit(|c| c.visitors = on)
    }

    /// Trusts one proxy in front of the app: `trust_proxy(true)` is
    /// [`trusted_proxy_hops(1)`](Self::trusted_proxy_hops), `false` (the default) trusts
    /// none. Turn it on only when every request reaches the app through that proxy.
    pub fn trust_proxy(self, on: bool) -> Self {
        self.edit(|c| c.proxies = if on { Proxies::Hops(1) } else { Proxies::None })
    }

    /// Trusts `hops` proxies in front of the app (0: none), every one of which appends
    /// the address it received from to `Forwarded` (RFC 7239) or `X-Forwarded-For`. The
    /// client address is the `hops`-th entry **from the right** (what the outermost
    /// trusted proxy saw), so addresses a client writes into the header itself are never
    /// taken; whether the request came over HTTPS (for [`CookieSecure::Auto`]) is that
    /// hop's `proto=` or the matching `X-Forwarded-Proto` value; which header is read is
    /// [`proxy_header`](Self::proxy_header)'s choice. An entry that is not an IP address
    /// (`unknown`, an obfuscated name, anything else) is no address: the session stores
    /// `"unknown"`.
    ///
    /// Use it when the app is reachable through its proxies only; otherwise list them
    /// with [`trusted_proxies`](Self::trusted_proxies). Without trusted proxies the
    /// address is the peer's, which axum only knows when the app is served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`; otherwise sessions store the
    /// ip `"unknown"` (and a warning is logged once).
    pub fn trusted_proxy_hops(self, hops: usize) -> Self {
        let proxies = if hops == 0 {
            Proxies::None
        } else {
            Proxies::Hops(hops)
        };
        self.edit(|c| c.proxies = proxies)
    }

    /// Which header the trusted proxies write: `X-Forwarded-For` / `X-Forwarded-Proto`
    /// ([`ProxyHeader::XForwarded`], the default) or RFC 7239 `Forwarded`
    /// ([`ProxyHeader::Forwarded`]). Only that one is read, since a client can send the
    /// other one and no proxy would append to it.
    pub fn proxy_header(self, header: ProxyHeader) -> Self {
        self.edit(|c| c.proxy_header = header)
    }

    /// Trusts the proxies at these addresses or networks (`"10.0.0.1"`, `"10.0.0.0/8"`,
    /// `"fd00::/8"`): forwarding headers count only when the peer (from
    /// `into_make_service_with_connect_info::<SocketAddr>()`) is one of them, and the
    /// client address is the first entry from the right that is not one of them. Safer
    /// than a hop count when the app can also be reached directly. See
    /// [`trusted_proxy_hops`](Self::trusted_proxy_hops) for the headers read.
    ///
    /// # Panics
    /// When an entry is neither an IP address nor a network in CIDR notation.
    pub fn trusted_proxies<I, T>(self, proxies: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let nets: Vec<ipnet::IpNet> = proxies
            .into_iter()
            .map(|p| {
                let p = p.as_ref().trim();
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .unwrap_or_else(|_| {
                        panic!("trusted proxy {p:?} is not an IP address or network")
                    })
            })
            .collect();
        let proxies = if nets.is_empty() {
            Proxies::None
        } else {
            Proxies::List(nets)
        };
        self.edit(|c| c.proxies = proxies)
    }

    /// Accepts a token from `Authorization: Bearer <token>` (default on), for API and
    /// mobile clients that keep the token themselves. It wins over the cookie.
    pub fn bearer(self, on: bool) -> Self {
        self.edit(|c| c.bearer = on)
    }

    /// The store behind the layer, e.g. for admin pages that list every session.
    #[must_use]
    pub fn store(&self) -> &RedisSessions {
        &self.config.store
    }
}

/// Refuses `SameSite=None` without an always-`Secure` cookie, which browsers drop.
fn check_same_site(same_site: SameSite, secure: CookieSecure) {
    assert!(
        same_site != SameSite::None || secure == CookieSecure::Always,
        "SameSite::None needs .secure(true): browsers drop a SameSite=None cookie without Secure"
    );
}

impl<S> tower_layer::Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        if self.config.cookie.secure == CookieSecure::Never
            && ReportedOnce::first(&self.config.reported.insecure)
        {
            tracing::warn!(
                "session cookies are sent without Secure (.secure(false)): for plain-HTTP \
                 development only; browsers send them over plain HTTP, where they can be read"
            );
        }
        SessionService::new(inner, self.config.clone())
    }
}
