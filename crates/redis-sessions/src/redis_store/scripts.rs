//! The Lua scripts, and a script call as one value.
//!
//! Each script is loaded on every node at connect and then run by EVALSHA. A script and
//! the EVALSHA that runs it travel together as a [`ScriptCall`] (like redis-rs's
//! `ScriptInvocation`): whoever sends the call can load the script again when Redis
//! answers NOSCRIPT — Redis restarted, SCRIPT FLUSH, a failover to a replica that never
//! loaded it. That answer is handled in one place, the store's `eval` methods
//! (`RedisStore::eval`, `eval_write`, `eval_read` in mod.rs).

use crate::session::{FIELDS, KEY_TTL_MARGIN};
use redis::{Cmd, Script, ToRedisArgs};

/// Shared helpers (see ops/lib/README.md); each script gets only the ones it names,
/// because every helper is a closure created again on every call of the script. Two are
/// blocks rather than functions, for the same reason: READ_LIVE opens get and set,
/// TOUCH ends them. Every
/// script's field names and positions are written from [`FIELDS`] (see [`expand_fields`]).
const ANNOUNCE: &str = include_str!("ops/lib/announce.lua");
const KILL_SESSIONS: &str = include_str!("ops/lib/kill_sessions.lua");
const TOUCH: &str = include_str!("ops/lib/touch.lua");
const READ_LIVE: &str = include_str!("ops/lib/read_live.lua");
const MERGE: &str = include_str!("ops/lib/merge.lua");
use crate::options::EventOptions;

const EMIT: &str = include_str!("ops/lib/emit.lua");

