#!/usr/bin/env bash
# build-packages.sh SOURCE_DIR BUILD_DIR — the .deb and .rpm: a build installed
# under /usr with Debian's hardening flags (dpkg-buildflags), packed by CPack.
# Prints the paths of the two packages.
set -euo pipefail

src=${1:?usage: build-packages.sh SOURCE_DIR BUILD_DIR}
out=${2:?usage: build-packages.sh SOURCE_DIR BUILD_DIR}

export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS LDFLAGS
# A build of its own: CMAKE_BUILD_TYPE None takes the flags above as they are
# (as Debian's own packages do); no tests, no fuzzers. Swagger UI (/docs, in
# the binary) comes from npm ci into BUILD_DIR, or from $SWAGGER_UI_DIR when
# that is set (a folder with swagger-ui-bundle.js: an offline build).
cmake --fresh -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=None -DCMAKE_INSTALL_PREFIX=/usr \
    -DBUILD_TESTING=OFF -DFUZZ=OFF -DSANITIZE=OFF ${SWAGGER_UI_DIR:+-DSWAGGER_UI_DIR="$SWAGGER_UI_DIR"} \
    >/dev/null
cmake --build "$out" -j"$(nproc)" --target thumbnailed man changelog
rm -f "$out"/thumbnailed_*.deb "$out"/thumbnailed-*.rpm
(cd "$out" && cpack -G "DEB;RPM" >/dev/null 2>"$out/cpack.log") || { cat "$out/cpack.log" >&2; exit 1; }
ls "$out"/thumbnailed_*.deb "$out"/thumbnailed-*.rpm
