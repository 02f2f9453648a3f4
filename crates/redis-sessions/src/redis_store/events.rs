//! Reading the lifecycle event streams (the scripts write them: see ops/lib/emit.lua).
//!
//! Reads never block: a blocking XREAD would hold the store's shared (multiplexed)
//! connection, and on a cluster the streams of an app lie in every shard's slot, which one
//! XREAD cannot name together. A consumer asks each shard's stream for what follows its
//! position and waits a little when none has anything (see crate::event_stream).

use super::{each_shard, RedisStore};
use crate::error::{Error, Result};
use crate::events::{parse_entry_id, Cursor, Entry, EntryId};

/// XRANGE/XREVRANGE/XAUTOCLAIM entries: `[[id, [field, value, …]], …]`.
type RawEntries = Vec<(String, Vec<String>)>;

fn entries(shard: usize, raw: RawEntries) -> Vec<Entry> {
    raw.into_iter()
        .filter_map(|(id, flat)| {
            let id = parse_entry_id(&id)?;
            let fields = flat
                .chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            Some((shard, id, fields))
        })
        .collect()
}

impl RedisStore {
    /// How many event streams an app has: one per shard.
    pub(crate) fn event_shards(&self) -> usize {
        self.layout().shards().len()
    }

    /// The id of the last entry of each shard's stream of `app`, (0, 0) when empty: the
    /// position "now".
    pub(crate) async fn events_tail(&self, app: &str) -> Result<Vec<EntryId>> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(shard.app_events(app))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
            let raw: RawEntries = self.con.query(&cmd).await.map_err(Error::from_redis)?;
            Ok::<EntryId, Error>(
                raw.first()
                    .and_then(|(id, _)| parse_entry_id(id))
                    .unwrap_or((0, 0)),
            )
        });
        each_shard(per_shard).await
    }

    /// Up to `count` entries of each shard's stream after `cursor`, shard by shard.
    pub(crate) async fn read_events(
        &self,
        app: &str,
        cursor: &Cursor,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let per_shard = self
            .layout()
            .shards()
            .iter()
            .zip(&cursor.ids)
            .enumerate()
            .map(|(index, (shard, &(ms, seq)))| async move {
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(shard.app_events(app));
                if (ms, seq) == (0, 0) {
                    cmd.arg("-");
                } else {
                    cmd.arg(format!("({ms}-{seq}"));
                }
                cmd.arg("+").arg("COUNT").arg(count);
                let raw: RawEntries = self.con.query(&cmd).await.map_err(Error::from_redis)?;
                Ok::<Vec<Entry>, Error>(entries(index, raw))
            });
        Ok(each_shard(per_shard).await?.into_iter().flatten().collect())
    }

    /// Creates the consumer group `group` on every shard's stream of `app` (and the
    /// streams, when absent), starting at `from_start` (every retained event) or at the
    /// end; a group that exists is left as it is.
    pub(crate) async fn create_group(
        &self,
        app: &str,
        group: &str,
        from_start: bool,
    ) -> Result<()> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut cmd = redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(shard.app_events(app))
                .arg(group)
                .arg(if from_start { "0" } else { "$" })
                .arg("MKSTREAM");
            match self.con.query::<()>(&cmd).await {
                Ok(()) => Ok(()),
                Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
                Err(err) => Err(Error::from_redis(err)),
            }
        });
        each_shard(per_shard).await.map(|_| ())
    }

    /// New entries for `consumer` of `group` (XREADGROUP `>`), up to `count` per shard.
    pub(crate) async fn read_group(
        &self,
        app: &str,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let per_shard =
            self.layout()
                .shards()
                .iter()
                .enumerate()
                .map(|(index, shard)| async move {
                    let mut cmd = redis::cmd("XREADGROUP");
                    cmd.arg("GROUP")
                        .arg(group)
                        .arg(consumer)
                        .arg("COUNT")
                        .arg(count)
                        .arg("STREAMS")
                        .arg(shard.app_events(app))
                        .arg(">");
                    // [[key, entries]] or nil when there is nothing new.
                    let reply: Option<Vec<(String, RawEntries)>> =
                        self.con.query(&cmd).await.map_err(Error::from_redis)?;
                    Ok::<Vec<Entry>, Error>(
                        reply
                            .into_iter()
                            .flatten()
                            .flat_map(|(_, raw)| entries(index, raw))
                            .collect(),
                    )
                });
        Ok(each_shard(per_shard).await?.into_iter().flatten().collect())
    }

    /// Takes over entries of `group` that another consumer read but has not acknowledged
    /// for `min_idle_ms` (it died or hangs): XAUTOCLAIM, up to `count` per shard.
    pub(crate) async fn claim_stale(
        &self,
        app: &str,
        group: &str,
        consumer: &str,
        min_idle_ms: u64,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let per_shard =
            self.layout()
                .shards()
                .iter()
                .enumerate()
                .map(|(index, shard)| async move {
                    let mut cmd = redis::cmd("XAUTOCLAIM");
                    cmd.arg(shard.app_events(app))
                        .arg(group)
                        .arg(consumer)
                        .arg(min_idle_ms)
                        .arg("0-0")
                        .arg("COUNT")
                        .arg(count);
                    // [next start, entries, deleted ids] (Redis 7; two items on 6.2).
                    let reply: redis::Value =
                        self.con.query(&cmd).await.map_err(Error::from_redis)?;
                    let raw = match reply {
                        redis::Value::Array(items) if items.len() >= 2 => {
                            // An entry trimmed away meanwhile comes back as nil: skipped.
                            let claimed: Vec<Option<(String, Vec<String>)>> =
                                redis::from_redis_value(items[1].clone())
                                    .map_err(redis::RedisError::from)
                                    .map_err(Error::from_redis)?;
                            claimed.into_iter().flatten().collect()
                        }
                        _ => Vec::new(),
                    };
                    Ok::<Vec<Entry>, Error>(entries(index, raw))
                });
        Ok(each_shard(per_shard).await?.into_iter().flatten().collect())
    }

    /// Restarts the idle time of entries pending with `consumer` (XCLAIM with min-idle 0
    /// and JUSTID: no entry is read or sent back), so no other member claims them.
    pub(crate) async fn keep(
        &self,
        app: &str,
        group: &str,
        consumer: &str,
        shard: usize,
        ids: &[EntryId],
    ) -> Result<()> {
        let Some(shard) = self.layout().shards().get(shard) else {
            return Ok(());
        };
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(shard.app_events(app))
            .arg(group)
            .arg(consumer)
            .arg(0);
        for (ms, seq) in ids {
            cmd.arg(format!("{ms}-{seq}"));
        }
        cmd.arg("JUSTID");
        self.con
            .query::<redis::Value>(&cmd)
            .await
            .map_err(Error::from_redis)?;
        Ok(())
    }

    /// Acknowledges an entry of `group` (XACK): it is handled and leaves the pending list.
    pub(crate) async fn ack(
        &self,
        app: &str,
        group: &str,
        shard: usize,
        ids: &[EntryId],
    ) -> Result<()> {
        let Some(shard) = self.layout().shards().get(shard) else {
            return Ok(());
        };
        let mut cmd = redis::cmd("XACK");
        cmd.arg(shard.app_events(app)).arg(group);
        for (ms, seq) in ids {
            cmd.arg(format!("{ms}-{seq}"));
        }
        self.con
            .query::<u64>(&cmd)
            .await
            .map_err(Error::from_redis)?;
        Ok(())
    }
}
