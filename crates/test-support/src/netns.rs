//! Hosts made of Linux network namespaces, for partition tests: a partition between two
//! hosts is a real blackhole (every packet dropped, no reset), so connections hang as
//! they do when a network splits — which loopback cannot show.
//!
//! Three namespaces (hosts A, B, C) and this process's own namespace (host D, where the
//! test's stores run) are joined pairwise by veth links; each host has one address (on
//! its loopback, routed over the links), so a partition between two hosts is one link
//! made to drop everything (`tc qdisc ... pfifo limit 0` on both ends), and any split of
//! the four hosts can be made. Root and the `ip` and `tc` commands are needed:
//! [`unavailable`] says why a test cannot run (the tests then skip, saying so).
//!
//! A [`Deployment`] runs Redis servers and sentinels on these hosts.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Host A (a namespace).
pub const A: usize = 0;
/// Host B (a namespace).
pub const B: usize = 1;
/// Host C (a namespace).
pub const C: usize = 2;
/// Host D: this process's own namespace.
pub const D: usize = 3;

const NAMES: [char; 4] = ['a', 'b', 'c', 'd'];

/// Why partition tests cannot run here (not root, no `ip`/`tc`, namespaces refused), or
/// None when they can.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need root)".into());
    }
    for tool in ["ip", "tc"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if found.is_err() {
            return Some(format!("no `{tool}` command (install iproute2)"));
        }
    }
    // Unique per call: tests ask at the same time.
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let probe = format!(
        "rsp{}x{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    if !run(&["ip", "netns", "add", &probe]) {
        return Some("`ip netns add` refused (no network namespaces here)".into());
    }
    run(&["ip", "netns", "del", &probe]);
    None
}

