/* deliver.c — the delivery child: takes deliveries from {p}:wh:ready, runs up
 * to DELIVER_INFLIGHT of them at once on one curl multi handle, and records
 * each attempt's outcome with deliver.lua. */
#include "deliver.h"
#include "cache.h"
#include "childsig.h"
#include "hostlist.h"
#include "id.h"
#include "job.h"
#include "log.h"
#include "store.h"
#include "mail.h"
#include "netaddr.h"
#include "queue.h"
#include "rconn.h"
#include "units.h"
#include "version.h"
#include "webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DELIVER_INFLIGHT 32       /* transfers at once */
#define PROMOTE_EVERY_MS 250      /* due retries moved back to ready this often */
#define PROMOTE_BATCH    "500"    /* at most this many per run */
#define TAKE_BLOCK       "0.5"    /* seconds BLMOVE waits when nothing is in flight */
#define POLL_MS          200      /* curl_multi_poll's longest sleep */
#define RETRY_AFTER_MAX  86400000 /* a Retry-After is honoured up to a day */
#define DID_MAX          96       /* "mail:" + a job id */

/* One delivery in flight. */
struct delivery {
    char did[DID_MAX]; /* "cb:<job id>" or "mail:<job id>" */
    const char *job;   /* points into did */
    bool mail;
    int attempt; /* this attempt's number, 1 = the first */
    CURL *curl;
    struct curl_slist *headers;
    struct mail msg;
    char *body;      /* the callback's JSON */
    bool private_ok; /* the URL's host and port on fetch.allow_hosts, or allow_private */
    bool blocked;    /* the guard refused the address connected to */
    char blocked_addr[64];
    enum netaddr_class blocked_class;
    int64_t retry_after_ms;
    char errbuf[CURL_ERROR_SIZE];
};

struct deliverer {
    const struct config *cfg;
    struct shm_slot *slot;
    struct shm_cache *cache;
    struct rconn redis;
    CURLM *multi;
    bool s3;            /* storage.backend = s3: e-mailed thumbnails come from the store */
    struct store store; /* blocking, for them */
    struct delivery *inflight[DELIVER_INFLIGHT];
    int n;
    int64_t delays[DELIVER_SCHEDULE_MAX];
    int ndelays;
    int64_t last_promote_ms;
    char wid[QUEUE_WID_MAX];
    char k_ready[QUEUE_KEY_MAX], k_proc[QUEUE_KEY_MAX], k_delayed[QUEUE_KEY_MAX],
        k_dead[QUEUE_KEY_MAX], k_workers[QUEUE_KEY_MAX];
};

/* --- policy (pure, unit-tested) -------------------------------------------- */

int deliver_schedule_parse(const char *text, int64_t *delays, int max) {
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", text) >= (int)sizeof(buf))
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        uint64_t ms;
        if (n == max || units_parse_duration(tok, &ms) < 0)
            return -1;
        delays[n++] = (int64_t)ms;
    }
    return n;
}

enum deliver_outcome deliver_next(int attempt, const int64_t *delays, int ndelays,
                                  int64_t retry_after_ms, double jitter, int64_t *delay_ms) {
    if (attempt < 1 || attempt > ndelays)
        return DELIVER_FAILED;
    int64_t d = (int64_t)((double)delays[attempt - 1] * (0.8 + 0.4 * jitter));
    if (retry_after_ms > RETRY_AFTER_MAX)
        retry_after_ms = RETRY_AFTER_MAX;
    *delay_ms = d > retry_after_ms ? d : retry_after_ms;
    return DELIVER_RETRY;
}

int64_t deliver_retry_after(const char *value, int64_t now_s) {
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value == '\0')
        return 0;
    char *end = NULL;
    long long secs = strtoll(value, &end, 10);
    if (end != value && *end == '\0')
        return secs > 0 ? (secs > RETRY_AFTER_MAX / 1000 ? RETRY_AFTER_MAX : secs * 1000) : 0;
    time_t at = curl_getdate(value, NULL);
    if (at <= 0 || (int64_t)at <= now_s)
        return 0;
    int64_t ms = ((int64_t)at - now_s) * 1000;
    return ms > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : ms;
}

