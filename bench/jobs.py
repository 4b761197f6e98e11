#!/usr/bin/python3
"""End-to-end job throughput beside the libvips limit, measured in one run.

Starts its own thumbnailed (embedded Redis) and a loopback HTTP server that
serves a photo (nginx, one worker, when it is installed: it costs the shared
cores far less than Python's http.server), submits N jobs (URL source, a
distinct URL each), long-polls each until all are terminal and prints jobs/s; then runs
vips_loop (vips_thumbnail_buffer in a loop, one process per core) on the same
photo and prints the ratio.

bench/mix.py supersedes it for the mix: four photos (baseline and progressive
JPEG, a 5120x2880 JPEG, a PNG) by two outputs, each beside its limit, with the
CPU of each process kind and latency percentiles. This one stays for one photo
at one size.

usage: bench/jobs.py BUILD_DIR PHOTO [N] [WIDTH] [HEIGHT] [WORKERS]
(WORKERS: worker.processes, default one per core; the libvips loop always
runs one process per core)
"""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from read import find_nginx, free_port  # bench/read.py, beside this file


class Nginx:
    """nginx serving a directory on a free loopback port, one worker."""

    def __init__(self, binary, tmp, root):
        self.port = free_port()
        d = os.path.join(tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {d};
    proxy_temp_path {d};
    fastcgi_temp_path {d};
    uwsgi_temp_path {d};
    scgi_temp_path {d};
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
    }}
}}
""")
        self.proc = subprocess.Popen([binary, "-p", d + "/", "-e", d + "/error.log", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def shutdown(self):
        self.proc.terminate()
        self.proc.wait(10)


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def main():
    build, photo = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    w = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    h = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    cores = os.cpu_count() or 1
    workers = int(sys.argv[6]) if len(sys.argv) > 6 else cores
    tmp = tempfile.mkdtemp(prefix="th-bench-")
    photo_dir = os.path.dirname(os.path.abspath(photo))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=photo_dir, **k)

        def log_message(self, *a):
            pass

    nginx = find_nginx()
    if nginx:
        src, src_name = Nginx(nginx, tmp, photo_dir), "nginx"
        src_port = src.port
    else:
        src = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=src.serve_forever, daemon=True).start()
        src_port, src_name = src.server_address[1], "python http.server"
    src_url = "http://127.0.0.1:%d/%s" % (src_port, os.path.basename(photo))

    port = free_port()
    conf = os.path.join(tmp, "bench.conf")
    with open(conf, "w") as f:
        f.write(f"""[daemon]
user =
pid_file = {tmp}/run/thumbnailed.pid
runtime_dir = {tmp}/run
log_level = warn
[http]
listen = 127.0.0.1:{port}
[worker]
processes = {workers}
[fetch]
allow_private = yes
[redis]
data_dir = {tmp}/data
""")
    log = open(os.path.join(tmp, "daemon.log"), "w")
    daemon = subprocess.Popen([os.path.join(build, "thumbnailed"), "-f", "-c", conf],
                              stderr=log)
    base = "http://127.0.0.1:%d" % port
    try:
        for _ in range(200):
            try:
                request("GET", base + "/healthz")
                break
            except OSError:
                time.sleep(0.05)
        t0 = time.monotonic()
        ids = []
        for i in range(n):
            # A distinct URL per job (the server ignores the query): identical
            # requests would be deduplicated into one job.
            status, doc = request("POST", base + "/v1/thumbnails",
                                  {"url": "%s?n=%d" % (src_url, i), "width": w, "height": h,
                                   "fit": "cover", "format": "jpeg"})
            ids.append(doc["id"])
        if len(set(ids)) != n:
            sys.exit("bench: %d distinct jobs for %d submissions" % (len(set(ids)), n))
        t_submit = time.monotonic() - t0
        # Long-poll each job in turn (they end roughly in order): the client
        # costs the shared cores almost nothing, unlike polling every job.
        pending = set(ids)
        failed = 0
        deadline = time.monotonic() + 600
        for i in ids:
            while i in pending and time.monotonic() < deadline:
                _, doc = request("GET", base + "/v1/thumbnails/" + i + "?wait=30")
                if doc["status"] in ("done", "failed", "canceled"):
                    pending.discard(i)
                    failed += doc["status"] != "done"
        secs = time.monotonic() - t0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        src.shutdown()
    if pending:
        sys.exit("bench: %d jobs not finished" % len(pending))

    out = subprocess.run([os.path.join(build, "bench", "vips_loop"), photo, str(n), str(cores),
                          str(w), str(h)], check=True, capture_output=True, text=True).stdout
    # The last line: "limit: <rate>/s (<allocator>)", the faster of glibc's
    # defaults and the tuned allocator (vips_loop.c).
    limit = out.strip().splitlines()[-1]
    vips_rate = float(limit.split()[1].rstrip("/s"))
    vips_alloc = limit.split("(")[1].rstrip(")")
    rate = n / secs
    print("| measure | value |")
    print("|---|---|")
    print("| photo | %s |" % photo)
    print("| jobs | %d at %dx%d cover, jpeg, %d workers |" % (n, w, h, workers))
    print("| source server | %s |" % src_name)
    print("| submit (%d POSTs, one client) | %.2f s |" % (n, t_submit))
    print("| thumbnailed end to end | %.1f jobs/s (%d failed) |" % (rate, failed))
    print("| libvips in-process, %d processes | %.1f thumbnails/s (%s allocator) |"
          % (cores, vips_rate, vips_alloc))
    print("| ratio thumbnailed / libvips | %.2f |" % (rate / vips_rate))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
