"""The command line: -t (check a config), -v, -h. Runs the binary only."""

import re
import subprocess

import pytest

OK = re.compile(r"\bconfiguration ok\b")


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)


def check(binary, path):
    return run(binary, "-t", "-c", str(path))


def test_shipped_config_is_valid(thumbnailed_bin, source_dir):
    shipped = source_dir / "etc" / "thumbnailed.conf"
    assert shipped.is_file(), f"{shipped} is missing"
    r = check(thumbnailed_bin, shipped)
    assert r.returncode == 0, r.stderr
    assert OK.search(r.stdout + r.stderr), (r.stdout, r.stderr)


def test_minimal_config_is_valid(thumbnailed_bin, tmp_path):
    conf = tmp_path / "ok.conf"
    conf.write_text("[daemon]\nuser =\n\n[http]\nlisten = 127.0.0.1:18080\nprocesses = 3\n"
                    "max_body = 512K\n\n[fetch]\nallow_private = yes\ntimeout = 2s\n")
    r = check(thumbnailed_bin, conf)
    assert r.returncode == 0, r.stderr
    assert OK.search(r.stdout + r.stderr), (r.stdout, r.stderr)


BAD_CONFIGS = [
    # (name, file text, line of the error, words the message must contain)
    ("unknown-key", "# a comment\n[daemon]\nlog_level = info\ncolour = blue\n", 4, ["colour"]),
    ("bad-size", "[http]\nprocesses = 2\n\n; sizes take K/M/G\nmax_body = 12Q\n", 5, ["max_body"]),
    ("out-of-range", "[image]\ndefault_quality = 80\nmax_dimension = 4096\n"
     "\n[http]\nprocesses = 0\n", 6, ["processes"]),
    ("bad-duration", "[worker]\njob_timeout = soon\n", 2, ["job_timeout"]),
    ("bad-enum", "[daemon]\n\nlog_level = loud\n", 3, ["log_level"]),
    ("bad-bool", "[fetch]\nallow_private = maybe\n", 2, ["allow_private"]),
    ("relative-path", "[daemon]\npid_file = run/thumbnailed.pid\n", 2, ["pid_file"]),
    ("duplicate-key", "[http]\nprocesses = 2\nprocesses = 3\n", 3, ["processes"]),
]


@pytest.mark.parametrize("text,line,words", [(t, n, w) for _, t, n, w in BAD_CONFIGS],
                         ids=[i for i, _, _, _ in BAD_CONFIGS])
def test_bad_config_points_at_the_line(thumbnailed_bin, tmp_path, text, line, words):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = check(thumbnailed_bin, conf)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    errors = [l for l in r.stderr.splitlines() if l.startswith(f"{conf}:")]
    assert errors, f"no '{conf}:LINE: message' on stderr: {r.stderr!r}"
    assert any(l.startswith(f"{conf}:{line}: ") for l in errors), \
        f"expected an error on line {line}: {r.stderr!r}"
    first = next(l for l in errors if l.startswith(f"{conf}:{line}: "))
    for w in words:
        assert w in first, f"{w!r} not in {first!r}"
    assert not OK.search(r.stdout + r.stderr), (r.stdout, r.stderr)


def test_unknown_section(thumbnailed_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[daemon]\nlog_level = info\n\n[deamon]\nuser = nobody\n")
    r = check(thumbnailed_bin, conf)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    # Reported once, at the [header] line, not once per key in it.
    lines = [l for l in r.stderr.splitlines() if l.startswith(f"{conf}:")]
    assert len(lines) == 1 and lines[0].startswith(f"{conf}:4: "), r.stderr
    assert "deamon" in lines[0], r.stderr


def test_empty_unknown_section(thumbnailed_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[daemon]\nlog_level = info\n[cahce]\n")
    r = check(thumbnailed_bin, conf)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert f"{conf}:3: unknown section [cahce]" in r.stderr, r.stderr


def test_every_error_is_reported_in_one_pass(thumbnailed_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("[http]\nprocesses = many\nmax_body = 1Z\n\n[worker]\nnope = 1\n")
    r = check(thumbnailed_bin, conf)
    assert r.returncode == 1
    for line in (2, 3, 6):
        assert f"{conf}:{line}: " in r.stderr, (line, r.stderr)


def test_missing_config_file(thumbnailed_bin, tmp_path):
    r = check(thumbnailed_bin, tmp_path / "nope.conf")
    assert r.returncode == 1
    assert str(tmp_path / "nope.conf") in r.stderr


def test_version(thumbnailed_bin, source_dir):
    m = re.search(r"project\(thumbnailed VERSION ([0-9.]+)",
                  (source_dir / "CMakeLists.txt").read_text())
    r = run(thumbnailed_bin, "-v")
    assert r.returncode == 0, r.stderr
    assert m.group(1) in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_usage(thumbnailed_bin):
    r = run(thumbnailed_bin, "-h")
    assert r.returncode == 0, r.stderr
    for opt in ("-c", "-f", "-t", "-v"):
        assert opt in r.stdout + r.stderr, (r.stdout, r.stderr)


def test_unknown_option_is_an_error(thumbnailed_bin):
    r = run(thumbnailed_bin, "--no-such-option")
    assert r.returncode != 0
    assert r.stderr
