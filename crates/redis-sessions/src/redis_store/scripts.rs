//! The Lua scripts, each loaded once and run by EVALSHA (reloaded on NOSCRIPT, e.g. after
//! a Redis restart or SCRIPT FLUSH — `redis::Script` handles that).

use crate::session::FIELDS;
use redis::Script;

/// Shared helpers (see lua/lib/README.md); each script gets only the ones it names,
/// because every helper is a closure created again on every call of the script. Two are
/// blocks rather than functions, for the same reason: READ_LIVE opens get and set,
/// TOUCH ends them. Every
/// script's field names and positions are written from [`FIELDS`] (see [`expand_fields`]).
const ANNOUNCE: &str = include_str!("lua/lib/announce.lua");
const KILL_SESSIONS: &str = include_str!("lua/lib/kill_sessions.lua");
const TOUCH: &str = include_str!("lua/lib/touch.lua");
const READ_LIVE: &str = include_str!("lua/lib/read_live.lua");
const MERGE: &str = include_str!("lua/lib/merge.lua");

/// Writes the field list into a script's source: `F_ALL` becomes the quoted names of
/// [`FIELDS`] (the arguments of an HMGET), `F_<NAME>` the position of a field (`v[F_TTL]`
/// becomes `v[4]`). Literals rather than Lua variables: a script's top runs on every call,
/// and a local there becomes an upvalue of each helper that reads it (eight such locals
/// cost get about 0.2 µs of Redis CPU per call). A name that is no field is left as it is
/// (a test checks that no script has one).
fn expand_fields(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    let mut rest = source;
    while let Some(at) = rest.find("F_") {
        let (before, tail) = rest.split_at(at);
        out.push_str(before);
        let name_len = tail[2..]
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(tail.len() - 2);
        let name = &tail[2..2 + name_len];
        let starts_word = !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let position = FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name));
        match (starts_word, name, position) {
            (true, "ALL", _) => {
                let quoted: Vec<String> = FIELDS.iter().map(|f| format!("'{f}'")).collect();
                out.push_str(&quoted.join(", "));
            }
            (true, _, Some(i)) => out.push_str(&(i + 1).to_string()),
            _ => out.push_str(&tail[..2 + name_len]),
        }
        rest = &tail[2 + name_len..];
    }
    out.push_str(rest);
    out
}

fn with_helpers(helpers: &[&str], body: &str) -> (Script, String) {
    let mut source = helpers.concat();
    source.push_str(body);
    let source = expand_fields(&source);
    (Script::new(&source), source)
}

/// Every script of the store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub create: Script,
    pub get: Script,
    pub set: Script,
    pub kill: Script,
    pub killsoid: Script,
    pub killall: Script,
    pub sweep: Script,
    pub soid: Script,
    pub soapp: Script,
    /// Writes the namespace's layout record on first use, returns what it holds.
    pub layout: Script,
    /// The full source of each script, for SCRIPT LOAD by the benchmark.
    sources: Vec<String>,
}

impl Scripts {
    pub fn new() -> Self {
        let mut sources = Vec::new();
        let mut load = |helpers: &[&str], body: &str| {
            let (script, source) = with_helpers(helpers, body);
            sources.push(source);
            script
        };
        Scripts {
            create: load(&[], include_str!("lua/create.lua")),
            get: load(&[READ_LIVE], &[include_str!("lua/get.lua"), TOUCH].concat()),
            set: load(
                &[MERGE, ANNOUNCE, READ_LIVE],
                &[include_str!("lua/set.lua"), TOUCH].concat(),
            ),
            kill: load(&[ANNOUNCE, KILL_SESSIONS], include_str!("lua/kill.lua")),
            killsoid: load(&[ANNOUNCE, KILL_SESSIONS], include_str!("lua/killsoid.lua")),
            killall: load(&[ANNOUNCE, KILL_SESSIONS], include_str!("lua/killall.lua")),
            sweep: load(&[ANNOUNCE, KILL_SESSIONS], include_str!("lua/sweep.lua")),
            soid: load(&[], include_str!("lua/soid.lua")),
            soapp: load(&[], include_str!("lua/soapp.lua")),
            layout: load(&[], include_str!("lua/layout.lua")),
            sources,
        }
    }

    /// Every script.
    pub fn each(&self) -> [&Script; 10] {
        [
            &self.create,
            &self.get,
            &self.set,
            &self.kill,
            &self.killsoid,
            &self.killall,
            &self.sweep,
            &self.soid,
            &self.soapp,
            &self.layout,
        ]
    }

    /// The full source of one of the scripts (for EVAL_RO on a replica that lacks it).
    pub fn source(&self, script: &Script) -> Option<&str> {
        self.each()
            .iter()
            .position(|s| s.get_hash() == script.get_hash())
            .and_then(|i| self.sources.get(i))
            .map(String::as_str)
    }

    /// Every script's source.
    pub fn all(&self) -> Vec<&str> {
        self.sources.iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_become_literals_from_the_one_list() {
        assert_eq!(
            expand_fields("local v = redis.call('HMGET', k, F_ALL) return v[F_TTL], v[F_NO_RESAVE]"),
            "local v = redis.call('HMGET', k, 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave') return v[4], v[8]"
        );
        // Not a field, or not a name of its own: left as written.
        assert_eq!(expand_fields("F_NOPE XF_TTL F_"), "F_NOPE XF_TTL F_");
    }

    #[test]
    fn no_script_is_left_with_a_field_placeholder() {
        let scripts = Scripts::new();
        for source in scripts.all() {
            assert!(
                !source.contains("F_"),
                "a placeholder is left in:\n{source}"
            );
        }
        let get = scripts.source(&scripts.get).unwrap_or_default();
        assert!(
            get.contains("'HMGET', KEYS[1], 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')")
        );
    }
}
