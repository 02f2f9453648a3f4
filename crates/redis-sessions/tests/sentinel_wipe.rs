//! A master restarted in place without persistence, under Sentinel: a master, a replica
//! and three sentinels on loopback; the master is SIGKILLed and started again at once on
//! the same port, empty, before the sentinels see it down. No failover happens, the
//! replica resyncs from the empty master, and every session is gone. The test asserts the
//! stores notice within seconds and say so (their node list, which is what `/health`
//! reports), that a store set to refuse writes after a wipe refuses them until the marker
//! key is deleted, and that one not set to goes on writing.

use redis_sessions::{CreateOptions, Options, RedisSessions};
use std::time::{Duration, Instant};
use test_support::sentinel::{SentinelSet, MASTER_NAME};

const APP: &str = "wipe";

fn options(set: &SentinelSet) -> Options {
    Options::default()
        .sentinel(set.addrs(), MASTER_NAME)
        .wipe(Duration::ZERO)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
}

/// The reason `store` reports for its master, once it reports one (at most `limit`).
async fn reported(store: &RedisSessions, limit: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let nodes = store.nodes(Duration::from_millis(300)).await;
        if let Some(error) = nodes.iter().find_map(|n| n.error.clone()) {
            if error.contains("vanished") {
                return Some(error);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_empty_in_place_is_reported() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start)
        .await
        .expect("sentinels");
    let guarded = RedisSessions::connect(options(&set).refuse_writes_after_wipe(true))
        .await
        .expect("connect");
    let plain = RedisSessions::connect(options(&set))
        .await
        .expect("connect");
    let token = plain
        .create(APP, "before", "10.0.0.1", CreateOptions::default())
        .await
        .expect("create");
    assert!(
        reported(&plain, Duration::from_millis(1500))
            .await
            .is_none(),
        "nothing to report before the fault"
    );

    let master = set.master_index();
    let port = set.servers[master].port();
    tokio::task::block_in_place(|| {
        set.servers[master].stop();
        set.servers[master].restart();
    });
    let restarted = Instant::now();
    let reason = reported(&guarded, Duration::from_secs(10))
        .await
        .expect("the wipe was reported");
    let detected = restarted.elapsed();
    assert!(
        reported(&plain, Duration::from_secs(5)).await.is_some(),
        "every store of the namespace reports it"
    );
    println!(
        "master restarted empty in place: reported {:.1} s after the restart: {reason}",
        detected.as_secs_f64()
    );
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    // What was written before is gone indeed (no failover rescued it).
    assert_eq!(plain.get(APP, &token).await.ok().flatten(), None);

    // Refused until acknowledged; the other store writes on.
    let refused = guarded
        .create(APP, "after", "10.0.0.1", CreateOptions::default())
        .await;
    assert!(
        matches!(&refused, Err(redis_sessions::Error::Unavailable(e)) if e.to_string().contains("acknowledges")),
        "{refused:?}"
    );
    plain
        .create(APP, "after", "10.0.0.1", CreateOptions::default())
        .await
        .expect("a store not set to refuse writes goes on");
    let marker = set.servers[set.master_index()]
        .command(&["DEL", "rs:{wiped}"])
        .expect("DEL");
    assert!(marker.contains(":1"), "the marker was there: {marker}");
    let acknowledged = Instant::now();
    loop {
        let created = guarded
            .create(APP, "acknowledged", "10.0.0.1", CreateOptions::default())
            .await;
        if created.is_ok() {
            break;
        }
        assert!(
            acknowledged.elapsed() < Duration::from_secs(5),
            "writes still refused after the acknowledgment: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reported(&guarded, Duration::from_millis(1500))
        .await
        .is_none());
}
