"""API keys (http.api_keys_file) and the rate limit (http.rate_limit)."""

import signal
import time

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
                 headers={"Authorization": "Bearer k-one-1234567890"}).status_code == 200
    assert d.get("/healthz").status_code == 200
    assert d.get("/readyz").status_code == 200

    # SIGHUP re-reads the file: a revoked key stops working, a new one works.
    keys.write_text("k-three-5555555555\n")
    d.proc.send_signal(signal.SIGHUP)
    new = {"Authorization": "Bearer k-three-5555555555"}
    wait_for("the new key accepted",
             lambda: d.get(f"/v1/thumbnails/{job}", headers=new).status_code == 200, 10)
    old = {"Authorization": "Bearer k-one-1234567890"}
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
