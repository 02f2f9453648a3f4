//! `check`: compares every session hash of the namespace (or one app) with the four
//! indexes, and every index entry with the hashes, in bounded read-only steps. The
//! findings go to `repair` or to the report.

use crate::error::{AdminError, Result};
use crate::findings::{Finding, Kind};
use crate::scan::{self, KeyKind, SESSION_BATCH};
use crate::scripts;
use redis::aio::MultiplexedConnection;
use redis_sessions::keys::{ShardKeys, TOKEN_LEN};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

/// What the check walks and when it runs.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The shards whose keys live on the connection's server: the one shard of the Node
    /// layout, or the shards a cluster master owns (each shard's keys share a hash tag, so
    /// one master holds all of them).
    pub shards: Vec<ShardKeys>,
    /// What every key of the namespace starts with (`{ns}:`): one SCAN of the server
    /// walks all its shards, instead of one walk of its whole keyspace per shard.
    pub namespace_prefix: String,
    /// Only this app, or every app.
    pub app: Option<String>,
    /// Now, in seconds since the epoch (the store's clock: the client's).
    pub now: i64,
    /// Seconds a session may stay past its end before it is a finding.
    pub grace: i64,
    /// Show progress on stderr under this label (the master's address), or not at all.
    pub progress: Option<String>,
}

/// What a check found, and how much it read.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The findings, without duplicates (a SCAN may return a key twice).
    pub findings: BTreeSet<Finding>,
    /// The apps seen.
    pub apps: BTreeSet<String>,
    /// Session hashes read.
    pub sessions: u64,
    /// Index entries read.
    pub index_entries: u64,
    /// Round trips made.
    pub steps: u64,
}

/// Runs the check over `scope` on `con`.
pub async fn run(con: &mut MultiplexedConnection, scope: &Scope) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut progress = Progress::new(scope.progress.clone());
    let locate = Locator::new(scope);
    let pattern = match (&scope.app, scope.shards.as_slice()) {
        (Some(app), [one]) => format!(
            "{}{}:*",
            scan::glob_escape(one.prefix()),
            scan::glob_escape(app)
        ),
        (None, [one]) => format!("{}*", scan::glob_escape(one.prefix())),
        // The tag sits between the namespace and the app; classify() is exact.
        (Some(app), _) => format!(
            "{}*:{}:*",
            scan::glob_escape(&scope.namespace_prefix),
            scan::glob_escape(app)
        ),
        (None, _) => format!("{}*", scan::glob_escape(&scope.namespace_prefix)),
    };
    if let Some(app) = &scope.app {
        out.apps.insert(app.clone());
    }
    // Index keys are walked after the key scan, each once (SCAN may repeat a key).
    let mut indexes: BTreeSet<(usize, String, String, Option<String>)> = BTreeSet::new();
    let mut batch: Vec<(usize, String, String)> = Vec::new();
    let mut cursor = 0;
    loop {
        let (next, keys) = scan::scan_keys(con, cursor, &pattern).await?;
        out.steps += 1;
        for key in keys {
            let Some(shard) = locate.shard_of(&key) else {
                continue;
            };
            match scan::classify(scope.shards[shard].prefix(), &key) {
                KeyKind::Session { app, token } => {
                    out.apps.insert(app.clone());
                    batch.push((shard, app, token));
                    if batch.len() >= SESSION_BATCH {
                        check_sessions(con, scope, &mut batch, &mut out).await?;
                    }
                }
                KeyKind::AppSessions { app } => {
                    out.apps.insert(app.clone());
                    indexes.insert((shard, "ZSCAN".into(), app, None));
                }
                KeyKind::AppUsers { app } => {
                    out.apps.insert(app.clone());
                    indexes.insert((shard, "ZSCAN-users".into(), app, None));
                }
                KeyKind::UserSet { app, id } => {
                    out.apps.insert(app.clone());
                    indexes.insert((shard, "SSCAN".into(), app, Some(id)));
                }
                KeyKind::Other => {}
            }
        }
        progress.show(&out, false);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    check_sessions(con, scope, &mut batch, &mut out).await?;
    for (shard, walk, app, id) in indexes {
        let keys = &scope.shards[shard];
        match (walk.as_str(), id) {
            ("ZSCAN", _) => {
                let key = keys.app_sessions(&app);
                let index = Index::new(shard, 's', &app, "");
                check_index(con, scope, &key, "ZSCAN", &index, &mut out).await?;
            }
            ("ZSCAN-users", _) => {
                let key = keys.app_users(&app);
                let index = Index::new(shard, 'r', &app, "");
                check_index(con, scope, &key, "ZSCAN", &index, &mut out).await?;
            }
            (_, Some(id)) => {
                let key = keys.user_sessions(&app, &id);
                let index = Index::new(shard, 'u', &app, &id);
                check_index(con, scope, &key, "SSCAN", &index, &mut out).await?;
            }
            _ => {}
        }
        progress.show(&out, false);
    }
    for (shard, keys) in scope.shards.iter().enumerate() {
        let index = Index::new(shard, 'e', "", "");
        check_index(con, scope, &keys.expiries(), "ZSCAN", &index, &mut out).await?;
    }
    progress.show(&out, true);
    Ok(out)
}

