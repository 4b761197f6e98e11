"""The original service's API (docs/API.md §12): a client written for
the FastAPI + python-rq service it replaces works unchanged against
/api/health, POST /api/thumb and GET /api/thumb/<id>."""

import base64
import io
import re
import signal
import time

import pytest
import requests
from PIL import Image

from helpers import SourceServer, error_of, free_port

POLL_TIMEOUT = 30  # seconds


# ---------------------------------------------------------------------------
# The original service's client, as its users wrote it: nothing of ours.


class OriginalClient:
    def __init__(self, base, headers=None):
        self.base = base
        self.headers = headers or {}

    def request_thumb(self, image_url, email="someone@example.com"):
        r = requests.post(f"{self.base}/api/thumb", json={"email": email, "image_url": image_url},
                          headers=self.headers, timeout=10)
        assert r.status_code == 201, f"{r.status_code} {r.text}"
        return r.json()["req_id"]

    def status(self, req_id):
        r = requests.get(f"{self.base}/api/thumb/{req_id}", headers=self.headers, timeout=10)
        assert r.status_code == 200, f"{r.status_code} {r.text}"
        return r.json()

    def wait(self, req_id, until=("finished", "failed")):
        deadline = time.monotonic() + POLL_TIMEOUT
        doc = None
        while time.monotonic() < deadline:
            doc = self.status(req_id)
            if doc["status"] in until:
                return doc
            time.sleep(0.05)
        raise AssertionError(f"thumb {req_id} not {until} after {POLL_TIMEOUT}s: {doc}")


def decode_data_url(url):
    """Returns (mime, PIL image) of a data:<mime>;base64,<data> URL."""
    m = re.fullmatch(r"data:([a-z]+/[a-z0-9.+-]+);base64,([A-Za-z0-9+/]*={0,2})", url)
    assert m, url[:100]
    img = Image.open(io.BytesIO(base64.b64decode(m.group(2), validate=True)))
    img.load()
    return m.group(1), img


@pytest.fixture(scope="module")
def thirds(tmp_path_factory):
    """A 600x200 PNG: red left third, green centre, blue right third."""
    path = tmp_path_factory.mktemp("compat") / "thirds.png"
    img = Image.new("RGB", (600, 200), (220, 0, 0))
    img.paste((0, 200, 0), (200, 0, 400, 200))
    img.paste((0, 0, 220), (400, 0, 600, 200))
    img.save(path)
    return path


@pytest.fixture(scope="module")
def src(images, thirds):
    server = SourceServer({**images, "thirds.png": thirds})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(daemon):
    return OriginalClient(daemon.base)


# ---------------------------------------------------------------------------


def test_health(daemon):
    r = daemon.get("/api/health")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "OK", "message": "Server is up !"}
    assert r.text.strip() == '{"status":"OK","message":"Server is up !"}'


@pytest.mark.parametrize("name,fmt,mime", [("land.jpg", "JPEG", "image/jpeg"),
                                           ("land.png", "PNG", "image/png")])
def test_thumb_in_the_source_format(client, src, name, fmt, mime):
    req_id = client.request_thumb(src.url(f"img/{name}"))
    assert isinstance(req_id, str) and req_id
    doc = client.wait(req_id)
    assert doc["status"] == "finished", doc
    assert set(doc) == {"status", "image_base64"}
    got_mime, img = decode_data_url(doc["image_base64"])
    assert got_mime == mime
    assert img.format == fmt
    assert img.size == (100, 100)


def test_thumb_is_centre_cropped(client, src):
    doc = client.wait(client.request_thumb(src.url("img/thirds.png")))
    assert doc["status"] == "finished", doc
    _, img = decode_data_url(doc["image_base64"])
    img = img.convert("RGB")
    assert img.size == (100, 100)
    # Not stretched: the left and right edges are the centre's green too.
    for x in (2, 50, 97):
        for y in (2, 50, 97):
            r, g, b = img.getpixel((x, y))
            assert g > 150 and r < 60 and b < 60, ((x, y), (r, g, b))


def test_unknown_id_is_404(daemon):
    for req_id in ("AAAAAAAAAAAAAAAAAAAAAA", "nope", "x" * 200):
        r = daemon.get(f"/api/thumb/{req_id}")
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": "Thumb request not found"}


