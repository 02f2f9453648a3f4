// Our workload through redis-sessions (redis 2.0.0-rc.2 + the store's watchdog): 50 tasks,
// each creating sessions for 5000 users and setting and getting them (create, get, set, get);
// prints ok/err per second and, at the end, the watchdog's counters.
use redis_sessions::{CreateOptions, Options, RedisSessions};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let conc: u64 = std::env::var("CONC").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let base: u16 = std::env::var("BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(7100);
    let seeds: Vec<String> = (0..3).map(|i| format!("redis://127.0.0.1:{}", base + i)).collect();
    let rs = RedisSessions::connect(Options::default().cluster(seeds).wipe(Duration::ZERO)).await.unwrap();
    let ok = Arc::new(AtomicU64::new(0)); let err = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    for w in 0..conc {
        let rs = rs.clone(); let ok = ok.clone(); let err = err.clone();
        let mut token = rs.create("bench", &format!("user{w}"), "10.0.0.1", CreateOptions::default()).await.unwrap();
        tokio::spawn(async move {
            let mut i = 0u64;
            while t0.elapsed().as_secs() < secs {
                i += 1;
                // Every 4th call creates a session for one of 5000 users (so every shard,
                // and every slot that moves, is busy), then sets and gets go to it.
                let call = async {
                    match i % 4 {
                        0 => rs.create("bench", &format!("user{}", (w * 7919 + i) % 5000), "10.0.0.1", CreateOptions::default()).await.map(|t| { token = t; }),
                        2 => rs.set("bench", &token, &serde_json::json!({"n": i})).await.map(|_| ()),
                        _ => rs.get("bench", &token).await.map(|_| ()),
                    }
                };
                let r = tokio::time::timeout(Duration::from_secs(2), call).await;
                if matches!(r, Ok(Ok(()))) { ok.fetch_add(1, Relaxed); } else { err.fetch_add(1, Relaxed); }
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
    println!("stats {:?}", rs.connection_stats());
    std::process::exit(0);
}
