"""When Redis is up but refuses writes (docs/ARCHITECTURE.md §8): its disk
full (MISCONF), its maxmemory reached (OOM), too few replicas (NOREPLICAS),
loading its data (LOADING). Clients get 202 or 503 with Retry-After, never a
500; /readyz says why; no process spins or floods the log; every job that
was answered 202 ends done once Redis accepts writes again, and a worker that
could not store a finished job stores it then, without running it again.

The disk-full test mounts a small tmpfs, which needs root (CI runs as root):
it fails, loudly, when not root, rather than passing untested."""

import io
import os
import random
import signal
import subprocess
import time

import pytest
from PIL import Image
from urllib.parse import urlsplit

from helpers import RedisServer, error_of, wait_for

REFUSAL_CODES = ("store_full", "store_read_only", "unavailable")
LOG_WINDOW_S = 10


def noise_jpeg(side=420, seed=0):
    """A JPEG of random pixels: large for its size on screen, and different per seed."""
    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return out.getvalue()


def embedded_redis(d, *args):
    """A command to the daemon's embedded redis-server, on its socket."""
    return RedisServer(d.dir / "run").command(*args)


def post_upload(d, seed):
    return d.post("/v1/thumbnails", params={"width": 64}, data=noise_jpeg(seed=seed),
                  headers={"Content-Type": "image/jpeg"})


def assert_refusal(r, codes=REFUSAL_CODES):
    """r is a 503 for a refusal: its code, Retry-After, never a 500."""
    err = error_of(r, 503)
    assert err["code"] in codes, r.text
    assert int(r.headers["Retry-After"]) >= 1, r.headers
    return err["code"]


def fill(d, limit=200):
    """Uploads until Redis refuses; every answer is 202 or 503. Returns the ids
    answered 202 and the first refusal's code."""
    accepted = []
    for seed in range(limit):
        r = post_upload(d, seed)
        if r.status_code == 202:
            accepted.append(r.json()["id"])
            continue
        return accepted, assert_refusal(r)
    raise AssertionError(f"Redis never refused after {limit} uploads")


def readyz_refusing(d, reason):
    r = d.get("/readyz")
    return r.status_code == 503 and f"Redis refuses writes ({reason})" in r.text


