"""GET /dashboard in a real browser (Debian's chromium, headless, driven over
the DevTools protocol by cdp.py) against the real daemon: the page loads
clean, shows a failed job, retries it from its button, shows it done, draws
its charts and the fleet; with admin keys it asks for one.

A screenshot of each test goes to its tmp dir, and to $TH_SCREENSHOT_DIR
when that is set."""

import json
import os
import shutil
from pathlib import Path

import pytest

import cdp
from helpers import unique_jpeg


@pytest.fixture(autouse=True)
def browser_present():
    """A missing browser fails the test: a skip would count as a pass."""
    why = cdp.missing()
    assert why is None, why

UI_TIMEOUT = 30  # seconds for the page to show something the daemon knows


@pytest.fixture
def browser(tmp_path):
    b = cdp.Browser(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def save_screenshot(page, tmp_path, name):
    path = page.screenshot(tmp_path / name)
    out = os.environ.get("TH_SCREENSHOT_DIR")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / name)
    return path


def js(value):
    """value as a JavaScript literal (a string quoted and escaped)."""
    return json.dumps(value)


def assert_clean(page, allowed=()):
    problems = page.problems(allowed)
    assert not problems, "the page had problems:\n" + "\n".join(problems)


def row(list_id, job_id):
    """A JavaScript expression: the row of job_id in the list list_id, or null."""
    return f"document.querySelector('#{list_id} tr[data-row-job=' + {js(js(job_id))} + ']')"


def has_row(list_id, job_id):
    return "!!" + row(list_id, job_id)


