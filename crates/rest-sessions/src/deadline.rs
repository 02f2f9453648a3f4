//! The deadline of a store call: a client always has an answer within 2 s of its request
//! reaching the store, even when Redis hangs.
//!
//! It covers the store call only, not the reading of the request: a client that sends its
//! body slowly has the body timeout (and a 408), and its slowness must never look like a
//! Redis outage (a 503 and a `redisUnavailable` count that would page an operator).

use crate::error::ApiError;
use std::future::Future;
use std::time::Duration;

/// The longest a store call may take. The library gives up on Redis after 1 s to connect
/// and 1 s to answer; this bounds everything else.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_millis(1800);

/// Runs a store call under [`REQUEST_DEADLINE`]: past it, `503 redisUnavailable`.
pub(crate) async fn store_call<T>(
    call: impl Future<Output = redis_sessions::Result<T>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(REQUEST_DEADLINE, call).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(_) => Err(ApiError::Timeout),
    }
}
