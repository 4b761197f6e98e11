"""AWS Signature Version 4 for S3 (the Authorization header kind), written from
AWS's published algorithm with the standard library only: sign() for the
suite's own S3 client, verify() for the test store's proxy (s3fixture.py),
since s3rver checks no SigV4 signature itself.

The steps, as AWS describes them for S3:
  canonical request = method, canonical URI, canonical query, canonical
                      headers, signed header names, hashed payload (one a line)
  string to sign    = "AWS4-HMAC-SHA256", x-amz-date, scope
                      (date/region/s3/aws4_request), SHA-256 of the canonical request
  signing key       = HMAC chain "AWS4"+secret -> date -> region -> "s3" -> "aws4_request"
  signature         = hex HMAC-SHA256 of the string to sign with the signing key"""

import base64
import binascii
import datetime
import hashlib
import hmac
import re
from collections import namedtuple
from urllib.parse import quote, unquote_to_bytes
from xml.sax.saxutils import escape

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = datetime.timedelta(minutes=15)  # S3's limit between x-amz-date and its clock

# RFC 3986 unreserved characters besides letters and digits: all that S3 leaves unencoded.
UNRESERVED = "-_.~"

Calculation = namedtuple("Calculation", "canonical_request string_to_sign signature")


# ---------------------------------------------------------------------------
# The pieces of the algorithm


def uri_encode(raw):
    """raw (str or bytes) percent-encoded the way S3 wants it: everything but the
    RFC 3986 unreserved characters, as %XX with upper-case hex digits."""
    return quote(raw, safe=UNRESERVED)


def canonical_uri(path):
    """The canonical URI of a path as sent (percent-encoded, without the query):
    each segment decoded once and encoded again with uri_encode, so that an
    already-encoded path is not encoded twice and an over- or under-encoded one
    comes out in the one form S3 signs. S3 does not normalise the path (no
    removal of '.' or '..' segments, no merging of '//')."""
    if not path:
        return "/"
    return "/".join(uri_encode(unquote_to_bytes(segment)) for segment in path.split("/"))


