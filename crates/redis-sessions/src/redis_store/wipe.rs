//! A wiped master noticed: a master restarted in place without persistence comes back
//! empty, its replicas resync from it (empty too), and no failover happens — every
//! session, durable or not, is gone, and the only sign was `set` answering "no such
//! session". So a single-server store (and under Sentinel, the master it follows) checks
//! every [`EVERY`] that the namespace's layout record, written at its start, is still
//! there. When it has vanished the store logs an error, counts it
//! (`redis_sessions_wipes_detected_total`), writes the layout record back, and leaves a
//! marker key, `{namespace}:{wiped}`, holding the reason: every process of the namespace
//! reports it in its node list (REST: `/health` answers 503 with the reason) while the
//! marker exists — [`MARKER_TTL`] by default, until an operator deletes it (`DEL
//! rs:{wiped}`: the acknowledgment) when writes are refused after a wipe
//! ([`Options::refuse_writes_after_wipe`](crate::Options::refuse_writes_after_wipe)).

use super::commands::Commands;
use super::connection::Connection;
use super::tasks::AbortOnDrop;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the layout record and the marker are checked.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// How long the marker (and so the 503 of `/health`) stays when writes are not refused.
pub(crate) const MARKER_TTL: Duration = Duration::from_secs(60);

/// What the guard knows: the reason of an unacknowledged wipe, if any.
#[derive(Default)]
pub(crate) struct WipeState {
    reason: RwLock<Option<String>>,
}

impl WipeState {
    /// The reason of a wipe not acknowledged yet.
    pub(super) fn reason(&self) -> Option<String> {
        self.reason
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, reason: Option<String>) {
        *self.reason.write().unwrap_or_else(|e| e.into_inner()) = reason;
    }
}

/// Starts the guard on `con`; ends when the handle is dropped.
pub(crate) fn guard(
    con: Connection,
    commands: Commands,
    state: Arc<WipeState>,
    refuse_writes: bool,
) -> AbortOnDrop {
    AbortOnDrop(vec![tokio::spawn(async move {
        let record = commands.layout().record_key();
        let marker = marker_key(commands.layout().namespace());
        loop {
            tokio::time::sleep(EVERY).await;
            let mut pipe = redis::pipe();
            pipe.cmd("EXISTS").arg(&record).cmd("GET").arg(&marker);
            let Ok((exists, found)) = con.query_pipeline::<(i64, Option<String>)>(&pipe).await
            else {
                continue; // Redis away: nothing to learn now.
            };
            if exists == 1 {
                state.set(found);
                continue;
            }
            let master = con.master().unwrap_or_default();
            let reason = format!(
                "the namespace's data vanished from the master {master} (its layout record is \
                 gone: restarted without persistence, or flushed) at {} ms since the epoch; \
                 sessions written before are lost unless a replica that still has them is \
                 promoted",
                crate::clock::now_millis()
            );
            tracing::error!(%master, "{reason}");
            metrics::counter!(crate::metric_names::WIPES_DETECTED).increment(1);
            // The record back, so the wipe is counted once; the marker for every process.
            let call = commands.layout_record();
            // A restarted server has forgotten the scripts too.
            let _ = con.load(call.script().script()).await;
            if let Err(err) = con.query::<redis::Value>(call.cmd()).await {
                tracing::debug!(%err, "layout record not written back yet");
            }
            let mut set = redis::cmd("SET");
            set.arg(&marker).arg(&reason).arg("NX");
            if !refuse_writes {
                set.arg("PX").arg(MARKER_TTL.as_millis() as u64);
            }
            let _ = con.query::<redis::Value>(&set).await;
            state.set(Some(reason));
        }
    })])
}

/// The marker key of `namespace`: `{namespace}:{wiped}`.
pub(crate) fn marker_key(namespace: &str) -> String {
    format!("{namespace}:{{wiped}}")
}
