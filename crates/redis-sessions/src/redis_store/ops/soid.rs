//! soid: the sessions of one id with their tokens (which never leave the library: they
//! become device handles). Cluster layout: the id's set is read first, and read again when
//! the script finds a token the read missed.

use super::super::{RedisStore, RETRIES};
use super::{with_members, Members, ReadFrom};
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::Commands;
use crate::redis_store::scripts::ScriptCall;
use crate::session::Record;

impl Commands {
    /// soid: EVALSHA in the Node layout (Redis < 7 stays supported), EVALSHA_RO with every
    /// key declared in the cluster layout.
    pub(crate) fn soid(
        &self,
        l: &Shard,
        app: &str,
        id: &str,
        tokens: Members<'_>,
    ) -> ScriptCall<'_> {
        let mut keys = vec![l.user_sessions(app, id)];
        if let Members::Given(tokens) = tokens {
            keys.extend(tokens.iter().map(|t| l.session(app, t)));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = self.scripts.soid.call(self.read_verb(), &keys);
        cmd.arg(l.app_prefix(app));
        with_members(cmd, tokens)
    }
}

impl RedisStore {
    /// The sessions of one id with their tokens (which never leave the library: they
    /// become device handles). Cluster layout: the id's set is read first, and read again
    /// when the script finds a token the read missed.
    pub(crate) async fn soid(&self, app: &str, id: &str) -> Result<Vec<(String, Record)>> {
        let shard = &self.layout().shards()[self.layout().shard_for_id(id)];
        for _ in 0..RETRIES {
            let read: Option<Vec<String>> = self
                .members_first(
                    || self.commands.user_tokens(shard, app, id),
                    ReadFrom::Replica,
                )
                .await?;
            let members = Members::of(&read);
            if members.is_none_given() {
                return Ok(Vec::new());
            }
            let reply = self
                .eval_read(self.commands.soid(shard, app, id, members))
                .await?;
            match (devices(reply)?, &read) {
                (Some(sessions), _) => return Ok(sessions),
                // The script read the set itself (Node layout): nothing can be stale.
                (None, None) => return Ok(Vec::new()),
                (None, Some(_)) => continue,
            }
        }
        Err(Error::Contended(format!("one id in {app}")))
    }
}

/// soid's reply: `{1, rows, tokens}` → each live session with its token; `{0}` (the set
/// changed since the caller read it: read again) → None.
fn devices(reply: redis::Value) -> Result<Option<Vec<(String, Record)>>> {
    let redis::Value::Array(mut items) = reply else {
        return Ok(None);
    };
    if items.len() != 3 {
        return Ok(None);
    }
    let tokens: Vec<String> = redis::from_redis_value(items.pop().unwrap_or(redis::Value::Nil))
        .map_err(redis::RedisError::from)
        .map_err(Error::from_redis)?;
    let rows: Vec<Vec<Option<crate::session::FieldText>>> =
        redis::from_redis_value(items.pop().unwrap_or(redis::Value::Nil))
            .map_err(redis::RedisError::from)
            .map_err(Error::from_redis)?;
    let mut out = Vec::with_capacity(rows.len());
    for (token, row) in tokens.into_iter().zip(rows) {
        if let Some(record) = Record::from_fields(row)? {
            out.push((token, record));
        }
    }
    Ok(Some(out))
}
