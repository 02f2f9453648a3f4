//! Each subcommand: what it asks Redis or the library, and what it prints (a table for
//! people, JSON with `--json`). Returns the exit code.

use crate::check::{self, Scope};
use crate::config::{Cli, Command, Target};
use crate::error::{AdminError, Result};
use crate::exit::{EXIT_FINDINGS, EXIT_OK};
use crate::findings::{Report, Tallies};
use crate::{deploy, repair, stats, table};
use redis_sessions::RedisSessions;
use serde_json::json;
use std::io::{BufRead, Write};
use std::time::Instant;

/// Runs the command `cli` names.
pub async fn run(cli: &Cli) -> Result<i32> {
    let target = &cli.target;
    match &cli.command {
        Command::Check {
            app,
            repair,
            grace,
            examples,
            progress,
        } => {
            let progress = progress.enabled();
            check_command(cli, app.clone(), *repair, *grace, *examples, progress).await
        }
        Command::Stats { app } => stats_command(cli, app.as_deref()).await,
        Command::User { app, id } => user_command(cli, app, id).await,
        Command::Kill { app, token } => {
            let token = if token == "-" {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim().to_owned()
            } else {
                token.clone()
            };
            let rs = store(target).await?;
            // The token is never printed: not even a bad one (it may be a near miss).
            let ended = rs.kill(app, &token).await?;
            emit(
                cli.json,
                json!({ "ended": u64::from(ended) }),
                if ended {
                    "signed out 1 session\n".to_owned()
                } else {
                    "no live session has that token\n".to_owned()
                },
            )
        }
        Command::KillDevice { app, id, handle } => {
            let rs = store(target).await?;
            let ended = rs.kill_device(app, id, handle).await?;
            emit(
                cli.json,
                json!({ "ended": u64::from(ended) }),
                if ended {
                    "signed out 1 device\n".to_owned()
                } else {
                    "no device of this user has that handle\n".to_owned()
                },
            )
        }
        Command::Killsoid { app, id, keep } => {
            let rs = store(target).await?;
            let ended = match keep {
                None => rs.killsoid(app, id).await?,
                // The library spares a session by its token, which an operator does not
                // hold: every other device is ended by its handle, one atomic kill each.
                Some(keep) => {
                    let mut ended = 0;
                    for session in rs.soid(app, id).await? {
                        let Some(handle) = session.handle else {
                            continue;
                        };
                        if &handle != keep && rs.kill_device(app, id, &handle).await? {
                            ended += 1;
                        }
                    }
                    ended
                }
            };
            emit(
                cli.json,
                json!({ "ended": ended }),
                format!("signed out {ended} device(s)\n"),
            )
        }
        Command::Killall { app, yes } => {
            if !yes && !confirm(app)? {
                return Err(AdminError::NotConfirmed);
            }
            let rs = store(target).await?;
            let ended = rs.killall(app).await?;
            emit(
                cli.json,
                json!({ "ended": ended }),
                format!("signed out {ended} session(s) of {app}\n"),
            )
        }
        Command::Layout => layout_command(cli).await,
    }
}

/// The library's store, for the commands that end sessions (so every index stays right).
async fn store(target: &Target) -> Result<RedisSessions> {
    Ok(RedisSessions::connect(target.store_options()).await?)
}

/// Seconds since the epoch: the clock the store's writers use (the client's).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Prints `value` as JSON, or `text`.
fn emit(json: bool, value: serde_json::Value, text: String) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{value}")?;
    } else {
        write!(out, "{text}")?;
    }
    out.flush()?;
    Ok(EXIT_OK)
}

