//! The key names of a namespace, for tools that read Redis directly.
//!
//! An operator's tool that checks or mends a namespace (the `sessions-admin` CLI) must name
//! exactly the keys the store writes; a second copy of the layout would drift from it. This
//! module lends the store's own key names (see the crate's `layout` module and
//! docs/spec/redis-sessions.md#key-layout) without exposing the store's internals.

use crate::layout::{Layout, Shard};
use crate::options::Options;

/// Characters of a token (55 random, `Z`, the creation time in base 36): index members are
/// cut by this length, since an id may contain `:`.
pub const TOKEN_LEN: usize = 64;

/// The key names of one namespace, in the layout a store with the same options uses.
#[derive(Debug, Clone)]
pub struct NamespaceKeys {
    layout: Layout,
}

impl NamespaceKeys {
    /// The names a store connected with `options` uses (Node layout on one Redis, sharded
    /// on a cluster, unless `options` choose).
    pub fn of(options: &Options) -> Self {
        NamespaceKeys {
            layout: Layout::of(options),
        }
    }

    /// The Node-compatible layout of `namespace` (one shard, prefix `{ns}:`).
    pub fn node(namespace: &str) -> Self {
        NamespaceKeys {
            layout: Layout::node(namespace),
        }
    }

    /// True for the sharded (cluster) layout.
    pub fn is_sharded(&self) -> bool {
        self.layout.is_clustered()
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        self.layout.namespace()
    }

    /// Every shard's key names (one in the Node layout).
    pub fn shards(&self) -> Vec<ShardKeys> {
        self.layout
            .shards()
            .iter()
            .cloned()
            .map(ShardKeys)
            .collect()
    }

    /// `{ns}:{layout}`: the record of the layout the namespace was written with.
    pub fn record_key(&self) -> String {
        self.layout.record_key()
    }

    /// The channel whose messages `{app}:{token}` drop a session from every process's
    /// cache (`{ns}:cache` in the Node layout, which Node processes listen on).
    pub fn cache_channel(&self) -> String {
        self.layout.cache_channel()
    }

    /// The channel writes to `shard` announce dropped sessions on (`{app}:{token}`): the
    /// Node layout's `{ns}:cache` (PUBLISH, where Node processes listen), or the sharded
    /// layout's `{ns}:{tag}:cache` (SPUBLISH: it reaches only the shard's own nodes).
    pub fn cache_channel_of(&self, shard: &ShardKeys) -> String {
        if self.layout.is_clustered() {
            shard.0.cache_channel()
        } else {
            self.layout.cache_channel()
        }
    }

    /// `{token}:{id}`: a member of an app's `_sessions`.
    pub fn session_member(token: &str, id: &str) -> String {
        Layout::session_member(token, id)
    }

    /// `{app}:{token}:{id}`: a member of `SESSIONS`.
    pub fn expiry_member(app: &str, token: &str, id: &str) -> String {
        Layout::expiry_member(app, token, id)
    }
}

/// The key names of one shard (the whole namespace in the Node layout).
#[derive(Debug, Clone)]
pub struct ShardKeys(Shard);

impl ShardKeys {
    /// The prefix every key of the shard starts with: `{ns}:` or `{ns}:{tag}:`.
    pub fn prefix(&self) -> &str {
        self.0.prefix()
    }

    /// `…{app}:{token}`: a session's hash.
    pub fn session(&self, app: &str, token: &str) -> String {
        self.0.session(app, token)
    }

    /// `…{app}:_sessions`: the app's sessions by last activity.
    pub fn app_sessions(&self, app: &str) -> String {
        self.0.app_sessions(app)
    }

    /// `…{app}:_users`: the app's ids by last activity.
    pub fn app_users(&self, app: &str) -> String {
        self.0.app_users(app)
    }

    /// `…{app}:us:`: the prefix of the per-id token sets.
    pub fn user_sessions_prefix(&self, app: &str) -> String {
        self.0.user_sessions_prefix(app)
    }

    /// `…{app}:us:{id}`: the tokens of one id.
    pub fn user_sessions(&self, app: &str, id: &str) -> String {
        self.0.user_sessions(app, id)
    }

    /// `…SESSIONS`: every session of the shard by time of death.
    pub fn expiries(&self) -> String {
        self.0.expiries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_the_node_modules() {
        let keys = NamespaceKeys::node("rs");
        let shard = &keys.shards()[0];
        assert_eq!(shard.session("app", "t"), "rs:app:t");
        assert_eq!(shard.app_sessions("app"), "rs:app:_sessions");
        assert_eq!(shard.app_users("app"), "rs:app:_users");
        assert_eq!(shard.user_sessions("app", "a:b"), "rs:app:us:a:b");
        assert_eq!(shard.expiries(), "rs:SESSIONS");
        assert_eq!(keys.record_key(), "rs:{layout}");
        assert_eq!(keys.cache_channel(), "rs:cache");
        assert_eq!(NamespaceKeys::expiry_member("a", "t", "i"), "a:t:i");
        assert_eq!(keys.cache_channel_of(shard), "rs:cache");
    }

    #[test]
    fn sharded_shards_announce_on_their_own_channel() {
        let keys = NamespaceKeys::of(
            &Options::default()
                .namespace("rs")
                .key_layout(crate::KeyLayout::Sharded { shards: 3 }),
        );
        assert!(keys.is_sharded());
        let shards = keys.shards();
        assert_eq!(shards.len(), 3);
        for shard in &shards {
            assert!(shard.prefix().starts_with("rs:{"), "{}", shard.prefix());
            assert_eq!(
                keys.cache_channel_of(shard),
                format!("{}cache", shard.prefix())
            );
        }
        assert_ne!(
            keys.cache_channel_of(&shards[0]),
            keys.cache_channel_of(&shards[1])
        );
    }
}
