//! Where sessions live in Redis: every key name the store uses is made here.
//!
//! **The Node-compatible layout** (the default, for one Redis server) is the Node module's,
//! byte for byte, so Node and Rust processes on the same Redis and namespace share sessions:
//!
//! | key | type | content |
//! |---|---|---|
//! | `{ns}:{app}:{token}` | hash | `id r w ip la ttl d no_resave` |
//! | `{ns}:{app}:_sessions` | zset | `{token}:{id}` by last activity |
//! | `{ns}:{app}:us:{id}` | set | the tokens of one id |
//! | `{ns}:{app}:_users` | zset | `{id}` by last activity |
//! | `{ns}:SESSIONS` | zset | `{app}:{token}:{id}` by time of death |
//!
//! With lifecycle events on (`Options::events`, off by default) each app also has
//! `{ns}:{app}:_events`, a stream of its sessions' starts and ends (see events.rs). Node
//! never reads or writes that name (its keys under `{ns}:{app}:` are 64-character tokens,
//! `_sessions`, `_users` and `us:…`), and Node processes write no events.
//!
//! **The cluster layout** divides the namespace into S shards. Every key of a shard starts
//! with `{ns}:{tag}:` where `{tag}` is a Redis Cluster hash tag, so a shard lives in one hash
//! slot and every script touches one slot. Within a shard the keys are the Node layout's
//! (`{ns}:{tag}:{app}:{token}`, `…:_sessions`, `…:SESSIONS`, …), so an app's events go to
//! one stream per shard (`{ns}:{tag}:{app}:_events`), in the slot of the sessions they
//! are about: every write still touches one slot. The tags are chosen so the
//! shards' slots are spread evenly over the slot range, hence over the masters. A user's
//! sessions live in the shard of their id (soid/killsoid: one call), and a token carries its
//! shard in its first two characters (get/set/kill: one call to one node).
//!
//! The operations only ask a [`Shard`] for key names, so the two layouts share them all.

use crate::options::{KeyLayout, Options, DEFAULT_SHARDS};

const SLOTS: u32 = 16384;

/// Characters of the random part of a token; two of them encode a shard (61² shards max).
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789";

/// Most shards a cluster layout may have (two token characters encode the shard).
pub(crate) const MAX_SHARDS: u16 = 61 * 61;

/// The key names of one shard: `{ns}:` in the Node layout, `{ns}:{tag}:` in the cluster one.
#[derive(Debug, Clone)]
pub(crate) struct Shard {
    prefix: String,
}

impl Shard {
    /// The prefix every key of this shard starts with.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `…{app}:` — prefix of an app's session hashes.
    pub(crate) fn app_prefix(&self, app: &str) -> String {
        format!("{}{app}:", self.prefix)
    }

    /// `…{app}:{token}`
    pub(crate) fn session(&self, app: &str, token: &str) -> String {
        format!("{}{app}:{token}", self.prefix)
    }

    /// `…{app}:_sessions`
    pub(crate) fn app_sessions(&self, app: &str) -> String {
        format!("{}{app}:_sessions", self.prefix)
    }

    /// `…{app}:_users`
    pub(crate) fn app_users(&self, app: &str) -> String {
        format!("{}{app}:_users", self.prefix)
    }

    /// `…{app}:us:` — prefix of the per-id token sets.
    pub(crate) fn user_sessions_prefix(&self, app: &str) -> String {
        format!("{}{app}:us:", self.prefix)
    }

    /// `…{app}:us:{id}`
    pub(crate) fn user_sessions(&self, app: &str, id: &str) -> String {
        format!("{}{app}:us:{id}", self.prefix)
    }

    /// `…{app}:_events` — the stream of the lifecycle events of the app's sessions in
    /// this shard (only when events are on).
    pub(crate) fn app_events(&self, app: &str) -> String {
        format!("{}{app}:_events", self.prefix)
    }

    /// `…SESSIONS` — every session of the shard, by time of death.
    pub(crate) fn expiries(&self) -> String {
        format!("{}SESSIONS", self.prefix)
    }

