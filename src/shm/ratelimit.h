/* ratelimit.h — token buckets in the shared segment, one per API key or client
 * address, shared by every http child so a client's limit does not depend on
 * which child its connections land on. */
#ifndef TH_SHM_RATELIMIT_H
#define TH_SHM_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

#define RATELIMIT_ENTRIES 8192 /* power of two; the stalest bucket makes room */

struct ratelimit_entry {
    uint64_t key; /* 0 = free */
    double tokens;
    int64_t last_ms;
};

struct shm_ratelimit {
    pthread_mutex_t lock; /* process-shared, robust */
    uint64_t seed;
    uint64_t recoveries;
    struct ratelimit_entry entries[RATELIMIT_ENTRIES];
};

/* Initialises rl in shared memory (master, before fork). Returns 0 or -1. */
int ratelimit_init(struct shm_ratelimit *rl);

/* Takes one token from the bucket of who (an API key or an address) filling at
 * rate per second up to burst. Returns 0 when allowed, else the whole seconds
 * until a token is there (at least 1). */
int ratelimit_take(struct shm_ratelimit *rl, const char *who, double rate, double burst,
                   int64_t now_ms);

#endif
