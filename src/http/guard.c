/* guard.c — the client's address, API keys, rate limits and the /metrics
 * allow-list. Keys are compared in constant time. */
#include "guard.h"
#include "request.h"
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

static void free_keys(struct http_child *c) {
    for (size_t i = 0; i < c->napi_keys; i++) {
        OPENSSL_cleanse(c->api_keys[i], strlen(c->api_keys[i]));
        free(c->api_keys[i]);
    }
    free(c->api_keys);
    c->api_keys = NULL;
    c->napi_keys = 0;
}

int guard_load_keys(struct http_child *c) {
    const char *path = c->cfg->http_api_keys_file;
    if (path[0] == '\0') {
        free_keys(c);
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
    free_keys(c);
    c->api_keys = keys;
    c->napi_keys = n;
    log_debug("%zu API key(s) loaded", n);
    return 0;
}

int guard_load_lists(struct http_child *c) {
    char why[256];
    if (cidr_list_parse(&c->trusted_proxies, c->cfg->http_trusted_proxies, why, sizeof(why)) < 0) {
        log_error("http.trusted_proxies: %s", why);
        return -1;
    }
    if (cidr_list_parse(&c->metrics_allow, c->cfg->http_metrics_allow, why, sizeof(why)) < 0) {
        log_error("http.metrics_allow: %s", why);
        return -1;
    }
    return 0;
}

void guard_free(struct http_child *c) {
    free_keys(c);
    cidr_list_free(&c->trusted_proxies);
    cidr_list_free(&c->metrics_allow);
}

void guard_identify(struct exchange *h) {
    struct http_child *c = h->child;
    char *peer = NULL;
    ev_uint16_t port = 0;
    if (h->evcon)
        evhttp_connection_get_peer(h->evcon, &peer, &port);
    char *xff = NULL;
    if (c->trusted_proxies.n > 0 && h->req)
        xff = request_forwarded_for(evhttp_request_get_input_headers(h->req));
    h->client_is_ip = request_client_address(peer, xff, &c->trusted_proxies, h->client_addr) == 0;
    free(xff);
    if (h->client_is_ip)
        cidr_addr_text(h->client_addr, h->client, sizeof(h->client));
    else
        snprintf(h->client, sizeof(h->client), "%s", peer && *peer ? peer : "unix");
}

bool guard_metrics(struct exchange *h) {
    struct http_child *c = h->child;
    if (c->metrics_allow.n == 0 ||
        (h->client_is_ip && cidr_list_match(&c->metrics_allow, h->client_addr)))
        return true;
    log_warn("/metrics refused to %s: not in http.metrics_allow", h->client);
    respond_error(h, "forbidden", NULL, 0, "this client may not read the metrics");
    return false;
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
            log_debug("%s: no API key", h->client);
            respond_error(h, "unauthorized", NULL, 0,
                          "this API needs a key: send Authorization: Bearer <key>");
            return false;
        }
        const char *key = auth + 7;
        size_t len = strlen(key);
        if (len > KEY_MAX || !known_key(c, key, len)) {
            log_debug("%s: an unknown API key", h->client);
            respond_error(h, "forbidden", NULL, 0, "this API key is not valid");
            return false;
        }
        snprintf(who, sizeof(who), "k:%s", key);
    } else {
        snprintf(who, sizeof(who), "a:%s", h->client);
    }
    if (c->cfg->http_rate_limit > 0 && c->shm) {
        double rate = (double)c->cfg->http_rate_limit;
        int wait = ratelimit_take(shm_segment_ratelimit(c->shm), who, rate, rate, units_mono_ms());
        if (wait > 0) {
            log_debug("%s: rate limited for %d s", h->client, wait);
            respond_error(h, "rate_limited", NULL, wait,
                          "too many requests: at most %lld per second; try again in %d s",
                          (long long)c->cfg->http_rate_limit, wait);
            return false;
        }
    }
    return true;
}
