"""Hostile input (TESTING.md): sources and requests crafted to hurt the daemon,
each answered with its documented status or error code, while the daemon keeps
serving. One daemon for the whole module, on the shipped strict defaults
(fetch.allow_private = no) with the test's own source server reachable through
fetch.allow_hosts = 127.0.0.1 (by that IP literal only), and tight limits so
every case ends quickly. worker.max_attempts = 1: a transient failure ends the
job at once. All traffic stays on 127.0.0.1 (the guard refuses the other
addresses before connecting)."""

import io
import json
import os
import socket
import threading
import time
import uuid
from urllib.parse import quote

import pytest
from PIL import Image

from conftest import SANITIZER_MARKERS, DaemonFactory
from helpers import (HTTP_TIMEOUT, POLYGLOT_TAIL, SourceServer, decode_image, error_of,
                     make_hostile_images, unique_jpeg, wait_for)

HOSTILE_CONFIG = {
    "fetch": {"allow_private": "no", "allow_hosts": "127.0.0.1", "timeout": "4s",
              "max_bytes": "1M"},
    "http": {"max_body": "256K", "max_header": "8K", "timeout": "3s"},
    "worker": {"processes": "2", "max_attempts": "1"},
    "image": {"max_frames": "100"},
}
HTTP_TIMEOUT_S = 3
MAX_BODY = 256 * 1024
JOB_WAIT = 30  # seconds for any job of the table to end (the slowest, the trickle, takes 4 s)


@pytest.fixture(scope="module")
def hsource(images, tmp_path_factory):
    """A source server of this module's own: the suite's images plus the hostile ones."""
    files = dict(images)
    files.update(make_hostile_images(tmp_path_factory.mktemp("hostile")))
    server = SourceServer(files)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hd(thumbnailed_bin, tmp_path_factory):
    """The one daemon every case of this module runs against."""
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    d = factory(HOSTILE_CONFIG)

    def all_started():
        kids = d.children()
        counts = [len(kids[kind]) for kind in ("http", "worker", "delivery", "redis")]
        return kids if counts == [2, 2, 1, 1] else None

    # Its children once all are up, for test_zz: none may die and be replaced.
    d.first_children = wait_for("2 http, 2 workers, 1 delivery, 1 redis", all_started, 10)
    yield d
    factory.stop_all()


def log_lines(daemon, needle):
    """The daemon's log lines that mention needle (a job id), for failure messages."""
    try:
        text = daemon.log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(line for line in text.splitlines() if needle in line) or "(no line)"


def path_of(source, url):
    """The path (query included) the source server sees for one of its URLs."""
    assert url.startswith(source.base), url
    return url[len(source.base):]


def unique():
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------
# URL jobs that must end failed with a given code.
#
# Each case: (id, make(source, port) -> (url, must_reach, must_not_reach), code)
#   must_reach      a path the source server must have been asked for (the
#                   allowed first hop of a redirect), or None
#   must_not_reach  a path it must never be asked for (the refused target,
#                   made unique so a guard that let it through shows), or None


def _redirect_to(target):
    def make(source, port):
        url = source.url("redirect/" + quote(target(port), safe=""))
        return url, path_of(source, url), None
    return make


def _redirect_to_own(host):
    """A redirect to our own source port under another name for loopback."""
    def make(source, port):
        tail = f"/img/land.jpg?u={unique()}"
        url = source.url("redirect/" + quote(f"http://{host}:{port}{tail}", safe=""))
        return url, path_of(source, url), tail
    return make


def _direct_own(host):
    def make(source, port):
        tail = f"/img/land.jpg?u={unique()}"
        return f"http://{host}:{port}{tail}", None, tail
    return make


def _direct(url):
    return lambda source, port: (url, None, None)


def _from_source(path):
    return lambda source, port: (source.url(path), None, None)


# Cases that, were the guard broken, would reach beyond loopback: they run after
# the loopback ones, and not at all once one of the SENTINELS (loopback
# addresses under a name or literal that is not in fetch.allow_hosts) got
# through the guard. The v4-mapped case uses 127.0.0.2: [::ffff:127.0.0.1] is
# the allowed literal 127.0.0.1 written another way (fetch.allow_hosts).
OFF_LOOPBACK = ("redirect-to-metadata", "direct-metadata")
SENTINELS = ("redirect-to-localhost", "redirect-to-127.0.0.2", "direct-localhost",
             "direct-ipv6-loopback", "direct-v4-mapped-loopback", "direct-0.0.0.0")

