//! The background sweep of expired sessions.
//!
//! Every `wipe` seconds each process tries to take a fleet-wide lease; the one that gets it
//! sweeps, in bounded batches, so a fleet of N processes sweeps once per interval rather
//! than N times, and no single script holds Redis for long.

use crate::backend::Backend;
use crate::clock::Clock;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Starts the periodic sweep; the task ends when its handle is aborted (quit or drop).
pub(crate) fn spawn(backend: Backend, clock: Arc<dyn Clock>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            // The lease ends a little before the next tick, so that some process of the
            // fleet always gets the next one.
            let lease = every.mul_f64(0.9);
            match backend.try_sweep_lease(lease).await {
                Ok(true) => match backend.sweep(clock.now()).await {
                    Ok(killed) => tracing::debug!(killed, "swept expired sessions"),
                    Err(err) => tracing::warn!(error = %err, "sweep failed"),
                },
                Ok(false) => tracing::trace!("another process sweeps this round"),
                Err(err) => tracing::warn!(error = %err, "sweep lease failed"),
            }
        }
    })
}
