# %pre ($1: 1 install, 2 upgrade) — the thumbnailed system user and group,
# before the files (the configuration belongs to group thumbnailed).
getent group thumbnailed >/dev/null || groupadd -r thumbnailed
getent passwd thumbnailed >/dev/null ||
    useradd -r -g thumbnailed -d /var/lib/thumbnailed -M -s /sbin/nologin \
        -c "thumbnailed daemon" thumbnailed
exit 0
