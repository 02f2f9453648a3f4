//! A session's data, and the form a create stores it in.

use serde_json::Value;

/// A session's data: a JSON object whose values are strings, numbers, booleans (or null
/// in a `set`, to delete a key).
pub type Data = serde_json::Map<String, Value>;

/// The data a create stores of `d`: the object in Node's number form, without its null
/// values; None when nothing is left.
pub(crate) fn initial_data(d: &Data) -> Option<Data> {
    let mut d = crate::node_json::normalize(d);
    d.retain(|_, v| !v.is_null());
    for v in d.values_mut() {
        if v.as_str() == Some(crate::node_json::INFINITY) {
            // Node stores Infinity as null (JSON.stringify).
            *v = Value::Null;
        }
    }
    (!d.is_empty()).then_some(d)
}
