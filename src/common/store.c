/* store.c — object keys and URLs, signed requests and their outcome
 * (store.h). libcurl signs (CURLOPT_AWS_SIGV4), OpenSSL hashes the body,
 * expat reads S3's XML error documents. */
#include "store.h"
#include "log.h"

#include <expat.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most of an error document kept (S3's are a few hundred bytes). */
#define ERROR_BODY_MAX (64 * 1024)

/* The connect timeout: the whole request's, but no more than this. */
#define CONNECT_TIMEOUT_MAX_MS 5000

const char *store_ext_of_mime(const char *mime) {
    static const char *const map[][2] = {
        {"image/jpeg", "jpg"},  {"image/png", "png"}, {"image/webp", "webp"},
        {"image/avif", "avif"}, {"image/gif", "gif"}, {"image/heif", "heic"},
        {"image/tiff", "tif"},  {"image/jxl", "jxl"},
    };
    for (size_t i = 0; mime && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(mime, map[i][0]) == 0)
            return map[i][1];
    return "bin";
}

static int fits(int w, size_t n) {
    return w >= 0 && (size_t)w < n ? 0 : -1;
}

int store_result_key(const struct config *cfg, const char *id, const char *name, const char *mime,
                     char out[STORE_KEY_MAX]) {
    return fits(snprintf(out, STORE_KEY_MAX, "%s/%s/%s.%s", cfg->storage_prefix, id, name,
                         store_ext_of_mime(mime)),
                STORE_KEY_MAX);
}

int store_upload_key(const struct config *cfg, const char *id, char out[STORE_KEY_MAX]) {
    return fits(snprintf(out, STORE_KEY_MAX, "%s/%s", cfg->storage_upload_prefix, id),
                STORE_KEY_MAX);
}

/* RFC 3986's unreserved characters, which SigV4 never encodes. */
static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encodes s into out; '/' kept when keep_slash (a path). */
static int escape(const char *s, bool keep_slash, char *out, size_t n) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p) || (keep_slash && *p == '/')) {
            if (o + 1 >= n)
                return -1;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= n)
                return -1;
            snprintf(out + o, 4, "%%%02X", *p);
            o += 3;
        }
    }
    if (o >= n)
        return -1;
    out[o] = '\0';
    return 0;
}

int store_query_escape(const char *s, char *out, size_t n) {
    return escape(s, false, out, n);
}

int store_object_url(const struct config *cfg, const char *key, const char *query, char *out,
                     size_t n) {
    char path[STORE_KEY_MAX * 3];
    if (escape(key, true, path, sizeof(path)) < 0)
        return -1;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *base = NULL;
    int rc = -1;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, cfg->storage_endpoint, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &base, 0) != CURLUE_OK)
        goto out;
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* none: the scheme's */
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0'; /* the endpoint's own path, without its last '/' */
    int w;
    if (cfg->storage_path_style)
        w = snprintf(out, n, "%s://%s%s%s%s/%s%s%s%s%s", scheme, host, port ? ":" : "",
                     port ? port : "", base, cfg->storage_bucket, key[0] ? "/" : "", path,
                     query ? "?" : "", query ? query : "");
    else
        w = snprintf(out, n, "%s://%s.%s%s%s%s/%s%s%s", scheme, cfg->storage_bucket, host,
                     port ? ":" : "", port ? port : "", base, path, query ? "?" : "",
                     query ? query : "");
    rc = fits(w, n);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(base);
    curl_url_cleanup(u);
    return rc;
}

