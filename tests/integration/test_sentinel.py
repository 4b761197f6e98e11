"""thumbnailed nodes on a Redis made highly available by Sentinel (issue 15):
redis.mode = sentinel, the nodes asking the Sentinels where the primary is.

Each test has a SentinelSet of its own (helpers.py): a primary and its replica,
both with min-replicas-to-write 1, watched by three Sentinels; the first test
checks that set alone. The nodes run with redis.min_replicas_ack = 1, so a 202
means a replica holds the job too. The fault tests kill or stop the primary
under a burst of submits and assert on outcomes: only 202 or a 503 refusal is
answered, and every job answered 202 ends done, read from Redis (after the
failover) by a node that never saw it. They print what they measured (-s)."""

import json
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest
import requests

from helpers import HTTP_TIMEOUT, Daemon, SentinelSet, free_port, resp_command, wait_for

KEY_PREFIX = "senttest"
MAX_ATTEMPTS = 5
FAILOVER_TIMEOUT = 30  # seconds, for the Sentinels to agree on a new primary
REJOIN_TIMEOUT = 30  # seconds, for the old primary to be an online replica again
RECOVERY_TIMEOUT = 30  # seconds from the fault to a 202 again
ALL_DONE_TIMEOUT = 90  # seconds, for every accepted job of a burst to be terminal
START_FAILURE_TIMEOUT = 30  # seconds, for a daemon that cannot reach Redis to give up
REFUSALS = ("unavailable", "store_read_only")  # the 503 codes of a Redis away or failing over


def sentinel_redis(sentinels):
    """The [redis] section of a node on the SentinelSet sentinels."""
    return {"mode": "sentinel", "sentinels": sentinels.sentinel_list,
            "master_name": SentinelSet.MASTER_NAME, "key_prefix": KEY_PREFIX,
            "min_replicas_ack": "1"}


def start_node(start_daemon, sentinels, workers):
    return start_daemon({"redis": sentinel_redis(sentinels),
                         "worker": {"processes": str(workers),
                                    "max_attempts": str(MAX_ATTEMPTS)}})


# ---------------------------------------------------------------------------
# Submits under a fault: every answer recorded, then judged.


@dataclass
class Answer:
    node: Daemon
    sent: float  # time.monotonic() when the request was sent
    received: float  # ... and when its answer (or the error) came
    status: int = None  # None: no HTTP answer (see error)
    job_id: str = None
    code: str = None  # a 503's error code
    retry_after: str = None
    error: str = None  # the exception, when there was no answer

    @property
    def accepted(self):
        return self.status in (200, 202)


def submit_once(node, source):
    """One submit of a new job (its source takes 100 ms, so jobs are in flight
    whenever the fault comes), as an Answer."""
    sent = time.monotonic()
    try:
        r = node.post("/v1/thumbnails", json={"url": source.url("slow/100/land.jpg"), "width": 64})
    except requests.RequestException as e:
        return Answer(node, sent, time.monotonic(), error=repr(e))
    answer = Answer(node, sent, time.monotonic(), status=r.status_code,
                    retry_after=r.headers.get("Retry-After"))
    try:
        body = r.json()
    except ValueError:
        return answer
    if answer.accepted:
        answer.job_id = body.get("id")
    elif isinstance(body.get("error"), dict):
        answer.code = body["error"].get("code")
    return answer


class Submitter(threading.Thread):
    """Submits a new job to node every pace seconds until stop(), keeping every Answer."""

    def __init__(self, node, source, pace=0.1):
        super().__init__(daemon=True)
        self.node, self.source, self.pace = node, source, pace
        self.answers = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(self.pace):
            self.answers.append(submit_once(self.node, self.source))

    def stop(self):
        self.stopping.set()
        self.join(timeout=HTTP_TIMEOUT + 5)
        assert not self.is_alive(), "a submit did not return within its timeout"


def answers_of(submitters):
    return sorted((a for s in submitters for a in list(s.answers)), key=lambda a: a.sent)


def first_accepted_after(submitters, moment, node=None):
    """The first accepted Answer to a submit sent after moment (of node, if given)."""
    return next((a for a in answers_of(submitters)
                 if a.sent > moment and a.accepted and node in (None, a.node)), None)


def check_answers(answers):
    """Asserts each answer is a 202 (or 200) with a job id, or a 503 refusal
    with Retry-After and a code of REFUSALS. No connection error is allowed:
    an http child answers whatever Redis does (a 503 within
    redis.connect_timeout, plus the WAIT), so a reset, refused or timed-out
    connection is a daemon that died or hung. Returns the accepted job ids."""
    wrong = [a for a in answers
             if not (a.accepted and a.job_id)
             and not (a.status == 503 and a.retry_after and a.code in REFUSALS)]
    assert not wrong, f"{len(wrong)} of {len(answers)} answers are neither 202 nor a " \
        f"503 refusal: {[(a.status, a.code, a.retry_after, a.error) for a in wrong[:10]]}"
    ids = [a.job_id for a in answers if a.accepted]
    assert len(ids) == len(set(ids)), "two submits of distinct jobs were answered the same id"
    return ids


