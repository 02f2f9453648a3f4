//! Walking a namespace in bounded steps: SCAN, ZSCAN and SSCAN with a small COUNT, so no
//! step holds Redis for long however large the namespace is.

use crate::error::Result;
use redis::aio::MultiplexedConnection;

/// The COUNT hint of every SCAN-family step, and the size of every batch of index members
/// checked by one script (a member costs one or two lookups).
pub const BATCH: usize = 100;

/// Session hashes checked by one script: each costs six lookups (TYPE, HMGET, three
/// ZSCOREs, SISMEMBER), and 100 took up to 0.9 ms of Redis' time in examples/check-rate on
/// a busy machine; 50 keep a step well under the ~1 ms a check may hold Redis.
pub const SESSION_BATCH: usize = 50;

/// What a key of the namespace is, from its name (`{prefix}{app}:…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// `{app}:{token}`: a session hash.
    Session {
        /// The app.
        app: String,
        /// The session's token.
        token: String,
    },
    /// `{app}:_sessions`.
    AppSessions {
        /// The app.
        app: String,
    },
    /// `{app}:_users`.
    AppUsers {
        /// The app.
        app: String,
    },
    /// `{app}:us:{id}`.
    UserSet {
        /// The app.
        app: String,
        /// The user id.
        id: String,
    },
    /// Anything else (`SESSIONS`, the layout record, foreign keys).
    Other,
}

/// Classifies `key`, a key that starts with `prefix`.
pub fn classify(prefix: &str, key: &str) -> KeyKind {
    let Some(rest) = key.strip_prefix(prefix) else {
        return KeyKind::Other;
    };
    let Some((app, tail)) = rest.split_once(':') else {
        return KeyKind::Other;
    };
    if app.is_empty() || app == "SESSIONS" || app.starts_with('{') {
        return KeyKind::Other;
    }
    let app = app.to_owned();
    match tail {
        "_sessions" => KeyKind::AppSessions { app },
        "_users" => KeyKind::AppUsers { app },
        _ => {
            if let Some(id) = tail.strip_prefix("us:") {
                KeyKind::UserSet {
                    app,
                    id: id.to_owned(),
                }
            } else if tail.len() == redis_sessions::keys::TOKEN_LEN && !tail.contains(':') {
                KeyKind::Session {
                    app,
                    token: tail.to_owned(),
                }
            } else {
                KeyKind::Other
            }
        }
    }
}

/// `text` with the glob characters of SCAN's MATCH escaped.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One SCAN step over keys matching `pattern`: the next cursor (0 at the end) and the
/// keys (those not UTF-8 are skipped: the store writes none).
pub async fn scan_keys(
    con: &mut MultiplexedConnection,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<String>)> {
    let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(BATCH)
        .query_async(con)
        .await?;
    Ok((next, utf8_only(keys)))
}

/// One ZSCAN or SSCAN step (`command`) over `key`: the next cursor and the members.
pub async fn scan_members(
    con: &mut MultiplexedConnection,
    command: &str,
    key: &str,
    cursor: u64,
) -> Result<(u64, Vec<String>)> {
    let (next, items): (u64, Vec<Vec<u8>>) = redis::cmd(command)
        .arg(key)
        .arg(cursor)
        .arg("COUNT")
        .arg(BATCH)
        .query_async(con)
        .await?;
    let members = if command == "ZSCAN" {
        // Member, score, member, score...
        items.into_iter().step_by(2).collect()
    } else {
        items
    };
    Ok((next, utf8_only(members)))
}

fn utf8_only(items: Vec<Vec<u8>>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|b| String::from_utf8(b).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_node_layout() {
        let token = "a".repeat(64);
        assert_eq!(
            classify("rs:", &format!("rs:app:{token}")),
            KeyKind::Session {
                app: "app".into(),
                token: token.clone()
            }
        );
        assert_eq!(
            classify("rs:", "rs:app:us:a:b"),
            KeyKind::UserSet {
                app: "app".into(),
                id: "a:b".into()
            }
        );
        assert_eq!(
            classify("rs:", "rs:app:_users"),
            KeyKind::AppUsers { app: "app".into() }
        );
        for other in [
            "rs:SESSIONS",
            "rs:{layout}",
            "rs:SESSIONS:sweeper",
            "rs:app:short",
        ] {
            assert_eq!(classify("rs:", other), KeyKind::Other, "{other}");
        }
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
