//! Redis Sentinel under real partitions (network namespaces, see
//! `test_support::netns`): hosts A, B, C and this process's host D. Needs root and the
//! `ip`/`tc` commands (CI runs as root; scripts/test.sh installs iproute2); elsewhere each
//! test prints why it is skipped and passes.
//!
//! 1. Two replicas and a 15 s partition: master M and replica R2 on A, replica R on B,
//!    sentinels on A, B, C; the stores (host D) stay on A's side, cut off from B and C with
//!    it. The sentinels of B and C promote R; M and R2 go on on A's side. Three stores carry
//!    a load throughout: without durable writes, with `min_replicas(1)` and with
//!    `min_replicas_all`. Every acknowledged write is read back from the final master: with
//!    `all` none may be lost (R2 confirms, but R — the one promoted — cannot, so writes
//!    fail instead of being acknowledged); the others' losses are printed.
//! 2. An unreachable sentinel listed first: host A (master and the first sentinel) is cut
//!    off from everyone; a store on D, its sentinels listed A's first, must move to the
//!    promoted replica within 1 s of the promotion.
//!
//! The tests print their figures (the README quotes them).

use redis_sessions::{CreateOptions, Options, RedisSessions};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::failover::{Kind, Load, Record, SessionClient};
use test_support::netns::{self, Deployment, A, B, C, D, MASTER_NAME};

const APP: &str = "partition";

/// One partition test at a time: each takes most of the machine's two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The library as the load's client.
#[derive(Clone)]
struct Library(RedisSessions);

impl SessionClient for Library {
    async fn create(&self, id: String, n: i64) -> Option<String> {
        let options = CreateOptions::default().data(json!({ "n": n }));
        self.0.create(APP, &id, "10.0.0.1", options).await.ok()
    }

    async fn set(&self, token: String, n: i64) -> bool {
        matches!(
            self.0.set(APP, &token, &json!({ "n": n })).await,
            Ok(Some(_))
        )
    }

    async fn get(&self, token: String) -> Result<Option<(String, Option<i64>)>, ()> {
        match self.0.get(APP, &token).await {
            Ok(session) => {
                Ok(session.map(|s| (s.id.clone(), s.get::<i64>("n").expect("a typed read"))))
            }
            Err(_) => Err(()),
        }
    }
}

/// Why the test cannot run here, printed; None when it can.
fn skipped(test: &str) -> bool {
    match netns::unavailable() {
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}; partition tests need root and iproute2");
            true
        }
        None => false,
    }
}

fn options(sentinels: Vec<String>) -> Options {
    Options::default()
        .sentinel(sentinels, MASTER_NAME)
        .wipe(Duration::ZERO)
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
}

/// Acknowledged sessions, sessions lost and sets lost of `record`, read through `store`
/// (retried while the store is still finding the final master).
async fn losses(record: &Record, store: &Library) -> (usize, usize, usize) {
    let (sessions, values) = record.lost(store).await;
    (record.sessions.len(), sessions, values)
}

