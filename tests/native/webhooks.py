"""Receives the daemon's native-API webhooks and verifies each with the Standard Webhooks
reference library (PyPI `standardwebhooks`), across a secret rotation.

Usage: webhooks.py DAEMON_URL RECEIVER_PORT KEY NUMBER WAIT_SECONDS

Fetches the tenant's signing secret, tracks NUMBER with a webhook to this receiver,
answers the first push 503 with `Retry-After: 1` (it must come again with the same
`webhook-id`), acknowledges the rest with 204, rotates the secret after the first
accepted push and waits for one more. Prints one JSON object: the secrets, the tracking
as created, and every push received with which secrets verified it.
"""

import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

daemon, receiver_port, key, number, wait = sys.argv[1:6]
pushes = []
secrets = []
lock = threading.Lock()


def verified_by(body, headers):
    """The secrets (by index in `secrets`) that verify this push."""
    ok = []
    for i, secret in enumerate(secrets):
        try:
            Webhook(secret).verify(body, headers)
            ok.append(i)
        except WebhookVerificationError:
            pass
    return ok


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with lock:
            first = not pushes
            event = json.loads(body)
            pushes.append(
                {
                    "id": headers.get("webhook-id"),
                    "timestamp": headers.get("webhook-timestamp"),
                    "signatures": len(headers.get("webhook-signature", "").split()),
                    "verified_by": verified_by(body, headers),
                    "answered": 503 if first else 204,
                    "secrets_then": len(secrets),
                    "type": event.get("type"),
                    "number": event.get("data", {}).get("number"),
                    "events": len(event.get("data", {}).get("events", [])),
                }
            )
        if first:
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def call(method, path, body=None, idempotency=None):
    req = urllib.request.Request(daemon + path, method=method)
    req.add_header("Authorization", "Bearer " + key)
    if idempotency:
        req.add_header("Idempotency-Key", idempotency)
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data, timeout=10) as resp:
        return json.loads(resp.read())


server = HTTPServer(("127.0.0.1", int(receiver_port)), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()

out = {}
first = call("GET", "/v1/webhook-secret")["secrets"]
with lock:
    secrets.extend(s["secret"] for s in first)
out["secrets"] = list(secrets)
out["tracking"] = call(
    "POST",
    "/v1/trackings",
    {
        "number": number,
        "carrier": "sandbox",
        "webhook_url": "http://127.0.0.1:%s/hook" % receiver_port,
        "destination": "广东省深圳市南山区",
    },
    idempotency="track-" + number,
)


def accepted():
    with lock:
        return [p for p in pushes if p["answered"] == 204]


deadline = time.time() + float(wait)
while time.time() < deadline and not accepted():
    time.sleep(0.1)
rotated = call("POST", "/v1/webhook-secret/rotate", idempotency="rotate-1")["secrets"]
out["rotated"] = [s["secret"] for s in rotated]
with lock:
    # Index 1 is the new secret from here on; index 0, the old, must still verify.
    secrets.append(rotated[0]["secret"])
seen = len(pushes)
while time.time() < deadline and len(pushes) <= seen:
    time.sleep(0.1)
with lock:
    out["pushes"] = list(pushes)
print(json.dumps(out))
