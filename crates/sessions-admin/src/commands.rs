//! Each subcommand: what it asks Redis or the library, and what it prints (a table for
//! people, JSON with `--json`). Returns the exit code.

use crate::check::{self, Scope};
use crate::config::{Cli, Command, Target};
use crate::error::{AdminError, Result};
use crate::exit::{EXIT_FINDINGS, EXIT_OK};
use crate::findings::{Report, Tallies};
use crate::{repair, stats, table};
use redis::aio::MultiplexedConnection;
use redis_sessions::keys::NamespaceKeys;
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
        } => check_command(cli, app.clone(), *repair, *grace, *examples).await,
        Command::Stats { app } => stats_command(cli, app.as_deref()).await,
        Command::User { app, id } => user_command(cli, app, id).await,
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

/// A raw connection, for the check's and the stats' bounded reads and scripts.
async fn raw(target: &Target) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(target.url())?;
    Ok(client.get_multiplexed_async_connection().await?)
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
) -> Result<i32> {
    let started = Instant::now();
    let keys = NamespaceKeys::node(&cli.target.namespace);
    let Some(shard) = keys.shards().into_iter().next() else {
        return Err(AdminError::Reply("a layout without shards".into()));
    };
    let mut con = raw(&cli.target).await?;
    let scope = Scope {
        shard: shard.clone(),
        app,
        now: now(),
        grace,
    };
    let outcome = check::run(&mut con, &scope).await?;
    let mut findings = Tallies::default();
    for finding in &outcome.findings {
        findings.add(
            &serde_json::to_value(finding.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            finding.kind.describe(),
            finding.example(),
            examples,
        );
    }
    let listed: Vec<_> = outcome.findings.iter().cloned().collect();
    let repairs = if repair {
        let made =
            repair::run(&mut con, &keys, &shard, &listed, scope.now, grace, examples).await?;
        Some(made.into_vec())
    } else {
        None
    };
    let report = Report {
        namespace: cli.target.namespace.clone(),
        apps: outcome.apps.into_iter().collect(),
        sessions: outcome.sessions,
        index_entries: outcome.index_entries,
        steps: outcome.steps,
        consistent: listed.is_empty(),
        findings: findings.into_vec(),
        repairs,
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
    let keys = NamespaceKeys::node(&cli.target.namespace);
    let Some(shard) = keys.shards().into_iter().next() else {
        return Err(AdminError::Reply("a layout without shards".into()));
    };
    let mut con = raw(&cli.target).await?;
    let apps = match app {
        Some(app) => vec![app.to_owned()],
        None => stats::apps(&mut con, &shard).await?,
    };
    let now = now();
    let mut all = Vec::new();
    for app in &apps {
        all.push(stats::of_app(&mut con, &shard, app, now).await?);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            let mut row = vec![s.app.clone(), s.sessions.to_string(), s.users.to_string()];
            row.extend(s.users_active.iter().map(u64::to_string));
            row.push(format!("{:.1} MB", s.memory_bytes as f64 / 1e6));
            row
        })
        .collect();
    let text = table::render(
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
    emit(cli.json, json!({ "apps": all }), text)
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
            ]
        })
        .collect();
    let mut out = format!("{} device(s) of {id} in {app}\n", devices.len());
    out.push_str(&table::render(
        &["HANDLE", "CREATED (UTC)", "LAST ACTIVE (UTC)", "IDLE", "IP"],
        &rows,
    ));
    emit(
        cli.json,
        json!({ "app": app, "id": id, "devices": devices }),
        out,
    )
}

async fn layout_command(cli: &Cli) -> Result<i32> {
    let keys = NamespaceKeys::node(&cli.target.namespace);
    let mut con = raw(&cli.target).await?;
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
            cli.target.namespace,
            shards.unwrap_or(0),
            version.unwrap_or(0)
        ),
        None => format!(
            "namespace {}: no layout record (no Rust process has used it; Node-compatible)\n",
            cli.target.namespace
        ),
    };
    emit(
        cli.json,
        json!({ "namespace": cli.target.namespace, "record_key": keys.record_key(), "kind": kind, "shards": shards, "version": version }),
        text,
    )
}
