//! Overload protection: the table of open connections that decides who gets a slot when
//! the bound is reached, how long each may wait, and how many request bytes may be held.
//!
//! A plain bound on connections can be held by anyone: 896 idle keep-alive clients, or a
//! slowloris that reopens its stalled heads as they time out, kept every newcomer out, and
//! unfinished bodies were buffered without an overall cap (2000 of 1 MB took RSS to 2.3 GB).
//! Here, as nginx's and Envoy's overload handling do:
//! - at the bound, the oldest idle keep-alive connection is closed to admit a newcomer,
//!   then the oldest unfinished request head (once older than [`EVICT_HEAD_AFTER`]);
//! - past half the bound, the header, idle and body deadlines shrink with the load;
//! - one client address may hold at most so many connections, and so many of them with a
//!   request under way (off behind a proxy, where every client has the proxy's address);
//! - request heads and bodies in flight share a memory budget; over it, new requests are
//!   refused with a JSON 503 before their bytes are read.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;
use tokio::time::Instant;

/// The connection deadlines (see the crate README's "Limits and timeouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// From the connection's opening, or from the first byte of a later request, until the
    /// request head (request line and headers) is complete.
    pub header: Duration,
    /// How long a keep-alive connection may wait for its next request, and how long a reply
    /// may wait for the client to read it.
    pub idle: Duration,
}

/// An unfinished request head (or body) younger than this is never closed to admit a
/// newcomer (or its bytes):
/// a client that just connected is still sending its head (over a slow link, for a few
/// hundred milliseconds), and closing the newest would let a flood of new connections
/// push out every client before it could send anything.
pub(crate) const EVICT_HEAD_AFTER: Duration = Duration::from_millis(500);

/// The fraction of the bound past which deadlines start to shrink.
const PRESSURE_STARTS: f64 = 0.5;

/// The smallest fraction of a configured deadline applied at the bound.
const SHORTEST: f64 = 0.1;

/// Deadlines never shrink below this (unless configured lower): a client on a slow link
/// still gets two seconds to send a small head.
const FLOOR: Duration = Duration::from_secs(2);

/// The settings of overload protection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections of one client address (0: no cap).
    pub per_address_connections: usize,
    /// Most connections of one client address with a request under way: a head pending
    /// or a request served (0: no cap).
    pub per_address_unfinished: usize,
    /// Request bytes (unparsed heads and declared bodies) that may be held at once.
    pub memory_budget: usize,
    /// The configured header and idle deadlines (before any shrinking).
    pub timeouts: Timeouts,
}

/// Why a new connection is refused (the `reason` label of the refusal counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is taken and none may be freed.
    MaxConnections,
    /// Its address holds its share of connections.
    AddressConnections,
    /// Its address holds its share of unfinished requests.
    AddressUnfinished,
}

impl Refusal {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::AddressConnections => "address_connections",
            Refusal::AddressUnfinished => "address_unfinished",
        }
    }
}

/// Why a connection was closed to admit another (the `rule` label of the eviction counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// It was the oldest idle keep-alive connection.
    OldestIdle,
    /// It was the oldest unfinished request head.
    OldestUnfinished,
    /// Its unfinished head or body held the oldest bytes of the memory budget, which a
    /// new request needed.
    Memory,
}

impl Eviction {
    /// The metric label and log word.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Eviction::OldestIdle => "oldest_idle",
            Eviction::OldestUnfinished => "oldest_unfinished",
            Eviction::Memory => "oldest_bytes",
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Just opened: the first request head is due within the header timeout.
    Opened,
    /// Waiting for the next request on a kept-alive connection.
    Idle,
    /// The first bytes of a request arrived; its head is due.
    Head,
    /// A request is being served: its body has its own timeout and the store its deadline.
    Busy,
}

impl Phase {
    fn unfinished_head(self) -> bool {
        matches!(self, Phase::Opened | Phase::Head)
    }
}

