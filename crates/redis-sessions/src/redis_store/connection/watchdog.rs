//! The watchdog: what a failed call tells about the connection. It counts timeouts and
//! dropped connections (in [`ConnectionStats`] and the metrics) and, after repeated
//! timeouts, checks the connection and replaces it when it is stuck.
//!
//! Why the watchdog: both clients reconnect when a socket closes, but not when it stays
//! open and silent (a half-dead TCP path, a proxy that stopped forwarding, or the cluster
//! client's own state stuck after a reshard — seen with `redis` 1.8.1 and `fred` 10, see
//! docs/cluster-client-comparison.md). Then every call times out for good. So after
//! [`STUCK_AFTER`] timed-out calls the store checks: if the current connection fails a
//! PING while a freshly opened one answers, the current one is stuck and the fresh one
//! takes its place. A Redis that is down fails both, and the connection is left alone to
//! reconnect by itself.
//!
//! Separate from the handle (the parent module) because it sends no call of the store's:
//! it only looks at their results, PINGs, and swaps the connection in use.

use super::follow::not_the_master;
use super::{lock, within_time, Connection, Handle, Inner, Opener};
use crate::metric_names::{CHECKS, DISCONNECTS, REDIRECT_RETRIES, REPLACEMENTS, TIMEOUTS};
use redis::{RedisError, RedisResult};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Timed-out calls (since the last check) that make the store check its connection: a
/// few, so one slow moment does not, while a stuck connection — on which every call
/// times out — is found within a second or two of load.
const STUCK_AFTER: u32 = 3;

/// Least time between two checks, so a burst of timeouts costs one check, not many.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the watchdog has seen on one store's connection (the same counts as the
/// metrics, readable without a metrics recorder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Calls that timed out.
    pub timeouts: u64,
    /// Calls that failed on a dropped or refused connection (each is followed by a
    /// reconnect).
    pub disconnects: u64,
    /// Checks made after repeated timeouts.
    pub checks: u64,
    /// Stuck connections replaced by a fresh one.
    pub replacements: u64,
}

impl Connection {
    /// Counts timeouts and dropped connections, and starts a check after
    /// [`STUCK_AFTER`] timeouts.
    pub(super) fn observe<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(err) = &result {
            if self.inner.follows() && not_the_master(err) {
                *lock(&self.inner.last_failure) = Some(Instant::now());
                self.start_follow(false);
            }
            if err.is_timeout() {
                self.inner.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(TIMEOUTS).increment(1);
                let seen = self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if seen >= STUCK_AFTER {
                    self.start_check();
                }
            } else if err.is_connection_dropped() || err.is_connection_refusal() {
                self.inner.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(DISCONNECTS).increment(1);
            }
        }
        result
    }

    /// Starts [`Inner::check`] in the background unless one runs or ran within
    /// [`CHECK_INTERVAL`].
    fn start_check(&self) {
        let recent = self
            .inner
            .last_check
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < CHECK_INTERVAL);
        if recent || self.inner.checking.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let result = inner.check().await;
            inner.stats.checks.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(CHECKS, "result" => result).increment(1);
            inner.timeouts.store(0, Ordering::Relaxed);
            *inner.last_check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            inner.checking.store(false, Ordering::Release);
        });
    }

    /// What the watchdog has counted so far.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let s = &self.inner.stats;
        ConnectionStats {
            timeouts: s.timeouts.load(Ordering::Relaxed),
            disconnects: s.disconnects.load(Ordering::Relaxed),
            checks: s.checks.load(Ordering::Relaxed),
            replacements: s.replacements.load(Ordering::Relaxed),
        }
    }

    /// Exports the watchdog's counters at zero from the start, so that dashboards and alerts
    /// (`rate()`, `increase()`) see a series before the first event rather than none.
    pub(super) fn register_counters(opener: &Opener) {
        for name in [TIMEOUTS, DISCONNECTS, REDIRECT_RETRIES] {
            metrics::counter!(name).increment(0);
        }
        for result in ["healthy", "replaced", "unreachable"] {
            metrics::counter!(CHECKS, "result" => result).increment(0);
        }
        let kind = match opener {
            Opener::Single { .. } => "single",
            Opener::Cluster(_) => "cluster",
        };
        metrics::counter!(REPLACEMENTS, "kind" => kind).increment(0);
        metrics::counter!(crate::metric_names::NOT_REPLICATED).increment(0);
        metrics::counter!(crate::metric_names::REPLICA_FALLBACKS).increment(0);
    }
}

