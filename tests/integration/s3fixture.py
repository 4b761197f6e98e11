"""The suite's S3-compatible store: s3rver (npm, pinned by tests/s3/package.json)
on a loopback port of its own, behind a proxy in the test process that checks
every request's SigV4 signature as S3 does (sigv4.py; s3rver checks none) and
then forwards it to s3rver. Clients (the daemon, curl, S3Store's own methods)
talk to the proxy only: S3Store.endpoint.

Environment: TH_S3RVER, the path of s3rver's CLI (node_modules/s3rver/bin/s3rver.js),
which ctest sets (tests/s3, the s3.npm_ci fixture installs it); node on PATH."""

import http.client
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import namedtuple
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import sigv4

START_TIMEOUT = 30  # seconds, for s3rver to say it listens
STOP_TIMEOUT = 10  # seconds, for s3rver to exit after SIGTERM
UPSTREAM_TIMEOUT = 30  # seconds, for one exchange between the proxy and s3rver
CLIENT_TIMEOUT = 10  # seconds, for one request of S3Store's own client
IDLE_TIMEOUT = 120  # seconds a keep-alive connection to the proxy may stay idle
REBIND_TIMEOUT = 5  # seconds restore() retries binding the proxy's port
MAX_PAGES = 1000  # ListObjectsV2 pages list() follows at most
MAX_DRAINED = 64 * 1024 * 1024  # bytes of a refused chunked body read before the proxy hangs up

# One request the proxy saw: path and query as sent (percent-encoded), the status answered.
Request = namedtuple("Request", "method path query status")
# An answer to S3Store's own client; headers {lower-case name: value}.
Response = namedtuple("Response", "status headers body")

# Headers of one hop only: neither forwarded to s3rver nor back to the client.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade", "expect"}


def missing():
    """What keeps the store from starting here, as a sentence saying what to do,
    or None when TH_S3RVER names s3rver's CLI and node is on PATH."""
    cli = os.environ.get("TH_S3RVER")
    if not cli:
        return ("TH_S3RVER is not set: run the test through ctest (the s3.npm_ci fixture "
                "installs s3rver into the build tree and ctest sets TH_S3RVER), or `npm ci` "
                "in a copy of tests/s3 and set TH_S3RVER=<there>/node_modules/s3rver/bin/s3rver.js")
    if not os.path.isfile(cli):
        return (f"TH_S3RVER={cli} does not exist: run `ctest -R s3.npm_ci` (it needs the npm "
                "registry) or the test through ctest, which runs it first")
    if not shutil.which("node"):
        return "node is not on PATH: install Node.js (scripts/dev.sh installs Debian's nodejs)"
    return None


class S3ClientError(Exception):
    """A request of S3Store's own client got an answer it did not expect."""

    def __init__(self, method, target, response):
        self.response = response
        super().__init__(f"{method} {target}: {response.status} "
                         f"{response.body[:2000].decode(errors='replace')}")


