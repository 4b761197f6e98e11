/* cache.c — the sharded LRU cache that lives in the shared segment (see cache.h).
 *
 * The area may sit at a different address in each process, so everything inside it refers to
 * everything else by offset. Layout of [mem, mem + size):
 *
 *   struct cache_hdr     magic, version, geometry, hash seed (immutable after init)
 *   shard 0 .. N-1       one every `stride` bytes from shard0_off, page-aligned, each:
 *       struct shard       robust process-shared mutex, LRU ends, free lists, counters, and
 *                          the invalidation slots (TOMBS times: when a key of the slot last
 *                          changed)
 *       buckets            nbuckets x uint32_t: head of each hash chain
 *       order map          one byte per unit of the arena: FREE_BIT | order at the first unit
 *                          of a free block, 0 everywhere else
 *       arena              nunits units of UNIT (128) bytes, page-aligned: entries and free
 *                          blocks
 *
 * A key's 64-bit SipHash-1-3 (seeded at init from getrandom) picks its shard from the high
 * half and its bucket from the low bits. Entries and free blocks are named by a `ref`: their
 * first unit's index in the shard's arena plus one, so 0 means none. An entry is a 104-byte
 * header (hash chain link, LRU links, key, lengths, times) followed by the value.
 *
 * Allocator: a binary buddy allocator per shard, over units of 128 bytes, with the tail given
 * back. A value of n units (header + value, rounded up to a unit) takes a free block of 2^k
 * units, the smallest with 2^k >= n (splitting a larger one as needed); the unused tail of the
 * block, [n, 2^k), goes straight back to the free lists as the aligned power-of-two pieces it
 * is made of. So an entry wastes less than one unit instead of up to half its block, while
 * freeing stays classic buddy: the entry's n units are freed as the descending powers of two
 * of n (each aligned, since the block was) and each piece merges with its buddy as long as the
 * buddy is a free block of the same order (read from the order map, never from the arena, whose
 * bytes may be anybody's value). Blocks never exceed the largest power of two that fits in the
 * arena, and since freeing always merges completely, an empty shard holds a block of that size:
 * evicting from the LRU tail therefore always ends with the value placed. A value that would
 * need a larger block is refused before anything is touched.
 *
 * Limits at the default 256 MiB / 16 shards: each shard's arena is about 15.8 MiB (16 MiB less
 * its buckets, order map and page rounding); the largest block is 8 MiB, so the largest value
 * is 8 MiB - 104 bytes. Per entry: the 104-byte header plus the rounding to 128 bytes (on
 * average 64), plus shard-wide a 4-byte bucket per KiB and a byte of order map per 128 bytes of
 * arena (together about 1.2%). The price of the buddy scheme is external fragmentation: a
 * value of n units needs an aligned free block of 2^k units, so a large put may evict more than
 * its size when small entries sit scattered in that block.
 *
 * Concurrency: every operation on a shard holds its mutex throughout; nothing in a shard is
 * touched without it. A process killed while holding it leaves the shard in any state, so the
 * next locker (EOWNERDEAD) rebuilds the shard empty before marking the mutex consistent; the
 * lifetime counters survive, items and bytes do not. The header and geometry are never written
 * after init, and each handle keeps its own copy of them.
 *
 * Invalidation: shm_cache_invalidate drops a key and writes the time into the key's slot (the low
 * bits of its hash's high half; TOMBS slots per shard); shm_cache_put_since refuses a value read
 * at or before its slot's time. Both hold the shard lock, so a put that checked its slot before
 * an invalidation took the lock is dropped by it, and one that comes after sees its time. Slots
 * are never cleared: a read is only ever compared with changes newer than itself, so an old time
 * costs nothing, and two keys sharing a slot cost at most a refused put. A recovered shard sets
 * every slot to the recovery time (the dead holder may have been invalidating). */
#include "cache.h"

#include "log.h"
#include "segment.h"
#include "units.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define CACHE_MAGIC   0x74686d63u /* "thmc" */
#define CACHE_VERSION 2
#define ENTRY_MAGIC   0x656e7472u /* "entr" */

#define UNIT_SHIFT  7
#define UNIT        (1u << UNIT_SHIFT)
#define MAX_ORDER   24 /* 2^24 units = 2 GiB: a value's length fits in 32 bits */
#define NORDERS     (MAX_ORDER + 1)
#define FREE_BIT    0x80
#define MAX_SHARDS  4096
#define MAX_BUCKETS (1u << 24)
#define PAGE        4096u
#define TOMBS       512 /* invalidation slots per shard, a power of two */

