//! The sweep: ends every session whose time has come, shard by shard, in bounded batches,
//! under a fleet-wide lease so that one process sweeps at a time.

use super::super::{each_shard, RedisStore, BATCH};
use super::{with_members, Members, ReadFrom};
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::evalsha;
use crate::redis_store::commands::{split_expiry_member, Commands};
use crate::redis_store::scripts::ScriptCall;
use redis::Cmd;
use std::time::Duration;

impl Commands {
    /// `ZRANGEBYSCORE SESSIONS -inf now LIMIT 0 batch` — the sweep's first read in the
    /// cluster layout.
    pub(crate) fn due_members(&self, l: &Shard, now: i64, batch: usize) -> Cmd {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(l.expiries())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(batch);
        cmd
    }

    pub(crate) fn sweep_batch(
        &self,
        l: &Shard,
        now: i64,
        members: Members<'_>,
        batch: usize,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.expiries()];
        if let Members::Given(members) = members {
            let mut per_app = std::collections::BTreeSet::new();
            for (app, token, id) in members.iter().filter_map(|m| split_expiry_member(m)) {
                keys.push(l.session(app, token));
                per_app.insert((app, None));
                per_app.insert((app, Some(id)));
            }
            for (app, id) in per_app {
                match id {
                    None => {
                        keys.extend([l.app_sessions(app), l.app_users(app)]);
                        keys.extend(self.declared_events(l, app));
                    }
                    Some(id) => keys.push(l.user_sessions(app, id)),
                }
            }
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.sweep, &keys);
        cmd.arg(now)
            .arg(batch)
            .arg(l.prefix())
            .arg(self.layout.invalidation_spec(l))
            .arg(&self.index_mode()[..1]);
        with_members(cmd, members)
    }

    pub(crate) fn sweep_lease(&self, ttl_ms: u64) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.layout.sweep_lease())
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        cmd
    }
}

impl RedisStore {
    /// Kills every session whose time has come, shard by shard, in bounded batches.
    pub(crate) async fn sweep(&self, now: i64) -> Result<u64> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let mut total = 0;
            loop {
                let read: Option<Vec<String>> = self
                    .members_first(
                        || self.commands.due_members(shard, now, BATCH),
                        ReadFrom::Master,
                    )
                    .await?;
                let members = Members::of(&read);
                if members.is_none_given() {
                    return Ok::<u64, Error>(total);
                }
                let killed: u64 = self
                    .eval(self.commands.sweep_batch(shard, now, members, BATCH))
                    .await?;
                total += killed;
                // A batch that was not full was the last (the script reports what it
                // ended; in the cluster layout the read says how many were due).
                if read.as_ref().map_or(killed as usize, Vec::len) < BATCH {
                    return Ok::<u64, Error>(total);
                }
            }
        });
        Ok(each_shard(per_shard).await?.into_iter().sum())
    }

    /// Takes the fleet-wide sweep lease for `ttl`; false when another process holds it.
    pub(crate) async fn try_sweep_lease(&self, ttl: Duration) -> Result<bool> {
        let cmd = self.commands.sweep_lease(ttl.as_millis() as u64);
        let taken: Option<String> = self.con.query(&cmd).await.map_err(Error::from_redis)?;
        Ok(taken.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;

    #[test]
    fn cluster_calls_declare_every_key_they_touch() {
        let commands = Commands::new(Layout::cluster("rs", 60), true);
        let shard = &commands.layout().shards()[commands.layout().shard_for_id("bob")];
        let token = "t".repeat(64);
        let members = [format!("app:{token}:bob")];
        let call = commands.sweep_batch(shard, 100, Members::Given(&members), 1000);
        let args: Vec<String> = call
            .cmd()
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        let numkeys: usize = args[2].parse().expect("numkeys");
        let keys = &args[3..3 + numkeys];
        for key in [
            shard.expiries(),
            shard.session("app", &token),
            shard.app_sessions("app"),
            shard.app_users("app"),
            shard.user_sessions("app", "bob"),
        ] {
            assert!(keys.contains(&key), "{key} is declared: {keys:?}");
        }
        assert_eq!(keys.len(), 5, "nothing else: {keys:?}");
    }
}
