//! The Lua scripts, each loaded once and run by EVALSHA (reloaded on NOSCRIPT, e.g. after
//! a Redis restart or SCRIPT FLUSH — `redis::Script` handles that).

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn with_prelude(body: &str) -> (Script, String) {
    let source = format!("{PRELUDE}\n{body}");
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
        let mut load = |body: &str| {
            let (script, source) = with_prelude(body);
            sources.push(source);
            script
        };
        Scripts {
            create: load(include_str!("lua/create.lua")),
            get: load(include_str!("lua/get.lua")),
            set: load(include_str!("lua/set.lua")),
            kill: load(include_str!("lua/kill.lua")),
            killsoid: load(include_str!("lua/killsoid.lua")),
            killall: load(include_str!("lua/killall.lua")),
            sweep: load(include_str!("lua/sweep.lua")),
            soid: load(include_str!("lua/soid.lua")),
            soapp: load(include_str!("lua/soapp.lua")),
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
