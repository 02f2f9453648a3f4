//! The per-request session state and the [`Session`] extractor that handlers use.

use crate::config::Config;
use crate::error::SessionError;
use crate::visitor::{is_visitor_id, new_visitor_id, rotated_id};
use crate::{cookie, request, reserved};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;
use redis_sessions::{value, CreateOptions, Data};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A session as the store keeps and lists it (`redis_sessions::Session`): what
/// [`Session::soid`] and [`Session::soapp`] return. Named apart from the extractor
/// [`Session`], which is a request's live session.
pub type SessionInfo = redis_sessions::Session;

/// What [`Session::upgrade_with`] carries from the request's data into the new session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Carry {
    /// The data of a visitor (visitor session, or this request's data) or of the same
    /// user, who logs in again; nothing when the request belongs to a **different** user,
    /// so one user's data never leaks into the next user's session on a shared computer.
    /// What [`Session::upgrade`] does.
    #[default]
    Safe,
    /// Nothing: the new session starts empty. What [`Session::upgrade_clear`] does.
    Nothing,
    /// Everything, even from another user's session: for apps that mean it (say a
    /// "switch account" that keeps the cart).
    Everything,
    /// Only these keys, whoever the request belonged to.
    Keys(Vec<String>),
}

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

/// A request that ran longer than this checks the store for a concurrent login before a
/// rolling cookie refresh (shorter ones only this process's logins, at no cost).
const SLOW_REQUEST: Duration = Duration::from_millis(100);

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

    /// True when a concurrent login may have replaced `token` while this request ran, so
    /// refreshing its cookie would overwrite the new one: a login of this process is seen
    /// at no cost; one of another process (several app instances) is looked for in the
    /// store, only for requests that ran longer than [`SLOW_REQUEST`] (a login cannot
    /// overlap a shorter one by much).
    async fn replaced_meanwhile(&self, token: &str) -> bool {
        let Some(grace) = self.config.rotation_grace else {
            return false;
        };
        if self.config.rotated.contains(token, grace) {
            return true;
        }
        if self.started.elapsed() < SLOW_REQUEST {
            return false;
        }
        // Unsure (the store is down): no refresh; the cookie keeps its current expiry.
        self.was_rotated(token).await.unwrap_or(true)
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

    /// Leaves the mark that says `old` was replaced, for the grace period.
    async fn mark_rotated(&self, old: &str, ip: &str) -> Result<(), SessionError> {
        let Some(grace) = self.config.rotation_grace else {
            return Ok(());
        };
        self.config.rotated.insert(old, grace);
        let options = CreateOptions::default().ttl(grace).no_resave(true);
        self.config
            .store
            .create(&self.app, &rotated_id(old), ip, options)
            .await?;
        Ok(())
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

    /// The cookie's `Max-Age` for this session: its own lifetime, else the layer's.
    fn cookie_max_age(&self, data: &Data) -> Option<Duration> {
        reserved::max_age(data).unwrap_or(self.config.cookie.max_age)
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

    /// After the handler: writes the pending changes once, then sets or clears the cookie.
    /// A failed write turns the response into the error's (503 while the store is down).
    pub(crate) async fn finish(self: Arc<Self>, response: Response) -> Response {
        let failed = response.status().is_server_error() && !self.config.save_on_server_error;
        let mut response = if failed {
            // Nothing of a failed request is saved (changes made by store calls during
            // the request, a login among them, are done already and keep their cookie).
            response
        } else {
            match save(&self).await {
                Ok(()) => response,
                Err(err) => err.into_response(),
            }
        };
        let (mut action, max_age) = {
            let mut st = self.state();
            let mut action = std::mem::take(&mut st.cookie);
            let max_age = self.cookie_max_age(&st.data);
            // Rolling: a live session used with its cookie gets the cookie again, with a
            // fresh Max-Age (no store call).
            if let (CookieAction::Keep, true, true, false, Some(_), Some(_)) = (
                &action,
                self.config.rolling,
                st.from_cookie,
                st.rotated,
                max_age,
                &st.meta,
            ) {
                if let Some(token) = &st.token {
                    action = CookieAction::Refresh(token.clone());
                }
            }
            (action, max_age)
        };
        if let CookieAction::Refresh(token) = &action {
            if self.replaced_meanwhile(token).await {
                return response;
            }
            action = CookieAction::Set(token.clone());
        }
        let token = match &action {
            CookieAction::Keep | CookieAction::Refresh(_) => return response,
            CookieAction::Set(token) => Some(token.as_str()),
            CookieAction::Clear => None,
        };
        let settings = &self.config.cookie;
        let value = cookie::set_cookie(settings, &self.cookie_name, token, max_age, self.secure);
        if let Some(value) = value {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    }
}

/// What the end of a request writes.
enum Write {
    Nothing,
    /// The pending changes of a live session.
    Changes(String, Data),
    /// A new visitor session holding this data.
    Visitor(Data),
}

/// Writes the pending changes of a live session in one `set`, or creates the session of a
/// visitor who wrote data (when visitor sessions are on); nothing when nothing changed.
async fn save(shared: &Shared) -> Result<(), SessionError> {
    kill_replaced_corrupt(shared).await?;
    let write = {
        let st = shared.state();
        match (&st.meta, &st.token) {
            _ if st.changes.is_empty() => Write::Nothing,
            (Some(_), Some(token)) => Write::Changes(token.clone(), st.changes.clone()),
            _ if shared.config.visitors && !st.data.is_empty() => Write::Visitor(st.data.clone()),
            _ => Write::Nothing,
        }
    };
    let store = &shared.config.store;
    let (token, changes) = match write {
        Write::Nothing => return Ok(()),
        Write::Changes(token, changes) => (token, changes),
        Write::Visitor(data) => {
            let id = new_visitor_id();
            let ip = shared.new_session_ip();
            let options = shared.create_options(&data);
            let token = store.create(&shared.app, &id, &ip, options).await?;
            let upgraded_meanwhile = {
                let mut st = shared.state();
                if st.meta.is_some() {
                    true
                } else {
                    let current = st.data.clone();
                    shared.created(&mut st, &token, &id, ip, data.clone());
                    // Changes made while the create was in flight go with the next save.
                    st.data = current;
                    for (key, value) in &st.data.clone() {
                        if data.get(key) != Some(value) {
                            st.changes.insert(key.clone(), value.clone());
                        }
                    }
                    for key in data.keys() {
                        if !st.data.contains_key(key) {
                            st.changes.insert(key.clone(), Value::Null);
                        }
                    }
                    false
                }
            };
            if upgraded_meanwhile {
                // A concurrent extractor logged the request in: this session is not needed.
                let _ = store.kill(&shared.app, &token).await;
            }
            return Ok(());
        }
    };
    let reply = store
        .set(&shared.app, &token, &Value::Object(changes.clone()))
        .await?;
    // Gone meanwhile: replaced by a concurrent login (the browser holds the new cookie:
    // leave it alone, and say the write was not saved), or ended.
    let rotated = reply.is_none() && shared.was_rotated(&token).await?;
    let mut st = shared.state();
    if st.token.as_deref() != Some(token.as_str()) {
        return Ok(()); // upgraded or destroyed meanwhile
    }
    match reply {
        Some(mut session) => {
            // Keep changes made while the write was in flight for the next save.
            for (key, value) in &changes {
                if st.changes.get(key) == Some(value) {
                    st.changes.remove(key);
                }
            }
            session.d = None;
            st.meta = Some(session);
        }
        None if rotated => {
            // Nothing of this request is the browser's business any more: no cookie
            // (not even a rolling refresh of the replaced token).
            st.rotated = true;
            st.meta = None;
            st.token = None;
            st.from_cookie = false;
            st.changes.clear();
            st.cookie = CookieAction::Keep;
            return Err(SessionError::Rotated);
        }
        None => st.forget(),
    }
    Ok(())
}

/// A store read, with a session whose stored data cannot be read (`corruptSession`) as
/// `Ok(Err(()))`: logged, and for the request no usable session, never an error that would
/// lock its user out (login, logout and `clear` replace it).
fn readable(
    found: redis_sessions::Result<Option<redis_sessions::Session>>,
) -> Result<Result<Option<redis_sessions::Session>, ()>, SessionError> {
    match found {
        Ok(found) => Ok(Ok(found)),
        Err(err) if err.kind() == redis_sessions::ErrorKind::Corrupt => {
            tracing::warn!(
                error = %err,
                "a session's stored data cannot be read: the request goes on without it \
                 (login, logout and clear replace it)"
            );
            Ok(Err(()))
        }
        Err(err) => Err(err.into()),
    }
}

/// Kills the unreadable session of the request once `clear` was called on it, or once a
/// visitor session replaces it.
async fn kill_replaced_corrupt(shared: &Shared) -> Result<(), SessionError> {
    let token = {
        let st = shared.state();
        let replaced = st.kill_corrupt
            || (shared.config.visitors && !st.changes.is_empty() && st.meta.is_none());
        match &st.corrupt {
            Some(token) if replaced => token.clone(),
            _ => return Ok(()),
        }
    };
    shared.config.store.kill(&shared.app, &token).await?;
    let mut st = shared.state();
    if st.corrupt.as_deref() == Some(token.as_str()) {
        st.corrupt = None;
        st.kill_corrupt = false;
        if st.token.as_deref() == Some(token.as_str()) {
            st.token = None;
        }
    }
    Ok(())
}

/// Milliseconds since the epoch, the unit of the time inside tokens.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// True when `since_ms` (a login or token creation time) is longer than `limit` ago.
fn past(since_ms: Option<u64>, limit: Duration) -> bool {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    since_ms.is_some_and(|since| now_ms().saturating_sub(since) > limit_ms)
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

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Handle(shared) = parts
            .extensions
            .get::<Handle>()
            .cloned()
            .ok_or(SessionError::MissingLayer)?;
        let shared = shared.map_err(SessionError::InvalidApp)?;
        let session = Session { shared };
        session.load().await?;
        Ok(session)
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

    /// Ends a session past its absolute timeout: killed in the store, and the request goes
    /// on as a visitor's.
    async fn expire(&self, token: &str) -> Result<(), SessionError> {
        self.store().kill(self.app_name(), token).await?;
        let mut st = self.state();
        if !st.loaded {
            st.forget();
        }
        Ok(())
    }

    /// Asks the store about the request's token, once.
    async fn load(&self) -> Result<(), SessionError> {
        let token = {
            let mut st = self.state();
            if st.rotated {
                return Err(SessionError::Rotated);
            }
            if st.loaded {
                return Ok(());
            }
            match st.token.clone() {
                Some(token) => token,
                None => {
                    st.loaded = true;
                    return Ok(());
                }
            }
        };
        let limit = self.shared.config.absolute_timeout;
        // The token's creation time is never before the first login: a token past the
        // limit ends without reading the session.
        let token_ms = redis_sessions::token_created_ms(&token);
        if limit.is_some_and(|limit| past(token_ms, limit)) {
            return self.expire(&token).await;
        }
        let found = self.store().get(self.app_name(), &token).await;
        if let (Some(limit), Ok(Some(session))) = (limit, &found) {
            let login = session.d.as_ref().and_then(reserved::login_ms);
            if past(login.or(token_ms), limit) {
                return self.expire(&token).await;
            }
        }
        let rotated = matches!(found, Ok(None)) && self.shared.was_rotated(&token).await?;
        let mut st = self.state();
        if rotated {
            // Sent with the token a concurrent login replaced: not "no session", which
            // would clear the new cookie; the client retries with it.
            st.rotated = true;
            return Err(SessionError::Rotated);
        }
        if !st.loaded {
            match readable(found)? {
                Ok(Some(session)) => st.apply(session),
                Ok(None) => st.forget(),
                Err(()) => st.unreadable(token),
            }
        }
        Ok(())
    }

    /// The session's token (64 characters), for API clients that send it back as
    /// `Authorization: Bearer`; None without a session.
    #[must_use]
    pub fn token(&self) -> Option<String> {
        self.state().live_token()
    }

    /// The app this session belongs to (fixed, or computed for this request).
    #[must_use]
    pub fn app(&self) -> &str {
        self.app_name()
    }

    /// True when the request belongs to a logged-in user's live session (not a visitor's).
    #[must_use]
    pub fn is_authenticated(&self) -> bool {
        self.state().is_user()
    }

    /// True when the request belongs to a visitor session
    /// ([`SessionLayer::visitors`](crate::SessionLayer::visitors)).
    #[must_use]
    pub fn is_visitor(&self) -> bool {
        let st = self.state();
        st.meta.is_some() && !st.is_user()
    }

    /// The user id of the session, as given to [`upgrade`](Self::upgrade); None for a
    /// visitor, with or without a visitor session.
    #[must_use]
    pub fn id(&self) -> Option<String> {
        let st = self.state();
        st.meta
            .as_ref()
            .filter(|m| !is_visitor_id(&m.id))
            .map(|m| m.id.clone())
    }

    /// How many times the session had been read before this request.
    #[must_use]
    pub fn r(&self) -> Option<u64> {
        self.state().meta.as_ref().map(|m| m.r)
    }

    /// How many times the session's data has been written.
    #[must_use]
    pub fn w(&self) -> Option<u64> {
        self.state().meta.as_ref().map(|m| m.w)
    }

    /// Seconds between the previous request of this session and this one.
    #[must_use]
    pub fn idle(&self) -> Option<i64> {
        self.state().meta.as_ref().map(|m| m.idle)
    }

    /// The session's lifetime in seconds (the idle timeout; the time left for a
    /// `no_resave` session).
    #[must_use]
    pub fn ttl(&self) -> Option<i64> {
        self.state().meta.as_ref().map(|m| m.ttl)
    }

    /// The client address stored when the session was created.
    #[must_use]
    pub fn ip(&self) -> Option<String> {
        self.state().meta.as_ref().map(|m| m.ip.clone())
    }

    /// Reads one value as `T` by the library's value encoding
    /// ([`redis_sessions::value`]): `Ok(None)` when the key is absent, and
    /// [`redis_sessions::Error::WrongType`] (in [`SessionError::Store`]) when the value does
    /// not read as `T` (a string read as a number, a list read as a struct), so a mistake is
    /// an error rather than a silent `None`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let stored = self.state().data.get(key).cloned();
        Ok(value::read(stored.as_ref(), key)?)
    }

    /// All the data as the handler sees it now (pending changes included), structured
    /// values decoded.
    #[must_use]
    pub fn data(&self) -> Data {
        let st = self.state();
        st.data
            .iter()
            .filter(|(k, _)| !reserved::is_reserved(k))
            .map(|(k, v)| (k.clone(), value::decode(v)))
            .collect()
    }

    /// Sets a value of any serde type, written after the handler, stored by the library's
    /// value encoding ([`redis_sessions::value`]): strings, numbers and booleans as
    /// themselves; lists, maps and structs as JSON text behind
    /// [`JSON_MARKER`](redis_sessions::value::JSON_MARKER), so the stored data stays the
    /// flat object that Node.js services and the REST server read. `None` (JSON null)
    /// removes the key. Setting the value a key already has is not a change.
    ///
    /// Every value reads back exactly: integers a JavaScript double cannot hold (past
    /// ±(2⁵³−1), e.g. `u64::MAX`) are stored as marked decimal text; a value holding NaN or
    /// an infinity, which JSON cannot represent, is refused with [`SessionError::Encode`]
    /// and nothing changes.
    pub fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        if reserved::is_reserved(key) {
            return Err(SessionError::Encode {
                key: key.to_owned(),
                reason: format!(
                    "keys starting with {} are the middleware's",
                    reserved::RESERVED_PREFIX
                ),
            });
        }
        let encoded = value::encode(&value).map_err(|e| SessionError::Encode {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        let Some(stored) = encoded else {
            self.remove(key);
            return Ok(());
        };
        let mut st = self.state();
        if st.data.get(key) != Some(&stored) {
            st.data.insert(key.to_owned(), stored.clone());
            st.changes.insert(key.to_owned(), stored);
        }
        Ok(())
    }

    /// Removes a key (written after the handler); false when it was not there.
    pub fn remove(&self, key: &str) -> bool {
        if reserved::is_reserved(key) {
            return false;
        }
        let mut st = self.state();
        let existed = st.data.remove(key).is_some();
        if existed {
            st.changes.insert(key.to_owned(), Value::Null);
        }
        existed
    }

    /// Removes every key (written after the handler, in the same single call); the
    /// session itself, its token and its user stay.
    pub fn clear(&self) {
        let mut st = self.state();
        if st.corrupt.is_some() {
            // Its data cannot be read, so it cannot be emptied key by key: it is killed at
            // the end of the request (and a new visitor session made if data is written).
            st.kill_corrupt = true;
            st.cookie = CookieAction::Clear;
        }
        let keys: Vec<String> = st
            .data
            .keys()
            .filter(|k| !reserved::is_reserved(k))
            .cloned()
            .collect();
        for key in keys {
            st.data.remove(&key);
            st.changes.insert(key, Value::Null);
        }
    }

    /// Logs the request in as `user_id` ([`Carry::Safe`]): a new session with a new
    /// token, the cookie set, and the previous session (a visitor's, or a user's) killed.
    /// The token always changes here, so a token planted before login is worthless
    /// (session fixation). The new session keeps the data of a visitor or of the same
    /// user; the data of a **different** user is dropped, so insert what the new login
    /// needs after this call. Returns the new token.
    pub async fn upgrade(&self, user_id: &str) -> Result<String, SessionError> {
        self.upgrade_with(user_id, Carry::Safe).await
    }

    /// Chooses the lifetime of the session that the next [`upgrade`](Self::upgrade) or
    /// [`rotate`](Self::rotate) of this request creates: a "remember me" login. Call it
    /// before `upgrade`.
    ///
    /// `Some(d)`: the cookie gets `Max-Age` `d` and the session an idle timeout of `d` in
    /// the store (its ttl; at least 10 s), both refreshed by every request with
    /// [`rolling`](crate::SessionLayer::rolling) cookies; `None`: a browser-session cookie
    /// (forgotten when the browser closes) and the layer's ttl. Without a call the layer's
    /// [`max_age`](crate::SessionLayer::max_age) and [`ttl`](crate::SessionLayer::ttl)
    /// apply. The choice is kept in the session (`$rs:max_age`), so a later `rotate`
    /// keeps it.
    ///
    /// # Errors
    /// [`SessionError::Store`] (invalid value) when `d` is shorter than 10 seconds.
    pub fn set_expiry(&self, lifetime: Option<Duration>) -> Result<(), SessionError> {
        if let Some(d) = lifetime {
            let seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            redis_sessions::validate::ttl(Some(seconds))?;
        }
        self.state().expiry = Some(lifetime);
        Ok(())
    }

    /// [`upgrade`](Self::upgrade) into an empty session, whatever the request held.
    pub async fn upgrade_clear(&self, user_id: &str) -> Result<String, SessionError> {
        self.upgrade_with(user_id, Carry::Nothing).await
    }

    /// A new token for the same user and data: for a privilege change within a login
    /// (say a re-entered password before a sensitive action), where OWASP asks for a new
    /// session id. Needs a logged-in session.
    pub async fn rotate(&self) -> Result<String, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        self.upgrade_with(&id, Carry::Everything).await
    }

    /// [`upgrade`](Self::upgrade) with the app's choice of what the new session keeps.
    pub async fn upgrade_with(&self, user_id: &str, carry: Carry) -> Result<String, SessionError> {
        if is_visitor_id(user_id) {
            return Err(redis_sessions::Error::InvalidValue(
                "a user id may not start with the visitor prefix".into(),
            )
            .into());
        }
        let (old, data) = {
            let st = self.state();
            let previous_user = st.meta.as_ref().map(|m| m.id.as_str());
            let other_user = previous_user.is_some_and(|p| !is_visitor_id(p) && p != user_id);
            let same_user = st.is_user() && previous_user == Some(user_id);
            let mut data: Data = match &carry {
                Carry::Safe if other_user => Data::new(),
                Carry::Safe | Carry::Everything => st.data.clone(),
                Carry::Nothing => Data::new(),
                Carry::Keys(keys) => st
                    .data
                    .iter()
                    .filter(|(k, _)| keys.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            data.retain(|k, _| !reserved::is_reserved(k));
            // The middleware's own keys: the same user keeps the first login time (the
            // absolute timeout counts from it) and the session's lifetime.
            let kept = if same_user {
                reserved::entries(&st.data)
            } else {
                Data::new()
            };
            if self.shared.config.absolute_timeout.is_some() {
                let login = reserved::login_ms(&kept).unwrap_or_else(now_ms);
                data.insert(reserved::LOGIN.into(), Value::from(login));
            }
            match st.expiry {
                Some(lifetime) => reserved::set_max_age(&mut data, lifetime),
                None => {
                    if let Some(lifetime) = reserved::max_age(&kept) {
                        reserved::set_max_age(&mut data, lifetime);
                    }
                }
            }
            (st.replaced_token(), data)
        };
        let app = self.app_name();
        let ip = self.shared.new_session_ip();
        let options = self.shared.create_options(&data);
        let token = self.store().create(app, user_id, &ip, options).await?;
        if let Some(old) = old {
            // The mark first: a request with the old token that finds it dead also finds
            // the mark, so it never clears the new cookie. The old session ends as
            // `rotated` (its event, with events on, says replaced, not logged out); the
            // new one's `created` was written by the create above. Two calls, not one:
            // on a cluster the two tokens lie in different slots.
            let replaced = match self.shared.mark_rotated(&old, &ip).await {
                Ok(()) => self
                    .store()
                    .kill_rotated(app, &old)
                    .await
                    .map_err(SessionError::from),
                Err(err) => Err(err),
            };
            if let Err(err) = replaced {
                // Keep the old session and drop the new one, so the client is consistent.
                let _ = self.store().kill(app, &token).await;
                return Err(err);
            }
        }
        let mut st = self.state();
        self.shared.created(&mut st, &token, user_id, ip, data);
        Ok(token)
    }

    /// Logs this device out: kills the session and clears the cookie (`Max-Age=0`).
    /// The request goes on as a visitor's.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let token = self.state().replaced_token();
        if let Some(token) = token {
            self.store().kill(self.app_name(), &token).await?;
        }
        self.logged_out();
        Ok(())
    }

    /// Logs the user out everywhere: kills every session of this user id (every device)
    /// and clears this cookie. Returns how many sessions ended.
    pub async fn destroyall(&self) -> Result<u64, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        let killed = self.store().killsoid(self.app_name(), &id).await?;
        self.logged_out();
        Ok(killed)
    }

    /// Signs the user out on every other device and keeps this one ("sign out all other
    /// devices"): one atomic store call ends every session of the user but this one,
    /// which keeps its token, its data and its cookie. Returns how many other sessions
    /// ended.
    pub async fn destroy_others(&self) -> Result<u64, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        let token = self.token().ok_or(SessionError::NotAuthenticated)?;
        Ok(self
            .store()
            .killsoid_keep(self.app_name(), &id, &token)
            .await?)
    }

    /// The live sessions of the logged-in user as a "my devices" page shows them, most
    /// recently active first: each with its handle (never its token), last activity, ip,
    /// the user agent where the app stores one ([`USER_AGENT_KEY`](crate::USER_AGENT_KEY)),
    /// and which one is this device.
    pub async fn devices(&self) -> Result<Vec<crate::device::Device>, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        let own = self.token();
        let own_handle = own.as_deref().map(redis_sessions::device_handle);
        let own_created = own.as_deref().and_then(redis_sessions::token_created_ms);
        let sessions = self.store().soid(self.app_name(), &id).await?;
        Ok(sessions
            .into_iter()
            .filter_map(|s| crate::device::Device::from_info(s, own_handle.as_deref(), own_created))
            .collect())
    }

    /// Signs out one device of the logged-in user by its handle (from
    /// [`devices`](Self::devices)): "sign out that laptop". The store looks the handle up
    /// among **this user's** sessions only, so a handle of another user's session ends
    /// nothing. True when a session ended; the handle of this device signs this device
    /// out (as [`destroy`](Self::destroy) does). A text that is not shaped like a handle
    /// is refused (400).
    pub async fn kill_device(&self, handle: &str) -> Result<bool, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        let own = self.token().map(|t| redis_sessions::device_handle(&t));
        let killed = self
            .store()
            .kill_device(self.app_name(), &id, handle)
            .await?;
        if killed && own.as_deref() == Some(handle) {
            self.logged_out();
        }
        Ok(killed)
    }

    fn logged_out(&self) {
        let mut st = self.state();
        st.forget();
        st.cookie = CookieAction::Clear;
    }

    /// The live sessions of this user (one per device or browser), most recent first, as
    /// the store's records: each with its device handle, none with its token
    /// ([`devices`](Self::devices) is the same list shaped for a "my devices" page). Read
    /// their data with
    /// [`SessionInfo::get`](redis_sessions::Session::get), which decodes structured
    /// values as [`get`](Self::get) does.
    pub async fn soid(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        Ok(self.store().soid(self.app_name(), &id).await?)
    }

    /// The sessions of the whole app active in the last `delta_time` (at least 10 s),
    /// most recent first: for admin pages. Visitor sessions are among them; leave them
    /// out with `.retain(|s| !is_visitor_id(&s.id))` (see [`is_visitor_id`](crate::is_visitor_id)).
    pub async fn soapp(&self, delta_time: Duration) -> Result<Vec<SessionInfo>, SessionError> {
        Ok(self.store().soapp(self.app_name(), delta_time).await?)
    }

    /// How many distinct users were active in the last `delta_time` (at least 10 s).
    /// Every visitor session counts as a user of its own: with visitor sessions on, count
    /// the distinct non-visitor ids of [`soapp`](Self::soapp) for users only.
    pub async fn activity(&self, delta_time: Duration) -> Result<u64, SessionError> {
        Ok(self.store().activity(self.app_name(), delta_time).await?)
    }

    /// Writes the pending changes now rather than after the handler, e.g. before a
    /// long-running task, or to handle a store error in the handler itself.
    pub async fn save(&self) -> Result<(), SessionError> {
        save(&self.shared).await
    }

    /// Reads the session from the store again, dropping unsaved changes: to see what
    /// another request or service wrote meanwhile.
    pub async fn reload(&self) -> Result<(), SessionError> {
        let token = {
            let mut st = self.state();
            match st.live_token() {
                Some(token) => token,
                None => {
                    st.data.clear();
                    st.changes.clear();
                    return Ok(());
                }
            }
        };
        let found = self.store().get(self.app_name(), &token).await;
        let mut st = self.state();
        if st.token.as_deref() == Some(token.as_str()) {
            match readable(found)? {
                Ok(Some(session)) => st.apply(session),
                Ok(None) => st.forget(),
                Err(()) => st.unreadable(token),
            }
        }
        Ok(())
    }
}
