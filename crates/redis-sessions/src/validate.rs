//! Input rules of the contract, checked in the order the Node module checks them.
//!
//! Public so that every front checks with the library's own rules and messages: the axum
//! middleware refuses a malformed cookie token or app name without a store call, and no
//! crate keeps a copy of a rule that could drift. Each check returns the contract's error
//! (name and message), e.g. `redis_sessions::validate::token(t).is_ok()` for a yes/no.
//!
//! ```
//! use redis_sessions::validate;
//! assert!(validate::app("myapp").is_ok());
//! assert_eq!(validate::app("a b").unwrap_err().to_string(), "Invalid app format");
//! assert_eq!(validate::ttl(None).ok(), Some(validate::DEFAULT_TTL));
//! assert!(validate::ttl(Some(9)).is_err());
//! ```
//!
//! Every check is a plain scan, linear in its input: the Node module's id regex takes
//! exponential time on some inputs, and these checks guard a public HTTP endpoint.

use crate::data::Data;
use crate::error::{Error, Result};
use serde_json::Value;

/// The ttl of a session when the caller gives none.
pub const DEFAULT_TTL: i64 = 7200;

fn missing(what: &'static str) -> Error {
    Error::MissingParameter(format!("No {what} supplied").into())
}

fn invalid(what: &'static str) -> Error {
    Error::InvalidFormat(format!("Invalid {what} format").into())
}

/// `^[A-Za-z0-9_-]{3,20}$`
pub fn app(app: &str) -> Result<()> {
    if app.is_empty() {
        return Err(missing("app"));
    }
    let ok = (3..=20).contains(&app.len())
        && app
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid("app"))
    }
}

/// `^[A-Za-z0-9]{64}$`
pub fn token(token: &str) -> Result<()> {
    if token.is_empty() {
        return Err(missing("token"));
    }
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(invalid("token"))
    }
}

/// The characters a JavaScript `.` does not match: an id or ip containing one would be
/// rejected by the Node module.
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// A printable text of `min..=max` characters without line breaks.
fn bounded_line(value: &str, max: usize) -> bool {
    let mut count = 0usize;
    for c in value.chars() {
        count += 1;
        if count > max || is_line_break(c) {
            return false;
        }
    }
    count >= 1
}

/// 1..128 characters, no line breaks; anything else (e-mail, Korean, `:`) is fine.
pub fn id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(missing("id"));
    }
    if bounded_line(id, 128) {
        Ok(())
    } else {
        Err(invalid("id"))
    }
}

/// 1..39 characters (IPv4 or IPv6 text), no line breaks.
pub fn ip(ip: &str) -> Result<()> {
    if ip.is_empty() {
        return Err(missing("ip"));
    }
    if bounded_line(ip, 39) {
        Ok(())
    } else {
        Err(invalid("ip"))
    }
}

/// An optional ttl, default 7200, at least 10 seconds.
pub fn ttl(ttl: Option<i64>) -> Result<i64> {
    match ttl {
        None => Ok(DEFAULT_TTL),
        Some(t) if t >= 10 => Ok(t),
        Some(_) => Err(Error::InvalidValue(
            "ttl must be a positive integer >= 10".into(),
        )),
    }
}

/// A time window of at least 10 seconds.
pub fn delta_time(dt: i64) -> Result<i64> {
    if dt >= 10 {
        Ok(dt)
    } else {
        Err(Error::InvalidValue(
            "deltaTime must be a positive integer >= 10".into(),
        ))
    }
}

/// A data object: present, an object, at least one key, scalar values only.
pub fn data(d: Option<&Value>) -> Result<&Data> {
    let d = match d {
        None | Some(Value::Null) => return Err(missing("d")),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Error::InvalidValue("d must be an object".into())),
    };
    if d.is_empty() {
        return Err(Error::InvalidValue(
            "d must containt at least one key.".into(),
        ));
    }
    for (key, value) in d {
        if matches!(value, Value::Array(_) | Value::Object(_)) {
            return Err(Error::InvalidValue(
                format!(
                    "d.{key} has a forbidden type. Only strings, numbers, boolean and null are allowed."
                )
                .into(),
            ));
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_with_trailing_line_break_is_rejected_quickly() {
        let id = format!("{}\n", "a".repeat(100_000));
        let started = std::time::Instant::now();
        assert!(matches!(super::id(&id), Err(Error::InvalidFormat(_))));
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn id_length_counts_characters_not_bytes() {
        assert!(super::id(&"한".repeat(128)).is_ok());
        assert!(super::id(&"한".repeat(129)).is_err());
    }
}