int store_public_url(const struct config *cfg, const char *key, char *out, size_t n) {
    const char *base = cfg->storage_public_url;
    if (base == NULL || base[0] == '\0')
        return -1;
    char path[STORE_KEY_MAX * 3];
    if (escape(key, true, path, sizeof(path)) < 0)
        return -1;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    return fits(snprintf(out, n, "%.*s/%s", (int)bl, base, path), n);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    struct store_request *r = arg;
    size_t len = size * nmemb;
    if (r->in_len + len > r->in_max) {
        r->in_too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (r->in_len + len + 1 > r->in_cap) {
        size_t cap = r->in_cap ? r->in_cap : 16384;
        while (cap < r->in_len + len + 1)
            cap *= 2;
        char *p = realloc(r->in, cap);
        if (p == NULL)
            return 0;
        r->in = p;
        r->in_cap = cap;
    }
    memcpy(r->in + r->in_len, data, len);
    r->in_len += len;
    r->in[r->in_len] = '\0';
    return len;
}

static size_t on_send(char *buf, size_t size, size_t nmemb, void *arg) {
    struct store_request *r = arg;
    size_t n = size * nmemb, left = r->out_len - r->out_off;
    if (n > left)
        n = left;
    memcpy(buf, r->out + r->out_off, n);
    r->out_off += n;
    return n;
}

/* libcurl rewinds an upload to send it again (a redirect, an auth retry). */
static int on_seek(void *arg, curl_off_t offset, int origin) {
    struct store_request *r = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > r->out_len)
        return CURL_SEEKFUNC_FAIL;
    r->out_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void sha256_hex(const void *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    out[0] = '\0';
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
        return;
    for (unsigned i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool add_header(struct store_request *r, const char *line) {
    struct curl_slist *l = curl_slist_append(r->headers, line);
    if (l == NULL)
        return false;
    r->headers = l;
    return true;
}

int store_request_setup(const struct config *cfg, struct store_request *r, CURL *easy,
                        const char *method, const char *key, const char *query, const void *body,
                        size_t len, const char *content_type, size_t max_reply) {
    memset(r, 0, sizeof(*r));
    r->easy = easy;
    r->in_max = max_reply > ERROR_BODY_MAX ? max_reply : ERROR_BODY_MAX;
    if (store_object_url(cfg, key, query, r->url, sizeof(r->url)) < 0) {
        log_error("storage: no URL for object '%.100s' under %s", key, cfg->storage_endpoint);
        return -1;
    }
    bool put = strcmp(method, "PUT") == 0;
    char sigv4[128], line[160], hash[65];
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", cfg->storage_region);
    /* libcurl 7.88 hashes only POST fields: the payload's SHA-256 is given,
     * and signed with the other x-amz- headers. */
    sha256_hex(put ? body : "", put ? len : 0, hash);
    snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hash);
    bool ok = add_header(r, line);
    if (put && content_type) {
        snprintf(line, sizeof(line), "Content-Type: %.120s", content_type);
        ok = ok && add_header(r, line);
    }
    long timeout = (long)cfg->storage_timeout;
    ok = ok && curl_easy_setopt(easy, CURLOPT_URL, r->url) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, sigv4) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_USERNAME, cfg->storage_access_key) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_PASSWORD, cfg->storage_secret_key) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                          timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : CONNECT_TIMEOUT_MAX_MS) ==
             CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_WRITEDATA, r) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK;
    if (ok && put) {
        r->out = body;
        r->out_len = len;
        ok = curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_send) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_READDATA, r) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, on_seek) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_SEEKDATA, r) == CURLE_OK;
    } else if (ok && strcmp(method, "HEAD") == 0) {
        ok = curl_easy_setopt(easy, CURLOPT_NOBODY, 1L) == CURLE_OK;
    } else if (ok && strcmp(method, "GET") != 0) {
        ok = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
    }
    if (!ok) {
        log_error("storage: cannot set up a %s request (out of memory?)", method);
        store_request_free(r);
        return -1;
    }
    return 0;
}

/* The text of <Error><Code> and <Error><Message> of an S3 error document. */
struct xml_error {
    int depth;
    char *field; /* being read: code or message, or NULL */
    size_t cap, len;
    char code[64], message[360];
};

static void xml_start(void *arg, const XML_Char *name, const XML_Char **attrs) {
    (void)attrs;
    struct xml_error *x = arg;
    x->depth++;
    x->field = NULL;
    if (x->depth == 2 && strcmp(name, "Code") == 0) {
        x->field = x->code;
        x->cap = sizeof(x->code);
    } else if (x->depth == 2 && strcmp(name, "Message") == 0) {
        x->field = x->message;
        x->cap = sizeof(x->message);
    }
    x->len = 0;
}

static void xml_end(void *arg, const XML_Char *name) {
    (void)name;
    struct xml_error *x = arg;
    x->depth--;
    x->field = NULL;
}

static void xml_text(void *arg, const XML_Char *s, int len) {
    struct xml_error *x = arg;
    if (x->field == NULL || len <= 0)
        return;
    size_t n = (size_t)len;
    if (x->len + n >= x->cap)
        n = x->cap - 1 - x->len;
    memcpy(x->field + x->len, s, n);
    x->len += n;
    x->field[x->len] = '\0';
}

/* Reads S3's error document, if the body is one. */
static void parse_error(const char *body, size_t len, struct xml_error *x) {
    memset(x, 0, sizeof(*x));
    if (body == NULL || len == 0)
        return;
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (p == NULL)
        return;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, xml_start, xml_end);
    XML_SetCharacterDataHandler(p, xml_text);
    if (XML_Parse(p, body, (int)len, 1) == XML_STATUS_ERROR) {
        /* Not XML (a proxy's page): what was read so far, if anything. */
    }
    XML_ParserFree(p);
}

/* Where the request went, for messages: the URL without its query. */
static void where(const struct store_request *r, char *out, size_t n) {
    snprintf(out, n, "%.*s", (int)strcspn(r->url, "?"), r->url);
}

