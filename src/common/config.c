/* config.c — a table of every key (section, name, type, range, default) drives
 * defaults, parsing, validation and the key listing. libinih reads the file. */
#include "config.h"
#include "cidr.h"
#include "hostlist.h"
#include "webhook.h"
#include "log.h"
#include "units.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_type { K_STR, K_INT, K_SIZE, K_COUNT, K_DURATION, K_BOOL, K_ENUM };

typedef int (*str_check_fn)(const char *value, char *why, size_t whylen);

struct key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    int64_t min, max;         /* numeric range, inclusive */
    const char *def;          /* default, in the file's own syntax */
    const char *const *enums; /* K_ENUM: names, index = stored value */
    str_check_fn check;       /* K_STR: extra validation of non-empty values */
};

static int check_listen(const char *v, char *why, size_t n);
static int check_log_target(const char *v, char *why, size_t n);
static int check_redis_url(const char *v, char *why, size_t n);
static int check_sentinels(const char *v, char *why, size_t n);
static int check_types(const char *v, char *why, size_t n);
static int check_secrets(const char *v, char *why, size_t n);
static int check_schedule(const char *v, char *why, size_t n);
static int check_prefix(const char *v, char *why, size_t n);
static int check_absolute(const char *v, char *why, size_t n);
static int check_smtp_url(const char *v, char *why, size_t n);
static int check_allow_hosts(const char *v, char *why, size_t n);
static int check_deny_hosts(const char *v, char *why, size_t n);
static int check_domains(const char *v, char *why, size_t n);
static int check_cidrs(const char *v, char *why, size_t n);
static int check_http_url(const char *v, char *why, size_t n);
static int check_bucket(const char *v, char *why, size_t n);
static int check_object_prefix(const char *v, char *why, size_t n);
static int check_region(const char *v, char *why, size_t n);
static int check_credential(const char *v, char *why, size_t n);

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const redis_modes[] = {"embedded", "external", "sentinel", NULL};
static const char *const storage_backends[] = {"redis", "s3", NULL};
static const char *const storage_expiries[] = {"delete", "lifecycle", NULL};

#define OFF(f) offsetof(struct config, f)
#define MS(x)  ((int64_t)(x))
#define DAY    MS(86400000)