    /// `{ns}:{tag}:cache` — the shard's channel of cache invalidations (cluster layout):
    /// its hash tag puts it in the shard's slot, so an SPUBLISH reaches only the shard's
    /// master and replicas.
    pub(crate) fn cache_channel(&self) -> String {
        format!("{}cache", self.prefix)
    }
}

/// The version of the key format recorded with the layout; it changes only when a release
/// lays keys out differently, so that processes of two formats never share a namespace.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// What the layout record (`{ns}:{layout}`) holds: the layout a namespace was written with,
/// as [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutRecord {
    /// `node` or `sharded`.
    pub kind: String,
    /// Shards (1 in the Node layout).
    pub shards: u16,
    /// The key format's version (changed only by a release that lays keys out
    /// differently) of the process that wrote it first.
    pub version: u32,
}

impl std::fmt::Display for LayoutRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} layout, {} shard{}, version {}",
            self.kind,
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            self.version
        )
    }
}

/// The key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    namespace: String,
    shards: Vec<Shard>,
    clustered: bool,
}

impl Layout {
    /// The layout `options` ask for: the one chosen, else the Node-compatible one on a
    /// single Redis and the sharded one ([`DEFAULT_SHARDS`]) on a cluster.
    pub(crate) fn of(options: &Options) -> Self {
        let chosen = options.key_layout.unwrap_or(if options.cluster.is_empty() {
            KeyLayout::Node
        } else {
            KeyLayout::Sharded {
                shards: DEFAULT_SHARDS,
            }
        });
        match chosen {
            KeyLayout::Node => Layout::node(&options.namespace),
            KeyLayout::Sharded { shards } => Layout::cluster(&options.namespace, shards),
        }
    }

    /// The Node-compatible layout under namespace `ns`: one shard, prefix `{ns}:`.
    pub(crate) fn node(namespace: &str) -> Self {
        Layout {
            namespace: namespace.to_owned(),
            shards: vec![Shard {
                prefix: format!("{namespace}:"),
            }],
            clustered: false,
        }
    }

    /// The cluster layout under namespace `ns` with `shards` shards (clamped to
    /// 1..=[`MAX_SHARDS`]).
    pub(crate) fn cluster(namespace: &str, shards: u16) -> Self {
        let count = u32::from(shards.clamp(1, MAX_SHARDS));
        let shards = (0..count)
            .map(|k| Shard {
                prefix: format!("{namespace}:{{{}}}:", tag_in_slot_range(k, count)),
            })
            .collect();
        Layout {
            namespace: namespace.to_owned(),
            shards,
            clustered: true,
        }
    }

    /// True for the cluster layout.
    pub(crate) fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// Every shard (one in the Node layout).
    pub(crate) fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard holding the sessions of `id`.
    pub(crate) fn shard_for_id(&self, id: &str) -> usize {
        if self.shards.len() == 1 {
            return 0;
        }
        (crc16::State::<crc16::XMODEM>::calculate(id.as_bytes()) as usize) % self.shards.len()
    }

    /// The shard a token names, or None when it names none (then no such session exists).
    pub(crate) fn shard_for_token(&self, token: &str) -> Option<&Shard> {
        if !self.clustered {
            return self.shards.first();
        }
        let bytes = token.as_bytes();
        let digit = |b: u8| TOKEN_ALPHABET.iter().position(|&c| c == b);
        let index = digit(*bytes.first()?)? * 61 + digit(*bytes.get(1)?)?;
        self.shards.get(index)
    }

    /// The two characters that start a token of shard `index` (cluster layout only).
    pub(crate) fn token_marker(&self, index: usize) -> Option<[u8; 2]> {
        self.clustered
            .then(|| [TOKEN_ALPHABET[index / 61 % 61], TOKEN_ALPHABET[index % 61]])
    }

    /// `{ns}:cache` — the pub/sub channel of cache invalidations of the Node layout (the
    /// Node module's).
    pub(crate) fn cache_channel(&self) -> String {
        format!("{}:cache", self.namespace)
    }

