//! Slots move under a mixed load (reshards and rebalances of a real Redis Cluster), and a
//! model of every user's sessions checks, after each move, that nothing acknowledged was
//! lost and that soid, killsoid and activity tell the truth; during the moves, a killsoid
//! either logs its user out everywhere or changes nothing.
//!
//! Each load task owns its users, so its model of them is exact at any moment: soid is
//! checked in flight too. killall runs on an app of its own (one task writes it), and the
//! sweep ends sessions of a short ttl while the slots move.

use redis_sessions::{CreateOptions, Options, RedisSessions, Session};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::cluster::RedisCluster;
use test_support::faults::node_id;

const APP: &str = "moving";
const SCRATCH: &str = "scratch";
/// Sessions with the shortest ttl, created before the moves: the sweep ends them during
/// and after the moves.
const BRIEF: &str = "brief";
const BRIEF_SESSIONS: usize = 300;
const BRIEF_TTL: Duration = Duration::from_secs(10);
/// Load tasks (16 measured too: 3 runs, 0 failed calls; 8 keeps CI's shared cores calm).
const TASKS: usize = 8;
const USERS_PER_TASK: usize = 12;
const WINDOW: Duration = Duration::from_secs(3600);

/// One session as the model knows it.
#[derive(Debug, Clone)]
struct Sess {
    /// `d.k`: how soid's answer names it (sessions carry no token).
    label: String,
    /// None for a session whose create failed but was found (its token never came back).
    token: Option<String>,
    /// The last acknowledged `d.n`; None after a set that failed (either value may hold).
    n: Option<u64>,
}

#[derive(Debug, Default)]
struct User {
    id: String,
    sessions: Vec<Sess>,
    /// Labels of creates that failed: each may or may not exist.
    maybe: Vec<String>,
}

impl User {
    /// Checks soid's answer against the model; sessions of failed creates that turn up
    /// join the model. Returns a description of what is wrong.
    fn reconcile(&mut self, found: &[Session]) -> Result<(), String> {
        let labels: Vec<String> = found
            .iter()
            .map(|s| {
                s.get::<String>("k")
                    .expect("a typed read")
                    .unwrap_or_default()
            })
            .collect();
        let set: BTreeSet<&String> = labels.iter().collect();
        if set.len() != labels.len() {
            return Err(format!("{}: soid repeats a session: {labels:?}", self.id));
        }
        for (label, session) in labels.iter().zip(found) {
            if let Some(known) = self.sessions.iter_mut().find(|s| &s.label == label) {
                let n = session.get::<u64>("n").expect("a typed read");
                match known.n {
                    Some(expected) if n != Some(expected) => {
                        return Err(format!(
                            "{}: session {label} has n {n:?}, the last acknowledged set wrote {expected}",
                            self.id
                        ))
                    }
                    None => known.n = n,
                    _ => {}
                }
            } else if let Some(i) = self.maybe.iter().position(|m| m == label) {
                self.maybe.remove(i);
                self.sessions.push(Sess {
                    label: label.clone(),
                    token: None,
                    n: session.get::<u64>("n").expect("a typed read"),
                });
            } else {
                return Err(format!("{}: soid shows unknown session {label}", self.id));
            }
        }
        let missing: Vec<&String> = self
            .sessions
            .iter()
            .map(|s| &s.label)
            .filter(|l| !set.contains(l))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{}: acknowledged sessions missing from soid: {missing:?}",
                self.id
            ));
        }
        Ok(())
    }
}

/// Counters of one move (or of the quiet time before the first).
#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    failed: AtomicU64,
}

struct Shared {
    rs: RedisSessions,
    stop: AtomicBool,
    /// While set, tasks finish their current step and wait (the model check runs).
    pause: AtomicBool,
    paused: AtomicU64,
    counts: Mutex<Arc<Counts>>,
    violations: Mutex<Vec<String>>,
    /// killsoid calls that failed during a move, and how many of those changed nothing.
    killsoid_failed: AtomicU64,
    killsoid_failed_unchanged: AtomicU64,
    killsoid_done: AtomicU64,
    /// Sessions the sweeps that succeeded ended.
    swept: AtomicU64,
    /// What each task is doing (printed when the load does not pause).
    doing: Mutex<Vec<String>>,
    /// Failed calls whose error was a redirection (must stay 0).
    redirects: AtomicU64,
}

impl Shared {
    fn counts(&self) -> Arc<Counts> {
        self.counts.lock().expect("lock").clone()
    }

