//! The Lua scripts, each loaded once and run by EVALSHA (reloaded on NOSCRIPT, e.g. after
//! a Redis restart or SCRIPT FLUSH — `redis::Script` handles that).

use redis::Script;

/// Shared helpers (see lua/lib/README.md); each script gets only the ones it names,
/// because every helper is a closure created again on every call of the script.
const CALL_CHUNKED: &str = include_str!("lua/lib/call_chunked.lua");
const KILL_SESSION: &str = include_str!("lua/lib/kill_session.lua");
const TOUCH: &str = include_str!("lua/lib/touch.lua");
const READ_LIVE: &str = include_str!("lua/lib/read_live.lua");
const MERGE: &str = include_str!("lua/lib/merge.lua");

fn with_helpers(helpers: &[&str], body: &str) -> (Script, String) {
    let mut source = helpers.concat();
    source.push_str(body);
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
            get: load(&[READ_LIVE, TOUCH], include_str!("lua/get.lua")),
            set: load(&[READ_LIVE, TOUCH, MERGE], include_str!("lua/set.lua")),
            kill: load(&[KILL_SESSION], include_str!("lua/kill.lua")),
            killsoid: load(&[CALL_CHUNKED], include_str!("lua/killsoid.lua")),
            killall: load(&[CALL_CHUNKED], include_str!("lua/killall.lua")),
            sweep: load(&[KILL_SESSION], include_str!("lua/sweep.lua")),
            soid: load(&[], include_str!("lua/soid.lua")),
            soapp: load(&[], include_str!("lua/soapp.lua")),
            sources,
        }
    }

    /// Every script.
    pub fn each(&self) -> [&Script; 9] {
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
        ]
    }

    /// Every script's source.
    pub fn all(&self) -> Vec<&str> {
        self.sources.iter().map(String::as_str).collect()
    }
}
