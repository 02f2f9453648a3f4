//! get: the live session, counted as a read. One round trip in both layouts: get.lua
//! between the read_live and touch blocks of lib/ (see lib/README.md for why blocks).

use super::super::{Fields, RedisStore};
use crate::error::Result;
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use crate::redis_store::scripts::ScriptCall;
use crate::session::Record;

impl Commands {
    pub(crate) fn get(&self, l: &Shard, app: &str, token: &str, now: i64) -> ScriptCall<'_> {
        self.session_call(&self.scripts.get, l, app, token, now, &[])
    }
}

impl RedisStore {
    pub(crate) async fn get(&self, app: &str, token: &str, now: i64) -> Result<Option<Record>> {
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(None);
        };
        let cmd = self.commands.get(shard, app, token, now);
        let fields: Fields = self.eval(cmd).await?;
        fields.map_or(Ok(None), |f| {
            Record::from_fields(f)?.map(Record::readable).transpose()
        })
    }
}
