//! A migrating store (`RedisSessions::migrating`): two stores and a cut-over instant. Every
//! call is checked against what each store holds, and the shard-count change (CLUSTER.md's
//! runbook) runs on a real cluster under a model-checked load: nobody is logged out, and
//! soid, killsoid, activity, soapp and killall stay right throughout.

use rand::{Rng, SeedableRng};
use redis_sessions::{
    device_handle, token_created_ms, CreateOptions, KeyLayout, ManualClock, Options, RedisSessions,
    Session,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use test_support::cluster::RedisCluster;
use test_support::RedisServer;

const APP: &str = "moving";

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

async fn single(server: &RedisServer, clock: &ManualClock, cache: bool) -> RedisSessions {
    let mut options = Options::default()
        .url(server.url())
        .wipe(std::time::Duration::ZERO)
        .clock(clock.clone());
    if cache {
        options = options.cache(std::time::Duration::from_secs(60), 1000);
    }
    RedisSessions::connect(options).await.expect("connect")
}

fn ids(sessions: &[Session]) -> Vec<String> {
    let mut ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

/// One Redis onto another (each with its cache on), every call of the API: the store each
/// call reaches is read back through that store alone.
#[tokio::test(flavor = "multi_thread")]
async fn every_call_reaches_the_right_store_across_the_cutover() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let clock = ManualClock::starting_now();
    let old = single(&a, &clock, true).await;
    let new = single(&b, &clock, true).await;
    // Sessions of the fleet before it took the migrating configuration.
    let before = old
        .create(APP, "alice", "1", CreateOptions::default())
        .await
        .expect("create");
    let cutover = SystemTime::now() + Duration::from_millis(1500);
    let rs = RedisSessions::migrating(old.clone(), new.clone(), cutover);
    assert_eq!(rs.migration_cutover_ms(), Some(ms(cutover)));
    assert_eq!(
        format!("{rs:?}"),
        "RedisSessions { backend: \"migrating\" }"
    );

    // Until the cut-over, sessions are still created in the old store.
    let early = rs
        .create(APP, "alice", "2", CreateOptions::default())
        .await
        .expect("create");
    assert!(token_created_ms(&early).expect("time") < ms(cutover));
    assert!(old.get(APP, &early).await.expect("get").is_some());
    assert!(new.get(APP, &early).await.expect("get").is_none());
    tokio::time::sleep(
        cutover
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            + Duration::from_millis(10),
    )
    .await;
    let after = rs
        .create(APP, "alice", "3", CreateOptions::default())
        .await
        .expect("create");
    let bob = rs
        .create(APP, "bob", "4", CreateOptions::default())
        .await
        .expect("create");
    assert!(new.get(APP, &after).await.expect("get").is_some());
    assert!(old.get(APP, &after).await.expect("get").is_none());

    // get/set by token: the store of the token's creation time, each side's cache kept
    // in step (cached reads first, then a write through the migrating store).
    for token in [&before, &early, &after] {
        assert!(rs.get(APP, token).await.expect("get").is_some());
        assert!(rs.get(APP, token).await.expect("get").is_some());
        let s = rs
            .set(APP, token, &json!({"theme": token.len()}))
            .await
            .expect("set")
            .expect("live");
        assert_eq!(s.w, 2);
        let read = rs.get(APP, token).await.expect("get").expect("live");
        assert_eq!(
            read.get::<u64>("theme").ok().flatten(),
            Some(64),
            "read your own write"
        );
    }
    assert_eq!(
        old.get(APP, &before)
            .await
            .expect("get")
            .and_then(|s| s.get::<u64>("theme").ok().flatten()),
        Some(64),
        "the old store has the write of an old token"
    );
    assert!(old.cache_stats().expect("cache").hits > 0);
    assert!(rs.cache_stats().expect("cache").hits >= old.cache_stats().expect("c").hits);

    // soid: both stores, most recent first, with handles.
    clock.advance(std::time::Duration::from_secs(5));
    rs.set(APP, &early, &json!({"seen": true}))
        .await
        .expect("set");
    let soid = rs.soid(APP, "alice").await.expect("soid");
    assert_eq!(soid.len(), 3);
    assert_eq!(soid[0].ip, "2", "the one just read comes first: {soid:?}");
    assert!(soid.windows(2).all(|w| w[0].idle <= w[1].idle));
    assert_eq!(old.soid(APP, "alice").await.expect("soid").len(), 2);
    assert_eq!(new.soid(APP, "alice").await.expect("soid").len(), 1);

    // activity adds the stores' counts: alice has sessions in both, so she counts twice.
    assert_eq!(
        rs.activity(APP, std::time::Duration::from_secs(3600))
            .await
            .expect("activity"),
        3
    );
    assert_eq!(
        ids(&rs
            .soapp(APP, std::time::Duration::from_secs(3600))
            .await
            .expect("soapp")),
        ["alice", "alice", "alice", "bob"]
    );

    // kill_device finds the session in whichever store holds it.
    assert!(rs
        .kill_device(APP, "alice", &device_handle(&before))
        .await
        .expect("kill_device"));
    assert!(old.get(APP, &before).await.expect("get").is_none());
    assert!(!rs
        .kill_device(APP, "alice", &device_handle(&before))
        .await
        .expect("kill_device"));

    // killsoid_keep: spares the caller's session (new store), ends the old store's one.
    assert_eq!(
        rs.killsoid_keep(APP, "alice", &after)
            .await
            .expect("killsoid_keep"),
        1
    );
    assert!(rs.get(APP, &early).await.expect("get").is_none());
    assert!(rs.get(APP, &after).await.expect("get").is_some());

    // killsoid ("log out everywhere") leaves nothing valid on either side.
    let again = old
        .create(APP, "alice", "5", CreateOptions::default())
        .await
        .expect("create");
    assert_eq!(rs.killsoid(APP, "alice").await.expect("killsoid"), 2);
    for token in [&again, &after] {
        assert!(rs.get(APP, token).await.expect("get").is_none());
        assert!(old.get(APP, token).await.expect("get").is_none());
        assert!(new.get(APP, token).await.expect("get").is_none());
    }

    // kill by token reaches the store that holds it.
    assert!(rs.kill(APP, &bob).await.expect("kill"));
    assert!(new.get(APP, &bob).await.expect("get").is_none());

    // killall and the sweep reach both.
    old.create(APP, "carol", "6", CreateOptions::default())
        .await
        .expect("create");
    new.create(APP, "dave", "7", CreateOptions::default())
        .await
        .expect("create");
    assert_eq!(rs.killall(APP).await.expect("killall"), 2);
    assert_eq!(
        rs.activity(APP, std::time::Duration::from_secs(3600))
            .await
            .expect("activity"),
        0
    );
    for store in [&old, &new] {
        store
            .create(
                APP,
                "erin",
                "8",
                CreateOptions::default().ttl(std::time::Duration::from_secs(10)),
            )
            .await
            .expect("create");
    }
    clock.advance(std::time::Duration::from_secs(11));
    assert_eq!(rs.sweep().await.expect("sweep"), 2);

    // ping and nodes: both stores.
    assert_eq!(rs.ping().await.expect("ping"), "PONG");
    let nodes = rs.nodes(Duration::from_secs(1)).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    drop(b);
    assert!(
        rs.ping().await.is_err(),
        "ping fails when one store is away"
    );
    rs.quit();
    assert!(old.ping().await.is_err(), "quit reaches both stores");
}

/// A session created at the cut-over on a process whose clock is a moment off lands on
/// the other side of it: tokens within a minute of the cut-over are looked for in both.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_created_across_the_cutover_is_still_found() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let clock = ManualClock::starting_now();
    let old = single(&a, &clock, false).await;
    let new = single(&b, &clock, false).await;
    // The old store got this session after the cut-over (a process that switched late).
    let late = old
        .create(APP, "alice", "1", CreateOptions::default())
        .await
        .expect("create");
    let cutover = UNIX_EPOCH + Duration::from_millis(token_created_ms(&late).expect("t") - 1);
    let rs = RedisSessions::migrating(old.clone(), new.clone(), cutover);
    assert!(rs.get(APP, &late).await.expect("get").is_some());
    assert!(rs
        .set(APP, &late, &json!({"a": 1}))
        .await
        .expect("set")
        .is_some());
    assert!(rs.kill(APP, &late).await.expect("kill"));
    assert!(old.get(APP, &late).await.expect("get").is_none());
    // Far from the cut-over, only the token's own store is asked.
    let far = UNIX_EPOCH + Duration::from_millis(token_created_ms(&late).expect("t") - 120_000);
    let late = old
        .create(APP, "alice", "1", CreateOptions::default())
        .await
        .expect("create");
    let rs = RedisSessions::migrating(old.clone(), new.clone(), far);
    assert!(rs.get(APP, &late).await.expect("get").is_none());
}

