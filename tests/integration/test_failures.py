"""Jobs that must fail, each with its documented error code, at once (permanent
errors are not retried), while the daemon keeps serving."""

import pytest

CASES = [
    # (source path on the test server, error code)
    ("missing.jpg", "fetch_http_404"),
    ("img/no-such-file.png", "fetch_http_404"),
    ("as-jpeg/page.html", "unsupported_type"),
    ("img/page.html", "unsupported_type"),
    ("img/big.png", "fetch_too_large"),  # Content-Length over fetch.max_bytes (1M)
    ("stream/big.png", "fetch_too_large"),  # no Content-Length: capped while streaming
    ("img/truncated.jpg", "decode_failed"),
    ("img/huge-header.png", "too_many_pixels"),  # refused from the header, before decoding
]


@pytest.mark.parametrize("path,code", CASES, ids=[p for p, _ in CASES])
def test_job_fails_with_code(daemon, source, path, code):
    job = daemon.submit(url=source.url(path), width=100)
    doc = daemon.wait(job["id"])
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == code, doc
    assert isinstance(doc["error"].get("message"), str) and doc["error"]["message"], doc
    assert doc["attempts"] == 1, f"a permanent error was retried: {doc}"
    assert "result" not in doc
    assert doc.get("finished_at"), doc


def test_daemon_still_serves_after_failures(daemon, source):
    bad = [daemon.submit(url=source.url(path), width=64)["id"] for path, _ in CASES]
    doc = daemon.run(url=source.url("img/land.jpg"), width=64)
    for job_id in bad:
        assert daemon.wait(job_id)["status"] == "failed"
    assert (doc["result"]["width"], doc["result"]["height"]) == (64, 40)


def test_transient_failure_is_retried(daemon, source):
    # The source answers 503 once, then the image: a second attempt succeeds.
    job = daemon.submit(url=source.url("flaky/land.jpg"), width=64)
    doc = daemon.wait(job["id"], timeout=60)
    assert doc["status"] == "done", doc
    assert doc["attempts"] == 2, doc
    assert "error" not in doc


def test_private_address_refused_by_default(start_daemon, source):
    # The shipped default fetch.allow_private = no: the loopback source is refused.
    d = start_daemon({"fetch": {"allow_private": "no"}})
    doc = d.wait(d.submit(url=source.url("img/land.jpg"), width=64)["id"])
    assert doc["status"] == "failed", doc
    assert doc["error"]["code"] == "fetch_blocked_address", doc
    assert doc["attempts"] == 1, doc