#[derive(Debug)]
struct Conn {
    addr: IpAddr,
    phase: Phase,
    since: Instant,
    /// The task of the read that waits for the next bytes: woken when a request ends (its
    /// read then arms the idle deadline) or when the connection is evicted.
    reader: Option<Waker>,
    evicted: Option<Eviction>,
    /// Bytes of the request head read so far (released when the head is parsed).
    head_bytes: usize,
    /// Bytes reserved for the body of the request being served.
    body_bytes: usize,
    /// Since when the body of the request being served is awaited (None once it is read,
    /// or when it has none).
    body_since: Option<Instant>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerAddress {
    connections: usize,
    unfinished: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// Slots taken: the connections open, less the evicted ones still closing.
    open: usize,
    next_id: u64,
    conns: HashMap<u64, Conn>,
    /// Idle connections by when they became idle (oldest first).
    idle: BTreeSet<(Instant, u64)>,
    /// Unfinished heads by when they started.
    heads: BTreeSet<(Instant, u64)>,
    /// Requests whose reserved body is still being read, by when they started.
    bodies: BTreeSet<(Instant, u64)>,
    addresses: HashMap<IpAddr, PerAddress>,
}

impl Table {
    fn per_address(&mut self, addr: IpAddr) -> &mut PerAddress {
        self.addresses.entry(addr).or_default()
    }

    /// Takes `id` out of the ordered sets it is in.
    fn unlist(&mut self, id: u64) {
        if let Some(conn) = self.conns.get(&id) {
            let key = (conn.since, id);
            match conn.phase {
                Phase::Idle => {
                    self.idle.remove(&key);
                }
                Phase::Opened | Phase::Head => {
                    self.heads.remove(&key);
                }
                Phase::Busy => {}
            }
        }
    }

    /// Puts `id` into the ordered set of its phase.
    fn list(&mut self, id: u64) {
        if let Some(conn) = self.conns.get(&id) {
            let key = (conn.since, id);
            match conn.phase {
                Phase::Idle => {
                    self.idle.insert(key);
                }
                Phase::Opened | Phase::Head => {
                    self.heads.insert(key);
                }
                Phase::Busy => {}
            }
        }
    }

    /// Moves `id` to `phase` (since `now`), keeping the sets and per-address counts.
    fn enter(&mut self, id: u64, phase: Phase, now: Instant) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.evicted.is_some() {
            return;
        }
        let (old, addr) = (conn.phase, conn.addr);
        self.unlist(id);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.phase = phase;
            conn.since = now;
        }
        self.list(id);
        match (old == Phase::Idle, phase == Phase::Idle) {
            (true, false) => self.per_address(addr).unfinished += 1,
            (false, true) => {
                let counts = self.per_address(addr);
                counts.unfinished = counts.unfinished.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// Marks the body of `id` as read: its bytes no longer wait on the client.
    fn body_read(&mut self, id: u64) {
        if let Some(since) = self.conns.get_mut(&id).and_then(|c| c.body_since.take()) {
            self.bodies.remove(&(since, id));
        }
    }

    /// Frees the slot of `id` and its per-address counts (it is leaving).
    fn release_slot(&mut self, id: u64) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (addr, idle) = (conn.addr, conn.phase == Phase::Idle);
        self.unlist(id);
        self.body_read(id);
        self.open = self.open.saturating_sub(1);
        let counts = self.per_address(addr);
        counts.connections = counts.connections.saturating_sub(1);
        if !idle {
            counts.unfinished = counts.unfinished.saturating_sub(1);
        }
        if counts.connections == 0 {
            self.addresses.remove(&addr);
        }
    }
}

/// The connection table and the byte budget, shared by the accept loop and every
/// connection.
#[derive(Debug)]
pub(crate) struct Overload {
    settings: Settings,
    table: Mutex<Table>,
    bytes: AtomicUsize,
    /// The most bytes held since memory was last returned to the system.
    high_water: AtomicUsize,
}

impl Overload {
    /// An empty table.
    pub(crate) fn new(settings: Settings) -> Arc<Self> {
        Arc::new(Overload {
            settings,
            table: Mutex::new(Table::default()),
            bytes: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
        })
    }

    /// The settings in force.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while the lock is held, so a poisoned lock still holds good data.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Request bytes held now (heads being read and reserved bodies).
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Bytes that may still be taken in before the budget is spent.
    pub(crate) fn room(&self) -> usize {
        self.settings
            .memory_budget
            .saturating_sub(self.bytes_in_flight())
    }