enum store_rc store_request_result(struct store_request *r, CURLcode rc, struct store_error *err) {
    memset(err, 0, sizeof(*err));
    char url[300];
    where(r, url, sizeof(url));
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && r->in_too_big)) {
        bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
        snprintf(err->code, sizeof(err->code), "%s", timeout ? "Timeout" : "Unreachable");
        snprintf(err->message, sizeof(err->message), "the store at %.200s %s: %.256s", url,
                 timeout ? "did not answer in storage.timeout" : "cannot be reached",
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        return STORE_FAILED;
    }
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    err->status = status;
    if (r->in_too_big && status >= 200 && status < 300) {
        snprintf(err->code, sizeof(err->code), "TooBig");
        snprintf(err->message, sizeof(err->message),
                 "the object at %.300s is larger than the %zu bytes expected", url, r->in_max);
        return STORE_REFUSED;
    }
    if (status >= 200 && status < 300)
        return STORE_OK;
    struct xml_error x;
    parse_error(r->in_too_big ? NULL : r->in, r->in_len, &x);
    snprintf(err->code, sizeof(err->code), "%s",
             x.code[0]       ? x.code
             : status == 404 ? "NotFound"
                             : "HTTPError");
    snprintf(err->message, sizeof(err->message), "the store answered %ld %.60s for %.160s%s%.360s",
             status, err->code, url, x.message[0] ? ": " : "", x.message);
    if (status == 404 && strcmp(err->code, "NoSuchBucket") != 0)
        return STORE_NOT_FOUND;
    if (status >= 500 || status == 429 || status == 408 || status == 0)
        return STORE_FAILED;
    return STORE_REFUSED;
}

char *store_request_take_body(struct store_request *r, size_t *len) {
    char *b = r->in;
    *len = r->in_len;
    r->in = NULL;
    r->in_len = r->in_cap = 0;
    if (b == NULL)
        b = calloc(1, 1); /* an empty object */
    return b;
}

void store_request_free(struct store_request *r) {
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    free(r->in);
    r->in = NULL;
    r->in_len = r->in_cap = 0;
}

int store_open(struct store *s, const struct config *cfg) {
    s->cfg = cfg;
    s->easy = curl_easy_init();
    if (s->easy == NULL) {
        log_error("storage: libcurl cannot make a handle");
        return -1;
    }
    return 0;
}

void store_close(struct store *s) {
    if (s->easy)
        curl_easy_cleanup(s->easy);
    s->easy = NULL;
}

/* Runs one request on the client's handle. */
static enum store_rc run(struct store *s, const char *method, const char *key, const char *query,
                         const void *body, size_t len, const char *mime, size_t max_reply,
                         struct store_request *r, struct store_error *err) {
    curl_easy_reset(s->easy); /* the options go; the connections stay */
    if (store_request_setup(s->cfg, r, s->easy, method, key, query, body, len, mime, max_reply) <
        0) {
        memset(err, 0, sizeof(*err));
        snprintf(err->code, sizeof(err->code), "Setup");
        snprintf(err->message, sizeof(err->message), "cannot make the %s request for '%.200s'",
                 method, key);
        return STORE_FAILED;
    }
    CURLcode rc = curl_easy_perform(s->easy);
    enum store_rc out = store_request_result(r, rc, err);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
    return out;
}

enum store_rc store_put(struct store *s, const char *key, const void *data, size_t len,
                        const char *mime, struct store_error *err) {
    struct store_request r;
    enum store_rc rc = run(s, "PUT", key, NULL, data, len, mime, 0, &r, err);
    store_request_free(&r);
    return rc;
}

enum store_rc store_get(struct store *s, const char *key, size_t max, char **data, size_t *len,
                        struct store_error *err) {
    struct store_request r;
    *data = NULL;
    *len = 0;
    enum store_rc rc = run(s, "GET", key, NULL, NULL, 0, NULL, max, &r, err);
    if (rc == STORE_OK) {
        *data = store_request_take_body(&r, len);
        if (*data == NULL)
            rc = STORE_FAILED;
    }
    store_request_free(&r);
    return rc;
}

enum store_rc store_delete(struct store *s, const char *key, struct store_error *err) {
    struct store_request r;
    enum store_rc rc = run(s, "DELETE", key, NULL, NULL, 0, NULL, 0, &r, err);
    store_request_free(&r);
    return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

enum store_rc store_check(struct store *s, struct store_error *err) {
    char prefix[STORE_KEY_MAX * 3], query[STORE_KEY_MAX * 3 + 64];
    char under[STORE_KEY_MAX];
    snprintf(under, sizeof(under), "%s/", s->cfg->storage_prefix);
    if (store_query_escape(under, prefix, sizeof(prefix)) < 0)
        return STORE_FAILED;
    /* Canonical: the keys in order. */
    snprintf(query, sizeof(query), "list-type=2&max-keys=1&prefix=%s", prefix);
    struct store_request r;
    enum store_rc rc = run(s, "GET", "", query, NULL, 0, NULL, 0, &r, err);
    store_request_free(&r);
    return rc == STORE_NOT_FOUND ? STORE_REFUSED : rc; /* the bucket is not there */
}

enum store_rc store_check_config(const struct config *cfg, struct store_error *err) {
    struct store s;
    memset(err, 0, sizeof(*err));
    if (store_open(&s, cfg) < 0) {
        snprintf(err->code, sizeof(err->code), "Setup");
        snprintf(err->message, sizeof(err->message), "libcurl cannot make a handle");
        return STORE_FAILED;
    }
    enum store_rc rc = store_check(&s, err);
    store_close(&s);
    return rc;
}
