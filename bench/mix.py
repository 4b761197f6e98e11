#!/usr/bin/python3
"""Throughput on a mix of real photos and outputs, each beside its libvips limit, in one run.

Starts one thumbnailed for the whole run (embedded Redis, worker.processes
auto unless --workers: one per core and one more; http.processes the default) and a loopback
source server for the photos directory (nginx, one worker, sendfile; installed
from Debian's archive when missing, else Python's http.server). Each row is a
photo and an output spec (4 photos x 2 specs):

- daemon: after a warm-up of 2 x workers jobs of the row, N URL jobs (a URL
  of its own each: a query the source server ignores, so deduplication never
  answers) submitted as fast as one client can on one keep-alive connection,
  while a pool of threads long-polls each job until it is terminal. jobs/s is
  N / (last job seen done - first submit); p50 and p99 of each job's
  done - submit (the wait in the queue included); the worker's own time per
  job (started_at to finished_at of its document). Over the phase, the CPU
  of each process kind (utime + stime of /proc/<pid>/stat: master, http,
  worker, redis, delivery, the source server, this client) as a share of the
  machine (CPU seconds / (wall x cores)), and the whole machine's busy share
  (/proc/stat) less all of these: the outside load, other work on the
  machine, printed for the jobs and for the limit;
- limit: then, with the daemon idle, BUILD_DIR/bench/vips_loop on the same
  photo and spec, N thumbnails in one process per core, with glibc's
  allocator and the tuned one; the faster is the limit. The ratio is the
  daemon's jobs/s over it.

- peer: then, on the 100x100 cover JPEG rows, nginx's own image_filter
  module (Debian's libnginx-mod-http-image-filter, installed when missing):
  GET /crop/<photo> with `image_filter crop 100 100`, quality 80, as many
  worker processes as the daemon has workers, N requests over 2 x workers
  keep-alive connections: req/s, the ratio thumbnailed / peer, p50/p99 per
  request, the peer's CPU.

Memory per row: each worker's peak RSS is reset before the row's jobs
(/proc/<pid>/clear_refs), read after them, and printed beside vips_loop's
peak RSS (ru_maxrss of its processes).

With --rounds R each row runs R times (daemon phase, limit, peer) and the
medians are printed. Every job must end done with the size asked for, else
the bench fails with the end of the daemon's log. At the end, the peak RSS
(VmHWM) and RssAnon / RssFile / RssShmem of every process of the daemon.
Prints markdown tables.

usage: bench/mix.py BUILD_DIR [--photos DIR] [--jobs N] [--rounds R] [--workers N] [--rows TEXT]
"""
import argparse
import datetime
import http.client
import http.server
import json
import math
import os
import queue
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from jobs import Nginx  # bench/jobs.py, beside this file
from read import TICK, find_nginx, free_port, live_pids, machine, stop, tail, \
    wait_http  # bench/read.py

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS_DIRS = (os.path.join(HERE, "photos", "usr", "share", "wallpapers"),  # get-photos.sh
               "/usr/share/wallpapers")  # plasma-workspace-wallpapers installed
PHOTOS = ("Path/contents/images/2560x1600.jpg",
          "Autumn/contents/images/2560x1600.jpg",
          "SafeLanding/contents/images/5120x2880.jpg",
          "FlyingKonqui/contents/images/2560x1600.png")
SPECS = ({"width": 100, "height": 100, "fit": "cover", "format": "jpeg"},
         {"width": 512, "height": 512, "fit": "inside", "format": "webp"})
POLLERS = 32  # threads long-polling; more than the jobs a node has in flight
PHASE_TIMEOUT = 600  # seconds for one phase: a warm-up, the N jobs, one vips_loop run
TERMINAL = ("done", "failed", "canceled")
# The columns of the CPU share, in order: the daemon's kinds, then the others.
CPU_KINDS = ("worker", "http", "master", "redis", "delivery", "source", "client")
# The daemon's children by process name (comm); their titles in ps are
# "thumbnailed: worker process" and so on (src/master/supervise.c).
COMM_KINDS = {"thumb-worker": "worker", "thumb-http": "http", "thumb-delivery": "delivery",
              "redis-server": "redis"}
STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")
# nginx's image_filter module (Debian's libnginx-mod-http-image-filter).
IMAGE_FILTER = "/usr/lib/nginx/modules/ngx_http_image_filter_module.so"


def log(msg):
    print("mix.py: " + msg, file=sys.stderr, flush=True)


