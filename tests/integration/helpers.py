"""Helpers for the black-box suite: the daemon under test, the local source
server, test images, and a few HTTP shortcuts. Tests talk HTTP only."""

import io
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import requests
from PIL import Image, ImageDraw

import openapi_check

# Every answer of a daemon is checked against docs/openapi.json (openapi_check.py).
openapi_check.install()

HTTP_TIMEOUT = 10  # seconds, for any single request to the daemon
JOB_TIMEOUT = 30  # seconds, for a job to reach a terminal state
START_TIMEOUT = 20  # seconds, for /healthz to answer after start
STOP_TIMEOUT = 30  # seconds, for the daemon to exit after SIGTERM

TERMINAL = ("done", "failed", "canceled")

MIME_OF_FORMAT = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "jxl": "image/jxl",
}

MIME_OF_EXT = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
    ".html": "text/html; charset=utf-8",
}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Test images


def _picture(width, height, mode="RGB"):
    """A picture with structure (gradient, shapes) and noise, so encoders and
    the attention/entropy crops have something to work on."""
    img = Image.new(mode, (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        shade = int(255 * y / max(1, height - 1))
        colour = (shade, 96, 255 - shade) + ((255,) if mode == "RGBA" else ())
        draw.line([(0, y), (width, y)], fill=colour)
    draw.ellipse([width // 5, height // 5, width // 2, height // 2],
                 fill=(250, 220, 40) + ((255,) if mode == "RGBA" else ()))
    draw.rectangle([width // 2, height // 2, width - 10, height - 10],
                   fill=(20, 160, 60) + ((255,) if mode == "RGBA" else ()))
    noise = Image.effect_noise((width, height), 24).convert(mode)
    return Image.blend(img, noise, 0.15)


def _vips(*args):
    subprocess.run(["vips", *args], check=True, capture_output=True, timeout=60)


avif_missing = None  # why AVIF cannot be tested on this machine, when it cannot


def _png_claiming(width, height):
    """A PNG with an honest IHDR for width x height and a token IDAT."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def make_images(directory):
    """Writes every source file the suite serves or uploads into directory and
    returns {name: Path}."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {}

    land = _picture(640, 400)
    port = _picture(400, 640)
    land.save(d / "land.jpg", quality=90)
    port.save(d / "port.jpg", quality=90)
    land.save(d / "land.png")
    land.save(d / "land.webp", quality=85)
    land.save(d / "land.gif")
    out.update({n: d / n for n in ("land.jpg", "port.jpg", "land.png", "land.webp", "land.gif")})

    # PNG with a real alpha channel: opaque left half, transparent right half.
    alpha = _picture(640, 400, "RGBA")
    mask = Image.new("L", (640, 400), 255)
    ImageDraw.Draw(mask).rectangle([320, 0, 639, 399], fill=0)
    alpha.putalpha(mask)
    alpha.save(d / "alpha.png")
    out["alpha.png"] = d / "alpha.png"

    # AVIF through libvips (PIL has no AVIF support on Debian 12). Without an
    # AVIF encoder the AVIF tests fail, saying why (see avif_missing).
    global avif_missing
    try:
        _vips("copy", str(d / "land.jpg"), str(d / "land.avif"))
        out["land.avif"] = d / "land.avif"
    except subprocess.CalledProcessError as e:
        avif_missing = "libvips cannot write AVIF here: " + e.stderr.decode(errors="replace")

    # Stored 640x400 with EXIF orientation 6 (rotate 90 CW to display): shows as 400x640.
    exif = Image.Exif()
    exif[0x0112] = 6
    land.save(d / "exif6.jpg", quality=90, exif=exif.tobytes())
    out["exif6.jpg"] = d / "exif6.jpg"

    # A JPEG cut off in the middle of its scan data.
    whole = (d / "land.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    out["truncated.jpg"] = d / "truncated.jpg"

    # A PNG whose header claims 50000x50000 (2.5 G pixels) with almost no data.
    (d / "huge-header.png").write_bytes(_png_claiming(50000, 50000))
    out["huge-header.png"] = d / "huge-header.png"

    (d / "page.html").write_text(
        "<!DOCTYPE html>\n<html><head><title>Not an image</title></head>\n"
        "<body><p>This is a web page, not a picture.</p></body></html>\n" * 20)
    out["page.html"] = d / "page.html"

    # A valid image larger than the suite's fetch.max_bytes (1M): RGB noise PNG.
    noise = Image.merge("RGB", [Image.effect_noise((1000, 1000), 100) for _ in range(3)])
    noise.save(d / "big.png", compress_level=1)
    out["big.png"] = d / "big.png"

    # For renditions: a photo-sized source, four quadrants of distinct colours
    # (red, green / blue, yellow) for focus, and a three-frame animation.
    _picture(2400, 1350).save(d / "wide.jpg", quality=90)
    quads = Image.new("RGB", (200, 100))
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]):
        x, y = (i % 2) * 100, (i // 2) * 50
        ImageDraw.Draw(quads).rectangle([x, y, x + 99, y + 49], fill=colour)
    quads.save(d / "quads.png")
    frames = [Image.new("RGB", (120, 80), c) for c in [(200, 30, 30), (30, 200, 30), (30, 30, 200)]]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(d / "anim.webp", save_all=True, append_images=frames[1:], duration=100,
                   loop=0, lossless=True)
    out.update({n: d / n for n in ("wide.jpg", "quads.png", "anim.gif", "anim.webp")})
    assert (d / "big.png").stat().st_size > 2 * 1024 * 1024
    return out


POLYGLOT_TAIL = b"<?php system($_GET[1]); ?><script>alert(1)</script>"


def _jpeg_segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def make_hostile_images(directory):
    """Writes the hand-made hostile sources of test_hostile.py into directory and
    returns {name: Path}:
       frames-10k.gif   10,000 frames of 1x1 (alternating colours, so none is merged)
       polyglot.jpg     a valid 320x200 JPEG whose EXIF (ImageDescription), XMP packet
                        and comment carry POLYGLOT_TAIL, and with POLYGLOT_TAIL appended
                        after its EOI (a JPEG/PHP/HTML polyglot)
       evil.svg         an SVG referencing http://169.254.169.254/x (an external image)"""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = {}

    palette = [0, 0, 0, 255, 255, 255] + [0] * (256 * 3 - 6)
    frames = []
    for i in range(10000):
        frame = Image.new("P", (1, 1), i % 2)
        frame.putpalette(palette)
        frames.append(frame)
    frames[0].save(d / "frames-10k.gif", save_all=True, append_images=frames[1:],
                   duration=10, loop=0)
    with Image.open(d / "frames-10k.gif") as check:
        assert check.n_frames == 10000, check.n_frames
    out["frames-10k.gif"] = d / "frames-10k.gif"

    exif = Image.Exif()
    exif[0x010F] = "PolyglotCam"  # Make
    exif[0x010E] = POLYGLOT_TAIL.decode()  # ImageDescription
    buf = io.BytesIO()
    _picture(320, 200).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    jpeg = buf.getvalue()
    assert jpeg[:2] == b"\xff\xd8" and jpeg.endswith(b"\xff\xd9")
    xmp = (b"http://ns.adobe.com/xap/1.0/\x00<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>"
           b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf="
           b"'http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Description xmlns:dc="
           b"'http://purl.org/dc/elements/1.1/'><dc:description>"
           + POLYGLOT_TAIL.replace(b"<", b"&lt;") + b"</dc:description></rdf:Description>"
           b"</rdf:RDF></x:xmpmeta><?xpacket end='w'?>")
    jpeg = (jpeg[:2] + _jpeg_segment(0xE1, xmp) + _jpeg_segment(0xFE, POLYGLOT_TAIL)
            + jpeg[2:] + POLYGLOT_TAIL)
    (d / "polyglot.jpg").write_bytes(jpeg)
    with Image.open(d / "polyglot.jpg") as check:
        check.load()
        assert "exif" in check.info and check.size == (320, 200)
    out["polyglot.jpg"] = d / "polyglot.jpg"

    (d / "evil.svg").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' width="640" height="400" viewBox="0 0 640 400">\n'
        '  <rect width="640" height="400" fill="#3060c0"/>\n'
        '  <image href="http://169.254.169.254/x" xlink:href="http://169.254.169.254/x"'
        ' width="640" height="400"/>\n'
        '</svg>\n')
    out["evil.svg"] = d / "evil.svg"
    return out


def unique_jpeg(width=320, height=200):
    """A JPEG whose bytes no other test uploads (uploads of identical bytes with
    identical parameters are deduplicated by the daemon)."""
    img = _picture(width, height)
    draw = ImageDraw.Draw(img)
    draw.text((8, 8), uuid.uuid4().hex, fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def decode_image(data):
    """Fully decodes image bytes. Returns (format, width, height, bands) with
    format one of jpeg/png/webp/gif/avif/jxl. Raises if the bytes do not decode."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:
        img = None
    if img is not None:
        fmt = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}.get(img.format)
        assert fmt, f"unexpected image format {img.format}"
        bands = len(img.getbands())
        if img.mode == "P" and "transparency" in img.info:
            bands = 4
        return fmt, img.width, img.height, bands
    # AVIF (and anything PIL cannot read): libvips decodes it, every pixel.
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in")
        with open(src, "wb") as f:
            f.write(data)
        subprocess.run(["vips", "copy", src + "[fail_on=truncated]", os.path.join(tmp, "out.v")],
                       check=True, capture_output=True, timeout=60)

        def field(name):
            return subprocess.run(["vipsheader", "-f", name, src], check=True,
                                  capture_output=True, text=True, timeout=60).stdout.strip()

        loader = field("vips-loader")
        width, height, bands = int(field("width")), int(field("height")), int(field("bands"))
    if loader.startswith("heifload") and data[4:8] == b"ftyp" and b"avif" in data[8:32]:
        return "avif", width, height, bands
    if loader.startswith("jxlload"):
        return "jxl", width, height, bands
    raise AssertionError(f"undecodable or unexpected image (vips loader {loader!r})")


# ---------------------------------------------------------------------------
# The source server: serves the test images on 127.0.0.1.


class SourceServer:
    """GET /img/NAME            the file, Content-Type from its extension
       GET /as-jpeg/NAME        the file, declared as image/jpeg whatever it is
       GET /slow/MS/NAME        the file after MS milliseconds
       GET /stream/NAME         the file without Content-Length, closed at the end
       GET /flaky/NAME          503 the first time a URL (query included) is asked, then the file
       GET /fail/N/CODE/NAME    CODE the first N times a URL (query included) is asked, then
                                the file (N = 999 for always)
       GET /hang/NAME           the headers and 1 KB of the file, then nothing until the
                                server stops (at most 120 s): a download that never ends
       GET /redirect/URL        302 to URL (percent-encoded in the path: quote(url, safe=""))
       GET /endless/MB          MB megabytes (at most 2048) of a JPEG start and zeros, as
                                image/jpeg without Content-Length, until the client goes away
       GET /trickle/MS/NAME     the headers (with Content-Length), then the file one byte
                                every MS milliseconds until the client goes away
       GET /empty               200, image/jpeg, an empty body
       GET /typed/CTYPE/NAME    the file, declared as CTYPE (percent-encoded in the path)
       anything else            404
    Query strings are ignored, so tests make their URLs unique with one.
    requests lists the path (query included) of every request, in arrival order."""

    def __init__(self, files):
        self.files = files
        self.seen = set()
        self.asked = {}  # path -> times asked, for /fail/
        self.requests = []  # every request's path (query included), in arrival order
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _serve(self, head):
                with server.lock:
                    server.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                parts = path.strip("/").split("/")
                name = parts[-1]
                f = server.files.get(name)
                ctype = MIME_OF_EXT.get(os.path.splitext(name)[1], "application/octet-stream")
                stream = False
                if len(parts) == 2 and parts[0] == "img":
                    pass
                elif len(parts) == 2 and parts[0] == "as-jpeg":
                    ctype = "image/jpeg"
                elif len(parts) == 3 and parts[0] == "slow" and parts[1].isdigit():
                    time.sleep(int(parts[1]) / 1000)
                elif len(parts) == 2 and parts[0] == "stream":
                    stream = True
                elif (len(parts) == 4 and parts[0] == "fail" and parts[1].isdigit()
                      and parts[2].isdigit()):
                    with server.lock:
                        server.asked[self.path] = server.asked.get(self.path, 0) + 1
                        failing = server.asked[self.path] <= int(parts[1])
                    if failing:
                        self.send_response(int(parts[2]))
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                elif len(parts) == 2 and parts[0] == "hang" and f is not None:
                    data = f.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        self.wfile.write(data[:1024])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    server.stopping.wait(120)
                    self.close_connection = True
                    return
                elif len(parts) == 2 and parts[0] == "flaky":
                    with server.lock:
                        first = self.path not in server.seen
                        server.seen.add(self.path)
                    if first:
                        self.send_response(503)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                elif len(parts) == 2 and parts[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", unquote(parts[1]))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                elif len(parts) == 2 and parts[0] == "endless" and parts[1].isdigit():
                    self._endless(min(int(parts[1]), 2048) * 1024 * 1024, head)
                    return
                elif (len(parts) == 3 and parts[0] == "trickle" and parts[1].isdigit()
                      and f is not None):
                    self._trickle(f.read_bytes(), ctype, int(parts[1]) / 1000, head)
                    return
                elif parts == ["empty"]:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                elif len(parts) == 3 and parts[0] == "typed":
                    ctype = unquote(parts[1])
                else:
                    f = None
                if f is None:
                    body = b"not found\n"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(body)
                    return
                data = f.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                if stream:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if head:
                    return
                try:
                    for i in range(0, len(data), 64 * 1024):
                        self.wfile.write(data[i:i + 64 * 1024])
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the daemon stopped reading (e.g. over fetch.max_bytes)

            def _endless(self, total, head):
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                if head:
                    return
                chunk = b"\0" * (64 * 1024)
                first = b"\xff\xd8\xff\xe0" + chunk[4:]
                sent = 0
                try:
                    while sent < total and not server.stopping.is_set():
                        block = first if sent == 0 else chunk
                        self.wfile.write(block[:total - sent])
                        sent += len(block)
                except OSError:
                    pass  # the daemon went away (over fetch.max_bytes, or stopped)

            def _trickle(self, data, ctype, interval, head):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.close_connection = True
                if head:
                    return
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        if server.stopping.wait(interval):
                            return
                except OSError:
                    pass  # the daemon went away (fetch.timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path):
        """A URL for path that no other request uses (defeats request dedup)."""
        return f"{self.base}/{path.lstrip('/')}?u={uuid.uuid4().hex}"


# ---------------------------------------------------------------------------
# The daemon under test


def proc_table():
    """{pid: (ppid, starttime)} of every process, from /proc/PID/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # After the command: state (field 3), ppid (4), ..., starttime (22).
        table[int(entry)] = (int(fields[1]), fields[19])
    return table


def descendants(pid):
    """[(pid, starttime)] of every live descendant of pid."""
    table = proc_table()
    children = {}
    for p, (ppid, _start) in table.items():
        children.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append((c, table[c][1]))
            todo.append(c)
    return out


def still_alive(procs):
    """The (pid, starttime) pairs of procs that still exist. An unreaped zombie
    counts too: the master must reap its children before it exits."""
    table = proc_table()
    return [(p, s) for p, s in procs if p in table and table[p][1] == s]


def children_by_kind(pid):
    """{"http": [pids], "worker": [pids], "delivery": [pids], "redis": [pids]}: the
    daemon's children by the name each gives itself (/proc/PID/comm)."""
    out = {"http": [], "worker": [], "delivery": [], "redis": []}
    for p, _ in descendants(pid):
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "thumb-http":
            out["http"].append(p)
        elif comm == "thumb-worker":
            out["worker"].append(p)
        elif comm == "thumb-delivery":
            out["delivery"].append(p)
        elif comm.startswith("redis"):
            out["redis"].append(p)
    return out


def wait_for(what, predicate, timeout, step=0.05):
    """Polls predicate() until it returns a true value (returned), or fails after timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")


def shm_path(pid_file):
    """/dev/shm path of the daemon's segment: named after its pid file (FNV-1a 64)."""
    h = 1469598103934665603
    for b in str(pid_file).encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return Path(f"/dev/shm/thumbnailed.{h:016x}")


def _resp_reply(f):
    """One RESP reply read from the file f (see RedisServer.query)."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError(f"short reply from redis-server: {line!r}")
    kind, rest = line[:1], line[1:-2].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"redis-server: {rest}")
    if kind == b":":
        return int(rest)
    if kind in (b"$", b"*") and int(rest) < 0:
        return None
    if kind == b"$":
        data = f.read(int(rest) + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        return [_resp_reply(f) for _ in range(int(rest))]
    raise ConnectionError(f"unexpected reply from redis-server: {line!r}")


class RedisServer:
    """A redis-server of the test's own on a unix socket in directory, with its
    append-only file there: stop it (any signal) and start it again on the
    same data."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "redis.sock"
        self.url = f"unix:{self.socket}"
        self.proc = None

    def start(self):
        self.log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.dir), "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.socket.exists() and self.command("PING") == "PONG":
                return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def command(self, *args):
        """One command over the socket (RESP), the reply decoded simply."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(2)
            s.connect(str(self.socket))
            payload = f"*{len(args)}\r\n" + "".join(
                f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
            s.sendall(payload.encode())
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            if line[:1] in "+-:":
                return line[1:]
            return data.decode(errors="replace")
        except OSError:
            return None
        finally:
            s.close()

    def query(self, *args):
        """One command over the socket, its whole reply parsed: a str (simple or
        bulk string), an int, None (nil), or a list (array). An error reply raises."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(self.socket))
            payload = f"*{len(args)}\r\n" + "".join(
                f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
            s.sendall(payload.encode())
            with s.makefile("rb") as f:
                return _resp_reply(f)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        self.proc = None


def resp_command(port, *args, timeout=2.0):
    """One command to the Redis or Sentinel on 127.0.0.1:port, its whole reply
    parsed as RedisServer.query does. Raises OSError when nothing answers within
    timeout (a stopped server accepts connections but never replies),
    RuntimeError on an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        payload = f"*{len(args)}\r\n" + "".join(
            f"${len(str(a).encode())}\r\n{a}\r\n" for a in args)
        s.sendall(payload.encode())
        with s.makefile("rb") as f:
            return _resp_reply(f)


def _stop_process(proc, timeout=10):
    """SIGCONT (a stopped process takes no SIGTERM), SIGTERM, wait up to timeout,
    then SIGKILL and wait: proc is gone when this returns."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class RedisNode:
    """One redis-server of a SentinelSet, on 127.0.0.1:port, with its config file
    (which Sentinel rewrites on a role change), log and append-only file in a
    directory of its own. stop/start keep the port and the data."""

    def __init__(self, directory, name, settings):
        self.dir = Path(directory) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.config = self.dir / "redis.conf"
        self.config.write_text("".join(f"{line}\n" for line in [
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", *settings]))
        self.proc = None
        self.log = None

    def __repr__(self):
        return f"<{self.name} 127.0.0.1:{self.port}>"

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def start(self, *args, timeout=10):
        """Starts the server (args are redis-server options that override its
        config file, e.g. "--replicaof", "127.0.0.1", "6380") and waits until
        it answers PING."""
        assert self.proc is None or self.proc.poll() is not None, f"{self} is running"
        self.log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(["redis-server", str(self.config), *args],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(f"{self} to answer PING", lambda: self.ping() == "PONG", timeout)
        return self

    def command(self, *args, timeout=2.0):
        return resp_command(self.port, *args, timeout=timeout)

    def ping(self):
        """PONG, the refusal (LOADING ...), or None when it does not answer."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            return self.command("PING", timeout=0.5)
        except RuntimeError as e:
            return str(e)
        except OSError:
            return None

    def role(self):
        """ROLE's reply: ["master", offset, [replicas]] or ["slave", host, port,
        link state, offset]; None when it does not answer."""
        try:
            return self.command("ROLE", timeout=1)
        except (OSError, RuntimeError):
            return None

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig (SIGKILL: the server dies at once) and waits for the exit."""
        if self.proc is None:
            return
        if sig == signal.SIGTERM:
            _stop_process(self.proc, timeout)
        else:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        self.log.close()

    def log_text(self):
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-8000:]
        except OSError:
            return "(no log)"


class Sentinel:
    """One `redis-server sentinel.conf --sentinel` of a SentinelSet: its own
    config file (Sentinel rewrites it as it learns), port and log."""

    def __init__(self, directory, name, monitor_lines):
        self.dir = Path(directory) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.config = self.dir / "sentinel.conf"
        self.config.write_text("".join(f"{line}\n" for line in [
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", *monitor_lines]))
        self.proc = None
        self.log = None

    def __repr__(self):
        return f"<{self.name} 127.0.0.1:{self.port}>"

    def start(self, timeout=10):
        self.log = open(self.dir / "sentinel.log", "ab")
        self.proc = subprocess.Popen(["redis-server", str(self.config), "--sentinel"],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server --sentinel exited with status "
                                   f"{self.proc.returncode}: Redis Sentinel cannot run here\n"
                                   f"{self.log_text()}")
            try:
                return self.command("PING", timeout=0.5) == "PONG"
            except (OSError, RuntimeError):
                return False

        wait_for(f"{self} to answer PING", answers, timeout)
        return self

    def command(self, *args, timeout=2.0):
        return resp_command(self.port, *args, timeout=timeout)

    def stop(self, timeout=10):
        if self.proc is not None:
            _stop_process(self.proc, timeout)
            self.log.close()

    def log_text(self):
        try:
            return (self.dir / "sentinel.log").read_text(errors="replace")[-8000:]
        except OSError:
            return "(no log)"


class SentinelSet:
    """A Redis made highly available by Sentinel, all on loopback, each process
    in a directory of its own under directory: a primary, one replica of it,
    and three Sentinels monitoring them as MASTER_NAME (quorum 2,
    down-after-milliseconds 1000, failover-timeout 5000, parallel-syncs 1).

    Both data servers keep an append-only file, never evict, and have
    min-replicas-to-write 1 / min-replicas-max-lag 10: a primary cut off from
    its replica refuses writes (NOREPLICAS). So after a failover the new
    primary takes writes only once the old one is back as its replica
    (restart() after kill_primary(), or cont() after stop_primary())."""

    MASTER_NAME = "mymaster"
    SERVER_SETTINGS = ["appendonly yes", "appendfsync everysec", 'save ""',
                       "maxmemory-policy noeviction", "min-replicas-to-write 1",
                       "min-replicas-max-lag 10",
                       # a replica that (re)connects is synced at once, not after 5 s
                       "repl-diskless-sync-delay 0"]

    def __init__(self, directory):
        self.dir = Path(directory)
        first = RedisNode(self.dir, "redis-a", self.SERVER_SETTINGS)
        second = RedisNode(self.dir, "redis-b", self.SERVER_SETTINGS +
                           [f"replicaof 127.0.0.1 {first.port}"])
        self.servers = [first, second]
        monitor = [f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {first.port} 2",
                   f"sentinel down-after-milliseconds {self.MASTER_NAME} 1000",
                   f"sentinel failover-timeout {self.MASTER_NAME} 5000",
                   f"sentinel parallel-syncs {self.MASTER_NAME} 1"]
        self.sentinels = [Sentinel(self.dir, f"sentinel-{i + 1}", monitor) for i in range(3)]

    def start(self, timeout=30):
        """Starts everything and waits (up to timeout) until ready(). Returns self."""
        try:
            for process in self.servers + self.sentinels:
                process.start()
            wait_for("the Sentinel set to be ready", self.ready, timeout, step=0.2)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def sentinel_list(self):
        """The redis.sentinels value: "127.0.0.1:P1 127.0.0.1:P2 127.0.0.1:P3"."""
        return " ".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_address(self, sentinel=0):
        """(host, port) of the master as that Sentinel names it
        (SENTINEL get-master-addr-by-name), or None when it does not answer."""
        try:
            host, port = self.sentinels[sentinel].command(
                "SENTINEL", "get-master-addr-by-name", self.MASTER_NAME)
        except (OSError, RuntimeError, TypeError, ValueError):
            return None
        return (host, int(port))

    def agreed_master(self):
        """(host, port) when every Sentinel names the same master, else None."""
        addresses = {self.master_address(i) for i in range(len(self.sentinels))}
        return addresses.pop() if len(addresses) == 1 else None

    def server_at(self, address):
        return next(s for s in self.servers if s.address == tuple(address))

    def primary(self):
        """The RedisNode every Sentinel names master (asserts they agree)."""
        address = self.agreed_master()
        assert address, f"the Sentinels do not agree on a master: {self.describe()}"
        return self.server_at(address)

    def replica(self):
        """The RedisNode that is not the primary."""
        primary = self.primary()
        return next(s for s in self.servers if s is not primary)

    def ready(self):
        """True when the Sentinels agree on a master that says ROLE master with
        the other server as an online replica, and each Sentinel knows that
        replica and the two other Sentinels and can authorize a failover."""
        address = self.agreed_master()
        if address is None:
            return False
        primary = self.server_at(address)
        other = next(s for s in self.servers if s is not primary)
        if not self.is_replica_of(other, primary):
            return False
        for s in self.sentinels:
            try:
                replicas = s.command("SENTINEL", "replicas", self.MASTER_NAME)
                peers = s.command("SENTINEL", "sentinels", self.MASTER_NAME)
                quorum = s.command("SENTINEL", "ckquorum", self.MASTER_NAME)
            except (OSError, RuntimeError):
                return False
            if len(peers) != len(self.sentinels) - 1 or not quorum.startswith("OK"):
                return False
            known = [dict(zip(r[::2], r[1::2])) for r in replicas]
            if not any(int(r["port"]) != primary.port and "s_down" not in r["flags"]
                       for r in known):
                return False
        return True

    def wait_failover(self, old, timeout=30):
        """Waits until every Sentinel names a master other than old (a
        RedisNode) and that server says ROLE master. Returns the new primary."""
        def switched():
            address = self.agreed_master()
            if address is None or address == old.address:
                return None
            role = self.server_at(address).role()
            return address if role and role[0] == "master" else None

        return self.server_at(wait_for(f"a failover away from {old}", switched, timeout,
                                       step=0.05))

    @staticmethod
    def is_replica_of(node, primary):
        """True when node says ROLE slave of primary with its link up, and
        primary lists it online."""
        role = node.role()
        if not (role and role[0] == "slave" and int(role[2]) == primary.port
                and role[3] == "connected"):
            return False
        try:
            info = primary.command("INFO", "replication")
        except (OSError, RuntimeError):
            return False
        return f"port={node.port},state=online" in info

    def wait_replica_of(self, node, primary, timeout=30):
        """Waits until is_replica_of(node, primary)."""
        wait_for(f"{node} to be an online replica of {primary}",
                 lambda: self.is_replica_of(node, primary), timeout)

    def kill_primary(self):
        """SIGKILLs the current primary; returns its RedisNode."""
        primary = self.primary()
        primary.stop(signal.SIGKILL)
        return primary

    def stop_primary(self):
        """SIGSTOPs the current primary (it keeps its sockets, answers nothing);
        returns its RedisNode."""
        primary = self.primary()
        primary.send(signal.SIGSTOP)
        return primary

    def cont(self, node):
        node.send(signal.SIGCONT)

    def restart(self, node, as_replica=True):
        """Starts node again on its data. as_replica: as a replica of the master
        the Sentinels name (else as its config file says, for the Sentinels to
        convert it)."""
        args = []
        if as_replica:
            host, port = self.agreed_master()
            args = ["--replicaof", host, str(port)]
        node.start(*args)

    def describe(self):
        """Each process's view, for assertion messages."""
        views = [f"{s}: ROLE {s.role()!r}" for s in self.servers]
        views += [f"{s}: master {self.master_address(i)!r}"
                  for i, s in enumerate(self.sentinels)]
        return "; ".join(views)

    def logs(self):
        return "\n".join(f"--- {p.name} ---\n{p.log_text()}"
                         for p in self.servers + self.sentinels)

    def stop(self):
        """Stops every process it started (SIGCONT, SIGTERM, SIGKILL after 10 s)."""
        for process in self.sentinels + self.servers:
            process.stop()


DEFAULT_OVERRIDES = {
    "daemon": {"user": "", "log_level": "info"},
    "http": {"processes": "2"},
    "worker": {"processes": "2"},
    "fetch": {"allow_private": "yes", "max_bytes": "1M"},
}


def write_config(path, sections):
    lines = ["# written by the integration suite"]
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {v}" for k, v in keys.items())
        lines.append("")
    Path(path).write_text("\n".join(lines))


class Daemon:
    """thumbnailed -f -c CONFIG in a directory of its own."""

    def __init__(self, binary, workdir, overrides=None):
        self.binary = binary
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run").mkdir(exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        openapi_check.daemon_bases.add(self.base)
        self.pid_file = self.dir / "run" / "thumbnailed.pid"
        self.log_path = self.dir / "thumbnailed.log"
        sections = {s: dict(k) for s, k in DEFAULT_OVERRIDES.items()}
        sections["daemon"].update({"pid_file": str(self.pid_file),
                                   "runtime_dir": str(self.dir / "run")})
        sections["http"]["listen"] = f"127.0.0.1:{self.port}"
        sections.setdefault("redis", {})["data_dir"] = str(self.dir / "data")
        for section, keys in (overrides or {}).items():
            sections.setdefault(section, {}).update(keys)
        self.sections = sections
        self.config = self.dir / "thumbnailed.conf"
        write_config(self.config, sections)
        self.proc = None
        self.returncode = None
        self.killed = False
        self.expect_unclean = False  # a test that kills the master itself sets this
        self.new_session = False  # its own process group, for tests that stop it whole

    def reconfigure(self, overrides, extra_text=""):
        """Rewrites the config with overrides merged in (and extra_text appended),
        then sends SIGHUP."""
        for section, keys in overrides.items():
            self.sections.setdefault(section, {}).update(keys)
        write_config(self.config, self.sections)
        if extra_text:
            with open(self.config, "a") as f:
                f.write(extra_text)
        self.proc.send_signal(signal.SIGHUP)

    def children(self):
        return children_by_kind(self.proc.pid)

    def restart(self):
        """Starts the daemon again on the same config and data (after a stop)."""
        assert self.proc is None or self.proc.poll() is not None
        self.returncode = None
        self.killed = False
        return self.start()

    def launch(self):
        """Starts thumbnailed -f -c CONFIG, its output to the log, and returns at
        once (start() also waits for /healthz); stop() ends it."""
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", str(self.config)],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=self.new_session)
        return self

    def start(self):
        self.launch()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"thumbnailed exited with status {self.proc.returncode} "
                                   f"before answering /healthz\n{self.log()}")
            try:
                r = requests.get(self.base + "/healthz", timeout=1)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"thumbnailed did not answer /healthz within {START_TIMEOUT}s\n"
                           f"{self.log()}")

    def log(self):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.log_path.name} ---\n{text[-20000:]}\n--- end ---"

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL what is left. Returns the exit status."""
        if self.proc is None or self.returncode is not None:
            return self.returncode
        family = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                family = family + descendants(self.proc.pid)
                self.proc.kill()
                self.proc.wait()
        for pid, _ in still_alive(family):
            self.killed = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.returncode = self.proc.returncode
        self._log.close()
        return self.returncode

    # -- HTTP shortcuts ------------------------------------------------------

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.get(self.base + path, **kw)

    def metric(self, sample):
        """The value of one sample of GET /metrics, named as it is printed
        (e.g. 'thumbnailed_children{kind="http"}'), or None when it is not there."""
        r = self.get("/metrics")
        assert r.status_code == 200, f"GET /metrics: {r.status_code} {r.text[:500]}"
        for line in r.text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return int(float(value))
        return None

    def metric_sum(self, name):
        """The sum of every sample of metric name, whatever its labels (e.g.
        thumbnailed_worker_jobs_total over its outcomes); 0 when there is none."""
        r = self.get("/metrics")
        assert r.status_code == 200, f"GET /metrics: {r.status_code} {r.text[:500]}"
        total = 0
        for line in r.text.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample == name or sample.startswith(name + "{"):
                total += int(float(value))
        return total

    def post(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.post(self.base + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT)
        return requests.request(method, self.base + path, **kw)

    def submit(self, **params):
        """POST /v1/thumbnails with params as JSON; asserts 202 and returns the job document."""
        r = self.post("/v1/thumbnails", json=params)
        assert r.status_code == 202, f"submit {params}: {r.status_code} {r.text}"
        return r.json()

    def upload(self, data, content_type="image/jpeg", **params):
        """POST the bytes with params in the query; asserts 202, returns the job document."""
        r = self.post("/v1/thumbnails", params=params, data=data,
                      headers={"Content-Type": content_type})
        assert r.status_code == 202, f"upload {params}: {r.status_code} {r.text}"
        return r.json()

    def job(self, job_id):
        r = self.get(f"/v1/thumbnails/{job_id}")
        assert r.status_code == 200, f"GET job {job_id}: {r.status_code} {r.text}"
        return r.json()

    def polled(self, job_id):
        """The job's document, or None for a 503 with Retry-After (Redis away
        for a moment: an http child that has not reconnected yet), which a
        polling client retries; anything else but 200 fails."""
        r = self.get(f"/v1/thumbnails/{job_id}")
        if r.status_code == 503 and "Retry-After" in r.headers:
            return None
        assert r.status_code == 200, f"GET job {job_id}: {r.status_code} {r.text}"
        return r.json()

    def wait(self, job_id, timeout=JOB_TIMEOUT):
        """Polls the job until it is terminal; returns its document."""
        deadline = time.monotonic() + timeout
        doc = None
        while time.monotonic() < deadline:
            doc = self.polled(job_id) or doc
            if doc and doc["status"] in TERMINAL:
                return doc
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not terminal after {timeout}s: {doc}")

    def wait_until(self, job_id, statuses, timeout=JOB_TIMEOUT):
        deadline = time.monotonic() + timeout
        doc = None
        while time.monotonic() < deadline:
            doc = self.polled(job_id) or doc
            if doc and doc["status"] in statuses:
                return doc
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {statuses} in {timeout}s: {doc}")

    def run(self, **params):
        """Submits, waits, and asserts the job is done; returns its document."""
        doc = self.wait(self.submit(**params)["id"])
        assert doc["status"] == "done", f"job {params} ended {doc['status']}: {doc}"
        return doc

    def image(self, doc):
        r = self.get(doc["result"]["image_url"])
        assert r.status_code == 200, f"GET image: {r.status_code} {r.text[:500]}"
        return r


def error_of(response, status, code=None, field=None):
    """Asserts response is the error document of docs/API.md §10.1 with that status (and
    code, field when given); returns the error object."""
    assert response.status_code == status, \
        f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        response.headers
    err = response.json().get("error")
    assert isinstance(err, dict), response.text
    assert isinstance(err.get("code"), str) and err["code"], err
    assert isinstance(err.get("message"), str) and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    if field is not None:
        assert err.get("field") == field, err
    return err



def iso_time(s):
    return re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", s or "") is not None
