/* worker.c — a worker child: its signals and libraries, the job loop, the
 * scoreboard slot, and turning a pipeline outcome into the job's stored state. */
#include "worker.h"
#include "childsig.h"
#include "failure.h"
#include "fetch.h"
#include "imgtype.h"
#include "jobcache.h"
#include "jobqueue.h"
#include "log.h"
#include "memlimit.h"
#include "pipeline.h"
#include "store.h"
#include "thumb.h"
#include "units.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The worker process's context. */
struct worker {
    const struct config *cfg;
    struct shm_header *shm;  /* the segment's header (paused flag, counters), or NULL */
    struct shm_slot *slot;   /* NULL when run without a scoreboard */
    struct shm_cache *cache; /* NULL when run without the shared segment */
    struct jobqueue q;
    struct pipeline pl;
    char wid[QUEUE_WID_MAX];
    /* storage.backend = s3 (store.h): the client, whether the store failed
     * the last request (then no job is taken until it answers again), and
     * when {p}:drop was last swept. */
    bool s3;
    struct store store;
    bool store_down;
    int64_t swept_ms;
};

static void slot_heartbeat(struct shm_slot *s) {
    if (s)
        atomic_store(&s->heartbeat_ms, units_mono_ms());
}

static void slot_busy(struct shm_slot *s, const char *id) {
    if (s == NULL)
        return;
    snprintf(s->job_id, sizeof(s->job_id), "%.*s", (int)sizeof(s->job_id) - 1, id);
    atomic_store(&s->job_started_ms, units_mono_ms());
    atomic_store(&s->state, SHM_SLOT_BUSY);
}

static void slot_idle(struct shm_slot *s, bool finished) {
    if (s == NULL)
        return;
    atomic_store(&s->state, SHM_SLOT_IDLE);
    atomic_store(&s->job_started_ms, 0);
    s->job_id[0] = '\0';
    if (finished)
        atomic_fetch_add(&s->jobs_done, 1);
}

/* How long a paused worker sleeps before it looks at the flag again. */
#define PAUSE_POLL_MS 200

/* Whether the workers are paused ({p}:paused, as the master last read it):
 * then the slot says so, and the worker sleeps a moment instead of taking a
 * job. */
static bool paused(struct worker *w) {
    bool on = w->shm && atomic_load(&w->shm->paused) != 0;
    if (w->slot)
        atomic_store(&w->slot->state, on ? SHM_SLOT_PAUSED : SHM_SLOT_IDLE);
    if (on) {
        struct timespec ts = {0, PAUSE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL); /* a signal (stop) cuts it short */
    }
    return on;
}

/* Name/value pairs for the job hash, with room for their numbers. */
struct fields {
    const char *kv[2 * JOBQUEUE_FIELDS_MAX];
    size_t n; /* pairs */
    char num[12][24];
    int nnum;
};

static void add(struct fields *f, const char *name, const char *value) {
    if (f->n >= JOBQUEUE_FIELDS_MAX) {
        log_error("worker: more than %d fields for one job: %s dropped", JOBQUEUE_FIELDS_MAX, name);
        return;
    }
    f->kv[2 * f->n] = name;
    f->kv[2 * f->n + 1] = value;
    f->n++;
}

static void add_int(struct fields *f, const char *name, long long v) {
    char *buf = f->num[f->nnum++];
    snprintf(buf, sizeof(f->num[0]), "%lld", v);
    add(f, name, buf);
}

static void add_source(struct fields *f, const struct pipeline_outcome *out) {
    if (out->src_mime[0] == '\0')
        return;
    add(f, "src_mime", out->src_mime);
    add_int(f, "src_bytes", (long long)out->src_bytes);
    if (out->src_width > 0) {
        add_int(f, "src_width", out->src_width);
        add_int(f, "src_height", out->src_height);
    }
}

/* How often a PUT the store failed is tried again within one attempt, and
 * the pause before each (ms); beyond that the attempt fails and is retried
 * later like any other transient failure. */
#define STORE_TRIES 3
static const int store_pause_ms[STORE_TRIES] = {0, 200, 800};

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal (stop) cuts it short */
}

