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
    Unavailable(#[source] BackendError),
    /// Redis answered with an error.
    #[error("redis error: {0}")]
    Redis(#[source] BackendError),
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
        stored: crate::layout::LayoutRecord,
        /// What this process's options ask for.
        asked: crate::layout::LayoutRecord,
    },
    /// The namespace's layout record (`{ns}:{layout}`) is gone while the namespace holds
    /// sessions: deleted by eviction (`allkeys-*`), a FLUSH or an operator. The store
    /// refuses to write a new record over them, because a process with another shard count
    /// would then take the namespace and answer `{}` for every existing token. A running
    /// process of the right layout restores the record by itself within seconds; else
    /// restore it by hand (see CLUSTER.md: the layout record).
    #[error("the layout record {record} of namespace {namespace:?} is missing, but the namespace holds sessions (e.g. the key {found:?}): it was deleted (eviction under an allkeys-* policy, FLUSH, an operator). It is not rewritten, so that a process with another shard count cannot take over the namespace. A running process of this namespace restores it within seconds; else restore it with `HSET {record} kind <sharded|node> shards <the count the namespace was written with> version 1` (see CLUSTER.md: the layout record)")]
    LayoutLost {
        /// The namespace.
        namespace: String,
        /// The record's key.
        record: String,
        /// One key of the namespace found (a sign that it holds sessions).
        found: String,
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
    /// The call would make a session's data larger than the store bounds it (see
    /// [`limits`](crate::limits)): more keys or bytes than one call may make Redis read.
    /// Nothing was written; the same call fails again.
    #[error("{0}")]
    TooLarge(Cow<'static, str>),
    /// The store was shut down with `quit()`.
    #[error("the session store was closed")]
    Closed,
    /// A typed read ([`Session::get`](crate::Session::get), [`value::read`](crate::value::read))
    /// found a value of another type than asked (a string read as a number, a list read as
    /// a struct): a mistake of the program, reported rather than read as absent. Names the
    /// key and the types, never the value.
    #[error("session value `{key}` is {found}, which does not read as {expected}")]
    WrongType {
        /// The key that was read.
        key: String,
        /// What is stored: "a string", "a number", "a list", …
        found: &'static str,
        /// The Rust type asked for.
        expected: &'static str,
    },
}

impl Error {
    /// The error's name as in the contract, so that REST replies and logs match the Node module.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Error::MissingParameter(_) => "missingParameter",
            Error::InvalidFormat(_) => "invalidFormat",
            Error::InvalidValue(_) => "invalidValue",
            Error::Unavailable(_) => "redisUnavailable",
            Error::Redis(_) => "redisError",
            Error::Corrupt(_) => "corruptSession",
            Error::LayoutMismatch { .. } => "layoutMismatch",
            Error::LayoutLost { .. } => "layoutMissing",
            Error::Contended(_) => "contended",
            Error::NotReplicated { .. } => "notReplicated",
            Error::TooLarge(_) => "dataTooLarge",
            Error::Closed => "closed",
            Error::WrongType { .. } => "wrongType",
        }
    }

    /// What kind of failure this is: what a caller can do about it, and the one HTTP
    /// status every HTTP front (rest-sessions, the axum middleware) answers it with.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::MissingParameter(_) | Error::InvalidFormat(_) | Error::InvalidValue(_) => {
                ErrorKind::Input
            }
            Error::Unavailable(_) | Error::Contended(_) => ErrorKind::Unavailable,
            Error::NotReplicated { .. } => ErrorKind::Unconfirmed,
            Error::Redis(e) if e.is_transient() => ErrorKind::Backend,
            Error::Redis(_) | Error::Closed | Error::WrongType { .. } => ErrorKind::Server,
            Error::Corrupt(_) => ErrorKind::Corrupt,
            Error::TooLarge(_) => ErrorKind::TooLarge,
            Error::LayoutMismatch { .. } | Error::LayoutLost { .. } => ErrorKind::Misconfigured,
        }
    }
}

