"""Big payloads do not stall the small requests of the same http child
(docs/ARCHITECTURE.md §9): an upload of many megabytes takes longer to reach
Redis than its reply timeout without being a stall (moving bytes is
progress), and it goes on a connection of its own, so that a stream of small
submits to the same child meanwhile gets no 503."""

import os
import threading

from helpers import wait_for

UPLOAD_MB = 19
PARALLEL = 8


def big_jpeg_like(seed):
    """JPEG's first bytes, then UPLOAD_MB of noise: an upload the http child
    takes (its type is read from the bytes); the worker later refuses it."""
    rnd = os.urandom(UPLOAD_MB * 1024 * 1024 - 16)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01" + rnd[:len(rnd) - seed] + \
        bytes([seed])


def test_big_uploads_do_not_stall_small_submits(start_daemon, source):
    d = start_daemon({"http": {"processes": "1", "max_body": "20M", "timeout": "60s"},
                      "redis": {"connect_timeout": "500ms"}, "worker": {"processes": "1"}})
    bodies = [big_jpeg_like(i) for i in range(PARALLEL)]
    big_status, small_status = [], []
    done = threading.Event()

    def upload(body):
        r = d.post("/v1/thumbnails", params={"width": 32}, data=body,
                   headers={"Content-Type": "image/jpeg"}, timeout=120)
        big_status.append((r.status_code, r.text[:200]))

    def small_stream():
        i = 0
        while not done.is_set():
            i += 1
            r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"),
                                               "width": 1 + i % 500}, timeout=30)
            small_status.append((r.status_code, r.text[:200]))

    stream = threading.Thread(target=small_stream)
    stream.start()
    threads = [threading.Thread(target=upload, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    done.set()
    stream.join(60)
    assert not any(t.is_alive() for t in threads)
    assert [s for s, _ in big_status] == [202] * PARALLEL, big_status
    assert small_status, "no small submit was made meanwhile"
    bad = [s for s in small_status if s[0] not in (200, 202)]
    assert not bad, f"{len(bad)} of {len(small_status)} small submits failed: {bad[:3]}"
    # The child's Redis connection was never dropped for a stall.
    assert d.metric('thumbnailed_redis_failures_total{reason="lost"}') == 0
    wait_for("/readyz", lambda: d.get("/readyz").status_code == 200, 10)