/* The store failed a request: say so once, and take no job until it answers. */
static void store_failed(struct worker *w, const struct store_error *err) {
    if (!w->store_down)
        log_warn("worker %s: %s; taking no job until the store answers", w->wid, err->message);
    w->store_down = true;
}

/* A done job's encodings as they are stored: each output's primary (the
 * last format it listed, what a client that names none gets) first, then its
 * others in the order listed — the order of res_rend's lines (job.h), of the
 * bytes in {p}:res:<id> and of the objects in res_obj. */
struct stored {
    int order[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX]; /* indices into the set's encodings */
    int rank[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX];  /* each one's place in its output's list */
    int n;
    char *index;       /* res_rend */
    char *keys;        /* res_obj (storage.backend = s3) */
    char *blob;        /* redis: the encodings concatenated, when more than one */
    const void *bytes; /* what goes to Redis: blob, or the one encoding */
    size_t len;
};

static void stored_free(struct stored *st) {
    free(st->index);
    free(st->keys);
    free(st->blob);
    memset(st, 0, sizeof(*st));
}

/* Lays out set's encodings of job id for p (order, res_rend, the keys with
 * storage.backend = s3, the bytes for Redis). Returns 0, or -1 with fail set. */
static int stored_layout(struct worker *w, const char *id, const struct job_params *p,
                         const struct thumb_set *set, struct stored *st, struct failure *fail) {
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < set->nenc;) {
        int j = i; /* [i, j): one output's encodings, in the order listed */
        while (j < set->nenc && set->enc[j].output == set->enc[i].output)
            j++;
        st->order[st->n] = j - 1;
        st->rank[st->n++] = j - 1 - i;
        for (int k = i; k < j - 1; k++) {
            st->order[st->n] = k;
            st->rank[st->n++] = k - i;
        }
        i = j;
    }
    size_t total = 0;
    for (int i = 0; i < st->n; i++)
        total += set->enc[st->order[i]].len;
    size_t line_max = 200, key_max = STORE_KEY_MAX + 1;
    st->index = malloc((size_t)st->n * line_max);
    st->keys = w->s3 ? malloc((size_t)st->n * key_max) : NULL;
    st->blob = st->n > 1 && !w->s3 ? malloc(total ? total : 1) : NULL;
    if (st->index == NULL || (w->s3 && st->keys == NULL) || (st->n > 1 && !w->s3 && !st->blob))
        return failure_set(fail, "internal_error", "out of memory laying out the result");
    size_t ni = 0, nk = 0, off = 0;
    for (int i = 0; i < st->n; i++) {
        const struct thumb_encoding *e = &set->enc[st->order[i]];
        const struct job_output *o = &p->out[e->output];
        struct job_encoding je = {.output = e->output,
                                  .rank = st->rank[i],
                                  .format = e->format,
                                  .bytes = (long long)e->len,
                                  .width = e->width,
                                  .height = e->height,
                                  .offset = (long long)off};
        snprintf(je.name, sizeof(je.name), "%s", o->name);
        snprintf(je.mime, sizeof(je.mime), "%s", e->mime);
        snprintf(je.etag, sizeof(je.etag), "%s", e->etag);
        int len = job_encoding_line(&je, st->index + ni, line_max - 1);
        if (len < 0)
            return failure_set(fail, "internal_error", "a line of the result's index does not fit");
        ni += (size_t)len;
        st->index[ni++] = i + 1 < st->n ? '\n' : '\0';
        if (st->keys) {
            char key[STORE_KEY_MAX];
            if (store_result_key(w->cfg, id, o->name, e->mime, key) < 0)
                return failure_set(fail, "internal_error", "the result's object key does not fit");
            nk += (size_t)snprintf(st->keys + nk, key_max + 1, "%s%s", i ? " " : "", key);
        }
        if (st->blob)
            memcpy(st->blob + off, e->data, e->len);
        off += e->len;
    }
    st->bytes = st->blob ? st->blob : set->enc[st->order[0]].data;
    st->len = st->blob ? total : set->enc[st->order[0]].len;
    if (w->s3)
        st->bytes = NULL, st->len = 0;
    return 0;
}

