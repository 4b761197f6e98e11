#!/usr/bin/python3
"""Read path beside nginx serving the same bytes as static files, in one run.

Starts its own thumbnailed (embedded Redis, P http children, one worker),
uploads a photo as one job (256x256 cover webp by default) and waits until it
is done. Writes the thumbnail and the job document as static files into a
docroot served by its own nginx (P worker processes, same URL paths, same
Content-Types). Checks that both servers answer the same bytes, then runs wrk
with the same parameters against each, one after the other (a warm-up pass
first): GET /v1/thumbnails/<id>/image, then GET /v1/thumbnails/<id>. Prints
req/s, p50/p99, the ratio thumbnailed/nginx and the CPU each side used.

On a machine with more cores than server processes, wrk is pinned to the last
core and both servers (every process of theirs, Redis included) to the others,
so that each server gets the same CPU budget and the client never competes
with it (--pin).

usage: bench/read.py BUILD_DIR PHOTO [options]     (--help for the options)
"""
import argparse
import json
import os
import re
import resource
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

PACKAGES = ["nginx", "wrk"]  # Debian 12; nginx-light works as well


def log(msg):
    print("read.py: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_nginx():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)


def install_missing():
    """Installs nginx and wrk from Debian's archive when they are missing."""
    have = {"nginx": find_nginx(), "wrk": shutil.which("wrk")}
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


def tree_cpu(root):
    """CPU seconds used so far by root and its descendants, by process name."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                stats[int(d)] = st
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


# ---- the two servers -----------------------------------------------------

def start_thumbnailed(args, tmp, port, cpus):
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
processes = {args.processes}
[worker]
processes = 1
job_timeout = 10m
[redis]
data_dir = {tmp}/data
""")
    os.makedirs(os.path.join(tmp, "run"), exist_ok=True)
    os.makedirs(os.path.join(tmp, "data"), exist_ok=True)
    pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    logf = open(os.path.join(tmp, "thumbnailed.log"), "w")
    wrap = shlex.split(args.wrap) if args.wrap else []
    return subprocess.Popen(wrap + [os.path.join(args.build, "thumbnailed"), "-f", "-c", conf],
                            stdout=logf, stderr=logf, preexec_fn=pre, start_new_session=True)


