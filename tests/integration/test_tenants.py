"""Tenants (docs/API.md §1.1): with API keys, a job belongs to the key that made
it. Another key gets 404 on every route of it (document, long-poll, image,
DELETE, the original API's GET), Idempotency-Key values and identical-request
dedup are scoped to the key, and each key (or client address, without keys)
has a bound on the jobs it may have waiting (http.max_queued_per_client)."""

import pytest

from helpers import error_of, wait_for

KEY_A, KEY_B, KEY_C = "alice-secret-0123456789", "bob-secret-9876543210", "carol-secret-55555"


def auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(thumbnailed_bin, tmp_path_factory):
    from conftest import DaemonFactory
    keys = tmp_path_factory.mktemp("keys") / "api_keys"
    # Named keys, and one without a name; a comment.
    keys.write_text(f"# name key\nalice {KEY_A}\nbob {KEY_B}\n{KEY_C}\n")
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory({"http": {"api_keys_file": str(keys)}})
    factory.stop_all()


def submit(d, key, status=202, headers=None, **params):
    r = d.post("/v1/thumbnails", json=params, headers={**auth(key), **(headers or {})})
    assert r.status_code == status, r.text
    return r.json()


def wait_done(d, key, job_id):
    for _ in range(400):
        r = d.get(f"/v1/thumbnails/{job_id}", headers=auth(key), params={"wait": 5})
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("done", "failed", "canceled"):
            return r.json()
    raise AssertionError(f"job {job_id} did not end")


def test_another_key_sees_nothing_of_a_job(keyed, source):
    job = submit(keyed, KEY_A, url=source.url("img/land.jpg"), width=60)
    doc = wait_done(keyed, KEY_A, job["id"])
    assert doc["status"] == "done", doc
    base = f"/v1/thumbnails/{job['id']}"
    for key in (KEY_B, KEY_C):
        error_of(keyed.get(base, headers=auth(key)), 404, "not_found")
        error_of(keyed.get(base, headers=auth(key), params={"wait": 2}), 404, "not_found")
        error_of(keyed.get(base + "/image", headers=auth(key)), 404, "not_found")
        assert keyed.request("HEAD", base + "/image", headers=auth(key)).status_code == 404
        error_of(keyed.request("DELETE", base, headers=auth(key)), 404, "not_found")
        r = keyed.get(f"/api/thumb/{job['id']}", headers=auth(key))
        assert r.status_code == 404, r.text
        assert r.json() == {"detail": "Thumb request not found"}
    # The owner still has all of it: nothing was deleted or spoiled.
    assert keyed.get(base, headers=auth(KEY_A)).json()["status"] == "done"
    r = keyed.get(base + "/image", headers=auth(KEY_A))
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", r.status_code
    assert keyed.get(f"/api/thumb/{job['id']}", headers=auth(KEY_A)).json()["status"] == \
        "finished"
    assert keyed.request("DELETE", base, headers=auth(KEY_A)).status_code == 204


def test_a_job_in_flight_is_private_too(keyed, source):
    job = submit(keyed, KEY_A, url=source.url("slow/1500/land.jpg"), width=61)
    base = f"/v1/thumbnails/{job['id']}"
    error_of(keyed.get(base, headers=auth(KEY_B)), 404, "not_found")
    error_of(keyed.request("DELETE", base, headers=auth(KEY_B)), 404, "not_found")
    assert wait_done(keyed, KEY_A, job["id"])["status"] == "done"


def test_idempotency_keys_are_per_api_key(keyed, source):
    a1 = submit(keyed, KEY_A, headers={"Idempotency-Key": "order-1"},
                url=source.url("img/land.jpg"), width=62)
    # B sending A's value gets a job of its own, made from its own request.
    b1 = submit(keyed, KEY_B, headers={"Idempotency-Key": "order-1"},
                url=source.url("img/port.jpg"), width=63)
    assert b1["id"] != a1["id"]
    assert b1["request"]["width"] == 63
    # A's own repeat still finds A's job.
    again = submit(keyed, KEY_A, status=200, headers={"Idempotency-Key": "order-1"},
                   url=source.url("img/land.jpg"), width=99)
    assert again["id"] == a1["id"]
    # B claiming a value first does not take it from A.
    b2 = submit(keyed, KEY_B, headers={"Idempotency-Key": "order-2"},
                url=source.url("img/land.jpg"), width=64)
    a2 = submit(keyed, KEY_A, headers={"Idempotency-Key": "order-2"},
                url=source.url("img/land.jpg"), width=65)
    assert a2["id"] != b2["id"]
    assert a2["request"]["width"] == 65


def test_identical_requests_are_per_api_key(keyed, source):
    url = source.url("img/land.jpg")
    a = submit(keyed, KEY_A, url=url, width=66)
    b = submit(keyed, KEY_B, url=url, width=66)  # the same request: still B's own job
    assert b["id"] != a["id"]
    assert submit(keyed, KEY_A, status=200, url=url, width=66)["id"] == a["id"]
    assert submit(keyed, KEY_B, status=200, url=url, width=66)["id"] == b["id"]


def test_queued_jobs_per_key_are_bounded(start_daemon, source, tmp_path):
    keys = tmp_path / "api_keys"
    keys.write_text(f"alice {KEY_A}\nbob {KEY_B}\n")
    d = start_daemon({"http": {"api_keys_file": str(keys), "max_queued_per_client": "2"},
                      "worker": {"processes": "1"}, "fetch": {"timeout": "30s"}})
    busy = submit(d, KEY_A, url=source.url("hang/land.jpg"), width=70)
    # The one worker takes the hanging job: it is no longer waiting.
    wait_for("the hanging job to start", lambda: d.get(
        f"/v1/thumbnails/{busy['id']}", headers=auth(KEY_A)).json()["status"] == "processing",
        timeout=15)
    submit(d, KEY_A, url=source.url("img/land.jpg"), width=71)
    submit(d, KEY_A, url=source.url("img/land.jpg"), width=72)
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 73},
               headers=auth(KEY_A))
    err = error_of(r, 429, "too_many_queued")
    assert "http.max_queued_per_client" in err["message"]
    assert int(r.headers["Retry-After"]) >= 1
    # Another key is not held back by A's queue.
    submit(d, KEY_B, url=source.url("img/land.jpg"), width=74)
    # A canceled job makes room.
    waiting = submit(d, KEY_B, url=source.url("img/land.jpg"), width=75)
    assert d.request("DELETE", f"/v1/thumbnails/{waiting['id']}",
                     headers=auth(KEY_B)).status_code == 204
    submit(d, KEY_B, url=source.url("img/land.jpg"), width=76)
    # /metrics counts per key, under the key's name (never the key).
    assert d.metric('thumbnailed_client_submits_total{client="alice"}') == 3
    assert d.metric('thumbnailed_client_submits_total{client="bob"}') == 3
    assert d.metric('thumbnailed_client_too_many_queued_total{client="alice"}') == 1
    assert d.metric('thumbnailed_client_too_many_queued_total{client="bob"}') == 0
    assert KEY_A not in d.get("/metrics").text


def test_queued_jobs_per_address_without_keys(start_daemon, source):
    d = start_daemon({"http": {"max_queued_per_client": "1"}, "worker": {"processes": "1"},
                      "fetch": {"timeout": "30s"}})
    busy = d.submit(url=source.url("hang/land.jpg"), width=80)
    d.wait_until(busy["id"], ("processing",))
    d.submit(url=source.url("img/land.jpg"), width=81)
    r = d.post("/v1/thumbnails", json={"url": source.url("img/land.jpg"), "width": 82})
    error_of(r, 429, "too_many_queued")
