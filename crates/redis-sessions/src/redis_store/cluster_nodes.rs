//! Reading a `CLUSTER NODES` answer, in one place: the health check lists its masters and
//! replicas (connection/nodes.rs), durable writes count each slot's replicas
//! (replica_counts.rs), and an app's figures name the master of each shard (here). The
//! client routes commands by its own map; none of these does.

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16384;

/// The hash slot of a key, as Redis computes it: the part between the first `{` and the
/// next `}` when it is not empty, else the whole key.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    let hashed = tagged.unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS as u16
}

/// One line of the answer: `id addr@cport flags master ping pong epoch state slot…`.
pub(crate) struct NodeLine<'a> {
    /// The node's id.
    pub(crate) id: &'a str,
    /// `host:port` (the cluster bus port cut off).
    pub(crate) addr: &'a str,
    /// `myself`, `master`, `slave`, `fail`, `noaddr`, `nofailover`…
    flags: Vec<&'a str>,
    /// A replica's master id (`-` for a master).
    pub(crate) master: &'a str,
    /// Fields 8..: slot ranges (`0-5460`, `12000`) and `[slot->-id]` markers of a slot on
    /// the move, listed besides the ranges.
    slots: Vec<&'a str>,
}

impl<'a> NodeLine<'a> {
    /// Whether the flags include `flag` (a whole flag, not a part of one).
    pub(crate) fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }

    /// Whether the line lists any slot field (a master without one serves nothing).
    pub(crate) fn serves_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The slot ranges it serves, inclusive; markers and malformed fields left out.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.slots
            .iter()
            .filter(|r| !r.starts_with('['))
            .filter_map(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                Some((low.parse().ok()?, high.parse().ok()?))
            })
    }

    /// `(host, port)` of its address, or None when it has none that parses.
    pub(crate) fn host_port(&self) -> Option<(String, u16)> {
        let (host, port) = self.addr.rsplit_once(':')?;
        Some((host.to_string(), port.parse().ok()?))
    }
}

/// The lines of a `CLUSTER NODES` answer, but those of nodes without an address (`noaddr`)
/// and lines too short to be node lines.
pub(crate) fn lines(cluster_nodes: &str) -> impl Iterator<Item = NodeLine<'_>> {
    cluster_nodes.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (id, addr, flags, master) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
        );
        let node = NodeLine {
            id,
            addr: addr.split('@').next()?,
            flags: flags.split(',').collect(),
            master,
            slots: fields.get(8..).unwrap_or_default().to_vec(),
        };
        (!node.has("noaddr")).then_some(node)
    })
}

/// `host:port` of the master whose slot ranges hold the slot of `key`, or None when no
/// line claims it.
pub(crate) fn owner_of_key(cluster_nodes: &str, key: &str) -> Option<String> {
    let slot = usize::from(key_slot(key.as_bytes()));
    lines(cluster_nodes)
        .find(|n| n.has("master") && n.ranges().any(|(low, high)| (low..=high).contains(&slot)))
        .map(|n| n.addr.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [93->-b2]
b2 10.0.0.2:7001@17001 master - 0 0 2 connected 5461-10922 12000
c3 10.0.0.3:7002@17002 master,fail - 0 0 3 connected 10923-11999 12001-16383
d4 10.0.0.4:7003@17003 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";

    #[test]
    fn the_owner_is_the_master_whose_ranges_hold_the_slot() {
        // "{a}" hashes to slot 15495, "{b}" to 3300, "{c}" to 7365.
        assert_eq!(key_slot(b"{a}x"), 15495);
        assert_eq!(
            owner_of_key(NODES, "{a}x").as_deref(),
            Some("10.0.0.3:7002")
        );
        assert_eq!(owner_of_key(NODES, "{b}").as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(owner_of_key(NODES, "{c}").as_deref(), Some("10.0.0.2:7001"));
    }

    #[test]
    fn a_single_slot_range_and_an_unclaimed_slot() {
        let single = "b2 h:1@2 master - 0 0 2 connected 3300\n";
        assert_eq!(owner_of_key(single, "{b}").as_deref(), Some("h:1"));
        assert_eq!(owner_of_key(single, "{a}"), None);
        assert_eq!(owner_of_key("", "{a}"), None);
        assert_eq!(owner_of_key("garbage line\n", "{a}"), None);
    }

    #[test]
    fn slots_are_those_of_redis() {
        // CLUSTER KEYSLOT answers of Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{}foo"), 9500, "an empty tag: the whole key");
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"a{b}c"), 3300);
        assert_eq!(key_slot(b"b"), 3300);
    }
}