/// Asks the operator to type the app's name.
fn confirm(app: &str) -> Result<bool> {
    eprint!("This signs out every session of {app}. Type the app's name to confirm: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == app)
}

async fn check_command(
    cli: &Cli,
    app: Option<String>,
    repair: bool,
    grace: i64,
    examples: usize,
    progress: bool,
) -> Result<i32> {
    let started = Instant::now();
    let deployment = deploy::resolve(&cli.target).await?;
    let now = now();
    let mut findings = Tallies::default();
    let mut changes = Tallies::default();
    let mut apps = std::collections::BTreeSet::new();
    let (mut sessions, mut index_entries, mut steps, mut found) = (0, 0, 0, 0);
    let mut masters = Vec::new();
    // Each master checks (and mends) the shards it holds, one after the other: the load
    // on each stays one small step at a time.
    for master in &deployment.masters {
        let mut con = master.con.clone();
        let scope = Scope {
            shards: master.shards.clone(),
            namespace_prefix: format!("{}:", cli.target.store.namespace),
            app: app.clone(),
            now,
            grace,
            progress: progress.then(|| master.address.clone()),
        };
        let outcome = check::run(&mut con, &scope).await?;
        for finding in &outcome.findings {
            findings.add(
                finding.kind.name(),
                finding.kind.describe(),
                finding.example(),
                examples,
            );
        }
        let listed: Vec<_> = outcome.findings.iter().cloned().collect();
        if repair && !listed.is_empty() {
            let made = repair::run(
                &mut con,
                &deployment.keys,
                &scope.shards,
                &listed,
                now,
                grace,
                examples,
            )
            .await?;
            changes.merge(made);
        }
        masters.push(json!({
            "address": master.address,
            "shards": master.shard_numbers.len(),
            "sessions": outcome.sessions,
            "findings": listed.len(),
        }));
        found += listed.len();
        sessions += outcome.sessions;
        index_entries += outcome.index_entries;
        steps += outcome.steps;
        apps.extend(outcome.apps);
    }
    let report = Report {
        namespace: cli.target.store.namespace.clone(),
        deployment: deployment.kind.to_owned(),
        masters,
        apps: apps.into_iter().collect(),
        sessions,
        index_entries,
        steps,
        consistent: found == 0,
        findings: findings.into_vec(),
        repairs: repair.then(|| changes.into_vec()),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    let text = check_text(&report);
    emit(
        cli.json,
        serde_json::to_value(&report).map_err(|e| AdminError::Reply(e.to_string()))?,
        text,
    )?;
    Ok(if report.consistent {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

/// The check's report as people read it.
fn check_text(report: &Report) -> String {
    let mut out = format!(
        "namespace {}: {} app(s), {} session(s), {} index entries, {} steps in {} ms\n",
        report.namespace,
        report.apps.len(),
        report.sessions,
        report.index_entries,
        report.steps,
        report.elapsed_ms
    );
    if report.consistent {
        out.push_str("consistent: no findings\n");
        return out;
    }
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|t| {
            vec![
                t.kind.clone(),
                t.count.to_string(),
                t.description.clone(),
                t.examples
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["FINDING", "COUNT", "MEANING", "EXAMPLE"],
        &rows,
    ));
    match &report.repairs {
        None => out.push_str("run with --repair to mend them\n"),
        Some(repairs) => {
            out.push_str("\nrepaired:\n");
            let rows: Vec<Vec<String>> = repairs
                .iter()
                .map(|t| vec![t.kind.clone(), t.count.to_string(), t.description.clone()])
                .collect();
            out.push_str(&table::render(&["CHANGE", "COUNT", "MEANING"], &rows));
        }
    }
    out
}

async fn stats_command(cli: &Cli, app: Option<&str>) -> Result<i32> {
    let deployment = deploy::resolve(&cli.target).await?;
    let namespace_prefix = format!("{}:", cli.target.store.namespace);
    let now = now();
    let mut totals: std::collections::BTreeMap<String, stats::AppStats> = Default::default();
    let mut by_master = Vec::new();
    let mut by_shard = Vec::new();
    for master in &deployment.masters {
        let mut con = master.con.clone();
        let apps = match app {
            Some(app) => [app.to_owned()].into(),
            None => stats::apps(&mut con, &master.shards, &namespace_prefix).await?,
        };
        let mut here = stats::AppStats::default();
        for (shard, number) in master.shards.iter().zip(&master.shard_numbers) {
            let mut in_shard = stats::AppStats::default();
            for app in &apps {
                let figures = stats::of_app(&mut con, shard, app, now).await?;
                in_shard.add(&figures);
                totals
                    .entry(app.clone())
                    .or_insert_with(|| stats::AppStats {
                        app: app.clone(),
                        ..Default::default()
                    })
                    .add(&figures);
            }
            by_shard.push(json!({
                "shard": number,
                "master": master.address,
                "sessions": in_shard.sessions,
                "users": in_shard.users,
            }));
            here.add(&in_shard);
        }
        by_master.push(json!({
            "address": master.address,
            "shards": master.shard_numbers.len(),
            "sessions": here.sessions,
            "users": here.users,
            "memory_bytes": here.memory_bytes,
        }));
    }
    let all: Vec<stats::AppStats> = totals.into_values().collect();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            let mut row = vec![s.app.clone(), s.sessions.to_string(), s.users.to_string()];
            row.extend(s.users_active.iter().map(u64::to_string));
            row.push(megabytes(s.memory_bytes));
            row
        })
        .collect();
    let mut text = table::render(
        &[
            "APP",
            "SESSIONS",
            "USERS",
            "ACTIVE 5M",
            "ACTIVE 1H",
            "ACTIVE 24H",
            "MEMORY",
        ],
        &rows,
    );
    if deployment.keys.is_sharded() {
        let text_of = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let rows: Vec<Vec<String>> = by_master
            .iter()
            .map(|m| {
                vec![
                    text_of(&m["address"]),
                    text_of(&m["shards"]),
                    text_of(&m["sessions"]),
                    text_of(&m["users"]),
                    megabytes(m["memory_bytes"].as_u64().unwrap_or(0)),
                ]
            })
            .collect();
        text.push('\n');
        text.push_str(&table::render(
            &["MASTER", "SHARDS", "SESSIONS", "USERS", "MEMORY"],
            &rows,
        ));
    }
    let mut value = json!({ "deployment": deployment.kind, "apps": all, "masters": by_master });
    if deployment.keys.is_sharded() {
        value["shards"] = json!(by_shard);
    }
    emit(cli.json, value, text)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

async fn user_command(cli: &Cli, app: &str, id: &str) -> Result<i32> {
    let rs = store(&cli.target).await?;
    let now = now();
    let devices: Vec<serde_json::Value> = rs
        .soid(app, id)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "handle": s.handle,
                "created": s.created_ms.map(|ms| table::utc((ms / 1000) as i64)),
                "last_active": table::utc(now - s.idle),
                "idle_s": s.idle,
                "ttl_s": s.ttl,
                "ip": s.ip,
                "user_agent": user_agent(&s),
                "no_resave": s.no_resave,
            })
        })
        .collect();
    let text = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            vec![
                text(d, "handle"),
                text(d, "created"),
                text(d, "last_active"),
                table::ago(d["idle_s"].as_i64().unwrap_or(0)),
                text(d, "ip"),
                printable(&text(d, "user_agent"), AGENT_WIDTH),
            ]
        })
        .collect();
    let mut out = format!("{} device(s) of {id} in {app}\n", devices.len());
    out.push_str(&table::render(
        &[
            "HANDLE",
            "CREATED (UTC)",
            "LAST ACTIVE (UTC)",
            "IDLE",
            "IP",
            "USER AGENT",
        ],
        &rows,
    ));
    emit(
        cli.json,
        json!({ "app": app, "id": id, "devices": devices }),
        out,
    )
}

