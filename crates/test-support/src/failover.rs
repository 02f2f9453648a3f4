//! A steady mixed load for failover tests, and the model it is checked against.
//!
//! Workers create sessions, read them and set a counter in them, each through a
//! [`SessionClient`] (the library or the REST server), while a test kills masters. Every
//! call's start and outcome is kept, so a test can tell how many calls failed and how long
//! until calls succeeded again after each fault; every acknowledged write is kept in a
//! model, so [`Record::lost`] can tell which acknowledged writes a failover lost.
//!
//! The model is exact about uncertainty: a write whose call failed may or may not have
//! happened (a 503 on a write means "unknown"), so the values a session may hold are the
//! last acknowledged one and every one tried after it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What a failover load needs of a session store: the three calls of the mix.
pub trait SessionClient: Clone + Send + Sync + 'static {
    /// Creates a session of `id` holding `{"n": n}`: its token once acknowledged.
    fn create(&self, id: String, n: i64) -> impl Future<Output = Option<String>> + Send;
    /// Sets `{"n": n}` in the session: true once acknowledged.
    fn set(&self, token: String, n: i64) -> impl Future<Output = bool> + Send;
    /// Reads the session: `Ok(None)` when it is gone, else its id and `n`; `Err` when
    /// the call failed.
    fn get(
        &self,
        token: String,
    ) -> impl Future<Output = Result<Option<(String, Option<i64>)>, ()>> + Send;
}

/// What the workers did: the model of acknowledged writes and every call's outcome.
#[derive(Default)]
pub struct Record {
    /// token → (id, the values its `n` may hold).
    pub sessions: BTreeMap<String, (String, BTreeSet<i64>)>,
    /// Every call, in the order they ended.
    pub calls: Vec<Call>,
}

/// Which call of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A create.
    Create,
    /// A get.
    Get,
    /// A set.
    Set,
}

impl Kind {
    /// Every kind: a call of any kind counts.
    pub const ALL: &'static [Kind] = &[Kind::Create, Kind::Get, Kind::Set];
    /// The writes: with durable writes on, these wait for a replica; reads do not.
    pub const WRITES: &'static [Kind] = &[Kind::Create, Kind::Set];
}

/// One call: when it started, which it was, whether it succeeded.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// When it was sent.
    pub started: Instant,
    /// Which call.
    pub kind: Kind,
    /// Whether it succeeded (for a write: was acknowledged).
    pub ok: bool,
}

