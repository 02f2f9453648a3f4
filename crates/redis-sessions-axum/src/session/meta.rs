//! What the handle tells of its session without a store call: its token, app and user,
//! and the store's figures of it (reads, writes, idle time, ttl, ip).

use super::Session;
use crate::visitor::is_visitor_id;

impl Session {
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
}