    /// True when no more request bytes may be taken in.
    pub(crate) fn over_budget(&self) -> bool {
        self.bytes_in_flight() >= self.settings.memory_budget
    }

    /// Reserves `n` bytes of the budget; false (nothing reserved) when they do not fit.
    fn reserve(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let budget = self.settings.memory_budget;
        let reserved = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let total = held.checked_add(n)?;
                (total <= budget).then_some(total)
            });
        if let Ok(held) = reserved {
            self.high_water.fetch_max(held + n, Ordering::Relaxed);
        }
        reserved.is_ok()
    }

    /// Returns freed memory to the system once a crowd of requests that held much of the
    /// budget is gone (checked every [`RETURN_EVERY`]). glibc keeps what its per-thread
    /// arenas freed: without this, RSS stayed 2 GB high after 2000 unfinished 1 MB bodies
    /// closed.
    pub(crate) fn spawn_memory_return(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETURN_EVERY);
            loop {
                tick.tick().await;
                let budget = self.settings.memory_budget;
                let high = self.high_water.load(Ordering::Relaxed);
                if high >= budget / 8 && self.bytes_in_flight() <= budget / 16 {
                    self.high_water.store(0, Ordering::Relaxed);
                    return_memory_to_the_system();
                }
            }
        })
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Closes the connections whose unfinished heads or bodies hold the oldest bytes of the
    /// budget (each older than [`EVICT_HEAD_AFTER`], never `except`) until `need` more
    /// bytes fit; false when they cannot be made to. Their bytes are returned to the budget
    /// at once; the readers to wake are pushed to `wake`.
    fn make_room(
        &self,
        table: &mut Table,
        need: usize,
        except: u64,
        wake: &mut Vec<Waker>,
    ) -> bool {
        let now = Instant::now();
        loop {
            if self.bytes_in_flight().saturating_add(need) <= self.settings.memory_budget {
                return true;
            }
            let head = table
                .heads
                .iter()
                .find(|(_, id)| {
                    *id != except && table.conns.get(id).is_some_and(|c| c.head_bytes > 0)
                })
                .copied();
            let body = table.bodies.iter().find(|(_, id)| *id != except).copied();
            let oldest = match (head, body) {
                (Some(h), Some(b)) => Some(h.min(b)),
                (h, b) => h.or(b),
            };
            let Some((since, victim)) = oldest else {
                return false;
            };
            if now.saturating_duration_since(since) < EVICT_HEAD_AFTER {
                return false;
            }
            // Counted when its read fails (as every eviction), not here.
            table.release_slot(victim);
            if let Some(conn) = table.conns.get_mut(&victim) {
                conn.evicted = Some(Eviction::Memory);
                wake.extend(conn.reader.take());
                let bytes =
                    std::mem::take(&mut conn.head_bytes) + std::mem::take(&mut conn.body_bytes);
                self.release(bytes);
            }
        }
    }

    /// `configured`, shortened as the table fills: unchanged up to half the bound, then
    /// linearly down to a tenth of it at the bound (never below two seconds unless
    /// configured lower).
    pub(crate) fn shrink(&self, configured: Duration) -> Duration {
        let open = self.lock().open;
        shrink(configured, open, self.settings.max_connections)
    }

    /// Admits a new connection from `addr`, closing an idle or stalled one when the bound
    /// is reached; or says why it is refused. The evicted connection's slot is freed at
    /// once (its socket closes a moment later, within the descriptors kept in reserve).
    pub(crate) fn admit(
        self: &Arc<Self>,
        addr: IpAddr,
    ) -> Result<(Activity, Option<Eviction>), Refusal> {
        let now = Instant::now();
        let mut evicted = None;
        let mut to_wake = None;
        let mut table = self.lock();
        let counts = table.addresses.get(&addr).copied().unwrap_or_default();
        let s = &self.settings;
        if s.per_address_connections > 0 && counts.connections >= s.per_address_connections {
            return Err(Refusal::AddressConnections);
        }
        if s.per_address_unfinished > 0 && counts.unfinished >= s.per_address_unfinished {
            return Err(Refusal::AddressUnfinished);
        }
        if table.open >= s.max_connections {
            let victim = match table.idle.first() {
                Some(&(_, id)) => Some((id, Eviction::OldestIdle)),
                None => table
                    .heads
                    .first()
                    .filter(|(since, _)| now.saturating_duration_since(*since) >= EVICT_HEAD_AFTER)
                    .map(|&(_, id)| (id, Eviction::OldestUnfinished)),
            };
            let Some((victim, why)) = victim else {
                return Err(Refusal::MaxConnections);
            };
            table.release_slot(victim);
            if let Some(conn) = table.conns.get_mut(&victim) {
                conn.evicted = Some(why);
                to_wake = conn.reader.take();
            }
            evicted = Some(why);
        }
        let id = table.next_id;
        table.next_id += 1;
        table.open += 1;
        table.conns.insert(
            id,
            Conn {
                addr,
                phase: Phase::Opened,
                since: now,
                reader: None,
                evicted: None,
                head_bytes: 0,
                body_bytes: 0,
                body_since: None,
            },
        );
        table.list(id);
        let counts = table.per_address(addr);
        counts.connections += 1;
        counts.unfinished += 1;
        drop(table);
        if let Some(waker) = to_wake {
            waker.wake();
        }
        let activity = Activity(Arc::new(Handle {
            overload: self.clone(),
            id,
        }));
        Ok((activity, evicted))
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.lock().open
    }
}