def test_failed_source(client, src):
    doc = client.wait(client.request_thumb(src.url("fail/999/404/land.jpg")))
    assert doc == {"status": "failed", "image_base64": None}


def _detail(r):
    assert r.status_code == 422, f"{r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/json")
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail, r.text
    for d in detail:
        assert d["loc"][0] == "body", d
        assert isinstance(d["msg"], str) and d["msg"], d
        assert d["type"] == "value_error", d
    return detail


@pytest.mark.parametrize("body,fields", [
    ({"email": "a@b.example"}, ["image_url"]),
    ({"image_url": "http://127.0.0.1:9/a.jpg"}, ["email"]),
    ({}, ["email", "image_url"]),
    ({"email": 123, "image_url": "http://127.0.0.1:9/a.jpg"}, ["email"]),
    ({"email": None, "image_url": "http://127.0.0.1:9/a.jpg"}, ["email"]),
    ({"email": "a@b.example", "image_url": ["http://127.0.0.1:9/a.jpg"]}, ["image_url"]),
    ({"email": "a@b.example", "image_url": "ftp://127.0.0.1/a.jpg"}, ["image_url"]),
    ({"email": "a@b.example", "image_url": "file:///etc/passwd"}, ["image_url"]),
    ({"email": "a@b.example", "image_url": "not a url"}, ["image_url"]),
    ({"email": "a@b.example", "image_url": ""}, ["image_url"]),
], ids=["missing-url", "missing-email", "empty", "email-number", "email-null", "url-list",
        "url-ftp", "url-file", "url-text", "url-empty"])
def test_invalid_body_is_422(daemon, body, fields):
    detail = _detail(daemon.post("/api/thumb", json=body))
    assert [d["loc"] for d in detail] == [["body", f] for f in fields]


@pytest.mark.parametrize("body", [b'{"email": ', b"not json", b'{"email": "a@b.c",}', b"",
                                  b"\xff\xfe{}"], ids=["cut", "text", "comma", "empty", "utf8"])
def test_bad_json_is_422(daemon, body):
    detail = _detail(daemon.post("/api/thumb", data=body,
                                 headers={"Content-Type": "application/json"}))
    assert len(detail) == 1 and len(detail[0]["loc"]) == 2
    assert isinstance(detail[0]["loc"][1], int)  # where the parse failed, as FastAPI says


def test_not_an_object_is_422(daemon):
    detail = _detail(daemon.post("/api/thumb", json=["a@b.example", "http://127.0.0.1:9/a"]))
    assert [d["loc"] for d in detail] == [["body"]]


def test_extra_fields_are_ignored(client, src, daemon):
    r = daemon.post("/api/thumb", json={"email": "a@b.example", "image_url": src.url("img/land.jpg"),
                                        "size": 512})
    assert r.status_code == 201, r.text
    assert client.wait(r.json()["req_id"])["status"] == "finished"


