#!/usr/bin/env bash
# package.lintian: lintian on the .deb fails on any error; every tag it
# reports (warnings, info, pedantic) is printed. Usage: package_lintian.sh PACKAGE_DIR
set -euo pipefail
debs=("$1"/thumbnailed_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || {
    echo "package.lintian: expected one .deb in $1" >&2
    exit 1
}
timeout 300 lintian --fail-on error --display-info --pedantic "${debs[0]}" 2>&1 |
    grep -v 'running with root privileges is not recommended' || true
# The pipeline above hides lintian's status: run it again for the verdict.
timeout 300 lintian --fail-on error "${debs[0]}" >/dev/null 2>&1
echo "package.lintian: no errors"
