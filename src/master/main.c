/* main.c — command line: validate (-t), print versions (-v), signal a running
 * master (-s), or run the daemon in the foreground (-f) or detached. */
#include "config.h"
#include "log.h"
#include "store.h"
#include "master.h"
#include "proctitle.h"
#include "version.h"

#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <magic.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#define DEFAULT_CONF THUMBNAILED_DEFAULT_CONF

static void usage(FILE *out) {
    fprintf(out, "usage: thumbnailed [-f] [-c FILE]\n"
                 "       thumbnailed -t [-c FILE]\n"
                 "       thumbnailed -s reload|stop|reopen [-c FILE]\n"
                 "       thumbnailed -v | -h\n"
                 "\n"
                 "  -c FILE   configuration file (default " DEFAULT_CONF ")\n"
                 "  -f        stay in the foreground (for systemd and terminals)\n"
                 "  -t        check the configuration and exit: 0 valid, 1 invalid\n"
                 "  -s SIGNAL send reload (SIGHUP), stop (SIGTERM) or reopen (SIGUSR1) to the\n"
                 "            running master named by daemon.pid_file\n"
                 "  -v        print the version of thumbnailed and its libraries\n"
                 "  -h        print this help\n");
}

static void print_versions(void) {
    printf("thumbnailed %s\n", THUMBNAILED_VERSION);
    printf("  libevent %s\n", event_get_version());
    printf("  hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    printf("  %s\n", curl_version());
    printf("  libvips %s\n", vips_version_string());
    printf("  libmagic %d\n", magic_version());
    printf("  jansson %s\n", jansson_version_str());
    printf("  %s\n", OpenSSL_version(OPENSSL_VERSION));
}

static int load_config(struct config *cfg, const char *path) {
    struct config_errors errs = {0};
    int rc = config_load(cfg, path, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    config_errors_free(&errs);
    return rc;
}

/* -t: what config_each_warning finds, on stderr. */
static void print_warning(const char *msg, void *arg) {
    fprintf(stderr, "%s: warning: %s\n", (const char *)arg, msg);
}

/* -t with storage.backend = s3: the store must take one authenticated
 * request; one that cannot be reached is a warning (it may be down now). */
static int check_store(const struct config *cfg, const char *conf) {
    if (cfg->storage_backend != CONFIG_STORAGE_S3)
        return 0;
    struct store_error err;
    enum store_rc rc = store_check_config(cfg, &err);
    if (rc == STORE_REFUSED) {
        fprintf(stderr, "thumbnailed: %s: storage: %s\n", conf, err.message);
        fprintf(stderr, "thumbnailed: configuration %s is invalid\n", conf);
        return 1;
    }
    if (rc != STORE_OK)
        fprintf(stderr, "%s: warning: storage: %s\n", conf, err.message);
    return 0;
}

static int send_signal(const struct config *cfg, const char *what) {
    int sig = !strcmp(what, "reload")   ? SIGHUP
              : !strcmp(what, "stop")   ? SIGTERM
              : !strcmp(what, "reopen") ? SIGUSR1
                                        : 0;
    if (sig == 0) {
        fprintf(stderr, "thumbnailed: -s takes reload, stop or reopen, not '%s'\n", what);
        return 1;
    }
    FILE *f = fopen(cfg->pid_file, "r");
    int pid = 0;
    if (f == NULL || fscanf(f, "%d", &pid) != 1 || pid <= 1) {
        fprintf(stderr, "thumbnailed: no running master found in %s\n", cfg->pid_file);
        if (f)
            fclose(f);
        return 1;
    }
    fclose(f);
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "thumbnailed: cannot signal pid %d: %s\n", pid, strerror(errno));
        return 1;
    }
    return 0;
}

/* Detaches: the launching process exits only once the master reports ready
 * (0) or failed (1) on a pipe. Returns in the detached master only. */
static int daemonize(struct master *m) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(fds[1]);
        char status = 1;
        ssize_t n;
        do
            n = read(fds[0], &status, 1);
        while (n < 0 && errno == EINTR);
        _exit(n == 1 && status == 0 ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    if (chdir("/") < 0)
        return -1;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (null > STDERR_FILENO)
            close(null);
    }
    m->ready_fd = fds[1];
    return 0;
}

int main(int argc, char **argv) {
    const char *conf = DEFAULT_CONF;
    const char *sig = NULL;
    bool test = false, foreground = false;
    int opt;
    /* First: getopt's optarg must point at the copies, not at the title. */
    if (proctitle_init(argc, argv) < 0)
        fprintf(stderr, "thumbnailed: cannot set the process title: out of memory\n");
    while ((opt = getopt(argc, argv, "c:fts:vh")) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 't':
            test = true;
            break;
        case 's':
            sig = optarg;
            break;
        case 'v':
            print_versions();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "thumbnailed: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    /* Reloads must find the file after the daemon changed its directory. */
    char *abs_conf = realpath(conf, NULL);
    struct master m = {
        .conf_path = abs_conf ? abs_conf : conf, .foreground = foreground, .ready_fd = -1};
    int rc = 1;
    if (load_config(&m.cfg, conf) < 0) {
        fprintf(stderr, "thumbnailed: configuration %s is invalid\n", conf);
    } else if (test) {
        config_each_warning(&m.cfg, print_warning, (void *)conf);
        rc = check_store(&m.cfg, conf);
        if (rc == 0)
            printf("thumbnailed: %s: configuration ok\n", conf);
    } else if (sig) {
        rc = send_signal(&m.cfg, sig);
    } else {
        /* A detached daemon has no terminal: stderr would be lost. */
        const char *target = m.cfg.log_target;
        if (!foreground && strcmp(target, "stderr") == 0)
            target = "syslog";
        /* Until a detached daemon is ready, its errors go to the terminal too. */
        log_errors_to_stderr(!foreground);
        if (log_init("master", (enum log_level)m.cfg.log_level, target) < 0)
            ;
        else if (!foreground && daemonize(&m) < 0)
            fprintf(stderr, "thumbnailed: cannot detach: %s\n", strerror(errno));
        else {
            char title[512];
            proctitle_join(title, sizeof(title), "thumbnailed: master process", argc, argv);
            proctitle_set(title);
            rc = master_run(&m);
        }
    }
    config_free(&m.cfg);
    free(abs_conf);
    return rc;
}
