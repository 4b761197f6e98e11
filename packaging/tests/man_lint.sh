#!/usr/bin/env bash
# man.lint: the man pages render without a single warning from groff (-ww)
# or man-db. Usage: man_lint.sh PAGE...
set -euo pipefail
status=0
for page in "$@"; do
    out=$( (groff -ww -z -man "$page" && LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 \
        -l "$page" >/dev/null) 2>&1) || status=1
    if [ -n "$out" ]; then
        printf '%s:\n%s\n' "$page" "$out"
        status=1
    else
        echo "ok   $page"
    fi
done
exit $status
