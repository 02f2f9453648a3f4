//! `check --repair`: mends each finding with one small script per session (or per index
//! entry) that re-checks the finding's condition inside the script before it writes, so a
//! session a concurrent writer changed since the check is left as that writer left it.

use crate::error::Result;
use crate::findings::{Finding, Kind, Tallies};
use crate::scripts;
use redis::aio::MultiplexedConnection;
use redis_sessions::keys::{NamespaceKeys, ShardKeys};
use std::collections::BTreeMap;

/// What a change means, for the report.
fn describe(change: &str) -> &'static str {
    match change {
        "removed_corrupt_hash" => "removed a hash without id, la or ttl",
        "removed_corrupt_data" => "removed a session whose d is not a JSON object",
        "removed_expired" => "removed a session past its end, with its index entries",
        "added_to_sessions" => "added a session to _sessions",
        "added_to_users" => "added an id to _users",
        "added_to_user_set" => "added a session to us:{id}",
        "added_to_expiries" => "added a session to SESSIONS",
        "fixed_expiry" => "set a SESSIONS score to la + ttl",
        "removed_sessions_member" => "removed a _sessions member without a session",
        "removed_expiry_member" => "removed a SESSIONS member without a session",
        "removed_from_user_set" => "removed a us:{id} token without a session",
        "removed_from_users" => "removed a _users id without a session",
        _ => "other change",
    }
}

/// Mends `findings`; returns the changes made, by change, with up to `limit` examples.
pub async fn run(
    con: &mut MultiplexedConnection,
    keys: &NamespaceKeys,
    shards: &[ShardKeys],
    findings: &[Finding],
    now: i64,
    grace: i64,
    limit: usize,
) -> Result<Tallies> {
    let mut changes = Tallies::default();
    // The session-side findings of one session are mended by one script.
    let mut sessions: BTreeMap<(usize, &str, &str), Option<&Finding>> = BTreeMap::new();
    for finding in findings.iter().filter(|f| f.kind.is_session_side()) {
        let corrupt = sessions
            .entry((finding.shard, finding.app.as_str(), finding.token.as_str()))
            .or_default();
        if finding.kind == Kind::CorruptData {
            *corrupt = Some(finding);
        }
    }
    for ((shard, app, token), corrupt) in sessions {
        let Some(shard) = shards.get(shard) else {
            continue;
        };
        let data = corrupt.and_then(|f| f.data.as_deref());
        let made: Vec<String> = scripts::MEND_SESSION
            .key(shard.session(app, token))
            .key(shard.app_sessions(app))
            .key(shard.app_users(app))
            .key(shard.expiries())
            .arg(now)
            .arg(grace)
            .arg(app)
            .arg(token)
            .arg(shard.user_sessions_prefix(app))
            .arg(announce_spec(keys, shard))
            .arg(if data.is_some() { "1" } else { "0" })
            .arg(data.unwrap_or(""))
            .invoke_async(con)
            .await?;
        let example = findings
            .iter()
            .find(|f| f.app == app && f.token == token)
            .map(Finding::example);
        for change in made {
            if let Some(example) = example.clone() {
                changes.add(&change, describe(&change), example, limit);
            }
        }
    }
    for finding in findings.iter().filter(|f| !f.kind.is_session_side()) {
        let Some(shard) = shards.get(finding.shard) else {
            continue;
        };
        let id = finding.id.as_deref().unwrap_or("");
        let member = finding.member.as_deref().unwrap_or("");
        let app = finding.app.as_str();
        let made: Vec<String> = match finding.kind {
            Kind::OrphanSessionsMember | Kind::OrphanExpiryMember => {
                let (index, change) = if finding.kind == Kind::OrphanSessionsMember {
                    (shard.app_sessions(app), "removed_sessions_member")
                } else {
                    (shard.expiries(), "removed_expiry_member")
                };
                let removed: i64 = scripts::DROP_MEMBER
                    .key(shard.session(app, &finding.token))
                    .key(index)
                    .arg(member)
                    .arg(id)
                    .invoke_async(con)
                    .await?;
                if removed == 1 {
                    vec![change.to_owned()]
                } else {
                    Vec::new()
                }
            }
            Kind::StaleUserSetMember => {
                scripts::DROP_USER_TOKEN
                    .key(shard.session(app, &finding.token))
                    .key(shard.user_sessions(app, id))
                    .key(shard.app_users(app))
                    .arg(&finding.token)
                    .arg(id)
                    .invoke_async(con)
                    .await?
            }
            _ => {
                let removed: i64 = scripts::DROP_USER
                    .key(shard.user_sessions(app, id))
                    .key(shard.app_users(app))
                    .arg(id)
                    .invoke_async(con)
                    .await?;
                if removed == 1 {
                    vec!["removed_from_users".to_owned()]
                } else {
                    Vec::new()
                }
            }
        };
        for change in made {
            changes.add(&change, describe(&change), finding.example(), limit);
        }
    }
    Ok(changes)
}

/// The cache channel of `shard` with the command that reaches its listeners first (see
/// mend_session.lua): PUBLISH for the Node layout's channel, where Node processes listen;
/// SPUBLISH for a shard of the sharded layout, as the library announces its own writes.
fn announce_spec(keys: &NamespaceKeys, shard: &ShardKeys) -> String {
    let command = if keys.is_sharded() { 'S' } else { 'P' };
    format!("{command}{}", keys.cache_channel_of(shard))
}
