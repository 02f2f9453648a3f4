//! app_stats: an app's counts per shard from its indexes alone (app_stats.lua: ZCARD and
//! ZCOUNT), with the master holding each shard on a cluster.

use super::super::{cluster_nodes, each_shard, RedisStore};
use crate::app_stats::AppStats;
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use crate::redis_store::scripts::ScriptCall;
use std::time::Duration;

impl Commands {
    /// An app's counts in one shard: sessions, users, and each active since each of `since`.
    pub(crate) fn app_stats(&self, l: &Shard, app: &str, since: &[i64]) -> ScriptCall<'_> {
        let (sessions, users) = (l.app_sessions(app), l.app_users(app));
        let mut cmd = self
            .scripts
            .app_stats
            .call(self.read_verb(), &[&sessions, &users]);
        for start in since {
            cmd.arg(*start);
        }
        cmd
    }
}

impl RedisStore {
    /// An app's counts per shard, each read in one script on the shard's indexes, with the
    /// master that holds the shard on a cluster (from one topology read, bounded by
    /// `TOPOLOGY_WITHIN`: the counts do not wait for a slow topology).
    pub(crate) async fn app_stats(&self, app: &str, since: &[i64]) -> Result<AppStats> {
        const TOPOLOGY_WITHIN: Duration = Duration::from_secs(2);
        let topology = async {
            if self.layout().is_clustered() {
                self.con.cluster_topology(TOPOLOGY_WITHIN).await
            } else {
                None
            }
        };
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let counts: Vec<u64> = self
                .eval_read(self.commands.app_stats(shard, app, since))
                .await?;
            Ok::<Vec<u64>, Error>(counts)
        });
        let (topology, counts) = tokio::join!(topology, each_shard(per_shard));
        let mut stats = AppStats::default();
        for (number, (shard, counts)) in self.layout().shards().iter().zip(counts?).enumerate() {
            let node = topology
                .as_deref()
                .and_then(|nodes| cluster_nodes::owner_of_key(nodes, &shard.app_sessions(app)));
            stats = stats.add(AppStats::of_shard(number, node, &counts, since.len()));
        }
        Ok(stats)
    }
}