/// How often [`Overload::spawn_memory_return`] looks whether a crowd has left.
const RETURN_EVERY: Duration = Duration::from_secs(2);

/// Hands the free memory of every allocator arena back to the system.
fn return_memory_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free pages of glibc's own arenas; it takes no
    // pointer and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `configured` shortened for `open` connections of `max` (see [`Overload::shrink`]).
pub(crate) fn shrink(configured: Duration, open: usize, max: usize) -> Duration {
    let used = open as f64 / max.max(1) as f64;
    if used <= PRESSURE_STARTS {
        return configured;
    }
    let factor = ((1.0 - used) / (1.0 - PRESSURE_STARTS)).clamp(SHORTEST, 1.0);
    configured.mul_f64(factor).max(configured.min(FLOOR))
}

#[derive(Debug)]
struct Handle {
    overload: Arc<Overload>,
    id: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut table = self.overload.lock();
        let evicted = table
            .conns
            .get(&self.id)
            .is_some_and(|c| c.evicted.is_some());
        if !evicted {
            table.release_slot(self.id);
        }
        if let Some(conn) = table.conns.remove(&self.id) {
            drop(table);
            self.overload.release(conn.head_bytes + conn.body_bytes);
        }
    }
}

/// Marks a response whose body outlives its handler (an event stream): the service does
/// not end the request when the handler returns; the body's [`FinishOnDrop`] does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LongLived;

/// Ends the request of a [`LongLived`] response when dropped (with the response's body).
#[derive(Debug)]
pub(crate) struct FinishOnDrop(Activity);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// What a read of the socket may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Read as usual.
    Open,
    /// The connection was closed to admit another: fail the read.
    Evicted(Eviction),
    /// Over the memory budget with no request under way: a new request must not be read.
    OverBudget,
}

/// One connection's entry in the table, shared by its socket wrapper and its service:
/// they report when a request starts and ends and the bytes of heads. Cheap to clone; the
/// slot is freed when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Activity(Arc<Handle>);

impl Activity {
    fn with<R>(&self, f: impl FnOnce(&mut Table, u64) -> R) -> R {
        let mut table = self.0.overload.lock();
        f(&mut table, self.0.id)
    }

    /// The table this connection is in.
    pub(crate) fn overload(&self) -> &Arc<Overload> {
        &self.0.overload
    }

    /// The request head was parsed and handed to the service: its bytes are no longer
    /// an unparsed head.
    pub(crate) fn request_started(&self) {
        let released = self.with(|table, id| {
            table.enter(id, Phase::Busy, Instant::now());
            table
                .conns
                .get_mut(&id)
                .map_or(0, |c| std::mem::take(&mut c.head_bytes))
        });
        self.0.overload.release(released);
    }

