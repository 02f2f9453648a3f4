//! Runs only our concurrent gets, for a profiler: `perf record` this binary.
//! `profile_get [connections]` spreads the gets over that many stores (connections).
use redis_sessions::{CreateOptions, Options, RedisSessions};
use std::time::Duration;
use std::time::Instant;
use test_support::RedisServer;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let connections: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let server = RedisServer::start();
    let mut stores = Vec::new();
    for _ in 0..connections {
        stores.push(
            RedisSessions::connect(Options::default().url(server.url()).wipe(Duration::ZERO))
                .await
                .expect("connect"),
        );
    }
    let mut tokens = Vec::new();
    for i in 0..10_000 {
        tokens.push(
            stores[0]
                .create("benchapp", &format!("u{i}"), "1", CreateOptions::default())
                .await
                .expect("create"),
        );
    }
    for round in 0..20 {
        let started = Instant::now();
        let gets = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| stores[i % connections].get("benchapp", t));
        let results = futures_util::future::join_all(gets).await;
        assert!(results.iter().all(|r| matches!(r, Ok(Some(_)))));
        println!(
            "round {round}: {:.0} gets/s",
            10_000.0 / started.elapsed().as_secs_f64()
        );
    }
}