/// Turns a script's event lines on or off (see ops/lib/emit.lua). A line whose code starts
/// with `--E ` is a comment, and stays one when events are off, so the scripts of a store
/// without events are the code they were (no argument, no branch: events off cost
/// nothing). With events on, the marker goes and `EVENTS_MAXLEN` / `EVENTS_MAXAGE_MS` become
/// the stream's retention as a literal: the store's scripts are loaded once, with it in.
fn with_events(source: &str, events: Option<EventOptions>) -> String {
    let Some(events) = events else {
        return source.to_owned();
    };
    let mut out = String::with_capacity(source.len() + 64);
    for line in source.split_inclusive('\n') {
        let code = line.trim_start();
        match code.strip_prefix("--E ") {
            Some(rest) => {
                out.push_str(&line[..line.len() - code.len()]);
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
    }
    out.replace("EVENTS_MAXLEN", &events.max_len.to_string())
        .replace("EVENTS_MAXAGE_MS", &events.max_age_ms().to_string())
}

/// Puts the shared blocks where a script names them: a line `--@read_live …` becomes
/// lib/read_live.lua, `--@touch …` lib/touch.lua. The script's own file thus shows where
/// each block runs and, on that line, the locals the block defines or reads: blocks, not
/// functions, because a function costs a closure per call (see lib/README.md).
fn with_blocks(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + READ_LIVE.len() + TOUCH.len());
    for line in script.split_inclusive('\n') {
        if line.starts_with("--@read_live") {
            out.push_str(READ_LIVE);
        } else if line.starts_with("--@touch") {
            out.push_str(TOUCH);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Writes the rules kept in Rust into a script's source: `FN_<NAME>` becomes the quoted
/// name of a field of [`FIELDS`] (`FN_TTL` → `'ttl'`), `KEY_TTL_MARGIN` the key TTL's
/// margin ([`KEY_TTL_MARGIN`]). Literals, as for the field positions: the expanded script
/// is the text it was when the rules were written in it by hand (same SHA, same cost).
fn expand_rules(source: &str) -> String {
    let mut out = source.replace("KEY_TTL_MARGIN", &KEY_TTL_MARGIN.to_string());
    for name in FIELDS {
        out = out.replace(
            &format!("FN_{}", name.to_ascii_uppercase()),
            &format!("'{name}'"),
        );
    }
    out
}

/// Writes the field list into a script's source: `F_ALL` becomes the quoted names of
/// [`FIELDS`] (the arguments of an HMGET), `F_<NAME>` the position of a field (`v[F_TTL]`
/// becomes `v[4]`). Literals rather than Lua variables: a script's top runs on every call,
/// and a local there becomes an upvalue of each helper that reads it (eight such locals
/// cost get about 0.2 µs of Redis CPU per call). A name that is no field is left as it is
/// (a test checks that no script has one).
fn expand_fields(source: &str) -> String {
    let source = expand_rules(source);
    let source = source.as_str();
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

/// One script: its SHA1 (for EVALSHA and SCRIPT LOAD) and its full source (for EVAL_RO on
/// a replica that lacks it, and for the benchmark's SCRIPT LOAD).
#[derive(Debug)]
pub(crate) struct LuaScript {
    script: Script,
    source: String,
}

impl LuaScript {
    /// The helpers, then the body: one script, with its event lines on when `events`
    /// (the streams' retention) is given.
    fn new(helpers: &[&str], body: &str, events: Option<EventOptions>) -> Self {
        let mut source = helpers.concat();
        source.push_str(body);
        let source = with_events(&expand_fields(&source), events);
        LuaScript {
            script: Script::new(&source),
            source,
        }
    }

    /// The script as redis-rs loads it.
    pub(crate) fn script(&self) -> &Script {
        &self.script
    }

    /// The full source.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// `{verb} sha numkeys keys…` (EVALSHA, or EVALSHA_RO for a read-only script that a
    /// replica may answer): the call of this script, to which the caller adds arguments.
    pub(crate) fn call(&self, verb: &str, keys: &[&str]) -> ScriptCall<'_> {
        // Room for the keys and the usual arguments, so building the command does not regrow.
        let mut cmd = Cmd::with_capacity(2 + keys.len() + 8, 512);
        cmd.arg(verb).arg(self.script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        ScriptCall { script: self, cmd }
    }
}

/// An EVALSHA and the script it runs, as one value: the command is sent, the script is
/// what a NOSCRIPT answer makes the sender load (or send as EVAL_RO) before sending again.
#[derive(Debug)]
pub(crate) struct ScriptCall<'a> {
    script: &'a LuaScript,
    cmd: Cmd,
}

impl<'a> ScriptCall<'a> {
    /// Adds an argument (after the keys).
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// The script this call runs.
    pub(crate) fn script(&self) -> &'a LuaScript {
        self.script
    }

    /// The EVALSHA command.
    pub(crate) fn cmd(&self) -> &Cmd {
        &self.cmd
    }

    /// The EVALSHA command alone (the benchmark sends it raw, after its own SCRIPT LOAD).
    #[cfg(feature = "bench")]
    pub(crate) fn into_cmd(self) -> Cmd {
        self.cmd
    }

    /// The same call as EVAL/EVAL_RO with the script's source: run, and cached, on a node
    /// that has not loaded it (SCRIPT LOAD reaches only masters; a replica may answer).
    pub(crate) fn with_source(&self) -> Cmd {
        let mut args = self.cmd.args_iter().filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        });
        let verb = args.next().unwrap_or_default();
        let mut out = redis::cmd(if verb.ends_with(b"_RO") {
            "EVAL_RO"
        } else {
            "EVAL"
        });
        out.arg(self.script.source());
        for arg in args.skip(1) {
            out.arg(arg);
        }
        out
    }
}

/// Every script of the store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub create: LuaScript,
    pub get: LuaScript,
    pub set: LuaScript,
    pub kill: LuaScript,
    pub killsoid: LuaScript,
    pub killall: LuaScript,
    pub sweep: LuaScript,
    pub soid: LuaScript,
    pub soapp: LuaScript,
    /// An app's counts in one shard (read-only, indexes only).
    pub app_stats: LuaScript,
    /// Writes the namespace's layout record on first use, returns what it holds.
    pub layout: LuaScript,
}

