//! The npm `redis-sessions@4.0.0` module as a peer process, driven over stdin/stdout by
//! `interop/driver.js`, so tests prove that Node and Rust share sessions for real.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A Node process running the npm module against one Redis.
pub struct NodePeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

/// What a call to the Node module gave: its value as JSON text, or its error (name, message).
pub type NodeReply = Result<String, (String, String)>;

/// The folder of the interop driver and its node_modules.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

impl NodePeer {
    /// Starts `node interop/driver.js` with the module's constructor options as JSON,
    /// e.g. `{"port":6379,"namespace":"rs","cachetime":0}`.
    pub fn start(options_json: &str) -> Self {
        let dir = interop_dir();
        assert!(
            dir.join("node_modules/redis-sessions").exists(),
            "run `npm ci` in {} first (the CI script does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("driver.js"))
            .arg(options_json)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node not found");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        NodePeer {
            child,
            stdin,
            stdout,
            next_id: 0,
        }
    }

    /// Calls `method` of the module with `args_json` (its options object) and waits for
    /// the reply. Replies come back in order because each call is awaited before the next.
    pub fn call(&mut self, method: &str, args_json: &str) -> NodeReply {
        self.next_id += 1;
        let id = self.next_id;
        writeln!(
            self.stdin,
            r#"{{"id":{id},"method":"{method}","args":{args_json}}}"#
        )
        .expect("write to node");
        self.stdin.flush().expect("flush to node");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from node");
        parse_reply(&line, id)
    }
}

/// Splits `{"id":N,"ok":VALUE}` / `{"id":N,"error":{"name":..,"message":..}}` without a JSON
/// library (this crate has no dependencies); the tests parse VALUE themselves.
fn parse_reply(line: &str, id: u64) -> NodeReply {
    let line = line.trim();
    let ok_prefix = format!(r#"{{"id":{id},"ok":"#);
    if let Some(rest) = line.strip_prefix(&ok_prefix) {
        return Ok(rest.strip_suffix('}').unwrap_or(rest).to_owned());
    }
    let err_prefix = format!(r#"{{"id":{id},"error":{{"name":""#);
    if let Some(rest) = line.strip_prefix(&err_prefix) {
        let (name, rest) = rest.split_once(r#"","message":""#).unwrap_or((rest, ""));
        let message = rest.strip_suffix(r#""}}"#).unwrap_or(rest);
        return Err((name.to_owned(), message.to_owned()));
    }
    panic!("unexpected reply from node: {line:?}");
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
