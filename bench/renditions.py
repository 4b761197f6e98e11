#!/usr/bin/python3
"""One job of renditions beside the same outputs made as separate jobs, in one run.

Starts its own thumbnailed (embedded Redis, worker.processes = 1: both ways
run on the one worker, one job at a time, so their times compare CPU for CPU)
and a loopback HTTP server that serves a photo (nginx when it is installed,
else Python's http.server). After a warm-up of each kind it runs ROUNDS
rounds, the order alternating each round:

- renditions: one job of four renditions, w320, w640, w1280 and w1920 (width
  only, fit inside), each encoded in avif, webp and jpeg: one fetch, one
  decode, 12 encodings;
- separate: the same 12 outputs as 12 jobs {"url", "width", "format"},
  submitted at once, each fetching and decoding the source again.

Every job has a URL of its own (a query the source server ignores), so that
deduplication never answers with an earlier job. For each phase, from the
first submit to the last job seen done (long-polls): the wall time, the
worker's CPU (utime + stime of /proc/<pid>/stat) and its peak RSS (VmHWM,
reset through /proc/<pid>/clear_refs before the phase). Checks that every job
ended done and that the renditions job has 4 renditions of 3 formats each, of
the sizes the separate jobs made. Prints a table: medians of wall and CPU, the
highest peak RSS, and the ratios renditions / separate; then what libvips alone
spends on the same outputs (BUILD_DIR/bench/vips_stages): the floor of each
kind and of the ratio.

usage: bench/renditions.py BUILD_DIR PHOTO [ROUNDS]     (ROUNDS: default 5)
"""
import argparse
import http.server
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from jobs import Nginx  # bench/jobs.py, beside this file
from read import TICK, find_nginx, free_port, live_pids, machine, proc_stat, stop, tail, \
    version_of, wait_http  # bench/read.py

WIDTHS = (320, 640, 1280, 1920)
FORMATS = ("avif", "webp", "jpeg")
RENDITIONS = [{"name": "w%d" % w, "width": w, "format": list(FORMATS)} for w in WIDTHS]
SEPARATE = [(w, f) for w in WIDTHS for f in FORMATS]
KINDS = ("renditions", "separate")
PHASE_TIMEOUT = 900  # seconds for one phase (one renditions job, or the 12 jobs)
SETTLE = 0.2  # seconds after the last job is seen done before the worker is read
TERMINAL = ("done", "failed", "canceled")


def log(msg):
    print("renditions.py: " + msg, file=sys.stderr, flush=True)


def api(method, url, body=None):
    """(status, JSON document) of one request; RuntimeError with the body on an HTTP error."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError("%s %s: %d %s" % (method, url, e.code,
                                             e.read().decode(errors="replace")[:500]))


# ---- the processes ----------------------------------------------------------

class Source:
    """The photo's directory over loopback HTTP: nginx (one worker) or http.server."""

    def __init__(self):
        self.nginx = self.httpd = None

    def start(self, tmp, photo):
        root = os.path.dirname(os.path.abspath(photo))
        nginx = find_nginx()
        if nginx:
            # Kept before its __init__ runs, so that stop() ends an nginx that
            # started but never answered.
            self.nginx = Nginx.__new__(Nginx)
            self.nginx.__init__(nginx, tmp, root)
            port, self.name = self.nginx.port, "nginx, 1 worker"
        else:
            class Quiet(http.server.SimpleHTTPRequestHandler):
                def __init__(self, *a, **k):
                    super().__init__(*a, directory=root, **k)

                def log_message(self, *a):
                    pass

            self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
            threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
            port, self.name = self.httpd.server_address[1], "python http.server"
        self.url = "http://127.0.0.1:%d/%s" % (port, os.path.basename(photo))

    def stop(self):
        if self.nginx:
            stop(getattr(self.nginx, "proc", None), "nginx", 10)
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


