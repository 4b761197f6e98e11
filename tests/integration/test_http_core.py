"""Conformance of the HTTP/1.1 layer, over raw sockets: pipelining, requests in
pieces, keep-alive and close, the shape of every response, Expect:
100-continue, request smuggling forms, header and body limits, chunked bodies,
and connection hoarding (per-address cap, head deadline, body rate,
http.max_connections, running out of file descriptors).

Each group of tests runs against a daemon configured for it: three
module-scoped daemons for the request-level tests, and one daemon per
hoarding test (they change the daemon's state: connections held, a lowered
file limit). Every socket has a timeout; no test waits more than about 20 s."""

import datetime
import json
import os
import re
import resource
import select
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import pytest

from conftest import DaemonFactory
from helpers import wait_for

IO_TIMEOUT = 5  # seconds for any one response, or for a connection to close
BAD_ID = "A" * 26  # not a job id (ids are 22 characters): 404 without Redis
MAX_HEADER = 2048
MAX_BODY = 4096

HEADER_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                         r"\d\d:\d\d:\d\d GMT")
REQUEST_ID = re.compile(r"[0-9a-f]{16}")
STATUS_LINE = re.compile(r"HTTP/1\.1 (\d{3}) ([^\r\n]+)")


# ---------------------------------------------------------------------------
# Responses: parsed from bytes, honouring Content-Length.


