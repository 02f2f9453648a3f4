//! How a request gets its session: the extractor, which reads the session from the store
//! once per request (ending one past the absolute timeout, taking one whose stored data
//! cannot be read as none), and [`Session::reload`], which reads it again.

use super::{now_ms, Handle, Session, State};
use crate::error::SessionError;
use crate::reserved;
use axum::extract::FromRequestParts;
use http::request::Parts;
use std::time::Duration;

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
            take_found(&mut st, token, found)?;
        }
        Ok(())
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
            take_found(&mut st, token, found)?;
        }
        Ok(())
    }
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

/// Takes the store's answer for `token` into the request's state: its session, none (the
/// session is gone), or one whose stored data cannot be read (see [`readable`]).
fn take_found(
    st: &mut State,
    token: String,
    found: redis_sessions::Result<Option<redis_sessions::Session>>,
) -> Result<(), SessionError> {
    match readable(found)? {
        Ok(Some(session)) => st.apply(session),
        Ok(None) => st.forget(),
        Err(()) => st.unreadable(token),
    }
    Ok(())
}

/// True when `since_ms` (a login or token creation time) is longer than `limit` ago.
fn past(since_ms: Option<u64>, limit: Duration) -> bool {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    since_ms.is_some_and(|since| now_ms().saturating_sub(since) > limit_ms)
}
