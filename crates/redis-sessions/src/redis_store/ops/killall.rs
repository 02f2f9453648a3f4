//! killall: ends every session of an app, shard by shard in parallel, in bounded batches
//! (cluster layout: each batch's members read first).

use super::super::{each_shard, RedisStore, BATCH};
use super::{with_members, Members, ReadFrom};
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::{evalsha, split_session_member, Commands};
use crate::redis_store::scripts::ScriptCall;
use redis::Cmd;

impl Commands {
    /// `ZRANGE _sessions 0 batch-1` — killall's first read in the cluster layout.
    pub(crate) fn app_members(&self, l: &Shard, app: &str, batch: usize) -> Cmd {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(l.app_sessions(app))
            .arg(0)
            .arg(batch.saturating_sub(1));
        cmd
    }

    pub(crate) fn killall_batch(
        &self,
        l: &Shard,
        app: &str,
        members: Members<'_>,
        batch: usize,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.app_sessions(app), l.app_users(app), l.expiries()];
        if let Members::Given(members) = members {
            let mut ids = std::collections::BTreeSet::new();
            for (token, id) in members.iter().filter_map(|m| split_session_member(m)) {
                keys.push(l.session(app, token));
                ids.insert(id);
            }
            keys.extend(ids.into_iter().map(|id| l.user_sessions(app, id)));
            keys.extend(self.declared_events(l, app));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.killall, &keys);
        cmd.arg(app)
            .arg(l.app_prefix(app))
            .arg(l.user_sessions_prefix(app))
            .arg(self.layout.invalidation_spec(l));
        cmd.arg(batch);
        with_members(cmd, members)
    }
}

impl RedisStore {
    /// Every session of an app, shard by shard in parallel, in bounded batches.
    pub(crate) async fn killall(&self, app: &str) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut total = 0;
            loop {
                let read: Option<Vec<String>> = self
                    .members_first(
                        || self.commands.app_members(shard, app, BATCH),
                        ReadFrom::Master,
                    )
                    .await?;
                let cmd = self
                    .commands
                    .killall_batch(shard, app, Members::of(&read), BATCH);
                let (removed, left): (u64, u64) = self.eval_write(cmd).await?;
                total += removed;
                if left == 0 || removed == 0 {
                    return Ok::<u64, Error>(total);
                }
            }
        });
        Ok(each_shard(per_shard).await?.into_iter().sum())
    }
}
