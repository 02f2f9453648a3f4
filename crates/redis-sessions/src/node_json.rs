//! Session data as the Node module keeps it: a JavaScript object, written by
//! `JSON.stringify`.
//!
//! Node and Rust processes share the stored `d` text, so ours must be the bytes the Node
//! module would have written for the same calls. Three JavaScript rules decide those bytes,
//! and serde_json follows none of them by default:
//!
//! - **numbers are doubles**: `JSON.parse` rounds every number to the nearest double and
//!   `JSON.stringify` writes the shortest text that reads back as that double, in
//!   ECMAScript's format (`1e+21`, `12345678901234567000`, `0.000001`, `1e-7`);
//! - **array-index keys come first**: an object lists the keys `"0"`..`"4294967294"` in
//!   ascending numeric order before every other key, which keep insertion order;
//! - a key given twice keeps its first place and its last value (serde_json's map does the same).
//!
//! String escapes already agree: serde_json and `JSON.stringify` escape exactly `"`, `\` and
//! the control characters, the same way. Two JavaScript values have no Rust form, and are
//! carried in strings so that they round-trip:
//!
//! - **a lone surrogate** (`"😀abc".slice(0, 1)` in JavaScript; JSON.stringify writes
//!   `"\ud83d"`): a Rust string cannot hold one, so [`parse`] reads it as the noncharacter
//!   U+FFFF followed by U+10F800 + (unit − 0xD800), and a literal U+FFFF as two of them;
//!   [`to_vec`] writes both back as Node writes them. Nothing is lost between Node, Redis,
//!   this library and REST clients; a Rust program reading such a string sees those two
//!   private characters where JavaScript has the lone unit.
//! - **Infinity** (`1e400` in a REST body): [`parse`] reads it as the string [`INFINITY`],
//!   which [`to_vec`] writes as `null`, as JSON.stringify writes Infinity: a set stores
//!   `null`, as Node's does. Stored text read back has `null` there.

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::{Number, Value};

/// A JSON object (a session's data; named here so this module depends on no other).
type Data = serde_json::Map<String, Value>;
use std::io;

/// Largest array index of a JavaScript object (2³² − 2).
const MAX_ARRAY_INDEX: u64 = 4_294_967_294;

/// The JSON text `JSON.stringify` writes for `value` in Node: numbers in ECMAScript's
/// shortest round-trip form, strings escaped as Node escapes them.
///
/// The REST server answers with it, so a client reads the bytes the Node server would send.
///
/// ```
/// use serde_json::json;
/// let text = redis_sessions::node_json::to_vec(&json!({ "big": 12345678901234567890u64, "tiny": 1e-7, "huge": 1e21 }));
/// assert_eq!(text, br#"{"big":12345678901234567000,"tiny":1e-7,"huge":1e+21}"#);
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, NodeFormatter::default());
    // Writing to a Vec cannot fail, and serde_json's own types always serialize.
    if value.serialize(&mut ser).is_err() {
        out.clear();
        out.extend_from_slice(b"null");
    }
    out
}

/// How [`parse`] carries a number past a double's range (JavaScript's Infinity), which
/// [`to_vec`] writes as `null` (what JSON.stringify writes for it).
pub const INFINITY: &str = "\u{FFFF}\u{FFFE}";

/// The character that introduces a lone surrogate (or a doubled literal U+FFFF).
const LONE: char = '\u{FFFF}';
/// Lone surrogate `u` is carried as [`LONE`] then `SURROGATE_BASE + (u - 0xD800)`.
const SURROGATE_BASE: u32 = 0x10_F800;

