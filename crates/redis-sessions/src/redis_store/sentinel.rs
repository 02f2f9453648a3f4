//! Redis Sentinel: which server is the master now, asked of every sentinel at once (the
//! watcher that keeps each connection of a store on it is [`super::sentinel_watch`]).
//!
//! Why not the `redis` crate's `SentinelClient`: it asks the sentinels one after the
//! other, so an unreachable sentinel listed first costs its whole timeout on every
//! question (measured: writes back 4.1–4.7 s after a partition instead of 3.1 s), it is
//! one client behind a lock for every connection of the store, and it takes the first
//! answer even when that sentinel has not heard of the latest failover yet. Here every
//! sentinel is asked in parallel on a connection of its own, the answer of the latest
//! configuration (the highest `config-epoch`) wins, and a master is used only once it
//! answers `ROLE` as a master.

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, RedisError};
use redis::{RedisResult, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How long a question waits for the sentinels that have not answered yet once a
/// majority has: a lagging sentinel may still name the old master, one that answers a
/// moment later the new one; an unreachable sentinel costs no more than this.
const STRAGGLERS: Duration = Duration::from_millis(100);

/// How often a store starting under Sentinel starts a new question while none has found
/// a master that answers.
const STARTUP_ASK_EVERY: Duration = Duration::from_millis(300);

/// One sentinel and the connection kept to it.
pub(super) struct Node {
    pub(super) info: ConnectionInfo,
    con: Mutex<Option<MultiplexedConnection>>,
}

/// The sentinels of one master name, and how to reach the master they name.
pub(crate) struct Sentinels {
    pub(super) nodes: Vec<Node>,
    pub(super) name: String,
    /// The master's user, password, database and TLS; its address is replaced.
    master: ConnectionInfo,
    /// The longest one question (to the sentinels, or ROLE to the master) may take.
    pub(super) timeout: Duration,
    /// The highest `config-epoch` any sentinel answered so far.
    epoch: AtomicU64,
    /// The last `+switch-master` announcement: the new master, and the highest epoch seen
    /// when it arrived (answers with a higher one are newer than it).
    announced: Mutex<Option<(String, u16, u64)>>,
    /// Counts what makes an answer stale: announcements, and answers of a newer epoch.
    changes: AtomicU64,
}

/// What one sentinel says of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    host: String,
    port: u16,
    epoch: u64,
}

impl Sentinels {
    /// The sentinels at `addrs` (connection infos, with their password set) for the
    /// master `name`, reached with the settings of `master`.
    pub(crate) fn new(
        addrs: Vec<ConnectionInfo>,
        name: &str,
        master: ConnectionInfo,
        timeout: Duration,
    ) -> Self {
        Sentinels {
            nodes: addrs
                .into_iter()
                .map(|info| Node {
                    info,
                    con: Mutex::new(None),
                })
                .collect(),
            name: name.to_string(),
            master,
            timeout,
            epoch: AtomicU64::new(0),
            announced: Mutex::new(None),
            changes: AtomicU64::new(0),
        }
    }

