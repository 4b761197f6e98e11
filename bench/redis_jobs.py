#!/usr/bin/python3
"""What one Redis can carry: the job life cycle's Redis cost, and how many nodes that feeds.

Starts its own redis-server (unix socket, appendonly yes, appendfsync
everysec, noeviction, no RDB: as src/master/redis_embedded.c runs it) and,
for each client count C, C client processes that each run whole job life
cycles against it, for a fixed time, with the daemon's own Lua scripts
(src/common/lua, common.lua prepended as src/common/embed_lua.cmake does) and
the daemon's own arguments:

  http child   EVALSHA enqueue (a URL job with the fields job.c stores)
  worker       EVALSHA take (the head of ready moved to proc and started),
               EVALSHA complete (a result of --result-bytes bytes; its reply
               is the job for the node's cache), as a busy worker does

Each client has two connections, one for its "http child" and one for its
"worker". Optionally S subscriber connections SUBSCRIBE to {p}:done and
{p}:changed, as every http child of every node does, so that the cost of
fanning out the PUBLISH of each finished job can be measured.

From INFO deltas over the measured window it reports per job: commands the
clients sent and commands Redis ran (commandstats, script-internal calls
included), bytes in and out (total_net_*_bytes) and main-thread CPU
(used_cpu_{sys,user}_main_thread); from the CPU, how many jobs/s one Redis
main thread could carry at 100 % and so how many nodes of --node-rate jobs/s.

usage: bench/redis_jobs.py [-c 1,2,4,8] [-d 10] [-s 0] [--result-bytes 3072]
                           [--node-rate 100] [--pin auto|yes|no]
"""
import argparse
import hashlib
import multiprocessing
import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis  # Debian's python3-redis

from read import machine  # bench/read.py, beside this file

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "common", "lua")
PREFIX = "thumbnailed"  # redis.key_prefix's default
RESULT_TTL_MS = "86400000"  # redis.result_ttl 24h
MAX_QUEUE = "100000"  # redis.max_queue
MAX_CLIENT = "1000"  # http.max_queued_per_client


def key(kind, ident=None):
    """queue_key(): {prefix}:kind[:id]."""
    return "{%s}:%s" % (PREFIX, kind) if ident is None else "{%s}:%s:%s" % (PREFIX, kind, ident)


