//! The rules of a store that is moving: two stores during a move (one Redis onto a
//! cluster, or a namespace onto a new shard count), routed by the cut-over instant.
//!
//! Every token carries its creation time (after its `Z`, see [`token_created_ms`]). Before
//! the cut-over, sessions are created in the old store; from it on, in the new one. A
//! token is served by the store its creation time names until it expires, so nobody is
//! logged out; calls about a user or an app (soid, killsoid, activity, soapp, killall, the
//! sweep) reach both stores. Once the longest ttl has passed since the cut-over, the old
//! store holds no live session and can be retired.
//!
//! This file holds only the rules (which store, how two answers merge); `store.rs` makes
//! the calls, each through the side's own [`RedisSessions`](crate::RedisSessions), so each
//! side keeps its own cache, sweeper and invalidation channel.

use crate::session::Session;
use crate::token::token_created_ms;

/// How far from the cut-over a token's creation time may be and still be looked for in
/// the other store when its own store does not have it. Processes' clocks differ by a few
/// ms (NTP) and a create decides its store a moment before the token gets its time, so a
/// session created at the cut-over may sit on the other side of it; a minute covers any
/// sane skew, and only tokens of these two minutes pay the second look (and only when the
/// first one missed).
pub(crate) const SKEW_MS: u64 = 60_000;

/// Two stores and the instant that divides them.
#[derive(Debug, Clone)]
pub(crate) struct Migrating<S> {
    old: S,
    new: S,
    cutover_ms: u64,
}

impl<S> Migrating<S> {
    /// `old` serves tokens created before `cutover_ms` (ms since the epoch), `new` the rest.
    pub(crate) fn new(old: S, new: S, cutover_ms: u64) -> Self {
        Migrating {
            old,
            new,
            cutover_ms,
        }
    }

    /// The cut-over instant, ms since the epoch.
    pub(crate) fn cutover_ms(&self) -> u64 {
        self.cutover_ms
    }

    /// Where a session created at `now_ms` goes: the old store until the cut-over, so
    /// that a fleet can take the migrating configuration before the instant comes.
    pub(crate) fn for_create(&self, now_ms: u64) -> &S {
        if now_ms < self.cutover_ms {
            &self.old
        } else {
            &self.new
        }
    }

    /// The store that holds `token`, and the store to look in too when that one has no
    /// such session: only for tokens created within [`SKEW_MS`] of the cut-over.
    pub(crate) fn for_token(&self, token: &str) -> (&S, Option<&S>) {
        // A token without a readable time (not of this format) cannot be a session of
        // the old store's era that this library made: the new store answers for it.
        let Some(created) = token_created_ms(token) else {
            return (&self.new, None);
        };
        let (own, other) = if created < self.cutover_ms {
            (&self.old, &self.new)
        } else {
            (&self.new, &self.old)
        };
        let near = created.abs_diff(self.cutover_ms) <= SKEW_MS;
        (own, near.then_some(other))
    }

    /// Both stores, new first.
    pub(crate) fn both(&self) -> [&S; 2] {
        [&self.new, &self.old]
    }
}

/// Two lists each ordered most recently active first (soid, soapp), merged into one in the
/// same order. Sessions carry their idle time in whole seconds, so two sessions of the
/// two stores active in the same second keep the new store's first.
pub(crate) fn merge_by_activity(new: Vec<Session>, old: Vec<Session>) -> Vec<Session> {
    let mut merged = Vec::with_capacity(new.len() + old.len());
    let mut old = old.into_iter().peekable();
    for session in new {
        while let Some(o) = old.next_if(|o| o.idle < session.idle) {
            merged.push(o);
        }
        merged.push(session);
    }
    merged.extend(old);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(created_ms: u64) -> String {
        crate::token::generate(created_ms, None)
    }

    #[test]
    fn tokens_go_to_the_store_of_their_creation_time() {
        let m = Migrating::new("old", "new", 1_000_000);
        assert_eq!(m.for_token(&token(1)), (&"old", None));
        assert_eq!(m.for_token(&token(10_000_000)), (&"new", None));
        assert_eq!(m.for_token(&token(999_999)), (&"old", Some(&"new")));
        assert_eq!(m.for_token(&token(1_000_000)), (&"new", Some(&"old")));
        assert_eq!(
            m.for_token(&token(1_000_000 + SKEW_MS)),
            (&"new", Some(&"old"))
        );
        assert_eq!(m.for_token(&token(1_000_001 + SKEW_MS)), (&"new", None));
        assert_eq!(m.for_token("no-time-here"), (&"new", None));
    }

    #[test]
    fn creates_go_to_the_old_store_until_the_cutover() {
        let m = Migrating::new("old", "new", 1_000_000);
        assert_eq!(m.for_create(999_999), &"old");
        assert_eq!(m.for_create(1_000_000), &"new");
    }

    fn idle(idle: i64, id: &str) -> Session {
        Session {
            id: id.to_owned(),
            r: 0,
            w: 0,
            ttl: 100,
            idle,
            ip: String::new(),
            d: None,
            no_resave: false,
            handle: None,
            created_ms: None,
            corrupt: false,
        }
    }

    #[test]
    fn merged_lists_stay_most_recent_first() {
        let new = vec![idle(0, "n0"), idle(5, "n5"), idle(9, "n9")];
        let old = vec![idle(1, "o1"), idle(5, "o5"), idle(20, "o20")];
        let ids: Vec<String> = merge_by_activity(new, old)
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["n0", "o1", "n5", "o5", "n9", "o20"]);
        assert!(merge_by_activity(Vec::new(), Vec::new()).is_empty());
    }
}
