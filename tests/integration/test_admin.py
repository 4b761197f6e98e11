"""The admin API (docs/API.md §13): the fleet's overview with its per-minute
figures, listings of jobs by state page by page, retry of a failed job, the
purge of the dead set, pause and resume across two nodes on one Redis, and
who may use it (loopback only, or admin keys)."""

import signal
import time

import pytest

from helpers import error_of, wait_for

UNKNOWN_ID = "AAAAAAAAAAAAAAAAAAAAAA"  # a well-formed id no job has
ONE_ATTEMPT = {"worker": {"max_attempts": "1"}}


def overview(d, **kw):
    r = d.get("/v1/admin/overview", **kw)
    assert r.status_code == 200, r.text
    return r.json()


def node_listed(d, want_workers):
    """The overview once it lists d's node with want_workers workers (the
    heartbeat comes every 2 s)."""
    def attempt():
        doc = overview(d)
        nodes = [n for n in doc["nodes"] if n["id"] == doc["node"]]
        return doc if nodes and len(nodes[0]["workers"]) == want_workers else None
    return wait_for("the node in the overview", attempt, 10)


def listing(d, **params):
    r = d.get("/v1/admin/jobs", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def all_pages(d, state, limit):
    pages, cursor = [], None
    for _ in range(50):
        params = {"state": state, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = listing(d, **params)
        assert page["state"] == state
        pages.append(page["jobs"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("no last page")


def test_overview_figures(start_daemon, source):
    d = start_daemon(ONE_ATTEMPT)
    done = [d.submit(url=source.url("img/land.jpg"), width=64)["id"] for _ in range(3)]
    permanent = d.submit(url=source.url("missing.jpg"), width=64)["id"]
    transient = d.submit(url=source.url("fail/999/503/land.jpg"), width=64)["id"]
    for job_id in done:
        assert d.wait(job_id)["status"] == "done"
    assert d.wait(permanent)["error"]["code"] == "fetch_http_404"
    assert d.wait(transient)["error"]["code"] == "fetch_http_503"

    doc = node_listed(d, 2)
    assert doc["jobs"] == {"queued": 0, "processing": 0, "done": 3, "failed": 2, "dead": 1}, doc
    assert doc["queues"]["dead"] == 1 and doc["queues"]["ready"] == 0, doc
    assert set(doc["queues"]["deliveries"]) == {"ready", "delayed", "dead"}, doc
    assert doc["paused"] is False and isinstance(doc["now_ms"], int)
    series = doc["series"]
    for name in ("minute_ms", "done", "failed", "retried", "p50_ms", "p95_ms", "bytes_fetched"):
        assert len(series[name]) == 60, (name, series)
    assert series["minute_ms"][-1] == doc["now_ms"] // 60000 * 60000
    assert all(b - a == 60000 for a, b in zip(series["minute_ms"], series["minute_ms"][1:]))
    assert sum(series["done"]) == 3 and sum(series["failed"]) == 2, series
    assert sum(series["retried"]) == 0, series
    assert sum(series["bytes_fetched"]) > 0, series
    busy = [i for i, n in enumerate(series["done"]) if n]
    assert all(series["p50_ms"][i] is not None and series["p95_ms"][i] is not None for i in busy)
    assert all(series["p50_ms"][i] <= series["p95_ms"][i] for i in busy), series
    assert series["p50_ms"][0] is None or series["done"][0] + series["failed"][0] > 0

    (node,) = doc["nodes"]
    assert node["id"] == doc["node"] and node["listen"] == f"127.0.0.1:{d.port}", node
    assert node["paused"] is False and 0 <= node["heartbeat_age_ms"] < 15000, node
    assert len(node["http"]) == 2 and len(node["delivery"]) == 1, node
    assert all(w["state"] in ("idle", "busy") and w["pid"] > 0 for w in node["workers"]), node
    wait_for("both workers' jobs counted", lambda: sum(
        w["jobs_done"] for w in node_listed(d, 2)["nodes"][0]["workers"]) == 5, 10)
    assert d.request("HEAD", "/v1/admin/overview").status_code == 200


def test_listing_pages(start_daemon, source):
    d = start_daemon()
    ids = [d.submit(url=source.url("img/land.jpg"), width=32)["id"] for _ in range(7)]
    for job_id in ids:
        assert d.wait(job_id)["status"] == "done"
    pages = all_pages(d, "done", 3)
    assert [len(p) for p in pages] == [3, 3, 1], pages
    jobs = [j for p in pages for j in p]
    assert sorted(j["id"] for j in jobs) == sorted(ids)  # no duplicates, none missing
    finished = [j["finished_at"] for j in jobs]
    assert finished == sorted(finished, reverse=True), finished  # newest first
    first = jobs[0]
    assert first["status"] == "done" and first["attempts"] == 1, first
    assert first["source"]["url"].startswith(source.base) and "error" not in first
    assert first["created_at"] and first["started_at"], first
    assert all_pages(d, "failed", 50) == [[]]
    assert listing(d, state="queued")["jobs"] == []
    assert listing(d, state="processing")["next_cursor"] is None

    failed = d.wait(d.submit(url=source.url("missing.jpg"), width=32)["id"])
    (item,) = listing(d, state="failed")["jobs"]
    assert item["id"] == failed["id"] and item["error"]["code"] == "fetch_http_404", item

    for params, field in [({}, "state"), ({"state": "bogus"}, "state"),
                          ({"state": "done", "limit": "0"}, "limit"),
                          ({"state": "done", "limit": "201"}, "limit"),
                          ({"state": "done", "limit": "ten"}, "limit"),
                          ({"state": "done", "cursor": "xyz"}, "cursor"),
                          ({"state": "done", "cursor": ""}, "cursor"),
                          ({"state": "queued", "cursor": "5:0"}, "cursor")]:
        error_of(d.get("/v1/admin/jobs", params=params), 400, "invalid_param", field)
    assert len(listing(d, state="done", limit=200)["jobs"]) == 7


def test_retry_dead_job(start_daemon, source):
    d = start_daemon(ONE_ATTEMPT)
    # 503 the first time: out of attempts at once, so dead; the retry succeeds.
    job = d.submit(url=source.url("fail/1/503/land.jpg"), width=48)
    doc = d.wait(job["id"])
    assert doc["status"] == "failed" and doc["attempts"] == 1, doc
    assert [j["id"] for j in listing(d, state="dead")["jobs"]] == [job["id"]]

    r = d.post(f"/v1/admin/jobs/{job['id']}/retry")
    assert r.status_code == 202 and r.json() == {"id": job["id"], "status": "queued"}, r.text
    doc = d.wait(job["id"])
    assert doc["status"] == "done" and doc["attempts"] == 1 and "error" not in doc, doc
    assert listing(d, state="dead")["jobs"] == [] and listing(d, state="failed")["jobs"] == []
    assert [j["id"] for j in listing(d, state="done")["jobs"]] == [job["id"]]
    assert overview(d)["jobs"]["dead"] == 0

    err = error_of(d.post(f"/v1/admin/jobs/{job['id']}/retry"), 409, "conflict")
    assert "is done" in err["message"], err
    error_of(d.post(f"/v1/admin/jobs/{UNKNOWN_ID}/retry"), 404, "not_found")
    error_of(d.post("/v1/admin/jobs/not-an-id/retry"), 404, "not_found")
    error_of(d.get(f"/v1/admin/jobs/{job['id']}/retry"), 405, "method_not_allowed")


def test_purge_dead(start_daemon, source):
    d = start_daemon(ONE_ATTEMPT)
    dead = [d.submit(url=source.url("fail/999/503/land.jpg"), width=48)["id"] for _ in range(2)]
    kept = d.submit(url=source.url("missing.jpg"), width=48)["id"]  # failed, not dead
    for job_id in dead + [kept]:
        assert d.wait(job_id)["status"] == "failed"
    assert overview(d)["jobs"]["dead"] == 2
    r = d.request("DELETE", "/v1/admin/dead")
    assert r.status_code == 200 and r.json() == {"purged": 2}, r.text
    for job_id in dead:
        error_of(d.get(f"/v1/admin/jobs/{job_id}"), 404, "not_found")
        error_of(d.get(f"/v1/thumbnails/{job_id}"), 404, "not_found")
    figures = overview(d)["jobs"]
    assert figures["dead"] == 0 and figures["failed"] == 1, figures
    assert listing(d, state="dead")["jobs"] == []
    assert d.get(f"/v1/admin/jobs/{kept}").json()["status"] == "failed"
    assert d.request("DELETE", "/v1/admin/dead").json() == {"purged": 0}


def test_pause_on_two_nodes(start_daemon, redis_server, source):
    external = {"redis": {"mode": "external", "url": redis_server.url}}
    a, b = start_daemon(external), start_daemon(external)
    r = a.post("/v1/admin/pause")
    assert r.status_code == 200 and r.json() == {"paused": True}, r.text

    def all_paused():
        doc = overview(b)
        nodes = doc["nodes"]
        return doc if (len(nodes) == 2 and all(n["paused"] for n in nodes) and all(
            w["state"] == "paused" for n in nodes for w in n["workers"])) else None
    doc = wait_for("every worker of both nodes paused", all_paused, 15)
    assert doc["paused"] is True and sum(len(n["workers"]) for n in doc["nodes"]) == 4, doc

    ids = [(a, b)[i % 2].submit(url=source.url("img/land.jpg"), width=40)["id"]
           for i in range(4)]
    until = time.monotonic() + 3
    while time.monotonic() < until:
        assert all(a.job(job_id)["status"] == "queued" for job_id in ids)
        time.sleep(0.2)
    assert overview(a)["jobs"]["queued"] == 4
    assert len(listing(b, state="queued")["jobs"]) == 4

    r = b.post("/v1/admin/resume")
    assert r.status_code == 200 and r.json() == {"paused": False}, r.text
    for job_id in ids:
        assert b.wait(job_id)["status"] == "done"
    wait_for("no worker paused", lambda: not any(
        w["state"] == "paused" for n in overview(a)["nodes"] for w in n["workers"]), 10)
    assert overview(a)["paused"] is False


def test_loopback_only_without_admin_keys(start_daemon):
    d = start_daemon({"http": {"trusted_proxies": "127.0.0.1/32"}})
    assert d.get("/v1/admin/overview").status_code == 200
    far = {"X-Forwarded-For": "203.0.113.9"}
    error_of(d.get("/v1/admin/overview", headers=far), 403, "forbidden")
    error_of(d.post("/v1/admin/pause", headers=far), 403, "forbidden")
    assert d.get("/v1/admin/overview").json()["paused"] is False
    near = {"X-Forwarded-For": "127.0.0.1"}
    assert d.get("/v1/admin/jobs", params={"state": "done"}, headers=near).status_code == 200


def test_admin_keys(start_daemon, tmp_path):
    admin_keys, api_keys = tmp_path / "admin_keys", tmp_path / "api_keys"
    admin_keys.write_text("ops admin-secret-0123456789\n")
    api_keys.write_text("client api-secret-0123456789\n")
    d = start_daemon({"http": {"admin_keys_file": str(admin_keys),
                               "api_keys_file": str(api_keys)}})
    path = "/v1/admin/overview"
    r = d.get(path)
    error_of(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    error_of(d.get(path, headers={"Authorization": "Bearer wrong-key"}), 403, "forbidden")
    error_of(d.get(path, headers={"Authorization": "Bearer api-secret-0123456789"}), 403,
             "forbidden")  # an API key is no admin key
    admin = {"Authorization": "Bearer admin-secret-0123456789"}
    assert d.get(path, headers=admin).status_code == 200
    # The admin key is not an API key either.
    error_of(d.get(f"/v1/thumbnails/{UNKNOWN_ID}", headers=admin), 403, "forbidden")

    # Re-read on a reload.
    admin_keys.write_text("ops2 admin-secret-new-98765\n")
    d.proc.send_signal(signal.SIGHUP)
    new = {"Authorization": "Bearer admin-secret-new-98765"}
    wait_for("the new admin key taken", lambda: all(
        d.get(path, headers=new).status_code == 200 for _ in range(4)), 10)
    wait_for("the old admin key refused", lambda: all(
        d.get(path, headers=admin).status_code == 403 for _ in range(4)), 10)


def test_any_owners_job(start_daemon, source, tmp_path):
    keys = tmp_path / "api_keys"
    keys.write_text("alice alice-secret-0123456789\nbob bob-secret-9876543210\n")
    d = start_daemon({"http": {"api_keys_file": str(keys)}})
    alice = {"Authorization": "Bearer alice-secret-0123456789"}
    bob = {"Authorization": "Bearer bob-secret-9876543210"}
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 40},
               headers=alice)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_for("the job done", lambda: d.get(f"/v1/thumbnails/{job_id}", headers=alice)
             .json()["status"] == "done", 30)
    error_of(d.get(f"/v1/thumbnails/{job_id}", headers=bob), 404, "not_found")
    error_of(d.get(f"/v1/thumbnails/{job_id}/image", headers=bob), 404, "not_found")
    # The operator (loopback, no admin keys) sees every owner's job, and its image.
    r = d.get(f"/v1/admin/jobs/{job_id}")
    assert r.status_code == 200 and r.json()["id"] == job_id, r.text
    assert r.json()["status"] == "done" and r.json()["result"]["width"] == 40
    image = d.get(f"/v1/admin/jobs/{job_id}/image")
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert image.content == d.get(f"/v1/thumbnails/{job_id}/image", headers=alice).content
    assert image.headers["ETag"].startswith('"')
    error_of(d.get(f"/v1/admin/jobs/{UNKNOWN_ID}"), 404, "not_found")
    error_of(d.get(f"/v1/admin/jobs/{UNKNOWN_ID}/image"), 404, "not_found")
    assert listing(d, state="done")["jobs"][0]["id"] == job_id
