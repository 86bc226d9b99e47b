"""Webhook latency: time from the committing admin response to the receiver getting the event.

Started by bench/webhook-latency.sh with ADMIN (base URL), KEY (admin key) and EVENTS set.
A receiver on 127.0.0.1 keeps the arrival time of every delivery by the id of the object in
it; a client creates upstreams one after another and keeps the time each 201 arrived. Both
clocks are this process's monotonic clock.
"""

import http.server
import json
import os
import statistics
import threading
import time
import urllib.request

ADMIN = os.environ["ADMIN"]
KEY = os.environ["KEY"]
EVENTS = int(os.environ.get("EVENTS", "1000"))
MT = "application/vnd.api+json"

arrived = {}
lock = threading.Condition()


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        at = time.monotonic()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        payload = json.loads(body)
        if payload.get("type") == "upstream.created":
            with lock:
                arrived.setdefault(payload["data"]["object"]["id"], at)
                lock.notify_all()

    def log_message(self, *args):
        pass


def call(method, path, body=None):
    request = urllib.request.Request(
        ADMIN + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + KEY, "Accept": MT, "Content-Type": MT},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % server.server_address[1]
    call("POST", "/api/webhooks", {"data": {"type": "webhooks", "attributes": {
        "url": url, "events": ["upstream.created"]}}})
    committed = {}
    stamp = int(time.time())
    for n in range(EVENTS):
        doc = call("POST", "/api/upstreams", {"data": {"type": "upstreams", "attributes": {
            "name": "bench-%d-%d" % (stamp, n), "base_url": "http://127.0.0.1:9"}}})
        committed[doc["data"]["id"]] = time.monotonic()
        # One change at a time, each measured alone: wait for its delivery (at most 5 s).
        with lock:
            lock.wait_for(lambda: doc["data"]["id"] in arrived, timeout=5)
    lost = [i for i in committed if i not in arrived]
    latencies = sorted((arrived[i] - committed[i]) * 1000 for i in committed if i in arrived)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print("events      %d (%d not delivered within 5 s)" % (len(committed), len(lost)))
    print("p50         %.2f ms" % p(0.50))
    print("p90         %.2f ms" % p(0.90))
    print("p99         %.2f ms" % p(0.99))
    print("max         %.2f ms" % latencies[-1])
    print("mean        %.2f ms" % statistics.mean(latencies))
    # Negative values: the delivery arrived before the client had read the 201.
    print("negative    %d" % sum(1 for l in latencies if l < 0))
    if lost or p(0.50) >= 50:
        raise SystemExit("target missed: p50 must be < 50 ms with nothing lost")


if __name__ == "__main__":
    main()
