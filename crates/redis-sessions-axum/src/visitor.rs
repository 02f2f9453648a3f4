//! The user ids of visitor sessions (see [`SessionLayer::visitors`](crate::SessionLayer::visitors)).
//!
//! A visitor session is an ordinary session of the app whose user id is
//! [`VISITOR_PREFIX`] followed by 24 random letters and digits, e.g.
//! `visitor:q3Jx0bT7LmA2cZp9Rk4sWv1E`. Each visitor gets an id of its own, so the store's
//! per-user calls (`soid`, `killsoid`) never mix two visitors. The id is not a secret
//! (the token is the credential); it only has to be unique.

use rand::distr::{Alphanumeric, SampleString};

/// The prefix of every visitor session's user id. [`Session::upgrade`](crate::Session::upgrade)
/// refuses user ids that start with it, so a visitor id never names a user.
pub const VISITOR_PREFIX: &str = "visitor:";

/// The user id prefix of the mark a login leaves for the token it replaced (see
/// [`SessionLayer::rotation_grace`](crate::SessionLayer::rotation_grace)), followed by
/// that token's device handle: a visitor id, so listings filtered with [`is_visitor_id`]
/// leave it out.
pub const ROTATED_PREFIX: &str = "visitor:rotated:";

/// The user id of the mark for a replaced `token`: its handle, never the token.
pub(crate) fn rotated_id(token: &str) -> String {
    format!("{ROTATED_PREFIX}{}", redis_sessions::device_handle(token))
}

/// True for the user id of a visitor session: to leave visitors out of `soapp`,
/// `sessions.retain(|s| !is_visitor_id(&s.id))`.
#[must_use]
pub fn is_visitor_id(id: &str) -> bool {
    id.starts_with(VISITOR_PREFIX)
}

/// A new visitor id: 24 characters of `[A-Za-z0-9]` (about 143 bits) make collisions
/// impossible in practice.
pub(crate) fn new_visitor_id() -> String {
    format!(
        "{VISITOR_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_ids_are_marked_and_distinct() {
        let a = new_visitor_id();
        assert!(is_visitor_id(&a));
        assert_eq!(a.len(), VISITOR_PREFIX.len() + 24);
        assert_ne!(a, new_visitor_id());
        assert!(!is_visitor_id("alice"));
    }
}
