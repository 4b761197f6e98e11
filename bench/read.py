#!/usr/bin/python3
"""Read path beside nginx serving the same bytes as static files, in one run.

For each P of -P (default 1,2): starts its own thumbnailed (embedded Redis,
P http children, one worker), uploads a photo as one job (256x256 cover webp
by default) and waits until it is done. Writes the thumbnail and the job
document as static files into a docroot served by its own nginx (P worker
processes, sendfile on, same URL paths, same Content-Types). Checks that both
servers answer the same bytes, then for GET /v1/thumbnails/<id>/image and
GET /v1/thumbnails/<id>:

- timed: wrk with the same parameters against each server (a warm-up pass
  first, then R rounds alternating between the two): req/s, p50/p99, the
  ratio thumbnailed/nginx for req/s and p99, the CPU each side used;
- counted, in a separate run (strace slows a server down): exactly N
  requests (-n) made by read.py's own keep-alive client over -c connections,
  the same request bytes wrk sends, while `strace -c -f -p` is attached to
  thumbnailed's http children or nginx's worker processes. Each connection is
  opened and used once before strace attaches, so the counts are those of
  requests on open keep-alive connections: system calls per request, by name
  and in total.

Both servers are stopped before the next P starts. Prints a markdown table
(one row per route and P) and the per-syscall breakdown.

On a machine with more cores than server processes, wrk is pinned to the last
core and both servers (every process of theirs, Redis included) to the others,
so that each server gets the same CPU budget and the client never competes
with it (--pin).

usage: bench/read.py BUILD_DIR PHOTO [options]     (--help for the options)
    -P 1,2     P values, one pair of servers each (http.processes = worker_processes)
    -n 20000   requests per server and route in the syscall count (0: no count)
"""
import argparse
import json
import os
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

PACKAGES = ["nginx", "wrk", "strace"]  # Debian 12; nginx-light works as well


def log(msg):
    print("read.py: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_nginx():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)


def find_strace():
    return shutil.which("strace") or next(
        (p for p in ("/usr/bin/strace",) if os.access(p, os.X_OK)), None)


def install_missing(strace):
    """Installs nginx, wrk and (when asked) strace from Debian's archive when missing."""
    have = {"nginx": find_nginx(), "wrk": shutil.which("wrk"),
            "strace": find_strace() or not strace}
    missing = [p for p in PACKAGES if not have[p]]
    if not missing:
        return
    log("installing " + " ".join(missing))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update"], env=env, check=True, timeout=600)
    subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends"] + missing,
                   env=env, check=True, timeout=600)


# ---- HTTP helpers ---------------------------------------------------------

def http_json(method, url, body=None, ctype="application/json"):
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def raw_get(port, path):
    """One GET as wrk sends it (HTTP/1.1, keep-alive): status, headers, head size, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the headers")
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "-1"))
        if length < 0:
            raise RuntimeError("no Content-Length from 127.0.0.1:%d%s" % (port, path))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed in the body")
            body += chunk
        return status, headers, len(head) + 4, body


def wait_http(port, path, deadline_s, proc, logfile):
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError("exited with status %d before answering; %s:\n%s" % (
                proc.returncode, logfile, tail(logfile)))
        try:
            status, _, _, _ = raw_get(port, path)
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("nothing answers 200 on 127.0.0.1:%d%s; %s:\n%s" % (
                port, path, logfile, tail(logfile)))
        time.sleep(0.05)


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ---- processes and their CPU ------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(comm, ppid, utime + stime in ticks) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])


def live_pids():
    """{pid: (comm, ppid, ticks)} of every live process."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                stats[int(d)] = st
    return stats


def tree_cpu(root):
    """CPU seconds used so far by root and its descendants, by process name."""
    stats = live_pids()
    by_name, todo, seen = {}, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        comm, _, ticks = stats[pid]
        by_name[comm] = by_name.get(comm, 0.0) + ticks / TICK
        todo.extend(p for p, st in stats.items() if st[1] == pid)
    return by_name


