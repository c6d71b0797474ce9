"""scripts/compose_check.sh's webhook receiver, run from the rapport image on the check's internal
network (docker/compose.check.yml, service `hooks`).

  python hooks.py serve PORT             answer every POST 204 and append it (headers, body) to
                                         /tmp/received.jsonl; GET answers 200 (the health check)
  python hooks.py register API URL       register URL as a webhook endpoint of the API (admin key
                                         in $RAPPORT_API_KEY); prints the endpoint's secret
  python hooks.py verify SESSION TYPE..  every delivery received is signed with $WEBHOOK_SECRET
                                         (rapport.events.webhook_signing.verify); SESSION's
                                         deliveries include each TYPE (waits up to 30 s for
                                         them); exit 1 otherwise
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED = "/tmp/received.jsonl"
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        line = json.dumps(
            {"headers": dict(self.headers.items()), "body": base64.b64encode(body).decode()}
        )
        with _lock, open(RECEIVED, "a") as f:
            f.write(line + "\n")
        print(f"hooks: {self.headers.get('webhook-id')} {len(body)} bytes", flush=True)
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: stdout is the record
        pass


def serve(port: int) -> None:
    open(RECEIVED, "a").close()
    print(f"hooks: listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


def register(api: str, url: str) -> None:
    req = urllib.request.Request(
        f"{api}/v1/webhooks",
        data=json.dumps({"url": url, "description": "compose check"}).encode(),
        headers={
            "authorization": f"Bearer {os.environ['RAPPORT_API_KEY']}",
            "content-type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print(json.load(r)["secret"])
    except urllib.error.HTTPError as e:
        sys.exit(f"hooks: POST /v1/webhooks: {e.code} {e.read().decode()}")


def verify(session: str, wanted: list[str], wait_s: float = 30.0) -> None:
    from rapport.events.webhook_signing import WebhookVerificationError
    from rapport.events.webhook_signing import verify as check_signature

    secret = os.environ["WEBHOOK_SECRET"]
    deadline = time.monotonic() + wait_s
    while True:  # deliveries may still be on their way: until each wanted type came, or wait_s
        types: Counter[str] = Counter()
        order: dict[int, str] = {}
        with open(RECEIVED) as f:
            received = [json.loads(line) for line in f if line.strip()]
        for r in received:
            body = base64.b64decode(r["body"])
            try:
                check_signature(secret, r["headers"], body, now=time.time())
            except WebhookVerificationError as e:
                sys.exit(f"hooks: delivery {r['headers'].get('webhook-id')} not signed: {e}")
            event = json.loads(body)
            if event.get("session_id") == session:
                types[event["type"]] += 1
                order[event["seq"]] = event["type"]
        missing = [t for t in wanted if not types[t]]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    said = ", ".join(f"{t} {n}" for t, n in sorted(types.items()))
    print(f"{len(received)} deliveries, every signature valid; session {session}: {said}")
    print("  by seq: " + ", ".join(f"{seq} {order[seq]}" for seq in sorted(order)))
    if missing:
        sys.exit(f"hooks: no signed delivery of {', '.join(missing)} for {session} in {wait_s:g} s")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "serve":
        serve(int(args[0]))
    elif command == "register":
        register(args[0], args[1])
    elif command == "verify":
        verify(args[0], args[1:])
    else:
        sys.exit(f"hooks: unknown command {command!r}")
