/* test_shm_cache.c — the shared-memory cache: basic operations, expiry, LRU eviction order,
 * value sizes, hash chains, invalidation (a put of something read before a change is refused),
 * the job entry (jobcache.h), recovery from a process killed holding a shard lock, and several
 * processes hammering one cache. The area is a MAP_SHARED | MAP_ANONYMOUS mapping so forked
 * children share it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "jobcache.h"
#include "segment.h"
#include "units.h"

#define MiB (1024u * 1024u)

/* ---- fixtures and helpers ----------------------------------------------------------------- */

struct fixture {
    void *mem;
    size_t size;
    struct shm_cache *c;
};

static void *map_shared(size_t size) {
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    return mem;
}

/* A cache of size bytes with strict LRU (bump interval 0) and the given buckets per shard. */
static struct fixture *fixture_new(size_t size, unsigned bump_ms, unsigned buckets) {
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->size = size;
    f->mem = map_shared(size);
    struct shm_cache_opts o;
    shm_cache_opts_init(&o);
    o.bump_interval_ms = bump_ms;
    o.buckets = buckets;
    assert_int_equal(shm_cache_init(f->mem, size, &o), 0);
    f->c = shm_cache_attach(f->mem);
    assert_non_null(f->c);
    return f;
}

static void fixture_free(struct fixture *f) {
    shm_cache_detach(f->c);
    munmap(f->mem, f->size);
    free(f);
}

/* What a get copied out. */
struct got {
    char *data;
    size_t cap;
    size_t len;
    int64_t expires_ms;
    int calls;
    int overflow;
};

static void copy_out(const void *value, size_t len, int64_t expires_ms, void *arg) {
    struct got *g = arg;
    g->calls++;
    g->len = len;
    g->expires_ms = expires_ms;
    if (len > g->cap) {
        g->overflow = 1;
        return;
    }
    memcpy(g->data, value, len);
}

static int put_str(struct shm_cache *c, const char *key, const char *value, int64_t expires_ms) {
    struct iovec iov = {(void *)value, strlen(value)};
    return shm_cache_put(c, key, &iov, 1, expires_ms);
}

/* put_since of a string, never expiring. */
static int put_since(struct shm_cache *c, const char *key, const char *value, int64_t as_of_ms) {
    struct iovec iov = {(void *)value, strlen(value)};
    return shm_cache_put_since(c, key, &iov, 1, 0, as_of_ms);
}

static int put_bytes(struct shm_cache *c, const char *key, const void *p, size_t n) {
    struct iovec iov = {(void *)p, n};
    return shm_cache_put(c, key, &iov, 1, 0);
}

/* Gets key as a string into buf (cap bytes); returns get's code. */
static int get_str(struct shm_cache *c, const char *key, char *buf, size_t cap) {
    struct got g = {.data = buf, .cap = cap - 1};
    int rc = shm_cache_get(c, key, units_mono_ms(), copy_out, &g);
    if (rc == SHM_CACHE_OK) {
        assert_int_equal(g.calls, 1);
        assert_false(g.overflow);
        buf[g.len] = '\0';
    } else {
        assert_int_equal(g.calls, 0);
    }
    return rc;
}

static int present(struct shm_cache *c, const char *key) {
    char buf[64 * 1024];
    return get_str(c, key, buf, sizeof(buf)) == SHM_CACHE_OK;
}

/* Fills keys[0..n) with distinct keys "<prefix>-<i>" that live in shard. */
static void keys_in_shard(struct shm_cache *c, int shard, const char *prefix, char (*keys)[64],
                          int n) {
    for (int i = 0, found = 0; found < n; i++) {
        char k[64];
        snprintf(k, sizeof(k), "%s-%d", prefix, i);
        if (shm_cache_shard_of(c, k) == shard)
            memcpy(keys[found++], k, sizeof(k));
    }
}

static struct shm_cache_stats stats_of(struct shm_cache *c, int shard) {
    struct shm_cache_stats s;
    shm_cache_stats(c, shard, &s);
    return s;
}

static struct shm_cache_stats stats_total(struct shm_cache *c) {
    struct shm_cache_stats t = {0};
    for (int i = 0; i < shm_cache_shards(c); i++) {
        struct shm_cache_stats s = stats_of(c, i);
        t.hits += s.hits;
        t.misses += s.misses;
        t.inserts += s.inserts;
        t.evictions += s.evictions;
        t.expired += s.expired;
        t.lock_recoveries += s.lock_recoveries;
        t.items += s.items;
        t.bytes_used += s.bytes_used;
        t.capacity += s.capacity;
    }
    return t;
}

/* Deterministic bytes for (seed, i). */
static void fill_pattern(unsigned char *p, size_t n, uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        p[i] = (unsigned char)(x >> (8 * (i % 8)));
    }
}

/* ---- set-up --------------------------------------------------------------------------------- */

