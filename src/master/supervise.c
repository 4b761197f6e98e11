/* supervise.c — the child table: fork with a clean signal state, reap with
 * waitpid in a loop, respawn with exponential backoff (nginx's master loop). */
#include "supervise.h"
#include "log.h"
#include "redis_embedded.h"
#include "server.h"
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define HEALTHY_MS     60000

static const char *kind_name(enum child_kind k) {
    return k == CHILD_REDIS ? "redis-server" : k == CHILD_HTTP ? "http" : "worker";
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct child *c = arg;
    if (!c->master->stopping && c->pid == 0)
        supervise_spawn(c);
}

int supervise_init(struct master *m) {
    const struct config *cfg = &m->cfg;
    int n = (cfg->redis_mode == REDIS_EMBEDDED ? 1 : 0) + (int)cfg->http_processes +
            (int)cfg->worker_processes;
    if (n - 1 > SHM_MAX_SLOTS) {
        log_error("too many children (%d): at most %d", n, SHM_MAX_SLOTS);
        return -1;
    }
    m->children = calloc((size_t)n, sizeof(struct child));
    if (m->children == NULL)
        return -1;
    int i = 0, slot = 0;
    if (cfg->redis_mode == REDIS_EMBEDDED)
        m->children[i++] = (struct child){.kind = CHILD_REDIS, .slot = -1};
    for (int k = 0; k < cfg->http_processes; k++)
        m->children[i++] = (struct child){.kind = CHILD_HTTP, .slot = slot++};
    for (int k = 0; k < cfg->worker_processes; k++)
        m->children[i++] = (struct child){.kind = CHILD_WORKER, .slot = slot++};
    m->nchildren = n;
    for (i = 0; i < n; i++) {
        struct child *c = &m->children[i];
        c->master = m;
        c->backoff_ms = BACKOFF_MIN_MS;
        c->respawn_ev = evtimer_new(m->base, respawn_cb, c);
        if (c->respawn_ev == NULL)
            return -1;
    }
    return 0;
}

/* In the new child: forget the master's signal handling and event loop. */
static void child_reset_signals(void) {
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT,  SIGHUP,
                               SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int child_main(struct child *c) {
    struct master *m = c->master;
    /* The master's event loop is not ours: give it an epoll set of its own
     * (so nothing we do touches the master's) and free it, which also hands
     * libevent's process-wide signal handling to the loop the child makes. */
    if (m->base) {
        event_reinit(m->base);
        event_base_free(m->base);
        m->base = NULL;
    }
    /* No child outlives a SIGKILLed master. */
    prctl(PR_SET_PDEATHSIG, c->kind == CHILD_REDIS ? SIGTERM : SIGKILL);
    if (getppid() == 1)
        return 1;
    char name[32];
    snprintf(name, sizeof(name), "%s", kind_name(c->kind));
    log_set_procname(name);
    switch (c->kind) {
    case CHILD_REDIS:
        if (m->listen_fd >= 0)
            close(m->listen_fd);
        redis_embedded_exec(&m->cfg);
        log_error("cannot run %s: %s", m->cfg.redis_server, strerror(errno));
        return 2;
    case CHILD_HTTP: {
        struct http_args a = {
            .cfg = &m->cfg, .listen_fd = m->listen_fd, .shm = &m->shm, .slot = c->slot};
        return http_main(&a);
    }
    case CHILD_WORKER: {
        if (m->listen_fd >= 0)
            close(m->listen_fd);
        struct worker_args a = {
            .cfg = &m->cfg, .node_id = m->node_id, .shm = &m->shm, .slot = c->slot};
        return worker_main(&a);
    }
    }
    return 1;
}

int supervise_spawn(struct child *c) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        child_reset_signals();
        _exit(child_main(c));
    }
    int err = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        log_error("fork of %s failed: %s", kind_name(c->kind), strerror(err));
        struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
        evtimer_add(c->respawn_ev, &tv);
        return -1;
    }
    c->pid = pid;
    c->started_ms = shm_now_ms();
    struct shm_slot *s = shm_slot(&c->master->shm, c->slot);
    if (s) {
        atomic_store(&s->pid, pid);
        atomic_store(&s->kind, c->kind == CHILD_HTTP ? SLOT_HTTP : SLOT_WORKER);
        atomic_store(&s->state, SLOT_IDLE);
        atomic_store(&s->heartbeat_ms, c->started_ms);
    }
    log_info("started %s pid %d (slot %d)", kind_name(c->kind), (int)pid, c->slot);
    return 0;
}

void supervise_spawn_all(struct master *m, enum child_kind kind) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].kind == kind && m->children[i].pid == 0)
            supervise_spawn(&m->children[i]);
}

static struct child *find_child(struct master *m, pid_t pid) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].pid == pid)
            return &m->children[i];
    return NULL;
}

void supervise_reap(struct master *m) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find_child(m, pid);
        if (c == NULL)
            continue;
        c->pid = 0;
        struct shm_slot *s = shm_slot(&m->shm, c->slot);
        if (s) {
            atomic_store(&s->pid, 0);
            atomic_store(&s->state, SLOT_IDLE);
        }
        int64_t lived = shm_now_ms() - c->started_ms;
        bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (WIFSIGNALED(status))
            log_warn("%s pid %d (slot %d) killed by signal %d after %lld ms", kind_name(c->kind),
                     (int)pid, c->slot, WTERMSIG(status), (long long)lived);
        else if (m->stopping && clean)
            log_info("%s pid %d (slot %d) exited", kind_name(c->kind), (int)pid, c->slot);
        else
            log_warn("%s pid %d (slot %d) exited with status %d after %lld ms", kind_name(c->kind),
                     (int)pid, c->slot, WEXITSTATUS(status), (long long)lived);

        if (m->stopping)
            continue;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
            log_error("%s pid %d reported a fatal error (exit status 2): stopping the daemon",
                      kind_name(c->kind), (int)pid);
            m->exit_status = 1;
            master_stop(m, "fatal child error", false);
            continue;
        }
        if (s)
            atomic_fetch_add(&s->restarts, 1);
        if (lived >= HEALTHY_MS)
            c->backoff_ms = BACKOFF_MIN_MS;
        int64_t delay = c->backoff_ms;
        c->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
        evtimer_add(c->respawn_ev, &tv);
    }
    if (m->stopping)
        master_children_gone(m);
}

void supervise_signal(struct master *m, enum child_kind kind, int sig) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].kind == kind && m->children[i].pid > 0)
            kill(m->children[i].pid, sig);
}

int supervise_running(const struct master *m, enum child_kind kind) {
    int n = 0;
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].kind == kind && m->children[i].pid > 0)
            n++;
    return n;
}

void supervise_free(struct master *m) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i].respawn_ev)
            event_free(m->children[i].respawn_ev);
    free(m->children);
    m->children = NULL;
    m->nchildren = 0;
}
