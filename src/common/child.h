/* child.h — what the master hands every child it forks (the one argument of
 * each kind's entry point in the master's child-kind table, supervise.c). */
#ifndef TH_CHILD_H
#define TH_CHILD_H

#include "config.h"

#include <stdbool.h>

struct shm_segment;

struct child_args {
    const struct config *cfg;
    const char *node_id;     /* "<hostname>:<master pid>" */
    int listen_fd;           /* the listen socket for an http child, else -1 (closed) */
    struct shm_segment *shm; /* the scoreboard and cache mapping */
    int slot;                /* this child's scoreboard slot, -1 for redis-server */
    bool foreground;         /* the daemon runs in the foreground (logs may go to stderr) */
};

#endif