static void test_init_and_attach(void **state) {
    (void)state;
    size_t size = 256 * MiB;
    void *mem = map_shared(size);
    struct shm_cache_opts o;
    shm_cache_opts_init(&o);
    assert_int_equal(o.shards, 16);
    assert_int_equal(o.bump_interval_ms, 1000);

    assert_null(shm_cache_attach(mem)); /* nothing laid out yet */
    o.shards = 8;
    errno = 0;
    assert_int_equal(shm_cache_init(mem, size, &o), -1);
    assert_int_equal(errno, EINVAL);
    o.shards = 16;
    o.buckets = 100; /* not a power of two */
    assert_int_equal(shm_cache_init(mem, size, &o), -1);
    o.buckets = 0;
    assert_int_equal(shm_cache_init(mem, 64 * 1024, &o), -1); /* too small for 16 shards */
    assert_int_equal(shm_cache_init((char *)mem + 8, size - 64, &o), -1); /* misaligned */

    /* The default geometry: 16 shards, values of at least 4 MiB. */
    assert_int_equal(shm_cache_init(mem, size, NULL), 0);
    struct shm_cache *c = shm_cache_attach(mem);
    assert_non_null(c);
    assert_int_equal(shm_cache_shards(c), 16);
    assert_true(shm_cache_max_value(c) >= 4 * MiB);
    assert_int_equal(shm_cache_max_value(c), 8 * MiB - 104);
    struct shm_cache_stats s = stats_of(c, 15);
    assert_true(s.capacity > 15 * MiB && s.capacity <= 16 * MiB);
    assert_int_equal(s.items, 0);
    s = stats_of(c, 16); /* out of range: zeroes */
    assert_int_equal(s.capacity, 0);

    /* A 4 MiB value and the largest accepted one round-trip at the default geometry. */
    size_t max = shm_cache_max_value(c);
    unsigned char *big = malloc(max + 1), *back = malloc(max + 1);
    assert_non_null(big);
    assert_non_null(back);
    fill_pattern(big, max + 1, 7);
    size_t sizes[] = {4 * MiB, max};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(put_bytes(c, "big", big, sizes[i]), SHM_CACHE_OK);
        struct got g = {.data = (char *)back, .cap = max + 1};
        assert_int_equal(shm_cache_get(c, "big", units_mono_ms(), copy_out, &g), SHM_CACHE_OK);
        assert_int_equal(g.len, sizes[i]);
        assert_memory_equal(back, big, sizes[i]);
    }
    assert_int_equal(put_bytes(c, "bigger", big, max + 1), SHM_CACHE_ERR_TOO_BIG);
    assert_int_equal(shm_cache_check(c), 0);
    free(big);
    free(back);

    /* A second handle (another process's view) sees the same cache. */
    struct shm_cache *c2 = shm_cache_attach(mem);
    assert_non_null(c2);
    assert_int_equal(put_str(c, "k", "v", 0), SHM_CACHE_OK);
    assert_true(present(c2, "k"));
    shm_cache_detach(c2);
    shm_cache_detach(c);

    memset(mem, 0, 64); /* a broken magic does not attach */
    assert_null(shm_cache_attach(mem));
    munmap(mem, size);
}

/* ---- basic operations ----------------------------------------------------------------------- */

static void test_put_get_overwrite_delete(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    char buf[64 * 1024];

    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_MISS);
    assert_int_equal(put_str(c, "job1", "hello", 0), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_OK);
    assert_string_equal(buf, "hello");
    int shard = shm_cache_shard_of(c, "job1");
    struct shm_cache_stats s = stats_of(c, shard);
    assert_int_equal(s.items, 1);
    assert_int_equal(s.bytes_used, 128); /* 104-byte header + 5 bytes in one 128-byte unit */
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.inserts, 1);

    /* Overwrite with the same footprint: the new value, the same memory. */
    assert_int_equal(put_str(c, "job1", "world", 0), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_OK);
    assert_string_equal(buf, "world");
    s = stats_of(c, shard);
    assert_int_equal(s.items, 1);
    assert_int_equal(s.bytes_used, 128);

    /* Overwrite with other sizes: the old block is freed, nothing leaks or is evicted. */
    memset(buf, 'x', 10000);
    buf[10000] = '\0';
    assert_int_equal(put_str(c, "job1", buf, 0), SHM_CACHE_OK);
    assert_int_equal(stats_of(c, shard).bytes_used, (104 + 10000 + 127) / 128 * 128);
    for (int i = 0; i < 2000; i++) {
        char v[8000];
        size_t n = (size_t)(i * 37) % (sizeof(v) - 1);
        memset(v, 'a' + i % 26, n);
        v[n] = '\0';
        assert_int_equal(put_str(c, "job1", v, 0), SHM_CACHE_OK);
        assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_OK);
        assert_string_equal(buf, v);
        assert_int_equal(stats_of(c, shard).bytes_used, (104 + n + 127) / 128 * 128);
    }
    s = stats_of(c, shard);
    assert_int_equal(s.items, 1);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(shm_cache_check(c), 0);

    /* Delete: gone, memory back, a second delete misses. */
    assert_int_equal(shm_cache_delete(c, "job1"), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_MISS);
    assert_int_equal(shm_cache_delete(c, "job1"), SHM_CACHE_MISS);
    s = stats_of(c, shard);
    assert_int_equal(s.items, 0);
    assert_int_equal(s.bytes_used, 0);
    assert_int_equal(shm_cache_check(c), 0);

    /* Keys: 1..63 bytes. */
    char k63[64], k64[65];
    memset(k63, 'k', 63);
    k63[63] = '\0';
    memset(k64, 'k', 64);
    k64[64] = '\0';
    assert_int_equal(put_str(c, k63, "long", 0), SHM_CACHE_OK);
    assert_int_equal(get_str(c, k63, buf, sizeof(buf)), SHM_CACHE_OK);
    assert_string_equal(buf, "long");
    assert_int_equal(put_str(c, k64, "x", 0), SHM_CACHE_ERR_ARG);
    assert_int_equal(put_str(c, "", "x", 0), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_put(c, NULL, NULL, 0, 0), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_put(c, "k", NULL, -1, 0), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_put(c, "k", NULL, 2, 0), SHM_CACHE_ERR_ARG);
    assert_int_equal(get_str(c, k64, buf, sizeof(buf)), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_get(c, "k", 0, NULL, NULL), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_delete(c, ""), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_shard_of(c, k64), -1);
    fixture_free(f);
}

