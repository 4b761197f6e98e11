/* waiters.c — chained hash table of long-poll waiters, FNV-1a on the job id. */
#include "waiters.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_of(const char *id, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 16777619u;
    }
    return h;
}

int waiters_init(struct waiters *t, size_t expected) {
    size_t n = 64;
    while (n < expected && n < ((size_t)1 << 20))
        n *= 2;
    t->buckets = calloc(n, sizeof(*t->buckets));
    t->mask = n - 1;
    t->count = 0;
    return t->buckets ? 0 : -1;
}

void waiters_free(struct waiters *t) {
    free(t->buckets);
    t->buckets = NULL;
    t->mask = 0;
    t->count = 0;
}

void waiters_add(struct waiters *t, struct waiter *w, const char *id) {
    size_t len = strnlen(id, ID_LEN);
    memcpy(w->id, id, len);
    w->id[len] = '\0';
    w->hash = hash_of(w->id, len);
    struct waiter **head = &t->buckets[w->hash & t->mask];
    w->next = *head;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = head;
    *head = w;
    t->count++;
}

void waiters_remove(struct waiters *t, struct waiter *w) {
    if (w->pprev == NULL)
        return;
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    w->next = NULL;
    w->pprev = NULL;
    t->count--;
}

bool waiters_registered(const struct waiter *w) {
    return w->pprev != NULL;
}

size_t waiters_each_of(struct waiters *t, const char *id, size_t len,
                       void (*fn)(struct waiter *w, void *arg), void *arg) {
    if (t->buckets == NULL || len > ID_LEN)
        return 0;
    uint32_t h = hash_of(id, len);
    size_t called = 0;
    struct waiter *w = t->buckets[h & t->mask], *next;
    for (; w; w = next) {
        next = w->next;
        if (w->hash == h && strlen(w->id) == len && memcmp(w->id, id, len) == 0) {
            fn(w, arg);
            called++;
        }
    }
    return called;
}

size_t waiters_each(struct waiters *t, void (*fn)(struct waiter *w, void *arg), void *arg) {
    size_t called = 0;
    for (size_t b = 0; t->buckets && b <= t->mask; b++) {
        struct waiter *w = t->buckets[b], *next;
        for (; w; w = next) {
            next = w->next;
            fn(w, arg);
            called++;
        }
    }
    return called;
}