/// The kinds of [`Error`], after what the caller can do: fix its input, retry later, or
/// call an operator. There is no "not found": the contract answers a missing session with
/// `None` (REST `{}`) or a count of 0, never with an error. Non-exhaustive: a later
/// release may split a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An input broke a rule of the contract (`missingParameter`, `invalidFormat`,
    /// `invalidValue`): the same call will fail again; fix the input.
    Input,
    /// The store cannot serve now: Redis unreachable or too slow, the store closed, or an
    /// index that kept changing under a killsoid/soid. Worth retrying later.
    Unavailable,
    /// Durable writes are on and the replicas did not confirm in time: the write may or may
    /// not exist. Worth retrying once the replicas are back.
    Unconfirmed,
    /// Redis answered with an error (LOADING, READONLY, OOM, MASTERDOWN, …): a state of
    /// the server that usually passes, so also worth retrying later.
    Backend,
    /// A stored session could not be read (written by a foreign program): retrying will
    /// not help, and the client did nothing wrong.
    Corrupt,
    /// The data would grow past the store's bounds ([`limits`](crate::limits)): the same
    /// call fails again; the caller must store less.
    TooLarge,
    /// The options contradict what the namespace holds (the key layout): found at
    /// connect, an operator must change the options.
    Misconfigured,
    /// Redis refused the command for a reason retrying does not change (WRONGTYPE: a key
    /// of the namespace holds another type, written by a foreign program; a script error),
    /// the store was closed with `quit()`, or a typed read asked for another type than the
    /// value's ([`Error::WrongType`]): an operator or the program must act.
    Server,
}

impl ErrorKind {
    /// The HTTP status of this kind — the single mapping both HTTP crates use, so that they
    /// cannot drift apart: 400 for input, 503 for what is worth retrying (`Retry-After`
    /// material), 500 for what is not. A plain `u16`, so the library needs no HTTP crate.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Input => 400,
            ErrorKind::TooLarge => 413,
            ErrorKind::Unavailable | ErrorKind::Unconfirmed | ErrorKind::Backend => 503,
            ErrorKind::Corrupt | ErrorKind::Misconfigured | ErrorKind::Server => 500,
        }
    }

    /// True for the kinds worth retrying later (the 503s).
    #[must_use]
    pub fn is_retryable(self) -> bool {
        self.http_status() == 503
    }
}

impl Error {
    /// The error of a failed Redis call. Crate-private, not a `From` impl: a trait impl
    /// would put the client's type in this crate's public API, and an upgrade of the
    /// client would then be a breaking change.
    pub(crate) fn from_redis(err: redis::RedisError) -> Self {
        // Connection-level failures mean "try again later", not "your request is wrong";
        // callers (the REST server) answer 503 for them.
        if err.is_io_error()
            || err.is_connection_refusal()
            || err.is_timeout()
            || err.is_connection_dropped()
        {
            Error::Unavailable(BackendError(err))
        } else if err.code() == Some("CORRUPT") {
            // A script found stored data it cannot read (written by a foreign program).
            Error::Corrupt(script_detail(err.detail().unwrap_or("stored d")).to_owned())
        } else if err.code() == Some("TOOLARGE") {
            // A script found the data past the bounds before writing anything.
            Error::TooLarge(
                script_detail(err.detail().unwrap_or("too large"))
                    .to_owned()
                    .into(),
            )
        } else {
            Error::Redis(BackendError(err))
        }
    }
}

/// What Redis answered, or how the way to it failed, in [`Error::Unavailable`] and
/// [`Error::Redis`]. Opaque, so that the Redis client crate is not part of this crate's
/// API: an upgrade of the client is not a breaking change. Its `Display` is the code and
/// message (never a script's SHA or line); [`std::error::Error::source`] leads to the
/// client's own error for logs.
#[derive(Debug)]
pub struct BackendError(pub(crate) redis::RedisError);