static const struct key keys[] = {
    {"daemon", "user", K_STR, OFF(user), 0, 0, "thumbnailed", NULL, NULL},
    {"daemon", "pid_file", K_STR, OFF(pid_file), 0, 0, "/run/thumbnailed/thumbnailed.pid", NULL,
     check_absolute},
    {"daemon", "runtime_dir", K_STR, OFF(runtime_dir), 0, 0, "/run/thumbnailed", NULL,
     check_absolute},
    {"daemon", "log_level", K_ENUM, OFF(log_level), 0, 0, "info", log_levels, NULL},
    {"daemon", "log_target", K_STR, OFF(log_target), 0, 0, "stderr", NULL, check_log_target},
    {"daemon", "stop_timeout", K_DURATION, OFF(stop_timeout), 0, DAY, "30s", NULL, NULL},

    {"http", "listen", K_STR, OFF(http_listen), 0, 0, "127.0.0.1:8080", NULL, check_listen},
    {"http", "processes", K_INT, OFF(http_processes), 1, 256, "2", NULL, NULL},
    {"http", "max_body", K_SIZE, OFF(http_max_body), 1024, 1LL << 30, "20M", NULL, NULL},
    {"http", "max_header", K_SIZE, OFF(http_max_header), 1024, 1LL << 20, "16K", NULL, NULL},
    {"http", "timeout", K_DURATION, OFF(http_timeout), 100, 3600000, "30s", NULL, NULL},
    {"http", "max_connections", K_INT, OFF(http_max_connections), 1, 1000000, "1024", NULL, NULL},
    {"http", "max_connections_per_client", K_INT, OFF(http_max_connections_per_client), 0, 1000000,
     "128", NULL, NULL},
    {"http", "api_keys_file", K_STR, OFF(http_api_keys_file), 0, 0, "", NULL, check_absolute},
    {"http", "admin_keys_file", K_STR, OFF(http_admin_keys_file), 0, 0, "", NULL, check_absolute},
    {"http", "rate_limit", K_INT, OFF(http_rate_limit), 0, 1000000, "0", NULL, NULL},
    {"http", "max_queued_per_client", K_INT, OFF(http_max_queued_per_client), 0, 100000000, "1000",
     NULL, NULL},
    {"http", "trusted_proxies", K_STR, OFF(http_trusted_proxies), 0, 0, "", NULL, check_cidrs},
    {"http", "metrics_allow", K_STR, OFF(http_metrics_allow), 0, 0, "", NULL, check_cidrs},

    {"worker", "processes", K_INT, OFF(worker_processes), 0, 1024, "auto", NULL, NULL},
    {"worker", "job_timeout", K_DURATION, OFF(worker_job_timeout), 1000, DAY, "60s", NULL, NULL},
    {"worker", "max_attempts", K_INT, OFF(worker_max_attempts), 1, 100, "5", NULL, NULL},
    {"worker", "max_memory", K_SIZE, OFF(worker_max_memory), 64LL << 20, 1LL << 40, "1G", NULL,
     NULL},
    {"worker", "retry_delay", K_DURATION, OFF(worker_retry_delay), 10, 3600000, "1s", NULL, NULL},
    {"worker", "retry_max_delay", K_DURATION, OFF(worker_retry_max_delay), 10, DAY, "5m", NULL,
     NULL},

    {"fetch", "timeout", K_DURATION, OFF(fetch_timeout), 100, 3600000, "10s", NULL, NULL},
    {"fetch", "connect_timeout", K_DURATION, OFF(fetch_connect_timeout), 100, 600000, "3s", NULL,
     NULL},
    {"fetch", "max_bytes", K_SIZE, OFF(fetch_max_bytes), 1024, 1LL << 32, "20M", NULL, NULL},
    {"fetch", "max_redirects", K_INT, OFF(fetch_max_redirects), 0, 20, "3", NULL, NULL},
    {"fetch", "allow_private", K_BOOL, OFF(fetch_allow_private), 0, 1, "no", NULL, NULL},
    {"fetch", "allow_hosts", K_STR, OFF(fetch_allow_hosts), 0, 0, "", NULL, check_allow_hosts},
    {"fetch", "deny_hosts", K_STR, OFF(fetch_deny_hosts), 0, 0, "", NULL, check_deny_hosts},

    {"image", "max_pixels", K_COUNT, OFF(image_max_pixels), 1, 1LL << 40, "50M", NULL, NULL},
    {"image", "max_frames", K_INT, OFF(image_max_frames), 1, 10000, "100", NULL, NULL},
    {"image", "max_dimension", K_INT, OFF(image_max_dimension), 16, 65535, "4096", NULL, NULL},
    {"image", "allowed_types", K_STR, OFF(image_allowed_types), 0, 0,
     "image/jpeg image/png image/webp image/gif image/avif image/heif image/tiff", NULL,
     check_types},
    {"image", "default_quality", K_INT, OFF(image_default_quality), 1, 100, "80", NULL, NULL},
    {"image", "max_output_pixels", K_COUNT, OFF(image_max_output_pixels), 1, 1LL << 32, "4194304",
     NULL, NULL},
    {"image", "max_job_pixels", K_COUNT, OFF(image_max_job_pixels), 1, 1LL << 36, "16777216", NULL,
     NULL},
    {"image", "avif_effort", K_INT, OFF(image_avif_effort), 0, 9, "2", NULL, NULL},
    {"image", "max_result_bytes", K_SIZE, OFF(image_max_result_bytes), 1024, 512LL << 20, "8M",
     NULL, NULL},

    {"cache", "size", K_SIZE, OFF(cache_size), 1LL << 20, 1LL << 40, "256M", NULL, NULL},
    {"cache", "pending_ttl", K_DURATION, OFF(cache_pending_ttl), 0, 60000, "200ms", NULL, NULL},

    {"redis", "mode", K_ENUM, OFF(redis_mode), 0, 0, "embedded", redis_modes, NULL},
    {"redis", "url", K_STR, OFF(redis_url), 0, 0, "", NULL, check_redis_url},
    {"redis", "password", K_STR, OFF(redis_password), 0, 0, "", NULL, NULL},
    {"redis", "username", K_STR, OFF(redis_username), 0, 0, "", NULL, NULL},
    {"redis", "sentinels", K_STR, OFF(redis_sentinels), 0, 0, "", NULL, check_sentinels},
    {"redis", "master_name", K_STR, OFF(redis_master_name), 0, 0, "", NULL, NULL},
    {"redis", "sentinel_password", K_STR, OFF(redis_sentinel_password), 0, 0, "", NULL, NULL},
    {"redis", "min_replicas_ack", K_INT, OFF(redis_min_replicas_ack), 0, 16, "0", NULL, NULL},
    {"redis", "server", K_STR, OFF(redis_server), 0, 0, "redis-server", NULL, NULL},
    {"redis", "data_dir", K_STR, OFF(redis_data_dir), 0, 0, "/var/lib/thumbnailed", NULL,
     check_absolute},
    {"redis", "max_memory", K_SIZE, OFF(redis_max_memory), 0, 1LL << 42, "auto", NULL, NULL},
    {"redis", "key_prefix", K_STR, OFF(redis_key_prefix), 0, 0, "thumbnailed", NULL, check_prefix},
    {"redis", "connect_timeout", K_DURATION, OFF(redis_connect_timeout), 10, 60000, "500ms", NULL,
     NULL},
    {"redis", "result_ttl", K_DURATION, OFF(redis_result_ttl), 1000, 365 * DAY, "24h", NULL, NULL},
    {"redis", "failure_ttl", K_DURATION, OFF(redis_failure_ttl), 1000, 365 * DAY, "7d", NULL, NULL},
    {"redis", "max_queue", K_INT, OFF(redis_max_queue), 1, 100000000, "100000", NULL, NULL},

    {"callback", "secret", K_STR, OFF(callback_secret), 0, 0, "", NULL, check_secrets},
    {"callback", "timeout", K_DURATION, OFF(callback_timeout), 100, 600000, "15s", NULL, NULL},
    {"callback", "schedule", K_STR, OFF(callback_schedule), 0, 0, "5s 5m 30m 2h 5h 10h", NULL,
     check_schedule},
    {"callback", "allow_hosts", K_STR, OFF(callback_allow_hosts), 0, 0, "", NULL,
     check_allow_hosts},

    {"smtp", "url", K_STR, OFF(smtp_url), 0, 0, "", NULL, check_smtp_url},
    {"smtp", "from", K_STR, OFF(smtp_from), 0, 0, "", NULL, NULL},
    {"smtp", "username", K_STR, OFF(smtp_username), 0, 0, "", NULL, NULL},
    {"smtp", "password", K_STR, OFF(smtp_password), 0, 0, "", NULL, NULL},
    {"smtp", "starttls", K_BOOL, OFF(smtp_starttls), 0, 1, "yes", NULL, NULL},
    {"smtp", "allow_recipients", K_STR, OFF(smtp_allow_recipients), 0, 0, "", NULL, check_domains},

    {"storage", "backend", K_ENUM, OFF(storage_backend), 0, 0, "redis", storage_backends, NULL},
    {"storage", "endpoint", K_STR, OFF(storage_endpoint), 0, 0, "", NULL, check_http_url},
    {"storage", "bucket", K_STR, OFF(storage_bucket), 0, 0, "", NULL, check_bucket},
    {"storage", "region", K_STR, OFF(storage_region), 0, 0, "us-east-1", NULL, check_region},
    {"storage", "prefix", K_STR, OFF(storage_prefix), 0, 0, "results", NULL, check_object_prefix},
    {"storage", "upload_prefix", K_STR, OFF(storage_upload_prefix), 0, 0, "uploads", NULL,
     check_object_prefix},
    {"storage", "path_style", K_BOOL, OFF(storage_path_style), 0, 1, "no", NULL, NULL},
    {"storage", "access_key", K_STR, OFF(storage_access_key), 0, 0, "", NULL, check_credential},
    {"storage", "secret_key", K_STR, OFF(storage_secret_key), 0, 0, "", NULL, check_credential},
    {"storage", "credentials_file", K_STR, OFF(storage_credentials_file), 0, 0, "", NULL,
     check_absolute},
    {"storage", "public_url", K_STR, OFF(storage_public_url), 0, 0, "", NULL, check_http_url},
    {"storage", "expiry", K_ENUM, OFF(storage_expiry), 0, 0, "delete", storage_expiries, NULL},
    {"storage", "timeout", K_DURATION, OFF(storage_timeout), 100, 600000, "10s", NULL, NULL},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* The MIME types the pipeline knows how to decode. */
static const char *const known_types[] = {
    "image/jpeg", "image/png",  "image/webp",    "image/gif",       "image/avif",
    "image/heif", "image/tiff", "image/svg+xml", "application/pdf", NULL,
};

static const struct {
    const char *from;
    const char *to;
} mime_aliases[] = {
    {"image/heic", "image/heif"},          {"image/heic-sequence", "image/heif"},
    {"image/heif-sequence", "image/heif"}, {"image/avif-sequence", "image/avif"},
    {"image/jpg", "image/jpeg"},           {"image/pjpeg", "image/jpeg"},
    {"image/x-png", "image/png"},          {"image/x-tiff", "image/tiff"},
};

const char *config_mime_canonical(const char *mime) {
    for (size_t i = 0; i < sizeof(mime_aliases) / sizeof(mime_aliases[0]); i++)
        if (strcmp(mime, mime_aliases[i].from) == 0)
            return mime_aliases[i].to;
    return mime;
}

bool config_list_contains(const char *list, const char *item) {
    size_t n = strlen(item);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == n && strncmp(p, item, n) == 0)
            return true;
        p += len;
    }
    return false;
}

