// The repro's workload (50 tasks of SET on hash-tagged keys through one cluster connection,
// the builder settings of redis-sessions), seeds from BASE; prints ok/err per second.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
#[tokio::main]
async fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let conc: u64 = std::env::var("CONC").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let base: u16 = std::env::var("BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(7100);
    let seeds: Vec<String> = (0..3).map(|i| format!("redis://127.0.0.1:{}", base + i)).collect();
    let b = redis::cluster::ClusterClientBuilder::new(seeds);
    let b = b.connection_timeout(Duration::from_secs(1)).response_timeout(Duration::from_secs(1))
        .retries(10).min_retry_wait(50).max_retry_wait(1000);
    let client = b.build().unwrap();
    let con = client.get_async_connection().await.unwrap();
    let ok = Arc::new(AtomicU64::new(0)); let err = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    for w in 0..conc {
        let con = con.clone(); let ok = ok.clone(); let err = err.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while t0.elapsed().as_secs() < secs {
                i += 1;
                let tag = (w * 7919 + i) % 60;
                let key = format!("repro:{{{}}}:{}", tag, i % 5000);
                let r = tokio::time::timeout(Duration::from_secs(2), redis::cmd("SET").arg(&key).arg(i).query_async::<()>(&mut con.clone())).await;
                let r: redis::RedisResult<()> = match r { Ok(r) => r, Err(_) => Err((redis::ErrorKind::Io, "outer 2s timeout").into()) };
                if r.is_ok() { ok.fetch_add(1, Relaxed); } else { err.fetch_add(1, Relaxed); }
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