def test_same_request_same_job(daemon, src):
    # The same enqueue path as /v1: an identical request while its job lives is that job.
    body = {"email": "a@b.example", "image_url": src.url("img/land.jpg")}
    first = daemon.post("/api/thumb", json=body)
    second = daemon.post("/api/thumb", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["req_id"] == second.json()["req_id"]
    # And the job is an ordinary one: 100x100, cover, centre, original format.
    job = daemon.job(first.json()["req_id"])["request"]
    assert (job["width"], job["height"], job["fit"], job["format"]) == (100, 100, "cover",
                                                                        "original")
    assert "email" not in job  # e-mail is off (smtp.url empty): the address is dropped


def test_queued_then_started(start_daemon, src):
    d = start_daemon({"worker": {"processes": "1"}})
    client = OriginalClient(d.base)
    busy = client.request_thumb(src.url("slow/2500/land.jpg"))
    client.wait(busy, until=("started",))
    waiting = client.request_thumb(src.url("img/land.png"))
    assert client.status(waiting) == {"status": "queued", "image_base64": None}
    assert client.status(busy) == {"status": "started", "image_base64": None}
    assert client.wait(busy)["status"] == "finished"
    assert client.wait(waiting)["status"] == "finished"


def test_read_from_redis_then_cache(start_daemon, src, redis_server):
    # Node a works; node b starts once the job is done, so it never saw it
    # (worker.processes = 0 means one per core and one more, so a node started earlier
    # could run the job itself): it reads it from Redis (miss), keeps it, and
    # answers from its cache (hit) even once Redis is gone.
    external = {"redis": {"mode": "external", "url": redis_server.url}}
    a = start_daemon(external)
    req_id = OriginalClient(a.base).request_thumb(src.url("img/land.jpg"))
    done = OriginalClient(a.base).wait(req_id)
    assert done["status"] == "finished"
    b = start_daemon({**external, "worker": {"processes": "1"}})
    first = b.get(f"/api/thumb/{req_id}")
    assert first.status_code == 200 and first.headers["X-Cache"] == "miss"
    assert first.json() == done
    redis_server.stop(signal.SIGKILL)
    again = b.get(f"/api/thumb/{req_id}")
    assert again.status_code == 200 and again.headers["X-Cache"] == "hit"
    assert again.json() == done
    r = b.get("/api/thumb/AAAAAAAAAAAAAAAAAAAAAA")
    error_of(r, 503, "unavailable")  # what the cache does not hold still needs Redis
    r = b.post("/api/thumb", json={"email": "a@b.example", "image_url": src.url("img/land.jpg")})
    error_of(r, 503, "unavailable")


def test_email_with_smtp(start_daemon, src):
    d = start_daemon({"smtp": {"url": f"smtp://127.0.0.1:{free_port()}",
                               "from": "thumbs@example.com"}})
    r = d.post("/api/thumb", json={"email": "not an address", "image_url": src.url("img/land.jpg")})
    assert [e["loc"] for e in _detail(r)] == [["body", "email"]]
    r = d.post("/api/thumb", json={"email": "me@example.com", "image_url": src.url("img/land.jpg")})
    assert r.status_code == 201, r.text
    assert d.job(r.json()["req_id"])["request"]["email"] == "me@example.com"


def test_api_keys(start_daemon, src, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("k-compat-1234567890\n")
    d = start_daemon({"http": {"api_keys_file": str(keys)}})
    body = {"email": "a@b.example", "image_url": src.url("img/land.jpg")}
    error_of(d.post("/api/thumb", json=body), 401, "unauthorized")
    error_of(d.post("/api/thumb", json=body, headers={"Authorization": "Bearer nope"}),
             403, "forbidden")
    error_of(d.get("/api/thumb/AAAAAAAAAAAAAAAAAAAAAA"), 401, "unauthorized")
    # Validation comes after authentication: no 422 leaks to a client without a key.
    error_of(d.post("/api/thumb", data=b"junk"), 401, "unauthorized")
    client = OriginalClient(d.base, {"Authorization": "Bearer k-compat-1234567890"})
    req_id = client.request_thumb(src.url("img/land.jpg"))
    error_of(d.get(f"/api/thumb/{req_id}"), 401, "unauthorized")
    assert client.wait(req_id)["status"] == "finished"
    assert d.get("/api/health").status_code == 200  # like /healthz: no key needed


def test_limits_keep_our_error_documents(start_daemon):
    d = start_daemon({"http": {"max_body": "1K", "rate_limit": "3"}})
    r = d.post("/api/thumb", json={"email": "a@b.example", "image_url": "http://a.example/" +
                                   "x" * 2000})
    error_of(r, 413, "too_large")
    statuses = [d.get("/api/thumb/AAAAAAAAAAAAAAAAAAAAAA").status_code for _ in range(12)]
    assert 404 in statuses and 429 in statuses, statuses


def test_methods(daemon):
    r = daemon.request("PUT", "/api/thumb")
    error_of(r, 405)
    assert "POST" in r.headers["Allow"]
    error_of(daemon.request("DELETE", "/api/thumb/AAAAAAAAAAAAAAAAAAAAAA"), 405)
    error_of(daemon.post("/api/health"), 405)
    for path in ("/api", "/api/", "/api/thumbs", "/api/thumb/a/b", "/api/thumb/"):
        error_of(daemon.get(path), 404)
