"""The HTTP surface of docs/API.md: request validation and its error documents,
routes, methods, size and type limits, and the operational endpoints."""

import base64
import json
import os
import time

import pytest

from conftest import DaemonFactory
from helpers import error_of, free_port, unique_jpeg

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


# A query value is checked as its JSON twin, whole: a %00 does not cut it short
# (email=a@b.example%00x was stored as a@b.example), white space is not trimmed
# (width= 100 was 100), an integer is digits only. The daemon has e-mail and
# callbacks configured, so that an address is refused for what it is, not
# because e-mail or callbacks are off (an SMTP port nobody listens on: no job
# here needs it).

@pytest.fixture(scope="module")
def mail_daemon(thumbnailed_bin, tmp_path_factory):
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory({"smtp": {"url": f"smtp://127.0.0.1:{free_port()}", "starttls": "no",
                            "from": "thumbs@example.test"},
                   "callback": {"secret": "whsec_" + base64.b64encode(b"k" * 24).decode()}})
    factory.stop_all()


STRICT_QUERIES = [
    # (id, the query string exactly as sent, field)
    ("email-nul", "email=a@b.example%00x", "email"),
    ("email-encoded-nul", "email=a%40b.example%00x", "email"),
    ("email-trailing-nul", "email=a%40b.example%00", "email"),
    ("email-leading-space", "email=+a%40b.example", "email"),
    ("width-leading-space", "width=%20100", "width"),  # "width= 100" as a client sends it
    ("width-plus-is-space", "width=+100", "width"),
    ("width-trailing-space", "width=100%20", "width"),
    ("width-trailing-nul", "width=100%00", "width"),
    ("width-suffix", "width=100abc", "width"),
    ("width-plus-sign", "width=%2B5", "width"),
    ("width-leading-zero", "width=0100", "width"),
    ("height-tab", "height=%09100", "height"),
    ("quality-exponent", "quality=1e2", "quality"),
    ("fit-nul", "fit=fill%00", "fit"),
    ("format-nul", "format=png%00jpeg", "format"),
]


@pytest.mark.parametrize("query,field", [(q, f) for _, q, f in STRICT_QUERIES],
                         ids=[i for i, _, _ in STRICT_QUERIES])
def test_query_value_checked_whole(mail_daemon, query, field):
    r = mail_daemon.post("/v1/thumbnails?" + query, data=unique_jpeg(64, 40),
                         headers={"Content-Type": "image/jpeg"})
    error_of(r, 400, "invalid_param", field)


STRICT_JSON = [
    ("email-nul", {"email": "a@b.example\u0000x"}, "email"),
    ("url-nul", {"url": "http://127.0.0.1:9/a.jpg\u0000x"}, "url"),
    ("callback-url-nul", {"callback_url": "http://127.0.0.1:9/cb\u0000"}, "callback_url"),
    ("fit-nul", {"fit": "fill\u0000"}, "fit"),
    ("email-trailing-space", {"email": "a@b.example "}, "email"),
    ("fit-leading-space", {"fit": " cover"}, "fit"),
]


@pytest.mark.parametrize("extra,field", [(b, f) for _, b, f in STRICT_JSON],
                         ids=[i for i, _, _ in STRICT_JSON])
def test_json_string_checked_whole(mail_daemon, extra, field):
    body = dict({"url": GOOD_URL}, **extra)
    error_of(mail_daemon.post("/v1/thumbnails", json=body), 400, "invalid_param", field)


def test_query_value_stored_as_validated(mail_daemon):
    r = mail_daemon.post("/v1/thumbnails?email=a%40b.example&width=100&format=%6Apg",
                         data=unique_jpeg(64, 40), headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 202, r.text
    request = r.json()["request"]
    assert (request["email"], request["width"], request["format"]) == ("a@b.example", 100, "jpeg")
    assert mail_daemon.job(r.json()["id"])["request"]["email"] == "a@b.example"


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
    doc = r.json()
    assert doc["status"] == "ready" and doc["workers"] >= 1
    # It names the node and the Redis it uses (the embedded one's socket).
    assert ":" in doc["node"]
    assert doc["redis"].endswith("redis.sock"), doc


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