def cpu_seconds(pids):
    """{pid: utime+stime seconds} of each live pid."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[p] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return out


def quiet_while_refused(d, still_refused, accepted):
    """Over LOG_WINDOW_S seconds of refusals (a submit every half second), the
    log grows by a few lines only and no process of the daemon (redis-server
    included) uses more than a small share of a core. A submit is answered 202
    (when Redis found room for it: appended to accepted) or refused, never
    anything else."""
    procs = [p for kind in d.children().values() for p in kind] + [d.proc.pid]
    before = cpu_seconds(procs)
    lines_before = d.log_path.read_text(errors="replace").count("\n")
    start = time.monotonic()
    seed = 10_000
    while time.monotonic() - start < LOG_WINDOW_S:
        seed += 1
        r = post_upload(d, seed)
        if r.status_code == 202:
            accepted.append(r.json()["id"])
        else:
            assert_refusal(r)
        time.sleep(0.5)
    elapsed = time.monotonic() - start
    after = cpu_seconds(procs)
    assert still_refused(), "the refusal ended during the window; the test cannot tell"
    grown = d.log_path.read_text(errors="replace").count("\n") - lines_before
    assert grown <= 25, f"the log grew by {grown} lines in {elapsed:.0f} s of refusals:\n" + \
        "\n".join(d.log_path.read_text(errors="replace").splitlines()[-grown:])
    for p, used in after.items():
        share = (used - before.get(p, used)) / elapsed
        assert share < 0.35, f"pid {p} used {share:.0%} of a core while Redis refused writes"


def accepted_job(d, source):
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 45})
    if r.status_code == 202:
        return r.json()
    assert_refusal(r)
    return None


def all_done(d, ids, timeout=90):
    for job_id in ids:
        doc = d.wait(job_id, timeout=timeout)
        assert doc["status"] == "done", doc


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB tmpfs for the embedded Redis' data, grown by grow(); root only."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root (CI does)")
    path = tmp_path / "tmpfs"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0750", "tmpfs", str(path)],
                   check=True)

    def grow():
        subprocess.run(["mount", "-o", "remount,size=256m", str(path)], check=True)

    yield path, grow
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_degrades_then_recovers(start_daemon, tmpfs):
    data, grow = tmpfs
    d = start_daemon({"redis": {"data_dir": str(data)}, "worker": {"processes": "1"}})
    accepted, code = fill(d)
    assert code == "store_full", code
    assert accepted, "nothing was accepted before the disk filled"
    # /readyz says so (the master's housekeeping writes every second).
    wait_for("/readyz to say Redis refuses writes (misconf)",
             lambda: readyz_refusing(d, "misconf"), timeout=15)
    assert d.get("/healthz").status_code == 200
    metrics = d.get("/metrics").text
    assert "thumbnailed_redis_refusing_writes 1" in metrics
    assert 'thumbnailed_redis_failures_total{reason="misconf"}' in metrics
    quiet_while_refused(d, lambda: readyz_refusing(d, "misconf"), accepted)
    grow()
    wait_for("/readyz to be ready once the disk has room",
             lambda: d.get("/readyz").status_code == 200, timeout=30)
    all_done(d, accepted)
    doc = d.wait(d.upload(noise_jpeg(seed=99_999), width=32)["id"])
    assert doc["status"] == "done", doc
    assert "thumbnailed_redis_refusing_writes 0" in d.get("/metrics").text


def test_maxmemory_degrades_then_recovers(start_daemon, source):
    d = start_daemon({"redis": {"max_memory": "6M"}, "worker": {"processes": "1"}})
    # The one worker busy on a slow source: the uploads' bytes stay in Redis.
    busy = d.submit(url=source.url("slow/6000/land.jpg"), width=30)
    d.wait_until(busy["id"], ("processing",))
    accepted, code = fill(d)
    accepted.append(busy["id"])
    assert code == "store_full", code
    # Full at the edge, a small write may still fit now and then; below what
    # it holds, Redis refuses every write, as it does once results pile up.
    info = embedded_redis(d, "INFO", "memory")
    used = int(info.split("used_memory:", 1)[1].split()[0])
    assert embedded_redis(d, "CONFIG", "SET", "maxmemory", str(used // 2)) == "OK"
    assert "maxmemory" in post_upload(d, 5_000).json()["error"]["message"]
    wait_for("/readyz to say Redis refuses writes (oom)",
             lambda: readyz_refusing(d, "oom"), timeout=15)
    quiet_while_refused(d, lambda: readyz_refusing(d, "oom"), accepted)
    assert embedded_redis(d, "CONFIG", "SET", "maxmemory", "0") == "OK"
    wait_for("/readyz to be ready once Redis has memory",
             lambda: d.get("/readyz").status_code == 200, timeout=30)
    all_done(d, accepted)
    doc = d.wait(d.upload(noise_jpeg(seed=99_998), width=32)["id"])
    assert doc["status"] == "done", doc


def test_noreplicas_is_read_only(start_daemon, source):
    d = start_daemon()
    done = d.run(url=source.url("img/land.jpg"), width=50)
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "1") == "OK"
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 51})
    assert assert_refusal(r) == "store_read_only"
    wait_for("/readyz to say Redis refuses writes (noreplicas)",
             lambda: readyz_refusing(d, "noreplicas"), timeout=15)
    # Reads still work: from the cache, or from Redis, which still answers reads.
    assert d.job(done["id"])["status"] == "done"
    assert d.image(done).status_code == 200
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "0") == "OK"
    wait_for("/readyz to be ready again", lambda: d.get("/readyz").status_code == 200, timeout=30)
    assert d.run(url=source.url("img/land.jpg"), width=52)["status"] == "done"


def test_worker_keeps_its_result_until_redis_takes_it(start_daemon, source):
    """The outcome of a job that ran while Redis refused is stored when Redis
    accepts again: done at its first attempt, the source fetched once."""
    d = start_daemon({"worker": {"processes": "1"}})
    url = source.url("slow/1500/land.jpg")
    job = d.submit(url=url, width=40)
    d.wait_until(job["id"], ("processing",))
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "1") == "OK"
    # The fetch ends, the thumbnail is made, the store is refused (retried).
    wait_for("the worker's store to be refused",
             lambda: readyz_refusing(d, "noreplicas"), timeout=15)
    time.sleep(2)
    assert d.job(job["id"])["status"] == "processing"
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "0") == "OK"
    doc = d.wait(job["id"], timeout=30)
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 1, doc
    u = urlsplit(url)
    assert source.requests.count(f"{u.path}?{u.query}") == 1, source.requests


def test_release_of_a_dead_worker_waits_for_redis(start_daemon, source):
    """A worker dies while Redis refuses writes: the master cannot release its
    job then, keeps the release and makes it once Redis accepts again, so the
    job is retried and done (attempts 2) instead of staying processing."""
    d = start_daemon({"worker": {"processes": "1"}})
    job = d.submit(url=source.url("slow/3000/land.jpg"), width=41)
    d.wait_until(job["id"], ("processing",))
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "1") == "OK"
    (worker,) = d.children()["worker"]
    os.kill(worker, signal.SIGKILL)
    wait_for("the worker to be replaced",
             lambda: worker not in d.children()["worker"] and d.children()["worker"], timeout=15)
    time.sleep(2)  # the master's release is refused meanwhile
    assert d.job(job["id"])["status"] == "processing"
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "0") == "OK"
    doc = d.wait(job["id"], timeout=60)
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 2, doc


def start_loading_redis(directory, keys=20_000, delay_us=400):
    """A redis-server that spends about keys * delay_us loading its data at
    start (answering LOADING meanwhile): its data made first by a server of the
    same directory, rewritten as an AOF base, then loaded key by key slowly."""
    r = RedisServer(directory).start()
    fill_keys = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'filler:' .. i, i) end"
    assert r.command("EVAL", fill_keys, "0", str(keys)) is not None
    assert r.command("BGREWRITEAOF") is not None
    wait_for("the AOF rewrite",
             lambda: "aof_rewrite_in_progress:0" in r.command("INFO", "persistence") and
             "aof_rewrite_scheduled:0" in r.command("INFO", "persistence"), timeout=30)
    r.stop()
    r.log = open(r.dir / "redis.log", "ab")
    r.proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(r.socket), "--unixsocketperm",
         "700", "--dir", str(r.dir), "--appendonly", "yes", "--save", "",
         "--maxmemory-policy", "noeviction", "--key-load-delay", str(delay_us),
         "--loading-process-events-interval-bytes", "1024"],
        stdin=subprocess.DEVNULL, stdout=r.log, stderr=subprocess.STDOUT)
    wait_for("redis-server to answer LOADING",
             lambda: (r.command("PING") or "").startswith("LOADING"), timeout=10)
    return r


def test_loading_answers_503_until_loaded(start_daemon, source, tmp_path):
    r = start_loading_redis(tmp_path / "redis")
    try:
        d = start_daemon({"redis": {"mode": "external", "url": r.url}})
        r503 = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 44})
        if (r.command("PING") or "").startswith("LOADING"):
            assert assert_refusal(r503, ("unavailable",)) == "unavailable"
            assert d.get("/readyz").status_code == 503
        wait_for("Redis to load", lambda: r.command("PING") == "PONG", timeout=60)
        wait_for("/readyz once Redis has loaded",
                 lambda: d.get("/readyz").status_code == 200, timeout=30)
        # Every http child reconnects within the backoff's cap; a client retries a 503.
        job = wait_for("a submit to be accepted", lambda: accepted_job(d, source), timeout=10)
        assert d.wait(job["id"])["status"] == "done"
    finally:
        r.stop()


def test_refusal_is_never_a_500_on_reads(start_daemon, source):
    d = start_daemon()
    done = d.run(url=source.url("img/land.jpg"), width=53)
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "1") == "OK"
    for path in (f"/v1/thumbnails/{done['id']}", f"/v1/thumbnails/{done['id']}/image",
                 "/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA", "/metrics", "/healthz"):
        r = d.get(path)
        assert r.status_code in (200, 404, 503), (path, r.status_code, r.text)
    r = d.request("DELETE", f"/v1/thumbnails/{done['id']}")
    assert assert_refusal(r) == "store_read_only", r.text
    assert embedded_redis(d, "CONFIG", "SET", "min-replicas-to-write", "0") == "OK"
