/* supervise.c — the child table: fork with a clean signal state, reap with
 * waitpid in a loop, respawn with exponential backoff, scale to the configured
 * counts, and kill a worker stuck past worker.job_timeout (nginx's master loop). */
#include "supervise.h"
#include "deliver.h"
#include "jobs.h"
#include "log.h"
#include "redis_embedded.h"
#include "server.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define HEALTHY_MS     60000

/* Each kind's name in the log, its process name in ps and top (redis names
 * itself), and its kind on the scoreboard. */
static const struct {
    const char *name, *comm;
    enum slot_kind slot;
} kinds[] = {
    [CHILD_REDIS] = {"redis-server", NULL, SLOT_FREE},
    [CHILD_HTTP] = {"http", "thumb-http", SLOT_HTTP},
    [CHILD_WORKER] = {"worker", "thumb-worker", SLOT_WORKER},
    [CHILD_DELIVERY] = {"delivery", "thumb-delivery", SLOT_DELIVERY},
};

static const char *kind_name(enum child_kind k) {
    return kinds[k].name;
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct child *c = arg;
    if (!c->master->stopping && !c->retiring && c->pid == 0)
        supervise_spawn(c);
}

/* The lowest scoreboard slot no child holds, or -1. */
static int free_slot(const struct master *m) {
    for (int s = 0; s < SHM_MAX_SLOTS; s++) {
        bool used = false;
        for (int i = 0; i < m->nchildren && !used; i++)
            used = m->children[i]->slot == s;
        if (!used)
            return s;
    }
    return -1;
}

static struct child *add_child(struct master *m, enum child_kind kind) {
    int slot = kind == CHILD_REDIS ? -1 : free_slot(m);
    if (kind != CHILD_REDIS && slot < 0) {
        log_error("no free scoreboard slot: at most %d children", SHM_MAX_SLOTS);
        return NULL;
    }
    struct child **grown = realloc(m->children, (size_t)(m->nchildren + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    m->children = grown;
    struct child *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = (struct child){.kind = kind, .slot = slot, .backoff_ms = BACKOFF_MIN_MS, .master = m};
    c->respawn_ev = evtimer_new(m->base, respawn_cb, c);
    if (c->respawn_ev == NULL) {
        free(c);
        return NULL;
    }
    m->children[m->nchildren++] = c;
    return c;
}

static void remove_child(struct master *m, struct child *c) {
    for (int i = 0; i < m->nchildren; i++) {
        if (m->children[i] == c) {
            memmove(&m->children[i], &m->children[i + 1],
                    (size_t)(m->nchildren - i - 1) * sizeof(*m->children));
            m->nchildren--;
            break;
        }
    }
    struct shm_slot *s = shm_slot(&m->shm, c->slot);
    if (s)
        atomic_store(&s->kind, SLOT_FREE);
    event_free(c->respawn_ev);
    free(c);
}

int supervise_init(struct master *m) {
    if (m->cfg.redis_mode == REDIS_EMBEDDED && add_child(m, CHILD_REDIS) == NULL)
        return -1;
    return 0;
}

struct child *supervise_redis(struct master *m) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == CHILD_REDIS)
            return m->children[i];
    return NULL;
}

/* Tells c to finish its work and exit; it is not respawned. */
static void retire(struct master *m, struct child *c) {
    c->retiring = true;
    if (c->pid > 0) {
        log_info("retiring %s pid %d (slot %d)", kind_name(c->kind), (int)c->pid, c->slot);
        kill(c->pid, SIGQUIT);
    } else {
        remove_child(m, c); /* was waiting for its respawn */
    }
}

/* Whether the worker c is between jobs (per its scoreboard line). */
static bool is_idle(struct master *m, const struct child *c) {
    struct shm_slot *s = shm_slot(&m->shm, c->slot);
    return s == NULL || atomic_load(&s->state) != SLOT_BUSY;
}

