/* clients.c — the per-key counter table (clients.h). */
#include "clients.h"

#include <stdio.h>
#include <string.h>

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

struct shm_client *shm_clients_get(struct shm_clients *t, const char *name) {
    uint64_t h = name_hash(name);
    struct shm_client *other = &t->e[SHM_CLIENTS_MAX - 1];
    for (int i = 0; i < SHM_CLIENTS_MAX - 1; i++) {
        struct shm_client *c = &t->e[(h + (uint64_t)i) % (SHM_CLIENTS_MAX - 1)];
        uint64_t seen = atomic_load(&c->name_hash);
        if (seen == h)
            return c;
        if (seen == 0) {
            uint64_t expect = 0;
            if (atomic_compare_exchange_strong(&c->name_hash, &expect, h)) {
                snprintf(c->name, sizeof(c->name), "%s", name);
                return c;
            }
            if (expect == h)
                return c;
        }
    }
    if (other->name[0] == '\0')
        snprintf(other->name, sizeof(other->name), "other");
    return other;
}
