//! The exact commands each operation sends to Redis, built without sending them: the
//! store sends them, and the benchmark drives the same bytes straight at Redis to measure
//! the ceiling.

use super::scripts::Scripts;
use crate::layout::{Layout, Shard};
use crate::session::Data;
use crate::store::NewSession;
use redis::{Cmd, Pipeline, Script};
use std::sync::Arc;

/// Builds the commands of one namespace's operations.
#[derive(Debug, Clone)]
pub struct Commands {
    layout: Layout,
    scripts: Arc<Scripts>,
    expire_keys: bool,
}

/// `EVALSHA sha numkeys keys…` — arguments follow.
fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    // Room for the keys and the usual arguments, so building the command does not regrow.
    let mut cmd = Cmd::with_capacity(2 + keys.len() + 8, 512);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    cmd
}

impl Commands {
    pub(crate) fn new(layout: Layout, expire_keys: bool) -> Self {
        Commands {
            layout,
            scripts: Arc::new(Scripts::new()),
            expire_keys,
        }
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The scripts' common keys and arguments for one session (see lua/lib/README.md).
    fn session_call(&self, script: &Script, l: &Shard, app: &str, token: &str, now: i64) -> Cmd {
        let mut cmd = evalsha(
            script,
            &[
                &l.session(app, token),
                &l.app_sessions(app),
                &l.app_users(app),
                &l.expiries(),
            ],
        );
        cmd.arg(now)
            .arg(app)
            .arg(token)
            .arg(l.user_sessions_prefix(app))
            .arg(self.layout.cache_channel())
            .arg(if self.expire_keys { "1" } else { "0" });
        cmd
    }

    /// The fields of a new session's hash, in the order the Node module writes them.
    fn new_fields(s: &NewSession<'_>, now: i64) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", s.id.to_owned()),
            ("r", "1".to_owned()),
            ("w", "1".to_owned()),
            ("ip", s.ip.to_owned()),
            ("la", now.to_string()),
            ("ttl", s.ttl.to_string()),
        ];
        if let Some(d) = &s.d {
            fields.push(("d", crate::node_json::to_string(d)));
        }
        if s.no_resave {
            fields.push(("no_resave", "1".to_owned()));
        }
        fields
    }

    /// create as a script: for the sharded layout, whose calls the cluster client retries
    /// while a slot migrates (a MULTI/EXEC would abort).
    pub(crate) fn create_script(
        &self,
        l: &Shard,
        s: &NewSession<'_>,
        token: &str,
        now: i64,
    ) -> Cmd {
        let mut cmd = evalsha(
            &self.scripts.create,
            &[
                &l.session(s.app, token),
                &l.app_sessions(s.app),
                &l.app_users(s.app),
                &l.expiries(),
                &l.user_sessions(s.app, s.id),
            ],
        );
        cmd.arg(now)
            .arg(s.app)
            .arg(token)
            .arg(s.id)
            .arg(s.ttl)
            .arg(if self.expire_keys { "1" } else { "0" });
        for (field, value) in Self::new_fields(s, now) {
            cmd.arg(field).arg(value);
        }
        cmd
    }

    /// create: a MULTI/EXEC of writes only (Redis runs it faster than a script).
    pub(crate) fn create(&self, l: &Shard, s: &NewSession<'_>, token: &str, now: i64) -> Pipeline {
        let hash = l.session(s.app, token);
        let fields = Self::new_fields(s, now);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(
                l.app_sessions(s.app),
                Layout::session_member(token, s.id),
                now,
            )
            .ignore()
            .zadd(l.app_users(s.app), s.id, now)
            .ignore()
            .zadd(
                l.expiries(),
                Layout::expiry_member(s.app, token, s.id),
                now.saturating_add(s.ttl),
            )
            .ignore()
            .sadd(l.user_sessions(s.app, s.id), token)
            .ignore()
            .hset_multiple(&hash, &fields)
            .ignore();
        if self.expire_keys {
            pipe.expire(&hash, s.ttl.saturating_add(1)).ignore();
        }
        pipe
    }

    pub(crate) fn get(&self, l: &Shard, app: &str, token: &str, now: i64) -> Cmd {
        self.session_call(&self.scripts.get, l, app, token, now)
    }

    pub(crate) fn set(&self, l: &Shard, app: &str, token: &str, d: &Data, now: i64) -> Cmd {
        let mut cmd = self.session_call(&self.scripts.set, l, app, token, now);
        for (key, value) in d {
            // Keys and values go as the JSON text Node writes: the script compares keys as
            // text and splices values in without reading numbers, so none loses a digit.
            cmd.arg(crate::node_json::to_vec(key))
                .arg(crate::node_json::to_vec(value));
        }
        cmd
    }

    pub(crate) fn kill(&self, l: &Shard, app: &str, token: &str, now: i64) -> Cmd {
        self.session_call(&self.scripts.kill, l, app, token, now)
    }

    pub(crate) fn killsoid(&self, l: &Shard, app: &str, id: &str) -> Cmd {
        let mut cmd = evalsha(
            &self.scripts.killsoid,
            &[
                &l.user_sessions(app, id),
                &l.app_sessions(app),
                &l.app_users(app),
                &l.expiries(),
            ],
        );
        cmd.arg(app)
            .arg(id)
            .arg(l.app_prefix(app))
            .arg(self.layout.cache_channel());
        cmd
    }

    pub(crate) fn killall_batch(&self, l: &Shard, app: &str, batch: usize) -> Cmd {
        let mut cmd = evalsha(
            &self.scripts.killall,
            &[&l.app_sessions(app), &l.app_users(app), &l.expiries()],
        );
        cmd.arg(batch)
            .arg(app)
            .arg(l.app_prefix(app))
            .arg(l.user_sessions_prefix(app))
            .arg(self.layout.cache_channel());
        cmd
    }

    pub(crate) fn activity(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = redis::cmd("ZCOUNT");
        cmd.arg(l.app_users(app)).arg(since).arg("+inf");
        cmd
    }

    pub(crate) fn soid(&self, l: &Shard, app: &str, id: &str) -> Cmd {
        let mut cmd = evalsha(&self.scripts.soid, &[&l.user_sessions(app, id)]);
        cmd.arg(l.app_prefix(app));
        cmd
    }

    pub(crate) fn soapp(&self, l: &Shard, app: &str, since: i64) -> Cmd {
        let mut cmd = evalsha(&self.scripts.soapp, &[&l.app_sessions(app)]);
        cmd.arg(since).arg(l.app_prefix(app));
        cmd
    }

    pub(crate) fn sweep_batch(&self, l: &Shard, now: i64, batch: usize) -> Cmd {
        let mut cmd = evalsha(&self.scripts.sweep, &[&l.expiries()]);
        cmd.arg(now)
            .arg(batch)
            .arg(l.prefix())
            .arg(self.layout.cache_channel());
        cmd
    }

    pub(crate) fn sweep_lease(&self, ttl_ms: u64) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.layout.sweep_lease())
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        cmd
    }
}