/* storage.backend = s3: PUTs every encoding at its key before the job may
 * be done. A store that does not take one turns the outcome into a
 * transient failure. */
static void put_result(struct worker *w, const struct stored *st, struct pipeline_outcome *out) {
    struct store_error err;
    enum store_rc rc = STORE_OK;
    const char *key = st->keys;
    for (int e = 0; e < st->n && rc == STORE_OK; e++) {
        char one[STORE_KEY_MAX];
        size_t klen = strcspn(key, " ");
        snprintf(one, sizeof(one), "%.*s", (int)klen, key);
        key += klen + (key[klen] == ' ');
        const struct thumb_encoding *enc = &out->set.enc[st->order[e]];
        rc = STORE_FAILED;
        for (int i = 0; i < STORE_TRIES && !childsig_stop; i++) {
            if (store_pause_ms[i])
                sleep_ms(store_pause_ms[i]);
            rc = store_put(&w->store, one, enc->data, enc->len, enc->mime, &err);
            if (rc != STORE_FAILED)
                break; /* stored, or refused (trying again changes nothing) */
        }
    }
    if (rc == STORE_OK)
        return;
    if (rc != STORE_FAILED)
        snprintf(err.message + strlen(err.message), sizeof(err.message) - strlen(err.message),
                 " (%s)", "check storage.* and the bucket's permissions");
    store_failed(w, &err);
    out->ok = false;
    failure_set(&out->fail, "store_unavailable", "the result could not be stored: %s", err.message);
}

/* The job as it is once its outcome is stored, for the shared cache: what
 * complete.lua answers, else read back by publish. */
struct settled {
    struct job_record rec; /* empty: not known */
    long long ttl_ms;
    int64_t read_ms; /* when it was asked for: before the script ran */
};

/* Writes the outcome (QUEUE_SCRIPT_COMPLETE or QUEUE_SCRIPT_FAIL), reconnecting until it is stored.
 * When asked to stop during an outage it gives up: the job stays in the proc
 * list and the master reaps it. Returns what the script said (1 stored or
 * failed, 2 retry scheduled, 3 dead, 0 stale), -1 given up. A completion fills
 * now. */
static int store(struct worker *w, const char *id, const char *token, const struct job_params *p,
                 struct pipeline_outcome *out, const struct jobqueue_attempt *a,
                 struct settled *now) {
    struct fields f = {.n = 0};
    struct stored st;
    memset(&st, 0, sizeof(st));
    if (out->ok && stored_layout(w, id, p, &out->set, &st, &out->fail) < 0)
        out->ok = false;
    if (out->ok && w->s3)
        put_result(w, &st, out);
    add_source(&f, out);
    char url[STORE_URL_MAX];
    if (out->ok && w->s3) {
        char first[STORE_KEY_MAX];
        snprintf(first, sizeof(first), "%.*s", (int)strcspn(st.keys, " "), st.keys);
        add(&f, "res_obj", st.keys);
        add(&f, "res_bucket", w->cfg->storage_bucket);
        if (store_public_url(w->cfg, first, url, sizeof(url)) == 0)
            add(&f, "res_url", url);
    }
    if (out->ok) {
        const struct thumb_encoding *e = &out->set.enc[st.order[0]];
        add(&f, "res_mime", e->mime);
        add_int(&f, "res_bytes", (long long)e->len);
        add_int(&f, "res_width", e->width);
        add_int(&f, "res_height", e->height);
        add(&f, "res_etag", e->etag);
        add(&f, "res_rend", st.index);
        if (out->set.blurhash[0]) {
            add(&f, "ph_hash", out->set.blurhash);
            add(&f, "ph_color", out->set.color);
        }
    }
    int rc;
    for (;;) {
        now->read_ms = units_mono_ms();
        rc = out->ok ? jobqueue_complete(&w->q, id, token, st.bytes, st.len, a, f.kv, f.n,
                                         &now->rec, &now->ttl_ms)
                     : jobqueue_fail(&w->q, id, token, out->fail.code, out->fail.message,
                                     failure_is_transient(out->fail.code), a, f.kv, f.n);
        if (rc >= 0 || jobqueue_connect(&w->q, &childsig_stop) < 0)
            break;
    }
    stored_free(&st);
    return rc < 0 ? -1 : rc;
}

