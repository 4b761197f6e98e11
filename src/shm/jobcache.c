/* jobcache.c — the job entry layout over the generic shared cache. */
#include "jobcache.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

int jobcache_put(struct shm_cache *c, const char *id, const char *owner, const char *state,
                 const char *doc, size_t doc_len, const char *index, const char *mime,
                 const char *etag, const void *body, size_t body_len, int64_t expires_ms,
                 int64_t read_ms) {
    size_t index_len = index ? strlen(index) : 0;
    if (c == NULL || doc_len > UINT32_MAX || body_len > UINT32_MAX || index_len > UINT32_MAX)
        return -1;
    struct jobcache_head head = {.magic = JOBCACHE_MAGIC,
                                 .doc_len = (uint32_t)doc_len,
                                 .body_len = body ? (uint32_t)body_len : 0,
                                 .index_len = (uint32_t)index_len,
                                 .done = strcmp(state, "done") == 0,
                                 .has_body = body != NULL,
                                 .read_ms = read_ms};
    head.terminal = head.done || !strcmp(state, "failed") || !strcmp(state, "canceled");
    snprintf(head.mime, sizeof(head.mime), "%s", mime ? mime : "");
    snprintf(head.etag, sizeof(head.etag), "%s", etag ? etag : "");
    snprintf(head.owner, sizeof(head.owner), "%s", owner ? owner : "");
    struct iovec parts[4] = {{&head, sizeof(head)},
                             {(void *)doc, doc_len},
                             {(void *)index, index_len},
                             {(void *)body, body ? body_len : 0}};
    int rc = shm_cache_put_since(c, id, parts, 4, expires_ms, read_ms);
    return rc == SHM_CACHE_OK ? 0 : rc == SHM_CACHE_STALE ? 1 : -1;
}

void jobcache_encoding_key(char key[SHM_CACHE_KEY_MAX + 1], const char *id, int line) {
    snprintf(key, SHM_CACHE_KEY_MAX + 1, "%.48s.%d", id, line % 100); /* ids are 26 */
}

const char *jobcache_index(const struct jobcache_head *head, const char *doc) {
    return head->index_len ? doc + head->doc_len : NULL;
}

bool jobcache_confirmed(const struct jobcache_head *head, int64_t trust_after_ms) {
    return !head->terminal || head->read_ms > trust_after_ms;
}

struct lookup {
    jobcache_copy_fn fn;
    void *arg;
    const char *owner;
    bool hit;
};

static void unpack(const void *value, size_t len, int64_t expires_ms, void *arg) {
    struct lookup *l = arg;
    struct jobcache_head head;
    if (len < sizeof(head))
        return;
    memcpy(&head, value, sizeof(head));
    if (head.magic != JOBCACHE_MAGIC ||
        sizeof(head) + (size_t)head.doc_len + head.index_len + head.body_len != len)
        return;
    head.owner[sizeof(head.owner) - 1] = '\0';
    if (head.owner[0] && l->owner && l->owner[0] && strcmp(head.owner, l->owner) != 0)
        return; /* another client's job: as if it were not there */
    const char *doc = (const char *)value + sizeof(head);
    l->fn(&head, doc, head.has_body ? doc + head.doc_len + head.index_len : NULL, expires_ms,
          l->arg);
    l->hit = true;
}

bool jobcache_get(struct shm_cache *c, const char *id, const char *owner, int64_t now_ms,
                  jobcache_copy_fn fn, void *arg) {
    if (c == NULL)
        return false;
    struct lookup l = {fn, arg, owner, false};
    if (shm_cache_get(c, id, now_ms, unpack, &l) != SHM_CACHE_OK)
        return false;
    return l.hit;
}
