/* worker.h — a worker child: takes jobs from the Redis queue and runs the pipeline
 * fetch -> type check -> thumbnail -> store. */
#ifndef TH_WORKER_H
#define TH_WORKER_H

#include "child.h"
#include "config.h"
#include "segment.h"

/* Runs the worker until SIGQUIT/SIGTERM (finishing the current job first).
 * Called after fork; initialises vips, curl, magic itself. Returns the process
 * exit status: 0 on a clean stop, 1 on error, 2 on a fatal environment error
 * that a restart will not fix. */
int worker_main(const struct child_args *args);

#endif
