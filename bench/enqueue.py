#!/usr/bin/python3
"""Enqueue rate: wrk POSTing distinct URL jobs at one http child per core.

Starts its own thumbnailed (embedded Redis, http.processes = one per core by
default, no per-client queue bound, redis.max_queue raised so that the jobs
of every round fit) with the fleet paused (POST
/v1/admin/pause), so that what is measured is the submit path alone: parse,
validate, deduplicate, enqueue, answer 202; no worker competes for the cores.
wrk (bench/enqueue.lua) sends `{"url": ...?r=<run>&t=<thread>&n=<counter>, 100x100
cover jpeg}`, a distinct URL each, so no request is deduplicated. After a
warm-up run, ROUNDS runs of DURATION seconds; for each: req/s, p50/p99, the
answers by status (every one must be 202), and the CPU share of the http
children and Redis; the http children's RSS after the warm-up and after each
round, by the requests served so far. Prints the median round. Each run is bounded (wrk -d,
a timeout beside it); the daemon is stopped at the end, on error and on Ctrl-C.

usage: bench/enqueue.py BUILD_DIR [-d 10] [-c 64] [-t THREADS] [--http N] [-r 3]
"""
import argparse
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from mix import daemon_tree, status_kb  # bench/mix.py, beside this file
from read import free_port, install_missing, machine, stop, tail, version_of, wait_http, \
    TICK  # bench/read.py

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print("enqueue.py: " + msg, file=sys.stderr, flush=True)


def start_daemon(build, tmp, port, http):
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
processes = {http}
max_queued_per_client = 0
max_connections_per_client = 0
[worker]
processes = 1
[fetch]
allow_hosts = 127.0.0.1:9
[redis]
data_dir = {tmp}/data
; every job of the run stays queued (the fleet is paused): room for them all
max_queue = 10000000
""")
    logf = open(os.path.join(tmp, "thumbnailed.log"), "w")
    return subprocess.Popen([os.path.join(build, "thumbnailed"), "-f", "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True)


def tree_by_kind(master):
    """CPU ticks so far of the daemon's processes by kind, and their pids by kind."""
    ticks, pids = {}, {}
    for pid, (kind, t) in daemon_tree(master).items():
        ticks[kind] = ticks.get(kind, 0) + t
        pids.setdefault(kind, []).append(pid)
    return ticks, pids


def http_rss(master):
    """VmRSS (kB) of each http child, in pid order."""
    _, pids = tree_by_kind(master)
    return [status_kb(p)["VmRSS"] for p in sorted(pids.get("http", []))]


