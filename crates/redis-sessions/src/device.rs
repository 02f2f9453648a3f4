//! Devices: a user's sessions named without their tokens.
//!
//! A "my devices" page must let a user end one session ("sign out that laptop") without the
//! page ever holding that session's token: a token is a credential, and a list of them in a
//! page, a log or a browser's memory is a list of logins. Each session therefore has a
//! *handle*, a one-way hash of its token: the same in every process (so any server of a
//! fleet can list and end devices), stable for the session's life, and useless as a
//! credential.

use sha2::{Digest, Sha256};

/// Characters of a handle: 128 bits of the token's SHA-256, in lowercase hex.
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
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(HANDLE_LEN);
    for byte in &digest[..HANDLE_LEN / 2] {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
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
}