/// Workers running the mix until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The record stays readable after a worker's panic (which the test reports anyway).
fn lock(record: &Mutex<Record>) -> MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Load {
    /// Starts `workers` tasks, each one call every `pause`: a create every third call
    /// (ids `{prefix}{worker}-{i}`), else a get or a set of one of its own sessions.
    pub fn start<C: SessionClient>(
        client: &C,
        prefix: &str,
        workers: usize,
        pause: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let tasks = (0..workers)
            .map(|w| {
                let (client, stop, record) = (client.clone(), stop.clone(), record.clone());
                let prefix = format!("{prefix}{w}-");
                tokio::spawn(async move {
                    let mut mine: Vec<String> = Vec::new();
                    let mut i: i64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let started = Instant::now();
                        let pick = mine.get((i as usize / 3) % mine.len().max(1)).cloned();
                        let (kind, ok) = match (i % 3, pick) {
                            (1, _) | (_, None) => {
                                let ok = match client.create(format!("{prefix}{i}"), i).await {
                                    Some(token) => {
                                        mine.push(token.clone());
                                        let id = format!("{prefix}{i}");
                                        let values = BTreeSet::from([i]);
                                        lock(&record).sessions.insert(token, (id, values));
                                        true
                                    }
                                    None => false,
                                };
                                (Kind::Create, ok)
                            }
                            (2, Some(token)) => (Kind::Get, client.get(token).await.is_ok()),
                            (_, Some(token)) => {
                                let acknowledged = client.set(token.clone(), i).await;
                                let mut rec = lock(&record);
                                if let Some((_, values)) = rec.sessions.get_mut(&token) {
                                    if acknowledged {
                                        values.clear();
                                    }
                                    values.insert(i);
                                }
                                (Kind::Set, acknowledged)
                            }
                        };
                        lock(&record).calls.push(Call { started, kind, ok });
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            record,
            tasks,
        }
    }

    /// Waits (at most `limit`) until a call of `kinds` started after `since` succeeded;
    /// returns the calls (of any kind) started after `since` that failed before it, and
    /// how long after `since` it started.
    pub async fn recovered(
        &self,
        since: Instant,
        kinds: &[Kind],
        limit: Duration,
    ) -> (usize, Duration) {
        let waiting = Instant::now();
        loop {
            {
                let rec = lock(&self.record);
                let after = || rec.calls.iter().filter(|c| c.started >= since);
                let first_ok = after()
                    .filter(|c| c.ok && kinds.contains(&c.kind))
                    .map(|c| c.started)
                    .min();
                if let Some(first_ok) = first_ok {
                    let failed = after().filter(|c| c.started <= first_ok && !c.ok).count();
                    return (failed, first_ok - since);
                }
            }
            assert!(
                waiting.elapsed() < limit,
                "no call succeeded within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Calls made so far, and how many of them failed (for figures per phase of a run).
    pub fn calls_so_far(&self) -> (usize, usize) {
        let rec = lock(&self.record);
        let failed = rec.calls.iter().filter(|c| !c.ok).count();
        (rec.calls.len(), failed)
    }

    /// Stops the workers and returns what they did.
    pub async fn finish(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a load worker panicked");
        }
        std::mem::take(&mut *lock(&self.record))
    }
}

impl Record {
    /// Acknowledged sessions missing, and sessions whose `n` is none of the values it may
    /// hold, read through `client` (panics when a read fails: call it once serving).
    pub async fn lost<C: SessionClient>(&self, client: &C) -> (usize, usize) {
        let (mut sessions, mut values) = (0, 0);
        for (token, (id, allowed)) in &self.sessions {
            match client
                .get(token.clone())
                .await
                .expect("a read after the faults")
            {
                None => sessions += 1,
                Some((stored_id, n)) => {
                    assert_eq!(&stored_id, id, "a session answered with another id");
                    if !n.is_some_and(|n| allowed.contains(&n)) {
                        values += 1;
                    }
                }
            }
        }
        (sessions, values)
    }
}

/// What one failover cost the two loads of a test: one store without durable writes, one
/// with them.
pub struct Figures {
    /// How long the sentinels took to name the new master after the kill.
    pub promoted_after: Duration,
    /// Failed calls without durable writes, and when calls succeeded again.
    pub plain: (usize, Duration),
    /// Failed calls with durable writes, and when writes were acknowledged again (they
    /// need a replica: the old master, brought back).
    pub durable: (usize, Duration),
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "promoted after {:.1} s; without durable writes {} failed calls, calls succeed \
             again after {:.1} s; with durable writes {} failed calls, writes acknowledged \
             again after {:.1} s (including the old master's return as replica)",
            self.promoted_after.as_secs_f64(),
            self.plain.0,
            self.plain.1.as_secs_f64(),
            self.durable.0,
            self.durable.1.as_secs_f64()
        )
    }
}

/// SIGKILLs the master of `set`, waits until `plain` recovers, brings the old master back
/// as a replica, waits until `durable`'s writes are acknowledged again (each wait at most
/// 15 s; the set's steps at most 20 s each).
pub async fn fail_over(
    set: &mut crate::sentinel::SentinelSet,
    plain: &Load,
    durable: &Load,
) -> Figures {
    let failover = tokio::task::block_in_place(|| set.kill_master(Duration::from_secs(20)));
    let limit = Duration::from_secs(15);
    let plain_figures = plain.recovered(failover.killed_at, Kind::ALL, limit).await;
    let old = 1 - failover.new_master;
    tokio::task::block_in_place(|| set.bring_back(old, Duration::from_secs(20)));
    let durable_figures = durable
        .recovered(failover.killed_at, Kind::WRITES, limit)
        .await;
    Figures {
        promoted_after: failover.promoted_after,
        plain: plain_figures,
        durable: durable_figures,
    }
}

/// Acknowledged writes lost by each store, counted after the loads stopped.
pub struct Losses {
    /// (acknowledged sessions, sessions lost, sets lost) with durable writes.
    pub durable: (usize, usize, usize),
    /// The same without durable writes.
    pub plain: (usize, usize, usize),
}

impl std::fmt::Display for Losses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (d, p) = (self.durable, self.plain);
        write!(
            f,
            "with durable writes {} acknowledged sessions, {} lost, {} sets lost; without: {} \
             sessions, {} lost, {} sets lost",
            d.0, d.1, d.2, p.0, p.1, p.2
        )
    }
}

/// Reads back every acknowledged write of each record through its store.
pub async fn losses<C: SessionClient>(plain: (&Record, &C), durable: (&Record, &C)) -> Losses {
    let (sessions, values) = durable.0.lost(durable.1).await;
    let (plain_sessions, plain_values) = plain.0.lost(plain.1).await;
    Losses {
        durable: (durable.0.sessions.len(), sessions, values),
        plain: (plain.0.sessions.len(), plain_sessions, plain_values),
    }
}