/// Reads JSON text as JavaScript's `JSON.parse` reads it, where serde_json would refuse
/// it: lone surrogates (`"\ud83d"`, which Node writes) and numbers past a double's range
/// (`1e400`, Infinity in JavaScript) — see the module's doc for how both are carried.
/// `infinity_as_null` reads such a number as `null` instead (what Node stores for it).
///
/// ```
/// use redis_sessions::node_json;
/// let v = node_json::parse(r#"{"name":"\ud83d","n":1e400}"#, false).unwrap();
/// assert_eq!(node_json::to_string(&v), r#"{"name":"\ud83d","n":null}"#);
/// ```
pub fn parse(text: &str, infinity_as_null: bool) -> serde_json::Result<Value> {
    let plain = serde_json::from_str::<Value>(text);
    match plain {
        Ok(value) if !text.contains(LONE) && !has_escaped_lone(text) => Ok(value),
        _ => serde_json::from_str(&carry_js_values(text, infinity_as_null)),
    }
}

/// Whether the text may hold U+FFFF written as an escape (`\uffff`, any case), which must
/// be doubled like a literal one. A plain search first: most texts have no `\u` at all.
fn has_escaped_lone(text: &str) -> bool {
    text.contains("\\u")
        && text
            .as_bytes()
            .windows(6)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].eq_ignore_ascii_case(b"ffff"))
}

