//! Following the master Sentinel names: under Sentinel, a failed call (and the Sentinel
//! watcher, on an announcement or to re-confirm) makes the connection ask the sentinels
//! who the master is, and move to it when it is another server than the one in use.
//!
//! Separate from the handle (the parent module) because it matters only under Sentinel
//! and has its own state: the questions are numbered, so that an answer older than a
//! switch made meanwhile (by a newer question, or by the watchdog's replacement) never
//! undoes it.

use super::{lock, within_time, Connection, Handle, Inner, Opener};
use crate::metric_names::MASTER_SWITCHES;
use redis::aio::ConnectionManager;
use redis::RedisError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Least time between two questions to the sentinels started by failed calls: during a
/// failover every call fails, and one question per interval finds the new master as soon
/// as it is named. A sentinel's announcement does not wait for it.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

impl Connection {
    /// Asks the sentinels who the master is now (a sentinel announced a switch): at once,
    /// even while an earlier question runs — its answer may predate the announcement, and
    /// being older it cannot undo this one's switch.
    pub(crate) fn follow_now(&self) {
        self.start_follow(true);
    }

    /// Asks the sentinels who the master is, unless a question runs or started within
    /// [`FOLLOW_INTERVAL`] (the watcher's re-confirmation while calls fail and after).
    pub(crate) fn follow_soon(&self) {
        self.start_follow(false);
    }

    /// True when a call failed within `within` (Sentinel only).
    pub(crate) fn failed_within(&self, within: Duration) -> bool {
        lock(&self.inner.last_failure).is_some_and(|at| at.elapsed() < within)
    }

    /// Starts [`Inner::follow`] in the background. Unless `forced` (an announcement,
    /// which must not wait for a question that may be stuck on the old master), not while
    /// one runs or within [`FOLLOW_INTERVAL`] of the last start.
    pub(super) fn start_follow(&self, forced: bool) {
        if !forced {
            let mut last = lock(&self.inner.last_follow);
            if last.is_some_and(|at| at.elapsed() < FOLLOW_INTERVAL)
                || self.inner.following.swap(true, Ordering::AcqRel)
            {
                return;
            }
            *last = Some(Instant::now());
        }
        let number = self.inner.follows_started.fetch_add(1, Ordering::AcqRel) + 1;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.follow(number).await;
            if !forced {
                inner.following.store(false, Ordering::Release);
            }
        });
    }
}

/// An error after which the sentinels may name another master: any but NOSCRIPT (which
/// the store answers by loading the script). A demoted master answers READONLY, or
/// refuses WAIT (durable writes), or cannot be reached; asking costs one question to a
/// sentinel, at most every [`FOLLOW_INTERVAL`], and only while calls fail.
pub(super) fn not_the_master(err: &RedisError) -> bool {
    err.kind() != redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

impl Inner {
    pub(super) fn follows(&self) -> bool {
        matches!(&self.opener, Opener::Single { target, .. } if target.follows())
    }

    /// Asks the sentinels for the master; when it is another server than the one in use,
    /// connects to it and puts that connection in place.
    async fn follow(&self, number: u64) {
        let Opener::Single { target, config } = &self.opener else {
            return;
        };
        let client = match within_time(self.bound, target.client()).await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(%err, "sentinels name no reachable master yet");
                return;
            }
        };
        let master = client.get_connection_info().addr().to_string();
        if self.seeds().first() == Some(&master) {
            // Confirmed: an older question that ends later does not undo it.
            let mut installed = lock(&self.follow_installed);
            *installed = (*installed).max(number);
            return;
        }
        let opened = within_time(
            self.bound,
            ConnectionManager::new_with_config(client, config.clone()),
        )
        .await;
        match opened {
            Ok(con) => {
                let mut installed = lock(&self.follow_installed);
                if *installed > number || self.seeds().first() == Some(&master) {
                    return;
                }
                *installed = number;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Handle::Single(con);
                let old = std::mem::replace(
                    &mut *self.seeds.write().unwrap_or_else(|e| e.into_inner()),
                    vec![master.clone()],
                );
                metrics::counter!(MASTER_SWITCHES).increment(1);
                tracing::warn!(from = ?old, to = %master, "following the master Sentinel names");
            }
            Err(err) => tracing::debug!(%err, %master, "the new master does not answer yet"),
        }
    }
}
