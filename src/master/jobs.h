/* jobs.h — the master's part in the job life cycle: the jobs of a worker that
 * is gone (crashed, killed for worker.job_timeout, stopped) are handed back to
 * the queue or failed at once, without waiting for any timeout. */
#ifndef TH_MASTER_JOBS_H
#define TH_MASTER_JOBS_H

#include "master.h"

#include <sys/types.h>

/* Releases what worker pid of this node held: with code NULL its jobs go back
 * to the front of the queue; otherwise a started job counts as a transient
 * failure with code and message (retried while attempts remain). Uses the
 * master's own blocking connection (short timeouts), connecting on demand.
 * Returns the number of jobs released, or -1 when Redis cannot be reached
 * (logged once per outage). */
int jobs_release_worker(struct master *m, pid_t pid, const char *code, const char *message);

/* Every second: promotes due retries; every 5 s the node heartbeat
 * ({p}:hb:<node>, PX 15 s) and, under a lock, the reaper of dead nodes. */
void jobs_tick(struct master *m);

/* At a clean stop: removes this node's heartbeat and membership. */
void jobs_leave(struct master *m);

/* Closes the master's connection. */
void jobs_close(struct master *m);

#endif
