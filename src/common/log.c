/* log.c — line-oriented logging to stderr, syslog or an append-only file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
    char procname[32];
    enum log_level level;
    enum { TARGET_STDERR, TARGET_SYSLOG, TARGET_FILE } target;
    char path[4096];
    int fd;
    bool errors_to_stderr;
} logger = {"thumbnailed", LOG_LEVEL_INFO, TARGET_STDERR, "", STDERR_FILENO, false};

static const char *level_names[] = {"debug", "info", "warn", "error"};

static int open_file(void) {
    int fd = open(logger.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (logger.fd > STDERR_FILENO)
        close(logger.fd);
    logger.fd = fd;
    return 0;
}

int log_init(const char *procname, enum log_level level, const char *target) {
    log_set_procname(procname);
    logger.level = level;
    if (target == NULL || strcmp(target, "stderr") == 0) {
        logger.target = TARGET_STDERR;
        logger.fd = STDERR_FILENO;
    } else if (strcmp(target, "syslog") == 0) {
        logger.target = TARGET_SYSLOG;
        openlog("thumbnailed", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    } else if (strncmp(target, "file:", 5) == 0) {
        logger.target = TARGET_FILE;
        snprintf(logger.path, sizeof(logger.path), "%s", target + 5);
        if (open_file() < 0) {
            int err = errno;
            logger.target = TARGET_STDERR;
            logger.fd = STDERR_FILENO;
            log_error("cannot open log file %s: %s", logger.path, strerror(err));
            return -1;
        }
    }
    return 0;
}

void log_set_procname(const char *procname) {
    snprintf(logger.procname, sizeof(logger.procname), "%s", procname);
}

void log_set_level(enum log_level level) {
    logger.level = level;
}

void log_errors_to_stderr(bool on) {
    logger.errors_to_stderr = on;
}

int log_reopen(void) {
    if (logger.target != TARGET_FILE)
        return 0;
    if (open_file() < 0) {
        log_error("cannot reopen log file %s: %s", logger.path, strerror(errno));
        return -1;
    }
    return 0;
}

void log_msg(enum log_level level, const char *fmt, ...) {
    if (level < logger.level)
        return;
    int saved_errno = errno;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[2300];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, logger.procname, (int)getpid(), level_names[level], msg);
    if (n > (int)sizeof(line) - 1)
        n = sizeof(line) - 1;
    ssize_t w = 0;
    if (logger.target == TARGET_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "%s: %s", logger.procname, msg);
    } else {
        /* One write per line keeps lines whole when several processes share the target. */
        w = write(logger.fd, line, (size_t)n);
    }
    if (logger.errors_to_stderr && level == LOG_LEVEL_ERROR && logger.target != TARGET_STDERR)
        w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
    errno = saved_errno;
}
