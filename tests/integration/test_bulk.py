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


def small_submits(d, source, statuses, done):
    """Submits small jobs one after another until done is set; appends each
    status (and a little of the body) to statuses."""
    i = 0
    while not done.is_set():
        i += 1
        r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"),
                                           "width": 1 + i % 500}, timeout=30)
        statuses.append((r.status_code, r.text[:200]))


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

    stream = threading.Thread(target=small_submits, args=(d, source, small_status, done))
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


def http_child_peak_rss_kb(d):
    """VmHWM (peak resident set) of the daemon's one http child, in kB."""
    (pid,) = d.children()["http"]
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_big_result_is_streamed_not_held(start_daemon, source, tmp_path, monkeypatch):
    """A result bigger than the cache holds is read from Redis a chunk at a
    time as the client takes it: four clients reading it at once get every
    byte (its ETag is the SHA-256 of the bytes), the child's memory does not
    grow by copies of it, and small submits meanwhile get no 503."""
    import hashlib
    import io
    import random

    from PIL import Image
    rnd = random.Random(7)
    noise = Image.frombytes("RGB", (512, 512), rnd.randbytes(512 * 512 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    # In a sanitizer build, AddressSanitizer keeps freed memory in quarantine
    # (256 MB by default), which the peak RSS below would count as held: a
    # small quarantine keeps the measure about what the daemon holds (the
    # variable means nothing to a build without it).
    asan = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS", (asan + ":" if asan else "") + "quarantine_size_mb=4")
    d = start_daemon({"http": {"processes": "1"}, "cache": {"size": "8M"},
                      "image": {"max_output_pixels": "16777216", "max_result_bytes": "128M"},
                      "worker": {"processes": "1", "job_timeout": "120s"}})
    job = d.upload(buf.getvalue(), content_type="image/png", width=4096, height=4096,
                   fit="fill", format="png")
    doc = d.wait(job["id"], timeout=120)
    assert doc["status"] == "done", doc
    size = doc["result"]["bytes"]
    assert size > 8 * 1024 * 1024, size  # more than the cache could hold
    before = http_child_peak_rss_kb(d)
    results, small = [], []
    done = threading.Event()

    def read():
        r = d.get(doc["result"]["image_url"], timeout=120, stream=True)
        h = hashlib.sha256()
        n = 0
        for piece in r.iter_content(256 * 1024):
            h.update(piece)
            n += len(piece)
        results.append((r.status_code, n, h.hexdigest()[:32], r.headers.get("ETag")))

    stream = threading.Thread(target=small_submits, args=(d, source, small, done))
    stream.start()
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(180)
    done.set()
    stream.join(60)
    assert len(results) == 4, results
    for status, n, digest, etag in results:
        assert status == 200 and n == size, (status, n, size)
        assert etag == f'"{digest}"', (etag, digest)
    assert small and all(s in (200, 202) for s, _ in small), small
    grown_mb = (http_child_peak_rss_kb(d) - before) / 1024
    assert grown_mb < size / (1024 * 1024), \
        f"the http child grew by {grown_mb:.0f} MB serving a {size / 1e6:.0f} MB result 4 times"
