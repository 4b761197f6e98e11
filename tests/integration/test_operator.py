"""What an operator and a load balancer read must be true: /readyz follows a
Redis round trip (a PING each http child sends), every counter of /metrics
only grows for the life of the master (a reload that removes workers
included), ps shows each process's role, and the log says what became of a
job that is retried or canceled while it runs (docs/API.md §8, §9;
docs/ARCHITECTURE.md §1.1, §4.1)."""

import os
import re
import signal
import subprocess

from helpers import JOB_TIMEOUT, wait_for

# By design /readyz says 503 at most about 1.5 s after Redis stops answering
# (a PING sent every 500 ms, unanswered for 1 s; judged when /readyz is
# asked, so a busy loop does not delay it); a load balancer must see it within
# 2 s, and the poll gives it that long.
READYZ_STOP_DEADLINE = 2


def readyz(d):
    r = d.get("/readyz")
    return r.status_code, r.json()


def test_readyz_follows_a_redis_round_trip(start_daemon):
    d = start_daemon({"worker": {"processes": "1"}})
    status, doc = wait_for("/readyz 200", lambda: (lambda s: s if s[0] == 200 else None)(
        readyz(d)), 10)
    assert doc["status"] == "ready" and doc["workers"] == 1, doc
    assert isinstance(doc["redis_rtt_ms"], int) and doc["redis_rtt_ms"] >= 0, doc
    redis = d.children()["redis"]
    assert len(redis) == 1, d.children()
    # No other traffic: nothing but the probe's PING can tell the child Redis is stuck.
    os.kill(redis[0], signal.SIGSTOP)
    try:
        status, doc = wait_for("/readyz 503 with Redis stopped",
                               lambda: (lambda s: s if s[0] == 503 else None)(readyz(d)),
                               READYZ_STOP_DEADLINE)
        assert doc["error"]["code"] == "unavailable", doc
        assert "Redis does not answer" in doc["error"]["message"], doc
    finally:
        os.kill(redis[0], signal.SIGCONT)
    status, doc = wait_for("/readyz 200 again after SIGCONT",
                           lambda: (lambda s: s if s[0] == 200 else None)(readyz(d)), 20)
    assert doc["workers"] == 1 and doc["redis_rtt_ms"] >= 0, doc


def test_readyz_counts_only_live_workers(start_daemon):
    d = start_daemon({"worker": {"processes": "1"}})
    wait_for("/readyz 200", lambda: readyz(d)[0] == 200, 10)
    worker = d.children()["worker"][0]
    # A stopped worker is on the scoreboard with its pid but shows no sign of life.
    os.kill(worker, signal.SIGSTOP)
    try:
        status, doc = wait_for("/readyz 503: no worker alive",
                               lambda: (lambda s: s if s[0] == 503 else None)(readyz(d)), 20)
        assert "no worker is alive" in doc["error"]["message"], doc
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_for("/readyz 200 again", lambda: readyz(d)[0] == 200, 20)


def counter_samples(text):
    """{sample: value} of every sample of a counter or a histogram in a
    Prometheus text page (histograms: their _bucket, _sum and _count)."""
    kinds = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            kinds[m.group(1)] = m.group(2)
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        name = sample.split("{", 1)[0]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if kinds.get(name) == "counter" or kinds.get(family) == "histogram":
            out[sample] = float(value)
    return out


def run_until_terminal(d, url):
    return d.wait(d.submit(url=url, width=40)["id"])


