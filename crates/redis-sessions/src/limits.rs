//! The bounds on a session's data, which bound the time every call holds Redis.
//!
//! A `set` merges its keys into the stored text inside Redis (one atomic script), and Redis
//! runs one script at a time: a merge that reads a huge text stalls every client of that
//! Redis. So a session's data is bounded in keys and in bytes, and the script refuses
//! (`TOOLARGE`) before writing anything when the stored text or the result would pass them
//! (a Node process or `redis-cli` may have stored more). The library refuses a call whose
//! own data is over them before sending anything. Measured costs at the bounds are in
//! docs/limits.md; the values are written into the Lua merge too (a test checks that they
//! agree).
//!
//! ```
//! use redis_sessions::limits;
//! assert_eq!((limits::MAX_KEYS, limits::MAX_DATA_BYTES), (1000, 65_536));
//! ```

use crate::data::Data;
use crate::error::{Error, Result};

/// Keys a session's data may hold (after a merge), and keys one call may give.
pub const MAX_KEYS: usize = 1000;

/// Bytes of a session's data as stored (its JSON text), and of the data one call gives.
pub const MAX_DATA_BYTES: usize = 65_536;

/// Refuses data that could not be stored whole: over [`MAX_KEYS`] keys or, written as
/// Node writes it, over [`MAX_DATA_BYTES`] bytes.
pub(crate) fn check(d: &Data) -> Result<()> {
    if d.len() > MAX_KEYS {
        return Err(Error::TooLarge(
            format!("d has more than {MAX_KEYS} keys").into(),
        ));
    }
    if crate::node_json::to_vec(d).len() > MAX_DATA_BYTES {
        return Err(Error::TooLarge(
            format!("d is over {MAX_DATA_BYTES} bytes as JSON").into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Lua merge refuses at the same bounds.
    #[test]
    fn the_merge_script_uses_the_same_bounds() {
        let merge = include_str!("redis_store/ops/lib/merge.lua");
        assert!(merge.contains(&format!("count > {MAX_KEYS}")));
        assert!(merge.contains(&format!("> {MAX_DATA_BYTES}")));
        assert!(!merge.contains("65536 ") || MAX_DATA_BYTES == 65_536);
    }

    #[test]
    fn data_at_the_bounds_passes_and_over_them_is_refused() {
        let keys = |n: usize| -> Data { (0..n).map(|i| (format!("k{i}"), 1.into())).collect() };
        assert!(check(&keys(MAX_KEYS)).is_ok());
        assert_eq!(
            check(&keys(MAX_KEYS + 1)).unwrap_err().name(),
            "dataTooLarge"
        );
        let big: Data = [("a".to_owned(), "x".repeat(MAX_DATA_BYTES).into())]
            .into_iter()
            .collect();
        assert_eq!(check(&big).unwrap_err().name(), "dataTooLarge");
    }
}
