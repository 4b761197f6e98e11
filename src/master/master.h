/* master.h — the master process: configuration, start-up, signals, supervision. */
#ifndef TH_MASTER_H
#define TH_MASTER_H

#include "config.h"
#include "segment.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct event;

enum child_kind { CHILD_REDIS, CHILD_HTTP, CHILD_WORKER, CHILD_DELIVERY };

/* One supervised child process and its restart state. */
struct child {
    enum child_kind kind;
    int slot;           /* scoreboard slot (http and workers), -1 for redis */
    pid_t pid;          /* 0 while not running */
    bool retiring;      /* told to finish and exit (scale-down, reload): not respawned */
    bool timed_out;     /* killed by the master for worker.job_timeout */
    int64_t started_ms; /* when the current process was forked */
    int64_t backoff_ms; /* delay before the next respawn */
    struct event *respawn_ev;
    struct master *master;
};

/* The master's whole state, passed explicitly. */
struct master {
    struct config cfg;
    const char *conf_path;
    bool foreground;
    struct event_base *base;
    struct shm_segment shm;
    int listen_fd;
    char node_id[300];
    struct child **children; /* each allocated on its own: timers point at them */
    int nchildren;
    struct event *tick;         /* 1 s supervision timer */
    struct redisContext *redis; /* the master's own connection (jobs.c), or NULL */
    uint64_t job_timeouts;      /* workers killed for worker.job_timeout */
    bool redis_down;            /* an outage was logged and has not recovered */
    bool left_cluster;          /* the stop removed this node's heartbeat */
    uint64_t ticks;
    bool stopping;
    int exit_status;
    struct event *stop_timer;
    bool redis_stopping;
    uid_t uid; /* daemon.user when started as root, else ours */
    gid_t gid;
    bool drop;
    int pid_fd;
    int ready_fd; /* write end of the daemon readiness pipe, or -1 */
};

/* Runs the daemon from the loaded configuration until it stops. Returns the
 * process exit status. */
int master_run(struct master *m);

/* Starts a graceful stop; a second call with escalate kills the children at once. */
void master_stop(struct master *m, const char *why, bool escalate);

/* Called by supervise.c after reaping during a stop: once every http and worker
 * child is gone, stops the embedded redis-server, then ends the loop. */
void master_children_gone(struct master *m);

#endif