def cpu_delta(before, after):
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def stop(proc, name, timeout):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log("%s (pid %d) did not stop in %d s: SIGKILL" % (name, proc.pid, timeout))
        proc.kill()
        proc.wait(10)


# ---- wrk -----------------------------------------------------------------

def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError("latency %r" % text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(out):
    r = {"rps": float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1)),
         "requests": int(re.search(r"^\s+(\d+) requests in ", out, re.M).group(1))}
    for pct in ("50", "99"):
        r["p" + pct] = to_ms(re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sockerr"] = sum(int(x) for x in m.groups()) if m else 0
    return r


class Runner:
    def __init__(self, args, wrk_cpus):
        self.args = args
        self.wrk_cpus = wrk_cpus

    def wrk(self, url, seconds, server_pid):
        a = self.args
        cmd = ["wrk", "-t%d" % a.threads, "-c%d" % a.connections, "-d%ds" % seconds,
               "--timeout", "5s", "--latency", url]
        pre = (lambda: os.sched_setaffinity(0, self.wrk_cpus)) if self.wrk_cpus else None
        before = tree_cpu(server_pid)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=pre)
        try:
            out, _ = p.communicate(timeout=seconds + 30)
        except BaseException as e:  # timeout, Ctrl-C, SIGTERM: wrk goes too
            p.kill()
            p.communicate()
            if isinstance(e, subprocess.TimeoutExpired):
                raise RuntimeError("wrk did not finish: " + " ".join(cmd))
            raise
        wall = time.monotonic() - t0
        server_cpu = cpu_delta(before, tree_cpu(server_pid))
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # only wrk was reaped meanwhile
        wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if p.returncode != 0:
            raise RuntimeError("wrk failed (%d):\n%s" % (p.returncode, out))
        r = parse_wrk(out)
        r["wall"] = wall
        r["server_cpu"] = {k: v / wall for k, v in server_cpu.items() if v > 0}
        r["wrk_cpu"] = wrk_cpu / wall
        r["out"] = out
        return r


# ---- the syscall count: a fixed number of requests under strace ----------

