/* guard.c — API keys and rate limits. Keys are compared in constant time. */
#include "guard.h"
#include "respond.h"

#include "log.h"
#include "ratelimit.h"
#include "segment.h"
#include "units.h"

#include <errno.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 256

int guard_load_keys(struct http_child *c) {
    const char *path = c->cfg->http_api_keys_file;
    if (path[0] == '\0') {
        guard_free(c);
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        log_error("http.api_keys_file %s: %s", path, strerror(errno));
        return -1;
    }
    char **keys = NULL;
    size_t n = 0;
    char line[KEY_MAX + 4];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] != '\n' && !feof(f)) {
            log_warn("%s:%d: key longer than %d characters, skipped", path, lineno, KEY_MAX);
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                       line[len - 1] == '\t'))
            line[--len] = '\0';
        char *k = line + strspn(line, " \t");
        if (*k == '\0' || *k == '#')
            continue;
        if (strpbrk(k, " \t")) {
            log_warn("%s:%d: a key may not contain blanks, skipped", path, lineno);
            continue;
        }
        char **grown = realloc(keys, (n + 1) * sizeof(*keys));
        if (grown == NULL || (grown[n] = strdup(k)) == NULL) {
            keys = grown ? grown : keys;
            break;
        }
        keys = grown;
        n++;
    }
    fclose(f);
    if (n == 0) {
        log_error("http.api_keys_file %s holds no key: every request would be refused", path);
        free(keys);
        return -1;
    }
    guard_free(c);
    c->api_keys = keys;
    c->napi_keys = n;
    log_debug("%zu API key(s) loaded", n);
    return 0;
}

void guard_free(struct http_child *c) {
    for (size_t i = 0; i < c->napi_keys; i++) {
        OPENSSL_cleanse(c->api_keys[i], strlen(c->api_keys[i]));
        free(c->api_keys[i]);
    }
    free(c->api_keys);
    c->api_keys = NULL;
    c->napi_keys = 0;
}

/* Whether key is one of ours, comparing every key fully (constant time per key). */
static bool known_key(const struct http_child *c, const char *key, size_t len) {
    bool found = false;
    for (size_t i = 0; i < c->napi_keys; i++) {
        size_t klen = strlen(c->api_keys[i]);
        if (klen == len && CRYPTO_memcmp(c->api_keys[i], key, len) == 0)
            found = true;
    }
    return found;
}

bool guard_check(struct exchange *h) {
    struct http_child *c = h->child;
    char who[KEY_MAX + 8];
    if (c->api_keys) {
        const char *auth =
            evhttp_find_header(evhttp_request_get_input_headers(h->req), "Authorization");
        if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
            evhttp_add_header(evhttp_request_get_output_headers(h->req), "WWW-Authenticate",
                              "Bearer");
            respond_error(h, "unauthorized", NULL, 0,
                          "this API needs a key: send Authorization: Bearer <key>");
            return false;
        }
        const char *key = auth + 7;
        size_t len = strlen(key);
        if (len > KEY_MAX || !known_key(c, key, len)) {
            respond_error(h, "forbidden", NULL, 0, "this API key is not valid");
            return false;
        }
        snprintf(who, sizeof(who), "k:%s", key);
    } else {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(h->evcon, &addr, &port);
        snprintf(who, sizeof(who), "a:%s", addr ? addr : "?");
    }
    if (c->cfg->http_rate_limit > 0 && c->shm) {
        double rate = (double)c->cfg->http_rate_limit;
        int wait = ratelimit_take(shm_segment_ratelimit(c->shm), who, rate, rate, units_mono_ms());
        if (wait > 0) {
            respond_error(h, "rate_limited", NULL, wait,
                          "too many requests: at most %lld per second; try again in %d s",
                          (long long)c->cfg->http_rate_limit, wait);
            return false;
        }
    }
    return true;
}
