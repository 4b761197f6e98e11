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

/* Warnings and errors seen lately, by the hash of their text. */
#define REPEATS 16
static struct repeat {
    uint64_t hash;       /* 0: free */
    int64_t since_ms;    /* the window's start (monotonic) */
    uint64_t suppressed; /* lines not written in the window */
    enum log_level level;
    char text[200]; /* the start of the message, for the summary */
} repeats[REPEATS];

static _Atomic uint64_t *lost_counter;
static int repeat_window_ms = LOG_REPEAT_WINDOW_MS;

void log_set_repeat_window(int ms) {
    repeat_window_ms = ms;
}

void log_count_lost(_Atomic uint64_t *counter) {
    lost_counter = counter;
}

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
    snprintf(logger.procname, sizeof(logger.procname), "%s", procname);
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
    /* A new process (after fork): the repeats seen are its parent's. */
    memset(repeats, 0, sizeof(repeats));
    lost_counter = NULL;
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

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t text_hash(const char *s) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

/* Formats and writes one line of msg at level (no repeat check). */
static void emit(enum log_level level, const char *msg) {
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
    bool lost = false;
    if (logger.target == TARGET_SYSLOG) {
        static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
        syslog(prio[level], "%s: %s", logger.procname, msg);
    } else {
        /* One write per line keeps lines whole when several processes share the target. */
        lost = write(logger.fd, line, (size_t)n) != (ssize_t)n;
    }
    if (logger.errors_to_stderr && level == LOG_LEVEL_ERROR && logger.target != TARGET_STDERR) {
        ssize_t w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
    if (lost && lost_counter)
        atomic_fetch_add(lost_counter, 1);
}

/* The summary of r's window, if anything was held back; frees r. */
static void close_window(struct repeat *r) {
    if (r->suppressed > 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "%s ... repeated %llu times in the last %d s", r->text,
                 (unsigned long long)r->suppressed, (repeat_window_ms + 999) / 1000);
        emit(r->level, msg);
    }
    r->hash = 0;
    r->suppressed = 0;
}

void log_tick(void) {
    int64_t now = mono_ms();
    for (int i = 0; i < REPEATS; i++)
        if (repeats[i].hash && now - repeats[i].since_ms >= repeat_window_ms)
            close_window(&repeats[i]);
}

/* Whether msg repeats a warning or error of the current window (then it is
 * counted, not written). */
static bool repeated(enum log_level level, const char *msg) {
    if (level < LOG_LEVEL_WARN)
        return false;
    log_tick();
    uint64_t h = text_hash(msg);
    struct repeat *free_slot = NULL, *oldest = &repeats[0];
    for (int i = 0; i < REPEATS; i++) {
        struct repeat *r = &repeats[i];
        if (r->hash == h) {
            r->suppressed++;
            return true;
        }
        if (r->hash == 0 && free_slot == NULL)
            free_slot = r;
        if (r->since_ms < oldest->since_ms)
            oldest = r;
    }
    struct repeat *r = free_slot;
    if (r == NULL) {
        close_window(oldest);
        r = oldest;
    }
    r->hash = h;
    r->since_ms = mono_ms();
    r->suppressed = 0;
    r->level = level;
    snprintf(r->text, sizeof(r->text), "%.*s", (int)sizeof(r->text) - 1, msg);
    return false;
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
    if (!repeated(level, msg))
        emit(level, msg);
    errno = saved_errno;
}
