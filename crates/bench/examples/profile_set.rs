//! Redis' own time per set script (commandstats usec_per_call), with data of growing size:
//! how much of set's cost is the merge.
use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::time::Duration;
use test_support::RedisServer;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let server = RedisServer::start();
    let rs = RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
        .await
        .expect("connect");
    for keys in [0usize, 1, 10, 30] {
        let _ = server.command(&["FLUSHALL"]);
        let mut tokens = Vec::new();
        for i in 0..2000 {
            let token = rs
                .create("benchapp", &format!("u{i}"), "1", CreateOptions::default())
                .await
                .expect("create");
            if keys > 0 {
                let d: serde_json::Map<String, serde_json::Value> = (0..keys)
                    .map(|k| (format!("key{k}"), json!(k * 1000)))
                    .collect();
                rs.set("benchapp", &token, &serde_json::Value::Object(d))
                    .await
                    .expect("set");
            }
            tokens.push(token);
        }
        let _ = server.command(&["CONFIG", "RESETSTAT"]);
        for round in 0..5 {
            let d = json!({ "key0": round });
            let sets = tokens.iter().map(|t| rs.set("benchapp", t, &d));
            futures_util::future::join_all(sets).await;
        }
        let stats = server
            .command(&["INFO", "commandstats"])
            .unwrap_or_default();
        let line = stats
            .lines()
            .find(|l| l.starts_with("cmdstat_evalsha"))
            .unwrap_or("");
        println!("{keys:>2} keys in d: {line}");
    }
}
