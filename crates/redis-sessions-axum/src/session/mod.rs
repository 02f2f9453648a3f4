//! The per-request session state and the [`Session`] extractor that handlers use.
//!
//! This file holds the handle and the state it shares with the middleware for one request
//! (`Shared`, `State`), which every job of the handle reads and changes. Each job is an
//! `impl Session` in a file of its own, which imports from this one (never this one from
//! it):
//! - `meta`: what the handle tells of its session without a store call (token, user id,
//!   the store's figures);
//! - `data`: typed reads and writes of the session's data;
//! - `login`: login, rotation and logout of this device;
//! - `devices`: the user's sessions on every device, listed and signed out, and the app's
//!   sessions for admin pages;
//! - `save`: the end of the request, which writes the pending changes once and sets the
//!   cookie, and the handler's own `save`;
//! - `load`: the extractor, and the store read that gives the request its session (and
//!   `reload`).

// Declared in the order of the methods on the page of `Session`, as when this was one
// file (rustdoc lists a type's methods in the order of these declarations; blank lines
// keep rustfmt from sorting them): accessors, data, login, devices, then save and reload.
mod meta;

mod data;

pub(crate) mod login;

mod devices;

mod save;

mod load;

use crate::config::Config;
use crate::error::SessionError;
use crate::visitor::{is_visitor_id, rotated_id};
use crate::{request, reserved};
use redis_sessions::{CreateOptions, Data};
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A session as the store keeps and lists it (`redis_sessions::Session`): what
/// [`Session::soid`] and [`Session::soapp`] return. Named apart from the extractor
/// [`Session`], which is a request's live session.
pub type SessionInfo = redis_sessions::Session;

/// What the response must do with the cookie.
#[derive(Debug, Default)]
enum CookieAction {
    #[default]
    Keep,
    Set(String),
    /// The rolling refresh of the request's own cookie, once checked that no concurrent
    /// login replaced the token meanwhile.
    Refresh(String),
    Clear,
}

/// The mutable part of a request's session.
#[derive(Debug, Default)]
struct State {
    /// A well-formed token from the request, or the one made by `upgrade`.
    token: Option<String>,
    /// The token came from the cookie (so a dead one is cleared from the browser).
    from_cookie: bool,
    /// The store has been asked about `token` (done once, by the first extractor).
    loaded: bool,
    /// The live session's metadata (its data lives in `data`); None without a session.
    meta: Option<redis_sessions::Session>,
    /// The data as the handler sees it, in its stored form (see `value`): the stored data
    /// with the pending changes applied.
    data: Data,
    /// Keys changed since the last load or save, stored form; null marks a removed key.
    changes: Data,
    cookie: CookieAction,
    /// The request's token names a session whose stored data cannot be read
    /// (`corruptSession`): the request goes on without a session, and the session is
    /// killed when something replaces it (login, logout, `clear`, a new visitor session),
    /// so corrupt data never locks a user out.
    corrupt: Option<String>,
    /// `clear` was called on such a session: the end of the request kills it.
    kill_corrupt: bool,
    /// The lifetime chosen by `set_expiry` for the session the next login creates.
    expiry: Option<Option<Duration>>,
    /// The request's token was replaced by a concurrent login or rotation: every use of
    /// the session answers [`SessionError::Rotated`].
    rotated: bool,
}

impl State {
    /// True for a live session of a logged-in user (not a visitor's).
    fn is_user(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| !is_visitor_id(&m.id))
    }

    /// The token of the live session, if any.
    fn live_token(&self) -> Option<String> {
        self.meta.as_ref().and(self.token.clone())
    }

    /// The token that an operation replacing this request's session must kill: the live
    /// session's, or that of a session whose data cannot be read.
    fn replaced_token(&self) -> Option<String> {
        self.live_token().or_else(|| self.corrupt.clone())
    }

    /// The session's stored data cannot be read: no usable session for this request (its
    /// cookie is kept, so an operator's repair brings it back), killed when replaced.
    fn unreadable(&mut self, token: String) {
        self.meta = None;
        self.data.clear();
        self.changes.clear();
        self.loaded = true;
        self.corrupt = Some(token);
    }

    fn apply(&mut self, mut session: redis_sessions::Session) {
        self.data = session.d.take().unwrap_or_default();
        self.meta = Some(session);
        self.changes.clear();
        self.loaded = true;
    }

    /// The session is gone (expired, killed): the request continues as a visitor's.
    fn forget(&mut self) {
        if self.from_cookie {
            self.cookie = CookieAction::Clear;
        }
        self.token = None;
        self.from_cookie = false;
        self.meta = None;
        self.data.clear();
        self.changes.clear();
        self.loaded = true;
        self.corrupt = None;
        self.kill_corrupt = false;
    }
}

/// Everything about one request's session, shared by the middleware and every extractor.
pub(crate) struct Shared {
    config: Arc<Config>,
    app: String,
    /// The client's address, None when axum was not told it.
    ip: Option<String>,
    cookie_name: String,
    secure: bool,
    /// When the request reached the layer.
    started: std::time::Instant,
    state: Mutex<State>,
}

