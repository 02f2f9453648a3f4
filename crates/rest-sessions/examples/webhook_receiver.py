#!/usr/bin/env python3
"""A receiver of rest-sessions' webhooks, in Python's standard library only.

Each POST carries `{"app": ..., "events": [...]}` and the header
`RS-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 under the shared secret of
`"<t>.<body>"`. The receiver recomputes it over the raw body, compares in constant time,
and refuses a time more than five minutes away (a delivery replayed later): 400 for those,
so they are never handled. Deliveries are at least once: an event may come again (a
retry, a server killed mid-delivery), with the same `event_id`, so a handler drops what it
has seen. Answer 2xx only after the events are handled: anything else is retried.

usage: webhook_receiver.py PORT OUTPUT_FILE
  OUTPUT_FILE  "handling" an event appends its JSON to this file, one per line
environment: RS_WEBHOOK_SECRET, the secret the server signs with.

The crate's tests run it (tests/webhooks.rs).
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["RS_WEBHOOK_SECRET"].encode()
TOLERANCE_S = 300


def verify(header, body):
    """True when `header` signs `body` with our secret at a time close to now."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > TOLERANCE_S:
        return False
    expected = hmac.new(SECRET, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver(BaseHTTPRequestHandler):
    seen = set()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verify(self.headers.get("RS-Signature", ""), body):
            self.send_response(400)
            self.end_headers()
            return
        with open(OUTPUT, "a", encoding="utf-8") as out:
            for event in json.loads(body)["events"]:
                # Idempotent handling: a redelivered event has been handled already.
                if event["event_id"] in Receiver.seen:
                    continue
                Receiver.seen.add(event["event_id"])
                out.write(json.dumps(event) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    OUTPUT = sys.argv[2]
    # One request at a time: handling (and the seen set) needs no lock.
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
