"""storage.backend = s3 (docs/ARCHITECTURE.md §10): results and uploads in a
real S3-speaking store (s3rver behind a proxy that verifies AWS Signature
Version 4 as S3 does, s3fixture.py), only the jobs' state in Redis (an
external redis-server of the test's own, so that its keys can be looked at)."""

import subprocess
import time

import requests

from helpers import Daemon, error_of, unique_jpeg, wait_for

EXT = {"image/webp": "webp", "image/jpeg": "jpg", "image/png": "png", "image/avif": "avif"}


def storage(store, **extra):
    """The [storage] section for store (path-style, its credentials)."""
    section = {"backend": "s3", "endpoint": store.endpoint, "bucket": store.bucket,
               "region": store.region, "access_key": store.access_key,
               "secret_key": store.secret_key, "path_style": "yes"}
    section.update(extra)
    return section


def s3_daemon(start_daemon, redis_server, store, **extra):
    return start_daemon({"redis": {"mode": "external", "url": redis_server.url},
                         "storage": storage(store, **extra)})


def result_key(doc):
    return f"results/{doc['id']}/default.{EXT[doc['result']['mime']]}"


def redis_keys(redis_server):
    keys, cursor = [], "0"
    while True:
        cursor, batch = redis_server.query("SCAN", cursor, "COUNT", "1000")
        keys += batch
        if cursor == "0":
            return keys


def assert_no_bytes_in_redis(redis_server, payloads):
    """No key holds a result or an upload: no res:/src: key, and no string
    value (nor hash field) contains a run of any payload's bytes."""
    keys = redis_keys(redis_server)
    assert not [k for k in keys if ":res:" in k or ":src:" in k], keys
    probes = [p[len(p) // 2:len(p) // 2 + 48] for p in payloads]
    for k in keys:
        kind = redis_server.query("TYPE", k)
        values = []
        if kind == "string":
            values = [redis_server.query("GET", k)]
        elif kind == "hash":
            values = redis_server.query("HGETALL", k)[1::2]
        for v in values:
            raw = v.encode("latin-1", errors="ignore") if isinstance(v, str) else b""
            for probe in probes:
                assert probe not in raw, f"{k} holds bytes of a result or an upload"


def test_url_job_and_upload_live_in_the_bucket(start_daemon, redis_server, s3_store, source,
                                               images):
    d = s3_daemon(start_daemon, redis_server, s3_store)
    url_job = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    upload = unique_jpeg(400, 300)
    up_job = d.wait(d.upload(upload, width=48, format="png")["id"])
    for doc in (url_job, up_job):
        assert doc["status"] == "done", doc
        key = result_key(doc)
        assert doc["result"]["object"] == {"bucket": s3_store.bucket, "key": key}
        assert doc["result"]["image_url"] == f"/v1/thumbnails/{doc['id']}/image"
        stored = s3_store.get(key)
        assert stored is not None and len(stored) == doc["result"]["bytes"]
        assert s3_store.head(key)["content-type"] == doc["result"]["mime"]
        r = d.get(doc["result"]["image_url"])
        assert r.status_code == 200 and r.content == stored
    listed = s3_store.list("results/")
    assert sorted(listed) == sorted([result_key(url_job), result_key(up_job)])
    # The upload went to the store, and leaves it once its job ended.
    assert any(m == "PUT" and path.startswith(f"/{s3_store.bucket}/uploads/{up_job['id']}")
               for m, path, _, _ in s3_store.requests)
    wait_for("the upload's object to be deleted", lambda: s3_store.list("uploads/") == [], 10)
    thumbs = [s3_store.get(result_key(doc)) for doc in (url_job, up_job)]
    assert_no_bytes_in_redis(redis_server, thumbs + [upload])
    assert redis_server.query("ZCARD", "{thumbnailed}:drop") == 2  # the results, due at their ttl


def test_image_from_the_store_after_a_restart(start_daemon, redis_server, s3_store, source):
    d = s3_daemon(start_daemon, redis_server, s3_store)
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), width=80)["id"])
    key = result_key(doc)
    d.stop()
    d.restart()  # a new shared segment: the cache is empty
    s3_store.clear_requests()
    image = doc["result"]["image_url"]
    r = d.get(image)
    assert r.status_code == 200, r.text
    assert r.content == s3_store.get(key)
    assert r.headers["Content-Type"] == doc["result"]["mime"]
    etag = r.headers["ETag"]
    fetched = [q for q in s3_store.requests if q[0] == "GET" and q[1].endswith(key)]
    assert len(fetched) == 2  # the http child's, then the test's own
    # Then cached (once the child's subscription vouches for what it read,
    # cached.c): neither a repeat, a HEAD nor a conditional GET asks the store.
    # Each request is a connection of its own, answered by either http child:
    # 8 hits in a row, so that both children's subscriptions are up (a child
    # whose subscription is not yet confirmed asks the store).
    wait_for("the image from the cache of both children",
             lambda: all(d.get(image).headers.get("X-Cache") == "hit" for _ in range(8)), 10)
    s3_store.clear_requests()
    assert d.get(image).content == r.content
    h = requests.head(d.base + image, timeout=5)
    assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(r.content)
    assert d.get(image, headers={"If-None-Match": etag}).status_code == 304
    assert not [q for q in s3_store.requests if q[1].endswith(key)]


