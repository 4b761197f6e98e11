/* segment.h — the POSIX shared-memory segment made by the master before fork and
 * mapped by every child: header, scoreboard (one slot per child), then the
 * cache area. Offsets, never pointers, are stored inside it. */
#ifndef TH_SHM_SEGMENT_H
#define TH_SHM_SEGMENT_H

#include "clients.h"
#include "counters.h"
#include "rconn.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHM_MAGIC     0x74686d62u /* "thmb" */
#define SHM_VERSION   7
#define SHM_MAX_SLOTS 1024

enum shm_slot_kind { SHM_SLOT_FREE, SHM_SLOT_HTTP, SHM_SLOT_WORKER, SHM_SLOT_DELIVERY };
/* A worker's state; SHM_SLOT_PAUSED: between jobs, taking none while the
 * header's paused is set. */
enum shm_slot_state { SHM_SLOT_IDLE, SHM_SLOT_BUSY, SHM_SLOT_PAUSED };

/* One child's line on the scoreboard. Written by that child (state, job) and by
 * the master (pid, kind, restarts). */
struct shm_slot {
    _Atomic int32_t pid;
    _Atomic int32_t kind;           /* enum shm_slot_kind */
    _Atomic int32_t state;          /* enum shm_slot_state */
    _Atomic int64_t job_started_ms; /* CLOCK_MONOTONIC ms (units_mono_ms), 0 between jobs */
    _Atomic uint64_t jobs_done;     /* this slot's children's jobs (the node's: shm_counters) */
    _Atomic uint64_t restarts;      /* this slot's respawns (the node's: shm_counters) */
    _Atomic int64_t heartbeat_ms;   /* CLOCK_MONOTONIC ms of the last sign of life */
    _Atomic uint64_t conns_open;    /* an http child: its open connections */
    char job_id[32];
};

/* What the http children's connection layers did (conn.h's conn_stats),
 * summed over them: each adds what is new once a second. */
struct shm_http_counters {
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused_per_client;
    _Atomic uint64_t reused;
    _Atomic uint64_t head_timeouts;
    _Atomic uint64_t body_too_slow;
    _Atomic uint64_t write_timeouts;
    _Atomic uint64_t refused;
    _Atomic uint64_t accept_pauses;
};

struct shm_header {
    uint32_t magic;
    uint32_t version;
    uint64_t size;
    uint64_t slots_off; /* offset of the scoreboard */
    uint32_t slot_count;
    uint64_t ratelimit_off; /* offset of the shared token buckets */
    uint64_t cache_off;     /* offset of the cache area */
    uint64_t cache_size;
    _Atomic uint64_t job_timeouts; /* workers the master killed for worker.job_timeout */
    struct rconn_health redis;     /* what every process's Redis clients saw (rconn.h) */
    _Atomic uint64_t log_lost;     /* log lines any process of the node could not write */
    struct shm_clients clients;    /* per API key counters (clients.h) */
    struct shm_http_counters http; /* the connection layers' counters */
    /* Reads that found a finished job in the cache that the http child's
     * subscription could not vouch for (down, or the entry older than it). */
    _Atomic uint64_t cache_unconfirmed;
    /* 1 while {p}:paused exists (the master reads it every second): the
     * workers take no job. */
    _Atomic int32_t paused;
    struct shm_counters counters; /* jobs, requests, restarts: monotonic (counters.h) */
};

struct shm_ratelimit;

struct shm_segment {
    struct shm_header *hdr; /* the mapping's start */
    size_t size;
    char name[128];
};

/* Creates (replacing a stale one) and maps a segment whose name derives from
 * pid_file, with cache_size bytes of cache. Returns 0, or -1 with errno. */
int shm_segment_create(struct shm_segment *seg, const char *pid_file, size_t cache_size);

/* Unmaps and unlinks the segment (master, at stop). */
void shm_segment_destroy(struct shm_segment *seg);

/* Slot i of the scoreboard, or NULL when out of range. */
struct shm_slot *shm_segment_slot(struct shm_segment *seg, int i);

/* The rate-limit table of the segment. */
struct shm_ratelimit *shm_segment_ratelimit(struct shm_segment *seg);

/* The cache area of the segment (hdr->cache_size bytes). */
void *shm_segment_cache_area(struct shm_segment *seg);

#endif
