// The comparison peer of the REST benchmark: a minimal Express server over the npm
// redis-sessions@4.0.0 module, with the two routes the benchmark loads, answering as
// rest-sessions does. Usage: node express-server.js <http port> <redis port>
"use strict";
const express = require("express");
const RedisSessions = require("redis-sessions").default;

const port = Number(process.argv[2] || 3001);
const rs = new RedisSessions({ port: Number(process.argv[3] || 6379), namespace: "rs", wipe: 0 });
const app = express();
app.use(express.json({ limit: "1mb" }));

const fail = (res, err) => res.status(400).json({ error: err.name, message: err.message });

app.put("/:app/create/:id", async (req, res) => {
  try {
    const opts = { app: req.params.app, id: req.params.id, ip: req.query.ip, ttl: req.query.ttl ? Number(req.query.ttl) : undefined };
    if (req.body && Object.keys(req.body).length > 0) opts.d = req.body;
    res.json(await rs.create(opts));
  } catch (err) { fail(res, err); }
});

app.get("/:app/get/:token", async (req, res) => {
  try {
    res.json((await rs.get({ app: req.params.app, token: req.params.token })) || {});
  } catch (err) { fail(res, err); }
});

app.get("/ping", (req, res) => res.send("PONG"));
app.listen(port, "127.0.0.1");