/* Puts a job that ended (done, or failed for good) into the shared cache, as
 * Redis now has it, so that reads of it need not go to Redis. */
/* The job's other encodings, each an entry of its own (jobcache.h). */
static void publish_encodings(struct worker *w, const char *id, const struct job_record *rec,
                              const struct thumb_set *set, int64_t expires, int64_t read_ms) {
    struct job_encoding enc[JOB_RENDITIONS_MAX * JOB_FORMATS_MAX];
    int n = job_encodings_parse(job_record_get(rec, "res_rend"), enc,
                                JOB_RENDITIONS_MAX * JOB_FORMATS_MAX);
    for (int line = 1; line < n; line++) {
        for (int i = 0; i < set->nenc; i++) {
            const struct thumb_encoding *e = &set->enc[i];
            if (e->output != enc[line].output || e->format != enc[line].format)
                continue;
            char key[SHM_CACHE_KEY_MAX + 1];
            jobcache_encoding_key(key, id, line);
            jobcache_put(w->cache, key, job_record_get(rec, "owner"), "done", "", 0, NULL, e->mime,
                         e->etag, e->data, e->len, expires, read_ms);
            break;
        }
    }
}

static void publish(struct worker *w, const char *id, const struct pipeline_outcome *out,
                    int stored, struct settled *now) {
    if (w->cache == NULL || !(stored == 1 || stored == 3))
        return;
    /* The read's time, before it: a change of the job an http child of this
     * node hears of after this moment keeps the entry out
     * (shm_cache_put_since). */
    if (now->rec.count == 0) {
        now->read_ms = units_mono_ms();
        if (jobqueue_read(&w->q, id, &now->rec, &now->ttl_ms) != 1)
            return;
    }
    const struct job_record *rec = &now->rec;
    long long ttl_ms = now->ttl_ms;
    int64_t read_ms = now->read_ms;
    size_t len;
    char *doc = job_document_text(id, rec, &len);
    const char *state = job_record_get(rec, "state");
    int64_t expires = ttl_ms > 0 ? units_mono_ms() + ttl_ms : 0;
    /* A callback or e-mail still to go changes the document: briefly. */
    if (job_deliveries_pending(rec))
        expires = w->cfg->cache_pending_ttl > 0 ? units_mono_ms() + w->cfg->cache_pending_ttl : -1;
    /* Not the bytes of a result clients fetch at storage.public_url: the
     * image route answers those with a redirect, which Redis decides. */
    bool bytes = out->ok && job_record_get(rec, "res_url") == NULL;
    const struct thumb_encoding *first = out->ok ? thumb_set_primary(&out->set, 0) : NULL;
    if (doc && state && expires >= 0)
        jobcache_put(w->cache, id, job_record_get(rec, "owner"), state, doc, len,
                     job_record_get(rec, "res_rend"), job_record_get(rec, "res_mime"),
                     job_record_get(rec, "res_etag"), bytes ? first->data : NULL,
                     bytes ? first->len : 0, expires, read_ms);
    if (bytes && doc && state && expires >= 0)
        publish_encodings(w, id, rec, &out->set, expires, read_ms);
    free(doc);
}

/* Says what became of the attempt. A retry and a dropped outcome read the job
 * back once (only on those paths): when the retry is due, and whether the job
 * was canceled, deleted or taken over while it ran. */
