#!/usr/bin/python3
"""package.contents: what dpkg-deb -I/-c and rpm -qpil --requires --scripts say
about the two packages — files, owners and modes, conffiles, dependencies,
maintainer scripts — plus the unit and the man pages they carry.

Usage: package_contents.py PACKAGE_DIR VERSION"""

import glob
import os
import re
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120).stdout


def one(pattern):
    found = glob.glob(pattern)
    if len(found) != 1:
        sys.exit(f"package.contents: expected one {pattern}, found {found}")
    return found[0]


CONF = "/etc/thumbnailed/thumbnailed.conf"
UNIT = "/usr/lib/systemd/system/thumbnailed.service"
FILES = {
    "/usr/sbin/thumbnailed": "-rwxr-xr-x",
    CONF: None,  # 0644 in the .deb (postinst makes it 0640), 0640 in the .rpm
    UNIT: "-rw-r--r--",
    "/usr/share/man/man8/thumbnailed.8.gz": "-rw-r--r--",
    "/usr/share/man/man5/thumbnailed.conf.5.gz": "-rw-r--r--",
    "/usr/share/doc/thumbnailed/README.md": "-rw-r--r--",
    "/usr/share/doc/thumbnailed/copyright": "-rw-r--r--",
    "/usr/share/doc/thumbnailed/changelog.Debian.gz": "-rw-r--r--",
}
# libevent's core only (the HTTP layer is our own, no evhttp), and the parser.
SONAME_LIBS = ["libvips.so.42", "libevent_core-2.1.so.7", "libhttp_parser.so.2.9",
               "libhiredis.so.0.14", "libcurl.so.4", "libmagic.so.1", "libjansson.so.4",
               "libinih.so.1", "libcrypto.so.3"]
DEB_LIBS = ["libvips42", "libevent-core-2.1-7", "libhttp-parser2.9", "libhiredis0.14", "libcurl4",
            "libmagic1", "libjansson4", "libinih1", "libssl3", "libc6"]
UNIT_LINES = [
    "Type=notify",
    "ExecStart=/usr/sbin/thumbnailed -f -c /etc/thumbnailed/thumbnailed.conf",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "KillMode=mixed",
    "User=thumbnailed",
    "RuntimeDirectory=thumbnailed",
    "StateDirectory=thumbnailed",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "MemoryDenyWriteExecute=yes",
    "SystemCallFilter=@system-service",
    "WantedBy=multi-user.target",
]


def check_deb(deb, version):
    print(f"--- {os.path.basename(deb)}")
    info = run("dpkg-deb", "-I", deb)
    field = lambda name: run("dpkg-deb", "-f", deb, name).strip()
    check(field("Package") == "thumbnailed", "deb: Package thumbnailed")
    check(field("Version") == f"{version}-1", f"deb: Version {version}-1")
    check(field("Architecture") == run("dpkg", "--print-architecture").strip(),
          "deb: Architecture of this machine")
    depends = [d.strip() for d in field("Depends").split(",")]
    names = {re.split(r"[ (]", d)[0] for d in depends}
    for lib in DEB_LIBS + ["adduser", "init-system-helpers"]:
        check(lib in names, f"deb: Depends on {lib} (dpkg-shlibdeps) [{field('Depends')}]")
    check(field("Recommends") == "redis-server", "deb: Recommends redis-server")
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        check(re.search(rf"\n\s+\d+ bytes,\s+\d+ lines\s+{'[*]' if script != 'conffiles' else ''}"
                        rf"\s*{script}\b", info) is not None,
              f"deb: control member {script}" + (" (executable)" if script != "conffiles" else ""))
    with tempfile.TemporaryDirectory() as tmp:
        run("dpkg-deb", "-e", deb, tmp)
        conffiles = open(f"{tmp}/conffiles").read().split()
        check(conffiles == [CONF], f"deb: conffiles is exactly {CONF} [{conffiles}]")
        scripts = {s: open(f"{tmp}/{s}").read() for s in ("postinst", "prerm", "postrm")}
    post, prerm, postrm = scripts["postinst"], scripts["prerm"], scripts["postrm"]
    check('"$1" = configure' in post, "deb postinst: acts on configure")
    check("adduser --system" in post and "addgroup --system" in post,
          "deb postinst: creates the system user and group if missing")
    check(re.search(r"install -d -o thumbnailed -g thumbnailed -m 0750 /var/lib/thumbnailed "
                    r"/run/thumbnailed", post) is not None,
          "deb postinst: state and runtime directories owned by thumbnailed")
    check(f"chown root:thumbnailed" in post and "chmod 0640" in post,
          "deb postinst: configuration readable by group thumbnailed only")
    check("deb-systemd-helper enable thumbnailed.service" in post and
          "daemon-reload" in post and "[ -d /run/systemd/system ]" in post,
          "deb postinst: enables the unit, daemon-reload and start when systemd runs")
    check('"$1" = remove' in prerm and "stop thumbnailed.service" in prerm,
          "deb prerm: stops the daemon on remove")
    check(re.search(r'"\$1" = purge.*rm -rf /var/lib/thumbnailed', postrm, re.S) is not None
          and "purge thumbnailed.service" in postrm,
          "deb postrm: purge (only) deletes the data and the unit's state")
    check("deluser" not in postrm, "deb postrm: keeps the system user")

    listing = run("dpkg-deb", "-c", deb)
    files = {}
    for line in listing.splitlines():
        mode, owner, _size, _date, _time, path = line.split(None, 5)
        if not mode.startswith("d"):
            files[path[1:]] = (mode, owner)
    check(set(files) == set(FILES), f"deb: files are exactly {sorted(FILES)} [{sorted(files)}]")
    for path, mode in FILES.items():
        got = files.get(path, ("?", "?"))
        if mode:
            check(got == (mode, "root/root"), f"deb: {path} {mode} root/root [{got}]")
    check(files.get(CONF, ("",))[0] == "-rw-r--r--", "deb: configuration 0644 in the archive")
    with tempfile.TemporaryDirectory() as tmp:
        run("dpkg-deb", "-x", deb, tmp)
        unit = open(tmp + UNIT).read().splitlines()
        for line in UNIT_LINES:
            check(line in unit, f"unit: {line}")
        check("not stripped" not in run("file", "-L", tmp + "/usr/sbin/thumbnailed"),
              "deb: binary stripped")
        for page in ("man8/thumbnailed.8.gz", "man5/thumbnailed.conf.5.gz"):
            p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", f"{tmp}/usr/share/man/{page}"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
            check(p.returncode == 0 and p.stderr == "" and len(p.stdout) > 500,
                  f"man --warnings {page}: renders without warnings [{p.stderr.strip()}]")