FAILING_URL_CASES = [
    ("redirect-to-localhost", _redirect_to_own("localhost"), "fetch_blocked_address"),
    ("redirect-to-127.0.0.2", _redirect_to_own("127.0.0.2"), "fetch_blocked_address"),
    ("direct-localhost", _direct_own("localhost"), "fetch_blocked_address"),
    ("direct-ipv6-loopback", _direct_own("[::1]"), "fetch_blocked_address"),
    ("direct-v4-mapped-loopback", _direct_own("[::ffff:127.0.0.2]"), "fetch_blocked_address"),
    ("direct-0.0.0.0", _direct_own("0.0.0.0"), "fetch_blocked_address"),
    ("redirect-to-metadata",
     _redirect_to(lambda port: "http://169.254.169.254/latest/meta-data/"),
     "fetch_blocked_address"),
    ("direct-metadata", _direct("http://169.254.169.254/"), "fetch_blocked_address"),
    ("stream-1GB", _from_source("endless/1024"), "fetch_too_large"),
    ("trickle-1-byte-per-s", _from_source("trickle/1000/land.jpg"), "fetch_timeout"),
    ("empty-body", _from_source("empty"), "unsupported_type"),
    ("truncated-jpeg", _from_source("img/truncated.jpg"), "decode_failed"),
    ("png-claims-50000x50000", _from_source("img/huge-header.png"), "too_many_pixels"),
    ("gif-10000-frames", _from_source("img/frames-10k.gif"), "too_many_frames"),
    ("html-as-jpeg", _from_source("as-jpeg/page.html"), "unsupported_type"),
    ("svg-external-ref", _from_source("typed/" + quote("image/svg+xml", safe="") + "/evil.svg"),
     "unsupported_type"),
]

guard_breaches = []  # loopback cases of this module whose address the guard let through


@pytest.mark.parametrize("name,make,code", FAILING_URL_CASES,
                         ids=[i for i, _, _ in FAILING_URL_CASES])
def test_url_job_fails(hd, hsource, name, make, code):
    if name in OFF_LOOPBACK and guard_breaches:
        pytest.fail(f"not submitted: the address guard already let {guard_breaches} through, "
                    "and this case would then leave loopback")
    port = hsource.httpd.server_address[1]
    url, must_reach, must_not_reach = make(hsource, port)
    job = hd.submit(url=url, width=100)
    # A bounded wait, not a timing assertion: a job that never ends fails here;
    # which limit ended it is the error code asserted below.
    doc = hd.wait(job["id"], timeout=JOB_WAIT)
    context = f"{url} -> {doc}\n{log_lines(hd, job['id'])}"
    if name in SENTINELS and doc.get("error", {}).get("code") != code:
        guard_breaches.append(name)
    assert doc["status"] == "failed", context
    assert doc["error"]["code"] == code, context
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"], context
    assert doc["attempts"] == 1, context
    assert "result" not in doc, context
    with hsource.lock:
        asked = list(hsource.requests)
    if must_reach:
        assert must_reach in asked, f"the allowed first hop was never asked for: {context}"
    if must_not_reach:
        assert not any(p.endswith(must_not_reach) for p in asked), \
            f"the refused address was connected to: {context}"


# ---------------------------------------------------------------------------
# fetch.allow_hosts with a port: the allowed port of a loopback host works with
# allow_private off; another port of the same host keeps the guard, first hop
# or redirect. A daemon of its own (the module's allows 127.0.0.1 on every
# port), and a second source server on another port that must never be asked.


def test_allow_hosts_entry_with_a_port(start_daemon, images, hsource):
    other = SourceServer(images)
    other.start()
    try:
        port = hsource.httpd.server_address[1]
        d = start_daemon(dict(HOSTILE_CONFIG, fetch=dict(HOSTILE_CONFIG["fetch"],
                                                         allow_hosts=f"127.0.0.1:{port}")))
        doc = d.run(url=hsource.url("img/land.jpg"), width=64)
        assert doc["result"]["width"] == 64

        direct = other.url("img/land.jpg")
        redirect = hsource.url("redirect/" + quote(other.url("img/port.jpg"), safe=""))
        for url in (direct, redirect):
            doc = d.wait(d.submit(url=url, width=64)["id"], timeout=JOB_WAIT)
            assert doc["status"] == "failed", (url, doc)
            assert doc["error"]["code"] == "fetch_blocked_address", (url, doc)
            assert "127.0.0.1 (loopback address)" in doc["error"]["message"], doc
        with hsource.lock:
            asked = list(hsource.requests)
        assert path_of(hsource, redirect) in asked, "the allowed first hop was never asked for"
        with other.lock:
            assert other.requests == [], f"the refused port was connected to: {other.requests}"
    finally:
        other.stop()


# ---------------------------------------------------------------------------
# The polyglot: a valid JPEG with PHP/HTML in its metadata and after its EOI.
# It thumbnails, and nothing of the payload or the metadata reaches the output.


