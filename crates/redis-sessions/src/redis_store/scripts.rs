//! The Lua scripts, each loaded once and run by EVALSHA (reloaded on NOSCRIPT, e.g. after
//! a Redis restart or SCRIPT FLUSH — `redis::Script` handles that).

use redis::Script;

/// Shared helpers (see lua/lib/README.md); each script gets only the ones it names,
/// because every helper is a closure created again on every call of the script.
const ANNOUNCE: &str = include_str!("lua/lib/announce.lua");
const KILL_SESSIONS: &str = include_str!("lua/lib/kill_sessions.lua");
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
            get: load(&[READ_LIVE, TOUCH], include_str!("lua/get.lua")),
            set: load(
                &[READ_LIVE, TOUCH, MERGE, ANNOUNCE],
                include_str!("lua/set.lua"),
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
    #[cfg(feature = "bench")]
    pub fn all(&self) -> Vec<&str> {
        self.sources.iter().map(String::as_str).collect()
    }
}
