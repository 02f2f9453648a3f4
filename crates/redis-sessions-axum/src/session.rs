//! The per-request session state and the [`Session`] extractor that handlers use.

use crate::config::Config;
use crate::cookie;
use crate::error::SessionError;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use http::request::Parts;
use redis_sessions::{CreateOptions, Data, DEFAULT_TTL};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the response must do with the cookie.
#[derive(Debug, Default)]
enum CookieAction {
    #[default]
    Keep,
    Set(String),
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
    /// The live session's metadata (its data lives in `data`); None for a visitor.
    meta: Option<redis_sessions::Session>,
    /// The data as the handler sees it: the stored data with the pending changes applied.
    data: Data,
    /// Keys changed since the last load or save; null marks a removed key.
    changes: Data,
    cookie: CookieAction,
}

impl State {
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
    }
}

/// Everything about one request's session, shared by the middleware and every extractor.
pub(crate) struct Shared {
    config: Arc<Config>,
    app: String,
    ip: String,
    cookie_name: String,
    secure: bool,
    state: Mutex<State>,
}

/// The request extension through which the extractor finds its session.
#[derive(Clone)]
pub(crate) struct Handle(pub Arc<Shared>);

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        app: String,
        ip: String,
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

    /// After the handler: writes the pending changes once, then sets or clears the cookie.
    /// A failed write turns the response into the error's (503 while the store is down).
    pub(crate) async fn finish(self: Arc<Self>, response: Response) -> Response {
        let mut response = match save(&self).await {
            Ok(()) => response,
            Err(err) => err.into_response(),
        };
        let action = std::mem::take(&mut self.state().cookie);
        let token = match &action {
            CookieAction::Keep => return response,
            CookieAction::Set(token) => Some(token.as_str()),
            CookieAction::Clear => None,
        };
        let settings = &self.config.cookie;
        if let Some(value) = cookie::set_cookie(settings, &self.cookie_name, token, self.secure) {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    }
}

/// Writes the pending changes of a live session in one `set`; nothing when there are none.
async fn save(shared: &Shared) -> Result<(), SessionError> {
    let (token, changes) = {
        let st = shared.state();
        match (&st.meta, &st.token) {
            (Some(_), Some(token)) if !st.changes.is_empty() => (token.clone(), st.changes.clone()),
            _ => return Ok(()),
        }
    };
    let store = &shared.config.store;
    let reply = store
        .set(&shared.app, &token, &Value::Object(changes.clone()))
        .await?;
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
        None => st.forget(),
    }
    Ok(())
}