def check_all_done(accepted, make_reader):
    """Waits until every job of accepted (Answers) is terminal on the node that
    took it, then asserts, on a reader (a node started once they all are, so
    neither its cache nor its worker has seen any of them and it reads Redis),
    that each is done, ran at most MAX_ATTEMPTS times and has its thumbnail."""
    deadline = time.monotonic() + ALL_DONE_TIMEOUT
    for a in accepted:
        doc = a.node.wait(a.job_id, timeout=max(1, deadline - time.monotonic()))
        assert doc["status"] == "done", f"job {a.job_id} ended {doc['status']}: {doc}"
    reader = make_reader()
    for a in accepted:
        r = reader.get(f"/v1/thumbnails/{a.job_id}")
        assert r.status_code == 200, f"job {a.job_id} accepted, then {r.status_code} {r.text}"
        assert r.headers.get("X-Cache") == "miss", r.headers
        doc = r.json()
        assert doc["status"] == "done", f"job {a.job_id} is {doc['status']} in Redis: {doc}"
        assert 1 <= doc["attempts"] <= MAX_ATTEMPTS, doc
        assert doc["result"]["width"] == 64, doc
        image = reader.image(doc)
        assert len(image.content) == doc["result"]["bytes"], doc


def report(kind, fault_at, failover_at, rejoined_at, recovered):
    """Prints what a fault test measured (pytest -s, or the ctest log)."""
    print(f"\n{kind}: the Sentinels agreed on a new primary after {failover_at - fault_at:.2f}s, "
          f"the old one was an online replica after {rejoined_at - fault_at:.2f}s, "
          f"the first 202 to a submit sent after the {kind} came "
          f"{recovered.received - fault_at:.2f}s after it (node {recovered.node.port})")


def write_refusal(server):
    """None when server takes a write, else its error reply."""
    try:
        server.command("SET", f"{{{KEY_PREFIX}}}:probe", "1")
    except RuntimeError as e:
        return str(e)
    return None


# ---------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGSTOP"])
def test_sentinel_set_fails_over(sentinel_set, fault):
    # The fixture alone: what the tests below rely on, and how long it takes.
    primary = sentinel_set.primary()
    assert write_refusal(primary) is None
    fault_at = time.monotonic()
    old = sentinel_set.kill_primary() if fault == "SIGKILL" else sentinel_set.stop_primary()
    assert old is primary
    new = sentinel_set.wait_failover(old, timeout=FAILOVER_TIMEOUT)
    failover_at = time.monotonic()
    assert "NOREPLICAS" in write_refusal(new)  # no replica yet: no write taken
    if fault == "SIGKILL":
        sentinel_set.restart(old)
    else:
        sentinel_set.cont(old)
    sentinel_set.wait_replica_of(old, new, timeout=REJOIN_TIMEOUT)
    rejoined_at = time.monotonic()
    assert write_refusal(new) is None
    assert new.command("WAIT", 1, 5000) == 1
    assert "READONLY" in write_refusal(old)
    wait_for("the Sentinel set to be ready again", sentinel_set.ready, timeout=30, step=0.2)
    print(f"\n{fault}: the Sentinels agreed on a new primary after "
          f"{failover_at - fault_at:.2f}s; the old one was an online replica after "
          f"{rejoined_at - fault_at:.2f}s")


def test_jobs_from_either_node_run_on_both(sentinel_set, start_daemon, source):
    nodes = [start_node(start_daemon, sentinel_set, workers=1) for _ in range(2)]
    # One worker a node and 300 ms a source: no worker can take every job.
    ids = [nodes[i % 2].submit(url=source.url("slow/300/land.jpg"), width=64)["id"]
           for i in range(20)]
    for i, job_id in enumerate(ids):
        doc = nodes[(i + 1) % 2].wait(job_id)  # read on the node that did not take it
        assert doc["status"] == "done", doc
        assert doc["attempts"] == 1, doc

    def jobs_run():
        return [n.metric('thumbnailed_worker_jobs_total{outcome="done"}') or 0 for n in nodes]

    wait_for("the workers' job counters to add up to 20", lambda: sum(jobs_run()) == 20,
             timeout=5)
    assert all(count >= 1 for count in jobs_run()), \
        f"jobs run by each node's worker: {jobs_run()}"

    # The fleet view: each node names itself and the primary it found, and
    # lists itself in Redis with its heartbeat, its children included.
    primary = sentinel_set.primary()
    ready = [n.get("/readyz").json() for n in nodes]
    assert all(r["redis"] == f"127.0.0.1:{primary.port}" for r in ready), ready
    assert len({r["node"] for r in ready}) == 2, ready
    listed = resp_command(primary.port, "SMEMBERS", "{" + KEY_PREFIX + "}:nodes")
    listed = {m.decode() if isinstance(m, bytes) else m for m in listed}
    assert {r["node"] for r in ready} <= listed, listed
    for r in ready:
        raw = resp_command(primary.port, "GET", "{" + KEY_PREFIX + "}:hb:" + r["node"])
        info = json.loads(raw)
        assert info["id"] == r["node"] and info["redis"] == r["redis"], info
        kinds = sorted(ch["kind"] for ch in info["children"])
        assert kinds.count("worker") == 1 and "http" in kinds and "delivery" in kinds, info