def test_polyglot_jpeg_is_thumbnailed_clean(hd, hsource):
    doc = hd.run(url=hsource.url("img/polyglot.jpg"), width=160)
    r = hd.image(doc)
    out = r.content
    assert r.headers["Content-Type"] == "image/jpeg", r.headers
    assert decode_image(out)[:3] == ("jpeg", 160, 100), decode_image(out)
    for needle in (b"<?php", b"<script", b"system(", b"alert(", POLYGLOT_TAIL):
        assert needle not in out, f"{needle!r} is in the thumbnail"
    assert b"Exif\0\0" not in out, "the thumbnail carries an EXIF block"
    assert b"http://ns.adobe.com/xap" not in out and b"x:xmpmeta" not in out, \
        "the thumbnail carries an XMP packet"
    assert b"PolyglotCam" not in out
    with Image.open(io.BytesIO(out)) as img:
        img.load()
        assert "exif" not in img.info, img.info.keys()
        assert "xmp" not in img.info and "XML:com.adobe.xmp" not in img.info, img.info.keys()
    assert out.endswith(b"\xff\xd9"), "bytes after the thumbnail's EOI"


# ---------------------------------------------------------------------------
# Rejected at submit.

GOOD_URL = "http://127.0.0.1:9/a.jpg"  # never fetched: validation fails first


def _nested(depth):
    inner = "1"
    for _ in range(depth):
        inner = '{"a": ' + inner + "}"
    return ('{"url": "' + GOOD_URL + '", "x": ' + inner + "}").encode()


SUBMIT_PARAM_CASES = [
    ("url-file", {"url": "file:///etc/passwd"}, "url"),
    ("url-gopher", {"url": "gopher://127.0.0.1/"}, "url"),
    ("width-0", {"url": GOOD_URL, "width": 0}, "width"),
    ("width-4097", {"url": GOOD_URL, "width": 4097}, "width"),
    ("quality-101", {"url": GOOD_URL, "quality": 101}, "quality"),
    ("fit-x", {"url": GOOD_URL, "fit": "x"}, "fit"),
]


@pytest.mark.parametrize("body,field", [(b, f) for _, b, f in SUBMIT_PARAM_CASES],
                         ids=[i for i, _, _ in SUBMIT_PARAM_CASES])
def test_submit_invalid_param(hd, body, field):
    error_of(hd.post("/v1/thumbnails", json=body), 400, "invalid_param", field)


@pytest.mark.parametrize("body", [b'{"url": ', _nested(100)], ids=["cut", "nested-100-deep"])
def test_submit_invalid_json(hd, body):
    error_of(hd.post("/v1/thumbnails", data=body, headers={"Content-Type": "application/json"}),
             400, "invalid_json")


def _chunks(data, size=16 * 1024):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _over_json():
    return json.dumps({"url": GOOD_URL, "pad": "x" * (MAX_BODY + 40 * 1024)}).encode()


def _over_upload():
    return b"\xff\xd8\xff\xe0" + os.urandom(MAX_BODY + 40 * 1024)


OVER_BODY_CASES = [
    # (id, content type, body maker, chunked)
    ("json-padded", "application/json", _over_json, False),
    ("raw-upload", "image/jpeg", _over_upload, False),
    ("json-chunked", "application/json", _over_json, True),
    ("raw-upload-chunked", "image/jpeg", _over_upload, True),
]


@pytest.mark.parametrize("ctype,make,chunked", [c[1:] for c in OVER_BODY_CASES],
                         ids=[c[0] for c in OVER_BODY_CASES])
def test_body_over_max_body_is_413(hd, ctype, make, chunked):
    body = make()
    assert len(body) > MAX_BODY
    params = {"width": 100} if ctype.startswith("image/") else None
    r = hd.post("/v1/thumbnails", params=params, data=_chunks(body) if chunked else body,
                headers={"Content-Type": ctype})
    error_of(r, 413, "too_large")
    assert r.headers.get("X-Request-Id"), r.headers


