"""API keys (http.api_keys_file), the rate limit (http.rate_limit), the client
behind trusted proxies (http.trusted_proxies, X-Forwarded-For), who may read
/metrics (http.metrics_allow) and the connection limit of an http child
(http.max_connections)."""

import http.client
import signal
import socket
import time

import pytest
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


NO_JOB = "/v1/thumbnails/AAAAAAAAAAAAAAAAAAAAAA"  # 404 when served, 429 when limited
TRIES = 20  # requests to run a client's bucket dry at 1 per second: a few suffice


def _as(d, forwarded=(), path=NO_JOB, method="GET"):
    """The status of a request carrying one X-Forwarded-For header per entry
    of forwarded, in that order (http.client: requests would merge them)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        conn.putrequest(method, path)
        for value in forwarded:
            conn.putheader("X-Forwarded-For", value)
        conn.endheaders()
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def _exhaust(d, forwarded):
    """Sends as that client until it is refused 429; asserts that happens."""
    statuses = [_as(d, forwarded) for _ in range(TRIES)]
    assert 429 in statuses, f"{forwarded}: never limited: {statuses}"
    assert set(statuses) <= {404, 429}, statuses


def test_forwarded_clients_have_their_own_buckets(start_daemon):
    """From a trusted proxy, clients named only by X-Forwarded-For are limited
    separately: one run dry, another is served at once, however fast."""
    d = start_daemon({"http": {"rate_limit": "1", "trusted_proxies": "127.0.0.1/32 10.0.0.0/8"}})
    _exhaust(d, ["198.51.100.1"])
    assert _as(d, ["198.51.100.2"]) == 404  # a full bucket of its own
    # Two proxies: the second's header names the first hop's client. Joined in
    # order, the rightmost untrusted entry is that client: a new one here.
    assert _as(d, ["198.51.100.3", "10.0.0.5"]) == 404
    assert _as(d, ["2001:db8::3"]) == 404


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8 ::1/128"],
                         ids=["no-trusted-proxies", "peer-not-trusted"])
def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_daemon, trusted):
    """Without trusted_proxies, or from a peer not in it, X-Forwarded-For is
    not believed: every request from 127.0.0.1 shares its bucket."""
    d = start_daemon({"http": {"rate_limit": "1", "trusted_proxies": trusted}})
    _check_shared(d, ["198.51.100.1"],
                  lambda i: [[f"198.51.100.{10 + i}"], [f"10.0.0.{10 + i}"], []])


def test_forged_left_part_is_ignored(start_daemon):
    """From a trusted proxy, what the client put left of its own address (a
    forged X-Forwarded-For it sent, in the proxy's header or in one of its
    own before it) does not make it another client; and the headers are read
    together: behind a second trusted proxy, the client named in the first
    header is the same one."""
    d = start_daemon({"http": {"rate_limit": "1", "trusted_proxies": "127.0.0.1/32 10.0.0.0/8"}})
    _check_shared(d, ["198.51.100.1"],
                  lambda i: [[f"6.6.6.{i}, 198.51.100.1"], [f"7.7.7.{i}", "198.51.100.1"],
                             ["198.51.100.1", f"10.0.0.{i}"]])


def _check_shared(d, first, others):
    """Asserts that each request of others(round) is refused right after first
    ran its bucket dry: they are one client. A token comes back every second
    at rate 1: on a machine so slow that one did in between, the round is run
    again, with others naming addresses not seen before (so that a bucket of
    their own, had they one, would be full again)."""
    for i in range(5):
        _exhaust(d, first)
        statuses = [_as(d, other) for other in others(i)]
        if statuses == [429] * len(statuses):
            return
    pytest.fail(f"{others(i)} got {statuses} while {first} was limited: not one bucket")


def test_metrics_allow(start_daemon):
    """http.metrics_allow: a client outside it gets 403 forbidden on /metrics
    (GET and HEAD); one inside reads it; the client is the forwarded one
    behind a trusted proxy. Other routes are not affected."""
    d = start_daemon({"http": {"metrics_allow": "10.0.0.0/8 ::1/128"}})
    r = d.get("/metrics")
    error_of(r, 403, "forbidden")
    assert d.request("HEAD", "/metrics").status_code == 403
    assert d.get("/healthz").status_code == 200
    assert d.get(NO_JOB).status_code == 404

    d = start_daemon({"http": {"metrics_allow": "127.0.0.1/32",
                               "trusted_proxies": "127.0.0.1/32"}})
    r = d.get("/metrics")
    assert r.status_code == 200 and "thumbnailed_children" in r.text, r.text[:300]
    assert _as(d, ["198.51.100.1"], path="/metrics") == 403  # the client, not the proxy
    assert _as(d, ["198.51.100.1", "127.0.0.1"], path="/metrics") == 403
    assert _as(d, ["127.0.0.1"], path="/metrics") == 200


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
