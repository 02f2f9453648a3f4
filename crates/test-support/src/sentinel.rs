//! A throwaway Redis Sentinel deployment: a master, its replica and three sentinels on
//! free loopback ports, for failover tests. The sentinels run the same binary as the
//! servers ([`crate::server_binary`] with `--sentinel`), so it works on Valkey too.

use crate::tls::Certificate;
use crate::{free_port, reap_with_this_process, RedisServer};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The master's name in the sentinels' configuration.
pub const MASTER_NAME: &str = "mymaster";

/// One sentinel process, stopped when dropped.
pub struct Sentinel {
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
    child: Child,
}

impl Sentinel {
    /// Starts a sentinel that monitors `master` (quorum 2, master down after 1 s of
    /// silence), with a TLS listener too when given a certificate, and waits until it
    /// answers.
    fn start(master_port: u16, tls: Option<&Certificate>) -> Self {
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let dir =
            std::env::temp_dir().join(format!("rs-test-sentinel-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("sentinel.conf");
        let mut text = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 5000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n",
            dir = dir.display()
        );
        if let (Some(certificate), Some(tls_port)) = (tls, tls_port) {
            // The same settings as a server's, written as configuration lines.
            for pair in crate::tls::server_args(certificate, tls_port).chunks(2) {
                text.push_str(&format!(
                    "{} {}\n",
                    pair[0].trim_start_matches("--"),
                    pair[1]
                ));
            }
        }
        std::fs::write(&config, text).expect("sentinel config");
        let child = Command::new(crate::server_binary())
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a sentinel");
        reap_with_this_process(child.id());
        let sentinel = Sentinel {
            port,
            tls_port,
            dir,
            child,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if sentinel
                .ask(&["PING"])
                .is_ok_and(|r| r.starts_with("+PONG"))
            {
                return sentinel;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sentinel on port {port} did not start");
    }

    /// `host:port` of the sentinel.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of the sentinel's TLS listener, when it has one (its certificate is the
    /// set's self-signed one: a client trusts it through `SSL_CERT_FILE`).
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("rediss://127.0.0.1:{port}"))
    }

    fn ask(&self, args: &[&str]) -> std::io::Result<String> {
        crate::send_command(self.port, args)
    }

    /// The port of the master this sentinel names now.
    pub fn master_port(&self) -> Option<u16> {
        let reply = self
            .ask(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME])
            .ok()?;
        let mut out = Vec::new();
        crate::flatten(reply.as_bytes(), 0, &mut out)?;
        out.get(1)?.parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One failover done by [`SentinelSet::kill_master`].
pub struct Failover {
    /// The index in `servers` of the promoted server.
    pub new_master: usize,
    /// When the old master was dead (killed and reaped).
    pub killed_at: Instant,
    /// How long after `killed_at` the sentinels named the new master and it acted as one.
    pub promoted_after: Duration,
}

/// A master, one replica and three sentinels.
pub struct SentinelSet {
    /// The two data servers; which one is master changes with each failover.
    pub servers: Vec<RedisServer>,
    /// The three sentinels.
    pub sentinels: Vec<Sentinel>,
}

impl SentinelSet {
    /// Starts the set and waits until every sentinel knows the replica and the others.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts the set with sentinels that also listen for TLS (see [`Sentinel::tls_url`]).
    pub fn start_with_tls(certificate: &Certificate) -> Self {
        Self::start_with(Some(certificate))
    }

    fn start_with(tls: Option<&Certificate>) -> Self {
        let master = RedisServer::start();
        let replica = RedisServer::start_replica_of(&master);
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(master.port(), tls))
            .collect();
        let set = SentinelSet {
            servers: vec![master, replica],
            sentinels,
        };
        set.wait_until_settled(set.servers[0].port(), Duration::from_secs(20));
        set
    }

    /// `host:port` of every sentinel.
    pub fn addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Sentinel::addr).collect()
    }

    /// The index in `servers` of the master the first sentinel names.
    pub fn master_index(&self) -> usize {
        let port = self.sentinels[0].master_port();
        self.servers
            .iter()
            .position(|s| Some(s.port()) == port)
            .expect("the sentinels name one of the servers")
    }

    /// Waits until every sentinel names the server on `master_port`, sees one replica
    /// and two other sentinels; panics after `limit`.
    pub fn wait_until_settled(&self, master_port: u16, limit: Duration) {
        let started = Instant::now();
        loop {
            let settled = self.sentinels.iter().all(|s| {
                s.master_port() == Some(master_port)
                    && s.ask(&["SENTINEL", "master", MASTER_NAME]).is_ok_and(|r| {
                        r.contains("num-slaves\r\n$1\r\n1\r\n")
                            && r.contains("num-other-sentinels\r\n$1\r\n2\r\n")
                    })
                    // The replica is seen up and linked: it can be promoted next time.
                    && s.ask(&["SENTINEL", "replicas", MASTER_NAME]).is_ok_and(|r| {
                        !r.contains("s_down")
                            && !r.contains("disconnected")
                            && r.contains("master-link-status\r\n$2\r\nok")
                            && !r.contains("slave-priority\r\n$1\r\n0\r\n")
                    })
            });
            if settled {
                return;
            }
            if started.elapsed() >= limit {
                let seen: Vec<String> = self
                    .sentinels
                    .iter()
                    .map(|s| {
                        let replicas = s
                            .ask(&["SENTINEL", "replicas", MASTER_NAME])
                            .unwrap_or_default();
                        format!(
                            "master {:?}, replicas {}",
                            s.master_port(),
                            replicas.replace("\r\n", " ")
                        )
                    })
                    .collect();
                panic!("sentinels not settled on :{master_port} within {limit:?}: {seen:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the master and waits (at most `limit`) until the sentinels name the
    /// other server and it acts as master.
    pub fn kill_master(&mut self, limit: Duration) -> Failover {
        let old = self.master_index();
        let new = 1 - old;
        let new_port = self.servers[new].port();
        self.servers[old].stop();
        // The process is gone (killed and reaped): no call started from now on reaches it.
        let killed_at = Instant::now();
        while killed_at.elapsed() < limit {
            if self
                .sentinels
                .iter()
                .all(|s| s.master_port() == Some(new_port))
                && self.servers[new]
                    .command(&["ROLE"])
                    .is_ok_and(|r| r.contains("master"))
            {
                return Failover {
                    new_master: new,
                    killed_at,
                    promoted_after: killed_at.elapsed(),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no failover within {limit:?}");
    }

    /// SIGSTOPs the master and waits (at most `limit`) until every sentinel names the
    /// other server and it acts as master; the old master stays stopped (see
    /// [`resume`](Self::resume)).
    pub fn pause_master(&mut self, limit: Duration) -> Failover {
        let old = self.master_index();
        let new = 1 - old;
        let new_port = self.servers[new].port();
        self.servers[old].signal("STOP");
        let paused_at = Instant::now();
        while paused_at.elapsed() < limit {
            if self
                .sentinels
                .iter()
                .all(|s| s.master_port() == Some(new_port))
                && self.servers[new]
                    .command(&["ROLE"])
                    .is_ok_and(|r| r.contains("master"))
            {
                return Failover {
                    new_master: new,
                    killed_at: paused_at,
                    promoted_after: paused_at.elapsed(),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.servers[old].signal("CONT");
        panic!("no failover within {limit:?}");
    }

    /// SIGCONTs a server paused by [`pause_master`](Self::pause_master).
    pub fn resume(&self, index: usize) {
        self.servers[index].signal("CONT");
    }

    /// True when the server `index` answers ROLE as a replica.
    pub fn is_replica(&self, index: usize) -> bool {
        self.servers[index]
            .command(&["ROLE"])
            .is_ok_and(|r| r.contains("slave"))
    }

    /// Restarts the killed server (empty: no persistence) as a replica of the new master,
    /// as an operator would (the sentinels would too, after several seconds), and waits
    /// until it is in sync and every sentinel sees it up.
    ///
    /// It comes back with `replica-priority 0` until its first sync is done: the sentinels
    /// must not promote it while it is still empty (a replica that never synced reports no
    /// link-down time, so Sentinel would take it as a fit candidate if the master it syncs
    /// from were seen down a moment, and the promotion would wipe every session).
    pub fn bring_back(&mut self, index: usize, limit: Duration) {
        let master_port = self.servers[1 - index].port();
        self.servers[index].restart_with(&[
            "--replicaof",
            "127.0.0.1",
            &master_port.to_string(),
            "--replica-priority",
            "0",
        ]);
        self.servers[index].wait_link_up(limit);
        self.servers[index]
            .command(&["CONFIG", "SET", "replica-priority", "100"])
            .expect("CONFIG SET replica-priority");
        // A sentinel refreshes what it knows of a replica every 10 s: a full `limit`
        // again for every sentinel to see it linked, with its priority back.
        self.wait_until_settled(master_port, limit);
    }
}
