"""Every answer the suite gets from a daemon, checked against docs/openapi.json.

install() wraps requests.Session.send, through which every request of the
suite goes (requests.get and friends make a Session too). For an answer of a
daemon under test (helpers.Daemon registers its base URL), check() finds the
operation by path template and method and the response by status, and checks:

- the status is documented for the operation (or falls to its `default`,
  whose `x-statuses` lists the HTTP layer's refusals); a path the document
  does not have must be answered 404, a method it does not have 405 with
  `Allow` naming exactly the document's methods of the path;
- the response's required headers are there;
- HEAD, 204 and 304 answers have no body; any other body has a documented
  Content-Type, and a JSON body is valid against the media type's schema
  (JSON Schema 2020-12, as OpenAPI 3.1 writes it; $refs resolved in the
  document).

A mismatch is recorded rather than raised (a test's own `except` or a thread
must not hide it); conftest.py fails the test that made the request."""

import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

import jsonschema
import requests

SOURCE_DIR = Path(os.environ.get("TH_SOURCE_DIR") or Path(__file__).resolve().parents[2])
DOCUMENT = SOURCE_DIR / "docs" / "openapi.json"
BASE = "urn:thumbnailed:openapi"
OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

_lock = threading.Lock()
daemon_bases = set()  # "http://127.0.0.1:PORT" of every daemon under test
problems = []  # mismatches not yet reported
checked = 0
seen = {}  # (method, template, status) -> answers checked


def _load():
    with open(DOCUMENT) as f:
        doc = json.load(f)
    routes = []
    for template in doc["paths"]:
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template))
        routes.append((template.count("{"), template, re.compile(pattern + r"\Z")))
    routes.sort()  # literal paths before templated ones
    return doc, routes


DOC, ROUTES = _load()
TRANSPORT = DOC["components"]["responses"]["Transport"]


def _pointer(*parts):
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _resolve(node, where):
    """A Reference Object followed (within the document): (node, its pointer)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"a $ref outside the document: {ref}"
        where = ref[1:]
        node = DOC
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, where


try:  # jsonschema >= 4.18 (Debian 13): the referencing library
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    _registry = Registry().with_resource(
        BASE, Resource.from_contents(DOC, default_specification=DRAFT202012))

    def _validator(pointer):
        return jsonschema.Draft202012Validator({"$ref": BASE + "#" + quote(pointer, safe="/~")},
                                               registry=_registry)
except ImportError:  # jsonschema 4.10 (Debian 12): RefResolver
    _resolver = jsonschema.RefResolver(base_uri=BASE, referrer=DOC)

    def _validator(pointer):
        return jsonschema.Draft202012Validator({"$ref": BASE + "#" + quote(pointer, safe="/~")},
                                               resolver=_resolver)

_validators = {}


def _validate(body, pointer):
    """The schema errors of body against the schema at pointer, as text."""
    v = _validators.get(pointer)
    if v is None:
        v = _validators[pointer] = _validator(pointer)
    errors = sorted(v.iter_errors(body), key=lambda e: list(e.absolute_path))
    return ["{}: {}".format("/".join(map(str, e.absolute_path)) or "(the document)",
                            e.message[:300]) for e in errors[:5]]


def _media_type(content, ctype):
    """The Media Type Object of content that the answer's Content-Type falls to."""
    if ctype in content:
        return ctype
    base = ctype.split(";")[0].strip().lower()
    for key in content:
        if key.split(";")[0].strip().lower() == base:
            return key
    for key in content:
        if key.endswith("/*") and base.startswith(key[:-1]):
            return key
    return None


def _error_document(resp, pointer):
    try:
        body = resp.json()
    except ValueError:
        return [f"not JSON: {resp.text[:200]!r}"]
    return _validate(body, pointer)


def check(resp, stream=False):
    """The mismatches of resp with the document (a list of text; [] when none
    or when resp is not a daemon's)."""
    global checked
    req = resp.request
    url = urlsplit(req.url)
    if f"{url.scheme}://{url.netloc}" not in daemon_bases:
        return []
    method = req.method.lower()
    status = resp.status_code
    transport = status in TRANSPORT["x-statuses"]
    error_schema = _pointer("components", "schemas", "Error")
    template = next((t for _, t, rx in ROUTES if rx.match(url.path)), None)
    with _lock:
        checked += 1
        key = (method.upper(), template or "(no such path)", status)
        seen[key] = seen.get(key, 0) + 1
    if template is None:
        if status != 404 and not transport:
            return [f"{status} for a path the document does not have (404 expected)"]
        return _error_document(resp, error_schema)
    item = DOC["paths"][template]
    op = item.get(method)
    if op is None:
        if status == 405:
            allow = {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}
            want = {m.upper() for m in item if m in OPERATIONS}
            found = [] if allow == want else [
                f"405 with Allow {sorted(allow)}: the document has {sorted(want)}"]
            return found + _error_document(resp, error_schema)
        if transport:
            return _error_document(resp, error_schema)
        return [f"{status} for {method.upper()}, which the document does not have "
                f"for {template} (405 expected)"]
    where = _pointer("paths", template, method, "responses")
    if str(status) in op["responses"]:
        response, where = _resolve(op["responses"][str(status)], where + _pointer(str(status)))
    elif "default" in op["responses"]:
        response, where = _resolve(op["responses"]["default"], where + "/default")
        if status not in response.get("x-statuses", ()):
            return [f"status {status} is not documented for {op['operationId']}"]
    else:
        return [f"status {status} is not documented for {op['operationId']}"]

    found = []
    for name, header in response.get("headers", {}).items():
        header, _ = _resolve(header, None)
        if header.get("required") and name not in resp.headers:
            found.append(f"no {name} header (required for {status})")
    if method == "head" or status in (204, 304):
        if not stream and resp.content:
            found.append(f"a body ({len(resp.content)} bytes) where none belongs")
        return found
    content = response.get("content")
    ctype = resp.headers.get("Content-Type", "")
    if not content:
        if not stream and resp.content:
            found.append(f"a body ({ctype}) where the document has none")
        return found
    key = _media_type(content, ctype)
    if key is None:
        return found + [f"Content-Type {ctype!r} is not one of {sorted(content)}"]
    if stream or key.split(";")[0].strip() != "application/json":
        return found
    try:
        body = resp.json()
    except ValueError:
        return found + [f"not JSON: {resp.text[:200]!r}"]
    return found + _validate(body, where + _pointer("content", key, "schema"))


def install():
    """Wraps requests.Session.send (once) so that every answer is checked."""
    if getattr(requests.Session.send, "_openapi_checked", False):
        return
    original = requests.Session.send

    def send(self, request, **kw):
        resp = original(self, request, **kw)
        try:
            found = check(resp, stream=kw.get("stream", False))
        except Exception as e:  # a bug of the check itself must show too
            found = [f"the OpenAPI check failed: {type(e).__name__}: {e}"]
        if found:
            with _lock:
                problems.append(f"{request.method} {urlsplit(request.url).path}"
                                f"{'?' + urlsplit(request.url).query if urlsplit(request.url).query else ''}"
                                f" -> {resp.status_code}: {'; '.join(found)}\n"
                                f"    body: {resp.text[:300] if not kw.get('stream') else '(streamed)'}")
        return resp

    send._openapi_checked = True
    requests.Session.send = send


def coverage():
    """What was checked: one line per method, path and status, with a count."""
    return [f"{n:6d}  {m} {t} {s}" for (m, t, s), n in sorted(seen.items())]


def take_problems():
    """The mismatches recorded since the last call."""
    with _lock:
        found = problems[:]
        problems.clear()
    return found
