#!/usr/bin/env bash
# Unpacks Debian's plasma-workspace-wallpapers (real photographs) into bench/photos/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest="$here/photos"
[ -d "$dest/usr/share/wallpapers" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download plasma-workspace-wallpapers >/dev/null)
mkdir -p "$dest"
dpkg -x "$tmp"/plasma-workspace-wallpapers_*.deb "$dest"