def test_counters_never_go_back_on_a_reload_that_removes_workers(start_daemon, source):
    d = start_daemon({"worker": {"processes": "3", "max_attempts": "2",
                                 "retry_delay": "100ms"}})
    wait_for("3 workers", lambda: d.metric('thumbnailed_children{kind="worker"}') == 3, 10)
    for name in ("land.jpg", "port.jpg", "land.jpg", "port.jpg"):
        assert run_until_terminal(d, source.url(f"img/{name}"))["status"] == "done"
    permanent = run_until_terminal(d, source.url("fail/999/404/land.jpg"))
    assert permanent["status"] == "failed", permanent
    transient = run_until_terminal(d, source.url("fail/999/503/land.jpg"))
    assert transient["status"] == "failed" and transient["attempts"] == 2, transient

    before = counter_samples(d.get("/metrics").text)
    assert before['thumbnailed_worker_jobs_total{outcome="done"}'] == 4, before
    assert before['thumbnailed_worker_jobs_total{outcome="failed"}'] == 2, before
    assert before['thumbnailed_worker_jobs_total{outcome="retried"}'] == 1, before
    attempts = sum(v for k, v in before.items() if k.startswith("thumbnailed_worker_jobs_total"))
    assert before["thumbnailed_job_duration_seconds_count"] == attempts, before
    assert before['thumbnailed_job_duration_seconds_bucket{le="+Inf"}'] == attempts, before
    assert before['thumbnailed_source_bytes_fetched_total{src="url"}'] > 0, before
    assert before['thumbnailed_http_requests_total{route="submit",status="202"}'] == 6, before
    assert before['thumbnailed_http_requests_total{route="job",status="200"}'] >= 6, before

    d.reconfigure({"worker": {"processes": "1"}})
    wait_for("1 worker", lambda: (d.metric('thumbnailed_children{kind="worker"}') == 1
                                  and len(d.children()["worker"]) == 1), 15)
    after = counter_samples(d.get("/metrics").text)
    went_back = {k: (v, after.get(k)) for k, v in before.items()
                 if after.get(k) is None or after[k] < v}
    assert not went_back, f"counters that went back (before, after): {went_back}"
    assert after['thumbnailed_worker_jobs_total{outcome="done"}'] == 4, after


def ps_args(pid):
    return subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_ps_shows_each_process_role(start_daemon):
    d = start_daemon()
    kids = wait_for("every child", lambda: (lambda k: k if k["http"] and k["worker"]
                                            and k["delivery"] else None)(d.children()), 10)
    assert ps_args(d.proc.pid) == f"thumbnailed: master process -f -c {d.config}"
    for kind in ("http", "worker", "delivery"):
        for pid in kids[kind]:
            assert ps_args(pid) == f"thumbnailed: {kind} process", (kind, pid)
            with open(f"/proc/{pid}/comm") as f:
                assert f.read().strip() == f"thumb-{kind}"  # PR_SET_NAME, as before


def log_line(d, pattern, timeout=JOB_TIMEOUT):
    return wait_for(f"a log line like {pattern!r}",
                    lambda: re.search(pattern, d.log_path.read_text(errors="replace")), timeout)


def test_the_log_says_when_a_retry_is_due_and_who_dropped_a_result(start_daemon, source):
    d = start_daemon({"worker": {"processes": "1", "max_attempts": "3", "retry_delay": "2s"}})
    # A retry: the line names the attempt, the failure and when the retry is due.
    job = d.submit(url=source.url("fail/1/503/land.jpg"), width=40)
    m = log_line(d, rf"job {job['id']} failed after (\d+) ms \(attempt 1 of 3\): "
                    r"fetch_http_503 \(transient\): [^;]+; retry at (\S+) \(in (\d+) ms\)")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", m.group(2)), m.group(0)
    # The delay is retry_delay with jitter (half to all of it), not the run time.
    assert 0 < int(m.group(3)) <= 2000, m.group(0)
    assert d.wait(job["id"])["status"] == "done"

    # A client's cancel while the job runs.
    job = d.submit(url=source.url("slow/1500/land.jpg"), width=40)
    d.wait_until(job["id"], ("processing",), timeout=10)
    assert d.request("DELETE", f"/v1/thumbnails/{job['id']}").status_code == 204
    log_line(d, rf"job {job['id']}: canceled by the client while it ran; the result is dropped")

    # Canceled, then deleted, while it runs: the job is gone when its worker ends.
    job = d.submit(url=source.url("slow/1500/land.jpg"), width=40)
    d.wait_until(job["id"], ("processing",), timeout=10)
    for _ in range(2):
        assert d.request("DELETE", f"/v1/thumbnails/{job['id']}").status_code == 204
    assert d.get(f"/v1/thumbnails/{job['id']}").status_code == 404
    log_line(d, rf"job {job['id']}: deleted while it ran")
    text = d.log_path.read_text(errors="replace")
    assert "taken over (fencing token changed)" not in text, text[-3000:]
