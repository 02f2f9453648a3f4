//! The Sentinel watcher: keeps each connection of a store on the master the sentinels name.
//!
//! Why the watcher does more than listen: a `+switch-master` announcement can arrive
//! while a connection is already asking (every failed call starts a question) or be lost
//! with a sentinel's connection; a master paused just past the promotion then answers
//! again as if nothing happened, and a store that missed the switch writes to it until
//! the sentinels demote it, ~10 s of acknowledged writes that vanish then. So every
//! announcement makes each connection ask at once, even while an earlier question runs
//! (see `Connection::follow_now`); the store subscribes to every sentinel; while calls
//! fail and for [`RECONFIRM_FOR`] after the last failure each connection re-confirms its
//! master; and every [`CONFIRM_EVERY`] the watcher asks the sentinels even while calls
//! succeed (after a partition heals the old master answered all along).

use super::connection::Connection;
use super::durable::Durable;
use super::sentinel::{within, Sentinels};
use super::tasks::AbortOnDrop;
use futures_util::stream::StreamExt;
use redis::{Client, RedisError};
use std::sync::Arc;
use std::time::Duration;

/// How long after its last failed call a connection keeps asking the sentinels who the
/// master is (every [`TICK`]): a master that comes back after a short pause looks healthy
/// to its connections, and only the sentinels know it was replaced meanwhile.
pub(crate) const RECONFIRM_FOR: Duration = Duration::from_secs(5);

/// How often the watcher looks at its connections and at the durable-write rule.
const TICK: Duration = Duration::from_millis(250);

/// How long one subscription to a sentinel is kept before it is made again: a sentinel
/// restarted behind a partition leaves a connection that stays silent for good (a
/// subscriber never writes, so it never learns), and an announcement missed meanwhile is
/// covered by the re-confirmations of failing connections.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(60);

/// How often the watcher asks the sentinels who the master is while every call succeeds:
/// after a partition heals, the store may still be on the old master (it answered all
/// along) while the announcements wait in connections that TCP retries only seconds
/// later; a fresh question finds the new master within this.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// How often the watcher asks how many replicas the sentinels could promote.
const REPLICAS_EVERY: Duration = Duration::from_secs(5);

/// Listens to every sentinel's `+switch-master` and re-confirms the master of each
/// connection while its calls fail and for [`RECONFIRM_FOR`] after; keeps the durable
/// writes' rule in step with the replicas the sentinels could promote. Ends when its
/// handle is dropped.
pub(crate) fn watch(
    sentinels: Arc<Sentinels>,
    connections: Vec<Connection>,
    durable: Option<Arc<Durable>>,
) -> AbortOnDrop {
    let mut tasks = Vec::new();
    for at in 0..sentinels.nodes.len() {
        let (sentinels, connections) = (sentinels.clone(), connections.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                listen(&sentinels, at, &connections).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut master = connections.first().and_then(Connection::master);
        let mut replicas_asked = tokio::time::Instant::now();
        let mut confirmed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            for connection in &connections {
                if connection.failed_within(RECONFIRM_FOR) {
                    connection.follow_soon();
                }
            }
            if confirmed.elapsed() >= CONFIRM_EVERY {
                confirmed = tokio::time::Instant::now();
                if let Some(named) = sentinels.named_addr().await {
                    for connection in &connections {
                        if connection.master().as_ref() != Some(&named) {
                            connection.follow_now();
                        }
                    }
                }
            }
            let now = connections.first().and_then(Connection::master);
            let switched = now != master;
            if let Some(durable) = &durable {
                if switched || replicas_asked.elapsed() >= REPLICAS_EVERY {
                    replicas_asked = tokio::time::Instant::now();
                    if let Some(n) = sentinels.promotable_replicas().await {
                        durable.promotable(n, switched);
                    }
                }
            }
            master = now;
        }
    }));
    AbortOnDrop(tasks)
}

/// Subscribes to `+switch-master` on sentinel `at` and acts on each announcement of this
/// master's name until the subscription ends.
async fn listen(sentinels: &Sentinels, at: usize, connections: &[Connection]) {
    let node = &sentinels.nodes[at];
    let subscribed = async {
        let mut pubsub = Client::open(node.info.clone())?.get_async_pubsub().await?;
        pubsub.subscribe("+switch-master").await?;
        Ok::<_, RedisError>(pubsub)
    };
    let pubsub = match within(sentinels.timeout.max(Duration::from_secs(2)), subscribed).await {
        Ok(pubsub) => pubsub,
        Err(err) => {
            tracing::debug!(%err, sentinel = %node.info.addr(), "cannot listen to this sentinel now");
            return;
        }
    };
    let mut messages = pubsub.into_on_message();
    let renew = tokio::time::Instant::now() + RESUBSCRIBE_EVERY;
    while let Ok(Some(message)) = tokio::time::timeout_at(renew, messages.next()).await {
        let payload: String = message.get_payload().unwrap_or_default();
        let Some((host, port)) = switched_to(&payload, &sentinels.name) else {
            continue;
        };
        tracing::info!(sentinel = %node.info.addr(), to = %format!("{host}:{port}"), "a sentinel announced a new master");
        sentinels.announce(host, port);
        for connection in connections {
            connection.follow_now();
        }
    }
}

/// The new master of a `+switch-master` payload (`name old-ip old-port new-ip
/// new-port`) when it is about `name`.
fn switched_to(payload: &str, name: &str) -> Option<(String, u16)> {
    let fields: Vec<&str> = payload.split_whitespace().collect();
    match fields.as_slice() {
        [n, _, _, host, port] if *n == name => Some((host.to_string(), port.parse().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_of_this_name_only() {
        assert_eq!(
            switched_to("mymaster 10.0.0.1 6379 10.0.0.2 6380", "mymaster"),
            Some(("10.0.0.2".to_string(), 6380))
        );
        assert_eq!(switched_to("other 1 2 3 4", "mymaster"), None);
        assert_eq!(switched_to("mymaster 1 2 3", "mymaster"), None);
        assert_eq!(switched_to("mymaster 1 2 3 x", "mymaster"), None);
    }
}
