//! soapp: sessions active since a time, most recent first, merged across shards. Cluster
//! layout: each shard's members are read first; a session added after that read is not
//! listed, one killed after it is left out.

use super::super::{each_shard, RedisStore};
use super::{with_members, Members, ReadFrom};
use crate::error::Result;
use crate::layout::Shard;
use crate::redis_store::commands::{split_session_member, Commands};
use crate::redis_store::scripts::ScriptCall;
use crate::session::Record;
use redis::Cmd;

impl Commands {
    /// `ZREVRANGEBYSCORE _sessions +inf since` — soapp's first read in the cluster layout.
    pub(crate) fn active_members(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
        cmd.arg(l.app_sessions(app)).arg("+inf").arg(since);
        cmd
    }

    pub(crate) fn soapp(
        &self,
        l: &Shard,
        app: &str,
        since: i64,
        members: Members<'_>,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.app_sessions(app)];
        if let Members::Given(members) = members {
            keys.extend(
                members
                    .iter()
                    .map(|m| l.session(app, split_session_member(m).map_or(m.as_str(), |p| p.0))),
            );
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = self.scripts.soapp.call(self.read_verb(), &keys);
        cmd.arg(since).arg(l.app_prefix(app));
        with_members(cmd, members)
    }
}

impl RedisStore {
    /// Sessions active since `since`, most recent first (merged across shards). Cluster
    /// layout: each shard's members are read first; a session added after that read is
    /// not listed, one killed after it is left out.
    pub(crate) async fn soapp(&self, app: &str, since: i64) -> Result<Vec<Record>> {
        let per_shard = self.layout().shards().iter().map(|shard| async move {
            let read: Option<Vec<String>> = self
                .members_first(
                    || self.commands.active_members(shard, app, since),
                    ReadFrom::Replica,
                )
                .await?;
            let members = Members::of(&read);
            if members.is_none_given() {
                return Ok(Vec::new());
            }
            records(
                self.eval_read(self.commands.soapp(shard, app, since, members))
                    .await?,
            )
        });
        let mut all: Vec<Record> = each_shard(per_shard).await?.into_iter().flatten().collect();
        if self.layout().shards().len() > 1 {
            all.sort_by_key(|r| std::cmp::Reverse(r.la));
        }
        Ok(all)
    }
}

fn records(rows: Vec<Vec<Option<crate::session::FieldText>>>) -> Result<Vec<Record>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(record) = Record::from_fields(row)? {
            out.push(record);
        }
    }
    Ok(out)
}
