/* supervise.c — the child table: fork with a clean signal state, reap with
 * waitpid in a loop, respawn with exponential backoff, scale to the configured
 * counts, and kill a worker stuck past worker.job_timeout (nginx's master loop). */
#include "supervise.h"
#include "deliver.h"
#include "jobs.h"
#include "log.h"
#include "proctitle.h"
#include "redis_embedded.h"
#include "http.h"
#include "master.h"
#include "worker.h"
#include "units.h"

#include <errno.h>
#include <fcntl.h>
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

static int want_http(const struct config *cfg) {
    return (int)cfg->http_processes;
}
static int want_workers(const struct config *cfg) {
    return (int)cfg->worker_processes;
}
static int want_one(const struct config *cfg) {
    (void)cfg;
    return 1; /* one delivery child per node: it runs many deliveries at once itself */
}

/* The child-kind table (OpenBSD httpd's procs[]): everything the master
 * knows about a kind of child. */
static const struct {
    const char *name;                      /* in the log */
    const char *comm;                      /* the process name in ps and top (redis names itself) */
    const char *title;                     /* the whole title in ps's args column */
    enum shm_slot_kind slot;               /* its kind on the scoreboard */
    bool listens;                          /* keeps the listen socket */
    bool holds_jobs;                       /* has a proc list the master releases when it dies */
    bool job_timeout;                      /* killed when its job runs past worker.job_timeout */
    int reopen_sig;                        /* re-read its files and reopen its log */
    int death_sig;                         /* what it gets when the master dies */
    int (*want)(const struct config *cfg); /* how many; NULL: started on its own */
    int (*main)(const struct child_args *args); /* its entry point, after fork */
} kinds[SUPERVISE_KINDS] = {
    [SUPERVISE_REDIS] = {.name = "redis-server",
                         .slot = SHM_SLOT_FREE,
                         .death_sig = SIGTERM,
                         .main = redis_embedded_main},
    [SUPERVISE_HTTP] = {.name = "http",
                        .comm = "thumb-http",
                        .title = "thumbnailed: http process",
                        .slot = SHM_SLOT_HTTP,
                        .listens = true,
                        .reopen_sig = SIGHUP,
                        .death_sig = SIGKILL,
                        .want = want_http,
                        .main = http_main},
    [SUPERVISE_WORKER] = {.name = "worker",
                          .comm = "thumb-worker",
                          .title = "thumbnailed: worker process",
                          .slot = SHM_SLOT_WORKER,
                          .holds_jobs = true,
                          .job_timeout = true,
                          .reopen_sig = SIGUSR1,
                          .death_sig = SIGKILL,
                          .want = want_workers,
                          .main = worker_main},
    [SUPERVISE_DELIVERY] = {.name = "delivery",
                            .comm = "thumb-delivery",
                            .title = "thumbnailed: delivery process",
                            .slot = SHM_SLOT_DELIVERY,
                            .holds_jobs = true, /* its deliveries go back to their queue */
                            .reopen_sig = SIGUSR1,
                            .death_sig = SIGKILL,
                            .want = want_one,
                            .main = deliver_main},
};

static const char *kind_name(enum supervise_kind k) {
    return kinds[k].name;
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct supervise_child *c = arg;
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

static struct supervise_child *add_child(struct master *m, enum supervise_kind kind) {
    int slot = kind == SUPERVISE_REDIS ? -1 : free_slot(m);
    if (kind != SUPERVISE_REDIS && slot < 0) {
        log_error("no free scoreboard slot: at most %d children", SHM_MAX_SLOTS);
        return NULL;
    }
    struct supervise_child **grown =
        realloc(m->children, (size_t)(m->nchildren + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    m->children = grown;
    struct supervise_child *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = (struct supervise_child){
        .kind = kind, .slot = slot, .backoff_ms = BACKOFF_MIN_MS, .master = m};
    c->respawn_ev = evtimer_new(m->base, respawn_cb, c);
    if (c->respawn_ev == NULL) {
        free(c);
        return NULL;
    }
    m->children[m->nchildren++] = c;
    return c;
}

static void remove_child(struct master *m, struct supervise_child *c) {
    for (int i = 0; i < m->nchildren; i++) {
        if (m->children[i] == c) {
            memmove(&m->children[i], &m->children[i + 1],
                    (size_t)(m->nchildren - i - 1) * sizeof(*m->children));
            m->nchildren--;
            break;
        }
    }
    struct shm_slot *s = shm_segment_slot(&m->shm, c->slot);
    if (s)
        atomic_store(&s->kind, SHM_SLOT_FREE);
    event_free(c->respawn_ev);
    free(c);
}

int supervise_init(struct master *m) {
    if (m->cfg.redis_mode == CONFIG_REDIS_EMBEDDED && add_child(m, SUPERVISE_REDIS) == NULL)
        return -1;
    return 0;
}

struct supervise_child *supervise_redis(struct master *m) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == SUPERVISE_REDIS)
            return m->children[i];
    return NULL;
}

/* Tells c to finish its work and exit; it is not respawned. */
static void retire(struct master *m, struct supervise_child *c) {
    c->retiring = true;
    if (c->pid > 0) {
        log_info("retiring %s pid %d (slot %d)", kind_name(c->kind), (int)c->pid, c->slot);
        kill(c->pid, SIGQUIT);
    } else {
        remove_child(m, c); /* was waiting for its respawn */
    }
}

/* Whether the worker c is between jobs (per its scoreboard line). */
static bool is_idle(struct master *m, const struct supervise_child *c) {
    struct shm_slot *s = shm_segment_slot(&m->shm, c->slot);
    return s == NULL || atomic_load(&s->state) != SHM_SLOT_BUSY;
}

/* Active children of kind (running or waiting to respawn, not retiring). */
static int active(const struct master *m, enum supervise_kind kind) {
    int n = 0;
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind == kind && !m->children[i]->retiring)
            n++;
    return n;
}

