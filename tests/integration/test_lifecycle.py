"""Process life: the process tree the configuration asks for, a clean stop on
SIGTERM, and one instance per pid file."""

import os
import signal
import socket
import subprocess
import time

from helpers import STOP_TIMEOUT, descendants, proc_table, still_alive


def _children(pid):
    """Direct children of pid: [(pid, command line)]."""
    out = []
    for p, (ppid, _start) in proc_table().items():
        if ppid != pid:
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                out.append((p, f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            pass
    return out


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_sigterm_stops_cleanly(start_daemon, source):
    d = start_daemon({"http": {"processes": "2"}, "worker": {"processes": "3"}})
    pid = d.proc.pid
    assert d.pid_file.read_text().strip() == str(pid)

    # The children are forked while /healthz already answers: give them a moment.
    deadline = time.monotonic() + 5
    while True:
        children = _children(pid)
        redis = [c for c in children if "redis-server" in c[1]]
        others = [c for c in children if "redis-server" not in c[1]]
        if (len(redis), len(others)) == (1, 6) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(redis) == 1, f"expected one embedded redis-server child: {children}"
    assert len(others) == 2 + 3 + 1, \
        f"expected 2 http children, 3 workers and the delivery child: {children}"

    # Some work done first, so the stop happens on a daemon that has been used.
    assert d.run(url=source.url("img/land.jpg"), width=50)["status"] == "done"

    family = descendants(pid)
    d.proc.terminate()
    try:
        status = d.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit {STOP_TIMEOUT}s after SIGTERM\n{d.log()}")
    assert status == 0, f"exit status {status}\n{d.log()}"
    left = still_alive(family)
    assert not left, f"processes left after the master exited: {left}\n{d.log()}"
    assert not d.pid_file.exists(), "pid file not removed"
    assert not _port_open(d.port), "still listening"


def test_sigterm_while_a_job_runs(start_daemon, source):
    # A job in flight: the stop waits for it (bounded), exits 0, leaves nothing behind.
    d = start_daemon()
    job = d.submit(url=source.url("slow/1500/land.jpg"), width=50)
    d.wait_until(job["id"], ("processing",), timeout=10)
    family = descendants(d.proc.pid)
    d.proc.terminate()
    status = d.proc.wait(timeout=STOP_TIMEOUT)
    assert status == 0, f"exit status {status}\n{d.log()}"
    assert not still_alive(family)
    assert not d.pid_file.exists()


def test_second_instance_refuses_to_start(start_daemon, thumbnailed_bin):
    first = start_daemon()
    # Same config, so the same pid file (and port): the second must give up at once.
    second = subprocess.Popen([thumbnailed_bin, "-f", "-c", str(first.config)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        out, err = second.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        for p, _ in descendants(second.pid):
            os.kill(p, signal.SIGKILL)
        second.kill()
        second.communicate()
        raise AssertionError("a second instance on the same pid file kept running")
    assert second.returncode != 0, (out, err)
    assert err, "refused without a word"
    assert first.pid_file.read_text().strip() == str(first.proc.pid)
    assert first.get("/healthz").status_code == 200
    assert first.proc.poll() is None
