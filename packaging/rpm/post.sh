# %post ($1: 1 install, 2 upgrade) — the state and runtime directories; the
# unit enabled on a first install when systemd runs (started by the admin,
# as is usual for RPM-based systems).
install -d -o thumbnailed -g thumbnailed -m 0750 /var/lib/thumbnailed /run/thumbnailed
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable thumbnailed.service >/dev/null 2>&1 || :
    fi
fi
exit 0