static int scale_kind(struct master *m, enum child_kind kind, int want) {
    int have = supervise_active(m, kind);
    for (; have < want; have++) {
        struct child *c = add_child(m, kind);
        if (c == NULL)
            return -1;
        supervise_spawn(c);
    }
    /* Surplus: idle ones first, so that fewer jobs wait for a retiring worker. */
    for (int pass = 0; pass < 2 && have > want; pass++) {
        for (int i = m->nchildren - 1; i >= 0 && have > want; i--) {
            struct child *c = m->children[i];
            if (c->kind != kind || c->retiring || (pass == 0 && !is_idle(m, c)))
                continue;
            retire(m, c);
            have--;
        }
    }
    return 0;
}

int supervise_scale(struct master *m) {
    int rc = scale_kind(m, CHILD_HTTP, (int)m->cfg.http_processes);
    if (scale_kind(m, CHILD_WORKER, (int)m->cfg.worker_processes) < 0)
        rc = -1;
    /* One delivery child per node: it runs many deliveries at once itself. */
    if (scale_kind(m, CHILD_DELIVERY, 1) < 0)
        rc = -1;
    return rc;
}

void supervise_retire_all(struct master *m, enum child_kind kind) {
    for (int i = m->nchildren - 1; i >= 0; i--) {
        struct child *c = m->children[i];
        if (c->kind == kind && !c->retiring)
            retire(m, c);
    }
}

/* In the new child: forget the master's signal handling. */
static void child_reset_signals(void) {
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGUSR2};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], SIG_DFL);
    /* Until the child sets its own handlers, a reload or reopen must not kill it. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
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
    if (m->redis) {
        redisFree(m->redis); /* closes our copy of the socket, sends nothing */
        m->redis = NULL;
    }
    if (m->ready_fd >= 0) {
        close(m->ready_fd); /* the readiness pipe is the master's to answer */
        m->ready_fd = -1;
    }
    if (!m->foreground) {
        /* Detached: whoever started us waits for the end of our stderr; the
         * children log to syslog or a file, never to it. */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            dup2(null, STDOUT_FILENO);
            close(null);
        }
    }
    /* No child outlives a SIGKILLed master. */
    prctl(PR_SET_PDEATHSIG, c->kind == CHILD_REDIS ? SIGTERM : SIGKILL);
    if (getppid() == 1)
        return 1;
    char name[32];
    if (c->slot >= 0)
        snprintf(name, sizeof(name), "%s/%d", kind_name(c->kind), c->slot);
    else
        snprintf(name, sizeof(name), "%s", kind_name(c->kind));
    log_set_procname(name);
    if (kinds[c->kind].comm)
        prctl(PR_SET_NAME, kinds[c->kind].comm);
    switch (c->kind) {
    case CHILD_REDIS:
        if (m->listen_fd >= 0)
            close(m->listen_fd);
        redis_embedded_exec(&m->cfg, m->foreground);
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
    case CHILD_DELIVERY: {
        if (m->listen_fd >= 0)
            close(m->listen_fd);
        struct deliver_args a = {
            .cfg = &m->cfg, .node_id = m->node_id, .shm = &m->shm, .slot = c->slot};
        return deliver_main(&a);
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
        int status = child_main(c);
#ifdef __SANITIZE_ADDRESS__
        /* Children leave by _exit, which skips LeakSanitizer's exit check:
         * run it here so a leak in a job loop is reported like the master's. */
        __lsan_do_leak_check();
#endif
        _exit(status);
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
    c->timed_out = false;
    c->started_ms = shm_now_ms();
    struct shm_slot *s = shm_slot(&c->master->shm, c->slot);
    if (s) {
        atomic_store(&s->pid, pid);
        atomic_store(&s->kind, kinds[c->kind].slot);
        atomic_store(&s->state, SLOT_IDLE);
        atomic_store(&s->heartbeat_ms, c->started_ms);
    }
    log_info("started %s pid %d (slot %d)", kind_name(c->kind), (int)pid, c->slot);
    return 0;
}

static struct child *find_child(struct master *m, pid_t pid) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->pid == pid)
            return m->children[i];
    return NULL;
}

static void describe_exit(char *buf, size_t n, int status) {
    if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
}

/* What happens to the jobs of a worker that is gone: a clean exit leaves
 * none (anything left goes back to the queue); a kill for job_timeout or a
 * crash fails the job it was running. */