def response_size(buf):
    """Size of the response at the start of buf once its head is in, else None.

    Raises RuntimeError on a status other than 200 or a missing Content-Length."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    if lines[0].split()[1] != "200":
        raise RuntimeError("answered " + lines[0])
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            return end + 4 + int(v)
    raise RuntimeError("a response without Content-Length")


class KeepAliveClient:
    """Keep-alive connections that make exactly the number of GETs asked for.

    Each request is the one wrk sends (HTTP/1.1 with a Host header, nothing
    else) and, as with wrk, a connection has one request in flight at a time;
    the next goes out when the response is in. Unlike wrk, the total is exact."""

    def __init__(self, port, path, connections):
        self.request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, port)).encode()
        self.socks = []
        try:
            for _ in range(connections):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.socks.append(s)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.setblocking(False)
        except OSError:
            self.close()
            raise

    def close(self):
        for s in self.socks:
            s.close()

    def _send(self, s):
        if s.send(self.request) != len(self.request):
            raise RuntimeError("a request did not fit in the socket buffer")

    def run(self, total, timeout):
        """Makes exactly total requests over the connections, every one answered 200."""
        sel = selectors.DefaultSelector()
        bufs = {}
        sent = done = 0
        try:
            for s in self.socks[:total]:
                self._send(s)
                sent += 1
                bufs[s] = bytearray()
                sel.register(s, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while done < total:
                left = deadline - time.monotonic()
                events = sel.select(left) if left > 0 else []
                if not events:
                    raise RuntimeError("%d of %d requests answered in %d s"
                                       % (done, total, timeout))
                for key, _ in events:
                    s, buf = key.fileobj, bufs[key.fileobj]
                    chunk = s.recv(1 << 18)
                    if not chunk:
                        raise RuntimeError("the server closed a connection after %d responses"
                                           % done)
                    buf += chunk
                    size = response_size(buf)
                    if size is None or len(buf) < size:
                        continue
                    if len(buf) > size:
                        raise RuntimeError("bytes after a response")
                    buf.clear()
                    done += 1
                    if sent < total:
                        self._send(s)
                        sent += 1
                    else:
                        sel.unregister(s)
        finally:
            sel.close()


def parse_strace(text):
    """{syscall: (calls, errors)} from the table `strace -c` prints.

    Its rows are "% time, seconds, usecs/call, calls, [errors], syscall"; the
    errors column is empty when no call failed."""
    calls = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) in (5, 6) and re.fullmatch(r"[\d.]+", f[0]) and f[-1] != "total":
            calls[f[-1]] = (int(f[3]), int(f[4]) if len(f) == 6 else 0)
    return calls


def syscall_rates(calls, requests, seconds):
    """Per request, from strace_count's {syscall: (calls, errors)}: calls and failed
    calls by syscall, the total; and the raw total and the seconds it took."""
    return {"calls": {k: c / requests for k, (c, _) in calls.items()},
            "failed": {k: e / requests for k, (_, e) in calls.items() if e},
            "total": sum(c for c, _ in calls.values()) / requests,
            "raw_total": sum(c for c, _ in calls.values()),
            "seconds": seconds}


def strace_count(pids, client, requests, workdir):
    """System calls of pids (and their threads) while client makes exactly `requests` requests.

    Returns ({syscall: (calls, errors)}, seconds the requests took under strace)."""
    out, err = os.path.join(workdir, "strace.txt"), os.path.join(workdir, "strace.err")
    cmd = [find_strace(), "-c", "-f", "-o", out]
    for pid in pids:
        cmd += ["-p", str(pid)]
    with open(err, "w") as errf:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf)
    try:
        deadline = time.monotonic() + 15
        while not all("Process %d attached" % pid in tail(err, 1000) for pid in pids):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("strace did not attach to %s: %s" % (
                    " ".join(map(str, pids)), tail(err)))
            time.sleep(0.05)
        t0 = time.monotonic()
        client.run(requests, 60 + requests // 200)
        wall = time.monotonic() - t0
        p.send_signal(signal.SIGINT)  # detaches and writes the summary
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(out) as f:
        calls = parse_strace(f.read())
    if not calls:
        raise RuntimeError("no strace summary in %s: %s" % (out, tail(err)))
    return calls, wall


# ---- the two servers -----------------------------------------------------

def start_thumbnailed(args, workdir, port, cpus, processes):
    conf = os.path.join(workdir, "thumbnailed.conf")
    with open(conf, "w") as f:
        f.write(f"""[daemon]