def check_rpm(rpm, version):
    print(f"--- {os.path.basename(rpm)}")
    q = lambda *a: run("rpm", "-qp", *a, rpm)
    check(q("--qf", "%{NAME} %{VERSION} %{RELEASE}") == f"thumbnailed {version} 1",
          f"rpm: thumbnailed {version} release 1")
    info = run("rpm", "-qpil", rpm)
    listed = {l for l in info.splitlines() if l.startswith("/")}
    check(set(FILES) <= listed, f"rpm -qpil: lists every file [{sorted(set(FILES) - listed)}]")
    extra = listed - set(FILES) - {"/etc/thumbnailed", "/usr/share/doc/thumbnailed"}
    check(not extra, f"rpm -qpil: nothing else (no /usr/lib/.build-id) [{sorted(extra)}]")
    check("Relocations : /" not in info, "rpm: not relocatable")
    flags = {}
    for line in q("--qf", "[%{FILEFLAGS:fflags}|%{FILEMODES:perms}|%{FILEUSERNAME}:"
                  "%{FILEGROUPNAME}|%{FILENAMES}\n]").splitlines():
        f, mode, owner, path = line.split("|")
        flags[path] = (f, mode, owner)
    check(flags.get(CONF) == ("cn", "-rw-r-----", "root:thumbnailed"),
          f"rpm: {CONF} %config(noreplace) 0640 root:thumbnailed [{flags.get(CONF)}]")
    check(flags.get(UNIT, ("?",))[0] == "", f"rpm: the unit is no %config [{flags.get(UNIT)}]")
    check(flags.get("/usr/sbin/thumbnailed", ("", "?"))[1] == "-rwxr-xr-x",
          "rpm: /usr/sbin/thumbnailed 0755")
    requires = set(run("rpm", "-qp", "--requires", rpm).split("\n"))
    for lib in SONAME_LIBS:
        check(f"{lib}()(64bit)" in requires, f"rpm --requires: {lib} (rpmbuild's soname scan)")
    check("shadow-utils" in requires, "rpm --requires: shadow-utils (useradd in %pre)")
    check(q("--recommends").split() == ["redis"], "rpm --recommends: redis")
    scripts = run("rpm", "-qp", "--scripts", rpm)
    sections = dict(re.findall(r"^(\w+) scriptlet \(using /bin/sh\):\n(.*?)(?=^\w+ scriptlet|\Z)",
                               scripts, re.S | re.M))
    check(set(sections) == {"preinstall", "postinstall", "preuninstall", "postuninstall"},
          f"rpm --scripts: pre, post, preun, postun [{sorted(sections)}]")
    pre, post = sections.get("preinstall", ""), sections.get("postinstall", "")
    preun, postun = sections.get("preuninstall", ""), sections.get("postuninstall", "")
    check("groupadd -r thumbnailed" in pre and "useradd -r -g thumbnailed" in pre,
          "rpm %pre: creates the system user and group if missing")
    check("install -d -o thumbnailed -g thumbnailed -m 0750 /var/lib/thumbnailed" in post and
          '"$1" -eq 1' in post and "systemctl enable thumbnailed.service" in post,
          "rpm %post: directories; enable on a first install ($1 = 1)")
    check('"$1" -eq 0' in preun and "disable --now thumbnailed.service" in preun,
          "rpm %preun: stops and disables on erase ($1 = 0) only")
    check('"$1" -ge 1' in postun and "try-restart" in postun and
          "rm -rf /var/lib/thumbnailed" not in postun, "rpm %postun: restart on upgrade, data kept")


def main():
    pkg_dir, version = sys.argv[1], sys.argv[2]
    check_deb(one(f"{pkg_dir}/thumbnailed_{version}-1_*.deb"), version)
    check_rpm(one(f"{pkg_dir}/thumbnailed-{version}-1.*.rpm"), version)
    print(f"package.contents: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