    fn record<T>(&self, r: &Result<T, redis_sessions::Error>) {
        let counts = self.counts();
        counts.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = r {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("call failed: {err:?}");
            if is_redirect(err) {
                self.redirects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION {what}");
        self.violations.lock().expect("lock").push(what);
    }

    /// soid until it answers (it may fail while a slot moves); the answer is not counted.
    async fn soid_settled(&self, id: &str) -> Vec<Session> {
        let started = Instant::now();
        loop {
            match self.rs.soid(APP, id).await {
                Ok(s) => return s,
                Err(err) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(60),
                        "soid never answered again: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn wait_if_paused(&self) {
        if self.pause.load(Ordering::SeqCst) {
            self.paused.fetch_add(1, Ordering::SeqCst);
            while self.pause.load(Ordering::SeqCst) && !self.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            self.paused.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A cluster redirection or "try again" that reached the caller: the store must follow
/// them itself until the call's deadline (a call that runs out of time fails as
/// `redisUnavailable`, never as `redisError` "Ask"/"Moved"/"TryAgain").
fn is_redirect(err: &redis_sessions::Error) -> bool {
    let text = format!("{err:?} {err}");
    err.name() == "redisError"
        || [
            "Ask",
            "Moved",
            "TryAgain",
            "ClusterDown",
            "MOVED",
            "ASK",
            "TRYAGAIN",
        ]
        .iter()
        .any(|code| text.contains(&format!("{code}:")) || text.contains(&format!("{code} ")))
}

/// One step of a user's load, chosen by `step`.
async fn user_step(shared: &Shared, user: &mut User, step: u64, seq: &mut u64) {
    let rs = &shared.rs;
    *seq += 1;
    let tokens: Vec<usize> = (0..user.sessions.len())
        .filter(|&i| user.sessions[i].token.is_some())
        .collect();
    let pick = tokens
        .get((step as usize / 7) % tokens.len().max(1))
        .copied();
    match (step % 10, pick) {
        (0..=2, _) | (_, None) => {
            if user.sessions.len() >= 6 {
                return;
            }
            let label = format!("{}-{seq}", user.id);
            let r = rs
                .create(
                    APP,
                    &user.id,
                    "10.0.0.1",
                    CreateOptions::default().data(json!({"k": label, "n": 0})),
                )
                .await;
            shared.record(&r);
            match r {
                Ok(token) => user.sessions.push(Sess {
                    label,
                    token: Some(token),
                    n: Some(0),
                }),
                Err(_) => user.maybe.push(label),
            }
        }
        (3, Some(i)) => {
            let token = user.sessions[i].token.clone().unwrap_or_default();
            let r = rs.get(APP, &token).await;
            shared.record(&r);
            if let Ok(found) = r {
                let s = &user.sessions[i];
                match found {
                    None => {
                        shared.violation(format!("{}: get of {} found nothing", user.id, s.label))
                    }
                    Some(found) => {
                        let n = found.get::<u64>("n").expect("a typed read");
                        if s.n.is_some() && n != s.n {
                            shared.violation(format!(
                                "{}: get of {} read n {n:?}, expected {:?}",
                                user.id, s.label, s.n
                            ));
                        }
                    }
                }
            }
        }
        (4 | 5, Some(i)) => {
            let token = user.sessions[i].token.clone().unwrap_or_default();
            let r = rs.set(APP, &token, &json!({"n": *seq})).await;
            shared.record(&r);
            match r {
                Ok(Some(_)) => user.sessions[i].n = Some(*seq),
                Ok(None) => shared.violation(format!(
                    "{}: set of {} found no session",
                    user.id, user.sessions[i].label
                )),
                Err(_) => user.sessions[i].n = None,
            }
        }
        (6, Some(i)) => {
            let token = user.sessions[i].token.clone().unwrap_or_default();
            let r = rs.kill(APP, &token).await;
            shared.record(&r);
            match r {
                Ok(true) => {
                    user.sessions.remove(i);
                }
                Ok(other) => shared.violation(format!(
                    "{}: kill of {} answered {other}",
                    user.id, user.sessions[i].label
                )),
                // Unknown whether it happened: soid tells.
                Err(_) => {
                    let found = shared.soid_settled(&user.id).await;
                    let label = user.sessions[i].label.clone();
                    if !found.iter().any(|s| {
                        s.get::<String>("k").expect("a typed read").as_deref() == Some(&label)
                    }) {
                        user.sessions.remove(i);
                    }
                }
            }
        }
        (7, _) => {
            let r = rs.soid(APP, &user.id).await;
            shared.record(&r);
            if let Ok(found) = r {
                if let Err(what) = user.reconcile(&found) {
                    shared.violation(format!("in flight: {what}"));
                }
            }
        }
        (8, _) => {
            let before = user.sessions.len();
            let r = rs.killsoid(APP, &user.id).await;
            shared.record(&r);
            match r {
                Ok(n) => {
                    shared.killsoid_done.fetch_add(1, Ordering::Relaxed);
                    if (n as usize) < before {
                        shared.violation(format!(
                            "{}: killsoid killed {n} of {before} sessions",
                            user.id
                        ));
                    }
                    user.sessions.clear();
                    user.maybe.clear();
                }
                Err(_) => {
                    shared.killsoid_failed.fetch_add(1, Ordering::Relaxed);
                    let found = shared.soid_settled(&user.id).await;
                    if found.is_empty() {
                        // It happened after all (the reply was lost).
                        user.sessions.clear();
                        user.maybe.clear();
                    } else if user.reconcile(&found).is_ok() {
                        shared
                            .killsoid_failed_unchanged
                            .fetch_add(1, Ordering::Relaxed);
                    } else {
                        shared.violation(format!(
                            "{}: a failed killsoid left {} of {before} sessions",
                            user.id,
                            found.len()
                        ));
                    }
                }
            }
        }
        _ => {
            // App-wide reads: checked exactly only when the load is paused.
            let r = if step % 20 == 9 {
                rs.activity(APP, WINDOW).await.map(|_| ())
            } else {
                rs.soapp(APP, WINDOW).await.map(|_| ())
            };
            shared.record(&r);
        }
    }
}

/// The scratch app's task: creates a few sessions and ends them with killall.
async fn killall_step(shared: &Shared, round: u64) {
    let rs = &shared.rs;
    let mut made = 0;
    for i in 0..5 {
        let r = rs
            .create(
                SCRATCH,
                &format!("s{round}-{i}"),
                "1",
                CreateOptions::default(),
            )
            .await;
        shared.record(&r);
        made += u64::from(r.is_ok());
    }
    let r = rs.killall(SCRATCH).await;
    shared.record(&r);
    if let Ok(n) = r {
        // Sessions of failed creates may exist too, and an earlier failed killall's.
        if n < made {
            shared.violation(format!("killall ended {n} of {made} sessions"));
        }
        let left = rs.activity(SCRATCH, WINDOW).await;
        shared.record(&left);
        if let Ok(left) = left {
            if left != 0 {
                shared.violation(format!("after killall, activity of the app is {left}"));
            }
        }
    }
}

/// Runs `redis-cli --cluster {args}` against the cluster and waits for it.
async fn redis_cli(seed: u16, args: Vec<String>) {
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(test_support::cli_binary())
            .arg("--cluster")
            .args(&args[..1])
            .arg(format!("127.0.0.1:{seed}"))
            .args(&args[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    })
    .await
    .expect("join")
    .expect("redis-cli");
    assert!(status.success(), "redis-cli --cluster failed");
}

/// The whole model against the store, with the load paused.
async fn check_model(
    rs: &RedisSessions,
    users: &[Arc<Mutex<User>>],
    urls: &[String],
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut sessions = 0;
    let mut active_ids = 0;
    for user in users {
        let (id, tokens) = {
            let u = user.lock().expect("lock");
            let tokens: Vec<(String, Option<u64>)> = u
                .sessions
                .iter()
                .filter_map(|s| s.token.clone().map(|t| (t, s.n)))
                .collect();
            (u.id.clone(), tokens)
        };
        let found = match rs.soid(APP, &id).await {
            Ok(found) => found,
            Err(err) => {
                let fresh = RedisSessions::connect(
                    Options::default()
                        .cluster(urls.to_vec())
                        .wipe(Duration::ZERO),
                )
                .await
                .expect("fresh connect");
                let again = fresh.soid(APP, &id).await;
                let other = rs.soid(APP, "user0").await;
                let act = rs.activity(APP, Duration::from_secs(100)).await;
                panic!("soid of {id} after the move: {err}; a fresh store: {:?}; the old store, user0: {:?}, activity {act:?}", again.map(|v| v.len()), other.map(|v| v.len()));
            }
        };
        {
            let mut u = user.lock().expect("lock");
            if let Err(what) = u.reconcile(&found) {
                wrong.push(what);
            }
            sessions += u.sessions.len();
            active_ids += usize::from(!u.sessions.is_empty());
        }
        for (token, n) in tokens {
            match rs.get(APP, &token).await.expect("get after the move") {
                None => wrong.push(format!("{id}: an acknowledged session is gone")),
                Some(s) if n.is_some() && s.get::<u64>("n").expect("a typed read") != n => wrong
                    .push(format!(
                        "{id}: acknowledged n {n:?} lost, read {:?}",
                        s.get::<u64>("n").expect("a typed read")
                    )),
                Some(_) => {}
            }
        }
    }
    let activity = rs.activity(APP, WINDOW).await.expect("activity");
    if activity != active_ids as u64 {
        wrong.push(format!(
            "activity {activity}, the model has {active_ids} users with sessions"
        ));
    }
    let soapp = rs.soapp(APP, WINDOW).await.expect("soapp").len();
    if soapp != sessions {
        wrong.push(format!("soapp lists {soapp}, the model has {sessions}"));
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_move_under_a_mixed_load_and_the_model_holds() {
    let test_started = Instant::now();
    let cluster = RedisCluster::start(3, 0);
    let rs = RedisSessions::connect(
        Options::default()
            .cluster(cluster.urls())
            .wipe(Duration::ZERO),
    )
    .await
    .expect("connect");
    // Bulk sessions, so that a slot move has keys to carry and takes a while.
    for chunk in 0..20 {
        let creates = (0..200).map(|i| {
            let rs = rs.clone();
            async move {
                rs.create(
                    "bulk",
                    &format!("b{chunk}-{i}"),
                    "1",
                    CreateOptions::default(),
                )
                .await
                .expect("bulk create")
            }
        });
        futures_util::future::join_all(creates).await;
    }
    let brief_created = Instant::now();
    let brief = (0..BRIEF_SESSIONS).map(|i| {
        let rs = rs.clone();
        async move {
            rs.create(
                BRIEF,
                &format!("brief{i}"),
                "1",
                CreateOptions::default().ttl(BRIEF_TTL),
            )
            .await
            .expect("brief create")
        }
    });
    futures_util::future::join_all(brief).await;
    let shared = Arc::new(Shared {
        rs: rs.clone(),
        stop: AtomicBool::new(false),
        pause: AtomicBool::new(false),
        paused: AtomicU64::new(0),
        counts: Mutex::new(Arc::new(Counts::default())),
        violations: Mutex::new(Vec::new()),
        killsoid_failed: AtomicU64::new(0),
        killsoid_failed_unchanged: AtomicU64::new(0),
        killsoid_done: AtomicU64::new(0),
        swept: AtomicU64::new(0),
        doing: Mutex::new(vec![String::new(); TASKS]),
        redirects: AtomicU64::new(0),
    });
    let users: Vec<Arc<Mutex<User>>> = (0..TASKS * USERS_PER_TASK)
        .map(|i| {
            Arc::new(Mutex::new(User {
                id: format!("user{i}"),
                ..User::default()
            }))
        })
        .collect();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let shared = shared.clone();
        let mine: Vec<Arc<Mutex<User>>> =
            users[t * USERS_PER_TASK..(t + 1) * USERS_PER_TASK].to_vec();
        tasks.push(tokio::spawn(async move {
            let mut step = t as u64 * 3;
            let mut seq = 0;
            while !shared.stop.load(Ordering::SeqCst) {
                shared.wait_if_paused().await;
                step += 1;
                if t == 1 && step.is_multiple_of(40) {
                    let r = shared.rs.sweep().await;
                    shared.record(&r);
                    shared.swept.fetch_add(r.unwrap_or(0), Ordering::SeqCst);
                    continue;
                }
                if t == 0 && step.is_multiple_of(25) {
                    shared.doing.lock().expect("lock")[t] =
                        format!("killall at {:?}", Instant::now());
                    killall_step(&shared, step).await;
                    continue;
                }
                let user = &mine[(step as usize) % mine.len()];
                shared.doing.lock().expect("lock")[t] =
                    format!("step {step} at {:?}", Instant::now());
                // The lock is only contended by the model check, which runs paused.
                let mut u = std::mem::take(&mut *user.lock().expect("lock"));
                let op = step / mine.len() as u64 + step;
                if tokio::time::timeout(
                    Duration::from_secs(20),
                    user_step(&shared, &mut u, op, &mut seq),
                )
                .await
                .is_err()
                {
                    eprintln!("STUCK op {} of {} for 20 s", op % 10, u.id);
                }
                *user.lock().expect("lock") = u;
            }
        }));
    }

    let ids: Vec<String> = cluster.masters().iter().map(node_id).collect();
    let seed = cluster.nodes[0].port();
    let reshard = |from: usize, to: usize, slots: u32| {
        vec![
            "reshard".to_owned(),
            "--cluster-from".to_owned(),
            ids[from].clone(),
            "--cluster-to".to_owned(),
            ids[to].clone(),
            "--cluster-slots".to_owned(),
            slots.to_string(),
            "--cluster-yes".to_owned(),
        ]
    };
    let rebalance = || vec!["rebalance".to_owned()];
    let moves: Vec<(&str, Vec<String>)> = vec![
        ("reshard 0→1, 2000 slots", reshard(0, 1, 2000)),
        ("rebalance", rebalance()),
        ("reshard 1→2, 2000 slots", reshard(1, 2, 2000)),
        ("rebalance", rebalance()),
        ("reshard 2→0, 2000 slots", reshard(2, 0, 2000)),
        ("rebalance", rebalance()),
    ];
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut report = Vec::new();
    for (name, args) in moves {
        let counts = Arc::new(Counts::default());
        *shared.counts.lock().expect("lock") = counts.clone();
        let started = Instant::now();
        redis_cli(seed, args).await;
        tokio::task::block_in_place(|| cluster.wait_until_ok(Duration::from_secs(30)));
        let took = started.elapsed();
        // The load goes on a moment after the move, then pauses for the check.
        tokio::time::sleep(Duration::from_millis(500)).await;
        shared.pause.store(true, Ordering::SeqCst);
        let waited = Instant::now();
        while shared.paused.load(Ordering::SeqCst) < TASKS as u64 {
            assert!(
                waited.elapsed() < Duration::from_secs(60),
                "the load did not pause: a call hangs; now {:?}, tasks: {:?}",
                Instant::now(),
                shared.doing.lock().expect("lock")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let wrong = check_model(&rs, &users, &cluster.urls()).await;
        let (calls, failed) = (
            counts.calls.load(Ordering::SeqCst),
            counts.failed.load(Ordering::SeqCst),
        );
        let line = format!(
            "{name}: {took:.1?}, {calls} calls, {failed} failed ({:.2}%), model {}",
            100.0 * failed as f64 / calls.max(1) as f64,
            if wrong.is_empty() {
                "ok".to_owned()
            } else {
                format!("WRONG: {wrong:?}")
            }
        );
        println!("{line}");
        report.push((line, calls, failed, wrong));
        shared.pause.store(false, Ordering::SeqCst);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
    // Every brief session has ended by now: a last sweep ends what is left, and nothing of
    // the app may remain (hashes, indexes, users' sets).
    let due = (brief_created + BRIEF_TTL + Duration::from_secs(2))
        .saturating_duration_since(Instant::now());
    tokio::time::sleep(due).await;
    let last = rs.sweep().await.expect("a sweep after the moves");
    let swept = shared.swept.load(Ordering::SeqCst) + last;
    let left: usize = cluster
        .masters()
        .iter()
        .map(|n| {
            n.command(&["KEYS", &format!("*:{BRIEF}:*")])
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with('$'))
                .count()
        })
        .sum();
    println!(
        "sweep: {swept} of {BRIEF_SESSIONS} brief sessions ended by sweeps that answered \
         ({last} by the last one), {left} keys of the app left"
    );
    assert_eq!(left, 0, "the sweeps left keys of ended sessions");
    assert!(
        swept as usize <= BRIEF_SESSIONS,
        "a session was swept twice"
    );
    assert_eq!(
        rs.activity(BRIEF, Duration::from_secs(3600))
            .await
            .expect("activity"),
        0
    );
    println!(
        "killsoid: {} succeeded, {} failed ({} of those changed nothing); test took {:.0?}",
        shared.killsoid_done.load(Ordering::SeqCst),
        shared.killsoid_failed.load(Ordering::SeqCst),
        shared.killsoid_failed_unchanged.load(Ordering::SeqCst),
        test_started.elapsed()
    );
    let redirects = shared.redirects.load(Ordering::SeqCst);
    println!("redirect errors that reached a caller: {redirects}");
    assert_eq!(redirects, 0, "a redirection reached a caller");
    let violations = shared.violations.lock().expect("lock").clone();
    assert!(
        violations.is_empty(),
        "violations during the moves: {violations:?}"
    );
    for (line, calls, failed, wrong) in &report {
        assert!(wrong.is_empty(), "{line}");
        assert!(*calls > 200, "the load ran during the move: {line}");
        assert!(
            (*failed as f64) < 0.01 * *calls as f64,
            "at most 1% of calls may fail: {line}"
        );
    }
    assert!(
        shared.killsoid_done.load(Ordering::SeqCst) > 20,
        "killsoid ran under the moves"
    );
}