def wrk(port, args, duration):
    cmd = ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % duration,
           "--latency", "-s", os.path.join(HERE, "enqueue.lua"),
           "http://127.0.0.1:%d/v1/thumbnails" % port, "--", "http://127.0.0.1:9/photo.jpg",
           "%d" % time.monotonic_ns()]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=duration + 60)
    if r.returncode != 0:
        raise RuntimeError("%s: status %d: %s" % (shlex.join(cmd), r.returncode, r.stderr))
    res = {"stderr": r.stderr.strip()[:500]}
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            res["rate"] = float(line.split()[1])
        elif line.startswith("statuses:"):
            res["statuses"] = dict(kv.split("=") for kv in line.split()[1:])
        elif line.startswith("p99_us:"):
            res["p99"] = int(line.split()[1]) / 1000.0
        elif line.startswith("p50_us:"):
            res["p50"] = int(line.split()[1]) / 1000.0
        elif "Socket errors" in line or "Non-2xx" in line:
            res["errors"] = line
    if "rate" not in res or "statuses" not in res:
        raise RuntimeError("wrk's output unread:\n" + r.stdout)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", metavar="BUILD_DIR")
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per round (10)")
    ap.add_argument("-c", "--connections", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("-t", "--threads", type=int, default=0,
                    help="wrk threads (default: one per core)")
    ap.add_argument("--http", type=int, default=0,
                    help="http.processes (default: one per core)")
    ap.add_argument("-r", "--rounds", type=int, default=3, help="measured rounds (3)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    args.threads = args.threads or cores
    args.http = args.http or cores
    if min(args.duration, args.connections, args.rounds) < 1:
        sys.exit("enqueue.py: -d, -c and -r must be at least 1")
    binary = os.path.join(args.build, "thumbnailed")
    if not os.access(binary, os.X_OK):
        sys.exit("enqueue.py: no thumbnailed in %s (build it first)" % args.build)
    if not shutil.which("wrk"):
        install_missing(False)

    tmp = tempfile.mkdtemp(prefix="th-enqueue-")
    daemon = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rounds = []
    try:
        port = free_port()
        daemon = start_daemon(args.build, tmp, port, args.http)
        wait_http(port, "/readyz", 30, daemon, os.path.join(tmp, "thumbnailed.log"))
        req = urllib.request.Request("http://127.0.0.1:%d/v1/admin/pause" % port, data=b"",
                                     method="POST")
        urllib.request.urlopen(req, timeout=10).read()
        log("warm-up: 2 s")
        served = sum(int(n) for n in wrk(port, args, 2)["statuses"].values())
        # The http children's RSS after the warm-up and after each round, by
        # the requests served so far: flat when a request leaves nothing behind.
        series = [(served, http_rss(daemon.pid))]
        for i in range(args.rounds):
            log("round %d/%d: %d s" % (i + 1, args.rounds, args.duration))
            t0, (c0, _) = time.monotonic(), tree_by_kind(daemon.pid)
            res = wrk(port, args, args.duration)
            t1, (c1, pids) = time.monotonic(), tree_by_kind(daemon.pid)
            bad = {s: n for s, n in res["statuses"].items() if s != "202"}
            if bad or "errors" in res:
                raise RuntimeError("answers other than 202: %s %s %s" % (bad, res.get("errors", ""), res.get("stderr", "")))
            res["cpu"] = {k: (c1.get(k, 0) - c0.get(k, 0)) / TICK / ((t1 - t0) * cores)
                          for k in c1}
            rounds.append(res)
            served += sum(int(n) for n in res["statuses"].values())
            series.append((served, http_rss(daemon.pid)))
        memory = {k: [status_kb(p) for p in pids.get(k, [])] for k in ("http", "redis")}
        version = version_of([binary, "-v"])
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log("error: %s" % e)
        if daemon is not None:
            log("daemon's log:\n" + tail(os.path.join(tmp, "thumbnailed.log")))
        sys.exit(1)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop(daemon, "thumbnailed", 30)
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    med = sorted(rounds, key=lambda r: r["rate"])[len(rounds) // 2]
    print("command: " + shlex.join([sys.executable] + sys.argv))
    print("machine: " + machine())
    print("daemon: " + version + "; embedded Redis; fleet paused (submits only); "
          "%d http processes" % args.http)
    print("client: wrk -t%d -c%d, %d s rounds, POST distinct URL jobs (bench/enqueue.lua); "
          "%d round(s), the median shown" % (args.threads, args.connections, args.duration,
                                            args.rounds))
    print()
    print("| req/s | p50 ms | p99 ms | jobs enqueued | CPU share: http / redis / master |")
    print("|---|---|---|---|---|")
    print("| %.0f | %.2f | %.2f | %s | %.2f / %.2f / %.2f |" % (
        med["rate"], med["p50"], med["p99"], med["statuses"].get("202"),
        med["cpu"].get("http", 0), med["cpu"].get("redis", 0), med["cpu"].get("master", 0)))
    print()
    print("rounds (req/s): " + " ".join("%.0f" % r["rate"] for r in rounds))
    print("http children's VmRSS (MB, each) by requests served: " + "; ".join(
        "%d: %s" % (n, " ".join("%.1f" % (kb / 1024.0) for kb in rss)) for n, rss in series))
    for kind, rows in memory.items():
        print("%s memory at the end: %s" % (kind, "; ".join(
            " ".join("%s %d MB" % (k, v // 1024) for k, v in m.items()) for m in rows)))


if __name__ == "__main__":
    main()
