//! Where a single-server store connects: one fixed Redis server, or whichever server the
//! Redis Sentinels name as master of a name now. Every connection of the store (calls,
//! durable writes, the cache's subscription) asks its target for a client when it
//! (re)connects, so after a failover each of them reaches the promoted master.

use crate::options::Options;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, RedisResult};
use std::sync::Arc;

/// A fixed server, or the master that Sentinel names.
#[derive(Clone)]
pub(crate) enum Target {
    /// The server of `url`, or `host` and `port`.
    Server(Box<Client>),
    /// The master of a name, asked of the sentinels on every (re)connect. One sentinel
    /// client, locked, for every connection: it keeps its connections to the sentinels.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Target {
    /// Where a single-server store of `options` connects: the master the sentinels name,
    /// when sentinels are given, else the server of the URL, or of host and port.
    pub fn of(options: &Options) -> RedisResult<Self> {
        if options.sentinels.is_empty() {
            return Ok(Target::Server(Box::new(match &options.url {
                Some(url) => Client::open(url.as_str())?,
                None => Client::open((options.host.as_str(), options.port))?,
            })));
        }
        let auth = match &options.url {
            Some(url) => Some(redis::IntoConnectionInfo::into_connection_info(
                url.as_str(),
            )?),
            None => None,
        };
        Target::sentinel(
            &options.sentinels,
            &options.sentinel_master,
            auth.as_ref(),
            options.sentinel_password.as_deref(),
        )
    }

    /// The master of `master` as the `sentinels` (`host:port`) name it; the master is
    /// reached with the user, password, database and TLS of `master_auth` (a URL whose
    /// host is not used), the sentinels with `sentinel_password`.
    pub fn sentinel(
        sentinels: &[String],
        master: &str,
        master_auth: Option<&redis::ConnectionInfo>,
        sentinel_password: Option<&str>,
    ) -> RedisResult<Self> {
        let addrs = sentinels
            .iter()
            .map(|s| sentinel_addr(s))
            .collect::<RedisResult<Vec<_>>>()?;
        let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?;
        if let Some(info) = master_auth {
            let redis = info.redis_settings();
            if let Some(user) = redis.username() {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = redis.password() {
                builder = builder.set_client_to_redis_password(password);
            }
            builder = builder.set_client_to_redis_db(redis.db());
            if let ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
                builder = builder.set_client_to_redis_tls_mode(if *insecure {
                    redis::TlsMode::Insecure
                } else {
                    redis::TlsMode::Secure
                });
            }
        }
        if let Some(password) = sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        Ok(Target::Sentinel(Arc::new(tokio::sync::Mutex::new(
            builder.build()?,
        ))))
    }

    /// A client of the server to use now: for Sentinel, the master the sentinels name
    /// (checked with ROLE to be a master), or an error while none is.
    pub async fn client(&self) -> RedisResult<Client> {
        match self {
            Target::Server(client) => Ok(Client::clone(client)),
            Target::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }

    /// True when the server may change under the store (Sentinel): errors that mean "not
    /// the master any more" then make the store ask again.
    pub fn follows(&self) -> bool {
        matches!(self, Target::Sentinel(_))
    }
}

/// Listens to the sentinels' `+switch-master` announcements and makes each connection
/// ask who the master is at once: connections that are idle during a failover (the
/// durable-write pool, a quiet process) then move before their next call, not after
/// failing it. Calls that fail find the new master by themselves too, so a lost
/// announcement costs one failed call. Ends when its handle is dropped.
pub(crate) fn watch_switches(target: &Target, connections: Vec<super::Connection>) -> AbortOnDrop {
    let Target::Sentinel(sentinel) = target else {
        return AbortOnDrop(None);
    };
    let sentinel = sentinel.clone();
    AbortOnDrop(Some(tokio::spawn(async move {
        use futures_util::StreamExt;
        loop {
            let client = sentinel.lock().await.async_get_sentinel_client().await;
            let subscribed = async {
                let mut pubsub = client?.get_async_pubsub().await?;
                pubsub.subscribe("+switch-master").await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(std::time::Duration::from_secs(2), subscribed).await {
                Ok(Ok(pubsub)) => {
                    let mut messages = pubsub.into_on_message();
                    while messages.next().await.is_some() {
                        tracing::info!("a sentinel announced a new master");
                        for connection in &connections {
                            connection.follow_now();
                        }
                    }
                }
                Ok(Err(err)) => tracing::debug!(%err, "no sentinel to listen to"),
                Err(_) => tracing::debug!("no sentinel to listen to in time"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })))
}

/// A background task ended when the last store clone holding it is dropped.
pub(crate) struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// `host:port` (or `redis://host:port`) of a sentinel.
fn sentinel_addr(text: &str) -> RedisResult<ConnectionAddr> {
    let text = text.trim();
    if text.contains("://") {
        return Ok(redis::IntoConnectionInfo::into_connection_info(text)?
            .addr()
            .clone());
    }
    let invalid = || {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "a sentinel is host:port",
            text.to_string(),
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok(ConnectionAddr::Tcp(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use super::sentinel_addr;
    use redis::ConnectionAddr;

    #[test]
    fn sentinel_addresses_parse() {
        assert_eq!(
            sentinel_addr("10.0.0.1:26379").ok(),
            Some(ConnectionAddr::Tcp("10.0.0.1".into(), 26379))
        );
        assert_eq!(
            sentinel_addr("[::1]:26379").ok(),
            Some(ConnectionAddr::Tcp("::1".into(), 26379))
        );
        assert_eq!(
            sentinel_addr("redis://h:1").ok(),
            Some(ConnectionAddr::Tcp("h".into(), 1))
        );
        for bad in ["", "h", "h:x", ":1", "h:70000"] {
            assert!(sentinel_addr(bad).is_err(), "{bad}");
        }
    }
}
