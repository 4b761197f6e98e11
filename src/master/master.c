/* master.c — the start-up steps in order (docs/ARCHITECTURE.md §1), the
 * signal-driven event loop, the stop sequence and the teardown. The master
 * does no request work. */
#include "master.h"
#include "listen.h"
#include "log.h"
#include "store.h"
#include "cache.h"
#include "units.h"
#include "jobs.h"
#include "redis_embedded.h"
#include "reload.h"
#include "supervise.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define REDIS_START_TIMEOUT_MS 15000

/* mkdir -p with mode for the last component; chown to the daemon user. */
static int make_dir(struct master *m, const char *path, mode_t mode) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    if (m->drop && chown(buf, m->uid, m->gid) < 0)
        return -1;
    return 0;
}

static int resolve_user(struct master *m) {
    m->uid = getuid();
    m->gid = getgid();
    if (geteuid() != 0)
        return 0;
    if (m->cfg.user[0] == '\0') {
        log_warn("running as root: set daemon.user so that no child runs as root");
        return 0;
    }
    struct passwd *pw = getpwnam(m->cfg.user);
    if (pw == NULL) {
        log_error("daemon.user: no such user '%s' (create it, or set daemon.user empty)",
                  m->cfg.user);
        return -1;
    }
    m->uid = pw->pw_uid;
    m->gid = pw->pw_gid;
    m->drop = true;
    return 0;
}

static int drop_privileges(struct master *m) {
    if (!m->drop)
        return 0;
    if (setgroups(0, NULL) < 0 || setgid(m->gid) < 0 || setuid(m->uid) < 0) {
        log_error("cannot drop privileges to %s: %s", m->cfg.user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_error("privileges were not dropped: still able to become root");
        return -1;
    }
    log_info("running as user %s", m->cfg.user);
    return 0;
}

/* Creates and locks the pid file: a second instance refuses to start. */
static int pid_file_open(struct master *m) {
    int fd = open(m->cfg.pid_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot open pid file %s: %s", m->cfg.pid_file, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        log_error("another thumbnailed is running (pid %s, pid file %s)", buf[0] ? buf : "?",
                  m->cfg.pid_file);
        close(fd);
        return -1;
    }
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        log_error("cannot write pid file %s: %s", m->cfg.pid_file, strerror(errno));
        close(fd);
        return -1;
    }
    if (m->drop && fchown(fd, m->uid, m->gid) < 0)
        log_warn("cannot chown pid file: %s", strerror(errno));
    m->pid_fd = fd;
    return 0;
}

/* Tells systemd (Type=notify) about our state, without libsystemd. */
static void notify_systemd(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}

static void stop_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct master *m = arg;
    int left = supervise_running(m);
    if (left > 0) {
        log_warn("stop: %d children still running after %lld ms: killing them", left,
                 (long long)m->cfg.stop_timeout);
        supervise_signal_all(m, SIGKILL);
    } else if (supervise_redis_running(m)) {
        log_warn("stop: redis-server still running: killing it");
        supervise_signal_redis(m, SIGKILL);
    }
    struct timeval tv = {m->cfg.stop_timeout / 1000, (m->cfg.stop_timeout % 1000) * 1000};
    evtimer_add(m->stop_timer, &tv);
}

/* The stop's next step once alive children other than redis-server remain:
 * none left -> this node leaves the cluster, then redis-server is stopped,
 * then the loop ends. */
static void stop_progress(struct master *m, int alive) {
    if (alive > 0)
        return;
    if (!m->left_cluster) {
        m->left_cluster = true;
        jobs_leave(m);
        jobs_close(m);
    }
    if (supervise_redis_running(m)) {
        if (!m->redis_stopping) {
            m->redis_stopping = true;
            log_info("stopping redis-server");
            supervise_signal_redis(m, SIGTERM);
        }
        return;
    }
    event_base_loopbreak(m->base);
}

