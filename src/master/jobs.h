/* jobs.h — the master's part in the job life cycle: the jobs of a worker that
 * is gone (crashed, killed for worker.job_timeout, stopped) are handed back to
 * the queue or failed at once, without waiting for any timeout. */
#ifndef TH_MASTER_JOBS_H
#define TH_MASTER_JOBS_H

#include "master.h"

#include <sys/types.h>

/* Releases what worker pid of this node held: with code NULL its jobs go back
 * to the front of the queue; otherwise a started job counts as a transient
 * failure with code and message (static strings: they are kept; retried while
 * attempts remain). Uses the master's own blocking connection (short
 * timeouts), connecting on demand. Returns the number of jobs released, or -1
 * when Redis cannot be reached or refuses: the release is then kept and tried
 * again every tick until Redis takes it. */
int jobs_release_worker(struct master *m, pid_t pid, const char *code, const char *message);

/* Every second: promotes due retries and copies {p}:paused into the
 * segment's header; every 2 s the node heartbeat ({p}:hb:<node>, PX 15 s);
 * every 5 s, under a lock, the reaper of dead nodes. */
void jobs_tick(struct master *m);

/* At a clean stop: tries the pending releases once more, then removes this
 * node's heartbeat and membership; with releases still pending it stays a
 * member, so that when its heartbeat expires the reaper of a live node (or of
 * this node's next start) takes those jobs back. */
void jobs_leave(struct master *m);

/* Closes the master's connection. */
void jobs_close(struct master *m);

/* Frees the pending releases (at exit). */
void jobs_free(struct master *m);

#endif
