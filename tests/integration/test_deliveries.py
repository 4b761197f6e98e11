"""Deliveries: signed callbacks (Standard Webhooks) and e-mails, from their own
queue. A local receiver checks every signature with Python's hmac, independently
of the daemon's signer; a local aiosmtpd sink takes the e-mails."""

import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from helpers import decode_image, error_of, free_port, wait_for

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
OLD_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
FAST = {"secret": SECRET, "schedule": "200ms 200ms 200ms", "timeout": "1s"}
HANG_MAX = 60  # seconds a "hang" holds its answer at most, should nothing release it


class Receiver:
    """An HTTP server on loopback that answers each POST to /hook/NAME with the
    next behaviour of NAME's script (a status, or "hang": no answer until the
    receiver is stopped; the last one repeats) and records every request, with
    its wall-clock time of arrival ("at", comparable with Redis's TIME), and
    the order in which requests came and were answered (events)."""

    def __init__(self):
        self.scripts = {}
        self.calls = {}
        self.events = {}  # name -> [("received" | "answered", attempt number)]
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                name = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    calls = receiver.calls.setdefault(name, [])
                    calls.append({"headers": dict(self.headers), "body": body,
                                  "at": time.time()})
                    n = len(calls)
                    receiver.events.setdefault(name, []).append(("received", n))
                    script = receiver.scripts.get(name, [200])
                    what = script[min(n, len(script)) - 1]
                if what == "hang":
                    receiver.release.wait(HANG_MAX)
                    what = 200
                extra = {}
                if isinstance(what, tuple):
                    what, extra = what
                with receiver.lock:  # before the answer leaves: the daemon may act on it at once
                    receiver.events[name].append(("answered", n))
                try:
                    self.send_response(what)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the daemon gave up waiting: as intended

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hook(self, name, script):
        self.scripts[name] = script
        return f"http://127.0.0.1:{self.port}/hook/{name}"

    def received(self, name):
        with self.lock:
            return list(self.calls.get(name, []))

    def order(self, name):
        """What happened to NAME's requests, in order: [("received", 1), ...]."""
        with self.lock:
            return list(self.events.get(name, []))

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def verify(call, secrets=(SECRET,)):
    """Checks a callback as a receiver following Standard Webhooks would: the
    signature of id.timestamp.body with any of our secrets, a fresh timestamp.
    Returns the parsed body."""
    h = {k.lower(): v for k, v in call["headers"].items()}
    msg_id, ts, sigs = h["webhook-id"], h["webhook-timestamp"], h["webhook-signature"]
    assert abs(time.time() - int(ts)) < 300, f"stale webhook-timestamp {ts}"
    signed = f"{msg_id}.{ts}.".encode() + call["body"]
    offered = [s.split(",", 1)[1] for s in sigs.split(" ") if s.startswith("v1,")]
    for secret in secrets:
        key = base64.b64decode(secret[len("whsec_"):])
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert any(hmac.compare_digest(expected, o) for o in offered), \
            f"no valid signature for a secret in {sigs!r}"
    assert h["content-type"] == "application/json"
    return json.loads(call["body"])


def delivery_of(d, job_id, key="callback", statuses=("delivered", "failed", "stopped"),
                timeout=20):
    """Waits until the job document's delivery status is one of statuses."""
    def settled():
        doc = d.job(job_id)
        return doc if doc.get(key, {}).get("status") in statuses else None
    return wait_for(f"{key} of {job_id} in {statuses}", settled, timeout, step=0.1)[key]


