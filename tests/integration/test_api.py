"""The HTTP surface of docs/API.md: request validation and its error documents,
routes, methods, size and type limits, and the operational endpoints."""

import json
import os
import time

import pytest

from helpers import error_of, unique_jpeg

# ---------------------------------------------------------------------------
# Parameter validation: every out-of-range or invalid field is 400 invalid_param
# naming that field.

GOOD_URL = "http://127.0.0.1:9/a.jpg"  # never fetched: validation fails first

INVALID_JSON_PARAMS = [
    ("width-0", {"url": GOOD_URL, "width": 0}, "width"),
    ("width-over-max", {"url": GOOD_URL, "width": 4097}, "width"),
    ("width-negative", {"url": GOOD_URL, "width": -5}, "width"),
    ("width-string", {"url": GOOD_URL, "width": "100"}, "width"),
    ("width-float", {"url": GOOD_URL, "width": 1.5}, "width"),
    ("width-null", {"url": GOOD_URL, "width": None}, "width"),
    ("height-negative", {"url": GOOD_URL, "width": 10, "height": -1}, "height"),
    ("height-0", {"url": GOOD_URL, "height": 0}, "height"),
    ("height-over-max", {"url": GOOD_URL, "height": 5000}, "height"),
    ("quality-0", {"url": GOOD_URL, "quality": 0}, "quality"),
    ("quality-101", {"url": GOOD_URL, "quality": 101}, "quality"),
    ("fit-bogus", {"url": GOOD_URL, "fit": "stretchy"}, "fit"),
    ("fit-number", {"url": GOOD_URL, "fit": 1}, "fit"),
    ("crop-bogus", {"url": GOOD_URL, "crop": "middle"}, "crop"),
    ("format-bogus", {"url": GOOD_URL, "format": "bmp"}, "format"),
    ("url-ftp", {"url": "ftp://127.0.0.1/a.jpg"}, "url"),
    ("url-file", {"url": "file:///etc/passwd"}, "url"),
    ("url-relative", {"url": "/a.jpg"}, "url"),
    ("url-not-a-url", {"url": "not a url"}, "url"),
    ("url-number", {"url": 42}, "url"),
    ("url-missing", {"width": 100}, "url"),
    ("url-missing-empty-object", {}, "url"),
    ("callback-url-ftp", {"url": GOOD_URL, "callback_url": "ftp://127.0.0.1/cb"}, "callback_url"),
    ("unknown-field", {"url": GOOD_URL, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize("body,field", [(b, f) for _, b, f in INVALID_JSON_PARAMS],
                         ids=[i for i, _, _ in INVALID_JSON_PARAMS])
def test_invalid_param_json(daemon, body, field):
    r = daemon.post("/v1/thumbnails", json=body)
    error_of(r, 400, "invalid_param", field)


INVALID_QUERY_PARAMS = [
    ("width-0", {"width": "0"}, "width"),
    ("width-over-max", {"width": "4097"}, "width"),
    ("width-not-a-number", {"width": "big"}, "width"),
    ("height-negative", {"height": "-1"}, "height"),
    ("quality-101", {"quality": "101"}, "quality"),
    ("quality-0", {"quality": "0"}, "quality"),
    ("fit-bogus", {"fit": "stretchy"}, "fit"),
    ("crop-bogus", {"crop": "middle"}, "crop"),
    ("format-bogus", {"format": "bmp"}, "format"),
    ("unknown-field", {"colour": "red"}, "colour"),
    ("url-with-upload", {"url": GOOD_URL}, "url"),
]


@pytest.mark.parametrize("params,field", [(p, f) for _, p, f in INVALID_QUERY_PARAMS],
                         ids=[i for i, _, _ in INVALID_QUERY_PARAMS])
def test_invalid_param_upload_query(daemon, params, field):
    r = daemon.post("/v1/thumbnails", params=params, data=unique_jpeg(64, 40),
                    headers={"Content-Type": "image/jpeg"})
    error_of(r, 400, "invalid_param", field)


@pytest.mark.parametrize("body", [b'{"url": ', b"not json", b'{"url": "http://a/b.jpg",}',
                                  b"[1, 2]", b'"just a string"', b"\xff\xfe{}"],
                         ids=["cut", "text", "trailing-comma", "array", "string", "bad-utf8"])
def test_invalid_json(daemon, body):
    r = daemon.post("/v1/thumbnails", data=body, headers={"Content-Type": "application/json"})
    error_of(r, 400, "invalid_json")


# ---------------------------------------------------------------------------
# Routes, ids, methods


@pytest.mark.parametrize("job_id", ["AAAAAAAAAAAAAAAAAAAAAA", "nope", "x" * 200])
def test_unknown_job_is_404(daemon, job_id):
    error_of(daemon.get(f"/v1/thumbnails/{job_id}"), 404, "not_found")
    error_of(daemon.get(f"/v1/thumbnails/{job_id}/image"), 404, "not_found")


@pytest.mark.parametrize("path", ["/nope", "/v1", "/v1/thumbnail", "/v1/thumbnails/a/b/c",
                                  "/v2/thumbnails"])
def test_unknown_route_is_404(daemon, path):
    error_of(daemon.get(path), 404)


def _allow(r):
    return {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/thumbnails", {"POST"}),
    ("GET", "/v1/thumbnails", {"POST"}),
    ("DELETE", "/healthz", {"GET"}),
    ("POST", "/healthz", {"GET"}),
    ("PUT", "/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA", {"GET", "DELETE"}),
    ("POST", "/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA/image", {"GET", "HEAD"}),
])
def test_wrong_method_is_405_with_allow(daemon, method, path, allowed):
    r = daemon.request(method, path)
    error_of(r, 405)
    assert allowed <= _allow(r), f"Allow: {r.headers.get('Allow')!r}, expected {allowed}"
    assert method not in _allow(r)


def test_healthz(daemon):
    r = daemon.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz(daemon):
    r = daemon.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def test_every_response_has_request_id(daemon):
    ids = set()
    for method, path in [("GET", "/healthz"), ("GET", "/v1/thumbnails/nope"),
                         ("POST", "/v1/thumbnails"), ("GET", "/no/such/route"),
                         ("DELETE", "/healthz")]:
        r = daemon.request(method, path)
        rid = r.headers.get("X-Request-Id")
        assert rid, (method, path, r.status_code, dict(r.headers))
        ids.add(rid)
    assert len(ids) == 5, f"request ids repeat: {ids}"


# ---------------------------------------------------------------------------
# Upload type and body size limits


def test_upload_of_non_image_is_415(daemon, images):
    r = daemon.post("/v1/thumbnails", params={"width": 100}, data=images["page.html"].read_bytes(),
                    headers={"Content-Type": "image/jpeg"})
    error_of(r, 415, "unsupported_type")


def test_upload_of_random_bytes_is_415(daemon):
    r = daemon.post("/v1/thumbnails", params={"width": 100}, data=os.urandom(4096),
                    headers={"Content-Type": "application/octet-stream"})
    error_of(r, 415, "unsupported_type")


def test_body_over_max_body_is_413(start_daemon):
    d = start_daemon({"http": {"max_body": "64K"}})
    r = d.post("/v1/thumbnails", params={"width": 100}, data=os.urandom(100 * 1024),
               headers={"Content-Type": "image/jpeg"})
    error_of(r, 413, "too_large")
    body = json.dumps({"url": "http://127.0.0.1:9/a.jpg", "pad": "x" * (80 * 1024)})
    r = d.post("/v1/thumbnails", data=body, headers={"Content-Type": "application/json"})
    error_of(r, 413, "too_large")
    # Under the limit is still accepted by the same daemon.
    r = d.post("/v1/thumbnails", params={"width": 50}, data=unique_jpeg(160, 100),
               headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 202, r.text
    assert d.wait(r.json()["id"])["status"] == "done"


# ---------------------------------------------------------------------------
# Deduplication, idempotency keys and long-polling


def test_identical_request_returns_the_existing_job(daemon, source):
    body = {"url": source.url("img/land.jpg"), "width": 77, "fit": "cover"}
    first = daemon.post("/v1/thumbnails", json=body)
    assert first.status_code == 202, first.text
    again = daemon.post("/v1/thumbnails", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    daemon.wait(first.json()["id"])


def test_idempotency_key_returns_the_first_job(daemon, source):
    key = {"Idempotency-Key": os.urandom(8).hex()}
    first = daemon.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40},
                        headers=key)
    assert first.status_code == 202, first.text
    again = daemon.post("/v1/thumbnails", json={"url": source.url("img/port.jpg"), "width": 41},
                        headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["request"]["width"] == 40
    daemon.wait(first.json()["id"])


def test_wait_holds_until_terminal(daemon, source):
    # The source takes 1.5 s: only an answer held until the job ended says "done".
    job = daemon.submit(url=source.url("slow/1500/land.jpg"), width=60)
    r = daemon.get(f"/v1/thumbnails/{job['id']}", params={"wait": 20}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "done", r.json()


# ---------------------------------------------------------------------------
# DELETE


def test_delete_done_job_removes_the_result(daemon, source):
    doc = daemon.run(url=source.url("img/land.jpg"), width=50)
    assert daemon.image(doc).status_code == 200
    r = daemon.request("DELETE", f"/v1/thumbnails/{doc['id']}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    error_of(daemon.get(doc["result"]["image_url"]), 404, "not_found")


def test_delete_queued_job_cancels_it(daemon, source):
    slow = [daemon.submit(url=source.url("slow/3000/land.jpg"), width=50)["id"] for _ in range(2)]
    for job_id in slow:
        daemon.wait_until(job_id, ("processing",), timeout=10)
    job = daemon.submit(url=source.url("img/land.jpg"), width=50)
    assert daemon.job(job["id"])["status"] == "queued"
    r = daemon.request("DELETE", f"/v1/thumbnails/{job['id']}")
    assert r.status_code == 204, r.text
    for job_id in slow:
        assert daemon.wait(job_id)["status"] == "done"
    doc = daemon.job(job["id"])
    assert doc["status"] == "canceled", doc
    assert doc["attempts"] == 0, doc


def test_delete_unknown_job_is_404(daemon):
    error_of(daemon.request("DELETE", "/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA"), 404, "not_found")
