#!/usr/bin/env python3
"""A consumer of rest-sessions' session lifecycle events, in Python's standard library only.

It reads `GET /{app}/events` as Server-Sent Events and saves its position (the event's `id`)
after handling each event, so that a restart, even after SIGKILL, resumes where it was
(`Last-Event-ID`): no event is missed. An event handled but not yet saved when the process
died is handled once more (at-least-once): make the handler idempotent (an event's `cursor`
identifies it). On its first start (no position saved) it reads every event retained.

usage: events_consumer.py BASE_URL APP POSITION_FILE OUTPUT_FILE
  BASE_URL       e.g. http://127.0.0.1:3000
  POSITION_FILE  where the position is kept (written atomically)
  OUTPUT_FILE    "handling" an event here appends its JSON to this file, one per line
environment: RS_AUTH_TOKEN, the server's bearer secret when it has one.

The crate's tests run it (tests/events.rs: killed with SIGKILL mid-stream, restarted).
"""

import os
import sys
import time
import urllib.error
import urllib.request


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def save(path, cursor):
    # Write then rename: a crash leaves the old position or the new one, never half of one.
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(cursor)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def handle(out, data):
    out.write(data + "\n")
    out.flush()
    os.fsync(out.fileno())


def consume(base, app, position_file, out):
    """Reads one connection's events until it ends; raises on a connection error."""
    headers = {"Accept": "text/event-stream"}
    token = os.environ.get("RS_AUTH_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    url = f"{base}/{app}/events"
    cursor = load(position_file)
    if cursor is None:
        url += "?after="  # first start: from the oldest event retained
    else:
        headers["Last-Event-ID"] = cursor
    request = urllib.request.Request(url, headers=headers)
    # The server sends a comment every 15 s while idle: 60 s of silence is a dead link.
    with urllib.request.urlopen(request, timeout=60) as stream:
        event_id, data = None, []
        for raw in stream:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data:
                    handle(out, "\n".join(data))
                    if event_id is not None:
                        save(position_file, event_id)
                event_id, data = None, []
            elif line.startswith(":"):
                continue  # keep-alive comment
            else:
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "id":
                    event_id = value
                elif field == "data":
                    data.append(value)


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    base, app, position_file, output_file = sys.argv[1:]
    with open(output_file, "a", encoding="utf-8") as out:
        while True:
            try:
                consume(base.rstrip("/"), app, position_file, out)
            except urllib.error.HTTPError as err:
                # 400 (bad position), 401 (secret), 404 (events off): retrying cannot help.
                if err.code < 500:
                    print(f"events: {err.code} {err.read().decode()}", file=sys.stderr)
                    return 1
                print(f"events: {err.code}; reconnecting", file=sys.stderr)
            except OSError as err:  # refused, reset, timed out (URLError is an OSError)
                print(f"events: {err}; reconnecting", file=sys.stderr)
            time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