static const char *outcome_name(enum deliver_outcome o) {
    switch (o) {
    case DELIVER_DELIVERED:
        return "delivered";
    case DELIVER_RETRY:
        return "retry";
    case DELIVER_STOPPED:
        return "stopped";
    case DELIVER_FAILED:
        break;
    }
    return "failed";
}

/* --- process ----------------------------------------------------------------- */

static double jitter(void) {
    unsigned int r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
        r = (unsigned int)random();
    return (double)(r % 10000) / 10000.0;
}

/* --- Redis ---------------------------------------------------------------------- */

static bool in_flight(const struct deliverer *d, const char *did) {
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->inflight[i]->did, did) == 0)
            return true;
    return false;
}

/* Deliveries on our proc list that are not in flight (their outcome could not
 * be recorded while Redis was away) go back to the front of ready: they are
 * sent again with the same webhook-id. Pushed before removed, so a crash in
 * between leaves a duplicate, never a loss. */
static void requeue_orphans(struct deliverer *d) {
    const char *lrange[] = {"LRANGE", d->k_proc, "0", "-1"};
    redisReply *r = rconn_command(&d->redis, "LRANGE", 4, lrange, NULL);
    if (r == NULL)
        return;
    for (size_t i = r->type == REDIS_REPLY_ARRAY ? r->elements : 0; i-- > 0;) {
        const char *did = r->element[i]->str;
        if (r->element[i]->type != REDIS_REPLY_STRING || in_flight(d, did))
            continue;
        const char *lpush[] = {"LPUSH", d->k_ready, did};
        const char *lrem[] = {"LREM", d->k_proc, "1", did};
        freeReplyObject(rconn_command(&d->redis, "LPUSH", 3, lpush, NULL));
        freeReplyObject(rconn_command(&d->redis, "LREM", 4, lrem, NULL));
    }
    freeReplyObject(r);
}

/* After every (re)connect: listed under the node again, and what was left on
 * our proc list requeued. */
static void reconnected(struct rconn *r, void *arg) {
    struct deliverer *d = arg;
    const char *sadd[] = {"SADD", d->k_workers, d->wid};
    freeReplyObject(rconn_command(r, "SADD workers", 3, sadd, NULL));
    if (rconn_connected(r))
        requeue_orphans(d);
}

static void promote(struct deliverer *d) {
    int64_t now = units_mono_ms();
    if (now - d->last_promote_ms < PROMOTE_EVERY_MS)
        return;
    d->last_promote_ms = now;
    const char *argv[] = {d->k_delayed, d->k_ready, PROMOTE_BATCH};
    if (rconn_connected(&d->redis))
        freeReplyObject(rconn_script(&d->redis, "promote script", QUEUE_SCRIPT_DELIVER_PROMOTE, 2,
                                     1, argv, NULL));
}

/* --- recording outcomes ---------------------------------------------------------- */

/* Records the attempt's outcome. A retry that the schedule has no delay left
 * for becomes a failure. The script tells every node's cache that the job's
 * document (which shows the delivery's status) changed; this node's entry is
 * also dropped here at once, so the next read takes it from Redis. */