static int check_absolute(const char *v, char *why, size_t n) {
    if (v[0] != '/') {
        snprintf(why, n, "must be an absolute path");
        return -1;
    }
    return 0;
}

static int check_port(const char *p, char *why, size_t n) {
    char *end;
    errno = 0;
    long port = strtol(p, &end, 10);
    if (*p == '\0' || *end != '\0' || errno || port < 1 || port > 65535) {
        snprintf(why, n, "port must be 1..65535");
        return -1;
    }
    return 0;
}

static int check_listen(const char *v, char *why, size_t n) {
    if (strncmp(v, "unix:", 5) == 0) {
        return check_absolute(v + 5, why, n);
    }
    const char *colon;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(why, n, "expected [ipv6]:port, host:port or unix:/path");
            return -1;
        }
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL || colon == v) {
            snprintf(why, n, "expected host:port, [ipv6]:port or unix:/path");
            return -1;
        }
    }
    return check_port(colon + 1, why, n);
}

static int check_log_target(const char *v, char *why, size_t n) {
    if (strcmp(v, "stderr") == 0 || strcmp(v, "syslog") == 0)
        return 0;
    if (strncmp(v, "file:", 5) == 0)
        return check_absolute(v + 5, why, n);
    snprintf(why, n, "expected stderr, syslog or file:/path");
    return -1;
}

static int check_redis_url(const char *v, char *why, size_t n) {
    if (strncmp(v, "unix:", 5) == 0)
        return check_absolute(v + 5, why, n);
    if (strncmp(v, "redis://", 8) != 0) {
        snprintf(why, n, "expected redis://[:password@]host:port[/db] or unix:/path");
        return -1;
    }
    const char *host = v + 8;
    const char *at = strchr(host, '@');
    if (at)
        host = at + 1;
    if (*host == '\0' || *host == ':' || *host == '/') {
        snprintf(why, n, "missing host in redis URL");
        return -1;
    }
    return 0;
}

