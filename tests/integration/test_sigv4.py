"""The S3 test store itself (sigv4.py, s3fixture.py): the signer and verifier
against AWS's published SigV4 examples for S3, the verifying proxy in front of
a real s3rver (s3_store), and libcurl's own signer (curl --aws-sigv4, as the
daemon signs) against that proxy."""

import base64
import datetime
import hashlib
import http.client
import os
import socket
import subprocess

import pytest

import sigv4
from s3fixture import error_fields

# ---------------------------------------------------------------------------
# (a) AWS's examples: "Examples: Signature Calculations in AWS Signature
# Version 4" (Amazon S3 API reference, Authenticating Requests: Using the
# Authorization Header, Transferring Payload in a Single Chunk).

AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_DATE = "20130524T000000Z"
AWS_NOW = datetime.datetime(2013, 5, 24, tzinfo=datetime.timezone.utc)
AWS_HOST = "examplebucket.s3.amazonaws.com"
AWS_SCOPE = "20130524/us-east-1/s3/aws4_request"
WELCOME = b"Welcome to Amazon S3."
WELCOME_SHA256 = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
EMPTY = sigv4.EMPTY_SHA256

# Each: name, method, target as sent, headers besides Host (x-amz-date and
# x-amz-content-sha256 are added by sign), body, then what AWS publishes: the
# canonical request, its SHA-256 (in the string to sign), SignedHeaders, signature.
AWS_EXAMPLES = [
    ("GET Object", "GET", "/test.txt", {"Range": "bytes=0-9"}, b"",
     "GET\n/test.txt\n\n"
     "host:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
     f"x-amz-content-sha256:{EMPTY}\nx-amz-date:20130524T000000Z\n\n"
     f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY}",
     "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
     "host;range;x-amz-content-sha256;x-amz-date",
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ("PUT Object", "PUT", "/test%24file.text",
     {"Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"},
     WELCOME,
     "PUT\n/test%24file.text\n\n"
     "date:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\n"
     f"x-amz-content-sha256:{WELCOME_SHA256}\nx-amz-date:20130524T000000Z\n"
     "x-amz-storage-class:REDUCED_REDUNDANCY\n\n"
     f"date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n{WELCOME_SHA256}",
     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
     "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
     "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    ("GET Bucket Lifecycle", "GET", "/?lifecycle", {}, b"",
     "GET\n/\nlifecycle=\n"
     f"host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:{EMPTY}\n"
     f"x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY}",
     "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
     "host;x-amz-content-sha256;x-amz-date",
     "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    # Sent with the parameters the other way round: the canonical query sorts them.
    ("Get Bucket (List Objects)", "GET", "/?prefix=J&max-keys=2", {}, b"",
     "GET\n/\nmax-keys=2&prefix=J\n"
     f"host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:{EMPTY}\n"
     f"x-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n{EMPTY}",
     "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
     "host;x-amz-content-sha256;x-amz-date",
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
]


def aws_sign(method, target, headers, body):
    return sigv4.sign(method, target, {"Host": AWS_HOST, **headers}, body,
                      access_key=AWS_ACCESS_KEY, secret_key=AWS_SECRET_KEY,
                      region="us-east-1", amz_date=AWS_DATE)


def aws_secret(access_key):
    return AWS_SECRET_KEY if access_key == AWS_ACCESS_KEY else None


@pytest.mark.parametrize("example", AWS_EXAMPLES, ids=[e[0] for e in AWS_EXAMPLES])
def test_signer_reproduces_the_aws_example(example):
    _, method, target, headers, body, canonical, canonical_hash, signed, signature = example
    out = aws_sign(method, target, headers, body)
    assert out["x-amz-date"] == AWS_DATE
    assert out["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert out["Authorization"] == (f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/{AWS_SCOPE}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
    calc = sigv4.calculate(method, target, out, signed.split(";"), out["x-amz-content-sha256"],
                           AWS_SECRET_KEY, "us-east-1", AWS_DATE)
    assert calc.canonical_request == canonical
    assert hashlib.sha256(canonical.encode()).hexdigest() == canonical_hash
    assert calc.string_to_sign == f"AWS4-HMAC-SHA256\n{AWS_DATE}\n{AWS_SCOPE}\n{canonical_hash}"
    assert calc.signature == signature


@pytest.mark.parametrize("example", AWS_EXAMPLES, ids=[e[0] for e in AWS_EXAMPLES])
def test_verifier_accepts_the_aws_example_and_nothing_else(example):
    _, method, target, headers, body, canonical, _, signed, signature = example
    # The request exactly as AWS prints it: its Authorization without spaces after the commas.
    request = {"Host": AWS_HOST, **headers, "x-amz-date": AWS_DATE,
               "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
               "Authorization": f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/{AWS_SCOPE},"
                                f"SignedHeaders={signed},Signature={signature}"}
    assert sigv4.verify(method, target, request, body, aws_secret, now=AWS_NOW) is None

    # Anything signed changed, and the signature no longer holds: the method, the
    # path, the query, a signed header's value.
    altered = [("DELETE" if method != "DELETE" else "GET", target, request),
               (method, target.replace("/", "/x", 1), request),
               (method, target + ("&" if "?" in target else "?") + "extra=1", request),
               (method, target, {**request, "Host": "otherbucket.s3.amazonaws.com"})]
    for m, t, h in altered:
        err = sigv4.verify(m, t, h, body, aws_secret, now=AWS_NOW)
        assert err is not None and (err.status, err.code) == (403, "SignatureDoesNotMatch"), \
            (m, t, err)
        # As S3 does, the answer shows what was expected: the proxy's client can diff it.
        assert err.get("CanonicalRequest") == sigv4.canonical_request(
            m, t, h, signed.split(";"), request["x-amz-content-sha256"])
        assert err.get("StringToSign").startswith(f"AWS4-HMAC-SHA256\n{AWS_DATE}\n{AWS_SCOPE}\n")
        assert err.get("SignatureProvided") == signature


def test_canonical_uri_encodes_each_segment_once():
    # Unreserved characters stay, everything else is %XX with upper-case hex,
    # an already-encoded path is not encoded again, '/' separates segments,
    # and nothing is normalised away.
    assert sigv4.canonical_uri("/test$file.text") == "/test%24file.text"
    assert sigv4.canonical_uri("/test%24file.text") == "/test%24file.text"
    assert sigv4.canonical_uri("/a%2fb") == "/a%2Fb"
    assert sigv4.canonical_uri("/a%20b/c d+e") == "/a%20b/c%20d%2Be"
    assert sigv4.canonical_uri("/%7Euser/A-Z_a.z~0") == "/~user/A-Z_a.z~0"
    assert sigv4.canonical_uri("/th/\u00fc.webp") == "/th/%C3%BC.webp"
    assert sigv4.canonical_uri("/b//./../k") == "/b//./../k"
    assert sigv4.canonical_uri("/") == "/"


def test_canonical_query_decodes_reencodes_and_sorts():
    assert sigv4.canonical_query("") == ""
    assert sigv4.canonical_query("lifecycle") == "lifecycle="
    assert sigv4.canonical_query("prefix=J&max-keys=2") == "max-keys=2&prefix=J"
    assert sigv4.canonical_query("b=2&a=y&a=x") == "a=x&a=y&b=2"
    assert sigv4.canonical_query("list-type=2&prefix=th/ab") == "list-type=2&prefix=th%2Fab"
    assert sigv4.canonical_query("prefix=th%2fab") == "prefix=th%2Fab"
    assert sigv4.canonical_query("x=a+b&y=%7e&z=a%20b") == "x=a%2Bb&y=~&z=a%20b"
    assert sigv4.canonical_query("uploads&delete=") == "delete=&uploads="


def test_header_values_are_trimmed_and_collapsed():
    headers = [("Host", "h"), ("X-Amz-Meta-A", "  a   b \t c  "), ("x-amz-meta-a", "second")]
    assert sigv4.canonical_headers(headers, ["host", "x-amz-meta-a"]) == \
        "host:h\nx-amz-meta-a:a b c,second\n"


def signed_request(method="PUT", target="/thumbs/k", body=b"data", headers=None,
                   secret="S3RVER", when=AWS_NOW, **kw):
    out = sigv4.sign(method, target, {"Host": "127.0.0.1:9", **(headers or {})}, body,
                     access_key="S3RVER", secret_key=secret, region="us-east-1",
                     amz_date=sigv4.amz_date_of(when), **kw)
    return method, target, out, body


def store_secret(access_key):
    return "S3RVER" if access_key == "S3RVER" else None


def verdict(method, target, headers, body, now=AWS_NOW):
    err = sigv4.verify(method, target, headers, body, store_secret, now=now)
    return None if err is None else (err.status, err.code)


def test_verifier_refuses_what_s3_refuses():
    method, target, headers, body = signed_request()
    assert verdict(method, target, headers, body) is None

    no_auth = {k: v for k, v in headers.items() if k != "Authorization"}
    assert verdict(method, target, no_auth, body) == (403, "AccessDenied")
    for broken in ("AWS S3RVER:abc", "AWS4-HMAC-SHA256 Credential=S3RVER/20130524/us-east-1/s3",
                   headers["Authorization"].replace("SignedHeaders=", "Signed="),
                   headers["Authorization"].replace("/aws4_request", "")):
        assert verdict(method, target, {**headers, "Authorization": broken}, body) == \
            (403, "AccessDenied"), broken

    other_key = headers["Authorization"].replace("Credential=S3RVER/", "Credential=NOBODY/")
    assert verdict(method, target, {**headers, "Authorization": other_key}, body) == \
        (403, "InvalidAccessKeyId")
    assert verdict(*signed_request(secret="wrong")) == (403, "SignatureDoesNotMatch")

    # The scope's date must be x-amz-date's day, its region the store's.
    next_day = headers["Authorization"].replace("/20130524/", "/20130525/")
    assert verdict(method, target, {**headers, "Authorization": next_day}, body) == \
        (400, "AuthorizationHeaderMalformed")
    west = headers["Authorization"].replace("/us-east-1/", "/us-west-2/")
    assert verdict(method, target, {**headers, "Authorization": west}, body) == \
        (400, "AuthorizationHeaderMalformed")

    # 15 minutes of skew either way are allowed, not more.
    for minutes, expected in ((14, None), (-14, None), (16, (403, "RequestTimeTooSkewed")),
                              (-16, (403, "RequestTimeTooSkewed"))):
        now = AWS_NOW + datetime.timedelta(minutes=minutes)
        assert verdict(method, target, headers, body, now=now) == expected, minutes
    bad_date = {**headers, "x-amz-date": "yesterday"}
    assert verdict(method, target, bad_date, body) == (403, "AccessDenied")


def test_verifier_checks_the_payload():
    # A hex x-amz-content-sha256 must be the body's: the signature covers the header only.
    method, target, headers, _ = signed_request(body=b"original")
    assert verdict(method, target, headers, b"tampered") == (400, "XAmzContentSHA256Mismatch")
    # UNSIGNED-PAYLOAD: any body.
    method, target, headers, _ = signed_request(body=b"x", payload_hash=sigv4.UNSIGNED_PAYLOAD)
    assert verdict(method, target, headers, b"whatever it is") is None
    # The header is required, and must be a digest or one of S3's keywords.
    method, target, headers, body = signed_request()
    no_hash = {k: v for k, v in headers.items() if k != "x-amz-content-sha256"}
    assert verdict(method, target, no_hash, body) == (400, "InvalidRequest")
    assert verdict(*signed_request(payload_hash="not-a-hash")) == (400, "InvalidArgument")
    # Content-MD5, when sent, must be the body's.
    body = b"with md5"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert verdict(*signed_request(body=body, headers={"Content-MD5": good})) is None
    assert verdict(*signed_request(body=body, headers={"Content-MD5": wrong})) == \
        (400, "BadDigest")
    assert verdict(*signed_request(body=body, headers={"Content-MD5": "xyz"})) == \
        (400, "InvalidDigest")


def test_verifier_wants_every_amz_header_signed():
    method, target, headers, body = signed_request()
    assert verdict(method, target, {**headers, "x-amz-meta-late": "1"}, body) == \
        (403, "AccessDenied")
    err = sigv4.verify(method, target, {**headers, "x-amz-meta-late": "1"}, body, store_secret,
                       now=AWS_NOW)
    assert err.get("HeadersNotSigned") == "x-amz-meta-late"
    # An unsigned ordinary header is allowed, as S3 allows it.
    assert verdict(method, target, {**headers, "User-Agent": "x"}, body) is None


# ---------------------------------------------------------------------------
# (b) Through a real store: s3rver behind the verifying proxy.


def test_round_trip(s3_store):
    store = s3_store
    data = os.urandom(50_000)
    etag = store.put("th/ab/one.webp", data, "image/webp", {"x-amz-meta-job": "j1"})
    assert etag == f'"{hashlib.md5(data).hexdigest()}"'
    store.put("th/ab/two.webp", b"two", "image/webp")
    store.put("other/three.png", b"three", "image/png")

    assert store.get("th/ab/one.webp") == data
    head = store.head("th/ab/one.webp")
    assert head["content-type"] == "image/webp"
    assert head["content-length"] == str(len(data))
    assert head["etag"] == etag
    assert head["x-amz-meta-job"] == "j1"
    assert store.list("th/") == ["th/ab/one.webp", "th/ab/two.webp"]
    assert store.list() == ["other/three.png", "th/ab/one.webp", "th/ab/two.webp"]

    store.delete("th/ab/one.webp")
    assert store.get("th/ab/one.webp") is None
    assert store.head("th/ab/one.webp") is None
    assert store.list("th/") == ["th/ab/two.webp"]

    # The proxy saw each of those requests, in order, with s3rver's status.
    seen = [(r.method, r.path, r.status) for r in store.requests if r.path != "/thumbs"]
    assert seen == [("PUT", "/thumbs/th/ab/one.webp", 200), ("PUT", "/thumbs/th/ab/two.webp", 200),
                    ("PUT", "/thumbs/other/three.png", 200), ("GET", "/thumbs/th/ab/one.webp", 200),
                    ("HEAD", "/thumbs/th/ab/one.webp", 200),
                    ("DELETE", "/thumbs/th/ab/one.webp", 204),
                    ("GET", "/thumbs/th/ab/one.webp", 404), ("HEAD", "/thumbs/th/ab/one.webp", 404)]
    listings = [r for r in store.requests if r.path == "/thumbs"]
    assert [r.query for r in listings][0] == "list-type=2&prefix=th%2F"
    store.clear_requests()
    assert store.requests == []


def test_keys_that_need_encoding(s3_store):
    keys = ["sp ace.jpg", "plus+sign.jpg", "\u00fcml\u00e4ut.jpg", "a$b&c=d.jpg", "tilde~.jpg"]
    for i, key in enumerate(keys):
        s3_store.put(key, str(i).encode())
    for i, key in enumerate(keys):
        assert s3_store.get(key) == str(i).encode(), key
    assert s3_store.list() == sorted(keys)


def test_listing_follows_continuation_tokens(s3_store):
    keys = [f"page/k{i:02d}" for i in range(7)]
    for key in keys:
        s3_store.put(key, b"x")
    s3_store.clear_requests()
    assert s3_store.list("page/", max_keys=2) == keys
    pages = [r for r in s3_store.requests if r.path == "/thumbs"]
    assert len(pages) == 4 and all(r.status == 200 for r in pages)
    assert all("continuation-token=" in r.query for r in pages[1:])


def test_a_wrong_secret_is_refused(s3_store):
    r = s3_store.request("PUT", s3_store.key_target("k"), b"data", secret_key="not-the-secret")
    assert r.status == 403
    fields = error_fields(r.body)
    assert fields["Code"] == "SignatureDoesNotMatch"
    assert fields["AWSAccessKeyId"] == "S3RVER"
    assert fields["CanonicalRequest"].startswith("PUT\n/thumbs/k\n\nhost:127.0.0.1:")
    assert fields["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert r.headers["content-type"] == "application/xml"
    assert s3_store.get("k") is None  # nothing reached s3rver


def test_a_body_tampered_after_signing_is_refused(s3_store):
    target = s3_store.key_target("k")
    headers = sigv4.sign("PUT", target, {"Host": f"127.0.0.1:{s3_store.port}"}, b"original",
                         access_key=s3_store.access_key, secret_key=s3_store.secret_key,
                         region=s3_store.region)
    r = s3_store.send("PUT", target, headers, b"tampered")
    assert r.status == 400
    assert error_fields(r.body)["Code"] == "XAmzContentSHA256Mismatch"
    assert s3_store.get("k") is None
    assert s3_store.send("PUT", target, headers, b"original").status == 200
    assert s3_store.get("k") == b"original"


def test_unsigned_requests_are_refused(s3_store):
    s3_store.put("k", b"secret")
    host = {"Host": f"127.0.0.1:{s3_store.port}"}
    r = s3_store.send("GET", s3_store.key_target("k"), host)
    assert (r.status, error_fields(r.body)["Code"]) == (403, "AccessDenied")
    r = s3_store.send("GET", "/thumbs?list-type=2", host)
    assert (r.status, error_fields(r.body)["Code"]) == (403, "AccessDenied")
    r = s3_store.send("PUT", s3_store.key_target("k"), host, b"overwritten")
    assert (r.status, error_fields(r.body)["Code"]) == (403, "AccessDenied")
    r = s3_store.request("GET", s3_store.key_target("k"), access_key="AKIDUNKNOWN")
    assert (r.status, error_fields(r.body)["Code"]) == (403, "InvalidAccessKeyId")
    # A HEAD gets the status and no body, as from S3.
    r = s3_store.send("HEAD", s3_store.key_target("k"), host)
    assert (r.status, r.body) == (403, b"")
    assert s3_store.get("k") == b"secret"


def test_a_chunked_body_is_refused(s3_store):
    target = s3_store.key_target("k")
    headers = sigv4.sign("PUT", target, {"Host": f"127.0.0.1:{s3_store.port}"}, b"abc",
                         access_key=s3_store.access_key, secret_key=s3_store.secret_key,
                         region=s3_store.region)
    conn = http.client.HTTPConnection("127.0.0.1", s3_store.port, timeout=10)
    try:
        conn.request("PUT", target, body=iter([b"abc"]), headers=headers, encode_chunked=True)
        r = conn.getresponse()
        assert (r.status, error_fields(r.read())["Code"]) == (411, "MissingContentLength")
        # The refused body was read to its end: the connection goes on.
        target = s3_store.key_target("missing")
        conn.request("GET", target, headers=sigv4.sign(
            "GET", target, {"Host": f"127.0.0.1:{s3_store.port}"}, b"", access_key="S3RVER",
            secret_key="S3RVER", region="us-east-1"))
        r = conn.getresponse()
        assert (r.status, error_fields(r.read())["Code"]) == (404, "NoSuchKey")
    finally:
        conn.close()
    assert s3_store.get("k") is None


def test_one_connection_carries_many_requests(s3_store):
    # Keep-alive as libcurl uses it: several requests, bodies or not, errors or
    # not, on one connection, each answer complete.
    conn = http.client.HTTPConnection("127.0.0.1", s3_store.port, timeout=10)
    try:
        def exchange(method, key, body=b""):
            target = s3_store.key_target(key)
            headers = sigv4.sign(method, target, {"Host": f"127.0.0.1:{s3_store.port}"}, body,
                                 access_key="S3RVER", secret_key="S3RVER", region="us-east-1")
            conn.request(method, target, body=body or None, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()

        assert exchange("PUT", "a", b"A" * 100_000)[0] == 200
        assert exchange("GET", "a") == (200, b"A" * 100_000)
        assert exchange("HEAD", "a") == (200, b"")
        assert exchange("GET", "missing")[0] == 404
        assert exchange("PUT", "b", b"B")[0] == 200
        assert exchange("GET", "b") == (200, b"B")
        sock = conn.sock
        assert exchange("DELETE", "a")[0] == 204
        assert conn.sock is sock  # still the first connection
    finally:
        conn.close()


def test_virtual_host_style(s3_store):
    s3_store.put("v/k.txt", b"vhost")
    host = {"Host": f"{s3_store.bucket}.localhost:{s3_store.port}"}
    headers = sigv4.sign("GET", "/v/k.txt", host, b"", access_key="S3RVER",
                         secret_key="S3RVER", region="us-east-1")
    r = s3_store.send("GET", "/v/k.txt", headers)
    assert (r.status, r.body) == (200, b"vhost")
    assert s3_store.requests[-1] == ("GET", "/v/k.txt", "", 200)


def test_outages(s3_store):
    s3_store.put("k", b"before")
    port = s3_store.port

    s3_store.outage("503")
    r = s3_store.request("GET", s3_store.key_target("k"))
    assert r.status == 503
    assert error_fields(r.body)["Code"] == "SlowDown"
    s3_store.restore()
    assert s3_store.get("k") == b"before"

    # A keep-alive connection open when the outage starts is cut, not left to serve.
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    idle.request("GET", "/thumbs/k", headers={"Host": f"127.0.0.1:{port}"})
    assert idle.getresponse().read() and idle.sock is not None
    s3_store.outage("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert idle.sock.recv(1) == b""  # closed by the proxy
    idle.close()
    s3_store.restore()
    assert s3_store.port == port
    assert s3_store.get("k") == b"before"
    assert [r.status for r in s3_store.requests] == [200, 503, 200, 403, 200]


# ---------------------------------------------------------------------------
# (c) libcurl's signer, which the daemon uses, against the proxy: Debian's curl
# (7.88) with --aws-sigv4. libcurl 7.88 does not send x-amz-content-sha256 on
# its own (S3 requires it), hashes only POST fields, and signs the query as
# given: a client must send that header and a canonical query itself.

CURL = "/usr/bin/curl"


def curl(store, *args, user="S3RVER:S3RVER"):
    """Runs curl with libcurl's SigV4 signer; returns (HTTP status, body bytes)."""
    if not os.access(CURL, os.X_OK):
        pytest.fail(f"{CURL} is needed (Debian's curl; scripts/dev.sh installs it)")
    result = subprocess.run(
        [CURL, "-sS", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", user,
         "-o", "-", "-w", "\n%{http_code}", *args],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def content_sha256(data):
    return f"x-amz-content-sha256: {hashlib.sha256(data).hexdigest()}"


def test_curl_put_get_list(s3_store):
    data = os.urandom(20_000)
    url = f"{s3_store.endpoint}/thumbs/th/curl%20one.bin"
    src = s3_store.dir / "upload.bin"
    src.write_bytes(data)
    status, body = curl(s3_store, "-X", "PUT", "--data-binary", f"@{src}", url,
                        "-H", content_sha256(data), "-H", "Content-Type: image/webp")
    assert status == 200, body
    assert s3_store.get("th/curl one.bin") == data
    assert s3_store.head("th/curl one.bin")["content-type"] == "image/webp"

    status, body = curl(s3_store, url, "-H", content_sha256(b""))
    assert (status, body) == (200, data)

    # Already canonical: keys sorted, values encoded, '/' as %2F.
    status, body = curl(s3_store, f"{s3_store.endpoint}/thumbs?list-type=2&prefix=th%2F",
                        "-H", content_sha256(b""))
    assert status == 200, body
    assert b"<Key>th/curl one.bin</Key>" in body


def test_curl_with_a_wrong_secret_is_refused(s3_store):
    s3_store.put("k", b"data")
    status, body = curl(s3_store, f"{s3_store.endpoint}/thumbs/k", "-H", content_sha256(b""),
                        user="S3RVER:wrong-secret")
    assert status == 403
    assert error_fields(body)["Code"] == "SignatureDoesNotMatch"


def test_curl_needs_what_s3_needs(s3_store):
    # What the daemon has to do on top of CURLOPT_AWS_SIGV4, shown on curl: without
    # x-amz-content-sha256 S3 refuses the request, and a query that is not in
    # canonical form is signed as it stands, so the signature does not match.
    s3_store.put("k", b"data")
    status, body = curl(s3_store, f"{s3_store.endpoint}/thumbs/k")
    assert (status, error_fields(body)["Code"]) == (400, "InvalidRequest")
    for query in ("prefix=k&list-type=2", "list-type=2&prefix=th/"):
        status, body = curl(s3_store, f"{s3_store.endpoint}/thumbs?{query}",
                            "-H", content_sha256(b""))
        assert (status, error_fields(body)["Code"]) == (403, "SignatureDoesNotMatch"), query
    # UNSIGNED-PAYLOAD is accepted for a body.
    status, body = curl(s3_store, "-X", "PUT", "--data-binary", "unsigned body",
                        f"{s3_store.endpoint}/thumbs/u", "-H",
                        "x-amz-content-sha256: UNSIGNED-PAYLOAD")
    assert status == 200, body
    assert s3_store.get("u") == b"unsigned body"
