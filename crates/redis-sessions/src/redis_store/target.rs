//! Where a single-server store connects: one fixed Redis server, or whichever server the
//! Redis Sentinels name as master of a name now. Every connection of the store (calls,
//! durable writes, the cache's subscription) asks its target for a client when it
//! (re)connects, so after a failover each of them reaches the promoted master.

use super::sentinel::Sentinels;
use crate::options::Options;
use redis::{Client, ConnectionAddr, IntoConnectionInfo, RedisResult};
use std::sync::Arc;
use std::time::Duration;

/// A fixed server, or the master that Sentinel names.
#[derive(Clone)]
pub(crate) enum Target {
    /// The server of `url`, or `host` and `port`.
    Server(Box<Client>),
    /// The master of a name, asked of the sentinels on every (re)connect; shared by every
    /// connection of the store (each sentinel's connection is kept).
    Sentinel(Arc<Sentinels>),
}

impl Target {
    /// Where a single-server store of `options` connects: the master the sentinels name,
    /// when sentinels are given, else the server of the URL, or of host and port.
    pub(crate) fn of(options: &Options) -> RedisResult<Self> {
        if options.sentinels.is_empty() {
            return Ok(Target::Server(Box::new(match &options.url {
                Some(url) => Client::open(url.as_str())?,
                None => Client::open((options.host.as_str(), options.port))?,
            })));
        }
        let auth = match &options.url {
            Some(url) => Some(url.as_str().into_connection_info()?),
            None => None,
        };
        Target::sentinel(
            &options.sentinels,
            &options.sentinel_master,
            auth,
            options.sentinel_password.as_deref(),
            options.connect_timeout + options.response_timeout,
        )
    }

    /// The master of `master` as the `sentinels` (`host:port` or URLs) name it; the
    /// master is reached with the user, password, database and TLS of `master_auth` (a URL
    /// whose host is not used), the sentinels with `sentinel_password`; each question (to
    /// the sentinels, then ROLE to the master) takes at most `timeout`.
    pub(crate) fn sentinel(
        sentinels: &[String],
        master: &str,
        master_auth: Option<redis::ConnectionInfo>,
        sentinel_password: Option<&str>,
        timeout: Duration,
    ) -> RedisResult<Self> {
        let mut nodes = Vec::with_capacity(sentinels.len());
        for text in sentinels {
            let mut info = sentinel_addr(text)?.into_connection_info()?;
            if let Some(password) = sentinel_password {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
            nodes.push(info);
        }
        let master_info = match master_auth {
            Some(info) => info,
            None => ConnectionAddr::Tcp(String::new(), 0).into_connection_info()?,
        };
        Ok(Target::Sentinel(Arc::new(Sentinels::new(
            nodes,
            master,
            master_info,
            timeout,
        ))))
    }

    /// A client of the server to use now: for Sentinel, the master the sentinels name
    /// (checked with ROLE to be a master), or an error while none is.
    pub(crate) async fn client(&self) -> RedisResult<Client> {
        match self {
            Target::Server(client) => Ok(Client::clone(client)),
            Target::Sentinel(sentinels) => sentinels.master().await,
        }
    }

    /// True when the server may change under the store (Sentinel): errors that mean "not
    /// the master any more" then make the store ask again.
    pub(crate) fn follows(&self) -> bool {
        matches!(self, Target::Sentinel(_))
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
