"""The supervisor: children replaced when they die, scaled on SIGHUP, a stuck
worker killed at worker.job_timeout, graceful stop, daemon mode, and no child
outliving a SIGKILLed master. Processes are told apart by the name each child
gives itself (thumb-http, thumb-worker, redis-server)."""

import os
import re
import signal
import subprocess
import time

import requests

from helpers import STOP_TIMEOUT, descendants, shm_path, still_alive, wait_for


def run_when_accepted(d, source, timeout=15):
    """Submits until the daemon accepts (it answers 503 while Redis restarts,
    as it should), then waits for the job; returns its document."""
    def attempt():
        r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40})
        assert r.status_code in (202, 503), r.text
        return r.json()["id"] if r.status_code == 202 else None
    return d.wait(wait_for("a submission accepted", attempt, timeout, step=0.2))


def counts(d):
    kids = d.children()
    return len(kids["http"]), len(kids["worker"]), len(kids["redis"])


def test_killed_children_are_replaced(start_daemon, source):
    d = start_daemon({"worker": {"processes": "2"}})
    wait_for("2 http, 2 workers, 1 redis", lambda: counts(d) == (2, 2, 1), 5)
    for kind in ("http", "worker", "redis"):
        before = d.children()[kind]
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(f"a new {kind} child in place of {victim}",
                 lambda: (len(d.children()[kind]) == len(before)
                          and victim not in d.children()[kind]), 2)
        # And the daemon keeps serving: a whole job goes through.
        assert run_when_accepted(d, source)["status"] == "done"


def test_crash_loop_backs_off(start_daemon):
    d = start_daemon({"worker": {"processes": "1"}})
    victim = wait_for("the worker", lambda: d.children()["worker"], 5)[0]
    for _ in range(4):
        os.kill(victim, signal.SIGKILL)
        victim = wait_for("the next worker",
                          lambda: [p for p in d.children()["worker"] if p != victim], 10)[0]
    assert d.metric('thumbnailed_child_restarts_total{kind="worker"}') == 4
    # The delay each restart waited is only in the log ("restarting worker
    # (slot N) in D ms"): without it the backoff could only be timed.
    delays = [int(m) for m in re.findall(r"restarting worker \(slot \d+\) in (\d+) ms",
                                         d.log_path.read_text())]
    assert len(delays) == 4, delays
    assert delays == sorted(delays) and delays[-1] >= 4 * delays[0], \
        f"restart delays do not grow: {delays}"


def test_sighup_scales_workers_and_http(start_daemon, source):
    d = start_daemon({"worker": {"processes": "2"}, "http": {"processes": "2"}})
    wait_for("2 http, 2 workers", lambda: counts(d)[:2] == (2, 2), 5)

    d.reconfigure({"worker": {"processes": "5"}})
    wait_for("5 workers", lambda: counts(d)[:2] == (2, 5), 10)

    # A job in progress on a worker that is removed still completes.
    slow = d.submit(url=source.url("slow/3000/land.jpg"), width=50)
    d.wait_until(slow["id"], ("processing",), timeout=10)
    d.reconfigure({"worker": {"processes": "1"}, "http": {"processes": "3"}})
    wait_for("3 http, 1 worker", lambda: counts(d)[:2] == (3, 1), 15)
    doc = d.wait(slow["id"])
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 1, doc
    assert d.run(url=source.url("img/port.jpg"), width=30)["status"] == "done"


def test_sighup_with_a_broken_config_changes_nothing(start_daemon, source):
    d = start_daemon({"worker": {"processes": "2"}})
    wait_for("2 http, 2 workers", lambda: counts(d)[:2] == (2, 2), 5)
    d.reconfigure({"worker": {"processes": "4"}}, extra_text="[http]\nbogus_key = 1\n")
    bad_line = d.config.read_text().splitlines().index("bogus_key = 1") + 1
    wait_for("the reload error in the log",
             lambda: f"{d.config}:{bad_line}: unknown key 'bogus_key'" in d.log_path.read_text(),
             5)
    time.sleep(0.5)  # let a wrongly applied reload show itself before counting
    assert counts(d)[:2] == (2, 2)
    assert d.get("/healthz").status_code == 200
    assert d.run(url=source.url("img/land.jpg"), width=30)["status"] == "done"


