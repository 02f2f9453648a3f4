//! killsoid: ends every session of one id (all but one with `keep`), in bounded batches.
//! Cluster layout: the id's set is read first; the script acts only when it holds no token
//! the read missed, so a call that fails changes nothing.

use super::super::{RedisStore, BATCH, MAX_ROUNDS, RETRIES};
use super::{Members, ReadFrom};
use crate::error::{Error, Result};
use crate::layout::Shard;
use crate::redis_store::commands::{evalsha, Commands};
use crate::redis_store::scripts::ScriptCall;

impl Commands {
    /// killsoid: with `Members::Given`, `whole` says the tokens are the whole set as read
    /// (but `keep`, the token of a session that stays).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn killsoid(
        &self,
        l: &Shard,
        app: &str,
        id: &str,
        tokens: Members<'_>,
        keep: Option<&str>,
        whole: bool,
        batch: usize,
    ) -> ScriptCall<'_> {
        let us = l.user_sessions(app, id);
        let mut keys = vec![us, l.app_sessions(app), l.app_users(app), l.expiries()];
        if let Members::Given(tokens) = tokens {
            keys.extend(tokens.iter().map(|t| l.session(app, t)));
            keys.extend(self.declared_events(l, app));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = evalsha(&self.scripts.killsoid, &keys);
        cmd.arg(app)
            .arg(id)
            .arg(l.app_prefix(app))
            .arg(self.layout.invalidation_spec(l));
        match tokens {
            Members::Read => {
                cmd.arg("read").arg(keep.unwrap_or("")).arg(batch);
            }
            Members::Given(tokens) => {
                cmd.arg(if whole { "whole" } else { "part" })
                    .arg(keep.unwrap_or(""));
                for t in tokens {
                    cmd.arg(t);
                }
            }
        }
        cmd
    }
}

impl RedisStore {
    /// "Log out everywhere". Cluster layout: the id's set is read first; the script acts
    /// only when it holds no token the read missed, so a call that fails changes nothing.
    /// Atomic for up to [`BATCH`] sessions of one id; more go in several scripts.
    /// Every session of one id but `keep` (a token), in bounded batches.
    pub(crate) async fn killsoid(&self, app: &str, id: &str, keep: Option<&str>) -> Result<u64> {
        let shard = &self.layout().shards()[self.layout().shard_for_id(id)];
        let mut total = 0;
        let mut retries = 0;
        // A set larger than BATCH takes several scripts; the bound stops a loop that
        // another process feeds with new sessions of this id.
        for _ in 0..MAX_ROUNDS {
            let mut read: Option<Vec<String>> = self
                .members_first(
                    || self.commands.user_tokens(shard, app, id),
                    ReadFrom::Master,
                )
                .await?;
            let mut whole = true;
            if let Some(tokens) = &mut read {
                tokens.retain(|t| Some(t.as_str()) != keep);
                if tokens.is_empty() {
                    return Ok(total);
                }
                whole = tokens.len() <= BATCH;
                tokens.truncate(BATCH);
            }
            let cmd =
                self.commands
                    .killsoid(shard, app, id, Members::of(&read), keep, whole, BATCH);
            match Batch::from_reply(self.eval_write(cmd).await?) {
                Batch::Stale => {
                    retries += 1;
                    if retries >= RETRIES {
                        return Err(Error::Contended(format!("one id in {app}")));
                    }
                }
                Batch::Ended { killed, left } => {
                    total += killed;
                    if left == 0 {
                        return Ok(total);
                    }
                }
            }
        }
        Ok(total)
    }
}

/// What killsoid.lua answers for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    /// The id's set holds a token the caller's read missed (a session created since):
    /// nothing was changed; read again.
    Stale,
    /// `killed` live sessions ended; `left` tokens remain in the set for another batch.
    Ended { killed: u64, left: u64 },
}

impl Batch {
    /// The script's `{killed, left}`, `killed` being -1 for a stale read (see killsoid.lua).
    fn from_reply((killed, left): (i64, u64)) -> Self {
        match u64::try_from(killed) {
            Ok(killed) => Batch::Ended { killed, left },
            Err(_) => Batch::Stale,
        }
    }
}
