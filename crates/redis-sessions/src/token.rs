//! Session tokens in the Node module's format, drawn from a CSPRNG.
//!
//! 55 characters of `[A-Ya-z0-9]`, a `Z`, then the creation time in milliseconds in base 36:
//! 64 characters in all. The Node module draws with `Math.random()`, which an attacker can
//! predict from a few observed tokens; we draw from the operating system's CSPRNG (through
//! `rand`'s `ThreadRng`, a ChaCha generator seeded and reseeded from the OS).

use rand::Rng;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYabcdefghijklmnopqrstuvwxyz0123456789";
const RANDOM_LEN: usize = 55;

/// A new, unguessable token. In the cluster layout its first two characters name its
/// shard (`marker`); the other 53 random characters still carry over 300 bits.
pub(crate) fn generate(now_ms: u64, marker: Option<[u8; 2]>) -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(64);
    let random_len = match marker {
        Some(m) => {
            token.push(char::from(m[0]));
            token.push(char::from(m[1]));
            RANDOM_LEN - 2
        }
        None => RANDOM_LEN,
    };
    for _ in 0..random_len {
        // `random_range` rejects biased draws, so every character is equally likely.
        let index = rng.random_range(0..ALPHABET.len());
        token.push(char::from(ALPHABET[index]));
    }
    token.push('Z');
    token.push_str(&base36(now_ms));
    token
}

/// When a token was created, in milliseconds since the epoch (its part after the `Z`), or
/// None for a text that is not a token of this format.
#[must_use]
pub fn token_created_ms(token: &str) -> Option<u64> {
    let (_, time) = token.split_once('Z')?;
    u64::from_str_radix(time, 36).ok()
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_the_node_shape() {
        let now_ms = 1_764_000_000_000;
        let t = generate(now_ms, None);
        assert_eq!(t.len(), 64);
        assert!(t[..55].bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(&t[55..56], "Z");
        assert_eq!(u64::from_str_radix(&t[56..], 36).ok(), Some(now_ms));
        assert!(crate::validate::token(&t).is_ok());
    }

    #[test]
    fn the_creation_time_is_read_back() {
        let token = generate(1_764_000_000_123, None);
        assert_eq!(token_created_ms(&token), Some(1_764_000_000_123));
        let token = generate(42, Some(*b"ab"));
        assert_eq!(token_created_ms(&token), Some(42));
        assert_eq!(token_created_ms("no-separator"), None);
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(generate(1, None), generate(1, None));
        assert!(generate(1, Some(*b"ab")).starts_with("ab"));
    }
}