/// Runs a command, quietly; true when it succeeded.
fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command and panics when it fails (setting the hosts up).
fn must(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Four hosts joined pairwise; removed (with every process started on them) when dropped.
pub struct Hosts {
    tag: String,
    net: u8,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Hosts {
    /// Makes the hosts. Panics when it cannot (check [`unavailable`] first).
    pub fn up() -> Self {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("rs{}{}", pid % 10_000, seq % 10);
        let net = (100 + (pid + seq * 7) % 150) as u8;
        let dir = std::env::temp_dir().join(format!("rs-netns-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let hosts = Hosts {
            tag,
            net,
            children: Vec::new(),
            dir,
        };
        for h in [A, B, C] {
            let ns = hosts.ns(h);
            must(&["ip", "netns", "add", &ns]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/32", hosts.ip(h)),
                "dev",
                "lo",
            ]);
        }
        for (x, y) in Self::pairs() {
            let (xy, yx) = (hosts.link(x, y), hosts.link(y, x));
            must(&[
                "ip", "link", "add", &xy, "type", "veth", "peer", "name", &yx,
            ]);
            for (host, end, peer) in [(x, &xy, y), (y, &yx, x)] {
                if host != D {
                    must(&["ip", "link", "set", end, "netns", &hosts.ns(host)]);
                }
                hosts.ip_cmd(host, &["link", "set", end, "up"]);
                if host == D && peer == A {
                    // This namespace's address, on its first link.
                    hosts.ip_cmd(
                        D,
                        &["addr", "add", &format!("{}/32", hosts.ip(D)), "dev", end],
                    );
                }
                let to = format!("{}/32", hosts.ip(peer));
                hosts.ip_cmd(
                    host,
                    &["route", "add", &to, "dev", end, "src", &hosts.ip(host)],
                );
            }
        }
        hosts
    }

    fn pairs() -> [(usize, usize); 6] {
        [(A, B), (A, C), (B, C), (A, D), (B, D), (C, D)]
    }

    fn ns(&self, host: usize) -> String {
        format!("{}{}", self.tag, NAMES[host])
    }

    /// The end in `from` of the link between `from` and `to`.
    fn link(&self, from: usize, to: usize) -> String {
        format!("{}{}{}", self.tag, NAMES[from], NAMES[to])
    }

    fn ip_cmd(&self, host: usize, args: &[&str]) {
        let mut all = vec!["ip"];
        let ns = self.ns(host);
        if host != D {
            all.extend(["-n", ns.as_str()]);
        }
        all.extend(args);
        must(&all);
    }

    fn tc(&self, host: usize, args: &[&str]) -> bool {
        let ns = self.ns(host);
        let mut all = vec![];
        if host != D {
            all.extend(["ip", "netns", "exec", ns.as_str()]);
        }
        all.push("tc");
        all.extend(args);
        run(&all)
    }

    /// The address of `host`.
    pub fn ip(&self, host: usize) -> String {
        format!("10.{}.0.{}", self.net, host + 1)
    }

    /// A folder for the processes' files.
    pub fn dir(&self) -> &PathBuf {
        &self.dir
    }

    /// Starts `program` on `host` (not D); its index for [`signal`](Self::signal).
    pub fn spawn(&mut self, host: usize, program: &str, args: &[String]) -> usize {
        assert_ne!(host, D, "processes of this host are started directly");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(host), program])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        crate::reap_with_this_process(child.id());
        self.children.push(child);
        self.children.len() - 1
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to process `index`.
    pub fn signal(&self, index: usize, signal: &str) {
        let pid = self.children[index].id().to_string();
        run(&["kill", &format!("-{signal}"), &pid]);
    }

    /// Drops every packet between `x` and `y`, both ways.
    pub fn cut(&self, x: usize, y: usize) {
        for (host, end) in [(x, self.link(x, y)), (y, self.link(y, x))] {
            assert!(
                self.tc(
                    host,
                    &["qdisc", "replace", "dev", &end, "root", "pfifo", "limit", "0"]
                ),
                "cut {end}"
            );
        }
    }

    /// Undoes [`cut`](Self::cut).
    pub fn heal(&self, x: usize, y: usize) {
        for (host, end) in [(x, self.link(x, y)), (y, self.link(y, x))] {
            self.tc(host, &["qdisc", "del", "dev", &end, "root"]);
        }
    }

    /// Undoes every cut.
    pub fn heal_all(&self) {
        for (x, y) in Self::pairs() {
            self.heal(x, y);
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        for h in [A, B, C] {
            run(&["ip", "netns", "del", &self.ns(h)]);
        }
        for (x, y) in Self::pairs() {
            if x == D || y == D {
                let end = if x == D {
                    self.link(x, y)
                } else {
                    self.link(y, x)
                };
                run(&["ip", "link", "del", &end]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command to `host:port` (from this process, host D), its raw RESP reply; fails
/// after `limit` (a blackholed host never answers).
pub fn ask(host: &str, port: u16, args: &[&str], limit: Duration) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr = format!("{host}:{port}")
        .parse()
        .map_err(|_| std::io::Error::other("address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{}\r\n", arg.len(), arg));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf)?;
        reply.extend_from_slice(&buf[..n]);
        if n == 0 || crate::resp_value_end(&reply, 0).is_some() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// A Redis server or sentinel of a [`Deployment`].
#[derive(Clone, Copy, Debug)]
pub struct Node {
    /// The host it runs on.
    pub host: usize,
    /// Its port.
    pub port: u16,
    /// Its process, for [`Hosts::signal`].
    pub process: usize,
}

/// Redis servers and three sentinels (quorum 2, `down-after-milliseconds 1000`,
/// `failover-timeout 5000`, as the loopback suites) on [`Hosts`].
pub struct Deployment {
    /// The hosts, to cut and heal.
    pub hosts: Hosts,
    /// The data servers: `servers[0]` is the first master.
    pub servers: Vec<Node>,
    /// The sentinels.
    pub sentinels: Vec<Node>,
}

/// The master's name in the sentinels' configuration.
pub const MASTER_NAME: &str = "mymaster";

impl Deployment {
    /// A master on `servers[0]`'s host, replicas on the others' hosts, a sentinel on each
    /// of `sentinels`' hosts; waits until every sentinel knows every replica.
    pub fn start(servers: &[usize], sentinels: &[usize]) -> Self {
        let mut hosts = Hosts::up();
        let binary = crate::server_binary();
        let mut nodes = Vec::new();
        for (i, &host) in servers.iter().enumerate() {
            let port = 7000 + i as u16;
            let dir = hosts.dir().join(format!("server{i}"));
            std::fs::create_dir_all(&dir).expect("dir");
            let mut args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                &format!("{} 127.0.0.1", hosts.ip(host)),
                "--protected-mode",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &dir.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if i > 0 {
                args.extend(["--replicaof".into(), hosts.ip(servers[0]), "7000".into()]);
            }
            let process = hosts.spawn(host, &binary, &args);
            nodes.push(Node {
                host,
                port,
                process,
            });
        }
        let mut watchers = Vec::new();
        for (i, &host) in sentinels.iter().enumerate() {
            let port = 7010 + i as u16;
            let dir = hosts.dir().join(format!("sentinel{i}"));
            std::fs::create_dir_all(&dir).expect("dir");
            let config = dir.join("sentinel.conf");
            let text = format!(
                "port {port}\nbind {} 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor {MASTER_NAME} {} 7000 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                 sentinel failover-timeout {MASTER_NAME} 5000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                hosts.ip(host),
                dir.display(),
                hosts.ip(servers[0]),
            );
            std::fs::write(&config, text).expect("sentinel config");
            let args = vec![config.display().to_string(), "--sentinel".to_string()];
            let process = hosts.spawn(host, &binary, &args);
            watchers.push(Node {
                host,
                port,
                process,
            });
        }
        let deployment = Deployment {
            hosts,
            servers: nodes,
            sentinels: watchers,
        };
        deployment.wait_settled(0, Duration::from_secs(30));
        deployment
    }

    /// `host:port` of every sentinel, in order.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| self.addr(s)).collect()
    }

    /// `host:port` of a node.
    pub fn addr(&self, node: &Node) -> String {
        format!("{}:{}", self.hosts.ip(node.host), node.port)
    }

    /// One command to a node (from host D), within 1 s.
    pub fn ask(&self, node: &Node, args: &[&str]) -> std::io::Result<String> {
        ask(
            &self.hosts.ip(node.host),
            node.port,
            args,
            Duration::from_secs(1),
        )
    }

    /// The index in `servers` of the master the sentinel names, if it answers.
    pub fn named_by(&self, sentinel: &Node) -> Option<usize> {
        let reply = self
            .ask(
                sentinel,
                &["SENTINEL", "get-master-addr-by-name", MASTER_NAME],
            )
            .ok()?;
        let mut out = Vec::new();
        crate::flatten(reply.as_bytes(), 0, &mut out)?;
        let (ip, port) = (out.first()?, out.get(1)?.parse::<u16>().ok()?);
        self.servers
            .iter()
            .position(|s| &self.hosts.ip(s.host) == ip && s.port == port)
    }

    /// True when every sentinel reachable from here that answers names `master`.
    pub fn all_name(&self, master: usize, sentinels: &[usize]) -> bool {
        sentinels
            .iter()
            .all(|&s| self.named_by(&self.sentinels[s]) == Some(master))
    }

    /// Waits until every sentinel names `master`, which has every other server as an
    /// online replica and is seen so by every sentinel; panics after `limit`.
    pub fn wait_settled(&self, master: usize, limit: Duration) {
        let replicas = self.servers.len() - 1;
        let started = Instant::now();
        loop {
            let info = self
                .ask(&self.servers[master], &["INFO", "replication"])
                .unwrap_or_default();
            let online = info.matches("state=online").count();
            let settled = online == replicas
                && info.contains("role:master")
                && self.sentinels.iter().all(|s| {
                    self.named_by(s) == Some(master)
                        && self
                            .ask(s, &["SENTINEL", "replicas", MASTER_NAME])
                            .is_ok_and(|r| {
                                r.matches("master-link-status\r\n$2\r\nok").count() == replicas
                                    && !r.contains("s_down")
                            })
                });
            if settled {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "not settled on server {master} within {limit:?}: {online} online replicas"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
