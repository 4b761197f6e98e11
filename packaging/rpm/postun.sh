# %postun ($1: 0 erase, 1 upgrade) — reload systemd; an upgrade restarts a
# running daemon on the new binary. RPM has no purge: /var/lib/thumbnailed
# (the jobs and thumbnails), an edited configuration (.rpmsave) and the user
# stay after an erase; remove them by hand if wanted.
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart thumbnailed.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    rm -rf /run/thumbnailed
fi
exit 0
