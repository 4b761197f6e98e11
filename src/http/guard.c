/* guard.c — the client's address, API keys, rate limits and the /metrics
 * allow-list. Keys are compared in constant time. */
#include "guard.h"
#include "request.h"
#include "respond.h"

#include "log.h"
#include "ratelimit.h"
#include "clients.h"
#include "segment.h"
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX      256
#define KEY_NAME_MAX 64

/* One API key of http.api_keys_file. */
struct guard_key {
    char *key;
    char name[KEY_NAME_MAX + 1];        /* shown in logs instead of the key */
    char owner[EXCHANGE_OWNER_LEN + 1]; /* what its jobs are stored under */
};

/* The owner of key: hex of the first 128 bits of its SHA-256 (the key itself
 * is never stored with a job). */
static int owner_of(const char *key, char out[EXCHANGE_OWNER_LEN + 1]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (SHA256((const unsigned char *)key, strlen(key), md) == NULL)
        return -1;
    for (int i = 0; i < EXCHANGE_OWNER_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static bool name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > KEY_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

static void free_keys(struct guard_key *keys, size_t n) {
    for (size_t i = 0; i < n; i++) {
        OPENSSL_cleanse(keys[i].key, strlen(keys[i].key));
        free(keys[i].key);
    }
    free(keys);
}

/* Frees the keys c holds. */
static void drop_keys(struct http_child *c) {
    free_keys(c->api_keys, c->napi_keys);
    c->api_keys = NULL;
    c->napi_keys = 0;
    free_keys(c->admin_keys, c->nadmin_keys);
    c->admin_keys = NULL;
    c->nadmin_keys = 0;
}

/* Parses one line ("key" or "name key") into k. Returns 1 with a key, 0 for a
 * line without one, -1 for a bad line (logged). */
static int parse_line(const char *path, int lineno, char *line, struct guard_key *k) {
    char *fields[3] = {NULL, NULL, NULL};
    int n = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t", &save); t && n < 3;
         t = strtok_r(NULL, " \t", &save))
        fields[n++] = t;
    if (n == 0 || fields[0][0] == '#')
        return 0;
    if (n == 3) {
        log_warn("%s:%d: a line is \"key\" or \"name key\", skipped", path, lineno);
        return -1;
    }
    const char *key = n == 2 ? fields[1] : fields[0];
    if (n == 2 && !name_ok(fields[0])) {
        log_warn("%s:%d: a key's name is 1 to %d of [A-Za-z0-9._-], skipped", path, lineno,
                 KEY_NAME_MAX);
        return -1;
    }
    memset(k, 0, sizeof(*k));
    if (owner_of(key, k->owner) < 0 || (k->key = strdup(key)) == NULL)
        return -1;
    if (n == 2)
        snprintf(k->name, sizeof(k->name), "%s", fields[0]);
    else
        snprintf(k->name, sizeof(k->name), "key-%.8s", k->owner);
    return 1;
}

/* Reads the keys file path (of the config key named what) into out and nout. Returns 0,
 * or -1 when it cannot be read or holds no key (logged). */
static int read_keys(const char *what, const char *path, struct guard_key **out, size_t *nout) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        log_error("%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    struct guard_key *keys = NULL;
    size_t n = 0;
    char line[KEY_MAX + KEY_NAME_MAX + 8];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] != '\n' && !feof(f)) {
            log_warn("%s:%d: line longer than %zu characters, skipped", path, lineno,
                     sizeof(line) - 2);
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
            continue;
        }
        line[strcspn(line, "\r\n")] = '\0';
        struct guard_key k;
        if (parse_line(path, lineno, line, &k) <= 0)
            continue;
        if (strlen(k.key) > KEY_MAX) {
            log_warn("%s:%d: key longer than %d characters, skipped", path, lineno, KEY_MAX);
            OPENSSL_cleanse(k.key, strlen(k.key));
            free(k.key);
            continue;
        }
        struct guard_key *grown = realloc(keys, (n + 1) * sizeof(*keys));
        if (grown == NULL) {
            OPENSSL_cleanse(k.key, strlen(k.key));
            free(k.key);
            break;
        }
        keys = grown;
        keys[n++] = k;
    }
    fclose(f);
    OPENSSL_cleanse(line, sizeof(line));
    if (n == 0) {
        log_error("%s %s holds no key: every request it guards would be refused", what, path);
        free(keys);
        return -1;
    }
    *out = keys;
    *nout = n;
    return 0;
}

int guard_load_keys(struct http_child *c) {
    const char *api = c->cfg->http_api_keys_file, *admin = c->cfg->http_admin_keys_file;
    struct guard_key *keys = NULL, *akeys = NULL;
    size_t n = 0, an = 0;
    if (api[0] != '\0' && read_keys("http.api_keys_file", api, &keys, &n) < 0)
        return -1;
    if (admin[0] != '\0' && read_keys("http.admin_keys_file", admin, &akeys, &an) < 0) {
        free_keys(keys, n);
        return -1;
    }
    drop_keys(c);
    c->api_keys = keys;
    c->napi_keys = n;
    c->admin_keys = akeys;
    c->nadmin_keys = an;
    log_debug("%zu API key(s), %zu admin key(s) loaded", n, an);
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
    drop_keys(c);
    cidr_list_free(&c->trusted_proxies);
    cidr_list_free(&c->metrics_allow);
}