def _read_to_eof(sock, deadline):
    """Everything the peer sends until it closes. Returns (data, how) with how
    "eof" (a clean close), "reset", or "timeout"."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, "timeout"
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def test_header_over_max_header_is_400_json(hd):
    big = b"a" * (16 * 1024)
    request = (b"POST /v1/thumbnails HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big +
               b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    with socket.create_connection(("127.0.0.1", hd.port), timeout=HTTP_TIMEOUT) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may answer and close before it has read all of it
        data, how = _read_to_eof(s, time.monotonic() + HTTP_TIMEOUT)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 400 "), data[:500]
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    assert headers.get("content-type", "").startswith("application/json"), headers
    assert headers.get("x-request-id"), headers
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"]), (headers, body)
    err = json.loads(body)["error"]
    assert err["code"] == "bad_request", err
    assert isinstance(err.get("message"), str) and err["message"], err
    assert how == "eof", f"the connection did not close cleanly after the answer ({how})"
    # The same daemon still answers a normal request.
    assert hd.get("/healthz").status_code == 200


# ---------------------------------------------------------------------------
# Connection level: slow-loris.

LORIS_CONNECTIONS = 50
LORIS_CLOSE_WITHIN = 15  # seconds after opening, http.timeout being 3 s


def test_slow_loris_does_not_stop_others(hd, hsource):
    slow_loris(hd, hsource, require_closed=False)


def test_slow_loris_connections_are_closed(hd, hsource):
    slow_loris(hd, hsource, require_closed=True)


def slow_loris(hd, hsource, require_closed):
    line = b"GET /v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    socks, plans = [], []
    closed = {}  # index -> (how, seconds after opening)
    answers = {}  # index -> bytes the daemon sent before closing
    stop = threading.Event()
    lock = threading.Lock()
    try:
        for i in range(LORIS_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", hd.port), timeout=5)
            if i % 2:  # a whole request line, then headers one byte at a time
                s.sendall(line + b"Host: 127.0.0.1\r\n")
                plans.append(b"X-Slow: " + b"a" * 200)
            else:  # the request line itself one byte at a time
                plans.append(line)
            s.setblocking(False)
            socks.append(s)
        opened = time.monotonic()

        def loris():
            sent = [0] * len(socks)
            next_send = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                send_now = now >= next_send
                if send_now:
                    next_send = now + 1.0
                for i, s in enumerate(socks):
                    with lock:
                        if i in closed:
                            continue
                    how = None
                    try:
                        chunk = s.recv(65536)
                        if chunk:
                            answers[i] = answers.get(i, b"") + chunk
                        else:
                            how = "eof"
                    except BlockingIOError:
                        pass
                    except OSError:
                        how = "reset"
                    if how is None and send_now and sent[i] < len(plans[i]):
                        try:
                            s.send(plans[i][sent[i]:sent[i] + 1])
                            sent[i] += 1
                        except BlockingIOError:
                            pass
                        except OSError:
                            how = "reset"
                    if how:
                        with lock:
                            closed[i] = (how, round(time.monotonic() - opened, 1))
                stop.wait(0.1)

        thread = threading.Thread(target=loris, daemon=True)
        thread.start()
        time.sleep(1.5)

        # While they hang on: the daemon serves a normal client.
        assert hd.get("/healthz", timeout=5).status_code == 200
        doc = hd.run(url=hsource.url("img/land.jpg"), width=64)
        assert (doc["result"]["width"], doc["result"]["height"]) == (64, 40)
        assert hd.get("/healthz", timeout=5).status_code == 200

        # And it closes them after http.timeout, though each keeps sending.
        deadline = opened + LORIS_CLOSE_WITHIN
        while time.monotonic() < deadline:
            with lock:
                if len(closed) == len(socks):
                    break
            time.sleep(0.1)
        stop.set()
        thread.join(5)
        with lock:
            still_open = [i for i in range(len(socks)) if i not in closed]
            report = dict(closed)
        assert not (require_closed and still_open), (
            f"{len(still_open)} of {len(socks)} slow-loris connections still open "
            f"{LORIS_CLOSE_WITHIN}s after opening (http.timeout = {HTTP_TIMEOUT_S}s); "
            f"closed: {report}; answers: "
            f"{ {i: a[:200] for i, a in answers.items()} }")
    finally:
        stop.set()
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# After the whole table (this test runs last in the module): the daemon serves,
# and nothing crashed on the way.


def test_zz_daemon_still_serves_and_nothing_crashed(hd, hsource):
    doc = hd.run(url=hsource.url("img/land.jpg"), width=64)
    assert (doc["result"]["width"], doc["result"]["height"]) == (64, 40)
    up = hd.post("/v1/thumbnails", params={"width": 50}, data=unique_jpeg(160, 100),
                 headers={"Content-Type": "image/jpeg"})
    assert up.status_code == 202, up.text
    assert hd.wait(up.json()["id"])["status"] == "done"
    assert hd.get("/healthz").status_code == 200
    assert hd.get("/readyz").status_code == 200
    # No child died on the way: the same processes as when the daemon started
    # (a child that died is replaced by a new pid; Redis has no restart
    # counter), and the master counted no restart.
    now = hd.children()
    for kind in ("http", "worker", "delivery", "redis"):
        assert sorted(now[kind]) == sorted(hd.first_children[kind]), (kind, hd.first_children, now)
        if kind != "redis":
            assert hd.metric(f'thumbnailed_child_restarts_total{{kind="{kind}"}}') == 0, kind
    # A sanitizer report (the -DSANITIZE=ON build) is only ever in the log.
    log = hd.log_path.read_text(errors="replace")
    bad = [line for line in log.splitlines() if any(marker in line for marker in SANITIZER_MARKERS)]
    assert not bad, "\n".join(bad)