static int scale_kind(struct master *m, enum supervise_kind kind, int want) {
    int have = active(m, kind);
    for (; have < want; have++) {
        struct supervise_child *c = add_child(m, kind);
        if (c == NULL)
            return -1;
        supervise_spawn(c);
    }
    /* Surplus: idle ones first, so that fewer jobs wait for a retiring worker. */
    for (int pass = 0; pass < 2 && have > want; pass++) {
        for (int i = m->nchildren - 1; i >= 0 && have > want; i--) {
            struct supervise_child *c = m->children[i];
            if (c->kind != kind || c->retiring || (pass == 0 && !is_idle(m, c)))
                continue;
            retire(m, c);
            have--;
        }
    }
    return 0;
}

int supervise_scale(struct master *m) {
    int rc = 0;
    for (int k = 0; k < SUPERVISE_KINDS; k++)
        if (kinds[k].want && scale_kind(m, (enum supervise_kind)k, kinds[k].want(&m->cfg)) < 0)
            rc = -1;
    return rc;
}

void supervise_retire_all(struct master *m) {
    for (int i = m->nchildren - 1; i >= 0; i--) {
        struct supervise_child *c = m->children[i];
        if (c->kind != SUPERVISE_REDIS && !c->retiring)
            retire(m, c);
    }
}

