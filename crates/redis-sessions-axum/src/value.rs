//! How a value of any serde type is kept in a session whose stored data must stay a flat
//! object of strings, numbers and booleans (the layout the Node.js module and the REST
//! server read).
//!
//! - A string, number or boolean is stored as itself, so other languages read it as is,
//!   except the numbers a JavaScript double cannot carry exactly: integers beyond ±(2⁵³−1)
//!   (`Number.MAX_SAFE_INTEGER`) and `-0.0` are stored as [`JSON_MARKER`] + their decimal
//!   text, e.g. `"$json:18446744073709551615"`, so they read back exactly.
//! - A list, a map or a struct is stored as a **string**: [`JSON_MARKER`] followed by its
//!   JSON text, e.g. `{"cart":"$json:[\"apple\",\"pear\"]"}`. Node reads it as a string;
//!   `JSON.parse(v.slice(6))` gives the value back.
//! - A string that itself starts with the marker is stored the same way (the marker, then
//!   the string as JSON text), so every string reads back exactly as it was written.
//! - `None` / `()` (JSON null) removes the key, as a null does in the store's `set`.
//!
//! Reading reverses this: a stored string that starts with the marker and whose rest is JSON
//! text is that JSON value; every other stored value is itself.

mod finite;

use crate::error::SessionError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The prefix that marks a stored string as the JSON text of a structured value.
///
/// How [`Session::insert`](crate::Session::insert) stores a value, so the stored data
/// stays a flat object of strings, numbers and booleans for the Node.js module and the
/// REST server:
/// - a string, number or boolean is stored as itself (numbers as doubles, as in Node);
/// - except a number a JavaScript double cannot carry exactly: an integer beyond
///   ±(2⁵³−1) (`Number.MAX_SAFE_INTEGER`: `u64::MAX`, `i64::MIN`, database ids…) or `-0.0`
///   is stored as this marker followed by its decimal text, e.g.
///   `{"uid":"$json:1234567890123456789"}`, and reads back exactly; Node reads it as a
///   string (`BigInt(v.slice(6))` gives the exact integer);
/// - NaN and the infinities, which JSON cannot hold, are refused by
///   [`Session::insert`](crate::Session::insert) ([`SessionError::Encode`]);
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
        Value::Number(n) if !double_exact(&n) => Some(marked(&Value::Number(n))),
        // Kept as later reads will return it (numbers are doubles, as in Node).
        scalar => Some(redis_sessions::node_json::node_value(&scalar)),
    }
}

/// The largest integer a JavaScript double holds together with all its neighbours
/// (`Number.MAX_SAFE_INTEGER`, 2⁵³−1): past it, a JavaScript reader may change the number.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// True when `n` survives being held as a JavaScript number: an integer within
/// ±(2⁵³−1), or a float other than `-0.0` (`JSON.stringify(-0)` is `0`). A float is
/// already a double, and the store writes its shortest round-trip text.
fn double_exact(n: &serde_json::Number) -> bool {
    if let Some(u) = n.as_u64() {
        u <= MAX_SAFE_INTEGER
    } else if let Some(i) = n.as_i64() {
        i.unsigned_abs() <= MAX_SAFE_INTEGER
    } else {
        n.as_f64()
            .is_some_and(|f| !(f == 0.0 && f.is_sign_negative()))
    }
}