def install_nginx():
    """Installs nginx from Debian's archive when missing; its path, or None."""
    if find_nginx():
        return find_nginx()
    log("installing nginx")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(sudo + ["apt-get", "update"], env=env, check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", "nginx"],
                       env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        log("could not install nginx (%s): the source server is Python's http.server" % e)
    return find_nginx()


def install_image_filter():
    """Installs nginx's image_filter module from Debian's archive when missing;
    whether it is there."""
    if os.path.exists(IMAGE_FILTER):
        return True
    log("installing libnginx-mod-http-image-filter")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends",
                               "libnginx-mod-http-image-filter"],
                       env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        log("could not install libnginx-mod-http-image-filter (%s): no peer figures" % e)
    return os.path.exists(IMAGE_FILTER)


def first_line(cmd, prefix=""):
    """The first line of cmd's output (stdout and stderr) that starts with prefix, or "?"."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return next((x.strip() for x in (p.stdout + p.stderr).splitlines()
                 if x.strip().startswith(prefix)), "?")


def image_kind(path):
    """"baseline JPEG", "progressive JPEG" or "PNG", read from the file's bytes."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if not data.startswith(b"\xff\xd8"):
        return "?"
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xC0, 0xC1):
            return "baseline JPEG"
        if marker == 0xC2:
            return "progressive JPEG"
        if marker in (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return "JPEG (SOF%X)" % (marker & 0x0F)
        if marker == 0xDA:
            break
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return "JPEG"


def doc_time(text):
    """Seconds since the epoch of a job document's time, "2026-11-28T09:14:54.123Z"."""
    t = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def pct(values, q):
    """The q-th percentile (nearest rank) of values."""
    v = sorted(values)
    return v[max(0, math.ceil(q / 100.0 * len(v)) - 1)]


# ---- the processes ----------------------------------------------------------

class Source:
    """The photos directory over loopback HTTP: nginx (one worker) or http.server."""

    def __init__(self):
        self.nginx = self.httpd = None
        self.pid = None  # nginx's master; None when the server is in this process

    def start(self, tmp, root, nginx):
        if nginx:
            # Kept before its __init__ runs, so that stop() ends an nginx that
            # started but never answered.
            self.nginx = Nginx.__new__(Nginx)
            self.nginx.__init__(nginx, tmp, root)
            self.port, self.pid = self.nginx.port, self.nginx.proc.pid
            self.name = "%s, 1 worker, sendfile" % first_line([nginx, "-v"], "nginx").replace(
                "nginx version: ", "")
        else:
            class Quiet(http.server.SimpleHTTPRequestHandler):
                def __init__(self, *a, **k):
                    super().__init__(*a, directory=root, **k)

                def log_message(self, *a):
                    pass

            self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
            threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
            self.port = self.httpd.server_address[1]
            self.name = "python http.server (in the client's process: its CPU is the client's)"

    def url(self, rel):
        return "http://127.0.0.1:%d/%s" % (self.port, rel)

    def stop(self):
        if self.nginx:
            stop(getattr(self.nginx, "proc", None), "nginx", 10)
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


class Peer:
    """nginx's image_filter on the photos directory: GET /crop/<photo> is the
    photo cropped to 100x100 (`image_filter crop 100 100`: scaled to cover the
    box, then the centre cut), JPEG quality 80, with as many worker processes
    as the daemon has workers."""

    def __init__(self, nginx, tmp, root, processes):
        self.port = free_port()
        d = os.path.join(tmp, "peer")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module {IMAGE_FILTER};
daemon off;
worker_processes {processes};
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
        location /crop/ {{
            alias {root}/;
            image_filter crop 100 100;
            image_filter_jpeg_quality 80;
            image_filter_buffer 32M;
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([nginx, "-p", d + "/", "-e", d + "/error.log", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.pid, self.processes = self.proc.pid, processes
        self.name = "%s image_filter, %d worker processes" % (
            first_line([nginx, "-v"], "nginx").replace("nginx version: ", ""), processes)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx (image_filter) exited with status %d: %s" % (
                    self.proc.returncode, tail(os.path.join(d, "error.log"))))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx (image_filter) does not listen")
                time.sleep(0.05)

    def stop(self):
        stop(self.proc, "nginx (image_filter)", 10)


def image_size(data):
    """(width, height, mime) of JPEG or PNG bytes; RuntimeError otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), "image/png"
    i = 2
    while data.startswith(b"\xff\xd8") and i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (int.from_bytes(data[i + 7:i + 9], "big"),
                    int.from_bytes(data[i + 5:i + 7], "big"), "image/jpeg")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise RuntimeError("not a JPEG or PNG image: %r" % data[:16])


def start_daemon(build, tmp, port, workers, source_port):
    conf = os.path.join(tmp, "thumbnailed.conf")
    with open(conf, "w") as f:
        f.write(f"""[daemon]
user =
pid_file = {tmp}/run/thumbnailed.pid
runtime_dir = {tmp}/run
log_level = warn
stop_timeout = 5s
[http]
listen = 127.0.0.1:{port}
max_queued_per_client = 0
[worker]
processes = {workers or "auto"}
job_timeout = 10m
[fetch]
allow_hosts = 127.0.0.1:{source_port}
[redis]
data_dir = {tmp}/data
""")
    logf = open(os.path.join(tmp, "thumbnailed.log"), "w")
    # A session of its own: Ctrl-C reaches this script, which stops the daemon.
    return subprocess.Popen([os.path.join(build, "thumbnailed"), "-f", "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True)


def daemon_tree(master):
    """{pid: (kind, ticks)} of the master and its descendants; a descendant of
    Redis (a rewrite of its AOF) counts as redis."""
    stats = live_pids()
    tree, todo = {}, [(master, "master")]
    while todo:
        pid, kind = todo.pop()
        if pid in tree or pid not in stats:
            continue
        comm, _, ticks = stats[pid]
        if pid != master and kind != "redis":
            kind = COMM_KINDS.get(comm, comm)
        tree[pid] = (kind, ticks)
        todo.extend((p, kind if kind == "redis" else "") for p, st in stats.items()
                    if st[1] == pid)
    return tree


def pids_of(tree, kind):
    return sorted(p for p, (k, _) in tree.items() if k == kind)


def wait_children(master, workers, timeout=30):
    """The daemon's tree once `workers` workers and at least one http child run and
    no process has come or gone for a second."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        tree = daemon_tree(master)
        if set(tree) != last:
            last, since = set(tree), time.monotonic()
        elif (len(pids_of(tree, "worker")) == workers and pids_of(tree, "http")
              and time.monotonic() - since >= 1):
            return tree
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon has %d workers and %d http children, not %d and 1+"
                               % (len(pids_of(tree, "worker")), len(pids_of(tree, "http")),
                                  workers))
        time.sleep(0.1)


def status_kb(pid):
    """{field: kB} of STATUS_FIELDS from /proc/<pid>/status."""
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in STATUS_FIELDS:
                got[k] = int(v.split()[0])
    return got


# ---- CPU over a window ------------------------------------------------------

def machine_ticks():
    """(busy, steal) ticks of all CPUs so far, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9])
    return user + nice + system + irq + softirq, steal


class Meter:
    """Snapshots of everything's CPU; the shares of the machine between two of them."""

    def __init__(self, master, source_pid):
        self.master, self.source_pid = master, source_pid
        self.cores = os.cpu_count() or 1

    def snap(self):
        t = os.times()
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        source = 0
        if self.source_pid:
            source = sum(ticks for _, ticks in daemon_tree(self.source_pid).values())
        return {"t": time.monotonic(), "tree": daemon_tree(self.master), "source": source,
                "client": t.user + t.system, "children": ch.ru_utime + ch.ru_stime,
                "machine": machine_ticks()}

    def shares(self, a, b):
        """{kind: share of the machine} between snapshots a and b: the daemon's kinds
        (processes alive at both ends), source, client, "children" (processes this
        script ran and reaped meanwhile: vips_loop), "busy" and "steal" of the whole
        machine, and "outside": busy less all of these. RuntimeError when a process
        of the daemon (other than a helper of Redis) ended meanwhile: its CPU would be
        lost, and the daemon would have replaced it."""
        cap = (b["t"] - a["t"]) * self.cores
        gone = [(p, k) for p, (k, _) in a["tree"].items() if p not in b["tree"]]
        if any(p == self.master or k != "redis" for p, k in gone):
            raise RuntimeError("daemon processes ended during the phase: %s (see its log)"
                               % ", ".join("%s %d" % (k, p) for p, k in gone))
        s = {k: 0.0 for k in CPU_KINDS}
        for pid, (kind, ticks) in b["tree"].items():
            s[kind] = s.get(kind, 0.0) + (ticks - a["tree"].get(pid, (kind, 0))[1]) / TICK / cap
        s["source"] = (b["source"] - a["source"]) / TICK / cap
        s["client"] = (b["client"] - a["client"]) / cap
        s["children"] = (b["children"] - a["children"]) / cap
        s["daemon"] = sum(v for k, v in s.items() if k not in ("source", "client", "children"))
        s["busy"] = (b["machine"][0] - a["machine"][0]) / TICK / cap
        s["steal"] = (b["machine"][1] - a["machine"][1]) / TICK / cap
        s["outside"] = s["busy"] - s["daemon"] - s["source"] - s["client"] - s["children"]
        return s


# ---- the jobs ---------------------------------------------------------------

class Api:
    """One keep-alive connection to the daemon."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        """The JSON document of one request; RuntimeError on an HTTP error. Opens the
        connection again once when the server closed it."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        if r.status >= 400:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status,
                                                 text.decode(errors="replace")[:500]))
        return json.loads(text)

    def close(self):
        self.conn.close()


