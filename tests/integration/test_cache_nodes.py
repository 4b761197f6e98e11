"""Caches that agree across nodes: two thumbnailed nodes on one external
redis-server. A change made through one node (a delete, a cancel, a retry, a
delivery's outcome) is published on {prefix}:changed by the script that makes
it, and every http child of every node drops the job's entry from its node's
shared cache; while a child's subscription is down, or for an entry read
before its subscription was in place, a finished job is read from Redis
instead (docs/ARCHITECTURE.md §4.3, docs/API.md §5).

Node B, the one that must not serve a stale entry, keeps entries of jobs not
ended (and of ended jobs whose callback is pending) for 30 s instead of
200 ms: without the notices it would go on answering what it had cached, so
these tests fail without them."""

import os
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import wait_for

PROMPT = 1.0  # seconds within which the other node must show a change
SECRET = "whsec_" + "dGhlIHRlc3QncyBvd24gc2VjcmV0IQ=="
LONG_PENDING = {"cache": {"pending_ttl": "30s"}}


def merged(*configs):
    out = {}
    for config in configs:
        for section, keys in config.items():
            out.setdefault(section, {}).update(keys)
    return out


def two_nodes(start_daemon, redis_server, common=None, a=None, b=None):
    """Nodes A and B on redis_server; B keeps pending entries LONG_PENDING."""
    external = {"redis": {"mode": "external", "url": redis_server.url}}
    node_a = start_daemon(merged(external, common or {}, a or {}))
    node_b = start_daemon(merged(external, common or {}, LONG_PENDING, b or {}))
    return node_a, node_b


def cache_sum(node, name):
    """The sum over the shards of thumbnailed_<name>{shard=...} on node."""
    text = node.get("/metrics").text
    return sum(int(v) for v in re.findall(rf'^thumbnailed_{name}\{{shard="\d+"\}} (\d+)$',
                                           text, re.M))


def cached_read(node, path):
    """Reads path on node until its cache answers (a read from Redis is kept;
    a child that has just started trusts finished jobs only once it is
    subscribed). Returns that answer."""
    def attempt():
        r = node.get(path)
        assert r.status_code == 200, r.text
        return [r] if r.headers["X-Cache"] == "hit" else None
    return wait_for(f"{path} answered from the cache", attempt, 10)[0]


def poll(what, read, predicate, timeout=PROMPT):
    """Reads until predicate(response) holds, at most timeout seconds; returns
    that response (a 404 Response is false, hence the list)."""
    def attempt():
        r = read()
        return [r] if predicate(r) else None
    return wait_for(what, attempt, timeout, step=0.02)[0]


def test_delete_on_one_node_is_seen_by_the_other(start_daemon, redis_server, source):
    a, b = two_nodes(start_daemon, redis_server)
    doc = a.run(url=source.url("img/land.jpg"), width=48)
    job = f"/v1/thumbnails/{doc['id']}"
    cached_read(b, job)
    image = cached_read(b, job + "/image")
    assert image.headers["Content-Type"] == "image/jpeg"
    dropped = cache_sum(b, "cache_invalidations_total")

    assert a.request("DELETE", job).status_code == 204
    poll("B answers 404 for the document", lambda: b.get(job), lambda r: r.status_code == 404)
    poll("B answers 404 for the image", lambda: b.get(job + "/image"),
         lambda r: r.status_code == 404)
    assert b.get(job).headers.get("X-Cache") != "hit"
    assert cache_sum(b, "cache_invalidations_total") > dropped
    # A read of the job that was in flight when it changed is never put back.
    assert b.get(job + "/image").status_code == 404


def test_cancel_on_one_node_is_seen_by_the_other(start_daemon, redis_server, source):
    a, b = two_nodes(start_daemon, redis_server, common={"fetch": {"timeout": "5s"}})
    doc = a.submit(url=source.url("hang/land.jpg"), width=48)
    job = f"/v1/thumbnails/{doc['id']}"
    a.wait_until(doc["id"], ("processing",))
    assert cached_read(b, job).json()["status"] == "processing"

    assert a.request("DELETE", job).status_code == 204
    seen = poll("B shows the job canceled", lambda: b.get(job),
                lambda r: r.status_code == 200 and r.json()["status"] == "canceled")
    assert seen.headers["X-Cache"] == "miss"


