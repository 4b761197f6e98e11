/* static_files.c — files compiled into the binary, served with their type,
 * an ETag of their bytes, and a Content-Security-Policy. */
#include "static_files.h"
#include "request.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* The ETags computed so far in this process, by file. A handful of files,
 * each hashed once. */
#define ETAG_SLOTS 64
static struct {
    const struct embedded_file *file;
    char etag[35]; /* "<32 hex>" with the quotes */
} etags[ETAG_SLOTS];

static const char *etag_of(const struct embedded_file *f) {
    int free_slot = -1;
    for (int i = 0; i < ETAG_SLOTS; i++) {
        if (etags[i].file == f)
            return etags[i].etag;
        if (etags[i].file == NULL && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(f->data, (size_t)(f->end - f->data), md, &n, EVP_sha256(), NULL) != 1 || n < 16)
        return NULL;
    char *e = etags[free_slot].etag;
    e[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(e + 1 + 2 * i, 3, "%02x", md[i]);
    e[33] = '"';
    e[34] = '\0';
    etags[free_slot].file = f;
    return e;
}

const struct embedded_file *static_files_find(const struct embedded_file *table, const char *name) {
    for (const struct embedded_file *f = table; f && f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

const char *static_files_type(const char *name) {
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

void static_files_send(struct exchange *h, const struct embedded_file *f, const char *csp) {
    const char *etag = etag_of(f);
    exchange_set_header(h, "Cache-Control", "no-cache");
    exchange_set_header(h, "X-Content-Type-Options", "nosniff");
    if (csp)
        exchange_set_header(h, "Content-Security-Policy", csp);
    if (etag)
        exchange_set_header(h, "ETag", etag);
    const char *inm = exchange_header(h, "If-None-Match");
    if (etag && inm) {
        char bare[33];
        memcpy(bare, etag + 1, 32);
        bare[32] = '\0';
        if (request_etag_matches(inm, bare)) {
            exchange_send(h, 304);
            exchange_settle(h);
            return;
        }
    }
    exchange_set_header(h, "Content-Type", static_files_type(f->name));
    evbuffer_add_reference(exchange_body_out(h), f->data, (size_t)(f->end - f->data), NULL, NULL);
    exchange_send(h, 200);
    exchange_settle(h);
}
