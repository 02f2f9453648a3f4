#!/usr/bin/env python3
"""Overload measurements of rest-sessions (issue 22's "Done when"): prints figures, asserts
nothing. Not a test and not run in CI (it takes about 6 minutes); the CI tests with the
same scenarios at a small size are crates/rest-sessions/tests/overload.rs.

  scripts/overload-bench.py [--binary target/debug/rest-sessions] [--only NAME] [--tiny]

(--tiny: every scenario at a few dozen connections and without the minute's wait, to
check that the command runs; its figures mean nothing.)

Scenarios (each against a fresh server on the test's own redis-server):
  idle     under `ulimit -n 1024` (bound 896): 896 keep-alive clients make one request
           each and sit idle; 200 probes (one started every 250 ms, over 50 s) each retry `GET /ping` on 503
           after Retry-After and count as served when a 200 arrives within 2 s.
  slowloris  same bound: an attacker holds every slot with stalled heads (`GET /pi`) and
           opens 200 more a second; the same 200 probes.
  bodies   default bound: 2000 connections each send a head declaring 1 MiB and all of
           the body but its last byte; peak RSS while they are held, RSS a minute after
           they close.
  heads    1000 connections each send 380 KB of unfinished head; same RSS figures.

Crowd and attacker connections come from many loopback addresses (127.0.x.y), as from
many hosts; the probe comes from 127.0.0.1.
"""

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# The sizes of the "Done when"; --tiny shrinks them.
SIZE = {"bound": 896, "probes": 200, "every": 0.25, "bodies": 2000, "heads": 1000, "after": 60.0}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PING = b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
KEEP_PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ovl-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    def __init__(self, binary, redis, open_files=None, env=None):
        self.port = free_port()
        e = {k: v for k, v in os.environ.items() if not k.startswith("RS_")}
        e.update({"RS_PORT": str(self.port), "RS_REDISPORT": str(redis.port), "RS_WIPE": "0",
                  "RUST_LOG": "error"})
        e.update(env or {})
        cmd = [binary]
        if open_files and SIZE["bound"] < 896:
            e["RS_MAX_CONNECTIONS"] = str(SIZE["bound"])
        if open_files:
            cmd = ["sh", "-c", f'ulimit -n {open_files} && exec "$0" "$@"', binary]
        self.proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(PING)
                    if s.recv(4096).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("server did not start")

    def counters(self):
        """The overload counters of /metrics (empty on a server without them)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), 2) as s:
                s.settimeout(2)
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                text = b""
                while chunk := s.recv(65536):
                    text += chunk
        except OSError:
            return "(no /metrics answer)"
        wanted = ("rest_sessions_connections_refused_total", "rest_sessions_connections_evicted",
                  "rest_sessions_connections_expired", "rest_sessions_requests_refused")
        lines = [line for line in text.decode("latin-1").splitlines()
                 if line.startswith(wanted)]
        return "; ".join(line.replace("rest_sessions_", "") for line in lines)

    def rss(self):
        return rss_mb(self.proc.pid)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def crowd_address(i, base):
    return f"127.{base}.{(i // 250) % 250}.{i % 250 + 1}"


async def connect(port, source=None):
    local = (source, 0) if source else None
    return await asyncio.open_connection("127.0.0.1", port, local_addr=local, limit=1 << 20)


async def read_reply(reader, timeout):
    """Status and headers of one reply (None on EOF or timeout)."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError,
            asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    try:
        await asyncio.wait_for(reader.readexactly(length), timeout)
    except Exception:
        pass
    return status, headers


async def probe(port):
    """One well-behaved client: GET /ping, retrying on 503 after Retry-After (and after
    50 ms on a closed or reset connection). True when a 200 arrives within 2 s."""
    started = time.monotonic()
    while time.monotonic() - started < 2.0:
        left = 2.0 - (time.monotonic() - started)
        reply = None
        try:
            reader, writer = await asyncio.wait_for(connect(port), left)
            writer.write(PING)
            reply = await read_reply(reader, max(0.05, 2.0 - (time.monotonic() - started)))
            writer.close()
        except (asyncio.TimeoutError, OSError):
            pass
        if reply and reply[0] == 200:
            return time.monotonic() - started <= 2.0
        if reply and reply[0] == 503:
            await asyncio.sleep(float(reply[1].get("retry-after", "1")))
        else:
            await asyncio.sleep(0.05)
    return False


async def probes(port, total=None, every=None):
    """`total` tries of a well-behaved client, one started every `every` seconds (so they
    sample 50 s of the attack, several of its cycles); how many were served within 2 s."""
    total = total or SIZE["probes"]
    every = every or SIZE["every"]
    tries = []
    for _ in range(total):
        tries.append(asyncio.ensure_future(probe(port)))
        await asyncio.sleep(every)
    results = await asyncio.gather(*tries)
    return sum(1 for r in results if r), total


async def idle_crowd(binary, redis):
    server = Server(binary, redis, open_files=1024)
    held = []

    async def idle_client(i):
        try:
            reader, writer = await connect(server.port, crowd_address(i, 2))
            writer.write(KEEP_PING)
            reply = await read_reply(reader, 5)
            held.append(writer)
            return reply is not None and reply[0] == 200
        except OSError:
            return False
    bound = SIZE["bound"]
    ok = await asyncio.gather(*(idle_client(i) for i in range(bound)))
    print(f"idle: {sum(ok)} of {bound} keep-alive clients served once and now idle")
    served, total = await probes(server.port)
    print(f"idle: {served} of {total} probes served within 2 s "
          f"({100 * served / total:.1f}%); RSS {server.rss():.0f} MB")
    print(f"idle: counters: {server.counters()}")
    for w in held:
        w.close()
    server.stop()


