//! Per-connection deadlines: a connection that sends its request head too slowly, sits idle
//! between requests, or does not read its reply is closed, so stalled or idle clients cannot
//! hold the server's connections (and file descriptors) for ever.
//!
//! hyper has a header-read timer, but it runs from the moment the server waits for a request,
//! so it cannot tell an idle keep-alive connection from a slow request head: one setting would
//! have to serve both. This wrapper around the socket knows where each connection is (waiting
//! for a request, reading its head, serving it) from the bytes it sees and from the service,
//! and applies the matching deadline.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The connection deadlines (see the crate README's "Limits and timeouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the connection's opening, or from the first byte of a later request, until the
    /// request head (request line and headers) is complete.
    pub header: Duration,
    /// How long a keep-alive connection may wait for its next request, and how long a reply
    /// may wait for the client to read it.
    pub idle: Duration,
}

/// Why a connection was closed by a deadline; the label of the metric that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The request head did not arrive within the header timeout.
    Header,
    /// No new request within the idle timeout.
    Idle,
    /// The client did not read the reply within the idle timeout.
    Send,
}

impl Expiry {
    /// The metric label and log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Send => "send_timeout",
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Just opened: the first request head is due within the header timeout.
    Opened,
    /// Waiting for the next request on a kept-alive connection.
    Idle,
    /// The first bytes of a request arrived; its head is due.
    Head,
    /// A request is being served: its body has its own timeout and the store its deadline.
    Busy,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    /// The task of the read that waits for the next request. hyper does not read again
    /// after a reply until the socket wakes it, so the end of a request wakes it here:
    /// the read then arms the idle deadline.
    reader: Option<Waker>,
}

/// What the service tells the socket wrapper: when a request starts and ends. Cheap to
/// clone; one per connection.
#[derive(Debug, Clone)]
pub struct Activity(Arc<Mutex<State>>);

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    /// A just-opened connection.
    pub fn new() -> Self {
        Activity(Arc::new(Mutex::new(State {
            phase: Phase::Opened,
            since: Instant::now(),
            reader: None,
        })))
    }

    fn set(&self, change: impl FnOnce(&mut State)) {
        // Nothing panics while the lock is held, so a poisoned lock still holds good data.
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        change(&mut state);
    }

    /// The request head was parsed and handed to the service.
    pub fn request_started(&self) {
        self.set(|s| s.phase = Phase::Busy);
    }

    /// The service answered: the connection waits for its next request.
    pub fn request_finished(&self) {
        let mut reader = None;
        self.set(|s| {
            s.phase = Phase::Idle;
            s.since = Instant::now();
            reader = s.reader.take();
        });
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    fn bytes_arrived(&self) {
        self.set(|s| {
            if s.phase == Phase::Idle {
                s.phase = Phase::Head;
                s.since = Instant::now();
            }
        });
    }

    /// Registers the waiting reader and returns when its read must give up, and why;
    /// None while a request is served.
    fn wait_for_bytes(&self, waker: &Waker, timeouts: &Timeouts) -> Option<(Instant, Expiry)> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
            state.reader = Some(waker.clone());
        }
        match state.phase {
            Phase::Opened | Phase::Head => Some((state.since + timeouts.header, Expiry::Header)),
            Phase::Idle => Some((state.since + timeouts.idle, Expiry::Idle)),
            Phase::Busy => None,
        }
    }
}

/// A socket that fails a read or write with `TimedOut` once its deadline passes; hyper then
/// closes the connection.
#[derive(Debug)]
pub struct Guarded<T> {
    io: T,
    activity: Activity,
    timeouts: Timeouts,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
    on_expiry: fn(Expiry),
}

impl<T> Guarded<T> {
    /// Wraps `io`; `on_expiry` is called once when a deadline closes the connection.
    pub fn new(io: T, activity: Activity, timeouts: Timeouts, on_expiry: fn(Expiry)) -> Self {
        let far = Instant::now() + timeouts.header.max(timeouts.idle);
        Guarded {
            io,
            activity,
            timeouts,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_armed: false,
            on_expiry,
        }
    }

    fn expired(&self, why: Expiry) -> io::Error {
        (self.on_expiry)(why);
        io::Error::new(io::ErrorKind::TimedOut, why.as_str())
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
                    let at = Instant::now() + self.timeouts.idle;
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

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let deadline = this.activity.wait_for_bytes(cx.waker(), &this.timeouts);
                let Some((at, why)) = deadline else {
                    this.read_armed = None;
                    return Poll::Pending;
                };
                if this.read_armed != Some(at) {
                    this.read_timer.as_mut().reset(at);
                    this.read_armed = Some(at);
                }
                if this.read_timer.as_mut().poll(cx).is_ready() {
                    this.read_armed = None;
                    return Poll::Ready(Err(this.expired(why)));
                }
                Poll::Pending
            }
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
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.guard_write(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard_write(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Timeouts = Timeouts {
        header: Duration::from_millis(300),
        idle: Duration::from_millis(600),
    };

    fn ignore(_: Expiry) {}

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_expires_after_the_header_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let mut guarded = Guarded::new(server, Activity::new(), T, ignore);
        let started = Instant::now();
        let err = guarded.read(&mut [0u8; 8]).await.expect_err("times out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "header_timeout");
        assert_eq!(started.elapsed(), T.header);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_head_then_busy() {
        let (mut client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut guarded = Guarded::new(server, activity.clone(), T, ignore);
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
        let mut guarded = Guarded::new(server, Activity::new(), T, ignore);
        let started = Instant::now();
        let err = guarded.write_all(&[b'x'; 64]).await.expect_err("stalls");
        assert_eq!(err.to_string(), "send_timeout");
        assert_eq!(started.elapsed(), T.idle);
    }
}
