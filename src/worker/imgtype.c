/* imgtype.c — libmagic detection and the allowed-type check. */
#include "imgtype.h"
#include "config.h"
#include "log.h"

#include <magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imgtype {
    magic_t magic;
};

struct imgtype *imgtype_open(void) {
    struct imgtype *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    /* Content checks only: no decompression, no archive or executable parsers. */
    int flags = MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_TAR |
                MAGIC_NO_CHECK_ELF | MAGIC_NO_CHECK_CDF;
    t->magic = magic_open(flags);
    if (t->magic == NULL) {
        log_error("imgtype: magic_open failed");
        free(t);
        return NULL;
    }
    if (magic_load(t->magic, NULL) != 0) {
        log_error("imgtype: cannot load the magic database: %s", magic_error(t->magic));
        magic_close(t->magic);
        free(t);
        return NULL;
    }
    return t;
}

void imgtype_close(struct imgtype *t) {
    if (t == NULL)
        return;
    magic_close(t->magic);
    free(t);
}

int imgtype_check(struct imgtype *t, const void *buf, size_t len, const char *allowed,
                  char mime[IMGTYPE_MIME_MAX], struct failure *err) {
    mime[0] = '\0';
    if (len == 0)
        return failure_set(err, "unsupported_type", "empty source: 0 bytes is not an image");
    const char *raw = magic_buffer(t->magic, buf, len);
    if (raw == NULL)
        return failure_set(err, "unsupported_type", "the source's type cannot be detected: %s",
                           magic_error(t->magic) ? magic_error(t->magic) : "unknown error");
    snprintf(mime, IMGTYPE_MIME_MAX, "%s", config_mime_canonical(raw));
    if (!config_list_contains(allowed, mime))
        return failure_set(err, "unsupported_type",
                           "the source is %s, which is not an allowed image type (allowed: %s)",
                           mime, allowed);
    return 0;
}