class Pollers:
    """Threads, each on a connection of its own, that long-poll the jobs put in
    their queue, one at a time and in order, until each is terminal; seen[id] =
    (time it was seen terminal, its document)."""

    def __init__(self, port, deadline):
        self.port, self.deadline = port, deadline
        self.jobs = queue.Queue()
        self.seen, self.lock = {}, threading.Lock()
        self.error, self.stopping = None, threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(POLLERS)]
        for t in self.threads:
            t.start()

    def _run(self):
        api = Api(self.port)
        try:
            while not self.stopping.is_set():
                jid = self.jobs.get()
                if jid is None:
                    return
                while True:
                    left = self.deadline - time.monotonic()
                    if left <= 0:
                        raise RuntimeError("job %s not terminal in time" % jid)
                    doc = api.call("GET", "/v1/thumbnails/%s?wait=%d"
                                   % (jid, max(1, min(30, int(left)))))
                    if doc["status"] in TERMINAL:
                        break
                t = time.monotonic()
                with self.lock:
                    self.seen[jid] = (t, doc)
        except Exception as e:  # noqa: BLE001 - handed to the main thread
            with self.lock:
                self.error = self.error or e
            self.stopping.set()
        finally:
            api.close()

    def close(self):
        """No more jobs: each thread ends after the jobs already queued."""
        for _ in self.threads:
            self.jobs.put(None)

    def join(self):
        """Waits for every thread; raises the first error of any."""
        for t in self.threads:
            while t.is_alive():
                t.join(0.2)
                if self.error:
                    raise RuntimeError("long-poll: %s" % self.error)
                if time.monotonic() > self.deadline + 60:
                    raise RuntimeError("the long-polls did not end")
        if self.error:
            raise RuntimeError("long-poll: %s" % self.error)