    /// A client of the master, once the sentinels name one that answers `ROLE` as a
    /// master; else an error that says what the sentinels answered.
    pub(crate) async fn master(&self) -> RedisResult<Client> {
        let (host, port) = self.named().await?;
        let changes = self.changes.load(Ordering::Acquire);
        let client = self.client_of(host.clone(), port)?;
        let role = within(self.timeout, async {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout));
            let mut con = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("ROLE").query_async::<Value>(&mut con).await
        })
        .await?;
        // A stopped server's kernel accepts the connection and the ROLE waits in it: a
        // master paused past its replacement answers "master" when it resumes. Named
        // before a switch that happened meanwhile, it is not the master any more.
        if self.changes.load(Ordering::Acquire) != changes {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "the sentinels named another master while this one was checked",
                format!("{host}:{port}"),
            )));
        }
        match role {
            Value::Array(items) if items.first().is_some_and(is_master) => Ok(client),
            _ => Err(RedisError::from((
                redis::ErrorKind::Io,
                "the server the sentinels name does not answer ROLE as a master",
                format!("{host}:{port}"),
            ))),
        }
    }

    /// `host:port` of the master the sentinels name now (not checked with ROLE), or None
    /// when none answers.
    pub(crate) async fn named_addr(&self) -> Option<String> {
        let (host, port) = self.named().await.ok()?;
        Some(ConnectionAddr::Tcp(host, port).to_string())
    }

    /// The master the sentinels name: the answer of the latest configuration, or the
    /// last announcement when it is newer than every answer.
    async fn named(&self) -> RedisResult<(String, u16)> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("MASTER").arg(&self.name);
        let (answers, errors) = self.ask_all::<HashMap<String, String>>(&cmd).await;
        let best = answers
            .iter()
            .filter_map(named)
            .max_by_key(|n| n.epoch)
            .ok_or_else(|| no_master(&self.name, &errors))?;
        let before = self.epoch.fetch_max(best.epoch, Ordering::AcqRel);
        if best.epoch > before {
            self.changes.fetch_add(1, Ordering::AcqRel);
        }
        let seen = before.max(best.epoch);
        // An announcement made after every answer's configuration wins over them: the
        // sentinels that answered have not heard of it yet.
        Ok(match &*lock(&self.announced) {
            Some((host, port, at)) if *at >= seen && (host, *port) != (&best.host, best.port) => {
                (host.clone(), *port)
            }
            _ => (best.host, best.port),
        })
    }

    /// Asks until the sentinels name a master that answers as one, at most `limit`; the
    /// last error after that. A new question starts every [`STARTUP_ASK_EVERY`] without
    /// waiting for the earlier ones: during a failover the master named first does not
    /// answer, and its ROLE would hold a lone question for its whole timeout.
    pub(crate) async fn wait_for_master(&self, limit: Duration) -> RedisResult<()> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut running = FuturesUnordered::new();
        let mut next = tokio::time::Instant::now();
        let mut last = None;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(last.unwrap_or_else(|| no_master(&self.name, &[])));
            }
            if now >= next {
                running.push(self.master());
                next = now + STARTUP_ASK_EVERY;
            }
            match tokio::time::timeout_at(next.min(deadline), running.next()).await {
                Ok(Some(Ok(_))) => return Ok(()),
                Ok(Some(Err(err))) => {
                    tracing::info!(%err, "waiting for the sentinels to name a master");
                    last = Some(err);
                }
                Ok(None) => tokio::time::sleep_until(next.min(deadline)).await,
                Err(_) => {}
            }
        }
    }

    /// Records a `+switch-master` announcement of `host:port`.
    pub(crate) fn announce(&self, host: String, port: u16) {
        let epoch = self.epoch.load(Ordering::Acquire);
        *lock(&self.announced) = Some((host, port, epoch));
        self.changes.fetch_add(1, Ordering::AcqRel);
    }

    /// How many replicas of the master the sentinels could promote (those they list
    /// with a priority above 0, up or not: a replica down now may be back and promoted
    /// later), the most any answering sentinel lists; None when none answers.
    pub(crate) async fn promotable_replicas(&self) -> Option<u32> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("REPLICAS").arg(&self.name);
        let (answers, _) = self.ask_all::<Vec<HashMap<String, String>>>(&cmd).await;
        answers
            .iter()
            .map(|replicas| replicas.iter().filter(|r| promotable(r)).count() as u32)
            .max()
    }

    /// `cmd` asked of every sentinel in parallel: the answers, once a majority answered
    /// (plus [`STRAGGLERS`] for the others) or every sentinel did, or the time is up;
    /// and the errors of those that failed.
    async fn ask_all<T: redis::FromRedisValue + Send + 'static>(
        &self,
        cmd: &redis::Cmd,
    ) -> (Vec<T>, Vec<String>) {
        let quorum = self.nodes.len() / 2 + 1;
        let mut pending: FuturesUnordered<_> = self
            .nodes
            .iter()
            .map(|node| node.ask::<T>(cmd, self.timeout))
            .collect();
        let mut deadline = tokio::time::Instant::now() + self.timeout;
        let (mut answers, mut errors) = (Vec::new(), Vec::new());
        loop {
            match tokio::time::timeout_at(deadline, pending.next()).await {
                Ok(Some(Ok(answer))) => {
                    answers.push(answer);
                    if answers.len() == quorum {
                        deadline = deadline.min(tokio::time::Instant::now() + STRAGGLERS);
                    }
                }
                Ok(Some(Err(err))) => errors.push(err.to_string()),
                Ok(None) | Err(_) => break,
            }
        }
        (answers, errors)
    }

    /// A client of `host:port` with the master's settings.
    fn client_of(&self, host: String, port: u16) -> RedisResult<Client> {
        let mut addr = self.master.addr().clone();
        match &mut addr {
            ConnectionAddr::Tcp(h, p)
            | ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => {
                *h = host;
                *p = port;
            }
            _ => addr = ConnectionAddr::Tcp(host, port),
        }
        Client::open(self.master.clone().set_addr(addr))
    }
}