void guard_identify(struct exchange *h) {
    struct http_child *c = h->child;
    const char *peer = h->conn ? conn_peer(h->conn) : NULL;
    char *xff = NULL;
    if (c->trusted_proxies.n > 0 && h->conn)
        xff = request_forwarded_for(conn_request(h->conn));
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

/* The key of keys that matches, comparing every key fully (constant time per key). */
static const struct guard_key *known_key(const struct guard_key *keys, size_t n, const char *key,
                                         size_t len) {
    const struct guard_key *found = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t klen = strlen(keys[i].key);
        if (klen == len && CRYPTO_memcmp(keys[i].key, key, len) == 0)
            found = &keys[i];
    }
    return found;
}

/* The Bearer key of h among keys: answers 401 (none sent) or 403 (unknown)
 * and returns NULL, else the key. */
static const struct guard_key *bearer(struct exchange *h, const struct guard_key *keys, size_t n,
                                      const char *what) {
    const char *auth = exchange_header(h, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        exchange_set_header(h, "WWW-Authenticate", "Bearer");
        log_debug("%s: no %s key", h->client, what);
        respond_error(h, "unauthorized", NULL, 0,
                      "this %s needs a key: send Authorization: Bearer <key>", what);
        return NULL;
    }
    const char *key = auth + 7;
    size_t len = strlen(key);
    const struct guard_key *k = len > KEY_MAX ? NULL : known_key(keys, n, key, len);
    if (k == NULL) {
        log_debug("%s: an unknown %s key", h->client, what);
        respond_error(h, "forbidden", NULL, 0, "this %s key is not valid", what);
    }
    return k;
}

/* Whether addr (IPv4 as ::ffff:a.b.c.d) is a loopback address. */
static bool is_loopback(const unsigned char a[16]) {
    static const unsigned char v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return (memcmp(a, v4, 12) == 0 && a[12] == 127) || memcmp(a, v6, 16) == 0;
}

bool guard_admin(struct exchange *h, bool page) {
    struct http_child *c = h->child;
    if (c->admin_keys == NULL) {
        if (h->client_is_ip && is_loopback(h->client_addr))
            return true;
        log_warn("%s refused to %s: without http.admin_keys_file only loopback clients may use it",
                 page ? "the dashboard" : "the admin API", h->client);
        respond_error(h, "forbidden", NULL, 0,
                      "the admin API and the dashboard answer only loopback clients while "
                      "http.admin_keys_file is empty: reach them through an SSH tunnel, or set "
                      "admin keys");
        return false;
    }
    if (page)
        return true; /* the page holds no data; it asks for a key */
    const struct guard_key *k = bearer(h, c->admin_keys, c->nadmin_keys, "admin API");
    if (k == NULL)
        return false;
    snprintf(h->client_name, sizeof(h->client_name), "%s", k->name);
    return true;
}

void guard_count(const struct exchange *h, enum guard_event what) {
    struct http_child *c = h->child;
    if (c->api_keys == NULL || c->shm == NULL || h->client_name[0] == '\0')
        return; /* per key only: addresses are too many to count each */
    struct shm_client *e = shm_clients_get(&c->shm->hdr->clients, h->client_name);
    switch (what) {
    case GUARD_SUBMIT:
        atomic_fetch_add(&e->submits, 1);
        break;
    case GUARD_RATE_LIMITED:
        atomic_fetch_add(&e->rate_limited, 1);
        break;
    case GUARD_TOO_MANY_QUEUED:
        atomic_fetch_add(&e->too_many_queued, 1);
        break;
    }
}

bool guard_allows_reply(const struct exchange *h, const redisReply *reply) {
    if (h->owner[0] == '\0' || reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return true;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && k->len == 5 && memcmp(k->str, "owner", 5) == 0)
            return v->type == REDIS_REPLY_STRING && v->len == EXCHANGE_OWNER_LEN &&
                   memcmp(v->str, h->owner, EXCHANGE_OWNER_LEN) == 0;
    }
    return true; /* a job stored before jobs had owners */
}

bool guard_check(struct exchange *h) {
    struct http_child *c = h->child;
    char who[KEY_MAX + 8];
    if (c->api_keys) {
        const struct guard_key *k = bearer(h, c->api_keys, c->napi_keys, "API");
        if (k == NULL)
            return false;
        memcpy(h->owner, k->owner, sizeof(h->owner));
        snprintf(h->client_name, sizeof(h->client_name), "%s", k->name);
        snprintf(who, sizeof(who), "k:%s", k->owner);
    } else {
        snprintf(who, sizeof(who), "a:%s", h->client);
        snprintf(h->client_name, sizeof(h->client_name), "%s", h->client);
    }
    if (c->cfg->http_rate_limit > 0 && c->shm) {
        double rate = (double)c->cfg->http_rate_limit;
        int wait = ratelimit_take(shm_segment_ratelimit(c->shm), who, rate, rate, units_mono_ms());
        if (wait > 0) {
            guard_count(h, GUARD_RATE_LIMITED);
            log_debug("%s: rate limited for %d s", h->client_name, wait);
            respond_error(h, "rate_limited", NULL, wait,
                          "too many requests: at most %lld per second; try again in %d s",
                          (long long)c->cfg->http_rate_limit, wait);
            return false;
        }
    }
    return true;
}
