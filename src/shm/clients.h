/* clients.h — per API key counters in the shared segment, by the key's name,
 * so that /metrics shows every node-wide figure per client whichever http
 * child served it. A fixed table: keys beyond it share its last line. */
#ifndef TH_SHM_CLIENTS_H
#define TH_SHM_CLIENTS_H

#include <stdatomic.h>
#include <stdint.h>

#define SHM_CLIENTS_MAX      64
#define SHM_CLIENTS_NAME_MAX 64

/* One client's counters. */
struct shm_client {
    _Atomic uint64_t name_hash; /* 0: free; set once, before name is complete */
    char name[SHM_CLIENTS_NAME_MAX + 1];
    _Atomic uint64_t submits;         /* jobs created (202) */
    _Atomic uint64_t rate_limited;    /* 429 rate_limited */
    _Atomic uint64_t too_many_queued; /* 429 too_many_queued */
};

struct shm_clients {
    struct shm_client e[SHM_CLIENTS_MAX];
};

/* The counters of the client called name, claimed on first use (lock-free);
 * the last line ("other") once the table is full. Never NULL. */
struct shm_client *shm_clients_get(struct shm_clients *t, const char *name);

#endif
