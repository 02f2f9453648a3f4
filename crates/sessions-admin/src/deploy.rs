//! Where the namespace's keys live: one Redis, the master a set of Sentinels names, or the
//! masters of a Redis Cluster, each with the shards of the sharded layout it owns. The
//! check, repair and stats run shard by shard on the master that holds the shard (every
//! key of a shard shares its hash tag, so one master holds all of them), and each master's
//! keyspace is walked once, whatever the number of shards it owns.

use crate::config::Target;
use crate::error::{AdminError, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use redis_sessions::keys::{NamespaceKeys, ShardKeys};
use std::time::Duration;

/// One server holding shards of the namespace.
pub struct Master {
    /// `host:port`, for the report (never a password).
    pub address: String,
    /// A connection to it.
    pub con: MultiplexedConnection,
    /// The shards it holds.
    pub shards: Vec<ShardKeys>,
    /// Their numbers in the layout (0 for the Node layout's one shard).
    pub shard_numbers: Vec<usize>,
}

/// The deployment the settings name.
pub struct Deployment {
    /// `single`, `sentinel` or `cluster`.
    pub kind: &'static str,
    /// The namespace's key names.
    pub keys: NamespaceKeys,
    /// The servers holding its shards (one unless a cluster).
    pub masters: Vec<Master>,
}

impl Deployment {
    /// The connection to the server that holds `key` (the layout record, a shard's key).
    pub async fn con_for(&self, key: &str) -> Result<MultiplexedConnection> {
        if let [only] = self.masters.as_slice() {
            return Ok(only.con.clone());
        }
        // Any master answers which master holds the key's slot (a MOVED reply names it).
        let Some(first) = self.masters.first() else {
            return Err(AdminError::Reply("a cluster without masters".into()));
        };
        let mut con = first.con.clone();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut con)
            .await?;
        let slots = cluster_slots(&mut con).await?;
        let owner = owner_of(&slots, slot)?;
        self.masters
            .iter()
            .find(|m| m.address == owner)
            .map(|m| m.con.clone())
            .ok_or_else(|| AdminError::Reply(format!("no connection to the master {owner}")))
    }
}

/// Connects to the deployment `target` names.
pub async fn resolve(target: &Target) -> Result<Deployment> {
    if !target.store.redis_cluster.is_empty() {
        return cluster(target).await;
    }
    let keys = NamespaceKeys::node(&target.store.namespace);
    let (kind, info) = if target.store.sentinels.is_empty() {
        ("single", target.url().into_connection_info()?)
    } else {
        ("sentinel", sentinel_master(target).await?)
    };
    let address = address_of(&info);
    let con = connect(info).await?;
    Ok(Deployment {
        kind,
        masters: vec![Master {
            address,
            con,
            shards: keys.shards(),
            shard_numbers: vec![0],
        }],
        keys,
    })
}

/// How long one reply may take. redis-rs gives up after 500 ms by default, which a busy
/// server (or a slow link) exceeds now and then without anything being wrong; every step
/// of this tool is small, so a reply later than this means trouble, reported as exit 2.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the server `info` names.
async fn connect(info: impl IntoConnectionInfo) -> Result<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
    Ok(redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}

fn address_of(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => format!("{other}"),
    }
}

/// `base` (a URL: password, database) pointed at `host:port` instead.
fn at(base: &ConnectionInfo, host: &str, port: u16) -> Result<ConnectionInfo> {
    let info = ConnectionAddr::Tcp(host.to_owned(), port).into_connection_info()?;
    Ok(info.set_redis_settings(base.redis_settings().clone()))
}

/// The master the sentinels name, asked of each sentinel in turn until one answers with
/// a server that says it is a master (a sentinel may lag behind a failover).
async fn sentinel_master(target: &Target) -> Result<ConnectionInfo> {
    let base = match &target.store.redis_url {
        Some(url) => url.as_str().into_connection_info()?,
        None => "redis://127.0.0.1:6379/".into_connection_info()?,
    };
    let mut last = String::from("no sentinel given");
    for sentinel in &target.store.sentinels {
        let Some((host, port)) = sentinel
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
        else {
            return Err(AdminError::Reply(format!(
                "a sentinel is host:port, not {sentinel:?}"
            )));
        };
        let mut info = ConnectionAddr::Tcp(host, port).into_connection_info()?;
        if let Some(password) = &target.store.sentinel_password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let asked = async {
            let mut con = connect(info).await?;
            let named: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&target.store.sentinel_master)
                .query_async(&mut con)
                .await?;
            let Some((host, port)) = named else {
                return Ok::<_, AdminError>(None);
            };
            let master = at(&base, &host, port)?;
            let mut con = connect(master.clone()).await?;
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut con).await?;
            let is_master = matches!(role.first(), Some(Value::BulkString(b)) if b == b"master");
            Ok(is_master.then_some(master))
        };
        match asked.await {
            Ok(Some(master)) => return Ok(master),
            Ok(None) => {
                last = format!(
                    "{sentinel} names no master {:?}",
                    target.store.sentinel_master
                )
            }
            Err(e) => last = format!("{sentinel}: {e}"),
        }
    }
    Err(AdminError::Reply(format!(
        "no sentinel named a master: {last}"
    )))
}

