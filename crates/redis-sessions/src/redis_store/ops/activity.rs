//! activity: distinct ids active since a time, a ZCOUNT of each shard's `_users` (each id
//! lives in one shard, so the shards' counts add up).

use super::super::{each_shard, RedisStore};
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use redis::Cmd;

impl Commands {
    /// `ZCOUNT _users since +inf`.
    pub(crate) fn activity(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(l.app_users(app)).arg(since).arg("+inf");
        cmd
    }
}

impl RedisStore {
    /// Distinct ids active since `since`: each id lives in one shard, so shards add up.
    pub(crate) async fn activity(&self, app: &str, since: i64) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let count: u64 = self
                .read_query(&self.commands.activity(shard, app, since))
                .await
                .map_err(Error::from_redis)?;
            Ok::<u64, Error>(count)
        });
        Ok(each_shard(per_shard).await?.into_iter().sum())
    }
}
