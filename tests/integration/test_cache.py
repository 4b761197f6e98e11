"""The shared-memory cache: reads of a finished job come from it (X-Cache: hit),
even with Redis gone; DELETE removes the entry; it outlives the children.
Across nodes: test_cache_nodes.py."""

import os
import re
import signal

from helpers import wait_for


def test_done_job_served_from_cache_with_redis_stopped(start_daemon, source, redis_server):
    d = start_daemon({"redis": {"mode": "external", "url": redis_server.url}})
    doc = d.run(url=source.url("img/land.jpg"), width=64, format="png")
    first = d.get(f"/v1/thumbnails/{doc['id']}/image")
    assert first.status_code == 200
    redis_server.stop(signal.SIGKILL)

    job = d.get(f"/v1/thumbnails/{doc['id']}")
    assert job.status_code == 200, job.text
    assert job.headers["X-Cache"] == "hit"
    assert job.json()["status"] == "done"
    image = d.get(f"/v1/thumbnails/{doc['id']}/image")
    assert image.status_code == 200, image.text
    assert image.headers["X-Cache"] == "hit"
    assert image.headers["Content-Type"] == "image/png"
    assert image.content == first.content
    assert image.headers["ETag"] == first.headers["ETag"]
    not_modified = d.get(f"/v1/thumbnails/{doc['id']}/image",
                         headers={"If-None-Match": first.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.headers["X-Cache"] == "hit"
    head = d.request("HEAD", f"/v1/thumbnails/{doc['id']}/image")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(first.content)
    # What the cache does not hold still needs Redis.
    r = d.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA")
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"


def test_deleted_job_is_gone_from_the_cache(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=50)
    assert daemon.get(f"/v1/thumbnails/{doc['id']}").headers["X-Cache"] == "hit"
    assert daemon.request("DELETE", f"/v1/thumbnails/{doc['id']}").status_code == 204
    for path in ("", "/image"):
        r = daemon.get(f"/v1/thumbnails/{doc['id']}{path}")
        assert r.status_code == 404, r.text
        assert r.headers.get("X-Cache") != "hit"


def test_miss_then_hit(daemon, source):
    # A result read from Redis is kept: the second read is a hit.
    doc = daemon.run(url=source.url("img/port.jpg"), width=30)
    for _ in range(2):
        r = daemon.get(f"/v1/thumbnails/{doc['id']}/image")
        assert r.status_code == 200
    assert r.headers["X-Cache"] == "hit"


def test_cache_survives_restarted_children(start_daemon, source):
    # One http child, so that the reads below meet the same subscription.
    d = start_daemon({"http": {"processes": "1"}})
    doc = d.run(url=source.url("img/land.jpg"), width=44)
    before = d.get(f"/v1/thumbnails/{doc['id']}/image")
    assert before.headers["X-Cache"] == "hit"
    old = d.children()
    for pid in old["http"] + old["worker"]:
        os.kill(pid, signal.SIGKILL)
    wait_for("new children", lambda: (len(d.children()["http"]) == 1
                                      and not set(d.children()["http"]) & set(old["http"])), 10)
    wait_for("the daemon answering", lambda: d.get("/healthz").status_code == 200, 10)
    # The entry is still in the segment, but no http child of the node heard
    # Redis's change notices while none was running: the new child finds it
    # (counted as unconfirmed), asks Redis once, and keeps the fresh read, which
    # it trusts from then on (docs/ARCHITECTURE.md §4.3).
    unconfirmed = d.metric("thumbnailed_cache_unconfirmed_total")
    wait_for("the new child subscribed",
             lambda: d.get(f"/v1/thumbnails/{doc['id']}/image").headers["X-Cache"] == "hit", 10)
    assert d.metric("thumbnailed_cache_unconfirmed_total") > unconfirmed
    after = d.get(f"/v1/thumbnails/{doc['id']}/image")
    assert after.status_code == 200
    assert after.headers["X-Cache"] == "hit"
    assert after.content == before.content


def test_metrics_show_the_cache(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=33)
    for _ in range(3):
        daemon.get(f"/v1/thumbnails/{doc['id']}/image")
    text = daemon.get("/metrics").text
    hits = sum(int(v) for v in re.findall(r'^thumbnailed_cache_hits_total\{shard="\d+"\} (\d+)$',
                                            text, re.M))
    assert hits >= 3, text
    assert re.search(r'^thumbnailed_children\{kind="worker"\} 2$', text, re.M), text
    assert re.search(r'^thumbnailed_queue_jobs\{list="ready"\} \d+$', text, re.M), text
    assert len(re.findall(r'^thumbnailed_cache_items\{shard=', text, re.M)) >= 16