    /// The channel a write to `shard` announces itself on, with its command as the first
    /// character (see ops/lib/announce.lua): `P{ns}:cache` in the Node layout, where Node
    /// processes listen; `S{ns}:{tag}:cache` (SPUBLISH) in the cluster layout, because a
    /// plain PUBLISH on a cluster is copied to every node over the cluster bus.
    pub(crate) fn invalidation_spec(&self, shard: &Shard) -> String {
        if self.clustered {
            format!("S{}", shard.cache_channel())
        } else {
            format!("P{}", self.cache_channel())
        }
    }

    /// `{ns}:{layout}` — the record of the layout the namespace was written with. The hash
    /// tag gives it one fixed slot whatever the shard count; Node processes never read it.
    pub(crate) fn record_key(&self) -> String {
        format!("{}:{{layout}}", self.namespace)
    }

    /// What this layout records (and expects to find recorded).
    pub(crate) fn record(&self) -> LayoutRecord {
        LayoutRecord {
            kind: if self.clustered { "sharded" } else { "node" }.to_owned(),
            shards: self.shards.len() as u16,
            version: LAYOUT_VERSION,
        }
    }

    /// The namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `{ns}:SESSIONS:sweeper` — a short lease so that one process of a fleet sweeps at a time.
    /// Not part of the Node layout; Node processes never read it.
    pub(crate) fn sweep_lease(&self) -> String {
        format!("{}:SESSIONS:sweeper", self.namespace)
    }

    /// `{token}:{id}` — member of `_sessions`.
    pub(crate) fn session_member(token: &str, id: &str) -> String {
        format!("{token}:{id}")
    }

    /// `{app}:{token}:{id}` — member of `SESSIONS`.
    pub(crate) fn expiry_member(app: &str, token: &str, id: &str) -> String {
        format!("{app}:{token}:{id}")
    }

    /// `{app}:{token}` — cache key and invalidation message.
    pub(crate) fn cache_message(app: &str, token: &str) -> String {
        format!("{app}:{token}")
    }
}

/// A hash tag whose slot lies in the k-th of `count` equal parts of the slot range, so that
/// shards spread evenly over masters that own contiguous, equal slot ranges.
fn tag_in_slot_range(k: u32, count: u32) -> String {
    let low = k * SLOTS / count;
    let high = ((k + 1) * SLOTS / count).max(low + 1);
    let slot =
        |tag: &str| u32::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % SLOTS;
    // The slots of `k.n` are spread uniformly, so a tag in a range of SLOTS/count slots is
    // found after about `count` tries.
    (0u32..)
        .map(|n| format!("{k}.{n}"))
        .find(|tag| (low..high).contains(&slot(tag)))
        .unwrap_or_else(|| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_shards_spread_over_the_slot_range() {
        let layout = Layout::cluster("rs", 48);
        assert_eq!(layout.shards().len(), 48);
        let mut slots: Vec<u32> = layout
            .shards()
            .iter()
            .map(|s| {
                let tag = s
                    .prefix()
                    .split('{')
                    .nth(1)
                    .and_then(|t| t.split('}').next())
                    .unwrap_or("");
                u32::from(crc16::State::<crc16::XMODEM>::calculate(tag.as_bytes())) % SLOTS
            })
            .collect();
        slots.sort_unstable();
        for (k, slot) in slots.iter().enumerate() {
            assert!((k as u32 * SLOTS / 48..(k as u32 + 1) * SLOTS / 48).contains(slot));
        }
    }

    #[test]
    fn tokens_carry_their_shard() {
        let layout = Layout::cluster("rs", 100);
        for index in [0, 1, 60, 61, 99] {
            let marker = layout.token_marker(index).expect("cluster");
            let token = format!(
                "{}{}",
                std::str::from_utf8(&marker).unwrap_or(""),
                "a".repeat(62)
            );
            let shard = layout.shard_for_token(&token).expect("shard");
            assert_eq!(shard.prefix(), layout.shards()[index].prefix());
        }
        assert!(Layout::cluster("rs", 10)
            .shard_for_token(&"9".repeat(64))
            .is_none());
        assert!(Layout::node("rs").token_marker(0).is_none());
    }
}