class Bench:
    def __init__(self, port, source, meter, workers, photos_dir, build):
        self.port, self.source, self.meter = port, source, meter
        self.workers, self.photos_dir, self.build = workers, photos_dir, build
        self.ids = set()

    def jobs(self, row, n, measured):
        """Submits n jobs of the row and waits for each. Returns, when measured, the
        phase's figures; RuntimeError when a job is not done at the size asked for."""
        photo, spec = row
        api = Api(self.port)
        pollers = Pollers(self.port, time.monotonic() + PHASE_TIMEOUT)
        submitted = []
        workers = pids_of(daemon_tree(self.meter.master), "worker")
        if measured:
            for pid in workers:  # the peak RSS from now on: this row's (proc(5) clear_refs)
                with open("/proc/%d/clear_refs" % pid, "w") as f:
                    f.write("5")
        try:
            start = self.meter.snap() if measured else None
            for _ in range(n):
                # A distinct URL per job (the source server ignores the query):
                # an identical request would be deduplicated into an earlier job.
                body = dict(spec, url=self.source.url(photo) + "?u=" + uuid.uuid4().hex)
                t = time.monotonic()
                doc = api.call("POST", "/v1/thumbnails", body)
                if doc["id"] in self.ids:
                    raise RuntimeError("submit answered an earlier job %s: %s"
                                       % (doc["id"], body))
                self.ids.add(doc["id"])
                submitted.append((doc["id"], t))
                pollers.jobs.put(doc["id"])
            t_submitted = time.monotonic()
            pollers.close()
            pollers.join()
            end = self.meter.snap() if measured else None
        finally:
            pollers.stopping.set()
            pollers.close()
            api.close()
        docs = [pollers.seen[i][1] for i, _ in submitted]
        bad = [d for d in docs if d["status"] != "done"]
        if bad:
            raise RuntimeError("%s, %s: %d of %d jobs not done, the first: %s" % (
                photo, spec_name(spec), len(bad), n, json.dumps(bad[0])[:1500]))
        sizes = {(d["result"]["width"], d["result"]["height"], d["result"]["mime"])
                 for d in docs}
        for w, h, mime in sizes:
            fits = (w, h) == (spec["width"], spec["height"]) if spec["fit"] == "cover" else \
                max(w / spec["width"], h / spec["height"]) == 1
            if mime != "image/" + spec["format"] or not fits:
                raise RuntimeError("%s, %s: a result of %dx%d %s" % (
                    photo, spec_name(spec), w, h, mime))
        if not measured:
            return None
        first = submitted[0][1]
        last = max(pollers.seen[i][0] for i, _ in submitted)
        lat = [(pollers.seen[i][0] - t) * 1000.0 for i, t in submitted]
        # The worker's part of each job, from the job's own times: started_at
        # to finished_at (fetch, decode, resize, encode, store).
        work = [(doc_time(d["finished_at"]) - doc_time(d["started_at"])) * 1000.0 for d in docs]
        rss = [status_kb(pid) for pid in workers]
        return {"rate": n / (last - first), "wall": last - first,
                "hwm": max(x["VmHWM"] for x in rss) / 1024.0,
                # the peak less the libraries' and the shared cache's pages
                "priv": max(x["VmHWM"] - x["RssFile"] - x["RssShmem"] for x in rss) / 1024.0,
                "submit": t_submitted - first, "p50": pct(lat, 50), "p99": pct(lat, 99),
                "work": statistics.median(work),
                "cpu": self.meter.shares(start, end), "source": docs[0].get("source", {}),
                "sizes": sorted(sizes)}

    def limit(self, row, n):
        """vips_loop on the row's photo and spec, n thumbnails in one process per core:
        {"glibc", "tuned", "limit", "alloc", "cpu"}."""
        photo, spec = row
        cmd = [os.path.join(self.build, "bench", "vips_loop"),
               os.path.join(self.photos_dir, photo), str(n), str(self.meter.cores),
               str(spec["width"]), str(spec["height"]), spec["fit"], spec["format"], "best"]
        start = self.meter.snap()
        # A group of its own: on a timeout, an error or Ctrl-C the processes it
        # forked go with it.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=PHASE_TIMEOUT)
        except BaseException as e:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            if isinstance(e, subprocess.TimeoutExpired):
                raise RuntimeError("%s: not done in %d s" % (shlex.join(cmd), PHASE_TIMEOUT))
            raise
        end = self.meter.snap()
        if p.returncode != 0:
            raise RuntimeError("%s: status %d: %s" % (shlex.join(cmd), p.returncode,
                                                      err.strip()[-1000:]))
        # "glibc: N thumbnails in S s = R/s", the same for "tuned", and last
        # "limit: R/s (ALLOC)", the faster of the two (vips_loop.c).
        r = {"cpu": self.meter.shares(start, end)}
        for line in out.splitlines():
            key, _, rest = line.partition(":")
            if key in ("glibc peak RSS", "tuned peak RSS"):
                # "<MB> MB, less file pages <MB> MB"
                r[key.split()[0] + "_rss"] = float(rest.split()[0])
                r[key.split()[0] + "_priv"] = float(rest.split()[-2])
            elif key in ("glibc", "tuned"):
                r[key] = float(rest.split("=")[1].strip().rstrip("/s"))
            elif key == "limit":
                r["limit"] = float(rest.split()[0].rstrip("/s"))
                r["alloc"] = rest.split("(")[1].rstrip(")")
        if not all(k in r for k in ("glibc", "tuned", "limit", "glibc_rss", "tuned_rss",
                                    "glibc_priv", "tuned_priv")):
            raise RuntimeError("%s: unexpected output:\n%s" % (shlex.join(cmd), p.stdout))
        return r