impl BackendError {
    /// The error code Redis answered with (`READONLY`, `LOADING`, `WRONGTYPE`, …), if any.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.0.code()
    }

    /// True when the call ran out of time (the server may still have applied a write).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.0.is_timeout()
    }

    /// True for the answers a server gives in a passing state (loading, a failover, out of
    /// memory, busy, a moving slot), for connection failures, and for the client's own
    /// failures to find a node (a Sentinel naming no master yet, a cluster connection
    /// lost): worth retrying later. False for what retrying does not change: a command
    /// Redis refuses (`WRONGTYPE`, a script error `ERR …`), a reply the store cannot read,
    /// failed authentication, a configuration the client refuses.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        use redis::ErrorKind as K;
        match self.0.kind() {
            K::Io
            | K::Client
            | K::ClusterConnectionNotFound
            | K::MasterNameNotFoundBySentinel
            | K::NoValidReplicasFoundBySentinel
            | K::EmptySentinelList => true,
            K::Parse
            | K::AuthenticationFailed
            | K::UnexpectedReturnType
            | K::InvalidClientConfig
            | K::RESP3NotSupported => {
                self.0.is_timeout()
                    || self.0.is_connection_dropped()
                    || self.0.is_connection_refusal()
            }
            // Server answers, by their code (the client's `Extension` kind holds the codes
            // it has no kind for: WRONGTYPE, OOM, BUSY, NOREPLICAS, …).
            _ => matches!(
                self.code(),
                Some(
                    "LOADING"
                        | "READONLY"
                        | "MASTERDOWN"
                        | "OOM"
                        | "BUSY"
                        | "TRYAGAIN"
                        | "CLUSTERDOWN"
                        | "MOVED"
                        | "ASK"
                        | "NOREPLICAS"
                        | "NOSCRIPT"
                        | "NOTREPLICATED"
                        | "UNAVAILABLE"
                )
            ),
        }
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&public_message(&self.0))
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The message of an error a script raised, without what Redis appends to it (`script:
/// <sha>, on @user_script:16.`): internals a caller has no use for.
fn script_detail(detail: &str) -> &str {
    detail
        .split(" script: ")
        .next()
        .unwrap_or(detail)
        .trim_end()
}

/// A Redis error as callers see it: its code and message, without a script's SHA and line.
fn public_message(err: &redis::RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {}", script_detail(detail)),
        (Some(code), None) => code.to_owned(),
        _ => script_detail(&err.to_string()).to_owned(),
    }
}