struct cache_hdr {
    uint32_t magic;
    uint32_t version;
    uint64_t size;
    uint32_t entry_size; /* sizeof(struct entry), an ABI check */
    uint32_t nshards;
    uint32_t nbuckets;
    uint32_t nunits; /* units in each shard's arena */
    uint32_t max_order;
    uint32_t bump_ms;
    uint64_t seed[2];
    uint64_t shard0_off; /* from mem */
    uint64_t stride;
    uint64_t buckets_off; /* from the shard's start */
    uint64_t map_off;
    uint64_t arena_off;
};

struct shard {
    pthread_mutex_t lock;
    uint32_t lru_head; /* most recently used */
    uint32_t lru_tail;
    uint32_t free_head[NORDERS];
    uint64_t items;
    uint64_t bytes_used;
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions;
    uint64_t expired;
    uint64_t lock_recoveries;
    uint64_t invalidations;
    uint64_t stale_puts;
    int64_t tomb[TOMBS]; /* CLOCK_MONOTONIC ms a key of each slot last changed, 0 = never */
};

struct entry {
    uint32_t hnext; /* next in the hash chain */
    uint32_t lru_prev;
    uint32_t lru_next;
    uint32_t hash; /* low 32 bits of the key's hash */
    uint32_t len;  /* of the value */
    uint32_t magic;
    int64_t expires_ms; /* 0 = never */
    int64_t used_ms;    /* last put or LRU bump */
    char key[SHM_CACHE_KEY_MAX + 1];
    /* the value follows */
};

_Static_assert(sizeof(struct entry) == 104, "the entry header size is documented");
_Static_assert(sizeof(struct entry) < UNIT, "an entry with a small value takes one unit");

/* The links of a free block, kept in its first unit. */
struct free_blk {
    uint32_t prev;
    uint32_t next;
};

struct shm_cache {
    char *base;
    uint64_t seed[2];
    uint32_t nshards;
    uint32_t bucket_mask;
    uint32_t nunits;
    uint32_t max_order;
    uint32_t bump_ms;
    size_t max_value;
    size_t shard0_off;
    size_t stride;
    size_t buckets_off;
    size_t map_off;
    size_t arena_off;
};

