/* supervise.h — forking, reaping and respawning the master's children. */
#ifndef TH_SUPERVISE_H
#define TH_SUPERVISE_H

#include "master.h"

/* Allocates the child table (redis when embedded, http.processes http
 * children, worker.processes workers). Returns 0 or -1. */
int supervise_init(struct master *m);

/* Forks the child c now. Returns 0, or -1 when fork failed (a respawn is then
 * scheduled). */
int supervise_spawn(struct child *c);

/* Forks every child that is not running. */
void supervise_spawn_all(struct master *m, enum child_kind kind);

/* Reaps every exited child (SIGCHLD), logs it and schedules its respawn unless
 * the daemon is stopping or the child exited with status 2 (fatal). While
 * stopping, calls master_children_gone after each reap. */
void supervise_reap(struct master *m);

/* Sends sig to every running child of the given kind. */
void supervise_signal(struct master *m, enum child_kind kind, int sig);

/* Number of running children of kind. */
int supervise_running(const struct master *m, enum child_kind kind);

void supervise_free(struct master *m);

#endif
