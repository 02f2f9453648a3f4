//! Per-connection deadlines: a connection that sends its request head too slowly, sits idle
//! between requests, or does not read its reply is closed, so stalled or idle clients cannot
//! hold the server's connections (and file descriptors) for ever.
//!
//! hyper has a header-read timer, but it runs from the moment the server waits for a request,
//! so it cannot tell an idle keep-alive connection from a slow request head: one setting would
//! have to serve both. This wrapper around the socket knows where each connection is (waiting
//! for a request, reading its head, serving it) from the bytes it sees and from the service,
//! and applies the matching deadline.

use crate::overload::{Activity, Eviction, Gate};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Why a connection was closed by this wrapper; the label of the metric that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The request head did not arrive within the header timeout.
    Header,
    /// No new request within the idle timeout.
    Idle,
    /// The client did not read the reply within the idle timeout.
    Send,
    /// Closed to admit a new connection at the bound.
    Evicted(Eviction),
    /// A new request arrived while the memory budget was spent: answered
    /// `503 overloaded` before its bytes were read.
    Memory,
}

impl Expiry {
    /// The metric label and log word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Send => "send_timeout",
            Expiry::Evicted(why) => why.as_str(),
            Expiry::Memory => "memory",
        }
    }
}

/// The reply to a request refused over the memory budget.
pub(crate) const OVERLOADED_REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 99\r\n\
\r\n\
{\"error\":\"overloaded\",\"message\":\"The server is at its memory budget for requests in flight; retry\"}";

/// hyper answers a request it cannot parse itself, with an empty body; these replace its
/// answers so that every error has the JSON body of the contract.
const PARSE_ERROR_REPLIES: [(&[u8], &[u8]); 3] = [
    (
        b"HTTP/1.1 400 ",
        b"HTTP/1.1 400 Bad Request\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 74\r\n\
\r\n\
{\"error\":\"badRequest\",\"message\":\"The request is not well-formed HTTP/1.1\"}",
    ),
    (
        b"HTTP/1.1 414 ",
        b"HTTP/1.1 414 URI Too Long\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 78\r\n\
\r\n\
{\"error\":\"uriTooLong\",\"message\":\"The request target is longer than the limit\"}",
    ),
    (
        b"HTTP/1.1 431 ",
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
content-type: application/json\r\n\
connection: close\r\n\
content-length: 85\r\n\
\r\n\
{\"error\":\"headersTooLarge\",\"message\":\"The request headers are larger than the limit\"}",
    ),
];

/// The JSON reply that stands for hyper's own reply `head` to a request it could not
/// parse, if `head` is one: a 400, 414 or 431 with an empty body. The service never
/// answers an error without a body, so such a reply can only be hyper's.
pub(crate) fn parse_error_reply(head: &[u8]) -> Option<&'static [u8]> {
    let (_, reply) = PARSE_ERROR_REPLIES
        .iter()
        .find(|(status, _)| head.starts_with(status))?;
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let empty = head[..end]
        .windows(19)
        .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0"));
    empty.then_some(*reply)
}

/// A socket that fails a read or write with `TimedOut` once its deadline passes, fails a
/// read once its connection was evicted, answers `503 overloaded` to a new request over
/// the memory budget, and gives hyper's parse-error replies JSON bodies.
#[derive(Debug)]
pub(crate) struct Guarded<T> {
    io: T,
    activity: Activity,
    idle: Duration,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
    /// A reply written instead of hyper's, and how much of it is written.
    replacement: Option<(&'static [u8], usize)>,
    on_expiry: fn(Expiry),
}

impl<T> Guarded<T> {
    /// Wraps `io`; `on_expiry` is called once when a rule closes the connection.
    pub(crate) fn new(io: T, activity: Activity, on_expiry: fn(Expiry)) -> Self {
        let timeouts = activity.overload().settings().timeouts;
        let far = Instant::now() + timeouts.header.max(timeouts.idle);
        Guarded {
            io,
            activity,
            idle: timeouts.idle,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_armed: false,
            replacement: None,
            on_expiry,
        }
    }

    fn expired(&self, why: Expiry) -> io::Error {
        (self.on_expiry)(why);
        let kind = match why {
            Expiry::Header | Expiry::Idle | Expiry::Send => io::ErrorKind::TimedOut,
            Expiry::Evicted(_) | Expiry::Memory => io::ErrorKind::ConnectionAborted,
        };
        io::Error::new(kind, why.as_str())
    }

    /// Applies the send deadline to a write-side poll: it runs from the first write that
    /// could not proceed until one does.
    fn guard_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(result) => {
                self.write_armed = false;
                Poll::Ready(result)
            }
            Poll::Pending => {
                if !self.write_armed {
                    let at = Instant::now() + self.idle;
                    self.write_timer.as_mut().reset(at);
                    self.write_armed = true;
                }
                if self.write_timer.as_mut().poll(cx).is_ready() {
                    self.write_armed = false;
                    return Poll::Ready(Err(self.expired(Expiry::Send)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// Writes what is left of the replacement reply; Ready once it is all written.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((reply, written)) = self.replacement {
            if written >= reply.len() {
                self.replacement = None;
                break;
            }
            let poll = Pin::new(&mut self.io).poll_write(cx, &reply[written..]);
            match self.guard_write(cx, poll) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.replacement = Some((reply, written + n)),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// When `head` is hyper's empty parse-error reply, takes it as written and queues the
    /// JSON reply in its place.
    fn replace(
        &mut self,
        cx: &mut Context<'_>,
        head: &[u8],
        len: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        if self.replacement.is_some() {
            return None;
        }
        let reply = parse_error_reply(head)?;
        crate::metrics::parse_error(&reply[9..12]);
        self.replacement = Some((reply, 0));
        Some(match self.drain_replacement(cx) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            // The rest is written by the flush hyper makes next.
            _ => Poll::Ready(Ok(len)),
        })
    }

    /// Answers `503 overloaded` on a connection whose new request is refused (one try:
    /// a connection between requests has room in its send buffer).
    fn refuse_over_budget(&mut self, cx: &mut Context<'_>) {
        let _ = Pin::new(&mut self.io).poll_write(cx, OVERLOADED_REPLY);
        let _ = Pin::new(&mut self.io).poll_flush(cx);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = match this.activity.gate() {
            Gate::Evicted(why) => return Poll::Ready(Err(this.expired(Expiry::Evicted(why)))),
            Gate::OverBudget => {
                // Over the budget, a new request must not be taken in: one byte says
                // whether one is arriving.
                let mut one = [0u8; 1];
                let mut probe = ReadBuf::new(&mut one);
                match Pin::new(&mut this.io).poll_read(cx, &mut probe) {
                    Poll::Ready(Ok(())) if probe.filled().is_empty() => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) => {
                        this.refuse_over_budget(cx);
                        return Poll::Ready(Err(this.expired(Expiry::Memory)));
                    }
                    other => other,
                }
            }
            Gate::Open => {
                let before = buf.filled().len();
                let room = this.activity.head_room();
                let poll = if room < buf.remaining() {
                    // A head is read no further than the budget allows, so a crowd of
                    // heads cannot overshoot it by a read buffer each.
                    let mut limited = vec![0u8; room.max(1)];
                    let mut part = ReadBuf::new(&mut limited);
                    let poll = Pin::new(&mut this.io).poll_read(cx, &mut part);
                    buf.put_slice(part.filled());
                    poll
                } else {
                    Pin::new(&mut this.io).poll_read(cx, buf)
                };
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.activity.bytes_arrived(n);
                }
                poll
            }
        };
        match poll {
            Poll::Pending => {
                let Some((at, header)) = this.activity.wait_for_bytes(cx.waker()) else {
                    this.read_armed = None;
                    return Poll::Pending;
                };
                if this.read_armed != Some(at) {
                    this.read_timer.as_mut().reset(at);
                    this.read_armed = Some(at);
                }
                if this.read_timer.as_mut().poll(cx).is_ready() {
                    this.read_armed = None;
                    let why = if header { Expiry::Header } else { Expiry::Idle };
                    return Poll::Ready(Err(this.expired(why)));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.replace(cx, buf, buf.len()) {
            return done;
        }
        match this.drain_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        let total = bufs.iter().map(|b| b.len()).sum();
        if let Some(done) = this.replace(cx, first, total) {
            return done;
        }
        match this.drain_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.drain_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.guard_write(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.drain_replacement(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard_write(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overload::Timeouts;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Timeouts = Timeouts {
        header: Duration::from_millis(300),
        idle: Duration::from_millis(600),
    };

    fn ignore(_: Expiry) {}

    fn activity_with(budget: usize) -> Activity {
        let overload = crate::overload::Overload::new(crate::overload::Settings {
            max_connections: 1000,
            per_address_connections: 0,
            per_address_unfinished: 0,
            memory_budget: budget,
            timeouts: T,
        });
        overload.admit([127, 0, 0, 1].into()).unwrap().0
    }

    fn activity() -> Activity {
        activity_with(1 << 20)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_expires_after_the_header_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let mut guarded = Guarded::new(server, activity(), ignore);
        let started = Instant::now();
        let err = guarded.read(&mut [0u8; 8]).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "header_timeout");
        assert_eq!(started.elapsed(), T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_head_then_busy() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = activity();
        let mut guarded = Guarded::new(server, activity.clone(), ignore);
        activity.request_started();
        activity.request_finished();
        // Idle: the idle timeout applies...
        let started = Instant::now();
        let err = guarded.read(&mut [0u8; 8]).await.expect_err("idle");
        assert_eq!(err.to_string(), "idle_timeout");
        assert_eq!(started.elapsed(), T.idle);
        // ...until bytes of the next request arrive: then the header timeout, from them.
        activity.request_finished();
        client.write_all(b"GET").await.unwrap();
        assert_eq!(guarded.read(&mut [0u8; 8]).await.unwrap(), 3);
        let started = Instant::now();
        let err = guarded.read(&mut [0u8; 8]).await.expect_err("head");
        assert_eq!(err.to_string(), "header_timeout");
        assert_eq!(started.elapsed(), T.header);
        // While a request is served, reads wait as long as they must.
        activity.request_started();
        let read = tokio::time::timeout(Duration::from_secs(5), guarded.read(&mut [0u8; 8])).await;
        assert!(read.is_err(), "no deadline while busy");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_reply_expires_after_the_idle_timeout() {
        let (_client, server) = tokio::io::duplex(16);
        let mut guarded = Guarded::new(server, activity(), ignore);
        let started = Instant::now();
        let err = guarded.write_all(&[b'x'; 64]).await.expect_err("stalls");
        assert_eq!(err.to_string(), "send_timeout");
        assert_eq!(started.elapsed(), T.idle);
    }

    #[test]
    fn canned_replies_are_well_formed() {
        let replies = PARSE_ERROR_REPLIES.iter().map(|(_, r)| *r);
        for reply in replies.chain([OVERLOADED_REPLY]) {
            let text = std::str::from_utf8(reply).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(body["error"].is_string() && body["message"].is_string());
        }
    }

    #[test]
    fn only_hyper_s_empty_error_replies_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let reply = parse_error_reply(hyper).expect("replaced");
        assert!(reply.starts_with(b"HTTP/1.1 431 "));
        let ours = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 60\r\n\r\n{}";
        assert_eq!(parse_error_reply(ours.as_bytes()), None);
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(parse_error_reply(ok.as_bytes()), None);
    }

    #[tokio::test]
    async fn a_parse_error_reply_gets_a_json_body() {
        let (mut client, server) = tokio::io::duplex(4096);
        let mut guarded = Guarded::new(server, activity(), ignore);
        let hyper = "HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        guarded.write_all(hyper.as_bytes()).await.unwrap();
        guarded.flush().await.unwrap();
        guarded.shutdown().await.unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{reply}"
        );
        assert!(
            reply.ends_with(
                r#""error":"uriTooLong","message":"The request target is longer than the limit"}"#
            ),
            "{reply}"
        );
    }

    #[tokio::test]
    async fn a_new_request_over_the_budget_is_refused_unread() {
        let (mut client, server) = tokio::io::duplex(4096);
        let held = activity_with(100);
        let mut guarded = Guarded::new(
            server,
            held.overload().admit([127, 0, 0, 2].into()).unwrap().0,
            ignore,
        );
        held.bytes_arrived(100);
        client.write_all(b"GET /ping HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let err = guarded.read(&mut buf).await.expect_err("refused");
        assert_eq!(err.to_string(), "memory");
        drop(guarded);
        let mut reply = String::new();
        client.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
        assert!(reply.contains(r#""error":"overloaded""#), "{reply}");
    }
}
