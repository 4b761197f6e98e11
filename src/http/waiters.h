/* waiters.h — the long-poll waiters of one http child, by job id: an
 * intrusive hash table (the caller embeds a struct waiter in its own state),
 * so a completion message finds its waiters without a scan of all of them.
 * Pure: no I/O, no allocation but the bucket array. */
#ifndef TH_HTTP_WAITERS_H
#define TH_HTTP_WAITERS_H

#include "id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct waiter {
    struct waiter *next, **pprev; /* in its bucket; pprev NULL while not registered */
    uint32_t hash;
    char id[ID_LEN + 1];
};

struct waiters {
    struct waiter **buckets;
    size_t mask; /* buckets - 1 (a power of two) */
    size_t count;
};

/* Makes an empty table with room for about `expected` waiters without long
 * chains (at least 64 buckets). Returns 0, or -1 when out of memory. */
int waiters_init(struct waiters *t, size_t expected);

/* Frees the buckets (not the waiters, which belong to the caller). */
void waiters_free(struct waiters *t);

/* Registers w under id (ids longer than ID_LEN are cut; several waiters may
 * share an id). w must not be registered already. */
void waiters_add(struct waiters *t, struct waiter *w, const char *id);

/* Unregisters w; nothing happens when it is not registered. O(1). */
void waiters_remove(struct waiters *t, struct waiter *w);

/* Whether w is registered. */
bool waiters_registered(const struct waiter *w);

/* Calls fn(w, arg) for every waiter registered under id (of len bytes). fn may
 * remove the waiter it is given, and no other. Returns how many were called. */
size_t waiters_each_of(struct waiters *t, const char *id, size_t len,
                       void (*fn)(struct waiter *w, void *arg), void *arg);

/* Calls fn(w, arg) for every waiter. fn may remove the waiter it is given, and
 * no other. Returns how many were called. */
size_t waiters_each(struct waiters *t, void (*fn)(struct waiter *w, void *arg), void *arg);

#endif
