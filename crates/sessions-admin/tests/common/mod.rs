//! Running the CLI as a process, as operators and scripts do: exit code, stdout, stderr.

#![allow(dead_code)]

use redis_sessions::{Options, RedisSessions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// What one run of the CLI gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout as JSON (the run had `--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.stdout, self.stderr))
    }
}

/// Runs `sessions-admin args` with only the settings `env` names (the RS_* variables of
/// the test process are removed), feeding `stdin` to it.
pub fn run(env: &[(&str, String)], args: &[&str], stdin: &str) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessions-admin"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("RS_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("run sessions-admin");
    let mut input = child.stdin.take().expect("stdin");
    // A closed pipe is fine: a command that does not read stdin may exit first.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("wait for sessions-admin");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `RS_REDISURL` and `RS_NAMESPACE` for one Redis.
pub fn single(url: String, namespace: &str) -> Vec<(&'static str, String)> {
    vec![("RS_REDISURL", url), ("RS_NAMESPACE", namespace.to_owned())]
}

/// Count of each kind of finding (or change) in a report's list.
pub fn counts(list: &Value) -> BTreeMap<String, u64> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|t| {
                    (
                        t["kind"].as_str().expect("kind").to_owned(),
                        t["count"].as_u64().expect("count"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `pairs` as a map, for comparing counts.
pub fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The library's store on the one Redis at `url`, in the namespace the tests check (no
/// wipe guard), and a plain connection to break the namespace by hand.
pub async fn store_and_raw(url: &str, namespace: &str) -> (RedisSessions, redis::Connection) {
    let rs = RedisSessions::connect(
        Options::default()
            .url(url)
            .namespace(namespace)
            .wipe(std::time::Duration::ZERO),
    )
    .await
    .expect("connect");
    let con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("raw connection");
    (rs, con)
}