/// A progress line on stderr, rewritten at most once a second (stdout stays the report).
struct Progress {
    label: Option<String>,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(label: Option<String>) -> Self {
        let now = Instant::now();
        Progress {
            label,
            started: now,
            shown: now,
        }
    }

    fn show(&mut self, out: &Outcome, last: bool) {
        let Some(label) = &self.label else {
            return;
        };
        if !last && self.shown.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.shown = Instant::now();
        let line = format!(
            "\r{label}: {} sessions, {} index entries, {} steps, {:.0} s",
            out.sessions,
            out.index_entries,
            out.steps,
            self.started.elapsed().as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        // Progress is a courtesy: a closed stderr must not fail the check.
        let _ = err.write_all(line.as_bytes());
        let _ = if last { writeln!(err) } else { err.flush() };
    }
}

/// Which of the scope's shards a key belongs to, from its prefix.
struct Locator<'a> {
    scope: &'a Scope,
    by_prefix: HashMap<&'a str, usize>,
}

impl<'a> Locator<'a> {
    fn new(scope: &'a Scope) -> Self {
        let by_prefix = scope
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| (s.prefix(), i))
            .collect();
        Locator { scope, by_prefix }
    }

    /// The index of the shard `key` belongs to, or None (another shard's key, the layout
    /// record, a foreign key).
    fn shard_of(&self, key: &str) -> Option<usize> {
        if let [one] = self.scope.shards.as_slice() {
            return key.starts_with(one.prefix()).then_some(0);
        }
        // Sharded: `{ns}:{tag}:…`, the prefix ends at the first `}:` after the namespace.
        let rest = key.strip_prefix(self.scope.namespace_prefix.as_str())?;
        let end = self.scope.namespace_prefix.len() + rest.find("}:")? + 2;
        self.by_prefix.get(key.get(..end)?).copied()
    }
}

/// One index being walked: its shard, check_members.lua's letter for it, its app and id.
struct Index<'a> {
    shard: usize,
    letter: char,
    app: &'a str,
    id: &'a str,
}

impl<'a> Index<'a> {
    fn new(shard: usize, letter: char, app: &'a str, id: &'a str) -> Self {
        Index {
            shard,
            letter,
            app,
            id,
        }
    }
}

/// Checks the session hashes of `batch` (grouped by app: one script per app) and empties it.
async fn check_sessions(
    con: &mut MultiplexedConnection,
    scope: &Scope,
    batch: &mut Vec<(usize, String, String)>,
    out: &mut Outcome,
) -> Result<()> {
    batch.sort();
    let mut rest = batch.as_slice();
    while let Some((shard, app, _)) = rest.first() {
        let same = rest
            .iter()
            .take_while(|(s, a, _)| s == shard && a == app)
            .count();
        let (group, tail) = rest.split_at(same);
        rest = tail;
        let keys = &scope.shards[*shard];
        let mut invocation = scripts::CHECK_SESSIONS.prepare_invoke();
        invocation.arg(keys.prefix()).arg(app);
        for (_, _, token) in group {
            invocation.key(keys.session(app, token));
        }
        for (_, _, token) in group {
            invocation.arg(token);
        }
        let rows: Vec<Vec<Option<String>>> = invocation.invoke_async(con).await?;
        out.steps += 1;
        if rows.len() != group.len() {
            return Err(AdminError::Reply(format!(
                "check_sessions gave {} rows for {} keys",
                rows.len(),
                group.len()
            )));
        }
        for ((shard, app, token), row) in group.iter().zip(rows) {
            judge_session(scope, *shard, app, token, &row, out);
        }
    }
    batch.clear();
    Ok(())
}

