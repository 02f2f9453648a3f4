//! The accept loop: HTTP/1 connections with deadlines ([`crate::conn`]), a bound on open
//! connections that still answers the ones over it, and graceful shutdown.
//!
//! `axum::serve` accepts every connection and keeps each for as long as its client likes:
//! 1100 clients that send half a request and stop exhaust 1024 file descriptors, after
//! which no one is served at all. Here every connection has deadlines, the number open is
//! bounded below the open-files limit, and a connection over the bound either takes the
//! slot of an idle or stalled one ([`crate::overload`]) or gets a fast `503`.

use crate::conn::{Expiry, Guarded};
use crate::overload::{Activity, LongLived, Overload, Refusal};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// File descriptors kept out of the connection bound: the listener, Redis connections,
/// the refusals in flight, logs. The bound is capped at the open-files limit minus this.
pub(crate) const FD_RESERVE: u64 = 128;

/// Connections over the bound that may be answered at once; past that they are closed
/// without a reply (still at once, never left waiting).
pub(crate) const REFUSAL_SLOTS: usize = 32;

/// How long a refused connection is kept to read what its client sends (so the reply is
/// not lost to a reset) before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// How long the loop pauses after an accept error such as "too many open files", so it
/// does not spin while descriptors are short.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The reply to a connection over the bound: the JSON error shape of every other error.
const BUSY_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 87\r\n\
\r\n\
{\"error\":\"tooManyConnections\",\"message\":\"The server is at its connection limit; retry\"}";

/// The reply to a connection over its address's share.
const ADDRESS_BUSY_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 123\r\n\
\r\n\
{\"error\":\"tooManyConnections\",\"message\":\"This client address is at its limit of connections or unfinished requests; retry\"}";

/// Connections the kernel may queue before they are accepted. The usual 128 drops the
/// connections of a burst (their clients retry after a second); the kernel caps it at
/// `net.core.somaxconn`.
pub(crate) const LISTEN_BACKLOG: u32 = 4096;

/// Binds `host:port` with [`LISTEN_BACKLOG`] (the first address `host` resolves to that
/// can be bound).
pub(crate) async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket
            .bind(addr)
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no address to listen on",
        )
    }))
}

/// Raises the open-files soft limit to the hard limit and returns the soft limit in force
/// (None where it cannot be read). A server that keeps the usual soft limit of 1024 would
/// refuse connections long before the machine runs short.
pub(crate) fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(err) => {
                tracing::warn!(%err, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection bound in force: the configured one, capped so that the connections and
/// [`FD_RESERVE`] fit within the open-files limit.
pub(crate) fn effective_max_connections(configured: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else {
        return configured;
    };
    let fits = open_files.saturating_sub(FD_RESERVE).max(1);
    configured.min(usize::try_from(fits).unwrap_or(usize::MAX))
}

fn count_expiry(why: Expiry) {
    match why {
        Expiry::Header | Expiry::Idle | Expiry::Send => {
            crate::metrics::connection_closed(why.as_str())
        }
        Expiry::Evicted(rule) => crate::metrics::connection_evicted(rule.as_str()),
        Expiry::Memory => crate::metrics::request_refused("memory"),
    }
}

/// The body bytes a request may bring, reserved from the memory budget before it is
/// read: its declared length (0 when over the limit: the handler refuses it unread), or
/// the body limit for a chunked body, whose length is unknown.
fn body_reservation(request: &hyper::Request<Incoming>, body_limit: usize) -> usize {
    use hyper::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    let headers = request.headers();
    if headers.contains_key(TRANSFER_ENCODING) {
        return body_limit;
    }
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|len| *len <= body_limit as u64)
        .map_or(0, |len| len as usize)
}

/// What [`crate::extract::TimedBody`] needs of the connection: the body deadline, shrunk
/// by the load when the request started, and the connection's entry, told when the body
/// has been read (its bytes then no longer wait on the client).
#[derive(Debug, Clone)]
pub(crate) struct BodyContext {
    /// How long the client has to send the body.
    pub deadline: Duration,
    /// The connection's entry in the table.
    pub activity: Activity,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections
/// finish their requests (the caller bounds how long).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    overload: Arc<Overload>,
    body: (usize, Duration),
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (body_limit, body_timeout) = body;
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer also runs between requests; ours tells the two apart.
    http.header_read_timeout(None);
    tokio::pin!(shutdown);
    let mut last_warning = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err, &mut last_warning).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let activity = match overload.admit(peer.ip()) {
            Ok((activity, _)) => activity,
            Err(why) => {
                refuse(stream, why, &refusals);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Guarded::new(stream, activity.clone(), count_expiry));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let router = router.clone();
            let activity = activity.clone();
            async move {
                activity.request_started();
                if !activity.reserve_body(body_reservation(&request, body_limit)) {
                    // Over the memory budget: refused before its body is read.
                    crate::metrics::request_refused("memory");
                    activity.request_finished();
                    return Ok(crate::error::overloaded());
                }
                let deadline = activity.overload().shrink(body_timeout);
                request.extensions_mut().insert(BodyContext {
                    deadline,
                    activity: activity.clone(),
                });
                let response = router.oneshot(request).await;
                // A long-lived reply (an event stream) ends its request when its body is
                // dropped, not now: the connection stays busy while it streams.
                if response
                    .as_ref()
                    .map_or(true, |r| r.extensions().get::<LongLived>().is_none())
                {
                    activity.request_finished();
                }
                response
            }
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        crate::metrics::connection_opened();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            crate::metrics::connection_ended();
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Logs an accept error (at most once a second at warn level) and pauses briefly when it
/// is about resources, so the loop does not spin.
async fn accept_failed(err: &std::io::Error, last_warning: &mut Option<std::time::Instant>) {
    use std::io::ErrorKind;
    // The client gave up between connect and accept: nothing wrong here.
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
        *last_warning = Some(std::time::Instant::now());
        tracing::warn!(%err, "accept failed; retrying");
    }
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Answers a refused connection with [`BUSY_REPLY`] (or [`ADDRESS_BUSY_REPLY`]) and
/// closes it; when even the refusal slots are taken, closes it at once.
fn refuse(mut stream: TcpStream, why: Refusal, slots: &Arc<Semaphore>) {
    crate::metrics::connection_refused(why.as_str());
    let reply = match why {
        Refusal::MaxConnections => BUSY_REPLY,
        Refusal::AddressConnections | Refusal::AddressUnfinished => ADDRESS_BUSY_REPLY,
    };
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _slot = slot;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            stream.write_all(reply).await?;
            stream.shutdown().await?;
            // Read what the client sends until it closes: closing with unread bytes would
            // reset the connection, and the client could lose the reply.
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_replies_are_well_formed() {
        for reply in [BUSY_REPLY, ADDRESS_BUSY_REPLY] {
            let text = std::str::from_utf8(reply).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"], "tooManyConnections");
            assert!(body["message"].is_string());
        }
    }

    #[test]
    fn the_bound_fits_the_open_files_limit() {
        assert_eq!(effective_max_connections(10_000, None), 10_000);
        assert_eq!(effective_max_connections(10_000, Some(1024)), 896);
        assert_eq!(effective_max_connections(100, Some(1024)), 100);
        assert_eq!(effective_max_connections(100, Some(10)), 1);
    }
}