static void test_iovec_parts(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    struct {
        uint32_t state;
        uint32_t doc_len;
    } head = {3, 17};
    const char *doc = "{\"state\":\"done\"}";
    unsigned char img[3000];
    fill_pattern(img, sizeof(img), 42);
    struct iovec parts[4] = {
        {&head, sizeof(head)}, {(void *)doc, strlen(doc)}, {NULL, 0}, {img, sizeof(img)}};
    assert_int_equal(shm_cache_put(c, "job", parts, 4, 0), SHM_CACHE_OK);

    char want[sizeof(head) + 16 + sizeof(img)], got[sizeof(want)];
    memcpy(want, &head, sizeof(head));
    memcpy(want + sizeof(head), doc, strlen(doc));
    memcpy(want + sizeof(head) + strlen(doc), img, sizeof(img));
    size_t n = sizeof(head) + strlen(doc) + sizeof(img);
    struct got g = {.data = got, .cap = sizeof(got)};
    assert_int_equal(shm_cache_get(c, "job", units_mono_ms(), copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(g.len, n);
    assert_memory_equal(got, want, n);

    /* No parts: an empty value, still a hit. */
    assert_int_equal(shm_cache_put(c, "empty", NULL, 0, 0), SHM_CACHE_OK);
    g = (struct got){.data = got, .cap = sizeof(got)};
    assert_int_equal(shm_cache_get(c, "empty", units_mono_ms(), copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.len, 0);
    fixture_free(f);
}

static void test_expiry(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    int64_t now = units_mono_ms();
    char buf[64];
    int shard = shm_cache_shard_of(c, "old");

    /* Already expired: a miss, and the entry is freed. */
    assert_int_equal(put_str(c, "old", "stale", now - 1), SHM_CACHE_OK);
    assert_int_equal(stats_of(c, shard).items, 1);
    struct got g = {.data = buf, .cap = sizeof(buf)};
    assert_int_equal(shm_cache_get(c, "old", now, copy_out, &g), SHM_CACHE_MISS);
    assert_int_equal(g.calls, 0);
    struct shm_cache_stats s = stats_of(c, shard);
    assert_int_equal(s.items, 0);
    assert_int_equal(s.bytes_used, 0);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(shm_cache_delete(c, "old"), SHM_CACHE_MISS);

    /* A future expiry is a hit until then, handed to the callback, then a miss. */
    assert_int_equal(put_str(c, "pending", "queued", now + 200), SHM_CACHE_OK);
    g = (struct got){.data = buf, .cap = sizeof(buf)};
    assert_int_equal(shm_cache_get(c, "pending", now + 199, copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(g.expires_ms, now + 200);
    assert_int_equal(shm_cache_get(c, "pending", now + 200, copy_out, &g), SHM_CACHE_MISS);
    assert_int_equal(stats_of(c, shm_cache_shard_of(c, "pending")).items, 0);

    /* 0 never expires. */
    assert_int_equal(put_str(c, "done", "thumb", 0), SHM_CACHE_OK);
    g = (struct got){.data = buf, .cap = sizeof(buf)};
    assert_int_equal(shm_cache_get(c, "done", INT64_MAX, copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(g.expires_ms, 0);
    assert_int_equal(shm_cache_check(c), 0);
    fixture_free(f);
}

/* ---- eviction ------------------------------------------------------------------------------- */

#define LRU_KEYS 300
#define LRU_VAL  (4096 - 104) /* exactly a 4 KiB block each */

static void test_eviction_is_lru(void **state) {
    (void)state;
    struct fixture *f = fixture_new(4 * MiB, 0, 0); /* shards of about 245 KiB */
    struct shm_cache *c = f->c;
    static char keys[LRU_KEYS][64];
    keys_in_shard(c, 0, "lru", keys, LRU_KEYS);
    static char val[LRU_VAL];
    memset(val, 'v', sizeof(val));

    /* Fill shard 0 until the first eviction: it takes the oldest key. */
    int m = 0;
    while (stats_of(c, 0).evictions == 0) {
        assert_true(m < LRU_KEYS);
        assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    }
    int held = m - 1; /* entries the shard holds */
    assert_true(held > 10);
    assert_int_equal(stats_of(c, 0).items, held);
    assert_false(present(c, keys[0]));
    /* Reading keys 1..m-1 in order keeps their order in the LRU. */
    for (int i = 1; i < m; i++)
        assert_true(present(c, keys[i]));

    /* Touch the oldest (keys[1]); the next insert must evict keys[2], not keys[1]. */
    assert_true(present(c, keys[1]));
    assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_int_equal(stats_of(c, 0).evictions, 2);
    assert_false(present(c, keys[2]));
    assert_true(present(c, keys[1]));
    assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_false(present(c, keys[3]));
    assert_true(present(c, keys[1]));

    /* After its last use, keys[1] outlives held - 1 inserts (the entries behind it go) and
     * goes with the held-th. */
    for (int i = 0; i < held - 1; i++)
        assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_true(present(c, keys[1])); /* the oldest now; this read is its last use */
    for (int i = 0; i < held; i++)
        assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_false(present(c, keys[1]));
    assert_int_equal(stats_of(c, 0).items, held);
    /* Other shards were not touched by shard 0's pressure. */
    for (int i = 1; i < shm_cache_shards(c); i++)
        assert_int_equal(stats_of(c, i).evictions, 0);
    assert_int_equal(shm_cache_check(c), 0);
    fixture_free(f);
}

/* With a bump interval, a hit relinks an entry only when its last relink is that old. */
static void test_bump_interval(void **state) {
    (void)state;
    struct fixture *f = fixture_new(4 * MiB, 1000, 0);
    struct shm_cache *c = f->c;
    static char keys[LRU_KEYS][64];
    keys_in_shard(c, 0, "bump", keys, LRU_KEYS);
    static char val[LRU_VAL];
    memset(val, 'v', sizeof(val));
    char buf[8];

    int m = 0;
    while (stats_of(c, 0).evictions == 0)
        assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    int64_t now = units_mono_ms();

    /* A hit within the interval does not relink: keys[1] is evicted next anyway. */
    struct got g = {.data = buf, .cap = 0};
    assert_int_equal(shm_cache_get(c, keys[1], now, copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_int_equal(shm_cache_get(c, keys[1], now, copy_out, &g), SHM_CACHE_MISS);

    /* A hit an interval later does: keys[2] survives, keys[3] goes. */
    assert_int_equal(shm_cache_get(c, keys[2], now + 1000, copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(put_bytes(c, keys[m++], val, sizeof(val)), SHM_CACHE_OK);
    assert_int_equal(shm_cache_get(c, keys[3], now, copy_out, &g), SHM_CACHE_MISS);
    assert_int_equal(shm_cache_get(c, keys[2], now, copy_out, &g), SHM_CACHE_OK);
    fixture_free(f);
}

/* ---- sizes ---------------------------------------------------------------------------------- */

static void round_trip(struct shm_cache *c, const char *key, unsigned char *src, unsigned char *dst,
                       size_t n) {
    fill_pattern(src, n, n * 31 + 5);
    assert_int_equal(put_bytes(c, key, src, n), SHM_CACHE_OK);
    struct got g = {.data = (char *)dst, .cap = n};
    memset(dst, 0, n);
    assert_int_equal(shm_cache_get(c, key, units_mono_ms(), copy_out, &g), SHM_CACHE_OK);
    assert_int_equal(g.len, n);
    assert_false(g.overflow);
    assert_memory_equal(dst, src, n);
}

static void test_sizes(void **state) {
    (void)state;
    struct fixture *f = fixture_new(64 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    size_t max = shm_cache_max_value(c);
    assert_int_equal(max, 2 * MiB - 104); /* shards of about 4 MiB: largest block 2 MiB */
    unsigned char *src = malloc(max + 1), *dst = malloc(max + 1);
    assert_non_null(src);
    assert_non_null(dst);

    /* Around every unit boundary of the small sizes, then around every power of two. */
    for (size_t n = 0; n <= 4096; n++) {
        char key[32];
        snprintf(key, sizeof(key), "small-%zu", n % 97);
        round_trip(c, key, src, dst, n);
    }
    for (size_t p = 4096; p <= 4 * MiB; p *= 2) {
        size_t around[] = {p - 105, p - 104, p - 103, p - 1, p, p + 1};
        for (int i = 0; i < 6; i++) {
            if (around[i] > max)
                continue;
            char key[32];
            snprintf(key, sizeof(key), "p-%zu-%d", p, i);
            round_trip(c, key, src, dst, around[i]);
        }
    }
    round_trip(c, "max", src, dst, max);
    assert_int_equal(shm_cache_check(c), 0);

    /* Too large: refused, and the shard's entries stay. */
    static char keys[20][64];
    keys_in_shard(c, 3, "keep", keys, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(put_str(c, keys[i], keys[i], 0), SHM_CACHE_OK);
    struct shm_cache_stats before = stats_of(c, 3);
    assert_int_equal(put_bytes(c, keys[0], src, max + 1), SHM_CACHE_ERR_TOO_BIG);
    struct iovec halves[2] = {{src, max / 2 + 1}, {src, max / 2 + 1}};
    assert_int_equal(shm_cache_put(c, keys[1], halves, 2, 0), SHM_CACHE_ERR_TOO_BIG);
    struct iovec huge[2] = {{src, SIZE_MAX / 2}, {src, SIZE_MAX / 2}}; /* never read */
    assert_int_equal(shm_cache_put(c, keys[2], huge, 2, 0), SHM_CACHE_ERR_TOO_BIG);
    struct iovec shard_sized = {src, (size_t)before.capacity};
    assert_int_equal(shm_cache_put(c, keys[3], &shard_sized, 1, 0), SHM_CACHE_ERR_TOO_BIG);
    struct shm_cache_stats after = stats_of(c, 3);
    assert_int_equal(after.items, before.items);
    assert_int_equal(after.evictions, before.evictions);
    assert_int_equal(after.inserts, before.inserts);
    for (int i = 0; i < 20; i++) {
        char buf[64];
        assert_int_equal(get_str(c, keys[i], buf, sizeof(buf)), SHM_CACHE_OK);
        assert_string_equal(buf, keys[i]);
    }
    assert_int_equal(shm_cache_check(c), 0);
    free(src);
    free(dst);
    fixture_free(f);
}

/* ---- hash chains ---------------------------------------------------------------------------- */

static void test_bucket_chains(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 1); /* one bucket per shard: one chain */
    struct shm_cache *c = f->c;
    enum { N = 40 };
    static char keys[N][64];
    keys_in_shard(c, 5, "chain", keys, N);
    char buf[128];
    for (int i = 0; i < N; i++)
        assert_int_equal(put_str(c, keys[i], keys[i], 0), SHM_CACHE_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(get_str(c, keys[i], buf, sizeof(buf)), SHM_CACHE_OK);
        assert_string_equal(buf, keys[i]);
    }
    /* Delete from the middle, the head (last inserted) and the end (first inserted). */
    int gone[] = {N / 2, N / 2 + 1, N - 1, 0, 7};
    for (int j = 0; j < 5; j++)
        assert_int_equal(shm_cache_delete(c, keys[gone[j]]), SHM_CACHE_OK);
    /* Replace one in the middle with a value of another size (moves in the chain). */
    char big[2000];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(put_str(c, keys[12], big, 0), SHM_CACHE_OK);
    for (int i = 0; i < N; i++) {
        int deleted = 0;
        for (int j = 0; j < 5; j++)
            deleted |= gone[j] == i;
        char b[4096];
        int rc = get_str(c, keys[i], b, sizeof(b));
        if (deleted) {
            assert_int_equal(rc, SHM_CACHE_MISS);
        } else {
            assert_int_equal(rc, SHM_CACHE_OK);
            assert_string_equal(b, i == 12 ? big : keys[i]);
        }
    }
    assert_int_equal(stats_of(c, 5).items, N - 5);

    /* Every shard chains in its single bucket; all still retrievable. */
    for (int i = 0; i < 500; i++) {
        char k[32];
        snprintf(k, sizeof(k), "many-%d", i);
        assert_int_equal(put_str(c, k, k, 0), SHM_CACHE_OK);
    }
    for (int i = 0; i < 500; i++) {
        char k[32];
        snprintf(k, sizeof(k), "many-%d", i);
        assert_int_equal(get_str(c, k, buf, sizeof(buf)), SHM_CACHE_OK);
        assert_string_equal(buf, k);
    }
    assert_int_equal(shm_cache_check(c), 0);
    fixture_free(f);
}

/* ---- a process killed holding a lock -------------------------------------------------------- */

static void die_holding_lock(const void *value, size_t len, int64_t expires_ms, void *arg) {
    (void)value;
    (void)len;
    (void)expires_ms;
    (void)arg;
    raise(SIGKILL); /* called under the shard lock */
}

/* ---- invalidation ------------------------------------------------------------------------ */

static void test_invalidate(void **state) {
    (void)state;
    struct fixture *f = fixture_new(4 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    char buf[64];
    int shard = shm_cache_shard_of(c, "job1");

    /* Before any invalidation every read time is fresh enough. */
    assert_int_equal(put_since(c, "job1", "v1", 1), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_OK);

    /* The change drops the entry, once. */
    int64_t t = units_mono_ms();
    assert_int_equal(shm_cache_invalidate(c, "job1", t), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_MISS);
    assert_int_equal(shm_cache_invalidate(c, "job1", t), SHM_CACHE_MISS);
    struct shm_cache_stats s = stats_of(c, shard);
    assert_int_equal(s.invalidations, 1);
    assert_int_equal(s.items, 0);

    /* A value read at or before the change is refused, and nothing is stored;
     * one read after it is stored. */
    assert_int_equal(put_since(c, "job1", "old", t - 1000), SHM_CACHE_STALE);
    assert_int_equal(put_since(c, "job1", "old", t), SHM_CACHE_STALE);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_MISS);
    assert_int_equal(stats_of(c, shard).stale_puts, 2);
    assert_int_equal(put_since(c, "job1", "new", t + 1), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job1", buf, sizeof(buf)), SHM_CACHE_OK);
    assert_string_equal(buf, "new");

    /* A change of a key that is not cached is remembered all the same (a read
     * in flight must not land after it). */
    int64_t t2 = t + 50;
    assert_int_equal(shm_cache_invalidate(c, "job2", t2), SHM_CACHE_MISS);
    assert_int_equal(put_since(c, "job2", "old", t2 - 1), SHM_CACHE_STALE);
    assert_int_equal(put_since(c, "job2", "new", t2 + 1), SHM_CACHE_OK);

    /* The time only moves forward: an older notice does not let older reads in. */
    assert_int_equal(shm_cache_invalidate(c, "job2", t2 - 20), SHM_CACHE_OK);
    assert_int_equal(put_since(c, "job2", "old", t2 - 10), SHM_CACHE_STALE);

    /* A plain put does not look at invalidations. */
    assert_int_equal(put_str(c, "job2", "plain", 0), SHM_CACHE_OK);
    assert_int_equal(get_str(c, "job2", buf, sizeof(buf)), SHM_CACHE_OK);

    /* Keys of other shards keep their own times. */
    char other[1][64];
    keys_in_shard(c, (shard + 1) % shm_cache_shards(c), "o", other, 1);
    assert_int_equal(put_since(c, other[0], "x", 1), SHM_CACHE_OK);

    assert_int_equal(shm_cache_invalidate(c, "", t), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_invalidate(c, NULL, t), SHM_CACHE_ERR_ARG);
    assert_int_equal(shm_cache_check(c), 0);
    fixture_free(f);
}

/* What jobcache_get passed on. */
struct job_got {
    struct jobcache_head head;
    char doc[256];
    int calls;
};

static void job_copy(const struct jobcache_head *head, const char *doc, const void *body,
                     int64_t expires_ms, void *arg) {
    (void)body;
    (void)expires_ms;
    struct job_got *g = arg;
    g->head = *head;
    snprintf(g->doc, sizeof(g->doc), "%.*s", (int)head->doc_len, doc);
    g->calls++;
}

static void test_jobcache_read_time(void **state) {
    (void)state;
    struct fixture *f = fixture_new(4 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    const char *doc = "{\"status\":\"done\"}";
    int64_t r = units_mono_ms();
    assert_int_equal(jobcache_put(c, "jobA", "", "done", doc, strlen(doc), NULL, "image/png", "e1",
                                  "PNG", 3, 0, r),
                     0);
    struct job_got g = {.calls = 0};
    assert_true(jobcache_get(c, "jobA", "", units_mono_ms(), job_copy, &g));
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.doc, doc);
    assert_true(g.head.terminal && g.head.done && g.head.has_body);
    assert_true(g.head.read_ms == r);

    /* A finished job: trusted only by a reader whose notices cover its read. */
    assert_true(jobcache_confirmed(&g.head, r - 1));
    assert_false(jobcache_confirmed(&g.head, r));
    assert_false(jobcache_confirmed(&g.head, INT64_MAX));
    assert_true(jobcache_confirmed(&g.head, INT64_MIN));

    /* A job not ended is always usable (it lives cache.pending_ttl only). */
    const char *pending = "{\"status\":\"processing\"}";
    assert_int_equal(jobcache_put(c, "jobB", "", "processing", pending, strlen(pending), NULL, NULL,
                                  NULL, NULL, 0, 0, r),
                     0);
    assert_true(jobcache_get(c, "jobB", "", units_mono_ms(), job_copy, &g));
    assert_false(g.head.terminal);
    assert_true(jobcache_confirmed(&g.head, INT64_MAX));

    /* Changed after the read: gone, and the read is not put back. */
    assert_int_equal(shm_cache_invalidate(c, "jobA", r + 10), SHM_CACHE_OK);
    assert_false(jobcache_get(c, "jobA", "", units_mono_ms(), job_copy, &g));
    assert_int_equal(jobcache_put(c, "jobA", "", "done", doc, strlen(doc), NULL, "image/png", "e1",
                                  "PNG", 3, 0, r),
                     1);
    assert_false(jobcache_get(c, "jobA", "", units_mono_ms(), job_copy, &g));
    assert_int_equal(jobcache_put(c, "jobA", "", "done", doc, strlen(doc), NULL, "image/png", "e1",
                                  "PNG", 3, 0, r + 11),
                     0);
    assert_true(jobcache_get(c, "jobA", "", units_mono_ms(), job_copy, &g));
    assert_true(g.head.read_ms == r + 11);
    fixture_free(f);
}

static void assert_killed(pid_t pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void test_owner_dies_holding_lock(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    int nshards = shm_cache_shards(c);
    char keys[16][64];
    for (int s = 0; s < nshards; s++) { /* three keys in every shard */
        char k[3][64];
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "s%d", s);
        keys_in_shard(c, s, prefix, k, 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(put_str(c, k[i], k[i], 0), SHM_CACHE_OK);
        memcpy(keys[s], k[0], sizeof(k[0]));
    }
    const int victim = 9;
    int64_t before = units_mono_ms(); /* a read made before the holder died */

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct shm_cache *cc = shm_cache_attach(f->mem);
        if (cc)
            shm_cache_get(cc, keys[victim], units_mono_ms(), die_holding_lock, NULL);
        _exit(3); /* not reached when the callback ran */
    }
    assert_killed(pid);

    /* The next locker recovers: the shard is empty, the recovery counted once. */
    char buf[64];
    assert_int_equal(get_str(c, keys[victim], buf, sizeof(buf)), SHM_CACHE_MISS);
    struct shm_cache_stats s = stats_of(c, victim);
    assert_int_equal(s.lock_recoveries, 1);
    assert_int_equal(s.items, 0);
    assert_int_equal(s.bytes_used, 0);
    assert_true(s.hits >= 1); /* counters survive the wipe */
    /* The other shards are intact. */
    for (int i = 0; i < nshards; i++) {
        if (i == victim)
            continue;
        assert_int_equal(stats_of(c, i).lock_recoveries, 0);
        assert_int_equal(stats_of(c, i).items, 3);
        assert_int_equal(get_str(c, keys[i], buf, sizeof(buf)), SHM_CACHE_OK);
        assert_string_equal(buf, keys[i]);
    }
    /* The dead holder may have been invalidating: what was read before the
     * recovery is not stored in the wiped shard, what is read after is. */
    assert_int_equal(put_since(c, keys[victim], "read before", before), SHM_CACHE_STALE);
    assert_int_equal(put_since(c, keys[victim], "read after", units_mono_ms() + 1), SHM_CACHE_OK);
    /* And the recovered shard works. */
    assert_int_equal(put_str(c, keys[victim], "again", 0), SHM_CACHE_OK);
    assert_int_equal(get_str(c, keys[victim], buf, sizeof(buf)), SHM_CACHE_OK);
    assert_string_equal(buf, "again");
    assert_int_equal(stats_of(c, victim).lock_recoveries, 1);
    assert_int_equal(shm_cache_check(c), 0);
    fixture_free(f);
}

/* A value that says which key it belongs to and carries a checksum of its payload. */
struct stamped {
    char key[64];
    uint64_t payload_len;
    uint64_t seed;
    uint64_t sum;
};

static uint64_t checksum(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Puts key -> stamped header + payload_len pattern bytes from buf. */
static int put_stamped(struct shm_cache *c, const char *key, unsigned char *buf, size_t payload_len,
                       uint64_t seed, int64_t expires_ms) {
    struct stamped h = {.payload_len = payload_len, .seed = seed};
    snprintf(h.key, sizeof(h.key), "%s", key);
    fill_pattern(buf, payload_len, seed);
    h.sum = checksum(buf, payload_len);
    struct iovec parts[2] = {{&h, sizeof(h)}, {buf, payload_len}};
    return shm_cache_put(c, key, parts, 2, expires_ms);
}

/* Gets key and verifies it; returns get's code, or 99 when the value is wrong. */
static int get_stamped(struct shm_cache *c, const char *key, struct got *g) {
    g->calls = 0;
    g->overflow = 0;
    int rc = shm_cache_get(c, key, units_mono_ms(), copy_out, g);
    if (rc != SHM_CACHE_OK)
        return rc;
    struct stamped h;
    if (g->calls != 1 || g->overflow || g->len < sizeof(h))
        return 99;
    memcpy(&h, g->data, sizeof(h));
    if (strcmp(h.key, key) != 0 || g->len != sizeof(h) + h.payload_len ||
        checksum((unsigned char *)g->data + sizeof(h), h.payload_len) != h.sum)
        return 99;
    return rc;
}

/* Kills a child at random moments of a tight put loop into one shard until a kill lands with
 * the lock held (the shard is then half-written); after each kill the cache must be sound. */
static void test_killed_in_put_loop(void **state) {
    (void)state;
    struct fixture *f = fixture_new(16 * MiB, 0, 0);
    struct shm_cache *c = f->c;
    const int victim = 4, other = 11;
    static char vkeys[8][64], okeys[8][64];
    keys_in_shard(c, victim, "v", vkeys, 8);
    keys_in_shard(c, other, "o", okeys, 8);
    unsigned char *buf = malloc(300 * 1024);
    struct got g = {.data = malloc(300 * 1024), .cap = 300 * 1024};
    assert_non_null(buf);
    assert_non_null(g.data);
    for (int i = 0; i < 8; i++)
        assert_int_equal(put_stamped(c, okeys[i], buf, 1000 + i, i, 0), SHM_CACHE_OK);

    srand(12345);
    int rounds = 0;
    uint64_t recovered = 0;
    for (; rounds < 400 && (rounds < 30 || recovered < 3); rounds++) {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            struct shm_cache *cc = shm_cache_attach(f->mem);
            unsigned char *b = malloc(300 * 1024);
            if (cc == NULL || b == NULL)
                _exit(3);
            fill_pattern(b, 300 * 1024, 1);
            struct stamped h = {0};
            (void)!write(pipefd[1], "x", 1);
            /* Large values so most of the loop runs under the lock; the header is stale on
             * purpose (the check below only needs sound structure). */
            for (unsigned i = 0;; i++) {
                struct iovec parts[2] = {{&h, sizeof(h)}, {b, 100 * 1024 + (i % 7) * 20000}};
                shm_cache_put(cc, vkeys[i % 8], parts, 2, 0);
            }
        }
        close(pipefd[1]);
        char x;
        assert_int_equal(read(pipefd[0], &x, 1), 1);
        close(pipefd[0]);
        struct timespec ts = {0, (rand() % 3000 + 100) * 1000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        assert_killed(pid);
        assert_int_equal(shm_cache_check(c), 0); /* locks every shard: recovers if needed */
        recovered = stats_of(c, victim).lock_recoveries;
    }
    assert_true(recovered >= 1);
    /* The other shard never noticed. */
    assert_int_equal(stats_of(c, other).lock_recoveries, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(get_stamped(c, okeys[i], &g), SHM_CACHE_OK);
    print_message("      %d kills, %llu with the lock held\n", rounds,
                  (unsigned long long)recovered);
    free(buf);
    free(g.data);
    fixture_free(f);
}

/* ---- several processes ---------------------------------------------------------------------- */

#define HAMMER_PROCS 4
#define HAMMER_ITERS 20000
#define HAMMER_KEYS  300

struct hammer_result {
    uint64_t gets, hits, puts, deletes, bad;
};

static void hammer(void *mem, int id, struct hammer_result *out) {
    struct shm_cache *c = shm_cache_attach(mem);
    unsigned char *buf = malloc(256 * 1024);
    struct got g = {.data = malloc(256 * 1024), .cap = 256 * 1024};
    if (c == NULL || buf == NULL || g.data == NULL) {
        out->bad++;
        return;
    }
    size_t max_payload = shm_cache_max_value(c) - sizeof(struct stamped);
    uint64_t x = 88172645463325252ULL ^ (uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < HAMMER_ITERS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char key[32];
        snprintf(key, sizeof(key), "job-%llu", (unsigned long long)(x % HAMMER_KEYS));
        unsigned op = (unsigned)(x >> 20) % 100;
        if (op < 50) {
            int rc = get_stamped(c, key, &g);
            out->gets++;
            if (rc == SHM_CACHE_OK)
                out->hits++;
            else if (rc != SHM_CACHE_MISS)
                out->bad++;
        } else if (op < 92) {
            size_t len = (x >> 32) % 8192;
            if (op < 55) /* a few large values: several per shard evict each other */
                len = (x >> 32) % max_payload;
            int64_t exp = op % 4 == 0 ? units_mono_ms() + (int64_t)((x >> 40) % 5) : 0;
            if (put_stamped(c, key, buf, len, x, exp) != SHM_CACHE_OK)
                out->bad++;
            out->puts++;
        } else {
            int rc = shm_cache_delete(c, key);
            if (rc != SHM_CACHE_OK && rc != SHM_CACHE_MISS)
                out->bad++;
            out->deletes++;
        }
    }
    free(buf);
    free(g.data);
    shm_cache_detach(c);
}

static void test_concurrent_processes(void **state) {
    (void)state;
    struct fixture *f = fixture_new(8 * MiB, 0, 0); /* small: constant eviction */
    struct hammer_result *res = map_shared(sizeof(struct hammer_result) * HAMMER_PROCS);
    memset(res, 0, sizeof(struct hammer_result) * HAMMER_PROCS);
    pid_t pids[HAMMER_PROCS];
    for (int i = 0; i < HAMMER_PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            hammer(f->mem, i, &res[i]);
            _exit(0);
        }
    }
    for (int i = 0; i < HAMMER_PROCS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    struct hammer_result sum = {0};
    for (int i = 0; i < HAMMER_PROCS; i++) {
        sum.gets += res[i].gets;
        sum.hits += res[i].hits;
        sum.puts += res[i].puts;
        sum.deletes += res[i].deletes;
        sum.bad += res[i].bad;
    }
    assert_int_equal(sum.bad, 0);
    assert_true(sum.hits > 0);
    assert_int_equal(sum.gets + sum.puts + sum.deletes, HAMMER_PROCS * HAMMER_ITERS);

    /* Every counter accounted for, and the structures sound. */
    struct shm_cache_stats t = stats_total(f->c);
    assert_int_equal(t.hits, sum.hits);
    assert_int_equal(t.hits + t.misses, sum.gets);
    assert_int_equal(t.inserts, sum.puts);
    assert_int_equal(t.lock_recoveries, 0);
    assert_true(t.evictions > 0);
    assert_true(t.items <= HAMMER_KEYS);
    for (int i = 0; i < shm_cache_shards(f->c); i++) {
        struct shm_cache_stats s = stats_of(f->c, i);
        assert_true(s.bytes_used <= s.capacity);
    }
    assert_int_equal(shm_cache_check(f->c), 0);
    print_message("      %llu gets (%llu hits), %llu puts, %llu deletes, %llu evictions, "
                  "%llu expired\n",
                  (unsigned long long)sum.gets, (unsigned long long)sum.hits,
                  (unsigned long long)sum.puts, (unsigned long long)sum.deletes,
                  (unsigned long long)t.evictions, (unsigned long long)t.expired);
    munmap(res, sizeof(struct hammer_result) * HAMMER_PROCS);
    fixture_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_attach),
        cmocka_unit_test(test_put_get_overwrite_delete),
        cmocka_unit_test(test_iovec_parts),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_eviction_is_lru),
        cmocka_unit_test(test_bump_interval),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_bucket_chains),
        cmocka_unit_test(test_invalidate),
        cmocka_unit_test(test_jobcache_read_time),
        cmocka_unit_test(test_owner_dies_holding_lock),
        cmocka_unit_test(test_killed_in_put_loop),
        cmocka_unit_test(test_concurrent_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
