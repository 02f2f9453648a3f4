//! Not a stable API: the exact commands of each operation, so that the benchmark can drive
//! them straight at Redis (the ceiling) with no client library in the way.

use crate::data::Data;
use crate::layout::Layout;
use crate::redis_store::commands::Commands;
use crate::session::NewSession;
use redis::{Cmd, Pipeline};

/// The commands of one namespace, as the store sends them.
pub struct CommandSet(Commands);

impl CommandSet {
    /// The Node-compatible layout under `namespace`.
    pub fn new(namespace: &str) -> Self {
        CommandSet(Commands::new(Layout::node(namespace), false))
    }

    /// `SCRIPT LOAD` of every script, to run once before EVALSHA.
    pub fn script_loads(&self) -> Vec<Cmd> {
        self.0
            .scripts()
            .each()
            .iter()
            .map(|script| {
                let mut cmd = redis::cmd("SCRIPT");
                cmd.arg("LOAD").arg(script.source());
                cmd
            })
            .collect()
    }

    /// create's MULTI/EXEC.
    pub fn create(
        &self,
        app: &str,
        id: &str,
        ip: &str,
        ttl: i64,
        token: &str,
        now: i64,
    ) -> Pipeline {
        let shard = &self.0.layout().shards()[0];
        let new = NewSession {
            app,
            id,
            ip,
            ttl,
            d: None,
            no_resave: false,
        };
        self.0.create(shard, &new, token, now)
    }

    /// get's EVALSHA.
    pub fn get(&self, app: &str, token: &str, now: i64) -> Cmd {
        self.0
            .get(&self.0.layout().shards()[0], app, token, now)
            .into_cmd()
    }

    /// set's EVALSHA.
    pub fn set(&self, app: &str, token: &str, d: &Data, now: i64) -> Cmd {
        self.0
            .set(&self.0.layout().shards()[0], app, token, d, now)
            .into_cmd()
    }

    /// kill's EVALSHA.
    pub fn kill(&self, app: &str, token: &str, now: i64) -> Cmd {
        self.0
            .kill(&self.0.layout().shards()[0], app, token, now, "killed")
            .into_cmd()
    }
}

/// A new token, as create makes them.
pub fn new_token() -> String {
    crate::token::generate(crate::clock::now_millis(), None)
}