/// What one writer knows it was acknowledged: its app's sessions, by token.
#[derive(Default)]
struct Model {
    /// token -> (id, data, created in the old store)
    sessions: HashMap<String, (String, BTreeMap<String, Value>, bool)>,
    checks: u64,
    /// Reads of old-store sessions after the cut-over: old tokens served by the new fleet.
    old_reads_after: u64,
}

impl Model {
    fn of_id(&self, id: &str) -> usize {
        self.sessions.values().filter(|(i, _, _)| i == id).count()
    }

    /// activity of a migrating store: distinct ids per store, added.
    fn activity(&self) -> u64 {
        let mut per_side: [std::collections::BTreeSet<&str>; 2] = Default::default();
        for (id, _, old) in self.sessions.values() {
            per_side[usize::from(*old)].insert(id);
        }
        (per_side[0].len() + per_side[1].len()) as u64
    }

    fn random_token(&self, rng: &mut impl Rng) -> Option<String> {
        let n = self.sessions.len();
        (n > 0).then(|| {
            self.sessions
                .keys()
                .nth(rng.random_range(0..n))
                .cloned()
                .unwrap_or_default()
        })
    }
}

/// One writer: its own app and ids, so every answer can be checked exactly. A quarter
/// of the writers also run killall (the others keep their sessions to the end). Uses `before`
/// (the old store alone: a process not yet given the migrating configuration) until
/// `switch`, then `during`.
async fn writer(
    n: usize,
    before: RedisSessions,
    during: RedisSessions,
    switch: std::time::Instant,
    until: std::time::Instant,
    cutover_ms: u64,
) -> (u64, Model) {
    let app = format!("app{n}");
    let mut model = Model::default();
    let mut ops = 0u64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    while std::time::Instant::now() < until {
        let rs = if std::time::Instant::now() < switch {
            &before
        } else {
            &during
        };
        ops += 1;
        let id = format!("u{}", rng.random_range(0..20));
        match rng.random_range(0..100) {
            0..=27 => {
                let token = rs
                    .create(&app, &id, "10.0.0.1", CreateOptions::default())
                    .await
                    .expect("create");
                let created = token_created_ms(&token).expect("time");
                // A create decides its store a moment before its token gets its time: at
                // the cut-over, ask the old store (soid does not count as a read).
                let old = if created.abs_diff(cutover_ms) < 1000 {
                    let handle = device_handle(&token);
                    let listed = before.soid(&app, &id).await.expect("soid");
                    listed
                        .iter()
                        .any(|s| s.handle.as_deref() == Some(handle.as_str()))
                } else {
                    created < cutover_ms
                };
                model.sessions.insert(token, (id, BTreeMap::new(), old));
            }
            28..=54 => {
                let Some(token) = model.random_token(&mut rng) else {
                    continue;
                };
                let key = format!("k{}", rng.random_range(0..3));
                let value = json!(ops);
                let s = rs
                    .set(&app, &token, &json!({ key.clone(): value.clone() }))
                    .await
                    .expect("set")
                    .unwrap_or_else(|| panic!("{app}: an acknowledged session vanished"));
                let entry = model.sessions.get_mut(&token).expect("known");
                entry.1.insert(key, value);
                assert_eq!(data(&s), entry.1, "{app}: set answers the merged data");
            }
            55..=80 => {
                let Some(token) = model.random_token(&mut rng) else {
                    continue;
                };
                let s = rs
                    .get(&app, &token)
                    .await
                    .expect("get")
                    .unwrap_or_else(|| panic!("{app}: a user was logged out"));
                assert_eq!(data(&s), model.sessions[&token].1, "{app}: get");
                if model.sessions[&token].2 && ms(SystemTime::now()) > cutover_ms {
                    model.old_reads_after += 1;
                }
            }
            81..=82 => {
                let Some(token) = model.random_token(&mut rng) else {
                    continue;
                };
                assert!(rs.kill(&app, &token).await.expect("kill"), "{app}: kill");
                model.sessions.remove(&token);
            }
            83..=86 => {
                let soid = rs.soid(&app, &id).await.expect("soid");
                assert_eq!(soid.len(), model.of_id(&id), "{app}: soid {id}");
                if let (Some(s), 0) = (soid.first(), rng.random_range(0..4)) {
                    let handle = s.handle.clone().expect("handle");
                    assert!(rs.kill_device(&app, &id, &handle).await.expect("device"));
                    model.sessions.retain(|t, _| device_handle(t) != handle);
                }
            }
            87..=87 => {
                let killed = rs.killsoid(&app, &id).await.expect("killsoid");
                assert_eq!(killed as usize, model.of_id(&id), "{app}: killsoid {id}");
                model.sessions.retain(|_, (i, _, _)| *i != id);
                assert!(rs.soid(&app, &id).await.expect("soid").is_empty());
            }
            88..=92 => {
                assert_eq!(
                    rs.activity(&app, std::time::Duration::from_secs(3600))
                        .await
                        .expect("activity"),
                    model.activity(),
                    "{app}: activity"
                );
            }
            93..=98 => {
                let soapp = rs
                    .soapp(&app, std::time::Duration::from_secs(3600))
                    .await
                    .expect("soapp");
                let mut want: Vec<String> =
                    model.sessions.values().map(|(i, _, _)| i.clone()).collect();
                want.sort();
                assert_eq!(ids(&soapp), want, "{app}: soapp");
            }
            _ if n % 4 == 3 => {
                let killed = rs.killall(&app).await.expect("killall");
                assert_eq!(killed as usize, model.sessions.len(), "{app}: killall");
                model.sessions.clear();
            }
            _ => continue,
        }
        model.checks += 1;
    }
    (ops, model)
}