/// The result type of every call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_error(code: &str) -> redis::RedisError {
        redis::RedisError::from((redis::ErrorKind::Io, "io", code.to_owned()))
    }

    #[test]
    fn every_error_has_the_status_of_its_kind() {
        let server_error = Error::Redis(BackendError(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "READONLY",
        ))));
        let cases = [
            (Error::MissingParameter("No app supplied".into()), 400),
            (Error::InvalidFormat("Invalid token format".into()), 400),
            (Error::InvalidValue("d must be an object".into()), 400),
            (Error::Unavailable(BackendError(redis_error("down"))), 503),
            (Error::Closed, 500),
            (Error::Contended("x".into()), 503),
            (
                Error::NotReplicated {
                    acked: 0,
                    wanted: 1,
                },
                503,
            ),
            // Both HTTP fronts once disagreed here (503 against 500).
            (server_error, 503),
            (Error::Corrupt("field d".into()), 500),
            (Error::TooLarge("over".into()), 413),
        ];
        for (error, status) in cases {
            assert_eq!(error.kind().http_status(), status, "{error:?}");
            assert_eq!(error.kind().is_retryable(), status == 503, "{error:?}");
        }
    }

    /// The error a Redis reply of `line` (`-CODE message`) makes, as the store sees it.
    fn answered(line: &str) -> Error {
        let reply = redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .expect("an error reply parses");
        match reply.extract_error() {
            Err(err) => Error::from_redis(err),
            Ok(other) => panic!("not an error reply: {other:?}"),
        }
    }

    fn io(kind: std::io::ErrorKind) -> Error {
        Error::from_redis(redis::RedisError::from(std::io::Error::new(kind, "x")))
    }

    /// Asserts the kind of every error in `errors`, and the retryability that goes with it.
    fn assert_kind(kind: ErrorKind, retryable: bool, errors: Vec<Error>) {
        assert_eq!(kind.is_retryable(), retryable, "{kind:?}");
        for error in errors {
            assert_eq!(error.kind(), kind, "{error:?}");
            assert_eq!(error.kind().is_retryable(), retryable, "{error:?}");
        }
    }

    #[test]
    fn input_errors_are_not_retryable() {
        assert_kind(
            ErrorKind::Input,
            false,
            vec![
                Error::MissingParameter("No app supplied".into()),
                Error::InvalidFormat("Invalid token format".into()),
                Error::InvalidValue("ttl must be a positive integer >= 10".into()),
            ],
        );
    }

    #[test]
    fn connection_failures_are_unavailable_and_retryable() {
        use std::io::ErrorKind as Io;
        assert_kind(
            ErrorKind::Unavailable,
            true,
            vec![
                io(Io::TimedOut),
                io(Io::ConnectionRefused),
                io(Io::ConnectionReset),
                io(Io::BrokenPipe),
                io(Io::UnexpectedEof),
                Error::Contended("alice".into()),
            ],
        );
    }

    #[test]
    fn unconfirmed_writes_are_retryable() {
        assert_kind(
            ErrorKind::Unconfirmed,
            true,
            vec![Error::NotReplicated {
                acked: 0,
                wanted: 1,
            }],
        );
    }

    #[test]
    fn passing_server_states_are_backend_and_retryable() {
        let mut errors: Vec<Error> = [
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "OOM command not allowed when used memory > 'maxmemory'.",
            "BUSY Redis is busy running a script.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "NOREPLICAS Not enough good replicas to write.",
            "NOSCRIPT No matching script.",
        ]
        .into_iter()
        .map(answered)
        .collect();
        // The client's own failures to find a node, while a failover runs.
        errors.push(Error::from_redis(redis::RedisError::from((
            redis::ErrorKind::MasterNameNotFoundBySentinel,
            "no master",
        ))));
        errors.push(Error::from_redis(redis::RedisError::from((
            redis::ErrorKind::ClusterConnectionNotFound,
            "no connection",
        ))));
        assert_kind(ErrorKind::Backend, true, errors);
    }

    #[test]
    fn refused_commands_and_a_closed_store_are_server_errors_not_retryable() {
        let errors = vec![
            answered("WRONGTYPE Operation against a key holding the wrong kind of value"),
            answered("ERR user_script:1: Script attempted to access nonexistent global variable 'x' script: 1a2b, on @user_script:1."),
            answered("NOPERM this user has no permissions to run the 'evalsha' command"),
            Error::from_redis(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "not a string",
            ))),
            Error::from_redis(redis::RedisError::from((
                redis::ErrorKind::AuthenticationFailed,
                "WRONGPASS",
            ))),
            Error::from_redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a sentinel is host:port",
            ))),
            Error::Closed,
            Error::WrongType {
                key: "cart".into(),
                found: "a list",
                expected: "u32",
            },
        ];
        assert_kind(ErrorKind::Server, false, errors);
    }

    #[test]
    fn corrupt_data_is_not_retryable() {
        assert_kind(
            ErrorKind::Corrupt,
            false,
            vec![
                answered("CORRUPT stored d is not a JSON object script: ab12, on @user_script:7."),
                Error::Corrupt("field r is not a number".into()),
            ],
        );
        assert_eq!(
            answered("CORRUPT stored d is not a JSON object script: ab12, on @user_script:7.")
                .to_string(),
            "corrupt session data: stored d is not a JSON object"
        );
    }

    #[test]
    fn data_past_the_bounds_is_too_large_not_retryable() {
        assert_kind(
            ErrorKind::TooLarge,
            false,
            vec![
                answered(
                    "TOOLARGE the stored data is over 65536 bytes script: ab, on @user_script:3.",
                ),
                Error::TooLarge("over".into()),
            ],
        );
    }

    #[test]
    fn a_layout_conflict_is_misconfigured_not_retryable() {
        let record = |shards| crate::layout::LayoutRecord {
            kind: "sharded".into(),
            shards,
            version: 1,
        };
        assert_kind(
            ErrorKind::Misconfigured,
            false,
            vec![
                Error::LayoutMismatch {
                    namespace: "rs".into(),
                    stored: record(60),
                    asked: record(12),
                },
                Error::LayoutLost {
                    namespace: "rs".into(),
                    record: "rs:{layout}".into(),
                    found: "rs:{s0}:app:x".into(),
                },
            ],
        );
    }

    #[test]
    fn script_errors_name_no_internals() {
        let raised = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "stored d is not a JSON object script: 1a2b3c, on @user_script:16.".to_owned(),
        ));
        let shown = Error::Redis(BackendError(raised)).to_string();
        assert!(
            !shown.contains("user_script") && !shown.contains("1a2b3c"),
            "{shown}"
        );
        assert_eq!(
            script_detail("the stored data is over 65536 bytes script: ab, on @user_script:3."),
            "the stored data is over 65536 bytes"
        );
    }
}