@pytest.mark.timeout(300)
def test_primary_killed_under_a_burst(sentinel_set, start_daemon, source):
    nodes = [start_node(start_daemon, sentinel_set, workers=2) for _ in range(2)]
    for node in nodes:
        node.run(url=source.url("img/land.jpg"), width=64)
    submitters = [Submitter(node, source) for node in nodes]
    started = time.monotonic()
    for s in submitters:
        s.start()
    try:
        time.sleep(2)
        killed_at = time.monotonic()
        old = sentinel_set.kill_primary()
        new = sentinel_set.wait_failover(old, timeout=FAILOVER_TIMEOUT)
        failover_at = time.monotonic()
        sentinel_set.restart(old)  # as a replica of the new primary: writes are taken again
        sentinel_set.wait_replica_of(old, new, timeout=REJOIN_TIMEOUT)
        rejoined_at = time.monotonic()
        recovered = wait_for("a 202 to a submit sent after the kill",
                             lambda: first_accepted_after(submitters, killed_at),
                             timeout=max(1, killed_at + RECOVERY_TIMEOUT - time.monotonic()))
        for node in nodes:
            wait_for(f"node {node.port} to accept again",
                     lambda: first_accepted_after(submitters, recovered.received, node),
                     timeout=10)
        time.sleep(max(1, started + 8 - time.monotonic()))
    finally:
        for s in submitters:
            s.stop()
    report("SIGKILL", killed_at, failover_at, rejoined_at, recovered)
    answers = answers_of(submitters)
    check_answers(answers)
    accepted = [a for a in answers if a.accepted]
    print(f"{len(answers)} submits: {len(accepted)} accepted, {len(answers) - len(accepted)} "
          f"refused with 503")
    assert any(a.sent < killed_at for a in accepted), "no submit accepted before the kill"
    check_all_done(accepted, lambda: start_node(start_daemon, sentinel_set, workers=1))


@pytest.mark.timeout(300)
def test_primary_stopped_then_continued(sentinel_set, start_daemon, source):
    nodes = [start_node(start_daemon, sentinel_set, workers=2) for _ in range(2)]
    for node in nodes:
        node.run(url=source.url("img/land.jpg"), width=64)
    submitters = [Submitter(node, source) for node in nodes]
    for s in submitters:
        s.start()
    try:
        time.sleep(2)
        stopped_at = time.monotonic()
        old = sentinel_set.stop_primary()
        new = sentinel_set.wait_failover(old, timeout=FAILOVER_TIMEOUT)
        failover_at = time.monotonic()
        # Back, the old primary still says master until the Sentinels turn it
        # into a replica of the new one; what it takes meanwhile is not kept.
        sentinel_set.cont(old)
        sentinel_set.wait_replica_of(old, new, timeout=REJOIN_TIMEOUT)
        rejoined_at = time.monotonic()
        for node in nodes:
            wait_for(f"node {node.port} to accept a submit sent after the rejoin",
                     lambda: first_accepted_after(submitters, rejoined_at, node),
                     timeout=RECOVERY_TIMEOUT)
        time.sleep(1)
    finally:
        for s in submitters:
            s.stop()
    report("SIGSTOP", stopped_at, failover_at, rejoined_at,
           first_accepted_after(submitters, stopped_at))
    answers = answers_of(submitters)
    check_answers(answers)
    accepted = [a for a in answers if a.accepted]
    print(f"{len(answers)} submits: {len(accepted)} accepted, {len(answers) - len(accepted)} "
          f"refused with 503")
    assert sentinel_set.primary() is new and sentinel_set.is_replica_of(old, new), \
        sentinel_set.describe()
    for node in nodes:  # the nodes keep working on the new primary
        node.run(url=source.url("img/land.jpg"), width=64)
    check_all_done(accepted, lambda: start_node(start_daemon, sentinel_set, workers=1))