/// The findings of one session hash from its row (see check_sessions.lua).
fn judge_session(
    scope: &Scope,
    shard: usize,
    app: &str,
    token: &str,
    row: &[Option<String>],
    out: &mut Outcome,
) {
    let field = |i: usize| row.get(i).cloned().flatten();
    if field(0).as_deref() != Some("hash") {
        // A key shaped like a session's that is no hash: not the store's, left alone.
        return;
    }
    out.sessions += 1;
    let mut found = |kind: Kind, id: Option<String>, data: Option<String>| {
        out.findings.insert(Finding {
            kind,
            shard,
            app: app.to_owned(),
            token: token.to_owned(),
            id,
            member: None,
            data,
        });
    };
    let id = field(1);
    let la = field(2).and_then(|t| t.parse::<i64>().ok());
    let ttl = field(3).and_then(|t| t.parse::<i64>().ok());
    let (Some(id), Some(la), Some(ttl)) = (id.clone(), la, ttl) else {
        found(Kind::CorruptHash, id, None);
        return;
    };
    if let Some(d) = field(4) {
        let is_object = redis_sessions::node_json::parse(&d, true)
            .map(|v| v.is_object())
            .unwrap_or(false);
        if !is_object {
            found(Kind::CorruptData, Some(id), Some(d));
            return;
        }
    }
    let dies = la.saturating_add(ttl);
    if dies < scope.now.saturating_sub(scope.grace) {
        found(Kind::Expired, Some(id), None);
        return;
    }
    if field(5).as_deref() != Some("1") {
        found(Kind::MissingFromSessions, Some(id.clone()), None);
    }
    if field(6).as_deref() != Some("1") {
        found(Kind::MissingFromUsers, Some(id.clone()), None);
    }
    if field(7).as_deref() != Some("1") {
        found(Kind::MissingFromUserSet, Some(id.clone()), None);
    }
    match field(8).and_then(|s| s.parse::<f64>().ok()) {
        None => found(Kind::MissingFromExpiries, Some(id), None),
        // A touch may leave the score one second past la + ttl (see mend_session.lua).
        Some(score) if score < dies as f64 || score > (dies + 1) as f64 => {
            found(Kind::ExpiryMismatch, Some(id), None)
        }
        Some(_) => {}
    }
}

/// Walks one index key with `command` (ZSCAN/SSCAN) and checks its members in batches.
async fn check_index(
    con: &mut MultiplexedConnection,
    scope: &Scope,
    key: &str,
    command: &str,
    index: &Index<'_>,
    out: &mut Outcome,
) -> Result<()> {
    let (letter, app, id) = (index.letter, index.app, index.id);
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor = 0;
    loop {
        let (next, members) = scan::scan_members(con, command, key, cursor).await?;
        out.steps += 1;
        let members: Vec<String> = members
            .into_iter()
            .filter(|m| seen.insert(m.clone()))
            .filter(|m| match (&scope.app, letter) {
                // SESSIONS holds every app's members.
                (Some(only), 'e') => m.split_once(':').is_some_and(|(a, _)| a == only),
                _ => true,
            })
            .collect();
        if !members.is_empty() {
            let oks: Vec<i64> = scripts::CHECK_MEMBERS
                .prepare_invoke()
                .arg(scope.shards[index.shard].prefix())
                .arg(letter.to_string())
                .arg(app)
                .arg(id)
                .arg(&members)
                .invoke_async(con)
                .await?;
            out.steps += 1;
            out.index_entries += members.len() as u64;
            for (member, ok) in members.into_iter().zip(oks) {
                if ok != 1 {
                    out.findings
                        .insert(orphan(index.shard, letter, app, id, member));
                }
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(())
}

/// The finding of an index member of `index` that names no session.
fn orphan(shard: usize, index: char, app: &str, id: &str, member: String) -> Finding {
    let token_of = |m: &str| m.get(..TOKEN_LEN).unwrap_or(m).to_owned();
    let (kind, app, token, id) = match index {
        's' => (
            Kind::OrphanSessionsMember,
            app.to_owned(),
            token_of(&member),
            member.get(TOKEN_LEN + 1..).map(str::to_owned),
        ),
        'e' => {
            let (member_app, rest) = member.split_once(':').unwrap_or(("", &member));
            (
                Kind::OrphanExpiryMember,
                member_app.to_owned(),
                token_of(rest),
                rest.get(TOKEN_LEN + 1..).map(str::to_owned),
            )
        }
        'u' => (
            Kind::StaleUserSetMember,
            app.to_owned(),
            member.clone(),
            Some(id.to_owned()),
        ),
        _ => (
            Kind::OrphanUser,
            app.to_owned(),
            String::new(),
            Some(member.clone()),
        ),
    };
    Finding {
        kind,
        shard,
        app,
        token,
        id,
        member: Some(member),
        data: None,
    }
}
