/* master.h — the master process: configuration, start-up, signals, supervision. */
#ifndef TH_MASTER_H
#define TH_MASTER_H

#include "config.h"
#include "rconn.h"
#include "segment.h"
#include "supervise.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct event;
struct jobs_release;

/* The master's whole state, passed explicitly. */
struct master {
    struct config cfg;
    const char *conf_path;
    bool foreground;
    struct event_base *base;
    struct shm_segment shm;
    int listen_fd;
    char node_id[300];
    long long started_at_ms;           /* wall clock, for the fleet view (jobs.c) */
    struct supervise_child **children; /* each allocated on its own: timers point at them */
    int nchildren;
    struct event *tick;          /* 1 s supervision timer */
    struct event *sig_events[8]; /* the signals the loop watches */
    int nsig;
    struct rconn redis;            /* the master's own connection (jobs.c) */
    struct jobs_release *releases; /* releases Redis did not take yet, retried (jobs.c) */
    int nreleases;
    bool redis_init;       /* redis is set up */
    uint64_t job_timeouts; /* workers killed for worker.job_timeout */
    bool left_cluster;     /* the stop removed this node's heartbeat */
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

/* Runs the daemon from the loaded configuration until it stops: the start-up
 * steps in order, the event loop, then the teardown. Returns the process exit
 * status. */
int master_run(struct master *m);

#endif
