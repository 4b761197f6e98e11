#!/usr/bin/env bash
# run.sh — runs one libFuzzer harness for a bounded time over its corpora; the
# ctest fuzz.* tests call it, and so can a person (fuzz/README.md).
# Usage: fuzz/run.sh HARNESS WORKDIR SECONDS [-flag=value | DIR]...
# Inputs the fuzzer finds go to WORKDIR/corpus (the only corpus it writes),
# crashes to WORKDIR/artifacts/. DIRs that do not exist are skipped. Exits
# non-zero on any crash, leak, timeout or out-of-memory.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 HARNESS WORKDIR SECONDS [-flag=value | DIR]..." >&2
    exit 2
fi
harness=$1 work=$2 seconds=$3
shift 3

flags=() dirs=()
for a in "$@"; do
    case "$a" in
    -*) flags+=("$a") ;;
    *) [ -d "$a" ] && dirs+=("$a") ;;
    esac
done
mkdir -p "$work/corpus" "$work/artifacts"

# Our code is built with -fno-sanitize-recover=undefined; the stack makes a
# report usable. Settings given by the caller win.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

exec "$harness" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${flags[@]}" \
    "$work/corpus" "${dirs[@]}"