/// The request extension through which the extractor finds its session; the error is the
/// invalid app name `per_request_app` computed for the request.
#[derive(Clone)]
pub(crate) struct Handle(pub Result<Arc<Shared>, String>);

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        app: String,
        ip: Option<String>,
        cookie_name: String,
        secure: bool,
        token: Option<String>,
        from_cookie: bool,
    ) -> Self {
        Shared {
            config,
            app,
            ip,
            cookie_name,
            secure,
            started: std::time::Instant::now(),
            state: Mutex::new(State {
                token,
                from_cookie,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A handler that panicked while holding the lock leaves consistent data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `token` was replaced by a login or rotation within the grace period
    /// (one store call; only made for a token that has no session).
    async fn was_rotated(&self, token: &str) -> Result<bool, SessionError> {
        if self.config.rotation_grace.is_none() {
            return Ok(false);
        }
        let marks = self
            .config
            .store
            .soid(&self.app, &rotated_id(token))
            .await?;
        Ok(!marks.is_empty())
    }

    /// The ip given to the store for a new session.
    fn new_session_ip(&self) -> String {
        request::ip_for_new_session(self.ip.as_deref(), &self.config.reported)
    }

    /// The options of a new session holding `data`.
    fn create_options(&self, data: &Data) -> CreateOptions {
        let mut options = self.ttl_options(data);
        if !data.is_empty() {
            options = options.data(Value::Object(data.clone()));
        }
        options
    }

    /// The options of a new session holding `data`, its data aside: the session's own
    /// lifetime ([`Session::set_expiry`]) as its ttl, else the layer's.
    fn ttl_options(&self, data: &Data) -> CreateOptions {
        let options = CreateOptions::default().no_resave(self.config.no_resave);
        match reserved::max_age(data) {
            Some(Some(lifetime)) => options.ttl(lifetime),
            _ => match self.config.ttl {
                Some(ttl) => options.ttl(ttl),
                None => options,
            },
        }
    }

    /// Records a session just created with `token` for `id` holding `data`.
    fn created(&self, st: &mut State, token: &str, id: &str, ip: String, data: Data) {
        st.token = Some(token.to_owned());
        st.from_cookie = false;
        st.loaded = true;
        // The session as the store has it; its data is kept apart, in `data`.
        let meta = redis_sessions::Session::created(token, id, &ip, &self.ttl_options(&data));
        st.meta = Some(meta);
        st.data = data;
        st.changes.clear();
        st.cookie = CookieAction::Set(token.to_owned());
        st.corrupt = None;
        st.kill_corrupt = false;
    }
}

/// Milliseconds since the epoch, the unit of the time inside tokens.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The session of the current request: an axum extractor.
///
/// Add [`SessionLayer`](crate::SessionLayer) to the router, then take `Session` as a
/// handler argument. It is a cheap handle (an `Arc`): clones, and other extractors in the
/// same request, share one state. The first extraction loads the session from the store —
/// only when the request carries a well-formed token, so visitors cost nothing.
///
/// Values of any serde type can be stored ([`insert`](Self::insert)) and read back typed
/// ([`get`](Self::get)); changes are written once, after the handler, in one store call,
/// and a request that changes nothing writes nothing. A visitor's data lasts for the
/// request only, unless visitor sessions are on
/// ([`SessionLayer::visitors`](crate::SessionLayer::visitors)) or
/// [`upgrade`](Self::upgrade) logs the visitor in.
///
/// Not to be confused with [`SessionInfo`](SessionInfo) (`redis_sessions::Session`),
/// the stored record that the store's listing calls return.
///
/// ```
/// use redis_sessions_axum::{Session, SessionError};
///
/// async fn login(session: Session) -> Result<String, SessionError> {
///     session.upgrade("alice@example.com").await?; // new token, cookie set, old one killed
///     session.insert("theme", "dark")?;
///     session.insert("recent", vec!["/docs", "/pricing"])?; // any serde value
///     let recent: Option<Vec<String>> = session.get("recent")?;
///     Ok(format!("hello {}, {} recent pages", session.id().unwrap_or_default(), recent.map_or(0, |r| r.len())))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: session data (and the token) must not reach logs.
        let st = self.shared.state();
        f.debug_struct("Session")
            .field("app", &self.shared.app)
            .field("id", &st.meta.as_ref().map(|m| &m.id))
            .field("keys", &st.data.keys().collect::<Vec<_>>())
            .field("pending", &st.changes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    fn store(&self) -> &redis_sessions::RedisSessions {
        &self.shared.config.store
    }

    fn app_name(&self) -> &str {
        &self.shared.app
    }

    /// This device is logged out (`destroy`, `destroyall`, `kill_device` of its own
    /// handle): the request goes on as a visitor's, and the cookie is cleared.
    fn logged_out(&self) {
        let mut st = self.state();
        st.forget();
        st.cookie = CookieAction::Clear;
    }
}
