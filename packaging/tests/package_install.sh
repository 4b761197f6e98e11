#!/usr/bin/env bash
# package.install: apt-get install the .deb on this machine (dependencies
# resolved by apt), check the user, directories, conffile and unit
# (systemd-analyze verify), run the installed binary in the foreground on the
# installed configuration (only the port and the cache size changed) with its
# embedded redis-server, make one real thumbnail over HTTP, reinstall over a
# changed configuration (kept), start it again detached for prerm to stop,
# then apt-get purge and check that nothing is left but the system user and
# group (kept by policy; removed afterwards if
# this test created them). Needs root: exits 77 (ctest SKIP) otherwise.
# Refuses to run where thumbnailed is installed or its paths exist: the test
# purges what it installs, even on failure (trap), and nothing else.
# Usage: package_install.sh PACKAGE_DIR
set -euo pipefail

pkg_dir=${1:?usage: package_install.sh PACKAGE_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
    echo "package.install: SKIPPED: needs root (it installs and purges the .deb)" >&2
    exit 77
fi

fails=0
ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    fails=$((fails + 1))
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
die() {
    echo "package.install: $*" >&2
    exit 1
}

debs=("$pkg_dir"/thumbnailed_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || die "expected one .deb in $pkg_dir: ${debs[*]}"
deb=$(cd "$(dirname "${debs[0]}")" && pwd)/$(basename "${debs[0]}")

status=$(dpkg-query -W -f='${db:Status-Status}' thumbnailed 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] ||
    die "thumbnailed is already on this machine ($status): this test would purge it; remove it first"
for p in /etc/thumbnailed /var/lib/thumbnailed /run/thumbnailed; do
    [ ! -e "$p" ] || die "$p exists although thumbnailed is not installed: not touching it"
done
user_existed=no
getent passwd thumbnailed >/dev/null && user_existed=yes
group_existed=no
getent group thumbnailed >/dev/null && group_existed=yes

tmp=$(mktemp -d)
daemon_pid=
apt=(env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -y -q -o DPkg::Lock::Timeout=300)

# Live (not zombie: a PID 1 that does not reap may keep those) processes of
# user thumbnailed, and whether a pid is alive.
live_user_procs() { ps -u thumbnailed -o pid=,stat= 2>/dev/null | awk '$2 !~ /^Z/' || true; }
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

stop_pid() { # stop_pid PID: SIGTERM, at most 45 s, then SIGKILL its process group
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 450; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    [ -n "$daemon_pid" ] && stop_pid "$daemon_pid"
    if [ -f /run/thumbnailed/thumbnailed.pid ]; then
        stop_pid "$(cat /run/thumbnailed/thumbnailed.pid)"
    fi
    local st
    st=$(dpkg-query -W -f='${db:Status-Status}' thumbnailed 2>/dev/null)
    if [ -n "$st" ] && [ "$st" != not-installed ]; then
        echo "package.install: cleaning up: purging thumbnailed" >&2
        "${apt[@]}" purge thumbnailed >/dev/null
    fi
    if [ $user_existed = no ] && getent passwd thumbnailed >/dev/null; then
        userdel thumbnailed
    fi
    if [ $group_existed = no ] && getent group thumbnailed >/dev/null; then
        groupdel thumbnailed
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "--- apt-get install $deb"
"${apt[@]}" install "$deb" >"$tmp/apt-install.log" 2>&1 || {
    cat "$tmp/apt-install.log"
    die "apt-get install failed"
}
check "dpkg: thumbnailed installed" \
    test "$(dpkg-query -W -f='${db:Status-Status}' thumbnailed)" = installed
check "dpkg: /etc/thumbnailed/thumbnailed.conf registered as a conffile" \
    grep -q '^ /etc/thumbnailed/thumbnailed.conf ' <(dpkg-query -W -f='${Conffiles}\n' thumbnailed)
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd thumbnailed)
check "user thumbnailed: system uid ($uid), home $home, shell $shell" \
    test "$uid" -lt 1000 -a "$home" = /var/lib/thumbnailed -a "$shell" = /usr/sbin/nologin
check "group thumbnailed is the user's primary group" \
    test "$(getent group thumbnailed | cut -d: -f3)" = "$gid"
check "configuration 640 root:thumbnailed" \
    test "$(stat -c '%a %U:%G' /etc/thumbnailed/thumbnailed.conf)" = "640 root:thumbnailed"
for d in /var/lib/thumbnailed /run/thumbnailed; do
    check "$d 750 thumbnailed:thumbnailed" test "$(stat -c '%a %U:%G' $d)" = "750 thumbnailed:thumbnailed"
done
check "unit enabled (multi-user.target.wants)" \
    test -L /etc/systemd/system/multi-user.target.wants/thumbnailed.service
unit=/usr/lib/systemd/system/thumbnailed.service
if out=$(timeout 60 systemd-analyze verify "$unit" 2>&1) && [ -z "$out" ]; then
    ok "systemd-analyze verify $unit: clean"
else
    fail "systemd-analyze verify $unit: $out"
fi
check "man -w finds thumbnailed(8) and thumbnailed.conf(5)" \
    bash -c 'man -w 8 thumbnailed && man -w 5 thumbnailed.conf' >/dev/null
check "thumbnailed -t accepts the installed configuration" \
    thumbnailed -t -c /etc/thumbnailed/thumbnailed.conf

# The installed configuration with a free port (another thumbnailed may hold
# 8080) and a small cache (a container's /dev/shm may be 64 MB).
port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
conf=$tmp/thumbnailed.conf
awk -v port="$port" '
    /^\[/ { section = $0 }
    section == "[http]" && /^listen *=/ { print "listen = 127.0.0.1:" port; next }
    section == "[cache]" && /^size *=/ { print "size = 16M"; next }
    { print }' /etc/thumbnailed/thumbnailed.conf >"$conf"
check "test configuration differs in listen and cache.size only" \
    test "$(diff /etc/thumbnailed/thumbnailed.conf "$conf" | grep -c '^>')" -eq 2
timeout 120 vips gaussnoise "$tmp/source.jpg" 320 200 --mean 128 --sigma 60

echo "--- the installed daemon in the foreground, as root (it drops to daemon.user)"
setsid thumbnailed -f -c "$conf" >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
if timeout 150 $py "$here/thumbnail_roundtrip.py" "http://127.0.0.1:$port" "$tmp/source.jpg"; then
    ok "one thumbnail made through HTTP"
else
    fail "one thumbnail made through HTTP"
fi
check "master runs as thumbnailed" \
    test "$(awk '/^Uid:/ { print $2 }' /proc/$daemon_pid/status)" = "$uid"
check "its children run as thumbnailed: $(ps -o user= --ppid $daemon_pid | sort | uniq -c | xargs)" \
    test -z "$(ps -o user= --ppid $daemon_pid | grep -vx thumbnailed)"
check "redis-server data in /var/lib/thumbnailed" test -n "$(ls -A /var/lib/thumbnailed)"
kill -TERM "$daemon_pid"
rc=0
timeout 45 tail --pid="$daemon_pid" -f /dev/null || rc=$?
wait "$daemon_pid" || rc=$?
check "SIGTERM: stopped, exit status $rc" test $rc -eq 0
daemon_pid=
check "no process of user thumbnailed left" test -z "$(live_user_procs)"
check "shared memory removed" test -z "$(find /dev/shm -user thumbnailed)"
if [ $fails -gt 0 ]; then
    echo "--- daemon log"
    cat "$tmp/daemon.log"
fi

echo "--- reinstall (the upgrade path): the operator's configuration is kept"
echo "; changed by the operator (package.install)" >>/etc/thumbnailed/thumbnailed.conf
"${apt[@]}" install --reinstall "$deb" >"$tmp/apt-reinstall.log" 2>&1 || {
    cat "$tmp/apt-reinstall.log"
    die "apt-get install --reinstall failed"
}
check "reinstall: the changed configuration is kept" \
    grep -qx '; changed by the operator (package.install)' /etc/thumbnailed/thumbnailed.conf
check "reinstall: no .dpkg-new / .dpkg-dist copy beside it" \
    test -z "$(ls /etc/thumbnailed/ | grep -v '^thumbnailed.conf$')"
check "reinstall: still 640 root:thumbnailed" \
    test "$(stat -c '%a %U:%G' /etc/thumbnailed/thumbnailed.conf)" = "640 root:thumbnailed"
check "reinstall: thumbnailed -t accepts it" thumbnailed -t -c /etc/thumbnailed/thumbnailed.conf

echo "--- detached, for prerm to stop on purge"
check "thumbnailed -c (detached) returns 0 once ready" timeout 60 thumbnailed -c "$conf"
master=$(cat /run/thumbnailed/thumbnailed.pid 2>/dev/null || echo 0)

echo "--- apt-get purge thumbnailed"
"${apt[@]}" purge thumbnailed >"$tmp/apt-purge.log" 2>&1 || {
    cat "$tmp/apt-purge.log"
    die "apt-get purge failed"
}
check "dpkg: thumbnailed purged" \
    test "$(dpkg-query -W -f='${db:Status-Status}' thumbnailed 2>/dev/null || echo gone)" != installed
if [ "$master" -gt 1 ] && ! alive "$master"; then
    ok "prerm stopped the detached daemon (pid $master)"
else
    fail "prerm stopped the detached daemon (pid $master)"
fi
check "no process of user thumbnailed left" test -z "$(live_user_procs)"
for p in /etc/thumbnailed /var/lib/thumbnailed /run/thumbnailed /usr/sbin/thumbnailed "$unit" \
    /usr/share/doc/thumbnailed /usr/share/man/man8/thumbnailed.8.gz \
    /usr/share/man/man5/thumbnailed.conf.5.gz \
    /etc/systemd/system/multi-user.target.wants/thumbnailed.service \
    /etc/systemd/system/thumbnailed.service \
    /var/lib/systemd/deb-systemd-helper-enabled/thumbnailed.service.dsh-also \
    /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/thumbnailed.service \
    /var/lib/systemd/deb-systemd-helper-masked/thumbnailed.service; do
    check "gone: $p" test ! -e "$p" -a ! -L "$p"
done
left=$(find /etc /var /run /usr /dev/shm -xdev \( -user thumbnailed -o -group thumbnailed \) \
    2>/dev/null | head -20)
check "no file owned by user or group thumbnailed left: $left" test -z "$left"
check "user and group thumbnailed kept (policy)" getent passwd thumbnailed >/dev/null

echo "package.install: $fails failure(s)"
[ $fails -eq 0 ]
