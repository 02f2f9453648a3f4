//! The sessions beyond this request's: the logged-in user's on every device, listed for a
//! "my devices" page and signed out one, the others or all at once; and the whole app's,
//! for admin pages.

use super::{Session, SessionInfo};
use crate::error::SessionError;
use std::time::Duration;

impl Session {
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
}
