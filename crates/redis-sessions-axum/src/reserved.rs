//! The data keys the middleware keeps for itself in a user's session: when the user first
//! logged in (the absolute timeout survives rotations) and the session's own lifetime (a
//! "remember me" login). They start with [`RESERVED_PREFIX`]; handlers do not see them in
//! [`Session::data`](crate::Session::data), cannot insert them, and `clear` keeps them.

use serde_json::Value;
use std::time::Duration;

/// A JSON object (a session's data).
type Data = serde_json::Map<String, Value>;

/// The prefix of the data keys the middleware keeps for itself: `$rs:login` (ms since the
/// epoch of the first login, with an absolute timeout) and `$rs:max_age` (seconds of the
/// session's own lifetime, 0 for a browser-session cookie). Node.js services and the REST
/// server see them as ordinary numbers.
pub const RESERVED_PREFIX: &str = "$rs:";

/// When the user first logged in (ms since the epoch).
pub(crate) const LOGIN: &str = "$rs:login";

/// The session's own lifetime in seconds (0: a browser-session cookie).
pub(crate) const MAX_AGE: &str = "$rs:max_age";

/// True for a key of the middleware's own.
pub(crate) fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// The first login time stored in `data`, if any.
pub(crate) fn login_ms(data: &Data) -> Option<u64> {
    data.get(LOGIN).and_then(Value::as_u64)
}

/// The session's own lifetime: None when it has none (the layer's applies), `Some(None)`
/// for a browser-session cookie, `Some(Some(d))` for a cookie and session of `d`.
pub(crate) fn max_age(data: &Data) -> Option<Option<Duration>> {
    let seconds = data.get(MAX_AGE).and_then(Value::as_u64)?;
    Some((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// Stores the session's own lifetime in `data`.
pub(crate) fn set_max_age(data: &mut Data, lifetime: Option<Duration>) {
    let seconds = lifetime.map_or(0, |d| d.as_secs());
    data.insert(MAX_AGE.into(), Value::from(seconds));
}

/// The reserved entries of `data`.
pub(crate) fn entries(data: &Data) -> Data {
    data.iter()
        .filter(|(k, _)| is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
