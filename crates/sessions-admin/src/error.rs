//! What can go wrong, typed, so that `main` maps every failure to exit code 2 with a
//! message that never carries a token or a password.

/// A failure of a command (exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// Redis refused or failed a command of the check, stats or layout.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The library refused or failed an operation (kill, soid, ...).
    #[error("{0}")]
    Store(#[from] redis_sessions::Error),
    /// A script's reply had a shape this tool does not know (another version's script?).
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
    /// The operator did not confirm a destructive command.
    #[error("not confirmed: nothing was changed")]
    NotConfirmed,
    /// Writing the output failed (a closed pipe).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

/// The result of a command.
pub type Result<T> = std::result::Result<T, AdminError>;
