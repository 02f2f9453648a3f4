//! The one encoding of typed values in a session's data, used by
//! [`Session::get`](crate::Session::get), [`RedisSessions::set_typed`](crate::RedisSessions::set_typed)
//! and the axum middleware alike, so the same data reads the same through every crate.
//!
//! The stored data stays the flat object of strings, numbers and booleans that the Node.js
//! module and the REST server read and write:
//! - a string, number or boolean is stored as itself (numbers as doubles, as in Node),
//!   except a number a JavaScript double cannot carry exactly: an integer beyond
//!   ±(2⁵³−1) (`Number.MAX_SAFE_INTEGER`: `u64::MAX`, `i64::MIN`, database ids…) or `-0.0`
//!   is stored as [`JSON_MARKER`] followed by its decimal text, e.g.
//!   `{"uid":"$json:1234567890123456789"}`, and reads back exactly; Node reads it as a
//!   string (`BigInt(v.slice(6))` gives the exact integer);
//! - a list, a map or a struct is stored as a **string**: [`JSON_MARKER`] followed by its
//!   JSON text, e.g. `{"cart":"$json:[\"apple\",\"pear\"]"}`;
//! - a string that itself starts with the marker is stored the same way (the marker, then
//!   the string as JSON text), so every string reads back exactly as it was written;
//! - NaN and the infinities, which JSON cannot hold, are refused
//!   ([`Error::InvalidValue`]: serde_json would write them as null, which removes the key),
//!   and so are integers wider than 64 bits (`i128`/`u128` past the `i64`/`u64` range);
//! - null (`None`, `()`) removes the key, as a null does in the store's `set`.
//!
//! Reading reverses this: a stored string that starts with the marker and whose rest is JSON
//! text is that JSON value; every other stored value is itself. A value that does not read
//! as the type asked for is [`Error::WrongType`] (never a silent `None`). The marker is
//! rare in ordinary text and readable in `redis-cli`; a Node.js service that shares the
//! sessions decodes a value with `v.startsWith("$json:") ? JSON.parse(v.slice(6)) : v`.
//!
//! ```
//! use redis_sessions::value;
//! let stored = value::encode(&vec!["apple", "pear"]).unwrap();
//! assert_eq!(stored, Some(serde_json::json!("$json:[\"apple\",\"pear\"]")));
//! let cart: Option<Vec<String>> = value::read(stored.as_ref(), "cart").unwrap();
//! assert_eq!(cart.unwrap(), ["apple", "pear"]);
//! assert!(value::read::<u32>(stored.as_ref(), "cart").is_err(), "a list is no number");
//! ```

mod finite;

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// The prefix that marks a stored string as the JSON text of a value that is not a plain
/// scalar (see the [module](self) for the rules): `$json:`.
pub const JSON_MARKER: &str = "$json:";

/// The stored form of `value`, or None for null (a `set` of it removes the key).
///
/// # Errors
/// [`Error::InvalidValue`] for a value holding NaN or an infinity anywhere, or one serde
/// cannot write as JSON (a map whose keys are not strings).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Option<Value>> {
    value
        .serialize(finite::Check)
        .map_err(|finite::NonFinite(reason)| Error::InvalidValue(reason.into()))?;
    let value =
        serde_json::to_value(value).map_err(|e| Error::InvalidValue(e.to_string().into()))?;
    Ok(stored_form(value))
}

/// The stored form of a value serde already wrote.
fn stored_form(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.starts_with(JSON_MARKER) => Some(marked(&Value::String(s))),
        value @ (Value::Array(_) | Value::Object(_)) => Some(marked(&value)),
        Value::Number(n) if !double_exact(&n) => Some(marked(&Value::Number(n))),
        // Kept as later reads will return it (numbers are doubles, as in Node).
        scalar => Some(crate::node_json::node_value(&scalar)),
    }
}

/// The stored form of every field of `d` (a serde struct or map), null fields kept as
/// null (a `set` removes those keys): what [`set_typed`](crate::RedisSessions::set_typed)
/// writes.
pub(crate) fn encode_fields<T: Serialize + ?Sized>(d: &T) -> Result<Value> {
    d.serialize(finite::Check)
        .map_err(|finite::NonFinite(reason)| Error::InvalidValue(reason.into()))?;
    match serde_json::to_value(d) {
        Ok(Value::Object(fields)) => Ok(Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, stored_form(v).unwrap_or(Value::Null)))
                .collect(),
        )),
        _ => Err(Error::InvalidValue("d must be an object".into())),
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