    /// Reserves the body's bytes of the request being served, closing the connections
    /// whose unfinished requests hold the oldest bytes when they do not fit; false when
    /// they still do not (nothing reserved: the request is to be refused unread).
    pub(crate) fn reserve_body(&self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let overload = &self.0.overload;
        let mut wake = Vec::new();
        let reserved = self.with(|table, id| {
            let fits = overload.reserve(bytes)
                || (overload.make_room(table, bytes, id, &mut wake) && overload.reserve(bytes));
            if !fits {
                return false;
            }
            let now = Instant::now();
            if let Some(conn) = table.conns.get_mut(&id) {
                conn.body_bytes += bytes;
                conn.body_since = Some(now);
                table.bodies.insert((now, id));
            }
            true
        });
        wake.into_iter().for_each(Waker::wake);
        reserved
    }

    /// The body of the request being served was read (or failed): its bytes no longer
    /// wait on the client, so they are not taken back for another request.
    pub(crate) fn body_done(&self) {
        self.with(|table, id| table.body_read(id));
    }

    /// The service answered: the body's reservation is returned and the connection waits
    /// for its next request.
    pub(crate) fn request_finished(&self) {
        let (released, reader) = self.with(|table, id| {
            table.body_read(id);
            table.enter(id, Phase::Idle, Instant::now());
            table.conns.get_mut(&id).map_or((0, None), |c| {
                (std::mem::take(&mut c.body_bytes), c.reader.take())
            })
        });
        self.0.overload.release(released);
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// Keeps the connection busy until the returned guard drops, however long the reply
    /// body runs: for an event stream, whose body outlives its handler. Busy, it is never
    /// closed as idle (by the idle deadline or to admit a newcomer), and it counts as an
    /// unfinished request of its address. The service must then leave the end of the
    /// request to the guard (see [`LongLived`]).
    pub(crate) fn long_lived(&self) -> FinishOnDrop {
        FinishOnDrop(self.clone())
    }

    /// How many bytes a read may take in: all it likes while a request is served (its
    /// body was reserved), else what is left of the budget.
    pub(crate) fn head_room(&self) -> usize {
        if self.with(|table, id| table.conns.get(&id).map(|c| c.phase)) == Some(Phase::Busy) {
            return usize::MAX;
        }
        self.0.overload.room()
    }

    /// `n` bytes arrived on the socket: outside a request they are part of a head.
    pub(crate) fn bytes_arrived(&self, n: usize) {
        let counted = self.with(|table, id| {
            let phase = table.conns.get(&id).map(|c| c.phase);
            if phase == Some(Phase::Idle) {
                table.enter(id, Phase::Head, Instant::now());
            }
            match table.conns.get_mut(&id) {
                Some(conn) if conn.phase.unfinished_head() => {
                    conn.head_bytes += n;
                    n
                }
                _ => 0,
            }
        });
        if counted > 0 {
            let overload = &self.0.overload;
            let held = overload.bytes.fetch_add(counted, Ordering::AcqRel) + counted;
            overload.high_water.fetch_max(held, Ordering::Relaxed);
        }
    }

    /// Whether a read may proceed. Over the budget, a new request first takes back the
    /// oldest bytes held by unfinished requests; more of a head already started is refused.
    pub(crate) fn gate(&self) -> Gate {
        let overload = &self.0.overload;
        let mut wake = Vec::new();
        let gate = self.with(|table, id| match table.conns.get(&id) {
            Some(Conn {
                evicted: Some(why), ..
            }) => Gate::Evicted(*why),
            // More of a head already started is refused: letting it take back others'
            // bytes would let stalled heads churn through the budget (each step a parse).
            Some(conn) if conn.phase != Phase::Busy && overload.over_budget() => {
                if conn.head_bytes == 0 && overload.make_room(table, 1, id, &mut wake) {
                    Gate::Open
                } else {
                    Gate::OverBudget
                }
            }
            _ => Gate::Open,
        });
        wake.into_iter().for_each(Waker::wake);
        gate
    }

    /// Registers the waiting reader and returns when its read must give up, and whether
    /// that is the header deadline (false: the idle one); None while a request is served.
    /// The deadline is the configured one shrunk by the load at this moment.
    pub(crate) fn wait_for_bytes(&self, waker: &Waker) -> Option<(Instant, bool)> {
        let overload = &self.0.overload;
        let timeouts = overload.settings.timeouts;
        let max = overload.settings.max_connections;
        self.with(|table, id| {
            let open = table.open;
            let conn = table.conns.get_mut(&id)?;
            if !conn.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
                conn.reader = Some(waker.clone());
            }
            match conn.phase {
                Phase::Opened | Phase::Head => {
                    Some((conn.since + shrink(timeouts.header, open, max), true))
                }
                Phase::Idle => Some((conn.since + shrink(timeouts.idle, open, max), false)),
                Phase::Busy => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn settings(max: usize) -> Settings {
        Settings {
            max_connections: max,
            per_address_connections: 0,
            per_address_unfinished: 0,
            memory_budget: 1000,
            timeouts: Timeouts {
                header: Duration::from_secs(10),
                idle: Duration::from_secs(60),
            },
        }
    }

    /// An event stream's connection is busy while its guard lives: no idle deadline, not
    /// evicted for a newcomer; idle (and evictable) once the stream is dropped.
    #[tokio::test(start_paused = true)]
    async fn a_long_lived_reply_keeps_its_connection_busy() {
        let overload = Overload::new(settings(1));
        let (a, _) = overload.admit(ip(1)).unwrap();
        a.request_started();
        let stream = a.long_lived();
        tokio::time::advance(Duration::from_secs(120)).await;
        let waker = futures_util::task::noop_waker();
        assert_eq!(
            a.wait_for_bytes(&waker),
            None,
            "no read deadline while it streams"
        );
        assert_eq!(overload.admit(ip(2)).unwrap_err(), Refusal::MaxConnections);
        drop(stream);
        assert!(
            a.wait_for_bytes(&waker).is_some(),
            "idle again: the idle deadline"
        );
        let (_b, why) = overload.admit(ip(2)).unwrap();
        assert_eq!(why, Some(Eviction::OldestIdle));
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn deadlines_shrink_past_half_the_bound() {
        let ten = Duration::from_secs(10);
        assert_eq!(shrink(ten, 0, 100), ten);
        assert_eq!(shrink(ten, 50, 100), ten);
        assert_eq!(shrink(ten, 75, 100), Duration::from_secs(5));
        assert_eq!(shrink(ten, 90, 100), Duration::from_secs(2));
        assert_eq!(shrink(ten * 6, 100, 100), Duration::from_secs(6));
        assert_eq!(shrink(ten, 200, 100), FLOOR);
        // Never below two seconds, unless configured lower.
        assert_eq!(shrink(Duration::from_secs(3), 100, 100), FLOOR);
        let short = Duration::from_millis(300);
        assert_eq!(shrink(short, 100, 100), short);
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_idle_connection_yields_first() {
        let overload = Overload::new(settings(2));
        let (a, _) = overload.admit(ip(1)).unwrap();
        let (b, _) = overload.admit(ip(2)).unwrap();
        // a is busy, b went idle: b is the one closed for a newcomer.
        a.request_started();
        b.request_started();
        b.request_finished();
        tokio::time::advance(Duration::from_millis(10)).await;
        let (c, why) = overload.admit(ip(3)).unwrap();
        assert_eq!(why, Some(Eviction::OldestIdle));
        assert_eq!(b.gate(), Gate::Evicted(Eviction::OldestIdle));
        assert_eq!(a.gate(), Gate::Open);
        assert_eq!(overload.open(), 2);
        // a busy, c a fresh head: no one may be closed yet.
        assert_eq!(overload.admit(ip(4)).unwrap_err(), Refusal::MaxConnections);
        // Once c's head is older than EVICT_HEAD_AFTER, it is.
        tokio::time::advance(EVICT_HEAD_AFTER).await;
        let (_d, why) = overload.admit(ip(4)).unwrap();
        assert_eq!(why, Some(Eviction::OldestUnfinished));
        assert_eq!(c.gate(), Gate::Evicted(Eviction::OldestUnfinished));
        drop((b, c));
        assert_eq!(overload.open(), 2);
        drop(a);
        assert_eq!(overload.open(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn per_address_caps() {
        let mut s = settings(100);
        s.per_address_connections = 3;
        s.per_address_unfinished = 2;
        let overload = Overload::new(s);
        let (a, _) = overload.admit(ip(1)).unwrap();
        let (_b, _) = overload.admit(ip(1)).unwrap();
        assert_eq!(
            overload.admit(ip(1)).unwrap_err(),
            Refusal::AddressUnfinished
        );
        overload.admit(ip(2)).expect("another address");
        a.request_started();
        a.request_finished();
        let (_c, _) = overload.admit(ip(1)).expect("a is idle now");
        assert_eq!(
            overload.admit(ip(1)).unwrap_err(),
            Refusal::AddressConnections
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heads_and_bodies_share_the_budget() {
        let overload = Overload::new(settings(10));
        let (a, _) = overload.admit(ip(1)).unwrap();
        let (b, _) = overload.admit(ip(2)).unwrap();
        a.bytes_arrived(600);
        assert_eq!(overload.bytes_in_flight(), 600);
        assert_eq!(b.gate(), Gate::Open);
        b.request_started();
        assert!(!b.reserve_body(500), "600 + 500 > 1000");
        assert!(b.reserve_body(400));
        assert_eq!(a.gate(), Gate::OverBudget);
        assert_eq!(b.gate(), Gate::Open, "a request under way reads its body");
        a.request_started();
        assert_eq!(overload.bytes_in_flight(), 400, "a parsed head is released");
        b.request_finished();
        assert_eq!(overload.bytes_in_flight(), 0);
        b.request_started();
        assert!(b.reserve_body(1000));
        drop(b);
        assert_eq!(
            overload.bytes_in_flight(),
            0,
            "released when the connection ends"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_unfinished_bytes_yield_to_a_new_request() {
        let overload = Overload::new(settings(10));
        let (a, _) = overload.admit(ip(1)).unwrap();
        let (b, _) = overload.admit(ip(2)).unwrap();
        a.bytes_arrived(600); // a stalled head
        b.request_started();
        assert!(b.reserve_body(400)); // a stalled body
        tokio::time::advance(Duration::from_millis(100)).await;
        let (c, _) = overload.admit(ip(3)).unwrap();
        assert_eq!(
            c.gate(),
            Gate::OverBudget,
            "both younger than EVICT_HEAD_AFTER"
        );
        tokio::time::advance(EVICT_HEAD_AFTER).await;
        // c's new head takes the oldest bytes back: a's.
        assert_eq!(c.gate(), Gate::Open);
        assert_eq!(a.gate(), Gate::Evicted(Eviction::Memory));
        assert_eq!(overload.bytes_in_flight(), 400);
        c.bytes_arrived(10);
        // More of a head already started is not given others' bytes.
        let (e, _) = overload.admit(ip(5)).unwrap();
        e.bytes_arrived(1);
        tokio::time::advance(EVICT_HEAD_AFTER).await;
        assert!(overload.bytes_in_flight() < 1000);
        let (f, _) = overload.admit(ip(6)).unwrap();
        f.bytes_arrived(1000 - overload.bytes_in_flight());
        assert_eq!(e.gate(), Gate::OverBudget);
        drop((e, f));
        c.request_started();
        // c's 900-byte body needs b's bytes too.
        assert!(c.reserve_body(900));
        assert_eq!(b.gate(), Gate::Evicted(Eviction::Memory));
        assert_eq!(overload.bytes_in_flight(), 900);
        // A body already read is not taken back.
        c.body_done();
        let (d, _) = overload.admit(ip(4)).unwrap();
        tokio::time::advance(EVICT_HEAD_AFTER).await;
        d.request_started();
        assert!(!d.reserve_body(200));
        drop((a, b));
        assert_eq!(
            overload.bytes_in_flight(),
            900,
            "evicted bytes were returned once"
        );
        drop(c);
        assert_eq!(overload.bytes_in_flight(), 0);
    }
}
