//! Login, rotation and logout of this device: [`Session::upgrade`] and its variants make a
//! new session with a new token, which keeps the login time the absolute timeout counts
//! from and the lifetime chosen by [`Session::set_expiry`], and kill the request's previous
//! one (leaving the mark that says it was replaced); [`Session::destroy`] ends it.

use super::{now_ms, Session, Shared};
use crate::error::SessionError;
use crate::reserved;
use crate::visitor::{is_visitor_id, rotated_id};
use redis_sessions::{CreateOptions, Data};
use serde_json::Value;
use std::time::Duration;

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

impl Shared {
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
}

impl Session {
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
}