/* Starts a graceful stop; a second call with escalate kills the children at once. */
static void stop(struct master *m, const char *why, bool escalate) {
    if (m->stopping) {
        if (!escalate)
            return;
        log_warn("%s again: stopping now", why);
        supervise_signal_all(m, SIGKILL);
        return;
    }
    log_info("%s: stopping (children finish their work, at most %lld ms)", why,
             (long long)m->cfg.stop_timeout);
    notify_systemd("STOPPING=1");
    m->stopping = true;
    supervise_signal_all(m, SIGQUIT);
    m->stop_timer = evtimer_new(m->base, stop_timeout_cb, m);
    struct timeval tv = {m->cfg.stop_timeout / 1000, (m->cfg.stop_timeout % 1000) * 1000};
    evtimer_add(m->stop_timer, &tv);
    stop_progress(m, supervise_running(m));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    struct master *m = arg;
    switch (sig) {
    case SIGCHLD: {
        struct supervise_reaped r = supervise_reap(m);
        if (r.fatal) {
            m->exit_status = 1;
            stop(m, "fatal child error", false);
        }
        if (m->stopping)
            stop_progress(m, r.alive);
        break;
    }
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        stop(m, strsignal((int)sig), true);
        break;
    case SIGHUP:
        reload_apply(m);
        break;
    case SIGUSR1:
        log_reopen();
        break;
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    struct master *m = arg;
    log_tick();
    if (!m->stopping) {
        supervise_tick(m);
        jobs_tick(m);
    }
}

static void signal_ready(struct master *m, char status) {
    if (m->ready_fd >= 0) {
        log_errors_to_stderr(false);
        if (status == 0) {
            /* Detached and ready: the terminal we were started from may go. */
            int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
            if (null >= 0) {
                dup2(null, STDERR_FILENO);
                close(null);
            }
        }
        ssize_t w = write(m->ready_fd, &status, 1);
        (void)w;
        close(m->ready_fd);
        m->ready_fd = -1;
    }
}

/* --- the start-up steps ------------------------------------------------------ */

static int make_dirs(struct master *m) {
    struct config *cfg = &m->cfg;
    if (make_dir(m, cfg->runtime_dir, 0750) < 0) {
        log_error("cannot create daemon.runtime_dir %s: %s", cfg->runtime_dir, strerror(errno));
        return -1;
    }
    if (cfg->redis_mode == CONFIG_REDIS_EMBEDDED && make_dir(m, cfg->redis_data_dir, 0750) < 0) {
        log_error("cannot create redis.data_dir %s: %s", cfg->redis_data_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* The listen socket, bound before the privileges are dropped (a port below 1024). */
static int open_listener(struct master *m) {
    char err[512];
    m->listen_fd = listen_open(m->cfg.http_listen, err, sizeof(err));
    if (m->listen_fd < 0) {
        log_error("http.listen: %s", err);
        return -1;
    }
    return 0;
}

static int make_loop(struct master *m) {
    m->base = event_base_new();
    if (m->base == NULL || supervise_init(m) < 0) {
        log_error("cannot set up the event loop");
        return -1;
    }
    return 0;
}

/* The embedded redis-server first: every child needs it. */
/* How long a start in sentinel mode keeps asking the Sentinels for a master
 * before it gives up (a Sentinel that is restarting, a failover under way). */
#define SENTINEL_START_TIMEOUT_MS 10000

/* Sentinel mode: the Sentinels must name a working master before the node
 * starts, so that a wrong list or name fails the start with a clear message
 * instead of children that retry for ever. */
static int find_master(struct master *m) {
    struct rconn_target t;
    if (rconn_resolve(&m->cfg, &t) < 0) {
        log_error("redis.sentinels or redis.master_name cannot be used");
        return -1;
    }
    long long until = units_mono_ms() + SENTINEL_START_TIMEOUT_MS;
    char err[1024], host[256];
    int port;
    while (rconn_discover(&t, host, sizeof(host), &port, err, sizeof(err)) < 0) {
        if (units_mono_ms() >= until) {
            log_error("redis.mode = sentinel: %s (asked for %d s)", err,
                      SENTINEL_START_TIMEOUT_MS / 1000);
            return -1;
        }
        struct timespec pause = {0, 250 * 1000000L};
        nanosleep(&pause, NULL);
    }
    log_info("the Sentinels name %s:%d the master '%s'", host, port, t.master_name);
    return 0;
}

static int start_redis(struct master *m) {
    m->started_at_ms = units_wall_ms();
    if (m->cfg.redis_mode == CONFIG_REDIS_SENTINEL)
        return find_master(m);
    if (m->cfg.redis_mode != CONFIG_REDIS_EMBEDDED)
        return 0;
    struct supervise_child *r = supervise_redis(m);
    if (supervise_spawn(r) < 0 ||
        redis_embedded_wait(&m->cfg, r->pid, REDIS_START_TIMEOUT_MS) < 0) {
        if (r->pid > 0 && kill(r->pid, SIGTERM) == 0)
            waitpid(r->pid, NULL, 0);
        r->pid = 0;
        return -1;
    }
    log_info("redis-server ready (pid %d, maxmemory %lld MiB%s)", (int)r->pid,
             redis_embedded_max_memory(&m->cfg) >> 20,
             m->cfg.redis_max_memory == CONFIG_MAX_MEMORY_AUTO ? ", a quarter of the memory" : "");
    return 0;
}

/* The shared memory segment (scoreboard and cache), mapped by every child. */
static int make_cache(struct master *m) {
    struct config *cfg = &m->cfg;
    if (shm_segment_create(&m->shm, cfg->pid_file, (size_t)cfg->cache_size) < 0) {
        log_error("cannot create the shared memory segment (cache.size %lld): %s",
                  (long long)cfg->cache_size, strerror(errno));
        return -1;
    }
    struct shm_cache_opts copts;
    shm_cache_opts_init(&copts);
    if (shm_cache_init(shm_segment_cache_area(&m->shm), (size_t)cfg->cache_size, &copts) < 0) {
        log_error("cannot lay out the cache in %lld bytes (cache.size): %s",
                  (long long)cfg->cache_size, strerror(errno));
        return -1;
    }
    rconn_health_attach(&m->shm.hdr->redis);
    log_count_lost(&m->shm.hdr->log_lost);
    return 0;
}

static int watch_signals(struct master *m) {
    static const int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct event *ev = evsignal_new(m->base, sigs[i], signal_cb, m);
        if (ev == NULL || event_add(ev, NULL) < 0) {
            if (ev)
                event_free(ev);
            log_error("cannot watch signal %d", sigs[i]);
            return -1;
        }
        m->sig_events[m->nsig++] = ev;
    }
    return 0;
}

/* storage.backend = s3: one authenticated request. A store that refuses it
 * (credentials, bucket) stops the start with its answer; one that cannot be
 * reached is warned about, and the workers wait for it. */
static int check_store(struct master *m) {
    if (m->cfg.storage_backend != CONFIG_STORAGE_S3)
        return 0;
    struct store_error err;
    enum store_rc rc = store_check_config(&m->cfg, &err);
    if (rc == STORE_REFUSED) {
        log_error("storage: %s: fix storage.* (or the bucket's permissions)", err.message);
        return -1;
    }
    if (rc != STORE_OK)
        log_warn("storage: %s; starting anyway: workers wait until it answers", err.message);
    else
        log_info("storage: bucket %s at %s answers", m->cfg.storage_bucket,
                 m->cfg.storage_endpoint);
    return 0;
}

static int start_children(struct master *m) {
    if (supervise_scale(m) < 0) {
        log_error("cannot start the children");
        return -1;
    }
    m->tick = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    struct timeval second = {1, 0};
    if (m->tick == NULL || event_add(m->tick, &second) < 0) {
        log_error("cannot start the supervision timer");
        return -1;
    }
    return 0;
}

/* The start-up, in order; each step logs its own failure. */
static const struct {
    const char *name;
    int (*run)(struct master *m);
} startup[] = {
    {"daemon.user", resolve_user},   {"directories", make_dirs},
    {"pid file", pid_file_open},     {"listen socket", open_listener},
    {"privileges", drop_privileges}, {"event loop", make_loop},
    {"object store", check_store},   {"redis-server", start_redis},
    {"shared memory", make_cache},   {"signals", watch_signals},
    {"children", start_children},
};

/* Ready: tells whoever waits, then runs the loop until the stop ends it. */
static int serve(struct master *m) {
    log_info("thumbnailed ready on %s: %lld http, %lld workers, node %s", m->cfg.http_listen,
             (long long)m->cfg.http_processes, (long long)m->cfg.worker_processes, m->node_id);
    signal_ready(m, 0);
    notify_systemd("READY=1");
    jobs_tick(m); /* the heartbeat at once: this node is alive */
    event_base_dispatch(m->base);
    log_info("stopped");
    return m->exit_status;
}

/* Undoes whatever the start-up did, after a stop or a failed step: children
 * that were started are killed (none are left after a stop), redis-server is
 * stopped, then everything is released. */
static void teardown(struct master *m) {
    supervise_kill_all(m);
    struct supervise_child *r = supervise_redis(m);
    if (r && r->pid > 0) {
        kill(r->pid, SIGTERM);
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
    }
    rconn_health_attach(NULL);
    log_count_lost(NULL);
    shm_segment_destroy(&m->shm);
    for (int i = 0; i < m->nsig; i++)
        event_free(m->sig_events[i]);
    m->nsig = 0;
    if (m->stop_timer)
        event_free(m->stop_timer);
    if (m->tick)
        event_free(m->tick);
    jobs_close(m);
    jobs_free(m);
    supervise_free(m);
    if (m->base)
        event_base_free(m->base);
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        if (strncmp(m->cfg.http_listen, "unix:", 5) == 0)
            unlink(m->cfg.http_listen + 5);
    }
    if (m->pid_fd >= 0) {
        unlink(m->cfg.pid_file);
        close(m->pid_fd);
    }
    signal_ready(m, 1);
}

static void log_warning(const char *msg, void *arg) {
    (void)arg;
    log_warn("%s", msg);
}

int master_run(struct master *m) {
    m->listen_fd = -1;
    m->pid_fd = -1;
    char host[256] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(m->node_id, sizeof(m->node_id), "%s:%d", host, (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    config_each_warning(&m->cfg, log_warning, NULL); /* a push open to anyone */

    int status = 1;
    size_t done = 0;
    while (done < sizeof(startup) / sizeof(startup[0]) && startup[done].run(m) == 0)
        done++;
    if (done == sizeof(startup) / sizeof(startup[0]))
        status = serve(m);
    else
        log_debug("start-up stopped at: %s", startup[done].name);
    teardown(m);
    return status;
}
