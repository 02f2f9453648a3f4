//! `node_json::parse` and `node_json::to_vec` against Node's own `JSON.parse` and
//! `JSON.stringify`: the same JSON text must come out the same bytes, for the texts
//! serde_json alone refuses — lone surrogates, numbers past a double, U+FFFF — mixed with
//! escapes, Unicode and extreme numbers.

use proptest::prelude::*;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use redis_sessions::node_json;
use test_support::node::NodePeer;

/// Pieces of JSON string content (already escaped as JSON text).
const PIECES: &[&str] = &[
    r"\ud83d",
    r"\ude00",
    r"\uD83D\uDE00",
    r"\ud83d\ude00",
    r"\udbff",
    r"\udc00",
    r"\uffff",
    "\u{ffff}",
    "\u{fffe}",
    "\u{10f83d}",
    "😀",
    "é",
    r"\u0041",
    r"\/",
    r"\\",
    r#"\""#,
    r"\n",
    r"\u0000",
    r"\u001f",
    "a",
    " ",
    ":",
    ",",
    "{",
    "}",
    r"\\ud83d",
    r"\\\ud83d",
];

const NUMBERS: &[&str] = &[
    "1e400",
    "-1e400",
    "1e-400",
    "1e308",
    "1.7976931348623157e308",
    "1.8e308",
    "0",
    "-0",
    "12345678901234567890",
    "5e-324",
    "0.1",
    "1E+2",
    "123.456e-5",
    "9007199254740993",
];

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..6)
        .prop_map(|p| format!("\"{}\"", p.concat()))
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => string(),
        2 => prop::sample::select(NUMBERS).prop_map(str::to_owned),
        1 => prop::sample::select(&["true", "false", "null"][..]).prop_map(str::to_owned),
    ]
}

/// A JSON value text: scalars, arrays and objects (keys that JavaScript does not reorder).
fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((string(), inner), 0..4).prop_map(|m| {
                let members: Vec<String> = m
                    .into_iter()
                    .map(|(k, v)| format!("\"k{}:{v}", &k[1..]))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

#[test]
fn parse_then_write_is_json_parse_then_stringify() {
    let server = test_support::RedisServer::start();
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"rs","wipe":0}}"#,
        server.port()
    ));
    let mut runner = TestRunner::default();
    let mut carried = 0;
    for _ in 0..2000 {
        let text = value().new_tree(&mut runner).expect("sample").current();
        let expected = node
            .call("echo", &text)
            .expect("Node reads every generated text");
        for infinity_as_null in [false, true] {
            let parsed =
                node_json::parse(&text, infinity_as_null).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(node_json::to_string(&parsed), expected, "{text}");
        }
        carried += usize::from(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }
    assert!(carried > 200, "too few texts serde_json refuses: {carried}");
}

#[test]
fn broken_text_stays_refused() {
    for text in [
        r#""\ud83"#,
        r#"{"a":"\ud83d}"#,
        "1e400e",
        r#"{"a":1e400,}"#,
        "\"\\x\"",
        "[1e400",
    ] {
        assert!(node_json::parse(text, false).is_err(), "{text}");
    }
}