def start_nginx(args, tmp, port, cpus, docroot, job_id, mime):
    ngx = os.path.join(tmp, "nginx")
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
worker_processes {args.processes};
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("build", help="build directory holding thumbnailed (RelWithDebInfo)")
    ap.add_argument("photo", help="source photo, uploaded once")
    ap.add_argument("-P", "--processes", type=int, default=1,
                    help="http.processes of thumbnailed = worker_processes of nginx")
    ap.add_argument("-t", "--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("-c", "--connections", type=int, default=50, help="wrk connections")
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds of each measured run")
    ap.add_argument("-w", "--warmup", type=int, default=3, help="seconds of each warm-up run")
    ap.add_argument("-r", "--rounds", type=int, default=3,
                    help="measured runs per server and route, alternating; medians reported")
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
                    help="after the table, keep both servers up until Ctrl-C (for a profiler)")
    ap.add_argument("--wrap", metavar="CMD",
                    help="run thumbnailed under CMD, e.g. 'valgrind --tool=callgrind' (profiling)")
    args = ap.parse_args()

    if not os.access(os.path.join(args.build, "thumbnailed"), os.X_OK):
        sys.exit("read.py: no thumbnailed in %s (build it first)" % args.build)
    if not os.path.isfile(args.photo):
        sys.exit("read.py: no photo %s (bench/get-photos.sh)" % args.photo)
    install_missing()
    ncpu = os.cpu_count() or 1
    pin = args.pin == "yes" or (args.pin == "auto" and ncpu > args.processes)
    if pin and ncpu < 2:
        sys.exit("read.py: --pin needs at least 2 cores")
    server_cpus = set(range(ncpu - 1)) if pin else None
    wrk_cpus = {ncpu - 1} if pin else None
    width, height = (int(x) for x in args.size.split("x"))

    slow = 10 if args.wrap else 1  # timeouts under a profiler
    tmp = tempfile.mkdtemp(prefix="th-read-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody when started by root
    th = ngx = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        th_port, ngx_port = free_port(), free_port()
        th = start_thumbnailed(args, tmp, th_port, server_cpus)
        wait_http(th_port, "/readyz", 30 * slow, th, os.path.join(tmp, "thumbnailed.log"))
        with open(args.photo, "rb") as f:
            photo = f.read()
        ext = os.path.splitext(args.photo)[1].lower().lstrip(".")
        ctype = "image/" + {"jpg": "jpeg"}.get(ext, ext or "jpeg")
        base = "http://127.0.0.1:%d" % th_port
        query = "width=%d&height=%d&fit=%s&format=%s" % (width, height, args.fit, args.format)
        if args.quality:
            query += "&quality=%d" % args.quality
        _, doc = http_json("POST", base + "/v1/thumbnails?" + query, photo, ctype)
        job_id = doc["id"]
        deadline = time.monotonic() + 120 * slow
        while doc["status"] not in ("done", "failed", "canceled"):
            if time.monotonic() > deadline:
                raise RuntimeError("job %s not done in %d s" % (job_id, 120 * slow))
            _, doc = http_json("GET", base + "/v1/thumbnails/%s?wait=30" % job_id)
        if doc["status"] != "done":
            raise RuntimeError("job %s: %s" % (job_id, json.dumps(doc)))

        image_path = "/v1/thumbnails/%s/image" % job_id
        job_path = "/v1/thumbnails/%s" % job_id
        st, img_hdr, img_head, img = raw_get(th_port, image_path)
        st2, job_hdr, job_head, job = raw_get(th_port, job_path)
        if st != 200 or st2 != 200:
            raise RuntimeError("thumbnailed answered %d / %d" % (st, st2))
        mime = img_hdr.get("content-type", "application/octet-stream")
        docroot = os.path.join(tmp, "docroot")
        os.mkdir(docroot)
        os.chmod(docroot, 0o755)
        for name, data in (("image", img), ("job.json", job)):
            with open(os.path.join(docroot, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(docroot, name), 0o644)
        ngx = start_nginx(args, tmp, ngx_port, server_cpus, docroot, job_id, mime)
        wait_http(ngx_port, image_path, 15, ngx, os.path.join(tmp, "nginx", "error.log"))

        routes = [("GET image", image_path, img_hdr, img_head),
                  ("GET job document", job_path, job_hdr, job_head)]
        routes = [r for r, key in zip(routes, ("image", "job")) if args.route in (key, "both")]
        sizes, x_cache = {}, {}
        for name, path, hdr, head in routes:
            # The second GET of each route: it answers from the cache if there is one.
            _, th_h, _, th_body = raw_get(th_port, path)
            x_cache[name] = (hdr.get("x-cache", "absent"), th_h.get("x-cache", "absent"))
            nst, ng_h, ng_head, ng_body = raw_get(ngx_port, path)
            if nst != 200 or th_body != ng_body:
                raise RuntimeError("%s: nginx (%d, %d bytes) and thumbnailed (%d bytes) differ"
                                   % (name, nst, len(ng_body), len(th_body)))
            if th_h.get("content-type") != ng_h.get("content-type"):
                raise RuntimeError("%s: Content-Type %r vs %r" % (
                    name, th_h.get("content-type"), ng_h.get("content-type")))
            sizes[path] = (len(th_body), head, ng_head)

        runner = Runner(args, wrk_cpus)
        results = {}
        for name, path, _, _ in routes:
            targets = [("thumbnailed", "http://127.0.0.1:%d%s" % (th_port, path), th.pid),
                       ("nginx", "http://127.0.0.1:%d%s" % (ngx_port, path), ngx.pid)]
            for server, url, pid in targets:
                log("%s: warm-up %s %d s" % (name, server, args.warmup))
                runner.wrk(url, args.warmup, pid)
            runs = {"thumbnailed": [], "nginx": []}
            for i in range(args.rounds):
                for server, url, pid in targets:
                    log("%s: %s run %d/%d, %d s" % (name, server, i + 1, args.rounds,
                                                     args.duration))
                    runs[server].append(runner.wrk(url, args.duration, pid))
            results[path] = {k: median_run(v) for k, v in runs.items()}

        # ---- print ----
        print("machine: " + machine())
        print("thumbnailed %s; %s; %s" % (
            version_of([os.path.join(args.build, "thumbnailed"), "-v"]),
            version_of([find_nginx(), "-v"]), version_of(["wrk", "-v"])))
        print("parameters: P=%d (thumbnailed http.processes, nginx worker_processes), "
              "worker.processes=1, embedded Redis; wrk -t%d -c%d -d%ds --latency, "
              "%d s warm-up, %d round(s)" % (args.processes, args.threads, args.connections,
                                             args.duration, args.warmup, args.rounds))
        print("pinning: " + ("servers on CPU %s, wrk on CPU %s" % (
            ",".join(map(str, sorted(server_cpus))), ",".join(map(str, sorted(wrk_cpus))))
            if pin else "none"))
        print("job: %s, %s %s %s%s of %s (%d bytes)" % (
            job_id, args.size, args.fit, args.format,
            " q%d" % args.quality if args.quality else "", os.path.basename(args.photo),
            len(photo)))
        for name, _, hdr, _ in routes:
            print("thumbnailed %s: X-Cache first %s, second %s; headers %s" % (
                name, x_cache[name][0], x_cache[name][1], ", ".join(sorted(hdr))))
        print()
        print("| route | body bytes | headers th / nginx | thumbnailed req/s | nginx req/s "
              "| ratio th/nginx | p50 th / nginx | p99 th / nginx |")
        print("|---|---|---|---|---|---|---|---|")
        for name, path, _, _ in routes:
            t, n = results[path]["thumbnailed"], results[path]["nginx"]
            body, th_head, ng_head = sizes[path]
            print("| %s | %d | %d / %d | %.0f | %.0f | %.2f | %.2f / %.2f ms | %.2f / %.2f ms |"
                  % (name, body, th_head, ng_head, t["rps"], n["rps"], t["rps"] / n["rps"],
                     t["p50"], n["p50"], t["p99"], n["p99"]))
        print()
        print("CPU used during the measured runs (cores, by process name):")
        print()
        print("| route | thumbnailed | wrk on thumbnailed | nginx | wrk on nginx |")
        print("|---|---|---|---|---|")
        for name, path, _, _ in routes:
            t, n = results[path]["thumbnailed"], results[path]["nginx"]
            print("| %s | %s | %.2f | %s | %.2f |" % (
                name, fmt_cpu(t["server_cpu"]), t["wrk_cpu"], fmt_cpu(n["server_cpu"]),
                n["wrk_cpu"]))
        if args.rounds > 1:
            print()
        bad = []
        for name, path, _, _ in routes:
            for server, r in results[path].items():
                if r["non2xx"] or r["sockerr"]:
                    bad.append("%s, %s: %d non-2xx, %d socket errors" % (
                        name, server, r["non2xx"], r["sockerr"]))
                if args.rounds > 1:
                    print("%s, %s: req/s of each round %s" % (
                        name, server, " ".join("%.0f" % x for x in r["all_rps"])))
        for b in bad:
            print("WARNING: " + b)
        sys.stdout.flush()
        if args.hold:
            log("holding: thumbnailed pid %d on %s, nginx pid %d on %s; Ctrl-C to stop" % (
                th.pid, base + image_path, ngx.pid,
                "http://127.0.0.1:%d%s" % (ngx_port, image_path)))
            while th.poll() is None and ngx.poll() is None:
                time.sleep(1)
        if bad:
            sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(ngx, "nginx", 10)
        stop(th, "thumbnailed", 30 * slow)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
