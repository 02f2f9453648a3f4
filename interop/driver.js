// Drives the npm redis-sessions module for the Rust tests: one JSON request per line on
// stdin ({"id":1,"method":"get","args":{...}}), one JSON reply per line on stdout
// ({"id":1,"ok":...} or {"id":1,"error":{"name":...,"message":...}}).
// Usage: node driver.js '{"port":6379,"namespace":"rs","wipe":0,"cachetime":0}'
"use strict";
const readline = require("readline");
const RedisSessions = require("redis-sessions").default;

const options = JSON.parse(process.argv[2] || "{}");
if (options.wipe === undefined) options.wipe = 0;
const rs = new RedisSessions(options);

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", async (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return;
  }
  try {
    let value;
    if (req.method === "bench") {
      value = await bench(req.args);
    } else if (req.method === "echo") {
      // The arguments as Node read them: the reply shows what JSON.stringify writes for them.
      value = req.args;
    } else {
      value = await rs[req.method](req.args);
    }
    process.stdout.write(JSON.stringify({ id: req.id, ok: value === undefined ? null : value }) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ id: req.id, error: { name: err.name, message: err.message } }) + "\n");
  }
});
rl.on("close", async () => {
  try { await rs.quit(); } catch (e) { /* already closed */ }
  process.exit(0);
});

// The benchmark workload, run inside Node so that only the module's own cost is measured.
// args: {op: "create"|"get"|"set"|"kill", n, concurrency, app, tokens?}
async function bench(args) {
  const { op, app } = args;
  const n = args.n;
  const tokens = args.tokens || [];
  const started = process.hrtime.bigint();
  const latencies = [];
  const call = async (i) => {
    const t0 = process.hrtime.bigint();
    if (op === "create") {
      const r = await rs.create({ app, id: "user" + (i % 1000), ip: "127.0.0.1", ttl: 7200 });
      tokens[i] = r.token;
    } else if (op === "get") {
      await rs.get({ app, token: tokens[i % tokens.length] });
    } else if (op === "set") {
      await rs.set({ app, token: tokens[i % tokens.length], d: { ["k" + (i % 10)]: i } });
    } else if (op === "kill") {
      await rs.kill({ app, token: tokens[i % tokens.length] });
    }
    latencies.push(Number(process.hrtime.bigint() - t0));
  };
  if (args.sequential) {
    for (let i = 0; i < n; i++) await call(i);
  } else {
    const all = [];
    for (let i = 0; i < n; i++) all.push(call(i));
    await Promise.all(all);
  }
  const elapsed = Number(process.hrtime.bigint() - started);
  latencies.sort((a, b) => a - b);
  return {
    elapsed_ns: elapsed,
    p50_ns: latencies[Math.floor(latencies.length * 0.5)] || 0,
    p99_ns: latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] || 0,
    tokens: op === "create" ? tokens : undefined,
  };
}