user =
pid_file = {workdir}/run/thumbnailed.pid
runtime_dir = {workdir}/run
log_level = warn
stop_timeout = 5s
[http]
listen = 127.0.0.1:{port}
processes = {processes}
[worker]
processes = 1
job_timeout = 10m
[redis]
data_dir = {workdir}/data
""")
    os.makedirs(os.path.join(workdir, "run"), exist_ok=True)
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    logf = open(os.path.join(workdir, "thumbnailed.log"), "w")
    wrap = shlex.split(args.wrap) if args.wrap else []
    return subprocess.Popen(wrap + [os.path.join(args.build, "thumbnailed"), "-f", "-c", conf],
                            stdout=logf, stderr=logf, preexec_fn=pre, start_new_session=True)


def start_nginx(workdir, port, cpus, processes, docroot, job_id, mime):
    ngx = os.path.join(workdir, "nginx")
    for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(ngx, d), exist_ok=True)
    conf = os.path.join(ngx, "nginx.conf")
    base = "/v1/thumbnails/" + job_id
    # Exact locations: the same URL paths as thumbnailed, each aliased to its
    # file with its type. keepalive_requests is raised from its default (1000)
    # because evhttp keeps a connection for any number of requests.
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes {processes};
pid {ngx}/nginx.pid;
error_log {ngx}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    keepalive_requests 1000000000;
    client_body_temp_path {ngx}/client;
    proxy_temp_path {ngx}/proxy;
    fastcgi_temp_path {ngx}/fastcgi;
    uwsgi_temp_path {ngx}/uwsgi;
    scgi_temp_path {ngx}/scgi;
    types {{ }}
    server {{
        listen 127.0.0.1:{port};
        location = {base}/image {{
            default_type {mime};
            alias {docroot}/image;
        }}
        location = {base} {{
            default_type application/json;
            alias {docroot}/job.json;
        }}
    }}
}}
""")
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    logf = open(os.path.join(ngx, "stderr.log"), "w")
    return subprocess.Popen([find_nginx(), "-p", ngx + "/", "-e", ngx + "/error.log",
                             "-c", conf],
                            stdout=logf, stderr=logf, preexec_fn=pre, start_new_session=True)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def serving_pids(server, root, want, deadline_s=15):
    """The processes that answer requests: thumbnailed's http children (any
    depth under root, so that --wrap works) or nginx's workers (children of its
    master). Waits until there are `want` of them."""
    deadline = time.monotonic() + deadline_s
    while True:
        stats = live_pids()
        if server == "thumbnailed":
            tree, todo = set(), [root]
            while todo:
                pid = todo.pop()
                tree.add(pid)
                todo.extend(p for p, st in stats.items() if st[1] == pid and p not in tree)
            pids = sorted(p for p in tree if stats.get(p, ("",))[0] == "thumb-http")
        else:
            pids = sorted(p for p, st in stats.items()
                          if st[1] == root and cmdline(p).startswith("nginx: worker process"))
        if len(pids) == want:
            return pids
        if time.monotonic() > deadline:
            raise RuntimeError("%s: %d serving processes, not %d" % (server, len(pids), want))
        time.sleep(0.1)


ROUTES = [("image", "GET image", "/v1/thumbnails/%s/image"),
          ("job", "GET job document", "/v1/thumbnails/%s")]
SERVERS = ("thumbnailed", "nginx")


