/* imgtype.h — what the source bytes really are (libmagic on the content, never a
 * declared Content-Type), as a canonical MIME type checked against the allowed list. */
#ifndef TH_IMGTYPE_H
#define TH_IMGTYPE_H

#include "failure.h"

#include <stddef.h>

#define IMGTYPE_MIME_MAX 128

struct imgtype; /* a loaded libmagic database */

/* Opens libmagic in MIME-type mode with the system database. Returns NULL (and
 * logs why) when the database cannot be loaded. Free with imgtype_close. */
struct imgtype *imgtype_open(void);

void imgtype_close(struct imgtype *t);

/* Detects the type of len bytes at buf into mime (canonical, e.g. image/heic
 * becomes image/heif) and checks it against allowed (space-separated types).
 * Returns 0, or -1 with err set to unsupported_type ("empty source" for zero
 * bytes); mime holds the detected type either way ("" when nothing was detected). */
int imgtype_check(struct imgtype *t, const void *buf, size_t len, const char *allowed,
                  char mime[IMGTYPE_MIME_MAX], struct failure *err);

#endif
