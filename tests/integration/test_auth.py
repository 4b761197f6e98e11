"""API keys (http.api_keys_file), the rate limit (http.rate_limit) and the
connection limit of an http child (http.max_connections)."""

import signal
import socket
import time

import requests

from helpers import error_of, wait_for


def test_api_keys(start_daemon, source, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# our clients\nk-one-1234567890\n\n  k-two-0987654321  \n")
    d = start_daemon({"http": {"api_keys_file": str(keys)}})
    body = {"url": source.url("img/land.jpg"), "width": 30}

    r = d.post("/v1/thumbnails", json=body)
    error_of(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    error_of(d.post("/v1/thumbnails", json=body, headers={"Authorization": "Bearer nope"}),
             403, "forbidden")
    error_of(d.post("/v1/thumbnails", json=body, headers={"Authorization": "Basic abc"}),
             401, "unauthorized")
    r = d.post("/v1/thumbnails", json=body, headers={"Authorization": "Bearer k-two-0987654321"})
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    error_of(d.get(f"/v1/thumbnails/{job}"), 401, "unauthorized")
    error_of(d.get(f"/v1/thumbnails/{job}/image"), 401, "unauthorized")
    # An unknown id answers the same as any other to a client without a key.
    error_of(d.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA"), 401, "unauthorized")
    assert d.get(f"/v1/thumbnails/{job}",
                 headers={"Authorization": "Bearer k-two-0987654321"}).status_code == 200
    # Another key's job is not there for it (test_tenants.py has the rest).
    error_of(d.get(f"/v1/thumbnails/{job}",
                   headers={"Authorization": "Bearer k-one-1234567890"}), 404, "not_found")
    assert d.get("/healthz").status_code == 200
    assert d.get("/readyz").status_code == 200

    # SIGHUP re-reads the file: a revoked key stops working, a new one works.
    keys.write_text("k-three-5555555555\n")
    d.proc.send_signal(signal.SIGHUP)
    new = {"Authorization": "Bearer k-three-5555555555"}
    wait_for("the new key accepted",
             lambda: d.post("/v1/thumbnails", json=body, headers=new).status_code == 202, 10)
    old = {"Authorization": "Bearer k-two-0987654321"}
    wait_for("the old key refused",
             lambda: d.get(f"/v1/thumbnails/{job}", headers=old).status_code == 403, 10)


def test_rate_limit(start_daemon):
    d = start_daemon({"http": {"rate_limit": "5"}})
    statuses = []
    for _ in range(20):
        r = d.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA")
        statuses.append(r.status_code)
        if r.status_code == 429:
            limited = r
    assert statuses.count(404) >= 5, statuses
    assert 429 in statuses, statuses
    error_of(limited, 429, "rate_limited")
    wait = int(limited.headers["Retry-After"])
    assert wait >= 1
    time.sleep(wait)
    assert d.get("/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    assert d.get("/healthz").status_code == 200  # never limited


def test_max_connections(start_daemon):
    # One http child that may hold 5 connections: with 8 open (each has sent
    # part of a request), it stops accepting; once they close, it accepts again.
    d = start_daemon({"http": {"processes": "1", "max_connections": "5"}})
    child = wait_for("the http child", lambda: d.children()["http"], 5)
    held = []
    try:
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            held.append(s)
        # It counts them at its next check (every second), then stops accepting:
        # a connection over the limit goes unserved, and stays so while they are held.
        wait_for("a connection over http.max_connections left unserved",
                 lambda: not _healthy(d, timeout=1.5), 10)
        assert not _healthy(d, timeout=1.5), \
            "a connection over http.max_connections was served while they were held"
    finally:
        for s in held:
            s.close()
    wait_for("served again", lambda: _healthy(d), 15)
    # By the same child, which paused accepting: it did not die and come back.
    assert d.children()["http"] == child
    assert d.metric('thumbnailed_child_restarts_total{kind="http"}') == 0


def _healthy(d, timeout=1):
    try:
        return requests.get(d.base + "/healthz", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False