def test_public_url_redirects(start_daemon, redis_server, s3_store, source):
    d = s3_daemon(start_daemon, redis_server, s3_store, public_url="https://cdn.example/t/")
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    want = "https://cdn.example/t/" + result_key(doc)
    assert doc["result"]["image_url"] == want
    r = d.get(f"/v1/thumbnails/{doc['id']}/image", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == want
    d.stop()
    d.restart()  # from Redis too, not only from the cache
    r = d.get(f"/v1/thumbnails/{doc['id']}/image", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == want


def test_delete_removes_the_objects(start_daemon, redis_server, s3_store, source):
    d = s3_daemon(start_daemon, redis_server, s3_store)
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    key = result_key(doc)
    assert s3_store.get(key) is not None
    r = requests.delete(f"{d.base}/v1/thumbnails/{doc['id']}", timeout=5)
    assert r.status_code in (200, 204), r.text
    wait_for("the deleted job's object to go", lambda: s3_store.get(key) is None, 10)
    error_of(d.get(f"/v1/thumbnails/{doc['id']}/image"), 404, "not_found")
    wait_for("{p}:drop to empty", lambda: redis_server.query("ZCARD", "{thumbnailed}:drop") == 0,
             10)


def test_lifecycle_expiry_leaves_objects_to_the_bucket(start_daemon, redis_server, s3_store,
                                                       source):
    d = s3_daemon(start_daemon, redis_server, s3_store, expiry="lifecycle")
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    assert s3_store.get(result_key(doc)) is not None
    assert redis_server.query("ZCARD", "{thumbnailed}:drop") == 0


def test_store_outage_jobs_wait_and_reads_answer_503(start_daemon, redis_server, s3_store,
                                                      source):
    d = s3_daemon(start_daemon, redis_server, s3_store)
    before = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    d.stop()
    d.restart()  # so that the image is not in the cache
    s3_store.outage("503")
    r = d.get(before["result"]["image_url"])
    error_of(r, 503, "unavailable")
    assert "Retry-After" in r.headers
    def not_ready():
        r = d.get("/readyz")
        return r.status_code == 503 and "the object store does not answer" in r.text

    wait_for("/readyz to say the store is down", not_ready, 10)
    ids = [d.submit(url=source.url("img/land.jpg"), width=40 + i)["id"] for i in range(3)]
    time.sleep(3)  # several retry delays: nothing may end while the store is down
    for i in ids:
        doc = d.job(i)
        assert doc["status"] in ("queued", "processing"), doc
    s3_store.restore()
    s3_store.outage("refuse")  # the other kind of outage: connections refused
    time.sleep(1)
    for i in ids:
        assert d.job(i)["status"] in ("queued", "processing")
    s3_store.restore()
    for i in ids:
        doc = d.wait(i)
        assert doc["status"] == "done", doc
        assert s3_store.get(result_key(doc)) is not None
    assert d.get(before["result"]["image_url"]).status_code == 200
    def ready():
        r = d.get("/readyz")
        return r.json() if r.status_code == 200 else None

    ready = wait_for("/readyz to be ready again", ready, 10)
    assert ready["store"] == f"{s3_store.endpoint}/{s3_store.bucket}"
    assert ready["store_rtt_ms"] >= 0


def test_wrong_secret_key_fails_check_and_start(thumbnailed_bin, tmp_path, redis_server,
                                               s3_store):
    d = Daemon(thumbnailed_bin, tmp_path / "d",
               {"redis": {"mode": "external", "url": redis_server.url},
                "storage": storage(s3_store, secret_key="not-the-secret")})
    t = subprocess.run([thumbnailed_bin, "-t", "-c", str(d.config)], capture_output=True,
                       text=True, timeout=30)
    assert t.returncode == 1, t
    assert "SignatureDoesNotMatch" in t.stderr, t.stderr
    d.launch()
    try:
        assert d.proc.wait(timeout=30) != 0
    finally:
        d.stop()
    assert "SignatureDoesNotMatch" in d.log_path.read_text(errors="replace")
    # The right key passes -t.
    good = Daemon(thumbnailed_bin, tmp_path / "good",
                  {"redis": {"mode": "external", "url": redis_server.url},
                   "storage": storage(s3_store)})
    t = subprocess.run([thumbnailed_bin, "-t", "-c", str(good.config)], capture_output=True,
                       text=True, timeout=30)
    assert t.returncode == 0, t.stderr


def test_renditions_each_an_object(start_daemon, redis_server, s3_store, source):
    """Every encoding of every rendition is an object of its own, served from
    the store by the image route, redirected to with public_url, and deleted
    with the job."""
    d = s3_daemon(start_daemon, redis_server, s3_store)
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), renditions=[
        {"name": "a", "width": 120, "format": ["webp", "jpeg"]},
        {"name": "b", "width": 40, "format": "png"}])["id"])
    assert doc["status"] == "done", doc
    keys = [f"results/{doc['id']}/{k}" for k in ("a.jpg", "a.webp", "b.png")]
    assert sorted(s3_store.list("results/")) == sorted(keys)
    assert doc["result"]["object"]["key"] == keys[0]  # the first rendition's fallback
    for r in doc["result"]["renditions"]:
        for f in r["formats"]:
            key = f"results/{doc['id']}/{r['name']}.{EXT[f['mime']]}"
            got = d.get(f["image_url"])
            assert got.status_code == 200 and got.content == s3_store.get(key), f
            assert got.headers["Content-Type"] == f["mime"]
    d.stop()
    d.restart()  # from Redis and the store, not the cache
    s3_store.clear_requests()
    got = d.get(f"/v1/thumbnails/{doc['id']}/image/a", headers={"Accept": "image/webp"})
    assert got.headers["Content-Type"] == "image/webp" and got.headers["Vary"] == "Accept"
    assert got.content == s3_store.get(keys[1])
    # Then cached (once each child's subscription vouches for what it read):
    # the encoding without the store, whichever http child answers.
    url = f"/v1/thumbnails/{doc['id']}/image/a"
    wait_for("the encoding from the cache, ten times running",
             lambda: all(d.get(url, headers={"Accept": "image/webp"}).headers.get("X-Cache")
                         == "hit" for _ in range(10)), 10)
    s3_store.clear_requests()
    again = d.get(url, headers={"Accept": "image/webp"})
    assert again.headers["X-Cache"] == "hit" and again.content == got.content
    assert not [q for q in s3_store.requests if q[1].endswith("a.webp")]
    r = requests.delete(f"{d.base}/v1/thumbnails/{doc['id']}", timeout=5)
    assert r.status_code in (200, 204), r.text
    wait_for("every object of the deleted job to go", lambda: not s3_store.list("results/"), 10)


def test_renditions_public_url(start_daemon, redis_server, s3_store, source):
    d = s3_daemon(start_daemon, redis_server, s3_store, public_url="https://cdn.example/t/")
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), renditions=[
        {"name": "a", "width": 64, "format": ["webp", "jpeg"]}, {"name": "b", "width": 32}])["id"])
    base = f"https://cdn.example/t/results/{doc['id']}/"
    a, b = doc["result"]["renditions"]
    assert a["image_url"] == base + "a.jpg" and b["image_url"] == base + "b.jpg"
    assert [f["image_url"] for f in a["formats"]] == [base + "a.webp", base + "a.jpg"]
    r = d.get(f"/v1/thumbnails/{doc['id']}/image/a?format=webp", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == base + "a.webp"
    r = d.get(f"/v1/thumbnails/{doc['id']}/image/b", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == base + "b.jpg"
