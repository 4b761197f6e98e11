/* cache.h — the thumbnail cache in shared memory: key -> value, sharded, LRU, shared by every
 * process that maps the area and safe when any of them is SIGKILLed at any moment.
 *
 * The master lays the cache out once over the segment's cache area (shm_cache_init) before
 * fork; each process then takes its own handle (shm_cache_attach). Values are copied in by
 * shm_cache_put and copied out by a callback under the shard lock in shm_cache_get: no pointer
 * into the shared area ever outlives a call. Layout and allocator: see cache.c. */
#ifndef TH_SHM_CACHE_H
#define TH_SHM_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SHM_CACHE_KEY_MAX         63 /* bytes of a key, without the NUL */
#define SHM_CACHE_MIN_SHARDS      16
#define SHM_CACHE_DEFAULT_BUMP_MS 1000

/* What put, get and delete return. Errors are negative. */
enum shm_cache_rc {
    SHM_CACHE_OK = 0,           /* stored, deleted, or (get) found and copied out */
    SHM_CACHE_MISS = 1,         /* absent or expired */
    SHM_CACHE_STALE = 2,        /* (put_since) not stored: the key was invalidated since */
    SHM_CACHE_ERR_ARG = -1,     /* NULL, empty or over-long key, bad nparts */
    SHM_CACHE_ERR_TOO_BIG = -2, /* larger than shm_cache_max_value(): refused, nothing evicted */
    SHM_CACHE_ERR_LOCK = -3,    /* the shard lock failed (not recoverable); nothing done */
};

struct shm_cache_opts {
    unsigned shards;           /* number of shards, >= SHM_CACHE_MIN_SHARDS (default 16) */
    unsigned bump_interval_ms; /* a hit relinks an entry in the LRU at most this often
                                * (default 1000; 0 = on every hit, strict LRU) */
    unsigned buckets;          /* hash buckets per shard, a power of two; 0 = sized from the
                                * shard's capacity (tests use tiny counts to force chains) */
};

/* Per-shard counters. hits..lock_recoveries only grow; items and bytes_used describe the
 * shard now; bytes_used counts each entry's whole block (header + value + rounding) and
 * never exceeds capacity, the bytes of the shard's value arena. */
struct shm_cache_stats {
    uint64_t hits;
    uint64_t misses;          /* expired hits included */
    uint64_t inserts;         /* puts that stored, replacements included */
    uint64_t evictions;       /* entries dropped from the LRU tail to make room */
    uint64_t expired;         /* entries found expired and freed */
    uint64_t lock_recoveries; /* times a locker found the previous owner dead and wiped */
    uint64_t invalidations;   /* entries dropped by shm_cache_invalidate */
    uint64_t stale_puts;      /* puts refused by shm_cache_put_since (SHM_CACHE_STALE) */
    uint64_t items;
    uint64_t bytes_used;
    uint64_t capacity;
};

/* One process's handle on a cache; opaque, owned by that process. */
struct shm_cache;

/* Called by shm_cache_get on a hit, under the shard lock, with the value (len bytes, valid only
 * during the call) and its expiry (absolute CLOCK_MONOTONIC ms, units_mono_ms, 0 = never). It must
 * only copy what it needs out: no I/O, no locks, no logging, no keeping the pointer. */
typedef void (*shm_cache_copy_fn)(const void *value, size_t len, int64_t expires_ms, void *arg);

/* Fills opts with the defaults. */
void shm_cache_opts_init(struct shm_cache_opts *opts);

/* Lays out an empty cache over [mem, mem + size) (mem 64-byte aligned), with opts or the
 * defaults when opts is NULL, and a fresh random hash seed. Call once, before any process
 * attaches. Returns 0, or -1 with errno (EINVAL: bad options or an area too small for the
 * shards; or the errno of getrandom or of the mutex set-up). */
int shm_cache_init(void *mem, size_t size, const struct shm_cache_opts *opts);

