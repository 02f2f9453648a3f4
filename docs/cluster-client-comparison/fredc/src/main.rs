// The same workload as r18/r20 with fred 10: one clustered client (one connection per node),
// 1 s connect and command timeouts, reconnects 50..1000 ms, 10 attempts.
use fred::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let conc: u64 = std::env::var("CONC").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let base: u16 = std::env::var("BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(7100);
    let config = Config {
        server: ServerConfig::new_clustered((0..3).map(|i| ("127.0.0.1", base + i)).collect()),
        ..Default::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(1);
            c.internal_command_timeout = Duration::from_secs(1);
            c.max_command_attempts = 10;
            c.max_redirections = 10;
            // FRED_UNRESPONSIVE=1: fred's own stuck-connection detector (close a connection
            // whose oldest request waited 2 s, checked every 500 ms).
            if std::env::var("FRED_UNRESPONSIVE").is_ok() {
                c.unresponsive = fred::types::config::UnresponsiveConfig { max_timeout: Some(Duration::from_secs(2)), interval: Duration::from_millis(500) };
            }
        })
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(1))
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
        .build()
        .unwrap();
    client.init().await.unwrap();
    let ok = Arc::new(AtomicU64::new(0)); let err = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    for w in 0..conc {
        let client = client.clone(); let ok = ok.clone(); let err = err.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while t0.elapsed().as_secs() < secs {
                i += 1;
                let tag = (w * 7919 + i) % 60;
                let key = format!("repro:{{{}}}:{}", tag, i % 5000);
                let r = tokio::time::timeout(Duration::from_secs(2), client.set::<(), _, _>(key, i, None, None, false)).await;
                match r {
                    Ok(Ok(())) => { ok.fetch_add(1, Relaxed); }
                    other => {
                        if std::env::var("FRED_ERRORS").is_ok() && err.load(Relaxed) % 200 == 0 { eprintln!("err: {:?}", other.map_err(|_| "outer 2 s timeout")); }
                        err.fetch_add(1, Relaxed);
                    }
                }
            }
        });
    }
    let (mut lo, mut le) = (0, 0);
    while t0.elapsed().as_secs() < secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (o, e) = (ok.load(Relaxed), err.load(Relaxed));
        println!("t={:>3} ok/s={:>6} err/s={:>4}", t0.elapsed().as_secs(), o - lo, e - le);
        lo = o; le = e;
    }
    std::process::exit(0);
}
