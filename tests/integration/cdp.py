"""A small Chrome DevTools Protocol client for the dashboard tests: starts
Debian's chromium headless on a throwaway profile, opens one page, and
records what went wrong in it (console errors, exceptions, failed requests).

    with Browser(tmp_dir) as b:
        page = b.new_page()
        page.navigate(url)
        page.evaluate("document.title")

Needs /usr/bin/chromium and python3-websocket (the `websocket` module)."""

import base64
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests

CHROMIUM = os.environ.get("TH_CHROMIUM") or "/usr/bin/chromium"
START_TIMEOUT = 30  # seconds for chromium to write DevToolsActivePort
CALL_TIMEOUT = 30  # seconds for any one protocol call


def missing():
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "python3-websocket is not installed (the websocket module)"
    return None


class CDPError(Exception):
    pass


class Browser:
    """chromium --headless=new with a DevTools port of its own; stop() (or
    leaving the with block) kills it and everything it started."""

    def __init__(self, directory, width=1600, height=1200):
        self.dir = Path(directory)
        self.profile = self.dir / "chromium-profile"
        self.width, self.height = width, height
        self.proc = None
        self.port = None
        self.pages = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.profile.mkdir(parents=True, exist_ok=True)
        self.log = open(self.dir / "chromium.log", "ab")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--metrics-recording-only", "--mute-audio",
             "--password-store=basic", "--use-mock-keychain",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            port_file = self.profile / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise CDPError(f"chromium exited with status {self.proc.returncode}: "
                                   f"{self.log_text()}")
                try:
                    first = port_file.read_text().splitlines()[0].strip()
                    if first.isdigit():
                        self.port = int(first)
                        break
                except (OSError, IndexError):
                    pass
                time.sleep(0.1)
            if self.port is None:
                raise CDPError(f"chromium wrote no DevToolsActivePort within {START_TIMEOUT}s")
        except BaseException:
            self.stop()
            raise
        return self

    def log_text(self):
        try:
            return (self.dir / "chromium.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def new_page(self):
        r = requests.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10)
        r.raise_for_status()
        page = Page(r.json()["webSocketDebuggerUrl"], self.width, self.height)
        self.pages.append(page)
        return page

    def stop(self):
        for p in self.pages:
            p.close()
        self.pages = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # chromium's own process group
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self.proc is not None:
            try:  # helpers (zygote, renderers) left in the group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.log.close()
            self.proc = None
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One target: calls (call), events (a reader thread), and the problems
    seen in it: errors (console errors, exceptions, log entries) and failed
    (requests that failed or answered >= 400), each a list of strings/dicts."""

    def __init__(self, ws_url, width, height):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=CALL_TIMEOUT,
                                              suppress_origin=True)
        self.next_id = 0
        self.lock = threading.Lock()
        self.replies = {}
        self.cond = threading.Condition(self.lock)
        self.errors = []  # human-readable lines
        self.failed = []  # {"url", "status", "text"} per failed request
        self.requests = {}  # requestId -> url
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- the protocol --------------------------------------------------------

    def _read(self):
        while not self.closed:
            try:
                raw = self.ws.recv()
            except Exception:
                break
            if not raw:
                continue
            msg = json.loads(raw)
            if "id" in msg:
                with self.cond:
                    self.replies[msg["id"]] = msg
                    self.cond.notify_all()
            else:
                self._event(msg.get("method"), msg.get("params", {}))
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def call(self, method, timeout=CALL_TIMEOUT, **params):
        with self.cond:
            self.next_id += 1
            mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        with self.cond:
            while mid not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise CDPError(f"{method}: no answer within {timeout}s")
                self.cond.wait(left)
            msg = self.replies.pop(mid)
        if "error" in msg:
            raise CDPError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    def _event(self, method, p):
        with self.lock:
            if method == "Runtime.consoleAPICalled" and p.get("type") == "error":
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                self.errors.append(f"console.error: {args}")
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                text = d.get("exception", {}).get("description") or d.get("text", "")
                self.errors.append(f"exception: {text} ({d.get('url', '')}:{d.get('lineNumber')})")
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                self.errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")
            elif method == "Network.requestWillBeSent":
                self.requests[p["requestId"]] = p["request"]["url"]
            elif method == "Network.responseReceived":
                r = p["response"]
                if r.get("status", 0) >= 400:
                    self.failed.append({"url": r["url"], "status": r["status"],
                                        "text": r.get("statusText", "")})
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                self.failed.append({"url": self.requests.get(p["requestId"], "?"), "status": 0,
                                    "text": p.get("errorText", "")})

    def close(self):
        self.closed = True
        try:
            self.ws.close()
        except Exception:
            pass

    # -- shortcuts -----------------------------------------------------------

    def navigate(self, url, timeout=30):
        self.call("Page.navigate", url=url)
        self.wait_for("the page to load", "document.readyState === 'complete'", timeout)

    def evaluate(self, expression, timeout=CALL_TIMEOUT):
        """The value of a JavaScript expression (awaited when a promise);
        raises CDPError when it throws."""
        r = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                      returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"evaluate {expression!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    def wait_for(self, what, expression, timeout=30, step=0.1):
        """Polls expression until it is truthy; returns its value, or raises
        AssertionError after timeout seconds."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(step)
        raise AssertionError(f"waited {timeout}s for {what} ({expression}); last value {value!r}")

    def screenshot(self, path, full_page=True):
        """Saves a PNG of the page (all of it when full_page) to path."""
        params = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return path

    def problems(self, allowed=()):
        """The errors and failed requests, less failed requests whose URL
        contains one of allowed (those a test provokes on purpose) and the
        console lines that report them."""
        with self.lock:
            failed = [f for f in self.failed if not any(a in f["url"] for a in allowed)]
            errors = [e for e in self.errors
                      if not (e.startswith("log (network)") and any(a in e for a in allowed))]
        return errors + [f"request failed: {f['status']} {f['text']} {f['url']}" for f in failed]
