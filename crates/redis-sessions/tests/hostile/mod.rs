//! Hostile session data for the differential tests: keys and strings made of JSON
//! punctuation, escapes, whitespace, control characters, accents and emoji; numbers at the
//! edges of a double; array-index keys that JavaScript reorders. And a reference of what the
//! Node module does with them, written apart from the library's code.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Fragments that broke (or could break) a merge that searches text instead of reading it.
const PIECES: &[&str] = &[
    ":", ",", "{", "}", "\"", "\\", "[", "]", " ", "\t", "\n", "\r", "\":", "\",\"", "\\\"",
    "\\u0041", "/", "\\/", "é", "😀", "\u{0}", "\u{1f}", "\u{7f}", "\u{2028}", "a", "b", "x",
    "null", "true", "1", "0", "-", ".", "e",
];

/// Keys JavaScript treats specially: array indices go first in numeric order.
const SPECIAL_KEYS: &[&str] = &[
    "0",
    "1",
    "2",
    "10",
    "07",
    "-1",
    "4294967294",
    "4294967295",
    "1.5",
    "__proto__",
    "",
    " ",
];

/// Number texts at the edges: digits a double cannot hold, exponents, signed zero.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "1",
    "-1",
    "0.1",
    "3.7998950481414795",
    "12345678901234567890",
    "9007199254740993",
    "-9007199254740993",
    "1e21",
    "1e20",
    "1E+2",
    "1e-7",
    "0.000001",
    "5e-324",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "123456789.12345678901234567",
    "0.30000000000000004",
    "100",
    "4294967295",
    "-4.5e-15",
];

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..5).prop_map(|p| p.concat())
}

/// A key: mostly hostile text, sometimes a key JavaScript orders apart.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(),
        2 => prop::sample::select(SPECIAL_KEYS).prop_map(str::to_owned),
        1 => "[a-z]{1,3}",
    ]
}

/// A number as JSON text: an edge case, or a random double written in either form.
pub fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(NUMBERS).prop_map(str::to_owned),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f}")),
        1 => any::<u64>().prop_map(|u| u.to_string()),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => ("-?[1-9][0-9]{15,30}", "[0-9]{1,25}").prop_map(|(i, f)| format!("{i}.{f}")),
    ]
}

/// A scalar value (null only where `with_null`).
pub fn value(with_null: bool) -> impl Strategy<Value = Value> {
    let null_weight = if with_null { 2 } else { 0 };
    prop_oneof![
        3 => text().prop_map(Value::String),
        3 => number_text().prop_map(|t| serde_json::from_str(&t).expect("number text")),
        1 => any::<bool>().prop_map(Value::Bool),
        null_weight => Just(Value::Null),
    ]
}

/// A data object of 1..6 keys.
pub fn data(with_null: bool) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((key(), value(with_null)), 1..6)
        .prop_map(|pairs| pairs.into_iter().collect())
}

/// The reference: a JavaScript object as Node holds it, kept as an ordered list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JsObject(pub Vec<(String, Value)>);

fn array_index(key: &str) -> Option<u64> {
    let ok = key == "0"
        || (key.len() <= 10
            && key.starts_with(|c: char| ('1'..='9').contains(&c))
            && key.chars().all(|c| c.is_ascii_digit()));
    ok.then(|| key.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n <= 4_294_967_294)
}

/// A number as the double JavaScript reads it (std's parse rounds correctly).
fn as_double(value: &Value) -> Value {
    match value {
        Value::Number(n) => {
            let f: f64 = n.to_string().parse().expect("number");
            // Compare numbers as doubles: serde_json may hold the same double as u64 or f64.
            serde_json::Number::from_f64(if f == 0.0 { 0.0 } else { f })
                .map_or(Value::Null, Value::Number)
        }
        other => other.clone(),
    }
}

impl JsObject {
    /// `obj[key] = value` (or `delete obj[key]` for null): an index key takes its numeric
    /// place, any other new key goes last, an existing key keeps its place.
    pub fn assign(&mut self, key: &str, value: &Value) {
        let at = self.0.iter().position(|(k, _)| k == key);
        match (at, value.is_null()) {
            (Some(i), true) => {
                self.0.remove(i);
            }
            (Some(i), false) => self.0[i].1 = as_double(value),
            (None, true) => {}
            (None, false) => {
                let place = match array_index(key) {
                    Some(n) => self
                        .0
                        .iter()
                        .position(|(k, _)| array_index(k).is_none_or(|m| m > n))
                        .unwrap_or(self.0.len()),
                    None => self.0.len(),
                };
                self.0.insert(place, (key.to_owned(), as_double(value)));
            }
        }
    }

    /// The object a create with `d` stores.
    pub fn created(d: &Map<String, Value>) -> Self {
        let mut o = JsObject::default();
        for (k, v) in d {
            o.assign(k, v);
        }
        o
    }

    /// The session's data as the library returns it, numbers compared as doubles.
    pub fn of(d: Option<&Map<String, Value>>) -> Self {
        JsObject(
            d.into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), as_double(v)))
                .collect(),
        )
    }

    /// Stored `d` text as the reference reads it: in order, duplicate keys kept apart so a
    /// stored duplicate shows.
    pub fn parse_stored(text: Option<&str>) -> Self {
        let Some(text) = text else {
            return JsObject::default();
        };
        let map: Map<String, Value> = serde_json::from_str(text).expect("stored d is JSON");
        let o = JsObject::of(Some(&map));
        // A duplicate key would have been folded by the map: count raw keys to catch it.
        assert_eq!(
            o.0.len(),
            count_keys(text),
            "stored d has a duplicate key: {text}"
        );
        o
    }
}

/// Top-level keys of a flat JSON object text, counted with a streaming reader.
fn count_keys(text: &str) -> usize {
    let mut de = serde_json::Deserializer::from_str(text);
    struct Counter;
    impl<'de> serde::de::Visitor<'de> for Counter {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while map.next_entry::<String, serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    serde::Deserializer::deserialize_map(&mut de, Counter).expect("stored d is an object")
}
