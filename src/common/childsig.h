/* childsig.h — the signals of a child that runs a blocking loop (a worker, the
 * delivery child): SIGQUIT, SIGTERM and SIGINT ask it to stop after its current
 * work, SIGUSR1 and SIGHUP to reopen its log; SIGPIPE is ignored (a dropped
 * socket must not kill it). No SA_RESTART: a blocking call returns early, so
 * the loop sees the flag. */
#ifndef TH_CHILDSIG_H
#define TH_CHILDSIG_H

#include <signal.h>

extern volatile sig_atomic_t childsig_stop;
extern volatile sig_atomic_t childsig_reopen;

/* Installs the handlers and unblocks every signal. */
void childsig_install(void);

#endif