fn marked(value: &Value) -> Value {
    // Plain serde_json text: exact for every number, since it stays text inside a string.
    Value::String(format!("{JSON_MARKER}{value}"))
}

/// The value a stored value stands for: a marked string's JSON value, else the value itself.
#[must_use]
pub fn decode(stored: &Value) -> Value {
    if let Value::String(s) = stored {
        if let Some(text) = s.strip_prefix(JSON_MARKER) {
            if let Ok(value) = serde_json::from_str(text) {
                return value;
            }
        }
    }
    stored.clone()
}

/// Reads the stored value of `key` (`stored`, None when absent) as `T`.
///
/// # Errors
/// [`Error::WrongType`] when the value does not read as `T` (a string read as a number, a
/// list read as a struct). The error names the key and the types, never the value.
pub fn read<T: DeserializeOwned>(stored: Option<&Value>, key: &str) -> Result<Option<T>> {
    let Some(stored) = stored else {
        return Ok(None);
    };
    let value = decode(stored);
    let found = kind(&value);
    // serde's message is not kept: it may quote the stored value.
    serde_json::from_value(value)
        .map(Some)
        .map_err(|_| Error::WrongType {
            key: key.to_owned(),
            found,
            expected: std::any::type_name::<T>(),
        })
}

/// The JSON kind of a value, for error messages that must not quote session data.
fn kind(value: &Value) -> &'static str {
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
        decode(&encode(&value).unwrap().expect("not null"))
    }

    #[test]
    fn scalars_are_stored_as_themselves() {
        assert_eq!(encode(&json!("plain")).unwrap(), Some(json!("plain")));
        assert_eq!(encode(&json!(3)).unwrap(), Some(json!(3)));
        assert_eq!(encode(&json!(true)).unwrap(), Some(json!(true)));
        assert_eq!(encode(&Value::Null).unwrap(), None);
    }

    #[test]
    fn structured_values_are_marked_json_text() {
        let cart = json!([{"sku": "apple", "n": 2}, {"sku": "pear", "n": 1}]);
        let stored = encode(&cart).unwrap().unwrap();
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
        let node = crate::node_json::node_value(&stored);
        let text = crate::node_json::to_string(&serde_json::json!({ "k": node }));
        let back: Value = serde_json::from_str(&text).expect("valid JSON text");
        back["k"].clone()
    }

    /// Inserts `value` and reads it back as `T`, in the same request (the encoded form)
    /// and in a later one (through the store).
    fn round_trips<T>(value: &T) -> (T, T)
    where
        T: Serialize + DeserializeOwned,
    {
        let stored = encode(value).expect("finite").expect("not null");
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
            for stored in [encode(&n), encode(&u)] {
                let stored = stored.expect("finite").expect("not null");
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
                0 => encode(&bad),
                1 => encode(&vec![1.0, bad]),
                2 => encode(&Some(std::collections::BTreeMap::from([("x", bad)]))),
                _ => encode(&(1u8, "s", [bad as f32])),
            };
            prop_assert!(matches!(refused, Err(Error::InvalidValue(_))), "{refused:?}");
        }
    }

    #[test]
    fn the_issue_cases() {
        assert_eq!(
            encode(&1234567890123456789u64).unwrap(),
            Some(serde_json::json!("$json:1234567890123456789"))
        );
        assert_eq!(
            encode(&u64::MAX).unwrap(),
            Some(serde_json::json!("$json:18446744073709551615"))
        );
        assert_eq!(
            encode(&i64::MIN).unwrap(),
            Some(serde_json::json!("$json:-9223372036854775808"))
        );
        // Safe integers stay numbers, as Node keeps them.
        assert_eq!(
            encode(&9007199254740991u64).unwrap(),
            Some(serde_json::json!(9007199254740991u64))
        );
        assert_eq!(round_trips(&i64::MAX), (i64::MAX, i64::MAX));
        assert!(encode(&f64::NAN).is_err());
        assert!(matches!(encode(&u128::MAX), Err(Error::InvalidValue(_))));
        assert_eq!(
            encode(&u128::from(u64::MAX)).unwrap(),
            Some(serde_json::json!("$json:18446744073709551615"))
        );
        assert_eq!(encode(&Option::<f64>::None).unwrap(), None);
    }
}
