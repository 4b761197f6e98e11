#!/usr/bin/env bash
# dev.sh — install what is missing (Debian 12), build into build/, then
#   run:  start thumbnailed in the foreground on a development config
#         (etc/thumbnailed.conf with only paths and user changed), or
#   test: run the whole test suite (ctest: unit + integration + packaging), then
#         build the fuzz harnesses with clang into build-fuzz/ and run each briefly;
#   package: build the .deb and .rpm into build-pkg/ (packaging/build-packages.sh).
# Usage: scripts/dev.sh run|test|package
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

mode=${1:-}
case "$mode" in
run | test | package) ;;
*)
    echo "usage: $0 run|test|package" >&2
    exit 2
    ;;
esac

# Build, runtime and test dependencies, all from Debian's archive.
packages=(
    build-essential cmake pkg-config
    libevent-dev libhiredis-dev libcurl4-openssl-dev libvips-dev libmagic-dev
    libjansson-dev libinih-dev libssl-dev libcmocka-dev liblcms2-dev libhttp-parser-dev
    redis-server libvips-tools
    python3 python3-pytest python3-pytest-timeout python3-requests python3-pil python3-aiosmtpd
    python3-redis
    clang libclang-rt-14-dev
    dpkg-dev rpm lintian systemd man-db groff-base file adduser init-system-helpers
)

install_missing() {
    local missing=() p status
    for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
        [ "$status" = installed ] || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}"
}

build() {
    cmake -S . -B build
    cmake --build build -j"$(nproc)"
}

# The development config: the shipped file with pid_file, runtime_dir,
# redis.data_dir under build/dev/ and user empty (keep the invoking user).
dev_config() {
    local dev="$top/build/dev"
    mkdir -p "$dev/run" "$dev/data"
    awk -v dev="$dev" '
        function set(key, value) {
            if ($0 !~ "^[ \t]*" key "[ \t]*=") return 0
            print (value == "" ? key " =" : key " = " value)
            done[section "." key] = 1
            return 1
        }
        /^[ \t]*\[/ { section = $0; gsub(/[][ \t]/, "", section) }
        section == "daemon" && set("user", "") { next }
        section == "daemon" && set("pid_file", dev "/run/thumbnailed.pid") { next }
        section == "daemon" && set("runtime_dir", dev "/run") { next }
        section == "redis" && set("data_dir", dev "/data") { next }
        { print }
        END {
            n = split("daemon.user daemon.pid_file daemon.runtime_dir redis.data_dir", want, " ")
            for (i = 1; i <= n; i++) {
                if (!(want[i] in done)) {
                    print "dev.sh: no " want[i] " in etc/thumbnailed.conf" > "/dev/stderr"
                    exit 1
                }
            }
        }
    ' etc/thumbnailed.conf >"$dev/thumbnailed.conf" || return 1
    echo "$dev/thumbnailed.conf"
}

install_missing
if [ "$mode" = package ]; then
    exec packaging/build-packages.sh "$top" "$top/build-pkg"
fi
build

case "$mode" in
run)
    conf=$(dev_config)
    build/thumbnailed -t -c "$conf"
    echo "dev.sh: starting thumbnailed on $conf (Ctrl-C stops it)" >&2
    exec build/thumbnailed -f -c "$conf"
    ;;
test)
    # -V: every test's own report (cmocka and pytest counts), not only the failures.
    status=0
    ctest --test-dir build -V --output-on-failure || status=1
    # Then the libFuzzer harnesses (fuzz/README.md): a clang build of their own and
    # a bounded run of each, side by side.
    if CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
        cmake --build build-fuzz -j"$(nproc)" --target fuzzers; then
        ctest --test-dir build-fuzz -R '^fuzz\.' -j2 -V --output-on-failure || status=1
    else
        echo "dev.sh: the fuzz build failed" >&2
        status=1
    fi
    exit $status
    ;;
esac
