/* config.h — the daemon's configuration: defaults, INI loading and validation. */
#ifndef TH_CONFIG_H
#define TH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sentinels a redis.sentinels list may name. */
#define CONFIG_SENTINELS_MAX 16

/* Reads the next host:port (a [v6]:port too) of the space-separated *list
 * into host and port, and moves *list past it. Returns 1, 0 at the end, or -1
 * for a malformed entry (*list then points at it). */
int config_next_hostport(const char **list, char *host, size_t hostlen, int *port);

enum config_redis_mode { CONFIG_REDIS_EMBEDDED, CONFIG_REDIS_EXTERNAL, CONFIG_REDIS_SENTINEL };

/* storage.backend: where results and uploaded sources are kept. */
enum config_storage_backend { CONFIG_STORAGE_REDIS, CONFIG_STORAGE_S3 };

/* storage.expiry: what becomes of a result's objects at redis.result_ttl. */
enum config_storage_expiry { CONFIG_EXPIRY_DELETE, CONFIG_EXPIRY_LIFECYCLE };

/* Every key of etc/thumbnailed.conf. Durations are in milliseconds, sizes in
 * bytes. Strings are owned by the struct (config_free). */
/* redis.max_memory = auto: a quarter of the machine's physical memory. */
#define CONFIG_MAX_MEMORY_AUTO (-1)

struct config {
    char *path; /* the file it was loaded from */

    /* [daemon] */
    char *user;
    char *pid_file;
    char *runtime_dir;
    int64_t log_level; /* enum log_level */
    char *log_target;
    int64_t stop_timeout;

    /* [http] */
    char *http_listen;
    int64_t http_processes;
    int64_t http_max_body;
    int64_t http_max_header;
    int64_t http_timeout;
    int64_t http_max_connections;
    int64_t http_max_connections_per_client; /* per http child, per peer address; 0 = no cap */
    char *http_api_keys_file;
    char *http_admin_keys_file;
    int64_t http_rate_limit;
    int64_t http_max_queued_per_client; /* jobs waiting per API key (or address); 0 = no bound */
    char *http_trusted_proxies;         /* address blocks whose X-Forwarded-For is believed */
    char *http_metrics_allow;           /* address blocks that may read /metrics; "": anyone */

    /* [worker] */
    int64_t worker_processes; /* "auto" resolves to the number of online cores */
    int64_t worker_job_timeout;
    int64_t worker_max_attempts;
    int64_t worker_max_memory;
    int64_t worker_retry_delay;     /* first retry after a transient failure */
    int64_t worker_retry_max_delay; /* the backoff's cap */

    /* [fetch] */
    int64_t fetch_timeout;
    int64_t fetch_connect_timeout;
    int64_t fetch_max_bytes;
    int64_t fetch_max_redirects;
    bool fetch_allow_private;
    char *fetch_allow_hosts;
    char *fetch_deny_hosts;

    /* [image] */
    int64_t image_max_pixels;
    int64_t image_max_frames;
    int64_t image_max_dimension;
    char *image_allowed_types;
    int64_t image_default_quality;
    int64_t image_max_output_pixels; /* width x height of one thumbnail */
    int64_t image_max_job_pixels;    /* sum of width x height x formats over a job's outputs */
    int64_t image_max_result_bytes;  /* an encoded thumbnail's size */
    int64_t image_avif_effort;       /* libvips heifsave effort 0 (fastest)..9 */

    /* [cache] */
    int64_t cache_size;
    int64_t cache_pending_ttl;