static void log_outcome(struct worker *w, const char *id, const struct job_record *rec,
                        const struct pipeline_outcome *out, int stored, long long ms) {
    long long attempt = job_record_get_int(rec, "attempts", 0);
    long long max = (long long)w->cfg->worker_max_attempts;
    struct job_record cur;
    long long ttl_ms;
    memset(&cur, 0, sizeof(cur));
    int found = stored == 0 || stored == 2 ? jobqueue_read(&w->q, id, &cur, &ttl_ms) : -1;
    if (stored < 0) {
        log_warn("job %s: outcome not stored (stopping while Redis is unreachable)", id);
    } else if (stored == 0) {
        const char *state = found == 1 ? job_record_get(&cur, "state") : NULL;
        if (found == 0)
            log_info("job %s: deleted while it ran; the outcome is dropped", id);
        else if (state && strcmp(state, "canceled") == 0)
            log_info("job %s: canceled by the client while it ran; the result is dropped", id);
        else
            log_info("job %s: outcome dropped, the job was taken over (fencing token changed)", id);
    } else if (out->ok) {
        const struct thumb_encoding *e = thumb_set_primary(&out->set, 0);
        size_t total = 0;
        for (int i = 0; i < out->set.nenc; i++)
            total += out->set.enc[i].len;
        log_info("job %s done in %lld ms: %s %dx%d %zu B -> %s %dx%d %zu B (%d encodings, %zu B)",
                 id, ms, out->src_mime, out->src_width, out->src_height, out->src_bytes, e->mime,
                 e->width, e->height, e->len, out->set.nenc, total);
    } else if (stored == 2) {
        char when[48] = "(unknown)";
        long long in_ms = -1;
        long long at = found == 1 ? job_record_get_int(&cur, "retry_at", 0) : 0;
        if (at > 0) {
            job_format_time(at, when);
            in_ms = at - units_wall_ms();
            attempt = job_record_get_int(&cur, "attempts", attempt);
        }
        log_info("job %s failed after %lld ms (attempt %lld of %lld): %s (transient): %s; retry at "
                 "%s (in %lld ms)",
                 id, ms, attempt, max, out->fail.code, out->fail.message, when,
                 in_ms < 0 ? 0 : in_ms);
    } else {
        log_info("job %s failed for good after %lld ms (attempt %lld of %lld%s): %s (%s): %s", id,
                 ms, attempt, max, stored == 3 ? ", none left" : "", out->fail.code,
                 failure_is_transient(out->fail.code) ? "transient" : "permanent",
                 out->fail.message);
    }
    job_record_free(&cur);
}

/* Counts a finished attempt in the node's counters: its outcome and run
 * time, and the source bytes it got. */
static void count_outcome(struct worker *w, const char *src, const struct pipeline_outcome *out,
                          int stored, long long ms) {
    if (w->shm == NULL || stored < 0)
        return;
    enum shm_job_outcome o = stored == 0   ? SHM_JOB_STALE
                             : stored == 2 ? SHM_JOB_RETRIED
                             : out->ok     ? SHM_JOB_DONE
                                           : SHM_JOB_FAILED;
    shm_counters_job(&w->shm->counters, o, ms);
    if (src && out->src_bytes > 0) {
        enum shm_source s = strcmp(src, "upload") == 0 ? SHM_SOURCE_UPLOAD : SHM_SOURCE_URL;
        atomic_fetch_add(&w->shm->counters.source_bytes[s], (uint64_t)out->src_bytes);
    }
}

/* An upload kept in the store (storage.backend = s3): GET it, then the
 * pipeline on its bytes. */
static void upload_from_store(struct worker *w, const char *key, const struct job_params *p,
                              struct pipeline_outcome *out) {
    if (!w->s3) { /* a node reloaded away from s3, or a mixed fleet */
        failure_set(&out->fail, "store_unavailable",
                    "the uploaded source is in the object store, and storage.backend is not s3 "
                    "on this node");
        return;
    }
    char *data;
    size_t len;
    struct store_error err;
    /* An upload is at most http.max_body; a bigger object is not one of ours. */
    enum store_rc rc = store_get(&w->store, key, (size_t)w->cfg->http_max_body, &data, &len, &err);
    if (rc == STORE_OK) {
        pipeline_run(&w->pl, p, data, len, out);
        free(data);
    } else if (rc == STORE_NOT_FOUND) {
        failure_set(&out->fail, "source_missing", "the uploaded source is gone from the store (%s)",
                    err.message);
    } else {
        store_failed(w, &err);
        failure_set(&out->fail, "store_unavailable", "the uploaded source could not be read: %s",
                    err.message);
    }
}