@dataclass
class Response:
    raw_head: bytes  # the status line and headers, up to and including the blank line
    status_line: str
    status: int
    headers: list = field(default_factory=list)  # (name, value) in the order sent
    body: bytes = b""

    def header(self, name):
        """The value of the header name (case-insensitive), None when absent;
        a header sent twice fails the test."""
        values = self.headers_named(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {self.raw_head!r}"
        return values[0] if values else None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


class Incomplete(Exception):
    """The bytes so far do not hold a whole response."""


def has_body(status, head):
    return not (head or 100 <= status < 200 or status in (204, 304))


def parse_response(buf, head=False, at_eof=False):
    """The first response in buf and the bytes after it. head: it answers a
    HEAD (no body). at_eof: the peer closed, so a response without
    Content-Length ends at the end of buf. Raises Incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        raise Incomplete
    raw_head, rest = buf[:end + 4], buf[end + 4:]
    lines = raw_head[:-4].decode("latin-1").split("\r\n")
    match = STATUS_LINE.fullmatch(lines[0])
    assert match, f"not an HTTP/1.1 status line: {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon and name and name == name.strip(), f"bad header line {line!r}"
        headers.append((name, value.strip()))
    r = Response(raw_head, lines[0], int(match.group(1)), headers)
    if not has_body(r.status, head):
        return r, rest
    length = r.header("Content-Length")
    if length is not None:
        assert length.isdigit(), f"Content-Length {length!r}"
        if len(rest) < int(length):
            raise Incomplete
        r.body = rest[:int(length)]
        return r, rest[int(length):]
    if not at_eof:
        raise Incomplete
    r.body = rest
    return r, b""


def parse_all(data):
    """Every response in data (what a connection sent before it closed); a
    response cut short fails the test."""
    out = []
    while data:
        try:
            r, data = parse_response(data, at_eof=True)
        except Incomplete:
            raise AssertionError(f"a response cut short: {data[:300]!r}") from None
        out.append(r)
    return out


def error_of(r, status, code=None):
    """Asserts r is the JSON error document with that status (and code, when
    given); returns the error object."""
    assert r.status == status, f"expected {status}, got {r.status_line}: {r.body[:300]!r}"
    assert (r.header("Content-Type") or "").startswith("application/json"), r.raw_head
    err = r.json().get("error")
    assert isinstance(err, dict), r.body
    assert isinstance(err.get("code"), str) and err["code"], err
    assert isinstance(err.get("message"), str) and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_well_formed(r):
    """The headers every response carries: Date (IMF-fixdate), X-Request-Id
    (16 lowercase hex digits), Content-Length (but for 1xx, 204, 304)."""
    assert STATUS_LINE.fullmatch(r.status_line), r.status_line
    date = r.header("Date")
    assert date and HEADER_DATE.fullmatch(date), f"Date {date!r}"
    when = datetime.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")
    assert when.strftime("%a") == date[:3], f"Date {date!r}: wrong day of the week"
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs(now - when) < datetime.timedelta(days=1), f"Date {date!r}, now {now}"
    rid = r.header("X-Request-Id")
    assert rid and REQUEST_ID.fullmatch(rid), f"X-Request-Id {rid!r}"
    if has_body(r.status, False):
        assert r.header("Content-Length") is not None, r.raw_head


# ---------------------------------------------------------------------------
# A client connection: raw bytes out, responses in.


class Conn:
    def __init__(self, daemon, source=None, timeout=IO_TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", daemon.port))
        self.timeout = timeout
        self.buf = b""  # bytes received and not yet parsed
        self.closed = None  # "eof" or "reset" once the peer closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, data):
        """Sends all of data; False when the peer closed or reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_bytewise(self, data, pause=0.001):
        """One send per byte, pause seconds apart."""
        for i in range(len(data)):
            assert self.send(data[i:i + 1]), f"closed after {i} of {len(data)} bytes"
            time.sleep(pause)

    def _take(self, wait):
        """Receives what arrives within wait seconds (0: what is there) into
        buf; notes a close in self.closed."""
        if self.closed or not select.select([self.sock], [], [], wait)[0]:
            return
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.closed = "reset"
            return
        if chunk:
            self.buf += chunk
        else:
            self.closed = "eof"

    def response(self, head=False, timeout=None):
        """The next response; fails when none is whole within timeout."""
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                r, self.buf = parse_response(self.buf, head)
                return r
            except Incomplete:
                pass
            left = deadline - time.monotonic()
            assert left > 0, f"no whole response within {timeout}s; got {self.buf[:300]!r}"
            assert not self.closed, f"{self.closed} before a whole response: {self.buf[:300]!r}"
            self._take(left)

    def poll(self):
        """Takes in what has arrived, without waiting. Returns "eof" or "reset"
        once the peer closed, else None."""
        before = None
        while not self.closed and before != len(self.buf):
            before = len(self.buf)
            self._take(0)
        return self.closed

    def until_close(self, timeout=IO_TIMEOUT):
        """Everything not yet parsed, until the peer closes. Returns (data, how),
        how being "eof" (recv returned b""), "reset", or "timeout"."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.buf, "timeout"
            self._take(left)
        return self.buf, self.closed

    def end_writing(self):
        """No more bytes from us: lets a server that lingers reading finish."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already reset


def request(method, path, headers=(), body=b"", version="1.1"):
    """The bytes of one request; Host is always sent."""
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers]
    if body and not any(h.lower().startswith(("content-length:", "transfer-encoding:"))
                        for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def submit_body():
    """A valid submit: a job that fails later (nothing listens on port 1). Its
    URL is unique, so the answer is a new job (202), never a repeat (200)."""
    return json.dumps({"url": f"http://127.0.0.1:1/x.jpg?u={uuid.uuid4().hex}",
                       "width": 10}).encode()


def chunked(*pieces):
    """A chunked body of those pieces, with its last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


HEALTHZ = request("GET", "/healthz")
JSON = "Content-Type: application/json"


def get_healthz(daemon, source=None, timeout=IO_TIMEOUT):
    """GET /healthz on a fresh connection; returns the response."""
    with Conn(daemon, source, timeout) as c:
        assert c.send(HEALTHZ)
        return c.response(timeout=timeout)


def serves(daemon, source=None, timeout=1):
    """Whether GET /healthz is answered 200 within timeout (no answer, a
    refused or reset connection: False), for polling with wait_for."""
    try:
        return get_healthz(daemon, source, timeout).status == 200
    except (AssertionError, OSError):
        return False


def assert_healthy(daemon):
    r = get_healthz(daemon)
    assert r.status == 200 and r.json() == {"status": "ok"}, (r.status_line, r.body)


def refused_then_closed(conn, status, code=None):
    """After a request that must be refused: our side stops writing; the
    server's one answer is the error (status, code), then it closes."""
    conn.end_writing()
    data, how = conn.until_close()
    answers = parse_all(data)
    assert len(answers) == 1, [a.status_line for a in answers] or data[:300]
    error_of(answers[0], status, code)
    assert how == "eof", f"the connection did not close after the answer ({how})"
    return answers[0]


# ---------------------------------------------------------------------------
# The daemons, and what the hoarding tests read of their http child in /proc.


# One worker, one attempt: the jobs submitted here fail at once, quietly.
BASE = {"daemon": {"log_level": "info"}, "worker": {"processes": "1", "max_attempts": "1"}}


def config(**http):
    out = {s: dict(k) for s, k in BASE.items()}
    out["http"] = {"processes": "1", **http}
    return out


def http_child(daemon):
    """The pid of the daemon's one http child."""
    kids = wait_for("one http child", lambda: daemon.children()["http"], 10)
    assert len(kids) == 1, kids
    return kids[0]


def module_daemon(thumbnailed_bin, tmp_path_factory, overrides):
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    d = factory(overrides)
    d.http_pid = http_child(d)
    return factory, d


@pytest.fixture(scope="module")
def core(thumbnailed_bin, tmp_path_factory):
    """Small limits, a generous timeout: the request-level tests."""
    factory, d = module_daemon(thumbnailed_bin, tmp_path_factory,
                               config(max_header="2K", max_body="4K", timeout="10s"))
    yield d
    factory.stop_all()


@pytest.fixture(scope="module")
def paced(thumbnailed_bin, tmp_path_factory):
    """http.timeout = 2s: the head deadline."""
    factory, d = module_daemon(thumbnailed_bin, tmp_path_factory, config(timeout="2s"))
    yield d
    factory.stop_all()


@pytest.fixture(scope="module")
def roomy(thumbnailed_bin, tmp_path_factory):
    """The default http.max_body and a long http.timeout: the body rate."""
    factory, d = module_daemon(thumbnailed_bin, tmp_path_factory, config(timeout="30s"))
    yield d
    factory.stop_all()


def fd_targets(pid):
    """What each open file descriptor of pid points at."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return out


def socket_count(pid):
    return sum(1 for t in fd_targets(pid) if t.startswith("socket:"))


def cpu_seconds(pid):
    """User plus system CPU time pid has used, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hold(daemon, pid, n, first=b""):
    """n connections from 127.0.0.1, each having sent first, once the http
    child holds every one of them (its socket count went up by n)."""
    before = socket_count(pid)
    conns = []
    for _ in range(n):
        c = Conn(daemon)
        if first:
            assert c.send(first)
        conns.append(c)
    wait_for(f"the http child holding {n} more connections",
             lambda: socket_count(pid) >= before + n, 10)
    return conns


def answered(conns, wait):
    """The indexes of conns that received a byte (or were closed) within wait seconds."""
    deadline = time.monotonic() + wait
    out = set()
    while True:
        for i, c in enumerate(conns):
            if i not in out and (c.poll() or c.buf):
                out.add(i)
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        time.sleep(min(0.05, left))


# ---------------------------------------------------------------------------
# 1. Pipelining


def test_100_pipelined_requests_are_answered_in_order(core):
    with Conn(core) as c:
        assert c.send(HEALTHZ * 100)
        answers = [c.response() for _ in range(100)]
        assert c.poll() is None and c.buf == b"", c.buf[:300]
    ids = set()
    for i, r in enumerate(answers):
        assert r.status == 200, (i, r.status_line)
        assert r.header("Content-Length") == str(len(r.body)), (i, r.raw_head)
        assert r.json() == {"status": "ok"}, (i, r.body)
        rid = r.header("X-Request-Id")
        assert rid and REQUEST_ID.fullmatch(rid), (i, rid)
        ids.add(rid)
    assert len(ids) == 100, f"{100 - len(ids)} repeated X-Request-Id values"


def test_pipelined_mixed_requests_keep_their_order(core):
    """Requests of different routes (one that needs Redis among them, answered
    later than the others would be) come back in the order they were sent."""
    plan = []
    for _ in range(5):
        plan += [(request("GET", "/healthz"), False, 200),
                 (request("GET", f"/v1/thumbnails/{BAD_ID}"), False, 404),
                 (request("HEAD", "/healthz"), True, 200),
                 (request("POST", "/v1/thumbnails", [JSON], submit_body()), False, 202),
                 (request("GET", "/no/such/route"), False, 404),
                 (request("DELETE", "/healthz"), False, 405)]
    with Conn(core) as c:
        assert c.send(b"".join(req for req, _, _ in plan))
        statuses = [c.response(head=head).status for _, head, _ in plan]
    assert statuses == [status for _, _, status in plan]


# ---------------------------------------------------------------------------
# 2. A request in pieces


def test_post_sent_byte_by_byte_is_answered(core):
    with Conn(core) as c:
        c.send_bytewise(request("POST", "/v1/thumbnails", [JSON], submit_body()))
        r = c.response()
    assert r.status == 202, (r.status_line, r.body)
    assert r.json()["id"], r.body


def test_get_sent_byte_by_byte_without_pause_is_answered(core):
    with Conn(core) as c:
        c.send_bytewise(HEALTHZ, pause=0)
        r = c.response()
    assert r.status == 200 and r.json() == {"status": "ok"}, (r.status_line, r.body)


# ---------------------------------------------------------------------------
# 3. Keep-alive and close


def test_http10_without_keep_alive_is_closed_after_the_answer(core):
    with Conn(core) as c:
        assert c.send(request("GET", "/healthz", version="1.0"))
        r = c.response()
        data, how = c.until_close()
    assert r.status == 200, r.status_line
    assert (data, how) == (b"", "eof"), (data[:300], how)


def test_http10_keep_alive_keeps_the_connection(core):
    keep = request("GET", "/healthz", ["Connection: keep-alive"], version="1.0")
    with Conn(core) as c:
        assert c.send(keep)
        first = c.response()
        assert (first.header("Connection") or "").lower() == "keep-alive", first.raw_head
        assert c.send(keep)
        second = c.response()
    assert (first.status, second.status) == (200, 200)


def test_http11_connection_close_is_closed_after_the_answer(core):
    with Conn(core) as c:
        assert c.send(request("GET", "/healthz", ["Connection: close"]))
        r = c.response()
        data, how = c.until_close()
    assert r.status == 200, r.status_line
    assert (data, how) == (b"", "eof"), (data[:300], how)


def test_http11_keeps_the_connection_by_default(core):
    with Conn(core) as c:
        assert c.send(HEALTHZ)
        first = c.response()
        assert c.poll() is None, "closed after the first answer"
        assert c.send(request("GET", f"/v1/thumbnails/{BAD_ID}"))
        second = c.response()
    assert first.status == 200, first.status_line
    error_of(second, 404, "not_found")


# ---------------------------------------------------------------------------
# 4. What every response carries

SHAPES = [
    ("get-healthz", request("GET", "/healthz"), False, 200),
    ("head-healthz", request("HEAD", "/healthz"), True, 200),
    ("not-an-id", request("GET", f"/v1/thumbnails/{BAD_ID}"), False, 404),
    ("no-route", request("GET", "/no/such/route"), False, 404),
    ("method-not-allowed", request("DELETE", "/healthz"), False, 405),
    ("invalid-json", request("POST", "/v1/thumbnails", [JSON], b"{"), False, 400),
    ("http10", request("GET", "/healthz", version="1.0"), False, 200),
]


@pytest.mark.parametrize("req,head,status", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_response_carries_the_common_headers(core, req, head, status):
    with Conn(core) as c:
        assert c.send(req)
        r = c.response(head=head)
    assert r.status == status, r.status_line
    assert_well_formed(r)


def test_submit_response_carries_the_common_headers(core):
    with Conn(core) as c:
        assert c.send(request("POST", "/v1/thumbnails", [JSON], submit_body()))
        r = c.response()
    assert r.status == 202, (r.status_line, r.body)
    assert_well_formed(r)


def test_head_has_the_content_length_of_get_and_no_body(core):
    """HEAD then GET on one connection: the GET's answer starts right after the
    HEAD's headers, so the HEAD sent no body."""
    with Conn(core) as c:
        assert c.send(request("HEAD", "/healthz") + HEALTHZ)
        head = c.response(head=True)
        get = c.response()
    assert (head.status, get.status) == (200, 200), (head.status_line, get.status_line)
    assert get.json() == {"status": "ok"}, get.body
    assert head.header("Content-Length") == get.header("Content-Length") == str(len(get.body))


# ---------------------------------------------------------------------------
# 5. Expect


def test_expect_100_continue_is_answered_before_the_body(core):
    body = submit_body()
    with Conn(core) as c:
        assert c.send(request("POST", "/v1/thumbnails",
                              [JSON, f"Content-Length: {len(body)}", "Expect: 100-continue"]))
        interim = c.response()
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n", interim.raw_head
        assert c.send(body)
        final = c.response()
    assert final.status == 202, (final.status_line, final.body)
    assert final.json()["id"], final.body


def test_expect_100_continue_over_max_body_is_413_without_100(core):
    with Conn(core) as c:
        assert c.send(request("POST", "/v1/thumbnails",
                              [JSON, f"Content-Length: {16 * MAX_BODY}",
                               "Expect: 100-continue"]))
        r = c.response()
        assert r.status != 100, "100 Continue for a body over http.max_body"
        error_of(r, 413, "too_large")
        c.end_writing()
        data, how = c.until_close()
    assert (data, how) == (b"", "eof"), (data[:300], how)


OTHER_EXPECT = [
    ("post-with-body", request("POST", "/v1/thumbnails", [JSON, "Expect: something-else"],
                               submit_body())),
    ("get", request("GET", "/healthz", ["Expect: something-else"])),
]


@pytest.mark.parametrize("req", [e[1] for e in OTHER_EXPECT], ids=[e[0] for e in OTHER_EXPECT])
def test_expect_other_than_100_continue_is_417(core, req):
    with Conn(core) as c:
        assert c.send(req)
        error_of(c.response(), 417, "expectation_failed")


# ---------------------------------------------------------------------------
# 6. Smuggling forms: refused, the connection closed, the bytes after never
# answered as a request of their own.

SMUGGLED = request("GET", "/healthz")

SMUGGLING = [
    ("content-length-and-chunked",
     b"POST /v1/thumbnails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"),
    ("chunked-and-content-length",
     b"POST /v1/thumbnails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "bad_request"),
    ("two-content-lengths",
     b"POST /v1/thumbnails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}   \n", 400, "bad_request"),
    ("obs-fold",
     b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", 400, "bad_request"),
    ("bare-lf", b"GET /healthz HTTP/1.1\nHost: x\n\n", 400, "bad_request"),
    ("bare-lf-in-one-header",
     b"GET /healthz HTTP/1.1\r\nHost: x\nX-Other: y\r\n\r\n", 400, "bad_request"),
    ("absolute-form", b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ("authority-form", b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 400, "bad_request"),
    ("transfer-encoding-gzip",
     b"POST /v1/thumbnails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
]


@pytest.mark.parametrize("req,status,code", [s[1:] for s in SMUGGLING],
                         ids=[s[0] for s in SMUGGLING])
def test_smuggling_form_is_refused_and_closed(core, req, status, code):
    with Conn(core) as c:
        assert c.send(req + SMUGGLED)
        refused_then_closed(c, status, code)
    assert_healthy(core)


# ---------------------------------------------------------------------------
# 7. Header and body limits

OVER_HEADER = [
    ("one-big-header", ["X-Big: " + "a" * (2 * MAX_HEADER)]),
    ("many-headers", [f"X-Many-{i}: " + "b" * 40 for i in range(2 * MAX_HEADER // 40)]),
]


@pytest.mark.parametrize("headers", [h[1] for h in OVER_HEADER], ids=[h[0] for h in OVER_HEADER])
def test_header_block_over_max_header_is_400(core, headers):
    with Conn(core) as c:
        assert c.send(request("GET", "/healthz", headers) + SMUGGLED)
        refused_then_closed(c, 400, "bad_request")


def send_while_reading(conn, pieces):
    """Sends each piece, taking in what the server answers meanwhile; stops
    sending once the server closed or reset. Returns how many were sent."""
    sent = 0
    for piece in pieces:
        if conn.poll() or not conn.send(piece):
            break
        sent += 1
    return sent


def test_body_over_max_body_by_content_length_is_413_while_sending(core):
    """The client sends its whole body (16 times http.max_body) and still reads
    the answer: the server reads and drops the rest before it closes."""
    size = 16 * MAX_BODY
    with Conn(core, timeout=10) as c:
        assert c.send(request("POST", "/v1/thumbnails", [JSON, f"Content-Length: {size}"]))
        send_while_reading(c, [b"x" * 4096] * (size // 4096))
        refused_then_closed(c, 413, "too_large")


def test_chunked_body_over_max_body_is_413(core):
    with Conn(core, timeout=10) as c:
        assert c.send(request("POST", "/v1/thumbnails", [JSON, "Transfer-Encoding: chunked"]))
        pieces = [b"400\r\n" + b"x" * 1024 + b"\r\n"] * (4 * MAX_BODY // 1024) + [b"0\r\n\r\n"]
        send_while_reading(c, pieces)
        refused_then_closed(c, 413, "too_large")


# ---------------------------------------------------------------------------
# 8. A chunked request body


def test_chunked_submit_in_three_chunks_is_202(core):
    body = submit_body()
    thirds = [body[:10], body[10:25], body[25:]]
    with Conn(core) as c:
        assert c.send(request("POST", "/v1/thumbnails", [JSON, "Transfer-Encoding: chunked"]))
        for piece in thirds:  # each chunk its own send
            assert c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.05)
        assert c.send(b"0\r\n\r\n")
        r = c.response()
    assert r.status == 202, (r.status_line, r.body)
    assert r.json()["id"], r.body


def test_chunked_body_with_extensions_and_trailer_is_202(core):
    body = submit_body()
    wire = (b"%x;name=value\r\n%s\r\n" % (len(body), body)) + b"0\r\nX-Trailer: t\r\n\r\n"
    with Conn(core) as c:
        assert c.send(request("POST", "/v1/thumbnails", [JSON, "Transfer-Encoding: chunked"])
                      + wire)
        r = c.response()
    assert r.status == 202, (r.status_line, r.body)


# ---------------------------------------------------------------------------
# 9. Hoarding


def timeout_or_close(conn):
    """Whatever conn was sent before being cut must be a 408 request_timeout, or nothing."""
    answers = parse_all(conn.buf)
    assert len(answers) <= 1, [a.status_line for a in answers]
    if answers:
        error_of(answers[0], 408, "request_timeout")


def test_per_address_cap(start_daemon):
    """http.max_connections_per_client = 8: a 9th connection from 127.0.0.1 is
    refused (429 too_many_connections, or closed), 127.0.0.2 is served."""
    d = start_daemon(config(max_connections_per_client="8", timeout="30s"))
    pid = http_child(d)
    held = hold(d, pid, 8, first=b"GET /hea")
    try:
        with Conn(d) as ninth:
            ninth.send(HEALTHZ)  # may fail: the server may have closed it already
            data, how = ninth.until_close()
        answers = parse_all(data)
        assert len(answers) <= 1, [a.status_line for a in answers]
        if answers:
            assert answers[0].status != 200, "the 9th connection from 127.0.0.1 was served"
            error_of(answers[0], 429, "too_many_connections")
        assert how in ("eof", "reset"), f"the 9th connection was not closed ({how})"
        r = get_healthz(d, source="127.0.0.2")
        assert r.status == 200, r.status_line
    finally:
        for c in held:
            c.close()
    wait_for("127.0.0.1 served again", lambda: serves(d), 5)
    assert http_child(d) == pid
    # /metrics counts the refusal (the children add theirs once a second).
    wait_for("the refusal in /metrics",
             lambda: (d.metric("thumbnailed_http_connections_refused_total") or 0) >= 1, 5)


def test_request_line_dripped_is_cut_at_the_head_deadline(paced):
    """http.timeout = 2s: one byte of a request line every 0.5 s is cut within
    a few seconds of its first byte; another client is served meanwhile."""
    line = b"GET /healthz?" + b"a" * 60 + b" HTTP/1.1\r\n"  # 42 s of bytes
    served = False
    with Conn(paced) as slow:
        assert slow.send(line[:1])
        first, sent, how = time.monotonic(), 1, None
        while how is None and time.monotonic() - first < 8:
            time.sleep(0.5)
            how = slow.poll()
            if how is None and not slow.send(line[sent:sent + 1]):
                how = "send failed"
            sent += 1
            if sent == 3:
                served = get_healthz(paced).status == 200
        cut_after = time.monotonic() - first
        timeout_or_close(slow)
    assert served, "another client was not served while the slow one dripped"
    assert how and cut_after < 8, (
        f"the dripped connection was still open {cut_after:.1f}s after its first byte")


def test_body_trickle_is_cut_by_the_rate_window(roomy):
    """Content-Length 200000: 100000 bytes at once, then 1 byte a second. Under
    1024 bytes/s over 10 s, the server cuts it once the fast part left the
    window; while the fast part is in it, the connection stays."""
    size = 200000
    with Conn(roomy, timeout=10) as c:
        assert c.send(request("POST", "/v1/thumbnails?width=10",
                              ["Content-Type: image/jpeg", f"Content-Length: {size}"]))
        assert c.send(b"\xff" * (size // 2))
        fast_done = time.monotonic()
        how = None
        while how is None and time.monotonic() - fast_done < 18:
            time.sleep(1)
            how = c.poll()
            if how is None and not c.send(b"\xff"):
                how = "send failed"
        cut_after = time.monotonic() - fast_done
        timeout_or_close(c)
    assert how, f"the trickled body was still being read {cut_after:.1f}s after the fast part"
    assert cut_after > 5, (
        f"cut {cut_after:.1f}s after the fast part, while 100000 bytes were in the 10 s window")
    assert_healthy(roomy)


def test_max_connections_leaves_the_rest_in_the_backlog(start_daemon):
    """http.max_connections = 50: of 60 connections, 10 are left unaccepted (a
    request on them gets no answer); closing a held one lets the first waiting
    one in. Once answered, that one is an idle keep-alive connection, which
    gives way to the next waiting one (nginx's reusable connections): the
    child never holds more than 50."""
    d = start_daemon(config(max_connections="50", max_connections_per_client="1000",
                            timeout="30s"))
    pid = http_child(d)
    sockets_before = socket_count(pid)
    held = hold(d, pid, 50)
    waiting = [Conn(d) for _ in range(10)]
    try:
        for c in waiting:
            assert c.send(HEALTHZ)
        assert answered(waiting, 1) == set(), "a connection over http.max_connections was answered"
        held.pop(0).close()
        r = waiting[0].response()
        assert r.status == 200, r.status_line
        # Each answered one makes room for the next, one at a time.
        for c in waiting[1:]:
            assert c.response().status == 200
            assert socket_count(pid) <= sockets_before + 50
    finally:
        for c in held + waiting:
            c.close()
    wait_for("served again", lambda: serves(d), 5)
    assert http_child(d) == pid


def test_out_of_file_descriptors_backs_off(start_daemon):
    """The http child limited to 64 files, with 100 connections piling up:
    accept() fails with EMFILE, and the child backs off instead of spinning
    (little CPU, few log lines); once they close it serves again."""
    d = start_daemon(config(timeout="30s"))
    pid = http_child(d)
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=64:64"], check=True, timeout=10)
    with open(f"/proc/{pid}/limits") as f:
        limit = [line for line in f if line.startswith("Max open files")]
    assert limit and limit[0].split()[3:5] == ["64", "64"], limit
    log_before = d.log_path.read_bytes().count(b"\n")
    conns = []
    try:
        for _ in range(100):
            conns.append(Conn(d))
        wait_for("the http child at its file limit", lambda: len(fd_targets(pid)) >= 56, 10)
        cpu_before = cpu_seconds(pid)
        time.sleep(3)
        cpu = cpu_seconds(pid) - cpu_before
        logged = d.log_path.read_bytes().count(b"\n") - log_before
        assert cpu < 0.5, f"{cpu:.2f}s of CPU in 3 s at EMFILE: the child spins"
        assert logged <= 20, f"{logged} log lines at EMFILE\n{d.log()}"
    finally:
        for c in conns:
            c.close()
    wait_for("served again", lambda: serves(d), 10)
    assert http_child(d) == pid


def test_2000_idle_connections_are_held_at_max_connections(start_daemon):
    """http.max_connections = 100 and 2000 idle connections: the child holds at
    most 100 (its fds stay under 100 + 40); with the unaccepted ones gone and
    one held one closed, a fresh client is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # 2000 when the hard limit allows it (it is 20000 on the CI machine), fewer if not.
    total = min(2000, hard - 100)
    assert total > 200, f"RLIMIT_NOFILE hard limit {hard}: too low for this test"
    d = start_daemon(config(max_connections="100", max_connections_per_client="5000",
                            timeout="30s"))
    pid = http_child(d)
    held = hold(d, pid, 100)
    others = []
    try:
        for _ in range(total - 100):  # non-blocking: past the backlog a connect waits
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", d.port))
            others.append(s)
        most = 0
        for _ in range(20):
            most = max(most, len(fd_targets(pid)))
            time.sleep(0.1)
        assert most <= 100 + 40, f"the http child had {most} files open"
        for s in others:
            s.close()
        others = []
        held.pop(0).close()
        r = get_healthz(d, timeout=8)
        assert r.status == 200, r.status_line
    finally:
        for c in held:
            c.close()
        for s in others:
            s.close()
    wait_for("served again", lambda: serves(d), 5)
    assert http_child(d) == pid


# ---------------------------------------------------------------------------
# 10. Afterwards: the module's daemons serve, with the http child they started with.


def test_zz_daemons_still_serve(core, paced, roomy):
    for d in (core, paced, roomy):
        assert_healthy(d)
        assert http_child(d) == d.http_pid, "the http child was replaced: it died"
