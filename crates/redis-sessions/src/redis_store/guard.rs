//! The layout record's guard: while a store runs, it reads the namespace's layout record
//! (`{ns}:{layout}`) every [`INTERVAL`]. The record is one key, and keys vanish (eviction
//! under an `allkeys-*` policy, a FLUSH, an operator's mistake); a process started with
//! another shard count while it is gone would find no record and take the namespace. So a
//! running process, whose layout was checked when it connected, puts a vanished record
//! back at once (and says so in the log); and a process that connects while it is gone
//! refuses to write a new one over a namespace that holds keys (see
//! `RedisStore::check_layout`). A record that says another layout than this process's is
//! logged as an error every check: processes of two layouts serve the namespace.

use super::commands::Commands;
use super::tasks::AbortOnDrop;
use super::Connection;
use crate::error::{Error, Result};
use crate::layout::LayoutRecord;
use crate::metric_names::{LAYOUT_CONFLICTS, LAYOUT_RESTORED};
use std::time::Duration;

/// Time between two reads of the record: a vanished record is back within this, before
/// an operator's restart of another process is likely to find it gone.
pub(crate) const INTERVAL: Duration = Duration::from_secs(5);

/// Longest scan of a namespace for keys when its record is absent.
pub(crate) const SCAN_LIMIT: Duration = Duration::from_secs(30);

/// The record as stored, or None when there is none.
pub(crate) async fn read(con: &Connection, commands: &Commands) -> Result<Option<LayoutRecord>> {
    let key = commands.layout().record_key();
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(&key).arg("kind").arg("shards").arg("version");
    let (kind, shards, version): (Option<String>, Option<u16>, Option<u32>) =
        con.query(&cmd).await.map_err(Error::from_redis)?;
    Ok(kind.map(|kind| LayoutRecord {
        kind,
        shards: shards.unwrap_or(0),
        version: version.unwrap_or(0),
    }))
}

/// Starts the guard of `commands`' namespace on `con`; it ends when the handle is dropped.
pub(crate) fn start(con: Connection, commands: Commands) -> AbortOnDrop {
    metrics::counter!(LAYOUT_RESTORED).increment(0);
    metrics::counter!(LAYOUT_CONFLICTS).increment(0);
    AbortOnDrop(vec![tokio::spawn(async move {
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            check(&con, &commands).await;
        }
    })])
}

/// One check: restores a vanished record, reports a conflicting one.
async fn check(con: &Connection, commands: &Commands) {
    let asked = commands.layout().record();
    let key = commands.layout().record_key();
    match read(con, commands).await {
        Ok(Some(stored)) if stored == asked => {}
        Ok(Some(stored)) => {
            metrics::counter!(LAYOUT_CONFLICTS).increment(1);
            tracing::error!(
                record = %key,
                %stored,
                ours = %asked,
                "the layout record says another layout than this process serves: processes \
                 of two layouts share the namespace; stop the ones whose options differ"
            );
        }
        Ok(None) => {
            let call = commands.layout_record();
            // EVAL with the source: the script writes only when the record is still absent.
            let restored: Result<(String, Option<u16>, Option<u32>)> = con
                .query(&call.with_source())
                .await
                .map_err(Error::from_redis);
            match restored {
                Ok(_) => {
                    metrics::counter!(LAYOUT_RESTORED).increment(1);
                    tracing::error!(
                        record = %key,
                        layout = %asked,
                        "the layout record had vanished (eviction, FLUSH, an operator?): \
                         restored with this process's layout, checked when it connected"
                    );
                }
                Err(err) => {
                    tracing::warn!(%err, record = %key, "the layout record vanished and could not be restored yet")
                }
            }
        }
        // Redis away: the calls report it; the next tick checks again.
        Err(err) => tracing::debug!(%err, "layout record check failed"),
    }
}