/* How long a lease on objects to delete lasts (store_sweep.lua), how many one
 * sweep takes, and how often an idle worker sweeps. */
#define SWEEP_LEASE_MS    60000
#define SWEEP_LIMIT       "100"
#define SWEEP_INTERVAL_MS 1000

/* storage.backend = s3: deletes the objects of {p}:drop that are due (the
 * uploads of jobs that ended, deleted jobs, expired results), at most once
 * a SWEEP_INTERVAL_MS unless now. An object the store does not delete stays
 * leased and comes back later. */
static void sweep(struct worker *w, bool now) {
    int64_t t = units_mono_ms();
    if (!w->s3 || w->store_down || (!now && t - w->swept_ms < SWEEP_INTERVAL_MS))
        return;
    w->swept_ms = t;
    char **keys = NULL;
    size_t n = 0;
    if (jobqueue_sweep(&w->q, SWEEP_LEASE_MS, SWEEP_LIMIT, &keys, &n) < 0)
        return;
    const char **gone = calloc(n ? n : 1, sizeof(*gone));
    size_t ngone = 0;
    for (size_t i = 0; gone && i < n && !w->store_down; i++) {
        struct store_error err;
        if (store_delete(&w->store, keys[i], &err) == STORE_OK) {
            gone[ngone++] = keys[i];
        } else {
            log_warn("worker %s: object %s not deleted: %s (tried again in %d s)", w->wid, keys[i],
                     err.message, SWEEP_LEASE_MS / 1000);
            if (err.status == 0 || err.status >= 500)
                store_failed(w, &err);
        }
    }
    if (ngone)
        jobqueue_swept(&w->q, gone, ngone);
    free(gone);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* While the store is down: one check every STORE_RETRY_MS (a request that
 * needs the credentials and the bucket) until it answers, or a stop. */
#define STORE_RETRY_MS 1000

static bool store_still_down(struct worker *w) {
    if (!w->store_down)
        return false;
    struct store_error err;
    enum store_rc rc = store_check(&w->store, &err);
    if (rc == STORE_OK) {
        log_info("worker %s: the store answers again; taking jobs", w->wid);
        w->store_down = false;
        return false;
    }
    sleep_ms(STORE_RETRY_MS);
    return true;
}

/* Runs one job taken from the queue and started (token, rec: freed here). A
 * Redis error before the outcome exists leaves the job in the proc list,
 * where the next take finds it again. */
static void run_job(struct worker *w, const char *id, const char *token, struct job_record *rec) {
    slot_busy(w->slot, id);
    int64_t t0 = units_mono_ms();

    struct job_params p;
    struct pipeline_outcome out;
    memset(&p, 0, sizeof(p));
    memset(&out, 0, sizeof(out));
    const char *src = job_record_get(rec, "src");
    redisReply *upload = NULL;
    bool interrupted = false, fetched = false;
    if (src == NULL || job_params_from_record(&p, rec) < 0) {
        failure_set(&out.fail, "invalid_job", "the job's stored parameters cannot be read");
    } else if (strcmp(src, "url") == 0) {
        pipeline_run(&w->pl, &p, NULL, 0, &out);
        fetched = true;
    } else if (strcmp(src, "upload") == 0 && job_record_get(rec, "src_obj")) {
        upload_from_store(w, job_record_get(rec, "src_obj"), &p, &out);
    } else if (strcmp(src, "upload") == 0) {
        int r = jobqueue_source(&w->q, id, &upload);
        if (r < 0)
            interrupted = true;
        else if (r == 0)
            failure_set(&out.fail, "source_missing",
                        "the uploaded source is gone (expired or deleted)");
        else
            pipeline_run(&w->pl, &p, upload->str, upload->len, &out);
        freeReplyObject(upload);
    } else {
        failure_set(&out.fail, "invalid_job", "the job's source kind '%.32s' is unknown", src);
    }

    if (!interrupted) {
        /* The attempt's run time: from its start to its outcome, storing
         * excluded; the same figure goes to Redis' per-minute stats and to
         * this node's histogram. */
        struct jobqueue_attempt a = {.ms = (long long)(units_mono_ms() - t0),
                                     .fetched = fetched ? (long long)out.src_bytes : 0};
        struct settled now = {.ttl_ms = -1};
        int stored = store(w, id, token, &p, &out, &a, &now);
        count_outcome(w, src, &out, stored, a.ms);
        log_outcome(w, id, rec, &out, stored, a.ms);
        publish(w, id, &out, stored, &now);
        job_record_free(&now.rec);
        /* An upload's object is due for deletion now that the job ended. */
        sweep(w, job_record_get(rec, "src_obj") != NULL && stored != 2);
    }
    slot_idle(w->slot, !interrupted);
    pipeline_outcome_free(&out);
    job_params_free(&p);
    job_record_free(rec);
}

static void worker_cleanup(struct worker *w) {
    if (w->s3)
        store_close(&w->store);
    if (w->cache)
        shm_cache_detach(w->cache);
    imgtype_close(w->pl.types);
    fetch_free(w->pl.fetch);
    thumb_shutdown();
}

int worker_main(const struct child_args *args) {
    struct worker w;
    memset(&w, 0, sizeof(w));
    w.cfg = args->cfg;
    w.shm = args->shm ? args->shm->hdr : NULL;
    w.slot = shm_segment_slot(args->shm, args->slot);
    if (args->shm && (w.cache = shm_cache_attach(shm_segment_cache_area(args->shm))) == NULL)
        log_warn("worker: the shared cache cannot be used; reads will go to Redis");
    w.pl.cfg = args->cfg;
    queue_worker_id(w.wid, sizeof(w.wid), args->node_id, getpid());
    childsig_install();

    if (thumb_init() < 0)
        return 2;
    w.pl.fetch = fetch_new();
    w.pl.types = imgtype_open();
    w.s3 = w.cfg->storage_backend == CONFIG_STORAGE_S3;
    if ((w.s3 && store_open(&w.store, w.cfg) < 0) || w.pl.fetch == NULL || w.pl.types == NULL ||
        jobqueue_init(&w.q, w.cfg, args->node_id, w.wid) < 0) {
        if (w.pl.fetch == NULL)
            log_error("worker: libcurl does not initialise");
        worker_cleanup(&w);
        return 2;
    }
    /* Now, with the libraries loaded and the shared segment mapped, so that
     * max_memory is what jobs may add to that, whatever the build maps. */
    memlimit_apply(w.cfg->worker_max_memory);
    slot_idle(w.slot, false);
    log_info("worker %s started", w.wid);

    bool kept = false; /* a job ran since the heap was last trimmed */
    while (!childsig_stop) {
        if (childsig_reopen) {
            childsig_reopen = 0;
            log_reopen();
        }
        slot_heartbeat(w.slot);
        log_tick();
        if (paused(&w) || store_still_down(&w))
            continue;
        if (jobqueue_connect(&w.q, &childsig_stop) < 0)
            break;
        char id[JOBQUEUE_ID_MAX], token[JOBQUEUE_TOKEN_LEN + 1];
        struct job_record rec;
        int taken = jobqueue_take(&w.q, id, token, &rec);
        if (taken == 1) {
            run_job(&w, id, token, &rec); /* ours: run it even when a stop came meanwhile */
            kept = true;
        } else if (taken == 0) {
            sweep(&w, false);
            if (kept) { /* a take found nothing for 1 s: give back what the jobs left */
                kept = false;
                int64_t freed = memlimit_release();
                if (freed > 0)
                    log_debug("worker %s idle: %" PRId64 " KiB returned to the system", w.wid,
                              freed / 1024);
            }
        }
    }

    jobqueue_unregister(&w.q);
    jobqueue_close(&w.q);
    worker_cleanup(&w);
    log_info("worker %s stopped", w.wid);
    return 0;
}