class Scripts:
    """The embedded scripts: common.lua + name.lua, run by EVALSHA, EVAL on NOSCRIPT."""

    def __init__(self):
        with open(os.path.join(LUA_DIR, "common.lua")) as f:
            common = f.read()
        self.source, self.sha = {}, {}
        for name in ("enqueue", "take", "complete"):
            with open(os.path.join(LUA_DIR, name + ".lua")) as f:
                self.source[name] = (common + f.read()).encode()
            self.sha[name] = hashlib.sha1(self.source[name]).hexdigest()

    def run(self, r, name, keys, args):
        try:
            return r.execute_command("EVALSHA", self.sha[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return r.execute_command("EVAL", self.source[name], len(keys), *keys, *args)


# ---- the redis-server -----------------------------------------------------

class RedisServer:
    """redis-server in tmp on a unix socket, with the embedded Redis' settings."""

    def __init__(self, tmp, cpus):
        self.sock = os.path.join(tmp, "redis.sock")
        argv = ["redis-server", "--port", "0", "--unixsocket", self.sock,
                "--unixsocketperm", "700", "--dir", tmp, "--appendonly", "yes",
                "--maxmemory-policy", "noeviction", "--appendfsync", "everysec", "--save", "",
                "--daemonize", "no", "--loglevel", "warning",
                "--logfile", os.path.join(tmp, "redis.log"), "--databases", "1"]
        if cpus:
            argv = ["taskset", "-c", cpus] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.r = redis.Redis(unix_socket_path=self.sock)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.r.ping()
                break
            except (redis.exceptions.ConnectionError, FileNotFoundError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start (see %s/redis.log)" % tmp)
                time.sleep(0.05)

    def info(self):
        """The figures the report needs, read in one INFO."""
        i = self.r.info("all")
        calls = {k[len("cmdstat_"):]: v["calls"] for k, v in i.items()
                 if k.startswith("cmdstat_")}
        return {"calls": calls, "in": i["total_net_input_bytes"],
                "out": i["total_net_output_bytes"],
                "cpu": i["used_cpu_sys_main_thread"] + i["used_cpu_user_main_thread"],
                "mem": i["used_memory"]}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- clients --------------------------------------------------------------

def life_cycles(sock, n, result_bytes, ready, go, out):
    """One client: whole job life cycles from go's start time until its end time.

    Puts (jobs, commands sent, monotonic time of the last one's end) on out."""
    scripts = Scripts()
    http = redis.Redis(unix_socket_path=sock)
    worker = redis.Redis(unix_socket_path=sock)
    http.ping()
    worker.ping()
    wid = "bench-node:%d" % os.getpid()  # queue_worker_id(): <node>:<pid>
    k_ready, k_delayed, k_proc = key("ready"), key("delayed"), key("proc", wid)
    k_workers = key("workers", "bench-node")
    # The submitter's own waiting set: a hash of its address (submit.c's hashed_key).
    k_client = key("client", hashlib.sha256(b"client\0127.0.0.%d" % n).hexdigest())
    result = secrets.token_bytes(result_bytes)
    ready.release()
    start, end = go.get()
    while time.monotonic() < start:
        time.sleep(0.001)
    jobs = sent = 0
    while time.monotonic() < end:
        ident = secrets.token_urlsafe(16)  # id_generate(): 22 characters of base64url
        url = "https://images.example.com/photos/%s.jpg" % ident
        req = hashlib.sha256(b"request\0" + url.encode()).hexdigest()
        fields = ["src", "url", "url", url, "width", "256", "height", "256", "fit", "cover",
                  "crop", "centre", "format", "webp", "quality", "80"]
        # submit.c build_enqueue: KEYS job ready delayed src idem req client
        rep = scripts.run(http, "enqueue",
                          [key("job", ident), k_ready, k_delayed, key("src", ident), "",
                           key("idem", req), k_client],
                          [ident, MAX_QUEUE, "", "0", RESULT_TTL_MS, PREFIX, MAX_CLIENT] + fields)
        if rep[0] != b"ok":
            raise SystemExit("enqueue: %r" % (rep,))
        # jobqueue_take with work ready: take.lua, KEYS ready proc workers;
        # ARGV token wid prefix -> {id, fields...}
        token = secrets.token_hex(16)
        taken = scripts.run(worker, "take", [k_ready, k_proc, k_workers], [token, wid, PREFIX])
        sent += 2  # enqueue, take
        if not taken or len(taken) < 2:
            raise SystemExit("take: %r" % (taken,))
        taken = taken[0].decode()
        # jobqueue_complete: KEYS job res proc src; ARGV id token ttl bytes
        # prefix ms src_bytes store fields -> {1, pttl, fields...}
        done = ["src_mime", "image/jpeg", "src_bytes", "412345", "src_width", "2560",
                "src_height", "1600", "res_mime", "image/webp", "res_bytes", str(result_bytes),
                "res_width", "256", "res_height", "256", "res_etag", token]
        rep = scripts.run(worker, "complete",
                          [key("job", taken), key("res", taken), k_proc, key("src", taken)],
                          [taken, token, RESULT_TTL_MS, result, PREFIX, "180", "412345",
                           "redis"] + done)
        if not isinstance(rep, list) or rep[0] != 1:
            raise SystemExit("complete: job %s not stored: %r" % (taken, rep))
        sent += 1
        jobs += 1
    out.put((jobs, sent, time.monotonic()))


def subscribers(sock, n, ready, stop):
    """n connections subscribed to {p}:done and {p}:changed, their messages read and dropped."""
    sel = selectors.DefaultSelector()
    conns = []
    channels = [key("done").encode(), key("changed").encode()]
    cmd = b"*3\r\n$9\r\nSUBSCRIBE\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(c), c)
                                                   for c in channels)
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(cmd)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        conns.append(s)
    ready.release()
    while not stop.is_set():
        for k, _ in sel.select(0.2):
            try:
                k.fileobj.recv(1 << 16)
            except BlockingIOError:
                pass
    for s in conns:
        s.close()


# ---- one measurement ------------------------------------------------------

def measure(tmp, clients, subs, duration, result_bytes, pin):
    """Runs clients life-cycle processes for duration seconds on a redis-server of their own."""
    work = tempfile.mkdtemp(dir=tmp)
    server = RedisServer(work, pin["redis"])
    ctx = multiprocessing.get_context("fork")
    ready, go, out, stop = ctx.Semaphore(0), ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = []
    try:
        for s in Scripts().source.values():  # as after the daemon's first EVAL of each
            server.r.execute_command("SCRIPT", "LOAD", s)
        if subs:
            procs.append(ctx.Process(target=subscribers, args=(server.sock, subs, ready, stop)))
        for n in range(clients):
            procs.append(ctx.Process(target=life_cycles,
                                     args=(server.sock, n, result_bytes, ready, go, out)))
        for p in procs:
            p.start()
            if pin["clients"]:
                subprocess.run(["taskset", "-p", "-c", pin["clients"], str(p.pid)],
                               check=True, stdout=subprocess.DEVNULL)
        for _ in procs:
            if not ready.acquire(timeout=30):
                raise SystemExit("a client did not connect")
        before = server.info()
        start = time.monotonic() + 0.2
        for _ in range(clients):
            go.put((start, start + duration))
        results = [out.get(timeout=duration + 30) for _ in range(clients)]
        after = server.info()
        wall = max(r[2] for r in results) - start
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    jobs = sum(r[0] for r in results)
    sent = sum(r[1] for r in results)
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    calls.pop("info", None)  # our own two
    ran = sum(calls.values())
    cpu = after["cpu"] - before["cpu"]
    return {"clients": clients, "subs": subs, "jobs": jobs, "wall": wall,
            "rate": jobs / wall, "sent": sent / jobs, "ran": ran / jobs,
            "in": (after["in"] - before["in"]) / jobs,
            "out": (after["out"] - before["out"]) / jobs,
            "cpu_us": cpu / jobs * 1e6, "busy": cpu / wall,
            "mem": (after["mem"] - before["mem"]) / jobs,
            "by_name": sorted(((v / jobs, k) for k, v in calls.items() if v), reverse=True)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-c", "--clients", default="1,2,4,8",
                    help="comma-separated client process counts (default 1,2,4,8)")
    ap.add_argument("-s", "--subscribers", default="0",
                    help="comma-separated subscriber connection counts, each run with every "
                         "client count (default 0)")
    ap.add_argument("-d", "--duration", type=float, default=10, help="seconds per run")
    ap.add_argument("--result-bytes", type=int, default=3072, help="the thumbnail's size")
    ap.add_argument("--node-rate", type=float, default=100,
                    help="jobs/s one node makes (bench/RESULTS.md: about 100 on 2 cores)")
    ap.add_argument("--subs-per-node", type=int, default=2,
                    help="subscriber connections a node holds: one per http child (http.processes"
                         " = 2)")
    ap.add_argument("--pin", choices=("auto", "yes", "no"), default="auto",
                    help="redis-server on CPU 0, the clients on the others (auto: with 2+ cores)")
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    ncpu = os.cpu_count()
    pin = {"redis": None, "clients": None}
    if a.pin == "yes" or (a.pin == "auto" and ncpu >= 2):
        pin = {"redis": "0", "clients": "1" if ncpu == 2 else "1-%d" % (ncpu - 1)}
    version = subprocess.run(["redis-server", "--version"], capture_output=True,
                             text=True).stdout.split()
    print("Machine:", machine())
    print("Redis:", " ".join(version[:3]), "| unix socket, appendonly yes, appendfsync everysec,"
          " noeviction | pinning:", "redis-server CPU %s, clients CPU %s" % (
              pin["redis"], pin["clients"]) if pin["redis"] else "none")
    print("Per run: %.0f s; result %d B; node rate %.0f jobs/s\n" % (
        a.duration, a.result_bytes, a.node_rate))
    rows = []
    with tempfile.TemporaryDirectory(prefix="redis-jobs-") as tmp:
        for subs in [int(x) for x in a.subscribers.split(",")]:
            for clients in [int(x) for x in a.clients.split(",")]:
                r = measure(tmp, clients, subs, a.duration, a.result_bytes, pin)
                rows.append(r)
                print("clients %d, subscribers %d: %d jobs in %.1f s, Redis main thread "
                      "%.0f %% busy" % (clients, subs, r["jobs"], r["wall"], 100 * r["busy"]),
                      flush=True)
    print()
    print("| clients | subscribers | jobs/s | Redis busy | commands/job sent / run "
          "| bytes in / out per job | Redis CPU/job | jobs/s at 100 %% | nodes at %.0f jobs/s |"
          % a.node_rate)
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ceiling = 1e6 / r["cpu_us"]
        print(("| %d | %d | %.0f | %.0f %% | %.1f / %.1f | %.0f / %.0f | %.1f µs | %.0f | %.0f |")
              % (r["clients"], r["subs"], r["rate"], 100 * r["busy"], r["sent"], r["ran"],
                 r["in"], r["out"], r["cpu_us"], ceiling, ceiling / a.node_rate))
    last = rows[-1]
    print("\nCommands Redis ran per job (clients %d, subscribers %d): %s" % (
        last["clients"], last["subs"],
        ", ".join("%s %.2g" % (k, v) for v, k in last["by_name"])))
    print("Memory per finished job (kept for redis.result_ttl): %.0f B" % last["mem"])
    fan_out(rows, a.node_rate, a.subs_per_node)


def fan_out(rows, rate, per_node):
    """Nodes one Redis feeds when each also adds per_node subscribers of {p}:done.

    From the largest client count measured both without and with subscribers: the
    CPU of a job b and the CPU of one more subscriber per job m give, for n nodes,
    n * rate * (b + per_node * n * m) = 1 s of main thread per second."""
    base = {r["clients"]: r for r in rows if r["subs"] == 0}
    both = [r for r in rows if r["subs"] > 0 and r["clients"] in base]
    if not both or per_node <= 0:
        return
    r = max(both, key=lambda r: (r["clients"], r["subs"]))
    b = base[r["clients"]]["cpu_us"] / 1e6
    m = max(0.0, (r["cpu_us"] / 1e6 - b) / r["subs"])
    out = (r["out"] - base[r["clients"]]["out"]) / r["subs"]
    print("One more subscriber costs %.2f µs of Redis CPU and %.0f B out per job (clients %d, "
          "%d subscribers against none)" % (m * 1e6, out, r["clients"], r["subs"]))
    if m == 0:
        return
    qa, qb = per_node * m * rate, b * rate
    n = (-qb + (qb * qb + 4 * qa) ** 0.5) / (2 * qa)
    print("With %d subscribers per node (its http children), one Redis main thread at 100 %% "
          "feeds %.0f nodes of %.0f jobs/s (%.0f jobs/s)" % (per_node, n, rate, n * rate))


if __name__ == "__main__":
    sys.exit(main())
