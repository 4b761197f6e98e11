"""The reliable queue: no job lost and none done twice in effect, whatever
dies — a worker, a whole node, Redis itself — and no poison job looping
forever. Several tests run against a redis-server of their own (external mode)
so that they can stop and restart it."""

import os
import signal
import threading
import time

import requests

from helpers import TERMINAL, wait_for


def external(redis_server, **sections):
    conf = {"redis": {"mode": "external", "url": redis_server.url}}
    for name, keys in sections.items():
        conf.setdefault(name, {}).update(keys)
    return conf


def test_worker_killed_mid_download_is_retried(start_daemon, source):
    d = start_daemon({"worker": {"processes": "1", "retry_delay": "100ms"}})
    job = d.submit(url=source.url("slow/1500/land.jpg"), width=50)
    d.wait_until(job["id"], ("processing",), timeout=10)
    os.kill(d.children()["worker"][0], signal.SIGKILL)
    doc = d.wait(job["id"], timeout=30)
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 2, doc
    assert d.get(f"/v1/thumbnails/{job['id']}/image").status_code == 200


def test_transient_failures_are_retried_then_succeed(start_daemon, source):
    d = start_daemon({"worker": {"retry_delay": "100ms"}})
    doc = d.wait(d.submit(url=source.url("fail/2/503/land.jpg"), width=40)["id"])
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 3, doc


def test_always_failing_source_ends_dead(start_daemon, source):
    d = start_daemon({"worker": {"retry_delay": "100ms", "max_attempts": "3"}})
    doc = d.wait(d.submit(url=source.url("fail/999/500/land.jpg"), width=40)["id"])
    assert doc["status"] == "failed", doc
    assert doc["attempts"] == 3, doc
    assert doc["error"]["code"] == "fetch_http_500", doc


def test_permanent_failure_is_not_retried(start_daemon, source):
    d = start_daemon({"worker": {"retry_delay": "100ms"}})
    doc = d.wait(d.submit(url=source.url("img/nope.jpg"), width=40)["id"])
    assert doc["status"] == "failed" and doc["attempts"] == 1, doc
    assert doc["error"]["code"] == "fetch_http_404", doc


def test_queue_full_is_503_with_retry_after(start_daemon, source):
    d = start_daemon({"worker": {"processes": "1"}, "redis": {"max_queue": "2"}})
    busy = d.submit(url=source.url("slow/2000/land.jpg"), width=40)
    d.wait_until(busy["id"], ("processing",), timeout=10)
    for i in range(2):
        d.submit(url=source.url("img/land.jpg"), width=41 + i)
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 50})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "queue_full"
    assert int(r.headers["Retry-After"]) > 0


def test_canceled_job_is_never_processed(start_daemon, source):
    d = start_daemon({"worker": {"processes": "1"}})
    busy = d.submit(url=source.url("slow/1500/land.jpg"), width=40)
    d.wait_until(busy["id"], ("processing",), timeout=10)
    queued = d.submit(url=source.url("img/land.jpg"), width=41)
    assert d.request("DELETE", f"/v1/thumbnails/{queued['id']}").status_code == 204
    assert d.wait(busy["id"])["status"] == "done"
    after = d.run(url=source.url("img/land.jpg"), width=42)  # the worker went on past it
    assert after["status"] == "done"
    doc = d.job(queued["id"])
    assert doc["status"] == "canceled" and doc["attempts"] == 0, doc


def job_hash(redis_server, job_id):
    """The job's record in Redis, as a dict."""
    flat = redis_server.query("HGETALL", f"{{thumbnailed}}:job:{job_id}")
    return dict(zip(flat[::2], flat[1::2]))


def test_dead_node_is_reaped_and_its_late_finish_fenced(start_daemon, source, redis_server):
    conf = external(redis_server, worker={"processes": "1", "retry_delay": "100ms"})
    a = start_daemon(conf, new_session=True)
    job = a.submit(url=source.url("slow/4000/land.jpg"), width=50)
    a.wait_until(job["id"], ("processing",), timeout=10)
    assert a.metric_sum("thumbnailed_worker_jobs_total") == 0  # A's worker is still on it
    b = start_daemon(conf)
    os.killpg(a.proc.pid, signal.SIGSTOP)  # the whole node stops, its worker holds the job
    try:
        doc = b.wait(job["id"], timeout=45)
        assert doc["status"] == "done", doc
        assert doc["attempts"] == 2, doc
        image = b.get(f"/v1/thumbnails/{job['id']}/image")
        assert image.status_code == 200, image.text
        record = job_hash(redis_server, job["id"])
        assert record.get("state") == "done" and record.get("attempts") == "2", record
    finally:
        os.killpg(a.proc.pid, signal.SIGCONT)
    # A finishes its stale attempt now (its worker counts it, as stale) and
    # is fenced off: the record in Redis, the document and the image stay B's.
    wait_for("A's worker done with its stale attempt",
             lambda: a.metric('thumbnailed_worker_jobs_total{outcome="stale"}') == 1, 30)
    assert a.metric_sum("thumbnailed_worker_jobs_total") == 1
    assert job_hash(redis_server, job["id"]) == record
    again = b.job(job["id"])
    assert again == doc, (again, doc)
    assert b.get(f"/v1/thumbnails/{job['id']}/image").content == image.content


def test_redis_stopped_during_a_burst(start_daemon, source, redis_server):
    d = start_daemon(external(redis_server, worker={"processes": "2"}))
    accepted, refused = [], 0
    stop_at = 60

    def burst():
        nonlocal refused
        for i in range(150):
            try:
                r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"),
                                                   "width": 20 + i % 50}, timeout=5)
            except requests.RequestException:
                refused += 1
                continue
            assert r.status_code in (202, 503), r.text
            if r.status_code == 202:
                accepted.append(r.json()["id"])
            else:
                assert r.json()["error"]["code"] == "unavailable"
                assert "Retry-After" in r.headers
                refused += 1
            if i == stop_at:
                redis_server.stop(signal.SIGKILL)

    t = threading.Thread(target=burst)
    t.start()
    t.join(120)
    assert not t.is_alive()
    assert refused > 0, "Redis was down yet every submit was accepted"
    redis_server.start()  # same append-only file
    wait_for("the daemon back on Redis", lambda: d.get("/readyz").status_code == 200, 15)
    for job_id in accepted:
        assert d.wait(job_id, timeout=60)["status"] == "done"


def test_redis_restart_with_jobs_queued_delayed_and_in_flight(start_daemon, source, redis_server):
    d = start_daemon(external(redis_server, worker={"processes": "1", "retry_delay": "3s"}))
    in_flight = d.submit(url=source.url("slow/2000/land.jpg"), width=40)
    d.wait_until(in_flight["id"], ("processing",), timeout=10)
    delayed = d.submit(url=source.url("fail/1/503/land.jpg"), width=41)
    queued = [d.submit(url=source.url("img/land.jpg"), width=42 + i) for i in range(5)]
    # The flaky job fails once and waits for its retry in the delayed set.
    wait_for("a retry scheduled",
             lambda: redis_server.command("ZCARD", "{thumbnailed}:delayed") == "1", 20)
    redis_server.stop(signal.SIGTERM)
    time.sleep(0.5)
    redis_server.start()
    wait_for("the daemon back on Redis", lambda: d.get("/readyz").status_code == 200, 15)
    for job in [in_flight, delayed] + queued:
        doc = d.wait(job["id"], timeout=60)
        assert doc["status"] == "done", doc
    assert d.job(delayed["id"])["attempts"] == 2