static void record(struct deliverer *d, struct delivery *v, enum deliver_outcome o, long status,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void record(struct deliverer *d, struct delivery *v, enum deliver_outcome o, long status,
                   const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int64_t delay = 0;
    if (o == DELIVER_RETRY) {
        o = deliver_next(v->attempt, d->delays, d->ndelays, v->retry_after_ms, jitter(), &delay);
        if (o == DELIVER_FAILED) {
            char why[sizeof(msg)];
            snprintf(why, sizeof(why), "%s", msg);
            snprintf(msg, sizeof(msg), "given up after %d attempts; the last: %.400s", v->attempt,
                     why);
        }
    }
    const char *kind = v->mail ? "e-mail" : "callback";
    if (o == DELIVER_DELIVERED)
        log_info("delivery: %s of job %s delivered (attempt %d)", kind, v->job, v->attempt);
    else if (o == DELIVER_RETRY)
        log_info("delivery: %s of job %s, attempt %d: %s; next in %lld ms", kind, v->job,
                 v->attempt, msg, (long long)delay);
    else
        log_warn("delivery: %s of job %s %s after attempt %d: %s", kind, v->job,
                 o == DELIVER_STOPPED ? "stopped" : "failed", v->attempt, msg);

    if (!rconn_ready(&d->redis))
        return; /* left on our proc list: sent again after the reconnect */
    const char *prefix = d->cfg->redis_key_prefix;
    char k_d[QUEUE_KEY_MAX], k_job[QUEUE_KEY_MAX];
    queue_key(k_d, sizeof(k_d), prefix, "wh:d", v->did);
    queue_key(k_job, sizeof(k_job), prefix, "job", v->job);
    char st[24], dl[24], ttl[24], deadmax[16];
    snprintf(st, sizeof(st), "%ld", status);
    snprintf(dl, sizeof(dl), "%lld", (long long)delay);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)d->cfg->redis_failure_ttl);
    snprintf(deadmax, sizeof(deadmax), "%d", QUEUE_DEAD_MAX);
    const char *argv[] = {k_d, d->k_proc, d->k_delayed, d->k_dead, k_job,   v->did, outcome_name(o),
                          st,  msg,       dl,           ttl,       deadmax, prefix};
    freeReplyObject(
        rconn_script(&d->redis, "deliver script", QUEUE_SCRIPT_DELIVER, 5, 8, argv, NULL));
    if (d->cache)
        shm_cache_invalidate(d->cache, v->job, units_mono_ms());
}

/* --- starting a delivery ------------------------------------------------------------ */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *arg) {
    (void)ptr;
    (void)arg;
    return size * nmemb;
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *arg) {
    struct delivery *v = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && n < 256 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        char value[256];
        size_t len = n - (sizeof(name) - 1);
        memcpy(value, buf + sizeof(name) - 1, len);
        value[len] = '\0';
        value[strcspn(value, "\r\n")] = '\0';
        v->retry_after_ms = deliver_retry_after(value, (int64_t)time(NULL));
    }
    return n;
}

/* The SSRF guard, as for fetching: only public addresses unless the URL's
 * host (and port) is allowed (fetch.allow_hosts) or fetch.allow_private is
 * on. callback.allow_hosts grants no address. */
