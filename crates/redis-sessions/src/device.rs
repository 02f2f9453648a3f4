//! Devices: a user's sessions named without their tokens.
//!
//! A "my devices" page must let a user end one session ("sign out that laptop") without the
//! page ever holding that session's token: a token is a credential, and a list of them in a
//! page, a log or a browser's memory is a list of logins. Each session therefore has a
//! *handle*, a one-way hash of its token: the same in every process (so any server of a
//! fleet can list and end devices), stable for the session's life, and useless as a
//! credential.
//!
//! The hash is SHA-1 (its first 128 bits), not a newer one, because Redis computes it too
//! (`redis.sha1hex` in Lua): the scripts that end sessions name each one in the lifecycle
//! event they write (see events.rs) by this handle, with no second round trip to hand
//! Redis the handles. A handle only has to be one-way, and SHA-1's preimage resistance is
//! intact (its known weakness is collisions, which do not matter here: tokens are random).

/// Characters of a handle: the first 128 bits of the token's SHA-1, in lowercase hex.
pub const HANDLE_LEN: usize = 32;

/// The handle of the session whose token is `token`.
///
/// ```
/// let token = "a".repeat(64);
/// let handle = redis_sessions::device_handle(&token);
/// assert_eq!(handle.len(), 32);
/// assert_eq!(handle, redis_sessions::device_handle(&token), "the same in every process");
/// assert!(!handle.contains(&token));
/// ```
#[must_use]
pub fn device_handle(token: &str) -> String {
    let mut hex = sha1_smol::Sha1::from(token.as_bytes()).digest().to_string();
    hex.truncate(HANDLE_LEN);
    hex
}

/// True for text shaped like a handle (what [`device_handle`] writes).
pub(crate) fn is_handle(text: &str) -> bool {
    text.len() == HANDLE_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_differ_per_token_and_look_like_handles() {
        let a = device_handle(&"a".repeat(64));
        let b = device_handle(&"b".repeat(64));
        assert_ne!(a, b);
        assert!(is_handle(&a) && is_handle(&b));
        assert!(!is_handle("ABCDEF") && !is_handle(&"g".repeat(32)));
    }

    #[test]
    fn a_handle_is_what_redis_sha1hex_writes() {
        // SHA-1("abc"), as `redis.sha1hex('abc')` returns it, cut to 32 characters.
        assert_eq!(device_handle("abc"), "a9993e364706816aba3e25717850c26c");
    }
}
