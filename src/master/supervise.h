/* supervise.h — forking, reaping, respawning and scaling the master's children. */
#ifndef TH_SUPERVISE_H
#define TH_SUPERVISE_H

#include "master.h"

/* Sets up the child table: the embedded redis-server (not yet started) when
 * redis.mode = embedded. Returns 0 or -1. */
int supervise_init(struct master *m);

/* Brings the number of active (not retiring) http children and workers to
 * the configured counts: starts new ones, or retires the surplus (idle
 * workers first). Returns 0, or -1 when the table cannot grow. */
int supervise_scale(struct master *m);

/* Retires every active child of kind (after a reload that changes what they
 * run with): each gets SIGQUIT, finishes its work and exits. */
void supervise_retire_all(struct master *m, enum child_kind kind);

/* Forks the child c now. Returns 0, or -1 when fork failed (a respawn is then
 * scheduled). */
int supervise_spawn(struct child *c);

/* The embedded redis-server's entry, or NULL. */
struct child *supervise_redis(struct master *m);

/* Reaps every exited child (SIGCHLD): logs it, hands its jobs back or fails
 * them (worker), and schedules its respawn unless it was retiring, the daemon
 * is stopping, or it exited with status 2 (fatal: the daemon stops). While
 * stopping, calls master_children_gone after each reap. */
void supervise_reap(struct master *m);

/* The 1 s check: kills a worker whose job has run past worker.job_timeout. */
void supervise_tick(struct master *m);

/* Sends sig to every running child of kind. */
void supervise_signal(struct master *m, enum child_kind kind, int sig);

/* Number of running children of kind (retiring ones included). */
int supervise_running(const struct master *m, enum child_kind kind);

/* Number of active children of kind (running or waiting to respawn, not retiring). */
int supervise_active(const struct master *m, enum child_kind kind);

void supervise_free(struct master *m);

#endif