int config_next_hostport(const char **list, char *host, size_t hostlen, int *port) {
    const char *p = *list;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strcspn(p, " \t");
    *list = p;
    if (len == 0)
        return 0;
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':')
            colon = p + i;
    char *end = NULL;
    long n = colon ? strtol(colon + 1, &end, 10) : 0;
    const char *h = p;
    size_t hl = colon ? (size_t)(colon - p) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (colon == NULL || hl == 0 || hl >= hostlen || end != p + len || n < 1 || n > 65535)
        return -1;
    snprintf(host, hostlen, "%.*s", (int)hl, h);
    *port = (int)n;
    *list = p + len;
    return 1;
}

/* A space-separated list of host:port (a [v6]:port too), at most
 * CONFIG_SENTINELS_MAX of them. */
static int check_sentinels(const char *v, char *why, size_t n) {
    char host[256];
    int port, count = 0, rc;
    const char *p = v;
    while ((rc = config_next_hostport(&p, host, sizeof(host), &port)) == 1) {
        if (++count > CONFIG_SENTINELS_MAX) {
            snprintf(why, n, "more than %d Sentinels", CONFIG_SENTINELS_MAX);
            return -1;
        }
    }
    if (rc < 0) {
        snprintf(why, n, "'%.*s' is not host:port", (int)strcspn(p, " \t"), p);
        return -1;
    }
    return 0;
}

static int check_types(const char *v, char *why, size_t n) {
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0)
            break;
        bool ok = false;
        for (const char *const *t = known_types; *t; t++)
            if (strlen(*t) == len && strncmp(*t, p, len) == 0)
                ok = true;
        if (!ok) {
            snprintf(why, n,
                     "unknown image type '%.*s' (known: image/jpeg image/png image/webp "
                     "image/gif image/avif image/heif image/tiff image/svg+xml "
                     "application/pdf)",
                     (int)len, p);
            return -1;
        }
        p += len;
    }
    return 0;
}

static int check_secrets(const char *v, char *why, size_t n) {
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0)
            break;
        if (len < 6 + 16 || strncmp(p, "whsec_", 6) != 0) {
            snprintf(why, n, "each secret must be whsec_ followed by base64 (at least 12 bytes)");
            return -1;
        }
        for (size_t i = 6; i < len; i++) {
            char c = p[i];
            if (!(isalnum((unsigned char)c) || c == '+' || c == '/' || c == '=')) {
                snprintf(why, n, "secret contains '%c', which is not base64", c);
                return -1;
            }
        }
        p += len;
    }
    char sig[WEBHOOK_SIGNATURE_MAX];
    if (v[strspn(v, " \t")] != '\0' &&
        webhook_sign(v, "msg_check", 0, "", 0, sig, sizeof(sig)) < 0) {
        snprintf(why, n,
                 "a secret does not decode as base64 (padded to a multiple of 4 "
                 "characters), or there are more than 8");
        return -1;
    }
    return 0;
}

static int check_schedule(const char *v, char *why, size_t n) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    int count = 0;
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        uint64_t ms;
        if (units_parse_duration(tok, &ms) < 0) {
            snprintf(why, n, "'%s' is not a duration (e.g. 5s, 5m, 2h)", tok);
            return -1;
        }
        count++;
    }
    if (count > 32) {
        snprintf(why, n, "at most 32 retry delays");
        return -1;
    }
    return 0;
}

static int check_prefix(const char *v, char *why, size_t n) {
    for (const char *p = v; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')) {
            snprintf(why, n, "may contain only letters, digits, '_', '-' and '.'");
            return -1;
        }
    }
    if (strlen(v) > 64) {
        snprintf(why, n, "at most 64 characters");
        return -1;
    }
    return 0;
}

static int check_smtp_url(const char *v, char *why, size_t n) {
    if (strncmp(v, "smtp://", 7) != 0 && strncmp(v, "smtps://", 8) != 0) {
        snprintf(why, n, "expected smtp://host[:port] or smtps://host[:port]");
        return -1;
    }
    return 0;
}

static int check_allow_hosts(const char *v, char *why, size_t n) {
    return hostlist_check(v, true, why, n);
}

static int check_deny_hosts(const char *v, char *why, size_t n) {
    return hostlist_check(v, false, why, n);
}

/* smtp.allow_recipients: domains, as a host list without ports. */
static int check_domains(const char *v, char *why, size_t n) {
    for (const char *p = v; *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (memchr(p, '@', len)) {
            snprintf(why, n, "'%.*s': an entry is a domain (example.com), not an address",
                     (int)(len > 200 ? 200 : len), p);
            return -1;
        }
        p += len;
    }
    return hostlist_check(v, false, why, n);
}

/* http.trusted_proxies, http.metrics_allow: address blocks (cidr.h). */
static int check_cidrs(const char *v, char *why, size_t n) {
    struct cidr_list l;
    if (cidr_list_parse(&l, v, why, n) < 0)
        return -1;
    cidr_list_free(&l);
    return 0;
}

/* storage.endpoint, storage.public_url: http(s)://host[:port][/path], parsed
 * by libcurl's URL API; no credentials, query or fragment. */