fn data(s: &Session) -> BTreeMap<String, Value> {
    serde_json::to_value(&s.d)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

async fn sharded(
    cluster: &RedisCluster,
    ns: &str,
    shards: u16,
    clock: &ManualClock,
) -> RedisSessions {
    RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .namespace(ns)
            .key_layout(KeyLayout::Sharded { shards })
            .wipe(std::time::Duration::ZERO)
            .clock(clock.clone()),
    )
    .await
    .expect("connect to the cluster")
}

/// CLUSTER.md's runbook, "Changing the shard count": a namespace of 60 shards moves to one
/// of 120 on the same cluster while 8 model-checked writers run. Half of them start on the
/// old store alone and take the migrating configuration before the cut-over (a rolling
/// deploy); every acknowledged session stays readable with its data; soid, killsoid,
/// kill_device, activity, soapp and killall are checked on every call; after the longest
/// ttl the old namespace holds nothing live.
#[tokio::test(flavor = "multi_thread")]
async fn the_shard_count_changes_under_load_and_nobody_is_logged_out() {
    let cluster = RedisCluster::start(3, 0);
    let clock = ManualClock::starting_now();
    let old = sharded(&cluster, "rs", 60, &clock).await;
    let new = sharded(&cluster, "rs2", 120, &clock).await;
    let start = std::time::Instant::now();
    let cutover = SystemTime::now() + Duration::from_secs(3);
    let rs = RedisSessions::migrating(old.clone(), new.clone(), cutover);
    let writers = (0..8).map(|n| {
        // Odd writers switch 1 s before the cut-over, even ones run migrating from the start.
        let switch = start + Duration::from_secs(if n % 2 == 1 { 2 } else { 0 });
        tokio::spawn(writer(
            n,
            old.clone(),
            rs.clone(),
            switch,
            start + Duration::from_secs(7),
            ms(cutover),
        ))
    });
    let mut models = Vec::new();
    let mut ops = 0;
    for w in writers {
        let (n, model) = w.await.expect("writer");
        ops += n;
        models.push(model);
    }
    let (mut on_old, mut on_new) = (0, 0);
    let old_reads: u64 = models.iter().map(|m| m.old_reads_after).sum();
    for (n, model) in models.iter().enumerate() {
        let app = format!("app{n}");
        for (token, (_, d, in_old)) in &model.sessions {
            let s = rs
                .get(&app, token)
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{app}: a user was logged out"));
            assert_eq!(&data(&s), d);
            let side = if *in_old { &old } else { &new };
            assert!(side.get(&app, token).await.expect("get").is_some());
            *(if *in_old { &mut on_old } else { &mut on_new }) += 1;
        }
    }
    println!(
        "shard-count change 60 -> 120 under load: {ops} calls in {:.1} s, {} checked; \
         {on_old} live sessions in the old namespace, {on_new} in the new one at the end; \
         {old_reads} reads of old sessions after the cut-over",
        start.elapsed().as_secs_f64(),
        models.iter().map(|m| m.checks).sum::<u64>()
    );
    assert!(on_old > 0 && on_new > 0, "both namespaces were in use");
    assert!(old_reads > 0, "old tokens were read after the cut-over");

    // Retiring the old namespace: once the longest ttl (the default 7200 s) has passed
    // since the cut-over, it holds no live session.
    clock.advance(std::time::Duration::from_secs(7201));
    rs.sweep().await.expect("sweep");
    for n in 0..models.len() {
        let app = format!("app{n}");
        assert_eq!(
            old.activity(&app, std::time::Duration::from_secs(86_400_u64))
                .await
                .expect("activity"),
            0
        );
        assert!(old
            .soapp(&app, std::time::Duration::from_secs(86_400_u64))
            .await
            .expect("soapp")
            .is_empty());
    }
}