static curl_socket_t on_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a) {
    struct delivery *v = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    enum netaddr_class c = netaddr_classify(&a->addr);
    if (!v->private_ok && c != NETADDR_PUBLIC) {
        v->blocked = true;
        v->blocked_class = c;
        netaddr_to_text(&a->addr, v->blocked_addr, sizeof(v->blocked_addr));
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static void delivery_free(struct delivery *v) {
    if (v == NULL)
        return;
    if (v->curl)
        curl_easy_cleanup(v->curl);
    curl_slist_free_all(v->headers);
    mail_free(&v->msg);
    free(v->body);
    free(v);
}

/* The callback's body: the job document without the deliveries' own status
 * (which changes between attempts, while the body must not). */
static char *callback_body(const char *id, const struct job_record *rec) {
    json_t *doc = job_document(id, rec);
    if (doc == NULL)
        return NULL;
    json_object_del(doc, "callback");
    json_object_del(doc, "email_delivery");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* Prepares the callback of v to url. Returns 0 to send it; -1 when the
 * outcome was recorded already (nothing to send). */
static int prepare_callback(struct deliverer *d, struct delivery *v, const char *url) {
    const struct config *cfg = d->cfg;
    if (cfg->callback_secret[0] == '\0') {
        record(d, v, DELIVER_FAILED, 0,
               "callback.secret is not set on this server, so the callback cannot be signed");
        return -1;
    }
    char host[256];
    int port = 0;
    if (hostlist_url_host(url, host, sizeof(host), &port) < 0) {
        record(d, v, DELIVER_FAILED, 0, "the callback URL has no usable host");
        return -1;
    }
    if (hostlist_match(cfg->fetch_deny_hosts, host, port)) {
        record(d, v, DELIVER_FAILED, 0, "callback_blocked_host: %s is on fetch.deny_hosts", host);
        return -1;
    }
    /* Checked at submit too; this catches a job queued before a reload, or
     * by a node with another list. */
    if (cfg->callback_allow_hosts[0] != '\0' &&
        !hostlist_match(cfg->callback_allow_hosts, host, port)) {
        record(d, v, DELIVER_FAILED, 0,
               "callback_blocked_host: %s port %d is not on callback.allow_hosts", host, port);
        return -1;
    }
    v->private_ok = cfg->fetch_allow_private || hostlist_match(cfg->fetch_allow_hosts, host, port);

    char k_job[QUEUE_KEY_MAX];
    queue_key(k_job, sizeof(k_job), cfg->redis_key_prefix, "job", v->job);
    const char *hgetall[] = {"HGETALL", k_job};
    redisReply *r = rconn_command(&d->redis, "HGETALL", 2, hgetall, NULL);
    if (r == NULL)
        return -1; /* stays on our proc list until Redis is back */
    struct job_record rec = {0};
    int rc = queue_reply_record(&rec, r, 0);
    freeReplyObject(r);
    bool gone = rc == 0 && rec.count == 0;
    if (rc == 0 && !gone)
        v->body = callback_body(v->job, &rec);
    job_record_free(&rec);
    if (gone) {
        record(d, v, DELIVER_FAILED, 0, "the job was deleted or expired before its callback");
        return -1;
    }
    if (v->body == NULL)
        return -1;

    char id[DID_MAX + 8], ts[32], sig[WEBHOOK_SIGNATURE_MAX], line[WEBHOOK_SIGNATURE_MAX + 32];
    long long now = (long long)time(NULL);
    snprintf(id, sizeof(id), "webhook-id: msg_%s", v->job);
    snprintf(ts, sizeof(ts), "webhook-timestamp: %lld", now);
    if (webhook_sign(cfg->callback_secret, id + strlen("webhook-id: "), now, v->body,
                     strlen(v->body), sig, sizeof(sig)) < 0) {
        record(d, v, DELIVER_FAILED, 0, "callback.secret does not decode; fix it and reload");
        return -1;
    }
    snprintf(line, sizeof(line), "webhook-signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json", id, ts, line, "Expect:"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(*headers); i++) {
        struct curl_slist *l = curl_slist_append(v->headers, headers[i]);
        if (l == NULL)
            return -1;
        v->headers = l;
    }
    CURL *e = v->curl;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, v->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, v->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(v->body));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "thumbnailed/" THUMBNAILED_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, v);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, v);
    return 0;
}

/* The thumbnail of an e-mail from the object store (the first key of the
 * job's res_obj): a store that fails is a retry of the delivery. */
static int mail_from_store(struct deliverer *d, struct delivery *v, const char *address,
                           const char *mime, const char *objects) {
    char key[STORE_KEY_MAX];
    snprintf(key, sizeof(key), "%.*s", (int)strcspn(objects, " "), objects);
    if (!d->s3) {
        record(d, v, DELIVER_RETRY, 0,
               "the thumbnail is in the object store, and storage.backend is not s3 here");
        return -1;
    }
    char *data;
    size_t len;
    struct store_error err;
    enum store_rc rc =
        store_get(&d->store, key, (size_t)d->cfg->image_max_result_bytes, &data, &len, &err);
    int out = -1;
    if (rc == STORE_NOT_FOUND)
        record(d, v, DELIVER_FAILED, 0, "the thumbnail was deleted or expired before its e-mail");
    else if (rc != STORE_OK)
        record(d, v, DELIVER_RETRY, 0, "the thumbnail could not be read: %s", err.message);
    else if (mail_prepare(v->curl, &v->msg, d->cfg, address, v->job, mime, data, len) < 0)
        record(d, v, DELIVER_FAILED, 0, "the e-mail cannot be built (check smtp.from)");
    else
        out = 0;
    free(data);
    return out;
}

