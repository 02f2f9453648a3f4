//! An app's figures for operators (the REST console, dashboards): how many sessions and
//! users it has, how many were active lately, and how they spread over shards and the
//! masters that hold them.
//!
//! Every figure is read from the indexes the store keeps anyway (a ZCARD or ZCOUNT of an
//! app's `_sessions` and `_users`, O(log n) each), never by reading sessions: asking costs
//! the same on an app of ten sessions and of ten million, unlike counting a
//! [`soapp`](crate::RedisSessions::soapp) listing.

use serde::Serialize;

/// One app's figures, summed over its shards, with each shard's own (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AppStats {
    /// Live sessions (members of the app's `_sessions` index; a session past its end
    /// counts until the sweep removes it).
    pub sessions: u64,
    /// Distinct ids with at least one session.
    pub users: u64,
    /// For each window asked, in the order asked: sessions active within it.
    pub sessions_active: Vec<u64>,
    /// For each window asked, in the order asked: ids active within it (what
    /// [`activity`](crate::RedisSessions::activity) answers).
    pub users_active: Vec<u64>,
    /// Per shard of the layout, in shard order: one entry in the Node layout (and for the
    /// embedded store). During a migration, the new store's shards, then the old one's.
    pub shards: Vec<ShardStats>,
}

/// One shard's part of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShardStats {
    /// The shard's number in the layout (0 in the Node layout).
    pub shard: usize,
    /// The master that holds the shard on a Redis Cluster (`host:port`, from the
    /// cluster's own topology at the time of asking); `None` elsewhere, or when no node
    /// answered with the topology. Several shards share a master: the spread over masters
    /// is these entries grouped by node.
    pub node: Option<String>,
    /// The shard's sessions of the app.
    pub sessions: u64,
    /// The shard's ids of the app (an id's sessions all live in one shard, so the shards'
    /// counts add up to the app's).
    pub users: u64,
}

impl AppStats {
    /// Figures of one shard, from the counts read in one step: sessions, users, then
    /// sessions active and users active per window.
    pub(crate) fn of_shard(
        shard: usize,
        node: Option<String>,
        counts: &[u64],
        windows: usize,
    ) -> Self {
        let count = |i: usize| counts.get(i).copied().unwrap_or(0);
        AppStats {
            sessions: count(0),
            users: count(1),
            sessions_active: (0..windows).map(|w| count(2 + w)).collect(),
            users_active: (0..windows).map(|w| count(2 + windows + w)).collect(),
            shards: vec![ShardStats {
                shard,
                node,
                sessions: count(0),
                users: count(1),
            }],
        }
    }

    /// Adds `other`'s figures (another shard, or the other store of a migration).
    pub(crate) fn add(mut self, other: AppStats) -> Self {
        self.sessions += other.sessions;
        self.users += other.users;
        for (mine, theirs) in [
            (&mut self.sessions_active, &other.sessions_active),
            (&mut self.users_active, &other.users_active),
        ] {
            mine.resize(mine.len().max(theirs.len()), 0);
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.shards.extend(other.shards);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up() {
        let a = AppStats::of_shard(0, None, &[5, 3, 1, 4, 1, 2], 2);
        let b = AppStats::of_shard(1, Some("h:1".into()), &[2, 1, 0, 2, 0, 1], 2);
        let sum = a.add(b);
        assert_eq!((sum.sessions, sum.users), (7, 4));
        assert_eq!(sum.sessions_active, [1, 6]);
        assert_eq!(sum.users_active, [1, 3]);
        assert_eq!(sum.shards.len(), 2);
        assert_eq!(sum.shards[1].node.as_deref(), Some("h:1"));
    }

    #[test]
    fn missing_counts_read_as_zero() {
        let a = AppStats::of_shard(0, None, &[9], 1);
        assert_eq!((a.sessions, a.users, a.sessions_active[0]), (9, 0, 0));
    }
}
