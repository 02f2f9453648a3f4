//! The CLI's Lua scripts, each run with EVALSHA (redis-rs loads it again on NOSCRIPT).
//! The check's scripts only read; the repair's re-check their condition before each write.

use redis::Script;
use std::sync::LazyLock;

/// Reads a batch of session hashes and their index entries.
pub static CHECK_SESSIONS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/check_sessions.lua")));
/// Reads whether a batch of index members name sessions.
pub static CHECK_MEMBERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/check_members.lua")));
/// Mends one session's index entries, or removes a corrupt or long-dead session.
pub static MEND_SESSION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/mend_session.lua")));
/// Removes one `_sessions` or `SESSIONS` member that names no session.
pub static DROP_MEMBER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/drop_member.lua")));
/// Removes one stale token from a `us:{id}` set.
pub static DROP_USER_TOKEN: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/drop_user_token.lua")));
/// Removes one `_users` id that has no session.
pub static DROP_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/drop_user.lua")));