/* Prepares the e-mail of v to address. Returns 0 or -1 as prepare_callback. */
static int prepare_mail(struct deliverer *d, struct delivery *v, const char *address) {
    const struct config *cfg = d->cfg;
    if (cfg->smtp_url[0] == '\0') {
        record(d, v, DELIVER_FAILED, 0, "e-mail is not configured on this server (smtp.url)");
        return -1;
    }
    if (cfg->smtp_allow_recipients[0] != '\0' &&
        !job_email_domain_listed(cfg->smtp_allow_recipients, address)) {
        record(d, v, DELIVER_FAILED, 0,
               "e-mail to %s is refused: its domain is not on smtp.allow_recipients", address);
        return -1;
    }
    char k_job[QUEUE_KEY_MAX], k_res[QUEUE_KEY_MAX];
    queue_key(k_job, sizeof(k_job), cfg->redis_key_prefix, "job", v->job);
    queue_key(k_res, sizeof(k_res), cfg->redis_key_prefix, "res", v->job);
    const char *hmget[] = {"HMGET", k_job, "res_mime", "res_obj", "res_bytes"};
    redisReply *fields = rconn_command(&d->redis, "HMGET", 5, hmget, NULL);
    if (fields == NULL)
        return -1;
    const redisReply *mime =
        fields->type == REDIS_REPLY_ARRAY && fields->elements == 3 ? fields->element[0] : NULL;
    const redisReply *obj = mime ? fields->element[1] : NULL;
    /* The first encoding: the job's others follow its bytes (job.h, res_rend). */
    char last[24];
    snprintf(last, sizeof(last), "%lld",
             mime && fields->element[2]->type == REDIS_REPLY_STRING
                 ? strtoll(fields->element[2]->str, NULL, 10) - 1
                 : -1LL);
    const char *get[] = {"GETRANGE", k_res, "0", last};
    int rc = -1;
    if (mime == NULL || mime->type != REDIS_REPLY_STRING) {
        record(d, v, DELIVER_FAILED, 0, "the thumbnail was deleted or expired before its e-mail");
    } else if (obj->type == REDIS_REPLY_STRING && obj->len > 0) {
        rc = mail_from_store(d, v, address, mime->str, obj->str);
    } else {
        redisReply *bytes = rconn_command(&d->redis, "GETRANGE", 4, get, NULL);
        if (bytes == NULL)
            ;
        else if (bytes->type != REDIS_REPLY_STRING || bytes->len == 0)
            record(d, v, DELIVER_FAILED, 0,
                   "the thumbnail was deleted or expired before its e-mail");
        else if (mail_prepare(v->curl, &v->msg, cfg, address, v->job, mime->str, bytes->str,
                              bytes->len) < 0)
            record(d, v, DELIVER_FAILED, 0, "the e-mail cannot be built (check smtp.from)");
        else
            rc = 0;
        freeReplyObject(bytes);
    }
    freeReplyObject(fields);
    return rc;
}

/* Starts the delivery did (just moved to our proc list). */
static void start(struct deliverer *d, const char *did) {
    const char *colon = strchr(did, ':');
    bool mail = strncmp(did, "mail:", 5) == 0;
    if (strlen(did) >= DID_MAX || colon == NULL || !(mail || strncmp(did, "cb:", 3) == 0) ||
        !id_is_valid(colon + 1)) {
        log_warn("delivery: dropping a malformed entry from %s", d->k_ready);
        const char *lrem[] = {"LREM", d->k_proc, "0", did};
        freeReplyObject(rconn_command(&d->redis, "LREM", 4, lrem, NULL));
        return;
    }
    struct delivery *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return;
    snprintf(v->did, sizeof(v->did), "%s", did);
    v->job = v->did + (colon - did) + 1;
    v->mail = mail;

    char k_d[QUEUE_KEY_MAX];
    queue_key(k_d, sizeof(k_d), d->cfg->redis_key_prefix, "wh:d", did);
    const char *hmget[] = {"HMGET", k_d, "to", "attempts", "status"};
    redisReply *r = rconn_command(&d->redis, "HMGET", 5, hmget, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[2]->str, "pending") != 0) {
        if (r) { /* gone or already settled: nothing to send */
            const char *lrem[] = {"LREM", d->k_proc, "0", did};
            freeReplyObject(rconn_command(&d->redis, "LREM", 4, lrem, NULL));
        }
        freeReplyObject(r);
        free(v);
        return;
    }
    v->attempt = (r->element[1]->type == REDIS_REPLY_STRING ? atoi(r->element[1]->str) : 0) + 1;
    v->curl = curl_easy_init();
    int rc = -1;
    if (v->curl) {
        curl_easy_setopt(v->curl, CURLOPT_PRIVATE, v);
        curl_easy_setopt(v->curl, CURLOPT_ERRORBUFFER, v->errbuf);
        curl_easy_setopt(v->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(v->curl, CURLOPT_TIMEOUT_MS, (long)d->cfg->callback_timeout);
        curl_easy_setopt(v->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)d->cfg->fetch_connect_timeout);
        rc = mail ? prepare_mail(d, v, r->element[0]->str)
                  : prepare_callback(d, v, r->element[0]->str);
    }
    freeReplyObject(r);
    if (rc < 0 || curl_multi_add_handle(d->multi, v->curl) != CURLM_OK) {
        delivery_free(v);
        return;
    }
    d->inflight[d->n++] = v;
}