static int check_http_url(const char *v, char *why, size_t n) {
    CURLU *u = curl_url();
    char *scheme = NULL, *extra = NULL;
    int rc = -1;
    if (u == NULL) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, v, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(why, n,
                 "expected an http:// or https:// URL, such as https://s3.eu-west-1.amazonaws.com");
        goto out;
    }
    static const CURLUPart forbidden[] = {CURLUPART_USER, CURLUPART_QUERY, CURLUPART_FRAGMENT};
    static const char *const names[] = {"credentials", "a query", "a fragment"};
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        if (curl_url_get(u, forbidden[i], &extra, 0) == CURLUE_OK) {
            snprintf(why, n, "the URL must not hold %s", names[i]);
            goto out;
        }
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(extra);
    curl_url_cleanup(u);
    return rc;
}

/* storage.bucket: S3's naming rules (3..63 of a-z 0-9 . -, a letter or digit
 * at each end), which every S3-compatible store accepts. */
static int check_bucket(const char *v, char *why, size_t n) {
    size_t len = strlen(v);
    bool ok =
        len >= 3 && len <= 63 && isalnum((unsigned char)v[0]) && isalnum((unsigned char)v[len - 1]);
    for (size_t i = 0; ok && i < len; i++)
        ok = islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '.' ||
             v[i] == '-';
    if (!ok)
        snprintf(why, n,
                 "a bucket name is 3 to 63 lower-case letters, digits, '.' and '-', "
                 "starting and ending with a letter or digit");
    return ok ? 0 : -1;
}

/* storage.prefix, storage.upload_prefix: object key segments of S3's safe
 * characters, separated by single '/', none at either end. */
static int check_object_prefix(const char *v, char *why, size_t n) {
    size_t len = strlen(v);
    bool ok = len <= 256 && v[0] != '/' && v[len - 1] != '/' && strstr(v, "//") == NULL;
    for (const char *p = v; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || strchr("/!-_.*'()", *p) != NULL;
    for (const char *seg = v; ok && *seg; seg += strcspn(seg, "/"), seg += *seg == '/') {
        size_t l = strcspn(seg, "/");
        ok = !(l == 1 && seg[0] == '.') && !(l == 2 && seg[0] == '.' && seg[1] == '.');
    }
    if (!ok)
        snprintf(why, n,
                 "expected segments of letters, digits and !-_.*'() separated by "
                 "single '/', with no '/' at either end and no '.' or '..' segment (at most 256 "
                 "characters)");
    return ok ? 0 : -1;
}

/* storage.region: the signing scope's region, such as eu-west-1. */
static int check_region(const char *v, char *why, size_t n) {
    bool ok = strlen(v) <= 64;
    for (const char *p = v; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_';
    if (!ok)
        snprintf(why, n, "expected a region name such as us-east-1");
    return ok ? 0 : -1;
}

/* storage.access_key, storage.secret_key: printable, no spaces, no ':'
 * (libcurl's user:password); AWS's are 20 and 40 characters. */
static int check_credential(const char *v, char *why, size_t n) {
    bool ok = strlen(v) <= 256;
    for (const char *p = v; ok && *p; p++)
        ok = isgraph((unsigned char)*p) && *p != ':';
    if (!ok)
        snprintf(why, n, "expected at most 256 printable characters without spaces or ':'");
    return ok ? 0 : -1;
}

/* Parses value for k into out; on error writes a reason into why. */
static int parse_value(const struct key *k, const char *value, int64_t *out, char *why, size_t n) {
    uint64_t u = 0;
    switch (k->type) {
    case K_INT: {
        if (strcmp(k->section, "worker") == 0 && strcmp(k->name, "processes") == 0 &&
            strcmp(value, "auto") == 0) {
            *out = 0;
            return 0;
        }
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (*value == '\0' || *end != '\0' || errno) {
            snprintf(why, n, "'%s' is not an integer", value);
            return -1;
        }
        if (v < k->min || v > k->max) {
            snprintf(why, n, "%lld is out of range %lld..%lld", v, (long long)k->min,
                     (long long)k->max);
            return -1;
        }
        *out = v;
        return 0;
    }
    case K_SIZE:
        if (strcmp(k->section, "redis") == 0 && strcmp(k->name, "max_memory") == 0 &&
            strcmp(value, "auto") == 0) {
            *out = CONFIG_MAX_MEMORY_AUTO;
            return 0;
        }
        if (units_parse_size(value, &u) < 0) {
            snprintf(why, n, "'%s' is not a size (e.g. 512K, 20M, 1G)", value);
            return -1;
        }
        break;
    case K_COUNT:
        if (units_parse_count(value, &u) < 0) {
            snprintf(why, n, "'%s' is not a count (e.g. 1000, 50M)", value);
            return -1;
        }
        break;
    case K_DURATION:
        if (units_parse_duration(value, &u) < 0) {
            snprintf(why, n, "'%s' is not a duration (e.g. 200ms, 10s, 5m, 24h, 7d)", value);
            return -1;
        }
        break;
    case K_BOOL:
        if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1") ||
            !strcasecmp(value, "on")) {
            *out = 1;
        } else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0") ||
                   !strcasecmp(value, "off")) {
            *out = 0;
        } else {
            snprintf(why, n, "'%s' is not a boolean (yes or no)", value);
            return -1;
        }
        return 0;
    case K_ENUM:
        for (int i = 0; k->enums[i]; i++) {
            if (strcmp(value, k->enums[i]) == 0) {
                *out = i;
                return 0;
            }
        }
        {
            size_t used = (size_t)snprintf(why, n, "'%s' is not one of:", value);
            for (int i = 0; k->enums[i] && used < n; i++)
                used += (size_t)snprintf(why + used, n - used, " %s", k->enums[i]);
        }
        return -1;
    case K_STR:
        return 0;
    }
    if (u > (uint64_t)k->max || (int64_t)u < k->min) {
        snprintf(why, n, "'%s' is out of range (%lld..%lld in base units)", value,
                 (long long)k->min, (long long)k->max);
        return -1;
    }
    *out = (int64_t)u;
    return 0;
}

