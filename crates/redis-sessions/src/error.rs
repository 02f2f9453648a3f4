//! The errors of the library.
//!
//! Input errors carry the exact names and messages of the Node module's contract
//! (`missingParameter`, `invalidFormat`, `invalidValue`), because clients in other
//! languages (through the REST server) match on them.

use std::borrow::Cow;

/// Everything that can go wrong in a call. Non-exhaustive: match on [`Error::name`] or
/// the error's kind for the cases a caller handles, and keep a fallback arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required input was absent or empty (`No app supplied`, …).
    #[error("{0}")]
    MissingParameter(Cow<'static, str>),
    /// An input did not match its format (`Invalid token format`, …).
    #[error("{0}")]
    InvalidFormat(Cow<'static, str>),
    /// An input had the right shape but a forbidden value (`ttl must be …`, `d must be …`).
    #[error("{0}")]
    InvalidValue(Cow<'static, str>),
    /// Redis could not be reached in time; the call may succeed once it is back.
    #[error("redis is unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(#[source] redis::RedisError),
    /// A stored session could not be read (written by something that is not a session store).
    #[error("corrupt session data: {0}")]
    Corrupt(String),
    /// The namespace was written with another layout (kind, shard count or key format)
    /// than this process asks for. Serving it would answer `{}` for every existing token, so
    /// the store refuses to start; changing the layout is a migration (see CLUSTER.md).
    #[error("the namespace {namespace:?} holds the {stored}, but this process asks for the {asked}; change the options to match, or move the sessions (see CLUSTER.md: changing the shard count)")]
    LayoutMismatch {
        /// The namespace.
        namespace: String,
        /// What the namespace's layout record holds.
        stored: crate::LayoutRecord,
        /// What this process's options ask for.
        asked: crate::LayoutRecord,
    },
    /// An index kept changing between the read of its members and the script that acts
    /// on them (cluster layout: e.g. a user created sessions while killsoid ran). Nothing
    /// was changed by the attempts; worth retrying.
    #[error(
        "the sessions of {0} kept changing while they were read; nothing was changed, try again"
    )]
    Contended(String),
    /// Durable writes are on and fewer replicas than asked confirmed the write in time
    /// (see [`Options::min_replicas`](crate::Options::min_replicas)). The write was made on
    /// the master and may still exist — and survive, or not, a failover: the caller cannot
    /// count on it. Worth retrying once the replicas are back (a retried create makes a
    /// second session).
    #[error("the write was not confirmed by {wanted} replica(s) in time ({acked} did); it may still exist")]
    NotReplicated {
        /// Replicas that confirmed.
        acked: u64,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The store was shut down with `quit()`.
    #[error("the session store was closed")]
    Closed,
}

impl Error {
    /// The error's name as in the contract, so that REST replies and logs match the Node module.
    pub fn name(&self) -> &'static str {
        match self {
            Error::MissingParameter(_) => "missingParameter",
            Error::InvalidFormat(_) => "invalidFormat",
            Error::InvalidValue(_) => "invalidValue",
            Error::Unavailable(_) => "redisUnavailable",
            Error::Redis(_) => "redisError",
            Error::Corrupt(_) => "corruptSession",
            Error::LayoutMismatch { .. } => "layoutMismatch",
            Error::Contended(_) => "contended",
            Error::NotReplicated { .. } => "notReplicated",
            Error::Closed => "closed",
        }
    }

    /// True for errors caused by the caller's input (HTTP 400), as opposed to the backend.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::MissingParameter(_) | Error::InvalidFormat(_) | Error::InvalidValue(_)
        )
    }

    /// True when the backend could not be reached (HTTP 503): worth retrying later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Closed | Error::Contended(_)
        )
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        // Connection-level failures mean "try again later", not "your request is wrong";
        // callers (the REST server) answer 503 for them.
        if err.is_io_error()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_connection_dropped()
        {
            Error::Unavailable(err)
        } else if err.code() == Some("CORRUPT") {
            // A script found stored data it cannot read (written by a foreign program).
            Error::Corrupt(err.detail().unwrap_or("stored d").to_owned())
        } else {
            Error::Redis(err)
        }
    }
}

/// The result type of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
