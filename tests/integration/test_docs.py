"""GET /openapi.json and GET /docs (Swagger UI on it), down to the page
rendering in a real headless Chromium without a console error."""

import json
import os
import base64
import re
import subprocess
import time
import urllib.request

import pytest

from helpers import free_port

DOCS_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def document(source_dir):
    return (source_dir / "docs" / "openapi.json").read_bytes()


def operations(doc):
    return sum(1 for item in doc["paths"].values() for m in item
               if m in ("get", "put", "post", "delete", "options", "head", "patch", "trace"))


def test_openapi_json_is_the_document(daemon, document):
    r = daemon.get("/openapi.json")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == document, "the daemon serves another document than docs/openapi.json"
    doc = r.json()
    assert doc["openapi"].startswith("3.1.")
    assert doc["servers"] == [{"url": "/", "description": doc["servers"][0].get("description")}]
    etag = r.headers["ETag"]
    again = daemon.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = daemon.request("HEAD", "/openapi.json")
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(document))


def test_docs_page_and_files(daemon):
    r = daemon.get("/docs")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert directives["connect-src"] == "'self'"
    page = r.text
    for src in ("/docs/swagger-ui-bundle.js", "/docs/init.js"):
        assert f'<script src="{src}"></script>' in page
    assert 'href="/docs/swagger-ui.css"' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script"
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "something from elsewhere"
    for name, ctype in DOCS_FILES.items():
        f = daemon.get("/docs/" + name)
        assert f.status_code == 200, name
        assert f.headers["Content-Type"] == ctype, name
        assert f.headers["Content-Security-Policy"] == csp
        assert len(f.content) > 100, name
    assert "/openapi.json" in daemon.get("/docs/init.js").text
    r = daemon.get("/docs/nothing.js")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert daemon.get("/docs/").status_code == 404


class Browser:
    """Headless Chromium driven over the DevTools protocol (python3-websocket)."""

    def __init__(self, workdir):
        import websocket  # python3-websocket

        self.port = free_port()
        self.log = open(workdir / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--disable-component-update", "--no-default-browser-check", "--disable-quic",
             f"--remote-debugging-port={self.port}", f"--user-data-dir={workdir / 'profile'}",
             "--window-size=1280,1600", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        targets = None
        while time.monotonic() < deadline and targets is None:
            assert self.proc.poll() is None, "chromium exited; see chromium.log"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json", timeout=2) as f:
                    targets = [t for t in json.load(f) if t["type"] == "page"]
            except OSError:
                time.sleep(0.2)
        assert targets, "chromium's DevTools did not answer"
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=120)
        self.next_id = 0
        self.events = []
        for domain in ("Runtime", "Log", "Page"):
            self.call(domain + ".enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def errors(self):
        """The console errors, exceptions and refusals (CSP, failed loads) so far."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(p["exceptionDetails"])[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append(json.dumps(p.get("args"))[:500])
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                found.append(p["entry"].get("text", "")[:500] + " " + p["entry"].get("url", ""))
        return found

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def test_docs_render_in_chromium(daemon, document, tmp_path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is needed (Debian's chromium; scripts/dev.sh installs it)")
    want = operations(json.loads(document))
    browser = Browser(tmp_path)
    try:
        browser.call("Page.navigate", url=daemon.base + "/docs")
        deadline = time.monotonic() + 60
        shown = 0
        while time.monotonic() < deadline and shown < want:
            shown = browser.evaluate("document.querySelectorAll('.opblock').length") or 0
            time.sleep(0.2)
        title = browser.evaluate("(document.querySelector('.info .title') || {}).textContent")
        paths = browser.evaluate(
            "[...document.querySelectorAll('.opblock-summary-path')].map(e => e.dataset.path)")
        # Every operation opened, and the schemas' list: what renders then
        # (parameters, examples, highlighted code) must pass the CSP too.
        browser.evaluate("document.querySelectorAll('.opblock-summary-control, .models-control')"
                         ".forEach(e => e.click()); 1")
        time.sleep(2)
        opened = browser.evaluate("document.querySelectorAll('.opblock.is-open').length")
        errors = browser.errors()
        shot = browser.call("Page.captureScreenshot", format="png")
        (tmp_path / "docs.png").write_bytes(base64.b64decode(shot["data"]))
        # The control: an inline script is refused by the page's CSP, and the
        # refusal is seen here; so the errors above would have been too.
        browser.evaluate("document.body.appendChild(Object.assign("
                         "document.createElement('script'), {textContent: 'window.x = 1'})); 1")
        time.sleep(0.5)
        browser.evaluate("1")
        refused = browser.errors()[len(errors):]
        ran = browser.evaluate("window.x === 1")
    finally:
        browser.close()
    assert shown == want, f"Swagger UI shows {shown} operations of {want} (screenshot {tmp_path})"
    assert title and title.startswith("thumbnailed"), title
    assert "/v1/thumbnails/{id}" in paths and "/v1/admin/overview" in paths, paths
    assert opened == want, f"{opened} operations of {want} opened"
    assert errors == [], f"console errors on /docs: {errors}"
    assert not ran and any("Content Security Policy" in e for e in refused), refused