static void release_jobs(struct master *m, struct child *c, int status) {
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (c->timed_out)
        jobs_release_worker(m, c->pid, "job_timeout",
                            "the job ran longer than worker.job_timeout and its worker was killed");
    else if (clean || m->stopping)
        jobs_release_worker(m, c->pid, NULL, NULL);
    else
        jobs_release_worker(m, c->pid, "worker_crashed",
                            "the worker processing the job died before finishing it");
}

static void reap_one(struct master *m, struct child *c, int status) {
    int64_t lived = shm_now_ms() - c->started_ms;
    char how[96];
    describe_exit(how, sizeof(how), status);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (clean && (m->stopping || c->retiring))
        log_info("%s pid %d (slot %d) exited", kind_name(c->kind), (int)c->pid, c->slot);
    else
        log_warn("%s pid %d (slot %d) %s after %lld ms", kind_name(c->kind), (int)c->pid, c->slot,
                 how, (long long)lived);

    if (c->kind == CHILD_WORKER || c->kind == CHILD_DELIVERY)
        release_jobs(m, c, status); /* a delivery child's go back to their queue */
    struct shm_slot *s = shm_slot(&m->shm, c->slot);
    if (s) {
        atomic_store(&s->pid, 0);
        atomic_store(&s->state, SLOT_IDLE);
        s->job_id[0] = '\0';
    }
    c->pid = 0;

    if (c->retiring) {
        remove_child(m, c);
        return;
    }
    if (m->stopping)
        return;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
        log_error("%s (slot %d) reported a fatal error (exit status 2): stopping the daemon",
                  kind_name(c->kind), c->slot);
        m->exit_status = 1;
        master_stop(m, "fatal child error", false);
        return;
    }
    if (s)
        atomic_fetch_add(&s->restarts, 1);
    if (lived >= HEALTHY_MS)
        c->backoff_ms = BACKOFF_MIN_MS;
    int64_t delay = c->backoff_ms;
    c->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    log_info("restarting %s (slot %d) in %lld ms", kind_name(c->kind), c->slot, (long long)delay);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->respawn_ev, &tv);
}

void supervise_reap(struct master *m) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find_child(m, pid);
        if (c)
            reap_one(m, c, status);
    }
    if (m->stopping)
        master_children_gone(m);
}

void supervise_tick(struct master *m) {
    int64_t now = shm_now_ms();
    for (int i = 0; i < m->nchildren; i++) {
        struct child *c = m->children[i];
        struct shm_slot *s = shm_slot(&m->shm, c->slot);
        if (c->kind != CHILD_WORKER || c->pid <= 0 || c->timed_out || s == NULL ||
            atomic_load(&s->state) != SLOT_BUSY)
            continue;
        int64_t ran = now - atomic_load(&s->job_started_ms);
        if (ran <= m->cfg.worker_job_timeout)
            continue;
        char job[sizeof(s->job_id)];
        memcpy(job, s->job_id, sizeof(job));
        job[sizeof(job) - 1] = '\0';
        log_warn("worker pid %d (slot %d): job %s has run %lld ms, over worker.job_timeout "
                 "(%lld ms): killing the worker",
                 (int)c->pid, c->slot, job, (long long)ran, (long long)m->cfg.worker_job_timeout);
        c->timed_out = true;
        m->job_timeouts++;
        atomic_fetch_add(&m->shm.hdr->job_timeouts, 1);
        kill(c->pid, SIGKILL);
    }
}

void supervise_signal(struct master *m, enum child_kind kind, int sig) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == kind && m->children[i]->pid > 0)
            kill(m->children[i]->pid, sig);
}

int supervise_running(const struct master *m, enum child_kind kind) {
    int n = 0;
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == kind && m->children[i]->pid > 0)
            n++;
    return n;
}

int supervise_active(const struct master *m, enum child_kind kind) {
    int n = 0;
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == kind && !m->children[i]->retiring)
            n++;
    return n;
}

void supervise_free(struct master *m) {
    for (int i = 0; i < m->nchildren; i++) {
        event_free(m->children[i]->respawn_ev);
        free(m->children[i]);
    }
    free(m->children);
    m->children = NULL;
    m->nchildren = 0;
}