class Pair:
    """thumbnailed and nginx with P serving processes each, answering the same
    bytes at the same paths; everything under workdir."""

    def __init__(self, args, processes, workdir):
        self.args, self.processes, self.workdir = args, processes, workdir
        ncpu = os.cpu_count() or 1
        self.pin = args.pin == "yes" or (args.pin == "auto" and ncpu > processes)
        self.server_cpus = set(range(ncpu - 1)) if self.pin else None
        self.wrk_cpus = {ncpu - 1} if self.pin else None
        self.th = self.ngx = None
        self.slow = 10 if args.wrap else 1  # timeouts under a profiler
        self.timed, self.syscalls = {}, {}  # by route key, then server

    def stop(self):
        stop(self.ngx, "nginx", 10)
        stop(self.th, "thumbnailed", 30 * self.slow)

    def start(self, photo, ctype):
        """Starts thumbnailed, makes the job, starts nginx on its bytes, checks both."""
        a, slow = self.args, self.slow
        os.makedirs(self.workdir)
        os.chmod(self.workdir, 0o755)  # nginx workers run as nobody when started by root
        self.ports = {"thumbnailed": free_port(), "nginx": free_port()}
        th_port, ngx_port = self.ports["thumbnailed"], self.ports["nginx"]
        self.th = start_thumbnailed(a, self.workdir, th_port, self.server_cpus, self.processes)
        wait_http(th_port, "/readyz", 30 * slow, self.th,
                  os.path.join(self.workdir, "thumbnailed.log"))
        width, height = (int(x) for x in a.size.split("x"))
        base = "http://127.0.0.1:%d" % th_port
        query = "width=%d&height=%d&fit=%s&format=%s" % (width, height, a.fit, a.format)
        if a.quality:
            query += "&quality=%d" % a.quality
        _, doc = http_json("POST", base + "/v1/thumbnails?" + query, photo, ctype)
        self.job_id = doc["id"]
        deadline = time.monotonic() + 120 * slow
        while doc["status"] not in ("done", "failed", "canceled"):
            if time.monotonic() > deadline:
                raise RuntimeError("job %s not done in %d s" % (self.job_id, 120 * slow))
            _, doc = http_json("GET", base + "/v1/thumbnails/%s?wait=30" % self.job_id)
        if doc["status"] != "done":
            raise RuntimeError("job %s: %s" % (self.job_id, json.dumps(doc)))

        # The first GET of each route gives the bytes nginx serves; the second
        # answers from the cache if there is one (its X-Cache).
        self.routes, files = [], {}
        for key, name, fmt in ROUTES:
            path = fmt % self.job_id
            st, hdr, head, body = raw_get(th_port, path)
            if st != 200:
                raise RuntimeError("thumbnailed answered %d to %s" % (st, path))
            files[key] = (body, hdr.get("content-type", "application/octet-stream"))
            if a.route in (key, "both"):
                self.routes.append({"key": key, "name": name, "path": path, "headers": hdr,
                                    "body": len(body), "head": {"thumbnailed": head}})
        docroot = os.path.join(self.workdir, "docroot")
        os.mkdir(docroot)
        os.chmod(docroot, 0o755)
        for name, data in (("image", files["image"][0]), ("job.json", files["job"][0])):
            with open(os.path.join(docroot, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(docroot, name), 0o644)
        self.ngx = start_nginx(self.workdir, ngx_port, self.server_cpus, self.processes,
                               docroot, self.job_id, files["image"][1])
        wait_http(ngx_port, ROUTES[0][2] % self.job_id, 15, self.ngx,
                  os.path.join(self.workdir, "nginx", "error.log"))

        for r in self.routes:
            _, th_h, _, th_body = raw_get(th_port, r["path"])
            r["x_cache"] = (r["headers"].get("x-cache", "absent"), th_h.get("x-cache", "absent"))
            nst, ng_h, ng_head, ng_body = raw_get(ngx_port, r["path"])
            if nst != 200 or th_body != ng_body:
                raise RuntimeError("%s: nginx (%d, %d bytes) and thumbnailed (%d bytes) differ"
                                   % (r["name"], nst, len(ng_body), len(th_body)))
            if th_h.get("content-type") != ng_h.get("content-type"):
                raise RuntimeError("%s: Content-Type %r vs %r" % (
                    r["name"], th_h.get("content-type"), ng_h.get("content-type")))
            r["head"]["nginx"] = ng_head
        self.pids = {"thumbnailed": serving_pids("thumbnailed", self.th.pid, self.processes),
                     "nginx": serving_pids("nginx", self.ngx.pid, self.processes)}

    def url(self, server, route):
        return "http://127.0.0.1:%d%s" % (self.ports[server], route["path"])

    def measure(self):
        """wrk on each route: a warm-up per server, then rounds alternating; medians."""
        a, runner = self.args, Runner(self.args, self.wrk_cpus)
        root = {"thumbnailed": self.th.pid, "nginx": self.ngx.pid}
        for r in self.routes:
            what = "P=%d %s" % (self.processes, r["name"])
            for server in SERVERS:
                log("%s: warm-up %s %d s" % (what, server, a.warmup))
                runner.wrk(self.url(server, r), a.warmup, root[server])
            runs = {s: [] for s in SERVERS}
            for i in range(a.rounds):
                for server in SERVERS:
                    log("%s: %s run %d/%d, %d s" % (what, server, i + 1, a.rounds, a.duration))
                    runs[server].append(runner.wrk(self.url(server, r), a.duration,
                                                   root[server]))
            self.timed[r["key"]] = {s: median_run(v) for s, v in runs.items()}

    def count_syscalls(self):
        """Exactly -n requests per route and server under strace -c -f."""
        a = self.args
        for r in self.routes:
            self.syscalls[r["key"]] = {}
            for server in SERVERS:
                log("P=%d %s: %s, %d requests under strace" % (
                    self.processes, r["name"], server, a.requests))
                client = KeepAliveClient(self.ports[server], r["path"], a.connections)
                try:
                    client.run(a.connections, 30)  # every connection accepted and used once
                    calls, wall = strace_count(self.pids[server], client, a.requests,
                                               self.workdir)
                finally:
                    client.close()
                self.syscalls[r["key"]][server] = syscall_rates(calls, a.requests, wall)


# ---- report ----------------------------------------------------------------

def machine():
    model = "?"
    hyper = False
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and " hypervisor" in line:
                hyper = True
    with open("/proc/meminfo") as f:
        mem_gb = int(f.readline().split()[1]) / 1024 / 1024
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "%d cores (%s%s), %.0f GB, %s, kernel %s" % (
        os.cpu_count(), model, ", VM guest" if hyper else "", mem_gb, osname, os.uname().release)


def version_of(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def fmt_cpu(cpu):
    """'1.00 (thumb-http 0.62, redis-server 0.38)' from {name: cores}."""
    total = sum(cpu.values())
    parts = sorted(((v, k) for k, v in cpu.items() if v >= 0.01), reverse=True)
    if len(parts) <= 1:
        return "%.2f" % total
    return "%.2f (%s)" % (total, ", ".join("%s %.2f" % (k, v) for v, k in parts))


def median_run(runs):
    return {"rps": statistics.median(r["rps"] for r in runs),
            "p50": statistics.median(r["p50"] for r in runs),
            "p99": statistics.median(r["p99"] for r in runs),
            "non2xx": sum(r["non2xx"] for r in runs),
            "sockerr": sum(r["sockerr"] for r in runs),
            "wrk_cpu": statistics.median(r["wrk_cpu"] for r in runs),
            "server_cpu": {k: statistics.median(r["server_cpu"].get(k, 0.0) for r in runs)
                           for k in set().union(*(r["server_cpu"] for r in runs))},
            "all_rps": [r["rps"] for r in runs]}


def fmt_rate(x):
    """Calls per request: two decimals, or one significant digit below 0.005."""
    return "%.2f" % x if x >= 0.005 else "%.1g" % x




def print_header(args, pairs, photo_len):
    print("machine: " + machine())
    print("thumbnailed %s; %s; %s; %s" % (
        version_of([os.path.join(args.build, "thumbnailed"), "-v"]),
        version_of([find_nginx(), "-v"]), version_of(["wrk", "-v"]),
        version_of([find_strace(), "-V"]) if args.requests else "no strace"))
    print("parameters: P=%s (thumbnailed http.processes = nginx worker_processes, sendfile on), "
          "worker.processes=1, embedded Redis; wrk -t%d -c%d -d%ds --latency, %d s warm-up, "
          "%d round(s), medians" % (",".join(str(p.processes) for p in pairs), args.threads,
                                    args.connections, args.duration, args.warmup, args.rounds))
    if args.requests:
        print("syscalls: strace -c -f -p <thumbnailed's http children | nginx's workers> during "
              "exactly %d requests per server and route, made by read.py's keep-alive client "
              "over %d connections (wrk's request bytes), each connection used once before "
              "strace attaches" % (args.requests, args.connections))
    else:
        print("syscalls: not counted (-n 0)")
    for p in pairs:
        print("P=%d pinning: %s" % (p.processes, (
            "servers on CPU %s, wrk on CPU %s" % (",".join(map(str, sorted(p.server_cpus))),
                                                 ",".join(map(str, sorted(p.wrk_cpus))))
            if p.pin else "none")))
    print("job: %s %s %s%s of %s (%d bytes)" % (
        args.size, args.fit, args.format, " q%d" % args.quality if args.quality else "",
        os.path.basename(args.photo), photo_len))
    for r in pairs[0].routes:
        print("%s: body %d bytes, headers %d (thumbnailed) / %d (nginx); thumbnailed's: %s" % (
            r["name"], r["body"], r["head"]["thumbnailed"], r["head"]["nginx"],
            ", ".join(sorted(r["headers"]))))
    for p in pairs:
        print("P=%d: job %s; thumbnailed X-Cache, first and second GET: %s" % (
            p.processes, p.job_id, "; ".join("%s %s, %s" % (r["name"], *r["x_cache"])
                                             for r in p.routes)))


def print_tables(args, pairs):
    """The table for RESULTS.md (one row per route and P), then the CPU table."""
    rows = [(r, p) for r in pairs[0].routes for p in pairs]  # route by route, P by P
    print("| route | P | thumbnailed req/s | nginx req/s | ratio th/nginx | p50 th / nginx "
          "| p99 th / nginx | p99 ratio th/nginx | syscalls/request th / nginx |")
    print("|---|---|---|---|---|---|---|---|---|")
    for route, p in rows:
        t, n = (p.timed[route["key"]][s] for s in SERVERS)
        sys_cell = "—"
        if route["key"] in p.syscalls:
            sys_cell = "%.2f / %.2f" % tuple(p.syscalls[route["key"]][s]["total"]
                                             for s in SERVERS)
        print("| %s | %d | %.0f | %.0f | %.2f | %.2f / %.2f ms | %.2f / %.2f ms | %.2f | %s |"
              % (route["name"], p.processes, t["rps"], n["rps"], t["rps"] / n["rps"],
                 t["p50"], n["p50"], t["p99"], n["p99"], t["p99"] / n["p99"], sys_cell))
    print()
    print("CPU used during the measured runs (cores, by process name):")
    print()
    print("| route | P | thumbnailed | wrk on thumbnailed | nginx | wrk on nginx |")
    print("|---|---|---|---|---|---|")
    for route, p in rows:
        t, n = (p.timed[route["key"]][s] for s in SERVERS)
        print("| %s | %d | %s | %.2f | %s | %.2f |" % (
            route["name"], p.processes, fmt_cpu(t["server_cpu"]), t["wrk_cpu"],
            fmt_cpu(n["server_cpu"]), n["wrk_cpu"]))
    if args.rounds > 1:
        print()
        for route, p in rows:
            for server, res in p.timed[route["key"]].items():
                print("%s, P=%d, %s: req/s of each round %s" % (
                    route["name"], p.processes, server,
                    " ".join("%.0f" % x for x in res["all_rps"])))
    if args.requests:
        for route, p in rows:
            print()
            print_syscalls(args, route, p)


def print_syscalls(args, route, pair):
    """One route's and P's system calls per request, by name, both servers side by side."""
    th, ng = (pair.syscalls[route["key"]][s] for s in SERVERS)
    print("Syscalls per request, %s, P=%d (%d requests: %.1f s under strace for "
          "thumbnailed, %.1f s for nginx; failed calls in brackets):" % (
              route["name"], pair.processes, args.requests, th["seconds"], ng["seconds"]))
    print()
    print("| syscall | thumbnailed | nginx |")
    print("|---|---|---|")

    def cell(count, name):
        if name not in count["calls"]:
            return "—"
        failed = count["failed"].get(name)
        return fmt_rate(count["calls"][name]) + (" (%s)" % fmt_rate(failed) if failed else "")

    names = set(th["calls"]) | set(ng["calls"])
    for name in sorted(names, key=lambda k: (-max(th["calls"].get(k, 0),
                                                   ng["calls"].get(k, 0)), k)):
        print("| %s | %s | %s |" % (name, cell(th, name), cell(ng, name)))
    print("| total | %.2f (%d calls) | %.2f (%d calls) |" % (
        th["total"], th["raw_total"], ng["total"], ng["raw_total"]))


def processes_list(text):
    ps = [int(x) for x in text.split(",") if x.strip()]
    if not ps or min(ps) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of counts >= 1, e.g. 1,2")
    return ps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("build", help="build directory holding thumbnailed (RelWithDebInfo)")
    ap.add_argument("photo", help="source photo, uploaded once per P")
    ap.add_argument("-P", "--processes", type=processes_list, default="1,2", metavar="P,...",
                    help="http.processes of thumbnailed = worker_processes of nginx; a "
                         "comma-separated list, one pair of servers each")
    ap.add_argument("-t", "--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("-c", "--connections", type=int, default=50,
                    help="connections of wrk and of the syscall count's client")
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds of each measured run")
    ap.add_argument("-w", "--warmup", type=int, default=3, help="seconds of each warm-up run")
    ap.add_argument("-r", "--rounds", type=int, default=3,
                    help="measured runs per server and route, alternating; medians reported")
    ap.add_argument("-n", "--requests", type=int, default=20000,
                    help="requests per server and route in the syscall count under strace "
                         "(0: no count)")
    ap.add_argument("--size", default="256x256", help="thumbnail WIDTHxHEIGHT")
    ap.add_argument("--fit", default="cover")
    ap.add_argument("--format", default="webp")
    ap.add_argument("--quality", type=int,
                    help="lossy quality 1..100 (none: the daemon's image.default_quality)")
    ap.add_argument("--pin", choices=["auto", "yes", "no"], default="auto",
                    help="wrk on the last core, servers on the others (auto: when there are "
                         "more cores than server processes)")
    ap.add_argument("--route", choices=["image", "job", "both"], default="both",
                    help="GET image, GET job document or both")
    ap.add_argument("--hold", action="store_true",
                    help="after the tables, keep the last P's servers up until Ctrl-C "
                         "(for a profiler)")
    ap.add_argument("--wrap", metavar="CMD",
                    help="run thumbnailed under CMD, e.g. 'valgrind --tool=callgrind' "
                         "(profiling; no syscall count then)")
    args = ap.parse_args()

    if not os.access(os.path.join(args.build, "thumbnailed"), os.X_OK):
        sys.exit("read.py: no thumbnailed in %s (build it first)" % args.build)
    if not os.path.isfile(args.photo):
        sys.exit("read.py: no photo %s (bench/get-photos.sh)" % args.photo)
    if args.pin == "yes" and (os.cpu_count() or 1) < 2:
        sys.exit("read.py: --pin needs at least 2 cores")
    if args.wrap:
        args.requests = 0  # strace would count the profiler's system calls
    install_missing(strace=args.requests > 0)
    with open(args.photo, "rb") as f:
        photo = f.read()
    ext = os.path.splitext(args.photo)[1].lower().lstrip(".")
    ctype = "image/" + {"jpg": "jpeg"}.get(ext, ext or "jpeg")

    tmp = tempfile.mkdtemp(prefix="th-read-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody when started by root
    pairs = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        # One P after the other, each with servers of its own; the syscall
        # count after the timed runs, never during them.
        for i, processes in enumerate(args.processes):
            pair = Pair(args, processes, os.path.join(tmp, "P%d-%d" % (processes, i)))
            pairs.append(pair)
            pair.start(photo, ctype)
            pair.measure()
            if args.requests:
                pair.count_syscalls()
            if not (args.hold and i == len(args.processes) - 1):
                pair.stop()

        print_header(args, pairs, len(photo))
        print()
        print_tables(args, pairs)
        bad = ["%s, P=%d, %s: %d non-2xx, %d socket errors" % (
                   r["name"], p.processes, server, res["non2xx"], res["sockerr"])
               for p in pairs for r in p.routes for server, res in p.timed[r["key"]].items()
               if res["non2xx"] or res["sockerr"]]
        if bad:
            print()
        for b in bad:
            print("WARNING: " + b)
        sys.stdout.flush()
        if args.hold:
            last = pairs[-1]
            log("holding: thumbnailed pid %d on %s, nginx pid %d on %s; Ctrl-C to stop" % (
                last.th.pid, last.url("thumbnailed", last.routes[0]), last.ngx.pid,
                last.url("nginx", last.routes[0])))
            while last.th.poll() is None and last.ngx.poll() is None:
                time.sleep(1)
        if bad:
            sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for pair in pairs:
            pair.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