/* One shard as seen by this process for the length of a call. */
struct shard_ctx {
    const struct shm_cache *c;
    int index;
    struct shard *s;
    uint32_t *buckets;
    uint8_t *map;
    char *arena;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static size_t round_up(size_t v, size_t a) {
    return (v + a - 1) / a * a;
}

static unsigned floor_log2(uint64_t v) {
    return 63u - (unsigned)__builtin_clzll(v);
}

static unsigned ceil_log2(uint64_t v) {
    return v <= 1 ? 0 : floor_log2(v - 1) + 1;
}

static uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 of in[0..len) under the 128-bit key seed. */
static uint64_t siphash13(const void *in, size_t len, const uint64_t seed[2]) {
    const unsigned char *p = in;
    uint64_t v0 = 0x736f6d6570736575ULL ^ seed[0];
    uint64_t v1 = 0x646f72616e646f6dULL ^ seed[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ seed[0];
    uint64_t v3 = 0x7465646279746573ULL ^ seed[1];
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        m = le64toh(m);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Length of a valid key (1..SHM_CACHE_KEY_MAX), or 0. */
static size_t key_len(const char *key) {
    if (key == NULL)
        return 0;
    size_t n = strnlen(key, SHM_CACHE_KEY_MAX + 1);
    return n > SHM_CACHE_KEY_MAX ? 0 : n;
}

static int shard_index(const struct shm_cache *c, uint64_t h) {
    return (int)(((h >> 32) * c->nshards) >> 32);
}

/* The invalidation slot of a hash: bits the shard index (the top of the high half) and the
 * bucket (the low half) leave free. */
static unsigned tomb_index(uint64_t h) {
    return (unsigned)(h >> 32) & (TOMBS - 1);
}

static void shard_ctx_init(struct shard_ctx *x, const struct shm_cache *c, int i) {
    char *s = c->base + c->shard0_off + (size_t)i * c->stride;
    x->c = c;
    x->index = i;
    x->s = (struct shard *)s;
    x->buckets = (uint32_t *)(s + c->buckets_off);
    x->map = (uint8_t *)(s + c->map_off);
    x->arena = s + c->arena_off;
}

static struct entry *entry_at(const struct shard_ctx *x, uint32_t ref) {
    return (struct entry *)(x->arena + ((size_t)(ref - 1) << UNIT_SHIFT));
}

/* Units taken by an entry holding len bytes of value. */
static uint32_t entry_units(size_t len) {
    return (uint32_t)((sizeof(struct entry) + len + UNIT - 1) >> UNIT_SHIFT);
}

/* ---- buddy allocator -------------------------------------------------------------------- */

static struct free_blk *free_blk_at(const struct shard_ctx *x, uint32_t unit) {
    return (struct free_blk *)(x->arena + ((size_t)unit << UNIT_SHIFT));
}

static void free_push(struct shard_ctx *x, uint32_t unit, unsigned order) {
    struct free_blk *f = free_blk_at(x, unit);
    uint32_t head = x->s->free_head[order];
    f->prev = 0;
    f->next = head;
    if (head)
        free_blk_at(x, head - 1)->prev = unit + 1;
    x->s->free_head[order] = unit + 1;
    x->map[unit] = FREE_BIT | order;
}

static void free_unlink(struct shard_ctx *x, uint32_t unit, unsigned order) {
    struct free_blk *f = free_blk_at(x, unit);
    if (f->prev)
        free_blk_at(x, f->prev - 1)->next = f->next;
    else
        x->s->free_head[order] = f->next;
    if (f->next)
        free_blk_at(x, f->next - 1)->prev = f->prev;
    x->map[unit] = 0;
}

/* Frees the aligned block [unit, unit + 2^order), merging it with its buddy while the buddy is
 * a free block of the same order. */
static void free_merge(struct shard_ctx *x, uint32_t unit, unsigned order) {
    while (order < x->c->max_order) {
        uint32_t buddy = unit ^ (1u << order);
        if ((uint64_t)buddy + (1u << order) > x->c->nunits || x->map[buddy] != (FREE_BIT | order))
            break;
        free_unlink(x, buddy, order);
        unit &= ~(1u << order);
        order++;
    }
    free_push(x, unit, order);
}

/* Allocates n units (1 <= n <= 2^max_order) and returns the first unit's index, or -1 when no
 * free block is large enough. */
static int64_t units_alloc(struct shard_ctx *x, uint32_t n) {
    unsigned want = ceil_log2(n), order = want;
    while (order <= x->c->max_order && x->s->free_head[order] == 0)
        order++;
    if (order > x->c->max_order)
        return -1;
    uint32_t unit = x->s->free_head[order] - 1;
    free_unlink(x, unit, order);
    while (order > want) { /* keep the lower half, free the upper */
        order--;
        free_push(x, unit + (1u << order), order);
    }
    /* Give back the tail [unit + n, unit + 2^want) as aligned pieces of growing size. None of
     * them can merge: each one's buddy holds the entry's last unit. */
    uint32_t end = unit + (1u << want);
    for (uint32_t t = unit + n; t < end;) {
        unsigned o = (unsigned)__builtin_ctz(t);
        free_push(x, t, o);
        t += 1u << o;
    }
    return unit;
}

/* Frees the n units at unit, as units_alloc(n) returned them. */
static void units_free(struct shard_ctx *x, uint32_t unit, uint32_t n) {
    while (n) {
        unsigned o = floor_log2(n);
        free_merge(x, unit, o);
        unit += 1u << o;
        n -= 1u << o;
    }
}

/* Empties the shard: hash table, LRU, allocator and the gauges; the counters stay. */
static void shard_reset(struct shard_ctx *x) {
    const struct shm_cache *c = x->c;
    memset(x->buckets, 0, (size_t)(c->bucket_mask + 1) * sizeof(uint32_t));
    memset(x->map, 0, c->nunits);
    memset(x->s->free_head, 0, sizeof(x->s->free_head));
    x->s->lru_head = x->s->lru_tail = 0;
    x->s->items = 0;
    x->s->bytes_used = 0;
    /* Carve the arena into the largest aligned blocks, as complete merging would leave it. */
    for (uint32_t pos = 0; pos < c->nunits;) {
        unsigned o = floor_log2(c->nunits - pos);
        if (o > c->max_order)
            o = c->max_order;
        if (pos && (unsigned)__builtin_ctz(pos) < o)
            o = (unsigned)__builtin_ctz(pos);
        free_push(x, pos, o);
        pos += 1u << o;
    }
}

/* ---- locking ---------------------------------------------------------------------------- */

/* Locks the shard. Returns 0, 1 when the previous owner had died and the shard was wiped (the
 * lock is held either way), or -1 when the mutex cannot be taken. */
static int shard_lock(struct shard_ctx *x) {
    int rc = pthread_mutex_lock(&x->s->lock);
    if (rc == 0)
        return 0;
    if (rc != EOWNERDEAD)
        return -1;
    shard_reset(x);
    int64_t now = units_mono_ms();
    for (unsigned i = 0; i < TOMBS; i++)
        x->s->tomb[i] = now;
    pthread_mutex_consistent(&x->s->lock);
    x->s->lock_recoveries++;
    return 1;
}

/* Unlocks; then, once no lock is held, reports a recovery that shard_lock made. */
static void shard_unlock(struct shard_ctx *x, int locked) {
    pthread_mutex_unlock(&x->s->lock);
    if (locked == 1)
        log_warn("shm cache: a process died holding the lock of shard %d; shard emptied", x->index);
}

/* ---- table and LRU ---------------------------------------------------------------------- */

/* The link (bucket head or a chain's hnext) that points at the entry for key, or NULL. */
static uint32_t *chain_find(struct shard_ctx *x, uint32_t hash, const char *key, size_t klen) {
    uint32_t *link = &x->buckets[hash & x->c->bucket_mask];
    while (*link) {
        struct entry *e = entry_at(x, *link);
        if (e->hash == hash && memcmp(e->key, key, klen + 1) == 0)
            return link;
        link = &e->hnext;
    }
    return NULL;
}

/* The link that points at entry ref (which must be in the table). */
static uint32_t *chain_link_of(struct shard_ctx *x, uint32_t ref) {
    uint32_t *link = &x->buckets[entry_at(x, ref)->hash & x->c->bucket_mask];
    while (*link != ref)
        link = &entry_at(x, *link)->hnext;
    return link;
}

static void lru_unlink(struct shard_ctx *x, struct entry *e) {
    if (e->lru_prev)
        entry_at(x, e->lru_prev)->lru_next = e->lru_next;
    else
        x->s->lru_head = e->lru_next;
    if (e->lru_next)
        entry_at(x, e->lru_next)->lru_prev = e->lru_prev;
    else
        x->s->lru_tail = e->lru_prev;
}

static void lru_push_head(struct shard_ctx *x, struct entry *e, uint32_t ref) {
    e->lru_prev = 0;
    e->lru_next = x->s->lru_head;
    if (x->s->lru_head)
        entry_at(x, x->s->lru_head)->lru_prev = ref;
    else
        x->s->lru_tail = ref;
    x->s->lru_head = ref;
}

/* Unlinks the entry that *link points at from the table and the LRU and frees it. */
static void entry_drop(struct shard_ctx *x, uint32_t *link) {
    uint32_t ref = *link;
    struct entry *e = entry_at(x, ref);
    uint32_t n = entry_units(e->len);
    *link = e->hnext;
    lru_unlink(x, e);
    e->magic = 0;
    x->s->items--;
    x->s->bytes_used -= (uint64_t)n << UNIT_SHIFT;
    units_free(x, ref - 1, n);
}

static bool expired(const struct entry *e, int64_t now_ms) {
    return e->expires_ms != 0 && e->expires_ms <= now_ms;
}

static void copy_parts(char *dst, const struct iovec *parts, int nparts) {
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len)
            memcpy(dst, parts[i].iov_base, parts[i].iov_len);
        dst += parts[i].iov_len;
    }
}

/* ---- set-up ----------------------------------------------------------------------------- */

void shm_cache_opts_init(struct shm_cache_opts *opts) {
    opts->shards = SHM_CACHE_MIN_SHARDS;
    opts->bump_interval_ms = SHM_CACHE_DEFAULT_BUMP_MS;
    opts->buckets = 0;
}

/* Computes the geometry of a cache of size bytes into h. Returns 0, or -1 when it cannot hold
 * the shards. */
static int layout(struct cache_hdr *h, size_t size, const struct shm_cache_opts *o) {
    size_t shard0_off = round_up(sizeof(struct cache_hdr), PAGE);
    if (size < shard0_off)
        return -1;
    size_t stride = (size - shard0_off) / o->shards / PAGE * PAGE;
    if (stride < 16 * PAGE)
        return -1;
    size_t nbuckets = o->buckets;
    if (nbuckets == 0) { /* a bucket per KiB of shard */
        nbuckets = 64;
        while (nbuckets < stride / 1024 && nbuckets < MAX_BUCKETS)
            nbuckets <<= 1;
    }
    size_t buckets_off = round_up(sizeof(struct shard), 64);
    size_t map_off = round_up(buckets_off + nbuckets * sizeof(uint32_t), 64);
    if (map_off + PAGE >= stride)
        return -1;
    /* Each unit costs UNIT bytes of arena plus a byte of map; keep a page for rounding. */
    size_t nunits = (stride - map_off - (PAGE - 1)) / (UNIT + 1);
    if (nunits < 64 || nunits >= UINT32_MAX)
        return -1;
    size_t arena_off = round_up(map_off + nunits, PAGE);

    h->size = size;
    h->entry_size = sizeof(struct entry);
    h->nshards = o->shards;
    h->nbuckets = (uint32_t)nbuckets;
    h->nunits = (uint32_t)nunits;
    h->max_order = floor_log2(nunits) < MAX_ORDER ? floor_log2(nunits) : MAX_ORDER;
    h->bump_ms = o->bump_interval_ms;
    h->shard0_off = shard0_off;
    h->stride = stride;
    h->buckets_off = buckets_off;
    h->map_off = map_off;
    h->arena_off = arena_off;
    return 0;
}

/* Fills a handle from a header; returns 0, or -1 when the header is not a sane cache. */
static int handle_from_hdr(struct shm_cache *c, char *base, const struct cache_hdr *h) {
    if (h->magic != CACHE_MAGIC || h->version != CACHE_VERSION ||
        h->entry_size != sizeof(struct entry) || h->nshards < SHM_CACHE_MIN_SHARDS ||
        h->nshards > MAX_SHARDS || h->nbuckets == 0 || (h->nbuckets & (h->nbuckets - 1)) ||
        h->nunits == 0 || h->max_order > MAX_ORDER || (1ull << h->max_order) > h->nunits ||
        h->buckets_off < sizeof(struct shard) ||
        h->map_off < h->buckets_off + (uint64_t)h->nbuckets * sizeof(uint32_t) ||
        h->arena_off < h->map_off + h->nunits ||
        h->arena_off + ((uint64_t)h->nunits << UNIT_SHIFT) > h->stride ||
        h->shard0_off < sizeof(*h) || h->stride > h->size ||
        h->shard0_off + h->nshards * h->stride > h->size)
        return -1;
    c->base = base;
    c->seed[0] = h->seed[0];
    c->seed[1] = h->seed[1];
    c->nshards = h->nshards;
    c->bucket_mask = h->nbuckets - 1;
    c->nunits = h->nunits;
    c->max_order = h->max_order;
    c->bump_ms = h->bump_ms;
    c->max_value = ((size_t)UNIT << h->max_order) - sizeof(struct entry);
    c->shard0_off = h->shard0_off;
    c->stride = h->stride;
    c->buckets_off = h->buckets_off;
    c->map_off = h->map_off;
    c->arena_off = h->arena_off;
    return 0;
}

static int fill_random(void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int shm_cache_init(void *mem, size_t size, const struct shm_cache_opts *opts) {
    struct shm_cache_opts defaults;
    if (opts == NULL) {
        shm_cache_opts_init(&defaults);
        opts = &defaults;
    }
    struct cache_hdr h = {.magic = CACHE_MAGIC, .version = CACHE_VERSION};
    if (mem == NULL || (uintptr_t)mem % 64 || opts->shards < SHM_CACHE_MIN_SHARDS ||
        opts->shards > MAX_SHARDS || opts->buckets > MAX_BUCKETS ||
        (opts->buckets & (opts->buckets - 1)) || layout(&h, size, opts) < 0) {
        errno = EINVAL;
        return -1;
    }
    if (fill_random(h.seed, sizeof(h.seed)) < 0)
        return -1;

    struct shm_cache c;
    if (handle_from_hdr(&c, mem, &h) < 0) { /* cannot happen: layout made it */
        errno = EINVAL;
        return -1;
    }
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0)
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    for (uint32_t i = 0; rc == 0 && i < c.nshards; i++) {
        struct shard_ctx x;
        shard_ctx_init(&x, &c, (int)i);
        memset(x.s, 0, sizeof(*x.s));
        rc = pthread_mutex_init(&x.s->lock, &attr);
        if (rc == 0)
            shard_reset(&x);
    }
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    h.magic = 0;
    memcpy(mem, &h, sizeof(h));
    ((struct cache_hdr *)mem)->magic = CACHE_MAGIC; /* last: a half-made cache never attaches */
    return 0;
}

struct shm_cache *shm_cache_attach(void *mem) {
    if (mem == NULL || (uintptr_t)mem % 64) {
        errno = EINVAL;
        return NULL;
    }
    struct shm_cache *c = malloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    if (handle_from_hdr(c, mem, mem) < 0) {
        free(c);
        errno = EINVAL;
        return NULL;
    }
    return c;
}

void shm_cache_detach(struct shm_cache *c) {
    free(c);
}

/* ---- operations ------------------------------------------------------------------------- */

int shm_cache_put(struct shm_cache *c, const char *key, const struct iovec *parts, int nparts,
                  int64_t expires_ms) {
    return shm_cache_put_since(c, key, parts, nparts, expires_ms, INT64_MAX);
}

int shm_cache_put_since(struct shm_cache *c, const char *key, const struct iovec *parts, int nparts,
                        int64_t expires_ms, int64_t as_of_ms) {
    size_t klen = key_len(key);
    if (klen == 0 || nparts < 0 || (nparts > 0 && parts == NULL))
        return SHM_CACHE_ERR_ARG;
    size_t len = 0;
    for (int i = 0; i < nparts; i++) {
        if (parts[i].iov_len > c->max_value - len)
            return SHM_CACHE_ERR_TOO_BIG;
        len += parts[i].iov_len;
    }
    uint32_t n = entry_units(len);
    uint64_t h = siphash13(key, klen, c->seed);
    int64_t now_ms = units_mono_ms();
    struct shard_ctx x;
    shard_ctx_init(&x, c, shard_index(c, h));
    int locked = shard_lock(&x);
    if (locked < 0)
        return SHM_CACHE_ERR_LOCK;
    if (as_of_ms <= x.s->tomb[tomb_index(h)]) {
        x.s->stale_puts++;
        shard_unlock(&x, locked);
        return SHM_CACHE_STALE;
    }

    struct entry *e;
    uint32_t *link = chain_find(&x, (uint32_t)h, key, klen);
    if (link && entry_units(entry_at(&x, *link)->len) == n) {
        /* Same footprint: overwrite in place. */
        e = entry_at(&x, *link);
        lru_unlink(&x, e);
        lru_push_head(&x, e, *link);
    } else {
        if (link)
            entry_drop(&x, link);
        int64_t unit;
        while ((unit = units_alloc(&x, n)) < 0) {
            if (x.s->lru_tail == 0) { /* cannot happen: an empty shard has a max_order block */
                shard_unlock(&x, locked);
                return SHM_CACHE_ERR_TOO_BIG;
            }
            if (expired(entry_at(&x, x.s->lru_tail), now_ms))
                x.s->expired++;
            else
                x.s->evictions++;
            entry_drop(&x, chain_link_of(&x, x.s->lru_tail));
        }
        uint32_t ref = (uint32_t)unit + 1;
        e = entry_at(&x, ref);
        e->magic = ENTRY_MAGIC;
        e->hash = (uint32_t)h;
        memcpy(e->key, key, klen + 1);
        uint32_t *bucket = &x.buckets[(uint32_t)h & c->bucket_mask];
        e->hnext = *bucket;
        *bucket = ref;
        lru_push_head(&x, e, ref);
        x.s->items++;
        x.s->bytes_used += (uint64_t)n << UNIT_SHIFT;
    }
    e->len = (uint32_t)len;
    e->expires_ms = expires_ms;
    e->used_ms = now_ms;
    copy_parts((char *)(e + 1), parts, nparts);
    x.s->inserts++;
    shard_unlock(&x, locked);
    return SHM_CACHE_OK;
}

int shm_cache_get(struct shm_cache *c, const char *key, int64_t now_ms, shm_cache_copy_fn fn,
                  void *arg) {
    size_t klen = key_len(key);
    if (klen == 0 || fn == NULL)
        return SHM_CACHE_ERR_ARG;
    uint64_t h = siphash13(key, klen, c->seed);
    struct shard_ctx x;
    shard_ctx_init(&x, c, shard_index(c, h));
    int locked = shard_lock(&x);
    if (locked < 0)
        return SHM_CACHE_ERR_LOCK;

    int rc = SHM_CACHE_MISS;
    uint32_t *link = chain_find(&x, (uint32_t)h, key, klen);
    if (link == NULL) {
        x.s->misses++;
    } else if (expired(entry_at(&x, *link), now_ms)) {
        entry_drop(&x, link);
        x.s->expired++;
        x.s->misses++;
    } else {
        uint32_t ref = *link;
        struct entry *e = entry_at(&x, ref);
        if (ref != x.s->lru_head && (now_ms - e->used_ms >= (int64_t)c->bump_ms ||
                                     now_ms < e->used_ms /* the clock went back */)) {
            lru_unlink(&x, e);
            lru_push_head(&x, e, ref);
            e->used_ms = now_ms;
        }
        x.s->hits++;
        fn(e + 1, e->len, e->expires_ms, arg);
        rc = SHM_CACHE_OK;
    }
    shard_unlock(&x, locked);
    return rc;
}

/* Drops key's entry; with an invalidation (now_ms >= 0) also records its
 * time, so that no read sent before it is stored afterwards. */
static int drop(struct shm_cache *c, const char *key, int64_t now_ms) {
    size_t klen = key_len(key);
    if (klen == 0)
        return SHM_CACHE_ERR_ARG;
    uint64_t h = siphash13(key, klen, c->seed);
    struct shard_ctx x;
    shard_ctx_init(&x, c, shard_index(c, h));
    int locked = shard_lock(&x);
    if (locked < 0)
        return SHM_CACHE_ERR_LOCK;
    if (now_ms >= 0) {
        int64_t *tomb = &x.s->tomb[tomb_index(h)];
        if (now_ms > *tomb)
            *tomb = now_ms;
    }
    uint32_t *link = chain_find(&x, (uint32_t)h, key, klen);
    if (link) {
        entry_drop(&x, link);
        if (now_ms >= 0)
            x.s->invalidations++;
    }
    shard_unlock(&x, locked);
    return link ? SHM_CACHE_OK : SHM_CACHE_MISS;
}

int shm_cache_delete(struct shm_cache *c, const char *key) {
    return drop(c, key, -1);
}

int shm_cache_invalidate(struct shm_cache *c, const char *key, int64_t now_ms) {
    return drop(c, key, now_ms < 0 ? 0 : now_ms);
}

int shm_cache_shards(const struct shm_cache *c) {
    return (int)c->nshards;
}

int shm_cache_shard_of(const struct shm_cache *c, const char *key) {
    size_t klen = key_len(key);
    if (klen == 0)
        return -1;
    return shard_index(c, siphash13(key, klen, c->seed));
}

size_t shm_cache_max_value(const struct shm_cache *c) {
    return c->max_value;
}

void shm_cache_stats(struct shm_cache *c, int shard, struct shm_cache_stats *out) {
    memset(out, 0, sizeof(*out));
    if (shard < 0 || (uint32_t)shard >= c->nshards)
        return;
    out->capacity = (uint64_t)c->nunits << UNIT_SHIFT;
    struct shard_ctx x;
    shard_ctx_init(&x, c, shard);
    int locked = shard_lock(&x);
    if (locked < 0)
        return;
    out->hits = x.s->hits;
    out->misses = x.s->misses;
    out->inserts = x.s->inserts;
    out->evictions = x.s->evictions;
    out->expired = x.s->expired;
    out->lock_recoveries = x.s->lock_recoveries;
    out->invalidations = x.s->invalidations;
    out->stale_puts = x.s->stale_puts;
    out->items = x.s->items;
    out->bytes_used = x.s->bytes_used;
    shard_unlock(&x, locked);
}

/* ---- invariants ------------------------------------------------------------------------- */

/* Marks units [u, u + n) in the bitmap; false when one was already marked or out of range. */
static bool cover(uint64_t *bits, uint32_t nunits, uint32_t u, uint32_t n) {
    if ((uint64_t)u + n > nunits)
        return false;
    for (uint32_t i = u; i < u + n; i++) {
        if (bits[i / 64] & (1ull << (i % 64)))
            return false;
        bits[i / 64] |= 1ull << (i % 64);
    }
    return true;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, whylen, __VA_ARGS__);                                                    \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* Checks one locked shard; bits is a zeroed bitmap of nunits bits. */
static int check_shard(struct shard_ctx *x, uint64_t *bits, char *why, size_t whylen) {
    const struct shm_cache *c = x->c;
    uint64_t items = 0, units = 0;
    uint32_t prev = 0;
    for (uint32_t ref = x->s->lru_head; ref; ref = entry_at(x, ref)->lru_next) {
        CHECK(ref <= c->nunits && items < c->nunits, "LRU ref %u out of range or looping", ref);
        struct entry *e = entry_at(x, ref);
        CHECK(e->magic == ENTRY_MAGIC, "LRU entry %u has no magic", ref);
        CHECK(e->lru_prev == prev, "LRU entry %u: prev %u, expected %u", ref, e->lru_prev, prev);
        size_t klen = strnlen(e->key, sizeof(e->key));
        CHECK(klen > 0 && klen < sizeof(e->key), "entry %u: bad key", ref);
        uint64_t h = siphash13(e->key, klen, c->seed);
        CHECK(e->hash == (uint32_t)h && shard_index(c, h) == x->index,
              "entry %u (%s): wrong hash or shard", ref, e->key);
        CHECK(e->len <= c->max_value, "entry %u: length %u", ref, e->len);
        uint32_t n = entry_units(e->len);
        CHECK(cover(bits, c->nunits, ref - 1, n), "entry %u overlaps another block", ref);
        items++;
        units += n;
        prev = ref;
    }
    CHECK(x->s->lru_tail == prev, "LRU tail %u, expected %u", x->s->lru_tail, prev);
    CHECK(x->s->items == items, "items %llu, LRU holds %llu", (unsigned long long)x->s->items,
          (unsigned long long)items);
    CHECK(x->s->bytes_used == units << UNIT_SHIFT, "bytes_used %llu, entries take %llu",
          (unsigned long long)x->s->bytes_used, (unsigned long long)(units << UNIT_SHIFT));

    uint64_t chained = 0;
    for (uint32_t b = 0; b <= c->bucket_mask; b++) {
        for (uint32_t ref = x->buckets[b]; ref; ref = entry_at(x, ref)->hnext) {
            CHECK(ref <= c->nunits && chained < items, "chain of bucket %u broken", b);
            struct entry *e = entry_at(x, ref);
            CHECK(e->magic == ENTRY_MAGIC && (e->hash & c->bucket_mask) == b,
                  "entry %u in the wrong bucket %u", ref, b);
            chained++;
        }
    }
    CHECK(chained == items, "table holds %llu entries, LRU %llu", (unsigned long long)chained,
          (unsigned long long)items);

    uint64_t free_units = 0, free_blocks = 0;
    for (unsigned o = 0; o < NORDERS; o++) {
        prev = 0;
        for (uint32_t ref = x->s->free_head[o]; ref; ref = free_blk_at(x, ref - 1)->next) {
            uint32_t u = ref - 1;
            CHECK(o <= c->max_order && u < c->nunits && free_blocks < c->nunits,
                  "free list %u: block %u out of range", o, u);
            CHECK(u % (1u << o) == 0 && x->map[u] == (FREE_BIT | o),
                  "free block %u of order %u misaligned or not in the map", u, o);
            CHECK(free_blk_at(x, u)->prev == prev, "free list %u: bad prev at %u", o, u);
            CHECK(cover(bits, c->nunits, u, 1u << o), "free block %u overlaps", u);
            uint32_t buddy = u ^ (1u << o);
            CHECK(o == c->max_order || (uint64_t)buddy + (1u << o) > c->nunits ||
                      x->map[buddy] != (FREE_BIT | o),
                  "free block %u and its buddy both free at order %u", u, o);
            free_units += 1u << o;
            free_blocks++;
            prev = ref;
        }
    }
    uint64_t marked = 0;
    for (uint32_t u = 0; u < c->nunits; u++)
        marked += x->map[u] != 0;
    CHECK(marked == free_blocks, "map marks %llu free blocks, lists hold %llu",
          (unsigned long long)marked, (unsigned long long)free_blocks);
    CHECK(free_units + units == c->nunits, "free %llu + used %llu units != %u",
          (unsigned long long)free_units, (unsigned long long)units, c->nunits);
    return 0;
}

int shm_cache_check(struct shm_cache *c) {
    size_t words = (c->nunits + 63) / 64;
    uint64_t *bits = malloc(words * sizeof(uint64_t));
    if (bits == NULL)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < c->nshards; i++) {
        struct shard_ctx x;
        char why[160] = "";
        shard_ctx_init(&x, c, (int)i);
        memset(bits, 0, words * sizeof(uint64_t));
        int locked = shard_lock(&x);
        if (locked < 0) {
            snprintf(why, sizeof(why), "cannot lock");
            rc = -1;
        } else {
            rc = check_shard(&x, bits, why, sizeof(why));
            shard_unlock(&x, locked);
        }
        if (rc < 0)
            log_error("shm cache check: shard %u: %s", i, why);
    }
    free(bits);
    return rc;
}