/// Refuses a value holding NaN or an infinity anywhere (serde_json would write it as
/// null, which silently removes the key or changes the struct).
pub(crate) fn check_finite<T: Serialize + ?Sized>(value: &T) -> Result<(), String> {
    value
        .serialize(finite::Check)
        .map_err(|finite::NonFinite(reason)| reason)
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

/// The value encoding against its reference, the value itself: whatever serde value is
/// inserted, storing it as the store does (Node's number rules applied to the flat data,
/// written as text and read back) and decoding it gives the same Rust value.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    /// The stored text of a flat data object holding `stored`, read back: what a later
    /// request sees (the library applies Node's rules to every number and writes the text
    /// with `node_json`).
    fn through_the_store(stored: Value) -> Value {
        let node = redis_sessions::node_json::node_value(&stored);
        let text = redis_sessions::node_json::to_string(&serde_json::json!({ "k": node }));
        let back: Value = serde_json::from_str(&text).expect("valid JSON text");
        back["k"].clone()
    }

    /// Inserts `value` and reads it back as `T`, in the same request (the encoded form)
    /// and in a later one (through the store).
    fn round_trips<T>(value: &T) -> (T, T)
    where
        T: Serialize + DeserializeOwned,
    {
        check_finite(value).expect("finite");
        let stored = encode(serde_json::to_value(value).unwrap()).expect("not null");
        let same: T = read(Some(&stored), "k").unwrap().unwrap();
        let later: T = read(Some(&through_the_store(stored)), "k")
            .unwrap()
            .unwrap();
        (same, later)
    }

    fn extreme_i64() -> impl Strategy<Value = i64> {
        let safe = MAX_SAFE_INTEGER as i64;
        prop_oneof![
            prop::sample::select(vec![
                i64::MIN,
                i64::MIN + 1,
                i64::MAX,
                i64::MAX - 1,
                safe,
                safe + 1,
                safe + 2,
                -safe,
                -safe - 1,
                -safe - 2,
                0,
                -1,
                1,
            ]),
            (safe - 3..safe + 3),
            (-safe - 3..-safe + 3),
            any::<i64>(),
            -1000i64..1000,
        ]
    }

    fn extreme_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            prop::sample::select(vec![
                u64::MAX,
                u64::MAX - 1,
                1234567890123456789,
                12345678901234567890,
                MAX_SAFE_INTEGER,
                MAX_SAFE_INTEGER + 1,
                MAX_SAFE_INTEGER + 2,
                1 << 60,
                (1 << 60) + 1,
                0,
            ]),
            any::<u64>(),
            0u64..1000,
        ]
    }

    fn extreme_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            prop::sample::select(vec![
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                f64::EPSILON,
                5e-324,
                -5e-324,
                0.0,
                -0.0,
                0.1,
                1e21,
                1e-7,
                9007199254740993.0,
                -9007199254740993.0,
                1.8446744073709552e19,
            ]),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ids {
        signed: i64,
        unsigned: u64,
        ratio: f64,
        small: i32,
        list: Vec<u64>,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn every_i64_comes_back(n in extreme_i64()) {
            let (same, later) = round_trips(&n);
            prop_assert_eq!(same, n);
            prop_assert_eq!(later, n);
        }

        #[test]
        fn every_u64_comes_back(n in extreme_u64()) {
            let (same, later) = round_trips(&n);
            prop_assert_eq!(same, n);
            prop_assert_eq!(later, n);
        }

        #[test]
        fn every_finite_f64_comes_back_bit_for_bit(f in extreme_f64()) {
            let (same, later) = round_trips(&f);
            prop_assert_eq!(same.to_bits(), f.to_bits());
            prop_assert_eq!(later.to_bits(), f.to_bits());
        }

        #[test]
        fn numbers_inside_structs_come_back(
            signed in extreme_i64(),
            unsigned in extreme_u64(),
            ratio in extreme_f64(),
            small in any::<i32>(),
            list in prop::collection::vec(extreme_u64(), 0..4),
        ) {
            let ids = Ids { signed, unsigned, ratio, small, list };
            let (same, later) = round_trips(&ids);
            prop_assert_eq!(same.ratio.to_bits(), ids.ratio.to_bits());
            prop_assert_eq!(&later, &ids);
            prop_assert_eq!(later.ratio.to_bits(), ids.ratio.to_bits());
        }

        /// What is stored stays readable by Node and REST: a number Node holds exactly, or
        /// a string (the marked text), never a number Node would round.
        #[test]
        fn the_stored_form_is_one_node_keeps(n in extreme_i64(), u in extreme_u64()) {
            for stored in [encode(serde_json::json!(n)), encode(serde_json::json!(u))] {
                let stored = stored.expect("not null");
                match &stored {
                    Value::Number(num) => prop_assert!(double_exact(num)),
                    Value::String(s) => prop_assert!(s.starts_with(JSON_MARKER)),
                    other => prop_assert!(false, "stored as {other:?}"),
                }
                prop_assert_eq!(through_the_store(stored.clone()), stored);
            }
        }

        #[test]
        fn non_finite_floats_are_refused_anywhere(
            bad in prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
            at in 0usize..4,
        ) {
            let refused = match at {
                0 => check_finite(&bad),
                1 => check_finite(&vec![1.0, bad]),
                2 => check_finite(&Some(std::collections::BTreeMap::from([("x", bad)]))),
                _ => check_finite(&(1u8, "s", [bad as f32])),
            };
            prop_assert!(refused.is_err());
        }
    }

    #[test]
    fn the_issue_cases() {
        assert_eq!(
            encode(serde_json::json!(1234567890123456789u64)),
            Some(serde_json::json!("$json:1234567890123456789"))
        );
        assert_eq!(
            encode(serde_json::json!(u64::MAX)),
            Some(serde_json::json!("$json:18446744073709551615"))
        );
        assert_eq!(
            encode(serde_json::json!(i64::MIN)),
            Some(serde_json::json!("$json:-9223372036854775808"))
        );
        // Safe integers stay numbers, as Node keeps them.
        assert_eq!(
            encode(serde_json::json!(9007199254740991u64)),
            Some(serde_json::json!(9007199254740991u64))
        );
        assert_eq!(round_trips(&i64::MAX), (i64::MAX, i64::MAX));
        assert!(check_finite(&f64::NAN).is_err());
        assert!(check_finite(&Option::<f64>::None).is_ok());
    }
}
