"""Long-poll: GET /v1/thumbnails/<id>?wait=N holds the request until the job
ends (done, failed, canceled) or N seconds pass. Ordering, not timing: a wait
that ends with the job returns long before its own deadline, which the tests
check by giving the client a timeout shorter than the wait."""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from helpers import error_of, wait_for

TERMINAL = ("done", "failed", "canceled")


@pytest.fixture(scope="module")
def lp(thumbnailed_bin, tmp_path_factory):
    """A daemon of this module's own: more workers (the module holds some on
    slow sources) and a short fetch timeout (a hung source frees its worker)."""
    from conftest import DaemonFactory
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory({"worker": {"processes": "4"}, "fetch": {"timeout": "4s"}})
    factory.stop_all()


def waited(d, job_id, wait, timeout, method="GET"):
    return d.request(method, f"/v1/thumbnails/{job_id}", params={"wait": wait}, timeout=timeout)


def in_thread(fn):
    """Runs fn in a thread; returns a function that joins it and returns (or raises) its result."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the joining test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=60):
        t.join(timeout)
        assert not t.is_alive(), "the waiting request did not return"
        if "error" in out:
            raise out["error"]
        return out["value"]
    return join


def test_wait_returns_when_the_job_ends(lp, source):
    # The source takes 2 s; the wait allows 30 s, the client only 20: a "done"
    # here was answered when the job ended, not when the wait ran out.
    job = lp.submit(url=source.url("slow/2000/land.jpg"), width=60)
    r = waited(lp, job["id"], 30, timeout=20)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "done", doc
    assert doc["result"]["image_url"] == f"/v1/thumbnails/{job['id']}/image"
    assert r.headers.get("X-Cache") in ("hit", "miss")


def test_wait_on_a_done_job_answers_at_once(lp, source):
    doc = lp.run(url=source.url("img/land.jpg"), width=61)
    r = waited(lp, doc["id"], 30, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done"
    assert r.json() == lp.job(doc["id"])
    head = waited(lp, doc["id"], 30, timeout=10, method="HEAD")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(r.content)


def test_wait_on_a_failing_job_answers_failed(lp, source):
    job = lp.submit(url=source.url("fail/999/404/land.jpg"), width=62)
    r = waited(lp, job["id"], 30, timeout=20)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"], doc


def test_delete_while_waiting_answers_canceled(lp, source):
    job = lp.submit(url=source.url("slow/4000/land.jpg"), width=63)
    lp.wait_until(job["id"], ("processing",), timeout=10)
    join = in_thread(lambda: waited(lp, job["id"], 30, timeout=20))
    time.sleep(0.3)  # most likely waiting by now; if not, it reads "canceled" anyway
    assert lp.request("DELETE", f"/v1/thumbnails/{job['id']}").status_code == 204
    r = join()
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled", r.json()


def test_wait_that_runs_out_answers_the_current_state(lp, source):
    job = lp.submit(url=source.url("hang/land.jpg"), width=64)
    r = waited(lp, job["id"], 1, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("queued", "processing"), r.json()


def test_wait_outlasts_http_timeout(start_daemon, source):
    # http.timeout is about receiving a request; a held answer is not cut by it.
    d = start_daemon({"http": {"timeout": "1s"}, "fetch": {"timeout": "4s"}})
    job = d.submit(url=source.url("hang/land.jpg"), width=64)
    r = waited(d, job["id"], 3, timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("queued", "processing"), r.json()
    assert d.get("/healthz").status_code == 200


def test_wait_zero_does_not_wait(lp, source):
    job = lp.submit(url=source.url("hang/land.jpg"), width=65)
    r = waited(lp, job["id"], 0, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("queued", "processing"), r.json()


@pytest.mark.parametrize("value", ["31", "-1", "abc", "", "1.5", "+5", "99999999999999999999"])
def test_invalid_wait_is_400(lp, source, value):
    doc = lp.run(url=source.url("img/land.jpg"), width=66)
    r = lp.get(f"/v1/thumbnails/{doc['id']}?wait={value}")
    error_of(r, 400, "invalid_param", "wait")


def test_wait_given_twice_is_400(lp):
    r = lp.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA?wait=1&wait=2")
    error_of(r, 400, "invalid_param", "wait")


def test_wait_on_an_unknown_job_is_404_at_once(lp):
    error_of(lp.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA", params={"wait": 30}, timeout=10),
             404, "not_found")


def test_client_gone_mid_wait_leaves_the_daemon_serving(lp, source):
    job = lp.submit(url=source.url("slow/3000/land.jpg"), width=67)
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", lp.port), timeout=5)
        s.sendall(f"GET /v1/thumbnails/{job['id']}?wait=30 HTTP/1.1\r\n"
                  f"Host: 127.0.0.1\r\n\r\n".encode())
        socks.append(s)
    time.sleep(0.3)
    for s in socks[:10]:
        s.close()  # gone before the job ends
    for s in socks[10:]:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # gone with a reset
    assert lp.get("/healthz").status_code == 200
    r = waited(lp, job["id"], 30, timeout=20)
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    assert lp.run(url=source.url("img/port.jpg"), width=67)["status"] == "done"


def test_pipelined_request_behind_a_wait_is_answered(lp, source):
    job = lp.submit(url=source.url("slow/1500/land.jpg"), width=68)
    with socket.create_connection(("127.0.0.1", lp.port), timeout=20) as s:
        s.sendall((f"GET /v1/thumbnails/{job['id']}?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2, data[:2000]
    assert b'"status":"done"' in data, data[:2000]
    assert data.rstrip().endswith(b'{"status":"ok"}'), data[-200:]


def test_many_waiters_on_a_few_jobs_all_see_done(lp, source):
    jobs = [lp.submit(url=source.url("slow/1000/land.jpg"), width=70 + i)["id"]
            for i in range(10)]
    joins = [in_thread(lambda j=j: waited(lp, j, 30, timeout=25)) for _ in range(5) for j in jobs]
    results = [join() for join in joins]
    assert len(results) == 50
    for r in results:
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "done", r.json()


def test_redis_restart_during_a_wait(start_daemon, source):
    d = start_daemon({"worker": {"processes": "2"}})
    job = d.submit(url=source.url("slow/3000/land.jpg"), width=80)
    d.wait_until(job["id"], ("processing",), timeout=10)
    join = in_thread(lambda: waited(d, job["id"], 10, timeout=25))
    time.sleep(0.3)
    victim = d.children()["redis"][0]
    os.kill(victim, signal.SIGKILL)
    wait_for("a new redis-server", lambda: [p for p in d.children()["redis"] if p != victim], 10)
    r = join()
    # The job's end, or its state when the wait ran out; 503 only if Redis was
    # still away at the deadline.
    assert r.status_code in (200, 503), r.text
    if r.status_code == 200:
        assert r.json()["status"] in ("queued", "processing", "done"), r.json()
    assert d.wait(job["id"], timeout=60)["status"] == "done"
    # And waits work again once Redis is back.
    again = d.submit(url=source.url("slow/1000/port.jpg"), width=81)
    r = waited(d, again["id"], 30, timeout=25)
    assert r.status_code == 200 and r.json()["status"] == "done", r.text


def test_graceful_stop_answers_waiters_at_once(start_daemon, source):
    d = start_daemon({"daemon": {"stop_timeout": "30s"}})
    job = d.submit(url=source.url("slow/3000/land.jpg"), width=90)
    join = in_thread(lambda: waited(d, job["id"], 30, timeout=25))
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=20) == 0, d.log()  # not held up by the 30 s wait
    r = join()
    assert r.status_code == 200, r.text
    assert r.json()["status"] in ("queued", "processing", "done"), r.json()