/* With redis.min_replicas_ack, a delivery goes out only once that many
 * replicas have its claim, and so (replication keeps order) the job's end
 * that queued it: a failover never loses a result whose callback was sent.
 * Returns false to leave it on our list for now (Redis lost, or stopping). */
static bool claim_replicated(struct deliverer *d) {
    long long want = d->cfg->redis_min_replicas_ack;
    bool logged = false;
    while (want > 0 && !childsig_stop) {
        redisReply *r = rconn_commandf(&d->redis, "WAIT", "WAIT %lld %lld", want,
                                       (long long)d->cfg->redis_connect_timeout);
        if (r == NULL)
            return false;
        long long got = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        if (got >= want)
            return true;
        if (!logged)
            log_warn("delivery: %lld of redis.min_replicas_ack = %lld replicas confirm; "
                     "holding deliveries until they do",
                     got, want);
        logged = true;
    }
    return want <= 0;
}

/* Takes one delivery: waits up to TAKE_BLOCK when nothing is in flight.
 * Returns 1 when one was started (or dropped), 0 when the queue is empty. */
static int take(struct deliverer *d) {
    const char *blmove[] = {"BLMOVE", d->k_ready, d->k_proc, "LEFT", "RIGHT", TAKE_BLOCK};
    const char *lmove[] = {"LMOVE", d->k_ready, d->k_proc, "LEFT", "RIGHT"};
    redisReply *r = d->n == 0 ? rconn_command(&d->redis, "BLMOVE", 6, blmove, NULL)
                              : rconn_command(&d->redis, "LMOVE", 5, lmove, NULL);
    if (r == NULL)
        return 0;
    int got = r->type == REDIS_REPLY_STRING;
    if (got && claim_replicated(d))
        start(d, r->str);
    freeReplyObject(r);
    return got;
}

/* --- finishing ------------------------------------------------------------------------ */

static void finish(struct deliverer *d, struct delivery *v, CURLcode rc) {
    long status = 0;
    curl_easy_getinfo(v->curl, CURLINFO_RESPONSE_CODE, &status);
    const char *why = v->errbuf[0] ? v->errbuf : curl_easy_strerror(rc);
    if (v->mail) {
        if (rc == CURLE_OK)
            record(d, v, DELIVER_DELIVERED, status, "accepted by the mail server");
        else if (status >= 500 && status < 600 && rc != CURLE_LOGIN_DENIED)
            record(d, v, DELIVER_FAILED, status, "the mail server refused the message (%ld): %s",
                   status, why);
        else
            record(d, v, DELIVER_RETRY, status, "the mail server did not take it: %s", why);
        return;
    }
    if (v->blocked) {
        record(d, v, DELIVER_FAILED, 0,
               "callback_blocked_address: the callback host resolved to %s (%s), which "
               "callbacks may not reach",
               v->blocked_addr, netaddr_class_name(v->blocked_class));
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        record(d, v, DELIVER_RETRY, status, "callback_timeout: no answer within callback.timeout");
    } else if (rc != CURLE_OK) {
        record(d, v, DELIVER_RETRY, status, "callback_failed: %s", why);
    } else if (status >= 200 && status < 300) {
        record(d, v, DELIVER_DELIVERED, status, "the receiver answered %ld", status);
    } else if (status == 410) {
        record(d, v, DELIVER_STOPPED, status, "the receiver answered 410 Gone: not sent again");
    } else {
        if (status != 429 && status != 503)
            v->retry_after_ms = 0;
        record(d, v, DELIVER_RETRY, status, "the receiver answered %ld%s", status,
               status >= 300 && status < 400 ? " (redirects are not followed)" : "");
    }
}

