/* store.h — the object store of storage.backend = s3 (docs/ARCHITECTURE.md
 * §10): where a job's objects live (their keys and URLs), requests to it
 * signed by libcurl's own AWS Signature Version 4 (CURLOPT_AWS_SIGV4), and
 * what its answers mean. A request is set up on any easy handle
 * (store_request_setup), so that a blocking client (struct store, the
 * workers, the master and the delivery child) and an event loop's (an http
 * child's, curlev.h) make the same requests. */
#ifndef TH_STORE_H
#define TH_STORE_H

#include "config.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#define STORE_KEY_MAX 600  /* an object key: prefix (256), '/', job id, '/', name, '.', ext */
#define STORE_URL_MAX 2048 /* an object's URL, query included */

/* What a request came to. */
enum store_rc {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1, /* 404 for the object (NoSuchKey) */
    STORE_FAILED = -1,   /* unreachable, timed out, 5xx, 429: may work later */
    STORE_REFUSED = -2,  /* any other 4xx (credentials, bucket, permissions): needs the operator */
};

/* Why a request did not succeed, for the log and the job's error message. */
struct store_error {
    long status;       /* the HTTP status, 0 when no answer came */
    char code[64];     /* S3's <Code> (SignatureDoesNotMatch, NoSuchBucket...), or ours */
    char message[720]; /* a sentence a person can act on */
};

/* One request and its answer's body. */
struct store_request {
    CURL *easy; /* borrowed */
    struct curl_slist *headers;
    char url[STORE_URL_MAX];
    const char *out; /* the body sent (PUT), borrowed */
    size_t out_len, out_off;
    char *in; /* the body received */
    size_t in_len, in_cap, in_max;
    bool in_too_big;
    char errbuf[CURL_ERROR_SIZE];
};

/* The file extension of a result's MIME type ("jpg" for image/jpeg), "bin"
 * for one it does not know. */
const char *store_ext_of_mime(const char *mime);

/* The object key of job id's result called name (the one rendition a job has
 * today is "default"): <storage.prefix>/<id>/<name>.<ext>. Returns 0, -1 when
 * it does not fit. */
int store_result_key(const struct config *cfg, const char *id, const char *name, const char *mime,
                     char out[STORE_KEY_MAX]);

/* The object key of job id's uploaded source: <storage.upload_prefix>/<id>. */
int store_upload_key(const struct config *cfg, const char *id, char out[STORE_KEY_MAX]);

/* The URL of an object (key "": the bucket itself) in the store, path-style
 * (<endpoint>/<bucket>/<key>) or virtual-host (<bucket>.<host>/<key>) as
 * storage.path_style says; query, already canonical (its keys sorted, values
 * percent-encoded: libcurl 7.88 signs it as given), appended unless NULL.
 * Returns 0, -1 when it does not fit or the endpoint cannot be parsed. */
int store_object_url(const struct config *cfg, const char *key, const char *query, char *out,
                     size_t n);

/* The URL clients get an object at with storage.public_url set
 * (<public_url>/<key>). Returns 0, -1 without public_url or when it does not
 * fit. */
int store_public_url(const struct config *cfg, const char *key, char *out, size_t n);

/* Percent-encodes s for a canonical query value (RFC 3986 unreserved kept,
 * '/' as %2F). Returns 0, -1 when it does not fit. */
int store_query_escape(const char *s, char *out, size_t n);

/* Sets easy up for one signed request: method (GET, PUT, HEAD, DELETE), the
 * object key (or "" for the bucket), a canonical query or NULL; for PUT, len
 * bytes of body (borrowed until the request ends) with their Content-Type and
 * SHA-256 (x-amz-content-sha256, which the store checks the body against).
 * An answer's body is kept up to max_reply bytes (a longer one fails the
 * request). Returns 0, or -1 (r is then free of anything to release). */
int store_request_setup(const struct config *cfg, struct store_request *r, CURL *easy,
                        const char *method, const char *key, const char *query, const void *body,
                        size_t len, const char *content_type, size_t max_reply);

/* What the request that ended with rc came to; err says why when it is not
 * STORE_OK (also for STORE_NOT_FOUND). */
enum store_rc store_request_result(struct store_request *r, CURLcode rc, struct store_error *err);

/* The answer's body (an object GET), owned by the caller from now on: free()
 * it. */
char *store_request_take_body(struct store_request *r, size_t *len);

/* Frees what r holds (not the easy handle). */
void store_request_free(struct store_request *r);

/* A blocking client: one easy handle for every request, so that connections
 * to the store are reused. */
struct store {
    const struct config *cfg;
    CURL *easy;
};

/* Returns 0, -1 when libcurl cannot make a handle (logged). */
int store_open(struct store *s, const struct config *cfg);
void store_close(struct store *s);

/* PUTs len bytes of type mime at key. */
enum store_rc store_put(struct store *s, const char *key, const void *data, size_t len,
                        const char *mime, struct store_error *err);

/* GETs the object at key, at most max bytes, into *data (free()) and *len. */
enum store_rc store_get(struct store *s, const char *key, size_t max, char **data, size_t *len,
                        struct store_error *err);

/* DELETEs the object at key; one already gone counts as deleted (STORE_OK). */
enum store_rc store_delete(struct store *s, const char *key, struct store_error *err);

/* One authenticated request that needs the bucket and the credentials to be
 * right: a ListObjectsV2 of at most one key under storage.prefix. */
enum store_rc store_check(struct store *s, struct store_error *err);

/* store_check with a client of its own: what start-up, reload and -t ask
 * (their answer to anything but STORE_OK is theirs: a refusal stops them, a
 * store that cannot be reached is only warned about). */
enum store_rc store_check_config(const struct config *cfg, struct store_error *err);

#endif