void supervise_reopen_all(struct master *m) {
    for (int i = 0; i < m->nchildren; i++) {
        struct supervise_child *c = m->children[i];
        if (c->kind != SUPERVISE_REDIS && c->pid > 0)
            kill(c->pid, kinds[c->kind].reopen_sig);
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

static int child_main(struct supervise_child *c) {
    struct master *m = c->master;
    /* The master's event loop is not ours: give it an epoll set of its own
     * (so nothing we do touches the master's) and free it, which also hands
     * libevent's process-wide signal handling to the loop the child makes. */
    if (m->base) {
        event_reinit(m->base);
        event_base_free(m->base);
        m->base = NULL;
    }
    jobs_close(m); /* closes our copy of the master's Redis socket, sends nothing */
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
    prctl(PR_SET_PDEATHSIG, kinds[c->kind].death_sig);
    if (getppid() == 1)
        return 1;
    char name[32];
    if (c->slot >= 0)
        snprintf(name, sizeof(name), "%s/%d", kind_name(c->kind), c->slot);
    else
        snprintf(name, sizeof(name), "%s", kind_name(c->kind));
    log_set_procname(name);
    /* What this child's Redis clients see, and the log lines it loses, are
     * counted in the segment for /readyz and /metrics. */
    if (m->shm.hdr) {
        rconn_health_attach(&m->shm.hdr->redis);
        log_count_lost(&m->shm.hdr->log_lost);
    }
    if (kinds[c->kind].comm)
        prctl(PR_SET_NAME, kinds[c->kind].comm);
    if (kinds[c->kind].title)
        proctitle_set(kinds[c->kind].title);
    if (!kinds[c->kind].listens && m->listen_fd >= 0) {
        close(m->listen_fd);
        m->listen_fd = -1;
    }
    struct child_args a = {.cfg = &m->cfg,
                           .node_id = m->node_id,
                           .listen_fd = m->listen_fd,
                           .shm = &m->shm,
                           .slot = c->slot,
                           .foreground = m->foreground};
    return kinds[c->kind].main(&a);
}

int supervise_spawn(struct supervise_child *c) {
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
    c->started_ms = units_mono_ms();
    struct shm_slot *s = shm_segment_slot(&c->master->shm, c->slot);
    if (s) {
        atomic_store(&s->pid, pid);
        atomic_store(&s->kind, kinds[c->kind].slot);
        atomic_store(&s->state, SHM_SLOT_IDLE);
        atomic_store(&s->heartbeat_ms, c->started_ms);
    }
    log_info("started %s pid %d (slot %d)", kind_name(c->kind), (int)pid, c->slot);
    return 0;
}

static struct supervise_child *find_child(struct master *m, pid_t pid) {
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
static void release_jobs(struct master *m, struct supervise_child *c, int status) {
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

/* Handles the exit of c. Returns true when it asked the daemon to stop. */
static bool reap_one(struct master *m, struct supervise_child *c, int status) {
    int64_t lived = units_mono_ms() - c->started_ms;
    char how[96];
    describe_exit(how, sizeof(how), status);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (clean && (m->stopping || c->retiring))
        log_info("%s pid %d (slot %d) exited", kind_name(c->kind), (int)c->pid, c->slot);
    else
        log_warn("%s pid %d (slot %d) %s after %lld ms", kind_name(c->kind), (int)c->pid, c->slot,
                 how, (long long)lived);

    if (kinds[c->kind].holds_jobs)
        release_jobs(m, c, status);
    struct shm_slot *s = shm_segment_slot(&m->shm, c->slot);
    if (s) {
        atomic_store(&s->pid, 0);
        atomic_store(&s->state, SHM_SLOT_IDLE);
        s->job_id[0] = '\0';
    }
    c->pid = 0;

    if (c->retiring) {
        remove_child(m, c);
        return false;
    }
    if (m->stopping)
        return false;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
        log_error("%s (slot %d) reported a fatal error (exit status 2): stopping the daemon",
                  kind_name(c->kind), c->slot);
        return true;
    }
    if (s) {
        atomic_fetch_add(&s->restarts, 1);
        atomic_fetch_add(&m->shm.hdr->counters.restarts[kinds[c->kind].slot], 1);
    }
    if (lived >= HEALTHY_MS)
        c->backoff_ms = BACKOFF_MIN_MS;
    int64_t delay = c->backoff_ms;
    c->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    log_info("restarting %s (slot %d) in %lld ms", kind_name(c->kind), c->slot, (long long)delay);
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(c->respawn_ev, &tv);
    return false;
}

struct supervise_reaped supervise_reap(struct master *m) {
    struct supervise_reaped r = {0};
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct supervise_child *c = find_child(m, pid);
        if (c && reap_one(m, c, status))
            r.fatal = true;
    }
    r.alive = supervise_running(m);
    return r;
}

void supervise_tick(struct master *m) {
    int64_t now = units_mono_ms();
    for (int i = 0; i < m->nchildren; i++) {
        struct supervise_child *c = m->children[i];
        struct shm_slot *s = shm_segment_slot(&m->shm, c->slot);
        if (!kinds[c->kind].job_timeout || c->pid <= 0 || c->timed_out || s == NULL ||
            atomic_load(&s->state) != SHM_SLOT_BUSY)
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

void supervise_signal_all(struct master *m, int sig) {
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind != SUPERVISE_REDIS && m->children[i]->pid > 0)
            kill(m->children[i]->pid, sig);
}

void supervise_signal_redis(struct master *m, int sig) {
    struct supervise_child *r = supervise_redis(m);
    if (r && r->pid > 0)
        kill(r->pid, sig);
}

int supervise_running(const struct master *m) {
    int n = 0;
    for (int i = 0; i < m->nchildren; i++)
        if (m->children[i]->kind != SUPERVISE_REDIS && m->children[i]->pid > 0)
            n++;
    return n;
}

bool supervise_redis_running(struct master *m) {
    struct supervise_child *r = supervise_redis(m);
    return r && r->pid > 0;
}

void supervise_kill_all(struct master *m) {
    for (int i = 0; i < m->nchildren; i++) {
        struct supervise_child *c = m->children[i];
        if (c->pid > 0 && c->kind != SUPERVISE_REDIS && kill(c->pid, SIGKILL) == 0)
            waitpid(c->pid, NULL, 0);
    }
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
