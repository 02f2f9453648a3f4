//! How a value of any serde type is kept in a session whose stored data must stay a flat
//! object of strings, numbers and booleans (the layout the Node.js module and the REST
//! server read).
//!
//! - A string, number or boolean is stored as itself, so other languages read it as is.
//! - A list, a map or a struct is stored as a **string**: [`JSON_MARKER`] followed by its
//!   JSON text, e.g. `{"cart":"$json:[\"apple\",\"pear\"]"}`. Node reads it as a string;
//!   `JSON.parse(v.slice(6))` gives the value back.
//! - A string that itself starts with the marker is stored the same way (the marker, then
//!   the string as JSON text), so every string reads back exactly as it was written.
//! - `None` / `()` (JSON null) removes the key, as a null does in the store's `set`.
//!
//! Reading reverses this: a stored string that starts with the marker and whose rest is JSON
//! text is that JSON value; every other stored value is itself.

use crate::error::SessionError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The prefix that marks a stored string as the JSON text of a structured value.
///
/// How [`Session::insert`](crate::Session::insert) stores a value, so the stored data
/// stays a flat object of strings, numbers and booleans for the Node.js module and the
/// REST server:
/// - a string, number or boolean is stored as itself (numbers as doubles, as in Node);
/// - a list, a map or a struct is stored as a string: this marker followed by its JSON
///   text, e.g. `{"cart":"$json:[\"apple\",\"pear\"]"}`;
/// - a string that itself starts with the marker is stored the same way (the marker, then
///   the string as JSON text), so every string reads back exactly as it was written;
/// - null (`None`, `()`) removes the key.
///
/// Reading reverses this: a stored string that starts with the marker and whose rest is
/// JSON text is that JSON value; every other stored value is itself. The marker is rare in
/// ordinary text and readable in `redis-cli`; a Node.js service that shares the sessions
/// decodes a value with `v.startsWith("$json:") ? JSON.parse(v.slice(6)) : v`.
pub const JSON_MARKER: &str = "$json:";

/// The stored form of `value` (already serialized by serde), or None for null (remove).
pub(crate) fn encode(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.starts_with(JSON_MARKER) => Some(marked(&Value::String(s))),
        value @ (Value::Array(_) | Value::Object(_)) => Some(marked(&value)),
        // Kept as later reads will return it (numbers are doubles, as in Node).
        scalar => Some(redis_sessions::node_json::node_value(&scalar)),
    }
}

fn marked(value: &Value) -> Value {
    // Plain serde_json text: exact for every number, since it stays text inside a string.
    Value::String(format!("{JSON_MARKER}{value}"))
}

/// The value a stored value stands for.
pub(crate) fn decode(stored: &Value) -> Value {
    if let Value::String(s) = stored {
        if let Some(text) = s.strip_prefix(JSON_MARKER) {
            if let Ok(value) = serde_json::from_str(text) {
                return value;
            }
        }
    }
    stored.clone()
}

/// Reads the stored value of `key` (None when absent) as `T`, decoding structured values.
pub(crate) fn read<T: DeserializeOwned>(
    stored: Option<&Value>,
    key: &str,
) -> Result<Option<T>, SessionError> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let value = decode(stored);
    let found = kind(&value);
    // serde's message is not kept: it may quote the stored value.
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| SessionError::WrongType {
            key: key.to_owned(),
            found,
            expected: std::any::type_name::<T>(),
        })
}

/// Typed reads of the data of a [`SessionInfo`](crate::SessionInfo) (the records that
/// `soid` and `soapp` list), with the same rules as [`Session::get`](crate::Session::get):
/// structured values decoded, a type mismatch an error.
///
/// ```
/// use redis_sessions_axum::{SessionInfo, SessionInfoExt};
/// # let info: SessionInfo = serde_json::from_str(
/// #   r#"{"id":"u","r":1,"w":1,"ttl":60,"idle":0,"ip":"::1","d":{"tags":"$json:[\"a\",\"b\"]"}}"#).unwrap();
/// let tags: Option<Vec<String>> = info.value("tags").unwrap();
/// assert_eq!(tags, Some(vec!["a".to_string(), "b".to_string()]));
/// ```
pub trait SessionInfoExt {
    /// The value of `key` as `T`: `Ok(None)` when absent, `Err(WrongType)` on a mismatch.
    fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError>;
}

impl SessionInfoExt for redis_sessions::Session {
    fn value<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        read(self.d.as_ref().and_then(|d| d.get(key)), key)
    }
}

/// The JSON kind of a value, for error messages that must not quote session data.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: Value) -> Value {
        decode(&encode(value).expect("not null"))
    }

    #[test]
    fn scalars_are_stored_as_themselves() {
        assert_eq!(encode(json!("plain")), Some(json!("plain")));
        assert_eq!(encode(json!(3)), Some(json!(3)));
        assert_eq!(encode(json!(true)), Some(json!(true)));
        assert_eq!(encode(Value::Null), None);
    }

    #[test]
    fn structured_values_are_marked_json_text() {
        let cart = json!([{"sku": "apple", "n": 2}, {"sku": "pear", "n": 1}]);
        let stored = encode(cart.clone()).unwrap();
        assert_eq!(
            stored,
            json!("$json:[{\"sku\":\"apple\",\"n\":2},{\"sku\":\"pear\",\"n\":1}]")
        );
        assert_eq!(decode(&stored), cart);
        // Numbers inside structured values stay exact (they are text).
        let big = json!({"id": 12345678901234567890u64});
        assert_eq!(round_trip(big.clone()), big);
    }

    #[test]
    fn strings_that_look_marked_round_trip() {
        for s in ["$json:", "$json:[1]", "$json:not json", "$json", "json:[1]"] {
            assert_eq!(round_trip(json!(s)), json!(s), "{s}");
        }
        // Stored by a foreign writer: a marked string that is not JSON reads as itself.
        assert_eq!(decode(&json!("$json:oops")), json!("$json:oops"));
    }
}
