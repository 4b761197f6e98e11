/* childsig.c — stop and reopen flags set from signal handlers. */
#include "childsig.h"

#include <string.h>

volatile sig_atomic_t childsig_stop;
volatile sig_atomic_t childsig_reopen;

static void on_stop(int sig) {
    (void)sig;
    childsig_stop = 1;
}

static void on_reopen(int sig) {
    (void)sig;
    childsig_reopen = 1;
}

void childsig_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_reopen;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}