impl Inner {
    /// PINGs through the current connection; when that fails, opens a fresh connection
    /// and PINGs through it; when that answers, puts it in place of the current one.
    /// Returns the check's result label.
    async fn check(&self) -> &'static str {
        // Under Sentinel a fresh connection asks the sentinels too: numbered like a
        // follow's question, so an answer older than a switch made meanwhile is dropped.
        let number = self.follows_started.fetch_add(1, Ordering::AcqRel) + 1;
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // On a cluster the fresh connection is opened while the current one is pinged: a
        // PING through a connection that still routes to a frozen master waits the whole
        // bound, and after a failover the fresh one (which learns the new topology) is
        // what the calls need, so the swap comes one bound sooner.
        let (pinged, opened) = match self.opener {
            Opener::Cluster(_) => {
                let fresh = async {
                    let fresh = tokio::time::timeout(self.bound, self.open()).await;
                    match fresh {
                        Ok(Ok(fresh)) => self.ping(fresh.clone()).await.map(|()| fresh),
                        Ok(Err(err)) => Err(err),
                        Err(_) => Err(RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no fresh connection in time",
                        ))),
                    }
                };
                // Half the bound for the current one: a wedged cluster client (seen with
                // `redis` 2.0.0-rc.2 under hundreds of calls while slots move) stalls every
                // call until it is replaced, so the sooner the better.
                let current = async {
                    let mut con = current;
                    within_time(
                        self.bound / 2,
                        redis::cmd("PING").query_async::<()>(&mut con),
                    )
                    .await
                };
                let (pinged, opened) = tokio::join!(current, fresh);
                (pinged, Some(opened))
            }
            Opener::Single { .. } => (self.ping(current).await, None),
        };
        let stuck = match pinged {
            Ok(()) => return "healthy",
            Err(err) => err,
        };
        // On a cluster, a PING that fails with an answer (a node refused, CLUSTERDOWN, a
        // redirection) is a failover or a move under way, which the client follows by
        // itself: only silence (a timeout) is a stuck connection worth replacing.
        if matches!(self.opener, Opener::Cluster(_)) && !stuck.is_timeout() {
            tracing::debug!(error = %stuck, "redis connection check: the cluster answers with errors (failover or move under way); not replaced");
            return "unreachable";
        }
        if let Some(opened) = opened {
            return match opened {
                Ok(fresh) => self.replace(fresh, &stuck, number),
                Err(err) => {
                    tracing::debug!(%err, "redis connection check: no fresh cluster connection answers either; waiting for redis");
                    "unreachable"
                }
            };
        }
        let fresh = match tokio::time::timeout(self.bound, self.open()).await {
            Ok(Ok(fresh)) => fresh,
            Ok(Err(err)) => {
                tracing::debug!(%err, "redis connection check: no fresh connection either; waiting for redis");
                return "unreachable";
            }
            Err(_) => {
                tracing::debug!(
                    "redis connection check: no fresh connection in time; waiting for redis"
                );
                return "unreachable";
            }
        };
        if let Err(err) = self.ping(fresh.clone()).await {
            tracing::debug!(%err, "redis connection check: the fresh connection does not answer either");
            return "unreachable";
        }
        self.replace(fresh, &stuck, number)
    }

    /// Puts `fresh` in place of the stuck connection, and counts and logs it; under
    /// Sentinel only when no newer follow (`number`) has installed a master since.
    fn replace(&self, fresh: Handle, stuck: &RedisError, number: u64) -> &'static str {
        let kind = match fresh {
            Handle::Single(_) => "single",
            Handle::Cluster(_) => "cluster",
        };
        if self.follows() {
            let mut installed = lock(&self.follow_installed);
            if *installed > number {
                return "superseded";
            }
            *installed = number;
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.stats.replacements.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(REPLACEMENTS, "kind" => kind).increment(1);
        tracing::warn!(
            kind,
            error = %stuck,
            "redis connection stopped answering while a fresh one answers: replaced"
        );
        "replaced"
    }

    /// PING (every node, through a cluster connection), within the call bound.
    async fn ping(&self, handle: Handle) -> RedisResult<()> {
        let mut con = handle;
        within_time(self.bound, redis::cmd("PING").query_async::<()>(&mut con)).await
    }
}