static void reap_done(struct deliverer *d) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct delivery *v = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&v);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(d->multi, msg->easy_handle);
        finish(d, v, rc);
        for (int i = 0; i < d->n; i++) {
            if (d->inflight[i] == v) {
                d->inflight[i] = d->inflight[--d->n];
                break;
            }
        }
        delivery_free(v);
    }
}

/* --- main ---------------------------------------------------------------------------------- */

int deliver_main(const struct child_args *args) {
    static struct deliverer d;
    memset(&d, 0, sizeof(d));
    d.cfg = args->cfg;
    d.slot = shm_segment_slot(args->shm, args->slot);
    if (args->shm && (d.cache = shm_cache_attach(shm_segment_cache_area(args->shm))) == NULL)
        log_warn("delivery: the shared cache cannot be used");
    queue_worker_id(d.wid, sizeof(d.wid), args->node_id, getpid());
    const char *p = d.cfg->redis_key_prefix;
    queue_key(d.k_ready, sizeof(d.k_ready), p, "wh:ready", NULL);
    queue_key(d.k_proc, sizeof(d.k_proc), p, "wh:proc", d.wid);
    queue_key(d.k_delayed, sizeof(d.k_delayed), p, "wh:delayed", NULL);
    queue_key(d.k_dead, sizeof(d.k_dead), p, "wh:dead", NULL);
    queue_key(d.k_workers, sizeof(d.k_workers), p, "workers", args->node_id);
    childsig_install();

    d.ndelays = deliver_schedule_parse(d.cfg->callback_schedule, d.delays, DELIVER_SCHEDULE_MAX);
    if (d.ndelays < 0) {
        log_error("delivery: callback.schedule cannot be used");
        return 2;
    }
    long timeout = (long)d.cfg->redis_connect_timeout + 2000; /* beyond BLMOVE's block */
    if (rconn_init(&d.redis, d.cfg, "delivery", timeout) < 0)
        return 2;
    rconn_set_on_connect(&d.redis, reconnected, &d);
    d.s3 = d.cfg->storage_backend == CONFIG_STORAGE_S3;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        (d.multi = curl_multi_init()) == NULL || (d.s3 && store_open(&d.store, d.cfg) < 0)) {
        log_error("delivery: libcurl does not initialise");
        return 2;
    }
    log_info("delivery %s started", d.wid);

    while (!childsig_stop || d.n > 0) {
        if (childsig_reopen) {
            childsig_reopen = 0;
            log_reopen();
        }
        if (d.slot)
            atomic_store(&d.slot->heartbeat_ms, units_mono_ms());
        log_tick();
        if (!childsig_stop && rconn_ready(&d.redis)) {
            promote(&d);
            while (d.n < DELIVER_INFLIGHT && !childsig_stop && rconn_connected(&d.redis) &&
                   take(&d) == 1)
                ;
        }
        if (d.n == 0) {
            if (!rconn_connected(&d.redis) && !childsig_stop)
                usleep(100 * 1000); /* waiting out the connect backoff */
            continue;
        }
        int running = 0;
        curl_multi_perform(d.multi, &running);
        reap_done(&d);
        if (d.n > 0)
            curl_multi_poll(d.multi, NULL, 0, POLL_MS, NULL);
        curl_multi_perform(d.multi, &running);
        reap_done(&d);
    }

    if (rconn_connected(&d.redis)) {
        const char *srem[] = {"SREM", d.k_workers, d.wid};
        freeReplyObject(rconn_command(&d.redis, "SREM", 3, srem, NULL));
    }
    rconn_close(&d.redis);
    curl_multi_cleanup(d.multi);
    if (d.s3)
        store_close(&d.store);
    curl_global_cleanup();
    log_info("delivery %s stopped", d.wid);
    return 0;
}
