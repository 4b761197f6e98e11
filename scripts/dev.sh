#!/usr/bin/env bash
# dev.sh — install what is missing (Debian 12), build into build/, then
#   run:  start thumbnailed in the foreground on a development config
#         (etc/thumbnailed.conf with only paths and user changed), or
#   test: run the whole test suite (ctest: unit + integration + packaging), then
#         build the fuzz harnesses with clang into build-fuzz/ and run each briefly;
#   demo: the same daemon, plus a loopback image source and callback receiver
#         (scripts/demo_peer.py) it is allowed to reach; submits a URL job and
#         a callback job and prints where to look;
#   package: build the .deb and .rpm into build-pkg/ (packaging/build-packages.sh).
# Usage: scripts/dev.sh run|demo|test|package
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

mode=${1:-}
case "$mode" in
run | demo | test | package) ;;
*)
    echo "usage: $0 run|demo|test|package" >&2
    exit 2
    ;;
esac

# Build, runtime and test dependencies, all from Debian's archive.
packages=(
    build-essential cmake pkg-config
    libevent-dev libhiredis-dev libcurl4-openssl-dev libvips-dev libmagic-dev
    libjansson-dev libinih-dev libexpat1-dev libssl-dev libcmocka-dev liblcms2-dev
    libhttp-parser-dev redis-server libvips-tools curl
    python3 python3-pytest python3-pytest-timeout python3-requests python3-pil python3-aiosmtpd
    python3-redis python3-jsonschema python3-websocket chromium
    plasma-workspace-wallpapers
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

# Node.js and npm: npm ci installs Swagger UI at build time and the OpenAPI
# validator for the tests (src/http/docs, tests/openapi). A machine that has
# them (NodeSource's nodejs carries its npm) keeps its own; on one without,
# Debian's nodejs and npm are installed with the rest (Node.js 18 is enough).
need_node() {
    command -v node >/dev/null && command -v npm >/dev/null && return 0
    packages+=(nodejs npm)
}

check_node() {
    local tool
    for tool in node npm; do
        if ! command -v "$tool" >/dev/null; then
            echo "dev.sh: $tool is needed (Node.js with npm) for /docs and the OpenAPI checks;" \
                "or build with -DSWAGGER_UI_DIR=<dir> -DBUILD_TESTING=OFF" >&2
            exit 1
        fi
    done
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

# The demo's config: the development one, with the loopback peer allowed as a
# source and as a callback receiver, and a callback secret.
demo_config() {
    local conf=$1 peer=$2 secret=$3
    awk -v peer="127.0.0.1:$peer" -v secret="$secret" '
        /^[ \t]*\[/ { section = $0; gsub(/[][ \t]/, "", section) }
        section == "fetch" && /^allow_hosts[ \t]*=/ { print "allow_hosts = " peer; next }
        section == "callback" && /^allow_hosts[ \t]*=/ { print "allow_hosts = " peer; next }
        section == "callback" && /^secret[ \t]*=/ { print "secret = " secret; next }
        { print }
    ' "$conf" >"$conf.demo" && mv "$conf.demo" "$conf"
}

# Submits a job (JSON body $2) to the daemon at $1 and prints its id.
demo_submit() {
    curl -sS "$1/v1/thumbnails" -H 'Content-Type: application/json' -d "$2" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

demo() {
    local conf dir=build/dev/demo base=http://127.0.0.1:8080 port=8081 secret i
    conf=$(dev_config)
    secret="whsec_$(openssl rand -base64 24)"
    demo_config "$conf" "$port" "$secret"
    mkdir -p "$dir"
    vips gaussnoise "$dir/noise.jpg" 1600 1000 --mean 128 --sigma 60
    build/thumbnailed -t -c "$conf" >/dev/null
    /usr/bin/python3 scripts/demo_peer.py "$dir" "$port" "$secret" &
    local peer_pid=$!
    build/thumbnailed -f -c "$conf" 2>"$dir/thumbnailed.log" &
    local pid=$!
    trap 'kill $pid $peer_pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
    trap 'exit 0' INT TERM
    for i in $(seq 1 100); do
        curl -sf "$base/readyz" >/dev/null && break
        kill -0 $pid 2>/dev/null || { cat "$dir/thumbnailed.log" >&2; exit 1; }
        sleep 0.1
    done
    local a b
    a=$(demo_submit "$base" "{\"url\": \"http://127.0.0.1:$port/noise.jpg\", \"width\": 320, \"format\": \"webp\"}")
    b=$(demo_submit "$base" "{\"url\": \"http://127.0.0.1:$port/noise.jpg\", \"width\": 128, \"height\": 128, \"fit\": \"cover\", \"callback_url\": \"http://127.0.0.1:$port/hook\"}")
    for i in "$a" "$b"; do
        curl -sS "$base/v1/thumbnails/$i?wait=10" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
e = d.get("error")
print("demo: job", d["id"], d["status"], "(%s: %s)" % (e["code"], e["message"]) if e else "")'
    done
    sleep 1 # the callback's delivery
    cat <<EOT

thumbnailed is running on $base with config $conf
  (its log: $dir/thumbnailed.log; source images and callbacks: 127.0.0.1:$port)

  dashboard:      $base/dashboard
  API described:  $base/docs   ($base/openapi.json)
  a URL job:      curl -s $base/v1/thumbnails/$a
  its thumbnail:  curl -s -o thumb.webp $base/v1/thumbnails/$a/image
  callback job:   curl -s $base/v1/thumbnails/$b   (its "callback" object says it was delivered)

Ctrl-C stops it.
EOT
    wait $pid
}

need_node
install_missing
check_node
if [ "$mode" = package ]; then
    exec packaging/build-packages.sh "$top" "$top/build-pkg"
fi
build

case "$mode" in
demo)
    demo
    ;;
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
    # Swagger UI as the main build installed it (no second npm ci).
    if CC=clang cmake -S . -B build-fuzz -DFUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSWAGGER_UI_DIR="$top/build/src/http/swagger-ui/node_modules/swagger-ui-dist" &&
        cmake --build build-fuzz -j"$(nproc)" --target fuzzers; then
        ctest --test-dir build-fuzz -R '^fuzz\.' -j2 -V --output-on-failure || status=1
    else
        echo "dev.sh: the fuzz build failed" >&2
        status=1
    fi
    exit $status
    ;;
esac
