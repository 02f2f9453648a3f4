//! The exact commands each operation sends to Redis, built without sending them: the
//! store sends them, and the benchmark drives the same bytes straight at Redis to measure
//! the ceiling.

use super::scripts::{LuaScript, ScriptCall, Scripts};
use crate::layout::Layout;
use std::sync::Arc;

/// Builds the commands of one namespace's operations.
#[derive(Debug, Clone)]
pub(crate) struct Commands {
    pub(super) layout: Layout,
    pub(super) scripts: Arc<Scripts>,
    pub(super) expire_keys: bool,
    /// The event streams' retention (`MAXLEN ~`) when lifecycle events are on.
    pub(super) events: Option<crate::options::EventOptions>,
}

/// A session of an index member `{token}:{id}` (`_sessions`) or `{app}:{token}:{id}`
/// (`SESSIONS`), or None for a member of another shape.
pub(crate) fn split_session_member(member: &str) -> Option<(&str, &str)> {
    member.split_once(':')
}

/// `{app}:{token}:{id}` → (app, token, id), as sweep.lua cuts it (a token is 64 characters).
pub(crate) fn split_expiry_member(member: &str) -> Option<(&str, &str, &str)> {
    let (app, rest) = member.split_once(':')?;
    let token = rest.get(..64)?;
    let id = rest.get(64..)?.strip_prefix(':')?;
    Some((app, token, id))
}

/// `EVALSHA sha numkeys keys…` of `script` — arguments follow.
pub(super) fn evalsha<'a>(script: &'a LuaScript, keys: &[&str]) -> ScriptCall<'a> {
    script.call("EVALSHA", keys)
}

impl Commands {
    pub(crate) fn new(layout: Layout, expire_keys: bool) -> Self {
        Commands {
            layout,
            scripts: Arc::new(Scripts::new(None)),
            expire_keys,
            events: None,
        }
    }

    /// The same commands with lifecycle events on (`Some(max_len)`) or off: the scripts
    /// are built again with their event lines in or out (see scripts.rs).
    pub(crate) fn with_events(mut self, events: Option<crate::options::EventOptions>) -> Self {
        self.events = events;
        self.scripts = Arc::new(Scripts::new(events));
        self
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    pub(crate) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Records the layout on first use, and returns what is recorded (see layout.lua).
    pub(crate) fn layout_record(&self) -> ScriptCall<'_> {
        let record = self.layout.record();
        let mut cmd = evalsha(&self.scripts.layout, &[&self.layout.record_key()]);
        cmd.arg(record.kind).arg(record.shards).arg(record.version);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_members_are_cut_as_the_sweep_script_cuts_them() {
        let token = "a".repeat(64);
        let member = format!("app:{token}:id:with:colons");
        assert_eq!(
            split_expiry_member(&member),
            Some(("app", token.as_str(), "id:with:colons"))
        );
        assert_eq!(split_expiry_member("app:short:id"), None);
        assert_eq!(split_expiry_member(&format!("app:{token}")), None);
        assert_eq!(split_expiry_member("no-colon"), None);
    }
}