/// When `store` uses the server `want` (`host:port`), waiting at most 30 s.
async fn switched(store: &RedisSessions, want: &str) -> Instant {
    let started = Instant::now();
    loop {
        let nodes = store.nodes(Duration::from_millis(100)).await;
        if nodes.first().is_some_and(|n| n.node == want) {
            return Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the store still uses {nodes:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (at most 20 s) until `store` answers reads again.
async fn serving(store: &RedisSessions) {
    let started = Instant::now();
    while store.get(APP, &"0".repeat(64)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "store not serving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_with_two_replicas_loses_no_durable_write_with_all() {
    if skipped("a_partition_with_two_replicas_loses_no_durable_write_with_all") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    // M on A, R on B, R2 on A; sentinels on A, B, C.
    let set = tokio::task::spawn_blocking(|| Deployment::start(&[A, B, A], &[A, B, C]))
        .await
        .expect("deployment");
    let addrs = set.sentinel_addrs();
    let durable_timeout = Duration::from_millis(500);
    let plain = RedisSessions::connect(options(addrs.clone()))
        .await
        .expect("connect");
    let one = RedisSessions::connect(options(addrs.clone()).min_replicas(1, durable_timeout))
        .await
        .expect("connect");
    let all = RedisSessions::connect(options(addrs.clone()).min_replicas_all(durable_timeout))
        .await
        .expect("connect");
    let pause = Duration::from_millis(5);
    let loads = [
        Load::start(&Library(plain.clone()), "p", 2, pause),
        Load::start(&Library(one.clone()), "o", 2, pause),
        Load::start(&Library(all.clone()), "a", 2, pause),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;

    // D and A on one side, B and C on the other.
    let cuts = [(A, B), (A, C), (D, B), (D, C)];
    for (x, y) in cuts {
        set.hosts.cut(x, y);
    }
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    set.hosts.heal_all();
    let healed = Instant::now();
    println!(
        "partition healed after {:.1} s",
        cut_at.elapsed().as_secs_f64()
    );
    let recovered = loads[2]
        .recovered(healed, Kind::WRITES, Duration::from_secs(30))
        .await;
    // The promoted replica (server 1) ends as master, with M and R2 its replicas.
    tokio::task::block_in_place(|| set.wait_settled(1, Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let [plain_load, one_load, all_load] = loads;
    let records = [
        plain_load.finish().await,
        one_load.finish().await,
        all_load.finish().await,
    ];
    let stores = [Library(plain), Library(one), Library(all)];
    let mut figures = Vec::new();
    for (record, store) in records.iter().zip(&stores) {
        serving(&store.0).await;
        figures.push(losses(record, store).await);
    }
    for (name, (acked, sessions, sets)) in
        ["no durable writes", "min_replicas(1)", "min_replicas_all"]
            .iter()
            .zip(&figures)
    {
        println!(
            "15 s partition, two replicas, {name}: {acked} acknowledged sessions, {sessions} \
             lost, {sets} sets lost"
        );
    }
    println!(
        "min_replicas_all: writes acknowledged again {:.1} s after the heal ({} failed calls \
         before)",
        recovered.1.as_secs_f64(),
        recovered.0
    );
    let (acked, sessions, sets) = figures[2];
    assert!(acked > 50, "the load ran");
    assert_eq!(
        (sessions, sets),
        (0, 0),
        "acknowledged durable writes lost with `all`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_first_sentinel_does_not_slow_the_failover() {
    if skipped("an_unreachable_first_sentinel_does_not_slow_the_failover") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    // M and the first sentinel on A, R and the second on B, the third on C.
    let set = tokio::task::spawn_blocking(|| Deployment::start(&[A, B], &[A, B, C]))
        .await
        .expect("deployment");
    let plain = RedisSessions::connect(options(set.sentinel_addrs()))
        .await
        .expect("connect");
    let durable = RedisSessions::connect(
        options(set.sentinel_addrs()).min_replicas(1, Duration::from_millis(500)),
    )
    .await
    .expect("connect");
    let pause = Duration::from_millis(5);
    let plain_load = Load::start(&Library(plain.clone()), "p", 2, pause);
    let durable_load = Load::start(&Library(durable.clone()), "d", 2, pause);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let new_master = set.addr(&set.servers[1]);
    let watch = |store: &RedisSessions| {
        let (store, want) = (store.clone(), new_master.clone());
        tokio::spawn(async move { switched(&store, &want).await })
    };
    let (plain_switch, durable_switch) = (watch(&plain), watch(&durable));
    for other in [B, C, D] {
        set.hosts.cut(A, other);
    }
    let cut_at = Instant::now();
    let promoted = tokio::task::block_in_place(|| loop {
        if set.all_name(1, &[1, 2]) {
            break cut_at.elapsed();
        }
        assert!(cut_at.elapsed() < Duration::from_secs(30), "no promotion");
        std::thread::sleep(Duration::from_millis(20));
    });
    let limit = Duration::from_secs(20);
    let plain_back = plain_load.recovered(cut_at, Kind::WRITES, limit).await;
    // Durable writes need a replica: none until A is back, so only reads are timed.
    let durable_back = durable_load.recovered(cut_at, &[Kind::Get], limit).await;
    let plain_switch = plain_switch.await.expect("switched") - cut_at;
    let durable_switch = durable_switch.await.expect("switched") - cut_at;
    println!(
        "host A (master, first sentinel) cut off: promotion seen {:.2} s after the cut; \
         stores on the new master after {:.2} s (plain) and {:.2} s (durable); writes \
         without durable writes back after {:.2} s ({} failed calls; calls in flight to the \
         old master end at their timeout), reads with durable writes back after {:.2} s",
        promoted.as_secs_f64(),
        plain_switch.as_secs_f64(),
        durable_switch.as_secs_f64(),
        plain_back.1.as_secs_f64(),
        plain_back.0,
        durable_back.1.as_secs_f64()
    );
    set.hosts.heal_all();
    tokio::task::block_in_place(|| set.wait_settled(1, Duration::from_secs(60)));
    let (plain_record, durable_record) = (plain_load.finish().await, durable_load.finish().await);
    let (plain, durable) = (Library(plain), Library(durable));
    serving(&plain.0).await;
    let plain_losses = losses(&plain_record, &plain).await;
    let durable_losses = losses(&durable_record, &durable).await;
    println!(
        "host A cut off and back: without durable writes {} acknowledged sessions, {} lost, {} \
         sets lost; with: {} acknowledged, {} lost, {} sets lost",
        plain_losses.0,
        plain_losses.1,
        plain_losses.2,
        durable_losses.0,
        durable_losses.1,
        durable_losses.2
    );
    for switch in [plain_switch, durable_switch] {
        assert!(
            switch <= promoted + Duration::from_millis(500),
            "a store moved {:.2} s after the promotion",
            switch.saturating_sub(promoted).as_secs_f64()
        );
    }
    assert_eq!(
        (durable_losses.1, durable_losses.2),
        (0, 0),
        "durable writes lost"
    );
}
