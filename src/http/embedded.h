/* embedded.h — files compiled into the binary (embed_files.cmake): the
 * dashboard's page and scripts, the OpenAPI document, Swagger UI. */
#ifndef TH_HTTP_EMBEDDED_H
#define TH_HTTP_EMBEDDED_H

#include <stddef.h>

/* One file: its name (a path relative to its folder, "app.js") and its
 * bytes [data, end) (followed by a NUL that is not part of them). A table
 * ends with an entry whose name is NULL. */
struct embedded_file {
    const char *name;
    const unsigned char *data;
    const unsigned char *end;
};

#endif