def test_delete_on_one_node_is_seen_by_the_other(sentinel_set, start_daemon, source):
    a, b = [start_node(start_daemon, sentinel_set, workers=1) for _ in range(2)]
    done = a.run(url=source.url("img/land.jpg"), width=64)
    job = f"/v1/thumbnails/{done['id']}"
    for path in (job, job + "/image"):  # b reads both until it serves them from its cache
        wait_for(f"node b to serve {path} from its cache",
                 lambda: b.get(path).headers.get("X-Cache") == "hit", timeout=5)
    r = a.request("DELETE", job)
    assert r.status_code == 204, f"DELETE: {r.status_code} {r.text}"

    def statuses():
        return b.get(job).status_code, b.get(job + "/image").status_code

    wait_for("node b to answer 404 for the deleted job and its image",
             lambda: statuses() == (404, 404), timeout=1)


# ---------------------------------------------------------------------------
# Configuration: checked by -t, and a start that cannot reach a Sentinel.


def check_config(binary, path):
    return subprocess.run([binary, "-t", "-c", str(path)], capture_output=True, text=True,
                          timeout=20, stdin=subprocess.DEVNULL)


SENTINELS = "sentinels = 127.0.0.1:26379 127.0.0.1:26380 127.0.0.1:26381"

GOOD_CONFIGS = [
    ("sentinel", f"[redis]\nmode = sentinel\n{SENTINELS}\nmaster_name = mymaster\n"),
    ("sentinel-all-keys", f"[redis]\nmode = sentinel\n{SENTINELS}\nmaster_name = mymaster\n"
     "sentinel_password = s3cret\nusername = thumbs\npassword = pw\nmin_replicas_ack = 1\n"),
    ("external-username", "[redis]\nmode = external\nurl = redis://127.0.0.1:6379\n"
     "username = thumbs\npassword = pw\n"),
]

BAD_CONFIGS = [
    # (name, [redis] lines, the start of the line the error is on, words of the message)
    ("no-sentinels", "mode = sentinel\nmaster_name = mymaster\n", "mode =", ["sentinels"]),
    ("no-master-name", f"mode = sentinel\n{SENTINELS}\n", "mode =", ["master_name"]),
    ("bad-sentinel", "mode = sentinel\nsentinels = 127.0.0.1:26379 127.0.0.1:port\n"
     "master_name = mymaster\n", "sentinels =", ["sentinels"]),
    ("bad-min-replicas-ack", f"mode = sentinel\n{SENTINELS}\nmaster_name = mymaster\n"
     "min_replicas_ack = -1\n", "min_replicas_ack =", ["min_replicas_ack"]),
]


@pytest.mark.parametrize("text", [t for _, t in GOOD_CONFIGS], ids=[i for i, _ in GOOD_CONFIGS])
def test_sentinel_config_is_valid(thumbnailed_bin, tmp_path, text):
    conf = tmp_path / "ok.conf"
    conf.write_text("[daemon]\nuser =\n\n" + text)
    r = check_config(thumbnailed_bin, conf)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "configuration ok" in r.stdout + r.stderr, (r.stdout, r.stderr)


@pytest.mark.parametrize("redis_lines,line_start,words", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_sentinel_config_points_at_the_line(thumbnailed_bin, tmp_path, redis_lines,
                                                line_start, words):
    conf = tmp_path / "bad.conf"
    text = "[daemon]\nuser =\n\n[redis]\n" + redis_lines
    conf.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l.startswith(line_start))
    r = check_config(thumbnailed_bin, conf)
    assert r.returncode != 0, (r.returncode, r.stdout, r.stderr)
    # One mistake, one error: the other [redis] keys are known and valid.
    errors = [l for l in r.stderr.splitlines() if l.startswith(f"{conf}:")]
    assert len(errors) == 1 and errors[0].startswith(f"{conf}:{line}: "), \
        f"expected one '{conf}:{line}: message' on stderr: {r.stderr!r}"
    for w in words:
        assert w in errors[0], f"{w!r} not in {errors[0]!r}"


def test_unreachable_sentinels_fail_the_start(thumbnailed_bin, tmp_path):
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]  # nothing listens there
    d = Daemon(thumbnailed_bin, tmp_path / "d",
               {"redis": {"mode": "sentinel", "sentinels": " ".join(addresses),
                          "master_name": SentinelSet.MASTER_NAME}})
    d.launch()
    try:
        status = d.proc.wait(timeout=START_FAILURE_TIMEOUT)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        d.stop()
    assert status is not None, \
        f"still running {START_FAILURE_TIMEOUT}s after start with no Sentinel up\n{d.log()}"
    assert status != 0, d.log()
    log = d.log_path.read_text(errors="replace")
    assert "sentinel" in log.lower(), d.log()
    for address in addresses:
        assert address in log, f"{address} not named\n{d.log()}"