/// A slot range and the `host:port` of its master.
type SlotRange = (u16, u16, String, u16);

/// `CLUSTER SLOTS`: each range with its master's address.
async fn cluster_slots(con: &mut MultiplexedConnection) -> Result<Vec<SlotRange>> {
    let reply: Vec<Vec<Value>> = redis::cmd("CLUSTER").arg("SLOTS").query_async(con).await?;
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let mut ranges = Vec::new();
    for entry in reply {
        let (Some(start), Some(end), Some(Value::Array(master))) =
            (entry.first(), entry.get(1), entry.get(2))
        else {
            return Err(AdminError::Reply(
                "CLUSTER SLOTS: a range without a master".into(),
            ));
        };
        let host = match master.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        match (int(start), int(end), master.get(1).and_then(int)) {
            (Some(start), Some(end), Some(port)) => ranges.push((start, end, host, port)),
            _ => return Err(AdminError::Reply("CLUSTER SLOTS: a malformed range".into())),
        }
    }
    Ok(ranges)
}

/// The `host:port` of the master of `slot`.
fn owner_of(slots: &[SlotRange], slot: u16) -> Result<String> {
    slots
        .iter()
        .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
        .map(|(_, _, host, port)| format!("{host}:{port}"))
        .ok_or_else(|| AdminError::Reply(format!("no master owns slot {slot}")))
}

/// The masters of the cluster, each with the shards it owns, from the first seed that
/// answers.
async fn cluster(target: &Target) -> Result<Deployment> {
    let keys = redis_sessions::keys::NamespaceKeys::of(&target.store_options());
    let shards = keys.shards();
    let mut last = String::from("no seed given");
    for seed in &target.store.redis_cluster {
        let found = async {
            let base = seed.as_str().into_connection_info()?;
            let ConnectionAddr::Tcp(seed_host, _) = base.addr().clone() else {
                return Err(AdminError::Reply(
                    "a cluster seed is redis://host:port".into(),
                ));
            };
            let mut con = connect(base.clone()).await?;
            let slots = cluster_slots(&mut con).await?;
            let mut pipe = redis::pipe();
            for shard in &shards {
                pipe.cmd("CLUSTER").arg("KEYSLOT").arg(shard.prefix());
            }
            let shard_slots: Vec<u16> = pipe.query_async(&mut con).await?;
            let mut masters: Vec<Master> = Vec::new();
            for (number, (shard, slot)) in shards.iter().zip(shard_slots).enumerate() {
                let owner = owner_of(&slots, slot)?;
                if let Some(master) = masters.iter_mut().find(|m| m.address == owner) {
                    master.shards.push(shard.clone());
                    master.shard_numbers.push(number);
                    continue;
                }
                // An empty host in CLUSTER SLOTS means the node we asked.
                let (host, port) = owner.rsplit_once(':').unwrap_or((&owner, ""));
                let host = if host.is_empty() {
                    seed_host.as_str()
                } else {
                    host
                };
                let port = port.parse::<u16>().map_err(|_| {
                    AdminError::Reply(format!("CLUSTER SLOTS: a bad address {owner}"))
                })?;
                let con = connect(at(&base, host, port)?).await?;
                masters.push(Master {
                    address: owner.clone(),
                    con,
                    shards: vec![shard.clone()],
                    shard_numbers: vec![number],
                });
            }
            Ok(masters)
        };
        match found.await {
            Ok(masters) => {
                return Ok(Deployment {
                    kind: "cluster",
                    keys,
                    masters,
                })
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(AdminError::Reply(format!(
        "no cluster seed answered: {last}"
    )))
}
