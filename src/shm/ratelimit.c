/* ratelimit.c — a small open-addressed table of token buckets under one robust
 * process-shared mutex. The critical section is a hash probe and a few
 * arithmetic operations. A process that dies holding the lock leaves the table
 * in doubt: it is cleared (every client gets a full bucket again). */
#include "ratelimit.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/random.h>

#define PROBES 16

int ratelimit_init(struct shm_ratelimit *rl) {
    memset(rl, 0, sizeof(*rl));
    if (getrandom(&rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed))
        rl->seed = 0x9e3779b97f4a7c15ULL;
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0)
        return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
             pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
             pthread_mutex_init(&rl->lock, &a);
    pthread_mutexattr_destroy(&a);
    return rc ? -1 : 0;
}

/* FNV-1a over the seed and the string, never 0 (0 marks a free entry). */
static uint64_t hash_of(const struct shm_ratelimit *rl, const char *who) {
    uint64_t h = 1469598103934665603ULL ^ rl->seed;
    for (const unsigned char *p = (const unsigned char *)who; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

static int lock(struct shm_ratelimit *rl) {
    int rc = pthread_mutex_lock(&rl->lock);
    if (rc == EOWNERDEAD) {
        memset(rl->entries, 0, sizeof(rl->entries));
        rl->recoveries++;
        pthread_mutex_consistent(&rl->lock);
        return 0;
    }
    return rc == 0 ? 0 : -1;
}

int ratelimit_take(struct shm_ratelimit *rl, const char *who, double rate, double burst,
                   int64_t now_ms) {
    if (rl == NULL || rate <= 0)
        return 0;
    uint64_t key = hash_of(rl, who);
    if (lock(rl) < 0)
        return 0; /* never refuse a client because of our own lock */
    struct ratelimit_entry *slot = NULL, *stalest = NULL;
    for (unsigned i = 0; i < PROBES; i++) {
        struct ratelimit_entry *e = &rl->entries[(key + i) & (RATELIMIT_ENTRIES - 1)];
        if (e->key == key) {
            slot = e;
            break;
        }
        if (e->key == 0 && stalest == NULL)
            stalest = e;
        else if (stalest == NULL || (stalest->key != 0 && e->last_ms < stalest->last_ms))
            stalest = e;
    }
    if (slot == NULL) {
        slot = stalest;
        *slot = (struct ratelimit_entry){.key = key, .tokens = burst, .last_ms = now_ms};
    }
    double elapsed = (double)(now_ms - slot->last_ms) / 1000.0;
    if (elapsed > 0) {
        slot->tokens = fmin(burst, slot->tokens + elapsed * rate);
        slot->last_ms = now_ms;
    }
    int wait = 0;
    if (slot->tokens >= 1.0)
        slot->tokens -= 1.0;
    else
        wait = (int)ceil((1.0 - slot->tokens) / rate);
    pthread_mutex_unlock(&rl->lock);
    return wait > 0 ? wait : 0;
}