def test_retry_on_one_node_is_seen_by_the_other(start_daemon, redis_server, source):
    # The fetch times out (transient): the job goes back to queued, showing the
    # error, until its retry in a minute (fail.lua, settle_failure).
    a, b = two_nodes(start_daemon, redis_server,
                     common={"fetch": {"timeout": "2s"}, "worker": {"retry_delay": "60s"}})
    doc = a.submit(url=source.url("hang/land.jpg"), width=48)
    job = f"/v1/thumbnails/{doc['id']}"
    a.wait_until(doc["id"], ("processing",))
    assert cached_read(b, job).json()["status"] == "processing"

    retried = a.wait_until(doc["id"], ("queued",))
    assert retried["error"]["code"] == "fetch_timeout", retried
    seen = poll("B shows the retry", lambda: b.get(job),
                lambda r: r.status_code == 200 and r.json()["status"] == "queued")
    assert seen.json()["error"]["code"] == "fetch_timeout"
    assert seen.json()["attempts"] == 1


class Receiver:
    """Callbacks on loopback: each POST is held until release() (at most 60 s),
    then answered 200."""

    def __init__(self):
        self.calls = 0
        self.released = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.calls += 1
                receiver.released.wait(60)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self):
        with self.lock:
            return self.calls

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def test_delivery_outcome_on_one_node_is_seen_by_the_other(start_daemon, redis_server, source,
                                                           receiver):
    callbacks = {"callback": {"secret": SECRET, "schedule": "200ms 200ms", "timeout": "30s"}}
    a, b = two_nodes(start_daemon, redis_server, common=callbacks)
    # Only A's delivery child may send the callback: B's is stopped, once its
    # BLMOVE (0.5 s) has timed out, so that B learns the outcome from Redis's
    # notice and not from its own delivery child.
    (delivery_b,) = wait_for("B's delivery child", lambda: b.children()["delivery"], 10)
    os.kill(delivery_b, signal.SIGSTOP)
    try:
        time.sleep(1.0)
        doc = a.submit(url=source.url("img/land.jpg"), width=48, callback_url=receiver.url)
        job = f"/v1/thumbnails/{doc['id']}"
        wait_for("the callback sent", lambda: receiver.received() == 1, 30)
        held = cached_read(b, job).json()
        assert held["status"] == "done" and held["callback"]["status"] == "pending", held

        receiver.released.set()
        seen = poll("B shows the callback delivered", lambda: b.get(job),
                    lambda r: r.json().get("callback", {}).get("status") == "delivered",
                    timeout=5 * PROMPT)
        assert seen.json()["callback"]["attempts"] == 1
        assert seen.json()["callback"]["last_status"] == 200
        assert receiver.received() == 1
    finally:
        os.kill(delivery_b, signal.SIGCONT)


def test_subscription_lost_then_back(start_daemon, redis_server, source):
    a, b = two_nodes(start_daemon, redis_server)
    doc = a.run(url=source.url("img/port.jpg"), width=40)
    job = f"/v1/thumbnails/{doc['id']}"
    cached_read(b, job)
    cached_read(b, job + "/image")
    unconfirmed = b.metric("thumbnailed_cache_unconfirmed_total")

    # Every subscriber connection of both nodes is cut: what was published
    # meanwhile is lost, so an entry read before cannot be vouched for.
    killed = redis_server.query("CLIENT", "KILL", "TYPE", "pubsub")
    assert killed >= 4, killed  # two http children per node
    r = b.get(job)
    assert r.status_code == 200 and r.headers["X-Cache"] == "miss", r.headers
    assert r.json()["status"] == "done"
    assert b.metric("thumbnailed_cache_unconfirmed_total") > unconfirmed

    # Subscribed again, the children store fresh reads and answer from them.
    poll("B answers the document from its cache again", lambda: b.get(job),
         lambda r: r.headers.get("X-Cache") == "hit", timeout=10)
    poll("B answers the image from its cache again", lambda: b.get(job + "/image"),
         lambda r: r.headers.get("X-Cache") == "hit", timeout=10)
    # And the notices come again: a delete through A reaches B.
    assert a.request("DELETE", job).status_code == 204
    poll("B answers 404 after the delete", lambda: b.get(job + "/image"),
         lambda r: r.status_code == 404)