impl Scripts {
    /// The scripts of a store; `events`: the event streams' retention when lifecycle
    /// events are on (create and the kills then write them, and carry the EMIT helper).
    pub(crate) fn new(events: Option<EventOptions>) -> Self {
        let load = |helpers: &[&str], body: &str| LuaScript::new(helpers, body, events);
        let emit = if events.is_some() { EMIT } else { "" };
        Scripts {
            create: load(&[emit], include_str!("ops/create.lua")),
            get: load(&[], &with_blocks(include_str!("ops/get.lua"))),
            set: load(
                &[MERGE, ANNOUNCE],
                &with_blocks(include_str!("ops/set.lua")),
            ),
            kill: load(
                &[ANNOUNCE, emit, KILL_SESSIONS],
                include_str!("ops/kill.lua"),
            ),
            killsoid: load(
                &[ANNOUNCE, emit, KILL_SESSIONS],
                include_str!("ops/killsoid.lua"),
            ),
            killall: load(
                &[ANNOUNCE, emit, KILL_SESSIONS],
                include_str!("ops/killall.lua"),
            ),
            sweep: load(
                &[ANNOUNCE, emit, KILL_SESSIONS],
                include_str!("ops/sweep.lua"),
            ),
            soid: load(&[], include_str!("ops/soid.lua")),
            soapp: load(&[], include_str!("ops/soapp.lua")),
            app_stats: load(&[], include_str!("ops/app_stats.lua")),
            layout: load(&[], include_str!("ops/layout.lua")),
        }
    }

    /// Every script.
    pub(crate) fn each(&self) -> [&LuaScript; 11] {
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
            &self.app_stats,
            &self.layout,
        ]
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
        assert_eq!(
            expand_fields("HMGET(k, FN_ID, FN_NO_RESAVE) EXPIRE(k, ttl + KEY_TTL_MARGIN)"),
            "HMGET(k, 'id', 'no_resave') EXPIRE(k, ttl + 1)"
        );
    }

    #[test]
    fn no_script_is_left_with_a_field_placeholder() {
        let scripts = Scripts::new(None);
        for script in scripts.each() {
            let source = script.source();
            assert!(
                !source.contains("F_")
                    && !source.contains("KEY_TTL_MARGIN")
                    && !source.contains("--@"),
                "a placeholder is left in:\n{source}"
            );
        }
        let get = scripts.get.source();
        assert!(
            get.contains("'HMGET', KEYS[1], 'id', 'r', 'w', 'ttl', 'd', 'la', 'ip', 'no_resave')")
        );
    }

    #[test]
    fn events_off_leave_the_scripts_as_they_were_and_on_add_the_stream_writes() {
        let off = Scripts::new(None);
        let on = Scripts::new(Some(EventOptions::max_len(5000)));
        for (off, on) in off.each().iter().zip(on.each()) {
            let code = |source: &str| -> String {
                source
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            assert!(!code(off.source()).contains("emit("), "{}", off.source());
            assert!(
                !on.source()
                    .lines()
                    .any(|l| l.trim_start().starts_with("--E ")),
                "{}",
                on.source()
            );
            assert!(!on.source().contains("EVENTS_MAXLEN"));
            assert!(!on.source().contains("EVENTS_MAXAGE_MS"));
        }
        for script in [&on.create, &on.kill, &on.killsoid, &on.killall, &on.sweep] {
            assert!(script.source().contains("'MAXLEN', '~', 5000"));
            assert!(script.source().contains("emit("));
        }
        // Events off: no executable line mentions events (only comments do).
        for script in off.each() {
            for line in script.source().lines() {
                let code = line.trim_start();
                assert!(code.starts_with("--") || !code.contains("XADD"), "{line}");
            }
        }
        assert_eq!(
            off.get.source(),
            on.get.source(),
            "get is the same either way"
        );
        assert_eq!(
            off.set.source(),
            on.set.source(),
            "set is the same either way"
        );
    }
}