def canonical_query(query):
    """The canonical query string of a raw query (what follows '?', no '#'): every
    name=value decoded and encoded again with uri_encode, a name without '='
    given an empty value, sorted by name then value, joined with '&'."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((uri_encode(unquote_to_bytes(name)), uri_encode(unquote_to_bytes(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def trim_value(value):
    """A header value as S3 signs it: spaces and tabs trimmed at both ends, inner
    runs of them collapsed into one space."""
    return re.sub(r"[ \t]+", " ", value.strip(" \t"))


def header_lists(headers):
    """{lower-case name: [values in order]} of headers, a dict or (name, value) pairs."""
    items = headers.items() if hasattr(headers, "items") else headers
    out = {}
    for name, value in items:
        out.setdefault(name.lower(), []).append(str(value))
    return out


def canonical_headers(headers, signed_names):
    """The canonical headers block: one "name:value\\n" per name of signed_names
    (lower-case, in the order given, which is sorted for a valid signature),
    the values of a repeated header joined with ','."""
    lists = header_lists(headers)
    return "".join(f"{name}:{','.join(trim_value(v) for v in lists.get(name, []))}\n"
                   for name in signed_names)


def canonical_request(method, target, headers, signed_names, payload_hash):
    """The canonical request of method and target (path?query as sent)."""
    path, _, query = target.partition("?")
    return "\n".join([method, canonical_uri(path), canonical_query(query),
                      canonical_headers(headers, signed_names), ";".join(signed_names),
                      payload_hash])


def scope(date, region):
    return f"{date}/{region}/{SERVICE}/{TERMINATOR}"


def string_to_sign(amz_date, region, request):
    """The string to sign for a canonical request made at amz_date (YYYYMMDDTHHMMSSZ)."""
    return "\n".join([ALGORITHM, amz_date, scope(amz_date[:8], region),
                      hashlib.sha256(request.encode()).hexdigest()])


def signing_key(secret_key, date, region):
    """The derived key of secret_key for a day (YYYYMMDD) and region."""
    key = ("AWS4" + secret_key).encode()
    for step in (date, region, SERVICE, TERMINATOR):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    return key


def calculate(method, target, headers, signed_names, payload_hash, secret_key, region,
              amz_date):
    """Every value of the algorithm for one request: a Calculation of the
    canonical request, the string to sign and the hex signature."""
    request = canonical_request(method, target, headers, signed_names, payload_hash)
    to_sign = string_to_sign(amz_date, region, request)
    key = signing_key(secret_key, amz_date[:8], region)
    return Calculation(request, to_sign,
                       hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest())


def amz_date_of(when):
    """A datetime (UTC) as x-amz-date writes it."""
    return when.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ---------------------------------------------------------------------------
# Signing (the suite's own client)


def sign(method, target, headers, body=b"", *, access_key, secret_key, region,
         amz_date=None, payload_hash=None):
    """Signs a request. headers (a dict or (name, value) pairs) must hold Host;
    every header given is signed. x-amz-date (now, unless amz_date) and
    x-amz-content-sha256 (payload_hash, else the body's SHA-256) are added
    unless present. Returns a new dict: the headers given, the two added and
    Authorization."""
    out = dict(headers.items() if hasattr(headers, "items") else headers)
    names = {name.lower() for name in out}
    if "host" not in names:
        raise ValueError("sigv4.sign: a Host header is needed")
    if "x-amz-date" not in names:
        out["x-amz-date"] = amz_date or amz_date_of(datetime.datetime.now(datetime.timezone.utc))
    if "x-amz-content-sha256" not in names:
        out["x-amz-content-sha256"] = payload_hash or hashlib.sha256(body).hexdigest()
    lists = header_lists(out)
    date = lists["x-amz-date"][0]
    signed_names = sorted(lists)
    calc = calculate(method, target, out, signed_names, lists["x-amz-content-sha256"][0],
                     secret_key, region, date)
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope(date[:8], region)}, "
                            f"SignedHeaders={';'.join(signed_names)}, Signature={calc.signature}")
    return out


# ---------------------------------------------------------------------------
# Verifying (the store's proxy)


class S3Error:
    """An error as S3 answers it: an HTTP status and an XML document
    <Error><Code/><Message/>(detail elements)<RequestId/><HostId/></Error>."""

    def __init__(self, status, code, message, detail=()):
        self.status = status
        self.code = code
        self.message = message
        self.detail = list(detail)  # (element name, text) pairs, in order

    def __repr__(self):
        return f"<S3Error {self.status} {self.code}: {self.message}>"

    def get(self, name):
        """The text of a detail element, or None."""
        return next((text for tag, text in self.detail if tag == name), None)

    def xml(self, request_id="0000000000000000"):
        elements = [("Code", self.code), ("Message", self.message), *self.detail,
                    ("RequestId", request_id), ("HostId", "thumbnailed-test-store")]
        inner = "".join(f"<{tag}>{escape(str(text))}</{tag}>" for tag, text in elements)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{inner}</Error>'.encode()


def _access_denied(message="Access Denied"):
    return S3Error(403, "AccessDenied", message)


def _malformed(message, *detail):
    return S3Error(400, "AuthorizationHeaderMalformed",
                   "The authorization header is malformed; " + message, detail)


def _hex_bytes(text):
    """How S3 shows the bytes of a string in an error: hex pairs, space-separated."""
    return " ".join(f"{b:02x}" for b in text.encode())


def parse_authorization(value):
    """(access key, date, region, service, terminator, [signed names], signature)
    of an Authorization header value, or None when it is not a well-formed
    AWS4-HMAC-SHA256 one."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = {}
    for part in rest.split(","):
        name, eq, field = part.strip().partition("=")
        if not eq or name in fields:
            return None
        fields[name] = field
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        return None
    credential = fields["Credential"].split("/")
    names = fields["SignedHeaders"].split(";")
    if len(credential) != 5 or not all(credential) or not all(names):
        return None
    return (*credential, names, fields["Signature"])


def verify(method, target, headers, body, secret_lookup, region="us-east-1", now=None):
    """Checks a request the way S3 does for header-signed SigV4: target is the
    path and query as sent, headers a dict or (name, value) pairs as received,
    body the bytes received, secret_lookup(access key) -> secret or None.
    now (a datetime, UTC) is the server's clock (default: the real one).
    Returns None when the request is authentic and its body intact, else the
    S3Error that S3 would answer:
      403 AccessDenied                 no or a malformed Authorization, no valid x-amz-date,
                                       an x-amz-* header that is not signed, host not signed
      403 InvalidAccessKeyId           an access key that secret_lookup does not know
      400 AuthorizationHeaderMalformed scope date other than x-amz-date's, wrong region,
                                       service or terminator
      403 RequestTimeTooSkewed         x-amz-date more than 15 minutes from now
      400 InvalidRequest / InvalidArgument   x-amz-content-sha256 missing / not a valid value
      501 NotImplemented               a STREAMING-* (aws-chunked) payload
      403 SignatureDoesNotMatch        with the StringToSign and CanonicalRequest expected
      400 XAmzContentSHA256Mismatch    x-amz-content-sha256 is a digest but not the body's
      400 InvalidDigest / BadDigest    a malformed / wrong Content-MD5"""
    lists = header_lists(headers)
    authorization = lists.get("authorization", [None])[0]
    if authorization is None:
        return _access_denied()
    parsed = parse_authorization(authorization)
    if parsed is None:
        return _access_denied("The Authorization header is not a valid AWS4-HMAC-SHA256 "
                              "one (Credential, SignedHeaders, Signature)")
    access_key, date, cred_region, service, terminator, signed_names, provided = parsed
    secret = secret_lookup(access_key)
    if secret is None:
        return S3Error(403, "InvalidAccessKeyId",
                       "The AWS Access Key Id you provided does not exist in our records.",
                       [("AWSAccessKeyId", access_key)])

    amz_date = lists.get("x-amz-date", [""])[0]
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return _access_denied("AWS authentication requires a valid Date or x-amz-date header")
    if date != amz_date[:8]:
        return _malformed("Invalid credential date. Date is not the same as X-Amz-Date.")
    if cred_region != region:
        return _malformed(f"the region '{cred_region}' is wrong; expecting '{region}'",
                          ("Region", region))
    if service != SERVICE:
        return _malformed(f"incorrect service '{service}'. This endpoint belongs to "
                          f"'{SERVICE}'.")
    if terminator != TERMINATOR:
        return _malformed(f"incorrect terminal '{terminator}'. This endpoint uses "
                          f"'{TERMINATOR}'.")
    server_time = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(server_time - when) > MAX_SKEW:
        return S3Error(403, "RequestTimeTooSkewed",
                       "The difference between the request time and the current time is "
                       "too large.",
                       [("RequestTime", amz_date), ("ServerTime", amz_date_of(server_time)),
                        ("MaxAllowedSkewMilliseconds", "900000")])

    payload_hash = lists.get("x-amz-content-sha256", [None])[0]
    if payload_hash is None:
        return S3Error(400, "InvalidRequest",
                       "Missing required header for this request: x-amz-content-sha256")
    is_digest = re.fullmatch(r"[0-9a-fA-F]{64}", payload_hash) is not None
    if payload_hash.startswith("STREAMING-"):
        return S3Error(501, "NotImplemented",
                       "This test store does not implement aws-chunked (STREAMING-*) uploads.",
                       [("Header", "x-amz-content-sha256")])
    if not is_digest and payload_hash != UNSIGNED_PAYLOAD:
        return S3Error(400, "InvalidArgument",
                       "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                       "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                       [("ArgumentName", "x-amz-content-sha256"),
                        ("ArgumentValue", payload_hash)])
    if "host" not in signed_names:
        return _access_denied("The host header must be signed (SignedHeaders has no host)")
    unsigned = sorted(name for name in lists
                      if name.startswith("x-amz-") and name not in signed_names)
    if unsigned:
        return S3Error(403, "AccessDenied",
                       "There were headers present in the request which were not signed",
                       [("HeadersNotSigned", ", ".join(unsigned))])

    calc = calculate(method, target, headers, signed_names, payload_hash, secret, region,
                     amz_date)
    if not hmac.compare_digest(calc.signature, provided):
        return S3Error(403, "SignatureDoesNotMatch",
                       "The request signature we calculated does not match the signature "
                       "you provided. Check your key and signing method.",
                       [("AWSAccessKeyId", access_key),
                        ("StringToSign", calc.string_to_sign),
                        ("SignatureProvided", provided),
                        ("StringToSignBytes", _hex_bytes(calc.string_to_sign)),
                        ("CanonicalRequest", calc.canonical_request),
                        ("CanonicalRequestBytes", _hex_bytes(calc.canonical_request))])

    # The signature covers the header's value; the body has to match it too.
    body_hash = hashlib.sha256(body).hexdigest()
    if is_digest and payload_hash.lower() != body_hash:
        return S3Error(400, "XAmzContentSHA256Mismatch",
                       "The provided 'x-amz-content-sha256' header does not match what was "
                       "computed.",
                       [("ClientComputedContentSHA256", payload_hash),
                        ("S3ComputedContentSHA256", body_hash)])
    md5 = lists.get("content-md5", [None])[0]
    if md5 is not None:
        try:
            digest = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            return S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.",
                           [("Content-MD5", md5)])
        if digest != hashlib.md5(body).digest():
            return S3Error(400, "BadDigest",
                           "The Content-MD5 you specified did not match what we received.",
                           [("ExpectedDigest", md5),
                            ("CalculatedDigest",
                             base64.b64encode(hashlib.md5(body).digest()).decode())])
    return None
