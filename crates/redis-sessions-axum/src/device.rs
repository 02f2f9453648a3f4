//! A user's devices (live sessions) as a "my devices" page shows them: each named by its
//! handle, a one-way hash of its token, so the page can offer "sign out that device"
//! without ever holding another session's token (a token is a login).

/// A listed session (the crate's `SessionInfo`), named from the library so that this
/// module imports nothing of the crate.
use redis_sessions::Session as SessionInfo;

/// The data key under which [`Session::devices`](crate::Session::devices) looks for a
/// device's user agent. The middleware does not store one by itself (a header copied
/// into every session is data the app may not want); an app that shows it stores it at
/// login: `session.insert(USER_AGENT_KEY, agent)?` after `upgrade`.
pub const USER_AGENT_KEY: &str = "user_agent";

/// One live session of the logged-in user, as [`Session::devices`](crate::Session::devices)
/// lists it: what a "my devices" page shows, and the handle that
/// [`Session::kill_device`](crate::Session::kill_device) takes. It carries no token.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Device {
    /// The session's public name ([`redis_sessions::device_handle`] of its token): safe
    /// to put in a page or a form, useless as a credential.
    pub handle: String,
    /// True for the session of the current request ("this device").
    pub current: bool,
    /// When the session was created, in milliseconds since the epoch, read from its
    /// token ([`redis_sessions::token_created_ms`]) by the store's listing (`soid`), which
    /// keeps the tokens to itself.
    pub created_ms: Option<u64>,
    /// Seconds since the session's last request ("last active").
    pub idle: i64,
    /// The client address stored when the session was created.
    pub ip: String,
    /// The user agent the app stored under [`USER_AGENT_KEY`], if any.
    pub user_agent: Option<String>,
    /// The whole record (counts, ttl, data): read values with
    /// [`SessionInfo::get`](redis_sessions::Session::get).
    pub info: SessionInfo,
}

impl Device {
    /// The device of a listed session; `own_handle` is the current session's handle and
    /// `own_created_ms` the creation time from its token.
    pub(crate) fn from_info(
        info: SessionInfo,
        own_handle: Option<&str>,
        own_created_ms: Option<u64>,
    ) -> Option<Self> {
        let handle = info.handle.clone()?;
        let current = own_handle == Some(handle.as_str());
        let user_agent = info
            .d
            .as_ref()
            .and_then(|d| d.get(USER_AGENT_KEY))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Some(Device {
            current,
            created_ms: info
                .created_ms
                .or(if current { own_created_ms } else { None }),
            idle: info.idle,
            ip: info.ip.clone(),
            user_agent,
            handle,
            info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(handle: Option<&str>, d: Option<serde_json::Value>) -> SessionInfo {
        // The library makes sessions; a test reads one from its JSON form.
        let mut info =
            json!({ "id": "alice", "r": 2, "w": 1, "ttl": 60, "idle": 5, "ip": "127.0.0.1" });
        if let Some(d) = d {
            info["d"] = d;
        }
        if let Some(handle) = handle {
            info["handle"] = json!(handle);
        }
        serde_json::from_value(info).expect("a session")
    }

    #[test]
    fn marks_the_current_device_and_reads_the_user_agent() {
        let own = "a".repeat(32);
        let other = "b".repeat(32);
        let me = Device::from_info(
            info(Some(&own), Some(json!({ "user_agent": "Firefox" }))),
            Some(&own),
            Some(7),
        )
        .expect("has a handle");
        assert!(me.current);
        assert_eq!(me.created_ms, Some(7));
        assert_eq!(me.user_agent.as_deref(), Some("Firefox"));
        assert_eq!((me.idle, me.ip.as_str()), (5, "127.0.0.1"));
        let them = Device::from_info(
            info(Some(&other), Some(json!({ "user_agent": 3 }))),
            Some(&own),
            Some(7),
        )
        .expect("has a handle");
        assert!(!them.current);
        assert_eq!(them.created_ms, None, "not listed with its creation time");
        let mut listed = info(Some(&other), None);
        listed.created_ms = Some(9);
        let listed = Device::from_info(listed, Some(&own), Some(7)).expect("has a handle");
        assert_eq!(
            listed.created_ms,
            Some(9),
            "the store's creation time of that device"
        );
        assert_eq!(them.user_agent, None, "a non-string is no user agent");
        assert!(Device::from_info(info(None, None), Some(&own), None).is_none());
    }
}
