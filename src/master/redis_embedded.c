/* redis_embedded.c — the embedded redis-server child, and the master's wait for it. */
#include "redis_embedded.h"
#include "log.h"
#include "rconn.h"
#include "units.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long redis_embedded_max_memory(const struct config *cfg) {
    if (cfg->redis_max_memory != CONFIG_MAX_MEMORY_AUTO)
        return (long long)cfg->redis_max_memory;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (long long)pages * page / 4 : 0;
}

int redis_embedded_main(const struct child_args *args) {
    const struct config *cfg = args->cfg;
    bool foreground = args->foreground;
    char sock[600];
    rconn_embedded_socket(cfg, sock, sizeof(sock));
    unlink(sock);
    const char *level = cfg->log_level == 0 ? "verbose" : "warning";
    /* Redis logs where we log: stderr (its stdout), our file, or syslog. */
    const char *logfile = "";
    const char *use_syslog = "no";
    if (strncmp(cfg->log_target, "file:", 5) == 0)
        logfile = cfg->log_target + 5;
    else if (strcmp(cfg->log_target, "syslog") == 0 || !foreground)
        use_syslog = "yes";
    dup2(STDERR_FILENO, STDOUT_FILENO);
    /* Full, Redis refuses writes (noeviction: nothing is dropped); 0 = no limit. */
    char maxmemory[24];
    snprintf(maxmemory, sizeof(maxmemory), "%lld", (long long)redis_embedded_max_memory(cfg));
    const char *argv[] = {cfg->redis_server,
                          "--port",
                          "0",
                          "--unixsocket",
                          sock,
                          "--unixsocketperm",
                          "700",
                          "--dir",
                          cfg->redis_data_dir,
                          "--appendonly",
                          "yes",
                          "--maxmemory-policy",
                          "noeviction",
                          "--appendfsync",
                          "everysec",
                          "--save",
                          "",
                          "--daemonize",
                          "no",
                          "--loglevel",
                          level,
                          "--logfile",
                          logfile,
                          "--syslog-enabled",
                          use_syslog,
                          "--syslog-ident",
                          "thumbnailed-redis",
                          "--databases",
                          "1",
                          "--maxmemory",
                          maxmemory,
                          NULL};
    execvp(cfg->redis_server, (char *const *)argv);
    log_error("cannot run %s: %s", cfg->redis_server, strerror(errno));
    return 2;
}

int redis_embedded_wait(const struct config *cfg, pid_t pid, long timeout_ms) {
    struct rconn_target t;
    rconn_resolve(cfg, &t);
    int64_t start = units_mono_ms();
    char err[256] = "";
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            log_error("redis-server (%s) exited before it was ready (status %d)", cfg->redis_server,
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            return -1;
        }
        redisContext *c = rconn_open(&t, 200, err, sizeof(err));
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            /* While loading a large AOF, Redis answers -LOADING: keep waiting. */
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return 0;
        }
        if (units_mono_ms() - start > timeout_ms) {
            log_error("redis-server did not answer PING on %s within %ld ms (%s)", t.unix_path,
                      timeout_ms, err);
            return -1;
        }
        usleep(20000);
    }
}
