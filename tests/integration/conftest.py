"""Fixtures of the black-box suite: test images, a local source server, the
real thumbnailed binary (with its embedded redis-server) on a free port, and an
S3-compatible store (s3fixture.py).

Environment: THUMBNAILED_BIN (default <TH_SOURCE_DIR>/build/thumbnailed),
TH_SOURCE_DIR (default: two levels above this file), TH_S3RVER (s3rver's CLI,
for s3_store; ctest sets it)."""

import os
from pathlib import Path

import pytest

import openapi_check
import s3fixture
from helpers import Daemon, RedisServer, SentinelSet, SourceServer, make_images

SOURCE_DIR = Path(os.environ.get("TH_SOURCE_DIR") or Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def source_dir():
    return SOURCE_DIR


@pytest.fixture(scope="session")
def thumbnailed_bin():
    binary = os.environ.get("THUMBNAILED_BIN") or str(SOURCE_DIR / "build" / "thumbnailed")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"thumbnailed binary not found or not executable: {binary} "
                    "(build it, or set THUMBNAILED_BIN)")
    return binary


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def source(images):
    server = SourceServer(images)
    server.start()
    yield server
    server.stop()


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class DaemonFactory:
    """Starts daemons in their own temp dirs and stops every one at teardown."""

    def __init__(self, binary, tmp_path_factory):
        self.binary = binary
        self.tmp = tmp_path_factory
        self.started = []

    def __call__(self, overrides=None, new_session=False):
        d = Daemon(self.binary, self.tmp.mktemp("d"), overrides)
        d.new_session = new_session
        self.started.append(d)
        return d.start()

    def stop_all(self):
        """Stops every daemon; a daemon that did not stop cleanly, or whose log
        holds a sanitizer report (the -DSANITIZE=ON build), fails the test."""
        problems = []
        for d in self.started:
            if (d.stop() != 0 or d.killed) and not d.expect_unclean:
                problems.append(f"thumbnailed did not stop cleanly (status {d.returncode}, "
                                f"killed={d.killed})\n{d.log()}")
            try:
                log = d.log_path.read_text(errors="replace")
            except OSError:
                log = ""
            if any(marker in log for marker in SANITIZER_MARKERS):
                problems.append(f"sanitizer report in the daemon's log\n{d.log()}")
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def start_daemon(thumbnailed_bin, tmp_path_factory):
    """A function: start_daemon(overrides) -> a running Daemon, stopped after the test."""
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory
    factory.stop_all()


@pytest.fixture
def redis_server(tmp_path_factory):
    """A redis-server of the test's own (external mode), stopped after the test."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def sentinel_set(tmp_path_factory):
    """A primary, its replica and three Sentinels of the test's own
    (helpers.SentinelSet), ready for a failover; stopped after the test."""
    redis_set = SentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield redis_set
    redis_set.stop()


@pytest.fixture
def s3_store(tmp_path):
    """An S3 store of the test's own (s3fixture.S3Store: s3rver behind a proxy
    that verifies SigV4 as S3 does), bucket "thumbs", started; stopped after the
    test. Without s3rver or node the test fails, saying what to do."""
    problem = s3fixture.missing()
    if problem:
        pytest.fail(f"the s3_store fixture cannot start: {problem}", pytrace=False)
    store = s3fixture.S3Store(tmp_path / "s3").start()
    yield store
    store.stop()


@pytest.fixture(scope="module")
def daemon(thumbnailed_bin, tmp_path_factory):
    """One daemon for a test module, on the suite's standard configuration
    (job ids are unique, and every test makes its source URLs unique)."""
    factory = DaemonFactory(thumbnailed_bin, tmp_path_factory)
    yield factory()
    factory.stop_all()


@pytest.fixture(autouse=True)
def openapi_conformance():
    """Fails the test when an answer it got (or its fixtures got) disagrees
    with docs/openapi.json (openapi_check.py)."""
    yield
    found = openapi_check.take_problems()
    if found:
        pytest.fail(f"{len(found)} answer(s) disagree with docs/openapi.json:\n" + "\n".join(found),
                    pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Answers after the last test (a module's daemon stopping) are checked too."""
    found = openapi_check.take_problems()
    if found:
        print(f"\n{len(found)} answer(s) after the last test disagree with docs/openapi.json:\n"
              + "\n".join(found))
        session.exitstatus = 1
    print(f"\nopenapi_check: {openapi_check.checked} answers checked against docs/openapi.json")
    if os.environ.get("OPENAPI_CHECK_COVERAGE"):
        print("\n".join(openapi_check.coverage()))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the log of every daemon the test used to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            daemons = []
            if isinstance(value, Daemon):
                daemons = [value]
            elif isinstance(value, DaemonFactory):
                daemons = value.started
            for d in daemons:
                report.sections.append((f"thumbnailed log ({name}, {d.dir})", d.log()))
            if isinstance(value, s3fixture.S3Store):
                report.sections.append((f"s3rver log ({name})", value.log()))
            if isinstance(value, SentinelSet):
                report.sections.append((f"Sentinel set ({value.dir})",
                                        f"{value.describe()}\n{value.logs()}"))
