//! Black-box helpers: the real `rest-sessions` binary on a free port, against the test's
//! own `redis-server` (or the embedded store), and an HTTP client.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
pub use test_support::{free_port, RedisServer};

/// Every variable the server reads: cleared so a developer's environment cannot leak in.
const VARS: [&str; 53] = [
    "RS_CONSOLE",
    "RS_CONSOLE_APPS",
    "RS_WORKERS",
    "RS_REDIS_CLUSTER",
    "RS_SHARDS",
    "RS_PORT",
    "RS_HOST",
    "RS_STORE",
    "RS_REDISHOST",
    "RS_REDISPORT",
    "RS_REDISURL",
    "RS_NAMESPACE",
    "RS_WIPE",
    "RS_CACHETIME",
    "RS_CACHEMAX",
    "RS_BODY_LIMIT",
    "RS_AUTH_TOKEN",
    "RS_LOG_FORMAT",
    "RS_HEADER_TIMEOUT",
    "RS_IDLE_TIMEOUT",
    "RS_BODY_TIMEOUT",
    "RS_MAX_CONNECTIONS",
    "RS_MEMORY_BUDGET",
    "RS_BEHIND_PROXY",
    "RS_MAX_CONNECTIONS_PER_ADDRESS",
    "RS_MAX_UNFINISHED_PER_ADDRESS",
    "RS_HEALTH_DETAIL",
    "RS_MIN_REPLICAS",
    "RS_MIN_REPLICAS_TIMEOUT_MS",
    "RS_SENTINELS",
    "RS_SENTINEL_MASTER",
    "RS_SENTINEL_PASSWORD",
    "RS_MIGRATE_CUTOVER",
    "RS_MIGRATE_FROM_URL",
    "RS_MIGRATE_FROM_CLUSTER",
    "RS_MIGRATE_FROM_SENTINELS",
    "RS_MIGRATE_FROM_SENTINEL_MASTER",
    "RS_MIGRATE_FROM_SENTINEL_PASSWORD",
    "RS_MIGRATE_FROM_NAMESPACE",
    "RS_MIGRATE_FROM_SHARDS",
    "RS_READ_FROM_REPLICAS",
    "RS_WEBHOOK_URL",
    "RS_WEBHOOK_URLS",
    "RS_WEBHOOK_APPS",
    "RS_WEBHOOK_SECRET",
    "RS_WEBHOOK_BATCH",
    "RS_WEBHOOK_TIMEOUT",
    "RS_WEBHOOK_BACKOFF_MS",
    "RS_WEBHOOK_BACKOFF_MAX_MS",
    "RS_WEBHOOK_CLAIM_AFTER",
    "RS_WEBHOOK_CONSUMER",
    "RS_WEBHOOK_MAX_APPS",
    "RUST_LOG",
];

/// xorshift64*: a seeded generator, so a failing fuzz case can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A 64-character token that is well-formed but belongs to no session.
pub const UNKNOWN_TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A running server process, killed when dropped.
pub struct Server {
    child: Child,
    port: u16,
}

/// The binary's command with a clean environment, a fresh port and no sweeper.
pub fn command(port: u16) -> Command {
    clean(Command::new(env!("CARGO_BIN_EXE_rest-sessions")), port)
}

/// The binary's command run under `ulimit -n open_files` (soft and hard), as on a host
/// that keeps the common default of 1024.
pub fn command_with_open_files(port: u16, open_files: u32) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_rest-sessions"));
    clean(cmd, port)
}

fn clean(mut cmd: Command, port: u16) -> Command {
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env("RS_PORT", port.to_string())
        .env("RS_WIPE", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

impl Server {
    /// Starts the server against `redis` with extra environment variables.
    pub fn with_redis(redis: &RedisServer, env: &[(&str, &str)]) -> Server {
        let port = redis.port().to_string();
        let mut all = vec![("RS_REDISPORT", port.as_str())];
        all.extend_from_slice(env);
        Server::start(&all, &[])
    }

    /// Starts the server with the embedded store.
    pub fn in_memory(env: &[(&str, &str)]) -> Server {
        Server::start(env, &["--store", "memory"])
    }

    /// Starts the server with these variables and flags, and waits until /ping answers.
    pub fn start(env: &[(&str, &str)], args: &[&str]) -> Server {
        let port = free_port();
        let mut cmd = command(port);
        cmd.envs(env.iter().copied()).args(args);
        Server::spawn(cmd, port)
    }

    /// Starts `cmd` (from [`command`] or [`command_with_open_files`] for `port`) and waits
    /// until /ping answers.
    pub fn spawn(mut cmd: Command, port: u16) -> Server {
        let child = cmd.spawn().expect("spawn rest-sessions");
        let mut server = Server { child, port };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("rest-sessions exited at start: {status}");
            }
            if raw_request(
                self.port,
                b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .is_some_and(|reply| reply.ends_with("PONG"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("rest-sessions did not answer /ping");
    }

    /// `http://127.0.0.1:{port}`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory in bytes (Linux), 0 when it cannot be read.
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends raw bytes and returns the whole reply as text (None when the connection failed).
pub fn raw_request(port: u16, request: &[u8]) -> Option<String> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    Some(String::from_utf8_lossy(&reply).into_owned())
}

/// The sum of the samples of metric `name` whose labels contain every one of `labels`
/// (`error="redisUnavailable"`), in the Prometheus text of `/metrics`.
pub fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An HTTP client with a deadline, so a hanging server fails the test instead of blocking it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Status and JSON body of a reply (Null when the body is not JSON).
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Creates a session and returns its token.
pub async fn create(http: &reqwest::Client, server: &Server, app: &str, id: &str) -> String {
    let (status, body) = json(
        http.put(server.url(&format!("/{app}/create/{id}?ip=127.0.0.1&ttl=3600")))
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert_eq!(status, 200, "create {app}/{id}: {body}");
    let token = body["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 64);
    token
}
