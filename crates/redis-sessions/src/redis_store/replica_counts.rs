//! Durable writes with `all` on a Redis Cluster: how many replicas the master of each hash
//! slot has, as the cluster's configuration (`CLUSTER NODES`) says.
//!
//! A write's WAIT runs on the master that ran the write (durable.rs), so "every replica"
//! is that master's replicas. They are counted as Sentinel's `all` counts them: every
//! replica the master has, up or not (a replica down now may be back and promoted later),
//! but not one configured never to take over (`nofailover`). A master without a replica
//! still waits for one, as on one server: an `all` write needs a copy somewhere else.

use super::cluster_nodes::{self, SLOTS};
use std::sync::atomic::{AtomicU16, Ordering};

/// Replicas to wait for, per hash slot.
pub(crate) struct SlotReplicas {
    wanted: Box<[AtomicU16]>,
}

impl SlotReplicas {
    /// Every slot waits for 1 until the first [`update`](Self::update).
    pub(super) fn new() -> Self {
        SlotReplicas {
            wanted: (0..SLOTS).map(|_| AtomicU16::new(1)).collect(),
        }
    }

    /// Replicas a write of `slot` waits for.
    pub(super) fn wanted(&self, slot: u16) -> u32 {
        self.wanted
            .get(usize::from(slot))
            .map_or(1, |w| u32::from(w.load(Ordering::Relaxed)))
    }

    /// Takes in a `CLUSTER NODES` answer; returns the least and most counts now in use
    /// (for the log line), or None when the answer names no slot (then nothing changes).
    pub(super) fn update(&self, nodes: &str) -> Option<(u16, u16)> {
        let counts = per_slot(nodes)?;
        for (slot, n) in counts.iter().enumerate() {
            self.wanted[slot].store(*n, Ordering::Relaxed);
        }
        Some((
            counts.iter().copied().min().unwrap_or(1),
            counts.iter().copied().max().unwrap_or(1),
        ))
    }
}

/// Per slot, the replicas of its master (at least 1); None when no line owns a slot.
fn per_slot(nodes: &str) -> Option<Vec<u16>> {
    let mut replicas: std::collections::HashMap<&str, u16> = Default::default();
    let mut masters = Vec::new();
    for node in cluster_nodes::lines(nodes).filter(|n| !n.has("handshake")) {
        if node.has("slave") && !node.has("nofailover") {
            *replicas.entry(node.master).or_default() += 1;
        } else if node.has("master") {
            masters.push(node);
        }
    }
    let mut counts = vec![1u16; SLOTS];
    let mut any = false;
    for master in masters {
        let n = replicas.get(master.id).copied().unwrap_or(0).max(1);
        for (low, high) in master.ranges() {
            for slot in counts.iter_mut().take(high.min(SLOTS - 1) + 1).skip(low) {
                *slot = n;
                any = true;
            }
        }
    }
    any.then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b1]
b1 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922
c1 127.0.0.1:7002@17002 master - 0 0 3 connected 10923-16383
r1 127.0.0.1:7003@17003 slave a1 0 0 1 connected
r2 127.0.0.1:7004@17004 slave,fail a1 0 0 1 disconnected
r3 127.0.0.1:7005@17005 slave b1 0 0 2 connected
r4 127.0.0.1:7006@17006 slave,nofailover c1 0 0 3 connected
r5 :0@0 slave,noaddr c1 0 0 3 disconnected
";

    #[test]
    fn each_slot_waits_for_every_replica_of_its_master() {
        let table = SlotReplicas::new();
        assert_eq!(table.wanted(0), 1);
        assert_eq!(table.update(NODES), Some((1, 2)));
        assert_eq!(table.wanted(0), 2, "a failed replica still counts");
        assert_eq!(table.wanted(5460), 2);
        assert_eq!(table.wanted(5461), 1);
        assert_eq!(
            table.wanted(16383),
            1,
            "nofailover and noaddr replicas do not"
        );
        assert_eq!(table.update("garbage\n"), None);
        assert_eq!(
            table.wanted(0),
            2,
            "an answer without slots changes nothing"
        );
    }
}
