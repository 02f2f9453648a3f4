//! set: merges data into the live session, counted as a write. One round trip in both
//! layouts: set.lua between read_live and touch, with the merge helper (lib/merge.lua).

use super::super::{Fields, RedisStore};
use crate::data::Data;
use crate::error::Result;
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use crate::redis_store::scripts::ScriptCall;
use crate::session::Record;

impl Commands {
    pub(crate) fn set(
        &self,
        l: &Shard,
        app: &str,
        token: &str,
        d: &Data,
        now: i64,
    ) -> ScriptCall<'_> {
        let mut cmd = self.session_call(&self.scripts.set, l, app, token, now, &[]);
        cmd.arg(self.layout.invalidation_spec(l));
        for (key, value) in d {
            // Keys and values go as the JSON text Node writes: the script compares keys as
            // text and splices values in without reading numbers, so none loses a digit. A
            // null deletes its key and goes as the empty text (`null` is a value Node can
            // store: JSON.stringify writes Infinity as null).
            cmd.arg(crate::node_json::to_vec(key));
            if value.is_null() {
                cmd.arg(&b""[..]);
            } else {
                cmd.arg(crate::node_json::to_vec(value));
            }
        }
        cmd
    }
}

impl RedisStore {
    pub(crate) async fn set(
        &self,
        app: &str,
        token: &str,
        d: &Data,
        now: i64,
    ) -> Result<Option<Record>> {
        let Some(shard) = self.layout().shard_for_token(token) else {
            return Ok(None);
        };
        let cmd = self.commands.set(shard, app, token, d, now);
        let fields: Fields = self.eval_write(cmd).await?;
        fields.map_or(Ok(None), |f| {
            Record::from_fields(f)?.map(Record::readable).transpose()
        })
    }
}