/// The widest user agent the `user` table shows (the JSON has it whole).
const AGENT_WIDTH: usize = 60;

/// A device's user agent, when the app keeps one in the session's data: under `ua`,
/// `userAgent`, `user_agent` or `agent` (the names the console reads too).
fn user_agent(session: &redis_sessions::Session) -> Option<String> {
    ["ua", "userAgent", "user_agent", "agent"]
        .iter()
        .find_map(|key| session.get::<String>(key).ok().flatten())
}

/// Text a user chose (a user agent), made safe for an operator's terminal: control
/// characters — an escape sequence could rewrite the screen — show as `?`, and at most
/// `max` characters are kept (`…` marks a cut).
fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

async fn layout_command(cli: &Cli) -> Result<i32> {
    let deployment = deploy::resolve(&cli.target).await?;
    let keys = &deployment.keys;
    let mut con = deployment.con_for(&keys.record_key()).await?;
    let (kind, shards, version): (Option<String>, Option<u16>, Option<u32>) = redis::cmd("HMGET")
        .arg(keys.record_key())
        .arg("kind")
        .arg("shards")
        .arg("version")
        .query_async(&mut con)
        .await?;
    let text = match &kind {
        Some(kind) => format!(
            "namespace {}: {kind} layout, {} shard(s), version {}\n",
            cli.target.store.namespace,
            shards.unwrap_or(0),
            version.unwrap_or(0)
        ),
        None => format!(
            "namespace {}: no layout record (no Rust process has used it{})\n",
            cli.target.store.namespace,
            if keys.is_sharded() {
                ""
            } else {
                "; Node-compatible"
            }
        ),
    };
    emit(
        cli.json,
        json!({
            "namespace": cli.target.store.namespace,
            "deployment": deployment.kind,
            "record_key": keys.record_key(),
            "kind": kind,
            "shards": shards,
            "version": version,
        }),
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn user_text_is_made_printable() {
        assert_eq!(printable("Firefox on Linux", 60), "Firefox on Linux");
        assert_eq!(printable("a\u{1b}[2Jb\n\u{7}", 60), "a?[2Jb??");
        assert_eq!(printable("abcdef", 3), "abc…");
        assert_eq!(printable("", 3), "");
    }
}