    /* [redis] */
    int64_t redis_mode; /* enum config_redis_mode */
    char *redis_url;
    char *redis_sentinels;          /* sentinel mode: "host:port host:port ..." */
    char *redis_master_name;        /* sentinel mode: the monitored master's name */
    char *redis_sentinel_password;  /* sentinel mode: AUTH for the Sentinels, or "" */
    char *redis_username;           /* an ACL user (external and sentinel modes), or "" */
    int64_t redis_min_replicas_ack; /* WAIT for this many replicas before 202/done; 0 = no */
    char *redis_password;
    char *redis_server;
    char *redis_data_dir;
    char *redis_key_prefix;
    int64_t redis_connect_timeout;
    int64_t redis_result_ttl;
    int64_t redis_failure_ttl;
    int64_t redis_max_queue;
    int64_t redis_max_memory; /* embedded: its maxmemory (noeviction); 0 = none, or
                                 CONFIG_MAX_MEMORY_AUTO */

    /* [callback] */
    char *callback_secret;
    int64_t callback_timeout;
    char *callback_schedule;
    char *callback_allow_hosts; /* "": any host (the guard still applies) */

    /* [smtp] */
    char *smtp_url;
    char *smtp_from;
    char *smtp_username;
    char *smtp_password;
    bool smtp_starttls;
    char *smtp_allow_recipients; /* "": any domain */

    /* [storage] */
    int64_t storage_backend; /* enum config_storage_backend */
    char *storage_endpoint;  /* s3: http(s)://host[:port][/path] */
    char *storage_bucket;
    char *storage_region;
    char *storage_prefix;        /* results: <prefix>/<job id>/<name>.<ext> */
    char *storage_upload_prefix; /* uploaded sources: <upload_prefix>/<job id> */
    bool storage_path_style;     /* <endpoint>/<bucket>/<key>, not <bucket>.<host>/<key> */
    /* The credentials: as given, or, with storage.credentials_file, read from
     * that file by config_load (and so again at each reload). */
    char *storage_access_key;
    char *storage_secret_key;
    char *storage_credentials_file;
    char *storage_public_url; /* "": results are served by the http children */
    int64_t storage_expiry;   /* enum config_storage_expiry */
    int64_t storage_timeout;
};

/* Errors found while loading, each "file:line: message". */
struct config_errors {
    char **msgs;
    size_t count;
};

/* Fills cfg with the documented defaults. Returns 0, or -1 on allocation failure. */
int config_defaults(struct config *cfg);

/* Loads path over the defaults. Every problem (syntax, unknown section or key,
 * bad value, out-of-range number, inconsistent keys) is appended to errs.
 * Returns 0 when the file is valid, -1 otherwise; cfg is then undefined but
 * still must be passed to config_free. */
int config_load(struct config *cfg, const char *path, struct config_errors *errs);

/* Frees the strings of cfg (not cfg itself). */
void config_free(struct config *cfg);

void config_errors_free(struct config_errors *errs);

/* Calls fn for every known key as "section.key" with its default text; used to
 * keep the shipped file and the man page in agreement. */
void config_each_key(void (*fn)(const char *section, const char *key, const char *def, void *arg),
                     void *arg);

/* Calls fn with each warning a valid cfg deserves: a push (callbacks, e-mail)
 * that is enabled while neither API keys (http.api_keys_file) nor its
 * allow-list (callback.allow_hosts, smtp.allow_recipients) limit who may use
 * it, so that anyone who reaches the port can have the server POST or mail
 * anywhere. Each message says which push, and which keys close it. */
void config_each_warning(const struct config *cfg, void (*fn)(const char *msg, void *arg),
                         void *arg);

/* Calls fn for every key whose value differs between a and b. */
void config_diff(const struct config *a, const struct config *b,
                 void (*fn)(const char *section, const char *key, void *arg), void *arg);

/* Copies the value of section.key from src into dst. Returns 0, or -1 for an
 * unknown key or on allocation failure. */
int config_copy_key(struct config *dst, const struct config *src, const char *section,
                    const char *key);

/* The name image.allowed_types uses for a MIME type libmagic may report under
 * another (image/heic -> image/heif, image/x-png -> image/png...). Returns
 * mime itself when it has no other name. */
const char *config_mime_canonical(const char *mime);

/* Whether mime is one of the space-separated types in list. */
bool config_list_contains(const char *list, const char *item);

#endif