def test_sigterm_under_load_loses_no_job(start_daemon, source):
    d = start_daemon({"worker": {"processes": "2"}, "daemon": {"stop_timeout": "20s"}})
    ids = [d.submit(url=source.url("slow/200/land.jpg"), width=20 + i)["id"] for i in range(30)]
    family = descendants(d.proc.pid)
    d.proc.send_signal(signal.SIGTERM)
    status = d.proc.wait(timeout=STOP_TIMEOUT)
    assert status == 0, d.log()
    assert not still_alive(family), still_alive(family)
    assert not d.pid_file.exists(), "pid file left"
    assert not shm_path(d.pid_file).exists(), "shared memory segment left"

    # Every accepted job is still there after a restart on the same data, and ends done.
    d.restart()
    for job_id in ids:
        doc = d.wait(job_id, timeout=60)
        assert doc["status"] == "done", doc


def test_stuck_worker_is_killed_at_job_timeout(start_daemon, source):
    # One attempt: the timeout is a transient failure, retried while attempts remain.
    d = start_daemon({"worker": {"processes": "1", "job_timeout": "2s", "max_attempts": "1"},
                      "fetch": {"timeout": "60s"}})
    job = d.submit(url=source.url("hang/land.jpg"), width=50)
    doc = d.wait(job["id"], timeout=30)
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == "job_timeout", doc
    # A fresh worker took the killed one's place.
    assert d.run(url=source.url("img/land.jpg"), width=30)["status"] == "done"


def test_second_job_timeout_fails_the_job_for_good(start_daemon, source):
    # A source that never finishes: every attempt runs past worker.job_timeout
    # (fetch.timeout is longer). The first kill is retried, the second ends the
    # job though three of its five attempts are left.
    d = start_daemon({"worker": {"processes": "1", "job_timeout": "1s", "max_attempts": "5",
                                 "retry_delay": "100ms"},
                      "fetch": {"timeout": "60s"}})
    url = source.url("hang/land.jpg")
    doc = d.wait(d.submit(url=url, width=50)["id"], timeout=60)
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == "job_timeout", doc
    assert doc["error"]["message"].endswith("(2 times: not retried)"), doc
    assert doc["attempts"] == 2, doc
    path = url[len(source.base):]
    with source.lock:
        asked = [p for p in source.requests if p == path]
    assert len(asked) == 2, f"the source was asked {len(asked)} times: {doc}"
    # Two workers were killed for it, and a fresh one serves.
    assert d.metric("thumbnailed_job_timeouts_total") == 2
    assert d.run(url=source.url("img/land.jpg"), width=30)["status"] == "done"


def test_sigkill_of_the_master_takes_every_child_down(start_daemon):
    d = start_daemon()
    wait_for("children", lambda: counts(d) == (2, 2, 1), 5)
    family = descendants(d.proc.pid)
    d.expect_unclean = True
    d.proc.kill()
    d.proc.wait(timeout=10)
    wait_for("every child gone", lambda: not still_alive(family), 10)
    shm_path(d.pid_file).unlink(missing_ok=True)  # a killed master cannot clean up


def _daemon_cmd(thumbnailed_bin, conf):
    return subprocess.run([thumbnailed_bin, "-c", str(conf)], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _pid_gone(pid):
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


def test_daemon_mode(start_daemon, thumbnailed_bin, tmp_path):
    # Configured like the suite's daemons, but launched without -f: the command
    # returns only once the daemon answers.
    d = start_daemon()
    d.stop()
    log = d.dir / "detached.log"
    text = d.config.read_text().replace("[daemon]", f"[daemon]\nlog_target = file:{log}", 1)
    d.config.write_text(text)
    r = _daemon_cmd(thumbnailed_bin, d.config)
    assert r.returncode == 0, r.stderr
    pid = int(d.pid_file.read_text())
    try:
        assert requests.get(d.base + "/healthz", timeout=5).status_code == 200
        # A second instance is refused, with the reason on stderr.
        second = _daemon_cmd(thumbnailed_bin, d.config)
        assert second.returncode != 0
        assert "another thumbnailed is running" in second.stderr, second.stderr
        assert int(d.pid_file.read_text()) == pid
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for("the detached daemon to exit", lambda: _pid_gone(pid), STOP_TIMEOUT)
    assert not d.pid_file.exists()
    assert "ready on" in log.read_text()

    # A bad configuration: exit 1 and the error on stderr, nothing left running.
    bad = tmp_path / "bad.conf"
    bad.write_text(text + "\n[worker]\nprocesses = many\n")
    r = _daemon_cmd(thumbnailed_bin, bad)
    assert r.returncode == 1
    assert re.search(rf"{re.escape(str(bad))}:\d+: worker.processes", r.stderr), r.stderr