def start_daemon(build, tmp, port):
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
[worker]
processes = 1
job_timeout = 10m
[fetch]
allow_private = yes
[redis]
data_dir = {tmp}/data
""")
    logf = open(os.path.join(tmp, "thumbnailed.log"), "w")
    # A session of its own: Ctrl-C reaches this script, which stops the daemon.
    return subprocess.Popen([os.path.join(build, "thumbnailed"), "-f", "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True)


def workers_of(master):
    return sorted(p for p, (comm, ppid, _) in live_pids().items()
                  if ppid == master and comm == "thumb-worker")


class Worker:
    """The daemon's one worker child: its CPU and peak RSS."""

    def __init__(self, master, timeout=30):
        self.master = master
        deadline = time.monotonic() + timeout
        while len(workers_of(master)) != 1:
            if time.monotonic() > deadline:
                raise RuntimeError("no single thumb-worker child of %d (found %s)"
                                   % (master, workers_of(master)))
            time.sleep(0.1)
        self.pid = workers_of(master)[0]

    def check(self):
        """Fails when the worker is no longer the same process (a restart would lose
        its counters)."""
        if workers_of(self.master) != [self.pid]:
            raise RuntimeError("the worker %d was replaced (now %s): see the daemon's log"
                               % (self.pid, workers_of(self.master)))

    def cpu_ms(self):
        st = proc_stat(self.pid)
        if st is None:
            raise RuntimeError("the worker %d is gone" % self.pid)
        return st[2] * 1000.0 / TICK

    def status_kb(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError("no %s in /proc/%d/status" % (field, self.pid))

    def reset_peak(self):
        """Resets VmHWM to the current RSS; returns that RSS in kB."""
        try:
            with open("/proc/%d/clear_refs" % self.pid, "w") as f:
                f.write("5")
        except OSError as e:
            raise RuntimeError("cannot reset the worker's peak RSS (/proc/%d/clear_refs: %s); "
                               "run as the daemon's user or root" % (self.pid, e))
        return self.status_kb("VmRSS")


# ---- the jobs ---------------------------------------------------------------

class Bench:
    def __init__(self, base, source_url, worker):
        self.base, self.source_url, self.worker = base, source_url, worker
        self.seq = 0
        self.ids = set()
        self.token = "%x" % time.time_ns()

    def url(self):
        # A distinct URL per job (the source server ignores the query): an
        # identical request would be deduplicated into an earlier job.
        self.seq += 1
        return "%s?bench=%s-%d" % (self.source_url, self.token, self.seq)

    def submit(self, body):
        _, doc = api("POST", self.base + "/v1/thumbnails", body)
        if doc["id"] in self.ids:
            raise RuntimeError("submit answered an earlier job %s: %s" % (doc["id"], body))
        self.ids.add(doc["id"])
        return doc["id"]

    def wait(self, ids, deadline):
        """Long-polls each job in turn until every one is terminal: {id: document}."""
        docs = {}
        for i in ids:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("%d of %d jobs not terminal in %d s" % (
                        len(ids) - len(docs), len(ids), PHASE_TIMEOUT))
                _, doc = api("GET", "%s/v1/thumbnails/%s?wait=%d" % (
                    self.base, i, max(1, min(30, int(left)))))
                if doc["status"] in TERMINAL:
                    docs[i] = doc
                    break
        return docs

    def phase(self, kind):
        """Runs one phase of a kind: its wall, worker CPU, worker peak RSS and documents."""
        w = self.worker
        w.check()
        rss0 = w.reset_peak()
        cpu0 = w.cpu_ms()
        t0 = time.monotonic()
        deadline = t0 + PHASE_TIMEOUT
        if kind == "renditions":
            ids = [self.submit({"url": self.url(), "renditions": RENDITIONS})]
        else:
            ids = [self.submit({"url": self.url(), "width": width, "format": fmt})
                   for width, fmt in SEPARATE]
        docs = self.wait(ids, deadline)
        wall = (time.monotonic() - t0) * 1000.0
        time.sleep(SETTLE)  # the worker's last bookkeeping after the job is done
        cpu = w.cpu_ms() - cpu0
        peak = w.status_kb("VmHWM")
        w.check()
        docs = [docs[i] for i in ids]
        bad = [d for d in docs if d["status"] != "done"]
        if bad:
            raise RuntimeError("%s: %d job(s) not done, the first: %s" % (
                kind, len(bad), json.dumps(bad[0])[:1500]))
        return {"wall": wall, "cpu": cpu, "peak_kb": peak, "rss0_kb": rss0, "docs": docs}


def sizes_of_renditions(doc):
    """{(width, format): (w, h)} of a renditions job; RuntimeError unless it holds the
    four renditions asked for, each in the three formats."""
    r = doc.get("result", {}).get("renditions")
    names = [x.get("name") for x in r or []]
    if names != [x["name"] for x in RENDITIONS]:
        raise RuntimeError("renditions job %s: result.renditions %s, not %s: %s" % (
            doc["id"], names, [x["name"] for x in RENDITIONS], json.dumps(doc)[:1500]))
    sizes = {}
    for width, x in zip(WIDTHS, r):
        got = [f.get("format") for f in x.get("formats", [])]
        if got != list(FORMATS) or not all(f.get("bytes", 0) > 0 for f in x["formats"]):
            raise RuntimeError("renditions job %s: %s has formats %s, not %s (all non-empty)"
                               % (doc["id"], x["name"], got, list(FORMATS)))
        for fmt in FORMATS:
            sizes[(width, fmt)] = (x["width"], x["height"])
    return sizes


def sizes_of_separate(docs):
    sizes = {}
    for (width, fmt), d in zip(SEPARATE, docs):
        r = d.get("result", {})
        if r.get("mime") != "image/" + fmt or not r.get("bytes"):
            raise RuntimeError("separate job %s (%d %s): result %s" % (
                d["id"], width, fmt, json.dumps(r)[:500]))
        sizes[(width, fmt)] = (r["width"], r["height"])
    return sizes


def check(kind, res):
    """The sizes each output came out at, after the checks of its kind."""
    if kind == "renditions":
        return sizes_of_renditions(res["docs"][0])
    return sizes_of_separate(res["docs"])


# ---- main -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", metavar="BUILD_DIR", help="build directory holding thumbnailed")
    ap.add_argument("photo", metavar="PHOTO",
                    help="source photo, e.g. SafeLanding 5120x2880 from "
                         "plasma-workspace-wallpapers (bench/get-photos.sh)")
    ap.add_argument("rounds", metavar="ROUNDS", nargs="?", type=int, default=5,
                    help="measured rounds of each kind, after one warm-up of each (default 5)")
    args = ap.parse_args()
    binary = os.path.join(args.build, "thumbnailed")
    if not os.access(binary, os.X_OK):
        sys.exit("renditions.py: no thumbnailed in %s (build it first)" % args.build)
    if not os.path.isfile(args.photo):
        sys.exit("renditions.py: no photo %s (bench/get-photos.sh unpacks Debian's "
                 "plasma-workspace-wallpapers into bench/photos/)" % args.photo)
    if args.rounds < 1:
        sys.exit("renditions.py: ROUNDS must be at least 1")

    tmp = tempfile.mkdtemp(prefix="th-renditions-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody when started by root
    daemon = source = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        source = Source()
        source.start(tmp, args.photo)
        port = free_port()
        daemon = start_daemon(args.build, tmp, port)
        wait_http(port, "/readyz", 30, daemon, os.path.join(tmp, "thumbnailed.log"))
        bench = Bench("http://127.0.0.1:%d" % port, source.url, Worker(daemon.pid))

        log("warm-up: one job of each kind")
        warm = {k: bench.phase(k) for k in KINDS}
        sizes = {k: check(k, warm[k]) for k in KINDS}
        src = warm["renditions"]["docs"][0].get("source", {})
        runs = {k: [] for k in KINDS}
        for i in range(args.rounds):
            order = KINDS if i % 2 == 0 else KINDS[::-1]
            for kind in order:
                log("round %d/%d: %s" % (i + 1, args.rounds, kind))
                res = bench.phase(kind)
                got = check(kind, res)
                if got != sizes[kind]:
                    raise RuntimeError("%s: sizes %s, the warm-up's %s" % (kind, got, sizes[kind]))
                runs[kind].append(res)
        if sizes["renditions"] != sizes["separate"]:
            raise RuntimeError("the two kinds made different sizes: renditions %s, separate %s"
                               % (sizes["renditions"], sizes["separate"]))
        version = version_of([binary, "-v"])
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except RuntimeError as e:
        log("error: %s" % e)
        if daemon is not None:
            log("daemon's log:\n" + tail(os.path.join(tmp, "thumbnailed.log")))
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(daemon, "thumbnailed", 30)
        if source is not None:
            source.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    med = {k: {m: statistics.median(r[m] for r in runs[k]) for m in ("wall", "cpu")}
           for k in KINDS}
    peak = {k: max(r["peak_kb"] for r in runs[k]) / 1024.0 for k in KINDS}
    label = {"renditions": "renditions (1 job, 4 x 3 outputs)",
             "separate": "separate (12 jobs, 1 output each)"}
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print("machine: " + machine())
    print("daemon: " + version)
    print("photo: %s, %sx%s %s, %d bytes" % (
        os.path.basename(args.photo), src.get("width", "?"), src.get("height", "?"),
        src.get("mime", "?"), os.path.getsize(args.photo)))
    print("outputs: widths %s (fit inside, height = width) x formats %s; sizes %s" % (
        ", ".join(map(str, WIDTHS)), ", ".join(FORMATS),
        ", ".join("%dx%d" % sizes["separate"][(w, FORMATS[0])] for w in WIDTHS)))
    print("worker.processes = 1: both kinds run on the one worker, one job at a time, so "
          "the times compare CPU for CPU; source over loopback HTTP (%s); %d round(s), "
          "order alternating, after one warm-up of each; medians" % (source.name, args.rounds))
    print()
    print("| kind | median wall ms | median worker CPU ms | peak worker RSS MB |")
    print("|---|---|---|---|")
    for k in KINDS:
        print("| %s | %.0f | %.0f | %.0f |" % (label[k], med[k]["wall"], med[k]["cpu"], peak[k]))
    print("| ratio renditions / separate | %.2fx | %.2fx | — |" % (
        med["renditions"]["wall"] / med["separate"]["wall"],
        med["renditions"]["cpu"] / med["separate"]["cpu"]))
    print()
    print("aim: under 0.5x for wall and CPU")
    for k in KINDS:
        print("%s, each round: wall %s ms; CPU %s ms; worker RSS at the start %s MB, peak %s MB"
              % (k, " ".join("%.0f" % r["wall"] for r in runs[k]),
                 " ".join("%.0f" % r["cpu"] for r in runs[k]),
                 " ".join("%.0f" % (r["rss0_kb"] / 1024.0) for r in runs[k]),
                 " ".join("%.0f" % (r["peak_kb"] / 1024.0) for r in runs[k])))
    floor(args.build, args.photo, args.rounds)


def floor(build, photo, rounds):
    """libvips' own cost of the same outputs, stage by stage (bench/vips_stages.c), run
    after the daemon has stopped: the floor of each kind and of their ratio."""
    stages = os.path.join(build, "bench", "vips_stages")
    print()
    if not os.access(stages, os.X_OK):
        print("(no %s: build the target vips_stages for libvips' floor of both kinds)" % stages)
        return
    print("libvips alone, the same outputs (%s):" % shlex.join([stages, photo, str(rounds)]))
    sys.stdout.flush()
    r = subprocess.run([stages, photo, str(rounds)], stdout=subprocess.PIPE, text=True,
                       timeout=PHASE_TIMEOUT)
    print(r.stdout, end="")
    if r.returncode != 0:
        sys.exit("renditions.py: vips_stages failed (status %d)" % r.returncode)


if __name__ == "__main__":
    main()