impl Node {
    /// `cmd` on this sentinel's connection (opened when there is none), within `timeout`;
    /// a failed connection is dropped so the next question opens a fresh one.
    async fn ask<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> RedisResult<T> {
        let kept = lock(&self.con).clone();
        let mut con = match kept {
            Some(con) => con,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let client = Client::open(self.info.clone())?;
                let con = within(
                    timeout,
                    client.get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                *lock(&self.con) = Some(con.clone());
                con
            }
        };
        let answer = within(timeout, cmd.query_async::<T>(&mut con)).await;
        if answer
            .as_ref()
            .is_err_and(|e| e.is_io_error() || e.is_timeout() || e.is_unrecoverable_error())
        {
            *lock(&self.con) = None;
        }
        answer
    }
}

/// The address and epoch of a `SENTINEL MASTER` answer.
fn named(fields: &HashMap<String, String>) -> Option<Named> {
    Some(Named {
        host: fields.get("ip")?.clone(),
        port: fields.get("port")?.parse().ok()?,
        epoch: fields
            .get("config-epoch")
            .and_then(|e| e.parse().ok())
            .unwrap_or(0),
    })
}

/// A replica of a `SENTINEL REPLICAS` answer that Sentinel may promote: priority above 0.
fn promotable(fields: &HashMap<String, String>) -> bool {
    let priority = fields
        .get("slave-priority")
        .or_else(|| fields.get("replica-priority"));
    priority.is_none_or(|p| p != "0")
}

fn is_master(role: &Value) -> bool {
    match role {
        Value::BulkString(bytes) => bytes == b"master",
        Value::SimpleString(text) => text == "master",
        _ => false,
    }
}

/// The error of a question no sentinel answered with a master.
fn no_master(name: &str, errors: &[String]) -> RedisError {
    let detail = if errors.is_empty() {
        "no sentinel answered in time".to_string()
    } else {
        errors.join("; ")
    };
    RedisError::from((
        redis::ErrorKind::Io,
        "no sentinel names a master",
        format!("{name:?}: {detail}"),
    ))
}

/// `call`'s result, or a timeout error when it takes longer than `limit`.
pub(super) async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        ))),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_with_priority_zero_are_not_promotable() {
        let replica = |p: &str| HashMap::from([("slave-priority".to_string(), p.to_string())]);
        assert!(promotable(&replica("100")));
        assert!(!promotable(&replica("0")));
        assert!(promotable(&HashMap::new()));
    }

    #[test]
    fn the_master_answer_names_address_and_epoch() {
        let fields = HashMap::from([
            ("ip".to_string(), "10.0.0.2".to_string()),
            ("port".to_string(), "6380".to_string()),
            ("config-epoch".to_string(), "7".to_string()),
        ]);
        assert_eq!(
            named(&fields),
            Some(Named {
                host: "10.0.0.2".into(),
                port: 6380,
                epoch: 7
            })
        );
    }
}