def test_dashboard_failure_retry_done(start_daemon, source, browser, tmp_path):
    # One attempt only: a source that answers 503 sends the job to the dead set.
    d = start_daemon({"worker": {"max_attempts": "1"}})
    done = [d.run(url=source.url("img/land.jpg"), width=w) for w in (64, 96)]
    # Markup in a URL (no space: a valid one) is shown as text, never parsed.
    hostile_url = source.url("img/land.jpg") + "&x=<img/src=x/onerror=window.pwned=1>"
    done.append(d.run(url=hostile_url, width=128))
    upload = d.wait(d.upload(unique_jpeg(), width=60)["id"])
    assert upload["status"] == "done", upload
    broken = d.wait(d.submit(url=source.url("img/truncated.jpg"), width=64)["id"])
    assert broken["status"] == "failed" and broken["error"]["code"] == "decode_failed", broken
    # /fail/1/503/: 503 the first time this URL is asked, the image after.
    job = d.wait(d.submit(url=source.url("fail/1/503/land.jpg"), width=80)["id"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "fetch_http_503", job
    job_id = job["id"]

    page = browser.new_page()
    page.navigate(d.base + "/dashboard")
    page.wait_for("the page to be live", "document.getElementById('link').textContent === 'live'",
                  UI_TIMEOUT)

    # The failed job in the latest failures, with its code; on the dead list.
    page.wait_for("the job in the failures list", has_row("failed-list", job_id), UI_TIMEOUT)
    code = page.evaluate(row("failed-list", job_id) + ".querySelector('td.code').textContent")
    assert code == "fetch_http_503"  # §10.2 fetch_http_5xx
    page.wait_for("the job in the dead list", has_row("dead-list", job_id), UI_TIMEOUT)
    page.wait_for("the permanent failure listed", has_row("failed-list", broken["id"]), UI_TIMEOUT)

    # Counters, charts (points drawn), the fleet (every worker of the node).
    jobs_done = page.evaluate("document.querySelector('#jobs-by-state [data-stat=done] dd').textContent")
    assert jobs_done == "4", jobs_done
    page.wait_for("points on the throughput chart",
                  "document.querySelectorAll('#chart-throughput svg > g.series circle').length === 60",
                  UI_TIMEOUT)
    assert page.evaluate("document.querySelectorAll('#chart-failures svg > g.series circle').length") == 120
    latency_points = page.evaluate("document.querySelectorAll('#chart-latency svg > g.series circle').length")
    assert latency_points >= 2, latency_points  # p50 and p95 of the minutes with jobs done
    assert page.evaluate("document.querySelectorAll('#chart-latency svg .axis text').length") > 5
    overview = d.get("/v1/admin/overview").json()
    pids = sorted(w["pid"] for n in overview["nodes"] for w in n["workers"])
    assert len(pids) == 2, overview["nodes"]
    shown = page.evaluate("[...document.querySelectorAll('#fleet [data-worker]')]"
                          ".map(e => +e.dataset.worker).sort((a, b) => a - b)")
    assert shown == pids
    node = page.evaluate("document.querySelector('#fleet tr[data-node]').dataset.node")
    assert node == overview["node"]

    # The job's document in the dialog, with a Retry button as it failed.
    page.evaluate(row("failed-list", job_id) + ".querySelector('[data-job]').click()")
    page.wait_for("the job's document", "document.getElementById('job-dialog-status').textContent === 'failed'",
                  UI_TIMEOUT)
    doc = json.loads(page.evaluate("document.getElementById('job-dialog-json').textContent"))
    assert doc["id"] == job_id and doc["error"]["code"] == "fetch_http_503"
    assert page.evaluate("!document.getElementById('job-dialog-retry').hidden")

    # Retry from the dead list's button: queued again, then done (the source
    # answers now).
    page.evaluate(row("dead-list", job_id) + ".querySelector('button[data-retry]').click()")
    page.wait_for("the retry to be taken", "document.getElementById('dead-msg').textContent.includes('queued again')",
                  UI_TIMEOUT)
    assert d.wait(job_id)["status"] == "done"
    page.wait_for("the job off the dead list", "!" + row("dead-list", job_id), UI_TIMEOUT)

    # The dialog still shows the failed document: its Retry is now refused (409).
    page.evaluate("document.getElementById('job-dialog-retry').click()")
    msg = page.wait_for("the conflict message",
                        "(m => !m.hidden && m.textContent)(document.getElementById('job-dialog-msg'))",
                        UI_TIMEOUT)
    assert "conflict" in msg and "only a failed job can be retried" in msg, msg
    page.evaluate("document.getElementById('job-dialog-close').click()")

    # The done tab lists it done; its dialog shows the thumbnail.
    page.evaluate("document.querySelector('#tabs .tab[data-state=done]').click()")
    page.wait_for("the job listed done",
                  f"(r => r && r.querySelector('.badge').textContent === 'done')({row('state-list', job_id)})",
                  UI_TIMEOUT)
    for other in done + [upload]:
        assert page.evaluate(has_row("state-list", other["id"]))
    src = page.evaluate(row("state-list", done[2]["id"]) + ".querySelector('td.src').textContent")
    assert src == hostile_url
    assert page.evaluate(row("state-list", upload["id"]) + ".querySelector('td.src').textContent") == "(upload)"
    assert page.evaluate("document.querySelectorAll('main img').length") == 0
    assert page.evaluate("window.pwned === undefined")
    page.evaluate(row("state-list", job_id) + ".querySelector('[data-job]').click()")
    size = page.wait_for("the thumbnail", "(i => i.complete && i.naturalWidth && [i.naturalWidth, i.naturalHeight])"
                         "(document.getElementById('job-dialog-img'))", UI_TIMEOUT)
    assert size == [80, 50], size
    assert page.evaluate("document.getElementById('job-dialog-img').src").startswith("blob:")
    save_screenshot(page, tmp_path, "dashboard-job.png")
    page.evaluate("document.getElementById('job-dialog-close').click()")

    # Nothing went wrong but the 409 provoked above.
    save_screenshot(page, tmp_path, "dashboard.png")
    assert_clean(page, allowed=(f"/v1/admin/jobs/{job_id}/retry",))
    assert len([f for f in page.failed if "/retry" in f["url"]]) == 1, page.failed


def test_dashboard_pause_resume_and_purge(start_daemon, source, browser, tmp_path):
    d = start_daemon({"worker": {"max_attempts": "1"}})
    dead = d.wait(d.submit(url=source.url("fail/999/503/land.jpg"), width=64)["id"])
    assert dead["status"] == "failed", dead
    page = browser.new_page()
    page.navigate(d.base + "/dashboard")
    page.wait_for("the dead job listed", has_row("dead-list", dead["id"]), UI_TIMEOUT)

    page.evaluate("document.getElementById('pause').click()")
    page.wait_for("the paused banner", "!document.getElementById('paused-banner').hidden", UI_TIMEOUT)
    assert d.get("/v1/admin/overview").json()["paused"] is True
    page.wait_for("the Resume button", "!document.getElementById('resume').hidden"
                  " && document.getElementById('pause').hidden", UI_TIMEOUT)
    page.wait_for("the workers paused", "[...document.querySelectorAll('#fleet [data-worker] .badge')]"
                  ".every(b => b.textContent === 'paused')", UI_TIMEOUT)
    save_screenshot(page, tmp_path, "dashboard-paused.png")
    page.evaluate("document.getElementById('resume').click()")
    page.wait_for("the banner gone", "document.getElementById('paused-banner').hidden", UI_TIMEOUT)
    assert d.get("/v1/admin/overview").json()["paused"] is False

    # Purge asks first, in the page; Cancel keeps the job.
    page.evaluate("document.getElementById('purge').click()")
    question = page.wait_for("the confirm step", "(c => !c.hidden && c.textContent)"
                             "(document.getElementById('purge-confirm'))", UI_TIMEOUT)
    assert "1 dead job" in question, question
    page.evaluate("document.getElementById('purge-no').click()")
    assert d.get(f"/v1/admin/jobs/{dead['id']}").status_code == 200
    page.evaluate("document.getElementById('purge').click()")
    page.evaluate("document.getElementById('purge-yes').click()")
    page.wait_for("the purge message", "document.getElementById('dead-msg').textContent.includes('Purged 1 dead job')",
                  UI_TIMEOUT)
    page.wait_for("the dead list empty", "!" + row("dead-list", dead["id"]), UI_TIMEOUT)
    assert d.get(f"/v1/admin/jobs/{dead['id']}").status_code == 404
    assert_clean(page)


def test_dashboard_shows_when_the_daemon_stops_answering(start_daemon, browser, tmp_path):
    d = start_daemon()
    page = browser.new_page()
    page.navigate(d.base + "/dashboard")
    page.wait_for("the page to be live", "document.getElementById('link').textContent === 'live'",
                  UI_TIMEOUT)
    assert_clean(page)
    d.stop()
    page.wait_for("the down banner", "!document.getElementById('down-banner').hidden"
                  " && document.getElementById('link').textContent === 'not answering'", UI_TIMEOUT)
    save_screenshot(page, tmp_path, "dashboard-down.png")
    d.restart()
    page.wait_for("the page live again", "document.getElementById('link').textContent === 'live'"
                  " && document.getElementById('down-banner').hidden", UI_TIMEOUT)
    # Only requests to it that found no answer while it was down (a favicon
    # fetch the stop cut off included) and 503s while its Redis started again;
    # no script error.
    assert not [e for e in page.errors if not e.startswith("log (network)")], page.errors
    assert all(f["status"] in (0, 503) and f["url"].startswith(d.base + "/") for f in page.failed), \
        page.failed


def test_dashboard_asks_for_the_admin_key(start_daemon, browser, tmp_path):
    keys = tmp_path / "admin_keys"
    keys.write_text("ops dash-admin-key-0123456789abcdef\n")
    d = start_daemon({"http": {"admin_keys_file": str(keys)}})
    page = browser.new_page()
    page.navigate(d.base + "/dashboard")
    page.wait_for("the key prompt", "!document.getElementById('auth').hidden"
                  " && document.getElementById('main').hidden", UI_TIMEOUT)
    assert page.evaluate("document.getElementById('auth-key').type") == "password"
    save_screenshot(page, tmp_path, "dashboard-key.png")

    def enter(key):
        page.evaluate(f"document.getElementById('auth-key').value = {js(key)};"
                      "document.getElementById('auth-form').requestSubmit()")

    enter("not-the-key")
    error = page.wait_for("the wrong-key message", "(e => !e.hidden && e.textContent)"
                          "(document.getElementById('auth-error'))", UI_TIMEOUT)
    assert "wrong" in error and "403" in error, error
    assert page.evaluate("sessionStorage.length") == 0

    before = len(page.failed)
    enter("dash-admin-key-0123456789abcdef")
    page.wait_for("data shown", "document.getElementById('auth').hidden"
                  " && !document.getElementById('main').hidden"
                  " && document.querySelectorAll('#fleet [data-worker]').length === 2"
                  " && document.getElementById('link').textContent === 'live'", UI_TIMEOUT)
    assert page.evaluate("Object.values(sessionStorage)") == ["dash-admin-key-0123456789abcdef"]
    # A reload keeps the key (this tab's session storage).
    page.navigate(d.base + "/dashboard")
    page.wait_for("data shown after a reload", "document.getElementById('auth').hidden"
                  " && document.querySelectorAll('#fleet [data-worker]').length === 2", UI_TIMEOUT)
    # The failed requests are the 401s and the 403 of before the key only.
    assert {f["status"] for f in page.failed[:before]} <= {401, 403}, page.failed
    assert page.failed[before:] == [], page.failed[before:]
    assert not [e for e in page.errors if not e.startswith("log (network)")], page.errors
