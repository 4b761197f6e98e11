#!/usr/bin/python3
"""Redis memory per job in each storage backend, measured side by side.

Starts a redis-server, a loopback image source and (for storage.backend = s3)
the test suite's S3 store (s3rver behind its SigV4-verifying proxy,
tests/integration/s3fixture.py), then for each backend a thumbnailed on that
Redis: N URL jobs of ~3 KB WebP thumbnails, and prints how much Redis'
used_memory grew per job (everything a finished job leaves: its hash, its
result, dedup keys, indices) and MEMORY USAGE of one job's hash and result.

usage: bench/redis_memory.py BUILD_DIR [N]
(BUILD_DIR holds thumbnailed and tests/s3/s3rver, which `ctest -R s3.npm_ci`
installs)
"""
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))

from helpers import Daemon, RedisServer, SourceServer, make_images  # noqa: E402

build = Path(sys.argv[1]).resolve()
n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
os.environ.setdefault("TH_S3RVER",
                      str(build / "tests/s3/s3rver/node_modules/s3rver/bin/s3rver.js"))
import s3fixture  # noqa: E402


def used_memory(redis):
    for line in redis.query("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise RuntimeError("no used_memory in INFO")


def run(kind, tmp, source):
    redis = RedisServer(tmp / f"redis-{kind}").start()
    overrides = {"redis": {"mode": "external", "url": redis.url}}
    store = None
    if kind == "s3":
        store = s3fixture.S3Store(tmp / "s3").start()
        overrides["storage"] = {"backend": "s3", "endpoint": store.endpoint,
                                "bucket": store.bucket, "region": store.region,
                                "access_key": store.access_key,
                                "secret_key": store.secret_key, "path_style": "yes"}
    d = Daemon(str(build / "thumbnailed"), tmp / f"d-{kind}", overrides).start()
    try:
        d.wait(d.submit(url=source.url("img/land.jpg"), width=10)["id"])  # scripts loaded
        before = used_memory(redis)
        ids = [d.submit(url=source.url("img/land.jpg"), width=320 + i, format="webp")["id"]
               for i in range(n)]
        docs = [d.wait(i) for i in ids]
        time.sleep(1.5)  # uploads swept, deliveries none
        grown = (used_memory(redis) - before) / n
        thumb = sum(doc["result"]["bytes"] for doc in docs) / n
        job = redis.query("MEMORY", "USAGE", "{thumbnailed}:job:" + ids[0])
        res = redis.query("MEMORY", "USAGE", "{thumbnailed}:res:" + ids[0])
        print(f"storage.backend = {kind:5}: {n} jobs, thumbnails {thumb:.0f} B on average; "
              f"Redis grew {grown:.0f} B/job (MEMORY USAGE: job hash {job} B, "
              f"result {res if res is not None else 'none'})")
    finally:
        d.stop()
        redis.stop()
        if store:
            store.stop()


def main():
    problem = s3fixture.missing()
    if problem:
        sys.exit(f"redis_memory.py: {problem}")
    tmp = Path(tempfile.mkdtemp(prefix="th-redis-memory-"))
    source = SourceServer(make_images(tmp / "images"))
    source.start()
    try:
        for kind in ("redis", "s3"):
            run(kind, tmp, source)
    finally:
        source.stop()


main()