def test_callback_is_signed_and_delivered_once(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("once", [200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    assert job["callback"] == {"status": "pending", "attempts": 0}
    assert d.wait(job["id"])["status"] == "done"
    cb = delivery_of(d, job["id"])
    assert cb == {"status": "delivered", "attempts": 1, "last_status": 200}
    calls = receiver.received("once")
    assert len(calls) == 1
    body = verify(calls[0])
    assert {k.lower(): v for k, v in calls[0]["headers"].items()}["webhook-id"] == \
        "msg_" + job["id"]
    assert body["id"] == job["id"] and body["status"] == "done"
    assert body["result"]["image_url"] == f"/v1/thumbnails/{job['id']}/image"
    assert "callback" not in body, "the body must not change between attempts"


def test_failed_job_is_called_back_too(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("failed", [204])
    job = d.submit(url=source.url("fail/1/404"), callback_url=url)
    assert d.wait(job["id"])["status"] == "failed"
    assert delivery_of(d, job["id"])["status"] == "delivered"
    body = verify(receiver.received("failed")[0])
    assert body["status"] == "failed" and body["error"]["code"] == "fetch_http_404"


def test_500_twice_then_200_keeps_the_webhook_id(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("flaky", [500, 500, 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb == {"status": "delivered", "attempts": 3, "last_status": 200}
    calls = receiver.received("flaky")
    assert len(calls) == 3
    ids = {c["headers"].get("webhook-id") for c in calls}
    assert ids == {"msg_" + job["id"]}
    bodies = {c["body"] for c in calls}
    assert len(bodies) == 1, "every attempt sends the same body"
    for c in calls:
        verify(c)


def test_410_stops_the_deliveries(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("gone", [410, 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb["status"] == "stopped" and cb["attempts"] == 1 and cb["last_status"] == 410
    time.sleep(1.0)  # well past the whole 200 ms schedule
    assert len(receiver.received("gone")) == 1
    # And nothing is left that could send it again.
    metrics = d.get("/metrics").text
    assert 'thumbnailed_queue_deliveries{list="ready"} 0' in metrics, metrics
    assert 'thumbnailed_queue_deliveries{list="delayed"} 0' in metrics, metrics


def test_redirect_is_not_followed(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("moved", [(302, {"Location": "http://127.0.0.1:9/elsewhere"}), 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb == {"status": "delivered", "attempts": 2, "last_status": 200}
    assert len(receiver.received("moved")) == 2


def test_a_hanging_receiver_is_retried_after_the_timeout(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("slow", ["hang", 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb == {"status": "delivered", "attempts": 2, "last_status": 200}
    calls = receiver.received("slow")
    assert len(calls) == 2
    # The first attempt is never answered while the test runs: the daemon gave
    # up on it (callback.timeout = 1s) and sent the second while the receiver
    # still held the first, rather than waiting for an answer.
    assert receiver.order("slow") == [("received", 1), ("received", 2), ("answered", 2)], \
        receiver.order("slow")


def delayed_retry(redis_server):
    """(delivery id, due ms, ms its last attempt was recorded at) of the one
    delivery waiting on the delayed set, or None."""
    entries = redis_server.query("ZRANGE", "{thumbnailed}:wh:delayed", 0, -1, "WITHSCORES")
    if not entries:
        return None
    assert len(entries) == 2, entries
    did, due = entries[0], int(float(entries[1]))
    recorded = redis_server.query("HGET", f"{{thumbnailed}}:wh:d:{did}", "last_at")
    return did, due, int(recorded)


def test_429_retry_after_is_honoured(redis_server, start_daemon, source, receiver):
    # External Redis, for the test to read the retry's due time.
    d = start_daemon({"callback": FAST, "redis": {"mode": "external", "url": redis_server.url}})
    url = receiver.hook("busy", [(429, {"Retry-After": "2"}), 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    # The 429 puts the retry on the delayed set due Retry-After (2 s) after the
    # attempt was recorded, not at the schedule's 200 ms.
    did, due, recorded = wait_for("the retry on the delayed set",
                                  lambda: delayed_retry(redis_server), 10, step=0.02)
    assert due >= recorded + 2000, f"Retry-After: 2 not honoured: {did} due {due}, " \
        f"its 429 recorded at {recorded}"
    assert delivery_of(d, job["id"]) == {"status": "delivered", "attempts": 2, "last_status": 200}
    calls = receiver.received("busy")
    assert len(calls) == 2
    assert receiver.order("busy") == [("received", 1), ("answered", 1), ("received", 2),
                                      ("answered", 2)], receiver.order("busy")
    # The same clock (the machine's) orders the 429, its recording, the time
    # the retry was due, and the retry: it was not sent before it was due.
    assert calls[0]["at"] * 1000 <= recorded + 1, (calls[0]["at"], recorded)
    assert calls[1]["at"] * 1000 >= due, (calls[1]["at"], due)


def test_exhausted_deliveries_fail_and_the_result_stays(start_daemon, source, receiver):
    d = start_daemon({"callback": FAST})
    url = receiver.hook("down", [503])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb["status"] == "failed" and cb["attempts"] == 4 and cb["last_status"] == 503
    assert "given up after 4 attempts" in cb["last_error"]
    assert len(receiver.received("down")) == 4
    metrics = d.get("/metrics").text
    assert 'thumbnailed_queue_deliveries{list="dead"} 1' in metrics, metrics
    assert 'thumbnailed_queue_deliveries{list="delayed"} 0' in metrics, metrics
    assert 'thumbnailed_children{kind="delivery"} 1' in metrics, metrics
    doc = d.job(job["id"])
    assert doc["status"] == "done"
    assert doc["attempts"] == 1, "a failed delivery must not run the thumbnail again"
    assert d.get(doc["result"]["image_url"]).status_code == 200


def test_rotation_signs_with_every_secret(start_daemon, source, receiver):
    d = start_daemon({"callback": dict(FAST, secret=f"{SECRET} {OLD_SECRET}")})
    url = receiver.hook("rotate", [200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    delivery_of(d, job["id"])
    call = receiver.received("rotate")[0]
    verify(call, secrets=(SECRET,))
    verify(call, secrets=(OLD_SECRET,))


def test_callback_to_a_blocked_address_is_refused(start_daemon, images, receiver):
    # allow_private off: the receiver on loopback is what the guard refuses.
    # The image is uploaded, so the job itself needs no fetch.
    d = start_daemon({"callback": FAST, "fetch": {"allow_private": "no"}})
    url = receiver.hook("inside", [200])
    data = images["land.jpg"].read_bytes()
    job = d.upload(data, width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb["status"] == "failed" and cb["attempts"] == 1
    assert "callback_blocked_address" in cb["last_error"] and "127.0.0.1" in cb["last_error"]
    assert receiver.received("inside") == []


def test_killed_delivery_child_hands_its_deliveries_back(start_daemon, source, receiver):
    d = start_daemon({"callback": dict(FAST, timeout="10s")})
    url = receiver.hook("crash", ["hang", 200])
    job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
    wait_for("the first callback", lambda: receiver.received("crash"), 20)
    victim = d.children()["delivery"][0]
    os.kill(victim, signal.SIGKILL)
    cb = delivery_of(d, job["id"])
    assert cb["status"] == "delivered"
    calls = receiver.received("crash")
    assert len(calls) == 2
    assert calls[0]["headers"]["webhook-id"] == calls[1]["headers"]["webhook-id"]
    assert victim not in d.children()["delivery"] and len(d.children()["delivery"]) == 1


def test_deliveries_need_their_configuration(start_daemon, source):
    d = start_daemon()
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"),
                                        "callback_url": "http://127.0.0.1:9/cb"})
    error_of(r, 400, "invalid_param", "callback_url")
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"),
                                        "email": "someone@example.test"})
    error_of(r, 400, "invalid_param", "email")


def test_callback_allow_hosts(start_daemon, source, images, receiver):
    """callback.allow_hosts = the receiver's address and port: a callback to
    another port of the same host, or to the same port under another name, is
    refused at submit and never sent; one on the list is delivered."""
    other = Receiver()
    try:
        d = start_daemon({"callback": dict(FAST, allow_hosts=f"127.0.0.1:{receiver.port}")})
        elsewhere = other.hook("elsewhere", [200])
        r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40,
                                            "callback_url": elsewhere})
        error_of(r, 400, "invalid_param", "callback_url")
        by_name = f"http://localhost:{receiver.port}/hook/by-name"
        r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40,
                                            "callback_url": by_name})
        error_of(r, 400, "invalid_param", "callback_url")
        # An upload with the callback in its query string is checked the same.
        r = d.post("/v1/thumbnails", params={"width": 40, "callback_url": elsewhere},
                   data=images["land.jpg"].read_bytes(),
                   headers={"Content-Type": "image/jpeg"})
        error_of(r, 400, "invalid_param", "callback_url")

        url = receiver.hook("listed", [200])
        job = d.submit(url=source.url("img/land.jpg"), width=40, callback_url=url)
        assert delivery_of(d, job["id"]) == {"status": "delivered", "attempts": 1,
                                             "last_status": 200}
        verify(receiver.received("listed")[0])
        # The refused ones were never queued: nothing is left to send, and the
        # other receiver was never called (checked after the delivery above).
        assert d.metric('thumbnailed_queue_deliveries{list="ready"}') == 0
        assert d.metric('thumbnailed_queue_deliveries{list="delayed"}') == 0
        assert other.received("elsewhere") == []
        assert receiver.received("by-name") == []
    finally:
        other.stop()


def test_callback_allow_hosts_keeps_the_address_guard(start_daemon, images, receiver):
    """A host on callback.allow_hosts is not exempt from the address guard: with
    allow_private off, the listed loopback receiver is still refused."""
    d = start_daemon({"callback": dict(FAST, allow_hosts=f"127.0.0.1:{receiver.port}"),
                      "fetch": {"allow_private": "no"}})
    url = receiver.hook("guarded", [200])
    job = d.upload(images["land.jpg"].read_bytes(), width=40, callback_url=url)
    cb = delivery_of(d, job["id"])
    assert cb["status"] == "failed" and "callback_blocked_address" in cb["last_error"], cb
    assert receiver.received("guarded") == []


OPEN_CALLBACKS = "callbacks are open to anyone who can reach http.listen"
OPEN_EMAIL = "e-mail is open to anyone who can reach http.listen"


def _check_config(d):
    """thumbnailed -t on the daemon's own file: (exit status, stdout + stderr)."""
    r = subprocess.run([d.binary, "-t", "-c", str(d.config)], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


def _ready_log(d):
    """The master's log once it is ready (it warns before its start-up steps)."""
    return wait_for("the master ready", lambda: (lambda t: t if "thumbnailed ready" in t
                                                 else None)(d.log_path.read_text()), 10)


def test_open_push_is_warned_about(start_daemon, tmp_path):
    """Push enabled, no API keys, no allow-list: the master warns at start and
    `-t` says the same, naming the push and the keys that close it."""
    d = start_daemon({"callback": FAST, "smtp": smtp_config(free_port())})
    log = _ready_log(d)
    status, out = _check_config(d)
    assert status == 0 and "configuration ok" in out, out
    for text in (log, out):
        for push, keys in ((OPEN_CALLBACKS, "callback.allow_hosts"),
                           (OPEN_EMAIL, "smtp.allow_recipients")):
            lines = [line for line in text.splitlines() if push in line]
            assert len(lines) == 1, text
            assert "http.api_keys_file" in lines[0] and keys in lines[0], lines[0]
    for line in log.splitlines():
        if OPEN_CALLBACKS in line or OPEN_EMAIL in line:
            assert " master[" in line and " warn: " in line, line


@pytest.mark.parametrize("closed_by", ["api_keys", "allow_lists"])
def test_closed_push_is_not_warned_about(start_daemon, tmp_path, closed_by):
    if closed_by == "api_keys":
        keys = tmp_path / "keys"
        keys.write_text("k-0123456789abcdef\n")
        overrides = {"callback": FAST, "smtp": smtp_config(free_port()),
                     "http": {"api_keys_file": str(keys)}}
    else:
        overrides = {"callback": dict(FAST, allow_hosts="hooks.example.test"),
                     "smtp": dict(smtp_config(free_port()), allow_recipients="example.test")}
    d = start_daemon(overrides)
    log = _ready_log(d)
    status, out = _check_config(d)
    assert status == 0 and "configuration ok" in out, out
    for text in (log, out):
        assert OPEN_CALLBACKS not in text and OPEN_EMAIL not in text, text


# --- e-mail ------------------------------------------------------------------


class Sink:
    """aiosmtpd on loopback, keeping every message it is given."""

    def __init__(self, port):
        self.messages = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append(envelope)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()

    def stop(self):
        self.controller.stop()


def smtp_config(port):
    return {"url": f"smtp://127.0.0.1:{port}", "from": "Thumbnails <thumbs@example.test>",
            "starttls": "no"}


def check_mail(envelope, job_id, to):
    assert envelope.mail_from == "thumbs@example.test"
    assert envelope.rcpt_tos == [to]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["To"] == to and job_id in msg["Message-ID"]
    parts = [p for p in msg.iter_attachments()]
    assert len(parts) == 1
    data = parts[0].get_content()
    assert parts[0].get_content_type() == "image/jpeg"
    assert parts[0].get_filename() == f"thumbnail-{job_id}.jpg"
    return decode_image(data)


def test_email_with_the_thumbnail_attached(start_daemon, source):
    port = free_port()
    sink = Sink(port)
    try:
        d = start_daemon({"smtp": smtp_config(port), "callback": FAST})
        to = "someone@example.test"
        job = d.submit(url=source.url("img/land.jpg"), width=40, format="jpeg",
                       email=to)
        assert job["email_delivery"] == {"status": "pending", "attempts": 0}
        ed = delivery_of(d, job["id"], key="email_delivery")
        assert ed["status"] == "delivered" and ed["attempts"] == 1
        assert len(sink.messages) == 1
        fmt, width, _, _ = check_mail(sink.messages[0], job["id"], to)
        assert fmt == "jpeg" and width == 40
    finally:
        sink.stop()


def test_email_is_retried_until_the_server_is_up(start_daemon, source):
    port = free_port()
    d = start_daemon({"smtp": smtp_config(port), "callback": dict(FAST, schedule="300ms 1s 1s 1s 1s")})
    to = "later@example.test"
    job = d.submit(url=source.url("img/land.jpg"), width=40, format="jpeg", email=to)
    first = delivery_of(d, job["id"], key="email_delivery", statuses=("pending",))
    wait_for("a failed first attempt",
             lambda: d.job(job["id"])["email_delivery"]["attempts"] >= 1, 10)
    assert "last_error" in d.job(job["id"])["email_delivery"], first
    sink = Sink(port)
    try:
        ed = delivery_of(d, job["id"], key="email_delivery")
        assert ed["status"] == "delivered" and ed["attempts"] >= 2
        assert len(sink.messages) == 1
        check_mail(sink.messages[0], job["id"], to)
    finally:
        sink.stop()


def test_original_api_emails_the_thumbnail(start_daemon, source):
    """The original service's push: POST /api/thumb {email, image_url} with SMTP
    configured mails the 100x100 square, in the source's format."""
    port = free_port()
    sink = Sink(port)
    try:
        d = start_daemon({"smtp": smtp_config(port), "callback": FAST})
        to = "original@example.test"
        r = d.post("/api/thumb", json={"email": to, "image_url": source.url("img/land.jpg")})
        assert r.status_code == 201, r.text
        req_id = r.json()["req_id"]
        wait_for("the e-mail", lambda: sink.messages, 20)
        fmt, width, height, _ = check_mail(sink.messages[0], req_id, to)
        assert (fmt, width, height) == ("jpeg", 100, 100)
        assert d.get(f"/api/thumb/{req_id}").json()["status"] == "finished"
    finally:
        sink.stop()


def test_email_address_is_checked_at_submit(start_daemon, source):
    d = start_daemon({"smtp": smtp_config(free_port())})
    for address in ("nobody", "a@b", "a@@b.example", "a b@c.example",
                    "a@b.example\r\nBcc: x@y.example", "<a@b.example>"):
        r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "email": address})
        error_of(r, 400, "invalid_param", "email")


def test_email_allow_recipients(start_daemon, source):
    """smtp.allow_recipients = example.test: an address of another domain is
    refused at submit (400 on /v1, 422 on /api/thumb) and never mailed; one of
    the domain or a subdomain of it is delivered."""
    port = free_port()
    sink = Sink(port)
    try:
        d = start_daemon({"smtp": dict(smtp_config(port), allow_recipients="example.test"),
                          "callback": FAST})
        for address in ("someone@elsewhere.test", "someone@example.test.evil.test",
                        "someone@badexample.test"):
            r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40,
                                                "email": address})
            error_of(r, 400, "invalid_param", "email")
        r = d.post("/api/thumb", json={"email": "original@elsewhere.test",
                                       "image_url": source.url("img/land.jpg")})
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["detail"]] == [["body", "email"]], r.text

        to = "someone@Mail.Example.Test"
        job = d.submit(url=source.url("img/land.jpg"), width=40, format="jpeg", email=to)
        ed = delivery_of(d, job["id"], key="email_delivery")
        assert ed["status"] == "delivered", ed
        r = d.post("/api/thumb", json={"email": "original@example.test",
                                       "image_url": source.url("img/port.jpg")})
        assert r.status_code == 201, r.text
        wait_for("both e-mails", lambda: len(sink.messages) >= 2, 20)
        assert sorted(m.rcpt_tos[0] for m in sink.messages) == sorted(
            [to, "original@example.test"])
        check_mail([m for m in sink.messages if m.rcpt_tos == [to]][0], job["id"], to)
        assert d.metric('thumbnailed_queue_deliveries{list="ready"}') == 0
        assert d.metric('thumbnailed_queue_deliveries{list="delayed"}') == 0
        assert len(sink.messages) == 2
    finally:
        sink.stop()
