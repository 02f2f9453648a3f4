//! The session's data as handlers read and write it: typed values by the library's value
//! encoding ([`redis_sessions::value`]), changes kept pending until the request saves them.

use super::{CookieAction, Session};
use crate::error::SessionError;
use crate::reserved;
use redis_sessions::{value, Data};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

impl Session {
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
}
