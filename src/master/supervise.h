/* supervise.h — the master's children: the table of child kinds, forking,
 * reaping, respawning and scaling (nginx's master loop). */
#ifndef TH_SUPERVISE_H
#define TH_SUPERVISE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event;
struct master;

/* The kinds of child, in the order of the kind table (supervise.c), which
 * carries each one's name, process title, scoreboard kind, entry point and
 * signals: nothing else switches on the kind. */
enum supervise_kind {
    SUPERVISE_REDIS,    /* the embedded redis-server (redis.mode = embedded) */
    SUPERVISE_HTTP,     /* http.processes of them */
    SUPERVISE_WORKER,   /* worker.processes of them */
    SUPERVISE_DELIVERY, /* one per node */
    SUPERVISE_KINDS
};

/* One supervised child process and its restart state. */
struct supervise_child {
    enum supervise_kind kind;
    int slot;           /* scoreboard slot (every kind but redis), -1 for redis */
    pid_t pid;          /* 0 while not running */
    bool retiring;      /* told to finish and exit (scale-down, reload): not respawned */
    bool timed_out;     /* killed by the master for worker.job_timeout */
    int64_t started_ms; /* when the current process was forked (monotonic) */
    int64_t backoff_ms; /* delay before the next respawn */
    struct event *respawn_ev;
    struct master *master;
};

/* What a reap found. */
struct supervise_reaped {
    int alive;  /* children other than redis-server still running */
    bool fatal; /* a child exited with status 2: the daemon must stop */
};

/* Sets up the child table: the embedded redis-server (not yet started) when
 * redis.mode = embedded. Returns 0 or -1. */
int supervise_init(struct master *m);

/* Brings the number of active (not retiring) children of every kind but
 * redis-server to the configured counts: starts new ones, or retires the
 * surplus (idle workers first). Returns 0, or -1 when the table cannot grow. */
int supervise_scale(struct master *m);

/* Retires every active child but redis-server (after a reload that changes
 * what they run with): each gets SIGQUIT, finishes its work and exits. */
void supervise_retire_all(struct master *m);

/* Sends every running child but redis-server the signal its kind takes to
 * re-read its files and reopen its log. */
void supervise_reopen_all(struct master *m);

/* Forks the child c now. Returns 0, or -1 when fork failed (a respawn is then
 * scheduled). */
int supervise_spawn(struct supervise_child *c);

/* The embedded redis-server's entry, or NULL. */
struct supervise_child *supervise_redis(struct master *m);

/* Reaps every exited child (SIGCHLD): logs it, hands its jobs back or fails
 * them (worker, delivery), and schedules its respawn unless it was retiring,
 * the daemon is stopping, or it exited with status 2 (fatal). Returns what is
 * left alive and whether a child asked the daemon to stop; the caller
 * decides what follows. */
struct supervise_reaped supervise_reap(struct master *m);

/* The 1 s check: kills a worker whose job has run past worker.job_timeout. */
void supervise_tick(struct master *m);

/* Sends sig to every running child but redis-server. */
void supervise_signal_all(struct master *m, int sig);

/* Sends sig to the embedded redis-server, when it runs. */
void supervise_signal_redis(struct master *m, int sig);

/* Number of running children but redis-server (retiring ones included). */
int supervise_running(const struct master *m);

/* Whether the embedded redis-server runs. */
bool supervise_redis_running(struct master *m);

/* Kills every child but redis-server at once and waits for each (a start-up
 * that failed half-way). */
void supervise_kill_all(struct master *m);

void supervise_free(struct master *m);

#endif