/// The session of the current request: an axum extractor.
///
/// Add [`SessionLayer`](crate::SessionLayer) to the router, then take `Session` as a
/// handler argument. It is a cheap handle (an `Arc`): clones, and other extractors in the
/// same request, share one state. The first extraction loads the session from the store —
/// only when the request carries a well-formed token, so visitors cost nothing.
///
/// Data changes ([`insert`](Self::insert), [`remove`](Self::remove)) are written once,
/// after the handler, in one store call; a request that changes nothing writes nothing.
/// A visitor (no live session) may hold data too, but it lasts for this request only
/// unless [`upgrade`](Self::upgrade) turns the visitor into a session, which keeps it.
///
/// ```
/// use redis_sessions_axum::{Session, SessionError};
///
/// async fn login(session: Session) -> Result<String, SessionError> {
///     session.insert("theme", "dark")?;
///     session.upgrade("alice@example.com").await?; // new token, cookie set, old one killed
///     Ok(format!("hello {}", session.id().unwrap_or_default()))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.state();
        f.debug_struct("Session")
            .field("app", &self.shared.app)
            .field("id", &st.meta.as_ref().map(|m| &m.id))
            .field("data", &st.data)
            .field("pending", &st.changes)
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

    /// Asks the store about the request's token, once.
    async fn load(&self) -> Result<(), SessionError> {
        let token = {
            let mut st = self.state();
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
        let found = self.store().get(self.app_name(), &token).await?;
        let mut st = self.state();
        if !st.loaded {
            match found {
                Some(session) => st.apply(session),
                None => st.forget(),
            }
        }
        Ok(())
    }

    /// The session's token (64 characters), for API clients that send it back as
    /// `Authorization: Bearer`; None for a visitor.
    pub fn token(&self) -> Option<String> {
        let st = self.state();
        st.meta.as_ref().and(st.token.clone())
    }

    /// The app this session belongs to (fixed, or computed for this request).
    pub fn app(&self) -> &str {
        self.app_name()
    }

    /// True when the request belongs to a live session (a logged-in user).
    pub fn is_authenticated(&self) -> bool {
        self.state().meta.is_some()
    }

    /// The user id of the session, as given to [`upgrade`](Self::upgrade).
    pub fn id(&self) -> Option<String> {
        self.state().meta.as_ref().map(|m| m.id.clone())
    }

    /// How many times the session had been read before this request.
    pub fn r(&self) -> Option<u64> {
        self.state().meta.as_ref().map(|m| m.r)
    }

    /// How many times the session's data has been written.
    pub fn w(&self) -> Option<u64> {
        self.state().meta.as_ref().map(|m| m.w)
    }

    /// Seconds between the previous request of this session and this one.
    pub fn idle(&self) -> Option<i64> {
        self.state().meta.as_ref().map(|m| m.idle)
    }

    /// The session's lifetime in seconds (the idle timeout; the time left for a
    /// `no_resave` session).
    pub fn ttl(&self) -> Option<i64> {
        self.state().meta.as_ref().map(|m| m.ttl)
    }

    /// The client address stored when the session was created.
    pub fn ip(&self) -> Option<String> {
        self.state().meta.as_ref().map(|m| m.ip.clone())
    }

    /// Reads one value, typed through serde; None when absent or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.state().data.get(key)?.clone();
        serde_json::from_value(value).ok()
    }

    /// All the data as the handler sees it now (pending changes included).
    pub fn data(&self) -> Data {
        self.state().data.clone()
    }

    /// Sets a value, written after the handler. Only strings, numbers and booleans can be
    /// stored (the data is shared with services in other languages); null removes the
    /// key. Setting the value a key already has is not a change.
    pub fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let not_scalar = || SessionError::NotScalar {
            key: key.to_owned(),
        };
        let value = serde_json::to_value(value).map_err(|_| not_scalar())?;
        match value {
            Value::Null => {
                self.remove(key);
                Ok(())
            }
            Value::Array(_) | Value::Object(_) => Err(not_scalar()),
            value => {
                // Kept as later reads will return it (numbers are doubles, as in Node).
                let value = redis_sessions::node_json::node_value(&value);
                let mut st = self.state();
                if st.data.get(key) != Some(&value) {
                    st.data.insert(key.to_owned(), value.clone());
                    st.changes.insert(key.to_owned(), value);
                }
                Ok(())
            }
        }
    }

    /// Removes a key (written after the handler); false when it was not there.
    pub fn remove(&self, key: &str) -> bool {
        let mut st = self.state();
        let existed = st.data.remove(key).is_some();
        if existed {
            st.changes.insert(key.to_owned(), Value::Null);
        }
        existed
    }

    /// Logs the request in as `user_id`: creates a new session holding the current data,
    /// sets the cookie, and kills the previous session if there was one. The token always
    /// changes here, so a token planted before login is worthless (session fixation).
    /// Returns the new token.
    pub async fn upgrade(&self, user_id: &str) -> Result<String, SessionError> {
        let (old, data) = {
            let st = self.state();
            (st.meta.as_ref().and(st.token.clone()), st.data.clone())
        };
        let config = &self.shared.config;
        let options = CreateOptions {
            ttl: config.ttl,
            d: (!data.is_empty()).then(|| Value::Object(data.clone())),
            no_resave: config.no_resave,
        };
        let app = self.app_name();
        let token = self
            .store()
            .create(app, user_id, &self.shared.ip, options)
            .await?;
        if let Some(old) = old {
            if let Err(err) = self.store().kill(app, &old).await {
                // Keep the old session and drop the new one, so the client is consistent.
                let _ = self.store().kill(app, &token).await;
                return Err(err.into());
            }
        }
        let mut st = self.state();
        st.token = Some(token.clone());
        st.from_cookie = false;
        st.loaded = true;
        st.meta = Some(redis_sessions::Session {
            id: user_id.to_owned(),
            r: 1,
            w: 1,
            ttl: config.ttl.unwrap_or(DEFAULT_TTL),
            idle: 0,
            ip: self.shared.ip.clone(),
            d: None,
            no_resave: config.no_resave,
        });
        st.data = data;
        st.changes.clear();
        st.cookie = CookieAction::Set(token.clone());
        Ok(token)
    }

    /// Logs this device out: kills the session and clears the cookie (`Max-Age=0`).
    /// The request goes on as a visitor's.
    pub async fn destroy(&self) -> Result<(), SessionError> {
        let token = {
            let st = self.state();
            st.meta.as_ref().and(st.token.clone())
        };
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

    fn logged_out(&self) {
        let mut st = self.state();
        st.forget();
        st.cookie = CookieAction::Clear;
    }

    /// The live sessions of this user (one per device or browser), most recent first:
    /// for a "my devices" page. They carry no tokens.
    pub async fn soid(&self) -> Result<Vec<redis_sessions::Session>, SessionError> {
        let id = self.id().ok_or(SessionError::NotAuthenticated)?;
        Ok(self.store().soid(self.app_name(), &id).await?)
    }

    /// The sessions of the whole app active in the last `delta_time` seconds (>= 10),
    /// most recent first: for admin pages.
    pub async fn soapp(
        &self,
        delta_time: i64,
    ) -> Result<Vec<redis_sessions::Session>, SessionError> {
        Ok(self.store().soapp(self.app_name(), delta_time).await?)
    }

    /// How many distinct users were active in the last `delta_time` seconds (>= 10).
    pub async fn activity(&self, delta_time: i64) -> Result<u64, SessionError> {
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
            match (&st.meta, &st.token) {
                (Some(_), Some(token)) => token.clone(),
                _ => {
                    st.data.clear();
                    st.changes.clear();
                    return Ok(());
                }
            }
        };
        let found = self.store().get(self.app_name(), &token).await?;
        let mut st = self.state();
        if st.token.as_deref() == Some(token.as_str()) {
            match found {
                Some(session) => st.apply(session),
                None => st.forget(),
            }
        }
        Ok(())
    }
}