def peer_run(peer, photo, n):
    """n GETs of the photo cropped by the peer, over 2 x its processes keep-alive
    connections: {"rate", "p50", "p99", "cpu" (the peer's share of the machine),
    "size"}. RuntimeError on an answer that is not a 100x100 image."""
    meter = Meter(peer.pid, None)
    conns = 2 * peer.processes
    todo = queue.Queue()
    for i in range(n):
        todo.put(i)
    lat, sizes, errors, lock = [], set(), [], threading.Lock()

    def run():
        c = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                t = time.monotonic()
                c.request("GET", "/crop/%s?u=%d" % (photo, i))
                r = c.getresponse()
                body = r.read()
                ms = (time.monotonic() - t) * 1000.0
                if r.status != 200:
                    raise RuntimeError("GET /crop/%s: %d %s" % (photo, r.status, body[:200]))
                size = image_size(body) if i < conns else None
                with lock:
                    lat.append(ms)
                    if size:
                        sizes.add(size)
        except Exception as e:  # noqa: BLE001 - handed to the caller
            with lock:
                errors.append(e)
        finally:
            c.close()

    start = meter.snap()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PHASE_TIMEOUT)
    end = meter.snap()
    if errors:
        raise RuntimeError("peer: %s" % errors[0])
    if len(lat) != n:
        raise RuntimeError("peer: %d of %d requests answered in time" % (len(lat), n))
    bad = [x for x in sizes if x[:2] != (100, 100)]
    if bad:
        raise RuntimeError("peer: a crop of %dx%d %s" % bad[0])
    sh = meter.shares(start, end)
    return {"rate": n / (end["t"] - start["t"]), "p50": pct(lat, 50), "p99": pct(lat, 99),
            "cpu": sh["daemon"], "size": sorted(sizes)}