/// JSON text with every lone surrogate, literal U+FFFF and out-of-range number rewritten
/// in the forms the module's doc gives, so that serde_json reads it. Anything else is
/// copied as it is: broken text stays broken, for serde_json to refuse.
fn carry_js_values(text: &str, infinity_as_null: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    let mut in_string = false;
    // Copies text[from..to] (always at char boundaries: every cut is at ASCII).
    let mut copied = 0;
    macro_rules! flush {
        ($to:expr) => {{
            out.push_str(&text[copied..$to]);
        }};
    }
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    let unit = hex4(bytes, i + 2);
                    match unit {
                        Some(0xD800..=0xDBFF)
                            if bytes.get(i + 6) == Some(&b'\\')
                                && bytes.get(i + 7) == Some(&b'u')
                                && matches!(hex4(bytes, i + 8), Some(0xDC00..=0xDFFF)) =>
                        {
                            i += 12;
                        }
                        Some(u @ 0xD800..=0xDFFF) => {
                            flush!(i);
                            out.push(LONE);
                            out.push(lone_char(u));
                            i += 6;
                            copied = i;
                        }
                        Some(0xFFFF) => {
                            flush!(i);
                            out.push(LONE);
                            out.push(LONE);
                            i += 6;
                            copied = i;
                        }
                        _ => i += 2,
                    }
                }
                b'\\' => i += 2,
                0xEF if bytes.get(i + 1) == Some(&0xBF) && bytes.get(i + 2) == Some(&0xBF) => {
                    // A literal U+FFFF: doubled, so it is not read as an introducer.
                    flush!(i);
                    out.push(LONE);
                    out.push(LONE);
                    i += 3;
                    copied = i;
                }
                _ => i += 1,
            }
        } else {
            match b {
                b'"' => {
                    in_string = true;
                    i += 1;
                }
                b'-' | b'0'..=b'9' => {
                    let end = bytes[i..]
                        .iter()
                        .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                        .map_or(bytes.len(), |n| i + n);
                    let infinite = text[i..end].parse::<f64>().is_ok_and(f64::is_infinite);
                    if infinite {
                        flush!(i);
                        if infinity_as_null {
                            out.push_str("null");
                        } else {
                            out.push('"');
                            out.push_str(INFINITY);
                            out.push('"');
                        }
                        copied = end;
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
    flush!(bytes.len().max(copied));
    out
}

/// The four hex digits at bytes[at..at + 4], as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// The private character that carries lone surrogate `unit`.
fn lone_char(unit: u32) -> char {
    char::from_u32(SURROGATE_BASE + (unit - 0xD800)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// [`to_vec`] as a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    // JSON text written from Rust strings is UTF-8.
    String::from_utf8(to_vec(value)).unwrap_or_default()
}

/// The value Node would hold after reading `value`: a number becomes the double nearest to
/// it (so `12345678901234567890` becomes `12345678901234567000`), anything else is kept.
///
/// What a session returns after storing `value`, so a caller that keeps the value it wrote
/// (the middleware does, for the rest of a request) sees what later reads will see.
///
/// ```
/// use serde_json::json;
/// use redis_sessions::node_json::node_value;
/// assert_eq!(node_value(&json!(9007199254740993u64)), json!(9007199254740992u64));
/// ```
pub fn node_value(value: &Value) -> Value {
    match value {
        Value::Number(n) => {
            let text = js_number(n);
            // ECMAScript number text is valid JSON: parsing it cannot fail.
            serde_json::from_str::<Number>(&text).map_or_else(|_| value.clone(), Value::Number)
        }
        other => other.clone(),
    }
}

/// `d` as the Node module holds it before writing it: numbers as doubles, array-index keys
/// first in ascending order, every other key in its given order.
pub(crate) fn normalize(d: &Data) -> Data {
    let mut out: Data = d.iter().map(|(k, v)| (k.clone(), node_value(v))).collect();
    sort_index_keys(&mut out);
    out
}

/// Merges `changes` into `stored` as the Node module's set does: a null value removes its
/// key, an existing key keeps its place, a new key goes last (array-index keys first).
pub(crate) fn merge(stored: &mut Data, changes: &Data) {
    for (key, value) in changes {
        if value.is_null() {
            stored.shift_remove(key);
        } else if value.as_str() == Some(INFINITY) {
            // Node stores Infinity as null (JSON.stringify).
            stored.insert(key.clone(), Value::Null);
        } else {
            stored.insert(key.clone(), value.clone());
        }
    }
    sort_index_keys(stored);
}

/// The number a key names when JavaScript treats it as an array index (`"0"`, `"7"`, not
/// `"07"`, `"-1"` or `"4294967295"`).
pub(crate) fn array_index(key: &str) -> Option<u64> {
    let bytes = key.as_bytes();
    let canonical = match bytes {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.len() < 10 && rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    key.parse::<u64>().ok().filter(|n| *n <= MAX_ARRAY_INDEX)
}

/// Moves array-index keys to the front in ascending order; others keep their order.
fn sort_index_keys(d: &mut Data) {
    if !d.keys().any(|k| array_index(k).is_some()) {
        return;
    }
    let mut entries: Vec<(String, Value)> = std::mem::take(d).into_iter().collect();
    // A stable sort: index keys by their number, then every other key in place.
    entries.sort_by_key(|(k, _)| array_index(k).unwrap_or(u64::MAX));
    d.extend(entries);
}

/// ECMAScript's `Number.prototype.toString` of the double nearest to `n`.
fn js_number(n: &Number) -> String {
    let float = if let Some(u) = n.as_u64() {
        u as f64
    } else if let Some(i) = n.as_i64() {
        i as f64
    } else {
        n.as_f64().unwrap_or(0.0)
    };
    js_double(float)
}

fn js_double(value: f64) -> String {
    if value == 0.0 {
        // -0 too: JSON.stringify(-0) is "0".
        return "0".to_owned();
    }
    ryu_js::Buffer::new().format(value).to_owned()
}

/// serde_json's formatter with numbers written as JavaScript writes them, and the
/// carried JavaScript values (module doc) written back as JSON.stringify writes them.
#[derive(Default)]
struct NodeFormatter {
    /// A string has begun and its opening quote is not written yet: it may be [`INFINITY`].
    quote_pending: bool,
    /// The string so far is exactly [`INFINITY`] (nothing written yet).
    held_infinity: bool,
    /// An object key is being written: a key is always a string, never `null`.
    in_key: bool,
}

impl NodeFormatter {
    fn number<W: ?Sized + io::Write>(writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(js_double(value).as_bytes())
    }
}

impl NodeFormatter {
    /// Writes what a string held back so far, before more of it comes.
    fn release<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.quote_pending {
            self.quote_pending = false;
            w.write_all(b"\"")?;
        }
        if self.held_infinity {
            self.held_infinity = false;
            write_carried(w, INFINITY)?;
        }
        Ok(())
    }
}

/// A string's text with its carried lone surrogates written as `\udxxx` escapes.
fn write_carried<W: ?Sized + io::Write>(w: &mut W, fragment: &str) -> io::Result<()> {
    if !fragment.contains(LONE) {
        return w.write_all(fragment.as_bytes());
    }
    let mut chars = fragment.char_indices().peekable();
    let mut from = 0;
    while let Some((at, c)) = chars.next() {
        if c != LONE {
            continue;
        }
        w.write_all(&fragment.as_bytes()[from..at])?;
        match chars.peek().copied() {
            Some((_, LONE)) => {
                chars.next();
                w.write_all("\u{FFFF}".as_bytes())?;
            }
            Some((_, next)) if u32::from(next) >= SURROGATE_BASE => {
                chars.next();
                write!(w, "\\u{:04x}", 0xD800 + (u32::from(next) - SURROGATE_BASE))?;
            }
            _ => w.write_all("\u{FFFF}".as_bytes())?,
        }
        from = chars.peek().map_or(fragment.len(), |(i, _)| *i);
    }
    w.write_all(&fragment.as_bytes()[from.min(fragment.len())..])
}

impl Formatter for NodeFormatter {
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.in_key = true;
        if first {
            Ok(())
        } else {
            w.write_all(b",")
        }
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.in_key = false;
        Ok(())
    }
    fn begin_string<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.quote_pending = true;
        Ok(())
    }
    fn end_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.held_infinity {
            self.held_infinity = false;
            self.quote_pending = false;
            return w.write_all(b"null");
        }
        if self.quote_pending {
            self.quote_pending = false;
            w.write_all(b"\"")?;
        }
        w.write_all(b"\"")
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if self.quote_pending && !self.in_key && !self.held_infinity && fragment == INFINITY {
            self.held_infinity = true;
            return Ok(());
        }
        self.release(w)?;
        write_carried(w, fragment)
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        self.release(w)?;
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }
    fn write_i8<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i8) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_i16<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i16) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_i32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i32) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_i64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i64) -> io::Result<()> {
        Self::number(w, v as f64)
    }
    fn write_i128<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i128) -> io::Result<()> {
        Self::number(w, v as f64)
    }
    fn write_u8<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u8) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_u16<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u16) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_u32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u32) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_u64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u64) -> io::Result<()> {
        Self::number(w, v as f64)
    }
    fn write_u128<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u128) -> io::Result<()> {
        Self::number(w, v as f64)
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        Self::number(w, f64::from(v))
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        if v.is_finite() {
            Self::number(w, v)
        } else {
            // JSON.stringify writes NaN and ±Infinity as null.
            w.write_all(b"null")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        to_string(&node_value(&v))
    }

    #[test]
    fn numbers_are_written_as_javascript_writes_them() {
        for (given, node_writes) in [
            ("3.7998950481414795", "3.7998950481414795"),
            ("12345678901234567890", "12345678901234567000"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("1.0", "1"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("5e-324", "5e-324"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
            ("-9007199254740993", "-9007199254740992"),
            ("0.1", "0.1"),
        ] {
            assert_eq!(node(given), node_writes, "{given}");
        }
    }

    #[test]
    fn array_index_keys_go_first_in_numeric_order() {
        let d = json!({"b": 1, "10": 2, "a": 3, "2": 4, "07": 5, "4294967295": 6, "4294967294": 7});
        let Value::Object(d) = d else { unreachable!() };
        let keys: Vec<_> = normalize(&d).keys().cloned().collect();
        assert_eq!(
            keys,
            ["2", "10", "4294967294", "b", "a", "07", "4294967295"]
        );
    }

    #[test]
    fn merge_keeps_places_appends_new_keys_and_deletes_nulls() {
        let Value::Object(mut d) = json!({"a": 1, "b": 2, "c": 3}) else {
            unreachable!()
        };
        let Value::Object(changes) = json!({"b": null, "d": 4, "a": "x", "5": true}) else {
            unreachable!()
        };
        merge(&mut d, &changes);
        assert_eq!(to_string(&d), r#"{"5":true,"a":"x","c":3,"d":4}"#);
    }
}