async def slowloris(binary, redis):
    server = Server(binary, redis, open_files=1024)
    stop = asyncio.Event()
    opened = [0]
    open_now = [0]
    next_open = [time.monotonic()]

    async def attacker(i):
        """One of 896 attacker loops: a stalled head, reopened (from the next address) as
        soon as the server closes it, all loops together at most 200 reopenings a second."""
        first = True
        while not stop.is_set():
            if not first:
                now = time.monotonic()
                next_open[0] = max(next_open[0] + 1 / 200, now)
                await asyncio.sleep(next_open[0] - now)
            first = False
            try:
                reader, writer = await connect(server.port, crowd_address(i + opened[0], 3))
            except OSError:
                continue
            opened[0] += 1
            open_now[0] += 1
            try:
                writer.write(b"GET /pi")
                while not stop.is_set() and await reader.read(4096):
                    pass
            except OSError:
                pass
            finally:
                open_now[0] -= 1
                writer.close()

    tasks = [asyncio.ensure_future(attacker(i)) for i in range(SIZE["bound"])]
    await asyncio.sleep(1.0)
    first = opened[0]
    print(f"slowloris: {open_now[0]} attacker connections open before the probes")
    started = time.monotonic()
    served, total = await probes(server.port)
    took = time.monotonic() - started
    print(f"slowloris: {served} of {total} probes served within 2 s "
          f"({100 * served / total:.1f}%) over {took:.0f} s; attacker opened {first} at once, "
          f"then {(opened[0] - first) / took:.0f}/s; {open_now[0]} open at the end")
    print(f"slowloris: counters: {server.counters()}")
    stop.set()
    for t in tasks:
        t.cancel()
    server.stop()


async def unfinished(binary, redis, label, count, make, env=None):
    server = Server(binary, redis, env=env)
    await asyncio.sleep(1.0)
    baseline = server.rss()
    writers = []
    peak = [baseline]
    answered = {}
    done = asyncio.Event()

    async def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.rss())
            await asyncio.sleep(0.05)
    sampler = asyncio.ensure_future(sample())

    async def one(i):
        try:
            reader, writer = await connect(server.port, crowd_address(i, 4))
            writers.append(writer)
            writer.write(make(i))
            await writer.drain()
            reply = await read_reply(reader, 0.5)
            key = reply[0] if reply else "none"
            answered[key] = answered.get(key, 0) + 1
        except OSError:
            answered["reset"] = answered.get("reset", 0) + 1
    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    sent = time.monotonic() - started
    await asyncio.sleep(2.0)
    served, total = await probes(server.port, total=min(20, SIZE["probes"]), every=0.1)
    held = server.rss()
    print(f"{label}: counters: {server.counters()}")
    done.set()
    await sampler
    for w in writers:
        w.close()
    await asyncio.sleep(1.0)
    right_after = server.rss()
    await asyncio.sleep(SIZE["after"])
    after = server.rss()
    print(f"{label}: {served} of {total} probes served within 2 s while they were held")
    print(f"{label}: {count} sent in {sent:.1f} s, replies {answered}; RSS baseline "
          f"{baseline:.0f} MB, peak {peak[0]:.0f} MB, held {held:.0f} MB, just after close "
          f"{right_after:.0f} MB, a minute after {after:.0f} MB")
    server.stop()


def body_request(token):
    head = (f"POST /benchapp/set/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/json\r\nContent-Length: {1 << 20}\r\n\r\n").encode()
    body = b'{"k":"' + b"v" * ((1 << 20) - 9)
    return lambda i: head + body


def head_request(i):
    line = b"GET /ping HTTP/1.1\r\nHost: x\r\n"
    filler = b"".join(b"X-F%d: %s\r\n" % (n, b"a" * 3990) for n in range(95))
    return line + filler  # about 380 KB and no final blank line


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/debug/rest-sessions"))
    parser.add_argument("--only", action="append")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.tiny:
        SIZE.update(bound=40, probes=10, every=0.1, bodies=40, heads=40, after=1.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    redis = Redis()
    try:
        want = lambda name: not args.only or name in args.only
        print(f"binary: {args.binary}")
        if want("idle"):
            await idle_crowd(args.binary, redis)
        if want("slowloris"):
            await slowloris(args.binary, redis)
        if want("bodies") or want("heads"):
            server = Server(args.binary, redis)
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"PUT /benchapp/create/u1?ip=127.0.0.1&ttl=3600 HTTP/1.1\r\n"
                          b"Host: x\r\nConnection: close\r\n\r\n")
                reply = b""
                while chunk := s.recv(4096):
                    reply += chunk
            token = reply.split(b'"token":"')[1][:64].decode()
            server.stop()
            if want("bodies"):
                await unfinished(args.binary, redis, "bodies", SIZE["bodies"],
                                body_request(token))
            if want("heads"):
                await unfinished(args.binary, redis, "heads", SIZE["heads"], head_request)
    finally:
        redis.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