/* Stores value into the field of k; returns 0, or -1 with why set. */
static int set_key(struct config *cfg, const struct key *k, const char *value, char *why,
                   size_t n) {
    char *field = (char *)cfg + k->offset;
    if (k->type == K_STR) {
        if (value[0] != '\0' && k->check && k->check(value, why, n) < 0)
            return -1;
        char *dup = strdup(value);
        if (dup == NULL) {
            snprintf(why, n, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = dup;
        return 0;
    }
    int64_t v;
    if (parse_value(k, value, &v, why, n) < 0)
        return -1;
    if (k->type == K_BOOL)
        *(bool *)field = v != 0;
    else
        *(int64_t *)field = v;
    return 0;
}

/* worker.processes = auto: one per online core and one more. A worker is
 * idle while its source downloads and on its Redis round trips; with one per
 * core those moments leave a core idle (a tenth to a fifth of the machine on
 * the cheapest jobs), which the extra worker fills; on jobs that keep the
 * cores busy it costs one more process's memory and no throughput
 * (bench/RESULTS.md, issue 19). */
static int64_t auto_workers(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n + 1 : 2;
}

int config_defaults(struct config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NKEYS; i++) {
        char why[256];
        if (set_key(cfg, &keys[i], keys[i].def, why, sizeof(why)) < 0)
            return -1;
    }
    if (cfg->worker_processes == 0)
        cfg->worker_processes = auto_workers();
    return 0;
}

static void add_error(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_error(struct config_errors *errs, const char *fmt, ...) {
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    char **grown = realloc(errs->msgs, (errs->count + 1) * sizeof(char *));
    if (grown == NULL) {
        free(msg);
        return;
    }
    errs->msgs = grown;
    errs->msgs[errs->count++] = msg;
}

struct load_state {
    struct config *cfg;
    struct config_errors *errs;
    const char *path;
    FILE *fp;
    int lineno;      /* the line inih is handling, counted by our reader */
    int seen[NKEYS]; /* line where each key was set, 0 if not set */
    bool bad[NKEYS]; /* the key's value was refused (reported at its line) */
};

static bool section_known(const char *section);

/* Reports an unknown [section] at its own line (inih tells us of sections only
 * through their keys, and not at all when empty). */
static void check_section_line(struct load_state *st, const char *line) {
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line != '[')
        return;
    const char *end = strchr(line, ']');
    if (end == NULL)
        return; /* inih reports the syntax error */
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)(end - line - 1), line + 1);
    if (!section_known(name))
        add_error(st->errs, "%s:%d: unknown section [%s]", st->path, st->lineno, name);
}

/* Feeds inih one line per call so that lineno is the line being handled. */
static char *reader(char *buf, int size, void *stream) {
    struct load_state *st = stream;
    if (fgets(buf, size, st->fp) == NULL)
        return NULL;
    st->lineno++;
    size_t len = strlen(buf);
    if (len == (size_t)size - 1 && buf[len - 1] != '\n') {
        int c;
        while ((c = fgetc(st->fp)) != EOF && c != '\n')
            ;
        add_error(st->errs, "%s:%d: line longer than %d characters", st->path, st->lineno,
                  size - 2);
        buf[0] = '\0';
    }
    check_section_line(st, buf);
    return buf;
}

static bool section_known(const char *section) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0)
            return true;
    return false;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    struct load_state *st = user;
    if (section[0] == '\0') {
        add_error(st->errs, "%s:%d: '%s' is outside any [section]", st->path, st->lineno, name);
        return 1;
    }
    if (!section_known(section))
        return 1; /* reported once, at its [header] line */
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->section, section) != 0 || strcmp(k->name, name) != 0)
            continue;
        if (st->seen[i]) {
            add_error(st->errs, "%s:%d: %s.%s already set on line %d", st->path, st->lineno,
                      section, name, st->seen[i]);
            return 1;
        }
        st->seen[i] = st->lineno;
        char why[512];
        if (set_key(st->cfg, k, value, why, sizeof(why)) < 0) {
            add_error(st->errs, "%s:%d: %s.%s: %s", st->path, st->lineno, section, name, why);
            st->bad[i] = true;
        }
        return 1;
    }
    add_error(st->errs, "%s:%d: unknown key '%s' in section [%s]", st->path, st->lineno, name,
              section);
    return 1; /* keep going: report every error in one pass */
}

/* Whether the value given for section.name was refused (already reported). */
static bool refused(const struct load_state *st, const char *section, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return st->bad[i];
    return false;
}

static int line_of(const struct load_state *st, const char *section, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return st->seen[i];
    return 0;
}

/* storage.credentials_file: AWS's shared credentials format, as `aws
 * configure` writes it: [default] with aws_access_key_id and
 * aws_secret_access_key (a file of only those two keys, without a section,
 * is taken too). */
