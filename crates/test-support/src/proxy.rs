//! A TCP proxy that can make the connections through it go silent: what a half-dead
//! network path or a hung middlebox does to a client. [`TcpProxy::freeze`] stops
//! forwarding on every connection open at that moment — the sockets stay open, nothing
//! is closed or reset, bytes just stop — while connections opened afterwards pass
//! normally. A client that only reconnects on a closed socket waits forever there.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the proxy's threads look at their flags.
const POLL: Duration = Duration::from_millis(20);

/// A running proxy from a free loopback port to `target`; stops when dropped.
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    stop: AtomicBool,
    /// One flag per connection accepted so far: set, it stops forwarding.
    frozen: Mutex<Vec<Arc<AtomicBool>>>,
    accepted: AtomicUsize,
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `127.0.0.1:{target}`.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            frozen: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let accept = shared.clone();
        std::thread::spawn(move || accept_loop(listener, target, accept));
        TcpProxy { port, shared }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops forwarding on every connection open now (both directions), without closing
    /// them; later connections are not affected.
    pub fn freeze(&self) {
        for flag in self
            .shared
            .frozen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, target: u16, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let frozen = Arc::new(AtomicBool::new(false));
                shared
                    .frozen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(frozen.clone());
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let (frozen, shared) = (frozen.clone(), shared.clone());
                    std::thread::spawn(move || pump(from, to, &frozen, &shared));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Copies `from` to `to` until either side closes or the proxy stops; while `frozen`,
/// reads nothing and writes nothing, holding both sockets open.
fn pump(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool, shared: &Shared) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 16 * 1024];
    while !shared.stop.load(Ordering::SeqCst) {
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if frozen.load(Ordering::SeqCst) {
                    // Frozen while this read was pending: these bytes are swallowed, as
                    // a dead path would.
                    continue;
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