/* Checks the magic and version of the cache at mem and returns this process's handle, to be
 * freed with shm_cache_detach; or NULL with errno (EINVAL: not a cache; ENOMEM). */
struct shm_cache *shm_cache_attach(void *mem);

/* Frees the handle; the shared area is left as it is. */
void shm_cache_detach(struct shm_cache *c);

/* Stores key -> the concatenation of the nparts buffers of parts (copied; the caller keeps
 * ownership of its buffers), replacing any value the key had, expiring at expires_ms (absolute
 * CLOCK_MONOTONIC ms, units_mono_ms; 0 = never). Evicts least recently used entries of the key's
 * shard until the value fits. Returns SHM_CACHE_OK, SHM_CACHE_ERR_ARG, SHM_CACHE_ERR_TOO_BIG (the
 * cache is left as it was) or SHM_CACHE_ERR_LOCK. */
int shm_cache_put(struct shm_cache *c, const char *key, const struct iovec *parts, int nparts,
                  int64_t expires_ms);

/* Like shm_cache_put, but for a value read from elsewhere at as_of_ms (CLOCK_MONOTONIC ms): it
 * is not stored, and SHM_CACHE_STALE is returned, when shm_cache_invalidate was called at or after
 * as_of_ms for key — or for another key sharing its invalidation slot (a few hundred per shard),
 * or since the shard was wiped by a lock recovery. So a value read before a change can never
 * land after the change's invalidation. Other returns as shm_cache_put. */
int shm_cache_put_since(struct shm_cache *c, const char *key, const struct iovec *parts, int nparts,
                        int64_t expires_ms, int64_t as_of_ms);

/* Looks key up at time now_ms (CLOCK_MONOTONIC ms, units_mono_ms). On a hit calls fn(value, len,
 * expires_ms, arg) under the shard lock (see shm_cache_copy_fn) and returns SHM_CACHE_OK; an
 * expired entry is freed and, like an absent one, gives SHM_CACHE_MISS without calling fn. Also
 * SHM_CACHE_ERR_ARG or SHM_CACHE_ERR_LOCK. No allocation, no system call. */
int shm_cache_get(struct shm_cache *c, const char *key, int64_t now_ms, shm_cache_copy_fn fn,
                  void *arg);

/* Removes key. Returns SHM_CACHE_OK, SHM_CACHE_MISS when it was absent, SHM_CACHE_ERR_ARG or
 * SHM_CACHE_ERR_LOCK. */
int shm_cache_delete(struct shm_cache *c, const char *key);

/* Removes key and records that it changed at now_ms (CLOCK_MONOTONIC ms): from then on
 * shm_cache_put_since refuses values of key read at or before now_ms. Returns SHM_CACHE_OK when
 * an entry was dropped, SHM_CACHE_MISS when there was none (the change is recorded either way),
 * SHM_CACHE_ERR_ARG or SHM_CACHE_ERR_LOCK. */
int shm_cache_invalidate(struct shm_cache *c, const char *key, int64_t now_ms);

/* Number of shards. */
int shm_cache_shards(const struct shm_cache *c);

/* The shard that holds key (for tests and diagnostics), or -1 for an invalid key. */
int shm_cache_shard_of(const struct shm_cache *c, const char *key);

/* The largest value put accepts, in bytes (8 MiB minus 104 at 256 MiB / 16 shards). */
size_t shm_cache_max_value(const struct shm_cache *c);

/* Copies shard's counters into out (zeroes for an out-of-range shard). Takes the shard lock. */
void shm_cache_stats(struct shm_cache *c, int shard, struct shm_cache_stats *out);

/* Walks every shard under its lock and checks the invariants of the table, the LRU list, the
 * allocator and the counters (for tests and debugging: cost grows with the cache). Returns 0,
 * or -1 after logging the first broken invariant. */
int shm_cache_check(struct shm_cache *c);

#endif
