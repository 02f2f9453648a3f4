//! The Lua scripts, each loaded once and run by EVALSHA (reloaded on NOSCRIPT, e.g. after
//! a Redis restart or SCRIPT FLUSH — `redis::Script` handles that).

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

/// Every script of the store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub get: Script,
    pub set: Script,
    pub kill: Script,
    pub killsoid: Script,
    pub killall: Script,
    pub sweep: Script,
    pub soid: Script,
    pub soapp: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Scripts {
            get: with_prelude(include_str!("lua/get.lua")),
            set: with_prelude(include_str!("lua/set.lua")),
            kill: with_prelude(include_str!("lua/kill.lua")),
            killsoid: with_prelude(include_str!("lua/killsoid.lua")),
            killall: with_prelude(include_str!("lua/killall.lua")),
            sweep: with_prelude(include_str!("lua/sweep.lua")),
            soid: with_prelude(include_str!("lua/soid.lua")),
            soapp: with_prelude(include_str!("lua/soapp.lua")),
        }
    }
}