struct creds_state {
    char *access, *secret;
    bool other_profile; /* keys seen in another section than [default] */
};

static int creds_handler(void *user, const char *section, const char *name, const char *value) {
    struct creds_state *cs = user;
    if (section[0] != '\0' && strcmp(section, "default") != 0) {
        cs->other_profile = true;
        return 1;
    }
    char **field = strcmp(name, "aws_access_key_id") == 0       ? &cs->access
                   : strcmp(name, "aws_secret_access_key") == 0 ? &cs->secret
                                                                : NULL;
    if (field) {
        free(*field);
        *field = strdup(value);
    }
    return 1;
}

static void load_credentials(struct load_state *st) {
    struct config *cfg = st->cfg;
    const char *file = cfg->storage_credentials_file;
    int line = line_of(st, "storage", "credentials_file");
    if (cfg->storage_access_key[0] || cfg->storage_secret_key[0]) {
        add_error(st->errs,
                  "%s:%d: storage.credentials_file and storage.access_key/secret_key are both "
                  "set: keep the keys in one place",
                  st->path, line);
        return;
    }
    struct creds_state cs = {0};
    FILE *fp = fopen(file, "r");
    int r = fp ? ini_parse_file(fp, creds_handler, &cs) : -1;
    if (fp)
        fclose(fp);
    char why[512];
    if (fp == NULL)
        add_error(st->errs, "%s:%d: storage.credentials_file %s: cannot open: %s", st->path, line,
                  file, strerror(errno));
    else if (r != 0)
        add_error(st->errs, "%s:%d: storage.credentials_file %s:%d: syntax error", st->path, line,
                  file, r);
    else if (cs.access == NULL || cs.secret == NULL)
        add_error(st->errs,
                  "%s:%d: storage.credentials_file %s has no [default] aws_access_key_id and "
                  "aws_secret_access_key%s",
                  st->path, line, file, cs.other_profile ? " (only other profiles)" : "");
    else if (check_credential(cs.access, why, sizeof(why)) < 0 ||
             check_credential(cs.secret, why, sizeof(why)) < 0)
        add_error(st->errs, "%s:%d: storage.credentials_file %s: %s", st->path, line, file, why);
    else {
        free(cfg->storage_access_key);
        free(cfg->storage_secret_key);
        cfg->storage_access_key = cs.access;
        cfg->storage_secret_key = cs.secret;
        cs.access = cs.secret = NULL;
    }
    free(cs.access);
    free(cs.secret);
}

/* Whether one object prefix is the other or lies under it. */
static bool prefix_overlaps(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), l = la < lb ? la : lb;
    return strncmp(a, b, l) == 0 && (la == lb || (la < lb ? b[la] : a[lb]) == '/');
}

static void check_storage(struct load_state *st) {
    struct config *cfg = st->cfg;
    if (cfg->storage_credentials_file[0] && !refused(st, "storage", "credentials_file"))
        load_credentials(st);
    if (cfg->storage_prefix[0] == '\0' || cfg->storage_upload_prefix[0] == '\0' ||
        prefix_overlaps(cfg->storage_prefix, cfg->storage_upload_prefix))
        add_error(st->errs,
                  "%s:%d: storage.prefix (%s) and storage.upload_prefix (%s) must be two "
                  "non-empty prefixes, neither under the other, so that a lifecycle rule can "
                  "expire leftover uploads without touching results",
                  st->path, line_of(st, "storage", "upload_prefix"), cfg->storage_prefix,
                  cfg->storage_upload_prefix);
    if (cfg->storage_backend != CONFIG_STORAGE_S3)
        return;
    int line = line_of(st, "storage", "backend");
    if (cfg->storage_endpoint[0] == '\0' && !refused(st, "storage", "endpoint"))
        add_error(st->errs,
                  "%s:%d: storage.endpoint (the store's URL, such as "
                  "https://s3.eu-west-1.amazonaws.com) is required when storage.backend = s3",
                  st->path, line);
    if (cfg->storage_bucket[0] == '\0' && !refused(st, "storage", "bucket"))
        add_error(st->errs, "%s:%d: storage.bucket is required when storage.backend = s3", st->path,
                  line);
    if (cfg->storage_region[0] == '\0')
        add_error(st->errs, "%s:%d: storage.region must not be empty (us-east-1 when unsure)",
                  st->path, line_of(st, "storage", "region"));
    if (cfg->storage_credentials_file[0] == '\0' &&
        (cfg->storage_access_key[0] == '\0' || cfg->storage_secret_key[0] == '\0'))
        add_error(st->errs,
                  "%s:%d: storage.backend = s3 needs credentials: storage.access_key and "
                  "storage.secret_key, or storage.credentials_file",
                  st->path, line);
}

