//! The npm module as the reference of the bytes: the same hostile calls through Node and
//! through ours on one Redis must leave byte-identical `d` text, whoever wrote the text
//! before, and every number must be written as Node writes it.

mod hostile;
mod node_fleet;

use node_fleet::Fleet;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use redis_sessions::CreateOptions;
use serde_json::{json, Map, Value};

const APP: &str = "bytesapp";

/// Sequences per run: each is a create and up to five sets, done four ways.
const SEQUENCES: usize = 48;

impl Fleet {
    fn stored(&mut self, token: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(format!("rs:{APP}:{token}"))
            .arg("d")
            .query(&mut self.raw)
            .expect("HGET")
    }

    fn node_call(&mut self, method: &str, args: Value) -> Value {
        let reply = self
            .node
            .call(method, &args.to_string())
            .unwrap_or_else(|e| {
                panic!("node {method} {args} failed: {e:?}");
            });
        serde_json::from_str(&reply).expect("node reply")
    }

    async fn create(&mut self, by_node: bool, d: &Map<String, Value>) -> String {
        if by_node {
            let r = self.node_call(
                "create",
                json!({"app": APP, "id": "user", "ip": "127.0.0.1", "ttl": 3600, "d": d}),
            );
            r["token"].as_str().expect("token").to_owned()
        } else {
            self.rs
                .create(
                    APP,
                    "user",
                    "127.0.0.1",
                    CreateOptions::default()
                        .ttl(Duration::from_secs(3600))
                        .data(Value::Object(d.clone())),
                )
                .await
                .expect("create")
        }
    }

    async fn set(&mut self, by_node: bool, token: &str, d: &Map<String, Value>) {
        if by_node {
            self.node_call("set", json!({"app": APP, "token": token, "d": d}));
        } else {
            self.rs
                .set(APP, token, &Value::Object(d.clone()))
                .await
                .expect("set")
                .expect("live");
        }
    }
}

fn sample<S: Strategy>(runner: &mut TestRunner, strategy: &S) -> S::Value {
    strategy.new_tree(runner).expect("sample").current()
}

#[tokio::test(flavor = "multi_thread")]
async fn same_calls_leave_the_same_bytes() {
    let mut f = Fleet::start().await;
    let mut runner = TestRunner::default();
    let sequences = proptest::collection::vec(hostile::data(true), 1..6);
    for _ in 0..SEQUENCES {
        let create = sample(&mut runner, &hostile::data(true));
        let sets = sample(&mut runner, &sequences);
        // Node alone is the reference; then ours alone, and each creating for the other.
        let mut reference: Vec<Option<String>> = Vec::new();
        for (creator, setter) in [(true, true), (false, false), (true, false), (false, true)] {
            let token = f.create(creator, &create).await;
            let mut seen = vec![f.stored(&token)];
            for d in &sets {
                f.set(setter, &token, d).await;
                seen.push(f.stored(&token));
            }
            if reference.is_empty() {
                reference = seen;
            } else {
                assert_eq!(
                    seen,
                    reference,
                    "create by {} then sets by {}: create {create:?}, sets {sets:?}",
                    if creator { "node" } else { "rust" },
                    if setter { "node" } else { "rust" },
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_are_written_as_node_writes_them() {
    let mut f = Fleet::start().await;
    let mut runner = TestRunner::default();
    for _ in 0..10 {
        let texts: Vec<String> = (0..200)
            .map(|_| sample(&mut runner, &hostile::number_text()))
            .collect();
        let args = format!(r#"{{"v":[{}]}}"#, texts.join(","));
        let node = f.node.call("echo", &args).expect("echo");
        let parsed: Value = serde_json::from_str(&args).expect("numbers");
        assert_eq!(
            redis_sessions::node_json::to_string(&parsed),
            node,
            "numbers: {texts:?}"
        );
    }
}

/// Text a foreign writer may have stored: whitespace, other escapes of the same key, a key
/// given twice, nested values. Node reads it with JSON.parse; ours must merge it the same.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_stored_text_is_merged_as_node_merges_it() {
    let mut f = Fleet::start().await;
    let foreign = [
        r#" { "a" : 1 , "b":"x" } "#,
        r#"{"\u0041":1,"\/":2,"\u00e9":3,"\ud83d\ude00":4,"\u001F":5,"\"":6}"#,
        r#"{"a":1,"b":2,"a":3}"#,
        r#"{"n":{"x":[1,"]}",{"y":"\"{"}]},"m":[],"k":"v"}"#,
        "{\"t\":\"\\t\\n\",\n\t\"z\":true}",
        r#"{"b":1,"2":2,"1":1}"#,
    ];
    let changes = [
        json!({"a": 9, "A": "new", "/": null, "é": "e", "😀": null, "\u{1f}": 0.5, "\"": null}),
        json!({"k": null, "b": "y", "1": 0, "z": false}),
    ];
    for text in foreign {
        for change in &changes {
            let Value::Object(change) = change else {
                unreachable!()
            };
            let mut results = Vec::new();
            for by_node in [true, false] {
                let token = f
                    .create(true, &Map::from_iter([("seed".into(), json!(1))]))
                    .await;
                redis::cmd("HSET")
                    .arg(format!("rs:{APP}:{token}"))
                    .arg("d")
                    .arg(text)
                    .exec(&mut f.raw)
                    .expect("HSET");
                f.set(by_node, &token, change).await;
                results.push(f.stored(&token));
            }
            assert_eq!(results[1], results[0], "stored {text}, set {change:?}");
        }
    }
}