def error_fields(body):
    """{element: text} of an S3 error document (Code, Message, ...); {} if it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return {}
    if _local(root.tag) != "Error":
        return {}
    return {_local(child.tag): child.text or "" for child in root}


def _local(tag):
    """An XML tag without its namespace (s3rver's ListBucketResult has a wrong one)."""
    return tag.rsplit("}", 1)[-1]


class S3Store:
    """s3rver with one bucket in directory, behind the verifying proxy.

    endpoint        http://127.0.0.1:PORT, the proxy (path style: /BUCKET/KEY)
    vhost_endpoint  http://BUCKET.localhost:PORT, the same proxy addressed virtual-host
                    style (Host: BUCKET.localhost:PORT, path /KEY)
    bucket, region, access_key, secret_key   what a client signs with
    requests        [Request(method, path, query, status)] the proxy saw, in order
                    (a copy, safe to read while requests arrive); clear_requests()
    outage("refuse") the proxy's port refuses connections (open ones are cut);
    outage("503")   every request is answered 503 SlowDown; restore() ends either.
    start(), stop()
    list(prefix), get(key), head(key), put(key, data, content_type), delete(key)
                    the suite's own client: real S3 requests, signed with sigv4.sign,
                    through the proxy; request() signs and sends any other, send()
                    sends one as given (unsigned, or signed and then altered).

    The proxy answers as S3 does (XML <Error> documents): 403 for a missing,
    malformed or wrong signature, 400 for a body that is not what
    x-amz-content-sha256 or Content-MD5 says, 411 for a body without
    Content-Length (chunked), then whatever s3rver answers."""

    ACCESS_KEY = "S3RVER"  # s3rver's built-in account
    SECRET_KEY = "S3RVER"
    REGION = "us-east-1"

    def __init__(self, directory, bucket="thumbs"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "s3rver.log"
        self.bucket = bucket
        self.region = self.REGION
        self.access_key = self.ACCESS_KEY
        self.secret_key = self.SECRET_KEY
        self.proc = None
        self.upstream_port = None  # s3rver's own port
        self.port = None  # the proxy's
        self.endpoint = None
        self.vhost_endpoint = None
        self.mode = None  # None, "refuse" or "503"
        self._log = None
        self._httpd = None
        self._lock = threading.Lock()
        self._requests = []
        self._connections = set()  # sockets of the proxy's open client connections

    # -- life ------------------------------------------------------------------

    def start(self):
        """Starts s3rver (the bucket created) and the proxy; returns self. Raises
        RuntimeError, with s3rver's log, when s3rver does not start."""
        problem = missing()
        if problem:
            raise RuntimeError(problem)
        self._log = open(self.log_path, "ab")
        # --port 0: s3rver picks a free port and prints it, which also says it is ready.
        # --openssl-legacy-provider: s3rver makes ListObjectsV2 continuation tokens with
        # DES, which OpenSSL 3 only has in its legacy provider (else a truncated listing
        # is a 500 InternalError).
        self.proc = subprocess.Popen(
            ["node", "--openssl-legacy-provider", os.environ["TH_S3RVER"],
             "--directory", str(self.data_dir), "--address", "127.0.0.1", "--port", "0",
             "--configure-bucket", self.bucket, "--silent"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while self.upstream_port is None:
                found = re.search(rb"S3rver listening on 127\.0\.0\.1:(\d+)",
                                  self.log_path.read_bytes())
                if found:
                    self.upstream_port = int(found.group(1))
                elif self.proc.poll() is not None:
                    raise RuntimeError(f"s3rver exited with status {self.proc.returncode}\n"
                                       f"{self.log()}")
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"s3rver did not listen within {START_TIMEOUT}s\n"
                                       f"{self.log()}")
                else:
                    time.sleep(0.05)
            self._listen()
        except BaseException:
            self.stop()
            raise
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.vhost_endpoint = f"http://{self.bucket}.localhost:{self.port}"
        return self

    def stop(self):
        """Stops the proxy and s3rver (SIGTERM by its pid, SIGKILL after
        STOP_TIMEOUT) and waits for s3rver's exit."""
        self._close_listener()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.log_path} ---\n{text[-8000:]}\n--- end ---"

    # -- outages ---------------------------------------------------------------

    def outage(self, kind):
        """"refuse": the proxy's listening socket is closed and its open
        connections cut, so that connecting is refused; "503": the proxy answers
        every request 503 SlowDown. restore() ends it, on the same port."""
        if kind == "refuse":
            self.mode = "refuse"
            self._close_listener()
        elif kind == "503":
            self.mode = "503"
            self._listen()
        else:
            raise ValueError(f"outage kind {kind!r}: 'refuse' or '503'")

    def restore(self):
        self.mode = None
        self._listen()

    # -- the log of requests ---------------------------------------------------

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def clear_requests(self):
        with self._lock:
            self._requests.clear()

    def _record(self, method, target, status):
        path, _, query = target.partition("?")
        with self._lock:
            self._requests.append(Request(method, path, query, status))

    # -- the proxy ---------------------------------------------------------------

    def _listen(self):
        """Opens the proxy's listening socket (on self.port once it has one) and
        serves it in a thread; does nothing when it is open."""
        if self._httpd is not None:
            return
        deadline = time.monotonic() + REBIND_TIMEOUT
        while True:
            try:
                httpd = _ProxyServer(("127.0.0.1", self.port or 0), self)
                break
            except OSError:
                # The port a restore() needs may be in a client's hands for a moment.
                if self.port is None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def _close_listener(self):
        """Stops accepting, cuts every open connection (an idle keep-alive one
        too: its client sees it closed), then closes the listening socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for sock in open_connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if httpd is not None:
            httpd.server_close()

    def _track(self, sock, alive):
        with self._lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _secret_of(self, access_key):
        return self.secret_key if access_key == self.access_key else None

    def _upstream_target(self, target, host):
        """The path-style target for s3rver of a request the proxy got: a
        virtual-host-style one (Host: BUCKET.localhost[:PORT]) gets the bucket put
        in front of its path."""
        hostname = host.rsplit(":", 1)[0].lower() if host else ""
        if not hostname.endswith(".localhost"):
            return target
        bucket = hostname[:-len(".localhost")]
        path, sep, query = target.partition("?")
        return f"/{bucket}{'' if path == '/' else path}{sep}{query}"

    # -- the suite's own client ------------------------------------------------

    def send(self, method, target, headers, body=b""):
        """Sends one request as given (no signing) to the proxy; returns a Response.
        Content-Length is added when there is a body (or the method is PUT or POST)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            names = set()
            for name, value in headers.items():
                conn.putheader(name, value)
                names.add(name.lower())
            if "content-length" not in names and (body or method in ("PUT", "POST")):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            return Response(response.status,
                            {name.lower(): value for name, value in response.getheaders()}, data)
        finally:
            conn.close()

    def request(self, method, target, body=b"", headers=None, *, access_key=None,
                secret_key=None):
        """Signs (sigv4.sign, with the store's keys unless others are given) and
        sends one request for target (path?query, percent-encoded); returns a Response."""
        signed = sigv4.sign(method, target, {"Host": f"127.0.0.1:{self.port}", **(headers or {})},
                            body, access_key=access_key or self.access_key,
                            secret_key=secret_key or self.secret_key, region=self.region)
        return self.send(method, target, signed, body)

    def key_target(self, key):
        """The path-style target of key in the bucket, percent-encoded once."""
        return f"/{self.bucket}/{quote(key, safe='/')}"

    def list(self, prefix="", max_keys=None):
        """The keys under prefix, through ListObjectsV2 (max_keys a page,
        continuation tokens followed), sorted as S3 sorts them (s3rver does not).
        Note s3rver's own paging skips keys when a key is also a "folder" of others
        (a and a/b): keep to 1000 keys or fewer where that matters."""
        keys, token = [], None
        for _ in range(MAX_PAGES):
            params = [("list-type", "2"), ("prefix", prefix)]
            if max_keys is not None:
                params.append(("max-keys", str(max_keys)))
            if token is not None:
                params.append(("continuation-token", token))
            query = "&".join(f"{sigv4.uri_encode(k)}={sigv4.uri_encode(v)}"
                             for k, v in sorted(params))
            target = f"/{self.bucket}?{query}"
            r = self.request("GET", target)
            if r.status != 200:
                raise S3ClientError("GET", target, r)
            root = ET.fromstring(r.body)
            fields = {_local(child.tag): child for child in root}
            keys += [item.text for contents in root if _local(contents.tag) == "Contents"
                     for item in contents if _local(item.tag) == "Key"]
            if fields.get("IsTruncated") is None or fields["IsTruncated"].text != "true":
                return sorted(keys)
            token = fields["NextContinuationToken"].text
        raise AssertionError(f"ListObjectsV2 of {prefix!r}: more than {MAX_PAGES} pages")

    def get(self, key):
        """The object's bytes, or None when there is none (404)."""
        r = self.request("GET", self.key_target(key))
        if r.status == 404:
            return None
        if r.status != 200:
            raise S3ClientError("GET", self.key_target(key), r)
        return r.body

    def head(self, key):
        """The object's headers {lower-case name: value} (HEAD), or None (404)."""
        r = self.request("HEAD", self.key_target(key))
        if r.status == 404:
            return None
        if r.status != 200:
            raise S3ClientError("HEAD", self.key_target(key), r)
        return r.headers

    def put(self, key, data, content_type="application/octet-stream", headers=None):
        """Stores data as key (more headers, e.g. x-amz-meta-*, in headers); returns its ETag."""
        r = self.request("PUT", self.key_target(key), data,
                         {"Content-Type": content_type, **(headers or {})})
        if r.status != 200:
            raise S3ClientError("PUT", self.key_target(key), r)
        return r.headers.get("etag")

    def delete(self, key):
        """Deletes key (S3 answers 204 whether or not it was there)."""
        r = self.request("DELETE", self.key_target(key))
        if r.status != 204:
            raise S3ClientError("DELETE", self.key_target(key), r)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # server_close() does not wait for the connections' threads

    def __init__(self, address, store):
        self.store = store
        super().__init__(address, _ProxyHandler)


class _ProxyHandler(BaseHTTPRequestHandler):
    """One client connection of the proxy: HTTP/1.1 with keep-alive, each request
    read whole (Content-Length), verified, forwarded, answered."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.server.store._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.store._track(self.connection, False)

    def do_GET(self):
        self._serve()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _serve(self):
        store = self.server.store
        if "transfer-encoding" in {name.lower() for name in self.headers}:
            # S3 wants the length first. The body is read and dropped, so that the
            # connection stays usable (closing on unread bytes would reset it).
            if not self._drain_chunked():
                self.close_connection = True
                return
            return self._error(sigv4.S3Error(411, "MissingContentLength",
                                             "You must provide the Content-Length HTTP header."))
        length = self.headers.get("Content-Length")
        if length is None and self.command in ("PUT", "POST"):
            return self._error(sigv4.S3Error(411, "MissingContentLength",
                                             "You must provide the Content-Length HTTP header."))
        if length is not None and not length.strip().isdigit():
            return self._error(sigv4.S3Error(400, "InvalidArgument",
                                             "Content-Length is not a number.",
                                             [("ArgumentName", "Content-Length"),
                                              ("ArgumentValue", length)]), close=True)
        size = int(length) if length is not None else 0
        body = self.rfile.read(size) if size else b""
        if len(body) != size:
            self.close_connection = True  # the client went away mid-body
            return

        if store.mode == "503":
            return self._error(sigv4.S3Error(503, "SlowDown", "Please reduce your request rate."))
        err = sigv4.verify(self.command, self.path, self.headers.items(), body, store._secret_of,
                           store.region)
        if err is not None:
            return self._error(err)
        self._forward(store, body)

    def _drain_chunked(self):
        """Reads a chunked body to its end (at most MAX_DRAINED bytes), dropping
        it; False when it is broken or longer."""
        total = 0
        try:
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    break
                total += size
                if total > MAX_DRAINED or len(self.rfile.read(size + 2)) != size + 2:
                    return False
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
        except (OSError, ValueError):
            return False
        return True

    def _forward(self, store, body):
        upstream = http.client.HTTPConnection("127.0.0.1", store.upstream_port,
                                              timeout=UPSTREAM_TIMEOUT)
        try:
            try:
                upstream.putrequest(self.command,
                                    store._upstream_target(self.path, self.headers.get("Host")),
                                    skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "host":
                        upstream.putheader(name, value)
                upstream.putheader("Host", f"127.0.0.1:{store.upstream_port}")
                upstream.endheaders(body or None)
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException) as e:
                return self._error(sigv4.S3Error(500, "InternalError",
                                                 f"The test store's s3rver did not answer: {e}"))
            headers = [(name, value) for name, value in response.getheaders()
                       if name.lower() not in HOP_BY_HOP]
            bodiless = (self.command == "HEAD" or response.status in (204, 304)
                        or response.status < 200)
            whole = None
            if not bodiless and response.getheader("Content-Length") is None:
                whole = response.read()  # s3rver sent it chunked: pass it on with a length
                headers.append(("Content-Length", str(len(whole))))
            store._record(self.command, self.path, response.status)
            try:
                self.send_response_only(response.status, response.reason)
                for name, value in headers:
                    self.send_header(name, value)
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if whole is not None:
                    self.wfile.write(whole)
                elif not bodiless:
                    while True:
                        block = response.read(64 * 1024)
                        if not block:
                            break
                        self.wfile.write(block)
            except (OSError, http.client.HTTPException):
                self.close_connection = True  # either side went away mid-answer
        finally:
            upstream.close()

    def _error(self, err, close=False):
        """Answers err as S3 does: its XML document (none for HEAD), a request id."""
        self.server.store._record(self.command, self.path, err.status)
        request_id = uuid.uuid4().hex[:16].upper()
        body = err.xml(request_id)
        if close:
            self.close_connection = True
        try:
            self.send_response_only(err.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amz-request-id", request_id)
            self.send_header("Date", self.date_time_string())
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True