/* Checks that need more than one key. */
static void check_consistency(struct load_state *st) {
    struct config *cfg = st->cfg;
    if (cfg->redis_mode == CONFIG_REDIS_EXTERNAL && cfg->redis_url[0] == '\0')
        add_error(st->errs, "%s:%d: redis.url is required when redis.mode = external", st->path,
                  line_of(st, "redis", "mode"));
    if (cfg->redis_mode == CONFIG_REDIS_SENTINEL && !refused(st, "redis", "sentinels") &&
        cfg->redis_sentinels[strspn(cfg->redis_sentinels, " \t")] == '\0')
        add_error(st->errs,
                  "%s:%d: redis.sentinels (host:port of each Sentinel) is required when "
                  "redis.mode = sentinel",
                  st->path, line_of(st, "redis", "mode"));
    if (cfg->redis_mode == CONFIG_REDIS_SENTINEL && cfg->redis_master_name[0] == '\0')
        add_error(st->errs,
                  "%s:%d: redis.master_name (the name the Sentinels monitor) is required when "
                  "redis.mode = sentinel",
                  st->path, line_of(st, "redis", "mode"));
    if (cfg->smtp_url[0] != '\0' && cfg->smtp_from[0] == '\0')
        add_error(st->errs, "%s:%d: smtp.from is required when smtp.url is set", st->path,
                  line_of(st, "smtp", "url"));
    if (cfg->image_allowed_types[0] == '\0')
        add_error(st->errs, "%s:%d: image.allowed_types must name at least one type", st->path,
                  line_of(st, "image", "allowed_types"));
    if (cfg->redis_key_prefix[0] == '\0')
        add_error(st->errs, "%s:%d: redis.key_prefix must not be empty", st->path,
                  line_of(st, "redis", "key_prefix"));
    if (cfg->redis_mode == CONFIG_REDIS_EMBEDDED && cfg->redis_server[0] == '\0')
        add_error(st->errs, "%s:%d: redis.server must name the redis-server binary", st->path,
                  line_of(st, "redis", "server"));
}

int config_load(struct config *cfg, const char *path, struct config_errors *errs) {
    size_t before = errs->count;
    if (config_defaults(cfg) < 0) {
        add_error(errs, "%s: out of memory", path);
        return -1;
    }
    cfg->path = strdup(path);

    struct load_state st = {.cfg = cfg, .errs = errs, .path = path};
    st.fp = fopen(path, "r");
    if (st.fp == NULL) {
        add_error(errs, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Continuation lines are a trap in a daemon's config: an indented line
     * would silently join the key above. Treat it as an error instead. */
    ini_allow_multiline = false;
    ini_use_stack = false;
    ini_max_line = 4096;
    ini_initial_alloc = 4096;
    int r = ini_parse_stream(reader, &st, handler, &st);
    fclose(st.fp);
    if (r > 0)
        add_error(errs, "%s:%d: syntax error (expected [section], key = value or a comment)", path,
                  r);
    else if (r < 0)
        add_error(errs, "%s: cannot read", path);

    if (cfg->worker_processes == 0)
        cfg->worker_processes = auto_workers();
    check_consistency(&st);
    check_storage(&st);
    return errs->count == before ? 0 : -1;
}

void config_free(struct config *cfg) {
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == K_STR) {
            char **field = (char **)((char *)cfg + keys[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    free(cfg->path);
    cfg->path = NULL;
}

void config_errors_free(struct config_errors *errs) {
    for (size_t i = 0; i < errs->count; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->count = 0;
}

static bool key_equal(const struct key *k, const struct config *a, const struct config *b) {
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case K_STR:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case K_BOOL:
        return *(const bool *)fa == *(const bool *)fb;
    default:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    }
}

void config_diff(const struct config *a, const struct config *b,
                 void (*fn)(const char *section, const char *key, void *arg), void *arg) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!key_equal(&keys[i], a, b))
            fn(keys[i].section, keys[i].name, arg);
}

int config_copy_key(struct config *dst, const struct config *src, const char *section,
                    const char *key) {
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (strcmp(k->section, section) != 0 || strcmp(k->name, key) != 0)
            continue;
        char *fd = (char *)dst + k->offset;
        const char *fs = (const char *)src + k->offset;
        if (k->type == K_STR) {
            char *dup = strdup(*(char *const *)fs);
            if (dup == NULL)
                return -1;
            free(*(char **)fd);
            *(char **)fd = dup;
        } else if (k->type == K_BOOL) {
            *(bool *)fd = *(const bool *)fs;
        } else {
            *(int64_t *)fd = *(const int64_t *)fs;
        }
        return 0;
    }
    return -1;
}

void config_each_warning(const struct config *cfg, void (*fn)(const char *msg, void *arg),
                         void *arg) {
    if (cfg->http_api_keys_file[0] != '\0')
        return;
    if (cfg->callback_secret[0] != '\0' && cfg->callback_allow_hosts[0] == '\0')
        fn("callbacks are open to anyone who can reach http.listen: callback.secret is set while "
           "http.api_keys_file and callback.allow_hosts are empty, so any client can have this "
           "server POST to any URL; set http.api_keys_file, or callback.allow_hosts to the "
           "receivers' hosts",
           arg);
    if (cfg->smtp_url[0] != '\0' && cfg->smtp_allow_recipients[0] == '\0')
        fn("e-mail is open to anyone who can reach http.listen: smtp.url is set while "
           "http.api_keys_file and smtp.allow_recipients are empty, so any client can have this "
           "server send mail to any address; set http.api_keys_file, or smtp.allow_recipients to "
           "the recipients' domains",
           arg);
}

void config_each_key(void (*fn)(const char *section, const char *key, const char *def, void *arg),
                     void *arg) {
    for (size_t i = 0; i < NKEYS; i++)
        fn(keys[i].section, keys[i].name, keys[i].def, arg);
}
