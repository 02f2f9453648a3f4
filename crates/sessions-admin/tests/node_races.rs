//! The npm module `redis-sessions@4.0.0`'s own races, reproduced deterministically. Its
//! get and set read a session in one round trip and write it back in a MULTI of a second;
//! its kill ends a session in a MULTI and removes the id from `_users` in a third call.
//! Racing two clients leaves the race to the scheduler, so the script below runs the
//! module's own code with one step of the other client placed exactly in the gap:
//!
//! - get after kill: client A's get has read the session; B's kill runs whole; A's MULTI
//!   then puts back the index entries and a hash of counters without an id;
//! - set after kill: the same with A's set (a hash of `w` and `d` alone);
//! - create inside kill: B's kill has run its MULTI (the user's last session is gone);
//!   A creates a new session of that user; B's ZREM then drops the id from `_users`
//!   although the user has a session again.
//!
//! `check` finds what each leaves, `--repair` mends it without touching a healthy session,
//! and the npm module reads the mended sessions afterwards.

mod common;

use common::{counts, map, run, single};
use serde_json::Value;
use std::process::Command;
use test_support::node::{interop_dir, NodePeer};
use test_support::RedisServer;

const NS: &str = "rs";

const RACES: &str = r#"
const RS = require("redis-sessions").default;
const options = { port: Number(process.argv[1]), namespace: "rs", wipe: 0, cachetime: 0 };
const a = new RS(options);
const b = new RS(options);
const app = "nodeapp";

// Runs `hook` right before the exec of the next MULTI `client` builds: the gap between
// the module's read and its write.
function beforeNextExec(client, hook) {
  const redis = client.redis;
  const multi = redis.multi;
  redis.multi = function (...args) {
    redis.multi = multi;
    const m = multi.apply(redis, args);
    const exec = m.exec.bind(m);
    m.exec = async (...rest) => { await hook(); return exec(...rest); };
    return m;
  };
}

// Runs `hook` right before the next ZREM `client` sends: kill's last, separate step.
function beforeNextZRem(client, hook) {
  const redis = client.redis;
  const zRem = redis.zRem;
  redis.zRem = async function (...args) {
    redis.zRem = zRem;
    await hook();
    return zRem.apply(redis, args);
  };
}

(async () => {
  const healthy = [];
  // getter keeps another session (its id stays rightly in _users); setter has none left.
  for (const id of ["alice", "alice", "bob", "getter"]) {
    healthy.push((await a.create({ app, id, ip: "10.0.0.1", d: { n: healthy.length } })).token);
  }
  // get after kill
  const g = (await a.create({ app, id: "getter", ip: "10.0.0.2" })).token;
  beforeNextExec(a, () => b.kill({ app, token: g }));
  const got = await a.get({ app, token: g });
  // set after kill
  const s = (await a.create({ app, id: "setter", ip: "10.0.0.3" })).token;
  beforeNextExec(a, () => b.kill({ app, token: s }));
  await a.set({ app, token: s, d: { cart: 3 } });
  // create inside kill
  const k = (await a.create({ app, id: "carol", ip: "10.0.0.4" })).token;
  let fresh;
  beforeNextZRem(b, async () => { fresh = (await a.create({ app, id: "carol", ip: "10.0.0.5" })).token; });
  const killed = await b.kill({ app, token: k });
  console.log(JSON.stringify({ healthy, g, s, k, fresh, got: got && got.id, killed: killed.kill }));
  await a.quit();
  await b.quit();
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn check_finds_and_repair_mends_what_the_npm_modules_races_leave() {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/redis-sessions").exists(),
        "run `npm ci` in {} first (the CI script does)",
        dir.display()
    );
    let server = RedisServer::start();
    let env = single(server.url(), NS);
    let out = Command::new("node")
        .current_dir(&dir)
        .args(["-e", RACES, &server.port().to_string()])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raced: Value = serde_json::from_slice(&out.stdout).expect("the script's JSON");
    // The races ran as described: the get saw the session, the kill ended one.
    assert_eq!(raced["got"], "getter");
    assert_eq!(raced["killed"], 1);
    let token = |k: &str| raced[k].as_str().expect("a token").to_owned();
    let (g, s, k, fresh) = (token("g"), token("s"), token("k"), token("fresh"));
    let healthy: Vec<String> = raced["healthy"]
        .as_array()
        .expect("healthy")
        .iter()
        .map(|t| t.as_str().expect("token").to_owned())
        .collect();
    // What the races left, as Redis holds it.
    let hash = |t: &str| {
        server
            .strings(&["HGETALL", &format!("{NS}:nodeapp:{t}")])
            .expect("hgetall")
    };
    assert_eq!(
        hash(&g),
        ["r", "1"],
        "the get wrote counters into a killed session"
    );
    assert!(hash(&s).contains(&"w".to_owned()) && !hash(&s).contains(&"id".to_owned()));
    let users = server
        .strings(&["ZRANGE", &format!("{NS}:nodeapp:_users"), "0", "-1"])
        .expect("zrange");
    assert!(!users.contains(&"carol".to_owned()), "{users:?}");
    let snapshot: Vec<Vec<String>> = healthy.iter().map(|t| hash(t)).collect();

    let check = run(&env, &["--json", "check"], "");
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert_eq!(
        counts(&check.json()["findings"]),
        map(&[
            ("corrupt_hash", 2),
            ("missing_from_users", 1),
            ("orphan_expiry_member", 2),
            ("orphan_sessions_member", 2),
            ("orphan_user", 1),
        ]),
        "{}",
        check.stdout
    );
    let repaired = run(&env, &["--json", "check", "--repair"], "");
    assert_eq!(repaired.code, 1, "{}", repaired.stderr);
    assert_eq!(
        counts(&repaired.json()["repairs"]),
        map(&[
            ("added_to_users", 1),
            ("removed_corrupt_hash", 2),
            ("removed_expiry_member", 2),
            ("removed_from_users", 1),
            ("removed_sessions_member", 2),
        ]),
        "{}",
        repaired.stdout
    );
    let again = run(&env, &["--json", "check"], "");
    assert_eq!(again.code, 0, "{}", again.stdout);
    let after: Vec<Vec<String>> = healthy.iter().map(|t| hash(t)).collect();
    assert_eq!(snapshot, after, "a healthy session was changed");
    for t in [&g, &s, &k] {
        assert!(hash(t).is_empty(), "a raced session is left");
    }
    let users = server
        .strings(&["ZRANGE", &format!("{NS}:nodeapp:_users"), "0", "-1"])
        .expect("zrange");
    assert_eq!(users.len(), 4, "{users:?}");
    assert!(!users.contains(&"setter".to_owned()), "{users:?}");
    // The npm module reads the mended namespace: carol's new session, listed by her id.
    let mut node = NodePeer::start(&format!(
        r#"{{"port":{},"namespace":"{NS}","cachetime":0}}"#,
        server.port()
    ));
    let got = node
        .call("get", &format!(r#"{{"app":"nodeapp","token":"{fresh}"}}"#))
        .expect("node get");
    assert!(got.contains(r#""id":"carol""#), "{got}");
    let soid = node
        .call("soid", r#"{"app":"nodeapp","id":"carol"}"#)
        .expect("node soid");
    assert!(soid.contains("\"ip\":\"10.0.0.5\""), "{soid}");
    let active = node
        .call("activity", r#"{"app":"nodeapp","deltaTime":600}"#)
        .expect("node activity");
    assert_eq!(active, r#"{"activity":4}"#, "alice, bob, getter and carol");
}