def is_crop(spec):
    """Whether the peer makes the same output: 100x100 cover JPEG (image_filter crop)."""
    return (spec["width"], spec["height"], spec["fit"], spec["format"]) == (
        100, 100, "cover", "jpeg")


def spec_name(spec):
    return "%dx%d %s %s" % (spec["width"], spec["height"], spec["fit"], spec["format"])


def row_name(row):
    return "%s %s" % (row[0].split("/")[0], os.path.basename(row[0]))


# ---- main -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", metavar="BUILD_DIR",
                    help="build directory holding thumbnailed and bench/vips_loop")
    ap.add_argument("--photos", metavar="DIR",
                    help="plasma-workspace-wallpapers' wallpapers directory (default: "
                         "bench/photos/usr/share/wallpapers from bench/get-photos.sh, else "
                         "/usr/share/wallpapers)")
    ap.add_argument("--jobs", type=int, default=200, metavar="N",
                    help="jobs per row and round, and thumbnails of each vips_loop run "
                         "(default 200)")
    ap.add_argument("--rounds", type=int, default=1, metavar="R",
                    help="daemon phase and limit of each row, R times alternating; medians "
                         "(default 1)")
    ap.add_argument("--workers", type=int, metavar="N",
                    help="worker.processes (default: auto, one per core and one more)")
    ap.add_argument("--rows", metavar="TEXT",
                    help="only the rows whose 'photo spec' contains TEXT, e.g. SafeLanding "
                         "or webp")
    args = ap.parse_args()
    binary = os.path.join(args.build, "thumbnailed")
    for exe in (binary, os.path.join(args.build, "bench", "vips_loop")):
        if not os.access(exe, os.X_OK):
            sys.exit("mix.py: no %s (cmake --build %s --target thumbnailed vips_loop)"
                     % (exe, args.build))
    if args.jobs < 1 or args.rounds < 1 or (args.workers is not None and args.workers < 1):
        sys.exit("mix.py: --jobs, --rounds and --workers must be at least 1")
    photos_dir = args.photos or next((d for d in PHOTOS_DIRS if os.path.isdir(d)), None)
    if not photos_dir or not os.path.isdir(photos_dir):
        sys.exit("mix.py: no photos directory %s (bench/get-photos.sh unpacks Debian's "
                 "plasma-workspace-wallpapers into bench/photos/)" % (photos_dir or
                                                                       " or ".join(PHOTOS_DIRS)))
    photos_dir = os.path.abspath(photos_dir)
    rows = [(p, s) for p in PHOTOS for s in SPECS
            if not args.rows or args.rows in "%s %s" % (p, spec_name(s))]
    if not rows:
        sys.exit("mix.py: no row matches --rows %r" % args.rows)
    for p in sorted({p for p, _ in rows}):
        if not os.path.isfile(os.path.join(photos_dir, p)):
            sys.exit("mix.py: no photo %s in %s" % (p, photos_dir))
    cores = os.cpu_count() or 1
    workers = args.workers or cores + 1  # auto (src/common/config.c)
    nginx = install_nginx()
    peer_ok = nginx is not None and install_image_filter()

    results = [[] for _ in rows]  # by row: each round's {"phase", "limit"}
    tmp = tempfile.mkdtemp(prefix="th-mix-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody when started by root
    daemon = source = peer = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        source = Source()
        source.start(tmp, photos_dir, nginx)
        port = free_port()
        daemon = start_daemon(args.build, tmp, port, args.workers, source.port)
        wait_http(port, "/readyz", 30, daemon, os.path.join(tmp, "thumbnailed.log"))
        wait_children(daemon.pid, workers)
        bench = Bench(port, source, Meter(daemon.pid, source.pid), workers, photos_dir,
                      args.build)
        if peer_ok and any(is_crop(spec) for _, spec in rows):
            peer = Peer(nginx, tmp, photos_dir, workers)
        for i, row in enumerate(rows):
            for r in range(args.rounds):
                what = "row %d/%d (%s, %s), round %d/%d" % (
                    i + 1, len(rows), row_name(row), spec_name(row[1]), r + 1, args.rounds)
                log("%s: warm-up, %d jobs" % (what, 2 * workers))
                bench.jobs(row, 2 * workers, measured=False)
                log("%s: daemon, %d jobs" % (what, args.jobs))
                phase = bench.jobs(row, args.jobs, measured=True)
                log("%s: %.1f jobs/s; vips_loop" % (what, phase["rate"]))
                limit = bench.limit(row, args.jobs)
                log("%s: limit %.1f/s (%s)" % (what, limit["limit"], limit["alloc"]))
                run = {"phase": phase, "limit": limit}
                if peer and is_crop(row[1]):
                    peer_run(peer, row[0], 2 * workers)  # warm-up
                    run["peer"] = peer_run(peer, row[0], args.jobs)
                    log("%s: peer %.1f/s" % (what, run["peer"]["rate"]))
                results[i].append(run)
        tree = daemon_tree(daemon.pid)
        http_children = len(pids_of(tree, "http"))
        order = {k: i for i, k in enumerate(CPU_KINDS)}
        memory = [(kind, pid, status_kb(pid)) for pid, (kind, _) in
                  sorted(tree.items(), key=lambda x: (order.get(x[1][0], 99), x[0]))]
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log("error: %s" % e)
        if daemon is not None:
            log("daemon's log:\n" + tail(os.path.join(tmp, "thumbnailed.log")))
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(daemon, "thumbnailed", 30)
        if peer is not None:
            peer.stop()
        if source is not None:
            source.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    report(args, rows, results, photos_dir, source.name, workers, http_children, memory,
           peer.name if peer else None)


def report(args, rows, results, photos_dir, source_name, workers, http_children, memory,
           peer_name):
    binary = os.path.join(args.build, "thumbnailed")
    cores = os.cpu_count() or 1
    med = statistics.median
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print("machine: " + machine())
    print("daemon: %s (%s), embedded Redis; %d workers (%s), %d http processes" % (
        first_line([binary, "-v"], "thumbnailed"), first_line([binary, "-v"], "libvips"),
        workers, "--workers" if args.workers else "auto: one per core and one more",
        http_children))
    print("source: %s, over loopback, serving %s" % (source_name, photos_dir))
    print("jobs: %d per row and round, after a warm-up of %d; one client submitting on one "
          "keep-alive connection, %d threads long-polling (?wait=30); jobs/s = N / (last "
          "done - first submit); latency = seen done - submit" % (args.jobs, 2 * workers,
                                                                 POLLERS))
    print("limit: vips_loop PHOTO %d %d W H FIT FORMAT best (one process per core, glibc's "
          "allocator and the tuned one, the faster), after the row's jobs, the daemon idle; "
          "%d round(s), medians" % (args.jobs, cores, args.rounds))
    for photo in dict.fromkeys(p for p, _ in rows):
        s = next(runs for r, runs in zip(rows, results) if r[0] == photo)[0]["phase"]["source"]
        print("photo %s: %sx%s %s, %d bytes" % (
            photo, s.get("width", "?"), s.get("height", "?"),
            image_kind(os.path.join(photos_dir, photo)),
            os.path.getsize(os.path.join(photos_dir, photo))))
    print()
    print("| photo | spec | jobs/s | limit /s (alloc) | ratio | p50 ms | p99 ms | "
          "CPU share: %s | outside load: jobs / limit |" % " / ".join(CPU_KINDS))
    print("|---|---|---|---|---|---|---|---|---|")
    for row, runs in zip(rows, results):
        allocs = [r["limit"]["alloc"] for r in runs]
        alloc = allocs[0] if len(set(allocs)) == 1 else ", ".join(
            "%s %d/%d" % (a, allocs.count(a), len(allocs)) for a in sorted(set(allocs)))
        print("| %s | %s | %.1f | %.1f (%s) | %.2f | %.0f | %.0f | %s | %.2f / %.2f |" % (
            row_name(row), spec_name(row[1]), med(r["phase"]["rate"] for r in runs),
            med(r["limit"]["limit"] for r in runs), alloc,
            med(r["phase"]["rate"] / r["limit"]["limit"] for r in runs),
            med(r["phase"]["p50"] for r in runs), med(r["phase"]["p99"] for r in runs),
            " / ".join("%.2f" % med(r["phase"]["cpu"][k] for r in runs) for k in CPU_KINDS),
            med(r["phase"]["cpu"]["outside"] for r in runs),
            med(r["limit"]["cpu"]["outside"] for r in runs)))
    print()
    print("ratio: the median of each round's jobs/s / limit. p50, p99: seen done - submit, "
          "the wait in the queue included (all N are submitted at once). CPU share: CPU "
          "seconds / (wall x %d cores) over the daemon phase, medians. Outside load: the "
          "machine's busy share (/proc/stat) less this bench's processes, during the jobs "
          "and during vips_loop: other work on the machine, which the two did not share "
          "alike when the figures differ." % cores)
    for row, runs in zip(rows, results):
        ph = [r["phase"] for r in runs]
        li = [r["limit"] for r in runs]
        print("%s, %s: vips_loop glibc %.1f/s, tuned %.1f/s; output %s; daemon phase "
              "%.2f s (submits %.2f s), worker time per job %.0f ms (median started_at to "
              "finished_at), machine busy %.2f (outside the bench %.2f, steal %.2f); "
              "vips_loop run: vips_loop %.2f, daemon %.2f, outside %.2f" % (
                  row_name(row), spec_name(row[1]), med(x["glibc"] for x in li),
                  med(x["tuned"] for x in li),
                  ", ".join("%dx%d %s" % s for s in ph[0]["sizes"]),
                  med(x["wall"] for x in ph), med(x["submit"] for x in ph),
                  med(x["work"] for x in ph),
                  med(x["cpu"]["busy"] for x in ph), med(x["cpu"]["outside"] for x in ph),
                  med(x["cpu"]["steal"] for x in ph), med(x["cpu"]["children"] for x in li),
                  med(x["cpu"]["daemon"] for x in li), med(x["cpu"]["outside"] for x in li)))
        if args.rounds > 1:
            print("    each round: jobs/s %s; limit %s" % (
                " ".join("%.1f" % x["rate"] for x in ph),
                " ".join("%.1f" % x["limit"] for x in li)))
    print()
    print("Peak RSS per row, MB: a worker's VmHWM over the row's jobs (reset before them "
          "through /proc/<pid>/clear_refs; the largest of the workers) beside the largest "
          "vips_loop process's (getrusage ru_maxrss) with the tuned allocator, which the "
          "worker's settings match. Both include the libraries' file pages, which differ "
          "(the worker maps libcurl, OpenSSL, hiredis and libmagic's database too) and the "
          "worker the shared cache's pages it touched; 'less file pages' takes RssFile (and "
          "RssShmem) at the end off the peak. Medians of the rounds.")
    print()
    print("| photo | spec | worker VmHWM | vips_loop tuned (glibc) | worker / vips_loop | "
          "less file pages: worker | vips_loop tuned (glibc) | worker / vips_loop |")
    print("|---|---|---|---|---|---|---|---|")
    for row, runs in zip(rows, results):
        print("| %s | %s | %.0f | %.0f (%.0f) | %.2f | %.0f | %.0f (%.0f) | %.2f |" % (
            row_name(row), spec_name(row[1]), med(r["phase"]["hwm"] for r in runs),
            med(r["limit"]["tuned_rss"] for r in runs),
            med(r["limit"]["glibc_rss"] for r in runs),
            med(r["phase"]["hwm"] / r["limit"]["tuned_rss"] for r in runs),
            med(r["phase"]["priv"] for r in runs), med(r["limit"]["tuned_priv"] for r in runs),
            med(r["limit"]["glibc_priv"] for r in runs),
            med(r["phase"]["priv"] / r["limit"]["tuned_priv"] for r in runs)))
    peers = [(row, runs) for row, runs in zip(rows, results) if "peer" in runs[0]]
    if peers:
        print()
        print("Beside a peer: %s, the same photos as GET /crop/<photo> (`image_filter crop "
              "100 100`, JPEG quality 80; a PNG is answered as a PNG), after the row's limit, "
              "the daemon idle; %d requests per row and round over %d keep-alive connections "
              "(a warm-up of %d first); latency per request. CPU: the peer's share of the "
              "machine." % (peer_name, args.jobs, 2 * workers, 2 * workers))
        print()
        print("| photo | thumbnailed jobs/s | peer req/s | thumbnailed / peer | limit /s | "
              "peer / limit | peer p50 ms | peer p99 ms | peer CPU share | peer output |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row, runs in peers:
            print("| %s | %.1f | %.1f | %.2f | %.1f | %.2f | %.0f | %.0f | %.2f | %s |" % (
                row_name(row), med(r["phase"]["rate"] for r in runs),
                med(r["peer"]["rate"] for r in runs),
                med(r["phase"]["rate"] / r["peer"]["rate"] for r in runs),
                med(r["limit"]["limit"] for r in runs),
                med(r["peer"]["rate"] / r["limit"]["limit"] for r in runs),
                med(r["peer"]["p50"] for r in runs), med(r["peer"]["p99"] for r in runs),
                med(r["peer"]["cpu"] for r in runs),
                ", ".join("%dx%d %s" % x for x in runs[0]["peer"]["size"])))
        if args.rounds > 1:
            for row, runs in peers:
                print("    %s: peer each round %s req/s" % (row_name(row), " ".join(
                    "%.1f" % r["peer"]["rate"] for r in runs)))
    print()
    print("Memory of the daemon's processes at the end of the run, MB (VmHWM: the peak "
          "RSS, shared-memory cache pages the process touched included):")
    print()
    print("| process | pid | %s |" % " | ".join(STATUS_FIELDS))
    print("|---|---|%s" % ("---|" * len(STATUS_FIELDS)))
    for kind, pid, st in memory:
        print("| %s | %d | %s |" % (kind, pid, " | ".join(
            "%.0f" % (st[k] / 1024.0) if k in st else "—" for k in STATUS_FIELDS)))


if __name__ == "__main__":
    main()
