//! The end of a request: the pending changes written once (a visitor's first write creating
//! the visitor session), nothing saved for a failed request, then the cookie set, cleared
//! or refreshed (rolling), unless a concurrent login replaced the token meanwhile; and
//! [`Session::save`], which writes the pending changes before the end, from the handler.

use super::{CookieAction, Session, Shared};
use crate::error::SessionError;
use crate::visitor::new_visitor_id;
use crate::{cookie, reserved};
use axum::response::{IntoResponse, Response};
use http::header::SET_COOKIE;
use redis_sessions::Data;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A request that ran longer than this checks the store for a concurrent login before a
/// rolling cookie refresh (shorter ones only this process's logins, at no cost).
const SLOW_REQUEST: Duration = Duration::from_millis(100);

impl Shared {
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

    /// The cookie's `Max-Age` for this session: its own lifetime, else the layer's.
    fn cookie_max_age(&self, data: &Data) -> Option<Duration> {
        reserved::max_age(data).unwrap_or(self.config.cookie.max_age)
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

impl Session {
    /// Writes the pending changes now rather than after the handler, e.g. before a
    /// long-running task, or to handle a store error in the handler itself.
    pub async fn save(&self) -> Result<(), SessionError> {
        save(&self.shared).await
    }
}
